//! Settle: QR payments. Kasa shows a QR code carrying the attempt's `pos_tid`; Settle reports
//! the customer's scan to Kasa's callback server ([`scans`]); Kasa asks the customer for the
//! payment, follows its outcome and captures it once authorised; refunds and aborts go by
//! Settle's transaction id.
//!
//! Each step is split where losing what was learnt would matter: the scan token and the
//! transaction id are recorded as sale events before they are used, so a restart resumes from the
//! last durable step. A `pos_tid` nobody scanned can end an attempt (no payment exists before Kasa
//! asks for one); once asked, only Settle's final outcome ends it. Waiting for the customer is
//! bounded, and a cashier's cancel ends it.

pub(crate) mod scans;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kasa_connect::settle::{SettleClient, SettleSettings, Status};
use kasa_core::op::Op;
use kasa_core::{Attempt, Money, OpKind, Payment, PaymentKind, SaleEvent, SaleState};
use kasa_store::{OutboxRow, Tx};
use time::OffsetDateTime;

use crate::config::{ConfigError, check_url};
use crate::delivery::{
    Delivery, approved, declined, not_configured, outcome as done, refund_outcome, reported_currency, retry, unresolved,
};
use crate::dispatch::apply_outcome;
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, StepError, connect_error};
use scans::{ScanBoard, ScanSignal};
use serde::{Deserialize, Serialize};

/// The keyring entry of the API secret.
pub const SECRET: &str = "settle.secret";

/// The `[settle]` section. The API secret is the keyring entry [`SECRET`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleConfig {
    /// Base URL of the merchant API (e.g. `https://api.settle.eu/`).
    pub base_url: String,
    /// Merchant id.
    pub merchant_id: String,
    /// API user.
    pub api_user: String,
    /// This register's `pos_id`.
    pub pos_id: String,
    /// The merchant's shortlink id (the QR codes point at it).
    pub shortlink_id: String,
    /// Where Kasa listens for Settle's scan callbacks (`host:port`; port 0 picks one). Loopback
    /// unless set: Settle reaches the register through a relay (a reverse proxy or tunnel that
    /// terminates HTTPS) that forwards to this address.
    #[serde(default = "default_callback_listen")]
    pub callback_listen: String,
    /// The public HTTPS address Settle posts scans to, relayed to `callback_listen` (Kasa adds
    /// a secret path segment of its own). Required when `callback_listen` is not loopback.
    #[serde(default)]
    pub callback_url: Option<String>,
}

fn default_callback_listen() -> String {
    "127.0.0.1:0".into()
}

impl SettleConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_url(&self.base_url)?;
        let Ok(listen) = self.callback_listen.parse::<std::net::SocketAddr>() else {
            return Err(ConfigError::Invalid(format!(
                "settle.callback_listen '{}' is not host:port (e.g. 127.0.0.1:8085)",
                self.callback_listen
            )));
        };
        match &self.callback_url {
            Some(url) if !url.starts_with("https://") && !listen.ip().is_loopback() => {
                Err(ConfigError::Invalid(format!(
                    "settle.callback_url '{url}' is not https://; Settle must reach an exposed callback over HTTPS"
                )))
            }
            Some(url) => check_url(url),
            None if !listen.ip().is_loopback() => Err(ConfigError::Invalid(format!(
                "settle.callback_listen '{}' is not loopback; set settle.callback_url to the public https:// address                  that relays to it, or listen on 127.0.0.1",
                self.callback_listen
            ))),
            None => Ok(()),
        }
    }

    /// The sandbox's demo merchant at `base_url`.
    pub(crate) fn local(base_url: String) -> SettleConfig {
        SettleConfig {
            base_url,
            merchant_id: "kasademo".into(),
            api_user: "kasa-pos".into(),
            pos_id: "kasa-register-1".into(),
            shortlink_id: "kAsA7d".into(),
            callback_listen: default_callback_listen(),
            callback_url: None,
        }
    }
}

/// The register's Settle merchant, and where it hears of scans.
#[derive(Debug)]
pub(crate) struct Settle {
    client: SettleClient,
    scans: ScanBoard,
    /// Whether Settle knows where to report scans (the shortlink points at this register).
    ready: AtomicBool,
}

