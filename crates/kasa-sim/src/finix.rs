//! The Finix sandbox: devices and card-present transfers, after `finix-pos-integration.md`.
//!
//! Every call needs HTTP Basic auth and the `Finix-Version` header. A card-present transfer is
//! answered when the simulated terminal reaches an outcome: approved or declined after a delay
//! from a script of card outcomes, or cancelled through `PUT /devices/{id}` with
//! `{"action": "CANCEL"}`. The outcome runs in its own task, as a real terminal carries on when
//! the HTTP caller goes away.
//!
//! Inferred where the guide is silent (a real sandbox can settle it): a repeated
//! `idempotency_id` with the same body returns the original transfer, with a different body
//! answers `422`; a missing `Finix-Version` answers `400`; a transfer on a disabled device
//! answers `422`; a second transfer on a busy device answers `422 DEVICE_BUSY`; `CANCEL` with
//! nothing in progress answers `422`.
//!
//! Refunds are reversals (`POST /transfers/{id}/reversals` with `refund_amount`), partial or full,
//! never more in all than the original transfer; a reversal carries its own `idempotency_id`.
//!
//! Timing as a store sees it, for the tests that hold Kasa to its money promises: a cardholder
//! takes a while at the terminal ([`FinixConfig::tap`], drawn per card from the seeded
//! generator); lookups (`GET /transfers?idempotency_id=`, `GET /transfers/{id}`) can lag behind
//! creation ([`FinixConfig::lookup_lag`]) or not see a transfer at all until the card is read
//! ([`FinixConfig::hidden_until_final`], as with a terminal that reports the transfer only when
//! it is done). A repeated `POST /transfers` with the same `idempotency_id` always finds the
//! original (Finix's idempotent-request page: "the same idempotency_id ... will return the
//! original response or raise an exception if the new request differs"), however lagging the
//! lookups are.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{oneshot, watch};

/// Settings of the Finix sandbox.
#[derive(Debug, Clone)]
pub struct FinixConfig {
    /// API username (Basic auth user).
    pub username: String,
    /// API password.
    pub password: String,
    /// The merchant Kasa sells for.
    pub merchant_id: String,
    /// Devices that exist, are enabled and connected from the start.
    pub preset_devices: Vec<String>,
    /// What an unscripted card does.
    pub default_card: CardScript,
    /// Probability that an unscripted card is declined instead (decided by the seeded generator).
    pub decline_rate: f64,
    /// Seed for ids and trace ids.
    pub seed: u64,
    /// When set, an unscripted card's time at the terminal is drawn from this range (instead
    /// of the delay of `default_card`).
    pub tap: Option<(Duration, Duration)>,
    /// How long after creation a transfer stays invisible to lookups.
    pub lookup_lag: Duration,
    /// Lookups do not see a transfer until the card is read (its outcome is reached).
    pub hidden_until_final: bool,
    /// Leave out `updated_at` from transfers (a field Kasa must not need).
    pub omit_updated_at: bool,
    /// Answer transfers as if they had been made under another `idempotency_id` (a provider
    /// that mixes up requests).
    pub answer_other_idempotency_id: bool,
}

impl Default for FinixConfig {
    fn default() -> Self {
        FinixConfig {
            username: "USdemoKasa".into(),
            password: "demo-finix-password".into(),
            merchant_id: "MUdemoKasaMerchant".into(),
            preset_devices: vec!["DVdemoKasaTerminal1".into(), "DVdemoKasaTerminal2".into()],
            default_card: CardScript::approve(Duration::from_millis(0)),
            decline_rate: 0.0,
            seed: 11,
            tap: None,
            lookup_lag: Duration::ZERO,
            hidden_until_final: false,
            omit_updated_at: false,
            answer_other_idempotency_id: false,
        }
    }
}

