//! Slip layout: the slip as rows of text at a paper width, shared by every renderer.
//!
//! All alignment is done here, with spaces, so the ESC/POS bytes print exactly the rows the
//! on-screen preview shows. Widths count characters: every character Kasa prints on a slip is
//! one column wide in the printers' fonts.

use kasa_core::Money;

use crate::slip::{Slip, plain};

/// Paper width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Width {
    /// 58 mm roll: 32 columns of Font A.
    #[serde(rename = "58mm")]
    Mm58,
    /// 80 mm roll: 48 columns of Font A.
    #[serde(rename = "80mm")]
    Mm80,
}

impl Width {
    /// Columns of normal-size text.
    pub fn columns(self) -> usize {
        match self {
            Width::Mm58 => 32,
            Width::Mm80 => 48,
        }
    }
}

/// One row of the laid-out slip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A line of text, already padded.
    Text {
        /// The text.
        text: String,
        /// Emphasised.
        bold: bool,
        /// Double width and height (each character takes two columns).
        big: bool,
    },
    /// A QR code.
    Qr(String),
}

impl Block {
    fn plain(text: String) -> Block {
        Block::Text { text, bold: false, big: false }
    }
}

fn width_of(s: &str) -> usize {
    s.chars().count()
}

/// Splits text into lines of at most `cols` characters, at spaces where possible. Leading
/// spaces indent every line.
pub fn wrap(text: &str, cols: usize) -> Vec<String> {
    if width_of(text) <= cols {
        // Most rows fit: nothing to break.
        return vec![text.to_string()];
    }
    let body = text.trim_start_matches(' ');
    let indent = text.len() - body.len();
    if indent > 0 && indent < cols {
        let pad = " ".repeat(indent);
        return wrap_words(body, cols - indent).into_iter().map(|l| format!("{pad}{l}")).collect();
    }
    wrap_words(body, cols)
}

