//! Taking MobilePay payments: start (with Kasa's own `orderId`), wait for the customer to
//! approve in the app, capture once reserved. A repeated or resumed delivery finds the payment
//! again by starting with the same `orderId`, so a payment is started at most once and captured
//! at most once, and what was captured is checked against what was asked.
//! MobilePay allows one active payment per point of sale: a stale one left by an earlier run is
//! cancelled before a new one starts.

use std::time::Duration;

use kasa_connect::mobilepay::{MobilePayClient, PaymentStatus};
use kasa_core::{Money, Payment, PaymentKind};

use crate::deliver::{Delivery, approved, declined, not_configured, retry};
use crate::{ApiError, Engine, ErrorCode, connect_error};

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

/// Takes (or, after a restart, follows up) the payment of `order_id`.
///
/// The payment is always found through a start with Kasa's own `orderId`, never through a
/// lookup: MobilePay answers a repeated `orderId` with the payment it already made (inferred,
/// see kasa-sim's MobilePay module), while its lookups may not show a payment made a moment
/// ago. So a payment is started at most once, and "not found" never ends an attempt: only a
/// final status of the payment does. `start` is kept in the stored operation for the journal
/// (false after a restart); both ways are the same call.
pub(crate) async fn payment(engine: &Engine, amount: Money, order_id: &str, _start: bool) -> Delivery {
    let Some(mp) = &engine.inner.mobilepay else { return not_configured("MobilePay") };
    let payment_id = match start_payment(mp, order_id, amount).await {
        Ok(id) => id,
        Err(d) => return d,
    };
    engine
        .inner
        .mobilepay_ids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(order_id.to_string(), payment_id.clone());
    let result = follow(mp, &payment_id, amount).await;
    engine.inner.mobilepay_ids.lock().unwrap_or_else(|e| e.into_inner()).remove(order_id);
    result
}

/// MobilePay's answer to an `orderId` used before with another PoS or amount (the sandbox's).
const ORDER_ID_REUSED: &str = "ORDER_ID_REUSED";

async fn start_payment(mp: &MobilePayClient, order_id: &str, amount: Money) -> Result<String, Delivery> {
    match mp.start(order_id, amount).await {
        Ok(p) if p.order_id == order_id => Ok(p.payment_id),
        Ok(p) => Err(Delivery::Park {
            reason: format!(
                "MobilePay answered a start of orderId {order_id} with payment {} of orderId {}; check it in the \
                 MobilePay portal before taking payment again",
                p.payment_id, p.order_id
            ),
            event: None,
        }),
        Err(e) if e.code() == Some(ORDER_ID_REUSED) => {
            // The orderId names a payment already: find that one, however long the lookup lags.
            match mp.retrieve_by_terminal(order_id, None).await {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(Delivery::Retry {
                    error: format!("payment of orderId {order_id} not visible yet"),
                    maybe_applied: true,
                }),
                Err(e2) => Err(retry(&e2)),
            }
        }
        Err(e) if e.status() == Some(409) => {
            // Another payment is active on this PoS. Kasa's own payments go one at a time, so it
            // is a stale one: cancel it, then start again.
            match mp.active_payments().await {
                Ok(active) => {
                    for p in active.iter().filter(|p| p.order_id != order_id) {
                        tracing::warn!(payment = %p.payment_id, "cancelling a stale active MobilePay payment");
                        let _ = mp.cancel(&p.payment_id).await;
                    }
                    Err(Delivery::Retry { error: e.to_string(), maybe_applied: false })
                }
                Err(e2) => Err(retry(&e2)),
            }
        }
        Err(e) if e.is_transient() || e.maybe_applied() => Err(retry(&e)),
        // A refusal of a start MobilePay checks the orderId of first: nothing exists under it.
        Err(e) => Err(declined(e.code().unwrap_or("REFUSED"), &format!("MobilePay refused the payment ({e})."))),
    }
}

/// Waits for the customer, captures once reserved. Every round but the first waits a moment,
/// so a status that lags behind a capture is asked again rather than hammered.
async fn follow(mp: &MobilePayClient, payment_id: &str, amount: Money) -> Delivery {
    let started = tokio::time::Instant::now();
    let mut first = true;
    let mut gave_up = false;
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
                    // Refused: if the payment moved on meanwhile (the customer cancelled), read it
                    // again; if it is still reserved, the capture can't succeed: release it.
                    match mp.status(payment_id).await {
                        Ok(PaymentStatus::Reserved) => {
                            let _ = mp.cancel(payment_id).await;
                            let code = e.code().unwrap_or("CAPTURE_REFUSED").to_string();
                            return declined(
                                &code,
                                &format!("MobilePay refused the capture ({e}); the reservation was released."),
                            );
                        }
                        Ok(_) => continue,
                        Err(e2) => return retry(&e2),
                    }
                }
            },
            s if s.is_final() => return declined(s.as_str(), ended(&s)),
            _ => {
                if started.elapsed() > DECISION_TIMEOUT && !gave_up {
                    // The cancel is not trusted blindly: the next round reads where it ended.
                    gave_up = true;
                    let _ = mp.cancel(payment_id).await;
                }
            }
        }
    }
}

/// Cancels the MobilePay payment of `order_id` (the cashier pressed cancel).
pub(crate) async fn cancel(engine: &Engine, order_id: &str) -> Result<(), ApiError> {
    let Some(mp) = &engine.inner.mobilepay else {
        return Err(ApiError::new(ErrorCode::Setup, "MobilePay is not configured on this register."));
    };
    let known = engine.inner.mobilepay_ids.lock().unwrap_or_else(|e| e.into_inner()).get(order_id).cloned();
    let payment_id = match known {
        Some(id) => id,
        None => mp.retrieve_by_terminal(order_id, None).await.map_err(|e| connect_error(&e))?.ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidState, "The payment is starting; cancel again in a moment.")
        })?,
    };
    mp.cancel(&payment_id).await.map(|_| ()).map_err(|e| connect_error(&e))
}

/// The terminal's QR code link customers scan to check in (fetched once, then kept).
pub(crate) fn terminal_qr(engine: &Engine) -> Option<String> {
    engine.inner.mobilepay_qr.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Fetches the terminal's QR code link.
pub(crate) async fn load_terminal_qr(engine: &Engine) {
    let Some(mp) = &engine.inner.mobilepay else { return };
    match mp.qrcode().await {
        Ok(url) => *engine.inner.mobilepay_qr.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string()),
        Err(e) => tracing::warn!(error = %e, "could not fetch the MobilePay QR code of the terminal"),
    }
}

/// Gives back `amount` of a MobilePay payment: creates the refund (idempotent by
/// `refund_order_id`) and captures it.
pub(crate) async fn refund(
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
