//! Customer slips: the slip model, its layout, and the bytes a receipt printer needs.
//!
//! A [`Slip`] is built from a sale; [`layout`] turns it into width-aware blocks that every
//! renderer shares: plain text (the on-screen preview), ESC/POS bytes ([`escpos`]), a PDF
//! ([`pdf`], on an 80 mm roll or A4) and a picture of the printout ([`raster`], a PNG). Text is
//! encoded by Kasa itself for the printer's code page ([`codepage`]) and the page is selected
//! with the number that printer model uses; [`decode`] reads ESC/POS back into the printed text
//! and the styled rows, for the virtual printer and for tests. [`driver`] carries bytes to
//! printers. The PDF and the picture draw DejaVu Sans Mono, compiled in (`fonts/`).

pub mod codepage;
pub mod decode;
pub mod driver;
pub mod escpos;
mod fonts;
pub mod layout;
pub mod pdf;
pub mod raster;
mod sheet;
pub mod slip;
mod tables;

pub use codepage::{CodePage, Model};
pub use layout::{Block, Width};
pub use slip::{Slip, StoreInfo};

#[cfg(test)]
mod tests;
