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

mod apps;
pub mod config;
pub mod credentials;
mod deliver;
#[cfg(feature = "demo")]
pub mod demo;
mod dispatch;
pub mod dto;
pub mod failpoint;
pub mod inspect;
pub mod manager;
mod mobilepay;
pub mod owner;
mod recovery;
mod scans;
mod sync;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kasa_connect::finix::{FinixClient, FinixSettings};
use kasa_connect::tokenx::{TokenxClient, TokenxSettings};
use kasa_connect::{ConnectError, Secret, base_url, http_client};
use kasa_core::journal::{JournalRecord, Verification};
use kasa_core::op::{Op, Queued};
use kasa_core::{
    Basket, IdSource, MethodKind, Money, OrderStatus, OrderSummary, PayMethod, PumpOrder, Sale, SaleError, SaleEvent,
    SaleId, SaleState, ShopItem, Transition,
};
use kasa_print::escpos::Setup;
use kasa_print::{Model, Slip};
use kasa_store::{Store, StoreError, Tx};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast, watch};

use crate::failpoint::failpoint;

pub use config::Config;
pub use credentials::{CredentialError, Credentials, KeyringCredentials, MemoryCredentials};
pub use dto::{ApiError, CatalogEntry, EngineEvent, ErrorCode, SaleView, StatusView};
pub use kasa_store::{OutboxRow, QueueCounts};

/// Fresh identifiers for idempotency keys and sale ids: random UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct UuidIds;

