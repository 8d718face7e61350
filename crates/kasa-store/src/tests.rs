//! Store tests: atomic steps, migrations, lane order and the journal chain on disk.

use kasa_core::op::{Op, Queued};
use kasa_core::{Basket, Currency, Money, Sale, SaleId, SaleState, ShopItem};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

fn key() -> kasa_core::journal::JournalKey {
    kasa_core::journal::JournalKey::public_demo()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("kasa.db"), key()).unwrap();
    (dir, store)
}

fn sale(id: &str) -> Sale {
    let mut b = Basket::new(Currency::TRY);
    b.add_item(
        ShopItem {
            sku: "1".into(),
            name: "Çay".into(),
            unit_price: Money::new(1500, Currency::TRY),
            vat_rate_bp: 1000,
        },
        1,
    )
    .unwrap();
    Sale::new(SaleId(id.into()), b, NOW)
}

fn q(key: &str, op: Op) -> Queued {
    Queued { key: key.into(), op }
}

fn lock_op() -> Op {
    Op::TokenxLock { order_id: "O1".into() }
}

fn lock_on(order: &str) -> Op {
    Op::TokenxLock { order_id: order.into() }
}

#[test]
fn a_step_its_outbox_and_journal_commit_together() {
    let (_d, store) = store();
    let s = sale("S1");
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.put_sale(&s)?;
            tx.enqueue(Some("S1"), &q("k1", lock_op()), NOW)?;
            tx.append_journal(&s.opened_record(), NOW)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.sale("S1").unwrap().unwrap(), s);
    assert_eq!(store.outbox_of_sale("S1").unwrap().len(), 1);
    assert_eq!(store.journal_stats().unwrap().entries, 1);
}

#[test]
fn a_failing_step_leaves_nothing_behind() {
    let (_d, store) = store();
    store.write(|tx| tx.enqueue(Some("S0"), &q("dup", lock_op()), NOW)).unwrap();
    let s = sale("S1");
    // The second enqueue violates the unique idempotency key after the sale and journal rows
    // were written in the same transaction: all of it must roll back.
    let err = store.write(|tx| -> Result<(), StoreError> {
        tx.put_sale(&s)?;
        tx.append_journal(&s.opened_record(), NOW)?;
        tx.enqueue(Some("S1"), &q("dup", lock_op()), NOW)?;
        Ok(())
    });
    assert!(matches!(err, Err(StoreError::Sqlite(_))));
    assert_eq!(store.sale("S1").unwrap(), None);
    assert_eq!(store.journal_stats().unwrap().entries, 0);
    assert!(store.outbox_of_sale("S1").unwrap().is_empty());

    // An error returned by the caller rolls back as well.
    let err: Result<(), StoreError> = store.write(|tx| {
        tx.put_sale(&s)?;
        Err(StoreError::Invalid("stop".into()))
    });
    assert!(err.is_err());
    assert_eq!(store.sale("S1").unwrap(), None);
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    {
        let store = Store::open(&path, key()).unwrap();
        store.write(|tx| tx.put_sale(&sale("S1"))).unwrap();
    }
    let store = Store::open(&path, key()).unwrap();
    assert!(store.sale("S1").unwrap().is_some());
    let (mode, sync): (String, i64) = store
        .read(|c| {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
            ))
        })
        .unwrap();
    assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL with synchronous=FULL");
    store.integrity_check().unwrap();
}

