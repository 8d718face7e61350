//! The Settle sandbox, after `settle-coffee-shop-pos-integration.md`.
//!
//! A merchant has a shortlink whose scans are reported to the merchant's `callback_uri`; a scan
//! yields a scan token, with which the POS requests a payment (`customer` = token, `pos_tid`,
//! `pos_id`, amount, currency). The POS polls the outcome: `status_code` 1003 PENDING until the
//! customer decides, 3008 AUTH once authorised (capture then), 2000 OK once captured, or a
//! failure: 4019 ABORTED (the POS aborted), 5006 REJECTED (the customer said no),
//! 5011 REQUEST_EXPIRED (no answer in time), 5012 AUTH_EXPIRED (authorised but not captured in
//! time). 4004 NOT_FOUND answers an outcome for a payment request that doesn't exist.
//!
//! Inferred where the guide is silent (a real sandbox can settle it): requests authenticate with
//! `X-Settle-Merchant`, `X-Settle-User` and `Authorization: SECRET <secret>`; amounts are integer
//! minor units; a payment request repeating a `pos_tid` of the same merchant answers the
//! existing request (the guide calls `pos_tid` the vendor's transaction id); `PUT` with
//! `{"action": "refund", "amount": .., "refund_id": ..}` refunds a captured payment up to what was
//! captured, once per `refund_id`; a
//! shortlink's callback is set with `PUT /merchant/v1/shortlink/{id}/` `{"callback_uri": ..}`;
//! errors are `{"error_code": .., "error_description": ..}`.
//!
//! Timing knobs for the money tests: the customer's time to decide can be drawn from a range
//! ([`SettleConfig::decide`]), and an outcome lookup can still answer 4004 NOT_FOUND for a
//! request made a moment ago ([`SettleConfig::lookup_lag`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the simulated customer does with a payment request.
#[derive(Debug, Clone, PartialEq)]
pub enum SettleCustomer {
    /// Authorises after the delay.
    ApproveAfter(Duration),
    /// Rejects after the delay.
    RejectAfter(Duration),
    /// Waits for `approve` / `reject` / `expire` from a test or the demo panel.
    Manual,
}

/// Settings of the Settle sandbox.
#[derive(Debug, Clone)]
pub struct SettleConfig {
    /// Merchant id (`X-Settle-Merchant`).
    pub merchant_id: String,
    /// API user (`X-Settle-User`).
    pub api_user: String,
    /// API secret (`Authorization: SECRET ..`).
    pub secret: String,
    /// The merchant's shortlink id.
    pub shortlink_id: String,
    /// What unscripted customers do.
    pub customer: SettleCustomer,
    /// Seed for ids and tokens.
    pub seed: u64,
    /// When set, a scripted customer's time to decide is drawn from this range.
    pub decide: Option<(Duration, Duration)>,
    /// How long after creation an outcome lookup still answers 4004 NOT_FOUND, as a lagging
    /// read replica would.
    pub lookup_lag: Duration,
    /// Authorise this many minor units less than asked (a provider that takes another amount).
    pub authorise_short_by: i64,
    /// Name this `pos_tid` in every outcome (a provider that mixes up requests).
    pub outcome_pos_tid: Option<String>,
}

impl Default for SettleConfig {
    fn default() -> Self {
        SettleConfig {
            merchant_id: "kasademo".into(),
            api_user: "kasa-pos".into(),
            secret: "demo-settle-secret".into(),
            shortlink_id: "kAsA7d".into(),
            customer: SettleCustomer::Manual,
            seed: 13,
            decide: None,
            lookup_lag: Duration::ZERO,
            authorise_short_by: 0,
            outcome_pos_tid: None,
        }
    }
}

struct Request {
    tid: String,
    pos_tid: String,
    pos_id: String,
    customer: String,
    amount: i64,
    currency: String,
    status_code: u16,
    auth_amount: i64,
    captured: i64,
    refunded: i64,
    refund_ids: Vec<String>,
    modified: OffsetDateTime,
    expires: OffsetDateTime,
    /// When outcome lookups start to see it.
    visible_from: tokio::time::Instant,
}

