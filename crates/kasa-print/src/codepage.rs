//! Code pages and printer models.
//!
//! Kasa encodes text itself: each character is looked up in the selected code page, and a
//! character the page lacks is replaced by a documented fallback ([`fallback`]) rather than
//! by whatever glyph happens to sit at some byte. The page is selected on the printer with
//! `ESC t n`, where `n` is the number *this model* gives the page ([`Model::page_number`]);
//! the numbers differ between vendors and clones.

use serde::{Deserialize, Serialize};

use crate::tables;

/// A single-byte code page whose lower half is ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodePage {
    /// IBM PC 437 (US).
    Cp437,
    /// IBM PC 850 (Western Europe).
    Cp850,
    /// IBM PC 857 (Turkish).
    Cp857,
    /// IBM PC 858 (850 with the euro sign).
    Cp858,
    /// Windows 1252 (Western Europe).
    Cp1252,
    /// Windows 1254 (Turkish).
    Cp1254,
}

impl CodePage {
    /// Every supported page.
    pub const ALL: [CodePage; 6] =
        [CodePage::Cp437, CodePage::Cp850, CodePage::Cp857, CodePage::Cp858, CodePage::Cp1252, CodePage::Cp1254];

    fn upper(self) -> &'static [char; 128] {
        match self {
            CodePage::Cp437 => &tables::CP437,
            CodePage::Cp850 => &tables::CP850,
            CodePage::Cp857 => &tables::CP857,
            CodePage::Cp858 => &tables::CP858,
            CodePage::Cp1252 => &tables::CP1252,
            CodePage::Cp1254 => &tables::CP1254,
        }
    }

    /// The byte for `c`, if this page has it.
    pub fn byte_of(self, c: char) -> Option<u8> {
        if (' '..='~').contains(&c) {
            return Some(c as u8);
        }
        if c == '\0' {
            return None;
        }
        self.upper().iter().position(|&u| u == c).map(|i| 0x80 + i as u8)
    }

    /// The character printed for byte `b`, if the page defines one (control bytes excluded).
    pub fn char_of(self, b: u8) -> Option<char> {
        match b {
            0x20..=0x7E => Some(b as char),
            0x80..=0xFF => Some(self.upper()[usize::from(b - 0x80)]).filter(|&c| c != '\0'),
            _ => None,
        }
    }

    /// Every character the page prints, ASCII included.
    pub fn printable(self) -> impl Iterator<Item = char> {
        (0x20_u8..=0xFF).filter_map(move |b| self.char_of(b))
    }

    /// Encodes `text`, replacing characters the page lacks with their fallback. Line breaks are
    /// kept as LF; other control characters are dropped.
    pub fn encode_into(self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            if c == '\n' {
                out.push(b'\n');
            } else if let Some(b) = self.byte_of(c) {
                out.push(b);
            } else if !c.is_control() {
                for f in fallback(c).chars() {
                    out.push(self.byte_of(f).unwrap_or(b'?'));
                }
            }
        }
    }

    /// Decodes bytes printed on this page (undefined bytes read as U+FFFD).
    pub fn decode(self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| if b == b'\n' { '\n' } else { self.char_of(b).unwrap_or('\u{FFFD}') }).collect()
    }

    /// The text as it will be printed: what `encode_into` then `decode` gives.
    pub fn printed_form(self, text: &str) -> String {
        let mut bytes = Vec::with_capacity(text.len());
        self.encode_into(text, &mut bytes);
        self.decode(&bytes)
    }
}