#[test]
fn messages_waiting_from_an_older_kasa_move_to_the_device_lanes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    // As an older Kasa left it: the schema of version 2, lanes without the prefix.
    let c = rusqlite::Connection::open(&path).unwrap();
    for (_, sql) in &MIGRATIONS[..2] {
        c.execute_batch(sql).unwrap();
    }
    c.pragma_update(None, "user_version", 2).unwrap();
    let old_sale = sale("S0");
    c.execute(
        "INSERT INTO sales (sale_id, order_id, state, total_minor, currency, created_at, updated_at, body)
         VALUES ('S0', NULL, 'Open', 0, 'TRY', '2026-11-21T12:00:00Z', '2026-11-21T12:00:00Z', ?1)",
        [serde_json::to_string(&old_sale).unwrap()],
    )
    .unwrap();
    for (i, (lane, op)) in [
        ("printer", Op::PrintSlip { copy: false, refund: None }),
        ("terminal", Op::CardSale { amount: Money::new(100, Currency::TRY) }),
    ]
    .into_iter()
    .enumerate()
    {
        c.execute(
            "INSERT INTO outbox (lane, sale_id, kind, idempotency_key, op, state, next_attempt_ms, created_at)
             VALUES (?1, 'S1', ?2, ?3, ?4, 'pending', 0, '2026-11-21T12:00:00Z')",
            rusqlite::params![lane, op.kind().as_str(), format!("k{i}"), serde_json::to_string(&op).unwrap()],
        )
        .unwrap();
    }
    let old: Vec<String> = c
        .prepare("SELECT lane FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(old, ["printer", "terminal"]);
    drop(c);
    let store = Store::open(&path, key()).unwrap();
    let lanes: Vec<String> = store.outbox_of_sale("S1").unwrap().into_iter().map(|r| r.lane).collect();
    assert_eq!(lanes, ["device:printer", "device:terminal"]);
    assert_eq!(lanes[1], Op::CardSale { amount: Money::new(1, Currency::TRY) }.lane());
    // A sale stored before search existed is found by its words once the register opens it.
    let words = kasa_core::search::text_of(&old_sale);
    let word = words.split_whitespace().nth(1).unwrap().to_string();
    let q = kasa_core::search::SaleQuery { text: Some(word), ..Default::default() };
    assert_eq!(store.search_sales(&q).unwrap().sales.len(), 1, "{words}");
    let plan: String = store
        .read(|c| {
            Ok(c.query_row("EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE sale_id = 'S1' ORDER BY id", [], |r| {
                r.get(3)
            })?)
        })
        .unwrap();
    assert!(plan.contains("outbox_sale"), "a sale's messages are found by index, not by scanning: {plan}");
}

#[test]
fn a_database_from_a_newer_kasa_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    drop(Store::open(&path, key()).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = Store::open(&path, key()).unwrap_err();
    assert!(err.to_string().contains("newer than this Kasa"), "{err}");
}

#[test]
fn lanes_deliver_in_order_and_parked_messages_hold_their_lane() {
    let (_d, store) = store();
    let ids = store
        .write(|tx| -> Result<Vec<i64>, StoreError> {
            Ok(vec![
                tx.enqueue(Some("A"), &q("a1", lock_on("OA")), NOW)?,
                tx.enqueue(Some("A"), &q("a2", Op::TokenxRelease { order_id: "OA".into() }), NOW)?,
                tx.enqueue(Some("B"), &q("b1", lock_on("OB")), NOW)?,
                tx.enqueue(Some("A"), &q("p1", Op::PrintSlip { copy: false, refund: None }), NOW)?,
            ])
        })
        .unwrap();
    let due = store.outbox_due(NOW, &[], 10).unwrap();
    let keys: Vec<&str> = due.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a1", "b1", "p1"], "one head per lane");

    // A busy lane is skipped.
    let due = store.outbox_due(NOW, &["order:OA".to_string()], 10).unwrap();
    assert_eq!(due.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["b1", "p1"]);

    // A retry later is not due now.
    store.write(|tx| tx.outbox_retry_at(ids[2], "503", NOW + time::Duration::seconds(5), true)).unwrap();
    assert!(store.outbox_due(NOW, &[], 10).unwrap().iter().all(|r| r.key != "b1"));
    assert_eq!(store.outbox_next_due_ms().unwrap(), Some((NOW.unix_timestamp_nanos() / 1_000_000) as i64));

    // Parking the head closes the lane; unparking opens it again.
    store.write(|tx| tx.outbox_park(ids[0], "401 unauthorized", NOW)).unwrap();
    assert!(store.outbox_due(NOW, &[], 10).unwrap().iter().all(|r| r.lane != "order:OA"));
    assert_eq!(store.queue_counts().unwrap(), QueueCounts { pending: 3, parked: 1, attention: 0 });
    assert!(store.write(|tx| tx.outbox_unpark(ids[0], NOW)).unwrap());
    store.write(|tx| tx.outbox_done(ids[0], NOW)).unwrap();
    let due = store.outbox_due(NOW, &[], 10).unwrap();
    assert_eq!(due[0].key, "a2");
    assert_eq!(due[0].attempts, 0);
    let b1 = store.write(|tx| tx.outbox_row(ids[2])).unwrap();
    assert_eq!((b1.attempts, b1.maybe_applied, b1.last_error.as_deref()), (1, true, Some("503")));
}

