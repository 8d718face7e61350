//! The fiskaltrust sandbox: the POS System API v2.1 of the fiskaltrust.Middleware, after
//! `fiskaltrust-pos-system-api-v2.1.md`, for one CashBox with one queue (Italy by default) and
//! its signing unit (SCU, the Italian "RT device").
//!
//! From the document: `POST /v2/sign` signs a ReceiptRequest (`ftCashBoxID`, `ftPosSystemId`,
//! `cbTerminalID`, `cbReceiptReference`, `cbReceiptMoment`, `ftReceiptCase`, `cbChargeItems`,
//! `cbPayItems`, `cbCustomer`, `cbPreviousReceiptReference`) and answers a ReceiptResponse
//! (`ftQueueID`, `ftQueueItemID`, `ftCashBoxIdentification`, `ftReceiptIdentification`,
//! `ftReceiptMoment`, `ftSignatures`, `ftState`); `GET /v2/journal/{queueId}/{type}` reads the
//! `ReceiptJournal`, `ActionJournal` and `QueueItem` journals; `POST /v2/configuration` manages
//! terminal pairing. Every call carries `x-cashbox-id` and `x-cashbox-accesstoken` (`401`
//! otherwise); a sign carries `x-operation-id`, a UUID, its idempotency key ("each call is safe
//! to replay using operation IDs", "422 Duplicate operation ID"), and may carry
//! `x-operation-lifetime` (ms, default 15000), `x-terminal-id` and `x-possystem-id`. The error
//! bodies `device_not_reachable` and `validation_error` ("Total amount mismatch with payment
//! items") are the document's; their statuses (500 for the unreachable device, 400 for
//! validation) are inferred from its status table. Case values are hex strings whose top 16 bits are the
//! country's ASCII code (`0x4954…` = "IT") and whose next nibble is the version (2).
//!
//! Inferred where the document is silent, modelled on what fiskaltrust's middleware does (a
//! real sandbox can settle it):
//!
//! - Cases: receipt case numbers (low 16 bits) 0x0001 POS receipt, 0x1002 B2B invoice (needs
//!   `cbCustomer` with `Name` and `VATId`), 0x2000 zero receipt and 0x2011 daily closing (both
//!   without items); flags 0x0010_0000 refund (needs `cbPreviousReceiptReference` naming a
//!   receipt this queue signed) and 0x0020_0000 business receiver. A charge item case carries
//!   its VAT category in bits 8..11, which must be the configured category of its `VATRate`.
//!   The document's 15-digit examples (`0x495420000000301`) are typos for 16 digits; a value
//!   that short reads as a number whose country prefix is wrong, and is refused like any other
//!   wrong country. Hex is read in any letter case and written in upper case.
//! - Idempotency: a finished operation repeated with the same body (compared as JSON, numbers
//!   by value) answers the stored response byte for byte; repeated with another body it
//!   answers `422 operation_conflict`; repeated while still being signed (signing takes
//!   [`FiskaltrustConfig::sign_delay`]) it answers `422 operation_in_progress` (also after its
//!   `x-operation-lifetime` ran out: the lifetime only changes the message, and the operation
//!   still finishes). Only a signed receipt is stored: a request refused with `400` or `500` is
//!   processed anew when repeated. A `cbReceiptReference` signed (or being signed) under another
//!   operation id is refused (`400 duplicate cbReceiptReference`).
//! - Failed mode: a sign while the SCU is unreachable answers `500 device_not_reachable`,
//!   signs nothing and puts the queue in failed mode (an ActionJournal entry). (A middleware may
//!   instead accept a receipt in failed mode with `200`, the failed flag in `ftState` and no
//!   signature, and sign it late after the zero receipt; this sandbox does not model that, and
//!   Kasa would then keep the answer as its signature. A real sandbox settles which it is.) With the SCU back,
//!   receipts are signed but their `ftState` carries the failed-mode flag 0x2 until a zero
//!   receipt is signed; its `ftState` is normal again and the ActionJournal records how many
//!   receipts were signed in failed mode. `lastContact` is the last time the SCU signed (or the
//!   queue started).
//! - The response: `ftQueueRow` counts queue items from 1; `ftReceiptIdentification` is `ft`
//!   and the receipt number in hex, without gaps (zero receipts and daily closings included);
//!   `ftReceiptMoment` is the sandbox clock with milliseconds; the signatures are the RT
//!   device's id, a keyed hash (HMAC-SHA-256) over queue id, receipt number, reference, moment
//!   and total, and a QR code (`ftSignatureFormat` 0x03, as the middleware's SignatureFormat
//!   numbers it) of `<cashbox identification>_<receipt identification>_<moment>_<total>_<hash>`.
//! - `POST /v2/echo` answers its `{"Message"}` body (the middleware is up while the SCU is
//!   down); `POST /v2/configuration` with `{"ftCashBoxID", "cbTerminalID"}` pairs the terminal
//!   (once) and answers the CashBox's configuration. Journals page with `from` (a row,
//!   exclusive) and `take` (default 100, at most 1000); the ActionJournal numbers its own rows.
//! - Errors are `{"error", "message", "details"?}`: `unauthorized`, `validation_error`,
//!   `not_found` (an unknown queue), `operation_in_progress`, `operation_conflict`,
//!   `device_not_reachable`.
//!
//! The SCU, the sign delay and the journals are driven from Rust through [`Fiskaltrust`], or by
//! `POST /_sim/fiskaltrust/scu/{up|down}` from a demo panel.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kasa_core::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Settings of the fiskaltrust sandbox: one CashBox with one queue and its signing unit.
#[derive(Debug, Clone)]
pub struct FiskaltrustConfig {
    /// The CashBox id (`x-cashbox-id`, `ftCashBoxID`), a UUID.
    pub cashbox_id: String,
    /// The CashBox's access token (`x-cashbox-accesstoken`).
    pub access_token: String,
    /// The queue's id (`ftQueueID`), a UUID.
    pub queue_id: String,
    /// The cash register's identification at the tax authority (`ftCashBoxIdentification`).
    pub cashbox_identification: String,
    /// The queue's country, two ASCII letters (the top 16 bits of every case).
    pub country: String,
    /// The VAT rates (percent) a charge item may carry.
    pub vat_rates: Vec<f64>,
    /// The VAT category (bits 8..11 of `ftChargeItemCase`) of each rate; a rate not listed here
    /// is not checked against its item's category.
    pub vat_categories: Vec<(f64, u8)>,
    /// How long the SCU takes to sign one receipt.
    pub sign_delay: Duration,
    /// The signing unit's id (the `RT Device` signature, `deviceId` of its errors).
    pub scu_id: String,
    /// The SCU's key for the signature hash.
    pub signing_key: String,
    /// Seed for the ids it makes.
    pub seed: u64,
}

