//! The Token X cloud sandbox, following `tokenx-contract.md`.
//!
//! State is held in memory: orders added by a simulated 1000TR pump, client-credential tokens,
//! locks with expiry, and the request ids of lock, unlock and payment calls so repeats are
//! answered as the contract says. The pump completes paid orders with receipt info after a
//! delay, and may add new orders on a timer.
//!
//! Behaviour the contract leaves open, and what this sandbox does (inferred, marked here so a
//! real sandbox can settle it): a repeated lock `requestId` whose lock has since been released
//! answers `409 LOCK_RELEASED`; an unknown terminal answers `403 UNKNOWN_TERMINAL`; a payment
//! without card slip data for a `CARD` payment answers `422 SLIP_MISSING`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Settings of the Token X sandbox.
#[derive(Debug, Clone)]
pub struct TokenxConfig {
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Virtual terminal ids of the station's registers.
    pub terminals: Vec<String>,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Lock lifetime unless renewed.
    pub lock_ttl: Duration,
    /// Currency of the station.
    pub currency: String,
    /// Orders present at start.
    pub initial_orders: usize,
    /// The pump adds an order this often (`None`: only when asked).
    pub order_interval: Option<Duration>,
    /// The pump completes a paid order this long after payment.
    pub completion_delay: Duration,
    /// A paid, completed or cancelled order stays in the summary list this long; open and
    /// locked orders are always listed. The list holds at most 200 orders, newest first.
    pub finished_listed_for: Duration,
    /// Seed for plates, pumps and litres.
    pub seed: u64,
}

impl Default for TokenxConfig {
    fn default() -> Self {
        TokenxConfig {
            client_id: "kasa-demo".into(),
            client_secret: "demo-secret".into(),
            terminals: vec!["VT-0001".into(), "VT-0002".into()],
            token_ttl: Duration::from_secs(3600),
            lock_ttl: Duration::from_secs(120),
            currency: "TRY".into(),
            initial_orders: 4,
            order_interval: None,
            completion_delay: Duration::from_millis(300),
            finished_listed_for: Duration::from_secs(600),
            seed: 7,
        }
    }
}

/// An order to add, as the pump would.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Plate.
    pub plate_number: String,
    /// Pump.
    pub pump_no: u32,
    /// Nozzle.
    pub nozzle_no: u32,
    /// Product code.
    pub product_code: String,
    /// Product name.
    pub product_name: String,
    /// Litres in thousandths.
    pub litres_milli: i64,
    /// Unit price in minor units.
    pub unit_price: i64,
    /// VAT rate in percent.
    pub vat_rate: u32,
}

struct Lock {
    lock_id: String,
    terminal_id: String,
    expires_at: OffsetDateTime,
}

struct SimOrder {
    id: String,
    seq: u64,
    new: NewOrder,
    amount: i64,
    status: &'static str,
    created_at: OffsetDateTime,
    lock: Option<Lock>,
    paid_at: Option<tokio::time::Instant>,
    finished_at: Option<tokio::time::Instant>,
    payment: Option<Value>,
    receipt: Option<Value>,
}

struct LockGrant {
    order_id: String,
    lock_id: String,
}

struct Inner {
    config: TokenxConfig,
    tokens: BTreeMap<String, OffsetDateTime>,
    orders: BTreeMap<String, SimOrder>,
    lock_requests: BTreeMap<String, LockGrant>,
    payment_requests: BTreeMap<String, String>,
    next_order: u64,
    next_lock: u64,
    next_token: u64,
    next_receipt: u64,
    rng: StdRng,
}

/// The Token X sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct Tokenx {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Tokenx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenx")
    }
}

