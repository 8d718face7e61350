//! Appending to and reading the keyed journal chain.

use crate::Cached;
use kasa_core::journal::{
    ChainIndex, JournalEntry, JournalKey, JournalRecord, Mark, MarkKind, Verification, next_entry, verify,
};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use crate::{Store, StoreError, Tx, ts};

/// Counts for the journal screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalStats {
    /// Entries.
    pub entries: i64,
    /// Seal of the last entry.
    pub head_hash: Option<String>,
}

fn head(conn: &Connection) -> Result<Option<Mark>, StoreError> {
    Ok(conn
        .row("SELECT seq, hash, coalesce(mac, '') FROM journal_head WHERE id = 1", [], |r| {
            Ok(Mark { seq: r.get(0)?, hash: r.get(1)?, mac: r.get(2)? })
        })
        .optional()?)
}

fn checkpoint(conn: &Connection) -> Result<Option<Mark>, StoreError> {
    Ok(conn
        .row("SELECT seq, hash, mac FROM journal_checkpoint WHERE id = 1", [], |r| {
            Ok(Mark { seq: r.get(0)?, hash: r.get(1)?, mac: r.get(2)? })
        })
        .optional()?)
}

pub(crate) fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
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

pub(crate) const COLUMNS: &str = "seq, at, sale_id, kind, data, prev_hash, hash";

/// The lookups verification makes after a break, by scanning the journal.
struct Scan<'c>(&'c Connection);

impl ChainIndex for Scan<'_> {
    fn follower_of(&self, hash: &str) -> Option<i64> {
        self.0.row("SELECT seq FROM journal WHERE prev_hash = ?1 ORDER BY seq LIMIT 1", [hash], |r| r.get(0)).ok()
    }

    fn count_sealed(&self, hash: &str) -> i64 {
        self.0.row("SELECT COUNT(*) FROM journal WHERE hash = ?1", [hash], |r| r.get(0)).unwrap_or(0)
    }
}

impl Tx<'_> {
    /// Appends a record to the journal, chained to the current head and sealed with the
    /// register's key; the head moves on in the same transaction.
    pub fn append_journal(&self, record: &JournalRecord, at: OffsetDateTime) -> Result<JournalEntry, StoreError> {
        let key = self.key.ok_or(StoreError::NoJournalKey)?;
        let prev = head(self.conn())?;
        let entry = next_entry(key, prev.as_ref().map(|m| (m.seq, m.hash.as_str())), record, at);
        self.conn().run(
            "INSERT INTO journal (seq, at, sale_id, kind, data, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![entry.seq, entry.at, entry.sale_id, entry.kind, entry.data, entry.prev_hash, entry.hash],
        )?;
        let mac = key.mark_seal(MarkKind::Head, entry.seq, &entry.hash);
        self.conn().run(
            "INSERT INTO journal_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac",
            params![entry.seq, entry.hash, mac],
        )?;
        Ok(entry)
    }

    /// Records `mark` (a position a verification found good) as the checkpoint start-up
    /// verifies from.
    pub fn set_journal_checkpoint(&self, seq: i64, hash: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let key = self.key.ok_or(StoreError::NoJournalKey)?;
        let mac = key.mark_seal(MarkKind::Checkpoint, seq, hash);
        self.conn().run(
            "INSERT INTO journal_checkpoint (id, seq, hash, mac, at) VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, mac = excluded.mac, at = excluded.at",
            params![seq, hash, mac, ts(at)],
        )?;
        Ok(())
    }
}

