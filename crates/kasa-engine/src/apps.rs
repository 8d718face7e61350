//! Delivering app and QR payments (Settle, MobilePay) and refunds through every provider.
//!
//! Each provider's flow is split at the points where losing what was learnt would matter: a
//! Settle scan token and transaction id are recorded as sale events before they are used, so a
//! restart resumes from the last durable step; a MobilePay payment is found again by the
//! `orderId` Kasa chose before starting it. Waiting for the customer is bounded, and a cashier's
//! cancel ends it.

use std::time::Duration;

use kasa_connect::settle::Status;
use kasa_core::op::Op;
use kasa_core::{Money, Payment, PaymentKind, SaleEvent};
use kasa_store::OutboxRow;

use crate::Engine;
use crate::deliver::{
    Delivery, approved, declined, not_configured, outcome as done, reported_currency, retry, unresolved,
};
use crate::scans::ScanSignal;

/// How long a customer has to scan the QR code.
const SCAN_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a customer has to decide in the app.
const DECISION_TIMEOUT: Duration = Duration::from_secs(600);
/// How often an undecided payment is asked about.
const POLL: Duration = Duration::from_millis(400);
/// How long an abort Settle does not confirm is waited for before the sale is held.
const GIVE_UP_WAIT: Duration = Duration::from_secs(60);

/// Waits for the customer to scan the QR code of `pos_tid`.
pub(crate) async fn settle_scan_wait(engine: &Engine, pos_tid: &str) -> Delivery {
    let board = &engine.inner.scans;
    let mut rx = board.wait(pos_tid);
    let outcome = tokio::time::timeout(SCAN_TIMEOUT, rx.recv()).await;
    board.forget(pos_tid);
    match outcome {
        Ok(Some(ScanSignal::Scanned(token))) => done(SaleEvent::SettleScanned { token }),
        Ok(Some(ScanSignal::Cancelled)) | Ok(None) => declined("CANCELLED", "Cancelled before the customer scanned."),
        Err(_) => declined("SCAN_TIMEOUT", "The customer did not scan the QR code in time."),
    }
}

/// Asks the customer who scanned for the payment.
pub(crate) async fn settle_request(
    engine: &Engine,
    row: &OutboxRow,
    amount: Money,
    pos_tid: &str,
    token: &str,
) -> Delivery {
    let Some(settle) = &engine.inner.settle else { return not_configured("Settle") };
    match settle.request_payment(token, pos_tid, amount).await {
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
pub(crate) async fn settle_await(engine: &Engine, amount: Money, tid: &str, pos_tid: Option<&str>) -> Delivery {
    let Some(settle) = &engine.inner.settle else { return not_configured("Settle") };
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

/// Gives back a part of a payment through its provider.
pub(crate) async fn refund(engine: &Engine, row: &OutboxRow) -> Delivery {
    let (refund_id, result) = match &row.op {
        Op::CardRefund { refund_id, transfer_id, amount } => {
            match engine.inner.finix.refund(transfer_id, *amount, &row.key).await {
                // What Finix says it gave back must be what was asked; otherwise the refund stays
                // under way (its amount still counted) for the manager to settle.
                Ok(t) if t.amount != amount.minor || reported_currency(&t.currency) != amount.currency => {
                    return Delivery::Park {
                        reason: format!(
                            "Finix reversed {} {} of transfer {transfer_id} although {} was asked; check it in the Finix dashboard",
                            t.amount,
                            t.currency,
                            amount.display_grouped()
                        ),
                        event: None,
                    };
                }
                result => (refund_id, result.map(|_| ())),
            }
        }
        Op::SettleRefund { refund_id, tid, amount } => {
            let Some(settle) = &engine.inner.settle else { return not_configured("Settle") };
            (refund_id, settle.refund(tid, *amount, refund_id).await)
        }
        Op::MobilePayRefund { refund_id, payment_id, amount } => {
            let Some(mp) = &engine.inner.mobilepay else { return not_configured("MobilePay") };
            (refund_id, crate::mobilepay::refund(mp, payment_id, *amount, refund_id).await)
        }
        _ => return Delivery::Park { reason: "not a refund".into(), event: None },
    };
    match result {
        Ok(()) => done(SaleEvent::RefundCompleted { refund_id: refund_id.clone() }),
        Err(e) if e.is_transient() => retry(&e),
        Err(e) => Delivery::Park {
            reason: e.to_string(),
            event: Some(SaleEvent::RefundFailed { refund_id: refund_id.clone(), message: e.to_string() }),
        },
    }
}
