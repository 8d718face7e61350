//! Where a register gets the time, fresh identifiers, chance, its network and its threads.
//!
//! A shipped register uses [`Env::system`]: the wall clock, random UUIDs, the thread RNG,
//! reqwest, TCP listeners and Tokio's blocking pool. The deterministic simulation passes an
//! [`Env`] of its own: a clock that follows Tokio's (paused, auto-advancing) virtual time,
//! identifiers and jitter drawn from one seed, a transport that hands requests to the sandbox
//! in-process, listeners that do the same, and blocking work run in place on the one thread.
//! The engine reads none of these things any other way.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kasa_connect::{HttpClient, ReqwestTransport, Transport};
use kasa_core::IdSource;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use time::OffsetDateTime;

/// The register's clock.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The wall clock (UTC).
    System,
    /// `base` plus the Tokio time elapsed since `start`: with Tokio's clock paused, time moves
    /// only when every task waits, and by exactly as much as the next timer needs.
    Virtual {
        /// The wall time at `start`.
        base: OffsetDateTime,
        /// The Tokio instant `base` stands for.
        start: tokio::time::Instant,
    },
    /// The wall clock moved on by a shift that tests set (to see lockouts and sessions end
    /// without waiting for them).
    Shifted(Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    /// A clock that reads `base` now and follows Tokio's time from here.
    pub fn following_tokio(base: OffsetDateTime) -> Clock {
        Clock::Virtual { base, start: tokio::time::Instant::now() }
    }

    /// The current UTC time.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Virtual { base, start } => *base + start.elapsed(),
            Clock::Shifted(ms) => {
                OffsetDateTime::now_utc() + time::Duration::milliseconds(ms.load(std::sync::atomic::Ordering::SeqCst))
            }
        }
    }

    /// A wall clock that [`Clock::advance`] moves on.
    pub fn shifted() -> Clock {
        Clock::Shifted(Arc::default())
    }

    /// Moves a [`Clock::Shifted`] on by `by` (other clocks are not moved).
    pub fn advance(&self, by: std::time::Duration) {
        if let Clock::Shifted(ms) = self {
            ms.fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Serves a router of the register's own (the Settle scan callback) to the outside.
pub trait Listener: Send + Sync + fmt::Debug {
    /// Starts serving `router` at `listen` (`host:port`, port 0 for any); returns the address
    /// it is reachable at and a guard: the service stops when the guard is dropped.
    fn serve(&self, listen: &str, router: axum::Router) -> std::io::Result<(SocketAddr, Box<dyn Send + Sync>)>;
}

/// The production listener: a TCP socket served by axum.
#[derive(Debug, Default)]
pub struct TcpListener;

impl Listener for TcpListener {
    fn serve(&self, listen: &str, router: axum::Router) -> std::io::Result<(SocketAddr, Box<dyn Send + Sync>)> {
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, %addr, "a listener of the register stopped");
            }
        });
        Ok((addr, Box::new(AbortOnDrop(task))))
    }
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything a register takes from its surroundings.
#[derive(Clone)]
pub struct Env {
    /// The clock.
    pub clock: Clock,
    /// Carries every outgoing request.
    pub transport: Arc<dyn Transport>,
    /// Serves the register's own endpoints.
    pub listener: Arc<dyn Listener>,
    /// Identifiers and jitter: from the OS's randomness, or from one seed.
    chance: Chance,
    /// Run blocking work (SQLite, the printer, hashing) in place instead of on Tokio's pool.
    pub inline_blocking: bool,
    /// The simulation's hooks into the database (injected write failures, power cuts).
    #[cfg(feature = "failpoints")]
    pub store_hooks: kasa_store::faults::Hooks,
    /// The simulation's say at each failpoint (see [`crate::failpoint`]).
    #[cfg(feature = "failpoints")]
    pub failpoint_hook: Option<crate::failpoint::Hook>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("clock", &self.clock)
            .field("transport", &self.transport)
            .field("seeded", &matches!(self.chance, Chance::Seeded(_)))
            .field("inline_blocking", &self.inline_blocking)
            .finish()
    }
}

#[derive(Clone)]
enum Chance {
    System,
    Seeded(Arc<Mutex<StdRng>>),
}