/// What the simulated cardholder does at the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum CardScript {
    /// The card is approved after the delay.
    Approve {
        /// Time at the terminal.
        after: Duration,
        /// Card brand.
        brand: String,
        /// Last four digits.
        last4: String,
        /// Entry mode.
        entry_mode: String,
    },
    /// The card is declined after the delay.
    Decline {
        /// Time at the terminal.
        after: Duration,
        /// `failure_code`.
        code: String,
        /// `failure_message`.
        message: String,
    },
    /// Nothing happens until the sale is cancelled (or five minutes pass).
    WaitForCancel,
    /// The cardholder stands at the terminal until a test says what the card does
    /// ([`Finix::present_card`]), the sale is cancelled, or five minutes pass.
    WaitForCardholder,
    /// The terminal approves after the delay but reports another amount or currency than was
    /// asked (a partial approval, or a misconfigured terminal).
    ApproveOther {
        /// Time at the terminal.
        after: Duration,
        /// The amount reported, when it differs.
        amount: Option<i64>,
        /// The currency reported, when it differs.
        currency: Option<String>,
    },
}

impl CardScript {
    /// A VISA chip card approved after `after`.
    pub fn approve(after: Duration) -> CardScript {
        CardScript::Approve { after, brand: "VISA".into(), last4: "0059".into(), entry_mode: "CHIP_ENTRY".into() }
    }

    /// A decline with Finix's generic code after `after`.
    pub fn decline(after: Duration) -> CardScript {
        CardScript::Decline {
            after,
            code: "GENERIC_DECLINE".into(),
            message: "The card was declined by the issuer.".into(),
        }
    }

    /// The same script with its time at the terminal set to `after`.
    fn taking(self, took: Duration) -> CardScript {
        match self {
            CardScript::Approve { brand, last4, entry_mode, .. } => {
                CardScript::Approve { after: took, brand, last4, entry_mode }
            }
            CardScript::Decline { code, message, .. } => CardScript::Decline { after: took, code, message },
            CardScript::ApproveOther { amount, currency, .. } => {
                CardScript::ApproveOther { after: took, amount, currency }
            }
            CardScript::WaitForCancel => CardScript::WaitForCancel,
            CardScript::WaitForCardholder => CardScript::WaitForCardholder,
        }
    }

    fn delay(&self) -> Option<Duration> {
        match self {
            CardScript::Approve { after, .. }
            | CardScript::Decline { after, .. }
            | CardScript::ApproveOther { after, .. } => Some(*after),
            CardScript::WaitForCancel | CardScript::WaitForCardholder => None,
        }
    }
}

struct Device {
    json: Value,
    enabled: bool,
    connected: bool,
}

struct Pending {
    transfer_id: String,
    cancel: Option<oneshot::Sender<()>>,
    /// For a cardholder who waits to be told what to do ([`CardScript::WaitForCardholder`]).
    decide: Option<oneshot::Sender<CardScript>>,
}

struct Inner {
    config: FinixConfig,
    reversed: HashMap<String, i64>,
    devices: BTreeMap<String, Device>,
    transfers: HashMap<String, Value>,
    done: HashMap<String, watch::Receiver<bool>>,
    idempotency: HashMap<String, (Value, String)>,
    /// When each transfer becomes visible to lookups (absent: visible).
    visible_from: HashMap<String, std::time::Instant>,
    /// Transfers lookups do not see until their outcome is reached.
    hidden: std::collections::HashSet<String>,
    pending: HashMap<String, Pending>,
    scripts: VecDeque<CardScript>,
    rng: StdRng,
}

impl Inner {
    /// Whether lookups see a transfer yet.
    fn visible(&self, id: &str) -> bool {
        !self.hidden.contains(id) && self.visible_from.get(id).is_none_or(|from| std::time::Instant::now() >= *from)
    }

