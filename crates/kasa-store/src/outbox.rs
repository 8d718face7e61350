//! The transactional outbox.
//!
//! Messages are appended in the transaction of the step that causes them and delivered lane by
//! lane in id order. A message waits for every older message of its own sale in its lane,
//! including a parked one (a permanent failure waiting for the manager), since it may depend
//! on it. Towards other sales' messages the lanes differ:
//!
//! - in a cloud lane (one pump order, one Settle payment, one refund) an older pending message
//!   of another sale holds it back, so a release left by an abandoned attempt goes before a
//!   later attempt's lock; a parked one does not;
//! - in a device lane ([`kasa_core::op::DEVICE_LANE`]: the terminal, the MobilePay PoS, the
//!   printer) another sale's older message holds it back while that one is due, being
//!   delivered, or may already be at the device (an attempt that may have been applied, whose
//!   outcome is not known yet); not while it backs off after a failure that certainly did not
//!   reach the device, is parked, or waits behind its own sale's. One slip that cannot print,
//!   or one card lookup parked for the manager, does not stop every later slip or card payment,
//!   and no second payment goes to a terminal that may still be busy with the first;
//! - in a strict lane ([`kasa_core::op::STRICT_LANE`]: the receipts to be signed) every older
//!   message holds it back, pending or parked, whatever sale made it.

use crate::Cached;
use kasa_core::op::{Op, OpKind, Queued};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx, parse_ts, ts};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for (another) delivery attempt.
    Pending,
    /// Delivered and acknowledged.
    Done,
    /// Failed permanently; waiting for the manager.
    Parked,
    /// Discarded by the manager (journaled).
    Discarded,
}

impl OutboxState {
    fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Done => "done",
            OutboxState::Parked => "parked",
            OutboxState::Discarded => "discarded",
        }
    }

    fn parse(s: &str) -> Result<OutboxState, StoreError> {
        Ok(match s {
            "pending" => OutboxState::Pending,
            "done" => OutboxState::Done,
            "parked" => OutboxState::Parked,
            "discarded" => OutboxState::Discarded,
            other => return Err(StoreError::Invalid(format!("outbox state '{other}'"))),
        })
    }
}

/// One outbox message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Position in the outbox.
    pub id: i64,
    /// Delivery lane.
    pub lane: String,
    /// The sale that caused it.
    pub sale_id: Option<String>,
    /// Idempotency key, reused by every attempt.
    pub key: String,
    /// The operation.
    pub op: Op,
    /// State.
    pub state: OutboxState,
    /// Attempts made so far.
    pub attempts: u32,
    /// Whether any attempt may have reached the remote side (so it may have been applied).
    pub maybe_applied: bool,
    /// Earliest next attempt, unix milliseconds.
    pub next_attempt_ms: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
}

/// What waits, for the status bar and the manager: the queue's depth, and the sales held for
/// a manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueCounts {
    /// Waiting for delivery.
    pub pending: i64,
    /// Parked for the manager.
    pub parked: i64,
    /// Sales held for a manager (a provider took another amount than was asked).
    pub attention: i64,
}

const COLUMNS: &str =
    "id, lane, sale_id, idempotency_key, op, state, attempts, next_attempt_ms, last_error, created_at, maybe_applied";

type RawRow = (i64, String, Option<String>, String, String, String, u32, i64, Option<String>, String, bool);

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

fn from_raw(r: RawRow) -> Result<OutboxRow, StoreError> {
    let (id, lane, sale_id, key, op, state, attempts, next_attempt_ms, last_error, created_at, maybe_applied) = r;
    Ok(OutboxRow {
        id,
        lane,
        sale_id,
        key,
        op: serde_json::from_str(&op)?,
        state: OutboxState::parse(&state)?,
        attempts,
        maybe_applied,
        next_attempt_ms,
        last_error,
        created_at: parse_ts(&created_at)?,
    })
}

fn query(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, raw)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(from_raw).collect()
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

