//! One simulated store: the sandbox, the network, one or two registers with their data
//! directories, the fault schedule played on the virtual clock, and the checks.
//!
//! Each register is run by a supervisor through its lives: start the engine (start-up
//! recovery runs as in any start), let the cashier sell, and when the schedule says so halt it
//! where it stands, drop everything it had in memory, optionally cut the WAL where a power cut
//! may cut it, stay down a while, and start again on the same directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasa_engine::{Clock, Config, Engine, Env, ErrorCode};
use kasa_sim::Sandbox;
use kasa_store::faults::{Durability, Hooks, WriteFault, cut_wal};
use rand::Rng;
use rand::rngs::StdRng;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::net::{Net, Uplink};
use crate::schedule::{Event, Schedule};
use crate::trace::Trace;
use crate::{Options, cashier};

/// MobilePay's terminal id of the register that takes app payments (the sandbox's demo one).
pub(crate) const MOBILEPAY_TERMINAL: &str = "KASA-LANE-1";

/// One register of the store.
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) terminal: String,
    pub(crate) device: String,
    /// Takes MobilePay and Settle (register 0 only: they have one merchant identity).
    pub(crate) apps: bool,
    dir: PathBuf,
    uplink: Uplink,
    durability: Arc<Durability>,
    /// The engine of the current life, while up.
    engine: Mutex<Option<Engine>>,
    lives: AtomicUsize,
    /// A failpoint to stop at, armed by the schedule.
    armed: Mutex<Option<String>>,
    /// Where the last crash happened (a failpoint's name, or `timer`).
    crashed_at: Mutex<Option<String>>,
    crash: Notify,
    /// Ends a time down early (the day closes).
    wake: Notify,
    /// Writes still to fail, and how.
    store_fault: Mutex<Option<(WriteFault, u32)>>,
    /// A power cut comes with the next crash, keeping this fraction of what may be lost.
    power_cut: Mutex<Option<f64>>,
    down_for: Mutex<Duration>,
    selling: AtomicBool,
}

/// The whole simulated store.
pub(crate) struct World {
    pub(crate) opts: Options,
    pub(crate) sandbox: Arc<Sandbox>,
    net: Arc<Net>,
    pub(crate) slots: Vec<Arc<Slot>>,
    start: tokio::time::Instant,
    base: OffsetDateTime,
    trace: Mutex<Trace>,
    next_sale: AtomicUsize,
    counts: Mutex<BTreeMap<String, u64>>,
    pub(crate) violation: Mutex<Option<String>>,
    /// The day is over: no more crashes, every register is brought up and tidied.
    closing: AtomicBool,
    _dirs: Vec<tempfile::TempDir>,
}

