//! Benchmark: how fast a backlog of 10,000 queued messages drains to the sandbox on loopback,
//! beside the raw durable-commit rate of SQLite (WAL, synchronous=FULL) on the same disk.
//! Run with `cargo bench -p kasa-engine --bench outbox_drain`; prints its figures.

use std::time::{Duration, Instant};

use kasa_core::op::{Op, Queued};
use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};
use time::OffsetDateTime;

const MESSAGES: usize = 10_000;

/// One-row transactions per second with WAL and synchronous=FULL.
fn raw_commit_rate(dir: &std::path::Path) -> f64 {
    let c = rusqlite::Connection::open(dir.join("raw.db")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
    let n = 3000;
    let started = Instant::now();
    for i in 0..n {
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")]).unwrap();
        c.execute_batch("COMMIT").unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_commit_rate(dir.path());

        let mut c = SandboxConfig::default();
        c.tokenx.initial_orders = 0;
        let sandbox = Sandbox::start(c).await.unwrap();
        let orders: Vec<String> = (0..MESSAGES).map(|_| sandbox.tokenx.add_random_order()).collect();

        // The backlog: one unlock per order, as after an outage, all queued before the start.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        {
            let store = kasa_store::Store::open(&data.join("kasa.db")).unwrap();
            let at = OffsetDateTime::now_utc();
            store
                .write(|tx| -> Result<(), kasa_store::StoreError> {
                    for (i, order_id) in orders.iter().enumerate() {
                        let q = Queued {
                            key: format!("bench-{i}"),
                            op: Op::TokenxUnlock { order_id: order_id.clone(), lock_id: format!("LCK-{i}") },
                        };
                        tx.enqueue(Some(&format!("S{i}")), &q, at)?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        let mut config = Config::local(data, &sandbox.tokenx_url(), &sandbox.finix_url(), None);
        config.sync_interval_ms = 60_000;
        let started = Instant::now();
        let engine = Engine::start(config, &Config::local_secrets()).await.unwrap();
        let left = engine.drain(Duration::from_secs(300)).await.unwrap();
        let took = started.elapsed();
        assert_eq!(left.pending, 0, "the backlog drained");
        let delivered = sandbox.recorder.of("tokenx").iter().filter(|r| r.path.ends_with("/unlock")).count();
        assert_eq!(delivered, MESSAGES, "each message delivered exactly once");
        let rate = MESSAGES as f64 / took.as_secs_f64();
        println!("raw SQLite durable commits (WAL, synchronous=FULL, one row each): {raw:.0} commits/s");
        println!(
            "outbox drain: {MESSAGES} messages to the sandbox on loopback in {:.2} s = {rate:.0} msg/s ({:.1}x the raw commit rate)",
            took.as_secs_f64(),
            rate / raw
        );
        engine.shutdown().await;
    });
}
