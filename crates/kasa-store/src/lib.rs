//! Kasa's local SQLite database.
//!
//! One file holds cached pump orders, sales, the locks this register may hold, the outbox of
//! operations still to deliver, and the hash-chained journal. The database runs in WAL mode
//! with `synchronous=FULL`: a step that returns has reached the disk.
//!
//! Writes go through [`Store::write`], which opens one transaction and hands it down as a
//! [`Tx`]; nothing in this crate opens a transaction behind the caller's back. A sale step, its
//! outbox messages and its journal entry therefore commit together or not at all.

#[cfg(feature = "faults")]
pub mod faults;
mod journal;
mod locks;
mod orders;
mod outbox;
mod reports;
mod sales;
mod search;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use journal::JournalStats;
pub use journal::{CSV_HEADER, Sealing, sealing};
pub use locks::LockRow;
pub use outbox::{OutboxRow, OutboxState, QueueCounts};
pub use reports::LastZ;
pub use search::SalePage;
pub use settings::ManagerGuard;

/// Reader connections kept open for the next read.
const MAX_READERS: usize = 4;

/// Prepared statements each connection keeps (every statement of this crate fits).
const STATEMENT_CACHE: usize = 128;

/// Settings every connection gets: a cache of prepared statements, and the query planner's
/// stability guarantee, without which SQLite plans a statement again at every new value of a
/// bound `LIMIT` (the dispatcher's pass would be parsed and planned each time).
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Statements run through each connection's cache of prepared statements: the SQL is parsed
/// and planned once per connection, not at every call (parsing cost more than running most of
/// these statements).
pub(crate) trait Cached {
    /// Runs a statement; the number of rows changed.
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// The first row of a query.
    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn run<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        params: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Migrations in order; the database's `user_version` is the number applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_settings_and_queue_order", include_str!("../migrations/0002_settings_and_queue_order.sql")),
    ("0003_device_lanes", include_str!("../migrations/0003_device_lanes.sql")),
    ("0004_outbox_sale_index", include_str!("../migrations/0004_outbox_sale_index.sql")),
    ("0005_keyed_journal", include_str!("../migrations/0005_keyed_journal.sql")),
    ("0006_manager_access", include_str!("../migrations/0006_manager_access.sql")),
    ("0007_shift_reports", include_str!("../migrations/0007_shift_reports.sql")),
    ("0008_sale_search", include_str!("../migrations/0008_sale_search.sql")),
];

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON value could not be read or written.
    #[error("stored data could not be read: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer Kasa.
    #[error("the database at {path} has schema version {found}, newer than this Kasa ({known}); update Kasa")]
    TooNew {
        /// Database file.
        path: String,
        /// Version found.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
    /// The journal is sealed with the register's key, and this handle was opened without it.
    #[error("the journal key is not loaded: it is kept in the OS keyring as `journal.key` of the register's user")]
    NoJournalKey,
    /// A row that must exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value is not what Kasa writes.
    #[error("stored data is invalid: {0}")]
    Invalid(String),
    /// There is no database where one was to be read.
    #[error("there is no Kasa database at {0}: check the data directory (a register creates it when it first starts)")]
    Missing(String),
    /// The database was opened to be read only.
    #[error("the database is open read-only here: the running register is the one that writes it")]
    ReadOnly,
    /// The database has an older schema than this Kasa, and a read-only reader cannot update it.
    #[error(
        "the database at {path} has schema version {found}, older than this Kasa ({known}); start the register once to update it"
    )]
    TooOld {
        /// Database file.
        path: String,
        /// Version found.
        found: i64,
        /// Newest version known here.
        known: i64,
    },
}

/// The database.
pub struct Store {
    /// The connection that writes (or, for a read-only store, the one that reads).
    conn: Mutex<Connection>,
    /// Connections that only read, so a read never waits for a writer's commit to reach the
    /// disk (WAL lets readers and the one writer go on together).
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    read_only: std::sync::atomic::AtomicBool,
    /// Opened to write (readers of its own then serve the reads).
    writable: bool,
    /// The key that seals the journal: always there to write, needed to verify.
    key: Option<kasa_core::journal::JournalKey>,
    /// The simulation's hooks.
    #[cfg(feature = "faults")]
    hooks: faults::Hooks,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// An open write transaction. Every write function of the store takes one.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    key: Option<&'a kasa_core::journal::JournalKey>,
}

impl<'a> Tx<'a> {
    /// The underlying connection, for queries this crate does not wrap.
    pub fn conn(&self) -> &Connection {
        &self.tx
    }
}

