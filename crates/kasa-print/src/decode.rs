//! Reading ESC/POS bytes back into the text a printer would print, and into styled rows.
//!
//! Understands every command Kasa sends, and skips their parameters; printable bytes are decoded
//! with the page selected by the last `ESC t n` as the emulated model numbers it (Epson TM by
//! default). A QR code reads as `[QR] data`, like the text layout shows it. [`blocks`] keeps
//! the emphasis and character size of each row too, giving back the [`Block`]s a slip was
//! rendered from, for the virtual printer's pictures.

use crate::codepage::{CodePage, Model};
use crate::layout::Block;

/// The printed text of `bytes` on an Epson TM.
pub fn printed_text(bytes: &[u8]) -> String {
    printed_text_on(bytes, Model::EPSON_TM)
}

/// Printer events other than text, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Paper cut (`GS V`).
    Cut,
    /// Drawer pulse (`ESC p`).
    Drawer,
    /// A QR code.
    Qr(String),
    /// Status request (`DLE EOT n`).
    Status(u8),
    /// A code page was selected (`ESC t n`).
    Page(u8),
}

/// One command or printable byte of an ESC/POS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A byte to print in the current code page.
    Print(u8),
    /// `LF`: print the line and start the next.
    LineFeed,
    /// `ESC @`: initialise.
    Init,
    /// `ESC t n`: select a code page.
    SelectPage(u8),
    /// `ESC p m t1 t2`: drawer pulse.
    Drawer,
    /// `ESC E n`: emphasis on (bit 0 set) or off.
    Emphasis(u8),
    /// `ESC ! n`: print mode (bit 3 emphasis, bits 4 and 5 double height and width).
    PrintMode(u8),
    /// `GS ! n`: character size (0 is normal).
    Size(u8),
    /// `ESC d n` or `ESC J n`: print and feed paper.
    Feed,
    /// `GS V`: cut.
    Cut,
    /// `GS ( k` storing QR code data.
    QrStore(&'a [u8]),
    /// `GS ( k` printing the stored QR code.
    QrPrint,
    /// `DLE EOT n`: real-time status request.
    Status(u8),
    /// Anything else, skipped with its parameters.
    Other,
}

/// Splits `bytes` into commands and printable bytes.
fn tokens(bytes: &[u8]) -> impl Iterator<Item = Token<'_>> {
    let mut i = 0;
    let arg = move |i: usize| bytes.get(i).copied().unwrap_or(0);
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        let (token, len) = match b {
            0x1B => match arg(i + 1) {
                b'@' => (Token::Init, 2),
                b't' => (Token::SelectPage(arg(i + 2)), 3),
                b'p' => (Token::Drawer, 5),
                b'E' => (Token::Emphasis(arg(i + 2)), 3),
                b'!' => (Token::PrintMode(arg(i + 2)), 3),
                b'd' | b'J' => (Token::Feed, 3),
                b'-' | b'G' | b'M' | b'a' | b'3' | b'V' | b'{' | b'R' => (Token::Other, 3),
                _ => (Token::Other, 2),
            },
            0x1D => match arg(i + 1) {
                // GS V 65|66 n (feed, then cut) has a parameter; GS V m does not.
                b'V' => (Token::Cut, if matches!(arg(i + 2), b'A' | b'B') { 4 } else { 3 }),
                b'(' if arg(i + 2) == b'k' => {
                    let len = usize::from(arg(i + 3)) + 256 * usize::from(arg(i + 4));
                    let body = bytes.get(i + 5..i + 5 + len).unwrap_or(&[]);
                    // QR code (cn = 49): store data is fn = 80 m = 48 then the data, print fn = 81.
                    let token = match body {
                        [49, 80, _, data @ ..] => Token::QrStore(data),
                        [49, 81, ..] => Token::QrPrint,
                        _ => Token::Other,
                    };
                    (token, 5 + len)
                }
                b'!' => (Token::Size(arg(i + 2)), 3),
                b'B' | b'b' | b'h' | b'w' | b'H' | b'f' => (Token::Other, 3),
                _ => (Token::Other, 2),
            },
            0x10 if arg(i + 1) == 0x04 => (Token::Status(arg(i + 2)), 3),
            b'\n' => (Token::LineFeed, 1),
            0x00..=0x1F | 0x7F => (Token::Other, 1),
            _ => (Token::Print(b), 1),
        };
        i += len;
        Some(token)
    })
}

