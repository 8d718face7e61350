//! Benchmark: one pump-order card sale through the engine against the sandbox on loopback, no
//! injected latency: list, get, lock, card payment, payment report, slip at the printer, and
//! the journal entries of every step. Prints p50, p90, p99 and max over 1,000 sales.
//! Run with `cargo bench -p kasa-engine --bench sale_latency`.

use std::time::{Duration, Instant};

use kasa_core::{PayMethod, SaleState};
use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};

const SALES: usize = 1000;
const WARMUP: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = SandboxConfig::default();
        // A busy forecourt: twenty orders waiting besides the one sold, finished ones leave the list.
        c.tokenx.initial_orders = 20;
        c.tokenx.finished_listed_for = Duration::ZERO;
        // The pump completes much later, so completion never overlaps a measured sale.
        c.tokenx.completion_delay = Duration::from_secs(3600);
        let sandbox = Sandbox::start(c).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::local(
            dir.path().to_path_buf(),
            &sandbox.tokenx_url(),
            &sandbox.finix_url(),
            Some(sandbox.printer_addr()),
        );
        config.sync_interval_ms = 60_000;
        let engine = Engine::start(config, &Config::local_secrets()).await.unwrap();

        let mut times = Vec::with_capacity(SALES);
        let mut phases: Vec<[Duration; 5]> = Vec::with_capacity(SALES);
        for i in 0..SALES + WARMUP {
            let order = sandbox.tokenx.add_random_order();
            let started = Instant::now();
            let list = engine.fetch_orders().await.unwrap();
            assert!(list.iter().any(|o| o.order_id == order));
            let t_list = started.elapsed();
            let sale = engine.open_order_sale(&order).await.unwrap();
            let t_open = started.elapsed();
            engine.pay(&sale.id, PayMethod::Card).await.unwrap();
            let t_pay = started.elapsed();
            let done = engine.wait_for_state(&sale.id, SaleState::Reported, Duration::from_secs(10)).await.unwrap();
            assert_eq!(done.state, SaleState::Reported);
            let t_rep = started.elapsed();
            let jobs = sandbox.printer.wait_for_jobs(i + 1, Duration::from_secs(10)).await;
            assert_eq!(jobs.len(), i + 1, "the slip was printed");
            if i >= WARMUP {
                times.push(started.elapsed());
                phases.push([t_list, t_open - t_list, t_pay - t_open, t_rep - t_pay, started.elapsed() - t_rep]);
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "card sale of a pump order (list, get, lock, pay, report, slip, journal), {SALES} sales: \
             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.90)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().unwrap())
        );
        let names = ["list", "get+open", "pay step", "lock+card+report", "slip printed after"];
        for (k, name) in names.iter().enumerate() {
            let mut v: Vec<Duration> = phases.iter().map(|p| p[k]).collect();
            v.sort();
            println!("  {name:<20} p50 {:.2} ms  p99 {:.2} ms", ms(percentile(&v, 0.5)), ms(percentile(&v, 0.99)));
        }
        assert!(engine.verify_journal().await.unwrap().is_intact());
        engine.shutdown().await;
    });
}
