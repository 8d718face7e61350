//! The sandbox's HTTP API: every endpoint of the document, in its GET and POST forms, plus the
//! `/_sim/mobilepay/...` controls of the demo panel. Each endpoint reads its fields through
//! [`Params`] and answers from the shared state.

use super::*;

impl MobilePay {
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
    fn from_query(q: BTreeMap<String, String>) -> Params {
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
    query: BTreeMap<String, String>,
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
fn handler(ep: Endpoint) -> impl Fn(State<MobilePay>, Method, Query<BTreeMap<String, String>>, Bytes) -> Reply + Clone {
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
            visible_from: tokio::time::Instant::now() + g.lookup_lag,
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
