//! The fiskaltrust client, after `fiskaltrust-pos-system-api-v2.1.md` (POS System API v2.1).
//!
//! Every call carries the CashBox credentials (`x-cashbox-id`, `x-cashbox-accesstoken`) and,
//! where configured, `x-terminal-id` and `x-possystem-id`. `POST /v2/sign` also carries
//! `x-operation-id`, the idempotency key Kasa made and stored before the first attempt and
//! reuses on every retry, and `x-operation-lifetime`. What the document says about a repeat:
//! the same operation id returns the stored result; `422` is a duplicate operation id. Kasa
//! reads the 422's error code (inferred, the document names none): `operation_in_progress` means
//! the first request is still being processed (wait and ask again), anything else is a conflict
//! (the same id with another body) that is never resolved by sending a second receipt.
//!
//! Receipts are built from Kasa's sales here ([`ReceiptBuilder`]), in the shape of the document's
//! four use cases (standard sale, mixed payment, B2B invoice, refund), and checked before they
//! are sent ([`validate`]).
//! Amounts are JSON numbers on the wire, as the document writes them; Kasa computes in minor
//! units and converts only here, at the edge (every register amount has at most 15 significant
//! digits, so the number is exact), and [`validate`] compares sums in cents.
//!
//! Case values (`ftReceiptCase`, `ftChargeItemCase`, `ftPayItemCase`) are 64-bit numbers written
//! as 16 hex digits. From the document's examples: the top 16 bits are the country (`0x4954`,
//! "IT"), the next 4 bits the version (2); the receipt case `0x0001` is a POS receipt, `0x1002`
//! a B2B invoice, the flag `0x0010_0000` a refund and `0x0020_0000` a business receiver; in a
//! charge item case the low byte is the item type (`0x01` goods, `0x02` service) and bits 8–11
//! the VAT category (`3` the normal rate, `1` the first discounted one); pay item cases are `0x01`
//! cash, `0x05` credit card, `0x07` an app payment, `0x0A` a bank transfer. The document's
//! charge and pay item cases have 15 digits (`0x495420000000301`), one zero short of the receipt
//! cases' 16; Kasa writes all with 16. Inferred from fiskaltrust's real middleware (the
//! document is silent): `0x2000` zero receipt, `0x2011` daily closing, the flag `0x0004_0000`
//! void, the `ftState` flag `0x0002` (the queue is in failed mode after its signing unit was
//! unreachable; a zero receipt leaves it), and signature format `0x03` a QR code.

use crate::ExposeSecret;
use std::time::Duration;

use kasa_core::{Line, Money, Payment, PaymentKind, Sale};
use serde::{Deserialize, Serialize};

use crate::transport::Method;
use crate::{ConnectError, Secret, Url};

const SYSTEM: &str = "fiskaltrust";

/// The version nibble every case carries (`0x…2…` after the country).
const VERSION: u64 = 0x2000 << 32;
/// Receipt case: a point-of-sale receipt.
pub const RECEIPT_POS: u64 = 0x0001;
/// Receipt case: a B2B invoice.
pub const RECEIPT_B2B_INVOICE: u64 = 0x1002;
/// Receipt case: a zero receipt (inferred).
pub const RECEIPT_ZERO: u64 = 0x2000;
/// Receipt case: the daily closing (inferred).
pub const RECEIPT_DAILY_CLOSING: u64 = 0x2011;
/// Receipt flag: a refund.
pub const FLAG_REFUND: u64 = 0x0010_0000;
/// Receipt flag: the receiver is a business.
pub const FLAG_BUSINESS: u64 = 0x0020_0000;
/// Receipt flag: cancels a whole earlier receipt (inferred).
pub const FLAG_VOID: u64 = 0x0004_0000;
/// `ftState` flag: the queue is in failed mode (inferred).
pub const STATE_FAILED: u64 = 0x0002;
/// Charge item type: goods.
pub const ITEM_GOODS: u64 = 0x01;
/// Pay item case: cash.
pub const PAY_CASH: u64 = 0x01;
/// Pay item case: credit card.
pub const PAY_CARD: u64 = 0x05;
/// Pay item case: an app payment.
pub const PAY_APP: u64 = 0x07;
/// Signature format: a QR code (inferred).
pub const SIGNATURE_QR: u64 = 0x03;

