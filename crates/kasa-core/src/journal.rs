//! The journal's keyed chain.
//!
//! The journal is append-only. Each entry is sealed with an HMAC-SHA-256 over its content and
//! the seal of the entry before it, under a key of this register's that lives in the OS keyring
//! and never in the database. Someone who can write the database file can change, remove, add or
//! move rows, but cannot compute the seals that would hide it; and a chain rebuilt from scratch
//! without the key fails at its first entry.
//!
//! The seal covers everything but the position (`seq`): an entry moved elsewhere keeps a valid
//! seal of its own, so verification can say *moved* rather than only *broken*. Positions are
//! held in place by the chain itself (each entry names the seal of the one before it) and by
//! the head, the last position and seal, sealed in turn, so entries cut off the end are found.
//!
//! Verification streams entries in stored order and stops at the first broken link, saying
//! where and what happened there: an entry edited, deleted, inserted, or reordered, or entries
//! missing at the end. A checkpoint (a sealed position known good) lets start-up verify only
//! what was written since.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ts_rs::TS;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key used where secrets are not real: demo mode, the simulation and tests. It is public,
/// so a journal sealed with it proves nothing; a register in production creates its own.
pub const PUBLIC_DEMO_KEY: [u8; 32] = *b"kasa-demo-journal-key-not-secret";

/// A register's journal key, ready to seal (the HMAC's keyed state is computed once).
#[derive(Clone)]
pub struct JournalKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for JournalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JournalKey(..)")
    }
}

/// A journal key that is not 32 bytes of hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the journal key is not 64 hexadecimal digits (32 bytes); it is kept in the keyring as `journal.key`")]
pub struct BadKey;

impl JournalKey {
    /// From the raw key bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<JournalKey, BadKey> {
        if bytes.len() < 32 {
            return Err(BadKey);
        }
        Ok(JournalKey { mac: Hmac::<Sha256>::new_from_slice(bytes).map_err(|_| BadKey)? })
    }

    /// From the key's hex text, as kept in the keyring.
    pub fn from_hex(text: &str) -> Result<JournalKey, BadKey> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadKey)?;
        if bytes.len() != 32 {
            return Err(BadKey);
        }
        JournalKey::from_bytes(&bytes)
    }

    /// The public key of demo mode and tests ([`PUBLIC_DEMO_KEY`]).
    pub fn public_demo() -> JournalKey {
        JournalKey::from_bytes(&PUBLIC_DEMO_KEY).unwrap_or_else(|_| unreachable!("the demo key is 32 bytes"))
    }

    /// The seal of a list of fields, each length-prefixed so no two lists collide, after a
    /// domain label so an entry's seal can never pass for a head's.
    fn seal(&self, domain: &str, fields: &[&str]) -> String {
        let mut m = self.mac.clone();
        for field in std::iter::once(domain).chain(fields.iter().copied()) {
            m.update(&(field.len() as u64).to_be_bytes());
            m.update(field.as_bytes());
        }
        hex::encode(m.finalize().into_bytes())
    }

    /// The seal of an entry's content and its predecessor's seal.
    pub fn entry_seal(&self, at: &str, sale_id: Option<&str>, kind: &str, data: &str, prev_hash: &str) -> String {
        self.seal("entry", &[at, sale_id.unwrap_or("\u{0}"), kind, data, prev_hash])
    }

    /// Whether an entry's stored seal is the one this key gives its content.
    pub fn seals(&self, e: &JournalEntry) -> bool {
        let expected = self.entry_seal(&e.at, e.sale_id.as_deref(), &e.kind, &e.data, &e.prev_hash);
        constant_time_eq(expected.as_bytes(), e.hash.as_bytes())
    }

    /// The seal of a position: the journal's head, or a checkpoint.
    pub fn mark_seal(&self, what: MarkKind, seq: i64, hash: &str) -> String {
        let domain = match what {
            MarkKind::Head => "head",
            MarkKind::Checkpoint => "checkpoint",
        };
        self.seal(domain, &[&seq.to_string(), hash])
    }

    /// Whether a stored position was sealed with this key.
    pub fn seals_mark(&self, what: MarkKind, mark: &Mark) -> bool {
        constant_time_eq(self.mark_seal(what, mark.seq, &mark.hash).as_bytes(), mark.mac.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which sealed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// The last entry written.
    Head,
    /// The last entry found good by a verification.
    Checkpoint,
}

/// A sealed position in the journal: its head or a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Position.
    pub seq: i64,
    /// The seal of the entry there.
    pub hash: String,
    /// The position's own seal.
    pub mac: String,
}

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
    /// Details as JSON text, sealed exactly as stored.
    pub data: String,
    /// Seal of the previous entry.
    pub prev_hash: String,
    /// Seal of this entry.
    pub hash: String,
}

/// Builds the entry that follows `prev` (or the first entry when `prev` is `None`), and the
/// new head's seal.
pub fn next_entry(
    key: &JournalKey,
    prev: Option<(i64, &str)>,
    record: &JournalRecord,
    at: OffsetDateTime,
) -> JournalEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let at = format_time(at);
    let data = record.data.to_string();
    let hash = key.entry_seal(&at, record.sale_id.as_deref(), &record.kind, &data, &prev_hash);
    JournalEntry { seq, at, sale_id: record.sale_id.clone(), kind: record.kind.clone(), data, prev_hash, hash }
}

/// RFC 3339 with milliseconds, UTC.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

