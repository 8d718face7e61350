//! A thirty-minute network outage in compressed time: retry delays are scaled down 600-fold
//! (the 30 s backoff cap becomes 50 ms), so three real seconds stand for thirty minutes of
//! retries. Cash shop sales go on, nothing is lost, and the queue drains exactly once after
//! the network returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kasa_core::{Currency, Money, PayMethod, SaleState};
use kasa_sim::{CardScript, SandboxConfig};

use super::{invariants, register, settle, wait_for_orders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_minute_outage_in_compressed_time_loses_nothing_and_drains_once() {
    let mut c = SandboxConfig::default();
    c.tokenx.initial_orders = 5;
    c.tokenx.completion_delay = Duration::from_millis(20);
    c.finix.default_card = CardScript::approve(Duration::from_millis(300));
    let sandbox = kasa_sim::Sandbox::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sandbox, dir.path(), |c| {
        c.outbox = kasa_engine::config::OutboxConfig { retry_base_ms: 1, retry_cap_ms: 50, in_flight: 32 };
    })
    .await;
    let orders = wait_for_orders(&engine, 5).await;

    // Five pump sales by card: the locks are granted, the first card is at the terminal.
    let mut pump_sales = Vec::new();
    for o in &orders {
        let sale = engine.open_order_sale(&o.order_id).await.unwrap();
        engine.pay(&sale.id, PayMethod::Card).await.unwrap();
        pump_sales.push(sale.id);
    }
    for id in &pump_sales {
        engine.wait_for_state(id, SaleState::Paying, Duration::from_secs(5)).await.unwrap();
    }

    // The network goes: the cloud and the card service both.
    sandbox.tokenx_http.control.set_outage(true).await;
    sandbox.finix_http.control.set_outage(true).await;
    let down = Instant::now();
    while engine.status().online {
        assert!(down.elapsed() < Duration::from_secs(2), "offline shows within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Thirty minutes (three compressed seconds) of trading: shop sales in cash go on, a pump
    // order can't be locked and the cashier is told so at once.
    let mut shop_sales = Vec::new();
    let item = engine.catalog()[2].sku.clone();
    let mut refused_pump = 0;
    while down.elapsed() < Duration::from_secs(3) {
        let sale = engine.open_shop_sale().await.unwrap();
        engine.add_item(&sale.id, &item, 2).await.unwrap();
        let done =
            engine.pay(&sale.id, PayMethod::Cash { tendered: Money::new(100_000, Currency::TRY) }).await.unwrap();
        assert_eq!(done.state, SaleState::Completed);
        shop_sales.push(done.id);
        if shop_sales.len() % 10 == 0 {
            let extra = sandbox.tokenx.add_random_order();
            let t0 = Instant::now();
            let view = engine.open_order_sale(&extra).await;
            // Offline, an order the register never saw can't even be opened; one it has seen
            // opens from the cache and its lock is refused with the offline notice.
            if let Ok(v) = view {
                engine.pay(&v.id, PayMethod::Cash { tendered: v.total }).await.unwrap();
                let after = engine.wait_settled(&v.id, Duration::from_secs(10)).await.unwrap();
                assert_eq!(after.notice.unwrap().code, "OFFLINE");
                engine.cancel_sale(&v.id).await.unwrap();
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            refused_pump += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = engine.status();
    assert!(!queued.online && queued.queue_pending > 0, "work waits in the queue: {queued:?}");

    // The network returns.
    sandbox.tokenx_http.control.set_outage(false).await;
    sandbox.finix_http.control.set_outage(false).await;
    let back = Instant::now();
    settle(&engine, Duration::from_secs(30)).await;
    let drained_in = back.elapsed();

    // The card at the terminal when the network went was charged once and reported once; the
    // cards that could not reach the card service were never charged, and their orders were
    // unlocked once the cloud was back.
    let first = engine.sale(&pump_sales[0]).await.unwrap();
    assert!(first.state.is_paid(), "{:?}", first.state);
    for id in &pump_sales[1..] {
        let s = engine.sale(id).await.unwrap();
        if !s.state.is_paid() {
            assert_eq!(s.state, SaleState::Open);
            assert_eq!(s.notice.unwrap().code, "TERMINAL_UNREACHABLE");
        }
    }
    for id in &shop_sales {
        assert_eq!(engine.sale(id).await.unwrap().state, SaleState::Completed);
    }
    let checked = invariants::check(engine.store(), &sandbox, "VT-0001", "DVdemoKasaTerminal1", "outage");

    // Every report and unlock that waited was applied exactly once: each request id got one
    // successful answer.
    let mut answered: BTreeMap<String, usize> = BTreeMap::new();
    for r in sandbox.recorder.of("tokenx") {
        if (r.path.ends_with("/payment") || r.path.ends_with("/unlock")) && r.status == Some(200) {
            *answered.entry(r.json()["requestId"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert!(!answered.is_empty());
    assert!(answered.values().all(|n| *n == 1), "each queued request applied once: {answered:?}");
    // Every slip printed exactly once: the shop sales and the paid pump sales.
    let jobs = sandbox.printer.wait_for_jobs(checked.paid, Duration::from_secs(5)).await;
    assert_eq!(jobs.len(), checked.paid, "one slip per paid sale");
    println!(
        "outage: {} cash shop sales and {refused_pump} refused pump orders during 30 compressed minutes; \
         {} paid sales in all; queue of {} drained in {:.2} s after reconnect",
        shop_sales.len(),
        checked.paid,
        queued.queue_pending,
        drained_in.as_secs_f64()
    );
    engine.shutdown().await;
}
