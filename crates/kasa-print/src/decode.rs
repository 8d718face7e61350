//! Reading ESC/POS bytes back into the text a printer would print.
//!
//! Understands every command Kasa sends, and skips their parameters; printable bytes are decoded
//! with the page selected by the last `ESC t n` as the emulated model numbers it (Epson TM by
//! default). A QR code reads as `[QR] data`, like the text layout shows it.

use crate::codepage::{CodePage, Model};

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

/// Decodes text and events as `model` would.
pub fn parse(bytes: &[u8], model: Model) -> (String, Vec<Event>) {
    let mut page = CodePage::Cp437;
    let mut text = String::new();
    let mut events = Vec::new();
    let mut i = 0;
    let arg = |i: usize| bytes.get(i).copied().unwrap_or(0);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            0x1B => {
                let cmd = arg(i + 1);
                i += match cmd {
                    b'@' => {
                        page = CodePage::Cp437;
                        2
                    }
                    b't' => {
                        let n = arg(i + 2);
                        page = model.page_for_number(n).unwrap_or(CodePage::Cp437);
                        events.push(Event::Page(n));
                        3
                    }
                    b'p' => {
                        events.push(Event::Drawer);
                        5
                    }
                    b'!' | b'E' | b'-' | b'G' | b'M' | b'a' | b'd' | b'3' | b'V' | b'{' | b'R' | b'J' => 3,
                    b'2' => 2,
                    _ => 2,
                };
            }
            0x1D => {
                let cmd = arg(i + 1);
                i += match cmd {
                    b'V' => {
                        events.push(Event::Cut);
                        let m = arg(i + 2);
                        // GS V 65|66 n (feed, then cut) has a parameter; GS V m does not.
                        if m == b'A' || m == b'B' { 4 } else { 3 }
                    }
                    b'(' if arg(i + 2) == b'k' => {
                        let len = usize::from(arg(i + 3)) + 256 * usize::from(arg(i + 4));
                        let body = bytes.get(i + 5..i + 5 + len).unwrap_or(&[]);
                        // QR store data: cn=49 fn=80 m=48, then the data.
                        if body.len() >= 3 && body[0] == 49 && body[1] == 80 {
                            let data = String::from_utf8_lossy(&body[3..]).into_owned();
                            text.push_str("[QR] ");
                            text.push_str(&data);
                            text.push('\n');
                            events.push(Event::Qr(data));
                        }
                        5 + len
                    }
                    b'!' | b'B' | b'b' | b'h' | b'w' | b'H' | b'f' => 3,
                    _ => 2,
                };
            }
            0x10 if arg(i + 1) == 0x04 => {
                events.push(Event::Status(arg(i + 2)));
                i += 3;
            }
            b'\n' => {
                text.push('\n');
                i += 1;
            }
            0x00..=0x1F | 0x7F => i += 1,
            _ => {
                text.push(page.char_of(b).unwrap_or('\u{FFFD}'));
                i += 1;
            }
        }
    }
    (text, events)
}

/// The printed text of `bytes` as `model` would print it.
pub fn printed_text_on(bytes: &[u8], model: Model) -> String {
    parse(bytes, model).0
}
