//! Hooks for the deterministic simulation (feature `faults`): write failures as a full disk or
//! a locked database would cause them, and a record of what a power cut may take away.
//!
//! A store opened with [`crate::Store::open_with_hooks`] and a [`Durability`] never
//! checkpoints its WAL while it runs and not when it closes: the WAL only grows, one commit
//! after another, so its length after a commit marks that commit. SQLite in WAL mode fsyncs the
//! WAL at a `synchronous=FULL` commit (and with it every frame before); a `synchronous=NORMAL`
//! commit stays in the OS's cache. After a power cut SQLite recovers the longest run of frames
//! whose checksums hold, so what survives is the WAL cut at some commit at or after the last
//! synced one: [`Durability::cut_points`] lists them, and [`cut_wal`] makes the cut.

use std::path::Path;
use std::sync::{Arc, Mutex};

/// A failure to inject into a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// `SQLITE_FULL`: the disk is full.
    DiskFull,
    /// `SQLITE_BUSY`: another connection holds the database.
    Busy,
}

impl WriteFault {
    pub(crate) fn error(self) -> rusqlite::Error {
        let (code, text) = match self {
            WriteFault::DiskFull => {
                (rusqlite::ffi::SQLITE_FULL, "database or disk is full (injected by the simulation)")
            }
            WriteFault::Busy => (rusqlite::ffi::SQLITE_BUSY, "database is locked (injected by the simulation)"),
        };
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(text.into()))
    }
}

/// Decides, for each write transaction just before it commits, whether it fails instead.
pub type FaultHook = Arc<dyn Fn() -> Option<WriteFault> + Send + Sync>;

/// What a simulation hooks into a store.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Injected write failures.
    pub fault: Option<FaultHook>,
    /// The record of commits for power cuts.
    pub durability: Option<Arc<Durability>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").field("fault", &self.fault.is_some()).field("durability", &self.durability).finish()
    }
}

/// The WAL lengths that mark commits since the last one that reached the disk.
#[derive(Debug, Default)]
pub struct Durability {
    inner: Mutex<Points>,
}

#[derive(Debug, Default)]
struct Points {
    /// WAL length after the last commit that waited for the disk.
    synced: u64,
    /// WAL lengths after each later commit that did not.
    unsynced: Vec<u64>,
}

impl Durability {
    /// Notes a commit that left the WAL `len` bytes long.
    pub(crate) fn committed(&self, len: u64, synced: bool) {
        let mut p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if synced {
            p.synced = len;
            p.unsynced.clear();
        } else {
            p.unsynced.push(len);
        }
    }

    /// Starts over after the WAL was checkpointed and emptied.
    pub(crate) fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Points::default();
    }

    /// The lengths a power cut may leave the WAL at: the last synced commit, and each unsynced
    /// commit after it.
    pub fn cut_points(&self) -> Vec<u64> {
        let p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once(p.synced).chain(p.unsynced.iter().copied()).collect()
    }
}

/// Cuts the WAL of the (closed) database at `db` to `len` bytes, as a power cut that kept only
/// that much would, and removes the shared-memory index so the next open rebuilds it from the
/// WAL. A length of zero leaves no WAL at all.
pub fn cut_wal(db: &Path, len: u64) -> std::io::Result<()> {
    let wal = sibling(db, "-wal");
    if wal.exists() {
        if len == 0 {
            std::fs::remove_file(&wal)?;
        } else {
            std::fs::OpenOptions::new().write(true).open(&wal)?.set_len(len)?;
        }
    }
    let shm = sibling(db, "-shm");
    if shm.exists() {
        std::fs::remove_file(shm)?;
    }
    Ok(())
}

pub(crate) fn wal_len(db: &Path) -> u64 {
    std::fs::metadata(sibling(db, "-wal")).map(|m| m.len()).unwrap_or(0)
}

fn sibling(db: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