fn now() -> OffsetDateTime {
    crate::clock::now()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn decimal(minor: i64, exp: u32) -> String {
    let scale = 10_i64.pow(exp);
    format!("{}.{:0w$}", minor / scale, minor % scale, w = exp as usize)
}

const PRODUCTS: &[(&str, &str, i64)] =
    &[("DSL", "Motorin", 4_589), ("BNZ95", "Kurşunsuz Benzin 95", 4_412), ("LPG", "Otogaz LPG", 2_375)];

impl Tokenx {
    /// A sandbox with the configured initial orders.
    pub fn new(config: TokenxConfig) -> Tokenx {
        let rng = StdRng::seed_from_u64(config.seed);
        let initial = config.initial_orders;
        let t = Tokenx {
            inner: Arc::new(Mutex::new(Inner {
                config,
                tokens: BTreeMap::new(),
                orders: BTreeMap::new(),
                lock_requests: BTreeMap::new(),
                payment_requests: BTreeMap::new(),
                next_order: 1,
                next_lock: 1,
                next_token: 1,
                next_receipt: 1,
                rng,
            })),
        };
        for _ in 0..initial {
            t.add_random_order();
        }
        t
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP routes of the contract.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth2/token", post(token))
            .route("/api/pos/orders/summary", get(summary))
            .route("/api/pos/orders/{order_id}", get(order))
            .route("/api/pos/orders/{order_id}/lock", post(lock_order))
            .route("/api/pos/orders/{order_id}/unlock", post(unlock_order))
            .route("/api/pos/orders/{order_id}/payment", post(payment))
            .route("/_sim/tokenx/orders", post(sim_add_order))
            .with_state(self.clone())
    }

    /// Adds an order as the pump would; returns its id.
    pub fn add_order(&self, new: NewOrder) -> String {
        let amount = round_div(i128::from(new.litres_milli) * i128::from(new.unit_price), 1000) as i64;
        self.add_order_charging(new, amount)
    }

    /// Adds an order that asks `amount` whatever its litres and unit price say, as a faulty pump
    /// or a corrupted record might; returns its id.
    pub fn add_order_charging(&self, new: NewOrder, amount: i64) -> String {
        let mut g = self.lock();
        let seq = g.next_order;
        g.next_order += 1;
        let id = format!("TXO-{seq:06}");
        g.orders.insert(
            id.clone(),
            SimOrder {
                id: id.clone(),
                seq,
                new,
                amount,
                status: "Open",
                created_at: now(),
                lock: None,
                paid_at: None,
                finished_at: None,
                payment: None,
                receipt: None,
            },
        );
        id
    }

    /// Adds an order with a random plate, pump and quantity.
    pub fn add_random_order(&self) -> String {
        let new = {
            let mut g = self.lock();
            let rng = &mut g.rng;
            let (code, name, price) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
            const LETTERS: &[u8] = b"ABCDEFGHJKLMNPRSTUVYZ";
            let letters: String =
                (0..rng.random_range(1..=3)).map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char).collect();
            NewOrder {
                plate_number: format!("{:02} {} {}", rng.random_range(1..=81), letters, rng.random_range(10..=9999)),
                pump_no: rng.random_range(1..=8),
                nozzle_no: rng.random_range(1..=3),
                product_code: code.into(),
                product_name: name.into(),
                litres_milli: rng.random_range(5_000..=60_000),
                unit_price: price,
                vat_rate: 20,
            }
        };
        self.add_order(new)
    }

    /// An order as Get Order returns it.
    pub fn order_json(&self, order_id: &str) -> Option<Value> {
        let mut g = self.lock();
        let currency = g.config.currency.clone();
        let o = g.orders.get_mut(order_id)?;
        expire_lock(o);
        Some(detail_json(o, &currency))
    }

    /// Every order id, oldest first.
    pub fn order_ids(&self) -> Vec<String> {
        let g = self.lock();
        let mut v: Vec<(u64, String)> = g.orders.values().map(|o| (o.seq, o.id.clone())).collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// Locks an order as another register would, bypassing HTTP.
    pub fn lock_as(&self, order_id: &str, terminal_id: &str) -> Option<String> {
        let mut g = self.lock();
        let ttl = g.config.lock_ttl;
        let lock_id = format!("LCK-{:06}", g.next_lock);
        g.next_lock += 1;
        let o = g.orders.get_mut(order_id)?;
        o.lock = Some(Lock { lock_id: lock_id.clone(), terminal_id: terminal_id.into(), expires_at: now() + ttl });
        o.status = "Locked";
        Some(lock_id)
    }

    /// Sets the access token lifetime (for refresh tests).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.lock().config.token_ttl = ttl;
    }

    /// Forgets every issued token, as after a key rotation.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Completes paid orders whose delay has passed; adds an order if one is due.
    pub fn tick(&self) {
        let mut g = self.lock();
        let delay = g.config.completion_delay;
        let due: Vec<String> = g
            .orders
            .values()
            .filter(|o| o.status == "Paid" && o.paid_at.is_some_and(|t| t.elapsed() >= delay))
            .map(|o| o.id.clone())
            .collect();
        for id in due {
            let n = g.next_receipt;
            g.next_receipt += 1;
            if let Some(o) = g.orders.get_mut(&id) {
                o.status = "Completed";
                o.receipt = Some(json!({
                    "fiscalNo": format!("{:04}", n),
                    "zNo": "0142",
                    "ekuNo": "0003",
                    "issuedAt": rfc3339(now()),
                }));
            }
        }
    }

    /// Runs the simulated pump until the returned task is aborted.
    pub fn spawn_pump(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let interval = this.lock().config.order_interval;
            let mut last_add = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                this.tick();
                if let Some(every) = interval
                    && last_add.elapsed() >= every
                {
                    last_add = tokio::time::Instant::now();
                    let open = this.lock().orders.values().filter(|o| o.status == "Open").count();
                    // A forecourt has a handful of pumps: keep the open list realistic.
                    if open < 12 {
                        this.add_random_order();
                    }
                }
            }
        })
    }
}

