//! The laid-out slip placed on paper in printer dots, shared by the picture and the PDF.
//!
//! The geometry is a 203-dpi thermal printer's in Font A: a column is 12 dots wide, a glyph cell
//! 24 dots high, and rows advance by the default line spacing of 30 dots (3.75 mm). A big row
//! doubles the cell to 24 × 48 dots; its row advances 48 dots, because a printer stretches a
//! line spacing smaller than the characters to their height. A QR code has 5-dot modules, the
//! size `escpos::render` asks the printer for, and a quiet zone of 4 modules around it so it
//! scans from the picture too; a symbol too wide for the paper gets smaller modules, and data
//! no QR code can hold is shown as its `[QR] data` text, wrapped to the width.

use std::borrow::Cow;

use qrcode::{Color, EcLevel, QrCode};

use crate::layout::{Block, wrap};

/// Width of a column of normal-size text, in dots.
pub(crate) const COLUMN_DOTS: u32 = 12;
/// Height of a normal-size glyph cell, in dots.
pub(crate) const CELL_DOTS: u32 = 24;
/// Distance from one normal row to the next, in dots.
pub(crate) const LINE_DOTS: u32 = 30;
/// Side of a QR module, in dots.
pub(crate) const QR_MODULE_DOTS: u8 = 5;
/// Width of the light border around a QR symbol, in modules.
pub(crate) const QR_QUIET_MODULES: u32 = 4;

/// The slip on paper.
#[derive(Debug)]
pub(crate) struct Sheet<'a> {
    /// Rows from the top.
    pub rows: Vec<Row<'a>>,
    /// Printable width, in dots.
    pub width: u32,
    /// Total height, in dots.
    pub height: u32,
}

/// One row and where it goes.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    /// Distance of the row's top from the top of the slip, in dots.
    pub top: u32,
    /// Height, in dots.
    pub height: u32,
    /// What the row shows.
    pub mark: Mark<'a>,
}

/// What a row shows.
#[derive(Debug)]
pub(crate) enum Mark<'a> {
    /// Text from the left edge, one character per column (two when big).
    Text {
        /// The characters.
        text: Cow<'a, str>,
        /// Emphasised.
        bold: bool,
        /// Double width and height.
        big: bool,
    },
    /// A QR symbol, with its quiet zone filling the row's height.
    Qr(QrSymbol),
}

/// A QR symbol's module grid and its size on paper.
#[derive(Debug)]
pub(crate) struct QrSymbol {
    /// Modules per side.
    pub modules: u32,
    dark: Vec<bool>,
    /// Side of a module, in dots.
    pub module_dots: u32,
}

impl QrSymbol {
    /// The symbol of `data` at the error correction `escpos::render` asks for, when one can
    /// hold it.
    pub fn new(data: &str) -> Option<QrSymbol> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
        let modules = u32::try_from(code.width()).ok()?;
        let dark = code.to_colors().into_iter().map(|c| c == Color::Dark).collect();
        Some(QrSymbol { modules, dark, module_dots: u32::from(QR_MODULE_DOTS) })
    }

    /// Offset of the symbol's first module from the row's top left corner, in dots.
    pub fn inset(&self) -> u32 {
        QR_QUIET_MODULES * self.module_dots
    }

    /// Side of the symbol with its quiet zone, in modules.
    fn span(&self) -> u32 {
        self.modules + 2 * QR_QUIET_MODULES
    }

    /// Runs of dark modules on each line of the grid: `(line, first module, length)`.
    pub fn dark_runs(&self) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
        let n = self.modules as usize;
        self.dark.chunks(n.max(1)).zip(0..).flat_map(move |(line, y)| {
            let mut runs = Vec::new();
            let mut start = None;
            for (x, &dark) in line.iter().chain([&false]).enumerate() {
                match (dark, start) {
                    (true, None) => start = Some(x),
                    (false, Some(s)) => {
                        runs.push((y, s as u32, (x - s) as u32));
                        start = None;
                    }
                    _ => {}
                }
            }
            runs
        })
    }
}

