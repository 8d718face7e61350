//! Register settings kept in the database (never secrets for remote systems).

use crate::Cached;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError, Tx};

impl Tx<'_> {
    /// Stores a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn().run(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

impl Store {
    /// Reads a setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| Ok(c.row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?))
    }
}

/// Wrong-PIN bookkeeping of the manager area, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ManagerGuard {
    /// Wrong PINs (and attempts still being checked) since the last lockout or right PIN.
    pub failures: u32,
    /// Lockouts since the last right PIN.
    pub lockouts: u32,
    /// Locked until then (unix milliseconds).
    pub locked_until_ms: i64,
    /// Attempts refused while locked.
    pub refused: u64,
}

impl Tx<'_> {
    /// A setting, read inside the transaction.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn().row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    /// The wrong-PIN bookkeeping.
    pub fn manager_guard(&self) -> Result<ManagerGuard, StoreError> {
        Ok(self.conn().row(
            "SELECT failures, lockouts, locked_until_ms, refused FROM manager_guard WHERE id = 1",
            [],
            |r| {
                Ok(ManagerGuard {
                    failures: r.get(0)?,
                    lockouts: r.get(1)?,
                    locked_until_ms: r.get(2)?,
                    refused: r.get::<_, i64>(3)?.max(0) as u64,
                })
            },
        )?)
    }

    /// Stores the wrong-PIN bookkeeping.
    pub fn set_manager_guard(&self, g: &ManagerGuard) -> Result<(), StoreError> {
        self.conn().run(
            "UPDATE manager_guard SET failures = ?1, lockouts = ?2, locked_until_ms = ?3, refused = ?4 WHERE id = 1",
            params![g.failures, g.lockouts, g.locked_until_ms, g.refused as i64],
        )?;
        Ok(())
    }
}
