//! The cache of pump orders seen in the cloud, so the cashier sees the list even offline.

use kasa_core::{OrderSummary, PumpOrder};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx, ts};

fn status_name(summary: &OrderSummary) -> Result<String, StoreError> {
    Ok(serde_json::to_value(summary.status)?.as_str().unwrap_or_default().to_string())
}

impl Tx<'_> {
    /// Stores the summaries of one listing; the cached list is then exactly this listing.
    pub fn upsert_order_summaries(&self, list: &[OrderSummary], now: OffsetDateTime) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO orders (order_id, plate_number, pump_no, status, created_at, summary, detail, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
             ON CONFLICT (order_id) DO UPDATE SET plate_number = excluded.plate_number, pump_no = excluded.pump_no,
                 status = excluded.status, summary = excluded.summary, seen_at = excluded.seen_at",
        )?;
        let seen = ts(now);
        for s in list {
            stmt.execute(params![
                s.order_id,
                s.plate_number,
                s.pump_no,
                status_name(s)?,
                ts(s.created_at),
                serde_json::to_string(s)?,
                seen,
            ])?;
        }
        self.conn().execute(
            "INSERT INTO settings (key, value) VALUES ('orders_listed_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [&seen],
        )?;
        Ok(())
    }

    /// Stores a full order (and its summary).
    pub fn put_order(&self, order: &PumpOrder, now: OffsetDateTime) -> Result<(), StoreError> {
        let summary = order.summary();
        self.conn().execute(
            "INSERT INTO orders (order_id, plate_number, pump_no, status, created_at, summary, detail, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (order_id) DO UPDATE SET plate_number = excluded.plate_number, pump_no = excluded.pump_no,
                 status = excluded.status, summary = excluded.summary, detail = excluded.detail",
            params![
                order.order_id,
                order.plate_number,
                order.pump_no,
                status_name(&summary)?,
                ts(order.created_at),
                serde_json::to_string(&summary)?,
                serde_json::to_string(order)?,
                ts(now),
            ],
        )?;
        Ok(())
    }
}

impl Store {
    /// Cached summaries, newest first.
    pub fn orders(&self, limit: u32) -> Result<Vec<OrderSummary>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT summary FROM orders ORDER BY created_at DESC, order_id LIMIT ?1")?;
            let rows = stmt.query_map([limit], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|s| Ok(serde_json::from_str(s)?)).collect()
        })
    }

    /// The full order, if it was fetched.
    pub fn order(&self, order_id: &str) -> Result<Option<PumpOrder>, StoreError> {
        self.read(|c| {
            let detail: Option<Option<String>> =
                c.query_row("SELECT detail FROM orders WHERE order_id = ?1", [order_id], |r| r.get(0)).optional()?;
            detail.flatten().map(|d| Ok(serde_json::from_str(&d)?)).transpose()
        })
    }
}