struct Inner {
    config: SettleConfig,
    callback_uri: Option<String>,
    tokens: BTreeMap<String, String>,
    requests: BTreeMap<String, Request>,
    by_pos_tid: BTreeMap<String, String>,
    rng: StdRng,
    next: u64,
    /// Delivers scan callbacks in-process instead of over TCP, when set.
    poster: Option<CallbackPoster>,
}

/// Delivers a scan callback: `(callback_uri, JSON body)` to the merchant's answer (`Ok` for a
/// 2xx). The sandbox posts over TCP unless a simulation plugs in one of these.
pub type CallbackPoster = Arc<
    dyn Fn(String, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// The Settle sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct Settle {
    inner: Arc<Mutex<Inner>>,
    http: reqwest_free::Poster,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Settle")
    }
}

fn now() -> OffsetDateTime {
    crate::clock::now()
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn status_name(code: u16) -> &'static str {
    match code {
        1003 => "pending",
        2000 => "ok",
        3008 => "auth",
        4004 => "not_found",
        4019 => "aborted",
        5006 => "rejected",
        5011 => "request_expired",
        5012 => "auth_expired",
        _ => "unknown",
    }
}

impl Settle {
    /// A sandbox with one merchant and its shortlink.
    pub fn new(config: SettleConfig) -> Settle {
        let rng = StdRng::seed_from_u64(config.seed);
        Settle {
            inner: Arc::new(Mutex::new(Inner {
                config,
                callback_uri: None,
                tokens: BTreeMap::new(),
                requests: BTreeMap::new(),
                by_pos_tid: BTreeMap::new(),
                rng,
                next: 1,
                poster: None,
            })),
            http: reqwest_free::Poster,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/merchant/v1/shortlink/{id}/", put(set_shortlink).get(get_shortlink))
            .route("/merchant/v1/payment_request/", post(create_request))
            .route("/merchant/v1/payment_request/{tid}/", put(update_request))
            .route("/merchant/v1/payment_request/{tid}/outcome/", get(outcome))
            .route("/_sim/settle/scan/{pos_tid}", post(sim_scan))
            .route("/_sim/settle/decide/{decision}", post(sim_decide))
            .with_state(self.clone())
    }

    /// Delivers scan callbacks through `poster` from now on (a simulation's in-process network).
    pub fn set_poster(&self, poster: CallbackPoster) {
        self.lock().poster = Some(poster);
    }

    /// Where scans are reported, once the merchant set it.
    pub fn callback_uri(&self) -> Option<String> {
        self.lock().callback_uri.clone()
    }

    /// The customer scans the QR code `http://settle.eu/s/<shortlink>/<argstring>`: a scan token
    /// is made and the scan is reported to the merchant's callback. Returns the token.
    pub async fn scan(&self, argstring: &str) -> Result<String, String> {
        let (uri, token, event) = {
            let mut g = self.lock();
            let n = g.next;
            g.next += 1;
            let token = format!("token:{}{:06}", 5_632_006_343_884_800_u64 + n, g.rng.random_range(0..1_000_000));
            g.tokens.insert(token.clone(), argstring.to_string());
            let id: String = (0..22).map(|_| char::from(b'A' + g.rng.random_range(0..26))).collect();
            let event = json!({
                "meta": {
                    "seqno": 0, "labels": [], "uri": null, "id": id, "context": format!("ctx:{id}"),
                    "timestamp": stamp(now()), "event": "shortlink_scanned"
                },
                "object": { "id": token, "argstring": argstring }
            });
            (g.callback_uri.clone(), token, event)
        };
        let uri = uri.ok_or("the shortlink has no callback_uri")?;
        let poster = self.lock().poster.clone();
        match poster {
            Some(post) => post(uri, event.to_string()).await?,
            None => self.http.post_json(&uri, &event.to_string()).await?,
        }
        Ok(token)
    }

    /// The customer authorises the payment request.
    pub fn approve(&self, tid: &str) {
        self.decide(tid, 3008);
    }

    /// The customer rejects the payment request.
    pub fn reject(&self, tid: &str) {
        self.decide(tid, 5006);
    }

    /// The request expires unanswered (or, once authorised, the authorisation expires).
    pub fn expire(&self, tid: &str) {
        let code = match self.lock().requests.get(tid).map(|r| r.status_code) {
            Some(3008) => 5012,
            _ => 5011,
        };
        self.decide(tid, code);
    }

    fn decide(&self, tid: &str, code: u16) {
        let mut g = self.lock();
        let short = g.config.authorise_short_by;
        if let Some(r) = g.requests.get_mut(tid) {
            let allowed = matches!((r.status_code, code), (1003, 3008 | 5006 | 5011) | (3008, 5012));
            if allowed {
                r.status_code = code;
                if code == 3008 {
                    r.auth_amount = r.amount - short;
                }
                r.modified = now();
            }
        }
    }

    /// The transaction id of the request made for `pos_tid`, if any.
    pub fn tid_of(&self, pos_tid: &str) -> Option<String> {
        self.lock().by_pos_tid.get(pos_tid).cloned()
    }

    /// The outcome document of a request.
    pub fn outcome_json(&self, tid: &str) -> Option<Value> {
        self.lock().requests.get(tid).map(outcome_doc)
    }

    /// Requests captured (status 2000).
    pub fn captured(&self) -> Vec<Value> {
        self.lock().requests.values().filter(|r| r.status_code == 2000).map(outcome_doc).collect()
    }

    /// Pending requests' transaction ids (for the demo panel).
    pub fn pending(&self) -> Vec<String> {
        self.lock().requests.values().filter(|r| r.status_code == 1003).map(|r| r.tid.clone()).collect()
    }
}

fn outcome_doc(r: &Request) -> Value {
    json!({
        "status": status_name(r.status_code),
        "status_code": r.status_code,
        "customer": r.customer,
        "attachment_uri": null,
        "pos_tid": r.pos_tid,
        "pos_id": r.pos_id,
        "refunds": if r.refunded > 0 { json!([{ "amount": r.refunded }]) } else { json!([]) },
        "auth_amount": r.auth_amount,
        "auth_additional_amount": 0,
        "captures": if r.captured > 0 { json!([{ "amount": r.captured }]) } else { json!([]) },
        "date_modified": stamp(r.modified),
        "date_expires": stamp(r.expires),
        "credit": false,
        "amount": r.amount,
        "interchange_fee": 0,
        "tid": r.tid,
        "currency": r.currency,
        "additional_amount": 0,
        "transaction_fee": 0,
        "permissions": null
    })
}

struct SettleError(StatusCode, &'static str, String);

impl IntoResponse for SettleError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error_code": self.1, "error_description": self.2}))).into_response()
    }
}

