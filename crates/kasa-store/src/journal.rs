//! Appending to and reading the hash-chained journal.

use crate::Cached;
use kasa_core::journal::{JournalEntry, JournalRecord, Verification, next_entry, verify};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx};

/// Counts for the journal screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStats {
    /// Entries.
    pub entries: i64,
    /// Hash of the last entry.
    pub head_hash: Option<String>,
}

fn head(conn: &Connection) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn.row("SELECT seq, hash FROM journal_head WHERE id = 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        sale_id: r.get(2)?,
        kind: r.get(3)?,
        data: r.get(4)?,
        prev_hash: r.get(5)?,
        hash: r.get(6)?,
    })
}

const COLUMNS: &str = "seq, at, sale_id, kind, data, prev_hash, hash";

impl Tx<'_> {
    /// Appends a record to the journal, chained to the current head.
    pub fn append_journal(&self, record: &JournalRecord, at: OffsetDateTime) -> Result<JournalEntry, StoreError> {
        let prev = head(self.conn())?;
        let entry = next_entry(prev.as_ref().map(|(s, h)| (*s, h.as_str())), record, at);
        self.conn().run(
            "INSERT INTO journal (seq, at, sale_id, kind, data, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![entry.seq, entry.at, entry.sale_id, entry.kind, entry.data, entry.prev_hash, entry.hash],
        )?;
        self.conn().run(
            "INSERT INTO journal_head (id, seq, hash) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![entry.seq, entry.hash],
        )?;
        Ok(entry)
    }
}

impl Store {
    /// Journal entries of one sale, oldest first.
    pub fn journal_for_sale(&self, sale_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM journal WHERE sale_id = ?1 ORDER BY seq"))?;
            let rows = stmt.query_map([sale_id], row_to_entry)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Journal entries with `seq` greater than `after`, at most `limit`, oldest first.
    pub fn journal_page(&self, after: i64, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
            let rows = stmt.query_map(params![after, limit], row_to_entry)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Size and head of the journal.
    pub fn journal_stats(&self) -> Result<JournalStats, StoreError> {
        self.read(|c| {
            let entries = c.row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))?;
            Ok(JournalStats { entries, head_hash: head(c)?.map(|(_, h)| h) })
        })
    }

    /// Verifies the whole chain in stored order, streaming rows rather than loading them all.
    pub fn verify_journal(&self) -> Result<Verification, StoreError> {
        self.read(|c| {
            let head = head(c)?;
            let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM journal ORDER BY rowid"))?;
            let mut rows = stmt.query([])?;
            let mut err = None;
            let iter = std::iter::from_fn(|| match rows.next() {
                Ok(Some(r)) => match row_to_entry(r) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        err = Some(e);
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    err = Some(e);
                    None
                }
            });
            let v = verify(iter, head.as_ref().map(|(s, h)| (*s, h.as_str())));
            match err {
                Some(e) => Err(e.into()),
                None => Ok(v),
            }
        })
    }
}
