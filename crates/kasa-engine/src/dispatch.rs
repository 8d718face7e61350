//! The outbox dispatcher.
//!
//! Delivers the head of every due lane concurrently (one message per lane at a time, so each
//! lane stays in order), up to a bound. Finished deliveries are recorded in batches: one
//! transaction holds every outcome that finished since the last one, each with what it does to
//! its sale (group commit, so the durable-commit rate does not cap throughput). Failed attempts
//! are rescheduled with exponential backoff and full jitter; permanent failures are parked for
//! the manager with the reason. Nothing is dropped: a message leaves the queue only delivered,
//! parked, or discarded by the manager.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use kasa_core::journal::JournalRecord;
use kasa_core::{OpKind, Sale, SaleEvent};
use kasa_store::{OutboxRow, Tx};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::config::OutboxConfig;
use crate::deliver;
use crate::delivery::{Delivery, LockChange};
use crate::failpoint::failpoint;
use crate::{Engine, Env, StepError, persist};

/// Delay before attempt `attempts + 1`: exponential from a per-kind base, capped, with full
/// jitter between half and all of the delay, so registers coming back online together don't
/// retry in lockstep.
pub(crate) fn backoff(tuning: &OutboxConfig, kind: OpKind, attempts: u32, jitter: f64) -> Duration {
    let (base, cap) = match kind {
        // The cashier is waiting on these: retry fast; deliver.rs gives up within seconds.
        OpKind::TokenxLock | OpKind::CardSale => (tuning.retry_base_ms * 3 / 10, tuning.retry_cap_ms / 15),
        OpKind::PrintSlip => (tuning.retry_base_ms * 2, tuning.retry_cap_ms),
        _ => (tuning.retry_base_ms, tuning.retry_cap_ms),
    };
    let exp = base.max(1).saturating_mul(1_u64 << attempts.min(20)).min(cap.max(1));
    Duration::from_millis(((exp as f64) * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u64)
}

/// How often, at most, a draining queue is counted for the status bar.
const COUNT_EVERY: Duration = Duration::from_millis(100);

type Finished = Result<(tokio::task::Id, (OutboxRow, Delivery)), tokio::task::JoinError>;

/// What one pass over the database brings back to the dispatcher.
struct Pass {
    /// Sales changed by the recorded outcomes.
    changed: Vec<Sale>,
    /// Whether recording failed (the outcomes will be delivered again).
    record_failed: Option<String>,
    /// Heads of due lanes to deliver now.
    due: Vec<OutboxRow>,
    /// When the next pending message falls due (unix ms).
    next_due_ms: Option<i64>,
    /// Queue depth after this pass, when it was counted.
    counts: Option<kasa_store::QueueCounts>,
}

pub(crate) async fn run(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let max_in_flight = engine.inner.config.outbox.in_flight;
    let tuning = engine.inner.config.outbox.clone();
    let mut in_flight: JoinSet<(OutboxRow, Delivery)> = JoinSet::new();
    let mut lanes: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    // Messages an attempt of which may have been applied while recording that failed (a full
    // disk): their next attempts must not take "not sent" for "never sent".
    let mut maybe_sent: BTreeSet<i64> = BTreeSet::new();
    let mut finished: Vec<Finished> = Vec::new();
    // Counting the queue reads every waiting message: while a backlog drains it is counted a few
    // times a second for the status bar, not after every pass.
    let mut counted: Option<tokio::time::Instant> = None;
    // Lane heads read ahead of room, started as deliveries finish, so the terminal, the cloud
    // and the printer are kept busy while a pass is recording. Their lanes count as busy.
    let mut ready: VecDeque<OutboxRow> = VecDeque::new();
    let spawn = |in_flight: &mut JoinSet<(OutboxRow, Delivery)>,
                 lanes: &mut HashMap<tokio::task::Id, String>,
                 row: OutboxRow| {
        let lane = row.lane.clone();
        let e = engine.clone();
        let handle = in_flight.spawn(async move {
            let delivery = deliver::run(&e, &row).await;
            (row, delivery)
        });
        lanes.insert(handle.id(), lane);
    };
    loop {
        if shutdown.get() {
            break;
        }
        while let Some(done) = in_flight.try_join_next_with_id() {
            finished.push(done);
        }
        while in_flight.len() < max_in_flight
            && let Some(row) = ready.pop_front()
        {
            spawn(&mut in_flight, &mut lanes, row);
        }
        let batch: Vec<(OutboxRow, Delivery)> = finished
            .drain(..)
            .filter_map(|done| {
                let id = match &done {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                if let Some(lane) = lanes.remove(&id) {
                    busy.remove(&lane);
                }
                match done {
                    Ok((_, item)) => Some(item),
                    Err(e) => {
                        tracing::error!(error = %e, "a delivery task failed; its message stays queued");
                        None
                    }
                }
            })
            .collect();
        let recorded = !batch.is_empty();
        let fiscal_recorded = batch.iter().any(|(row, _)| row.op.kind() == OpKind::FiscalSign);

        // One trip to the database: record what finished, then read what is due next (as much
        // again as there is room, to read ahead).
        let room = (max_in_flight.saturating_sub(in_flight.len()) + max_in_flight).saturating_sub(ready.len());
        let busy_list: Vec<String> = busy.iter().cloned().collect();
        let batch_maybe: Vec<i64> = batch
            .iter()
            .filter(|(row, d)| row.maybe_applied || !matches!(d, Delivery::Retry { maybe_applied: false, .. }))
            .map(|(row, _)| row.id)
            .collect();
        let tuning2 = tuning.clone();
        let (env, at) = (engine.env().clone(), engine.now());
        let count = recorded && counted.is_none_or(|t| t.elapsed() >= COUNT_EVERY);
        let idle_before = in_flight.is_empty() && ready.is_empty();
        let pass = engine
            .db(move |s| {
                let (changed, record_failed) = match record(s, batch, at, &tuning2, &env) {
                    Ok(c) => (c, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                let due = if room > 0 { s.outbox_due(at, &busy_list, room as u32)? } else { Vec::new() };
                // The last of a burst is always counted: nothing is left in flight or due.
                let idle = due.is_empty() && idle_before;
                Ok(Pass {
                    changed,
                    record_failed,
                    next_due_ms: s.outbox_next_due_ms()?,
                    counts: if count || (recorded && idle) { Some(s.queue_counts()?) } else { None },
                    due,
                })
            })
            .await;
        let pass = match pass {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                if recorded {
                    maybe_sent.extend(batch_maybe);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if let Some(e) = &pass.record_failed {
            // Nothing of the batch is recorded: the messages stay pending and are delivered
            // again with the same keys, which the remote side recognises.
            tracing::error!(error = %e, "recording deliveries failed; they will be delivered again");
            maybe_sent.extend(batch_maybe);
        } else if recorded {
            // Recorded: the database knows now.
            for id in batch_maybe {
                maybe_sent.remove(&id);
            }
        }
        for sale in &pass.changed {
            engine.after_change(sale, false);
        }
        if recorded {
            engine.inner.changes.send_modify(|n| *n += 1);
        }
        if fiscal_recorded && pass.record_failed.is_none() {
            engine.inner.fiscal_changes.send_modify(|n| *n += 1);
        }
        if let Some(counts) = pass.counts {
            counted = Some(tokio::time::Instant::now());
            engine.set_queue_counts(counts);
        }
        let full = room > 0 && pass.due.len() == room;
        for mut row in pass.due {
            busy.insert(row.lane.clone());
            if maybe_sent.contains(&row.id) {
                row.maybe_applied = true;
            }
            if in_flight.len() < max_in_flight {
                spawn(&mut in_flight, &mut lanes, row);
            } else {
                ready.push_back(row);
            }
        }
        if full && in_flight.len() < max_in_flight {
            // More may be due at once: the page was full and there is room. (Operations the
            // recorded outcomes queued were already read by this pass, which recorded first.)
            continue;
        }
        let wait = match pass.next_due_ms {
            Some(due_ms) => {
                let now_ms = (engine.now().unix_timestamp_nanos() / 1_000_000) as i64;
                // A due message whose lane is busy waits for that lane's delivery to finish.
                if due_ms > now_ms { Duration::from_millis((due_ms - now_ms) as u64) } else { Duration::from_secs(1) }
            }
            None => Duration::from_secs(5),
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => {}
            Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => finished.push(done),
            _ = engine.inner.dispatch_kick.notified() => {}
            _ = tokio::time::sleep(wait.min(Duration::from_secs(5))) => {}
        }
    }
    in_flight.shutdown().await;
}

/// Records finished deliveries and their effects on sales in one transaction; returns the
/// sales that changed.
fn record(
    s: &kasa_store::Store,
    batch: Vec<(OutboxRow, Delivery)>,
    at: OffsetDateTime,
    tuning: &OutboxConfig,
    env: &Env,
) -> Result<Vec<Sale>, StepError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let relaxed = batch.iter().all(redoable);
    let apply = |tx: &Tx<'_>| -> Result<Vec<Sale>, StepError> {
        let mut changed = Vec::new();
        for (row, delivery) in batch {
            if let Some(sale) = record_one(tx, row, delivery, at, tuning, env)? {
                changed.push(sale);
            }
        }
        failpoint!(env, "record.before_commit");
        Ok(changed)
    };
    // A batch of outcomes the cloud would give again (a report or an unlock it recognises by its
    // request id) need not wait for the disk: lost in a power cut, the message is simply sent
    // again. Everything else does.
    let changed = if relaxed { s.write_without_sync(apply)? } else { s.write(apply)? };
    failpoint!(env, "record.after_commit");
    Ok(changed)
}

/// Whether recording this outcome may be lost without harm: the operation, delivered again
/// with its key, is answered the same.
fn redoable((row, delivery): &(OutboxRow, Delivery)) -> bool {
    matches!(delivery, Delivery::Done { .. })
        && matches!(row.op.kind(), OpKind::TokenxPayment | OpKind::TokenxUnlock | OpKind::TokenxRelease)
}

fn record_one(
    tx: &Tx<'_>,
    row: OutboxRow,
    delivery: Delivery,
    at: OffsetDateTime,
    tuning: &OutboxConfig,
    env: &Env,
) -> Result<Option<Sale>, StepError> {
    let (event, lock) = match delivery {
        Delivery::Done { event, lock } => {
            tx.outbox_done(row.id, at)?;
            (event, lock)
        }
        Delivery::Retry { error, maybe_applied } => {
            let delay = backoff(tuning, row.op.kind(), row.attempts, env.random());
            let next = at + time::Duration::try_from(delay).unwrap_or(time::Duration::SECOND);
            // The row may know more than this attempt: an earlier one whose recording failed.
            tx.outbox_retry_at(row.id, &error, next, maybe_applied || row.maybe_applied)?;
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
        LockChange::Held { order_id, lock_id, expires_at } => tx.lock_held(&order_id, &lock_id, expires_at, at)?,
        LockChange::Gone { order_id } => tx.lock_gone(&order_id)?,
    }
    match (event, row.sale_id.as_deref()) {
        (Some(event), Some(sale_id)) => apply_outcome(tx, sale_id, event, at, env),
        _ => Ok(None),
    }
}

/// Feeds an operation's outcome to its sale. An outcome the sale can't take (which would be a
/// bug) is journaled as an anomaly instead of blocking the queue.
pub(crate) fn apply_outcome(
    tx: &Tx<'_>,
    sale_id: &str,
    event: SaleEvent,
    at: OffsetDateTime,
    env: &Env,
) -> Result<Option<Sale>, StepError> {
    let mut sale = tx.sale(sale_id)?;
    let declined = matches!(event, SaleEvent::PaymentDeclined { .. });
    match sale.handle(event.clone(), at, &mut env.ids()) {
        Ok(mut t) => {
            if declined && crate::failpoint::planted("decline_keeps_lock") {
                // The planted bug the simulation must catch: the unlock after a decline is lost.
                t.ops.retain(|q| !matches!(q.op, kasa_core::op::Op::TokenxUnlock { .. }));
            }
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
            tx.append_journal(&rec, at)?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let t = OutboxConfig::default();
        let d = |k, a, j| backoff(&t, k, a, j).as_millis();
        assert_eq!(d(OpKind::TokenxPayment, 0, 1.0), 500);
        assert_eq!(d(OpKind::TokenxPayment, 3, 1.0), 4000);
        assert_eq!(d(OpKind::TokenxPayment, 30, 1.0), 30_000);
        assert_eq!(d(OpKind::TokenxPayment, 3, 0.0), 2000);
        assert_eq!(d(OpKind::TokenxLock, 1, 1.0), 300);
        assert_eq!(d(OpKind::TokenxLock, 10, 1.0), 2000);
        let fast = OutboxConfig { retry_base_ms: 5, retry_cap_ms: 50, in_flight: 8 };
        assert_eq!(backoff(&fast, OpKind::TokenxUnlock, 10, 1.0).as_millis(), 50);
    }
}