impl IdSource for UuidIds {
    fn next_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// Current UTC time; the one place the engine reads the clock.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// How a printer is reached and driven.
#[derive(Debug, Clone)]
struct PrinterSetup {
    target: kasa_print::driver::Target,
    setup: Setup,
    width: kasa_print::Width,
}

#[derive(Debug, Default)]
struct Live {
    recovery: Vec<String>,
    /// Why the card terminal can't take payments now, when it can't.
    terminal_problem: Option<String>,
    /// Whether Settle knows where to report scans (its callback is registered).
    settle_ready: bool,
    online: bool,
    offline_reason: Option<String>,
    /// When the cloud last listed the orders (kept in the store, so it outlives a restart).
    orders_listed_at: Option<OffsetDateTime>,
    printer_problem: Option<String>,
    queue: QueueCounts,
}

struct Inner {
    config: Config,
    store: Arc<Store>,
    tokenx: TokenxClient,
    finix: FinixClient,
    mobilepay: Option<kasa_connect::mobilepay::MobilePayClient>,
    settle: Option<kasa_connect::settle::SettleClient>,
    scans: scans::ScanBoard,
    /// MobilePay payment ids by Kasa's `orderId`, learnt while delivering (for a cancel).
    mobilepay_ids: Mutex<std::collections::HashMap<String, String>>,
    /// The MobilePay terminal's QR code link.
    mobilepay_qr: Mutex<Option<String>>,
    printer: Option<PrinterSetup>,
    catalog: Vec<ShopItem>,
    events: broadcast::Sender<EngineEvent>,
    dispatch_kick: Notify,
    sync_kick: Notify,
    changes: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
    live: Mutex<Live>,
    pin_guard: Mutex<manager::PinGuard>,
    demo: bool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
enum StepError {
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

fn connect_error(e: &ConnectError) -> ApiError {
    if e.is_transient() {
        ApiError::new(ErrorCode::Offline, format!("{e}. The register keeps working; try again when it is online."))
    } else {
        ApiError::new(ErrorCode::Refused, e.to_string())
    }
}

/// Stores a sale's transition: the sale, its queued operations (with lock bookkeeping) and its
/// journal entry, inside the caller's transaction.
fn persist(tx: &Tx<'_>, sale: &Sale, t: &Transition, at: OffsetDateTime) -> Result<(), StoreError> {
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
    /// Opens the database, builds the clients and starts the dispatcher and order sync.
    pub async fn start(config: Config, credentials: &dyn Credentials) -> Result<Engine, ApiError> {
        Engine::start_with(config, credentials, false).await
    }

    async fn start_with(config: Config, credentials: &dyn Credentials, demo: bool) -> Result<Engine, ApiError> {
        let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
        config.check().map_err(|e| setup(e.to_string()))?;
        let secret = |name: &str| credentials.get(name).map_err(|e| setup(e.to_string()));
        let finix_password: Secret = secret(credentials::FINIX_PASSWORD)?;
        // One writer per data directory: nothing below runs unless this register holds it.
        let dir = config.data_dir.clone();
        let dir_lock = tokio::task::spawn_blocking(move || owner::DirLock::acquire(&dir))
            .await
            .map_err(|e| setup(e.to_string()))?
            .map_err(|e| match e {
                owner::LockError::Taken { .. } => ApiError::new(ErrorCode::RegisterRunning, e.to_string()),
                other => setup(other.to_string()),
            })?;
        let path = config.database_path();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| setup(e.to_string()))?
            .map_err(|e| setup(e.to_string()))?;
        let http = http_client();
        let url = |u: &str| base_url(u).map_err(|e| setup(e.to_string()));
        let tokenx = tokenx_client_with(http.clone(), &config, credentials)?;
        let finix = FinixClient::new(
            http.clone(),
            FinixSettings {
                base_url: url(&config.finix.base_url)?,
                username: config.finix.username.clone(),
                password: finix_password,
                timeout: Duration::from_secs(10),
                sale_timeout: Duration::from_secs(200),
            },
        );
        let printer = printer_setup(&config)?;
        let catalog = config.shop_items().map_err(|e| setup(e.to_string()))?;
        let mobilepay = match &config.mobilepay {
            Some(m) => Some(kasa_connect::mobilepay::MobilePayClient::new(
                http.clone(),
                kasa_connect::mobilepay::MobilePaySettings {
                    base_url: url(&m.base_url)?,
                    bio_code: m.bio_code.clone(),
                    access_token: secret(credentials::MOBILEPAY_ACCESS_TOKEN)?,
                    terminal_id: m.terminal_id.clone(),
                    pos_id: None,
                    timeout: Duration::from_secs(10),
                },
            )),
            None => None,
        };
        let settle = match &config.settle {
            Some(c) => Some(kasa_connect::settle::SettleClient::new(
                http.clone(),
                kasa_connect::settle::SettleSettings {
                    base_url: url(&c.base_url)?,
                    merchant_id: c.merchant_id.clone(),
                    api_user: c.api_user.clone(),
                    secret: secret(credentials::SETTLE_SECRET)?,
                    pos_id: c.pos_id.clone(),
                    shortlink_id: c.shortlink_id.clone(),
                    timeout: Duration::from_secs(10),
                },
            )),
            None => None,
        };
        let (events, _) = broadcast::channel(256);
        let orders_listed_at = store.orders_listed_at()?;
        let inner = Arc::new(Inner {
            config,
            store: Arc::new(store),
            tokenx,
            finix,
            mobilepay,
            settle,
            scans: scans::ScanBoard::default(),
            mobilepay_ids: Mutex::new(std::collections::HashMap::new()),
            mobilepay_qr: Mutex::new(None),
            printer,
            catalog,
            events,
            dispatch_kick: Notify::new(),
            sync_kick: Notify::new(),
            changes: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            live: Mutex::new(Live { orders_listed_at, ..Live::default() }),
            pin_guard: Mutex::new(manager::PinGuard::default()),
            demo,
            tasks: Mutex::new(Vec::new()),
            owner: Mutex::new(Some(dir_lock)),
        });
        let engine = Engine { inner };
        let at = now();
        let recovered = engine.db(move |s| s.write(|tx| recovery::recover(tx, at))).await?;
        for line in &recovered {
            tracing::warn!("recovery: {line}");
        }
        engine.inner.live.lock().unwrap_or_else(|e| e.into_inner()).recovery = recovered;
        engine.refresh_queue_counts().await;
        if let Some(c) = &engine.inner.config.settle {
            let (addr, task) =
                scans::serve(&c.callback_listen, engine.inner.scans.clone(), engine.inner.shutdown.subscribe())
                    .await
                    .map_err(|e| setup(format!("cannot listen for Settle callbacks on {}: {e}", c.callback_listen)))?;
            let callback = c.callback_url.clone().unwrap_or_else(|| format!("http://{addr}/settle/callback"));
            engine.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
            let e2 = engine.clone();
            // Point the shortlink at this register; retried until Settle answers.
            let t = tokio::spawn(async move {
                let mut shutdown = e2.inner.shutdown.subscribe();
                while let Some(settle) = &e2.inner.settle {
                    match settle.set_callback(&callback).await {
                        Ok(()) => {
                            e2.set_settle_ready();
                            break;
                        }
                        Err(err) => tracing::warn!(error = %err, "could not register the Settle callback; will retry"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(15)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            });
            engine.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(t);
        }
        if engine.inner.mobilepay.is_some() {
            let e2 = engine.clone();
            let t = tokio::spawn(async move { mobilepay::load_terminal_qr(&e2).await });
            engine.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(t);
        }
        let d = tokio::spawn(dispatch::run(engine.clone()));
        let s = tokio::spawn(sync::run(engine.clone()));
        engine.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).extend([d, s]);
        Ok(engine)
    }

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
        self.inner.store.seal();
        self.inner.owner.lock().unwrap_or_else(|e| e.into_inner()).take();
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

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StepError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, format!("database task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Cached orders, newest first (shown even offline).
    pub async fn orders(&self) -> Result<Vec<OrderSummary>, ApiError> {
        self.db(|s| Ok(s.orders(200)?)).await
    }

    /// Fetches the order list from the cloud now, caches it and returns it (newest first).
    pub async fn fetch_orders(&self) -> Result<Vec<OrderSummary>, ApiError> {
        let mut list = self.inner.tokenx.summary().await.map_err(|e| connect_error(&e))?;
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.order_id.cmp(&b.order_id)));
        let at = now();
        let stored = list.clone();
        self.db(move |s| Ok(s.write(|tx| tx.upsert_order_summaries(&stored, at))?)).await?;
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).orders_listed_at = Some(at);
        Ok(list)
    }

