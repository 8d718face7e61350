//! The MobilePay PoS sandbox, after `mobilepay-pos-api.md`.
//!
//! Every endpoint of the document is served under the base URL (`/api/pos/...`), in the GET
//! form with a query string and, where the document gives one, in the POST form with a JSON
//! body carrying the same fields (camelCase); `api/pos/manage/delete` also answers `DELETE`.
//! Every call carries `accessToken` and `bioCode`, except `manage/token` (`bioCode` only) and
//! `manage/token/reset` (`bioCode` and `previousAccessToken`); wrong or missing credentials
//! answer `401`.
//!
//! State lives in memory: merchants (by `bioCode`) with their long-lived access token, stores,
//! terminals with an optional PoS (`posId`) and the customer checked in there, payments with
//! their status history, and refunds. A simulated customer is driven from Rust
//! ([`MobilePay::check_in`], [`MobilePay::approve`], [`MobilePay::reject`], ...) or by the
//! [`CustomerScript`] of each payment that becomes `Initiated`.
//!
//! The document names endpoints, parameters and statuses but no JSON shapes. What this sandbox
//! answers (inferred; a real sandbox can settle it):
//!
//! - Amounts are JSON numbers in major units with at most two fraction digits (`123.45`); in a
//!   query string the same decimal text. `currencyCode` is ISO 4217 and must be the merchant's
//!   currency (`400 INVALID_CURRENCY` otherwise). Amounts must be positive.
//! - A payment is `{"paymentId", "orderId", "terminalId", "posId", "storeId", "amount"
//!   (null until a prepared payment is readied), "currencyCode", "status", "capturedAmount",
//!   "refundedAmount", "createdAt", "updatedAt"}`; start, prepare, ready, details, capture and
//!   cancel answer it. `payment/status` answers `{"paymentId", "orderId", "status"}`,
//!   `payments` `{"payments": [payment, ...]}`, the `id/retrieve/*` calls `{"paymentId"}`.
//! - A refund is `{"refundId", "paymentId", "refundOrderId", "amount", "currencyCode",
//!   "status", "createdAt", "updatedAt"}` with status `Initiated`, `Captured` or `Cancelled`;
//!   `refunds` answers `{"paymentId", "refundIds": [...]}` in creation order.
//! - `manage/token` and `manage/token/reset` answer `{"accessToken"}`; terminal information,
//!   `manage/create` and `manage/delete` answer `{"terminalId", "name", "storeId", "posId"}`;
//!   `manage/stores` answers `{"storeIds"}`, `manage/store` `{"storeId", "name", "street",
//!   "zipCode", "city", "terminalIds"}`; the check-in calls answer `{"terminalId", "posId",
//!   "checkedIn", "customerId", "checkedInAt"}`; `terminal/qrcode` answers `{"terminalId",
//!   "posId", "qrCodeUrl"}`.
//! - Errors are `{"errorCode": "UPPER_SNAKE", "message": "..."}` with `400` for a missing or
//!   malformed field, `401` for credentials, `404` for an unknown (or another merchant's)
//!   terminal, PoS, store, payment or refund, `409` for a call the current state refuses
//!   (`ACTIVE_PAYMENT_EXISTS`, `PAYMENT_NOT_RESERVED`, `PAYMENT_CAPTURED`, ...) and `422` for an
//!   amount over what may be captured or refunded.
//! - Repeats are idempotent where a retry after a lost answer needs it: a start or prepare with
//!   an `orderId` the merchant already used answers that payment when PoS and amount agree
//!   (`409 ORDER_ID_REUSED` otherwise), a `refundOrderId` likewise answers its refund, and
//!   repeating ready, capture (same amount), cancel, refund capture or refund cancel that
//!   already took effect answers the current state.
//! - `payments` without `state` lists active payments (Initiated, Prepared, Paired,
//!   IssuedToUser, Reserved); with a `state` it lists payments in exactly that state. The
//!   `paymentState` of `id/retrieve/byterminal` and `byposId` is optional (any state when
//!   absent); `id/retrieve/bystate` refuses any `state` but `Captured` with `400`.
//! - A refund may be created only for a captured payment, for at most the captured amount less
//!   every refund not cancelled; `manage/delete` refuses a PoS with an active payment; start,
//!   prepare, the QR code and check-in need a terminal with a PoS (`409 NO_POS`).
//!
//! Timing knobs for the money tests: the customer's time to decide can be drawn from a range
//! ([`MobilePayConfig::decide`]), and the lookups can lag behind a payment's creation
//! ([`MobilePayConfig::lookup_lag`]); a start repeating an `orderId` always finds its payment.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Settings of the MobilePay sandbox.
#[derive(Debug, Clone)]
pub struct MobilePayConfig {
    /// Merchants, each with its stores and terminals.
    pub merchants: Vec<MerchantConfig>,
    /// What the customer does with a payment that becomes `Initiated`, unless a script was
    /// queued with [`MobilePay::push_customer`].
    pub customer: CustomerScript,
    /// Seed for ids and tokens.
    pub seed: u64,
    /// When set, a scripted customer's time to decide is drawn from this range (instead of the
    /// script's own delay).
    pub decide: Option<(Duration, Duration)>,
    /// How long after creation a payment stays invisible to the lookups (`payments`,
    /// `payment/id/retrieve/*`), as a lagging read replica would keep it.
    pub lookup_lag: Duration,
    /// Capture this many minor units less than asked (a provider that takes another amount).
    pub capture_short_by: i64,
}

/// A merchant.
#[derive(Debug, Clone)]
pub struct MerchantConfig {
    /// The merchant's `bioCode`.
    pub bio_code: String,
    /// Its long-lived access token (`None`: one must be created with `manage/token`).
    pub access_token: Option<String>,
    /// ISO 4217 currency of its payments.
    pub currency: String,
    /// Its stores.
    pub stores: Vec<StoreConfig>,
}

/// A store of a merchant.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Store id.
    pub store_id: String,
    /// Name.
    pub name: String,
    /// Street address.
    pub street: String,
    /// Postal code.
    pub zip_code: String,
    /// City.
    pub city: String,
    /// Its terminals.
    pub terminals: Vec<TerminalConfig>,
}

/// A terminal (cash register) of a store.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// Terminal id.
    pub terminal_id: String,
    /// Name.
    pub name: String,
    /// The PoS registered for it at start, if any.
    pub pos_id: Option<String>,
}

impl Default for MobilePayConfig {
    fn default() -> Self {
        MobilePayConfig {
            merchants: vec![MerchantConfig {
                bio_code: "KASA-BIO-0001".into(),
                access_token: Some("mp-demo-access-token".into()),
                currency: "DKK".into(),
                stores: vec![StoreConfig {
                    store_id: "STORE-0001".into(),
                    name: "Kasa Forecourt Vesterbro".into(),
                    street: "Vesterbrogade 1".into(),
                    zip_code: "1620".into(),
                    city: "København V".into(),
                    terminals: vec![
                        TerminalConfig {
                            terminal_id: "KASA-LANE-1".into(),
                            name: "Lane 1".into(),
                            pos_id: Some("POS-KASA-LANE-1".into()),
                        },
                        TerminalConfig { terminal_id: "KASA-LANE-2".into(), name: "Lane 2".into(), pos_id: None },
                    ],
                }],
            }],
            customer: CustomerScript::ApproveAfter(Duration::ZERO),
            seed: 13,
            decide: None,
            lookup_lag: Duration::ZERO,
            capture_short_by: 0,
        }
    }
}