/// fiskaltrust's JSON shapes, field names exactly as the document writes them.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// A receipt to sign.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ReceiptRequest {
        #[serde(rename = "ftCashBoxID")]
        pub cashbox_id: String,
        #[serde(rename = "ftPosSystemId", skip_serializing_if = "Option::is_none", default)]
        pub pos_system_id: Option<String>,
        #[serde(rename = "cbTerminalID")]
        pub terminal_id: String,
        #[serde(rename = "cbReceiptReference")]
        pub reference: String,
        #[serde(rename = "cbReceiptMoment")]
        pub moment: String,
        #[serde(rename = "ftReceiptCase")]
        pub case: String,
        #[serde(rename = "cbPreviousReceiptReference", skip_serializing_if = "Option::is_none", default)]
        pub previous_reference: Option<String>,
        #[serde(rename = "cbCustomer", skip_serializing_if = "Option::is_none", default)]
        pub customer: Option<Customer>,
        #[serde(rename = "cbChargeItems")]
        pub charge_items: Vec<ChargeItem>,
        #[serde(rename = "cbPayItems")]
        pub pay_items: Vec<PayItem>,
    }

    /// A charge item.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChargeItem {
        #[serde(rename = "Quantity")]
        pub quantity: f64,
        #[serde(rename = "Description")]
        pub description: String,
        #[serde(rename = "Amount")]
        pub amount: f64,
        #[serde(rename = "VATRate")]
        pub vat_rate: f64,
        #[serde(rename = "ftChargeItemCase")]
        pub case: String,
        #[serde(rename = "ProductNumber", skip_serializing_if = "Option::is_none", default)]
        pub product_number: Option<String>,
        #[serde(rename = "Unit", skip_serializing_if = "Option::is_none", default)]
        pub unit: Option<String>,
        #[serde(rename = "UnitPrice", skip_serializing_if = "Option::is_none", default)]
        pub unit_price: Option<f64>,
    }

    /// A pay item.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PayItem {
        #[serde(rename = "Quantity", skip_serializing_if = "Option::is_none", default)]
        pub quantity: Option<f64>,
        #[serde(rename = "Description")]
        pub description: String,
        #[serde(rename = "Amount")]
        pub amount: f64,
        #[serde(rename = "ftPayItemCase")]
        pub case: String,
        #[serde(rename = "MoneyNumber", skip_serializing_if = "Option::is_none", default)]
        pub money_number: Option<String>,
        #[serde(rename = "ftPayItemCaseData", skip_serializing_if = "Option::is_none", default)]
        pub case_data: Option<serde_json::Value>,
    }

    /// The buyer of a B2B invoice.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Customer {
        #[serde(rename = "Name")]
        pub name: String,
        #[serde(rename = "Address", skip_serializing_if = "Option::is_none", default)]
        pub address: Option<String>,
        #[serde(rename = "VATId")]
        pub vat_id: String,
    }

    /// The middleware's answer to a signed receipt.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReceiptResponse {
        #[serde(rename = "ftQueueID", default)]
        pub queue_id: String,
        #[serde(rename = "ftQueueItemID", default)]
        pub queue_item_id: String,
        #[serde(rename = "ftCashBoxIdentification", default)]
        pub cashbox_identification: String,
        #[serde(rename = "ftReceiptIdentification")]
        pub receipt_identification: String,
        #[serde(rename = "ftReceiptMoment", default)]
        pub receipt_moment: String,
        #[serde(rename = "ftSignatures", default)]
        pub signatures: Vec<Signature>,
        #[serde(rename = "ftState")]
        pub state: String,
    }

    /// One signature.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Signature {
        #[serde(rename = "ftSignatureFormat", default)]
        pub format: String,
        #[serde(rename = "ftSignatureType", default)]
        pub kind: String,
        #[serde(rename = "Caption", default)]
        pub caption: String,
        #[serde(rename = "Data", default)]
        pub data: String,
    }

    /// An error body (`{"error": …, "message": …, "details": …}`).
    #[derive(Debug, Deserialize)]
    pub struct Error {
        #[serde(default)]
        pub error: String,
        #[serde(default)]
        pub message: String,
        #[serde(default)]
        pub details: Option<serde_json::Value>,
    }

    /// The configuration answer (inferred shape).
    #[derive(Debug, Clone, Deserialize)]
    pub struct Configuration {
        #[serde(rename = "ftQueueID")]
        pub queue_id: String,
        #[serde(rename = "ftCashBoxIdentification", default)]
        pub cashbox_identification: String,
        #[serde(rename = "Country", default)]
        pub country: String,
    }
}

