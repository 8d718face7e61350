//! The manager's search over sales: filters served by indexes, pages by keyset.

use crate::Cached;
use kasa_core::search::{SaleQuery, fts_query, methods_of, plate_key, plate_of, text_of};
use kasa_core::{Sale, SaleState};
use rusqlite::params;
use rusqlite::types::Value;
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx};

/// A page of sales, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SalePage {
    /// The sales.
    pub sales: Vec<Sale>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

pub(crate) fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn bound(text: &str, end: bool) -> Result<i64, StoreError> {
    kasa_core::search::parse_bound(text, end).map_err(StoreError::Invalid)
}

impl Tx<'_> {
    /// Keeps the words a stored sale is found by current (`before` is what was stored).
    pub(crate) fn index_text(&self, before: Option<&Sale>, sale: &Sale) -> Result<(), StoreError> {
        let text = text_of(sale);
        if before.is_some_and(|b| text_of(b) == text) {
            return Ok(());
        }
        let doc: Option<i64> =
            self.conn().row("SELECT text_doc FROM sales WHERE sale_id = ?1", [&sale.id.0], |r| r.get(0))?;
        if let Some(doc) = doc {
            self.conn().run("DELETE FROM sales_text WHERE rowid = ?1", [doc])?;
        }
        self.conn().run("INSERT INTO sales_text (sale_id, text) VALUES (?1, ?2)", params![sale.id.0, text])?;
        let doc = self.conn().last_insert_rowid();
        self.conn().run("UPDATE sales SET text_doc = ?2 WHERE sale_id = ?1", params![sale.id.0, doc])?;
        Ok(())
    }
}

impl Store {
    /// Fills the search columns of sales stored before they existed (once, at open).
    pub(crate) fn index_old_sales(&self) -> Result<(), StoreError> {
        if self.is_read_only() || self.setting("search_indexed")?.as_deref() != Some("0") {
            return Ok(());
        }
        let ids: Vec<String> = self.read(|c| {
            let mut stmt = c.prepare("SELECT sale_id FROM sales")?;
            Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?)
        })?;
        for chunk in ids.chunks(1000) {
            self.write(|tx| -> Result<(), StoreError> {
                for id in chunk {
                    let sale = tx.sale(id)?;
                    tx.conn().run(
                        "UPDATE sales SET created_ms = ?2, plate = ?3, methods = ?4 WHERE sale_id = ?1",
                        params![sale.id.0, unix_ms(sale.created_at), plate_of(&sale), methods_of(&sale)],
                    )?;
                    tx.index_text(None, &sale)?;
                }
                Ok(())
            })?;
        }
        self.write(|tx| tx.set_setting("search_indexed", "1"))
    }

    /// Sales matching `q`, newest first, one page.
    pub fn search_sales(&self, q: &SaleQuery) -> Result<SalePage, StoreError> {
        let limit = q.limit.unwrap_or(50).clamp(1, 200);
        let mut sql = String::from("SELECT created_ms, sale_id, body FROM sales WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(from) = &q.from {
            arg(&mut sql, " AND created_ms >= ?", Value::Integer(bound(from, false)?));
        }
        if let Some(to) = &q.to {
            arg(&mut sql, " AND created_ms < ?", Value::Integer(bound(to, true)?));
        }
        if let Some(plate) = q.plate.as_deref().map(plate_key).filter(|p| !p.is_empty()) {
            arg(&mut sql, " AND plate = ?", Value::Text(plate));
        }
        if let Some(order) = q.order_id.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
            arg(&mut sql, " AND order_id = ?", Value::Text(order.to_string()));
        }
        if let Some(m) = q.method {
            arg(&mut sql, " AND instr(methods, ?) > 0", Value::Text(format!(",{},", m.as_str())));
        }
        if let Some(min) = q.min_minor {
            arg(&mut sql, " AND total_minor >= ?", Value::Integer(min));
        }
        if let Some(max) = q.max_minor {
            arg(&mut sql, " AND total_minor <= ?", Value::Integer(max));
        }
        // One state reads its index in order; several are a list the index serves each of.
        match q.states.as_slice() {
            [] => {}
            [one] => arg(&mut sql, " AND state = ?", Value::Text(one.as_str().to_string())),
            many => {
                let names: Vec<&str> = many.iter().map(|s: &SaleState| s.as_str()).collect();
                let list = Value::Text(serde_json::to_string(&names)?);
                arg(&mut sql, " AND state IN (SELECT value FROM json_each(?))", list);
            }
        }
        if let Some(text) = q.text.as_deref().and_then(fts_query) {
            arg(
                &mut sql,
                " AND sale_id IN (SELECT sale_id FROM sales_text WHERE sales_text MATCH ?)",
                Value::Text(text),
            );
        }
        if let Some(after) = &q.after {
            let (ms, id) = after
                .split_once('/')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| StoreError::Invalid(format!("'{after}' is not a page position")))?;
            arg(&mut sql, " AND (created_ms, sale_id) < (?", Value::Integer(ms));
            arg(&mut sql, ", ?)", Value::Text(id));
        }
        arg(&mut sql, " ORDER BY created_ms DESC, sale_id DESC LIMIT ?", Value::Integer(i64::from(limit) + 1));
        self.read(|c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let more = rows.len() > limit as usize;
            let mut sales = Vec::with_capacity(limit as usize);
            let mut next = None;
            for (ms, id, body) in rows.into_iter().take(limit as usize) {
                next = Some(format!("{ms}/{id}"));
                sales.push(serde_json::from_str(&body)?);
            }
            Ok(SalePage { sales, next: if more { next } else { None } })
        })
    }
}