impl MobilePayConfig {
    /// A sandbox for demos: the customer takes a moment to approve in the app.
    pub fn demo() -> MobilePayConfig {
        MobilePayConfig { customer: CustomerScript::ApproveAfter(Duration::from_millis(2500)), ..Default::default() }
    }
}

/// What the simulated customer does with a payment once it is `Initiated` (started, or a
/// prepared payment readied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerScript {
    /// Nothing happens by itself; tests drive the customer through [`MobilePay`]'s methods.
    Manual,
    /// After the delay the customer checks in at the PoS and approves (the payment is
    /// `Reserved`).
    ApproveAfter(Duration),
    /// After the delay the customer checks in and rejects (`CancelledByUser`).
    RejectAfter(Duration),
    /// After the delay the payment expires (`ExpiredAndCancelled`).
    ExpireAfter(Duration),
}

/// Why a simulated customer action could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerError {
    /// No such payment.
    UnknownPayment(String),
    /// No terminal with that terminal id or posId.
    UnknownPos(String),
    /// The terminal has no PoS to check in at.
    NoPos(String),
    /// The payment's status does not allow the action.
    WrongState {
        /// The payment.
        payment_id: String,
        /// Its status.
        status: &'static str,
    },
    /// Nothing is active at the PoS.
    NoActivePayment(String),
}

impl std::fmt::Display for CustomerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CustomerError::UnknownPayment(id) => write!(f, "no payment '{id}'"),
            CustomerError::UnknownPos(id) => write!(f, "no terminal or PoS '{id}'"),
            CustomerError::NoPos(id) => write!(f, "terminal '{id}' has no PoS"),
            CustomerError::WrongState { payment_id, status } => {
                write!(f, "payment '{payment_id}' is {status}")
            }
            CustomerError::NoActivePayment(id) => write!(f, "no active payment at '{id}'"),
        }
    }
}

impl std::error::Error for CustomerError {}

/// Payment statuses of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Initiated,
    Prepared,
    Paired,
    IssuedToUser,
    Reserved,
    Captured,
    CancelledByUser,
    CancelledByClient,
    CancelledByMobilePay,
    ExpiredAndCancelled,
    RejectedByMobilePayDueToAgeRestrictions,
}

const STATUSES: [Status; 11] = [
    Status::Initiated,
    Status::Prepared,
    Status::Paired,
    Status::IssuedToUser,
    Status::Reserved,
    Status::Captured,
    Status::CancelledByUser,
    Status::CancelledByClient,
    Status::CancelledByMobilePay,
    Status::ExpiredAndCancelled,
    Status::RejectedByMobilePayDueToAgeRestrictions,
];

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Initiated => "Initiated",
            Status::Prepared => "Prepared",
            Status::Paired => "Paired",
            Status::IssuedToUser => "IssuedToUser",
            Status::Reserved => "Reserved",
            Status::Captured => "Captured",
            Status::CancelledByUser => "CancelledByUser",
            Status::CancelledByClient => "CancelledByClient",
            Status::CancelledByMobilePay => "CancelledByMobilePay",
            Status::ExpiredAndCancelled => "ExpiredAndCancelled",
            Status::RejectedByMobilePayDueToAgeRestrictions => "RejectedByMobilePayDueToAgeRestrictions",
        }
    }

    /// Parses a status name; letter case is ignored, as ASP.NET binds enums.
    fn parse(text: &str) -> Option<Status> {
        STATUSES.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(text))
    }

    /// Neither captured, cancelled, expired nor rejected.
    fn is_active(self) -> bool {
        matches!(self, Status::Initiated | Status::Prepared | Status::Paired | Status::IssuedToUser | Status::Reserved)
    }
}

struct Merchant {
    access_token: Option<String>,
    currency: String,
}

struct Store {
    bio_code: String,
    name: String,
    street: String,
    zip_code: String,
    city: String,
}

struct CheckIn {
    customer_id: String,
    at: OffsetDateTime,
}

struct Terminal {
    bio_code: String,
    store_id: String,
    name: String,
    pos_id: Option<String>,
    checked_in: Option<CheckIn>,
}

struct Payment {
    seq: u64,
    bio_code: String,
    order_id: String,
    terminal_id: String,
    pos_id: String,
    store_id: String,
    amount: Option<i64>,
    currency: String,
    status: Status,
    history: Vec<Status>,
    captured: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    /// When lookups start to see it.
    visible_from: std::time::Instant,
}

impl Payment {
    /// Whether the lookups see it yet.
    fn visible(&self) -> bool {
        std::time::Instant::now() >= self.visible_from
    }
}