#[test]
fn a_parked_message_holds_back_only_its_own_sale() {
    let (_d, store) = store();
    let print = || Op::PrintSlip { copy: false, refund: None };
    let ids = store
        .write(|tx| -> Result<Vec<i64>, StoreError> {
            Ok(vec![
                tx.enqueue(Some("A"), &q("a1", print()), NOW)?,
                tx.enqueue(Some("A"), &q("a2", print()), NOW)?,
                tx.enqueue(Some("B"), &q("b1", print()), NOW)?,
            ])
        })
        .unwrap();
    let keys = |store: &Store| store.outbox_due(NOW, &[], 10).unwrap().into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(keys(&store), ["a1"], "slips print in order while the head is pending");
    // A slip that can't print for good is parked: sale A's next slip waits for the manager,
    // sale B's slip does not.
    store.write(|tx| tx.outbox_park(ids[0], "the slip could not be rendered", NOW)).unwrap();
    assert_eq!(keys(&store), ["b1"]);
    store.write(|tx| tx.outbox_discard(ids[0], NOW)).unwrap();
    assert_eq!(keys(&store), ["a2"]);

    // In a device lane, another sale's message that backs off after a failure holds nobody.
    store.write(|tx| tx.outbox_retry_at(ids[1], "paper out", NOW + time::Duration::seconds(30), false)).unwrap();
    assert_eq!(keys(&store), ["b1"]);
    // Unless it may already be at the device: then the device may still be busy with it.
    store.write(|tx| tx.outbox_in_doubt(ids[1])).unwrap();
    assert!(keys(&store).is_empty(), "nothing goes to a device that may be busy with another sale");
    store.write(|tx| tx.outbox_done(ids[1], NOW)).unwrap();
    assert_eq!(keys(&store), ["b1"]);
    // In a pump order's lane it does: a release goes before a later attempt's lock.
    let release =
        store.write(|tx| tx.enqueue(Some("A"), &q("r1", Op::TokenxRelease { order_id: "O9".into() }), NOW)).unwrap();
    store.write(|tx| tx.enqueue(Some("C"), &q("c1", lock_on("O9")), NOW)).unwrap();
    store.write(|tx| tx.outbox_retry_at(release, "503", NOW + time::Duration::seconds(30), true)).unwrap();
    assert_eq!(keys(&store), ["b1"], "the lock waits for the release that backs off");
}