impl Env {
    /// A shipped register's surroundings.
    pub fn system() -> Env {
        Env {
            clock: Clock::System,
            transport: Arc::new(ReqwestTransport::new()),
            listener: Arc::new(TcpListener),
            chance: Chance::System,
            inline_blocking: false,
            #[cfg(feature = "failpoints")]
            store_hooks: kasa_store::faults::Hooks::default(),
            #[cfg(feature = "failpoints")]
            failpoint_hook: None,
        }
    }

    /// These surroundings with another clock.
    pub fn with_clock(mut self, clock: Clock) -> Env {
        self.clock = clock;
        self
    }

    /// Surroundings for a simulation: `clock`, `transport` and `listener` as given, every
    /// identifier and random choice drawn from `seed`, blocking work in place.
    pub fn simulated(clock: Clock, transport: Arc<dyn Transport>, listener: Arc<dyn Listener>, seed: u64) -> Env {
        Env {
            clock,
            transport,
            listener,
            chance: Chance::Seeded(Arc::new(Mutex::new(StdRng::seed_from_u64(seed)))),
            inline_blocking: true,
            #[cfg(feature = "failpoints")]
            store_hooks: kasa_store::faults::Hooks::default(),
            #[cfg(feature = "failpoints")]
            failpoint_hook: None,
        }
    }

    /// The current UTC time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Opens the register's database, with the simulation's hooks when there are any.
    pub(crate) fn open_store(
        &self,
        path: &std::path::Path,
        key: kasa_core::journal::JournalKey,
    ) -> Result<kasa_store::Store, kasa_store::StoreError> {
        #[cfg(feature = "failpoints")]
        if self.store_hooks.fault.is_some() || self.store_hooks.durability.is_some() {
            return kasa_store::Store::open_with_hooks(path, self.store_hooks.clone(), key);
        }
        kasa_store::Store::open(path, key)
    }

    /// The HTTP client every provider sends through.
    pub fn http(&self) -> HttpClient {
        HttpClient::new(self.transport.clone())
    }

    /// A fresh identifier (a version-4 UUID).
    pub fn next_id(&self) -> String {
        match &self.chance {
            Chance::System => uuid::Uuid::new_v4().to_string(),
            Chance::Seeded(rng) => {
                let mut bytes = [0u8; 16];
                rng.lock().unwrap_or_else(|e| e.into_inner()).fill_bytes(&mut bytes);
                uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
            }
        }
    }

    /// A random number in `[0, 1)`.
    pub fn random(&self) -> f64 {
        match &self.chance {
            Chance::System => rand::rng().random(),
            Chance::Seeded(rng) => rng.lock().unwrap_or_else(|e| e.into_inner()).random(),
        }
    }

    /// The source of fresh identifiers the core's state machine takes.
    pub fn ids(&self) -> EnvIds<'_> {
        EnvIds(self)
    }

    /// Runs blocking work: on Tokio's blocking pool, or in place in a simulation (where a second
    /// thread would make the order of events depend on the OS's scheduling).
    pub async fn blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        if self.inline_blocking { Ok(f()) } else { tokio::task::spawn_blocking(f).await.map_err(|e| e.to_string()) }
    }
}

/// Fresh identifiers from an [`Env`].
#[derive(Debug)]
pub struct EnvIds<'a>(&'a Env);

impl IdSource for EnvIds<'_> {
    fn next_id(&mut self) -> String {
        self.0.next_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_virtual_clock_moves_with_tokio_time_only() {
        let base = time::macros::datetime!(2026-06-01 08:00 UTC);
        let clock = Clock::following_tokio(base);
        assert_eq!(clock.now(), base);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + time::Duration::seconds(90));
    }

    #[test]
    fn a_seed_gives_the_same_identifiers_and_chance_again() {
        let env = |seed| Env::simulated(Clock::System, Arc::new(ReqwestTransport::new()), Arc::new(TcpListener), seed);
        let (a, b, c) = (env(7), env(7), env(8));
        let draw = |e: &Env| (e.next_id(), e.next_id(), e.random().to_bits());
        let first = draw(&a);
        assert_eq!(first, draw(&b));
        assert_ne!(first, draw(&c));
        assert!(uuid::Uuid::parse_str(&first.0).is_ok_and(|u| u.get_version_num() == 4));
        assert_ne!(Env::system().next_id(), Env::system().next_id());
    }
}
