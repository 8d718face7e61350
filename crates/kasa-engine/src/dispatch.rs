//! The outbox dispatcher.
//!
//! Delivers the head of every due lane concurrently (one message per lane at a time, so each
//! lane stays in order), up to a bound. Each outcome is recorded in one transaction together
//! with what it does to its sale. Failed attempts are rescheduled with exponential backoff and
//! full jitter; permanent failures are parked for the manager with the reason. Nothing is
//! dropped: a message leaves the queue only delivered, parked, or discarded by the manager.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kasa_core::journal::JournalRecord;
use kasa_core::{OpKind, SaleEvent};
use kasa_store::OutboxRow;
use rand::Rng;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::deliver::{self, Delivery, LockChange};
use crate::{Engine, StepError, UuidIds, now, persist};

/// Deliveries in flight at once.
const MAX_IN_FLIGHT: usize = 32;

/// Delay before attempt `attempts + 1`: exponential from a per-kind base, capped, with full
/// jitter so registers coming back online together don't retry in lockstep.
pub(crate) fn backoff(kind: OpKind, attempts: u32, jitter: f64) -> Duration {
    let (base_ms, cap_ms) = match kind {
        // The cashier is waiting on these: retry fast, give up soon (see deliver).
        OpKind::TokenxLock | OpKind::CardSale => (150_u64, 2_000_u64),
        OpKind::PrintSlip => (1_000, 30_000),
        _ => (500, 30_000),
    };
    let exp = base_ms.saturating_mul(1_u64 << attempts.min(16)).min(cap_ms);
    // Full jitter between half and all of the delay keeps some spacing between attempts.
    Duration::from_millis(((exp as f64) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u64)
}

pub(crate) async fn run(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut lanes: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut busy: HashSet<String> = HashSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        if room > 0 {
            let busy_list: Vec<String> = busy.iter().cloned().collect();
            let at = now();
            let due = engine.db(move |s| Ok(s.outbox_due(at, &busy_list, room as u32)?)).await;
            match due {
                Ok(rows) => {
                    for row in rows {
                        busy.insert(row.lane.clone());
                        let lane = row.lane.clone();
                        let e = engine.clone();
                        let handle = in_flight.spawn(async move { deliver_one(e, row).await });
                        lanes.insert(handle.id(), lane);
                    }
                }
                Err(e) => tracing::error!(error = %e, "reading the outbox failed"),
            }
        }
        let wait = match engine.db(|s| Ok(s.outbox_next_due_ms()?)).await {
            Ok(Some(due_ms)) => {
                let now_ms = (now().unix_timestamp_nanos() / 1_000_000) as i64;
                // A due message whose lane is busy waits for that lane's delivery to finish.
                if due_ms > now_ms { Duration::from_millis((due_ms - now_ms) as u64) } else { Duration::from_secs(1) }
            }
            _ => Duration::from_secs(5),
        };
        tokio::select! {
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                let id = match &done { Ok((id, ())) => *id, Err(e) => e.id() };
                if let Err(e) = done {
                    tracing::error!(error = %e, "a delivery task failed; its message stays queued");
                }
                if let Some(lane) = lanes.remove(&id) {
                    busy.remove(&lane);
                }
                engine.refresh_queue_counts().await;
            }
            _ = engine.inner.dispatch_kick.notified() => {}
            _ = tokio::time::sleep(wait.min(Duration::from_secs(5))) => {}
            _ = shutdown.changed() => {}
        }
    }
    in_flight.shutdown().await;
}

async fn deliver_one(engine: Engine, row: OutboxRow) {
    let delivery = deliver::run(&engine, &row).await;
    if let Err(e) = record(&engine, row, delivery).await {
        tracing::error!(error = %e, "recording a delivery failed; the message will be delivered again");
    }
}

/// Records a delivery's outcome and its effect on the sale in one transaction.
async fn record(engine: &Engine, row: OutboxRow, delivery: Delivery) -> Result<(), crate::ApiError> {
    let at = now();
    let jitter: f64 = rand::rng().random();
    let kind = row.op.kind();
    let sale_id = row.sale_id.clone();
    let changed = engine
        .db(move |s| {
            s.write(|tx| -> Result<Option<kasa_core::Sale>, StepError> {
                let (event, lock) = match delivery {
                    Delivery::Done { event, lock } => {
                        tx.outbox_done(row.id, at)?;
                        (event, lock)
                    }
                    Delivery::Retry { error, maybe_applied } => {
                        let delay = backoff(kind, row.attempts, jitter);
                        let next = at + time::Duration::try_from(delay).unwrap_or(time::Duration::SECOND);
                        tx.outbox_retry_at(row.id, &error, next, maybe_applied)?;
                        return Ok(None);
                    }
                    Delivery::Park { reason, event } => {
                        tx.outbox_park(row.id, &reason, at)?;
                        let rec = JournalRecord {
                            sale_id: row.sale_id.clone(),
                            kind: "outbox_parked".into(),
                            data: serde_json::json!({ "message": row.id, "op": row.op, "reason": reason }),
                        };
                        tx.append_journal(&rec, at)?;
                        (event, LockChange::None)
                    }
                };
                match lock {
                    LockChange::None => {}
                    LockChange::Held { order_id, lock_id, expires_at } => {
                        tx.lock_held(&order_id, &lock_id, expires_at, at)?
                    }
                    LockChange::Gone { order_id } => tx.lock_gone(&order_id)?,
                }
                let (Some(event), Some(sale_id)) = (event, row.sale_id.as_deref()) else { return Ok(None) };
                apply_outcome(tx, sale_id, event, at)
            })
        })
        .await?;
    if let Some(sale) = changed {
        engine.after_change(&sale, true);
    } else if sale_id.is_some() {
        engine.inner.changes.send_modify(|n| *n += 1);
    }
    Ok(())
}

/// Feeds an operation's outcome to its sale. An outcome the sale can't take (which would be a
/// bug) is journaled as an anomaly instead of blocking the queue.
fn apply_outcome(
    tx: &kasa_store::Tx<'_>,
    sale_id: &str,
    event: SaleEvent,
    at: OffsetDateTime,
) -> Result<Option<kasa_core::Sale>, StepError> {
    let mut sale = tx.sale(sale_id)?;
    match sale.handle(event.clone(), at, &mut UuidIds) {
        Ok(t) => {
            persist(tx, &sale, &t, at)?;
            Ok(Some(sale))
        }
        Err(e) => {
            tracing::error!(sale = sale_id, error = %e, "an outcome did not fit the sale");
            let rec = JournalRecord {
                sale_id: Some(sale_id.to_string()),
                kind: "outcome_rejected".into(),
                data: serde_json::json!({ "event": event, "error": e.to_string() }),
            };
            tx.append_journal(&rec, at).map_err(StepError::from)?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let d = |k, a, j| backoff(k, a, j).as_millis();
        assert_eq!(d(OpKind::TokenxPayment, 0, 1.0), 500);
        assert_eq!(d(OpKind::TokenxPayment, 3, 1.0), 4000);
        assert_eq!(d(OpKind::TokenxPayment, 30, 1.0), 30_000);
        assert_eq!(d(OpKind::TokenxPayment, 3, 0.0), 2000);
        assert_eq!(d(OpKind::TokenxLock, 1, 1.0), 300);
        assert_eq!(d(OpKind::TokenxLock, 10, 1.0), 2000);
    }
}
