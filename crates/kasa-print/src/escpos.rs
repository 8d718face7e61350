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
    let n = setup.page_number()?;
    let out = Collect::default();
    let mut p = Printer::new(out.clone(), Protocol::default(), None);
    p.init()?.custom(&[0x1B, b't', n])?;
    let mut text = Vec::with_capacity(64);
    for b in blocks {
        match b {
            Block::Text { text: t, bold, big } => {
                if *bold {
                    p.bold(true)?;
                }
                if *big {
                    p.size(2, 2)?;
                }
                text.clear();
                setup.page.encode_into(t, &mut text);
                text.push(b'\n');
                p.custom(&text)?;
                if *big {
                    p.reset_size()?;
                }
                if *bold {
                    p.bold(false)?;
                }
            }
            Block::Qr(data) => {
                p.qrcode_option(
                    data,
                    QRCodeOption::new(QRCodeModel::Model2, QR_MODULE_DOTS, QRCodeCorrectionLevel::M),
                )?;
            }
        }
    }
    if setup.cut && setup.model.has_cutter {
        p.feeds(setup.model.cut_feed)?.partial_cut()?;
    } else {
        p.feeds(setup.model.cut_feed)?;
    }
    if setup.open_drawer {
        p.custom(&DRAWER_KICK)?;
    }
    p.print()?;
    let bytes = out.0.borrow().clone();
    Ok(bytes)
}

/// The bytes that only open the cash drawer.
pub fn drawer_only() -> Vec<u8> {
    let mut v = vec![0x1B, b'@'];
    v.extend_from_slice(&DRAWER_KICK);
    v
}
