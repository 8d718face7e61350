use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::macros::datetime;

fn key() -> JournalKey {
    JournalKey::from_bytes(&[7u8; 32]).unwrap()
}

fn chain(key: &JournalKey, n: usize) -> Vec<JournalEntry> {
    let mut out: Vec<JournalEntry> = Vec::with_capacity(n);
    for i in 0..n {
        let rec = JournalRecord {
            sale_id: (i % 3 != 0).then(|| format!("S{}", i / 4)),
            kind: if i % 2 == 0 { "payment_approved".into() } else { "sale_opened".into() },
            data: serde_json::json!({ "i": i, "amount": i * 7 }),
        };
        let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
        out.push(next_entry(key, prev, &rec, datetime!(2026-11-21 10:00 UTC) + time::Duration::seconds(i as i64)));
    }
    out
}

fn head_of(key: &JournalKey, c: &[JournalEntry]) -> Option<Mark> {
    c.last().map(|e| Mark { seq: e.seq, hash: e.hash.clone(), mac: key.mark_seal(MarkKind::Head, e.seq, &e.hash) })
}

fn check(key: &JournalKey, c: &[JournalEntry], head: Option<&Mark>) -> Verification {
    verify(key, c.to_vec(), head, None, &c.to_vec())
}

#[test]
fn intact_chain_verifies() {
    let k = key();
    let c = chain(&k, 5);
    let v = check(&k, &c, head_of(&k, &c).as_ref());
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.entries, 5);
    assert_eq!(c[0].at, "2026-11-21T10:00:00Z");
    assert_eq!(c[0].prev_hash, GENESIS);
}

#[test]
fn a_checkpoint_verifies_only_what_follows_it() {
    let k = key();
    let c = chain(&k, 10);
    let head = head_of(&k, &c);
    let cp = Mark { seq: 6, hash: c[5].hash.clone(), mac: k.mark_seal(MarkKind::Checkpoint, 6, &c[5].hash) };
    let v = verify(&k, c[6..].to_vec(), head.as_ref(), Some(&cp), &c);
    assert!(v.is_intact(), "{v:?}");
    assert_eq!((v.entries, v.from), (4, 6));
}

#[test]
fn a_forged_head_is_found() {
    let k = key();
    let mut c = chain(&k, 10);
    c.truncate(8);
    // The head moved back to the new last entry, sealed without the key.
    let forged = Mark { seq: 8, hash: c[7].hash.clone(), mac: "00".repeat(32) };
    let b = check(&k, &c, Some(&forged)).first_break.unwrap();
    assert_eq!((b.seq, b.kind), (9, BreakKind::Truncated), "{}", b.reason);
    let b = check(&k, &c, None).first_break.unwrap();
    assert_eq!((b.seq, b.kind), (9, BreakKind::Truncated), "no head at all: {}", b.reason);
}

#[test]
fn a_chain_rebuilt_without_the_key_fails_at_its_first_entry() {
    let k = key();
    let c = chain(&k, 1000);
    // Someone with the file but not the key edits entry 500 and seals everything again with
    // a key of their own, head included.
    let mut forged_source = c.clone();
    forged_source[499].data = r#"{"i":499,"amount":0}"#.into();
    let theirs = JournalKey::from_bytes(&[9u8; 32]).unwrap();
    let mut rebuilt: Vec<JournalEntry> = Vec::new();
    for e in &forged_source {
        let rec = JournalRecord {
            sale_id: e.sale_id.clone(),
            kind: e.kind.clone(),
            data: serde_json::from_str(&e.data).unwrap(),
        };
        let prev = rebuilt.last().map(|e| (e.seq, e.hash.as_str()));
        let mut n = next_entry(&theirs, prev, &rec, datetime!(2026-11-21 10:00 UTC));
        n.at = e.at.clone();
        n.hash = theirs.entry_seal(&n.at, n.sale_id.as_deref(), &n.kind, &n.data, &n.prev_hash);
        rebuilt.push(n);
    }
    let their_head = head_of(&theirs, &rebuilt);
    let b = check(&k, &rebuilt, their_head.as_ref()).first_break.unwrap();
    assert_eq!((b.seq, b.kind), (1, BreakKind::Edited), "found at the first entry: {}", b.reason);
    // With the real head left in place, the same.
    let real_head = head_of(&k, &c);
    let b = check(&k, &rebuilt, real_head.as_ref()).first_break.unwrap();
    assert_eq!((b.seq, b.kind), (1, BreakKind::Edited));
}