type SettleResult = Result<Response, SettleError>;

fn authorize(s: &Settle, headers: &HeaderMap) -> Result<(), SettleError> {
    let g = s.lock();
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = h("x-settle-merchant") == g.config.merchant_id
        && h("x-settle-user") == g.config.api_user
        && h("authorization") == format!("SECRET {}", g.config.secret);
    if ok {
        Ok(())
    } else {
        Err(SettleError(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad merchant credentials".into()))
    }
}

fn body(b: &Bytes) -> Result<Value, SettleError> {
    serde_json::from_slice::<Value>(b)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| SettleError(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "body must be a JSON object".into()))
}

async fn set_shortlink(State(s): State<Settle>, headers: HeaderMap, Path(id): Path<String>, b: Bytes) -> SettleResult {
    authorize(&s, &headers)?;
    let v = body(&b)?;
    let mut g = s.lock();
    if id != g.config.shortlink_id {
        return Err(SettleError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no shortlink {id}")));
    }
    let uri = v["callback_uri"]
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| SettleError(StatusCode::BAD_REQUEST, "INVALID_REQUEST", "callback_uri must be a URL".into()))?;
    g.callback_uri = Some(uri.to_string());
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_shortlink(State(s): State<Settle>, headers: HeaderMap, Path(id): Path<String>) -> SettleResult {
    authorize(&s, &headers)?;
    let g = s.lock();
    if id != g.config.shortlink_id {
        return Err(SettleError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no shortlink {id}")));
    }
    Ok(axum::Json(json!({"id": id, "callback_uri": g.callback_uri, "uri": format!("http://settle.eu/s/{id}/")}))
        .into_response())
}

async fn create_request(State(s): State<Settle>, headers: HeaderMap, b: Bytes) -> SettleResult {
    authorize(&s, &headers)?;
    let v = body(&b)?;
    let bad = |m: &str| SettleError(StatusCode::BAD_REQUEST, "INVALID_REQUEST", m.to_string());
    if v["action"] != "SALE" {
        return Err(bad("action must be SALE"));
    }
    let pos_tid = v["pos_tid"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| bad("pos_tid is required"))?;
    let pos_id = v["pos_id"].as_str().ok_or_else(|| bad("pos_id is required"))?;
    let customer = v["customer"].as_str().ok_or_else(|| bad("customer (the scan token) is required"))?;
    let amount = v["amount"].as_i64().filter(|a| *a > 0).ok_or_else(|| bad("amount must be a positive integer"))?;
    let currency = v["currency"].as_str().filter(|c| c.len() == 3).ok_or_else(|| bad("currency must be ISO 4217"))?;
    let mut g = s.lock();
    if let Some(tid) = g.by_pos_tid.get(pos_tid) {
        return Ok((StatusCode::CREATED, axum::Json(json!({"id": tid, "uri": null}))).into_response());
    }
    if !g.tokens.contains_key(customer) {
        return Err(SettleError(
            StatusCode::NOT_FOUND,
            "CUSTOMER_NOT_FOUND",
            "the scan token is unknown or used".into(),
        ));
    }
    g.tokens.remove(customer);
    let tid: String =
        (0..12).map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[g.rng.random_range(0..32)])).collect();
    let at = now();
    let visible_from = tokio::time::Instant::now() + g.config.lookup_lag;
    let script = match (g.config.customer.clone(), g.config.decide) {
        (SettleCustomer::ApproveAfter(_), Some((min, max))) => {
            SettleCustomer::ApproveAfter(if max > min { g.rng.random_range(min..=max) } else { min })
        }
        (SettleCustomer::RejectAfter(_), Some((min, max))) => {
            SettleCustomer::RejectAfter(if max > min { g.rng.random_range(min..=max) } else { min })
        }
        (script, _) => script,
    };
    g.requests.insert(
        tid.clone(),
        Request {
            tid: tid.clone(),
            pos_tid: pos_tid.to_string(),
            pos_id: pos_id.to_string(),
            customer: customer.to_string(),
            amount,
            currency: currency.to_string(),
            status_code: 1003,
            auth_amount: 0,
            captured: 0,
            refunded: 0,
            refund_ids: Vec::new(),
            modified: at,
            expires: at + time::Duration::days(5),
            visible_from,
        },
    );
    g.by_pos_tid.insert(pos_tid.to_string(), tid.clone());
    drop(g);
    match script {
        SettleCustomer::ApproveAfter(d) | SettleCustomer::RejectAfter(d) => {
            let (s2, t2) = (s.clone(), tid.clone());
            let approve = matches!(script, SettleCustomer::ApproveAfter(_));
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                if approve { s2.approve(&t2) } else { s2.reject(&t2) }
            });
        }
        SettleCustomer::Manual => {}
    }
    Ok((StatusCode::CREATED, axum::Json(json!({"id": tid, "uri": null}))).into_response())
}