struct Refund {
    seq: u64,
    bio_code: String,
    payment_id: String,
    refund_order_id: String,
    amount: i64,
    currency: String,
    status: &'static str,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

struct Inner {
    customer: CustomerScript,
    decide: Option<(Duration, Duration)>,
    lookup_lag: Duration,
    capture_short_by: i64,
    scripts: VecDeque<CustomerScript>,
    merchants: BTreeMap<String, Merchant>,
    stores: BTreeMap<String, Store>,
    terminals: BTreeMap<String, Terminal>,
    payments: BTreeMap<String, Payment>,
    refunds: BTreeMap<String, Refund>,
    next_seq: u64,
    next_customer: u64,
    rng: StdRng,
}

/// The MobilePay sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct MobilePay {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MobilePay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MobilePay")
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Where the QR code images of PoS live (made up: the document only says "image link").
const QR_BASE: &str = "https://sandprod-pos2.mobilepay.dk/qr";

/// An amount in minor units as a JSON number with two fraction digits.
fn amount_json(minor: i64) -> Value {
    let text = format!("{}.{:02}", minor / 100, (minor % 100).abs());
    text.parse::<serde_json::Number>().map(Value::Number).unwrap_or(Value::Null)
}

/// Reads a positive decimal amount with at most two fraction digits into minor units.
fn parse_amount(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 2 || (text.contains('.') && frac.is_empty())
    {
        return None;
    }
    let cents: i64 = if frac.is_empty() { 0 } else { frac.parse::<i64>().ok()? * if frac.len() == 1 { 10 } else { 1 } };
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(cents)
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn guid(&mut self) -> String {
        let a: u128 = self.rng.random();
        let h = format!("{a:032x}");
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    /// The terminal id of a terminal named by its terminal id or its posId.
    fn terminal_for(&self, target: &str) -> Option<String> {
        if self.terminals.contains_key(target) {
            return Some(target.to_string());
        }
        self.terminals.iter().find(|(_, t)| t.pos_id.as_deref() == Some(target)).map(|(id, _)| id.clone())
    }

    fn active_on_pos(&self, pos_id: &str) -> Option<String> {
        self.payments.iter().find(|(_, p)| p.pos_id == pos_id && p.status.is_active()).map(|(id, _)| id.clone())
    }

    fn payment_by_order(&self, bio_code: &str, order_id: &str) -> Option<String> {
        self.payments
            .iter()
            .filter(|(_, p)| p.bio_code == bio_code && p.order_id == order_id)
            .max_by_key(|(_, p)| p.seq)
            .map(|(id, _)| id.clone())
    }

    /// Moves a payment to a status; a customer at its PoS leaves once it is over.
    fn set_status(&mut self, payment_id: &str, status: Status) {
        let Some(p) = self.payments.get_mut(payment_id) else { return };
        p.status = status;
        p.history.push(status);
        p.updated_at = now();
        if !status.is_active() {
            let terminal_id = p.terminal_id.clone();
            if let Some(t) = self.terminals.get_mut(&terminal_id) {
                t.checked_in = None;
            }
        }
    }

    /// What a checked-in customer does to the active payment: a prepared payment is paired; an
    /// initiated one is paired and, when `issue`, shown in the app.
    fn advance_for_customer(&mut self, payment_id: &str, issue: bool) {
        let Some(p) = self.payments.get(payment_id) else { return };
        match (p.status, p.amount.is_some()) {
            (Status::Prepared, _) => self.set_status(payment_id, Status::Paired),
            (Status::Initiated, _) => {
                self.set_status(payment_id, Status::Paired);
                if issue {
                    self.set_status(payment_id, Status::IssuedToUser);
                }
            }
            (Status::Paired, true) if issue => self.set_status(payment_id, Status::IssuedToUser),
            _ => {}
        }
    }

    fn check_in(&mut self, target: &str, issue: bool) -> Result<(), CustomerError> {
        let terminal_id = self.terminal_for(target).ok_or_else(|| CustomerError::UnknownPos(target.into()))?;
        let n = self.next_customer + 1;
        let t = self.terminals.get_mut(&terminal_id).ok_or_else(|| CustomerError::UnknownPos(target.into()))?;
        let pos_id = t.pos_id.clone().ok_or_else(|| CustomerError::NoPos(terminal_id.clone()))?;
        if t.checked_in.is_none() {
            t.checked_in = Some(CheckIn { customer_id: format!("MPU-{n:06}"), at: now() });
            self.next_customer = n;
        }
        if let Some(pid) = self.active_on_pos(&pos_id) {
            self.advance_for_customer(&pid, issue);
        }
        Ok(())
    }

    fn customer_step(&mut self, payment_id: &str, allowed: &[Status], to: Status) -> Result<(), CustomerError> {
        let p = self.payments.get(payment_id).ok_or_else(|| CustomerError::UnknownPayment(payment_id.into()))?;
        if !allowed.contains(&p.status) {
            return Err(CustomerError::WrongState { payment_id: payment_id.into(), status: p.status.as_str() });
        }
        self.set_status(payment_id, to);
        Ok(())
    }

    fn refunded(&self, payment_id: &str, counts: impl Fn(&Refund) -> bool) -> i64 {
        self.refunds.values().filter(|r| r.payment_id == payment_id && counts(r)).map(|r| r.amount).sum()
    }

    fn payment_value(&self, id: &str, p: &Payment) -> Value {
        json!({
            "paymentId": id,
            "orderId": p.order_id,
            "terminalId": p.terminal_id,
            "posId": p.pos_id,
            "storeId": p.store_id,
            "amount": p.amount.map(amount_json),
            "currencyCode": p.currency,
            "status": p.status.as_str(),
            "capturedAmount": amount_json(p.captured),
            "refundedAmount": amount_json(self.refunded(id, |r| r.status == "Captured")),
            "createdAt": rfc3339(p.created_at),
            "updatedAt": rfc3339(p.updated_at),
        })
    }

    fn payment_json(&self, id: &str) -> Option<Value> {
        self.payments.get(id).map(|p| self.payment_value(id, p))
    }
}

fn refund_value(id: &str, r: &Refund) -> Value {
    json!({
        "refundId": id,
        "paymentId": r.payment_id,
        "refundOrderId": r.refund_order_id,
        "amount": amount_json(r.amount),
        "currencyCode": r.currency,
        "status": r.status,
        "createdAt": rfc3339(r.created_at),
        "updatedAt": rfc3339(r.updated_at),
    })
}

const ACTIVE: &[Status] =
    &[Status::Initiated, Status::Prepared, Status::Paired, Status::IssuedToUser, Status::Reserved];
const BEFORE_RESERVED: &[Status] = &[Status::Initiated, Status::Prepared, Status::Paired, Status::IssuedToUser];

impl MobilePay {
    /// A sandbox with the configured merchants, stores and terminals.
    pub fn new(config: MobilePayConfig) -> MobilePay {
        let mut merchants = BTreeMap::new();
        let mut stores = BTreeMap::new();
        let mut terminals = BTreeMap::new();
        for m in config.merchants {
            for s in m.stores {
                for t in s.terminals {
                    terminals.insert(
                        t.terminal_id,
                        Terminal {
                            bio_code: m.bio_code.clone(),
                            store_id: s.store_id.clone(),
                            name: t.name,
                            pos_id: t.pos_id,
                            checked_in: None,
                        },
                    );
                }
                stores.insert(
                    s.store_id,
                    Store {
                        bio_code: m.bio_code.clone(),
                        name: s.name,
                        street: s.street,
                        zip_code: s.zip_code,
                        city: s.city,
                    },
                );
            }
            merchants.insert(m.bio_code, Merchant { access_token: m.access_token, currency: m.currency });
        }
        MobilePay {
            inner: Arc::new(Mutex::new(Inner {
                customer: config.customer,
                decide: config.decide,
                lookup_lag: config.lookup_lag,
                capture_short_by: config.capture_short_by,
                scripts: VecDeque::new(),
                merchants,
                stores,
                terminals,
                payments: BTreeMap::new(),
                refunds: BTreeMap::new(),
                next_seq: 0,
                next_customer: 0,
                rng: StdRng::seed_from_u64(config.seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP routes of the document, plus `/_sim/mobilepay/...` controls for a demo panel.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/pos/refund/create", get_post(refund_create))
            .route("/api/pos/refund/details", get_only(refund_details))
            .route("/api/pos/refunds", get_only(refunds))
            .route("/api/pos/refund/capture", get_only(refund_capture))
            .route("/api/pos/refund/cancel", get_only(refund_cancel))
            .route("/api/pos/terminal/qrcode", get_only(qrcode))
            .route("/api/pos/payment/start", get_post(start_by_terminal))
            .route("/api/pos/payment/start/byPosId", get_post(start_by_pos))
            .route("/api/pos/payment/prepare", get_post(prepare))
            .route("/api/pos/payment/ready", get_post(ready))
            .route("/api/pos/payment/details", get_only(details))
            .route("/api/pos/payments", get_only(payments))
            .route("/api/pos/payment/status", get_only(status))
            .route("/api/pos/payment/capture", get_only(capture))
            .route("/api/pos/payment/cancel", get_only(cancel))
            .route("/api/pos/payment/id/retrieve/bystate", get_only(retrieve_by_state))
            .route("/api/pos/payment/id/retrieve/byterminal", get_only(retrieve_by_terminal))
            .route("/api/pos/payment/id/retrieve/byposId", get_only(retrieve_by_pos))
            .route("/api/pos/manage/token", get_post(token))
            .route("/api/pos/manage/token/reset", get_only(token_reset))
            .route("/api/pos/manage/create", get_post(create_pos))
            .route("/api/pos/manage/delete", get_delete(delete_pos))
            .route("/api/pos/manage/terminal/information", get_only(terminal_information))
            .route("/api/pos/manage/stores", get_only(stores))
            .route("/api/pos/manage/store", get_only(store))
            .route("/api/pos/manage/checkInStatus/byposId", get_only(check_in_by_pos))
            .route("/api/pos/manage/checkInStatus/byterminalId", get_only(check_in_by_terminal))
            .route("/_sim/mobilepay/terminals/{terminal_id}/check-in", post(sim_check_in))
            .route("/_sim/mobilepay/terminals/{terminal_id}/approve", post(sim_approve))
            .route("/_sim/mobilepay/terminals/{terminal_id}/reject", post(sim_reject))
            .with_state(self.clone())
    }

    /// Sets what the customer does with payments that have no queued script.
    pub fn set_customer(&self, script: CustomerScript) {
        self.lock().customer = script;
    }

    /// Queues what the customer does with the next payment that becomes `Initiated`.
    pub fn push_customer(&self, script: CustomerScript) {
        self.lock().scripts.push_back(script);
    }

    /// A customer checks in at a PoS (named by terminal id or posId): an `Initiated` payment
    /// there becomes `Paired`, then `IssuedToUser`; a `Prepared` one becomes `Paired`. A
    /// payment started later at that PoS is paired as soon as it is initiated.
    pub fn check_in(&self, pos: &str) -> Result<(), CustomerError> {
        self.lock().check_in(pos, true)
    }

    /// A customer checks in, but the app has not shown the payment yet: an `Initiated` or
    /// `Prepared` payment at that PoS becomes `Paired` and stays so until [`MobilePay::issue`].
    pub fn pair(&self, pos: &str) -> Result<(), CustomerError> {
        self.lock().check_in(pos, false)
    }

    /// The app shows a paired payment with its amount to the customer: `Paired` →
    /// `IssuedToUser`.
    pub fn issue(&self, payment_id: &str) -> Result<(), CustomerError> {
        let mut g = self.lock();
        let ready = g.payments.get(payment_id).is_some_and(|p| p.amount.is_some());
        if !ready {
            let status = g.payments.get(payment_id).map(|p| p.status.as_str());
            return match status {
                None => Err(CustomerError::UnknownPayment(payment_id.into())),
                Some(status) => Err(CustomerError::WrongState { payment_id: payment_id.into(), status }),
            };
        }
        g.customer_step(payment_id, &[Status::Paired], Status::IssuedToUser)
    }

    /// The customer leaves the PoS without doing anything.
    pub fn check_out(&self, pos: &str) -> Result<(), CustomerError> {
        let mut g = self.lock();
        let terminal_id = g.terminal_for(pos).ok_or_else(|| CustomerError::UnknownPos(pos.into()))?;
        if let Some(t) = g.terminals.get_mut(&terminal_id) {
            t.checked_in = None;
        }
        Ok(())
    }

    /// The customer approves in the app: `IssuedToUser` → `Reserved`.
    pub fn approve(&self, payment_id: &str) -> Result<(), CustomerError> {
        self.lock().customer_step(payment_id, &[Status::IssuedToUser], Status::Reserved)
    }

    /// The customer rejects in the app (or before it reached the app): → `CancelledByUser`.
    pub fn reject(&self, payment_id: &str) -> Result<(), CustomerError> {
        self.lock().customer_step(payment_id, BEFORE_RESERVED, Status::CancelledByUser)
    }

    /// The payment (or its reservation) times out: → `ExpiredAndCancelled`.
    pub fn expire(&self, payment_id: &str) -> Result<(), CustomerError> {
        self.lock().customer_step(payment_id, ACTIVE, Status::ExpiredAndCancelled)
    }

    /// MobilePay refuses the customer for age: → `RejectedByMobilePayDueToAgeRestrictions`.
    pub fn age_reject(&self, payment_id: &str) -> Result<(), CustomerError> {
        self.lock().customer_step(payment_id, BEFORE_RESERVED, Status::RejectedByMobilePayDueToAgeRestrictions)
    }

    /// MobilePay cancels the payment itself: → `CancelledByMobilePay`.
    pub fn cancel_by_mobilepay(&self, payment_id: &str) -> Result<(), CustomerError> {
        self.lock().customer_step(payment_id, ACTIVE, Status::CancelledByMobilePay)
    }

    /// The active payment at a PoS (named by terminal id or posId).
    pub fn active_payment(&self, pos: &str) -> Option<String> {
        let g = self.lock();
        let terminal_id = g.terminal_for(pos)?;
        let pos_id = g.terminals.get(&terminal_id)?.pos_id.clone()?;
        g.active_on_pos(&pos_id)
    }

    /// A payment as `payment/details` answers it.
    pub fn payment_json(&self, payment_id: &str) -> Option<Value> {
        self.lock().payment_json(payment_id)
    }

    /// Every status a payment went through, in order.
    pub fn payment_history(&self, payment_id: &str) -> Vec<String> {
        let g = self.lock();
        g.payments
            .get(payment_id)
            .map(|p| p.history.iter().map(|s| s.as_str().to_string()).collect())
            .unwrap_or_default()
    }

    /// Every payment, oldest first.
    pub fn payments(&self) -> Vec<Value> {
        let g = self.lock();
        let mut list: Vec<(&String, &Payment)> = g.payments.iter().collect();
        list.sort_by_key(|(_, p)| p.seq);
        list.into_iter().map(|(id, p)| g.payment_value(id, p)).collect()
    }

    /// Captured payments, oldest first.
    pub fn captured_payments(&self) -> Vec<Value> {
        self.payments().into_iter().filter(|p| p["status"] == "Captured").collect()
    }

    /// A refund as `refund/details` answers it.
    pub fn refund_json(&self, refund_id: &str) -> Option<Value> {
        self.lock().refunds.get(refund_id).map(|r| refund_value(refund_id, r))
    }

    /// Every refund, oldest first.
    pub fn refunds(&self) -> Vec<Value> {
        let g = self.lock();
        let mut list: Vec<(&String, &Refund)> = g.refunds.iter().collect();
        list.sort_by_key(|(_, r)| r.seq);
        list.into_iter().map(|(id, r)| refund_value(id, r)).collect()
    }

    /// A merchant's current access token.
    pub fn access_token(&self, bio_code: &str) -> Option<String> {
        self.lock().merchants.get(bio_code).and_then(|m| m.access_token.clone())
    }

    /// The posId of a terminal, if it has a PoS.
    pub fn pos_id(&self, terminal_id: &str) -> Option<String> {
        self.lock().terminals.get(terminal_id).and_then(|t| t.pos_id.clone())
    }

    /// Runs the customer's script for a payment that just became `Initiated`.
    fn run_customer(&self, payment_id: String) {
        let (script, drawn) = {
            let mut g = self.lock();
            let queued = g.scripts.pop_front();
            let drawn = g.decide.map(|(min, max)| if max > min { g.rng.random_range(min..=max) } else { min });
            (queued.unwrap_or(g.customer), drawn)
        };
        let after = match script {
            CustomerScript::Manual => return,
            CustomerScript::ApproveAfter(d) | CustomerScript::RejectAfter(d) | CustomerScript::ExpireAfter(d) => {
                drawn.unwrap_or(d)
            }
        };
        let this = self.clone();
        // The customer acts on their own: the outcome comes whether or not anyone polls.
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            let mut g = this.lock();
            let Some(p) = g.payments.get(&payment_id) else { return };
            if !p.status.is_active() {
                return;
            }
            let pos_id = p.pos_id.clone();
            let _ = match script {
                CustomerScript::ApproveAfter(_) => g
                    .check_in(&pos_id, true)
                    .and_then(|()| g.customer_step(&payment_id, &[Status::IssuedToUser], Status::Reserved)),
                CustomerScript::RejectAfter(_) => g
                    .check_in(&pos_id, true)
                    .and_then(|()| g.customer_step(&payment_id, BEFORE_RESERVED, Status::CancelledByUser)),
                CustomerScript::ExpireAfter(_) => g.customer_step(&payment_id, ACTIVE, Status::ExpiredAndCancelled),
                CustomerScript::Manual => Ok(()),
            };
        });
    }
}

/// An error answer: `{"errorCode", "message"}`.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"errorCode": self.1, "message": self.2}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message.into())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message.into())
}

fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::CONFLICT, code, message.into())
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, code, message.into())
}

/// The fields of a call: the query string of a GET or DELETE, the JSON body of a POST.
struct Params(Map<String, Value>);

impl Params {
    fn from_query(q: HashMap<String, String>) -> Params {
        Params(q.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
    }

    fn from_body(body: &Bytes) -> Result<Params, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Params(m)),
            Ok(_) => Err(bad_request("the body must be a JSON object")),
            Err(e) => Err(bad_request(format!("the body is not JSON: {e}"))),
        }
    }

    /// A field as text (numbers as written); absent, null or empty is `None`.
    fn opt(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    fn req(&self, name: &str) -> Result<String, ApiError> {
        self.opt(name).ok_or_else(|| bad_request(format!("{name} is required")))
    }

    fn amount(&self, name: &str) -> Result<i64, ApiError> {
        let text = self.req(name)?;
        match parse_amount(&text) {
            Some(a) if a > 0 => Ok(a),
            _ => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "INVALID_AMOUNT",
                format!("{name} '{text}' must be a positive decimal with at most two fraction digits"),
            )),
        }
    }

    fn status(&self, name: &str) -> Result<Option<Status>, ApiError> {
        match self.opt(name) {
            None => Ok(None),
            Some(s) => Status::parse(&s)
                .map(Some)
                .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "INVALID_STATE", format!("unknown {name} '{s}'"))),
        }
    }
}

