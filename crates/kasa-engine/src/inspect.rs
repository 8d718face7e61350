//! Looking at a data directory without running a register on it.
//!
//! The `kasa` commands that only read (`status`, `orders`, `queue list`, `journal verify`,
//! `slip`) open the database read-only through [`Inspect`]: they never run start-up recovery or
//! a dispatcher, so they can run beside a selling register (SQLite's WAL lets readers and the
//! one writer go on together) and tell the user whether that register is running.

use kasa_connect::ExposeSecret;
use kasa_core::journal::Verification;
use kasa_core::{OrderSummary, Sale, SaleState};
use kasa_store::{QueueCounts, Store};
use time::OffsetDateTime;

use crate::manager::QueueItem;
use crate::owner::{self, Owner};
use crate::{ApiError, Config, Credentials, ErrorCode};

/// A read-only view of one data directory.
#[derive(Debug)]
pub struct Inspect {
    store: Store,
    owner: Owner,
    config: Config,
}

/// What a glance at the data directory shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Whether a register runs on it.
    pub owner: Owner,
    /// Messages waiting for delivery and parked for the manager.
    pub queue: QueueCounts,
    /// When the cloud last listed the orders.
    pub orders_listed_at: Option<OffsetDateTime>,
    /// Sales waiting on the cloud, a terminal or an app, with their state.
    pub under_way: Vec<(String, SaleState)>,
    /// Sales held for a manager.
    pub attention: Vec<String>,
}

impl Inspect {
    /// Opens the configuration's database read-only. Refuses a directory without a database
    /// instead of creating one.
    pub fn open(config: &Config) -> Result<Inspect, ApiError> {
        let owner = owner::owner(&config.data_dir);
        let store = Store::open_read_only(&config.database_path())
            .map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
        Ok(Inspect { store, owner, config: config.clone() })
    }

    /// Who writes the directory, as seen when it was opened.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database, read-only.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queue depth, order list age and the sales under way.
    pub fn snapshot(&self) -> Result<Snapshot, ApiError> {
        let queue = self.store.queue_counts()?;
        let orders_listed_at = self.store.orders_listed_at()?;
        let busy = [SaleState::Locking, SaleState::Paying, SaleState::Voiding, SaleState::Tendering];
        let under_way = self.store.sales_in(&busy)?.into_iter().map(|s| (s.id.0, s.state)).collect();
        let attention = self.store.sales_in(&[SaleState::NeedsAttention])?.into_iter().map(|s| s.id.0).collect();
        Ok(Snapshot { owner: owner::owner(&self.config.data_dir), queue, orders_listed_at, under_way, attention })
    }

    /// The order list as the register last cached it, newest first.
    pub fn orders(&self) -> Result<Vec<OrderSummary>, ApiError> {
        Ok(self.store.orders(200)?)
    }

    /// Pending and parked messages, oldest first.
    pub fn queue(&self, limit: u32) -> Result<Vec<QueueItem>, ApiError> {
        Ok(self.store.outbox_open(limit)?.into_iter().map(QueueItem::from).collect())
    }

    /// Checks the journal's hash chain.
    /// The key is read from `credentials` (the register's keyring); a reader never makes one.
    pub fn verify_journal(&self, credentials: &dyn crate::Credentials) -> Result<Verification, ApiError> {
        let secret = credentials
            .get(crate::credentials::JOURNAL_KEY)
            .map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
        let key = kasa_core::journal::JournalKey::from_hex(secret.expose_secret())
            .map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
        let store = Store::open_read_only(self.store.path())?.with_key(key);
        Ok(store.verify_journal()?)
    }

    /// One sale.
    pub fn sale(&self, sale_id: &str) -> Result<Sale, ApiError> {
        self.store.sale(sale_id)?.ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("sale {sale_id} not found")))
    }

    /// A paid sale's slip as a PDF (marked as a copy when `copy`).
    pub fn slip_pdf(&self, sale_id: &str, paper: kasa_print::pdf::Paper, copy: bool) -> Result<Vec<u8>, ApiError> {
        crate::slips::render_slip_pdf(&self.sale(sale_id)?, &self.config, paper, copy)
    }
}

/// The cloud's order list, asked directly (no database is touched), for when no register runs.
pub async fn cloud_orders(config: &Config, credentials: &dyn Credentials) -> Result<Vec<OrderSummary>, ApiError> {
    let client = crate::providers::tokenx::client(config, credentials)?;
    let mut list = client.summary().await.map_err(|e| crate::connect_error(&e))?;
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.order_id.cmp(&b.order_id)));
    Ok(list)
}