/// What Kasa prints for a character the selected code page lacks.
///
/// Typographic punctuation becomes its ASCII form, currency signs become their codes, Turkish
/// and other accented letters become their base letter, and anything else becomes `?`. The
/// result is always ASCII, so it prints on every page.
pub fn fallback(c: char) -> &'static str {
    match c {
        '\u{00A0}' | '\u{2007}' | '\u{202F}' | '\u{2009}' => " ",
        '‘' | '’' | '‚' | '′' => "'",
        '“' | '”' | '„' | '″' | '«' | '»' => "\"",
        '–' | '—' | '−' | '‐' => "-",
        '…' => "...",
        '•' | '·' => "*",
        '×' => "x",
        '€' => "EUR",
        '₺' => "TL",
        '£' => "GBP",
        '¥' => "JPY",
        'ı' => "i",
        'İ' => "I",
        'ş' => "s",
        'Ş' => "S",
        'ğ' => "g",
        'Ğ' => "G",
        'ç' => "c",
        'Ç' => "C",
        'ö' => "o",
        'Ö' => "O",
        'ü' => "u",
        'Ü' => "U",
        'â' | 'à' | 'á' | 'ä' | 'å' | 'ã' => "a",
        'Â' | 'À' | 'Á' | 'Ä' | 'Å' | 'Ã' => "A",
        'ê' | 'è' | 'é' | 'ë' => "e",
        'Ê' | 'È' | 'É' | 'Ë' => "E",
        'î' | 'ì' | 'í' | 'ï' => "i",
        'Î' | 'Ì' | 'Í' | 'Ï' => "I",
        'ô' | 'ò' | 'ó' | 'õ' | 'ø' => "o",
        'Ô' | 'Ò' | 'Ó' | 'Õ' | 'Ø' => "O",
        'û' | 'ù' | 'ú' => "u",
        'Û' | 'Ù' | 'Ú' => "U",
        'ñ' => "n",
        'Ñ' => "N",
        'ß' => "ss",
        'æ' => "ae",
        'Æ' => "AE",
        _ => "?",
    }
}

/// How a model selects its character code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSelect {
    /// `ESC t n`.
    EscT,
}

/// A receipt printer model's capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// Configuration id.
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// The `n` of `ESC t n` for each page the model has.
    pub pages: &'static [(CodePage, u8)],
    /// Lines to feed before cutting, so the last printed line clears the cutter.
    pub cut_feed: u8,
    /// Whether the model has a cutter at all.
    pub has_cutter: bool,
}

impl Model {
    /// Epson TM series (TM-T20, TM-T88, TM-m30), per Epson's ESC/POS character code tables.
    pub const EPSON_TM: Model = Model {
        id: "epson-tm",
        name: "Epson TM series",
        pages: &[
            (CodePage::Cp437, 0),
            (CodePage::Cp850, 2),
            (CodePage::Cp857, 13),
            (CodePage::Cp1252, 16),
            (CodePage::Cp858, 19),
            (CodePage::Cp1254, 48),
        ],
        cut_feed: 3,
        has_cutter: true,
    };

    /// Common 58 mm thermal clones (Xprinter, "POS-58" and relatives), which renumber the
    /// Turkish pages.
    pub const GENERIC_58: Model = Model {
        id: "generic-58",
        name: "Generic 58 mm ESC/POS clone",
        pages: &[
            (CodePage::Cp437, 0),
            (CodePage::Cp850, 2),
            (CodePage::Cp1252, 16),
            (CodePage::Cp858, 19),
            (CodePage::Cp857, 61),
            (CodePage::Cp1254, 91),
        ],
        cut_feed: 4,
        has_cutter: false,
    };

    /// Star printers in ESC/POS emulation, which keep Star's own table numbers.
    pub const STAR: Model = Model {
        id: "star",
        name: "Star (ESC/POS emulation)",
        pages: &[(CodePage::Cp437, 1), (CodePage::Cp858, 4), (CodePage::Cp857, 12), (CodePage::Cp1252, 32)],
        cut_feed: 3,
        has_cutter: true,
    };

    /// Every known model.
    pub const ALL: [Model; 3] = [Model::EPSON_TM, Model::GENERIC_58, Model::STAR];