type Endpoint = fn(&MobilePay, &Params) -> ApiResult;

async fn dispatch(
    mp: MobilePay,
    method: Method,
    query: HashMap<String, String>,
    body: Bytes,
    ep: Endpoint,
) -> Response {
    let params = if method == Method::POST { Params::from_body(&body) } else { Ok(Params::from_query(query)) };
    match params.and_then(|p| ep(&mp, &p)) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The answer of a handler made from an [`Endpoint`].
type Reply = std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

/// An axum handler that reads the fields from the query or the body, then runs `ep`.
fn handler(ep: Endpoint) -> impl Fn(State<MobilePay>, Method, Query<HashMap<String, String>>, Bytes) -> Reply + Clone {
    move |State(mp), method, Query(q), body| Box::pin(dispatch(mp, method, q, body, ep))
}

fn get_only(ep: Endpoint) -> MethodRouter<MobilePay> {
    get(handler(ep))
}

fn get_post(ep: Endpoint) -> MethodRouter<MobilePay> {
    get(handler(ep)).post(handler(ep))
}

fn get_delete(ep: Endpoint) -> MethodRouter<MobilePay> {
    get(handler(ep)).delete(handler(ep))
}

/// Checks `accessToken` and `bioCode`; answers the merchant's bioCode.
fn authorize(g: &Inner, p: &Params) -> Result<String, ApiError> {
    let bio = p.opt("bioCode").ok_or_else(|| unauthorized("bioCode is required"))?;
    let token = p.opt("accessToken").ok_or_else(|| unauthorized("accessToken is required"))?;
    match g.merchants.get(&bio) {
        Some(m) if m.access_token.as_deref() == Some(token.as_str()) => Ok(bio),
        _ => Err(unauthorized("unknown bioCode or accessToken")),
    }
}

fn check_currency(g: &Inner, bio: &str, p: &Params) -> Result<String, ApiError> {
    let code = p.req("currencyCode")?;
    let expected = g.merchants.get(bio).map(|m| m.currency.as_str()).unwrap_or_default();
    if code.eq_ignore_ascii_case(expected) {
        Ok(expected.to_string())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            "INVALID_CURRENCY",
            format!("currencyCode '{code}' is not the merchant's currency {expected}"),
        ))
    }
}

