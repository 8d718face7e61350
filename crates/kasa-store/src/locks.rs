//! Locks this register may hold on pump orders in the cloud.
//!
//! A row is written when a lock is requested and removed only when the cloud has confirmed the
//! order is no longer locked by this register, so start-up recovery knows every lock that may
//! be dangling.

use crate::Cached;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx, parse_ts, ts};

/// A lock row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    /// The order.
    pub order_id: String,
    /// The sale that asked for it.
    pub sale_id: String,
    /// The lock request's idempotency key.
    pub request_key: String,
    /// The cloud's lock id, once granted.
    pub lock_id: Option<String>,
    /// Expiry, once granted.
    pub expires_at: Option<OffsetDateTime>,
}

/// A lock row as read: order, sale, request key, lock id, expiry text.
type RawLock = (String, String, String, Option<String>, Option<String>);

fn row_to_lock(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawLock> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn lock_from(raw: RawLock) -> Result<LockRow, StoreError> {
    let (order_id, sale_id, request_key, lock_id, expires_at) = raw;
    Ok(LockRow {
        order_id,
        sale_id,
        request_key,
        lock_id,
        expires_at: expires_at.as_deref().map(parse_ts).transpose()?,
    })
}

fn all_locks(c: &rusqlite::Connection) -> Result<Vec<LockRow>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT order_id, sale_id, request_key, lock_id, expires_at FROM locks ORDER BY updated_at")?;
    let raw = stmt.query_map([], row_to_lock)?.collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(lock_from).collect()
}

impl Tx<'_> {
    /// Records that a lock was requested.
    pub fn lock_requested(
        &self,
        order_id: &str,
        sale_id: &str,
        request_key: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn().run(
            "INSERT INTO locks (order_id, sale_id, request_key, lock_id, state, expires_at, updated_at)
             VALUES (?1, ?2, ?3, NULL, 'requested', NULL, ?4)
             ON CONFLICT (order_id) DO UPDATE SET sale_id = excluded.sale_id, request_key = excluded.request_key,
                 lock_id = NULL, state = 'requested', expires_at = NULL, updated_at = excluded.updated_at",
            params![order_id, sale_id, request_key, ts(now)],
        )?;
        Ok(())
    }

    /// Records that the cloud granted the lock.
    pub fn lock_held(
        &self,
        order_id: &str,
        lock_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.conn().run(
            "UPDATE locks SET lock_id = ?2, state = 'held', expires_at = ?3, updated_at = ?4 WHERE order_id = ?1",
            params![order_id, lock_id, ts(expires_at), ts(now)],
        )?;
        Ok(())
    }

    /// Every lock this register may hold, inside the transaction.
    pub fn locks(&self) -> Result<Vec<LockRow>, StoreError> {
        all_locks(self.conn())
    }

    /// Records that the cloud no longer holds a lock of this register on the order.
    pub fn lock_gone(&self, order_id: &str) -> Result<(), StoreError> {
        self.conn().run("DELETE FROM locks WHERE order_id = ?1", [order_id])?;
        Ok(())
    }
}

impl Store {
    /// Every lock this register may hold.
    pub fn locks(&self) -> Result<Vec<LockRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT order_id, sale_id, request_key, lock_id, expires_at FROM locks ORDER BY updated_at",
            )?;
            let raw = stmt.query_map([], row_to_lock)?.collect::<Result<Vec<_>, _>>()?;
            raw.into_iter().map(lock_from).collect()
        })
    }

    /// The lock row of one order.
    pub fn lock_of(&self, order_id: &str) -> Result<Option<LockRow>, StoreError> {
        self.read(|c| {
            let raw = c
                .row(
                    "SELECT order_id, sale_id, request_key, lock_id, expires_at FROM locks WHERE order_id = ?1",
                    [order_id],
                    row_to_lock,
                )
                .optional()?;
            raw.map(lock_from).transpose()
        })
    }
}