    /// A transfer as the API answers it.
    fn answer(&self, id: &str) -> Option<Value> {
        let mut t = self.transfers.get(id)?.clone();
        if self.config.answer_other_idempotency_id && t["idempotency_id"].is_string() {
            t["idempotency_id"] = json!("someone-else");
        }
        if self.config.omit_updated_at
            && let Some(o) = t.as_object_mut()
        {
            o.remove("updated_at");
        }
        Some(t)
    }
}

/// The Finix sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct Finix {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Finix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finix")
    }
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

const BASE: &str = "https://finix.sandbox-payments-api.com";

impl Finix {
    /// A sandbox with the preset device, if configured.
    pub fn new(config: FinixConfig) -> Finix {
        let rng = StdRng::seed_from_u64(config.seed);
        let preset = config.preset_devices.clone();
        let f = Finix {
            inner: Arc::new(Mutex::new(Inner {
                config,
                reversed: HashMap::new(),
                devices: BTreeMap::new(),
                transfers: HashMap::new(),
                done: HashMap::new(),
                idempotency: HashMap::new(),
                visible_from: HashMap::new(),
                hidden: std::collections::HashSet::new(),
                pending: HashMap::new(),
                scripts: VecDeque::new(),
                rng,
            })),
        };
        for (n, id) in preset.into_iter().enumerate() {
            let mut g = f.lock();
            let merchant = g.config.merchant_id.clone();
            let (name, desc, serial) =
                (format!("Kasa lane {}", n + 1), format!("Register {}", n + 1), format!("12345678{n:02}"));
            let json = device_json(&id, &merchant, "PAX_A920PRO", &name, &desc, &serial, true);
            g.devices.insert(id, Device { json, enabled: true, connected: true });
        }
        f
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/merchants/{merchant_id}/devices", post(create_device))
            .route("/devices/{device_id}", put(update_device).get(get_device))
            .route("/transfers", post(create_transfer).get(list_transfers))
            .route("/transfers/{transfer_id}", get(get_transfer))
            .route("/transfers/{transfer_id}/reversals", post(create_reversal))
            .with_state(self.clone())
    }

    /// Queues what the next card at any terminal does.
    pub fn push_card(&self, script: CardScript) {
        self.lock().scripts.push_back(script);
    }

    /// Sets what unscripted cards do.
    pub fn set_default_card(&self, script: CardScript) {
        self.lock().config.default_card = script;
    }

    /// Powers a device's connection on or off.
    pub fn set_connected(&self, device_id: &str, connected: bool) {
        if let Some(d) = self.lock().devices.get_mut(device_id) {
            d.connected = connected;
        }
    }

    /// Every transfer, in no particular order.
    pub fn transfers(&self) -> Vec<Value> {
        self.lock().transfers.values().cloned().collect()
    }

    /// Sales that took money (succeeded debits; refunds are reversals).
    pub fn succeeded_transfers(&self) -> Vec<Value> {
        self.transfers().into_iter().filter(|t| t["state"] == "SUCCEEDED" && t["type"] == "DEBIT").collect()
    }

    /// Reversals (refunds) made.
    pub fn reversals(&self) -> Vec<Value> {
        self.transfers().into_iter().filter(|t| t["type"] == "REVERSAL").collect()
    }

    /// What the card of the cardholder waiting at `device_id` does now (the card is read at
    /// once, whatever delay `script` names). Returns whether someone was waiting.
    pub fn present_card(&self, device_id: &str, script: CardScript) -> bool {
        let decide = self.lock().pending.get_mut(device_id).and_then(|p| p.decide.take());
        decide.is_some_and(|d| d.send(script).is_ok())
    }

    /// Whether a sale is waiting at a device's terminal.
    pub fn is_waiting(&self, device_id: &str) -> bool {
        self.lock().pending.contains_key(device_id)
    }

    fn new_id(&self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut g = self.lock();
        let tail: String = (0..22).map(|_| ALPHABET[g.rng.random_range(0..ALPHABET.len())] as char).collect();
        format!("{prefix}{tail}")
    }
}