/// A terminal of the merchant.
fn terminal<'a>(g: &'a Inner, bio: &str, terminal_id: &str) -> Result<&'a Terminal, ApiError> {
    g.terminals
        .get(terminal_id)
        .filter(|t| t.bio_code == bio)
        .ok_or_else(|| not_found("TERMINAL_NOT_FOUND", format!("no terminal '{terminal_id}'")))
}

/// The terminal id behind a posId of the merchant.
fn terminal_by_pos(g: &Inner, bio: &str, pos_id: &str) -> Result<String, ApiError> {
    g.terminals
        .iter()
        .find(|(_, t)| t.bio_code == bio && t.pos_id.as_deref() == Some(pos_id))
        .map(|(id, _)| id.clone())
        .ok_or_else(|| not_found("POS_NOT_FOUND", format!("no PoS '{pos_id}'")))
}

fn pos_of(t: &Terminal, terminal_id: &str) -> Result<String, ApiError> {
    t.pos_id.clone().ok_or_else(|| conflict("NO_POS", format!("terminal '{terminal_id}' has no PoS; create one first")))
}

/// A payment of the merchant.
fn payment<'a>(g: &'a Inner, bio: &str, payment_id: &str) -> Result<&'a Payment, ApiError> {
    g.payments
        .get(payment_id)
        .filter(|p| p.bio_code == bio)
        .ok_or_else(|| not_found("PAYMENT_NOT_FOUND", format!("no payment '{payment_id}'")))
}