impl Settle {
    /// The merchant of `config`'s `[settle]` section, if it has one.
    pub(crate) fn build(
        config: &Config,
        credentials: &dyn Credentials,
        http: &kasa_connect::HttpClient,
    ) -> Result<Option<Settle>, ApiError> {
        let Some(c) = &config.systems.settle else { return Ok(None) };
        let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
        let client = SettleClient::new(
            http.clone(),
            SettleSettings {
                base_url: kasa_connect::base_url(&c.base_url).map_err(|e| setup(e.to_string()))?,
                merchant_id: c.merchant_id.clone(),
                api_user: c.api_user.clone(),
                secret: credentials.get(SECRET).map_err(|e| setup(e.to_string()))?,
                pos_id: c.pos_id.clone(),
                shortlink_id: c.shortlink_id.clone(),
                timeout: Duration::from_secs(10),
            },
        );
        Ok(Some(Settle { client, scans: ScanBoard::default(), ready: AtomicBool::new(false) }))
    }

    /// Whether payments can be taken: Settle knows where to report the scans.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The text of the QR code for `pos_tid`, shown for a payment of `amount`: from now on a
    /// scan of it is expected.
    pub(crate) fn qr_url(&self, pos_tid: &str, amount: Money) -> String {
        self.scans.expect(pos_tid, amount);
        self.client.qr_url(pos_tid)
    }
}

/// Starts the callback server and points the shortlink at it (retried until Settle answers).
pub(crate) async fn start(engine: &Engine) -> Result<(), ApiError> {
    let (Some(settle), Some(c)) = (&engine.inner.providers.settle, &engine.inner.config.systems.settle) else {
        return Ok(());
    };
    // Two random UUIDs (244 random bits), from the register's randomness so that a seeded
    // simulation replays the same callback URL.
    let key = format!("{}{}", engine.env().next_id(), engine.env().next_id()).replace('-', "");
    let served =
        scans::serve(engine.env().listener.as_ref(), &c.callback_listen, settle.scans.clone(), key).map_err(|e| {
            ApiError::new(ErrorCode::Setup, format!("cannot listen for Settle callbacks on {}: {e}", c.callback_listen))
        })?;
    engine.inner.listening.lock().unwrap_or_else(|e| e.into_inner()).push(served.guard);
    let base = c.callback_url.clone().unwrap_or_else(|| format!("http://{}/settle/callback", served.addr));
    let callback = format!("{}/{}", base.trim_end_matches('/'), served.key);
    journal_refusals(engine, served.refused);
    let e2 = engine.clone();
    engine.spawn(async move {
        let mut shutdown = e2.inner.shutdown.subscribe();
        let Some(settle) = &e2.inner.providers.settle else { return };
        loop {
            match settle.client.set_callback(&callback).await {
                Ok(()) => {
                    settle.ready.store(true, Ordering::SeqCst);
                    e2.emit_status();
                    break;
                }
                Err(err) => tracing::warn!(error = %err, "could not register the Settle callback; will retry"),
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            }
        }
    });
    Ok(())
}

/// Journals the callbacks the server refused (`settle_callback_refused`).
fn journal_refusals(engine: &Engine, mut refused: tokio::sync::mpsc::UnboundedReceiver<(scans::Refusal, u64)>) {
    let e2 = engine.clone();
    // Subscribed before the task runs, and waited on by value: a shutdown that comes first must
    // still end the task (the sender of `refused` lives until the server is dropped, which
    // happens only after the shutdown has waited for this task).
    let mut shutdown = engine.inner.shutdown.subscribe();
    engine.spawn(async move {
        loop {
            let (r, unjournaled_before) = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                r = refused.recv() => match r { Some(r) => r, None => break },
            };
            let data = serde_json::json!({
                "reason": r.reason,
                "pos_tid": r.pos_tid,
                "detail": r.detail,
                "refused_unjournaled_before": unjournaled_before,
            });
            if let Err(e) = e2.journal_event("settle_callback_refused", data).await {
                tracing::error!(error = %e.message, "could not journal a refused Settle callback");
            }
        }
    });
}

/// Delivers one Settle operation.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    let Some(settle) = &engine.inner.providers.settle else { return not_configured("Settle") };
    match &row.op {
        Op::SettleScanWait { pos_tid, amount } => scan_wait(settle, pos_tid, *amount).await,
        Op::SettleRequest { amount, pos_tid, token } => request(settle, row, *amount, pos_tid, token).await,
        Op::SettleAwait { amount, tid, pos_tid } => follow(settle, *amount, tid, pos_tid.as_deref()).await,
        Op::SettleRefund { refund_id, tid, amount } => {
            refund_outcome(refund_id, settle.client.refund(tid, *amount, refund_id).await)
        }
        other => Delivery::Park { reason: format!("not a Settle operation: {:?}", other.kind()), event: None },
    }
}