#[test]
fn receipts_are_signed_in_order_and_a_parked_one_holds_back_every_later_receipt() {
    let (_d, store) = store();
    let sign = |refund: Option<&str>| Op::FiscalSign {
        doc: match refund {
            Some(r) => kasa_core::FiscalDoc::Refund { refund_id: r.into() },
            None => kasa_core::FiscalDoc::Sale,
        },
    };
    let closing =
        Op::FiscalSign { doc: kasa_core::FiscalDoc::DailyClosing { reference: "Z-1".into(), at: NOW, z_number: None } };
    let ids = store
        .write(|tx| -> Result<Vec<i64>, StoreError> {
            Ok(vec![
                tx.enqueue(Some("A"), &q("fa", sign(None)), NOW)?,
                tx.enqueue(Some("B"), &q("fb", sign(None)), NOW)?,
                tx.enqueue(None, &q("z", closing), NOW)?,
            ])
        })
        .unwrap();
    let keys = |store: &Store| store.outbox_due(NOW, &[], 10).unwrap().into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(keys(&store), ["fa"], "one lane: the oldest receipt first");
    // Backing off, it still holds the lane (not a device lane).
    store
        .write(|tx| tx.outbox_retry_at(ids[0], "signing unit down", NOW + time::Duration::seconds(30), false))
        .unwrap();
    assert!(keys(&store).is_empty(), "no later receipt passes one that waits");
    // Parked, it holds back every later receipt, of any sale, and the closing.
    store.write(|tx| tx.outbox_park(ids[0], "refused", NOW)).unwrap();
    assert!(keys(&store).is_empty(), "no later receipt passes a parked one");
    store.write(|tx| tx.outbox_unpark(ids[0], NOW)).unwrap();
    assert_eq!(keys(&store), ["fa"]);
    store.write(|tx| tx.outbox_done(ids[0], NOW)).unwrap();
    assert_eq!(keys(&store), ["fb"]);
    store.write(|tx| tx.outbox_done(ids[1], NOW)).unwrap();
    assert_eq!(keys(&store), ["z"]);
}

#[test]
fn a_read_of_several_statements_sees_one_snapshot_while_the_writer_commits() {
    let (_d, store) = store();
    let count =
        |c: &rusqlite::Connection| -> i64 { c.query_row("SELECT count(*) FROM settings", [], |r| r.get(0)).unwrap() };
    let (before, after) = store
        .read(|c| {
            let before = count(c);
            store.write(|tx| tx.set_setting("committed_meanwhile", "1")).unwrap();
            Ok((before, count(c)))
        })
        .unwrap();
    assert_eq!(before, after, "the second statement saw a commit the first did not");
    assert_eq!(store.read(|c| Ok(count(c))).unwrap(), before + 1, "the next read sees it");
}

#[test]
fn a_reader_beside_the_writer_reads_and_never_writes_or_creates() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Store::open_read_only(&dir.path().join("none.db")).unwrap_err();
    assert!(matches!(missing, StoreError::Missing(_)), "{missing}");
    assert!(!dir.path().join("none.db").exists(), "nothing is created");

    let path = dir.path().join("kasa.db");
    let writer = Store::open(&path, key()).unwrap();
    writer.write(|tx| tx.append_journal(&sale("S1").opened_record(), NOW)).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.journal_for_sale("S1").unwrap().len(), 1);
    // The writer goes on while the reader is open; the reader sees its commits.
    writer.write(|tx| tx.append_journal(&sale("S2").opened_record(), NOW)).unwrap();
    assert_eq!(reader.journal_for_sale("S2").unwrap().len(), 1);
    let refused = reader.write(|tx| tx.append_journal(&sale("S3").opened_record(), NOW)).unwrap_err();
    assert!(matches!(refused, StoreError::ReadOnly), "{refused}");
    let raw = reader.read(|c| Ok(c.execute("DELETE FROM settings", [])?)).unwrap_err();
    assert!(raw.to_string().contains("readonly"), "SQLite itself refuses: {raw}");
}

#[test]
fn journal_on_disk_is_append_only_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let store = Store::open(&path, key()).unwrap();
    for i in 0..5 {
        store.write(|tx| tx.append_journal(&sale(&format!("S{i}")).opened_record(), NOW)).unwrap();
    }
    assert!(store.verify_journal().unwrap().is_intact());
    assert_eq!(store.journal_for_sale("S3").unwrap().len(), 1);
    assert_eq!(store.journal_page(2, 2).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);

    // The triggers refuse edits through Kasa's own connection.
    let err = store.write(|tx| -> Result<usize, StoreError> {
        Ok(tx.conn().execute("UPDATE journal SET data = '{}' WHERE seq = 2", [])?)
    });
    assert!(err.unwrap_err().to_string().contains("append-only"));
    drop(store);

    // Someone with the file drops the triggers and edits an entry: verification finds it.
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("DROP TRIGGER journal_no_update; UPDATE journal SET data = '{\"forged\":1}' WHERE seq = 2;")
        .unwrap();
    drop(c);
    let store = Store::open(&path, key()).unwrap();
    let b = store.verify_journal().unwrap().first_break.unwrap();
    assert_eq!((b.seq, b.kind), (2, kasa_core::journal::BreakKind::Edited), "{}", b.reason);
}