/// A case value as the wire writes it: `0x` and 16 hex digits.
pub fn case_hex(value: u64) -> String {
    format!("0x{value:016X}")
}

/// Parses a case value (`0x…`, any case).
pub fn parse_case(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    u64::from_str_radix(digits, 16).ok()
}

/// How receipts are coded for the country the register fiscalizes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cases {
    /// Two ASCII letters, e.g. `IT`: the top 16 bits of every case.
    pub country: String,
    /// VAT rates (basis points) and their VAT category in the charge item case.
    pub vat_categories: Vec<(u32, u8)>,
}

impl Cases {
    /// The top bits of every case for this country, with the version.
    pub fn prefix(&self) -> Result<u64, ReceiptError> {
        match self.country.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                Ok((u64::from(*a) << 56) | (u64::from(*b) << 48) | VERSION)
            }
            _ => Err(ReceiptError::Country(self.country.clone())),
        }
    }

    fn category(&self, rate_bp: u32) -> Result<u8, ReceiptError> {
        self.vat_categories
            .iter()
            .find(|(r, _)| *r == rate_bp)
            .map(|(_, c)| *c)
            .ok_or(ReceiptError::UnknownVat(rate_bp))
    }
}

/// A receipt that cannot be sent, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The country is not two capital letters.
    #[error("fiscal.country '{0}' is not a two-letter country code such as IT; fix it in the configuration")]
    Country(String),
    /// A VAT rate has no category in the configuration.
    #[error(
        "VAT rate {}.{:02} % has no fiscal VAT category; add it to fiscal.vat_categories in the configuration",
        .0 / 100,
        .0 % 100
    )]
    UnknownVat(u32),
    /// Charge items and pay items do not add up.
    #[error("the receipt's items add up to {charge} but its payments to {pay}; the receipt is not sent")]
    Mismatch {
        /// Sum of the charge items.
        charge: String,
        /// Sum of the pay items.
        pay: String,
    },
    /// A field the middleware requires is empty.
    #[error("the receipt's {0} is empty; the receipt is not sent")]
    Missing(&'static str),
    /// The sale has nothing to sign (not paid, or no such refund).
    #[error("{0}")]
    Nothing(String),
}

/// Builds receipts from sales for one cash box.
#[derive(Debug, Clone)]
pub struct ReceiptBuilder {
    /// The CashBox id (`ftCashBoxID`).
    pub cashbox_id: String,
    /// The POS system id (`ftPosSystemId`), when registered.
    pub pos_system_id: Option<String>,
    /// The terminal id (`cbTerminalID`).
    pub terminal_id: String,
    /// The country's coding.
    pub cases: Cases,
}

fn decimal(m: Money) -> f64 {
    // Exact for every amount a register sees: at most 15 significant digits.
    m.minor as f64 / 10f64.powi(m.currency.exponent() as i32)
}

