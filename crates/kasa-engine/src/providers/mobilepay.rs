//! MobilePay: taking payments, refunds, the terminal's QR code, and start-up recovery.
//!
//! Taking payments: start (with Kasa's own `orderId`), wait for the customer to
//! approve in the app, capture once reserved. A repeated or resumed delivery finds the payment
//! again by starting with the same `orderId`, so a payment is started at most once and captured
//! at most once, and what was captured is checked against what was asked.
//! MobilePay allows one active payment per point of sale: a stale one left by an earlier run is
//! cancelled before a new one starts.

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use kasa_connect::mobilepay::{MobilePayClient, MobilePaySettings, PaymentStatus};
use kasa_core::op::{Op, Queued};
use kasa_core::{Money, OpKind, PayMethod, Payment, PaymentKind, SaleState};
use kasa_store::{OutboxRow, Tx};
use time::OffsetDateTime;

use crate::delivery::{Delivery, approved, declined, not_configured, refund_outcome, retry, unresolved};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, check_url};
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, StepError, connect_error};

/// The keyring entry of the long-lived access token.
pub const ACCESS_TOKEN: &str = "mobilepay.access_token";

/// The `[mobilepay]` section. The access token is the keyring entry [`ACCESS_TOKEN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobilePayConfig {
    /// Base URL of the PoS API.
    pub base_url: String,
    /// The merchant's bio code.
    pub bio_code: String,
    /// This register's terminal id at MobilePay.
    pub terminal_id: String,
}

impl MobilePayConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_url(&self.base_url)
    }

    /// The sandbox's demo merchant at `base_url`.
    pub(crate) fn local(base_url: String) -> MobilePayConfig {
        MobilePayConfig { base_url, bio_code: "KASA-BIO-0001".into(), terminal_id: "KASA-LANE-1".into() }
    }
}

/// The register's MobilePay point of sale.
#[derive(Debug)]
pub(crate) struct MobilePay {
    client: MobilePayClient,
    /// MobilePay payment ids by Kasa's `orderId`, learnt while delivering (for a cancel).
    ids: Mutex<HashMap<String, String>>,
    /// The terminal's QR code link.
    qr: Mutex<Option<String>>,
}

impl MobilePay {
    /// The point of sale of `config`'s `[mobilepay]` section, if it has one.
    pub(crate) fn build(
        config: &Config,
        credentials: &dyn Credentials,
        http: &kasa_connect::HttpClient,
    ) -> Result<Option<MobilePay>, ApiError> {
        let Some(m) = &config.systems.mobilepay else { return Ok(None) };
        let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
        let client = MobilePayClient::new(
            http.clone(),
            MobilePaySettings {
                base_url: kasa_connect::base_url(&m.base_url).map_err(|e| setup(e.to_string()))?,
                bio_code: m.bio_code.clone(),
                access_token: credentials.get(ACCESS_TOKEN).map_err(|e| setup(e.to_string()))?,
                terminal_id: m.terminal_id.clone(),
                pos_id: None,
                timeout: std::time::Duration::from_secs(10),
            },
        );
        Ok(Some(MobilePay { client, ids: Mutex::new(HashMap::new()), qr: Mutex::new(None) }))
    }

    fn remember(&self, order_id: &str, payment_id: Option<&str>) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        match payment_id {
            Some(p) => ids.insert(order_id.to_string(), p.to_string()),
            None => ids.remove(order_id),
        };
    }
}

/// Delivers one MobilePay operation.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    let Some(mp) = &engine.inner.providers.mobilepay else { return not_configured("MobilePay") };
    match &row.op {
        Op::MobilePayPayment { amount, order_id, start } => payment(engine, mp, row, *amount, order_id, *start).await,
        Op::MobilePayRefund { refund_id, payment_id, amount } => {
            refund_outcome(refund_id, refund(&mp.client, payment_id, *amount, refund_id).await)
        }
        other => Delivery::Park { reason: format!("not a MobilePay operation: {:?}", other.kind()), event: None },
    }
}

/// How long a customer has to approve.
const DECISION_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the payment is asked about.
const POLL: Duration = Duration::from_millis(400);

/// What the cashier reads when a payment ends without money.
fn ended(status: &PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::CancelledByUser => "The customer cancelled in the MobilePay app.",
        PaymentStatus::CancelledByClient => "The payment was cancelled.",
        PaymentStatus::CancelledByMobilePay => "MobilePay cancelled the payment.",
        PaymentStatus::ExpiredAndCancelled => "The customer did not approve in time.",
        PaymentStatus::RejectedByMobilePayDueToAgeRestrictions => "MobilePay refused the payment: age restriction.",
        _ => "MobilePay ended the payment.",
    }
}

/// How long a cancel that MobilePay does not confirm is waited for before the sale is held for
/// a manager.
const GIVE_UP_WAIT: Duration = Duration::from_secs(60);