#[test]
fn rows_moved_or_removed_in_the_file_are_found_where_they_happened() {
    use kasa_core::journal::BreakKind;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let fill = || {
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&path, key()).unwrap();
        for i in 0..50 {
            store.write(|tx| tx.append_journal(&sale(&format!("S{i}")).opened_record(), NOW)).unwrap();
        }
    };
    let tamper = |sql: &str| -> kasa_core::journal::ChainBreak {
        fill();
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("DROP TRIGGER journal_no_update; DROP TRIGGER journal_no_delete;").unwrap();
        c.execute_batch(sql).unwrap();
        drop(c);
        Store::open(&path, key()).unwrap().verify_journal().unwrap().first_break.expect(sql)
    };
    let b = tamper("DELETE FROM journal WHERE seq = 20;");
    assert_eq!((b.seq, b.kind), (20, BreakKind::Deleted), "{}", b.reason);
    let b = tamper("DELETE FROM journal WHERE seq = 20; UPDATE journal SET seq = seq - 1 WHERE seq > 20;");
    assert_eq!((b.seq, b.kind), (20, BreakKind::Deleted), "{}", b.reason);
    let b = tamper(
        "UPDATE journal SET seq = -1 WHERE seq = 30; UPDATE journal SET seq = 30 WHERE seq = 31;
         UPDATE journal SET seq = 31 WHERE seq = -1;",
    );
    assert_eq!((b.seq, b.kind), (30, BreakKind::Reordered), "{}", b.reason);
    let b = tamper(
        "DELETE FROM journal WHERE seq = 50; UPDATE journal_head SET seq = 49, hash = (SELECT hash FROM journal WHERE seq = 49);",
    );
    assert_eq!((b.seq, b.kind), (50, BreakKind::Truncated), "{}", b.reason);
    let b =
        tamper("INSERT INTO journal SELECT 51, at, sale_id, kind, data, prev_hash, hash FROM journal WHERE seq = 7;");
    assert_eq!((b.seq, b.kind), (51, BreakKind::Inserted), "{}", b.reason);
}

#[test]
fn the_database_is_readable_by_its_owner_only_and_a_checkpoint_shortens_verification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let store = Store::open(&path, key()).unwrap();
    for i in 0..10 {
        store.write(|tx| tx.append_journal(&sale(&format!("S{i}")).opened_record(), NOW)).unwrap();
    }
    #[cfg(unix)]
    for file in ["kasa.db", "kasa.db-wal"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let full = store.verify_journal_from(true).unwrap();
    assert_eq!((full.entries, full.from), (10, 0), "no checkpoint yet: everything is verified");
    let head = store.journal_page(9, 1).unwrap().remove(0);
    store.write(|tx| tx.set_journal_checkpoint(head.seq, &head.hash, NOW)).unwrap();
    store.write(|tx| tx.append_journal(&sale("S10").opened_record(), NOW)).unwrap();
    let fast = store.verify_journal_from(true).unwrap();
    assert!(fast.is_intact(), "{fast:?}");
    assert_eq!((fast.entries, fast.from), (1, 10));
    // A checkpoint sealed with another key is not trusted: verification starts from the top.
    let other = kasa_core::journal::JournalKey::from_bytes(&[1u8; 32]).unwrap();
    let mac = other.mark_seal(kasa_core::journal::MarkKind::Checkpoint, 11, "x");
    store
        .write(|tx| {
            tx.conn()
                .execute("UPDATE journal_checkpoint SET seq = 11, hash = 'x', mac = ?1", [mac])
                .map_err(StoreError::from)
        })
        .unwrap();
    assert_eq!(store.verify_journal_from(true).unwrap().from, 0);
}

