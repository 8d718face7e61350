//! Manager access: the PIN, the lockout that holds through restarts, and sessions.
//!
//! The PIN is 6 to 12 digits, kept as an Argon2id hash. Its first value is set when the register
//! is set up (`kasa manager set-pin`, or demo mode's documented PIN), never by whoever first
//! opens the manager screen: the desktop offers no way to set a PIN that is not set.
//!
//! Every attempt is counted in the database before its PIN is checked, in the one transaction
//! that also looks at the lockout; so guesses sent in parallel are each counted, and at most
//! [`MAX_FAILURES`] are ever checked between lockouts. After that many wrong PINs the area
//! closes for a minute, then two, four, … up to [`MAX_LOCKOUT`], until a right PIN. Wrong PINs,
//! lockouts and attempts refused while locked are journaled.
//!
//! A right PIN opens a session: a random token the screens send with every privileged call.
//! The engine checks it on each one (the UI hiding a button is never the check), and ends it
//! after [`crate::Config`]'s idle time without a privileged call.

use std::collections::HashMap;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use kasa_core::journal::JournalRecord;
use kasa_store::{ManagerGuard, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::{ApiError, Engine, ErrorCode, StepError};

pub(crate) const PIN_KEY: &str = "manager_pin";
/// Wrong PINs checked between lockouts.
pub const MAX_FAILURES: u32 = 5;
/// The first lockout; each next one lasts twice as long.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// A session ends after this long without a privileged call, unless configured otherwise.
pub const DEFAULT_IDLE_LOGOUT: Duration = Duration::from_secs(300);

/// An open manager session, as the screens hold it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ManagerSession {
    /// Sent with every privileged call.
    pub token: String,
    /// The session ends after this many seconds without a privileged call.
    #[ts(type = "number")]
    pub idle_logout_secs: u64,
}

/// The token is a bearer credential: debug output leaves it out.
impl std::fmt::Debug for ManagerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerSession")
            .field("token", &"[REDACTED]")
            .field("idle_logout_secs", &self.idle_logout_secs)
            .finish()
    }
}

/// Open sessions, in memory: a restart logs the manager out.
#[derive(Default)]
pub(crate) struct Sessions {
    last_used: HashMap<String, OffsetDateTime>,
}

/// The keys are session tokens: debug output shows how many, not which.
impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("open", &self.last_used.len()).finish()
    }
}

/// The lockout after the `n`-th one in a row (from 1).
fn lockout(n: u32) -> Duration {
    let doubled = FIRST_LOCKOUT.saturating_mul(1u32 << n.saturating_sub(1).min(16));
    doubled.min(MAX_LOCKOUT)
}

fn valid_pin(pin: &str) -> Result<(), ApiError> {
    if (6..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::BadInput, "A manager PIN is 6 to 12 digits."))
    }
}

fn hash_pin(pin: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("hashing the PIN failed: {e}")))
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn journal(kind: &str, data: serde_json::Value) -> JournalRecord {
    JournalRecord { sale_id: None, kind: kind.to_string(), data }
}

/// What the first transaction of an attempt decided.
enum Admitted {
    /// Counted; its PIN is to be checked against this hash.
    Check(String),
    /// Refused unchecked: the area is locked for this long.
    Locked(Duration),
    /// No PIN is set.
    NoPin,
}

impl Engine {
    /// Whether a manager PIN has been set.
    pub async fn has_manager_pin(&self) -> Result<bool, ApiError> {
        self.db(|s| Ok(s.setting(PIN_KEY)?.is_some())).await
    }

