//! Sales as the state machine leaves them.

use crate::Cached;
use kasa_core::{Sale, SaleState};
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError, Tx, ts};

impl Tx<'_> {
    /// Inserts or replaces a sale, with the columns and words it is searched by. What the
    /// step changed in money is recorded beside it (see [`kasa_core::report`]).
    pub fn put_sale(&self, sale: &Sale) -> Result<(), StoreError> {
        let total = sale.total().map_err(|e| StoreError::Invalid(e.to_string()))?;
        let before = read_sale(self.conn(), &sale.id.0)?;
        self.record_movements(before.as_ref(), sale)?;
        self.conn().run(
            "INSERT INTO sales (sale_id, order_id, state, total_minor, currency, created_at, updated_at, body,
                                created_ms, plate, methods)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (sale_id) DO UPDATE SET order_id = excluded.order_id, state = excluded.state,
                 total_minor = excluded.total_minor, currency = excluded.currency,
                 updated_at = excluded.updated_at, body = excluded.body, created_ms = excluded.created_ms,
                 plate = excluded.plate, methods = excluded.methods",
            params![
                sale.id.0,
                sale.basket.pump_order_id(),
                sale.state.as_str(),
                total.minor,
                total.currency.as_str(),
                ts(sale.created_at),
                ts(sale.updated_at),
                serde_json::to_string(sale)?,
                crate::search::unix_ms(sale.created_at),
                kasa_core::search::plate_of(sale),
                kasa_core::search::methods_of(sale),
            ],
        )?;
        self.index_text(before.as_ref(), sale)?;
        Ok(())
    }

    /// Sales in any of the given states, inside the transaction.
    pub fn sales_in(&self, states: &[SaleState]) -> Result<Vec<Sale>, StoreError> {
        sales_in(self.conn(), states)
    }

    /// The id of the newest sale, inside the transaction.
    pub fn newest_sale_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .row("SELECT sale_id FROM sales ORDER BY created_at DESC, sale_id DESC LIMIT 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Reads a sale inside the transaction, for a read-modify-write step.
    pub fn sale(&self, sale_id: &str) -> Result<Sale, StoreError> {
        read_sale(self.conn(), sale_id)?.ok_or_else(|| StoreError::NotFound(format!("sale {sale_id}")))
    }
}

fn read_sale(c: &rusqlite::Connection, sale_id: &str) -> Result<Option<Sale>, StoreError> {
    let body: Option<String> =
        c.row("SELECT body FROM sales WHERE sale_id = ?1", [sale_id], |r| r.get(0)).optional()?;
    body.map(|b| Ok(serde_json::from_str(&b)?)).transpose()
}

fn sales_in(c: &rusqlite::Connection, states: &[SaleState]) -> Result<Vec<Sale>, StoreError> {
    let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let json = serde_json::to_string(&names)?;
    read_many(
        c,
        "SELECT body FROM sales WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY created_at, sale_id",
        [json],
    )
}

fn read_many(c: &rusqlite::Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Sale>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let bodies = stmt.query_map(p, |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    bodies.iter().map(|b| Ok(serde_json::from_str(b)?)).collect()
}

impl Store {
    /// One sale.
    pub fn sale(&self, sale_id: &str) -> Result<Option<Sale>, StoreError> {
        self.read(|c| read_sale(c, sale_id))
    }

    /// Sales in any of the given states, oldest first.
    pub fn sales_in(&self, states: &[SaleState]) -> Result<Vec<Sale>, StoreError> {
        self.read(|c| sales_in(c, states))
    }

    /// The newest sales, newest first.
    pub fn recent_sales(&self, limit: u32) -> Result<Vec<Sale>, StoreError> {
        self.read(|c| read_many(c, "SELECT body FROM sales ORDER BY created_at DESC, sale_id DESC LIMIT ?1", [limit]))
    }

    /// The newest sale of a pump order that was not cancelled.
    pub fn live_sale_of_order(&self, order_id: &str) -> Result<Option<Sale>, StoreError> {
        self.read(|c| {
            Ok(read_many(
                c,
                "SELECT body FROM sales WHERE order_id = ?1 AND state <> 'Cancelled' ORDER BY created_at DESC LIMIT 1",
                params![order_id],
            )?
            .pop())
        })
    }

    /// Paid sales per state, for consistency checks and reports.
    pub fn count_sales(&self, state: SaleState) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.row("SELECT COUNT(*) FROM sales WHERE state = ?1", [state.as_str()], |r| r.get(0))?))
    }
}
