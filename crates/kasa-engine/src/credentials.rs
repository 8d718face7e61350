//! Secrets: one interface, backed by the OS keyring in production and by memory in demo mode.
//!
//! Each provider names its own entries (`tokenx.client_secret`, `finix.password`,
//! `mobilepay.access_token`, `settle.secret`, …; see [`names`]); those of a system the store
//! doesn't use need not be set. Secrets never go to the database, the configuration file or the
//! logs.

use kasa_connect::ExposeSecret;
use std::collections::HashMap;
use std::sync::Mutex;

use kasa_connect::Secret;

/// The names of the secrets Kasa uses, one or more per system.
pub fn names() -> impl Iterator<Item = &'static str> {
    crate::providers::LOCAL_SECRETS.iter().map(|(name, _)| *name)
}

/// The keyring entry of the key that seals this register's journal.
pub const JOURNAL_KEY: &str = "journal.key";

/// The register's journal key, if the credentials hold one.
pub fn read_journal_key(
    credentials: &dyn Credentials,
) -> Result<Option<kasa_core::journal::JournalKey>, CredentialError> {
    match credentials.get(JOURNAL_KEY) {
        Ok(secret) => kasa_core::journal::JournalKey::from_hex(secret.expose_secret())
            .map(Some)
            .map_err(|e| CredentialError::Unavailable(e.to_string())),
        Err(CredentialError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes a new journal key (32 random bytes) and stores it in the credentials.
pub fn new_journal_key(credentials: &dyn Credentials) -> Result<kasa_core::journal::JournalKey, CredentialError> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let text = hex::encode(bytes);
    credentials.set(JOURNAL_KEY, &text)?;
    kasa_core::journal::JournalKey::from_hex(&text).map_err(|e| CredentialError::Unavailable(e.to_string()))
}

/// Why a secret could not be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Not set yet.
    #[error("secret '{0}' is not set; set it with: kasa secrets set {0}  (the value is read from standard input)")]
    Missing(String),
    /// Not a name Kasa uses.
    #[error("'{0}' is not a secret Kasa uses; known names: {known}", known = names().collect::<Vec<_>>().join(", "))]
    UnknownName(String),
    /// The keyring can't be used.
    #[error(
        "the OS keyring is locked or missing ({0}); unlock it (log in to the desktop session) or start a Secret Service such as gnome-keyring"
    )]
    Unavailable(String),
}

/// Where secrets come from.
pub trait Credentials: Send + Sync {
    /// Reads a secret.
    fn get(&self, name: &str) -> Result<Secret, CredentialError>;
    /// Stores a secret.
    fn set(&self, name: &str, value: &str) -> Result<(), CredentialError>;
}

fn check_name(name: &str) -> Result<(), CredentialError> {
    if names().any(|n| n == name) { Ok(()) } else { Err(CredentialError::UnknownName(name.to_string())) }
}

/// Secrets in the OS keyring (Secret Service, Windows Credential Manager, Keychain), under the
/// service name `kasa`.
#[derive(Debug, Default)]
pub struct KeyringCredentials;

const SERVICE: &str = "kasa";

fn keyring_error(name: &str, e: keyring::Error) -> CredentialError {
    match e {
        keyring::Error::NoEntry => CredentialError::Missing(name.to_string()),
        other => CredentialError::Unavailable(other.to_string()),
    }
}

impl Credentials for KeyringCredentials {
    fn get(&self, name: &str) -> Result<Secret, CredentialError> {
        check_name(name)?;
        let entry = keyring::Entry::new(SERVICE, name).map_err(|e| keyring_error(name, e))?;
        entry.get_password().map(Secret::from).map_err(|e| keyring_error(name, e))
    }

    fn set(&self, name: &str, value: &str) -> Result<(), CredentialError> {
        check_name(name)?;
        let entry = keyring::Entry::new(SERVICE, name).map_err(|e| keyring_error(name, e))?;
        entry.set_password(value).map_err(|e| keyring_error(name, e))
    }
}

/// Secrets held in memory only (demo mode and tests).
#[derive(Debug, Default)]
pub struct MemoryCredentials {
    values: Mutex<HashMap<String, Secret>>,
}

impl MemoryCredentials {
    /// With the given secrets.
    pub fn with(pairs: &[(&str, &str)]) -> MemoryCredentials {
        let m = MemoryCredentials::default();
        for (k, v) in pairs {
            m.values.lock().unwrap_or_else(|e| e.into_inner()).insert(k.to_string(), Secret::from(*v));
        }
        m
    }
}

impl MemoryCredentials {
    /// These secrets without `name` (as a keyring that lost one).
    pub fn without(self, name: &str) -> MemoryCredentials {
        self.values.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        self
    }
}

impl Credentials for MemoryCredentials {
    fn get(&self, name: &str) -> Result<Secret, CredentialError> {
        check_name(name)?;
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| CredentialError::Missing(name.to_string()))
    }

    fn set(&self, name: &str, value: &str) -> Result<(), CredentialError> {
        check_name(name)?;
        self.values.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), Secret::from(value));
        Ok(())
    }
}