    /// The model with this configuration id.
    pub fn by_id(id: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.id == id)
    }

    /// The `ESC t` number of `page` on this model.
    pub fn page_number(&self, page: CodePage) -> Option<u8> {
        self.pages.iter().find(|(p, _)| *p == page).map(|(_, n)| *n)
    }

    /// The page this model numbers `n`.
    pub fn page_for_number(&self, n: u8) -> Option<CodePage> {
        self.pages.iter().find(|(_, m)| *m == n).map(|(p, _)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printable_character_round_trips_on_every_page() {
        for page in CodePage::ALL {
            let all: String = page.printable().collect();
            let mut bytes = Vec::new();
            page.encode_into(&all, &mut bytes);
            assert_eq!(page.decode(&bytes), all, "{page:?}");
            assert!(all.contains('.') && all.contains('~') && all.contains('\\'), "{page:?} ASCII punctuation");
        }
    }

    #[test]
    fn turkish_text_encodes_exactly_on_turkish_pages() {
        let text = "ŞOFÖR İĞNE ığüşöç Çay 12,50 ₺";
        assert_eq!(CodePage::Cp857.printed_form(text), "ŞOFÖR İĞNE ığüşöç Çay 12,50 TL");
        assert_eq!(CodePage::Cp1254.printed_form(text), "ŞOFÖR İĞNE ığüşöç Çay 12,50 TL");
        // A Western page has no Ş/ı: they fall back to base letters, never to a wrong glyph.
        assert_eq!(CodePage::Cp858.printed_form(text), "SOFÖR IGNE igüsöç Çay 12,50 TL");
        assert_eq!(CodePage::Cp858.printed_form("€ 5"), "€ 5");
        assert_eq!(CodePage::Cp857.printed_form("€ 5 – “ok”"), "EUR 5 - \"ok\"");
    }

    #[test]
    fn model_numbers_differ_by_vendor() {
        assert_eq!(Model::EPSON_TM.page_number(CodePage::Cp857), Some(13));
        assert_eq!(Model::EPSON_TM.page_number(CodePage::Cp1254), Some(48));
        assert_eq!(Model::GENERIC_58.page_number(CodePage::Cp857), Some(61));
        assert_eq!(Model::GENERIC_58.page_number(CodePage::Cp1254), Some(91));
        assert_eq!(Model::STAR.page_number(CodePage::Cp857), Some(12));
        assert_eq!(Model::by_id("star").unwrap().page_for_number(12), Some(CodePage::Cp857));
    }
}

#[cfg(test)]
mod chart_tests {
    use super::CodePage;

    /// Bytes read off the published code page charts, independent of the tables' generation.
    #[test]
    fn known_bytes_of_the_charts() {
        let cases: &[(CodePage, char, u8)] = &[
            (CodePage::Cp857, 'ı', 0x8D),
            (CodePage::Cp857, 'İ', 0x98),
            (CodePage::Cp857, 'Ş', 0x9E),
            (CodePage::Cp857, 'ş', 0x9F),
            (CodePage::Cp857, 'Ğ', 0xA6),
            (CodePage::Cp857, 'ğ', 0xA7),
            (CodePage::Cp857, 'Ç', 0x80),
            (CodePage::Cp857, 'ü', 0x81),
            (CodePage::Cp1254, 'Ğ', 0xD0),
            (CodePage::Cp1254, 'İ', 0xDD),
            (CodePage::Cp1254, 'Ş', 0xDE),
            (CodePage::Cp1254, 'ğ', 0xF0),
            (CodePage::Cp1254, 'ı', 0xFD),
            (CodePage::Cp1254, 'ş', 0xFE),
            (CodePage::Cp1254, '€', 0x80),
            (CodePage::Cp858, '€', 0xD5),
            (CodePage::Cp858, 'ß', 0xE1),
            (CodePage::Cp850, 'ı', 0xD5),
            (CodePage::Cp850, 'Ä', 0x8E),
            (CodePage::Cp1252, '€', 0x80),
            (CodePage::Cp1252, 'ß', 0xDF),
            (CodePage::Cp437, 'é', 0x82),
            (CodePage::Cp437, 'ñ', 0xA4),
        ];
        for (page, c, b) in cases {
            assert_eq!(page.byte_of(*c), Some(*b), "{page:?} {c}");
            assert_eq!(page.char_of(*b), Some(*c), "{page:?} {b:#x}");
        }
        // Bytes a page leaves undefined are never produced.
        for b in [0xD5_u8, 0xE7, 0xF2] {
            assert_eq!(CodePage::Cp857.char_of(b), None);
        }
        for b in [0x81_u8, 0x8D, 0x8F, 0x90, 0x9D] {
            assert_eq!(CodePage::Cp1252.char_of(b), None);
        }
        // ASCII punctuation maps to itself on every page.
        for page in CodePage::ALL {
            for c in " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".chars() {
                assert_eq!(page.byte_of(c), Some(c as u8), "{page:?} {c}");
            }
        }
    }
}