/// How long a customer has to scan the QR code.
const SCAN_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a customer has to decide in the app.
const DECISION_TIMEOUT: Duration = Duration::from_secs(600);

/// How often an undecided payment is asked about.
const POLL: Duration = Duration::from_millis(400);

/// How long an abort Settle does not confirm is waited for before the sale is held.
const GIVE_UP_WAIT: Duration = Duration::from_secs(60);

/// Waits for the customer to scan the QR code of `pos_tid`.
async fn scan_wait(settle: &Settle, pos_tid: &str, amount: Money) -> Delivery {
    let board = &settle.scans;
    let mut rx = board.wait(pos_tid, amount);
    let outcome = tokio::time::timeout(SCAN_TIMEOUT, rx.recv()).await;
    board.forget(pos_tid);
    match outcome {
        Ok(Some(ScanSignal::Scanned(token))) => done(SaleEvent::SettleScanned { token }),
        Ok(Some(ScanSignal::Cancelled)) | Ok(None) => declined("CANCELLED", "Cancelled before the customer scanned."),
        Err(_) => declined("SCAN_TIMEOUT", "The customer did not scan the QR code in time."),
    }
}

/// Asks the customer who scanned for the payment.
async fn request(settle: &Settle, row: &OutboxRow, amount: Money, pos_tid: &str, token: &str) -> Delivery {
    match settle.client.request_payment(token, pos_tid, amount).await {
        Ok(tid) => done(SaleEvent::SettleRequested { tid }),
        Err(e) if e.is_transient() => retry(&e),
        // An earlier request may have been made: a refusal now proves nothing about it.
        Err(e) if row.maybe_applied => unresolved(format!(
            "Settle refused the payment request for pos_tid {pos_tid} ({e}) after an earlier request may have \
             reached it; check the Settle merchant portal"
        )),
        // Settle recognises a repeated `pos_tid` before it looks at anything else (inferred, see
        // kasa-sim's Settle module), so a refusal of the first request means none exists.
        Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => declined(
            e.code().unwrap_or("REFUSED"),
            &format!("Settle refused the payment request ({e}). Ask the customer to scan again."),
        ),
        Err(e) => retry(&e),
    }
}

/// How long a capture Settle refuses with 409 (its state is still moving) is retried within one
/// delivery, with growing pauses, before the delivery gives way and is retried later.
const CAPTURE_DEADLINE: Duration = Duration::from_secs(30);