fn rate(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

fn moment(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.format(&fmt).unwrap_or_default()
}

impl ReceiptBuilder {
    fn base(&self, reference: &str, at: time::OffsetDateTime, case: u64) -> Result<wire::ReceiptRequest, ReceiptError> {
        Ok(wire::ReceiptRequest {
            cashbox_id: self.cashbox_id.clone(),
            pos_system_id: self.pos_system_id.clone(),
            terminal_id: self.terminal_id.clone(),
            reference: reference.to_string(),
            moment: moment(at),
            case: case_hex(self.cases.prefix()? | case),
            previous_reference: None,
            customer: None,
            charge_items: Vec::new(),
            pay_items: Vec::new(),
        })
    }

    fn charge_item(&self, line: &Line, sign: i64, share: Option<(i64, i64)>) -> Result<wire::ChargeItem, ReceiptError> {
        let prefix = self.cases.prefix()?;
        let amount = line.amount().map_err(|e| ReceiptError::Nothing(e.to_string()))?;
        let category = self.cases.category(line.vat_rate_bp())?;
        let case = case_hex(prefix | (u64::from(category) << 8) | ITEM_GOODS);
        // A part of a line (a partial refund) keeps the line's unit price and takes its share of
        // the quantity, to three decimals.
        let part = |q: f64| match share {
            Some((num, den)) if den != 0 => {
                // Never a quantity of nothing for an amount given back.
                let r = (q * num as f64 / den as f64 * 1000.0).round() / 1000.0;
                if r == 0.0 { 0.001 } else { r }
            }
            _ => q,
        };
        let line_amount = match share {
            Some((num, _)) => Money::new(num, amount.currency),
            None => amount,
        };
        let (quantity, description, product_number, unit, unit_price) = match line {
            Line::Fuel { product_name, litres, unit_price, pump_no, .. } => (
                part(litres.milli() as f64 / 1000.0),
                format!("{product_name} (pump {pump_no})"),
                None,
                Some("l".to_string()),
                Some(decimal(*unit_price)),
            ),
            Line::Item { item, quantity } => (
                part(f64::from(*quantity)),
                item.name.clone(),
                Some(item.sku.clone()),
                None,
                Some(decimal(item.unit_price)),
            ),
        };
        Ok(wire::ChargeItem {
            quantity: quantity * sign as f64,
            description,
            amount: decimal(line_amount) * sign as f64,
            vat_rate: rate(line.vat_rate_bp()),
            case,
            product_number,
            unit,
            unit_price,
        })
    }

    fn pay_item(&self, payment: &Payment, amount: Money, refund: bool) -> Result<wire::PayItem, ReceiptError> {
        let prefix = self.cases.prefix()?;
        let (case, description, money_number, data) = match &payment.kind {
            PaymentKind::Cash { .. } => (PAY_CASH, "Cash".to_string(), None, None),
            PaymentKind::Card { slip } => (
                PAY_CARD,
                format!("Card {} {}", slip.brand, slip.masked_pan),
                Some(slip.transaction_ref.clone()),
                Some(serde_json::json!({ "Provider": {
                    "Protocol": "finix",
                    "Action": if refund { "refund" } else { "payment" },
                    "ProtocolVersion": "2022-02-01",
                    "ProtocolResponse": {
                        "TransferId": slip.transaction_ref,
                        "ApprovalCode": slip.approval_code,
                        "TerminalId": slip.terminal_ref,
                        "EntryMode": slip.entry_mode,
                    }
                }})),
            ),
            PaymentKind::MobilePay { payment_id } => (
                PAY_APP,
                "MobilePay".to_string(),
                Some(payment_id.clone()),
                Some(serde_json::json!({ "Provider": {
                    "Protocol": "mobilepay",
                    "Action": if refund { "refund" } else { "payment" },
                }})),
            ),
            PaymentKind::Settle { tid } => (
                PAY_APP,
                "Settle".to_string(),
                Some(tid.clone()),
                Some(serde_json::json!({ "Provider": {
                    "Protocol": "settle",
                    "Action": if refund { "refund" } else { "payment" },
                }})),
            ),
        };
        let sign = if refund { -1.0 } else { 1.0 };
        Ok(wire::PayItem {
            quantity: Some(1.0),
            description: if refund { format!("{description} refund") } else { description },
            amount: decimal(amount) * sign,
            case: case_hex(prefix | case),
            money_number,
            case_data: data,
        })
    }

    /// The receipt of a sale paid in full: a POS receipt, or a B2B invoice with the customer.
    /// Its reference is the sale's id and its moment the time it was paid.
    pub fn sale_receipt(&self, sale: &Sale) -> Result<wire::ReceiptRequest, ReceiptError> {
        let customer = sale.customer.as_ref();
        let at = sale
            .paid_at
            .ok_or_else(|| ReceiptError::Nothing(format!("sale {} is not paid; it has no receipt", sale.id)))?;
        let case = match customer {
            Some(_) => RECEIPT_B2B_INVOICE | FLAG_BUSINESS,
            None => RECEIPT_POS,
        };
        let mut r = self.base(&sale.id.0, at, case)?;
        r.customer = customer.map(|c| wire::Customer {
            name: c.name.clone(),
            address: c.address.clone(),
            vat_id: c.vat_id.clone(),
        });
        r.charge_items = sale.basket.lines.iter().map(|l| self.charge_item(l, 1, None)).collect::<Result<_, _>>()?;
        r.pay_items = sale.payments.iter().map(|p| self.pay_item(p, p.amount, false)).collect::<Result<_, _>>()?;
        validate(&r)?;
        Ok(r)
    }

    /// The receipt of one refund: negative quantities and amounts, the sale's receipt as the
    /// previous one. A refund of less than the whole sale is shared over its lines by amount
    /// (largest remainder, to the minor unit); a refund of the whole sale is a void of its
    /// receipt.
    pub fn refund_receipt(&self, sale: &Sale, refund_id: &str) -> Result<wire::ReceiptRequest, ReceiptError> {
        let refund = sale
            .refunds
            .iter()
            .find(|r| r.id == refund_id)
            .ok_or_else(|| ReceiptError::Nothing(format!("sale {} has no refund {refund_id}", sale.id)))?;
        let payment = sale
            .payments
            .get(refund.payment as usize)
            .ok_or_else(|| ReceiptError::Nothing(format!("refund {refund_id} names no payment of sale {}", sale.id)))?;
        let total = sale.total().map_err(|e| ReceiptError::Nothing(e.to_string()))?;
        let whole = refund.amount == total;
        let mut r = self.base(refund_id, refund.at, RECEIPT_POS | FLAG_REFUND | if whole { FLAG_VOID } else { 0 })?;
        r.previous_reference = Some(sale.id.0.clone());
        let lines = &sale.basket.lines;
        let amounts: Vec<i64> = lines.iter().map(|l| l.amount().map(|m| m.minor).unwrap_or(0)).collect();
        let shares = share(refund.amount.minor, &amounts);
        r.charge_items = lines
            .iter()
            .zip(amounts.iter().zip(&shares))
            .filter(|(_, (_, s))| **s != 0)
            .map(|(l, (a, s))| self.charge_item(l, -1, if whole { None } else { Some((*s, *a)) }))
            .collect::<Result<_, _>>()?;
        r.pay_items = vec![self.pay_item(payment, refund.amount, true)?];
        validate(&r)?;
        Ok(r)
    }

    /// A zero receipt (no items), which takes a queue out of failed mode.
    pub fn zero_receipt(
        &self,
        reference: &str,
        at: time::OffsetDateTime,
    ) -> Result<wire::ReceiptRequest, ReceiptError> {
        self.base(reference, at, RECEIPT_ZERO)
    }

    /// The day's closing receipt (no items).
    pub fn daily_closing(
        &self,
        reference: &str,
        at: time::OffsetDateTime,
    ) -> Result<wire::ReceiptRequest, ReceiptError> {
        self.base(reference, at, RECEIPT_DAILY_CLOSING)
    }
}

/// Shares `total` over `weights` in proportion, to the unit, by largest remainder (the shares
/// add up to `total` exactly).
fn share(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<(i64, i128)> = weights
        .iter()
        .map(|w| {
            let n = i128::from(total) * i128::from(*w);
            ((n / sum) as i64, n % sum)
        })
        .collect();
    let mut out: Vec<i64> = exact.iter().map(|(q, _)| *q).collect();
    let mut left = total - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| exact[*b].1.cmp(&exact[*a].1).then(a.cmp(b)));
    for i in order {
        if left == 0 {
            break;
        }
        out[i] += left.signum();
        left -= left.signum();
    }
    out
}

