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
//! Each provider does its part (`providers::recover`, in a fixed order). All of it, and its
//! journal entry, is one transaction; the sentences are shown to the cashier.

use kasa_core::journal::JournalRecord;
use kasa_store::Tx;
use time::OffsetDateTime;

use crate::StepError;
use crate::providers;

/// The last eight characters of an id, enough for the cashier to tell sales apart.
pub(crate) fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

/// Resolves unfinished work, provider by provider; returns what was done, for the cashier, and
/// journals it.
pub(crate) fn recover(tx: &Tx<'_>, at: OffsetDateTime, env: &crate::Env) -> Result<Vec<String>, StepError> {
    let mut told = Vec::new();
    providers::recover(tx, at, env, &mut told)?;
    if !told.is_empty() {
        let rec =
            JournalRecord { sale_id: None, kind: "recovery".into(), data: serde_json::json!({ "actions": told }) };
        tx.append_journal(&rec, at)?;
    }
    Ok(told)
}
