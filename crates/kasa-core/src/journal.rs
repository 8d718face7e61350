//! The journal's hash chain.
//!
//! The journal is append-only; each entry carries the hash of the entry before it, so altering,
//! removing or reordering any entry breaks the chain at that point. The head (last sequence
//! number and hash) is stored separately, so cutting entries off the end is found too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ts_rs::TS;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a transition wants recorded; the store turns it into a chained [`JournalEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The sale this entry belongs to, if any.
    pub sale_id: Option<String>,
    /// A short machine-readable kind, e.g. `payment_approved`.
    pub kind: String,
    /// Details of the step.
    pub data: serde_json::Value,
}

/// One stored journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Position in the journal, from 1, without gaps.
    #[ts(type = "number")]
    pub seq: i64,
    /// When it was written, RFC 3339 UTC.
    pub at: String,
    /// The sale it belongs to.
    pub sale_id: Option<String>,
    /// Kind of step.
    pub kind: String,
    /// Details as JSON text, hashed exactly as stored.
    pub data: String,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// Builds the entry that follows `prev` (or the first entry when `prev` is `None`).
pub fn next_entry(prev: Option<(i64, &str)>, record: &JournalRecord, at: OffsetDateTime) -> JournalEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let at = format_time(at);
    let data = record.data.to_string();
    let hash = entry_hash(seq, &at, record.sale_id.as_deref(), &record.kind, &data, &prev_hash);
    JournalEntry { seq, at, sale_id: record.sale_id.clone(), kind: record.kind.clone(), data, prev_hash, hash }
}

/// RFC 3339 with milliseconds, UTC.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// The hash of an entry's fields, each length-prefixed so no two field lists collide.
pub fn entry_hash(seq: i64, at: &str, sale_id: Option<&str>, kind: &str, data: &str, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for field in [seq.as_str(), at, sale_id.unwrap_or(""), kind, data, prev_hash] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Where and why a journal fails verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ChainBreak {
    /// The first entry found wrong (or the missing position).
    #[ts(type = "number")]
    pub seq: i64,
    /// What is wrong there.
    pub reason: String,
}

/// The result of verifying a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Verification {
    /// Entries checked.
    #[ts(type = "number")]
    pub entries: i64,
    /// The first break, if the chain is not intact.
    pub first_break: Option<ChainBreak>,
}

impl Verification {
    /// Whether the journal is intact.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies entries in stored order against each other and against the recorded head.
pub fn verify<I: IntoIterator<Item = JournalEntry>>(entries: I, head: Option<(i64, &str)>) -> Verification {
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_string();
    let mut count = 0;
    let broken = |seq, reason: &str, count| Verification {
        entries: count,
        first_break: Some(ChainBreak { seq, reason: reason.to_string() }),
    };
    for e in entries {
        count += 1;
        if e.seq != expected_seq {
            let why = if e.seq > expected_seq { "entry missing before this one" } else { "entry out of order" };
            return broken(expected_seq.min(e.seq), why, count);
        }
        if e.prev_hash != prev_hash {
            return broken(e.seq, "does not follow the entry before it (removed or reordered)", count);
        }
        let h = entry_hash(e.seq, &e.at, e.sale_id.as_deref(), &e.kind, &e.data, &e.prev_hash);
        if h != e.hash {
            return broken(e.seq, "content altered: hash does not match", count);
        }
        prev_hash = e.hash;
        expected_seq += 1;
    }
    let last_seq = expected_seq - 1;
    match head {
        Some((head_seq, head_hash)) if head_seq != last_seq || head_hash != prev_hash => {
            broken(last_seq + 1, "entries missing at the end (journal head does not match)", count)
        }
        None if last_seq != 0 => broken(1, "journal head missing", count),
        _ => Verification { entries: count, first_break: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn chain(n: usize) -> Vec<JournalEntry> {
        let mut out: Vec<JournalEntry> = Vec::new();
        for i in 0..n {
            let rec = JournalRecord {
                sale_id: Some(format!("S{i}")),
                kind: "step".into(),
                data: serde_json::json!({ "i": i }),
            };
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            out.push(next_entry(prev, &rec, datetime!(2026-11-21 10:00 UTC)));
        }
        out
    }

    fn head(c: &[JournalEntry]) -> Option<(i64, &str)> {
        c.last().map(|e| (e.seq, e.hash.as_str()))
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let v = verify(c.clone(), head(&c));
        assert!(v.is_intact(), "{v:?}");
        assert_eq!(v.entries, 5);
        assert_eq!(c[0].at, "2026-11-21T10:00:00Z");
    }

    #[test]
    fn finds_altered_removed_reordered_and_truncated_entries() {
        let c = chain(5);
        let h = head(&c).map(|(s, h)| (s, h.to_string()));
        let h = h.as_ref().map(|(s, h)| (*s, h.as_str()));

        let mut altered = c.clone();
        altered[2].data = r#"{"i":99}"#.into();
        assert_eq!(verify(altered, h).first_break.unwrap().seq, 3);

        let mut removed = c.clone();
        removed.remove(1);
        let b = verify(removed, h).first_break.unwrap();
        assert_eq!((b.seq, b.reason.as_str()), (2, "entry missing before this one"));

        let mut reordered = c.clone();
        reordered.swap(1, 2);
        assert_eq!(verify(reordered, h).first_break.unwrap().seq, 2);

        // Renumbering after a removal is caught by the chain of hashes.
        let mut renumbered = c.clone();
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
        }
        assert!(!verify(renumbered, h).is_intact());

        let mut truncated = c.clone();
        truncated.pop();
        assert_eq!(verify(truncated, h).first_break.unwrap().seq, 5);
    }
}