/// Streams rows of a prepared statement as entries, keeping the first error aside.
fn stream<'s>(
    rows: &'s mut rusqlite::Rows<'_>,
    err: &'s mut Option<rusqlite::Error>,
) -> impl Iterator<Item = JournalEntry> + 's {
    std::iter::from_fn(move || match rows.next() {
        Ok(Some(r)) => match row_to_entry(r) {
            Ok(e) => Some(e),
            Err(e) => {
                *err = Some(e);
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            *err = Some(e);
            None
        }
    })
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

    /// One past the last position (where an export of everything ends).
    pub fn journal_end(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.row("SELECT coalesce(max(seq), 0) + 1 FROM journal", [], |r| r.get(0))?))
    }

    /// Size and head of the journal.
    pub fn journal_stats(&self) -> Result<JournalStats, StoreError> {
        self.read(|c| {
            let entries = c.row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))?;
            Ok(JournalStats { entries, head_hash: head(c)?.map(|m| m.hash) })
        })
    }

    /// Verifies the whole chain in stored order, streaming rows rather than loading them all.
    pub fn verify_journal(&self) -> Result<Verification, StoreError> {
        self.verify_journal_from(false)
    }

    /// Verifies the chain from the last checkpoint (when `fast` and the checkpoint is sealed by
    /// this key and still names the entry it was taken at), or else from the first entry.
    pub fn verify_journal_from(&self, fast: bool) -> Result<Verification, StoreError> {
        let key = self.key.as_ref().ok_or(StoreError::NoJournalKey)?;
        self.read(|c| {
            let head = head(c)?;
            let from = if fast { usable_checkpoint(c, key)? } else { None };
            let after = from.as_ref().map_or(0, |m| m.seq);
            let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM journal WHERE seq > ?1 ORDER BY seq"))?;
            let mut rows = stmt.query([after])?;
            let mut err = None;
            let mut v = verify(key, stream(&mut rows, &mut err), head.as_ref(), from.as_ref(), &Scan(c));
            if let Some(e) = err {
                return Err(e.into());
            }
            // A sealed checkpoint names an entry a verification found: the journal may not end
            // before it, nor hold another entry there.
            if v.is_intact()
                && let Some(cp) = checkpoint(c)?
                && key.seals_mark(MarkKind::Checkpoint, &cp)
            {
                let there: Option<String> =
                    c.row("SELECT hash FROM journal WHERE seq = ?1", [cp.seq], |r| r.get(0)).optional()?;
                if there.as_deref() != Some(cp.hash.as_str()) {
                    v.first_break = Some(kasa_core::journal::ChainBreak {
                        seq: cp.seq,
                        kind: kasa_core::journal::BreakKind::Truncated,
                        reason: format!(
                            "entry {} was verified before and is now missing or different: entries were removed",
                            cp.seq
                        ),
                    });
                }
            }
            Ok(v)
        })
    }
}

/// The checkpoint, when it was sealed with `key` and the entry at its position still carries
/// the seal it recorded.
fn usable_checkpoint(c: &Connection, key: &JournalKey) -> Result<Option<Mark>, StoreError> {
    let Some(cp) = checkpoint(c)? else { return Ok(None) };
    if !key.seals_mark(MarkKind::Checkpoint, &cp) {
        return Ok(None);
    }
    let there: Option<String> = c.row("SELECT hash FROM journal WHERE seq = ?1", [cp.seq], |r| r.get(0)).optional()?;
    Ok((there.as_deref() == Some(cp.hash.as_str())).then_some(cp))
}

/// A journal field as CSV (RFC 4180): quoted when it holds a comma, a quote or a line break.
fn csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// The CSV header of a journal export.
pub const CSV_HEADER: &str = "seq,at,sale_id,kind,data,hash\r\n";

impl Store {
    /// The first position whose entry was written at or after `ms` (unix milliseconds), found
    /// by bisecting positions (entries are appended in time order); one past the end when
    /// none is.
    pub fn journal_seq_at(&self, ms: i64) -> Result<i64, StoreError> {
        self.read(|c| {
            let last: i64 = c.row("SELECT coalesce(max(seq), 0) FROM journal", [], |r| r.get(0))?;
            // The first entry at or after a position (a journal with a gap still bisects).
            let at_of = |seq: i64| -> Result<i64, StoreError> {
                let at: Option<String> = c
                    .row("SELECT at FROM journal WHERE seq >= ?1 ORDER BY seq LIMIT 1", [seq], |r| r.get(0))
                    .optional()?;
                match at {
                    Some(at) => Ok(crate::search::unix_ms(crate::parse_ts(&at)?)),
                    None => Ok(i64::MAX),
                }
            };
            let (mut lo, mut hi) = (1, last + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if at_of(mid)? < ms { lo = mid + 1 } else { hi = mid }
            }
            Ok(lo)
        })
    }

