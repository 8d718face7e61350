//! Delivering one queued operation: the failpoints around the send, a line in the log for an
//! attempt that failed, and the hand-off to the provider of the system it goes to.

use kasa_store::OutboxRow;

use crate::Engine;
use crate::delivery::Delivery;
use crate::failpoint::failpoint;
use crate::providers;

pub(crate) async fn run(engine: &Engine, row: &OutboxRow) -> Delivery {
    failpoint!(engine.env(), "deliver.before_send");
    let delivery = providers::deliver(engine, row).await;
    failpoint!(engine.env(), "deliver.after_send");
    tracing::debug!(sale = ?row.sale_id, message = row.id, op = row.op.kind().as_str(), attempt = row.attempts + 1,
        maybe_applied = row.maybe_applied, outcome = ?delivery, "delivered");
    if let Delivery::Retry { error, .. } = &delivery {
        tracing::warn!(op = row.op.kind().as_str(), attempt = row.attempts + 1, %error, "delivery failed; will retry");
    }
    delivery
}