async fn update_request(
    State(s): State<Settle>,
    headers: HeaderMap,
    Path(tid): Path<String>,
    b: Bytes,
) -> SettleResult {
    authorize(&s, &headers)?;
    let v = body(&b)?;
    let mut g = s.lock();
    let r = g
        .requests
        .get_mut(&tid)
        .ok_or_else(|| SettleError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("no payment request {tid}")))?;
    let conflict = |m: String| SettleError(StatusCode::CONFLICT, "INVALID_STATE", m);
    match v["action"].as_str() {
        Some("capture") => match r.status_code {
            3008 => {
                r.captured = r.auth_amount;
                r.status_code = 2000;
            }
            2000 => {} // capturing twice is a no-op
            code => return Err(conflict(format!("only an authorised request (3008) can be captured; it is {code}"))),
        },
        Some("abort") => match r.status_code {
            1003 | 3008 => r.status_code = 4019,
            4019 => {}
            code => return Err(conflict(format!("a request with status {code} can't be aborted"))),
        },
        Some("refund") => {
            let refund_id = v["refund_id"].as_str().unwrap_or_default().to_string();
            if !refund_id.is_empty() && r.refund_ids.contains(&refund_id) {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            let amount = v["amount"].as_i64().unwrap_or(r.captured - r.refunded);
            if r.status_code != 2000 || amount <= 0 || amount > r.captured - r.refunded {
                return Err(conflict(format!(
                    "refund of {amount} refused: {} captured, {} refunded",
                    r.captured, r.refunded
                )));
            }
            r.refunded += amount;
            r.refund_ids.push(refund_id);
        }
        _ => {
            return Err(SettleError(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "action must be capture, abort or refund".into(),
            ));
        }
    }
    r.modified = now();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn outcome(State(s): State<Settle>, headers: HeaderMap, Path(tid): Path<String>) -> SettleResult {
    authorize(&s, &headers)?;
    let seen = {
        let g = s.lock();
        g.requests.get(&tid).filter(|r| tokio::time::Instant::now() >= r.visible_from).map(|r| {
            let mut doc = outcome_doc(r);
            if let Some(other) = &g.config.outcome_pos_tid {
                doc["pos_tid"] = json!(other);
            }
            doc
        })
    };
    match seen {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => {
            Ok((StatusCode::NOT_FOUND, axum::Json(json!({"status": "not_found", "status_code": 4004, "tid": tid})))
                .into_response())
        }
    }
}

async fn sim_scan(State(s): State<Settle>, Path(pos_tid): Path<String>) -> Response {
    match s.scan(&pos_tid).await {
        Ok(token) => axum::Json(json!({"token": token})).into_response(),
        Err(e) => (StatusCode::CONFLICT, e).into_response(),
    }
}

async fn sim_decide(State(s): State<Settle>, Path(decision): Path<String>) -> Response {
    let pending = s.pending();
    for tid in &pending {
        match decision.as_str() {
            "approve" => s.approve(tid),
            "reject" => s.reject(tid),
            _ => s.expire(tid),
        }
    }
    axum::Json(json!({"decided": pending})).into_response()
}

/// Posting the scan callback to the merchant, over plain HTTP/1.1 on loopback without a client
/// library (the sandbox stays independent of Kasa's HTTP stack).
mod reqwest_free {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug, Clone, Copy)]
    pub struct Poster;

    impl Poster {
        pub async fn post_json(&self, uri: &str, body: &str) -> Result<(), String> {
            let rest = uri.strip_prefix("http://").ok_or("the sandbox calls back over http:// only")?;
            let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
            let mut sock = tokio::net::TcpStream::connect(host).await.map_err(|e| format!("callback to {uri}: {e}"))?;
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
            let mut answer = Vec::new();
            sock.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
            let status = String::from_utf8_lossy(&answer).split_whitespace().nth(1).unwrap_or("").to_string();
            if status.starts_with('2') { Ok(()) } else { Err(format!("callback answered {status}")) }
        }
    }
}
