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
