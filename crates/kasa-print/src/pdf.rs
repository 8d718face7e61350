//! The slip as a PDF, for customers who want it by e-mail and for printing on office paper.
//!
//! Rows are placed as the printer places them ([`crate::sheet`]) and written as real text in
//! DejaVu Sans Mono, so the columns line up, Turkish letters show, and the text can be
//! searched and copied. Bold rows use the bold face and big rows twice the size; a QR code is
//! drawn from filled squares. Only the glyphs the slip uses are embedded: each face is subset
//! for the document, which keeps a slip to a few tens of kilobytes.
//!
//! [`Paper::Roll80`] is a page 80 mm wide and as long as the slip, at the printer's own scale;
//! [`Paper::A4`] puts the rows at the top left of A4 pages, larger, continuing on further pages
//! when the slip is longer than one.
//!
//! Every character sits on the slip's column grid, so `pdftotext -layout -fixed W`, with `W` the
//! column width in points (4.26 on the roll, 6 on A4), gives back the rows as laid out; a big
//! row's words come back at the columns they cover, each letter counted once.

use std::collections::BTreeSet;

use ab_glyph::{Font, FontRef};
use printpdf::{
    FontId, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFont, PdfFontHandle, PdfPage, PdfParseErrorSeverity,
    PdfSaveOptions, Point, Pt, Rect, TextItem, WindingOrder,
};

use crate::fonts;
use crate::layout::Block;
use crate::sheet::{Mark, place, widest};

/// The paper a PDF slip is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Paper {
    /// A4 pages, the slip at the top left.
    #[serde(rename = "a4")]
    A4,
    /// One page 80 mm wide, as long as the slip.
    #[serde(rename = "roll80")]
    Roll80,
}

/// Why a PDF could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The compiled-in font could not be read.
    #[error("the slip font could not be loaded ({0}); this Kasa build is damaged: reinstall it")]
    Font(String),
    /// The PDF writer reported an error.
    #[error("the PDF could not be written ({0}); print the slip on paper instead and report this to support")]
    Write(String),
}

/// Points per printer dot on the roll: the printer's 203 dots per inch.
const ROLL_PT_PER_DOT: f32 = 72.0 / 203.0;
/// Points per printer dot on A4: about 10 pt text, easy to read on a full page.
const A4_PT_PER_DOT: f32 = 0.5;
/// Margin around the slip on the roll.
const ROLL_MARGIN: Mm = Mm(4.0);
/// Margin to the left, above and below the slip on A4.
const A4_MARGIN: Mm = Mm(20.0);
/// A4 page width.
const A4_WIDTH: Mm = Mm(210.0);
/// A4 page height.
const A4_HEIGHT: Mm = Mm(297.0);
/// Default columns of a slip without text (80 mm).
const DEFAULT_COLUMNS: usize = 48;

/// Renders `blocks` as a PDF on `paper`.
pub fn render_pdf(blocks: &[Block], paper: Paper) -> Result<Vec<u8>, PdfError> {
    render(blocks, paper, true)
}

