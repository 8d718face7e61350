//! Benchmark: one pump-order card sale through the engine against the sandbox on loopback, no
//! injected latency: list, get, lock, card payment, payment report, slip at the printer, and
//! the journal entries of every step, with durable commits. Beside it, in the same run, a bare
//! client (plain reqwest, no engine, no database) makes the same HTTP calls to the same sandbox
//! and sends the same slip to the same printer: the limit the engine is measured against.
//! Prints p50, p90, p99 and max of both over 1,000 sales, and their ratio.
//! Run with `cargo bench -p kasa-engine --bench sale_latency`.

use std::time::{Duration, Instant};

use kasa_core::{PayMethod, SaleState};
use kasa_engine::{Config, Engine};
use kasa_sim::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const SALES: usize = 1000;
const WARMUP: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(times: &mut [Duration]) -> [Duration; 4] {
    times.sort();
    [percentile(times, 0.50), percentile(times, 0.90), percentile(times, 0.99), *times.last().unwrap()]
}

fn sandbox_config() -> SandboxConfig {
    let mut c = SandboxConfig::default();
    // A busy forecourt: twenty orders waiting besides the one sold, finished ones leave the list.
    c.tokenx.initial_orders = 20;
    c.tokenx.finished_listed_for = Duration::ZERO;
    // The pump completes much later, so completion never overlaps a measured sale.
    c.tokenx.completion_delay = Duration::from_secs(3600);
    c
}

/// The same external work without Kasa: the HTTP calls of one sale in the order the engine makes
/// them, with the same credentials and bodies, and the slip sent to the printer after its status
/// check. No database, no outbox, no journal.
struct Bare {
    http: reqwest::Client,
    tokenx: String,
    finix: String,
    token: String,
    printer: kasa_print::driver::Target,
    slip: Vec<u8>,
}

impl Bare {
    async fn new(sandbox: &Sandbox, slip: Vec<u8>) -> Bare {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let tokenx = sandbox.tokenx_url();
        let token: Value = http
            .post(format!("{tokenx}/oauth2/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", "kasa-demo"), ("client_secret", "demo-secret")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Bare {
            http,
            tokenx,
            finix: sandbox.finix_url(),
            token: token["access_token"].as_str().unwrap().to_string(),
            printer: kasa_print::driver::Target::Tcp(sandbox.printer_addr()),
            slip,
        }
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Value {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.unwrap()
    }

    async fn sale(&self, order: &str, n: usize) {
        let t = &self.tokenx;
        let auth = format!("Bearer {}", self.token);
        let list = self
            .json(
                self.http.get(format!("{t}/api/pos/orders/summary?terminalId=VT-0001")).header("authorization", &auth),
            )
            .await;
        assert!(list["orders"].as_array().unwrap().iter().any(|o| o["orderId"] == order));
        let detail = self
            .json(
                self.http.get(format!("{t}/api/pos/orders/{order}?terminalId=VT-0001")).header("authorization", &auth),
            )
            .await;
        let lock = self
            .json(
                self.http
                    .post(format!("{t}/api/pos/orders/{order}/lock"))
                    .header("authorization", &auth)
                    .json(&json!({ "terminalId": "VT-0001", "requestId": format!("bare-lock-{n}") })),
            )
            .await;
        let amount = detail["amount"].as_i64().unwrap();
        let transfer = self
            .json(
                self.http
                    .post(format!("{}/transfers", self.finix))
                    .basic_auth("USdemoKasa", Some("demo-finix-password"))
                    .header("Finix-Version", "2022-02-01")
                    .json(&json!({
                        "amount": amount, "currency": "TRY", "device": "DVdemoKasaTerminal1",
                        "operation_key": "CARD_PRESENT_DEBIT", "tags": { "sale_id": format!("bare-{n}") },
                        "idempotency_id": format!("bare-card-{n}")
                    })),
            )
            .await;
        assert_eq!(transfer["state"], "SUCCEEDED");
        let card = &transfer["card_present_details"];
        self.json(self.http.post(format!("{t}/api/pos/orders/{order}/payment")).header("authorization", &auth).json(
            &json!({
                "terminalId": "VT-0001", "lockId": lock["lockId"], "requestId": format!("bare-pay-{n}"),
                "payments": [{ "method": "CARD", "amount": amount, "currency": "TRY", "slip": {
                    "maskedPan": card["masked_account_number"], "brand": card["brand"], "entryMode": card["entry_mode"],
                    "approvalCode": card["approval_code"], "terminalRef": "DVdemoKasaTerminal1",
                    "transactionRef": transfer["id"], "paidAt": transfer["updated_at"]
                }}]
            }),
        ))
        .await;
        let (printer, slip) = (self.printer.clone(), self.slip.clone());
        tokio::task::spawn_blocking(move || kasa_print::driver::send(&printer, &slip, Default::default()))
            .await
            .unwrap()
            .unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sandbox = Sandbox::start(sandbox_config()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::local(
            dir.path().to_path_buf(),
            &sandbox.tokenx_url(),
            &sandbox.finix_url(),
            Some(sandbox.printer_addr()),
        );
        config.sync_interval_ms = 60_000;
        let engine = Engine::start(config, &Config::local_secrets()).await.unwrap();

        // The bare client, on a sandbox of its own with the same setup. Its sales alternate with
        // the engine's, so both meet the same machine: a busy moment slows both alike.
        let bare_sandbox = Sandbox::start(sandbox_config()).await.unwrap();
        let mut bare: Option<Bare> = None;
        let mut times = Vec::with_capacity(SALES);
        let mut bare_times = Vec::with_capacity(SALES);
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
            // The same sale by the bare client, sending the slip the engine printed.
            let b = match &bare {
                Some(b) => b,
                None => bare.insert(Bare::new(&bare_sandbox, jobs[0].bytes.clone()).await),
            };
            let order = bare_sandbox.tokenx.add_random_order();
            let started = Instant::now();
            b.sale(&order, i).await;
            bare_sandbox.printer.wait_for_jobs(i + 1, Duration::from_secs(10)).await;
            if i >= WARMUP {
                bare_times.push(started.elapsed());
            }
        }
        assert!(engine.verify_journal().await.unwrap().is_intact());
        engine.shutdown().await;

        let kasa = summary(&mut times);
        let limit = summary(&mut bare_times);
        let line = |name: &str, s: [Duration; 4]| {
            println!(
                "  {name:<14} p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(s[0]),
                ms(s[1]),
                ms(s[2]),
                ms(s[3])
            )
        };
        println!("card sale of a pump order (list, get, lock, pay, report, slip), {SALES} sales:");
        line("Kasa", kasa);
        line("bare client", limit);
        println!(
            "  ratio Kasa / bare: p50 {:.2}x, p99 {:.2}x",
            kasa[0].as_secs_f64() / limit[0].as_secs_f64(),
            kasa[2].as_secs_f64() / limit[2].as_secs_f64()
        );
        let names = ["list", "get+open", "pay step", "lock+card+report", "slip printed after"];
        for (k, name) in names.iter().enumerate() {
            let mut v: Vec<Duration> = phases.iter().map(|p| p[k]).collect();
            v.sort();
            println!("  {name:<20} p50 {:.2} ms  p99 {:.2} ms", ms(percentile(&v, 0.5)), ms(percentile(&v, 0.99)));
        }
    });
}
