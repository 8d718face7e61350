//! MobilePay's JSON shapes and request fields.

use kasa_core::Money;
use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// One request field: text, or an amount (decimal text in a query, a number in a body).
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// Text.
    Text(&'a str),
    /// An amount in major units.
    Amount(Money),
}

/// The fields as query pairs, amounts as decimal text (`123.45`).
pub fn query(fields: &[(&str, Field<'_>)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(name, f)| {
            let v = match f {
                Field::Text(t) => (*t).to_string(),
                Field::Amount(m) => m.to_decimal_string(),
            };
            (name.to_string(), v)
        })
        .collect()
}

/// The fields as a JSON object, amounts as numbers (`123.45`).
pub fn body(fields: &[(&str, Field<'_>)]) -> Result<Value, String> {
    let mut map = Map::new();
    for (name, f) in fields {
        let v = match f {
            Field::Text(t) => Value::String((*t).to_string()),
            Field::Amount(m) => {
                let text = m.to_decimal_string();
                Value::Number(text.parse::<Number>().map_err(|e| format!("amount {text}: {e}"))?)
            }
        };
        map.insert(name.to_string(), v);
    }
    Ok(Value::Object(map))
}

/// Error body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Error {
    /// Error code.
    #[serde(default, alias = "code")]
    pub error_code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

/// A payment (start, prepare, ready, details, capture, cancel, and in lists).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    #[serde(default)]
    pub terminal_id: Option<String>,
    #[serde(default)]
    pub pos_id: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub amount: Option<Number>,
    pub currency_code: String,
    pub status: String,
    #[serde(default)]
    pub captured_amount: Option<Number>,
    #[serde(default)]
    pub refunded_amount: Option<Number>,
}

/// Payment status answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub payment_id: String,
    pub status: String,
}

/// A list of payments.
#[derive(Debug, Deserialize)]
pub struct PaymentList {
    #[serde(default)]
    pub payments: Vec<Payment>,
}

/// A retrieved paymentId.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentId {
    pub payment_id: String,
}

/// A refund.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    pub refund_id: String,
    pub payment_id: String,
    pub refund_order_id: String,
    pub amount: Number,
    pub currency_code: String,
    pub status: String,
}

/// Refund ids of a payment.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundIds {
    #[serde(default)]
    pub refund_ids: Vec<String>,
}

/// An access token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub access_token: crate::Secret,
}

/// Terminal information.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminal {
    pub terminal_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub store_id: Option<String>,
    #[serde(default)]
    pub pos_id: Option<String>,
}

/// Store ids.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreIds {
    #[serde(default)]
    pub store_ids: Vec<String>,
}

/// Store information.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    pub store_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub zip_code: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub terminal_ids: Vec<String>,
}

/// Check-in status.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckIn {
    #[serde(default)]
    pub terminal_id: Option<String>,
    #[serde(default)]
    pub pos_id: Option<String>,
    pub checked_in: bool,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub checked_in_at: Option<String>,
}

/// The QR code image link.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QrCode {
    pub qr_code_url: String,
}
