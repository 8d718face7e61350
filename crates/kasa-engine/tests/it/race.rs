//! Two registers, one forecourt: both try to take payment for every order at the same moment.
//! The cloud's lock lets exactly one of them pay each order. `KASA_RACE_ORDERS` sets the number.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kasa_sim::SandboxConfig;

use super::{invariants, register, sell_patiently, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registers_racing_for_a_thousand_orders_pay_each_exactly_once() {
    let n: usize = std::env::var("KASA_RACE_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut c = SandboxConfig::default();
    c.tokenx.initial_orders = 0;
    c.tokenx.completion_delay = Duration::from_millis(20);
    let sandbox = kasa_sim::Sandbox::start(c).await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = register(&sandbox, dir_a.path(), |_| {}).await;
    let b = register(&sandbox, dir_b.path(), |c| {
        c.tokenx.terminal_id = "VT-0002".into();
        c.finix.device_id = "DVdemoKasaTerminal2".into();
        c.printer.kind = "none".into();
    })
    .await;
    let orders: Arc<Vec<String>> = Arc::new((0..n).map(|_| sandbox.tokenx.add_random_order()).collect());

    let started = Instant::now();
    let mut both_paid = Vec::new();
    let mut neither = Vec::new();
    // Eight orders at a time, each contested by both registers at once; A pays by card, B in
    // cash on even orders and the other way round on odd ones.
    for chunk in orders.chunks(8) {
        let races: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, order)| {
                let (a, b, order) = (a.clone(), b.clone(), order.clone());
                tokio::spawn(async move {
                    let (pa, pb) = tokio::join!(
                        sell_patiently(&a, &order, i % 2 == 0, 1),
                        sell_patiently(&b, &order, i % 2 == 1, 1)
                    );
                    (order, pa, pb)
                })
            })
            .collect();
        for r in races {
            let (order, pa, pb) = r.await.unwrap();
            match (pa, pb) {
                (true, true) => both_paid.push(order),
                (false, false) => neither.push(order),
                _ => {}
            }
        }
    }
    let racing = started.elapsed();
    settle(&a, Duration::from_secs(60)).await;
    settle(&b, Duration::from_secs(60)).await;

    assert!(both_paid.is_empty(), "orders paid twice: {both_paid:?}");
    assert!(neither.is_empty(), "orders nobody paid: {neither:?}");
    for order in orders.iter() {
        assert_eq!(sandbox.tokenx.accepted_reports(order), 1, "{order} reported once");
    }
    let ca = invariants::check(a.store(), &sandbox, "VT-0001", "DVdemoKasaTerminal1", "register A");
    let cb = invariants::check(b.store(), &sandbox, "VT-0002", "DVdemoKasaTerminal2", "register B");
    assert_eq!(ca.paid + cb.paid, n, "exactly one payment per order");
    println!(
        "race: {n} contested orders in {:.1} s: register A paid {}, register B paid {}, none twice",
        racing.as_secs_f64(),
        ca.paid,
        cb.paid
    );
    a.shutdown().await;
    b.shutdown().await;
}