fn refund<'a>(g: &'a Inner, bio: &str, refund_id: &str) -> Result<&'a Refund, ApiError> {
    g.refunds
        .get(refund_id)
        .filter(|r| r.bio_code == bio)
        .ok_or_else(|| not_found("REFUND_NOT_FOUND", format!("no refund '{refund_id}'")))
}

fn payment_answer(g: &Inner, payment_id: &str) -> ApiResult {
    match g.payment_json(payment_id) {
        Some(v) => ok(v),
        None => Err(not_found("PAYMENT_NOT_FOUND", format!("no payment '{payment_id}'"))),
    }
}

/// Creates a payment at a PoS, or answers the existing payment of a repeated `orderId`.
/// `amount` is `None` for a prepared payment. Answers the payment and whether it is new.
fn create_payment(
    g: &mut Inner,
    bio: &str,
    terminal_id: &str,
    order_id: &str,
    amount: Option<i64>,
    currency: String,
) -> Result<(String, bool), ApiError> {
    let t = terminal(g, bio, terminal_id)?;
    let pos_id = pos_of(t, terminal_id)?;
    let store_id = t.store_id.clone();
    // Inferred (the document does not say): the same orderId again answers the payment it
    // created, so a start whose answer was lost can be repeated safely.
    if let Some(existing) = g.payment_by_order(bio, order_id) {
        let p = &g.payments[&existing];
        if p.pos_id == pos_id && p.amount == amount {
            return Ok((existing, false));
        }
        return Err(conflict(
            "ORDER_ID_REUSED",
            format!("orderId '{order_id}' was already used for payment {existing} with another PoS or amount"),
        ));
    }
    if let Some(active) = g.active_on_pos(&pos_id) {
        return Err(conflict(
            "ACTIVE_PAYMENT_EXISTS",
            format!("PoS '{pos_id}' already has an active payment ({active}); cancel it or finish it first"),
        ));
    }
    let id = g.guid();
    let seq = g.seq();
    let at = now();
    let status = if amount.is_some() { Status::Initiated } else { Status::Prepared };
    g.payments.insert(
        id.clone(),
        Payment {
            seq,
            bio_code: bio.to_string(),
            order_id: order_id.to_string(),
            terminal_id: terminal_id.to_string(),
            pos_id,
            store_id,
            amount,
            currency,
            status,
            history: vec![status],
            captured: 0,
            created_at: at,
            updated_at: at,
            visible_from: std::time::Instant::now() + g.lookup_lag,
        },
    );
    if g.terminals.get(terminal_id).is_some_and(|t| t.checked_in.is_some()) {
        g.advance_for_customer(&id, true);
    }
    Ok((id, true))
}

fn start(mp: &MobilePay, p: &Params, by_pos: bool) -> ApiResult {
    let (answer, started) = {
        let mut g = mp.lock();
        let bio = authorize(&g, p)?;
        let order_id = p.req("orderId")?;
        let amount = p.amount("amount")?;
        let currency = check_currency(&g, &bio, p)?;
        let terminal_id = if by_pos { terminal_by_pos(&g, &bio, &p.req("posId")?)? } else { p.req("terminalId")? };
        let (id, new) = create_payment(&mut g, &bio, &terminal_id, &order_id, Some(amount), currency)?;
        (payment_answer(&g, &id), new.then_some(id))
    };
    if let Some(id) = started {
        mp.run_customer(id);
    }
    answer
}

fn start_by_terminal(mp: &MobilePay, p: &Params) -> ApiResult {
    start(mp, p, false)
}

fn start_by_pos(mp: &MobilePay, p: &Params) -> ApiResult {
    start(mp, p, true)
}

fn prepare(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let order_id = p.req("orderId")?;
    let terminal_id = p.req("terminalId")?;
    let currency = g.merchants.get(&bio).map(|m| m.currency.clone()).unwrap_or_default();
    let (id, _) = create_payment(&mut g, &bio, &terminal_id, &order_id, None, currency)?;
    payment_answer(&g, &id)
}

fn ready(mp: &MobilePay, p: &Params) -> ApiResult {
    let (answer, readied) = {
        let mut g = mp.lock();
        let bio = authorize(&g, p)?;
        let payment_id = p.req("paymentId")?;
        let order_id = p.req("orderId")?;
        let terminal_id = p.req("terminalId")?;
        let amount = p.amount("amount")?;
        check_currency(&g, &bio, p)?;
        let pay = payment(&g, &bio, &payment_id)?;
        if pay.order_id != order_id || pay.terminal_id != terminal_id {
            return Err(bad_request(format!(
                "payment {payment_id} was prepared for orderId '{}' at terminal '{}'",
                pay.order_id, pay.terminal_id
            )));
        }
        let (status, readied_amount) = (pay.status, pay.amount);
        match readied_amount {
            // Inferred: readying again with the same amount answers the payment as it is.
            Some(a) if a == amount => (payment_answer(&g, &payment_id), None),
            Some(_) => return Err(conflict("PAYMENT_NOT_PREPARED", format!("payment {payment_id} is already ready"))),
            None if status == Status::Prepared || status == Status::Paired => {
                if let Some(pay) = g.payments.get_mut(&payment_id) {
                    pay.amount = Some(amount);
                }
                if status == Status::Paired {
                    // The customer is already paired: the app shows the amount at once.
                    g.set_status(&payment_id, Status::IssuedToUser);
                } else {
                    g.set_status(&payment_id, Status::Initiated);
                }
                (payment_answer(&g, &payment_id), Some(payment_id))
            }
            None => {
                return Err(conflict(
                    "PAYMENT_NOT_PREPARED",
                    format!("payment {payment_id} is {}, not Prepared", status.as_str()),
                ));
            }
        }
    };
    if let Some(id) = readied {
        mp.run_customer(id);
    }
    answer
}

fn details(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("paymentId")?;
    payment(&g, &bio, &id)?;
    payment_answer(&g, &id)
}

fn status(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("paymentId")?;
    let pay = payment(&g, &bio, &id)?;
    ok(json!({"paymentId": id, "orderId": pay.order_id, "status": pay.status.as_str()}))
}

fn payments(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let state = p.status("state")?;
    let order_id = p.opt("orderId");
    let terminal_id = p.opt("terminalId");
    let mut list: Vec<(&String, &Payment)> = g
        .payments
        .iter()
        .filter(|(_, x)| x.bio_code == bio && x.visible())
        .filter(|(_, x)| match state {
            Some(s) => x.status == s,
            None => x.status.is_active(),
        })
        .filter(|(_, x)| order_id.as_ref().is_none_or(|o| &x.order_id == o))
        .filter(|(_, x)| terminal_id.as_ref().is_none_or(|t| &x.terminal_id == t))
        .collect();
    list.sort_by_key(|(_, x)| x.seq);
    let list: Vec<Value> = list.into_iter().map(|(id, x)| g.payment_value(id, x)).collect();
    ok(json!({ "payments": list }))
}