fn wrap_words(text: &str, cols: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        loop {
            let need = if cur.is_empty() { width_of(&word) } else { width_of(&cur) + 1 + width_of(&word) };
            if need <= cols {
                if !cur.is_empty() {
                    cur.push(' ');
                }
                cur.push_str(&word);
                break;
            }
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
                continue;
            }
            // A word longer than the line is cut.
            let head: String = word.chars().take(cols).collect();
            word = word.chars().skip(cols).collect();
            lines.push(head);
            if word.is_empty() {
                break;
            }
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

fn center(text: &str, cols: usize) -> String {
    let w = width_of(text);
    if w >= cols { text.to_string() } else { format!("{}{}", " ".repeat((cols - w) / 2), text) }
}

/// `left` and `right` on one line with `right` flush right. A long `left` wraps at the full
/// width; `right` goes on the last line if it fits there, else on a line of its own.
fn pair(left: &str, right: &str, cols: usize) -> Vec<String> {
    let rw = width_of(right);
    let lw = width_of(left);
    if lw + 1 + rw <= cols {
        // The usual row: both on one line, without breaking anything.
        let mut line = String::with_capacity(left.len() + right.len() + cols - lw - rw);
        line.push_str(left);
        line.extend(std::iter::repeat_n(' ', cols - lw - rw));
        line.push_str(right);
        return vec![line];
    }
    let mut lines = wrap(left, cols);
    let last = lines.pop().unwrap_or_default();
    let lw = width_of(&last);
    if lw + 1 + rw <= cols {
        lines.push(format!("{last}{}{right}", " ".repeat(cols - lw - rw)));
    } else {
        lines.push(last);
        lines.push(format!("{}{right}", " ".repeat(cols.saturating_sub(rw))));
    }
    lines
}

/// Lays out a slip for a paper width.
pub fn layout(slip: &Slip, width: Width) -> Vec<Block> {
    let cols = width.columns();
    let labels = slip.store.labels();
    let mut out = Vec::new();
    let rule = || Block::plain("-".repeat(cols));
    let text = |out: &mut Vec<Block>, s: String| out.push(Block::plain(s));

    for l in wrap(&slip.store.name, cols / 2) {
        out.push(Block::Text { text: center(&l, cols / 2), bold: true, big: true });
    }
    for a in &slip.store.address {
        for l in wrap(a, cols) {
            text(&mut out, center(&l, cols));
        }
    }
    for l in wrap(&slip.store.tax_id, cols) {
        text(&mut out, center(&l, cols));
    }
    if let Some(title) = &slip.title {
        out.push(Block::Text { text: center(title, cols / 2), bold: true, big: true });
    }
    if slip.copy {
        out.push(Block::Text { text: center(labels.copy, cols), bold: true, big: false });
    }
    out.push(rule());
    for l in
        pair(&format!("{} {}", labels.date, slip.when), &format!("{} {}", labels.sale, short_id(&slip.sale_id)), cols)
    {
        text(&mut out, l);
    }
    out.push(rule());
    for line in &slip.lines {
        match &line.detail {
            None => pair(&line.description, &plain(line.amount), cols).into_iter().for_each(|l| text(&mut out, l)),
            Some(detail) => {
                wrap(&line.description, cols).into_iter().for_each(|l| text(&mut out, l));
                pair(&format!("  {detail}"), &plain(line.amount), cols).into_iter().for_each(|l| text(&mut out, l));
            }
        }
    }
    out.push(rule());
    for l in pair(labels.total, &money_with_code(slip.total), cols) {
        out.push(Block::Text { text: l, bold: true, big: false });
    }
    for (rate, vat) in &slip.vat {
        for l in pair(&format!("{} %{}", labels.vat, rate_text(*rate)), &plain(*vat), cols) {
            text(&mut out, l);
        }
    }
    out.push(rule());
    for p in &slip.payments {
        for l in pair(&p.label, &plain(p.amount), cols) {
            text(&mut out, l);
        }
        for (d, amount) in &p.details {
            match amount {
                Some(a) => pair(d, &plain(*a), cols).into_iter().for_each(|l| text(&mut out, l)),
                None => wrap(&format!("  {d}"), cols).into_iter().for_each(|l| text(&mut out, l)),
            }
        }
    }
    if let Some(r) = &slip.receipt {
        out.push(rule());
        text(&mut out, labels.pump_receipt.to_string());
        for l in wrap(&format!("  FİŞ NO {}  Z NO {}  EKÜ NO {}", r.fiscal_no, r.z_no, r.eku_no), cols) {
            text(&mut out, l);
        }
    }
    if let Some(f) = &slip.fiscal {
        out.push(rule());
        match &f.receipt_id {
            Some(id) => pair(labels.fiscal, id, cols).into_iter().for_each(|l| text(&mut out, l)),
            None => text(&mut out, labels.fiscal.to_string()),
        }
        for (caption, data) in &f.lines {
            for l in wrap(&format!("  {caption}: {data}"), cols) {
                text(&mut out, l);
            }
        }
        if f.pending {
            out.push(Block::Text { text: center(labels.signature_pending, cols), bold: true, big: false });
            for l in wrap(labels.signature_later, cols) {
                text(&mut out, l);
            }
        }
    }
    if !slip.store.footer.is_empty() {
        out.push(rule());
        for f in &slip.store.footer {
            for l in wrap(f, cols) {
                text(&mut out, center(&l, cols));
            }
        }
    }
    if let Some(q) = &slip.qr {
        out.push(Block::Qr(q.clone()));
    }
    out
}

fn short_id(id: &str) -> &str {
    let n = id.len();
    if n > 8 { &id[n - 8..] } else { id }
}

fn rate_text(bp: u32) -> String {
    if bp.is_multiple_of(100) { format!("{}", bp / 100) } else { format!("{},{:02}", bp / 100, bp % 100) }
}

fn money_with_code(m: Money) -> String {
    format!("{} {}", plain(m), m.currency)
}

/// The blocks as plain text, one row per line; a QR code shows as `[QR] data`.
pub fn to_text(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Text { text, .. } => s.push_str(text),
            Block::Qr(data) => {
                s.push_str("[QR] ");
                s.push_str(data);
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_and_pairs_respect_the_width() {
        assert_eq!(wrap("Kurşunsuz Benzin 95 Extra Uzun İsim", 16), ["Kurşunsuz Benzin", "95 Extra Uzun", "İsim"]);
        assert_eq!(wrap("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10), ["ABCDEFGHIJ", "KLMNOPQRST", "UVWXYZ"]);
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("  Onay 004839 CHIP_ENTRY", 14), ["  Onay 004839", "  CHIP_ENTRY"]);
        assert_eq!(pair("Çay", "15,00", 12), ["Çay    15,00"]);
        assert_eq!(pair("Uzun ürün adı burada", "1.234,56", 16), ["Uzun ürün adı", "burada  1.234,56"]);
        assert_eq!(pair("Uzun ürün adı", "1.234,56", 16), ["Uzun ürün adı", "        1.234,56"]);
        for l in pair("Uzun ürün adı burada", "1.234,56", 16) {
            assert!(l.chars().count() <= 16);
        }
    }
}

/// A report (an X or Z report, or any list of labelled values) as rows: the first pair is the
/// title, printed bold and centred; each other pair is a label on the left and its value on the
/// right, wrapped when both do not fit one row.
pub fn report_blocks(lines: &[(String, String)], width: Width) -> Vec<Block> {
    let cols = width.columns();
    let mut out = Vec::new();
    let mut rest = lines.iter();
    if let Some((title, _)) = rest.next() {
        let pad = cols.saturating_sub(width_of(title)) / 2;
        out.push(Block::Text { text: format!("{}{title}", " ".repeat(pad)), bold: true, big: false });
        out.push(Block::plain("-".repeat(cols)));
    }
    for (label, value) in rest {
        let used = width_of(label) + width_of(value);
        if used < cols {
            out.push(Block::plain(format!("{label}{}{value}", " ".repeat(cols - used))));
        } else {
            out.extend(wrap(label, cols).into_iter().map(Block::plain));
            out.extend(wrap(value, cols).into_iter().map(|v| {
                let pad = cols.saturating_sub(width_of(&v));
                Block::plain(format!("{}{v}", " ".repeat(pad)))
            }));
        }
    }
    out.push(Block::plain("-".repeat(cols)));
    out
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn a_report_row_puts_the_value_on_the_right_edge() {
        let lines = vec![
            ("Z REPORT No 3".to_string(), String::new()),
            ("Sales".to_string(), "12".to_string()),
            ("A label far too long to share its row with the value beside it".to_string(), "1.234,50".to_string()),
        ];
        let text = to_text(&report_blocks(&lines, Width::Mm58));
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows[0].trim(), "Z REPORT No 3");
        assert_eq!(rows[2], format!("Sales{}12", " ".repeat(32 - 7)));
        assert!(rows.iter().all(|r| r.chars().count() <= 32), "{text}");
        assert!(rows.iter().any(|r| r.ends_with("1.234,50")), "{text}");
    }
}
