//! Deterministic simulation of a whole store: registers (engine, store, dispatcher, sync and
//! every provider), the sandbox's services and the network between them, all on one thread and
//! Tokio's paused clock, driven by one seed.
//!
//! A run ([`run`]) builds the store, plays a fault schedule drawn from the seed ([`Schedule`]:
//! per-request faults, crashes at any moment or at a store commit, power cuts that lose the
//! commits SQLite may lose, outages, the store's network down, a full disk) while cashiers sell
//! ([`cashier`]), checks the promises that hold at any moment every 30 s of virtual time, and at
//! the end of the day the promises of a settled register ([`kasa_check`]). Everything that
//! happens goes into a trace whose hash is the run's fingerprint: the same seed gives the same
//! hash. A failing run can be shrunk ([`shrink`]) to the smallest schedule that still fails.
//!
//! Why it is deterministic: the only clock is Tokio's, paused and advanced only when every task
//! waits; every identifier and random choice comes from the seed; blocking work runs in place;
//! no request leaves the thread; selects are biased; and nothing that decides what happens
//! iterates a hash map.

mod cashier;
mod net;
pub mod schedule;
mod trace;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use schedule::{Event, Profile, Rates, Schedule};
use world::World;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of everything.
    pub seed: u64,
    /// Sales the cashiers make, across registers.
    pub sales: usize,
    /// Registers in the store (1 or 2; two race for the same pump orders).
    pub registers: usize,
    /// How hard the world is, when no schedule is given.
    pub profile: Profile,
    /// The schedule to play instead of drawing one from the seed (a replay or a shrink).
    pub schedule: Option<Schedule>,
    /// Planted bugs to switch on (see `kasa_engine::failpoint::PLANTED`).
    pub planted: Vec<String>,
    /// Keep every line of the trace in the report.
    pub keep_trace: bool,
}

impl Options {
    /// `sales` sales on `registers` registers under the default profile.
    pub fn new(seed: u64, sales: usize, registers: usize) -> Options {
        Options {
            seed,
            sales,
            registers,
            profile: Profile::Default,
            schedule: None,
            planted: Vec::new(),
            keep_trace: false,
        }
    }

    /// The schedule this run plays.
    pub fn schedule(&self) -> Schedule {
        self.schedule.clone().unwrap_or_else(|| {
            // Sales take about ten virtual seconds each, shared among the registers.
            let horizon = (self.sales as u64 * 10_000 / self.registers.max(1) as u64).max(120_000) * 2;
            Schedule::generate(self.seed, self.profile, self.registers, horizon)
        })
    }
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The broken promise, if one broke.
    pub violation: Option<String>,
    /// The trace's fingerprint.
    pub trace_hash: String,
    /// Lines in the trace.
    pub trace_lines: u64,
    /// The last lines of the trace.
    pub trace_tail: Vec<String>,
    /// Every line, when asked for.
    pub trace: Option<Vec<String>>,
    /// Counts: sales by outcome, faults injected by kind, promises checked.
    pub counts: BTreeMap<String, u64>,
    /// Virtual time the day took.
    pub virtual_time: Duration,
    /// Real time the run took.
    pub real_time: Duration,
    /// The schedule played.
    pub schedule: Schedule,
}

impl Report {
    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// A count, 0 when absent.
    pub fn count(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }
}