fn device_json(
    id: &str,
    merchant: &str,
    model: &str,
    name: &str,
    description: &str,
    serial: &str,
    enabled: bool,
) -> Value {
    let at = now();
    json!({
        "id": id,
        "created_at": at,
        "updated_at": at,
        "configuration_details": {
            "allow_debit": true,
            "check_for_duplicate_transactions": true,
            "prompt_amount_confirmation": true,
            "prompt_manual_entry": false,
            "signature_threshold_amount": 10000,
            "bypass_device_on_capture": true,
            "prompt_receipt_confirmation": true,
            "display_tip_on_receipt": false,
            "prompt_tip_on_screen": false,
            "allow_standalone_authorizations": false,
            "allow_standalone_sales": false,
            "allow_standalone_refunds": false,
            "prompt_for_signature": "NEVER"
        },
        "description": description,
        "enabled": enabled,
        "idle_message": null,
        "merchant": merchant,
        "model": model,
        "name": name,
        "serial_number": serial,
        "tags": {},
        "_links": {
            "self": { "href": format!("{BASE}/devices/{id}") },
            "merchant": { "href": format!("{BASE}/merchants/{merchant}") },
            "transfers": { "href": format!("{BASE}/transfers") }
        }
    })
}

/// A Finix error envelope.
struct FinixError(StatusCode, &'static str, String);

impl IntoResponse for FinixError {
    fn into_response(self) -> Response {
        let body = json!({
            "total": 1,
            "_embedded": { "errors": [ {
                "logref": format!("sim_{}", self.0.as_u16()),
                "code": self.1,
                "message": self.2,
                "_links": {}
            } ] }
        });
        (self.0, [("content-type", "application/hal+json")], body.to_string()).into_response()
    }
}

type FinixResult = Result<Response, FinixError>;

fn hal(status: StatusCode, v: Value) -> FinixResult {
    Ok((status, [("content-type", "application/hal+json")], v.to_string()).into_response())
}

fn check(f: &Finix, headers: &HeaderMap) -> Result<(), FinixError> {
    let (user, pass) = {
        let g = f.lock();
        (g.config.username.clone(), g.config.password.clone())
    };
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
    let got = headers.get("authorization").and_then(|v| v.to_str().ok());
    if got != Some(expected.as_str()) {
        return Err(FinixError(StatusCode::UNAUTHORIZED, "UNKNOWN", "Unauthorized".into()));
    }
    if headers.get("finix-version").is_none() {
        return Err(FinixError(StatusCode::BAD_REQUEST, "INVALID_FIELD", "Finix-Version header is required".into()));
    }
    Ok(())
}

fn parse(body: &Bytes) -> Result<Value, FinixError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| FinixError(StatusCode::BAD_REQUEST, "INVALID_FIELD", format!("body is not JSON: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(FinixError(StatusCode::BAD_REQUEST, "INVALID_FIELD", "body must be an object".into()))
    }
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, FinixError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| FinixError(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", format!("{name} is required")))
}

const MODELS: &[&str] = &["PAX_A800", "PAX_A920PRO", "PAX_A920", "PAX_D135", "PAX_A77"];

async fn create_device(
    State(f): State<Finix>,
    headers: HeaderMap,
    Path(merchant_id): Path<String>,
    body: Bytes,
) -> FinixResult {
    check(&f, &headers)?;
    let b = parse(&body)?;
    if merchant_id != f.lock().config.merchant_id {
        return Err(FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Merchant {merchant_id} not found")));
    }
    let model = field(&b, "model")?;
    if !MODELS.contains(&model) {
        return Err(FinixError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_FIELD",
            format!("unknown device model {model}"),
        ));
    }
    let id = f.new_id("DV");
    let json = device_json(
        &id,
        &merchant_id,
        model,
        b.get("name").and_then(Value::as_str).unwrap_or(""),
        b.get("description").and_then(Value::as_str).unwrap_or(""),
        b.get("serial_number").and_then(Value::as_str).unwrap_or(""),
        false,
    );
    f.lock().devices.insert(id, Device { json: json.clone(), enabled: false, connected: true });
    hal(StatusCode::CREATED, json)
}

#[derive(Deserialize)]
struct DeviceQuery {
    include_connection: Option<bool>,
}

async fn get_device(
    State(f): State<Finix>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DeviceQuery>,
) -> FinixResult {
    check(&f, &headers)?;
    let g = f.lock();
    let d = g
        .devices
        .get(&id)
        .ok_or_else(|| FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Device {id} not found")))?;
    let mut v = d.json.clone();
    v["enabled"] = json!(d.enabled);
    if q.include_connection == Some(true) {
        v["connection"] = json!(if d.enabled && d.connected { "Open" } else { "Closed" });
    }
    hal(StatusCode::OK, v)
}

async fn update_device(State(f): State<Finix>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> FinixResult {
    check(&f, &headers)?;
    let b = parse(&body)?;
    let action = field(&b, "action")?.to_string();
    let not_found = || FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Device {id} not found"));
    match action.as_str() {
        "ACTIVATE" | "DEACTIVATE" => {
            let mut g = f.lock();
            let d = g.devices.get_mut(&id).ok_or_else(not_found)?;
            if action == "ACTIVATE" && !d.connected {
                return Err(FinixError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "DEVICE_UNREACHABLE",
                    "The device must be online with the Finix app open to be activated".into(),
                ));
            }
            d.enabled = action == "ACTIVATE";
            d.json["enabled"] = json!(d.enabled);
            d.json["updated_at"] = json!(now());
            hal(StatusCode::OK, d.json.clone())
        }
        "CANCEL" => {
            let (transfer_id, done) = {
                let mut g = f.lock();
                if !g.devices.contains_key(&id) {
                    return Err(not_found());
                }
                let p = g.pending.get_mut(&id).ok_or_else(|| {
                    FinixError(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "INVALID_STATE",
                        "No transaction in progress on this device".into(),
                    )
                })?;
                if let Some(tx) = p.cancel.take() {
                    let _ = tx.send(());
                }
                let tid = p.transfer_id.clone();
                let done = g.done.get(&tid).cloned();
                (tid, done)
            };
            if let Some(mut done) = done {
                let _ = done.wait_for(|d| *d).await;
            }
            let t = f.lock().answer(&transfer_id).unwrap_or(Value::Null);
            hal(StatusCode::OK, t)
        }
        other => Err(FinixError(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", format!("unknown action {other}"))),
    }
}

async fn create_transfer(State(f): State<Finix>, headers: HeaderMap, body: Bytes) -> FinixResult {
    check(&f, &headers)?;
    let b = parse(&body)?;
    let amount = b.get("amount").and_then(Value::as_i64).filter(|a| *a > 0).ok_or_else(|| {
        FinixError(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", "amount must be a positive integer".into())
    })?;
    let currency = field(&b, "currency")?.to_string();
    let device_id = field(&b, "device")?.to_string();
    let operation_key = field(&b, "operation_key")?.to_string();
    if !["CARD_PRESENT_DEBIT", "CARD_PRESENT_SALE"].contains(&operation_key.as_str()) {
        return Err(FinixError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_FIELD",
            format!("operation_key {operation_key} is not card-present"),
        ));
    }
    let idempotency_id = b.get("idempotency_id").and_then(Value::as_str).map(str::to_string);

    // The original answer for a repeated idempotency id; an error when the body differs.
    if let Some(key) = &idempotency_id {
        let seen = f.lock().idempotency.get(key).cloned();
        if let Some((first_body, transfer_id)) = seen {
            if first_body != b {
                return Err(FinixError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IDEMPOTENCY_ID_REUSED",
                    "idempotency_id was already used with a different request".into(),
                ));
            }
            return wait_final(&f, &transfer_id).await;
        }
    }

    let (merchant, script) = {
        let mut g = f.lock();
        let d = g.devices.get(&device_id).ok_or_else(|| {
            FinixError(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", format!("Device {device_id} not found"))
        })?;
        if !d.enabled {
            return Err(FinixError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "DEVICE_DISABLED",
                format!("Device {device_id} is not activated"),
            ));
        }
        let connected = d.connected;
        if g.pending.contains_key(&device_id) {
            return Err(FinixError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "DEVICE_BUSY",
                "A transaction is already in progress on this device".into(),
            ));
        }
        let decline_rate = g.config.decline_rate.clamp(0.0, 1.0);
        let script = if connected {
            let script = match g.scripts.pop_front() {
                Some(s) => s,
                None if decline_rate > 0.0 && g.rng.random_bool(decline_rate) => CardScript::decline(Duration::ZERO),
                None => g.config.default_card.clone(),
            };
            match (g.config.tap, script.delay()) {
                // A card with no time of its own takes the cardholder a while.
                (Some((min, max)), Some(d)) if d.is_zero() => {
                    let took = if max > min { g.rng.random_range(min..=max) } else { min };
                    script.taking(took)
                }
                _ => script,
            }
        } else {
            CardScript::Decline {
                after: Duration::ZERO,
                code: "DEVICE_UNREACHABLE".into(),
                message:
                    "The device could not be reached. Check that it is powered on, online and the Finix app is open."
                        .into(),
            }
        };
        (g.config.merchant_id.clone(), script)
    };

    let id = f.new_id("TR");
    let trace = f.new_id("FNX");
    let at = now();
    let transfer = json!({
        "id": id,
        "created_at": at,
        "updated_at": at,
        "amount": amount,
        "amount_requested": amount,
        "application": "APdemoKasaApplication",
        "card_present_details": null,
        "currency": currency,
        "device": device_id,
        "failure_code": null,
        "failure_message": null,
        "fee": 0,
        "idempotency_id": idempotency_id,
        "merchant": merchant,
        "operation_key": "CARD_PRESENT_SALE",
        "state": "PENDING",
        "tags": b.get("tags").cloned().unwrap_or_else(|| json!({})),
        "trace_id": trace,
        "type": "DEBIT",
        "_links": { "self": { "href": format!("{BASE}/transfers/{id}") }, "device": { "href": format!("{BASE}/devices/{device_id}") } }
    });
    let (cancel_tx, cancel_rx) = oneshot::channel();
    let (decide_tx, decide_rx) = oneshot::channel();
    let (done_tx, done_rx) = watch::channel(false);
    {
        let mut g = f.lock();
        g.transfers.insert(id.clone(), transfer);
        g.done.insert(id.clone(), done_rx);
        if let Some(key) = &idempotency_id {
            g.idempotency.insert(key.clone(), (b.clone(), id.clone()));
        }
        g.pending.insert(
            device_id.clone(),
            Pending { transfer_id: id.clone(), cancel: Some(cancel_tx), decide: Some(decide_tx) },
        );
        if !g.config.lookup_lag.is_zero() {
            let from = std::time::Instant::now() + g.config.lookup_lag;
            g.visible_from.insert(id.clone(), from);
        }
        if g.config.hidden_until_final {
            g.hidden.insert(id.clone());
        }
    }
    // The terminal works on its own: the outcome is reached even if the caller goes away.
    tokio::spawn(run_terminal(f.clone(), id.clone(), device_id, script, (cancel_rx, decide_rx), done_tx));
    wait_final(&f, &id).await
}

async fn wait_final(f: &Finix, transfer_id: &str) -> FinixResult {
    let done = f.lock().done.get(transfer_id).cloned();
    if let Some(mut done) = done {
        let _ = done.wait_for(|d| *d).await;
    }
    let t = f.lock().answer(transfer_id);
    match t {
        Some(t) => hal(StatusCode::CREATED, t),
        None => Err(FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Transfer {transfer_id} not found"))),
    }
}

async fn run_terminal(
    f: Finix,
    transfer_id: String,
    device_id: String,
    script: CardScript,
    (cancel, decide): (oneshot::Receiver<()>, oneshot::Receiver<CardScript>),
    done: watch::Sender<bool>,
) {
    let outcome = match &script {
        // No timer for an immediate outcome: the timer wheel's millisecond tick would add to it.
        CardScript::Approve { after, .. }
        | CardScript::Decline { after, .. }
        | CardScript::ApproveOther { after, .. }
            if after.is_zero() =>
        {
            Some(script.clone())
        }
        CardScript::Approve { after, .. }
        | CardScript::Decline { after, .. }
        | CardScript::ApproveOther { after, .. } => {
            tokio::select! {
                _ = tokio::time::sleep(*after) => Some(script.clone()),
                _ = cancel => None,
            }
        }
        CardScript::WaitForCardholder => {
            let timeout = CardScript::Decline {
                after: Duration::ZERO,
                code: "TRANSACTION_TIMEOUT".into(),
                message: "The cardholder did not present a card in time.".into(),
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(300)) => Some(timeout),
                decided = decide => decided.ok(),
                _ = cancel => None,
            }
        }
        CardScript::WaitForCancel => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(300)) => Some(CardScript::Decline {
                    after: Duration::ZERO,
                    code: "TRANSACTION_TIMEOUT".into(),
                    message: "The cardholder did not present a card in time.".into(),
                }),
                _ = cancel => None,
            }
        }
    };
    let approval: u32 = f.lock().rng.random_range(100_000..999_999);
    let mut g = f.lock();
    g.pending.remove(&device_id);
    g.hidden.remove(&transfer_id);
    if let Some(t) = g.transfers.get_mut(&transfer_id) {
        t["updated_at"] = json!(now());
        let approved = |t: &mut Value, brand: &str, last4: &str, entry_mode: &str| {
            t["state"] = json!("SUCCEEDED");
            t["card_present_details"] = json!({
                "emv_data": { "application_identifier": "A0000000031010", "application_label": brand, "cryptogram": "ARCQ 0000000000000000", "pin_verified": false },
                "masked_account_number": format!("************{last4}"),
                "name": "KASA TEST CARD",
                "brand": brand,
                "entry_mode": entry_mode,
                "payment_type": "CREDIT",
                "approval_code": format!("{approval:06}")
            });
        };
        match outcome {
            Some(CardScript::Approve { brand, last4, entry_mode, .. }) => approved(t, &brand, &last4, &entry_mode),
            Some(CardScript::ApproveOther { amount, currency, .. }) => {
                approved(t, "VISA", "0059", "CONTACTLESS");
                if let Some(a) = amount {
                    t["amount"] = json!(a);
                }
                if let Some(c) = currency {
                    t["currency"] = json!(c);
                }
            }
            Some(CardScript::Decline { code, message, .. }) => {
                t["state"] = json!("FAILED");
                t["failure_code"] = json!(code);
                t["failure_message"] = json!(message);
                t["card_present_details"] = unknown_card();
            }
            Some(CardScript::WaitForCancel | CardScript::WaitForCardholder) | None => {
                t["state"] = json!("FAILED");
                t["failure_code"] = json!("CANCELLATION_VIA_API");
                t["failure_message"] = json!(
                    "The transaction was canceled via API before the transaction was completed. The cardholder needs to attempt the transaction again."
                );
                t["card_present_details"] = unknown_card();
            }
        }
    }
    drop(g);
    let _ = done.send(true);
}

