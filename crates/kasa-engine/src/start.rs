//! Starting a register: the configuration checked, the data directory taken, the database
//! opened, the providers built, start-up recovery run, and the background work started, in that
//! order, each a step of its own.

use std::sync::{Arc, Mutex};

use kasa_store::Store;
use tokio::sync::{Notify, broadcast, watch};

use crate::providers::{self, Providers};
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, Inner, Live, dispatch, now, owner, recovery, sync};

fn setup(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Setup, e.to_string())
}

impl Engine {
    /// Starts the register: takes its data directory, opens the database, builds the clients,
    /// resolves what a crash left, and starts the dispatcher and order sync.
    pub async fn start(config: Config, credentials: &dyn Credentials) -> Result<Engine, ApiError> {
        Engine::start_with(config, credentials, false).await
    }

    pub(crate) async fn start_with(
        config: Config,
        credentials: &dyn Credentials,
        demo: bool,
    ) -> Result<Engine, ApiError> {
        config.check().map_err(setup)?;
        let providers = Providers::build(&config, credentials)?;
        let catalog = config.shop_items().map_err(setup)?;
        let dir_lock = take_data_dir(&config).await?;
        let store = open_store(&config).await?;
        let orders_listed_at = store.orders_listed_at()?;
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                store: Arc::new(store),
                providers,
                catalog,
                events: broadcast::channel(256).0,
                dispatch_kick: Notify::new(),
                sync_kick: Notify::new(),
                changes: watch::channel(0).0,
                shutdown: watch::channel(false).0,
                live: Mutex::new(Live { orders_listed_at, ..Live::default() }),
                pin_guard: Mutex::new(crate::manager::PinGuard::default()),
                demo,
                tasks: Mutex::new(Vec::new()),
                owner: Mutex::new(Some(dir_lock)),
            }),
        };
        engine.recover().await?;
        engine.spawn_background().await?;
        Ok(engine)
    }

    /// Resolves unfinished work before anything is sent, and keeps what was done for the
    /// cashier.
    async fn recover(&self) -> Result<(), ApiError> {
        let at = now();
        let recovered = self.db(move |s| s.write(|tx| recovery::recover(tx, at))).await?;
        for line in &recovered {
            tracing::warn!("recovery: {line}");
        }
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).recovery = recovered;
        self.refresh_queue_counts().await;
        Ok(())
    }

    /// Starts the providers' work, the dispatcher and order sync.
    async fn spawn_background(&self) -> Result<(), ApiError> {
        let mut tasks = providers::start(self).await?;
        tasks.push(tokio::spawn(dispatch::run(self.clone())));
        tasks.push(tokio::spawn(sync::run(self.clone())));
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()).extend(tasks);
        Ok(())
    }
}

/// One writer per data directory: nothing after this runs unless this register holds it.
async fn take_data_dir(config: &Config) -> Result<owner::DirLock, ApiError> {
    let dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || owner::DirLock::acquire(&dir)).await.map_err(setup)?.map_err(|e| match e {
        owner::LockError::Taken { .. } => ApiError::new(ErrorCode::RegisterRunning, e.to_string()),
        other => setup(other),
    })
}

async fn open_store(config: &Config) -> Result<Store, ApiError> {
    let path = config.database_path();
    tokio::task::spawn_blocking(move || Store::open(&path)).await.map_err(setup)?.map_err(setup)
}