/// Follows a payment request until the customer decides; captures it once authorised.
///
/// `tid` is Settle's own id for a request it accepted, so an outcome of 4004 NOT_FOUND is not
/// an end: Settle's lookups may not see a request made a moment ago. It is asked again until the
/// request is seen, and never read as "no payment".
async fn follow(settle: &Settle, amount: Money, tid: &str, pos_tid: Option<&str>) -> Delivery {
    let settle = &settle.client;
    let started = tokio::time::Instant::now();
    let mut capture_pause = POLL;
    let mut capture_started: Option<tokio::time::Instant> = None;
    let mut aborted: Option<tokio::time::Instant> = None;
    loop {
        let outcome = match settle.outcome(tid).await {
            Ok(o) => o,
            Err(e) => return retry(&e),
        };
        let status = outcome.status();
        // What Settle says must be about this request: its POS transaction id and the amount asked.
        if status != Status::NotFound {
            let foreign_tid = pos_tid.is_some_and(|p| !outcome.pos_tid.is_empty() && outcome.pos_tid != p);
            if foreign_tid || (outcome.amount != 0 && outcome.amount != amount.minor) {
                return unresolved(format!(
                    "Settle's outcome of {tid} is for pos_tid '{}' and {} minor units, not this payment's '{}' and {}",
                    outcome.pos_tid,
                    outcome.amount,
                    pos_tid.unwrap_or("?"),
                    amount.minor
                ));
            }
        }
        match status {
            Status::Ok => {
                let Some(currency) = outcome.currency.as_deref() else {
                    return Delivery::Retry {
                        error: format!("Settle's outcome of {tid} names no currency"),
                        maybe_applied: true,
                    };
                };
                if outcome.auth_amount <= 0 {
                    return Delivery::Retry {
                        error: format!("Settle's outcome of {tid} names no amount yet"),
                        maybe_applied: true,
                    };
                }
                let paid = Money::new(outcome.auth_amount, reported_currency(currency));
                return approved(Payment { amount: paid, kind: PaymentKind::Settle { tid: tid.to_string() } }, amount);
            }
            Status::Auth => match settle.capture(tid).await {
                Ok(()) => continue,
                Err(e) if e.status() == Some(409) => {
                    // Its state moved on, or has not caught up yet: read it again after a pause
                    // that grows, and give way to the dispatcher's backoff after a while.
                    let since = *capture_started.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > CAPTURE_DEADLINE {
                        return Delivery::Retry {
                            error: format!("Settle keeps refusing the capture: {e}"),
                            maybe_applied: true,
                        };
                    }
                    tokio::time::sleep(capture_pause).await;
                    capture_pause = (capture_pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return retry(&e),
            },
            Status::NotFound => {
                if started.elapsed() > DECISION_TIMEOUT {
                    return Delivery::Retry {
                        error: format!("Settle does not find its payment request {tid} yet"),
                        maybe_applied: true,
                    };
                }
                tokio::time::sleep(POLL).await;
            }
            s if s.is_failed() => {
                let message = match s {
                    Status::Rejected => "The customer rejected the payment in the Settle app.",
                    Status::RequestExpired => "The customer did not answer in time.",
                    Status::AuthExpired => "The authorisation lapsed before it was captured.",
                    Status::Aborted => "The payment request was cancelled.",
                    _ => "Settle ended the payment request.",
                };
                let code = if s == Status::Aborted { "CANCELLED".to_string() } else { s.code().to_string() };
                return declined(&code, message);
            }
            _ => {
                match aborted {
                    None if started.elapsed() > DECISION_TIMEOUT => {
                        // The abort is not trusted blindly: the next rounds read where it ended.
                        aborted = Some(tokio::time::Instant::now());
                        let _ = settle.abort(tid).await;
                    }
                    Some(at) if at.elapsed() > GIVE_UP_WAIT => {
                        return unresolved(format!(
                            "the customer did not answer in time and Settle did not confirm the abort of {tid}; check \
                             the Settle merchant portal"
                        ));
                    }
                    _ => {}
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Cancels the attempt under way (the cashier pressed cancel): aborts the payment request, or,
/// before anyone scanned, stops waiting for the scan.
pub(crate) async fn cancel(engine: &Engine, attempt: &Attempt) -> Result<(), ApiError> {
    let Some(settle) = &engine.inner.providers.settle else {
        return Err(ApiError::new(ErrorCode::Setup, "Settle is not configured on this register."));
    };
    match &attempt.provider_ref {
        Some(tid) => settle.client.abort(tid).await.map_err(|e| connect_error(&e)),
        None => {
            settle.scans.cancel(attempt.reference.as_deref().unwrap_or_default());
            Ok(())
        }
    }
}

/// Start-up recovery: a QR code nobody had scanned yet ends its attempt (no payment can exist
/// before Kasa asks for one); a request already asked for is asked again with its `pos_tid`, and
/// one Settle took is followed by its `tid`, as queued.
pub(crate) fn recover(
    tx: &Tx<'_>,
    at: OffsetDateTime,
    env: &crate::Env,
    told: &mut Vec<String>,
) -> Result<(), StepError> {
    for sale in tx.sales_in(&[SaleState::Paying])? {
        for row in tx.outbox_pending_of(&sale.id.0, OpKind::SettlePayment)? {
            if let Op::SettleScanWait { .. } = row.op {
                tx.outbox_abandon(row.id, "abandoned at start-up: no scan had arrived", at)?;
                let event = SaleEvent::PaymentDeclined {
                    code: "NOT_STARTED".into(),
                    message: "The register restarted before the customer scanned the QR code.".into(),
                };
                apply_outcome(tx, &sale.id.0, event, at, env)?;
                told.push(format!(
                    "Sale {}: the Settle QR code was not scanned before the restart; take payment again.",
                    crate::recovery::short(&sale.id.0)
                ));
            }
        }
    }
    Ok(())
}