#[test]
fn locks_are_tracked_until_the_cloud_confirms_them_gone() {
    let (_d, store) = store();
    store.write(|tx| tx.lock_requested("O1", "S1", "k1", NOW)).unwrap();
    assert_eq!(store.lock_of("O1").unwrap().unwrap().lock_id, None);
    store.write(|tx| tx.lock_held("O1", "L1", NOW, NOW)).unwrap();
    let row = store.lock_of("O1").unwrap().unwrap();
    assert_eq!((row.lock_id.as_deref(), row.expires_at), (Some("L1"), Some(NOW)));
    store.write(|tx| tx.lock_gone("O1")).unwrap();
    assert!(store.locks().unwrap().is_empty());
}

#[test]
fn sales_are_found_by_state_and_order() {
    let (_d, store) = store();
    let mut a = sale("A");
    a.state = SaleState::Paid;
    let b = sale("B");
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.put_sale(&a)?;
            tx.put_sale(&b)
        })
        .unwrap();
    let paid = store.sales_in(&[SaleState::Paid, SaleState::Reported]).unwrap();
    assert_eq!(paid.iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>(), ["A"]);
    assert_eq!(store.count_sales(SaleState::Open).unwrap(), 1);
    assert_eq!(store.recent_sales(10).unwrap().len(), 2);
}

fn summary(order_id: &str, minute: u8) -> kasa_core::OrderSummary {
    kasa_core::OrderSummary {
        order_id: order_id.into(),
        plate_number: "34 ABC 123".into(),
        pump_no: 3,
        product_name: "Motorin".into(),
        amount: Money::new(150_000, Currency::TRY),
        status: kasa_core::OrderStatus::Open,
        created_at: NOW + time::Duration::minutes(minute.into()),
    }
}

#[test]
fn the_cached_order_list_is_the_last_listing_with_its_time() {
    let (_d, store) = store();
    assert!(store.orders(10).unwrap().is_empty());
    assert_eq!(store.orders_listed_at().unwrap(), None, "never listed");

    store.write(|tx| tx.upsert_order_summaries(&[summary("A", 1), summary("B", 2)], NOW)).unwrap();
    let ids = |s: &Store| s.orders(10).unwrap().into_iter().map(|o| o.order_id).collect::<Vec<_>>();
    assert_eq!(ids(&store), ["B", "A"], "newest first");

    // The cloud stops listing A (finished elsewhere): it leaves the list, not the table.
    let later = NOW + time::Duration::seconds(5);
    store.write(|tx| tx.upsert_order_summaries(&[summary("B", 2), summary("C", 3)], later)).unwrap();
    assert_eq!(ids(&store), ["C", "B"]);
    assert_eq!(store.orders_listed_at().unwrap(), Some(later));
    let kept: i64 = store.read(|c| Ok(c.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?)).unwrap();
    assert_eq!(kept, 3);

    // A listing that changed only in part writes only that part, and is still the whole list.
    let mut c = summary("C", 3);
    c.pump_no = 9;
    let list = [summary("B", 2), c.clone(), summary("D", 4)];
    let even_later = later + time::Duration::seconds(5);
    store.write(|tx| tx.record_listing(&[c, summary("D", 4)], &list, even_later)).unwrap();
    assert_eq!(ids(&store), ["D", "C", "B"]);
    assert_eq!(store.orders(10).unwrap()[1].pump_no, 9);
    let stamp = |id: &str| -> String {
        store
            .read(|conn| Ok(conn.query_row("SELECT seen_at FROM orders WHERE order_id = ?1", [id], |r| r.get(0))?))
            .unwrap()
    };
    assert_ne!(stamp("B"), stamp("D"), "the unchanged row was not written again");
}

#[test]
fn a_cached_list_written_before_listings_were_kept_as_ids_still_reads() {
    let (_d, store) = store();
    store.write(|tx| tx.upsert_order_summaries(&[summary("A", 1), summary("B", 2)], NOW)).unwrap();
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.conn().execute("DELETE FROM settings WHERE key = 'orders_listed'", [])?;
            Ok(())
        })
        .unwrap();
    let ids = store.orders(10).unwrap().into_iter().map(|o| o.order_id).collect::<Vec<_>>();
    assert_eq!(ids, ["B", "A"]);
}

