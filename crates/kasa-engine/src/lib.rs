//! The running register.
//!
//! [`Engine`] is the one async API that the desktop shell, the CLI and the tests use. Behind it
//! run three kinds of work on Tokio:
//!
//! - **sale steps** ([`Engine::pay`] and friends): each is one SQLite transaction that stores
//!   the sale's new state, the operations its state machine queued and its journal entry;
//! - **the dispatcher** ([`dispatch`]): delivers queued operations lane by lane with their
//!   idempotency keys, and feeds each outcome back to the sale in another single transaction;
//! - **order sync** ([`sync`]): refreshes the cached order list, tracks connectivity and picks
//!   up the pump's receipts.
//!
//! Nothing is sent before it is durable, and every outcome is durable before it is acted on.
//!
//! The API is split by area, one `impl Engine` block each: [`start`](Engine::start) in
//! `start.rs`, sale steps in `sale.rs`, the card terminal in `terminal.rs`, slips and the printer
//! in `slips.rs`, status in `status.rs`, the manager's area in `manager.rs`. What belongs to one
//! outside system lives in its provider module under `providers/`.

pub mod access;
pub mod config;
pub mod credentials;
mod deliver;
mod delivery;
#[cfg(feature = "demo")]
pub mod demo;
mod dispatch;
pub mod dto;
pub mod env;
pub mod failpoint;
pub mod inspect;
pub mod logging;
pub mod manager;
pub mod owner;
pub mod providers;
mod recovery;
pub mod reports;
mod sale;
pub mod search;
mod slips;
mod start;
mod status;
mod sync;
mod terminal;

use std::sync::{Arc, Mutex};

use kasa_connect::ConnectError;
use kasa_core::op::Op;
use kasa_core::signal::Signal;
use kasa_core::{Sale, SaleError, ShopItem, Transition};
use kasa_store::{Store, StoreError, Tx};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};

pub use config::Config;
pub use credentials::{CredentialError, Credentials, KeyringCredentials, MemoryCredentials};
pub use dto::{ApiError, CatalogEntry, EngineEvent, ErrorCode, SaleView, StatusView};
pub use kasa_store::{OutboxRow, QueueCounts};

pub use env::{Clock, Env};

/// What the register knows of itself while it runs, for the status bar.
#[derive(Debug, Default)]
struct Live {
    recovery: Vec<String>,
    /// Why the card terminal can't take payments now, when it can't.
    terminal_problem: Option<String>,
    online: bool,
    offline_reason: Option<String>,
    /// When the cloud last listed the orders (kept in the store, so it outlives a restart).
    orders_listed_at: Option<OffsetDateTime>,
    printer_problem: Option<String>,
    /// Why receipts are not being signed now, when they are not.
    fiscal_problem: Option<String>,
    /// Where the journal was found broken, when it was.
    journal_problem: Option<String>,
    queue: QueueCounts,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    providers: providers::Providers,
    catalog: Vec<ShopItem>,
    events: broadcast::Sender<EngineEvent>,
    dispatch_kick: Notify,
    sync_kick: Notify,
    changes: Signal<u64>,
    /// Counts recorded outcomes of signing operations (slips waiting for a signature watch it).
    fiscal_changes: Signal<u64>,
    shutdown: Signal<bool>,
    live: Mutex<Live>,
    sessions: Mutex<access::Sessions>,
    demo: bool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The register's time, identifiers, chance, network and threads.
    env: Env,
    /// The order listing last written to the database, and when.
    stored_listing: Mutex<Option<(Vec<kasa_core::OrderSummary>, OffsetDateTime)>>,
    /// Services the register runs for the outside (the Settle callback), stopped when dropped.
    listening: Mutex<Vec<Box<dyn Send + Sync>>>,
    /// This register's hold on its data directory, for as long as it runs.
    owner: Mutex<Option<owner::DirLock>>,
}

/// The running register. Cheap to clone; all clones share one register.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("terminal", &self.inner.config.tokenx.terminal_id).finish()
    }
}

/// Internal failure of a step, before it becomes an [`ApiError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sale(#[from] SaleError),
    #[error("{0}")]
    Api(ApiError),
}

impl From<StepError> for ApiError {
    fn from(e: StepError) -> ApiError {
        match e {
            StepError::Store(StoreError::NotFound(what)) => {
                ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
            }
            StepError::Store(e) => ApiError::new(ErrorCode::Internal, format!("database: {e}")),
            StepError::Sale(e @ SaleError::InvalidState { .. }) => {
                ApiError::new(ErrorCode::InvalidState, e.to_string())
            }
            StepError::Sale(e) => ApiError::new(ErrorCode::BadInput, e.to_string()),
            StepError::Api(e) => e,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        StepError::Store(e).into()
    }
}

pub(crate) fn connect_error(e: &ConnectError) -> ApiError {
    if e.is_transient() {
        ApiError::new(ErrorCode::Offline, format!("{e}. The register keeps working; try again when it is online."))
    } else {
        ApiError::new(ErrorCode::Refused, e.to_string())
    }
}

/// Stores a sale's transition: the sale, its queued operations (with lock bookkeeping) and its
/// journal entry, inside the caller's transaction.
pub(crate) fn persist(tx: &Tx<'_>, sale: &Sale, t: &Transition, at: OffsetDateTime) -> Result<(), StoreError> {
    tx.put_sale(sale)?;
    for q in &t.ops {
        tx.enqueue(Some(&sale.id.0), q, at)?;
        if let Op::TokenxLock { order_id } = &q.op {
            tx.lock_requested(order_id, &sale.id.0, &q.key, at)?;
        }
    }
    tx.append_journal(&t.journal, at)?;
    Ok(())
}

impl Engine {
    /// Stops the background tasks and waits for them. In-flight deliveries are abandoned;
    /// their messages stay queued with their keys and are delivered after the next start.
    ///
    /// Then the data directory is let go: the database stays readable through this engine,
    /// but refuses writes, since another register may start on it.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let tasks: Vec<_> = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
        self.inner.listening.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.inner.store.seal();
        self.inner.owner.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Stops the register where it stands, as a power cut or a killed process would: every task
    /// is dropped at the point it waits (a request in flight is abandoned, though the server may
    /// still apply it), nothing more is written, and the data directory is let go once the
    /// last handle on this engine is dropped. What was committed stays; start-up recovery
    /// resolves the rest. For the simulation's crashes.
    pub fn halt(&self) {
        self.inner.store.seal();
        for t in self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.abort();
        }
        self.inner.listening.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Events for screens.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.events.subscribe()
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database (for reports, checks and tests).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StepError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.store.clone();
        self.inner
            .env
            .blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("database task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// The current UTC time, by the register's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.env.now()
    }

    /// The register's surroundings.
    pub(crate) fn env(&self) -> &Env {
        &self.inner.env
    }

    /// Runs `work` as one of the register's tasks: stopped by [`Engine::shutdown`] (after
    /// it is told) and by [`Engine::halt`] (at once).
    pub(crate) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = tokio::spawn(work);
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}