/// Checks a receipt as the middleware would before it is sent: the required fields, and that
/// charge items and pay items add up (to the cent).
pub fn validate(r: &wire::ReceiptRequest) -> Result<(), ReceiptError> {
    if r.reference.trim().is_empty() {
        return Err(ReceiptError::Missing("cbReceiptReference"));
    }
    if r.cashbox_id.trim().is_empty() {
        return Err(ReceiptError::Missing("ftCashBoxID"));
    }
    let cents = |v: f64| (v * 100.0).round() as i64;
    let charge: i64 = r.charge_items.iter().map(|c| cents(c.amount)).sum();
    let pay: i64 = r.pay_items.iter().map(|p| cents(p.amount)).sum();
    if charge != pay {
        let f = |c: i64| format!("{}.{:02}", c / 100, (c % 100).abs());
        return Err(ReceiptError::Mismatch { charge: f(charge), pay: f(pay) });
    }
    if let Some(c) = r.charge_items.iter().find(|c| c.description.trim().is_empty()) {
        let _ = c;
        return Err(ReceiptError::Missing("charge item Description"));
    }
    Ok(())
}

/// Why a receipt was not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The signing unit behind the middleware is unreachable (`device_not_reachable`): the
    /// receipt was not processed; sign it later with the same operation id.
    #[error("the fiscal signing unit is unreachable: {0}")]
    SignerDown(String),
    /// The same operation is still being processed (422 `operation_in_progress`): ask again.
    #[error("the middleware is still signing this receipt")]
    InProgress,
    /// The operation id was used for another body (422): never resolved by a second receipt.
    #[error("the middleware refused the receipt as a conflicting repeat of operation {0}: {1}")]
    Conflict(String, String),
    /// The middleware refused the receipt (400) with its reason.
    #[error("the middleware refused the receipt: {0}")]
    Refused(String),
    /// Anything else (network, authentication, server error).
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct FiskaltrustSettings {
    /// Base URL of the POS System API (the paths start with `/v2/`).
    pub base_url: Url,
    /// The CashBox id.
    pub cashbox_id: String,
    /// The CashBox access token.
    pub access_token: Secret,
    /// `x-terminal-id`.
    pub terminal_id: String,
    /// `x-possystem-id`, when registered.
    pub pos_system_id: Option<String>,
    /// `x-operation-lifetime`.
    pub operation_lifetime: Duration,
    /// Timeout of each call.
    pub timeout: Duration,
}