/// Takes (or, after a restart, follows up) the payment of `order_id`.
///
/// A payment MobilePay lists under Kasa's own `orderId` is this sale's: that positive answer is
/// used first. When the lookup shows nothing (it may lag behind a start made a moment ago),
/// the payment is started with the same `orderId`, which MobilePay answers with the payment it
/// already made (inferred, see kasa-sim's MobilePay module). So a payment is started at most
/// once, and "not found" never ends an attempt: only a final status of the payment does. When
/// the attempt may already have started a payment (after a restart, `start` is false, or after
/// an attempt that may have reached MobilePay) a refused start proves nothing, and the sale is
/// held for a manager instead of reopened.
async fn payment(
    engine: &Engine,
    mp: &MobilePay,
    row: &OutboxRow,
    amount: Money,
    order_id: &str,
    start: bool,
) -> Delivery {
    let in_doubt = !start || row.maybe_applied;
    let payment_id = match mp.client.retrieve_by_terminal(order_id, None).await {
        Ok(Some(id)) => id,
        Ok(None) => match start_payment(engine, &mp.client, order_id, amount, in_doubt).await {
            Ok(id) => id,
            Err(d) => return d,
        },
        Err(e) => return retry(&e),
    };
    mp.remember(order_id, Some(&payment_id));
    let result = follow(&mp.client, &payment_id, amount).await;
    mp.remember(order_id, None);
    result
}

/// MobilePay's answer to an `orderId` used before with another PoS or amount (the sandbox's).
const ORDER_ID_REUSED: &str = "ORDER_ID_REUSED";

/// The `orderId`s of the MobilePay payments this register's sales are waiting on.
async fn live_order_ids(engine: &Engine) -> Vec<String> {
    let waiting = engine.db(|s| Ok(s.sales_in(&[SaleState::Paying, SaleState::NeedsAttention])?)).await;
    waiting
        .unwrap_or_default()
        .into_iter()
        .filter_map(|s| s.attempt.filter(|a| a.method == PayMethod::MobilePay).and_then(|a| a.reference))
        .collect()
}

async fn start_payment(
    engine: &Engine,
    mp: &MobilePayClient,
    order_id: &str,
    amount: Money,
    in_doubt: bool,
) -> Result<String, Delivery> {
    match mp.start(order_id, amount).await {
        Ok(p) if p.order_id == order_id => Ok(p.payment_id),
        Ok(p) => Err(unresolved(format!(
            "MobilePay answered a start of orderId {order_id} with payment {} of orderId {}; check it in the \
             MobilePay portal",
            p.payment_id, p.order_id
        ))),
        Err(e) if e.code() == Some(ORDER_ID_REUSED) => Err(unresolved(format!(
            "MobilePay says orderId {order_id} was used for another payment ({e}); check it in the MobilePay portal"
        ))),
        Err(e) if e.status() == Some(409) => {
            // Another payment is active on this PoS. One that no sale of this register waits on is
            // stale (left by an attempt that ended): cancel it, then start again. Never one that
            // a sale still waits on.
            let live = live_order_ids(engine).await;
            match mp.active_payments().await {
                Ok(active) => {
                    for p in active.iter().filter(|p| p.order_id != order_id && !live.contains(&p.order_id)) {
                        tracing::warn!(payment = %p.payment_id, "cancelling a stale active MobilePay payment");
                        let _ = mp.cancel(&p.payment_id).await;
                    }
                    Err(Delivery::Retry { error: e.to_string(), maybe_applied: in_doubt })
                }
                Err(e2) => Err(retry(&e2)),
            }
        }
        Err(e) if e.is_transient() || e.maybe_applied() => Err(retry(&e)),
        Err(e) if in_doubt => Err(unresolved(format!(
            "MobilePay refused a start of orderId {order_id} ({e}), and an earlier start may have been made; check \
             the MobilePay portal"
        ))),
        // The first start refused, with nothing before it: no payment exists.
        Err(e) => Err(declined(e.code().unwrap_or("REFUSED"), &format!("MobilePay refused the payment ({e})."))),
    }
}