/// The power-cut model the simulation relies on, checked against SQLite itself: the WAL cut at
/// a recorded point keeps exactly the commits up to that point, and the journal still verifies.
#[cfg(feature = "faults")]
#[test]
fn a_wal_cut_at_a_recorded_commit_keeps_exactly_the_commits_before_it() {
    use std::sync::Arc;

    use crate::faults::{Durability, Hooks, WriteFault, cut_wal};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let durability = Arc::new(Durability::default());
    let hooks = || Hooks { fault: None, durability: Some(durability.clone()) };
    let journal = |tx: &Tx<'_>, n: u32| {
        let rec = kasa_core::journal::JournalRecord {
            sale_id: None,
            kind: "test".into(),
            data: serde_json::json!({ "n": n }),
        };
        tx.append_journal(&rec, NOW)
    };
    let sales_after = |cut: usize| -> Vec<String> {
        // Each round starts from the same history: A synced, then B and C unsynced.
        let _ = std::fs::remove_file(&path);
        let store = Store::open_with_hooks(&path, hooks(), key()).unwrap();
        store.write(|tx| tx.put_sale(&sale("A")).and_then(|_| journal(tx, 1))).unwrap();
        store.write_without_sync(|tx| tx.put_sale(&sale("B")).and_then(|_| journal(tx, 2))).unwrap();
        store.write_without_sync(|tx| tx.put_sale(&sale("C")).and_then(|_| journal(tx, 3))).unwrap();
        let points = durability.cut_points();
        assert_eq!(points.len(), 3, "the synced commit and two unsynced ones: {points:?}");
        assert!(points.windows(2).all(|w| w[0] < w[1]), "the WAL only grows: {points:?}");
        drop(store);
        cut_wal(&path, points[cut]).unwrap();
        let store = Store::open(&path, key()).unwrap();
        store.integrity_check().unwrap();
        assert!(store.verify_journal().unwrap().is_intact());
        let mut ids: Vec<String> = store.recent_sales(10).unwrap().into_iter().map(|s| s.id.0).collect();
        ids.sort();
        ids
    };
    assert_eq!(sales_after(0), ["A"]);
    assert_eq!(sales_after(1), ["A", "B"]);
    assert_eq!(sales_after(2), ["A", "B", "C"]);

    // An injected fault fails the commit and leaves nothing behind.
    let _ = std::fs::remove_file(&path);
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f2 = fail.clone();
    let hooks = Hooks {
        fault: Some(Arc::new(move || f2.load(std::sync::atomic::Ordering::SeqCst).then_some(WriteFault::DiskFull))),
        durability: None,
    };
    let store = Store::open_with_hooks(&path, hooks, key()).unwrap();
    let err = store.write(|tx| tx.put_sale(&sale("D"))).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert!(store.sale("D").unwrap().is_none());
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    store.write(|tx| tx.put_sale(&sale("D"))).unwrap();
    assert!(store.sale("D").unwrap().is_some());
}

