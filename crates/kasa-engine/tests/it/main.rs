//! Engine tests: whole sales against the sandbox on loopback.

use kasa_check as invariants;

mod bindings;
mod callbacks;
mod chaos;
mod fiscal;
mod manager;
mod outage;
mod payments;
mod pin;
mod printing;
mod race;
mod reports;
mod sales;
mod search;
mod timing;

use std::time::Duration;

use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};

pub struct Harness {
    pub sandbox: Sandbox,
    pub engine: Engine,
    pub _dir: tempfile::TempDir,
}

pub async fn harness() -> Harness {
    harness_with(|_| {}).await
}

pub async fn harness_with(tune: impl FnOnce(&mut SandboxConfig)) -> Harness {
    let mut c = SandboxConfig::default();
    c.tokenx.completion_delay = Duration::from_millis(100);
    tune(&mut c);
    let sandbox = Sandbox::start(c).await.expect("sandbox");
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sandbox, dir.path(), |_| {}).await;
    Harness { sandbox, engine, _dir: dir }
}

/// A register against `sandbox` with its data in `dir`, tuned by `tune`.
pub async fn register(sandbox: &Sandbox, dir: &std::path::Path, tune: impl FnOnce(&mut Config)) -> Engine {
    let mut config =
        Config::local(dir.to_path_buf(), &sandbox.tokenx_url(), &sandbox.finix_url(), Some(sandbox.printer_addr()))
            .with_local_systems(|name| sandbox.url(name));
    config.sync_interval_ms = 100;
    tune(&mut config);
    Engine::start(config, &Config::local_secrets()).await.expect("engine")
}

/// Retries fast, for tests that compress minutes of backoff into seconds.
pub fn fast_retries(c: &mut Config) {
    c.outbox = kasa_engine::config::OutboxConfig { retry_base_ms: 5, retry_cap_ms: 100, in_flight: 32 };
}

/// Waits until the engine's cached order list holds `n` orders.
pub async fn wait_for_orders(engine: &Engine, n: usize) -> Vec<kasa_core::OrderSummary> {
    for _ in 0..200 {
        let orders = engine.orders().await.unwrap();
        if orders.len() >= n {
            return orders;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the order list never reached {n} orders");
}

/// Sells an order as a patient cashier would: opens it, takes payment, and tries again while
/// the register reports a problem that may pass (offline, declined), up to `attempts` times.
/// Returns whether the order ended paid by this register.
pub async fn sell_patiently(engine: &Engine, order_id: &str, card: bool, attempts: u32) -> bool {
    for _ in 0..attempts {
        let sale = match engine.open_order_sale(order_id).await {
            Ok(s) => s,
            Err(e) if e.code == kasa_engine::ErrorCode::Refused => return false, // paid elsewhere
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if sale.state.is_paid() {
            return true;
        }
        let method =
            if card { kasa_core::PayMethod::Card } else { kasa_core::PayMethod::Cash { tendered: sale.total } };
        if engine.pay(&sale.id, method).await.is_ok() {
            let after = engine.wait_settled(&sale.id, Duration::from_secs(60)).await.unwrap();
            if after.state.is_paid() {
                return true;
            }
            if after.notice.as_ref().is_some_and(|n| n.code == "ORDER_LOCKED" || n.code == "ORDER_NOT_OPEN") {
                return false;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits until no sale waits on the cloud or the terminal and the queue is delivered.
pub async fn settle(engine: &Engine, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let busy = engine.store().sales_in(&[kasa_core::SaleState::Locking, kasa_core::SaleState::Paying]).unwrap();
        let counts = engine.drain(Duration::from_millis(100)).await.unwrap();
        if busy.is_empty() && counts.pending == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "not settled: {} busy, {} queued", busy.len(), counts.pending);
    }
}

/// The manager PIN the tests set up a register with.
pub const MANAGER_PIN: &str = "246810";

/// A manager session on `engine`, setting up the first PIN when none is set yet (as the
/// installer's `kasa manager set-pin` does).
pub async fn manager(engine: &Engine) -> String {
    if !engine.has_manager_pin().await.unwrap() {
        engine.set_first_manager_pin(MANAGER_PIN).await.unwrap();
    }
    engine.manager_login(MANAGER_PIN).await.unwrap().token
}
