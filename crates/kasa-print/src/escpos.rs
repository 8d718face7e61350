//! Rendering laid-out slips to ESC/POS bytes.
//!
//! The `escpos` crate builds the commands it gets right (initialise, emphasis, character size,
//! QR code, cut); Kasa adds what it must own: the code page selection with the model's own
//! number, the text bytes encoded for that page, the feed before the cut each model needs, and
//! a complete cash-drawer pulse (`ESC p m t1 t2`).

use std::cell::RefCell;
use std::rc::Rc;

use escpos::driver::Driver;
use escpos::printer::Printer;
use escpos::utils::{Protocol, QRCodeCorrectionLevel, QRCodeModel, QRCodeOption};

use crate::codepage::{CodePage, Model};
use crate::layout::Block;
use crate::sheet::QR_MODULE_DOTS;

/// How to print on one printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// The model's capabilities.
    pub model: Model,
    /// The code page to print in.
    pub page: CodePage,
    /// The `ESC t` number, when configured for this printer instead of the model's.
    pub page_number_override: Option<u8>,
    /// Cut the paper at the end.
    pub cut: bool,
    /// Open the cash drawer after printing.
    pub open_drawer: bool,
}

impl Setup {
    /// A setup for `model` in `page`, cutting, without the drawer.
    pub fn new(model: Model, page: CodePage) -> Setup {
        Setup { model, page, page_number_override: None, cut: true, open_drawer: false }
    }

    /// The `ESC t n` number to send.
    pub fn page_number(&self) -> Result<u8, RenderError> {
        self.page_number_override
            .or_else(|| self.model.page_number(self.page))
            .ok_or(RenderError::PageUnsupported { model: self.model.name, page: self.page })
    }
}

/// Why a slip could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The model has no number for the page and none was configured.
    #[error(
        "the {model} has no code page {page:?}; choose another page or set its ESC t number in the printer settings"
    )]
    PageUnsupported {
        /// Model name.
        model: &'static str,
        /// Page asked for.
        page: CodePage,
    },
    /// The command builder refused something.
    #[error("ESC/POS command error: {0}")]
    Escpos(String),
}

impl From<escpos::errors::PrinterError> for RenderError {
    fn from(e: escpos::errors::PrinterError) -> Self {
        RenderError::Escpos(e.to_string())
    }
}

/// A driver that collects the bytes in memory.
#[derive(Clone, Default)]
struct Collect(Rc<RefCell<Vec<u8>>>);

impl Driver for Collect {
    fn name(&self) -> String {
        "memory".into()
    }
    fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(())
    }
    fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
        Ok(0)
    }
    fn flush(&self) -> escpos::errors::Result<()> {
        Ok(())
    }
}

/// `ESC p 0 t1 t2`: a pulse on drawer pin 2, on for 50 ms and off for 500 ms (units of 2 ms).
pub const DRAWER_KICK: [u8; 5] = [0x1B, b'p', 0, 25, 250];

/// Renders blocks to the bytes of one print job.
pub fn render(blocks: &[Block], setup: &Setup) -> Result<Vec<u8>, RenderError> {
    Renderer::new(setup)?.render(blocks, setup.open_drawer)
}

/// The bytes of one command, as the `escpos` crate builds it.
fn command(build: impl FnOnce(&mut Printer<Collect>) -> escpos::errors::Result<()>) -> Result<Vec<u8>, RenderError> {
    let out = Collect::default();
    let mut p = Printer::new(out.clone(), Protocol::default(), None);
    build(&mut p)?;
    p.print()?;
    let bytes = out.0.borrow().clone();
    Ok(bytes)
}

/// A printer's commands, built once by the `escpos` crate for its setup (the start of a job
/// with its code page, emphasis and size on and off, the feed and cut, the drawer pulse), so a
/// job is only its text encoded for the page between them. A QR code is built per job.
#[derive(Debug, Clone)]
pub struct Renderer {
    start: Vec<u8>,
    bold_on: Vec<u8>,
    bold_off: Vec<u8>,
    big_on: Vec<u8>,
    big_off: Vec<u8>,
    end: Vec<u8>,
    page: CodePage,
}

impl Renderer {
    /// The commands of `setup` (its `open_drawer` is chosen per job in [`Renderer::render`]).
    pub fn new(setup: &Setup) -> Result<Renderer, RenderError> {
        let n = setup.page_number()?;
        let (cut, feed) = (setup.cut && setup.model.has_cutter, setup.model.cut_feed);
        Ok(Renderer {
            start: command(|p| p.init()?.custom(&[0x1B, b't', n]).map(|_| ()))?,
            bold_on: command(|p| p.bold(true).map(|_| ()))?,
            bold_off: command(|p| p.bold(false).map(|_| ()))?,
            big_on: command(|p| p.size(2, 2).map(|_| ()))?,
            big_off: command(|p| p.reset_size().map(|_| ()))?,
            end: command(|p| if cut { p.feeds(feed)?.partial_cut().map(|_| ()) } else { p.feeds(feed).map(|_| ()) })?,
            page: setup.page,
        })
    }

    /// The bytes of one job: the blocks, then the feed (and cut), then the drawer pulse when
    /// `open_drawer`.
    pub fn render(&self, blocks: &[Block], open_drawer: bool) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::with_capacity(self.start.len() + blocks.len() * 56 + self.end.len() + 8);
        out.extend_from_slice(&self.start);
        for b in blocks {
            match b {
                Block::Text { text, bold, big } => {
                    if *bold {
                        out.extend_from_slice(&self.bold_on);
                    }
                    if *big {
                        out.extend_from_slice(&self.big_on);
                    }
                    self.page.encode_into(text, &mut out);
                    out.push(b'\n');
                    if *big {
                        out.extend_from_slice(&self.big_off);
                    }
                    if *bold {
                        out.extend_from_slice(&self.bold_off);
                    }
                }
                Block::Qr(data) => {
                    let option = QRCodeOption::new(QRCodeModel::Model2, QR_MODULE_DOTS, QRCodeCorrectionLevel::M);
                    out.extend_from_slice(&command(|p| p.qrcode_option(data, option).map(|_| ()))?);
                }
            }
        }
        out.extend_from_slice(&self.end);
        if open_drawer {
            out.extend_from_slice(&DRAWER_KICK);
        }
        Ok(out)
    }
}

/// The bytes that only open the cash drawer.
pub fn drawer_only() -> Vec<u8> {
    let mut v = vec![0x1B, b'@'];
    v.extend_from_slice(&DRAWER_KICK);
    v
}
