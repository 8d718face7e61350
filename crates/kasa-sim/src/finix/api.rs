//! The sandbox's HTTP API: devices (create, read with the connection, activate, deactivate,
//! cancel), card-present transfers answered when the terminal reaches an outcome, lookups,
//! and reversals.

use super::*;

impl Finix {
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
    let done_tx = Signal::new(false);
    let done_rx = done_tx.subscribe();
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
            let from = tokio::time::Instant::now() + g.config.lookup_lag;
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
    done: Signal<bool>,
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
                biased;
                _ = cancel => None,
                _ = tokio::time::sleep(*after) => Some(script.clone()),
            }
        }
        CardScript::WaitForCardholder => {
            let timeout = CardScript::Decline {
                after: Duration::ZERO,
                code: "TRANSACTION_TIMEOUT".into(),
                message: "The cardholder did not present a card in time.".into(),
            };
            tokio::select! {
                biased;
                _ = cancel => None,
                decided = decide => decided.ok(),
                _ = tokio::time::sleep(Duration::from_secs(300)) => Some(timeout),
            }
        }
        CardScript::WaitForCancel => {
            tokio::select! {
                biased;
                _ = cancel => None,
                _ = tokio::time::sleep(Duration::from_secs(300)) => Some(CardScript::Decline {
                    after: Duration::ZERO,
                    code: "TRANSACTION_TIMEOUT".into(),
                    message: "The cardholder did not present a card in time.".into(),
                }),
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
    done.send_replace(true);
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