fn round_div(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den { q + num.signum() } else { q }
}

fn expire_lock(o: &mut SimOrder) {
    if let Some(l) = &o.lock
        && l.expires_at <= now()
    {
        o.lock = None;
        if o.status == "Locked" {
            o.status = "Open";
        }
    }
}

fn summary_json(o: &SimOrder, currency: &str) -> Value {
    json!({
        "orderId": o.id,
        "plateNumber": o.new.plate_number,
        "pumpNo": o.new.pump_no,
        "productName": o.new.product_name,
        "amount": o.amount,
        "currency": currency,
        "status": o.status,
        "createdAt": rfc3339(o.created_at),
    })
}

fn detail_json(o: &SimOrder, currency: &str) -> Value {
    json!({
        "orderId": o.id,
        "plateNumber": o.new.plate_number,
        "pumpNo": o.new.pump_no,
        "nozzleNo": o.new.nozzle_no,
        "productCode": o.new.product_code,
        "productName": o.new.product_name,
        "litres": decimal(o.new.litres_milli, 3),
        "unitPrice": o.new.unit_price,
        "amount": o.amount,
        "vatRate": o.new.vat_rate,
        "currency": currency,
        "status": o.status,
        "createdAt": rfc3339(o.created_at),
        "lock": o.lock.as_ref().map(|l| json!({
            "lockId": l.lock_id, "terminalId": l.terminal_id, "expiresAt": rfc3339(l.expires_at)
        })),
        "receipt": o.receipt,
    })
}

struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"code": self.1, "message": self.2}))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(v)).into_response())
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "BAD_REQUEST", format!("invalid body: {e}")))
}

fn authorize(g: &Inner, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "missing bearer token".into()))?;
    match g.tokens.get(token) {
        Some(exp) if *exp > now() => Ok(()),
        Some(_) => Err(ApiError(StatusCode::UNAUTHORIZED, "TOKEN_EXPIRED", "access token expired".into())),
        None => Err(ApiError(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "unknown access token".into())),
    }
}

fn known_terminal(g: &Inner, terminal_id: &str) -> Result<(), ApiError> {
    if g.config.terminals.iter().any(|t| t == terminal_id) {
        Ok(())
    } else {
        Err(ApiError(StatusCode::FORBIDDEN, "UNKNOWN_TERMINAL", format!("terminal '{terminal_id}' is not paired")))
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(State(t): State<Tokenx>, body: Bytes) -> ApiResult {
    let form: TokenForm = serde_urlencoded_parse(&body)?;
    let mut g = t.lock();
    if form.grant_type.as_deref() != Some("client_credentials") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED_GRANT_TYPE",
            "grant_type must be client_credentials".into(),
        ));
    }
    if form.client_id.as_deref() != Some(g.config.client_id.as_str())
        || form.client_secret.as_deref() != Some(g.config.client_secret.as_str())
    {
        return Err(ApiError(StatusCode::UNAUTHORIZED, "INVALID_CLIENT", "bad client credentials".into()));
    }
    let n = g.next_token;
    g.next_token += 1;
    let token = format!("tx-token-{n}-{}", g.rng.random::<u32>());
    let ttl = g.config.token_ttl;
    g.tokens.insert(token.clone(), now() + ttl);
    ok(json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl.as_secs()}))
}

fn serde_urlencoded_parse(body: &Bytes) -> Result<TokenForm, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "BAD_REQUEST", "body is not UTF-8".into()))?;
    let mut form = TokenForm { grant_type: None, client_id: None, client_secret: None };
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "grant_type" => form.grant_type = Some(v),
            "client_id" => form.client_id = Some(v),
            "client_secret" => form.client_secret = Some(v),
            _ => {}
        }
    }
    Ok(form)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TerminalQuery {
    terminal_id: Option<String>,
}

fn terminal_of(q: &TerminalQuery) -> Result<&str, ApiError> {
    q.terminal_id
        .as_deref()
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "BAD_REQUEST", "terminalId is required".into()))
}