/// Decodes text and events as `model` would.
pub fn parse(bytes: &[u8], model: Model) -> (String, Vec<Event>) {
    let mut page = CodePage::Cp437;
    let mut text = String::new();
    let mut events = Vec::new();
    for token in tokens(bytes) {
        match token {
            Token::Init => page = CodePage::Cp437,
            Token::SelectPage(n) => {
                page = model.page_for_number(n).unwrap_or(CodePage::Cp437);
                events.push(Event::Page(n));
            }
            Token::Drawer => events.push(Event::Drawer),
            Token::Cut => events.push(Event::Cut),
            Token::QrStore(data) => {
                let data = String::from_utf8_lossy(data).into_owned();
                text.push_str("[QR] ");
                text.push_str(&data);
                text.push('\n');
                events.push(Event::Qr(data));
            }
            Token::Status(n) => events.push(Event::Status(n)),
            Token::LineFeed => text.push('\n'),
            Token::Print(b) => text.push(page.char_of(b).unwrap_or('\u{FFFD}')),
            Token::Emphasis(_) | Token::PrintMode(_) | Token::Size(_) | Token::Feed | Token::QrPrint | Token::Other => {
            }
        }
    }
    (text, events)
}

/// The printed text of `bytes` as `model` would print it.
pub fn printed_text_on(bytes: &[u8], model: Model) -> String {
    parse(bytes, model).0
}

/// The rows `bytes` print on `model`, with their style.
///
/// A row ends at each `LF`; it is bold when emphasis (`ESC E`, or `ESC !` bit 3) was on for
/// any of its characters or its line feed, and big when a character size other than normal
/// (`GS !`, or `ESC !` double height or width) was. A QR code becomes a [`Block::Qr`] where it is
/// printed. Paper feeds and the cut are not rows, but, like a QR code, they end an unfinished
/// row; so does the end of the bytes. Characters are decoded as in [`parse`].
pub fn blocks(bytes: &[u8], model: Model) -> Vec<Block> {
    let mut out = Vec::new();
    let mut page = CodePage::Cp437;
    let mut emphasis = false;
    let mut mode = 0_u8;
    let mut size = 0_u8;
    let mut qr: Option<String> = None;
    let mut row = Row::default();
    for token in tokens(bytes) {
        let bold = emphasis || mode & 0x08 != 0;
        let big = size != 0 || mode & 0x30 != 0;
        match token {
            Token::Print(b) => row.push(page.char_of(b).unwrap_or('\u{FFFD}'), bold, big),
            Token::LineFeed => {
                row.bold |= bold;
                row.big |= big;
                out.push(std::mem::take(&mut row).block());
            }
            Token::Init => {
                page = CodePage::Cp437;
                (emphasis, mode, size) = (false, 0, 0);
            }
            Token::SelectPage(n) => page = model.page_for_number(n).unwrap_or(CodePage::Cp437),
            Token::Emphasis(n) => emphasis = n & 1 != 0,
            Token::PrintMode(n) => mode = n,
            Token::Size(n) => size = n,
            Token::Feed | Token::Cut => row.finish(&mut out),
            Token::QrStore(data) => qr = Some(String::from_utf8_lossy(data).into_owned()),
            Token::QrPrint => {
                row.finish(&mut out);
                if let Some(data) = &qr {
                    out.push(Block::Qr(data.clone()));
                }
            }
            Token::Drawer | Token::Status(_) | Token::Other => {}
        }
    }
    row.finish(&mut out);
    out
}

/// The row being received.
#[derive(Debug, Default)]
struct Row {
    text: String,
    bold: bool,
    big: bool,
}

impl Row {
    fn push(&mut self, c: char, bold: bool, big: bool) {
        self.text.push(c);
        self.bold |= bold;
        self.big |= big;
    }

    fn block(self) -> Block {
        Block::Text { text: self.text, bold: self.bold, big: self.big }
    }

    /// Ends the row if it has characters.
    fn finish(&mut self, out: &mut Vec<Block>) {
        if !self.text.is_empty() {
            out.push(std::mem::take(self).block());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_keep_their_style() {
        let mut bytes = vec![0x1B, b'@', 0x1B, b't', 13];
        bytes.extend_from_slice(b"\x1bE\x01\x1d!\x11AB\n\x1d!\x00\x1bE\x00");
        bytes.extend_from_slice(&[b'C', CodePage::Cp857.byte_of('ş').unwrap(), b'\n', b'\n']);
        bytes.extend_from_slice(b"\x1b!\x08bold\n\x1b!\x00tail\x1bd\x03");
        assert_eq!(
            blocks(&bytes, Model::EPSON_TM),
            [
                Block::Text { text: "AB".into(), bold: true, big: true },
                Block::Text { text: "Cş".into(), bold: false, big: false },
                Block::Text { text: String::new(), bold: false, big: false },
                Block::Text { text: "bold".into(), bold: true, big: false },
                Block::Text { text: "tail".into(), bold: false, big: false },
            ]
        );
    }
}
