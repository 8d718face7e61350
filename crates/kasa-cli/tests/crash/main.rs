//! Kill-and-restart runs, checked where the money is: at the sandbox.
//!
//! Two harnesses drive the real `kasa` binary (built with failpoints) and kill it with SIGKILL:
//!
//! - at a **named step boundary** (`step.*`, `deliver.*`, `record.*`), against instant cards;
//! - at a **random moment**, while cardholders take 0.5–3 s at the terminal (and MobilePay
//!   customers as long in the app), Finix's lookups do not see a transfer until its card is read
//!   and MobilePay's lag behind; the register is restarted at once or after a delay (the tap may
//!   finish meanwhile), sometimes killed again during its recovery.
//!
//! After every run `kasa recover` brings the register back, and the invariants are checked: no
//! order or sale charged twice, every charge belongs to a paid, reported sale (or was given
//! back), nothing left locked or queued. A planted recovery bug (believing an empty lookup)
//! must be caught by the second harness within a bounded number of runs.
//!
//! `KASA_CRASH_RUNS` and `KASA_KILL_RUNS` set the number of runs (CI: 200 each; the long mode in
//! docs/RELIABILITY.md: 1,000 and more), `KASA_CRASH_SEED` and `KASA_KILL_SEED` the seeds, which
//! are printed so a failure can be replayed.

use kasa_check as invariants;

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

const TERMINAL: &str = "VT-0001";
const DEVICE: &str = "DVdemoKasaTerminal1";