    /// Writes journal entries `from..to` (positions) as CSV to `out`, streaming (memory stays
    /// flat however many there are); `progress` hears (written, total) every 10,000 rows and
    /// at the end. The number written.
    pub fn export_journal_csv(
        &self,
        from: i64,
        to: i64,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, StoreError> {
        let io = |e: std::io::Error| StoreError::Invalid(format!("writing the export failed: {e}"));
        let total = (to - from).max(0) as u64;
        out.write_all(CSV_HEADER.as_bytes()).map_err(io)?;
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM journal WHERE seq >= ?1 AND seq < ?2 ORDER BY seq"))?;
            let mut rows = stmt.query(params![from, to])?;
            let mut line = Vec::with_capacity(512);
            let mut done = 0u64;
            while let Some(r) = rows.next()? {
                let e = row_to_entry(r)?;
                line.clear();
                line.extend_from_slice(e.seq.to_string().as_bytes());
                for field in [e.at.as_str(), e.sale_id.as_deref().unwrap_or(""), &e.kind, &e.data, &e.hash] {
                    line.push(b',');
                    csv_field(&mut line, field);
                }
                line.extend_from_slice(b"\r\n");
                out.write_all(&line).map_err(io)?;
                done += 1;
                if done.is_multiple_of(10_000) {
                    progress(done, total);
                }
            }
            out.flush().map_err(io)?;
            progress(done, total);
            Ok(done)
        })
    }
}

/// How a database's journal is sealed, looked at before the register opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// No database, or no entries yet.
    Empty,
    /// Entries written before the journal was keyed (plain SHA-256 chain).
    Unkeyed,
    /// Entries sealed with a journal key.
    Keyed,
}

/// How the journal in the database at `path` is sealed (read-only; nothing is created).
pub fn sealing(path: &std::path::Path) -> Result<Sealing, StoreError> {
    if !path.is_file() {
        return Ok(Sealing::Empty);
    }
    let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let has_journal: bool =
        c.query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'journal_head'", [], |r| r.get(0))?;
    if !has_journal {
        return Ok(Sealing::Empty);
    }
    let keyed_schema: bool =
        c.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('journal_head') WHERE name = 'mac'", [], |r| r.get(0))?;
    let head_mac: Option<Option<String>> = if keyed_schema {
        c.query_row("SELECT mac FROM journal_head WHERE id = 1", [], |r| r.get(0)).optional()?
    } else {
        c.query_row("SELECT NULL FROM journal_head WHERE id = 1", [], |r| r.get(0)).optional()?
    };
    Ok(match head_mac {
        None => Sealing::Empty,
        Some(None) => Sealing::Unkeyed,
        Some(Some(_)) => Sealing::Keyed,
    })
}

impl Store {
    /// Seals a journal written before the journal was keyed, once, with this store's key: its
    /// plain chain is verified first, and only an intact one is sealed (every entry's seal
    /// recomputed in one transaction, the append-only triggers lifted for it alone). A broken
    /// one is left as it is and the error names where it breaks.
    pub fn seal_unkeyed_journal(&self) -> Result<i64, StoreError> {
        let key = self.key.clone().ok_or(StoreError::NoJournalKey)?;
        self.write(|tx| -> Result<i64, StoreError> {
            let c = tx.conn();
            let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM journal ORDER BY seq"))?;
            let entries = stmt.query_map([], row_to_entry)?.collect::<Result<Vec<_>, _>>()?;
            drop(stmt);
            let mut prev = kasa_core::journal::GENESIS.to_string();
            for (i, e) in entries.iter().enumerate() {
                if e.seq != i as i64 + 1 || e.prev_hash != prev || kasa_core::journal::unkeyed_hash(e) != e.hash {
                    return Err(StoreError::Invalid(format!(
                        "the journal from before it was keyed is broken at entry {}: it was left unsealed; keep the database for inspection",
                        i + 1
                    )));
                }
                prev = e.hash.clone();
            }
            c.execute_batch("DROP TRIGGER journal_no_update;")?;
            let mut prev = kasa_core::journal::GENESIS.to_string();
            for e in &entries {
                let seal = key.entry_seal(&e.at, e.sale_id.as_deref(), &e.kind, &e.data, &prev);
                c.run("UPDATE journal SET prev_hash = ?2, hash = ?3 WHERE seq = ?1", params![e.seq, prev, seal])?;
                prev = seal;
            }
            c.execute_batch(
                "CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
                 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;",
            )?;
            let last = entries.last().map_or(0, |e| e.seq);
            let mac = key.mark_seal(MarkKind::Head, last, &prev);
            c.run("UPDATE journal_head SET seq = ?1, hash = ?2, mac = ?3 WHERE id = 1", params![last, prev, mac])?;
            Ok(last)
        })
    }
}