    /// Asks order sync to refresh now.
    pub fn refresh_orders(&self) {
        self.inner.sync_kick.notify_one();
    }

    /// The shop articles the cashier can add.
    pub fn catalog(&self) -> &[ShopItem] {
        &self.inner.catalog
    }

    /// Opens a sale for a pump order, or returns the sale already under way for it.
    pub async fn open_order_sale(&self, order_id: &str) -> Result<SaleView, ApiError> {
        let id = order_id.to_string();
        let existing = self.db(move |s| Ok(s.live_sale_of_order(&id)?)).await?;
        if let Some(sale) = existing
            && sale.state != SaleState::Completed
        {
            return Ok(self.view(&sale));
        }
        let order = match self.inner.tokenx.order(order_id).await {
            Ok(o) => {
                let at = now();
                let o2 = o.clone();
                self.db(move |s| Ok(s.write(|tx| tx.put_order(&o2, at))?)).await?;
                o
            }
            Err(e) if e.status() == Some(404) => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("order {order_id} is not in the cloud any more"),
                ));
            }
            Err(e) if e.is_transient() => {
                let id = order_id.to_string();
                self.db(move |s| Ok(s.order(&id)?)).await?.ok_or_else(|| connect_error(&e))?
            }
            Err(e) => return Err(connect_error(&e)),
        };
        match order.status {
            OrderStatus::Paid | OrderStatus::Completed => {
                return Err(ApiError::new(ErrorCode::Refused, "This order is already paid.".to_string()));
            }
            OrderStatus::Cancelled => {
                return Err(ApiError::new(ErrorCode::Refused, "This order was cancelled at the pump.".to_string()));
            }
            OrderStatus::Open | OrderStatus::Locked => {}
        }
        // Trust nothing unchecked: an amount that is not litres × unit price is not sold.
        order.check().map_err(|problem| {
            ApiError::new(
                ErrorCode::Refused,
                format!(
                    "Order {order_id} can't be paid here: {problem}. Ask the attendant to check the pump's sale, \
                     or take payment at the pump."
                ),
            )
        })?;
        self.open_sale(Basket::for_order(&order)).await
    }

    /// Opens a sale with no pump order, for shop articles.
    pub async fn open_shop_sale(&self) -> Result<SaleView, ApiError> {
        let currency = self.inner.config.currency().map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
        self.open_sale(Basket::new(currency)).await
    }

    async fn open_sale(&self, basket: Basket) -> Result<SaleView, ApiError> {
        let at = now();
        let sale = Sale::new(SaleId(UuidIds.next_id()), basket, at);
        let s2 = sale.clone();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StoreError> {
                tx.put_sale(&s2)?;
                tx.append_journal(&s2.opened_record(), at)?;
                Ok(())
            })?;
            Ok(())
        })
        .await?;
        self.after_change(&sale, false);
        Ok(self.view(&sale))
    }

    /// Adds a catalog article by SKU (barcode).
    pub async fn add_item(&self, sale_id: &str, sku: &str, quantity: u32) -> Result<SaleView, ApiError> {
        let item = self
            .inner
            .catalog
            .iter()
            .find(|i| i.sku == sku)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no article with barcode {sku}")))?;
        let sale = self.apply(sale_id, SaleEvent::ItemAdded { item, quantity }).await?;
        Ok(self.view(&sale))
    }

    /// Starts taking payment of the whole remainder. Returns at once with the sale locking or
    /// paying (or done, for cash without a pump order); follow it with
    /// [`Engine::wait_settled`] or the events.
    pub async fn pay(&self, sale_id: &str, method: PayMethod) -> Result<SaleView, ApiError> {
        self.pay_part(sale_id, method, None).await
    }

    /// Starts taking payment of `amount` of what is left (a split payment), or all of it.
    pub async fn pay_part(
        &self,
        sale_id: &str,
        method: PayMethod,
        amount: Option<Money>,
    ) -> Result<SaleView, ApiError> {
        if !self.methods().contains(&method.kind()) {
            return Err(ApiError::new(ErrorCode::Setup, "This payment method is not set up on this register."));
        }
        let sale = self.apply(sale_id, SaleEvent::PayRequested { method, amount }).await?;
        Ok(self.view(&sale))
    }

    /// The payment methods this register offers now: cash always; the card while the terminal
    /// reports an open connection; MobilePay when set up; Settle once its callback is registered.
    pub fn methods(&self) -> Vec<MethodKind> {
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        let mut m = Vec::new();
        if live.terminal_problem.is_none() {
            m.push(MethodKind::Card);
        }
        m.push(MethodKind::Cash);
        if self.inner.mobilepay.is_some() {
            m.push(MethodKind::MobilePay);
        }
        if self.inner.settle.is_some() && live.settle_ready {
            m.push(MethodKind::Settle);
        }
        m
    }

    /// The configured card terminal, with its connection state (Finix `include_connection`).
    pub async fn terminal(&self) -> Result<kasa_connect::finix::Device, ApiError> {
        let device =
            self.inner.finix.device(&self.inner.config.finix.device_id).await.map_err(|e| connect_error(&e))?;
        self.set_terminal_problem((!device.is_connected()).then(|| terminal_closed(&device)));
        Ok(device)
    }

    /// Activates (or deactivates) the configured card terminal (manager PIN); journaled.
    pub async fn set_terminal_active(&self, active: bool, pin: &str) -> Result<kasa_connect::finix::Device, ApiError> {
        self.check_pin(pin).await?;
        let id = &self.inner.config.finix.device_id;
        let finix = &self.inner.finix;
        let device = if active { finix.activate(id).await } else { finix.deactivate(id).await };
        device.map_err(|e| connect_error(&e))?;
        self.journal_manager_action(
            if active { "terminal_activated" } else { "terminal_deactivated" },
            serde_json::json!({ "device": id }),
        )
        .await?;
        self.terminal().await
    }

    /// Registers a new card terminal under the merchant (manager PIN); journaled. Its id goes
    /// into the configuration's `finix.device_id`.
    pub async fn create_terminal(
        &self,
        model: &str,
        name: &str,
        serial_number: &str,
        pin: &str,
    ) -> Result<kasa_connect::finix::Device, ApiError> {
        self.check_pin(pin).await?;
        let merchant = &self.inner.config.finix.merchant_id;
        let device = self
            .inner
            .finix
            .create_device(
                merchant,
                model,
                name,
                &format!("{name} at {}", self.inner.config.tokenx.terminal_id),
                serial_number,
            )
            .await
            .map_err(|e| connect_error(&e))?;
        self.journal_manager_action("terminal_created", serde_json::json!({ "device": device.id, "model": model }))
            .await?;
        Ok(device)
    }

    async fn journal_manager_action(&self, kind: &str, data: serde_json::Value) -> Result<(), ApiError> {
        let at = now();
        let rec = JournalRecord { sale_id: None, kind: kind.to_string(), data };
        self.db(move |s| Ok(s.write(|tx| tx.append_journal(&rec, at))?)).await.map(|_| ())
    }

    fn set_terminal_problem(&self, problem: Option<String>) {
        let changed = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            let changed = live.terminal_problem != problem;
            live.terminal_problem = problem;
            changed
        };
        if changed {
            self.emit_status();
        }
    }

    fn set_settle_ready(&self) {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).settle_ready = true;
        self.emit_status();
    }

    /// Cancels the payment attempt under way (card at the terminal, app or QR payment). The
    /// sale goes back to waiting for payment when the provider confirms; no money is taken.
    pub async fn cancel_payment(&self, sale_id: &str) -> Result<(), ApiError> {
        let sale = self.sale(sale_id).await?;
        let attempt = match (&sale.attempt, sale.state) {
            (Some(a), SaleState::Paying) => a.clone(),
            _ => return Err(ApiError::new(ErrorCode::InvalidState, "There is no payment under way to cancel.")),
        };
        match attempt.method.kind() {
            MethodKind::Card => match self.inner.finix.cancel(&self.inner.config.finix.device_id).await {
                Ok(_) => Ok(()),
                Err(e) if e.status() == Some(422) => {
                    Err(ApiError::new(ErrorCode::InvalidState, "The terminal has no payment in progress to cancel."))
                }
                Err(e) => Err(connect_error(&e)),
            },
            MethodKind::Settle => match (&attempt.provider_ref, &self.inner.settle) {
                (Some(tid), Some(settle)) => settle.abort(tid).await.map_err(|e| connect_error(&e)),
                _ => {
                    let pos_tid = attempt.reference.unwrap_or_default();
                    self.inner.scans.signal(&pos_tid, scans::ScanSignal::Cancelled);
                    Ok(())
                }
            },
            MethodKind::MobilePay => mobilepay::cancel(self, attempt.reference.as_deref().unwrap_or_default()).await,
            MethodKind::Cash => Err(ApiError::new(ErrorCode::InvalidState, "A cash payment has nothing to cancel.")),
        }
    }

    /// Abandons an open sale. A partly paid one is voided by a manager ([`Engine::void_sale`]).
    pub async fn cancel_sale(&self, sale_id: &str) -> Result<SaleView, ApiError> {
        // Checked in the transaction that cancels: a payment finishing meanwhile can't slip by.
        let only_open = |sale: &Sale| match sale.state {
            SaleState::Tendering | SaleState::NeedsAttention => Err(ApiError::new(
                ErrorCode::InvalidState,
                "Money was taken for this sale: a manager voids it with the PIN, which gives it back.",
            )),
            _ => Ok(()),
        };
        let sale = self.apply_checked(sale_id, SaleEvent::CancelRequested, only_open).await?;
        Ok(self.view(&sale))
    }

    /// Voids a partly paid sale (manager PIN): every paid part is given back through its
    /// method, then the pump order is released and the sale cancelled.
    pub async fn void_sale(&self, sale_id: &str, pin: &str) -> Result<SaleView, ApiError> {
        self.check_pin(pin).await?;
        let sale = self.apply(sale_id, SaleEvent::CancelRequested).await?;
        Ok(self.view(&sale))
    }

    /// Gives back `amount` of payment `payment` of a paid sale, through the method it was paid
    /// by (manager PIN). Never more than the payment took.
    pub async fn refund(
        &self,
        sale_id: &str,
        payment: u32,
        amount: Money,
        pin: &str,
        reason: &str,
    ) -> Result<SaleView, ApiError> {
        if reason.trim().len() < 3 {
            return Err(ApiError::new(ErrorCode::BadInput, "Say why the money is given back."));
        }
        self.check_pin(pin).await?;
        let event = SaleEvent::RefundRequested { payment, amount, reason: reason.trim().to_string() };
        let sale = self.apply(sale_id, event).await?;
        Ok(self.view(&sale))
    }

    /// The paper is back (or the cover closed): print what waits for the printer now.
    pub async fn retry_printer(&self) -> Result<(), ApiError> {
        let at = now();
        self.db(move |s| Ok(s.write(|tx| tx.outbox_due_now(&Op::PrintSlip { copy: false, refund: None }.lane(), at))?))
            .await?;
        self.inner.dispatch_kick.notify_one();
        Ok(())
    }

    /// Asks the printer for its status (paper, cover, online); `None` when it does not answer
    /// status requests or no printer is set up.
    pub async fn printer_status(&self) -> Result<Option<kasa_print::driver::PrinterStatus>, ApiError> {
        let Some(p) = self.inner.printer.clone() else { return Ok(None) };
        let result = tokio::task::spawn_blocking(move || kasa_print::driver::status(&p.target, Default::default()))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        match result {
            Ok(status) => Ok(status),
            Err(e) => Err(ApiError::new(ErrorCode::Offline, e.to_string())),
        }
    }

    /// Opens the cash drawer (manager PIN); journaled.
    pub async fn open_drawer(&self, pin: &str) -> Result<(), ApiError> {
        self.check_pin(pin).await?;
        let p = self.inner.printer.clone().ok_or_else(|| {
            ApiError::new(ErrorCode::Setup, "No printer is set up: the drawer hangs off the printer.")
        })?;
        let sent = tokio::task::spawn_blocking(move || {
            kasa_print::driver::send(&p.target, &kasa_print::escpos::drawer_only(), Default::default())
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        sent.map_err(|e| ApiError::new(ErrorCode::Offline, e.to_string()))?;
        let at = now();
        self.db(move |s| {
            let rec = JournalRecord { sale_id: None, kind: "drawer_opened".into(), data: serde_json::json!({}) };
            Ok(s.write(|tx| tx.append_journal(&rec, at))?)
        })
        .await?;
        Ok(())
    }

    /// A paid sale's slip (or, with `refund`, a refund's slip) as a PDF.
    pub async fn slip_pdf(
        &self,
        sale_id: &str,
        paper: kasa_print::pdf::Paper,
        copy: bool,
    ) -> Result<Vec<u8>, ApiError> {
        render_slip_pdf(&self.sale(sale_id).await?, &self.inner.config, paper, copy)
    }

    /// Writes a paid sale's slip as a PDF into the data directory's `slips/` folder (for
    /// e-mailing or archiving); returns the file.
    pub async fn export_slip_pdf(
        &self,
        sale_id: &str,
        paper: kasa_print::pdf::Paper,
    ) -> Result<std::path::PathBuf, ApiError> {
        let pdf = self.slip_pdf(sale_id, paper, true).await?;
        let dir = self.inner.config.data_dir.join("slips");
        let path = dir.join(format!("{sale_id}.pdf"));
        let p2 = path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&p2, pdf)
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorCode::Setup, format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A picture of the slip as the printer prints it (PNG), for the on-screen preview.
    pub async fn slip_png(&self, sale_id: &str) -> Result<Vec<u8>, ApiError> {
        let sale = self.sale(sale_id).await?;
        let mut slip = Slip::from_sale(&sale, &self.inner.config.store, false)
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
        slip.receipt = None;
        let width = self.slip_width();
        let blocks = kasa_print::layout::layout(&slip, width);
        Ok(kasa_print::raster::render_png(&blocks, width))
    }

    fn slip_width(&self) -> kasa_print::Width {
        self.inner.printer.as_ref().map(|p| p.width).unwrap_or(self.inner.config.printer.width)
    }

    /// Queues a copy of the slip of a paid sale.
    pub async fn reprint(&self, sale_id: &str) -> Result<(), ApiError> {
        let id = sale_id.to_string();
        let at = now();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StepError> {
                let sale = tx.sale(&id)?;
                if !sale.state.is_paid() {
                    return Err(StepError::Api(ApiError::new(ErrorCode::InvalidState, "Only a paid sale has a slip.")));
                }
                let q = Queued { key: UuidIds.next_id(), op: Op::PrintSlip { copy: true, refund: None } };
                tx.enqueue(Some(&id), &q, at)?;
                let rec = JournalRecord {
                    sale_id: Some(id.clone()),
                    kind: "slip_reprinted".into(),
                    data: serde_json::json!({}),
                };
                tx.append_journal(&rec, at)?;
                Ok(())
            })
        })
        .await?;
        self.inner.dispatch_kick.notify_one();
        Ok(())
    }

    /// The newest sales, newest first (for the manager's sales list).
    pub async fn recent_sales(&self, limit: u32) -> Result<Vec<SaleView>, ApiError> {
        let sales = self.db(move |s| Ok(s.recent_sales(limit)?)).await?;
        Ok(sales.iter().map(|s| self.view(s)).collect())
    }

    /// One sale.
    pub async fn sale(&self, sale_id: &str) -> Result<Sale, ApiError> {
        let id = sale_id.to_string();
        self.db(move |s| s.sale(&id)?.ok_or_else(|| StepError::Store(StoreError::NotFound(format!("sale {id}"))))).await
    }

    /// The view of one sale.
    pub async fn sale_view(&self, sale_id: &str) -> Result<SaleView, ApiError> {
        Ok(self.view(&self.sale(sale_id).await?))
    }

    /// Waits until the sale is not waiting on the cloud or the terminal, or the timeout passes.
    pub async fn wait_settled(&self, sale_id: &str, timeout: Duration) -> Result<SaleView, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let sale = self.sale(sale_id).await?;
            if !sale.state.is_busy() || tokio::time::Instant::now() >= deadline {
                return Ok(self.view(&sale));
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Waits until the sale reaches `state`, or the timeout passes; returns the sale.
    pub async fn wait_for_state(&self, sale_id: &str, state: SaleState, timeout: Duration) -> Result<Sale, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.borrow_and_update();
            let sale = self.sale(sale_id).await?;
            if sale.state == state || tokio::time::Instant::now() >= deadline {
                return Ok(sale);
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Connectivity, queue and printer state.
    pub fn status(&self) -> StatusView {
        let methods = self.methods();
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        StatusView {
            online: live.online,
            offline_reason: live.offline_reason.clone(),
            orders_age_secs: live.orders_listed_at.map(|t| (now() - t).whole_seconds().max(0) as u64),
            queue_pending: live.queue.pending,
            queue_parked: live.queue.parked,
            sales_attention: live.queue.attention,
            terminal_id: self.inner.config.tokenx.terminal_id.clone(),
            printer_problem: live.printer_problem.clone(),
            terminal_problem: live.terminal_problem.clone(),
            demo: self.inner.demo,
            recovery: live.recovery.clone(),
            methods,
        }
    }

    /// Waits until every queued operation is delivered or parked, or the timeout passes;
    /// returns the counts left.
    pub async fn drain(&self, timeout: Duration) -> Result<QueueCounts, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let counts = self.db(|s| Ok(s.queue_counts()?)).await?;
            if counts.pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(counts);
            }
            self.inner.dispatch_kick.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks the journal's hash chain.
    pub async fn verify_journal(&self) -> Result<Verification, ApiError> {
        self.db(|s| Ok(s.verify_journal()?)).await
    }

    /// Applies one event to a sale in one transaction and wakes whoever must act on it.
    async fn apply(&self, sale_id: &str, event: SaleEvent) -> Result<Sale, ApiError> {
        self.apply_checked(sale_id, event, |_| Ok(())).await
    }

    /// Like [`Engine::apply`], after `check` accepted the sale as it is inside the transaction.
    async fn apply_checked(
        &self,
        sale_id: &str,
        event: SaleEvent,
        check: impl FnOnce(&Sale) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<Sale, ApiError> {
        let id = sale_id.to_string();
        let at = now();
        let (sale, queued) = self
            .db(move |s| {
                s.write(|tx| -> Result<(Sale, bool), StepError> {
                    let mut sale = tx.sale(&id)?;
                    check(&sale).map_err(StepError::Api)?;
                    let t = sale.handle(event, at, &mut UuidIds)?;
                    persist(tx, &sale, &t, at)?;
                    failpoint!("step.before_commit");
                    Ok((sale, !t.ops.is_empty()))
                })
            })
            .await?;
        failpoint!("step.after_commit");
        self.after_change(&sale, queued);
        Ok(sale)
    }

    fn after_change(&self, sale: &Sale, queued: bool) {
        if queued {
            self.inner.dispatch_kick.notify_one();
        }
        self.inner.changes.send_modify(|n| *n += 1);
        let _ = self.inner.events.send(EngineEvent::SaleChanged { sale: Box::new(self.view(sale)) });
    }

    fn view(&self, sale: &Sale) -> SaleView {
        let slip = sale.state.is_paid().then(|| self.slip_text(sale)).flatten();
        let mut view = SaleView::new(sale, slip);
        if let (Some(a), Some(v)) = (&sale.attempt, &mut view.attempt) {
            v.qr = match a.method.kind() {
                MethodKind::Settle => a
                    .reference
                    .as_deref()
                    .zip(self.inner.settle.as_ref())
                    .map(|(pos_tid, settle)| settle.qr_url(pos_tid)),
                MethodKind::MobilePay => mobilepay::terminal_qr(self),
                _ => None,
            };
            v.qr_svg = v.qr.as_deref().and_then(dto::qr_svg);
        }
        view
    }

    /// The slip as it was printed at payment: the pump's receipt, which arrives later, is
    /// shown beside it and goes only on copies.
    fn slip_text(&self, sale: &Sale) -> Option<String> {
        let mut slip = Slip::from_sale(sale, &self.inner.config.store, false).ok()?;
        slip.receipt = None;
        let width = self.slip_width();
        let blocks = kasa_print::layout::layout(&slip, width);
        // Show what the printer will print: the text as its code page can render it.
        let page = self.inner.config.printer.code_page;
        Some(page.printed_form(&kasa_print::layout::to_text(&blocks)))
    }

    async fn refresh_queue_counts(&self) {
        if let Ok(counts) = self.db(|s| Ok(s.queue_counts()?)).await {
            self.set_queue_counts(counts);
        }
    }

    fn set_queue_counts(&self, counts: QueueCounts) {
        let changed = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            let changed = live.queue != counts;
            live.queue = counts;
            changed
        };
        if changed {
            self.emit_status();
        }
    }

    fn emit_status(&self) {
        let _ = self.inner.events.send(EngineEvent::StatusChanged { status: self.status() });
    }

    fn set_online(&self, online: bool, reason: Option<String>) {
        let (changed, reconnected) = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            let reconnected = online && !live.online;
            let changed = live.online != online || live.offline_reason != reason;
            live.online = online;
            live.offline_reason = reason;
            (changed, reconnected)
        };
        if reconnected {
            // Back online: what waited for the cloud goes now rather than at its next backoff.
            let engine = self.clone();
            tokio::spawn(async move {
                let at = now();
                let _ = engine.db(move |s| Ok(s.write(|tx| tx.outbox_due_now("order:", at))?)).await;
                engine.inner.dispatch_kick.notify_one();
            });
        }
        if changed {
            self.emit_status();
        }
    }

    fn set_printer_problem(&self, problem: Option<String>) {
        let changed = {
            let mut live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
            let changed = live.printer_problem != problem;
            live.printer_problem = problem;
            changed
        };
        if changed {
            self.emit_status();
        }
    }

    /// Fetches an order from the cloud directly (for the CLI's `orders` listing).
    pub async fn fetch_order(&self, order_id: &str) -> Result<PumpOrder, ApiError> {
        self.inner.tokenx.order(order_id).await.map_err(|e| connect_error(&e))
    }
}