/// Columns taken by the widest text row (a big character takes two), or `None` without text.
pub(crate) fn widest(blocks: &[Block]) -> Option<usize> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Text { text, big, .. } => Some(text.chars().count() * if *big { 2 } else { 1 }),
            Block::Qr(_) => None,
        })
        .max()
}

/// Places `blocks` on paper `columns` normal characters wide.
pub(crate) fn place(blocks: &[Block], columns: usize) -> Sheet<'_> {
    let width = u32::try_from(columns).unwrap_or(u32::MAX / COLUMN_DOTS).max(1) * COLUMN_DOTS;
    let mut rows = Vec::with_capacity(blocks.len());
    let mut top = 0;
    for b in blocks {
        match b {
            Block::Text { text, bold, big } => {
                let height = if *big { (2 * CELL_DOTS).max(LINE_DOTS) } else { LINE_DOTS };
                rows.push(Row { top, height, mark: Mark::Text { text: Cow::Borrowed(text), bold: *bold, big: *big } });
                top += height;
            }
            Block::Qr(data) => match QrSymbol::new(data).and_then(|q| fit(q, width)) {
                Some(q) => {
                    let height = q.span() * q.module_dots;
                    rows.push(Row { top, height, mark: Mark::Qr(q) });
                    top += height;
                }
                None => {
                    for line in wrap(&format!("[QR] {data}"), columns.max(1)) {
                        let text = Cow::Owned(line);
                        rows.push(Row { top, height: LINE_DOTS, mark: Mark::Text { text, bold: false, big: false } });
                        top += LINE_DOTS;
                    }
                }
            },
        }
    }
    Sheet { rows, width, height: top }
}

/// The symbol with modules small enough for its quiet zone to fit in `width` dots, if a
/// module of at least one dot does.
fn fit(mut q: QrSymbol, width: u32) -> Option<QrSymbol> {
    q.module_dots = q.module_dots.min(width / q.span());
    (q.module_dots > 0).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_printer_geometry() {
        let blocks = vec![
            Block::Text { text: "   BÜYÜK".into(), bold: true, big: true },
            Block::Text { text: "satır".into(), bold: false, big: false },
            Block::Qr("https://example.com/s/1".into()),
            Block::Text { text: "son".into(), bold: false, big: false },
        ];
        let sheet = place(&blocks, 48);
        assert_eq!(sheet.width, 576);
        let tops: Vec<u32> = sheet.rows.iter().map(|r| r.top).collect();
        let Mark::Qr(q) = &sheet.rows[2].mark else { panic!("no QR row") };
        assert_eq!(q.module_dots, 5);
        assert_eq!(tops, [0, 48, 78, 78 + (q.modules + 8) * 5]);
        assert_eq!(sheet.height, tops[3] + 30);
        assert_eq!(widest(&blocks), Some(16));
        // Every dark module is in exactly one run.
        let dark: u32 = q.dark_runs().map(|(_, _, n)| n).sum();
        assert_eq!(dark as usize, q.dark.iter().filter(|d| **d).count());
    }

    #[test]
    fn a_qr_code_that_cannot_fit_is_shown_as_text() {
        let long = "x".repeat(3000);
        let blocks = [Block::Qr(long)];
        let sheet = place(&blocks, 32);
        assert!(sheet.rows.len() > 1);
        assert!(matches!(&sheet.rows[0].mark, Mark::Text { text, .. } if text.as_ref() == "[QR]"));
        // A big symbol on narrow paper gets smaller modules.
        let blocks = [Block::Qr("y".repeat(400))];
        let sheet = place(&blocks, 32);
        let Mark::Qr(q) = &sheet.rows[0].mark else { panic!("no QR row") };
        assert!(q.module_dots < 5 && (q.modules + 8) * q.module_dots <= 384, "{q:?}");
    }
}