fn capture(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("paymentId")?;
    let amount = p.amount("amount")?;
    let pay = payment(&g, &bio, &id)?;
    let (status, reserved, captured) = (pay.status, pay.amount.unwrap_or(0), pay.captured);
    match status {
        Status::Reserved => {
            if amount > reserved {
                return Err(ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "AMOUNT_EXCEEDS_RESERVED",
                    format!("capture of {} exceeds the reserved {}", amount_json(amount), amount_json(reserved)),
                ));
            }
            let short = g.capture_short_by;
            if let Some(pay) = g.payments.get_mut(&id) {
                pay.captured = amount - short;
            }
            g.set_status(&id, Status::Captured);
            payment_answer(&g, &id)
        }
        // Inferred: the same capture again (a retry after a lost answer) answers the payment.
        Status::Captured if captured == amount - g.capture_short_by => payment_answer(&g, &id),
        Status::Captured => Err(conflict("PAYMENT_ALREADY_CAPTURED", format!("payment {id} is already captured"))),
        other => Err(conflict(
            "PAYMENT_NOT_RESERVED",
            format!("payment {id} is {}; only a Reserved payment can be captured", other.as_str()),
        )),
    }
}

fn cancel(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("paymentId")?;
    let status = payment(&g, &bio, &id)?.status;
    match status {
        Status::Captured => {
            Err(conflict("PAYMENT_CAPTURED", format!("payment {id} is captured; refund it instead of cancelling")))
        }
        s if s.is_active() => {
            g.set_status(&id, Status::CancelledByClient);
            payment_answer(&g, &id)
        }
        // Inferred: a payment that is already over stays as it is.
        _ => payment_answer(&g, &id),
    }
}

fn retrieve(g: &Inner, bio: &str, order_id: &str, state: Option<Status>, at: impl Fn(&Payment) -> bool) -> ApiResult {
    g.payments
        .iter()
        .filter(|(_, x)| x.bio_code == bio && x.order_id == order_id && x.visible() && at(x))
        .filter(|(_, x)| state.is_none_or(|s| x.status == s))
        .max_by_key(|(_, x)| x.seq)
        .map(|(id, _)| ok(json!({ "paymentId": id })))
        .unwrap_or_else(|| {
            Err(not_found("PAYMENT_NOT_FOUND", format!("no payment with orderId '{order_id}' in that state")))
        })
}

fn retrieve_by_state(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let order_id = p.req("orderId")?;
    match p.status("state")? {
        Some(Status::Captured) => retrieve(&g, &bio, &order_id, Some(Status::Captured), |_| true),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            "STATE_NOT_SUPPORTED",
            "a paymentId can be retrieved by state only for state Captured".into(),
        )),
    }
}

fn retrieve_by_terminal(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let order_id = p.req("orderId")?;
    let terminal_id = p.req("terminalId")?;
    let state = p.status("paymentState")?;
    terminal(&g, &bio, &terminal_id)?;
    retrieve(&g, &bio, &order_id, state, |x| x.terminal_id == terminal_id)
}

fn retrieve_by_pos(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let order_id = p.req("orderId")?;
    let pos_id = p.req("posId")?;
    let state = p.status("paymentState")?;
    // A payment keeps the posId it was taken at, even after that PoS was deleted.
    if !g.payments.values().any(|x| x.bio_code == bio && x.pos_id == pos_id) {
        terminal_by_pos(&g, &bio, &pos_id)?;
    }
    retrieve(&g, &bio, &order_id, state, |x| x.pos_id == pos_id)
}

fn refund_create(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let payment_id = p.req("paymentId")?;
    let refund_order_id = p.req("refundOrderId")?;
    let amount = p.amount("amount")?;
    let currency = check_currency(&g, &bio, p)?;
    let pay = payment(&g, &bio, &payment_id)?;
    let (status, captured) = (pay.status, pay.captured);
    // Inferred: a refundOrderId already used answers its refund when it is the same request.
    let existing = g
        .refunds
        .iter()
        .find(|(_, r)| r.bio_code == bio && r.refund_order_id == refund_order_id)
        .map(|(id, r)| (id.clone(), r.payment_id == payment_id && r.amount == amount));
    if let Some((id, same)) = existing {
        return if same {
            ok(refund_value(&id, &g.refunds[&id]))
        } else {
            Err(conflict(
                "REFUND_ORDER_ID_REUSED",
                format!("refundOrderId '{refund_order_id}' was already used for refund {id}"),
            ))
        };
    }
    if status != Status::Captured {
        return Err(conflict(
            "PAYMENT_NOT_CAPTURED",
            format!("payment {payment_id} is {}; only a captured payment can be refunded", status.as_str()),
        ));
    }
    let refundable = captured - g.refunded(&payment_id, |r| r.status != "Cancelled");
    if amount > refundable {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "AMOUNT_EXCEEDS_REFUNDABLE",
            format!("refund of {} exceeds the refundable {}", amount_json(amount), amount_json(refundable)),
        ));
    }
    let id = g.guid();
    let seq = g.seq();
    let at = now();
    let r = Refund {
        seq,
        bio_code: bio,
        payment_id,
        refund_order_id,
        amount,
        currency,
        status: "Initiated",
        created_at: at,
        updated_at: at,
    };
    let v = refund_value(&id, &r);
    g.refunds.insert(id, r);
    ok(v)
}

fn refund_details(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("refundId")?;
    ok(refund_value(&id, refund(&g, &bio, &id)?))
}

fn refunds(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let payment_id = p.req("paymentId")?;
    payment(&g, &bio, &payment_id)?;
    let mut list: Vec<(&String, &Refund)> = g.refunds.iter().filter(|(_, r)| r.payment_id == payment_id).collect();
    list.sort_by_key(|(_, r)| r.seq);
    let ids: Vec<&String> = list.into_iter().map(|(id, _)| id).collect();
    ok(json!({ "paymentId": payment_id, "refundIds": ids }))
}

/// Moves a refund from `Initiated` to `to`; a repeat of the same move answers the refund.
fn refund_step(mp: &MobilePay, p: &Params, to: &'static str) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let id = p.req("refundId")?;
    let current = refund(&g, &bio, &id)?.status;
    if current == "Initiated" {
        if let Some(r) = g.refunds.get_mut(&id) {
            r.status = to;
            r.updated_at = now();
        }
    } else if current != to {
        let code = if current == "Captured" { "REFUND_CAPTURED" } else { "REFUND_CANCELLED" };
        return Err(conflict(code, format!("refund {id} is {current}")));
    }
    ok(refund_value(&id, refund(&g, &bio, &id)?))
}

fn refund_capture(mp: &MobilePay, p: &Params) -> ApiResult {
    refund_step(mp, p, "Captured")
}

fn refund_cancel(mp: &MobilePay, p: &Params) -> ApiResult {
    refund_step(mp, p, "Cancelled")
}

fn qrcode(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = p.req("terminalId")?;
    let pos_id = pos_of(terminal(&g, &bio, &terminal_id)?, &terminal_id)?;
    let url = format!("{QR_BASE}/{pos_id}.png");
    ok(json!({"terminalId": terminal_id, "posId": pos_id, "qrCodeUrl": url}))
}

fn new_token(g: &mut Inner) -> String {
    let a: u128 = g.rng.random();
    format!("mp-at-{a:032x}")
}