    /// Sets the first manager PIN, when the register is set up (the CLI's `kasa manager
    /// set-pin` and demo mode call this; the desktop does not offer it). Refused once a PIN is
    /// set: changing it needs the current one ([`Engine::change_manager_pin`]).
    pub async fn set_first_manager_pin(&self, new_pin: &str) -> Result<(), ApiError> {
        valid_pin(new_pin)?;
        let hash = hash_pin(new_pin)?;
        let at = self.now();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StepError> {
                if tx.setting(PIN_KEY)?.is_some() {
                    return Err(StepError::Api(ApiError::new(
                        ErrorCode::Refused,
                        "A manager PIN is already set: change it with the current PIN.",
                    )));
                }
                tx.set_setting(PIN_KEY, &hash)?;
                tx.append_journal(&journal("manager_pin_set", serde_json::json!({ "first": true })), at)?;
                Ok(())
            })
        })
        .await
    }

    /// Changes the manager PIN; the current PIN is checked like any login.
    pub async fn change_manager_pin(&self, current: &str, new_pin: &str) -> Result<(), ApiError> {
        valid_pin(new_pin)?;
        self.verify_pin(current).await?;
        let hash = hash_pin(new_pin)?;
        let at = self.now();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StoreError> {
                tx.set_setting(PIN_KEY, &hash)?;
                tx.append_journal(&journal("manager_pin_set", serde_json::json!({ "first": false })), at)?;
                Ok(())
            })?;
            Ok(())
        })
        .await?;
        // Whoever knew the old PIN is logged out.
        self.sessions().last_used.clear();
        Ok(())
    }

    /// Checks a PIN and opens a manager session.
    pub async fn manager_login(&self, pin: &str) -> Result<ManagerSession, ApiError> {
        self.verify_pin(pin).await?;
        if valid_pin(pin).is_err() {
            return Err(ApiError::new(
                ErrorCode::Setup,
                "This PIN is shorter than 6 digits (an older Kasa allowed it): change it with `kasa manager set-pin` \
                 (the current PIN, then a new one of 6 to 12 digits, on two lines).",
            ));
        }
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        let token = hex::encode(bytes);
        let now = self.now();
        self.sessions().last_used.insert(token.clone(), now);
        self.journal_event("manager_login", serde_json::json!({})).await?;
        Ok(ManagerSession { token, idle_logout_secs: self.idle_logout().as_secs() })
    }

    /// Ends a session.
    pub async fn manager_logout(&self, token: &str) -> Result<(), ApiError> {
        if self.sessions().last_used.remove(token).is_some() {
            self.journal_event("manager_logout", serde_json::json!({ "why": "asked" })).await?;
        }
        Ok(())
    }

    /// Whether `token` is an open session; it is then kept open for another idle period. A
    /// session idle for longer has ended (journaled once), and the manager logs in again.
    pub(crate) async fn authorize(&self, token: &str) -> Result<(), ApiError> {
        let now = self.now();
        let idle = self.idle_logout();
        let expired = {
            let mut sessions = self.sessions();
            match sessions.last_used.get(token).copied() {
                Some(last) if now - last <= idle => {
                    sessions.last_used.insert(token.to_string(), now);
                    return Ok(());
                }
                Some(_) => {
                    sessions.last_used.remove(token);
                    true
                }
                None => false,
            }
        };
        if expired {
            self.journal_event("manager_logout", serde_json::json!({ "why": "idle" })).await?;
        }
        Err(ApiError::new(ErrorCode::NotAuthorized, "The manager session has ended: log in with the manager PIN."))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The idle time, kept between 30 s and an hour whatever the configuration says.
    fn idle_logout(&self) -> Duration {
        self.inner
            .config
            .manager
            .idle_logout_secs
            .map_or(DEFAULT_IDLE_LOGOUT, |s| Duration::from_secs(s.clamp(30, 3600)))
    }

    /// Checks a PIN against the stored hash, with the lockout: counted first, checked after,
    /// then the count settled (see the module's documentation).
    pub(crate) async fn verify_pin(&self, pin: &str) -> Result<(), ApiError> {
        let at = self.now();
        let admitted = self
            .db(move |s| {
                Ok(s.write(|tx| -> Result<Admitted, StoreError> {
                    let Some(hash) = tx.setting(PIN_KEY)? else { return Ok(Admitted::NoPin) };
                    let mut g = tx.manager_guard()?;
                    let now = unix_ms(at);
                    if g.locked_until_ms > now || g.failures >= MAX_FAILURES {
                        g.refused += 1;
                        // Parallel attempts past the count lock the area from now if no lockout runs.
                        if g.locked_until_ms <= now {
                            g.lockouts += 1;
                            g.failures = 0;
                            g.locked_until_ms = now + lockout(g.lockouts).as_millis() as i64;
                        }
                        tx.set_manager_guard(&g)?;
                        let left = Duration::from_millis((g.locked_until_ms - now).max(0) as u64);
                        tx.append_journal(
                            &journal(
                                "manager_pin_refused",
                                serde_json::json!({ "locked_for_ms": left.as_millis() as u64 }),
                            ),
                            at,
                        )?;
                        return Ok(Admitted::Locked(left));
                    }
                    g.failures += 1;
                    tx.set_manager_guard(&g)?;
                    Ok(Admitted::Check(hash))
                })?)
            })
            .await?;
        let stored = match admitted {
            Admitted::NoPin => {
                return Err(ApiError::new(
                    ErrorCode::Setup,
                    "No manager PIN is set: the register's installer sets it with `kasa manager set-pin`.",
                ));
            }
            Admitted::Locked(left) => return Err(locked(left)),
            Admitted::Check(hash) => hash,
        };
        let pin = pin.to_string();
        let ok = self
            .env()
            .blocking(move || {
                PasswordHash::new(&stored)
                    .map(|h| Argon2::default().verify_password(pin.as_bytes(), &h).is_ok())
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        let at = self.now();
        let left = self
            .db(move |s| {
                Ok(s.write(|tx| -> Result<Option<Duration>, StoreError> {
                    let mut g = tx.manager_guard()?;
                    if ok {
                        tx.set_manager_guard(&ManagerGuard { refused: g.refused, ..ManagerGuard::default() })?;
                        return Ok(None);
                    }
                    let now = unix_ms(at);
                    tx.append_journal(
                        &journal("manager_pin_wrong", serde_json::json!({ "failures": g.failures })),
                        at,
                    )?;
                    if g.failures >= MAX_FAILURES && g.locked_until_ms <= now {
                        g.lockouts += 1;
                        g.failures = 0;
                        g.locked_until_ms = now + lockout(g.lockouts).as_millis() as i64;
                        let data = serde_json::json!({ "lockouts": g.lockouts, "until_ms": g.locked_until_ms });
                        tx.append_journal(&journal("manager_locked", data), at)?;
                    }
                    tx.set_manager_guard(&g)?;
                    Ok(Some(Duration::from_millis((g.locked_until_ms - now).max(0) as u64)))
                })?)
            })
            .await?;
        match left {
            None => Ok(()),
            Some(left) if !left.is_zero() => {
                Err(ApiError::new(ErrorCode::Refused, format!("Wrong PIN. {}", locked(left).message)))
            }
            Some(_) => Err(ApiError::new(ErrorCode::Refused, "Wrong PIN.")),
        }
    }

    pub(crate) async fn journal_event(&self, kind: &str, data: serde_json::Value) -> Result<(), ApiError> {
        let at = self.now();
        let rec = journal(kind, data);
        self.db(move |s| Ok(s.write(|tx| tx.append_journal(&rec, at))?)).await.map(|_| ())
    }
}

fn locked(left: Duration) -> ApiError {
    let secs = left.as_secs() + u64::from(left.subsec_millis() > 0);
    let wait = if secs >= 120 { format!("{} min", secs.div_ceil(60)) } else { format!("{secs} s") };
    ApiError::new(ErrorCode::Refused, format!("Too many wrong PINs: the manager area is locked; try again in {wait}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_session_token() {
        let session = ManagerSession { token: "f00dfeedcafe".into(), idle_logout_secs: 300 };
        let mut sessions = Sessions::default();
        sessions.last_used.insert(session.token.clone(), OffsetDateTime::UNIX_EPOCH);
        for debug in [format!("{session:?}"), format!("{sessions:?}")] {
            assert!(!debug.contains("f00dfeedcafe"), "{debug}");
        }
    }

    #[test]
    fn lockouts_double_up_to_an_hour() {
        let secs: Vec<u64> = (1..=9).map(|n| lockout(n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(lockout(u32::MAX), MAX_LOCKOUT);
    }

    #[test]
    fn a_pin_is_six_to_twelve_digits() {
        for bad in ["", "12345", "1234567890123", "12345a", "１２３４５６"] {
            assert_eq!(valid_pin(bad).unwrap_err().code, ErrorCode::BadInput, "{bad}");
        }
        for good in ["123456", "000000000000"] {
            valid_pin(good).unwrap();
        }
    }
}