async fn summary(State(t): State<Tokenx>, headers: HeaderMap, Query(q): Query<TerminalQuery>) -> ApiResult {
    let mut g = t.lock();
    authorize(&g, &headers)?;
    known_terminal(&g, terminal_of(&q)?)?;
    let currency = g.config.currency.clone();
    let keep = g.config.finished_listed_for;
    let mut list: Vec<&mut SimOrder> =
        g.orders.values_mut().filter(|o| o.finished_at.is_none_or(|f| f.elapsed() < keep)).collect();
    list.sort_by_key(|o| std::cmp::Reverse(o.seq));
    list.truncate(200);
    list.reverse();
    let orders: Vec<Value> = list
        .into_iter()
        .map(|o| {
            expire_lock(o);
            summary_json(o, &currency)
        })
        .collect();
    ok(json!({ "orders": orders }))
}

async fn order(
    State(t): State<Tokenx>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Query(q): Query<TerminalQuery>,
) -> ApiResult {
    {
        let g = t.lock();
        authorize(&g, &headers)?;
        known_terminal(&g, terminal_of(&q)?)?;
    }
    match t.order_json(&order_id) {
        Some(v) => ok(v),
        None => Err(not_found(&order_id)),
    }
}

fn not_found(order_id: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "ORDER_NOT_FOUND", format!("no order '{order_id}'"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockBody {
    terminal_id: String,
    request_id: String,
    lock_id: Option<String>,
}

async fn lock_order(
    State(t): State<Tokenx>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: LockBody = parse(&body)?;
    let mut g = t.lock();
    authorize(&g, &headers)?;
    known_terminal(&g, &b.terminal_id)?;
    let ttl = g.config.lock_ttl;
    if !g.orders.contains_key(&order_id) {
        return Err(not_found(&order_id));
    }
    // A repeated request id answers with the lock it created, while that lock stands.
    if let Some(grant) = g.lock_requests.get(&b.request_id) {
        let (grant_order, grant_lock) = (grant.order_id.clone(), grant.lock_id.clone());
        let o = g.orders.get_mut(&grant_order).ok_or_else(|| not_found(&grant_order))?;
        expire_lock(o);
        return match &o.lock {
            Some(l) if l.lock_id == grant_lock => ok(json!({"lockId": l.lock_id, "expiresAt": rfc3339(l.expires_at)})),
            _ => Err(ApiError(StatusCode::CONFLICT, "LOCK_RELEASED", "the lock of this request was released".into())),
        };
    }
    let next_lock = g.next_lock;
    let o = g.orders.get_mut(&order_id).ok_or_else(|| not_found(&order_id))?;
    expire_lock(o);
    // Renewal: the holder repeats the call with its lock id.
    if let Some(lock_id) = &b.lock_id {
        return match &mut o.lock {
            Some(l) if &l.lock_id == lock_id && l.terminal_id == b.terminal_id => {
                l.expires_at = now() + ttl;
                ok(json!({"lockId": l.lock_id, "expiresAt": rfc3339(l.expires_at)}))
            }
            _ => Err(ApiError(StatusCode::CONFLICT, "LOCK_NOT_HELD", "this terminal does not hold that lock".into())),
        };
    }
    match (o.status, &o.lock) {
        ("Open", None) => {}
        (_, Some(l)) => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "ORDER_LOCKED",
                format!("order is locked by terminal {}", l.terminal_id),
            ));
        }
        (status, None) => {
            return Err(ApiError(StatusCode::CONFLICT, "ORDER_NOT_OPEN", format!("order is {status}")));
        }
    }
    let lock_id = format!("LCK-{next_lock:06}");
    let expires_at = now() + ttl;
    o.lock = Some(Lock { lock_id: lock_id.clone(), terminal_id: b.terminal_id.clone(), expires_at });
    o.status = "Locked";
    g.next_lock += 1;
    g.lock_requests.insert(b.request_id, LockGrant { order_id, lock_id: lock_id.clone() });
    ok(json!({"lockId": lock_id, "expiresAt": rfc3339(expires_at)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnlockBody {
    terminal_id: String,
    lock_id: String,
    #[allow(dead_code)]
    request_id: String,
}

async fn unlock_order(
    State(t): State<Tokenx>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let b: UnlockBody = parse(&body)?;
    let mut g = t.lock();
    authorize(&g, &headers)?;
    known_terminal(&g, &b.terminal_id)?;
    let o = g.orders.get_mut(&order_id).ok_or_else(|| not_found(&order_id))?;
    expire_lock(o);
    match &o.lock {
        None => ok(json!({})),
        Some(l) if l.lock_id == b.lock_id && l.terminal_id == b.terminal_id => {
            o.lock = None;
            if o.status == "Locked" {
                o.status = "Open";
            }
            ok(json!({}))
        }
        Some(_) => Err(ApiError(StatusCode::CONFLICT, "LOCK_NOT_HELD", "the lock is not this terminal's".into())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentBody {
    terminal_id: String,
    lock_id: String,
    request_id: String,
    payments: Vec<PaymentLine>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PaymentLine {
    method: String,
    amount: i64,
    currency: String,
    slip: Option<Value>,
}

async fn payment(State(t): State<Tokenx>, headers: HeaderMap, Path(order_id): Path<String>, body: Bytes) -> ApiResult {
    let b: PaymentBody = parse(&body)?;
    let mut g = t.lock();
    authorize(&g, &headers)?;
    known_terminal(&g, &b.terminal_id)?;
    if let Some(done_for) = g.payment_requests.get(&b.request_id) {
        return if done_for == &order_id {
            ok(json!({"status": "Paid"}))
        } else {
            Err(ApiError(StatusCode::CONFLICT, "REQUEST_ID_REUSED", "requestId was used for another order".into()))
        };
    }
    let currency = g.config.currency.clone();
    let o = g.orders.get_mut(&order_id).ok_or_else(|| not_found(&order_id))?;
    expire_lock(o);
    match &o.lock {
        Some(l) if l.lock_id == b.lock_id && l.terminal_id == b.terminal_id => {}
        _ => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "ORDER_NOT_LOCKED",
                "the order is not locked by this terminal".into(),
            ));
        }
    }
    const METHODS: &[&str] = &["CARD", "CASH", "MOBILEPAY", "SETTLE"];
    let mut sum = 0_i64;
    for p in &b.payments {
        if !METHODS.contains(&p.method.as_str()) {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "BAD_METHOD",
                format!("unknown method {}", p.method),
            ));
        }
        if p.currency != currency {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "AMOUNT_MISMATCH",
                format!("currency {} is not {currency}", p.currency),
            ));
        }
        if p.method == "CARD" {
            let slip_ok = p.slip.as_ref().is_some_and(|s| {
                ["maskedPan", "brand", "entryMode", "approvalCode", "terminalRef", "transactionRef", "paidAt"]
                    .iter()
                    .all(|k| s.get(k).is_some_and(Value::is_string))
            });
            if !slip_ok {
                return Err(ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "SLIP_MISSING",
                    "card payments need the slip fields".into(),
                ));
            }
        }
        sum += p.amount;
    }
    if sum != o.amount || b.payments.is_empty() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "AMOUNT_MISMATCH",
            format!("payments add up to {sum}, the order is {}", o.amount),
        ));
    }
    o.status = "Paid";
    o.lock = None;
    o.paid_at = Some(tokio::time::Instant::now());
    o.finished_at = o.paid_at;
    o.payment = Some(json!({"terminalId": b.terminal_id, "payments": b.payments}));
    g.payment_requests.insert(b.request_id, order_id);
    ok(json!({"status": "Paid"}))
}