/// SQLite re-plans a statement at every new value of a bound `LIMIT` unless the query planner's
/// stability guarantee is on; every connection of the store turns it on, so a cached statement
/// (the dispatcher's pass runs one many times a second) is planned once.
#[test]
fn cached_statements_are_not_planned_again_for_new_values() {
    let (_d, store) = store();
    store.write(|tx| tx.enqueue(Some("S1"), &q("p1", Op::PrintSlip { copy: false, refund: None }), NOW)).unwrap();
    let sql = "SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?2";
    let mut replanned = 0;
    for i in 0..5i64 {
        replanned = store
            .read(|c| {
                let mut st = c.prepare_cached(sql)?;
                let _: Vec<i64> =
                    st.query_map(rusqlite::params![1000 + i, 10 + i], |r| r.get(0))?.collect::<Result<_, _>>()?;
                Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .unwrap();
    }
    assert_eq!(replanned, 0, "a cached statement is planned once");
}

#[test]
fn a_journal_from_before_keying_is_sealed_once_when_intact_and_left_alone_when_not() {
    use kasa_core::journal::{GENESIS, JournalEntry, unkeyed_hash};
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, break_at: Option<i64>| {
        let path = dir.path().join(name);
        let c = rusqlite::Connection::open(&path).unwrap();
        for (_, sql) in &MIGRATIONS[..4] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 4).unwrap();
        let mut prev = GENESIS.to_string();
        for seq in 1..=20i64 {
            let mut e = JournalEntry {
                seq,
                at: "2026-11-01T10:00:00Z".into(),
                sale_id: Some(format!("S{seq}")),
                kind: "sale_opened".into(),
                data: format!("{{\"n\":{seq}}}"),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = unkeyed_hash(&e);
            if break_at == Some(seq) {
                e.data = "{\"n\":0}".into();
            }
            c.execute(
                "INSERT INTO journal (seq, at, sale_id, kind, data, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![e.seq, e.at, e.sale_id, e.kind, e.data, e.prev_hash, e.hash],
            )
            .unwrap();
            prev = e.hash;
        }
        c.execute("INSERT INTO journal_head (id, seq, hash) VALUES (1, 20, ?1)", [prev]).unwrap();
        path
    };
    let good = make("good.db", None);
    assert_eq!(sealing(&good).unwrap(), Sealing::Unkeyed);
    let store = Store::open(&good, key()).unwrap();
    assert!(!store.verify_journal().unwrap().is_intact(), "unsealed, it does not pass as sealed");
    assert_eq!(store.seal_unkeyed_journal().unwrap(), 20);
    let v = store.verify_journal().unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.entries, 20);
    drop(store);
    assert_eq!(sealing(&good).unwrap(), Sealing::Keyed);

    let bad = make("bad.db", Some(7));
    let store = Store::open(&bad, key()).unwrap();
    let e = store.seal_unkeyed_journal().unwrap_err();
    assert!(e.to_string().contains("broken at entry 7"), "{e}");
    assert!(!store.verify_journal().unwrap().is_intact(), "a broken old journal stays unverifiable");
    assert_eq!(sealing(&dir.path().join("none.db")).unwrap(), Sealing::Empty);
}

#[test]
fn removing_every_entry_behind_a_checkpoint_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let store = Store::open(&path, key()).unwrap();
    for i in 0..5 {
        store.write(|tx| tx.append_journal(&sale(&format!("S{i}")).opened_record(), NOW)).unwrap();
    }
    let last = store.journal_page(4, 1).unwrap().remove(0);
    store.write(|tx| tx.set_journal_checkpoint(last.seq, &last.hash, NOW)).unwrap();
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("DROP TRIGGER journal_no_delete; DELETE FROM journal; DELETE FROM journal_head;").unwrap();
    drop(c);
    let b = Store::open(&path, key()).unwrap().verify_journal().unwrap().first_break.expect("found");
    assert_eq!((b.seq, b.kind), (5, kasa_core::journal::BreakKind::Truncated), "{}", b.reason);
}

#[test]
fn words_still_find_their_own_sale_after_a_vacuum_renumbers_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kasa.db");
    let store = Store::open(&path, key()).unwrap();
    for id in ["A1", "B2", "C3", "D4"] {
        store.write(|tx| tx.put_sale(&sale(id))).unwrap();
    }
    drop(store);
    // Someone tidies the file by hand: a row gone, the file vacuumed (rowids may change).
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("DELETE FROM sales WHERE sale_id = 'A1'; VACUUM;").unwrap();
    drop(c);
    let store = Store::open(&path, key()).unwrap();
    for id in ["B2", "C3", "D4"] {
        let q = kasa_core::search::SaleQuery { text: Some(id.into()), ..Default::default() };
        let found: Vec<String> = store.search_sales(&q).unwrap().sales.into_iter().map(|s| s.id.0).collect();
        assert_eq!(found, [id], "the words of {id}");
    }
}
