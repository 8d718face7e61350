//! Sales under injected faults: 5xx answers, dropped connections, answers lost after the
//! request was applied, declines and outage windows, all decided by a seeded generator.
//! `KASA_CHAOS_SALES` sets the number of sales (CI: 1,000; long mode: 10,000) and
//! `KASA_CHAOS_SEED` the seed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kasa_sim::{Faults, SandboxConfig};

use super::{fast_retries, invariants, register, sell_patiently, settle};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sales_at_twenty_percent_faults_keep_every_invariant() {
    let sales: usize = env_or("KASA_CHAOS_SALES", 1000);
    let seed: u64 = env_or("KASA_CHAOS_SEED", 7);
    println!("chaos: {sales} sales, seed {seed} (replay with KASA_CHAOS_SEED={seed})");
    let mut c = SandboxConfig::default();
    c.tokenx.initial_orders = 0;
    c.tokenx.completion_delay = Duration::from_millis(20);
    c.finix.decline_rate = 0.05;
    c.finix.seed = seed;
    c.fault_seed = seed;
    let sandbox = kasa_sim::Sandbox::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sandbox, dir.path(), fast_retries).await;

    let orders: Arc<Vec<String>> = Arc::new((0..sales).map(|_| sandbox.tokenx.add_random_order()).collect());
    // 20 % of requests fail: 7 % answered 503, 7 % dropped unapplied, 6 % applied but unanswered.
    let faults = Faults { error_rate: 0.07, drop_rate: 0.07, lost_response_rate: 0.06, ..Faults::default() };
    sandbox.tokenx_http.control.set_faults(faults.clone());
    sandbox.finix_http.control.set_faults(faults);

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let paid = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (engine, orders, next, paid) = (engine.clone(), orders.clone(), next.clone(), paid.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= orders.len() {
                    break;
                }
                let card = (i + w) % 5 < 3;
                if sell_patiently(&engine, &orders[i], card, 10).await {
                    paid.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Two full outage windows of the cloud while sales go on.
    let control = sandbox.tokenx_http.control.clone();
    let windows = tokio::spawn(async move {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            control.set_outage(true).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            control.set_outage(false).await;
        }
    });
    for w in workers {
        w.await.unwrap();
    }
    windows.await.unwrap();
    let selling = started.elapsed();
    sandbox.tokenx_http.control.clear_faults();
    sandbox.finix_http.control.clear_faults();
    settle(&engine, Duration::from_secs(120)).await;

    let checked = invariants::check(engine.store(), &sandbox, "VT-0001", "DVdemoKasaTerminal1", "chaos");
    let faulted = sandbox.recorder.all().iter().filter(|r| r.fate != kasa_sim::Fate::Answered).count();
    let requests = sandbox.recorder.all().len();
    println!(
        "chaos: {sales} orders sold in {:.1} s: {} paid, {} card charges, {faulted} of {requests} requests faulted; \
         0 double charges, 0 lost paid sales, 0 dangling locks, 0 duplicate reports",
        selling.as_secs_f64(),
        checked.paid,
        checked.charges
    );
    assert_eq!(checked.paid, paid.load(Ordering::SeqCst));
    assert!(checked.paid * 10 >= sales * 9, "a patient cashier sells at least 90 % ({} of {sales})", checked.paid);
    assert!(faulted * 100 >= requests * 15, "faults were injected ({faulted} of {requests})");
    engine.shutdown().await;
}
