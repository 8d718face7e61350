//! Kill-and-restart runs. The `kasa` binary (built with failpoints) sells a pump order and is
//! killed with SIGKILL at a randomly chosen failpoint and hit; it is restarted on the same data
//! directory against the same sandbox (`kasa recover`), and the invariants are checked where the
//! money is: at the sandbox.
//!
//! `KASA_CRASH_RUNS` sets the number of runs (CI: 200; the long mode in docs/RELIABILITY.md:
//! 1,000 and more) and `KASA_CRASH_SEED` the seed, which is printed so a failure can be replayed.

#[path = "../../../kasa-engine/tests/support/invariants.rs"]
mod invariants;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kasa_sim::{CardScript, Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use kasa_engine::failpoint::NAMES as FAILPOINTS;

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

fn check(rig: &Rig, run: usize) -> invariants::Checked {
    let store = kasa_store::Store::open(&rig.db()).unwrap();
    invariants::check(&store, &rig.sandbox, "VT-0001", "DVdemoKasaTerminal1", &format!("run {run}"))
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
    let checked = check(&rig, done);
    println!(
        "{done} runs in {:.1} s: {} sales, {} paid, {} card charges; every invariant held after every run",
        started.elapsed().as_secs_f64(),
        checked.sales,
        checked.paid,
        checked.charges
    );
    for (cut, n) in &cuts {
        println!("  {cut:?}: {n}");
    }
    assert!(done >= runs.min(200) || started.elapsed() > budget);
    let killed: usize = cuts.iter().filter(|(c, _)| matches!(c, Cut::Killed(_))).map(|(_, n)| n).sum();
    assert!(killed * 2 >= done, "most runs are cut by a kill ({killed} of {done})");
}