fn token(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = p.opt("bioCode").ok_or_else(|| unauthorized("bioCode is required"))?;
    let has_token = match g.merchants.get(&bio) {
        None => return Err(unauthorized("unknown bioCode")),
        Some(m) => m.access_token.is_some(),
    };
    if has_token {
        return Err(conflict(
            "ACCESS_TOKEN_EXISTS",
            "the merchant already has an access token; reset it with the previous one",
        ));
    }
    let t = new_token(&mut g);
    if let Some(m) = g.merchants.get_mut(&bio) {
        m.access_token = Some(t.clone());
    }
    ok(json!({ "accessToken": t }))
}

fn token_reset(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = p.opt("bioCode").ok_or_else(|| unauthorized("bioCode is required"))?;
    let previous = p.opt("previousAccessToken").ok_or_else(|| unauthorized("previousAccessToken is required"))?;
    match g.merchants.get(&bio) {
        Some(m) if m.access_token.as_deref() == Some(previous.as_str()) => {}
        _ => return Err(unauthorized("unknown bioCode or previousAccessToken")),
    }
    let t = new_token(&mut g);
    if let Some(m) = g.merchants.get_mut(&bio) {
        m.access_token = Some(t.clone());
    }
    ok(json!({ "accessToken": t }))
}

fn terminal_value(terminal_id: &str, t: &Terminal) -> Value {
    json!({"terminalId": terminal_id, "name": t.name, "storeId": t.store_id, "posId": t.pos_id})
}

fn create_pos(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = p.req("terminalId")?;
    if let Some(pos) = &terminal(&g, &bio, &terminal_id)?.pos_id {
        return Err(conflict(
            "POS_EXISTS",
            format!("terminal '{terminal_id}' already has PoS '{pos}'; delete it before creating another"),
        ));
    }
    let pos_id = g.guid();
    let t = g.terminals.get_mut(&terminal_id).ok_or_else(|| not_found("TERMINAL_NOT_FOUND", "no terminal"))?;
    t.pos_id = Some(pos_id);
    ok(terminal_value(&terminal_id, t))
}

fn delete_pos(mp: &MobilePay, p: &Params) -> ApiResult {
    let mut g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = p.req("terminalId")?;
    let pos_id = terminal(&g, &bio, &terminal_id)?
        .pos_id
        .clone()
        .ok_or_else(|| not_found("POS_NOT_FOUND", format!("terminal '{terminal_id}' has no PoS")))?;
    if let Some(active) = g.active_on_pos(&pos_id) {
        return Err(conflict(
            "ACTIVE_PAYMENT_EXISTS",
            format!("PoS '{pos_id}' has an active payment ({active}); cancel it before deleting the PoS"),
        ));
    }
    let t = g.terminals.get_mut(&terminal_id).ok_or_else(|| not_found("TERMINAL_NOT_FOUND", "no terminal"))?;
    t.pos_id = None;
    t.checked_in = None;
    ok(terminal_value(&terminal_id, t))
}

fn terminal_information(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = p.req("terminalId")?;
    ok(terminal_value(&terminal_id, terminal(&g, &bio, &terminal_id)?))
}

fn stores(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let ids: Vec<&String> = g.stores.iter().filter(|(_, s)| s.bio_code == bio).map(|(id, _)| id).collect();
    ok(json!({ "storeIds": ids }))
}

fn store(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let store_id = p.req("storeId")?;
    let s = g
        .stores
        .get(&store_id)
        .filter(|s| s.bio_code == bio)
        .ok_or_else(|| not_found("STORE_NOT_FOUND", format!("no store '{store_id}'")))?;
    let terminals: Vec<&String> =
        g.terminals.iter().filter(|(_, t)| t.store_id == store_id).map(|(id, _)| id).collect();
    ok(json!({
        "storeId": store_id,
        "name": s.name,
        "street": s.street,
        "zipCode": s.zip_code,
        "city": s.city,
        "terminalIds": terminals,
    }))
}

fn check_in_value(g: &Inner, terminal_id: &str) -> ApiResult {
    let t = g.terminals.get(terminal_id).ok_or_else(|| not_found("TERMINAL_NOT_FOUND", "no terminal"))?;
    let pos_id = pos_of(t, terminal_id)?;
    let c = t.checked_in.as_ref();
    ok(json!({
        "terminalId": terminal_id,
        "posId": pos_id,
        "checkedIn": c.is_some(),
        "customerId": c.map(|c| c.customer_id.clone()),
        "checkedInAt": c.map(|c| rfc3339(c.at)),
    }))
}

fn check_in_by_pos(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = terminal_by_pos(&g, &bio, &p.req("posId")?)?;
    check_in_value(&g, &terminal_id)
}

fn check_in_by_terminal(mp: &MobilePay, p: &Params) -> ApiResult {
    let g = mp.lock();
    let bio = authorize(&g, p)?;
    let terminal_id = p.req("terminalId")?;
    terminal(&g, &bio, &terminal_id)?;
    check_in_value(&g, &terminal_id)
}

fn sim_error(e: CustomerError) -> ApiError {
    match e {
        CustomerError::WrongState { .. } | CustomerError::NoPos(_) => conflict("WRONG_STATE", e.to_string()),
        _ => not_found("NOT_FOUND", e.to_string()),
    }
}

async fn sim_check_in(State(mp): State<MobilePay>, Path(terminal_id): Path<String>) -> ApiResult {
    mp.check_in(&terminal_id).map_err(sim_error)?;
    ok(json!({ "terminalId": terminal_id, "paymentId": mp.active_payment(&terminal_id) }))
}

async fn sim_approve(State(mp): State<MobilePay>, Path(terminal_id): Path<String>) -> ApiResult {
    let id = mp
        .active_payment(&terminal_id)
        .ok_or_else(|| sim_error(CustomerError::NoActivePayment(terminal_id.clone())))?;
    mp.check_in(&terminal_id).map_err(sim_error)?;
    mp.approve(&id).map_err(sim_error)?;
    payment_answer(&mp.lock(), &id)
}

async fn sim_reject(State(mp): State<MobilePay>, Path(terminal_id): Path<String>) -> ApiResult {
    let id = mp
        .active_payment(&terminal_id)
        .ok_or_else(|| sim_error(CustomerError::NoActivePayment(terminal_id.clone())))?;
    mp.reject(&id).map_err(sim_error)?;
    payment_answer(&mp.lock(), &id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_and_write_two_fraction_digits() {
        assert_eq!(parse_amount("123.45"), Some(12_345));
        assert_eq!(parse_amount("123.4"), Some(12_340));
        assert_eq!(parse_amount("100.0"), Some(10_000));
        assert_eq!(parse_amount("7"), Some(700));
        for bad in ["", "1.", ".5", "1.234", "-1", "1e3", "12a"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
        assert_eq!(amount_json(12_345).to_string(), "123.45");
        assert_eq!(amount_json(5).to_string(), "0.05");
    }

    #[test]
    fn statuses_parse_in_any_letter_case() {
        for s in STATUSES {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("captured"), Some(Status::Captured));
        assert_eq!(Status::parse("Paid"), None);
    }
}