fn unknown_card() -> Value {
    json!({
        "emv_data": null, "masked_account_number": null, "name": null, "brand": "UNKNOWN",
        "entry_mode": "UNKNOWN", "payment_type": null, "approval_code": null
    })
}

async fn get_transfer(State(f): State<Finix>, headers: HeaderMap, Path(id): Path<String>) -> FinixResult {
    check(&f, &headers)?;
    let t = {
        let g = f.lock();
        if g.visible(&id) { g.answer(&id) } else { None }
    };
    match t {
        Some(t) => hal(StatusCode::OK, t),
        None => Err(FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Transfer {id} not found"))),
    }
}

#[derive(Deserialize)]
struct TransferQuery {
    idempotency_id: Option<String>,
}

async fn list_transfers(State(f): State<Finix>, headers: HeaderMap, Query(q): Query<TransferQuery>) -> FinixResult {
    check(&f, &headers)?;
    let g = f.lock();
    let mut list: Vec<Value> = g
        .transfers
        .iter()
        .filter(|(id, t)| {
            g.visible(id)
                && match &q.idempotency_id {
                    Some(k) => t["idempotency_id"].as_str() == Some(k.as_str()),
                    None => true,
                }
        })
        .filter_map(|(id, _)| g.answer(id))
        .collect();
    list.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    let n = list.len();
    hal(
        StatusCode::OK,
        json!({ "_embedded": { "transfers": list }, "page": { "limit": 100, "next_cursor": null, "count": n } }),
    )
}

async fn create_reversal(
    State(f): State<Finix>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> FinixResult {
    check(&f, &headers)?;
    let b = parse(&body)?;
    let amount = b.get("refund_amount").and_then(Value::as_i64).filter(|a| *a > 0).ok_or_else(|| {
        FinixError(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", "refund_amount must be a positive integer".into())
    })?;
    let idempotency_id = b.get("idempotency_id").and_then(Value::as_str).map(str::to_string);
    if let Some(key) = &idempotency_id {
        let seen = f.lock().idempotency.get(key).cloned();
        if let Some((first, reversal_id)) = seen {
            if first != b {
                return Err(FinixError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IDEMPOTENCY_ID_REUSED",
                    "idempotency_id was already used with a different request".into(),
                ));
            }
            let t = f.lock().transfers.get(&reversal_id).cloned().unwrap_or(Value::Null);
            return hal(StatusCode::CREATED, t);
        }
    }
    let reversal_id = f.new_id("TR");
    let trace = f.new_id("FNX");
    let mut g = f.lock();
    let original = g
        .transfers
        .get(&id)
        .cloned()
        .ok_or_else(|| FinixError(StatusCode::NOT_FOUND, "NOT_FOUND", format!("Transfer {id} not found")))?;
    if original["state"] != "SUCCEEDED" || original["type"] != "DEBIT" {
        return Err(FinixError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_STATE",
            "Only a succeeded sale can be refunded".into(),
        ));
    }
    let already = g.reversed.get(&id).copied().unwrap_or(0);
    let total = original["amount"].as_i64().unwrap_or(0);
    if already + amount > total {
        return Err(FinixError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "REFUND_AMOUNT_TOO_LARGE",
            format!("refund_amount {amount} exceeds what can still be refunded ({})", total - already),
        ));
    }
    g.reversed.insert(id.clone(), already + amount);
    let at = now();
    let reversal = json!({
        "id": reversal_id,
        "created_at": at,
        "updated_at": at,
        "amount": amount,
        "currency": original["currency"],
        "device": original["device"],
        "failure_code": null,
        "failure_message": null,
        "idempotency_id": idempotency_id,
        "merchant": original["merchant"],
        "parent_transfer": id,
        "state": "SUCCEEDED",
        "tags": {},
        "trace_id": trace,
        "type": "REVERSAL",
        "_links": { "self": { "href": format!("{BASE}/transfers/{reversal_id}") }, "parent": { "href": format!("{BASE}/transfers/{id}") } }
    });
    g.transfers.insert(reversal_id.clone(), reversal.clone());
    if let Some(key) = idempotency_id {
        g.idempotency.insert(key, (b, reversal_id));
    }
    drop(g);
    hal(StatusCode::CREATED, reversal)
}