impl Default for FiskaltrustConfig {
    /// An Italian queue with Italy's rates: 22 % (category 3, normal), 10 % (1, discounted-1),
    /// 5 % (2, discounted-2), 4 % (4, super-reduced) and 0 % (7, not taxable); signing at once.
    fn default() -> Self {
        FiskaltrustConfig {
            cashbox_id: "6f1c2a4e-8b3d-4c5e-9a7f-1d2e3c4b5a60".into(),
            access_token: "demo-fiskaltrust-token".into(),
            queue_id: "b7e4d2c1-5a6f-4e3d-8c2b-9a1f0e7d6c53".into(),
            cashbox_identification: "IT-SCU-1234567".into(),
            country: "IT".into(),
            vat_rates: vec![22.0, 10.0, 5.0, 4.0, 0.0],
            vat_categories: vec![(22.0, 3), (10.0, 1), (5.0, 2), (4.0, 4), (0.0, 7)],
            sign_delay: Duration::ZERO,
            scu_id: "RT-12345678".into(),
            signing_key: "demo-fiskaltrust-scu-key".into(),
            seed: 17,
        }
    }
}

impl FiskaltrustConfig {
    /// A queue coded for Türkiye (`TR`, `0x5452`), at the rates the stations' sandbox sells at:
    /// 20 % (category 3, normal), 10 % (1), 1 % (2) and 0 % (7). The rest as [`Default`].
    pub fn turkiye() -> FiskaltrustConfig {
        FiskaltrustConfig {
            country: "TR".into(),
            cashbox_identification: "TR-SCU-7654321".into(),
            vat_rates: vec![20.0, 10.0, 1.0, 0.0],
            vat_categories: vec![(20.0, 3), (10.0, 1), (1.0, 2), (0.0, 7)],
            ..FiskaltrustConfig::default()
        }
    }
}

/// Receipt case numbers (low 16 bits of `ftReceiptCase`).
const POS_RECEIPT: u64 = 0x0001;
const B2B_INVOICE: u64 = 0x1002;
const ZERO_RECEIPT: u64 = 0x2000;
const DAILY_CLOSING: u64 = 0x2011;
/// Receipt case flags.
const REFUND_FLAG: u64 = 0x0010_0000;
/// The failed-mode flag of `ftState`.
const FAILED_MODE: u64 = 0x2;
/// The default `x-operation-lifetime`, ms.
const DEFAULT_LIFETIME_MS: u64 = 15_000;

/// A receipt in the ReceiptJournal.
struct Receipt {
    number: u64,
    journal_id: String,
    identification: String,
    moment: String,
    queue_item_id: String,
    row: u64,
    reference: String,
    case: u64,
    total: i64,
    state: u64,
}

/// A processed request in the QueueItem journal.
struct QueueItem {
    id: String,
    row: u64,
    operation_id: String,
    reference: String,
    request: Value,
    response: String,
    work_moment: String,
    done_moment: String,
}

/// An ActionJournal entry.
struct Action {
    id: String,
    row: u64,
    moment: String,
    priority: i64,
    kind: &'static str,
    message: String,
}

/// What is known of an operation id.
enum Operation {
    /// Being signed.
    Running {
        request: Value,
        /// When its `x-operation-lifetime` runs out.
        deadline: tokio::time::Instant,
        lifetime_ms: u64,
    },
    /// Signed; the response as it was sent.
    Done { request: Value, response: String },
}