struct Rig {
    /// Runs the sandbox's servers.
    _rt: tokio::runtime::Runtime,
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut SandboxConfig)) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut c = SandboxConfig::default();
        c.tokenx.initial_orders = 0;
        c.tokenx.completion_delay = Duration::from_millis(30);
        tune(&mut c);
        let sandbox = rt.block_on(Sandbox::start(c)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("kasa.toml");
        let text = format!(
            "data_dir = {:?}\nsync_interval_ms = 200\n[tokenx]\nbase_url = \"{}\"\nclient_id = \"kasa-demo\"\nterminal_id = \"{TERMINAL}\"\n\
             [finix]\nbase_url = \"{}\"\nusername = \"USdemoKasa\"\nmerchant_id = \"MUdemoKasaMerchant\"\ndevice_id = \"{DEVICE}\"\n\
             [printer]\nkind = \"tcp\"\naddress = \"{}\"\n[outbox]\nretry_base_ms = 20\nretry_cap_ms = 200\n\
             [mobilepay]\nbase_url = \"{}\"\nbio_code = \"KASA-BIO-0001\"\nterminal_id = \"KASA-LANE-1\"\n\
             [fiscal]\nbase_url = \"{}\"\ncashbox_id = \"{}\"\nterminal_id = \"T1\"\ncountry = \"TR\"\n\
             vat_categories = [{{ rate_bp = 2000, category = 3 }}, {{ rate_bp = 1000, category = 1 }}, {{ rate_bp = 100, category = 2 }}]\n",
            dir.path().join("data").display().to_string(),
            sandbox.tokenx_url(),
            sandbox.finix_url(),
            sandbox.printer_addr(),
            sandbox.mobilepay_url(),
            sandbox.fiskaltrust_url(),
            sandbox.config.fiskaltrust.cashbox_id,
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

    fn verify(&self, label: &str) -> Result<invariants::Checked, String> {
        // The sandbox's credentials carry the public demo journal key.
        let store = kasa_store::Store::open_read_only(&self.db())
            .map_err(|e| format!("{label}: {e}"))?
            .with_key(kasa_core::journal::JournalKey::public_demo());
        invariants::verify(&store, &self.sandbox, TERMINAL, DEVICE, label)
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
    rig.verify(&format!("run {run}")).unwrap_or_else(|broken| panic!("{broken}"))
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

/// One run of the random-time harness, drawn from its seed.
#[derive(Debug, Clone, Copy)]
struct KillPlan {
    pay: &'static str,
    decline: bool,
    /// When the selling register is killed (it may have finished by then).
    kill_after: Duration,
    /// How long the register stays down before it is started again.
    down_for: Duration,
    /// When the restarted register is killed again during its recovery, if it is.
    kill_recovery_after: Option<Duration>,
}

impl KillPlan {
    fn draw(seed: u64, run: u64) -> KillPlan {
        let mut rng = StdRng::seed_from_u64(seed ^ run.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let pay = match rng.random_range(0..10) {
            0..6 => "card",
            6..8 => "mobilepay",
            _ => "cash",
        };
        KillPlan {
            pay,
            decline: pay == "card" && rng.random_bool(0.15),
            // A card sale takes the register's start, the lock and a 0.5-3 s tap.
            kill_after: Duration::from_millis(rng.random_range(50..2_500)),
            down_for: if rng.random_bool(0.5) {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.random_range(0..3_000))
            },
            kill_recovery_after: rng.random_bool(0.2).then(|| Duration::from_millis(rng.random_range(5..250))),
        }
    }
}

/// What a run of the random-time harness did.
#[derive(Debug, Default, Clone, Copy)]
struct KillStats {
    runs: usize,
    killed: usize,
    killed_mid_tap: usize,
    /// Killed between a receipt's sign request and its answer.
    killed_mid_sign: usize,
    recovery_killed: usize,
}

/// Runs `child` until it exits or `after` passes; then kills it. Returns whether it was killed.
fn kill_at(child: &mut std::process::Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if child.try_wait().unwrap().is_some() {
        return false;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// One run: sell, kill at the plan's moment, stay down, restart (maybe killed once more during
/// recovery), let recovery finish, and check every promise at the sandbox.
fn kill_run(rig: &Rig, run: u64, plan: KillPlan, planted: Option<&str>, stats: &mut KillStats) -> Result<(), String> {
    let label = format!("run {run} {plan:?}");
    let order = rig.sandbox.tokenx.add_random_order();
    if plan.decline {
        rig.sandbox.finix.push_card(CardScript::decline(Duration::ZERO));
    }
    let with_bug = |mut c: Command| {
        if let Some(bug) = planted {
            c.env("KASA_PLANTED_BUG", bug);
        }
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let mut sale = with_bug(rig.kasa(&["sale", "--order", &order, "--pay", plan.pay])).spawn().unwrap();
    let tapping = || rig.sandbox.finix.is_waiting(DEVICE);
    let signing = || rig.sandbox.fiskaltrust.in_progress() > 0;
    let killed = kill_at(&mut sale, plan.kill_after);
    stats.runs += 1;
    if killed {
        stats.killed += 1;
        stats.killed_mid_tap += usize::from(tapping());
        stats.killed_mid_sign += usize::from(signing());
    }
    std::thread::sleep(plan.down_for);
    if let Some(after) = plan.kill_recovery_after {
        let mut first = with_bug(rig.kasa(&["recover", "--timeout", "60"])).spawn().unwrap();
        stats.recovery_killed += usize::from(kill_at(&mut first, after));
    }
    let out = with_bug(rig.kasa(&["recover", "--timeout", "60"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "{label}: recover failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Let the pump complete what was paid, so later runs see a settled cloud.
    std::thread::sleep(Duration::from_millis(40));
    rig.verify(&label).map(|_| ())
}

/// Runs the random-time harness over `runs` runs on `parallel` registers (each with its own
/// sandbox and data directory), within `budget`. Returns the stats and the first broken promise.
fn kill_harness(
    seed: u64,
    runs: u64,
    parallel: usize,
    budget: Duration,
    planted: Option<&'static str>,
) -> (KillStats, Vec<invariants::Checked>, Option<String>) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let broken: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let workers: Vec<_> = (0..parallel)
        .map(|_| {
            let (next, stop, broken) = (next.clone(), stop.clone(), broken.clone());
            std::thread::spawn(move || {
                let rig = Rig::with(|c| {
                    c.finix.tap = Some((Duration::from_millis(500), Duration::from_millis(3_000)));
                    c.finix.hidden_until_final = true;
                    c.finix.lookup_lag = Duration::from_millis(800);
                    c.finix.seed = seed;
                    c.mobilepay.decide = Some((Duration::from_millis(500), Duration::from_millis(3_000)));
                    c.mobilepay.lookup_lag = Duration::from_millis(800);
                    c.mobilepay.seed = seed;
                    // The signing unit takes its time, so kills land between a receipt's sign
                    // request and its answer.
                    c.fiskaltrust.sign_delay = Duration::from_millis(400);
                });
                let mut stats = KillStats::default();
                loop {
                    let run = next.fetch_add(1, Ordering::SeqCst);
                    if run >= runs || stop.load(Ordering::SeqCst) || started.elapsed() > budget {
                        break;
                    }
                    if let Err(e) = kill_run(&rig, run, KillPlan::draw(seed, run), planted, &mut stats) {
                        broken.lock().unwrap().get_or_insert(e);
                        stop.store(true, Ordering::SeqCst);
                        break;
                    }
                }
                let checked = rig.verify("end").ok();
                (stats, checked)
            })
        })
        .collect();
    let mut total = KillStats::default();
    let mut checked = Vec::new();
    for w in workers {
        let (s, c) = w.join().unwrap();
        total.runs += s.runs;
        total.killed += s.killed;
        total.killed_mid_tap += s.killed_mid_tap;
        total.killed_mid_sign += s.killed_mid_sign;
        total.recovery_killed += s.recovery_killed;
        checked.extend(c);
    }
    let broken = broken.lock().unwrap().take();
    (total, checked, broken)
}

#[test]
fn kills_at_random_moments_during_slow_taps_never_lose_or_double_a_charge() {
    let runs: u64 = env_or("KASA_KILL_RUNS", 200);
    let seed: u64 = env_or("KASA_KILL_SEED", 20_261_201);
    let parallel: usize = env_or("KASA_KILL_PARALLEL", 6);
    let budget = Duration::from_secs(env_or("KASA_KILL_SECONDS", 900));
    println!("kill runs: {runs} on {parallel} registers, seed {seed} (replay with KASA_KILL_SEED={seed})");
    let started = Instant::now();
    let (stats, checked, broken) = kill_harness(seed, runs, parallel, budget, None);
    if let Some(b) = broken {
        panic!("seed {seed}: {b}");
    }
    let (sales, paid, charges, receipts) =
        checked.iter().fold((0, 0, 0, 0), |(s, p, c, r), k| (s + k.sales, p + k.paid, c + k.charges, r + k.receipts));
    println!(
        "{} runs in {:.1} s: {} killed ({} during a tap, {} while a receipt was being signed, {} restarts killed \
         again during recovery); {sales} sales, {paid} paid, {charges} card charges, {receipts} receipts signed once; \
         every invariant held after every run",
        stats.runs,
        started.elapsed().as_secs_f64(),
        stats.killed,
        stats.killed_mid_tap,
        stats.killed_mid_sign,
        stats.recovery_killed
    );
    assert_eq!(stats.runs as u64, runs, "every run was made within the time budget of {budget:?}");
    assert!(stats.killed * 5 >= stats.runs * 2, "most card runs are cut by a kill: {stats:?}");
    assert!(stats.killed_mid_tap * 4 >= stats.runs, "a good share of kills land during a tap: {stats:?}");
    assert!(stats.killed_mid_sign * 40 >= stats.runs, "some kills land while a receipt is signed: {stats:?}");
    assert!(receipts * 2 >= paid, "the paid sales' receipts were checked at the middleware: {receipts} of {paid}");
}

#[test]
fn the_kill_harness_catches_a_recovery_that_believes_an_empty_lookup() {
    let seed: u64 = env_or("KASA_KILL_SEED", 20_261_201);
    let started = Instant::now();
    let (stats, _, broken) = kill_harness(seed, 60, 6, Duration::from_secs(300), Some("empty_lookup_reopens"));
    let broken = broken.unwrap_or_else(|| panic!("the planted bug went unnoticed in {} runs", stats.runs));
    println!(
        "planted bug (an empty lookup reopens the sale) caught after {} runs in {:.1} s: {broken}",
        stats.runs,
        started.elapsed().as_secs_f64()
    );
    assert!(broken.contains("charge") || broken.contains("reported"), "{broken}");
}
