//! Engine tests: whole sales against the sandbox on loopback.

mod bindings;
mod sales;

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
    let mut config = Config::local(
        dir.path().to_path_buf(),
        &sandbox.tokenx_url(),
        &sandbox.finix_url(),
        Some(sandbox.printer_addr()),
    );
    config.sync_interval_ms = 100;
    let engine = Engine::start(config, &Config::local_secrets()).await.expect("engine");
    Harness { sandbox, engine, _dir: dir }
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