struct FailedMode {
    /// Receipts signed since the queue entered failed mode.
    receipts: usize,
}

struct Inner {
    config: FiskaltrustConfig,
    country: u64,
    rng: StdRng,
    scu_reachable: bool,
    failed: Option<FailedMode>,
    last_contact: OffsetDateTime,
    operations: BTreeMap<String, Operation>,
    /// Which operation signed (or is signing) each `cbReceiptReference`.
    by_reference: BTreeMap<String, String>,
    receipts: Vec<Receipt>,
    queue_items: Vec<QueueItem>,
    actions: Vec<Action>,
    terminals: Vec<String>,
}

/// How far signing has got, for waiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Progress {
    signed: usize,
    running: usize,
}

/// The fiskaltrust sandbox's state and controls; cheap to clone.
#[derive(Clone)]
pub struct Fiskaltrust {
    inner: Arc<Mutex<Inner>>,
    /// Updated while `inner` is locked (never the other way round), read without it.
    progress: Arc<Signal<Progress>>,
}

impl std::fmt::Debug for Fiskaltrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fiskaltrust")
    }
}

/// A moment as the middleware writes it: RFC 3339 in UTC with milliseconds and `Z`.
fn moment(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A case or state as a hex string: `0x` and 16 upper-case digits.
fn hex_case(v: u64) -> String {
    format!("0x{v:016X}")
}

/// Reads a case: `0x` and up to 16 hex digits, in any letter case.
fn parse_case(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// An amount in cents (amounts are decimal numbers, two fraction digits meaningful).
fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Cents as decimal text with two fraction digits.
fn decimal(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Cents as a JSON number.
fn amount_json(cents: i64) -> Value {
    decimal(cents).parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::Null)
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two JSON values are the same request: equal, numbers compared by value (so `122`
/// and `122.00` agree).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// An operation id in its canonical form (lower-case, hyphenated), or `None` if not a UUID.
fn canonical_operation_id(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text.trim()).ok().map(|u| u.hyphenated().to_string())
}

/// A two-letter country as the top 16 bits of a case.
fn country_code(country: &str) -> u64 {
    country.bytes().take(2).fold(0u64, |acc, b| (acc << 8) | u64::from(b.to_ascii_uppercase()))
}

/// An error answer.
struct FtError(StatusCode, Value);

impl IntoResponse for FtError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

type FtResult = Result<Response, FtError>;

fn unauthorized(message: &str) -> FtError {
    FtError(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized", "message": message}))
}

/// A refused receipt (`/v2/sign`).
fn invalid(field: &str, reason: &str) -> FtError {
    FtError(
        StatusCode::BAD_REQUEST,
        json!({
            "error": "validation_error",
            "message": "Receipt validation failed",
            "details": {"field": field, "reason": reason}
        }),
    )
}

/// A refused request to another endpoint (inferred: the same shape, its own message).
fn invalid_request(field: &str, reason: &str) -> FtError {
    FtError(
        StatusCode::BAD_REQUEST,
        json!({
            "error": "validation_error",
            "message": "Request validation failed",
            "details": {"field": field, "reason": reason}
        }),
    )
}

fn not_found(message: String) -> FtError {
    FtError(StatusCode::NOT_FOUND, json!({"error": "not_found", "message": message}))
}

fn unprocessable(error: &str, message: String) -> FtError {
    FtError(StatusCode::UNPROCESSABLE_ENTITY, json!({"error": error, "message": message}))
}

/// A JSON answer sent exactly as stored.
fn stored(body: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What a valid receipt request says, as far as signing needs it.
struct Checked {
    reference: String,
    case: u64,
    total: i64,
}

/// The fields of one JSON object, read for validation; `null` counts as absent.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// The object's path in the request, `""` for the request itself.
    path: String,
}

impl<'a> Fields<'a> {
    fn name(&self, field: &str) -> String {
        if self.path.is_empty() { field.to_string() } else { format!("{}.{field}", self.path) }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<&'a str, FtError> {
        match self.get(field) {
            None => Err(invalid(&self.name(field), "required")),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
            Some(Value::String(_)) => Err(invalid(&self.name(field), "must not be empty")),
            Some(_) => Err(invalid(&self.name(field), "must be a string")),
        }
    }

    fn opt_string(&self, field: &str) -> Result<Option<&'a str>, FtError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(&self.name(field), "must be a string")),
        }
    }

    fn number(&self, field: &str) -> Result<f64, FtError> {
        match self.get(field) {
            None => Err(invalid(&self.name(field), "required")),
            Some(v) => v.as_f64().ok_or_else(|| invalid(&self.name(field), "must be a number")),
        }
    }

    fn opt_number(&self, field: &str) -> Result<Option<f64>, FtError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| invalid(&self.name(field), "must be a number")),
        }
    }

    /// An array of objects.
    fn items(&self, field: &str) -> Result<Vec<Fields<'a>>, FtError> {
        let Some(v) = self.get(field) else { return Err(invalid(field, "required")) };
        let Some(list) = v.as_array() else { return Err(invalid(field, "must be an array")) };
        list.iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Fields { map, path: format!("{field}[{i}]") }),
                _ => Err(invalid(&format!("{field}[{i}]"), "must be an object")),
            })
            .collect()
    }

    /// A case of this queue's country, if present.
    fn case(&self, field: &str, country: u64) -> Result<Option<u64>, FtError> {
        let Some(v) = self.get(field) else { return Ok(None) };
        let case = v
            .as_str()
            .and_then(parse_case)
            .ok_or_else(|| invalid(&self.name(field), "must be a hex string like 0x4954200000000001"))?;
        if case >> 48 != country {
            return Err(invalid(&self.name(field), "country code does not match the queue's country"));
        }
        Ok(Some(case))
    }
}

