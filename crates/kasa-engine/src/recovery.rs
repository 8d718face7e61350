//! Start-up recovery: resolving what a crash or power cut left unfinished, before the
//! dispatcher sends anything.
//!
//! - A sale that was **locking** is not continued (the cashier is no longer waiting on it): its
//!   lock request is abandoned and, since it may have reached the cloud, a release is queued.
//! - A sale that was **paying by card** is not paid twice: its card sale is replaced by a
//!   lookup that cancels any prompt left on the terminal and sends the same sale again with the
//!   same idempotency id, which Finix answers with the original transfer if there is one. Only
//!   that definite answer moves the sale on, to paid or to open again; an empty lookup never
//!   does (the customer may still have been tapping).
//! - A **MobilePay** payment is followed up by its `orderId` (a start with the same `orderId`
//!   finds it), never started twice; a **Settle** QR code nobody scanned ends the attempt (no
//!   payment can exist before Kasa asks for one), while a payment request already asked for is
//!   asked again with the same `pos_tid`, which Settle recognises.
//! - A **lock** that no live sale stands behind is released.
//! - A **paid** sale whose payment report was not acknowledged keeps its queued report, which
//!   is sent again with the same request id.
//!
//! All of it, and its journal entry, is one transaction; the sentences are shown to the cashier.

use kasa_core::journal::JournalRecord;
use kasa_core::op::{Op, Queued};
use kasa_core::{IdSource, SaleEvent, SaleState};
use kasa_store::{StoreError, Tx};
use time::OffsetDateTime;

use crate::dispatch::apply_outcome;
use crate::{StepError, UuidIds};

fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// Resolves unfinished work; returns what was done, for the cashier.
pub(crate) fn recover(tx: &Tx<'_>, at: OffsetDateTime) -> Result<Vec<String>, StepError> {
    let mut done = Vec::new();

    for sale in tx.sales_in(&[SaleState::Locking])? {
        let order = sale.basket.pump_order_id().unwrap_or_default().to_string();
        for row in tx.outbox_pending_of(&sale.id.0, "tokenx_lock")? {
            tx.outbox_abandon(row.id, "abandoned at start-up: the register restarted while locking", at)?;
        }
        let event =
            SaleEvent::LockUnavailable { message: "the register restarted while locking".into(), maybe_locked: true };
        apply_outcome(tx, &sale.id.0, event, at)?;
        done.push(format!(
            "Sale {}: the register restarted while locking pump order {order}; the order is being released. Take payment again.",
            short(&sale.id.0)
        ));
    }

    for sale in tx.sales_in(&[SaleState::Paying])? {
        // An app payment is resumed, never started again: found by the orderId chosen before.
        for row in tx.outbox_pending_of(&sale.id.0, "mobilepay_payment")? {
            let Op::MobilePayPayment { amount, order_id, start: true } = row.op else { continue };
            tx.outbox_abandon(row.id, "replaced at start-up by resuming the same MobilePay payment", at)?;
            let resume = Queued { key: UuidIds.next_id(), op: Op::MobilePayPayment { amount, order_id, start: false } };
            let id = tx.enqueue(Some(&sale.id.0), &resume, at)?;
            tx.outbox_in_doubt(id)?;
            done.push(format!(
                "Sale {}: the register restarted during a MobilePay payment of {}; it is being followed up, not started again.",
                short(&sale.id.0),
                amount.display_grouped()
            ));
        }
        // A Settle QR code nobody had scanned yet: no payment can exist, the attempt ends.
        for row in tx.outbox_pending_of(&sale.id.0, "settle_payment")? {
            if let Op::SettleScanWait { .. } = row.op {
                tx.outbox_abandon(row.id, "abandoned at start-up: no scan had arrived", at)?;
                let event = SaleEvent::PaymentDeclined {
                    code: "NOT_STARTED".into(),
                    message: "The register restarted before the customer scanned the QR code.".into(),
                };
                apply_outcome(tx, &sale.id.0, event, at)?;
                done.push(format!(
                    "Sale {}: the Settle QR code was not scanned before the restart; take payment again.",
                    short(&sale.id.0)
                ));
            }
        }
        for row in tx.outbox_pending_of(&sale.id.0, "card_sale")? {
            let Op::CardSale { amount } = row.op else { continue };
            tx.outbox_abandon(row.id, "replaced at start-up by a lookup of its outcome", at)?;
            let op = Op::CardLookup { amount, idempotency_id: row.key.clone(), original_at: Some(row.created_at) };
            let id = tx.enqueue(Some(&sale.id.0), &Queued { key: UuidIds.next_id(), op }, at)?;
            tx.outbox_in_doubt(id)?;
            done.push(format!(
                "Sale {}: the register restarted during a card payment of {}; its outcome is being checked with the card service: a prompt left on the terminal is cancelled and the same payment asked again, so the customer may be asked to tap. Do not charge the customer again.",
                short(&sale.id.0),
                amount.display_grouped()
            ));
        }
    }

    for lock in tx.locks()? {
        let live = match tx.sale(&lock.sale_id) {
            Ok(s) => matches!(
                s.state,
                SaleState::Locking
                    | SaleState::Paying
                    | SaleState::Tendering
                    | SaleState::Voiding
                    | SaleState::NeedsAttention
                    | SaleState::Paid
            ),
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let lane = Op::TokenxRelease { order_id: lock.order_id.clone() }.lane();
        if live || tx.outbox_lane_has(&lane, &["tokenx_release", "tokenx_unlock"])? {
            continue;
        }
        let release = Queued { key: UuidIds.next_id(), op: Op::TokenxRelease { order_id: lock.order_id.clone() } };
        tx.enqueue(Some(&lock.sale_id), &release, at)?;
        done.push(format!("Pump order {}: a lock left by an unfinished attempt is being released.", lock.order_id));
    }

    for sale in tx.sales_in(&[SaleState::Paid])? {
        if !tx.outbox_pending_of(&sale.id.0, "tokenx_payment")?.is_empty() {
            done.push(format!(
                "Sale {}: paid; its payment report will be sent again (the cloud recognises a repeat).",
                short(&sale.id.0)
            ));
        }
    }

    if !done.is_empty() {
        let rec =
            JournalRecord { sale_id: None, kind: "recovery".into(), data: serde_json::json!({ "actions": done }) };
        tx.append_journal(&rec, at)?;
    }
    Ok(done)
}