/// Simulates one store for a day: `opts.sales` sales under the schedule. Runs on the calling
/// thread (its own current-thread runtime with the clock paused).
pub fn run(opts: &Options) -> Report {
    quiet_halts();
    let real = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("a runtime");
    kasa_engine::failpoint::plant_on_this_thread(&opts.planted.iter().map(String::as_str).collect::<Vec<_>>());
    let schedule = opts.schedule();
    let report = rt.block_on(async {
        let world = World::new(opts.clone(), &schedule).await;
        world.log(&format!("seed {} sales {} registers {}", opts.seed, opts.sales, opts.registers));
        let play = tokio::spawn(world.clone().play(schedule.events.clone()));
        let watch = tokio::spawn(world.clone().watch());
        let supervisors: Vec<_> = (0..opts.registers).map(|r| tokio::spawn(world.clone().supervise(r))).collect();
        // The day lasts until the sales are made (and at most a simulated week).
        let week = Duration::from_secs(7 * 24 * 3600);
        let started = tokio::time::Instant::now();
        while !world.sold_out() && !world.failed() {
            if started.elapsed() > week {
                world.fail(format!(
                    "the day never ended: {} of {} sales in a simulated week",
                    world.counts().get("sales opened").copied().unwrap_or(0),
                    opts.sales
                ));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !world.failed() {
            world.close().await;
        }
        play.abort();
        watch.abort();
        for s in supervisors {
            s.abort();
        }
        let virtual_time = started.elapsed();
        let violation = world.violation.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _keep = world.net().clone();
        Report {
            seed: opts.seed,
            violation,
            trace_hash: world.with_trace(|t| t.hash()),
            trace_lines: world.with_trace(|t| t.lines()),
            trace_tail: world.with_trace(|t| t.tail()),
            trace: if opts.keep_trace { world.with_trace(|t| t.all()) } else { None },
            counts: world.counts(),
            virtual_time,
            real_time: std::time::Duration::ZERO,
            schedule: schedule.clone(),
        }
    });
    drop(rt);
    kasa_engine::failpoint::plant_on_this_thread(&[]);
    kasa_sim::clock::use_system();
    Report { real_time: real.elapsed(), ..report }
}

/// Shrinks a failing run: takes away per-request faults, then discrete events (halves, then
/// one at a time), then sales, keeping each change that still fails, and returns the smallest
/// failing options found with their report. `budget` bounds the number of runs tried.
pub fn shrink(opts: &Options, budget: usize) -> Option<(Options, Report)> {
    let first = run(opts);
    if first.passed() {
        return None;
    }
    let mut s = Shrinker {
        best: Options { schedule: Some(first.schedule.clone()), ..opts.clone() },
        report: first,
        tries: 0,
        budget,
    };
    for kind in ["duplicate", "lost", "drop", "error", "jitter"] {
        let mut candidate = s.schedule();
        for r in candidate.rates.values_mut() {
            match kind {
                "duplicate" => r.duplicate = 0.0,
                "lost" => r.lost = 0.0,
                "drop" => r.drop = 0.0,
                "error" => r.error = 0.0,
                _ => r.jitter_ms = 0,
            }
        }
        s.attempt(Options { schedule: Some(candidate), ..s.best.clone() });
    }
    let mut chunk = s.schedule().events.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while s.tries < s.budget && i < s.schedule().events.len() {
            let mut candidate = s.schedule();
            candidate.events = candidate
                .events
                .iter()
                .enumerate()
                .filter(|(j, _)| *j < i || *j >= i + chunk)
                .map(|(_, e)| e.clone())
                .collect();
            if !s.attempt(Options { schedule: Some(candidate), ..s.best.clone() }) {
                i += chunk;
            }
        }
        if chunk == 1 || s.tries >= s.budget {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    while s.best.sales > 1 && s.attempt(Options { sales: s.best.sales / 2, ..s.best.clone() }) {}
    Some((s.best, s.report))
}

struct Shrinker {
    best: Options,
    report: Report,
    tries: usize,
    budget: usize,
}

impl Shrinker {
    fn schedule(&self) -> Schedule {
        self.best.schedule.clone().unwrap_or_else(Schedule::calm)
    }

    /// Runs `candidate`; keeps it when it still fails.
    fn attempt(&mut self, candidate: Options) -> bool {
        if self.tries >= self.budget {
            return false;
        }
        self.tries += 1;
        let r = run(&candidate);
        if r.passed() {
            return false;
        }
        self.best = candidate;
        self.report = r;
        true
    }
}

/// A sweep over many seeds on `threads` threads; stops at the first failure unless
/// `keep_going`.
pub fn sweep(base: &Options, seeds: impl IntoIterator<Item = u64>, threads: usize, keep_going: bool) -> Vec<Report> {
    let next = Arc::new(std::sync::Mutex::new(seeds.into_iter().collect::<Vec<u64>>().into_iter()));
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (next, failed, reports, base) = (next.clone(), failed.clone(), reports.clone(), base.clone());
            std::thread::spawn(move || {
                loop {
                    if failed.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let Some(seed) = next.lock().unwrap_or_else(|e| e.into_inner()).next() else { return };
                    let report = run(&Options { seed, ..base.clone() });
                    if !report.passed() && !keep_going {
                        failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    reports.lock().unwrap_or_else(|e| e.into_inner()).push(report);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut all = std::mem::take(&mut *reports.lock().unwrap_or_else(|e| e.into_inner()));
    all.sort_by_key(|r| r.seed);
    all
}

/// Keeps the unwinding of a register stopped at a failpoint out of standard error; every other
/// panic is printed as usual.
fn quiet_halts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<kasa_engine::failpoint::Halt>().is_none() {
                default(info);
            }
        }));
    });
}