/// Renders `blocks` as a PDF on `paper`, embedding the faces whole unless `subset`.
pub(crate) fn render(blocks: &[Block], paper: Paper, subset: bool) -> Result<Vec<u8>, PdfError> {
    let sheet = place(blocks, widest(blocks).unwrap_or(DEFAULT_COLUMNS));
    let faces = [fonts::face(false), fonts::face(true)];
    let metrics = fonts::cell_metrics();

    // The text of each row as drawn, and the characters each face must carry.
    let mut used: [BTreeSet<char>; 2] = Default::default();
    let texts: Vec<Option<String>> = sheet
        .rows
        .iter()
        .map(|row| match &row.mark {
            Mark::Text { text, bold, .. } => {
                let face = &faces[usize::from(*bold)];
                let text: String = text.chars().map(|c| fonts::drawable(face, c)).collect();
                used[usize::from(*bold)].extend(text.chars());
                Some(text)
            }
            Mark::Qr(_) => None,
        })
        .collect();

    let mut doc = PdfDocument::new("Slip");
    let mut handles = [None, None];
    for bold in [false, true] {
        let chars = &used[usize::from(bold)];
        if chars.is_empty() {
            continue;
        }
        let full = fonts::bytes(bold);
        let program = if subset { subset_font(full, &faces[usize::from(bold)], chars) } else { None };
        let program = program.as_deref().unwrap_or(full);
        let name = if bold { "DejaVuSansMono-Bold" } else { "DejaVuSansMono" };
        let parsed = ParsedFont::from_bytes(program, 0, &mut Vec::new()).ok_or_else(|| PdfError::Font(name.into()))?;
        // The font's name in the PDF; a subset one is tagged as the PDF standard asks.
        let id = match (program.len() < full.len(), bold) {
            (true, false) => FontId(format!("KASAAA+{name}")),
            (true, true) => FontId(format!("KASAAB+{name}")),
            (false, _) => FontId(name.into()),
        };
        doc.resources.fonts.map.insert(id.clone(), PdfFont::new(parsed));
        handles[usize::from(bold)] = Some(PdfFontHandle::External(id));
    }

    let pt_per_dot = scale(paper, sheet.width);
    let (page_w, page_h, margin) = match paper {
        Paper::Roll80 => {
            let margin = Pt::from(ROLL_MARGIN).0;
            let width = Pt::from(Mm(80.0)).0.max(sheet.width as f32 * pt_per_dot + 2.0 * margin);
            (width, sheet.height as f32 * pt_per_dot + 2.0 * margin, margin)
        }
        Paper::A4 => (Pt::from(A4_WIDTH).0, Pt::from(A4_HEIGHT).0, Pt::from(A4_MARGIN).0),
    };
    let left = match paper {
        Paper::Roll80 => (page_w - sheet.width as f32 * pt_per_dot) / 2.0,
        Paper::A4 => margin,
    };
    // The rows that fit on a page, in dots.
    let room = ((page_h - 2.0 * margin) / pt_per_dot).max(1.0) as u32;

    let mut pages = Vec::new();
    let mut ops = Vec::new();
    let mut page_top = 0;
    for (row, text) in sheet.rows.iter().zip(texts) {
        if row.top > page_top && row.top + row.height - page_top > room {
            pages.push(PdfPage::new(Mm::from(Pt(page_w)), Mm::from(Pt(page_h)), std::mem::take(&mut ops)));
            page_top = row.top;
        }
        // Distance from the page's bottom edge of a point `dots` below the row's top.
        let y = |dots: f32| page_h - margin - ((row.top - page_top) as f32 + dots) * pt_per_dot;
        match &row.mark {
            Mark::Text { bold, big, .. } => {
                let (Some(text), Some(font)) = (text, handles[usize::from(*bold)].clone()) else { continue };
                let scale = if *big { 2.0 } else { 1.0 };
                ops.extend([
                    Op::StartTextSection,
                    Op::SetFont { font, size: Pt(metrics.em * scale * pt_per_dot) },
                    Op::SetTextCursor { pos: Point { x: Pt(left), y: Pt(y(metrics.baseline * scale)) } },
                    Op::ShowText { items: vec![TextItem::Text(text)] },
                    Op::EndTextSection,
                ]);
            }
            Mark::Qr(q) => {
                let m = q.module_dots as f32;
                let inset = q.inset() as f32;
                for (line, x, n) in q.dark_runs() {
                    ops.push(Op::DrawRectangle {
                        rectangle: Rect {
                            x: Pt(left + (inset + x as f32 * m) * pt_per_dot),
                            y: Pt(y(inset + (line + 1) as f32 * m)),
                            width: Pt(n as f32 * m * pt_per_dot),
                            height: Pt(m * pt_per_dot),
                            mode: Some(PaintMode::Fill),
                            winding_order: Some(WindingOrder::NonZero),
                        },
                    });
                }
            }
        }
    }
    pages.push(PdfPage::new(Mm::from(Pt(page_w)), Mm::from(Pt(page_h)), ops));

    // printpdf subsets fonts only when built with its `text_layout` feature, a whole layout
    // engine; the faces were subset above instead, so its own subsetting stays off.
    let options = PdfSaveOptions { optimize: true, subset_fonts: false, secure: true, image_optimization: None };
    let mut warnings = Vec::new();
    let bytes = doc.with_pages(pages).save(&options, &mut warnings);
    if let Some(w) = warnings.iter().find(|w| w.severity == PdfParseErrorSeverity::Error) {
        return Err(PdfError::Write(w.msg.clone()));
    }
    Ok(bytes)
}

/// Points per printer dot for a slip `width` dots wide on `paper`: A4 shrinks a slip too wide
/// for the page.
fn scale(paper: Paper, width: u32) -> f32 {
    match paper {
        Paper::Roll80 => ROLL_PT_PER_DOT,
        Paper::A4 => {
            let room = Pt::from(A4_WIDTH).0 - 2.0 * Pt::from(A4_MARGIN).0;
            A4_PT_PER_DOT.min(room / width.max(1) as f32)
        }
    }
}

/// Width of a normal column, in points, of a slip `columns` wide on `paper`.
#[cfg(test)]
pub(crate) fn column_width(paper: Paper, columns: usize) -> f32 {
    use crate::sheet::COLUMN_DOTS;
    let width = u32::try_from(columns).unwrap_or(u32::MAX / COLUMN_DOTS) * COLUMN_DOTS;
    scale(paper, width) * COLUMN_DOTS as f32
}

/// The font program reduced to the glyphs of `chars` (and `.notdef`), keeping their Unicode
/// mapping; `None` if the subsetter refuses the font.
fn subset_font(program: &[u8], face: &FontRef<'_>, chars: &BTreeSet<char>) -> Option<Vec<u8>> {
    use allsorts::binary::read::ReadScope;
    use allsorts::font_data::FontData;
    use allsorts::subset::{CmapTarget, SubsetProfile, subset};

    let mut ids: Vec<u16> = chars.iter().map(|&c| face.glyph_id(c).0).filter(|&g| g != 0).collect();
    ids.sort_unstable();
    ids.dedup();
    // The subsetter requires `.notdef` first.
    ids.insert(0, 0);
    let data = ReadScope::new(program).read::<FontData<'_>>().ok()?;
    let provider = data.table_provider(0).ok()?;
    subset(&provider, &ids, &SubsetProfile::Pdf, CmapTarget::Unicode).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slips_and_missing_glyphs_still_make_a_pdf() {
        for paper in [Paper::A4, Paper::Roll80] {
            assert!(render_pdf(&[], paper).unwrap().starts_with(b"%PDF-"));
        }
        // DejaVu Sans Mono has no CJK glyphs: they are drawn as `?`, keeping the columns.
        let blocks = [Block::Text { text: "中 ok".into(), bold: false, big: false }];
        assert!(render_pdf(&blocks, Paper::A4).unwrap().starts_with(b"%PDF-"));
        assert_eq!(fonts::drawable(&fonts::face(false), '中'), '?');
    }
}
