//! The cache of pump orders seen in the cloud, so the cashier sees the list even offline.

use crate::Cached;
use kasa_core::{OrderSummary, PumpOrder};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx, parse_ts, ts};

/// The setting holding when the cloud last listed the orders.
const LISTED_AT: &str = "orders_listed_at";

/// The setting holding the order ids of that listing (a JSON array).
const LISTED: &str = "orders_listed";

fn status_name(summary: &OrderSummary) -> Result<String, StoreError> {
    Ok(serde_json::to_value(summary.status)?.as_str().unwrap_or_default().to_string())
}

impl Tx<'_> {
    /// Stores the summaries of one listing; the cached list is then exactly this listing (orders
    /// the cloud no longer lists stay in the table, for their sales, but are not listed).
    pub fn upsert_order_summaries(&self, list: &[OrderSummary], now: OffsetDateTime) -> Result<(), StoreError> {
        self.record_listing(list, list, now)
    }

    /// Stores a listing of which only `changed` may differ from what is stored: a listing
    /// mostly repeats the last one, so only changed rows are written, and the listing itself
    /// is one setting (its order ids), not a stamp per row.
    pub fn record_listing(
        &self,
        changed: &[OrderSummary],
        list: &[OrderSummary],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "INSERT INTO orders (order_id, plate_number, pump_no, status, created_at, summary, detail, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
             ON CONFLICT (order_id) DO UPDATE SET plate_number = excluded.plate_number, pump_no = excluded.pump_no,
                 status = excluded.status, summary = excluded.summary, seen_at = excluded.seen_at
             WHERE orders.summary IS NOT excluded.summary",
        )?;
        let seen = ts(now);
        for s in changed {
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
        let ids: Vec<&str> = list.iter().map(|s| s.order_id.as_str()).collect();
        self.set_setting(LISTED, &serde_json::to_string(&ids)?)?;
        self.set_setting(LISTED_AT, &seen)
    }

    /// Stores a full order (and its summary).
    pub fn put_order(&self, order: &PumpOrder, now: OffsetDateTime) -> Result<(), StoreError> {
        let summary = order.summary();
        self.conn().run(
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
    /// The orders of the cloud's last listing, newest first; none before the first listing.
    pub fn orders(&self, limit: u32) -> Result<Vec<OrderSummary>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT summary FROM orders
                 WHERE order_id IN (SELECT value FROM json_each((SELECT value FROM settings WHERE key = ?1)))
                    -- A database written before the listing was kept as ids: its rows' stamps.
                    OR (NOT EXISTS (SELECT 1 FROM settings WHERE key = ?1)
                        AND seen_at = (SELECT value FROM settings WHERE key = ?3))
                 ORDER BY created_at DESC, order_id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![LISTED, limit, LISTED_AT], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|s| Ok(serde_json::from_str(s)?)).collect()
        })
    }

    /// When the cloud last listed the orders (the age of the cached list).
    pub fn orders_listed_at(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        self.setting(LISTED_AT)?.map(|t| parse_ts(&t)).transpose()
    }

    /// The full order, if it was fetched.
    pub fn order(&self, order_id: &str) -> Result<Option<PumpOrder>, StoreError> {
        self.read(|c| {
            let detail: Option<Option<String>> =
                c.row("SELECT detail FROM orders WHERE order_id = ?1", [order_id], |r| r.get(0)).optional()?;
            detail.flatten().map(|d| Ok(serde_json::from_str(&d)?)).transpose()
        })
    }
}
