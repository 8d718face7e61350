//! What one delivery attempt comes to, and the small helpers every provider builds it with.
//!
//! A provider's delivery ends in a [`Delivery`]: done (with the event for the sale and what
//! changed about the register's locks), retry later with the same key (saying whether the attempt
//! may have been applied), or park for the manager (with the event the sale must hear, if any).

use std::time::Duration;

use kasa_connect::ConnectError;
use kasa_core::{Currency, Money, Payment, SaleEvent};
use time::OffsetDateTime;

/// What changed about a lock this register may hold.
#[derive(Debug)]
pub(crate) enum LockChange {
    None,
    Held { order_id: String, lock_id: String, expires_at: OffsetDateTime },
    Gone { order_id: String },
}

/// The outcome of one delivery attempt.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Finished: mark the message done, update locks, and tell the sale.
    Done { event: Option<SaleEvent>, lock: LockChange },
    /// Try again later with the same key.
    Retry { error: String, maybe_applied: bool },
    /// Failed for good: park for the manager, and tell the sale.
    Park { reason: String, event: Option<SaleEvent> },
}

pub(crate) fn done(event: Option<SaleEvent>, lock: LockChange) -> Delivery {
    Delivery::Done { event, lock }
}

/// Done, with an event for the sale and no lock change.
pub(crate) fn outcome(event: SaleEvent) -> Delivery {
    done(Some(event), LockChange::None)
}

/// The attempt ended without money taken.
pub(crate) fn declined(code: &str, message: &str) -> Delivery {
    outcome(SaleEvent::PaymentDeclined { code: code.to_string(), message: message.to_string() })
}

/// Try again later with the same key.
pub(crate) fn retry(e: &ConnectError) -> Delivery {
    Delivery::Retry { error: e.to_string(), maybe_applied: e.maybe_applied() }
}

/// A provider the register has no settings for.
pub(crate) fn not_configured(what: &str) -> Delivery {
    Delivery::Park { reason: format!("{what} is not configured on this register"), event: None }
}

/// How long ago `at` was, by the register's clock.
pub(crate) fn elapsed_since(engine: &crate::Engine, at: OffsetDateTime) -> Duration {
    Duration::try_from(engine.now() - at).unwrap_or(Duration::ZERO)
}

/// The payment's outcome could not be found out: the operation is parked for the manager and
/// the sale held, with what is known.
pub(crate) fn unresolved(reason: String) -> Delivery {
    Delivery::Park { reason: reason.clone(), event: Some(SaleEvent::PaymentUnresolved { reason }) }
}

/// The currency a provider names, as Kasa's type; a code that is no currency at all becomes
/// ISO 4217's `XXX` ("no currency"), which never equals what was asked.
pub(crate) fn reported_currency(code: &str) -> Currency {
    Currency::parse(code).unwrap_or(Currency::XXX)
}

/// A payment the provider approved: the sale's payment when it took exactly what was asked,
/// otherwise a mismatch the sale holds for a manager (the money facts kept, nothing reported).
/// An amount of nothing, or a currency that can't be read, is an answer not yet complete.
pub(crate) fn approved(payment: Payment, asked: Money) -> Delivery {
    if payment.amount == asked {
        return outcome(SaleEvent::PaymentApproved { payment });
    }
    if payment.amount.minor <= 0 || payment.amount.currency == Currency::XXX {
        return unresolved(format!(
            "the payment service reports the payment taken, but for {} (asked {})",
            payment.amount.display_grouped(),
            asked.display_grouped()
        ));
    }
    tracing::error!(asked = %asked.display_grouped(), charged = %payment.amount.display_grouped(), "a provider took another amount than was asked");
    outcome(SaleEvent::PaymentMismatch { payment })
}

/// What a refund's answer means for the sale: done, retried, or refused for good (the sale is
/// told, and the message parked for the manager).
pub(crate) fn refund_outcome(refund_id: &str, result: Result<(), ConnectError>) -> Delivery {
    match result {
        Ok(()) => outcome(SaleEvent::RefundCompleted { refund_id: refund_id.to_string() }),
        Err(e) if e.is_transient() => retry(&e),
        Err(e) => Delivery::Park {
            reason: e.to_string(),
            event: Some(SaleEvent::RefundFailed { refund_id: refund_id.to_string(), message: e.to_string() }),
        },
    }
}