/// The ways someone with write access to the file can tamper with one position.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Edit(usize),
    Delete { renumber: bool },
    Insert { copy: bool },
    Swap,
    TruncateEnd,
}

/// Applies a tamper at a random position; the position and kind verification must report.
fn tamper(rng: &mut StdRng, k: &JournalKey, c: &mut Vec<JournalEntry>, t: Tamper) -> (i64, BreakKind) {
    let n = c.len();
    match t {
        Tamper::Edit(field) => {
            let i = rng.random_range(0..n);
            let e = &mut c[i];
            match field {
                0 => e.at = "2026-11-21T09:59:59Z".into(),
                1 => e.sale_id = Some("S-other".into()),
                2 => e.kind = "refund_completed".into(),
                3 => e.data = e.data.replace("amount", "amaunt"),
                4 => e.prev_hash = "ab".repeat(32),
                _ => e.hash = "cd".repeat(32),
            }
            (i as i64 + 1, BreakKind::Edited)
        }
        Tamper::Delete { renumber } => {
            let i = rng.random_range(0..n - 1);
            c.remove(i);
            if renumber {
                for (j, e) in c.iter_mut().enumerate().skip(i) {
                    e.seq = j as i64 + 1;
                }
            }
            (i as i64 + 1, BreakKind::Deleted)
        }
        Tamper::Insert { copy } => {
            let i = rng.random_range(0..n);
            let mut forged = if copy {
                c[rng.random_range(0..n)].clone()
            } else {
                let mut f = c[i].clone();
                f.data = r#"{"forged":true}"#.into();
                f
            };
            forged.seq = i as i64 + 1;
            c.insert(i, forged);
            for (j, e) in c.iter_mut().enumerate().skip(i + 1) {
                e.seq = j as i64 + 1;
            }
            (i as i64 + 1, BreakKind::Inserted)
        }
        Tamper::Swap => {
            let i = rng.random_range(0..n - 1);
            let j = rng.random_range(i + 1..n);
            c.swap(i, j);
            c[i].seq = i as i64 + 1;
            c[j].seq = j as i64 + 1;
            (i as i64 + 1, BreakKind::Reordered)
        }
        Tamper::TruncateEnd => {
            let cut = rng.random_range(1..=3);
            c.truncate(n - cut);
            let _ = k;
            ((n - cut) as i64 + 1, BreakKind::Truncated)
        }
    }
}

/// Over a 10,000-entry journal, every kind of tampering at random positions is found, at the
/// right position, and named for what it is.
#[test]
fn tampering_anywhere_in_ten_thousand_entries_is_found_and_located() {
    let k = key();
    let original = chain(&k, 10_000);
    let head = head_of(&k, &original);
    assert!(check(&k, &original, head.as_ref()).is_intact());
    let kinds = [
        Tamper::Edit(0),
        Tamper::Edit(1),
        Tamper::Edit(2),
        Tamper::Edit(3),
        Tamper::Edit(4),
        Tamper::Edit(5),
        Tamper::Delete { renumber: false },
        Tamper::Delete { renumber: true },
        Tamper::Insert { copy: false },
        Tamper::Insert { copy: true },
        Tamper::Swap,
        Tamper::TruncateEnd,
    ];
    for seed in 0..12u64 {
        for t in kinds {
            let mut rng = StdRng::seed_from_u64(seed * 97 + 1);
            let mut c = original.clone();
            let (at, kind) = tamper(&mut rng, &k, &mut c, t);
            let v = check(&k, &c, head.as_ref());
            let b = v.first_break.unwrap_or_else(|| panic!("seed {seed}, {t:?}: not found"));
            assert_eq!((b.seq, b.kind), (at, kind), "seed {seed}, {t:?}: {}", b.reason);
        }
    }
}
