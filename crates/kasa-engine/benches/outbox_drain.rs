//! Benchmark: how fast a backlog of 10,000 queued messages drains to the sandbox on loopback,
//! beside, in the same run, the best rate at which a bare client (plain reqwest, no engine, no
//! database) sends the same requests to the same kind of sandbox, and the raw durable-commit rate
//! of SQLite (WAL, synchronous=FULL) on the same disk.
//! Run with `cargo bench -p kasa-engine --bench outbox_drain`; prints its figures and ratios.

use std::time::{Duration, Instant};

use kasa_core::op::{Op, Queued};
use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};
use time::OffsetDateTime;

const MESSAGES: usize = 10_000;

/// The bare client's rate: the same unlock requests (one per order, each with its own request
/// id) sent with `concurrency` requests in flight; returns requests per second.
async fn bare_rate(concurrency: usize) -> f64 {
    let mut c = SandboxConfig::default();
    c.tokenx.initial_orders = 0;
    let sandbox = Sandbox::start(c).await.unwrap();
    let orders: Vec<String> = (0..MESSAGES).map(|_| sandbox.tokenx.add_random_order()).collect();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = sandbox.tokenx_url();
    let token: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "kasa-demo"), ("client_secret", "demo-secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let orders = std::sync::Arc::new(orders);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, base, auth, next, orders) = (http.clone(), base.clone(), auth.clone(), next.clone(), orders.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(order) = orders.get(i) else { break };
                    let body = serde_json::json!({ "terminalId": "VT-0001", "lockId": format!("LCK-{i}"), "requestId": format!("bare-{i}") });
                    let resp = http
                        .post(format!("{base}/api/pos/orders/{order}/unlock"))
                        .header("authorization", &auth)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(resp.status().is_success() || resp.status() == 409);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

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
            let store =
                kasa_store::Store::open(&data.join("kasa.db"), kasa_core::journal::JournalKey::public_demo()).unwrap();
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
        if let Some(n) = std::env::var("KASA_BENCH_IN_FLIGHT").ok().and_then(|v| v.parse().ok()) {
            config.outbox.in_flight = n;
        }
        let started = Instant::now();
        let engine = Engine::start(config, &Config::local_secrets()).await.unwrap();
        let left = engine.drain(Duration::from_secs(300)).await.unwrap();
        let took = started.elapsed();
        assert_eq!(left.pending, 0, "the backlog drained");
        let delivered = sandbox.recorder.of("tokenx").iter().filter(|r| r.path.ends_with("/unlock")).count();
        assert_eq!(delivered, MESSAGES, "each message delivered exactly once");
        let rate = MESSAGES as f64 / took.as_secs_f64();
        engine.shutdown().await;
        drop(sandbox);
        let mut bare = Vec::new();
        for concurrency in [8, 16, 32, 64] {
            bare.push((concurrency, bare_rate(concurrency).await));
        }
        let (best_at, best) = bare.iter().copied().fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        println!("raw SQLite durable commits (WAL, synchronous=FULL, one row each): {raw:.0} commits/s");
        for (c, r) in &bare {
            println!("bare client, {c} requests in flight: {r:.0} requests/s");
        }
        println!(
            "outbox drain: {MESSAGES} messages to the sandbox on loopback in {:.2} s = {rate:.0} msg/s; \
             {:.2}x the bare client's best ({best:.0} requests/s at {best_at} in flight), {:.1}x the raw commit rate",
            took.as_secs_f64(),
            rate / best,
            rate / raw
        );
    });
}
