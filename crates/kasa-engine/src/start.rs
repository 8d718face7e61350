//! Starting a register: the configuration checked, the data directory taken, the database
//! opened, the providers built, start-up recovery run, and the background work started, in that
//! order, each a step of its own.

use std::sync::{Arc, Mutex};

use kasa_core::signal::Signal;
use kasa_store::Store;
use tokio::sync::{Notify, broadcast};

use crate::providers::{self, Providers};
use crate::{ApiError, Config, Credentials, Engine, Env, ErrorCode, Inner, Live, dispatch, owner, recovery, sync};

fn setup(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Setup, e.to_string())
}

impl Engine {
    /// Starts the register: takes its data directory, opens the database, builds the clients,
    /// resolves what a crash left, and starts the dispatcher and order sync.
    pub async fn start(config: Config, credentials: &dyn Credentials) -> Result<Engine, ApiError> {
        Engine::start_in(config, credentials, Env::system()).await
    }

    /// Starts the register in the surroundings `env` (the simulation's clock, network and
    /// seed; [`Engine::start`] is this with [`Env::system`]).
    pub async fn start_in(config: Config, credentials: &dyn Credentials, env: Env) -> Result<Engine, ApiError> {
        Engine::start_with(config, credentials, env, false).await
    }

    pub(crate) async fn start_with(
        config: Config,
        credentials: &dyn Credentials,
        env: Env,
        demo: bool,
    ) -> Result<Engine, ApiError> {
        config.check().map_err(setup)?;
        let providers = Providers::build(&config, credentials, &env)?;
        let catalog = config.shop_items().map_err(setup)?;
        let dir_lock = take_data_dir(&config, &env).await?;
        let (key, unkeyed) = journal_key(&config, credentials)?;
        let store = open_store(&config, &env, key).await?;
        if unkeyed {
            match store.seal_unkeyed_journal() {
                Ok(n) => {
                    tracing::info!("the journal's {n} entries from before it was keyed are sealed with the new key")
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
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
                changes: Signal::new(0),
                fiscal_changes: Signal::new(0),
                shutdown: Signal::new(false),
                live: Mutex::new(Live { orders_listed_at, ..Live::default() }),
                sessions: Mutex::new(crate::access::Sessions::default()),
                demo,
                tasks: Mutex::new(Vec::new()),
                env,
                stored_listing: Mutex::new(None),
                listening: Mutex::new(Vec::new()),
                owner: Mutex::new(Some(dir_lock)),
            }),
        };
        engine.check_journal_at_start().await?;
        engine.recover().await?;
        engine.spawn_background().await?;
        Ok(engine)
    }

    /// Resolves unfinished work before anything is sent, and keeps what was done for the
    /// cashier.
    async fn recover(&self) -> Result<(), ApiError> {
        let at = self.now();
        let env = self.env().clone();
        let recovered = self.db(move |s| s.write(|tx| recovery::recover(tx, at, &env))).await?;
        for line in &recovered {
            tracing::warn!("recovery: {line}");
        }
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).recovery = recovered;
        self.refresh_queue_counts().await;
        Ok(())
    }

    /// Verifies the journal from its last checkpoint. A break does not stop the register (the
    /// customers' money goes on being recorded); it is journaled, and the status bar shows it to
    /// the manager until a full verification finds the journal intact.
    async fn check_journal_at_start(&self) -> Result<(), ApiError> {
        self.verify_journal_in(true).await.map(|_| ())
    }

    /// Starts the providers' work, the dispatcher and order sync.
    async fn spawn_background(&self) -> Result<(), ApiError> {
        providers::start(self).await?;
        self.spawn(dispatch::run(self.clone()));
        self.spawn(sync::run(self.clone()));
        Ok(())
    }
}

/// One writer per data directory: nothing after this runs unless this register holds it.
async fn take_data_dir(config: &Config, env: &Env) -> Result<owner::DirLock, ApiError> {
    let dir = config.data_dir.clone();
    env.blocking(move || owner::DirLock::acquire(&dir)).await.map_err(setup)?.map_err(|e| match e {
        owner::LockError::Taken { .. } => ApiError::new(ErrorCode::RegisterRunning, e.to_string()),
        other => setup(other),
    })
}

/// The journal key, and whether the journal holds entries from before it was keyed, to be
/// sealed now. The first start on a machine makes the key; but a journal sealed already with a
/// key the keyring does not hold is refused, since a new key could never verify it.
fn journal_key(
    config: &Config,
    credentials: &dyn Credentials,
) -> Result<(kasa_core::journal::JournalKey, bool), ApiError> {
    use crate::credentials::{new_journal_key, read_journal_key};
    if let Some(key) = read_journal_key(credentials).map_err(setup)? {
        return Ok((key, false));
    }
    let sealing = kasa_store::sealing(&config.database_path()).map_err(setup)?;
    if sealing == kasa_store::Sealing::Keyed {
        return Err(ApiError::new(
            ErrorCode::Setup,
            format!(
                "the journal in {} is sealed with a key this machine's keyring does not hold: restore the register's \
                 `journal.key` from its backup (kasa secrets set journal.key) and start again; a new key could not verify it",
                config.data_dir.display()
            ),
        ));
    }
    let key = new_journal_key(credentials).map_err(setup)?;
    Ok((key, sealing == kasa_store::Sealing::Unkeyed))
}

async fn open_store(config: &Config, env: &Env, key: kasa_core::journal::JournalKey) -> Result<Store, ApiError> {
    let path = config.database_path();
    let env2 = env.clone();
    env.blocking(move || env2.open_store(&path, key)).await.map_err(setup)?.map_err(setup)
}