impl Inner {
    fn guid(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
    }

    /// `ftState` and signature cases: country, version 2, and the low bits.
    fn base(&self) -> u64 {
        (self.country << 48) | (0x2000 << 32)
    }

    fn progress(&self) -> Progress {
        let running = self.operations.values().filter(|o| matches!(o, Operation::Running { .. })).count();
        Progress { signed: self.receipts.len(), running }
    }

    fn act(&mut self, priority: i64, kind: &'static str, message: String) {
        let id = self.guid();
        let row = self.actions.len() as u64 + 1;
        self.actions.push(Action { id, row, moment: moment(crate::clock::now()), priority, kind, message });
    }

    fn vat_category(&self, rate: f64) -> Option<u8> {
        self.config.vat_categories.iter().find(|(r, _)| (r - rate).abs() < 1e-6).map(|(_, c)| *c)
    }

    /// Checks a receipt request as the middleware does before it is queued.
    fn check(&self, request: &Value, header_cashbox: &str, operation_id: &str) -> Result<Checked, FtError> {
        let Value::Object(map) = request else { return Err(invalid("body", "must be a JSON object")) };
        let r = Fields { map, path: String::new() };
        let cashbox = r.string("ftCashBoxID")?;
        if !cashbox.eq_ignore_ascii_case(header_cashbox) {
            return Err(invalid("ftCashBoxID", "does not match x-cashbox-id"));
        }
        r.opt_string("ftPosSystemId")?;
        r.opt_string("cbTerminalID")?;
        let reference = r.string("cbReceiptReference")?;
        let at = r.string("cbReceiptMoment")?;
        match OffsetDateTime::parse(at, &Rfc3339) {
            Ok(t) if t.offset().is_utc() => {}
            _ => return Err(invalid("cbReceiptMoment", "must be an RFC 3339 UTC timestamp")),
        }
        let case = r.case("ftReceiptCase", self.country)?.ok_or_else(|| invalid("ftReceiptCase", "required"))?;
        let number = case & 0xFFFF;
        if ![POS_RECEIPT, B2B_INVOICE, ZERO_RECEIPT, DAILY_CLOSING].contains(&number) {
            return Err(invalid("ftReceiptCase", "unknown receipt case"));
        }
        let charges = r.items("cbChargeItems")?;
        let pays = r.items("cbPayItems")?;
        let mut charged = 0i64;
        for item in &charges {
            item.number("Quantity")?;
            item.string("Description")?;
            charged += cents(item.number("Amount")?);
            let rate = item.number("VATRate")?;
            if !self.config.vat_rates.iter().any(|r| (r - rate).abs() < 1e-6) {
                return Err(invalid(&item.name("VATRate"), "VAT rate is not one of the queue's rates"));
            }
            if let Some(case) = item.case("ftChargeItemCase", self.country)? {
                let category = ((case >> 8) & 0xF) as u8;
                if self.vat_category(rate).is_some_and(|c| c != category) {
                    return Err(invalid(
                        &item.name("ftChargeItemCase"),
                        "VAT category does not match the item's VATRate",
                    ));
                }
            }
            item.opt_string("ProductNumber")?;
            item.opt_string("Unit")?;
            item.opt_number("UnitPrice")?;
        }
        let mut paid = 0i64;
        for item in &pays {
            item.opt_number("Quantity")?;
            item.string("Description")?;
            paid += cents(item.number("Amount")?);
            item.case("ftPayItemCase", self.country)?;
            item.opt_string("MoneyNumber")?;
            if item.get("ftPayItemCaseData").is_some_and(|d| !d.is_object()) {
                return Err(invalid(&item.name("ftPayItemCaseData"), "must be an object"));
            }
        }
        if matches!(number, ZERO_RECEIPT | DAILY_CLOSING) {
            if !charges.is_empty() {
                return Err(invalid("cbChargeItems", "a zero receipt or daily closing carries no items"));
            }
            if !pays.is_empty() {
                return Err(invalid("cbPayItems", "a zero receipt or daily closing carries no items"));
            }
        }
        match r.get("cbCustomer") {
            None if number == B2B_INVOICE => return Err(invalid("cbCustomer", "required for a B2B invoice")),
            None => {}
            Some(Value::Object(map)) => {
                let customer = Fields { map, path: "cbCustomer".into() };
                if number == B2B_INVOICE {
                    customer.string("Name")?;
                    customer.string("VATId")?;
                } else {
                    customer.opt_string("Name")?;
                    customer.opt_string("VATId")?;
                }
                customer.opt_string("Address")?;
            }
            Some(_) => return Err(invalid("cbCustomer", "must be an object")),
        }
        let previous = r.opt_string("cbPreviousReceiptReference")?;
        if case & REFUND_FLAG != 0 {
            match previous.filter(|p| !p.trim().is_empty()) {
                None => return Err(invalid("cbPreviousReceiptReference", "required for a refund")),
                Some(p) if !self.receipts.iter().any(|x| x.reference == p) => {
                    return Err(invalid("cbPreviousReceiptReference", "no receipt with this reference was signed"));
                }
                Some(_) => {}
            }
        }
        if charged != paid {
            return Err(invalid("cbChargeItems", "Total amount mismatch with payment items"));
        }
        if self.by_reference.get(reference).is_some_and(|op| op != operation_id) {
            return Err(invalid("cbReceiptReference", "duplicate cbReceiptReference"));
        }
        Ok(Checked { reference: reference.to_string(), case, total: charged })
    }