async fn sim_add_order(State(t): State<Tokenx>) -> ApiResult {
    let id = t.add_random_order();
    ok(json!({"orderId": id}))
}

impl Tokenx {
    /// The payment report the cloud accepted for an order, if any.
    pub fn payment_of(&self, order_id: &str) -> Option<Value> {
        self.lock().orders.get(order_id).and_then(|o| o.payment.clone())
    }

    /// How many distinct payment reports the cloud accepted for an order (a repeat of the same
    /// request id is one report).
    pub fn accepted_reports(&self, order_id: &str) -> usize {
        self.lock().payment_requests.values().filter(|o| *o == order_id).count()
    }

    /// The status of an order.
    pub fn status_of(&self, order_id: &str) -> Option<&'static str> {
        let mut g = self.lock();
        let o = g.orders.get_mut(order_id)?;
        expire_lock(o);
        Some(o.status)
    }

    /// Orders currently locked by `terminal_id`.
    pub fn locked_by(&self, terminal_id: &str) -> Vec<String> {
        let mut g = self.lock();
        g.orders
            .values_mut()
            .filter_map(|o| {
                expire_lock(o);
                o.lock.as_ref().filter(|l| l.terminal_id == terminal_id).map(|_| o.id.clone())
            })
            .collect()
    }
}
