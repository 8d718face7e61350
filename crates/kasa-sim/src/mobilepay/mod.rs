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

mod api;

use std::collections::{BTreeMap, VecDeque};
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
    visible_from: tokio::time::Instant,
}

impl Payment {
    /// Whether the lookups see it yet.
    fn visible(&self) -> bool {
        tokio::time::Instant::now() >= self.visible_from
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
    crate::clock::now()
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