impl World {
    pub(crate) async fn new(opts: Options, schedule: &Schedule) -> Arc<World> {
        let base = time::macros::datetime!(2026-06-01 07:00 UTC) + time::Duration::seconds((opts.seed % 86_400) as i64);
        kasa_sim::clock::use_virtual(base);
        let mut c = kasa_sim::SandboxConfig { fault_seed: opts.seed, ..Default::default() };
        c.tokenx.seed = opts.seed;
        c.tokenx.initial_orders = 0;
        c.tokenx.order_interval = None;
        c.tokenx.completion_delay = Duration::from_secs(5);
        c.finix.seed = opts.seed;
        c.finix.tap = Some((Duration::from_millis(300), Duration::from_millis(4_000)));
        c.finix.decline_rate = 0.08;
        // Lookups that lag, as a real payment service's search index does: a transfer is not
        // found until its card is read, nor for two seconds after it was made.
        c.finix.hidden_until_final = true;
        c.finix.lookup_lag = Duration::from_secs(2);
        c.mobilepay.customer = kasa_sim::CustomerScript::Manual;
        c.mobilepay.seed = opts.seed;
        c.settle.customer = kasa_sim::SettleCustomer::Manual;
        c.settle.seed = opts.seed;
        // The signing unit takes a moment, so crashes land between a sign request and its answer.
        c.fiskaltrust.seed = opts.seed;
        c.fiskaltrust.sign_delay = Duration::from_millis(300);
        let sandbox = Arc::new(Sandbox::start(c).await.expect("the sandbox starts"));
        for (service, rates) in &schedule.rates {
            if let Some(control) = control(&sandbox, service) {
                control.set_faults(rates.faults());
            }
        }
        let net = Net::new(sandbox.clone());
        let mut dirs = Vec::new();
        let mut slots = Vec::new();
        for index in 0..opts.registers {
            let dir = scratch_dir();
            slots.push(Arc::new(Slot {
                index,
                terminal: format!("VT-{:04}", index + 1),
                device: format!("DVdemoKasaTerminal{}", index + 1),
                apps: index == 0,
                dir: dir.path().to_path_buf(),
                uplink: net.uplink(),
                durability: Arc::new(Durability::default()),
                engine: Mutex::new(None),
                lives: AtomicUsize::new(0),
                armed: Mutex::new(None),
                crashed_at: Mutex::new(None),
                crash: Notify::new(),
                wake: Notify::new(),
                store_fault: Mutex::new(None),
                power_cut: Mutex::new(None),
                down_for: Mutex::new(Duration::ZERO),
                selling: AtomicBool::new(false),
            }));
            dirs.push(dir);
        }
        let keep_trace = opts.keep_trace;
        Arc::new(World {
            opts,
            sandbox,
            net,
            slots,
            start: tokio::time::Instant::now(),
            base,
            trace: Mutex::new(Trace::new(keep_trace)),
            next_sale: AtomicUsize::new(0),
            counts: Mutex::new(BTreeMap::new()),
            violation: Mutex::new(None),
            closing: AtomicBool::new(false),
            _dirs: dirs,
        })
    }