/// The fiskaltrust client.
#[derive(Debug)]
pub struct FiskaltrustClient {
    http: crate::HttpClient,
    settings: FiskaltrustSettings,
}

fn error_body(b: &[u8]) -> Option<(String, String)> {
    let e: wire::Error = serde_json::from_slice(b).ok()?;
    let mut message = e.message;
    if let Some(reason) = e.details.as_ref().and_then(|d| d.get("reason")).and_then(|r| r.as_str()) {
        let field = e.details.as_ref().and_then(|d| d.get("field")).and_then(|f| f.as_str()).unwrap_or("");
        message = format!("{message}: {field} {reason}").trim().to_string();
    }
    Some((e.error, message))
}

impl FiskaltrustClient {
    /// A client.
    pub fn new(http: crate::HttpClient, settings: FiskaltrustSettings) -> FiskaltrustClient {
        FiskaltrustClient { http, settings }
    }

    /// The settings.
    pub fn settings(&self) -> &FiskaltrustSettings {
        &self.settings
    }

    fn request(&self, method: Method, path: &str) -> Result<crate::transport::RequestBuilder, ConnectError> {
        let url = self
            .settings
            .base_url
            .join(path)
            .map_err(|e| ConnectError::Config(format!("bad fiskaltrust path {path}: {e}")))?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(self.settings.timeout)
            .header("x-cashbox-id", &self.settings.cashbox_id)
            .header("x-cashbox-accesstoken", self.settings.access_token.expose_secret())
            .header("x-terminal-id", &self.settings.terminal_id);
        if let Some(p) = &self.settings.pos_system_id {
            req = req.header("x-possystem-id", p);
        }
        Ok(req)
    }

    /// Signs a receipt under `operation_id` (`POST /v2/sign`).
    pub async fn sign(
        &self,
        operation_id: &str,
        receipt: &wire::ReceiptRequest,
    ) -> Result<wire::ReceiptResponse, SignError> {
        let req = self
            .request(Method::POST, "v2/sign")?
            .header("x-operation-id", operation_id)
            .header("x-operation-lifetime", self.settings.operation_lifetime.as_millis().to_string())
            .json(receipt);
        let resp = req.send(SYSTEM).await?;
        match crate::answer(SYSTEM, resp, error_body) {
            Ok(bytes) => Ok(crate::from_json(SYSTEM, &bytes)?),
            Err(ConnectError::Status { code, .. }) if code == "device_not_reachable" => {
                Err(SignError::SignerDown("the middleware says its signing unit does not respond".into()))
            }
            Err(ConnectError::Status { status: 422, code, .. }) if code == "operation_in_progress" => {
                Err(SignError::InProgress)
            }
            Err(ConnectError::Status { status: 422, message, .. }) => {
                Err(SignError::Conflict(operation_id.to_string(), message))
            }
            Err(ConnectError::Status { status: 400, message, .. }) => Err(SignError::Refused(message)),
            Err(e) => Err(SignError::Connect(e)),
        }
    }

    /// `POST /v2/echo`: whether the middleware answers.
    pub async fn echo(&self, message: &str) -> Result<String, ConnectError> {
        let resp = self
            .request(Method::POST, "v2/echo")?
            .json(&serde_json::json!({ "Message": message }))
            .send(SYSTEM)
            .await?;
        let bytes = crate::answer(SYSTEM, resp, error_body)?;
        let v: serde_json::Value = crate::from_json(SYSTEM, &bytes)?;
        Ok(v.get("Message").and_then(|m| m.as_str()).unwrap_or_default().to_string())
    }

