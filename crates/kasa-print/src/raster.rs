//! The slip as a picture of what a 203-dpi thermal printer prints: a black-and-white PNG.
//!
//! The picture is the printable width (576 dots for 80 mm, 384 for 58 mm) and as high as the
//! rows (see [`crate::sheet`] for the geometry). Glyphs come from the same DejaVu Sans Mono as
//! the PDF, fitted to Font A's 12 × 24-dot cell and reduced to black or white dots as a
//! thermal head prints them; big rows are the same cells doubled in both directions, as the
//! printers enlarge characters, and bold rows use the bold face. A QR code is its module grid.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, PxScale, point};

use crate::fonts::{self, CellMetrics};
use crate::layout::{Block, Width};
use crate::sheet::{COLUMN_DOTS, Mark, place};

/// Renders `blocks` as a PNG the width of `width`'s printable area.
pub fn render_png(blocks: &[Block], width: Width) -> Vec<u8> {
    let sheet = place(blocks, width.columns());
    // A PNG needs at least one line of pixels, even for a slip without rows.
    let mut canvas = Canvas::new(sheet.width, sheet.height.max(1));
    let mut glyphs = Glyphs::new();
    for row in &sheet.rows {
        match &row.mark {
            Mark::Text { text, bold, big } => {
                let scale = if *big { 2 } else { 1 };
                for (i, c) in (0..).zip(text.chars()) {
                    let x = i * COLUMN_DOTS * scale;
                    if x >= canvas.width {
                        break;
                    }
                    for &(dx, dy) in glyphs.get(c, *bold) {
                        canvas.fill(
                            i64::from(x) + i64::from(dx) * i64::from(scale),
                            i64::from(row.top) + i64::from(dy) * i64::from(scale),
                            scale,
                            scale,
                        );
                    }
                }
            }
            Mark::Qr(q) => {
                let m = q.module_dots;
                let (left, top) = (q.inset(), row.top + q.inset());
                for (y, x, n) in q.dark_runs() {
                    canvas.fill(i64::from(left + x * m), i64::from(top + y * m), n * m, m);
                }
            }
        }
    }
    canvas.png()
}

/// One bit per dot, set when the dot is black.
struct Canvas {
    width: u32,
    height: u32,
    /// Rows of `stride` bytes, most significant bit leftmost, as PNG stores 1-bit lines.
    bits: Vec<u8>,
    stride: usize,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        let stride = (width as usize).div_ceil(8);
        Canvas { width, height, bits: vec![0; stride * height as usize], stride }
    }

    /// Blackens a rectangle, clipped to the canvas.
    fn fill(&mut self, x: i64, y: i64, w: u32, h: u32) {
        let (x0, y0) = (x.max(0), y.max(0));
        let x1 = (x + i64::from(w)).min(i64::from(self.width));
        let y1 = (y + i64::from(h)).min(i64::from(self.height));
        for yy in y0..y1 {
            let line = yy as usize * self.stride;
            for xx in x0..x1 {
                self.bits[line + xx as usize / 8] |= 0x80 >> (xx % 8);
            }
        }
    }

    /// The canvas as a 1-bit greyscale PNG, black on white.
    fn png(&self) -> Vec<u8> {
        // In 1-bit greyscale 0 is black: store the inverse of the black bits.
        let data: Vec<u8> = self.bits.iter().map(|b| !b).collect();
        let mut out = Vec::with_capacity(data.len() / 8 + 256);
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        // Writing to a Vec cannot fail, the width and height are at least 1, and `data` holds
        // exactly `height` lines of `ceil(width / 8)` bytes, so the encoder has nothing to
        // refuse.
        let mut writer = encoder.write_header().expect("a PNG header for a valid size");
        writer.write_image_data(&data).expect("PNG data of the declared size");
        writer.finish().expect("a PNG written to memory");
        out
    }
}

/// Glyph bitmaps of one normal-size cell, made once per character and weight.
struct Glyphs {
    faces: [FontRef<'static>; 2],
    metrics: CellMetrics,
    cache: HashMap<(char, bool), Vec<(i32, i32)>>,
}

impl Glyphs {
    fn new() -> Glyphs {
        Glyphs { faces: [fonts::face(false), fonts::face(true)], metrics: fonts::cell_metrics(), cache: HashMap::new() }
    }

    /// The black dots of `c`, relative to its cell's top left corner (accents may reach a
    /// little outside the cell, as on the printers).
    fn get(&mut self, c: char, bold: bool) -> &[(i32, i32)] {
        let Glyphs { faces, metrics, cache } = self;
        cache.entry((c, bold)).or_insert_with(|| {
            let face = &faces[usize::from(bold)];
            let c = fonts::drawable(face, c);
            let scale = px_scale(face, metrics.em);
            let glyph = face.glyph_id(c).with_scale_and_position(scale, point(0.0, metrics.baseline));
            let mut dots = Vec::new();
            if let Some(outline) = face.outline_glyph(glyph) {
                let b = outline.px_bounds();
                let (bx, by) = (b.min.x as i32, b.min.y as i32);
                outline.draw(|x, y, coverage| {
                    // A thermal dot is either printed or not: half coverage or more prints.
                    if coverage >= 0.5 {
                        dots.push((bx + x as i32, by + y as i32));
                    }
                });
            }
            dots
        })
    }
}

/// The `ab_glyph` scale for an em of `em` pixels (its scale is the ascent-to-descent height).
fn px_scale(face: &FontRef<'_>, em: f32) -> PxScale {
    let units = face.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * face.height_unscaled() / units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_slip_is_still_a_picture() {
        let png = render_png(&[], Width::Mm58);
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (384, 1));
    }
}
