//! What the manager searches the register's sales by, and the words a sale is found by.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::payment::{MethodKind, PaymentKind};
use crate::{Line, Sale, SaleState};

/// A search of the sales: every field given narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
#[ts(rename_all = "camelCase")]
pub struct SaleQuery {
    /// Opened at or after (RFC 3339, or a date `YYYY-MM-DD` meaning its start, UTC).
    pub from: Option<String>,
    /// Opened before (RFC 3339, or a date meaning the start of the day after it).
    pub to: Option<String>,
    /// The vehicle's plate (spaces and case do not matter).
    pub plate: Option<String>,
    /// The pump order's id.
    pub order_id: Option<String>,
    /// Paid (at least in part) by this method.
    pub method: Option<MethodKind>,
    /// Total at least this (minor units).
    #[ts(type = "number | null")]
    pub min_minor: Option<i64>,
    /// Total at most this (minor units).
    #[ts(type = "number | null")]
    pub max_minor: Option<i64>,
    /// In one of these states.
    pub states: Vec<SaleState>,
    /// Words found anywhere in the sale: items, plate, card, customer, reasons.
    pub text: Option<String>,
    /// Where the previous page ended (its `next`).
    pub after: Option<String>,
    /// Page size (1 to 200; 50 when absent).
    #[ts(type = "number | null")]
    pub limit: Option<u32>,
}

/// A bound of a date range, as unix milliseconds: RFC 3339, or a date (`YYYY-MM-DD`, UTC)
/// meaning its start, or for the end of a range (`end`) the start of the day after it.
pub fn parse_bound(text: &str, end: bool) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || format!("'{text}' is not a date: write it as 2026-12-01 or 2026-12-01T08:00:00Z");
    if let Ok(at) = time::OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text.trim(), &fmt).map_err(|_| bad())?;
    let day = if end { day.next_day().ok_or_else(bad)? } else { day };
    Ok((day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
}

/// A plate as searched: letters and digits only, upper case ("34 abc 123" is "34ABC123").
pub fn plate_key(plate: &str) -> String {
    plate.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect()
}

/// The sale's plate (of its pump order), as searched.
pub fn plate_of(sale: &Sale) -> Option<String> {
    sale.basket.lines.iter().find_map(|l| match l {
        Line::Fuel { plate_number, .. } => Some(plate_key(plate_number)),
        Line::Item { .. } => None,
    })
}

/// The methods the sale was paid by, as stored for search: `,card,cash,`.
pub fn methods_of(sale: &Sale) -> String {
    let mut names: Vec<&str> = sale.payments.iter().map(|p| p.method().as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() { String::new() } else { format!(",{},", names.join(",")) }
}

/// The words a sale is found by in free-text search.
pub fn text_of(sale: &Sale) -> String {
    let mut words: Vec<String> = vec![sale.id.0.clone()];
    for line in &sale.basket.lines {
        match line {
            Line::Fuel { order_id, plate_number, product_name, pump_no, .. } => {
                words.extend([order_id.clone(), plate_number.clone(), plate_key(plate_number), product_name.clone()]);
                words.push(format!("pump{pump_no}"));
            }
            Line::Item { item, .. } => words.extend([item.name.clone(), item.sku.clone()]),
        }
    }
    for p in &sale.payments {
        match &p.kind {
            PaymentKind::Card { slip } => words.extend([
                slip.brand.clone(),
                slip.masked_pan.clone(),
                slip.approval_code.clone(),
                slip.transaction_ref.clone(),
            ]),
            _ => words.push(format!("{:?}", p.method())),
        }
    }
    for r in &sale.refunds {
        words.extend([r.id.clone(), r.reason.clone()]);
    }
    if let Some(c) = &sale.customer {
        words.extend([c.name.clone(), c.vat_id.clone()]);
    }
    if let Some(n) = &sale.notice {
        words.push(n.message.clone());
    }
    words.retain(|w| !w.is_empty());
    words.join(" ")
}

/// A free-text query as an FTS5 expression: each word a quoted prefix, all of them needed.
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || matches!(c, '-' | '*' | '.')).collect::<String>())
        .map(|w| w.trim_matches('*').replace('"', ""))
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_and_words_are_normalised() {
        assert_eq!(plate_key("34 abc-123"), "34ABC123");
        assert_eq!(fts_query("  kola \"x\" 34ABC*  ").as_deref(), Some("\"kola\"* \"x\"* \"34ABC\"*"));
        assert_eq!(fts_query(" \" * "), None);
        assert_eq!(parse_bound("2026-12-01", false).unwrap(), 1_796_083_200_000);
        assert_eq!(parse_bound("2026-12-01", true).unwrap(), 1_796_083_200_000 + 86_400_000);
        assert_eq!(parse_bound("2026-12-01T00:00:01.5Z", false).unwrap(), 1_796_083_201_500);
        assert!(parse_bound("1.12.2026", false).unwrap_err().contains("2026-12-01"));
    }
}