    pub(crate) fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Adds a line to the trace.
    pub(crate) fn log(&self, line: &str) {
        let ms = self.ms();
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).push(ms, line);
    }

    pub(crate) fn count(&self, what: &str) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(what.to_string()).or_default() += 1;
    }

    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn with_trace<T>(&self, f: impl FnOnce(&Trace) -> T) -> T {
        f(&self.trace.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn fail(&self, why: String) {
        let mut v = self.violation.lock().unwrap_or_else(|e| e.into_inner());
        if v.is_none() {
            self.log(&format!("VIOLATION {why}"));
            *v = Some(why);
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.violation.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The next sale to make, while the day's number is not reached.
    pub(crate) fn take_sale(&self) -> Option<usize> {
        if self.failed() {
            return None;
        }
        let k = self.next_sale.fetch_add(1, Ordering::SeqCst);
        (k < self.opts.sales).then_some(k)
    }

    pub(crate) fn set_selling(&self, r: usize, selling: bool) {
        self.slots[r].selling.store(selling, Ordering::SeqCst);
    }

    /// A pump order to sell: one of the oldest still open, so both registers go for the same
    /// ones. The pump fills up more as they are sold.
    pub(crate) fn pick_order(&self, rng: &mut StdRng) -> String {
        let tokenx = &self.sandbox.tokenx;
        let mut open: Vec<String> =
            tokenx.order_ids().into_iter().filter(|o| tokenx.status_of(o) == Some("Open")).collect();
        while open.len() < 4 {
            open.push(tokenx.add_random_order());
        }
        open.sort();
        open[rng.random_range(0..3)].clone()
    }

    fn config(&self, slot: &Slot) -> Config {
        let sb = &self.sandbox;
        let mut c = Config::local(slot.dir.clone(), &sb.tokenx_url(), &sb.finix_url(), None);
        if slot.apps {
            c = c.with_local_systems(|name| sb.url(name));
        } else {
            // Every register fiscalizes; the app payments are one register's.
            c = c.with_local_systems(|name| if name == "fiskaltrust" { sb.url(name) } else { None });
        }
        c.tokenx.terminal_id = slot.terminal.clone();
        if let Some(f) = c.systems.fiscal.as_mut() {
            f.terminal_id = slot.terminal.clone();
        }
        c.finix.device_id = slot.device.clone();
        c.printer.kind = "file".into();
        c.printer.path = Some(slot.dir.join("printer.out"));
        c.sync_interval_ms = 2_000;
        c.outbox.in_flight = 8;
        c
    }

    fn env(self: &Arc<World>, slot: &Arc<Slot>) -> Env {
        let life = slot.lives.fetch_add(1, Ordering::SeqCst) as u64;
        let seed = self.opts.seed ^ ((slot.index as u64 + 1) << 48) ^ (life << 32) ^ 0x1d5;
        let clock = Clock::Virtual { base: self.base, start: self.start };
        let mut env = Env::simulated(clock, Arc::new(slot.uplink.clone()), slot.uplink.listener(), seed);
        let s = slot.clone();
        let fault: kasa_store::faults::FaultHook = Arc::new(move || {
            let mut f = s.store_fault.lock().unwrap_or_else(|e| e.into_inner());
            let (kind, left) = (*f)?;
            *f = (left > 1).then(|| (kind, left - 1));
            Some(kind)
        });
        env.store_hooks = Hooks { fault: Some(fault), durability: Some(slot.durability.clone()) };
        let s = slot.clone();
        env.failpoint_hook = Some(Arc::new(move |name| {
            let mut armed = s.armed.lock().unwrap_or_else(|e| e.into_inner());
            if armed.as_deref() != Some(name) {
                return false;
            }
            *armed = None;
            *s.crashed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.to_string());
            s.crash.notify_one();
            true
        }));
        env
    }

    /// Starts a life of the register: the engine on its directory, with start-up recovery.
    async fn start_register(self: &Arc<World>, slot: &Arc<Slot>) -> Option<Engine> {
        let first = slot.lives.load(Ordering::SeqCst) == 0;
        if first {
            seed_pin(&self.config(slot));
        }
        for attempt in 0..20 {
            let env = self.env(slot);
            match Engine::start_in(self.config(slot), &Config::local_secrets(), env).await {
                Ok(engine) => return Some(engine),
                // A database that refuses a write (full, busy) refuses the start too: like the
                // service that keeps a register running, try again in a few seconds.
                Err(e) if e.code == ErrorCode::Internal && attempt < 19 => {
                    self.log(&format!("r{} start refused: {}", slot.index, e.message));
                    self.count("register starts refused by the database");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(e) => {
                    self.fail(format!("register {} could not start: {e}", slot.index));
                    return None;
                }
            }
        }
        None
    }

    /// Runs register `r` through its lives until the day is closed.
    pub(crate) async fn supervise(self: Arc<World>, r: usize) {
        let slot = self.slots[r].clone();
        loop {
            let Some(engine) = self.start_register(&slot).await else { return };
            let recovered = engine.status().recovery.len();
            self.log(&format!("r{r} up (life {}, {recovered} recovery actions)", slot.lives.load(Ordering::SeqCst)));
            match engine.verify_journal().await {
                Ok(v) if v.is_intact() => {}
                other => self.fail(format!("r{r}: the journal does not verify after a start: {other:?}")),
            }
            *slot.engine.lock().unwrap_or_else(|e| e.into_inner()) = Some(engine.clone());
            let closing = self.closing.load(Ordering::SeqCst);
            let shift = (!closing).then(|| {
                self.set_selling(r, true);
                tokio::spawn(cashier::shift(self.clone(), r, engine.clone()))
            });
            drop(engine);
            if closing {
                return;
            }
            slot.crash.notified().await;
            // The crash: where it stands, nothing more is done or written.
            let at = slot.crashed_at.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_else(|| "timer".into());
            if let Some(e) = slot.engine.lock().unwrap_or_else(|e| e.into_inner()).take() {
                e.halt();
            }
            if let Some(s) = shift {
                s.abort();
            }
            self.set_selling(r, false);
            // Let every aborted task be dropped, so the last handle on the engine goes (and
            // with it the database's connections and the directory's lock).
            let mut gone = false;
            for _ in 0..1_000 {
                tokio::task::yield_now().await;
                if kasa_engine::owner::owner(&slot.dir) == kasa_engine::owner::Owner::Free {
                    gone = true;
                    break;
                }
            }
            if !gone {
                self.fail(format!("r{r}: something still holds the halted register"));
                return;
            }
            let cut = slot.power_cut.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut line = format!("r{r} CRASH at {at}");
            if let Some(keep) = cut {
                let points = slot.durability.cut_points();
                let i = ((points.len() as f64 - 1.0) * keep).round() as usize;
                let len = points[i.min(points.len() - 1)];
                let db = slot.dir.join("kasa.db");
                match cut_wal(&db, len) {
                    Ok(()) => {
                        line.push_str(&format!(", power cut: {} of {} unsynced commits kept", i, points.len() - 1))
                    }
                    Err(e) => self.fail(format!("r{r}: the WAL could not be cut: {e}")),
                }
                self.count_fault("commits lost in power cuts", (points.len() - 1 - i) as u64);
            }
            self.log(&line);
            self.count_fault(if at == "timer" { "crashes between steps" } else { "crashes at a failpoint" }, 1);
            if self.sandbox.fiskaltrust.in_progress() > 0 {
                self.count_fault("crashes while the middleware was signing", 1);
            }
            let down = *slot.down_for.lock().unwrap_or_else(|e| e.into_inner());
            if !self.closing.load(Ordering::SeqCst) {
                tokio::select! {
                    biased;
                    _ = slot.wake.notified() => {}
                    _ = tokio::time::sleep(down) => {}
                }
            }
        }
    }

    fn count_fault(&self, what: &str, n: u64) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner()).entry(format!("fault: {what}")).or_default() += n;
    }

    /// Plays the schedule's events on the virtual clock until the day closes.
    pub(crate) async fn play(self: Arc<World>, events: Vec<Event>) {
        for event in events {
            let at = self.start + Duration::from_millis(event.at_ms());
            tokio::time::sleep_until(at).await;
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            self.log(&format!("FAULT {}", serde_json::to_string(&event).unwrap_or_default()));
            match event {
                Event::Crash { register, point, down_ms, power_cut, keep, .. } => {
                    let Some(slot) = self.slots.get(register) else { continue };
                    if slot.engine.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                        continue; // already down
                    }
                    *slot.down_for.lock().unwrap_or_else(|e| e.into_inner()) = Duration::from_millis(down_ms);
                    *slot.power_cut.lock().unwrap_or_else(|e| e.into_inner()) = power_cut.then_some(keep);
                    match point {
                        None => slot.crash.notify_one(),
                        Some(p) => {
                            *slot.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
                            let s = slot.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                // Never passed: crash anyway.
                                if s.armed.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
                                    s.crash.notify_one();
                                }
                            });
                        }
                    }
                }
                Event::Outage { service, for_ms, .. } => {
                    self.count_fault("service outages", 1);
                    if let Some(control) = control(&self.sandbox, &service) {
                        let control = control.clone();
                        tokio::spawn(async move {
                            control.set_outage(true).await;
                            tokio::time::sleep(Duration::from_millis(for_ms)).await;
                            control.set_outage(false).await;
                        });
                    }
                }
                Event::SignerDown { for_ms, .. } => {
                    self.count_fault("signing unit down", 1);
                    let fiscal = self.sandbox.fiskaltrust.clone();
                    fiscal.set_scu_reachable(false);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(for_ms)).await;
                        fiscal.set_scu_reachable(true);
                    });
                }
                Event::Uplink { register, for_ms, .. } => {
                    self.count_fault("store network down", 1);
                    if let Some(slot) = self.slots.get(register) {
                        let uplink = slot.uplink.clone();
                        uplink.set_down(true);
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(for_ms)).await;
                            uplink.set_down(false);
                        });
                    }
                }
                Event::StoreFault { register, disk_full, writes, .. } => {
                    self.count_fault(if disk_full { "disk full" } else { "database busy" }, writes as u64);
                    if let Some(slot) = self.slots.get(register) {
                        let kind = if disk_full { WriteFault::DiskFull } else { WriteFault::Busy };
                        *slot.store_fault.lock().unwrap_or_else(|e| e.into_inner()) = Some((kind, writes));
                    }
                }
            }
        }
    }

    /// Checks the promises that hold at any moment: every 15 s of virtual time that no lock is
    /// held without a reason, every 5 minutes all of them (they read every charge), while every
    /// register is up.
    pub(crate) async fn watch(self: Arc<World>) {
        for round in 1u64.. {
            tokio::time::sleep(Duration::from_secs(15)).await;
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            let engines: Vec<Engine> =
                self.slots.iter().filter_map(|s| s.engine.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect();
            if engines.len() < self.slots.len() {
                continue;
            }
            let label = format!("at {} s", self.ms() / 1000);
            let regs: Vec<(&kasa_store::Store, &str)> =
                engines.iter().zip(&self.slots).map(|(e, s)| (e.store(), s.terminal.as_str())).collect();
            let checked = if round % 20 == 0 {
                kasa_check::verify_now(&regs, &self.sandbox, &label)
            } else {
                regs.iter().try_for_each(|(store, terminal)| {
                    let unowned = kasa_check::unowned_locks(store, &self.sandbox, terminal)?;
                    if unowned.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{label}: orders locked for {terminal} with nothing in the register behind them: {unowned:?}"))
                    }
                })
            };
            match checked {
                Ok(()) if round % 20 == 0 => {
                    self.count("checked while selling: every promise that holds at any moment")
                }
                Ok(()) => self.count("checked while selling: no lock without a sale behind it"),
                Err(broken) => self.fail(broken),
            }
        }
    }

    /// Whether the day's sales are all made.
    pub(crate) fn sold_out(&self) -> bool {
        self.next_sale.load(Ordering::SeqCst) >= self.opts.sales
            && self.slots.iter().all(|s| !s.selling.load(Ordering::SeqCst))
    }

    /// Ends the day: the world is calm again, every register is up, what is unfinished is
    /// finished, and the end-of-day promises are checked.
    pub(crate) async fn close(self: &Arc<World>) {
        self.closing.store(true, Ordering::SeqCst);
        self.log("CLOSING: faults end");
        for service in crate::schedule::SERVICES {
            if let Some(control) = control(&self.sandbox, service) {
                control.clear_faults();
                control.set_outage(false).await;
            }
        }
        self.sandbox.fiskaltrust.set_scu_reachable(true);
        for slot in &self.slots {
            slot.uplink.set_down(false);
            *slot.store_fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *slot.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
            slot.wake.notify_one(); // a register down for a while comes back now
        }
        // Every register up again.
        for _ in 0..600 {
            if self.slots.iter().all(|s| s.engine.lock().unwrap_or_else(|e| e.into_inner()).is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let engines: Vec<Engine> =
            self.slots.iter().filter_map(|s| s.engine.lock().unwrap_or_else(|e| e.into_inner()).clone()).collect();
        if engines.len() < self.slots.len() {
            self.fail("a register did not come back up at closing".into());
            return;
        }
        for round in 0..8 {
            for (r, engine) in engines.iter().enumerate() {
                cashier::tidy(self, r, engine, true).await;
                let _ = engine.drain(Duration::from_secs(120)).await;
            }
            let settled = engines.iter().all(|e| {
                let counts = e.store().queue_counts().unwrap_or_default();
                let open = e
                    .store()
                    .sales_in(&[
                        kasa_core::SaleState::Locking,
                        kasa_core::SaleState::Paying,
                        // Part paid: the cashier takes the rest in the next round (a payment
                        // attempt that outlived the first round's wait ends here).
                        kasa_core::SaleState::Tendering,
                        kasa_core::SaleState::Voiding,
                        kasa_core::SaleState::NeedsAttention,
                    ])
                    .map(|s| s.len())
                    .unwrap_or(1);
                counts.pending == 0 && counts.parked == 0 && open == 0
            });
            if settled {
                break;
            }
            self.log(&format!("closing: not settled after round {round}"));
            for (r, engine) in engines.iter().enumerate() {
                for item in engine.queue(&cashier::manager(engine).await, 20).await.unwrap_or_default() {
                    self.log(&format!(
                        "closing: r{r} queue {} {} {} attempts {}: {}",
                        item.id,
                        item.kind,
                        item.state,
                        item.attempts,
                        item.last_error.unwrap_or_default()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        // Receipts come a few seconds after payment: give the pump the time.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let regs: Vec<(&kasa_store::Store, &str)> =
            engines.iter().zip(&self.slots).map(|(e, s)| (e.store(), s.terminal.as_str())).collect();
        if let Err(broken) = kasa_check::verify_now(&regs, &self.sandbox, "closing") {
            self.fail(broken);
        }
        for (engine, slot) in engines.iter().zip(&self.slots) {
            let label = format!("closing, register {}", slot.index);
            let store = engine.store();
            let checked =
                kasa_check::verify_with(store, &self.sandbox, &slot.terminal, &slot.device, slot.apps, &label)
                    .and_then(|c| {
                        kasa_check::verify_money(store, &self.sandbox, &slot.device, slot.apps, &label).map(|_| c)
                    });
            match checked {
                Ok(c) => {
                    let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                    *counts.entry("checked: sales in the databases".into()).or_default() += c.sales as u64;
                    *counts.entry("checked: paid sales".into()).or_default() += c.paid as u64;
                    *counts.entry("checked: card charges kept".into()).or_default() += c.charges as u64;
                    *counts.entry("checked: receipts signed once, in order".into()).or_default() += c.receipts as u64;
                    if c.taken_over > 0 {
                        *counts
                            .entry("checked: orders another register took over after a lapsed lock".into())
                            .or_default() += c.taken_over as u64;
                    }
                }
                Err(broken) => self.fail(broken),
            }
        }
        for engine in &engines {
            engine.shutdown().await;
        }
        // The sandbox's record, in arrival order, closes the trace.
        let mut faults: BTreeMap<String, u64> = BTreeMap::new();
        for r in self.sandbox.recorder.all() {
            if r.fate != kasa_sim::Fate::Answered {
                *faults.entry(format!("fault: request {:?}", r.fate).to_lowercase()).or_default() += 1;
            }
            let line = format!(
                "{} {} {} {:?} {:?} {}",
                r.service,
                r.method,
                r.path,
                r.status,
                r.fate,
                hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(r.body.as_bytes())[..6])
            );
            let ms = r.arrived.map_or(0, |at| (at - self.base).whole_milliseconds().max(0) as u64);
            self.trace.lock().unwrap_or_else(|e| e.into_inner()).push_quiet(ms, &line);
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in faults {
            *counts.entry(k).or_default() += v;
        }
        *counts.entry("requests to the sandbox".into()).or_default() += self.sandbox.recorder.all().len() as u64;
    }

    /// The network, kept alive for the run.
    pub(crate) fn net(&self) -> &Arc<Net> {
        &self.net
    }
}

fn control<'a>(sandbox: &'a Sandbox, service: &str) -> Option<&'a kasa_sim::Control> {
    match service {
        "tokenx" => Some(&sandbox.tokenx_http.control),
        "finix" => Some(&sandbox.finix_http.control),
        "mobilepay" => Some(&sandbox.mobilepay_http.control),
        "settle" => Some(&sandbox.settle_http.control),
        "fiskaltrust" => Some(&sandbox.fiskaltrust_http.control),
        _ => None,
    }
}

/// A scratch directory in memory when the machine has one (`/dev/shm`): the simulation's
/// durability comes from its own model of the WAL, not from the disk.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("kasa-sim-").tempdir_in(shm);
    builder.unwrap_or_else(|_| tempfile::tempdir().expect("a temporary directory"))
}

/// Sets the manager PIN with cheap hashing parameters (the PIN check reads them from the
/// stored hash), so thousands of refunds don't spend the run in Argon2.
fn seed_pin(config: &Config) {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let store = kasa_store::Store::open(&config.database_path(), kasa_core::journal::JournalKey::public_demo())
        .expect("the database opens");
    let params = argon2::Params::new(64, 1, 1, None).expect("valid parameters");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"kasa-simulation!").expect("a salt");
    let hash = argon.hash_password(cashier::PIN.as_bytes(), &salt).expect("hashing").to_string();
    store.write(|tx| tx.set_setting("manager_pin", &hash)).expect("the PIN is stored");
}