    /// Forgets an operation that did not finish.
    fn abandon(&mut self, operation_id: &str) {
        if matches!(self.operations.get(operation_id), Some(Operation::Running { .. })) {
            self.operations.remove(operation_id);
            self.by_reference.retain(|_, op| op != operation_id);
        }
    }

    /// Signs a checked receipt: numbers it, journals it and stores the response.
    fn sign(&mut self, operation_id: &str, request: Value, checked: Checked, work_moment: String) -> String {
        let now = crate::clock::now();
        let at = moment(now);
        self.last_contact = now;
        let number = self.receipts.len() as u64 + 1;
        let row = self.queue_items.len() as u64 + 1;
        let queue_item_id = self.guid();
        let journal_id = self.guid();
        let identification = format!("ft{number:X}");
        let kind = checked.case & 0xFFFF;
        let mut state = self.base();
        if kind == ZERO_RECEIPT {
            if let Some(failed) = self.failed.take() {
                self.act(
                    0,
                    "FailedModeEnded",
                    format!(
                        "Zero receipt {identification} signed: failed mode ended; {} receipt(s) were signed in failed mode",
                        failed.receipts
                    ),
                );
            }
        } else if let Some(failed) = &mut self.failed {
            failed.receipts += 1;
            state |= FAILED_MODE;
        }
        if kind == DAILY_CLOSING {
            self.act(0, "DailyClosing", format!("Daily closing {identification} signed"));
        }
        let total = decimal(checked.total);
        let message = format!("{}|{number}|{}|{at}|{total}", self.config.queue_id, checked.reference);
        let signature = hex(&hmac_sha256(self.config.signing_key.as_bytes(), message.as_bytes()));
        let cashbox_identification = self.config.cashbox_identification.clone();
        let base = self.base();
        let response = json!({
            "ftQueueID": self.config.queue_id,
            "ftQueueItemID": queue_item_id,
            "ftQueueRow": row,
            "ftCashBoxIdentification": cashbox_identification,
            "ftReceiptIdentification": identification,
            "ftReceiptMoment": at,
            "ftSignatures": [
                {
                    "ftSignatureFormat": hex_case(base | 0x1),
                    "ftSignatureType": hex_case(base | 0x1),
                    "Caption": "RT Device",
                    "Data": self.config.scu_id,
                },
                {
                    "ftSignatureFormat": hex_case(base | 0x1),
                    "ftSignatureType": hex_case(base | 0x2),
                    "Caption": "Signature",
                    "Data": signature,
                },
                {
                    "ftSignatureFormat": hex_case(base | 0x3),
                    "ftSignatureType": hex_case(base | 0x3),
                    "Caption": "QR",
                    "Data": format!("{cashbox_identification}_{identification}_{at}_{total}_{signature}"),
                },
            ],
            "ftState": hex_case(state),
        })
        .to_string();
        self.receipts.push(Receipt {
            number,
            journal_id,
            identification,
            moment: at.clone(),
            queue_item_id: queue_item_id.clone(),
            row,
            reference: checked.reference.clone(),
            case: checked.case,
            total: checked.total,
            state,
        });
        self.queue_items.push(QueueItem {
            id: queue_item_id,
            row,
            operation_id: operation_id.to_string(),
            reference: checked.reference.clone(),
            request: request.clone(),
            response: response.clone(),
            work_moment,
            done_moment: at,
        });
        self.by_reference.insert(checked.reference, operation_id.to_string());
        self.operations.insert(operation_id.to_string(), Operation::Done { request, response: response.clone() });
        response
    }

    /// Fails a sign because the SCU does not answer; the queue enters failed mode.
    fn scu_down(&mut self) -> FtError {
        if self.failed.is_none() {
            self.failed = Some(FailedMode { receipts: 0 });
            let scu = self.config.scu_id.clone();
            self.act(
                1,
                "FailedModeStarted",
                format!("Signing unit {scu} is not reachable: the queue is in failed mode"),
            );
        }
        FtError(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({
                "error": "device_not_reachable",
                "message": "RT device is not responding",
                "details": {"deviceId": self.config.scu_id, "lastContact": moment(self.last_contact)}
            }),
        )
    }

