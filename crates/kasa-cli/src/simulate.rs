//! `kasa simulate`: the deterministic simulation of a store (see the `kasa-simulation` crate),
//! one seed or a sweep over many, with the figures an engineer reads: throughput in simulated
//! sales per second of real time, the faults injected by kind, the promises checked, and for a
//! failure its seed, the end of its trace and the command that replays it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kasa_simulation::{Options, Profile, Report};

/// What `kasa simulate` was asked.
pub struct Args {
    pub seeds: Range<u64>,
    pub sales: usize,
    pub registers: usize,
    pub profile: Profile,
    pub threads: usize,
    pub shrink: bool,
    pub planted: Vec<String>,
    pub trace: Option<PathBuf>,
    /// Seeds recorded in docs/RELIABILITY.md as breaking a promise through a bug not fixed yet:
    /// each must still break (so a fix is noticed and the seed joins the sweep again).
    pub known: Vec<u64>,
    /// Run every seed of a sweep, past failures, and list every failing one.
    pub keep_going: bool,
}

/// Parses `S` or `A..B` (B excluded).
pub fn parse_seeds(text: &str) -> Result<Range<u64>> {
    let bad = || format!("seeds must be a number or a range like 1..200, not {text:?}");
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b): (u64, u64) = (a.trim().parse().with_context(bad)?, b.trim().parse().with_context(bad)?);
            if a >= b {
                bail!("the seed range {text} is empty: the end is excluded, as in 1..201");
            }
            Ok(a..b)
        }
        None => {
            let s: u64 = text.trim().parse().with_context(bad)?;
            Ok(s..s + 1)
        }
    }
}

pub fn parse_profile(text: &str) -> Result<Profile> {
    text.parse::<Profile>().map_err(anyhow::Error::msg)
}

/// Runs the simulation; fails (exit status 1) when a promise broke.
pub fn run(args: Args) -> Result<()> {
    for name in &args.planted {
        if !kasa_engine::failpoint::PLANTED.contains(&name.as_str()) {
            bail!("no planted bug is called {name:?}; there are: {}", kasa_engine::failpoint::PLANTED.join(", "));
        }
    }
    if !(1..=2).contains(&args.registers) {
        bail!("a simulated store has 1 or 2 registers, not {}", args.registers);
    }
    let mut base = Options::new(args.seeds.start, args.sales, args.registers);
    base.profile = args.profile;
    base.planted = args.planted.clone();
    base.keep_trace = args.trace.is_some();
    let started = Instant::now();
    let seeds: Vec<u64> = args.seeds.clone().filter(|s| !args.known.contains(s)).collect();
    let reports = if seeds.len() == 1 {
        vec![kasa_simulation::run(&Options { seed: seeds[0], ..base.clone() })]
    } else {
        kasa_simulation::sweep(&base, seeds, args.threads, args.keep_going)
    };
    let wall = started.elapsed();
    for &seed in args.known.iter().filter(|s| args.seeds.contains(s)) {
        let r = kasa_simulation::run(&Options { seed, keep_trace: false, ..base.clone() });
        match &r.violation {
            Some(v) => println!("known open finding, seed {seed} still breaks: {v}"),
            None => bail!("seed {seed}, recorded as a known open finding, passes now: take it off --known"),
        }
    }
    print_summary(&args, &reports, wall);
    let Some(failed) = reports.iter().find(|r| !r.passed()) else {
        if let (Some(path), Some(lines)) = (&args.trace, reports.first().and_then(|r| r.trace.as_ref())) {
            std::fs::write(path, lines.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
            println!("trace written to {}", path.display());
        }
        return Ok(());
    };
    let failing: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.seed.to_string()).collect();
    if failing.len() > 1 {
        println!("failing seeds: {}", failing.join(","));
    }
    print_failure(&args, failed);
    if let (Some(path), Some(lines)) = (&args.trace, failed.trace.as_ref()) {
        std::fs::write(path, lines.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("trace written to {}", path.display());
    }
    if args.shrink {
        println!("shrinking the fault schedule of seed {} ...", failed.seed);
        let opts = Options { seed: failed.seed, keep_trace: false, ..base.clone() };
        if let Some((small, report)) = kasa_simulation::shrink(&opts, 200) {
            let schedule = small.schedule.clone().unwrap_or_else(kasa_simulation::Schedule::calm);
            println!(
                "smallest failing run found: {} sales, {} fault events, per-request faults {}",
                small.sales,
                schedule.events.len(),
                if schedule.rates.values().any(|r| !r.is_calm()) { "kept" } else { "removed" }
            );
            for event in &schedule.events {
                println!("  {}", serde_json::to_string(event).unwrap_or_default());
            }
            println!("broken: {}", report.violation.unwrap_or_default());
        }
    }
    bail!("a promise broke in seed {}", failed.seed)
}

fn print_summary(args: &Args, reports: &[Report], wall: Duration) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in reports {
        for (k, v) in &r.counts {
            *counts.entry(k.clone()).or_default() += v;
        }
    }
    let attempted = reports.len() as u64 * args.sales as u64;
    let virtual_secs: f64 = reports.iter().map(|r| r.virtual_time.as_secs_f64()).sum();
    let passed = reports.iter().filter(|r| r.passed()).count();
    println!(
        "simulated {} store day(s) ({} profile, {} register(s), seeds {}..{}) on {} thread(s)",
        reports.len(),
        args.profile.name(),
        args.registers,
        args.seeds.start,
        args.seeds.end,
        args.threads.max(1)
    );
    println!(
        "sales: {attempted} attempted, {} paid; {:.1} s real, {:.1} h virtual; {:.0} simulated sales per second",
        counts.get("sales paid").copied().unwrap_or(0),
        wall.as_secs_f64(),
        virtual_secs / 3600.0,
        attempted as f64 / wall.as_secs_f64().max(1e-9)
    );
    if reports.len() == 1 {
        println!("trace: {} lines, hash {}", reports[0].trace_lines, reports[0].trace_hash);
    }
    let section = |title: &str, prefix: &str| {
        let lines: Vec<_> = counts.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
        if !lines.is_empty() {
            println!("{title}:");
            for (k, v) in lines {
                println!("  {:<62} {v:>9}", k.trim_start_matches(prefix).trim_start_matches(':').trim());
            }
        }
    };
    section("faults injected", "fault");
    section("promises checked", "checked");
    println!("outcomes:");
    for (k, v) in counts.iter().filter(|(k, _)| !k.starts_with("fault") && !k.starts_with("checked")) {
        println!("  {k:<62} {v:>9}");
    }
    println!("runs passed: {passed} of {}", reports.len());
}

fn print_failure(args: &Args, r: &Report) {
    println!();
    println!("BROKEN in seed {}: {}", r.seed, r.violation.as_deref().unwrap_or("?"));
    println!("last lines of its trace:");
    for line in &r.trace_tail {
        println!("  {line}");
    }
    let mut replay = format!(
        "kasa simulate --seed {} --sales {} --faults {} --registers {}",
        r.seed,
        args.sales,
        args.profile.name(),
        args.registers
    );
    for p in &args.planted {
        replay.push_str(&format!(" --plant {p}"));
    }
    println!("replay: {replay} --trace trace.txt   (add --shrink for the smallest failing schedule)");
}