/// Waits for the customer, captures once reserved. Every round but the first waits a moment,
/// so a status that lags behind a capture is asked again rather than hammered.
async fn follow(mp: &MobilePayClient, payment_id: &str, amount: Money) -> Delivery {
    let started = tokio::time::Instant::now();
    let mut first = true;
    let mut gave_up: Option<tokio::time::Instant> = None;
    loop {
        if !first {
            tokio::time::sleep(POLL).await;
        }
        first = false;
        let status = match mp.status(payment_id).await {
            Ok(s) => s,
            Err(e) => return retry(&e),
        };
        match status {
            PaymentStatus::Captured => {
                let details = match mp.details(payment_id).await {
                    Ok(d) => d,
                    Err(e) => return retry(&e),
                };
                if details.captured_amount.minor <= 0 {
                    // Captured, but the amount is not known yet: ask again.
                    if started.elapsed() > GIVE_UP_WAIT {
                        return Delivery::Retry {
                            error: format!("MobilePay reports payment {payment_id} captured without an amount yet"),
                            maybe_applied: true,
                        };
                    }
                    continue;
                }
                let payment = Payment {
                    amount: details.captured_amount,
                    kind: PaymentKind::MobilePay { payment_id: payment_id.to_string() },
                };
                return approved(payment, amount);
            }
            PaymentStatus::Reserved => match mp.capture(payment_id, amount).await {
                Ok(_) => continue,
                Err(e) if e.is_transient() || e.maybe_applied() => return retry(&e),
                Err(e) => {
                    // Refused. An earlier capture may have gone through (its answer lost) while the
                    // status lags: only a confirmed cancel of a reservation ends the attempt.
                    tracing::warn!(payment = %payment_id, error = %e, "MobilePay refused the capture");
                    match mp.cancel(payment_id).await {
                        Ok(d) if d.status.is_final() && d.status != PaymentStatus::Captured => {
                            let code = e.code().unwrap_or("CAPTURE_REFUSED").to_string();
                            return declined(
                                &code,
                                &format!("MobilePay refused the capture ({e}); the reservation was released."),
                            );
                        }
                        // Captured after all, or still moving: the next round reads it.
                        Ok(_) => continue,
                        Err(e2) if e2.is_transient() => return retry(&e2),
                        Err(_) => continue,
                    }
                }
            },
            s if s.is_final() => return declined(s.as_str(), ended(&s)),
            _ => match gave_up {
                None if started.elapsed() > DECISION_TIMEOUT => {
                    // The cancel is not trusted blindly: the next rounds read where it ended.
                    gave_up = Some(tokio::time::Instant::now());
                    let _ = mp.cancel(payment_id).await;
                }
                Some(at) if at.elapsed() > GIVE_UP_WAIT => {
                    return unresolved(format!(
                        "the customer did not approve in time and MobilePay did not confirm the cancel of payment \
                         {payment_id}; check it in the MobilePay portal"
                    ));
                }
                _ => {}
            },
        }
    }
}

/// Cancels the MobilePay payment of `order_id` (the cashier pressed cancel).
pub(crate) async fn cancel(engine: &Engine, order_id: &str) -> Result<(), ApiError> {
    let Some(mp) = &engine.inner.providers.mobilepay else {
        return Err(ApiError::new(ErrorCode::Setup, "MobilePay is not configured on this register."));
    };
    let known = mp.ids.lock().unwrap_or_else(|e| e.into_inner()).get(order_id).cloned();
    let payment_id =
        match known {
            Some(id) => id,
            None => mp.client.retrieve_by_terminal(order_id, None).await.map_err(|e| connect_error(&e))?.ok_or_else(
                || ApiError::new(ErrorCode::InvalidState, "The payment is starting; cancel again in a moment."),
            )?,
        };
    mp.client.cancel(&payment_id).await.map(|_| ()).map_err(|e| connect_error(&e))
}

/// The terminal's QR code link customers scan to check in (fetched once, then kept).
pub(crate) fn terminal_qr(engine: &Engine) -> Option<String> {
    let mp = engine.inner.providers.mobilepay.as_ref()?;
    mp.qr.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Fetches the terminal's QR code link.
pub(crate) async fn load_terminal_qr(engine: &Engine) {
    let Some(mp) = &engine.inner.providers.mobilepay else { return };
    match mp.client.qrcode().await {
        Ok(url) => *mp.qr.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string()),
        Err(e) => tracing::warn!(error = %e, "could not fetch the MobilePay QR code of the terminal"),
    }
}

/// Start-up recovery: a MobilePay payment under way is followed up by its `orderId`, never
/// started twice (the resumed operation is in doubt from the start).
pub(crate) fn recover(
    tx: &Tx<'_>,
    at: OffsetDateTime,
    env: &crate::Env,
    told: &mut Vec<String>,
) -> Result<(), StepError> {
    for sale in tx.sales_in(&[SaleState::Paying])? {
        for row in tx.outbox_pending_of(&sale.id.0, OpKind::MobilePayPayment)? {
            let Op::MobilePayPayment { amount, order_id, start: true } = row.op else { continue };
            tx.outbox_abandon(row.id, "replaced at start-up by resuming the same MobilePay payment", at)?;
            let resume = Queued { key: env.next_id(), op: Op::MobilePayPayment { amount, order_id, start: false } };
            let id = tx.enqueue(Some(&sale.id.0), &resume, at)?;
            tx.outbox_in_doubt(id)?;
            told.push(format!(
                "Sale {}: the register restarted during a MobilePay payment of {}; it is being followed up, not started again.",
                crate::recovery::short(&sale.id.0),
                amount.display_grouped()
            ));
        }
    }
    Ok(())
}

/// Gives back `amount` of a MobilePay payment: creates the refund (idempotent by
/// `refund_order_id`) and captures it.
async fn refund(
    mp: &MobilePayClient,
    payment_id: &str,
    amount: Money,
    refund_order_id: &str,
) -> Result<(), kasa_connect::ConnectError> {
    let r = mp.refund_create(payment_id, amount, refund_order_id).await?;
    if r.status != kasa_connect::mobilepay::RefundStatus::Captured {
        mp.refund_capture(&r.refund_id).await?;
    }
    Ok(())
}