    fn receipt_json(r: &Receipt) -> Value {
        json!({
            "ftReceiptJournalId": r.journal_id,
            "ftReceiptNumber": r.number,
            "ftReceiptIdentification": r.identification,
            "ftReceiptMoment": r.moment,
            "ftQueueItemId": r.queue_item_id,
            "ftQueueRow": r.row,
            "cbReceiptReference": r.reference,
            "ftReceiptCase": hex_case(r.case),
            "ftReceiptTotal": amount_json(r.total),
            "ftState": hex_case(r.state),
        })
    }

    fn action_json(a: &Action) -> Value {
        json!({
            "ftActionJournalId": a.id,
            "ftQueueRow": a.row,
            "Moment": a.moment,
            "Priority": a.priority,
            "Type": a.kind,
            "Message": a.message,
        })
    }

    fn queue_item_json(q: &QueueItem) -> Value {
        json!({
            "ftQueueItemId": q.id,
            "ftQueueRow": q.row,
            "operationId": q.operation_id,
            "cbReceiptReference": q.reference,
            "request": q.request,
            "response": serde_json::from_str::<Value>(&q.response).unwrap_or(Value::Null),
            "ftWorkMoment": q.work_moment,
            "ftDoneMoment": q.done_moment,
        })
    }
}

impl Fiskaltrust {
    /// A sandbox with one CashBox, its queue and a reachable SCU.
    pub fn new(config: FiskaltrustConfig) -> Fiskaltrust {
        let inner = Inner {
            country: country_code(&config.country),
            rng: StdRng::seed_from_u64(config.seed),
            scu_reachable: true,
            failed: None,
            last_contact: crate::clock::now(),
            operations: BTreeMap::new(),
            by_reference: BTreeMap::new(),
            receipts: Vec::new(),
            queue_items: Vec::new(),
            actions: Vec::new(),
            terminals: Vec::new(),
            config,
        };
        Fiskaltrust { inner: Arc::new(Mutex::new(inner)), progress: Arc::new(Signal::new(Progress::default())) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells waiters what changed; called with `g` locked.
    fn publish(&self, g: &Inner) {
        let now = g.progress();
        if self.progress.get() != now {
            self.progress.send_replace(now);
        }
    }

    /// The HTTP routes of the document, plus `/_sim/fiskaltrust/...` controls for a demo panel.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v2/sign", post(sign))
            .route("/v2/echo", post(echo))
            .route("/v2/configuration", post(configuration))
            .route("/v2/journal/{queue_id}/{kind}", get(journal))
            .route("/_sim/fiskaltrust/scu/{state}", post(sim_scu))
            .with_state(self.clone())
    }

    /// The settings it runs with (the sign delay as last set).
    pub fn config(&self) -> FiskaltrustConfig {
        self.lock().config.clone()
    }

    /// Makes the signing unit reachable or not. While it is not, signs answer `500
    /// device_not_reachable` and put the queue in failed mode.
    pub fn set_scu_reachable(&self, reachable: bool) {
        self.lock().scu_reachable = reachable;
    }

    /// Whether the signing unit is reachable.
    pub fn scu_reachable(&self) -> bool {
        self.lock().scu_reachable
    }

    /// Whether the queue is in failed mode (until a zero receipt is signed).
    pub fn in_failed_mode(&self) -> bool {
        self.lock().failed.is_some()
    }

    /// How many receipts were signed since the queue entered failed mode (`None` when it is not
    /// in failed mode).
    pub fn failed_mode_receipts(&self) -> Option<usize> {
        self.lock().failed.as_ref().map(|f| f.receipts)
    }

    /// Sets how long the SCU takes to sign, for requests arriving from now on.
    pub fn set_sign_delay(&self, delay: Duration) {
        self.lock().config.sign_delay = delay;
    }

    /// The ReceiptJournal: every signed receipt, in number order, as the journal answers it.
    pub fn receipts(&self) -> Vec<Value> {
        self.lock().receipts.iter().map(Inner::receipt_json).collect()
    }

    /// The ActionJournal, oldest first.
    pub fn action_journal(&self) -> Vec<Value> {
        self.lock().actions.iter().map(Inner::action_json).collect()
    }

    /// The QueueItem journal, oldest first.
    pub fn queue_items(&self) -> Vec<Value> {
        self.lock().queue_items.iter().map(Inner::queue_item_json).collect()
    }

    /// How many receipts were ever signed for a `cbReceiptReference`.
    pub fn signed_count(&self, reference: &str) -> usize {
        self.lock().receipts.iter().filter(|r| r.reference == reference).count()
    }

    /// The stored response of a finished operation.
    pub fn response_of(&self, operation_id: &str) -> Option<Value> {
        let key = canonical_operation_id(operation_id).unwrap_or_else(|| operation_id.to_string());
        match self.lock().operations.get(&key) {
            Some(Operation::Done { response, .. }) => serde_json::from_str(response).ok(),
            _ => None,
        }
    }

    /// How many operations finished (each signed one receipt).
    pub fn operations(&self) -> usize {
        self.lock().operations.values().filter(|o| matches!(o, Operation::Done { .. })).count()
    }

    /// How many operations are being signed right now.
    pub fn in_progress(&self) -> usize {
        self.lock().progress().running
    }

    /// The terminals paired through `/v2/configuration`, in pairing order.
    pub fn terminals(&self) -> Vec<String> {
        self.lock().terminals.clone()
    }

    /// Waits until at least `count` receipts are signed.
    pub async fn wait_signed(&self, count: usize) {
        let mut w = self.progress.subscribe();
        let _ = w.wait_for(|p| p.signed >= count).await;
    }

    /// Waits until at least `count` operations are being signed at once.
    pub async fn wait_in_progress(&self, count: usize) {
        let mut w = self.progress.subscribe();
        let _ = w.wait_for(|p| p.running >= count).await;
    }
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Checks the CashBox credentials; answers the `x-cashbox-id` given.
fn authorize(ft: &Fiskaltrust, headers: &HeaderMap) -> Result<String, FtError> {
    let g = ft.lock();
    let Some(id) = header_text(headers, "x-cashbox-id") else {
        return Err(unauthorized("x-cashbox-id is required"));
    };
    let Some(token) = header_text(headers, "x-cashbox-accesstoken") else {
        return Err(unauthorized("x-cashbox-accesstoken is required"));
    };
    if !id.eq_ignore_ascii_case(&g.config.cashbox_id) || token != g.config.access_token {
        return Err(unauthorized("unknown CashBox or wrong access token"));
    }
    Ok(id.to_string())
}

/// Forgets an operation that was admitted but did not finish, however its handler ends.
struct Admitted {
    ft: Fiskaltrust,
    operation_id: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut g = self.ft.lock();
        g.abandon(&self.operation_id);
        self.ft.publish(&g);
    }
}

async fn sign(State(ft): State<Fiskaltrust>, headers: HeaderMap, body: Bytes) -> FtResult {
    let cashbox = authorize(&ft, &headers)?;
    let operation_id = match header_text(&headers, "x-operation-id") {
        None => return Err(invalid("x-operation-id", "required")),
        Some(text) => canonical_operation_id(text).ok_or_else(|| invalid("x-operation-id", "must be a UUID"))?,
    };
    let lifetime_ms = match header_text(&headers, "x-operation-lifetime") {
        None => DEFAULT_LIFETIME_MS,
        Some(text) => {
            text.parse::<u64>().map_err(|_| invalid("x-operation-lifetime", "must be a number of milliseconds"))?
        }
    };
    let request: Value = serde_json::from_slice(&body).map_err(|_| invalid("body", "must be a JSON object"))?;
    let work_moment = moment(crate::clock::now());
    let (admitted, checked, delay) = {
        let mut g = ft.lock();
        match g.operations.get(&operation_id) {
            Some(Operation::Done { request: first, response }) => {
                if same_json(first, &request) {
                    return Ok(stored(response.clone()));
                }
                return Err(unprocessable(
                    "operation_conflict",
                    format!("operation {operation_id} was already used for another request"),
                ));
            }
            Some(Operation::Running { request: first, deadline, lifetime_ms }) => {
                if !same_json(first, &request) {
                    return Err(unprocessable(
                        "operation_conflict",
                        format!("operation {operation_id} is being processed for another request"),
                    ));
                }
                let message = if tokio::time::Instant::now() < *deadline {
                    format!("operation {operation_id} is still being processed")
                } else {
                    format!(
                        "operation {operation_id} outlived its x-operation-lifetime of {lifetime_ms} ms and is still being processed"
                    )
                };
                return Err(unprocessable("operation_in_progress", message));
            }
            None => {}
        }
        let checked = g.check(&request, &cashbox, &operation_id)?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(lifetime_ms);
        g.operations
            .insert(operation_id.clone(), Operation::Running { request: request.clone(), deadline, lifetime_ms });
        g.by_reference.insert(checked.reference.clone(), operation_id.clone());
        ft.publish(&g);
        (Admitted { ft: ft.clone(), operation_id: operation_id.clone() }, checked, g.config.sign_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let result = {
        let mut g = ft.lock();
        if g.scu_reachable {
            let response = g.sign(&operation_id, request, checked, work_moment);
            ft.publish(&g);
            Ok(stored(response))
        } else {
            // A failed operation is forgotten, so its repeat is processed anew.
            let down = g.scu_down();
            g.abandon(&operation_id);
            ft.publish(&g);
            Err(down)
        }
    };
    drop(admitted);
    result
}

async fn echo(State(ft): State<Fiskaltrust>, headers: HeaderMap, body: Bytes) -> FtResult {
    authorize(&ft, &headers)?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| invalid_request("body", "must be a JSON object"))?;
    match v.get("Message") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(invalid_request("Message", "must be a string")),
        None => return Err(invalid_request("Message", "required")),
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    Ok(stored(text))
}

async fn configuration(State(ft): State<Fiskaltrust>, headers: HeaderMap, body: Bytes) -> FtResult {
    let cashbox = authorize(&ft, &headers)?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| invalid_request("body", "must be a JSON object"))?;
    let Value::Object(map) = &v else { return Err(invalid_request("body", "must be a JSON object")) };
    match map.get("ftCashBoxID").filter(|v| !v.is_null()) {
        None => return Err(invalid_request("ftCashBoxID", "required")),
        Some(Value::String(id)) if id.eq_ignore_ascii_case(&cashbox) => {}
        Some(Value::String(_)) => return Err(invalid_request("ftCashBoxID", "does not match x-cashbox-id")),
        Some(_) => return Err(invalid_request("ftCashBoxID", "must be a string")),
    }
    let terminal = match map.get("cbTerminalID").filter(|v| !v.is_null()) {
        None => None,
        Some(Value::String(t)) if !t.trim().is_empty() => Some(t.clone()),
        Some(_) => return Err(invalid_request("cbTerminalID", "must be a non-empty string")),
    };
    let mut g = ft.lock();
    if let Some(t) = terminal
        && !g.terminals.contains(&t)
    {
        g.act(0, "TerminalPaired", format!("Terminal {t} paired"));
        g.terminals.push(t);
    }
    Ok(axum::Json(json!({
        "ftCashBoxID": g.config.cashbox_id,
        "ftQueueID": g.config.queue_id,
        "ftCashBoxIdentification": g.config.cashbox_identification,
        "Country": g.config.country,
        "Terminals": g.terminals,
    }))
    .into_response())
}

async fn journal(
    State(ft): State<Fiskaltrust>,
    headers: HeaderMap,
    Path((queue_id, kind)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> FtResult {
    authorize(&ft, &headers)?;
    let page = |name: &str, default: u64| match q.get(name) {
        None => Ok(default),
        Some(text) => text.trim().parse::<u64>().map_err(|_| invalid_request(name, "must be a non-negative integer")),
    };
    let from = page("from", 0)?;
    let take = page("take", 100)?.min(1000) as usize;
    let g = ft.lock();
    if !queue_id.eq_ignore_ascii_case(&g.config.queue_id) {
        return Err(not_found(format!("no queue {queue_id}")));
    }
    let entries: Vec<Value> = match kind.as_str() {
        "ReceiptJournal" => g.receipts.iter().filter(|r| r.row > from).take(take).map(Inner::receipt_json).collect(),
        "ActionJournal" => g.actions.iter().filter(|a| a.row > from).take(take).map(Inner::action_json).collect(),
        "QueueItem" => g.queue_items.iter().filter(|i| i.row > from).take(take).map(Inner::queue_item_json).collect(),
        _ => return Err(invalid_request("type", "must be ReceiptJournal, ActionJournal or QueueItem")),
    };
    Ok(axum::Json(Value::Array(entries)).into_response())
}

async fn sim_scu(State(ft): State<Fiskaltrust>, Path(state): Path<String>) -> Response {
    match state.as_str() {
        "up" => ft.set_scu_reachable(true),
        "down" => ft.set_scu_reachable(false),
        _ => return (StatusCode::BAD_REQUEST, "the state is up or down").into_response(),
    }
    axum::Json(json!({"scuReachable": ft.scu_reachable(), "failedMode": ft.in_failed_mode()})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_read_in_any_letter_case_and_write_in_upper_case() {
        assert_eq!(parse_case("0x4954200000000001"), Some(0x4954_2000_0000_0001));
        assert_eq!(parse_case("0X49542000000000a"), Some(0x0495_4200_0000_000A));
        assert_eq!(hex_case(0x4954_2000_0000_000A), "0x495420000000000A");
        for bad in ["", "0x", "4954200000000001", "0x4954200000000001F", "0x12g4"] {
            assert_eq!(parse_case(bad), None, "{bad}");
        }
        assert_eq!(country_code("IT"), 0x4954);
    }

    #[test]
    fn amounts_are_cents_and_two_fraction_digits() {
        assert_eq!(cents(122.0), 12_200);
        assert_eq!(cents(0.1 + 0.2), 30);
        assert_eq!(cents(-61.0), -6_100);
        assert_eq!(decimal(-6_100), "-61.00");
        assert_eq!(decimal(5), "0.05");
        assert_eq!(amount_json(17_250).to_string(), "172.5");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(hex(&mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }

    #[test]
    fn requests_are_compared_by_value() {
        let a: Value = serde_json::from_str(r#"{"Amount": 122, "x": [1, {"y": 2.50}]}"#).unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"x": [1.0, {"y": 2.5}], "Amount": 122.00}"#).unwrap_or_default();
        let c: Value = serde_json::from_str(r#"{"x": [1.0, {"y": 2.5}], "Amount": 122.01}"#).unwrap_or_default();
        assert!(same_json(&a, &b));
        assert!(!same_json(&a, &c));
    }

    #[test]
    fn moments_have_milliseconds_and_z() {
        let t = time::macros::datetime!(2026-06-01 08:00:01.5 +02:00);
        assert_eq!(moment(t), "2026-06-01T06:00:01.500Z");
    }
}