    /// `POST /v2/configuration`: pairs this terminal with the cash box and returns the queue.
    pub async fn configure(&self) -> Result<wire::Configuration, ConnectError> {
        let body =
            serde_json::json!({ "ftCashBoxID": self.settings.cashbox_id, "cbTerminalID": self.settings.terminal_id });
        let resp = self.request(Method::POST, "v2/configuration")?.json(&body).send(SYSTEM).await?;
        let bytes = crate::answer(SYSTEM, resp, error_body)?;
        crate::from_json(SYSTEM, &bytes)
    }

    /// `GET /v2/journal/{queueId}/{type}`: up to `take` entries after row `from`.
    pub async fn journal(
        &self,
        queue_id: &str,
        kind: JournalKind,
        from: u64,
        take: u32,
    ) -> Result<Vec<serde_json::Value>, ConnectError> {
        let url = crate::endpoint(SYSTEM, &self.settings.base_url, &["v2", "journal", queue_id, kind.as_str()])?;
        let req = self
            .http
            .request(Method::GET, url)
            .timeout(self.settings.timeout)
            .header("x-cashbox-id", &self.settings.cashbox_id)
            .header("x-cashbox-accesstoken", self.settings.access_token.expose_secret())
            .query(&[("from", from.to_string()), ("take", take.to_string())]);
        let resp = req.send(SYSTEM).await?;
        let bytes = crate::answer(SYSTEM, resp, error_body)?;
        crate::from_json(SYSTEM, &bytes)
    }
}

/// The middleware's journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalKind {
    /// Processed receipts.
    ReceiptJournal,
    /// System events.
    ActionJournal,
    /// Queue items (requests and responses).
    QueueItem,
}

impl JournalKind {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::ReceiptJournal => "ReceiptJournal",
            JournalKind::ActionJournal => "ActionJournal",
            JournalKind::QueueItem => "QueueItem",
        }
    }

    /// From its name.
    pub fn parse(text: &str) -> Option<JournalKind> {
        match text {
            "ReceiptJournal" | "receipts" => Some(JournalKind::ReceiptJournal),
            "ActionJournal" | "actions" => Some(JournalKind::ActionJournal),
            "QueueItem" | "items" => Some(JournalKind::QueueItem),
            _ => None,
        }
    }
}

/// What a signed receipt's answer means for Kasa.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signature to keep and print.
    pub signature: kasa_core::FiscalSignature,
    /// Whether the queue said it is in failed mode (send a zero receipt).
    pub failed_mode: bool,
}

impl wire::ReceiptResponse {
    /// The signature Kasa keeps: text lines, and the QR code's data.
    pub fn signed(&self) -> Signed {
        let mut lines = Vec::new();
        let mut qr = None;
        for s in &self.signatures {
            let format = parse_case(&s.format).unwrap_or(0) & 0xFF;
            if format == SIGNATURE_QR && qr.is_none() {
                qr = Some(s.data.clone());
            } else {
                lines.push(kasa_core::SignatureLine { caption: s.caption.clone(), data: s.data.clone() });
            }
        }
        let state = parse_case(&self.state).unwrap_or(0);
        Signed {
            signature: kasa_core::FiscalSignature {
                receipt_id: self.receipt_identification.clone(),
                cashbox: self.cashbox_identification.clone(),
                moment: self.receipt_moment.clone(),
                lines,
                qr,
            },
            failed_mode: state & STATE_FAILED != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_by_largest_remainder() {
        assert_eq!(share(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(share(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        assert_eq!(share(5, &[0, 10]), vec![0, 5]);
        assert_eq!(share(7, &[]), Vec::<i64>::new());
    }

    #[test]
    fn cases_round_trip_and_country_prefix() {
        let c = Cases { country: "IT".into(), vat_categories: vec![(2200, 3)] };
        assert_eq!(case_hex(c.prefix().unwrap() | RECEIPT_POS), "0x4954200000000001");
        assert_eq!(parse_case("0x4954200000100001"), Some(0x4954_2000_0010_0001));
        assert!(Cases { country: "Italy".into(), vat_categories: vec![] }.prefix().is_err());
    }
}