impl Tx<'_> {
    /// Appends a message; it is due at once. Returns its id.
    pub fn enqueue(&self, sale_id: Option<&str>, queued: &Queued, now: OffsetDateTime) -> Result<i64, StoreError> {
        let lane = queued.op.lane();
        self.conn().run(
            "INSERT INTO outbox (lane, sale_id, kind, idempotency_key, op, state, attempts, next_attempt_ms, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7)",
            params![
                lane,
                sale_id,
                queued.op.kind().as_str(),
                queued.key,
                serde_json::to_string(&queued.op)?,
                unix_ms(now),
                ts(now)
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Records that what this message stands for may already have happened at the remote side
    /// (it replaces an attempt a crash left unrecorded), so its lane treats it as in doubt.
    pub fn outbox_in_doubt(&self, id: i64) -> Result<(), StoreError> {
        self.conn().run("UPDATE outbox SET maybe_applied = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Marks a message delivered.
    pub fn outbox_done(&self, id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
        self.finish(id, OutboxState::Done, None, now)
    }

    /// Ends a message without delivering it, because start-up recovery replaced it (the reason
    /// is kept as its last error).
    pub fn outbox_abandon(&self, id: i64, reason: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.conn().run(
            "UPDATE outbox SET state = 'done', last_error = ?2, finished_at = ?3 WHERE id = ?1 AND state = 'pending'",
            params![id, reason, ts(now)],
        )?;
        Ok(())
    }

    /// Whether an order's lane has a pending message of one of these kinds.
    pub fn outbox_lane_has(&self, lane: &str, kinds: &[OpKind]) -> Result<bool, StoreError> {
        let kinds = serde_json::to_string(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())?;
        Ok(self.conn().row(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE lane = ?1 AND state IN ('pending', 'parked')
                 AND kind IN (SELECT value FROM json_each(?2)))",
            params![lane, kinds],
            |r| r.get(0),
        )?)
    }

    /// Parks a message for the manager with the reason.
    pub fn outbox_park(&self, id: i64, reason: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.finish(id, OutboxState::Parked, Some(reason), now)
    }

    /// Marks a parked message discarded by the manager.
    pub fn outbox_discard(&self, id: i64, now: OffsetDateTime) -> Result<(), StoreError> {
        self.finish(id, OutboxState::Discarded, None, now)
    }

    /// Counts a failed attempt and schedules the next one. `maybe_applied` records that this
    /// attempt may have reached the remote side.
    pub fn outbox_retry_at(
        &self,
        id: i64,
        error: &str,
        next_attempt: OffsetDateTime,
        maybe_applied: bool,
    ) -> Result<(), StoreError> {
        self.conn().run(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3,
                 maybe_applied = maybe_applied OR ?4 WHERE id = ?1",
            params![id, error, unix_ms(next_attempt), maybe_applied],
        )?;
        Ok(())
    }

    /// Makes every pending message of the cloud's lanes due now (the network is back).
    pub fn outbox_due_now(&self, lane_prefix: &str, now: OffsetDateTime) -> Result<usize, StoreError> {
        Ok(self.conn().run(
            "UPDATE outbox SET next_attempt_ms = ?2 WHERE state = 'pending' AND next_attempt_ms > ?2
                 AND substr(lane, 1, length(?1)) = ?1",
            params![lane_prefix, unix_ms(now)],
        )?)
    }

    /// Pending messages of one sale of a kind, oldest first (for start-up recovery).
    pub fn outbox_pending_of(&self, sale_id: &str, kind: OpKind) -> Result<Vec<OutboxRow>, StoreError> {
        query(
            self.conn(),
            &format!("SELECT {COLUMNS} FROM outbox WHERE sale_id = ?1 AND kind = ?2 AND state = 'pending' ORDER BY id"),
            params![sale_id, kind.as_str()],
        )
    }

    /// Puts a parked message back in line, due at once.
    pub fn outbox_unpark(&self, id: i64, now: OffsetDateTime) -> Result<bool, StoreError> {
        let n = self.conn().run(
            "UPDATE outbox SET state = 'pending', next_attempt_ms = ?2, finished_at = NULL WHERE id = ?1 AND state = 'parked'",
            params![id, unix_ms(now)],
        )?;
        Ok(n == 1)
    }

    /// One message, inside the transaction.
    pub fn outbox_row(&self, id: i64) -> Result<OutboxRow, StoreError> {
        query(self.conn(), &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"), [id])?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("outbox message {id}")))
    }

    fn finish(&self, id: i64, state: OutboxState, error: Option<&str>, now: OffsetDateTime) -> Result<(), StoreError> {
        let n = self.conn().run(
            "UPDATE outbox SET state = ?2, last_error = COALESCE(?3, last_error), finished_at = ?4,
                 attempts = attempts + CASE WHEN ?2 = 'discarded' THEN 0 ELSE 1 END
             WHERE id = ?1",
            params![id, state.as_str(), error, ts(now)],
        )?;
        if n == 1 { Ok(()) } else { Err(StoreError::NotFound(format!("outbox message {id}"))) }
    }
}

impl Store {
    /// The heads of lanes that are due at `now`, oldest first, skipping `busy` lanes. A parked
    /// message holds back the later messages of its own sale, and in a strict lane every later
    /// message.
    pub fn outbox_due(&self, now: OffsetDateTime, busy: &[String], limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let busy = serde_json::to_string(busy)?;
        self.read(|c| {
            query(
                c,
                &format!(
                    "SELECT {COLUMNS} FROM outbox o INDEXED BY outbox_pending_order
                     WHERE o.state = 'pending' AND o.next_attempt_ms <= ?1
                       AND o.lane NOT IN (SELECT value FROM json_each(?2))
                       AND NOT EXISTS (SELECT 1 FROM outbox h
                                       WHERE h.lane = o.lane AND h.state = 'parked' AND h.id < o.id
                                         AND (h.sale_id IS o.sale_id OR substr(o.lane, 1, length(?5)) = ?5))
                       AND NOT EXISTS (
                           SELECT 1 FROM outbox h
                           WHERE h.lane = o.lane AND h.state = 'pending' AND h.id < o.id
                             AND (h.sale_id IS o.sale_id
                                  OR substr(o.lane, 1, length(?4)) <> ?4
                                  OR ((h.next_attempt_ms <= ?1 OR h.maybe_applied)
                                      AND NOT EXISTS (SELECT 1 FROM outbox p
                                                      WHERE p.lane = h.lane AND p.state IN ('pending', 'parked')
                                                        AND p.id < h.id AND p.sale_id IS h.sale_id))))
                     ORDER BY o.id LIMIT ?3"
                ),
                params![unix_ms(now), busy, limit, kasa_core::op::DEVICE_LANE, kasa_core::op::STRICT_LANE],
            )
        })
    }

    /// When the next pending message falls due (unix ms), if any is pending.
    pub fn outbox_next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            Ok(c.row("SELECT MIN(next_attempt_ms) FROM outbox WHERE state = 'pending'", [], |r| r.get(0))
                .optional()?
                .flatten())
        })
    }

    /// Pending and parked messages, oldest first.
    pub fn outbox_open(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            query(
                c,
                &format!("SELECT {COLUMNS} FROM outbox WHERE state IN ('pending', 'parked') ORDER BY id LIMIT ?1"),
                [limit],
            )
        })
    }

    /// Every message of one sale, oldest first.
    pub fn outbox_of_sale(&self, sale_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| query(c, &format!("SELECT {COLUMNS} FROM outbox WHERE sale_id = ?1 ORDER BY id"), [sale_id]))
    }

    /// One message.
    pub fn outbox_message(&self, id: i64) -> Result<OutboxRow, StoreError> {
        self.read(|c| {
            query(c, &format!("SELECT {COLUMNS} FROM outbox WHERE id = ?1"), [id])?
                .pop()
                .ok_or_else(|| StoreError::NotFound(format!("outbox message {id}")))
        })
    }

    /// Pending and parked counts.
    pub fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        self.read(|c| {
            Ok(c.row(
                "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'parked'), 0),
                        (SELECT COUNT(*) FROM sales WHERE state = 'NeedsAttention')
                 FROM outbox WHERE state IN ('pending', 'parked')",
                [],
                |r| Ok(QueueCounts { pending: r.get(0)?, parked: r.get(1)?, attention: r.get(2)? }),
            )?)
        })
    }
}
