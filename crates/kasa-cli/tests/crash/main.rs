//! Kill-and-restart runs. The `kasa` binary (built with failpoints) sells a pump order and is
//! killed with SIGKILL at a randomly chosen failpoint and hit; it is restarted on the same data
//! directory against the same sandbox (`kasa recover`), and the invariants are checked where the
//! money is: at the sandbox.
//!
//! `KASA_CRASH_RUNS` sets the number of runs (CI: 200; the long mode in docs/RELIABILITY.md:
//! 1,000 and more) and `KASA_CRASH_SEED` the seed, which is printed so a failure can be replayed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kasa_core::{PaymentKind, SaleState};
use kasa_sim::{CardScript, Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FAILPOINTS: &[&str] = &[
    "step.before_commit",
    "step.after_commit",
    "deliver.before_send",
    "deliver.after_send",
    "record.before_commit",
    "record.after_commit",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Rig {
    /// Runs the sandbox's servers.
    _rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut c = SandboxConfig::default();
        c.tokenx.initial_orders = 0;
        c.tokenx.completion_delay = Duration::from_millis(30);
        let sandbox = rt.block_on(Sandbox::start(c)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kasa.toml");
        let text = format!(
            "data_dir = {:?}\nsync_interval_ms = 200\n[tokenx]\nbase_url = \"{}\"\nclient_id = \"kasa-demo\"\nterminal_id = \"VT-0001\"\n\
             [finix]\nbase_url = \"{}\"\nusername = \"USdemoKasa\"\nmerchant_id = \"MUdemoKasaMerchant\"\ndevice_id = \"DVdemoKasaTerminal1\"\n\
             [printer]\nkind = \"tcp\"\naddress = \"{}\"\n[outbox]\nretry_base_ms = 20\nretry_cap_ms = 200\n",
            dir.path().join("data").display().to_string(),
            sandbox.tokenx_url(),
            sandbox.finix_url(),
            sandbox.printer_addr()
        );
        std::fs::write(&config, text).unwrap();
        Rig { _rt: rt, sandbox, dir, config }
    }

    fn kasa(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kasa"));
        c.args(args).arg("--config").arg(&self.config).arg("--sandbox-credentials").env("RUST_LOG", "error");
        c
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("data/kasa.db")
    }
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cut {
    Killed(&'static str),
    Finished,
}

/// Runs `kasa sale` with a failpoint armed; kills it with SIGKILL when it reports the failpoint.
fn sale_with_failpoint(rig: &Rig, order: &str, pay: &str, spec: &str, failpoint: &'static str) -> Cut {
    let mut child = rig
        .kasa(&["sale", "--order", order, "--pay", pay])
        .env("FAILPOINTS", spec)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("FAILPOINT ") {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if rx.recv_timeout(Duration::from_millis(5)).is_ok() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return Cut::Killed(failpoint);
        }
        if let Some(_status) = child.try_wait().unwrap() {
            return Cut::Finished;
        }
        assert!(Instant::now() < deadline, "kasa sale neither finished nor reached {spec}");
    }
}

/// Checks the invariants at the sandbox and in the database; returns (paid sales, charges).
fn check(rig: &Rig, run: usize) -> (usize, usize) {
    let store = kasa_store::Store::open(&rig.db()).unwrap();
    store.integrity_check().unwrap();
    assert!(store.verify_journal().unwrap().is_intact(), "run {run}: journal intact");
    let counts = store.queue_counts().unwrap();
    assert_eq!((counts.pending, counts.parked), (0, 0), "run {run}: queue delivered, nothing parked");
    assert!(store.locks().unwrap().is_empty(), "run {run}: no lock left in the database");

    let sales = store.recent_sales(100_000).unwrap();
    let mut paid_card: BTreeMap<String, String> = BTreeMap::new(); // sale id -> transfer id
    for s in &sales {
        assert!(!s.state.is_busy(), "run {run}: sale {} left {:?}", s.id, s.state);
        let order = s.basket.pump_order_id().unwrap();
        let reports = rig.sandbox.tokenx.accepted_reports(order);
        if s.state.is_paid() {
            assert_eq!(reports, 1, "run {run}: paid sale {} reported exactly once", s.id);
            assert!(matches!(rig.sandbox.tokenx.status_of(order), Some("Paid") | Some("Completed")));
            for p in &s.payments {
                if let PaymentKind::Card { slip } = &p.kind {
                    paid_card.insert(s.id.0.clone(), slip.transaction_ref.clone());
                }
            }
        } else if s.state != SaleState::Cancelled {
            // An unpaid sale's order was never reported, unless another sale of it paid.
            let other_paid = sales.iter().any(|o| o.basket.pump_order_id() == Some(order) && o.state.is_paid());
            if !other_paid {
                assert_eq!(reports, 0, "run {run}: unpaid sale {} was reported", s.id);
            }
        }
    }
    let charges = rig.sandbox.finix.succeeded_transfers();
    let mut per_sale: BTreeMap<String, usize> = BTreeMap::new();
    for t in &charges {
        let sale = t["tags"]["sale_id"].as_str().unwrap().to_string();
        *per_sale.entry(sale.clone()).or_default() += 1;
        assert_eq!(
            paid_card.get(&sale).map(String::as_str),
            t["id"].as_str(),
            "run {run}: charge {} belongs to a paid sale that records it",
            t["id"]
        );
    }
    assert!(per_sale.values().all(|n| *n == 1), "run {run}: no sale charged twice: {per_sale:?}");
    assert_eq!(charges.len(), paid_card.len(), "run {run}: charges == paid card sales");
    assert!(rig.sandbox.tokenx.locked_by("VT-0001").is_empty(), "run {run}: no order left locked by this register");
    (sales.iter().filter(|s| s.state.is_paid()).count(), charges.len())
}

#[test]
fn random_kill_and_restart_runs_keep_every_invariant() {
    let runs: usize = env_or("KASA_CRASH_RUNS", 200);
    let seed: u64 = env_or("KASA_CRASH_SEED", 20_261_121);
    let budget = Duration::from_secs(env_or("KASA_CRASH_SECONDS", 900));
    println!("crash runs: {runs}, seed {seed} (replay with KASA_CRASH_SEED={seed})");
    let rig = Rig::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cuts: BTreeMap<Cut, usize> = BTreeMap::new();
    let started = Instant::now();
    let mut done = 0;
    for run in 0..runs {
        if started.elapsed() > budget {
            println!("stopping after {run} runs: the time budget of {budget:?} is spent");
            break;
        }
        let order = rig.sandbox.tokenx.add_random_order();
        let pay = if rng.random_bool(0.7) { "card" } else { "cash" };
        if pay == "card" && rng.random_bool(0.15) {
            rig.sandbox.finix.push_card(CardScript::decline(Duration::ZERO));
        }
        let failpoint = FAILPOINTS[rng.random_range(0..FAILPOINTS.len())];
        // A sale passes a step failpoint once or twice, a delivery one about four times.
        let skip = rng.random_range(0..if failpoint.starts_with("step.") { 2 } else { 5 });
        let spec = if skip == 0 { format!("{failpoint}=return") } else { format!("{failpoint}={skip}*off->return") };
        let cut = sale_with_failpoint(&rig, &order, pay, &spec, failpoint);
        *cuts.entry(cut).or_default() += 1;

        let out = rig.kasa(&["recover", "--timeout", "60"]).output().unwrap();
        assert!(
            out.status.success(),
            "run {run} ({spec}, {pay}): recover failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Let the pump complete what was paid, so later runs see a settled cloud.
        std::thread::sleep(Duration::from_millis(40));
        check(&rig, run);
        done += 1;
    }
    let (paid, charges) = check(&rig, done);
    println!("{done} runs in {:.1} s: {paid} paid sales, {charges} card charges", started.elapsed().as_secs_f64());
    for (cut, n) in &cuts {
        println!("  {cut:?}: {n}");
    }
    assert!(done >= runs.min(200) || started.elapsed() > budget);
    let killed: usize = cuts.iter().filter(|(c, _)| matches!(c, Cut::Killed(_))).map(|(_, n)| n).sum();
    assert!(killed * 2 >= done, "most runs are cut by a kill ({killed} of {done})");
}