impl Store {
    /// Opens (creating if needed, readable by its owner only) the database at `path` and
    /// brings its schema up to date; `key` seals what is written to the journal.
    pub fn open(path: &Path, key: kasa_core::journal::JournalKey) -> Result<Store, StoreError> {
        create_private_file(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        tune(&conn)?;
        let mut store = Store {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            read_only: false.into(),
            writable: true,
            key: Some(key),
            #[cfg(feature = "faults")]
            hooks: faults::Hooks::default(),
        };
        store.migrate()?;
        store.index_old_sales()?;
        Ok(store)
    }

    /// Like [`Store::open`], with the simulation's hooks. With a [`faults::Durability`], the
    /// WAL is first checkpointed and emptied, and is not checkpointed again while this store
    /// lives or when it closes (see [`faults`]).
    #[cfg(feature = "faults")]
    pub fn open_with_hooks(
        path: &Path,
        hooks: faults::Hooks,
        key: kasa_core::journal::JournalKey,
    ) -> Result<Store, StoreError> {
        let mut store = Store::open(path, key)?;
        if let Some(d) = &hooks.durability {
            let conn = store.conn.get_mut().unwrap_or_else(|e| e.into_inner());
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
            d.reset();
        }
        store.hooks = hooks;
        Ok(store)
    }

    /// Runs the simulation's hooks on a transaction about to commit.
    #[cfg(feature = "faults")]
    fn before_commit(&self) -> Result<(), StoreError> {
        match self.hooks.fault.as_ref().and_then(|f| f()) {
            Some(fault) => Err(fault.error().into()),
            None => Ok(()),
        }
    }

    #[cfg(not(feature = "faults"))]
    fn before_commit(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Notes a commit for the simulation's power cuts.
    #[cfg(feature = "faults")]
    fn after_commit(&self, synced: bool) {
        if let Some(d) = &self.hooks.durability {
            d.committed(faults::wal_len(&self.path), synced);
        }
    }

    #[cfg(not(feature = "faults"))]
    fn after_commit(&self, _synced: bool) {}

    /// Opens an existing database to read it only, beside the register that writes it (WAL
    /// readers never block the writer). Refuses a missing file instead of creating one, and a
    /// schema other than this Kasa's.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        tune(&conn)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        let path_text = path.display().to_string();
        if version > known {
            return Err(StoreError::TooNew { path: path_text, found: version, known });
        }
        if version < known {
            return Err(StoreError::TooOld { path: path_text, found: version, known });
        }
        Ok(Store {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            read_only: true.into(),
            writable: false,
            key: None,
            #[cfg(feature = "faults")]
            hooks: faults::Hooks::default(),
        })
    }

    /// The journal key, so a read-only handle can verify the chain.
    pub fn with_key(mut self, key: kasa_core::journal::JournalKey) -> Store {
        self.key = Some(key);
        self
    }

    /// Whether this handle only reads.
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Refuses every later write through this handle (a register that has stopped keeps
    /// reading, but the data directory may have a new writer by now).
    pub fn seal(&self) {
        self.read_only.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let conn = self.conn.get_mut().unwrap_or_else(|e| e.into_inner());
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { path: self.path.display().to_string(), found: version, known });
        }
        for (i, (_name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite rolls
        // back an unfinished one), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one write transaction; commits if it returns `Ok`, rolls back otherwise.
    pub fn write<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.is_read_only() {
            return Err(StoreError::ReadOnly.into());
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
        let tx = Tx { tx, key: self.key.as_ref() };
        let out = f(&tx)?;
        self.before_commit()?;
        tx.tx.commit().map_err(StoreError::from)?;
        self.after_commit(true);
        Ok(out)
    }

    /// Like [`Store::write`], for a transaction whose loss in a power cut costs nothing: a
    /// cache that is fetched again, or a step taken before any money moves or anything is sent
    /// (opening a sale). It is committed without waiting for the disk (`synchronous=NORMAL`,
    /// which in WAL mode keeps the database consistent); the next ordinary write, which does
    /// wait, makes it durable too. Anything a customer paid for, or that precedes a call to the
    /// outside, goes through [`Store::write`].
    pub fn write_without_sync<T, E>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        if self.is_read_only() {
            return Err(StoreError::ReadOnly.into());
        }
        let mut conn = self.lock();
        // Not through the statement cache: SQLite applies this pragma when it is prepared.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(StoreError::from)?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StoreError::from)?;
            let tx = Tx { tx, key: self.key.as_ref() };
            let out = f(&tx)?;
            self.before_commit()?;
            tx.tx.commit().map_err(StoreError::from)?;
            self.after_commit(false);
            Ok(out)
        })();
        conn.pragma_update(None, "synchronous", "FULL").map_err(StoreError::from)?;
        result
    }

    /// Runs read-only queries. Beside a writable store they run on a reader connection of their
    /// own (kept for the next read), so they see every committed write and never wait for a
    /// commit that is still reaching the disk.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if !self.writable {
            return f(&self.lock());
        }
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let reader = match pooled {
            Some(c) => c,
            None => self.open_reader()?,
        };
        // One read transaction: a read of several statements (the journal and its head, a
        // sale and its queue) sees one snapshot, whatever the writer commits meanwhile.
        let out = match reader.unchecked_transaction() {
            Ok(snapshot) => {
                let out = f(&snapshot);
                drop(snapshot); // nothing to keep: ends the read
                out
            }
            Err(e) => Err(e.into()),
        };
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < MAX_READERS {
            pool.push(reader);
        }
        out
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        tune(&c)?;
        #[cfg(feature = "faults")]
        if self.hooks.durability.is_some() {
            c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        }
        Ok(c)
    }

    /// SQLite's own consistency check; `Ok(())` when it answers "ok".
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let answer: String = self.read(|c| Ok(c.row("PRAGMA integrity_check", [], |r| r.get(0))?))?;
        if answer == "ok" { Ok(()) } else { Err(StoreError::Invalid(format!("integrity check: {answer}"))) }
    }
}

/// Creates the database file readable and writable by its owner only, before SQLite opens it
/// (SQLite gives its WAL and shared-memory files the same permissions). An existing file keeps
/// its permissions tightened the same way. On Windows the file inherits the owner-only ACL of
/// the user's profile directory.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Invalid(format!("cannot create {}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path).map_err(io)?;
    }
    Ok(())
}

/// RFC 3339 text for a timestamp column.
fn ts(at: time::OffsetDateTime) -> String {
    kasa_core::journal::format_time(at)
}

/// Parses an RFC 3339 column.
fn parse_ts(text: &str) -> Result<time::OffsetDateTime, StoreError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Invalid(format!("timestamp '{text}': {e}")))
}

#[cfg(test)]
mod tests;