/// A paid sale's slip as a PDF, laid out for the configured printer's paper width.
pub(crate) fn render_slip_pdf(
    sale: &Sale,
    config: &Config,
    paper: kasa_print::pdf::Paper,
    copy: bool,
) -> Result<Vec<u8>, ApiError> {
    if !sale.state.is_paid() {
        return Err(ApiError::new(ErrorCode::InvalidState, "Only a paid sale has a slip."));
    }
    let slip =
        Slip::from_sale(sale, &config.store, copy).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let blocks = kasa_print::layout::layout(&slip, config.printer.width);
    kasa_print::pdf::render_pdf(&blocks, paper).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// The Token X client of a configuration, with its secret from `credentials`.
pub(crate) fn tokenx_client(config: &Config, credentials: &dyn Credentials) -> Result<TokenxClient, ApiError> {
    tokenx_client_with(http_client(), config, credentials)
}

fn tokenx_client_with(
    http: kasa_connect::HttpClient,
    config: &Config,
    credentials: &dyn Credentials,
) -> Result<TokenxClient, ApiError> {
    let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
    let client_secret: Secret = credentials.get(credentials::TOKENX_CLIENT_SECRET).map_err(|e| setup(e.to_string()))?;
    Ok(TokenxClient::new(
        http,
        TokenxSettings {
            base_url: base_url(&config.tokenx.base_url).map_err(|e| setup(e.to_string()))?,
            terminal_id: config.tokenx.terminal_id.clone(),
            client_id: config.tokenx.client_id.clone(),
            client_secret,
            timeout: Duration::from_secs(10),
        },
    ))
}

/// What the cashier reads when the card terminal can't take payments.
fn terminal_closed(device: &kasa_connect::finix::Device) -> String {
    if device.enabled {
        "The card terminal is not connected: check that it is on, online, with the Finix app open.".into()
    } else {
        "The card terminal is not activated: activate it in the manager area.".into()
    }
}

fn printer_setup(config: &Config) -> Result<Option<PrinterSetup>, ApiError> {
    use kasa_print::driver::Target;
    let p = &config.printer;
    let target = match p.kind.as_str() {
        "tcp" => Target::Tcp(p.address.clone().unwrap_or_default()),
        "file" => Target::File(p.path.clone().unwrap_or_default()),
        "serial" => Target::Serial { path: p.path.clone().unwrap_or_default().display().to_string(), baud: p.baud },
        "spooler" => Target::Spooler(p.name.clone().unwrap_or_default()),
        _ => return Ok(None),
    };
    let model = Model::by_id(&p.model)
        .ok_or_else(|| ApiError::new(ErrorCode::Setup, format!("unknown printer model {}", p.model)))?;
    let mut setup = Setup::new(model, p.code_page);
    setup.page_number_override = p.page_number;
    setup.page_number().map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
    Ok(Some(PrinterSetup { target, setup, width: p.width }))
}