/// The seal of an entry written before the journal was keyed: SHA-256 over the length-prefixed
/// fields, its position included. Read only to upgrade such a journal (see the store's
/// `seal_unkeyed_journal`); nothing is written with it.
pub fn unkeyed_hash(e: &JournalEntry) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    let seq = e.seq.to_string();
    for field in [seq.as_str(), &e.at, e.sale_id.as_deref().unwrap_or(""), &e.kind, &e.data, &e.prev_hash] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// What is wrong at a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum BreakKind {
    /// The entry's content or seal was changed (or the chain was rebuilt without the key).
    Edited,
    /// One or more entries were removed here.
    Deleted,
    /// An entry Kasa did not write stands here (or a copy of one of its entries).
    Inserted,
    /// An entry that belongs elsewhere stands here.
    Reordered,
    /// Entries were removed from the end, or the head was changed.
    Truncated,
}

/// Where and why a journal fails verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ChainBreak {
    /// The first position found wrong.
    #[ts(type = "number")]
    pub seq: i64,
    /// What happened there.
    pub kind: BreakKind,
    /// The same, said for a manager.
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
    /// Where checking began: after this checkpoint's position (0 for the whole journal).
    #[ts(type = "number")]
    pub from: i64,
    /// The first break, if the chain is not intact.
    pub first_break: Option<ChainBreak>,
}

impl Verification {
    /// Whether the journal is intact.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Lookups verification makes once it has found a break, to tell what happened there. The
/// store answers them by scanning the journal (a break is rare; keeping indexes for it is not
/// worth their cost on every entry written).
pub trait ChainIndex {
    /// The position of the entry whose `prev_hash` is `hash`: the one that really follows the
    /// entry sealed `hash`.
    fn follower_of(&self, hash: &str) -> Option<i64>;
    /// How many entries carry the seal `hash`.
    fn count_sealed(&self, hash: &str) -> i64;
}

/// A [`ChainIndex`] over entries in memory.
impl ChainIndex for Vec<JournalEntry> {
    fn follower_of(&self, hash: &str) -> Option<i64> {
        self.iter().find(|e| e.prev_hash == hash).map(|e| e.seq)
    }

    fn count_sealed(&self, hash: &str) -> i64 {
        self.iter().filter(|e| e.hash == hash).count() as i64
    }
}

/// Verifies entries in stored order, from `from` (a checkpoint already checked) or from the
/// first entry, against each other and against the sealed `head`.
pub fn verify<I: IntoIterator<Item = JournalEntry>>(
    key: &JournalKey,
    entries: I,
    head: Option<&Mark>,
    from: Option<&Mark>,
    index: &dyn ChainIndex,
) -> Verification {
    let start = from.map_or(0, |m| m.seq);
    let mut expected_seq = start + 1;
    let mut prev_hash = from.map_or_else(|| GENESIS.to_string(), |m| m.hash.clone());
    let mut count = 0;
    let broken = |seq, kind, reason: String, count| Verification {
        entries: count,
        from: start,
        first_break: Some(ChainBreak { seq, kind, reason }),
    };
    // The head is checked after the chain, so a break inside it is named where it is; a head
    // not sealed with the key only says where the chain ends when nothing else is wrong.
    let sealed_head = head.filter(|h| key.seals_mark(MarkKind::Head, h));
    let head_seq = sealed_head.map(|h| h.seq);
    let mut entries = entries.into_iter().peekable();
    while let Some(e) = entries.next() {
        count += 1;
        let sealed = key.seals(&e);
        if sealed && e.prev_hash == prev_hash && e.seq == expected_seq {
            prev_hash = e.hash;
            expected_seq += 1;
            continue;
        }
        let at = expected_seq;
        let (kind, reason) = if !sealed {
            let next_follows_good = entries.peek().is_some_and(|n| n.prev_hash == prev_hash);
            if head_seq.is_some_and(|h| e.seq > h) {
                (BreakKind::Inserted, format!("entry {} stands after the journal's sealed end: it was added", e.seq))
            } else if next_follows_good {
                (BreakKind::Inserted, format!("entry {} was not written by this register: it was inserted", e.seq))
            } else {
                (
                    BreakKind::Edited,
                    format!(
                        "entry {} does not match its seal: its content was changed (or the chain was rebuilt without this register's key)",
                        e.seq
                    ),
                )
            }
        } else if index.count_sealed(&e.hash) > 1 {
            (BreakKind::Inserted, format!("entry {} is a copy of another entry: it was inserted", e.seq))
        } else if e.prev_hash == prev_hash {
            (BreakKind::Edited, format!("entry {} has the position {} changed to {}", at, at, e.seq))
        } else {
            match index.follower_of(&prev_hash) {
                Some(p) if p != e.seq => (
                    BreakKind::Reordered,
                    format!("entry {} is out of place: the entry that follows {} is stored at {}", e.seq, at - 1, p),
                ),
                _ if at == 1 => (BreakKind::Deleted, "entries were removed from the start of the journal".into()),
                _ => (BreakKind::Deleted, format!("entries were removed after entry {}", at - 1)),
            }
        };
        return broken(at, kind, reason, count);
    }
    let last_seq = expected_seq - 1;
    if head.is_some() && sealed_head.is_none() {
        return broken(
            last_seq + 1,
            BreakKind::Truncated,
            format!(
                "the journal's head was not sealed by this register's key: entries after {last_seq} may have been cut off"
            ),
            count,
        );
    }
    match head {
        Some(h) if h.seq != last_seq || h.hash != prev_hash => broken(
            last_seq + 1,
            BreakKind::Truncated,
            format!(
                "entries were removed from the end: the journal's head is at {}, its last entry at {}",
                h.seq, last_seq
            ),
            count,
        ),
        None if last_seq != 0 => broken(
            last_seq + 1,
            BreakKind::Truncated,
            format!("the journal's head is missing: entries after {last_seq} may have been cut off"),
            count,
        ),
        _ => Verification { entries: count, from: start, first_break: None },
    }
}

#[cfg(test)]
mod tests;
