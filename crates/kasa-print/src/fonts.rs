//! The slip typeface, DejaVu Sans Mono (regular and bold), compiled into the binary.
//!
//! One monospace face with every Turkish and Western European letter keeps the columns of the
//! PDF and of the printer picture where the printer puts them, on any machine and without
//! installed fonts. The font files and their licence are in `crates/kasa-print/fonts/`.

use ab_glyph::{Font, FontRef};

use crate::sheet::{CELL_DOTS, COLUMN_DOTS};

/// DejaVu Sans Mono.
pub(crate) const REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");
/// DejaVu Sans Mono Bold.
pub(crate) const BOLD: &[u8] = include_bytes!("../fonts/DejaVuSansMono-Bold.ttf");

/// The font file for a row's weight.
pub(crate) fn bytes(bold: bool) -> &'static [u8] {
    if bold { BOLD } else { REGULAR }
}

/// The parsed face for a row's weight.
pub(crate) fn face(bold: bool) -> FontRef<'static> {
    // Both files are compiled in and parsed by a test (`the_embedded_fonts_parse`), so a
    // parse error here cannot happen at run time.
    FontRef::try_from_slice(bytes(bold)).expect("the embedded DejaVu Sans Mono parses")
}

/// The character drawn for `c`: itself when the face has a glyph for it, else `?`, as the
/// printers print characters their page lacks.
pub(crate) fn drawable(face: &FontRef<'_>, c: char) -> char {
    if c == ' ' || face.glyph_id(c).0 != 0 { c } else { '?' }
}

/// Where the face sits in a normal-size Font A cell, in printer dots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CellMetrics {
    /// The em size that makes one advance exactly one column wide.
    pub em: f32,
    /// The baseline's distance from the top of the cell.
    pub baseline: f32,
}

/// The cell metrics of the slip face (the same for both weights: they share their metrics).
pub(crate) fn cell_metrics() -> CellMetrics {
    let face = face(false);
    let units = face.units_per_em().unwrap_or(2048.0);
    let advance = face.h_advance_unscaled(face.glyph_id('M'));
    let em = COLUMN_DOTS as f32 * units / advance;
    let ascent = face.ascent_unscaled() * em / units;
    let descent = -face.descent_unscaled() * em / units;
    // The face's ascent and descent fill the cell's height, centred.
    let baseline = (CELL_DOTS as f32 - ascent - descent) / 2.0 + ascent;
    CellMetrics { em, baseline }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fonts_parse() {
        for bold in [false, true] {
            let face = FontRef::try_from_slice(bytes(bold)).unwrap();
            for c in "ŞĞİıışğçöüÇÖÜäßÄ€₺0".chars() {
                assert_ne!(face.glyph_id(c).0, 0, "{c} in bold={bold}");
            }
            assert_eq!(face.h_advance_unscaled(face.glyph_id('i')), face.h_advance_unscaled(face.glyph_id('W')));
        }
        let m = cell_metrics();
        assert!((19.0..21.0).contains(&m.em), "{m:?}");
        assert!((17.0..21.0).contains(&m.baseline), "{m:?}");
    }
}
