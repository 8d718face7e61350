//! The manager's area: a PIN (kept as an Argon2 hash) and the outbox queue view.
//!
//! Anyone may look at the queue and ask for a retry now; discarding a parked message needs the
//! manager PIN and leaves a journal entry with the reason. Five wrong PINs in a row close the
//! area for a minute.

use std::time::Duration;

use tokio::time::Instant;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use kasa_core::journal::JournalRecord;
use kasa_core::{OpKind, SaleEvent, SaleState};
use kasa_store::{OutboxRow, OutboxState, StoreError};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{ApiError, Engine, ErrorCode, StepError};

const PIN_KEY: &str = "manager_pin";
const MAX_FAILURES: u32 = 5;
const LOCKOUT: Duration = Duration::from_secs(60);

/// One outbox message as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct QueueItem {
    /// Message id.
    #[ts(type = "number")]
    pub id: i64,
    /// Operation kind, e.g. `tokenx_payment`.
    pub kind: String,
    /// Delivery lane.
    pub lane: String,
    /// The sale that caused it.
    pub sale_id: Option<String>,
    /// `pending` or `parked`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was queued, RFC 3339.
    pub created_at: String,
}

impl From<OutboxRow> for QueueItem {
    fn from(r: OutboxRow) -> QueueItem {
        QueueItem {
            id: r.id,
            kind: r.op.kind().as_str().to_string(),
            lane: r.lane,
            sale_id: r.sale_id,
            state: match r.state {
                OutboxState::Pending => "pending",
                OutboxState::Parked => "parked",
                OutboxState::Done => "done",
                OutboxState::Discarded => "discarded",
            }
            .to_string(),
            attempts: r.attempts,
            last_error: r.last_error,
            created_at: kasa_core::journal::format_time(r.created_at),
        }
    }
}

/// Wrong-PIN bookkeeping, in memory.
#[derive(Debug, Default)]
pub(crate) struct PinGuard {
    failures: u32,
    locked_until: Option<Instant>,
}

fn valid_pin(pin: &str) -> Result<(), ApiError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::BadInput, "A manager PIN is 4 to 8 digits."))
    }
}

fn hash_pin(pin: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("hashing the PIN failed: {e}")))
}

impl Engine {
    pub(crate) async fn journal_manager_action(&self, kind: &str, data: serde_json::Value) -> Result<(), ApiError> {
        let at = self.now();
        let rec = JournalRecord { sale_id: None, kind: kind.to_string(), data };
        self.db(move |s| Ok(s.write(|tx| tx.append_journal(&rec, at))?)).await.map(|_| ())
    }

    /// Whether a manager PIN has been set.
    pub async fn has_manager_pin(&self) -> Result<bool, ApiError> {
        self.db(|s| Ok(s.setting(PIN_KEY)?.is_some())).await
    }

    /// Sets the manager PIN; changing an existing one needs the current PIN.
    pub async fn set_manager_pin(&self, new_pin: &str, current: Option<&str>) -> Result<(), ApiError> {
        valid_pin(new_pin)?;
        if self.has_manager_pin().await? {
            let current = current.ok_or_else(|| {
                ApiError::new(ErrorCode::Refused, "A PIN is already set: give the current PIN to change it.")
            })?;
            self.check_pin(current).await?;
        }
        let hash = hash_pin(new_pin)?;
        let at = self.now();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StoreError> {
                tx.set_setting(PIN_KEY, &hash)?;
                let rec = JournalRecord { sale_id: None, kind: "manager_pin_set".into(), data: serde_json::json!({}) };
                tx.append_journal(&rec, at)?;
                Ok(())
            })?;
            Ok(())
        })
        .await
    }

    /// Checks the manager PIN.
    pub async fn check_pin(&self, pin: &str) -> Result<(), ApiError> {
        {
            let guard = self.inner.pin_guard.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = guard.locked_until
                && Instant::now() < until
            {
                let secs = (until - Instant::now()).as_secs() + 1;
                return Err(ApiError::new(ErrorCode::Refused, format!("Too many wrong PINs: try again in {secs} s.")));
            }
        }
        let stored = self.db(|s| Ok(s.setting(PIN_KEY)?)).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::Setup, "No manager PIN is set: set one with `kasa manager set-pin`.")
        })?;
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
        let mut guard = self.inner.pin_guard.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            *guard = PinGuard::default();
            Ok(())
        } else {
            guard.failures += 1;
            if guard.failures >= MAX_FAILURES {
                guard.failures = 0;
                guard.locked_until = Some(Instant::now() + LOCKOUT);
            }
            Err(ApiError::new(ErrorCode::Refused, "Wrong PIN."))
        }
    }

    /// Pending and parked messages, oldest first.
    pub async fn queue(&self, limit: u32) -> Result<Vec<QueueItem>, ApiError> {
        self.db(move |s| Ok(s.outbox_open(limit)?.into_iter().map(QueueItem::from).collect())).await
    }

    /// Delivers a message now: a pending one skips its backoff (anyone may ask); a parked one
    /// goes back in line, which needs the manager PIN and is journaled. Both the state and the
    /// right are checked again inside the transaction that acts.
    pub async fn retry_now(&self, id: i64, pin: Option<&str>) -> Result<(), ApiError> {
        let parked = self.db(move |s| Ok(s.outbox_message(id)?.state == OutboxState::Parked)).await?;
        let authorised = match pin {
            Some(pin) => {
                self.check_pin(pin).await?;
                true
            }
            None if parked => {
                return Err(ApiError::new(
                    ErrorCode::Refused,
                    "A parked message goes back in line only with the manager PIN.",
                ));
            }
            None => false,
        };
        let at = self.now();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StepError> {
                let row = tx.outbox_row(id)?;
                match row.state {
                    OutboxState::Parked if !authorised => {
                        return Err(StepError::Api(ApiError::new(
                            ErrorCode::Refused,
                            "This message was parked meanwhile: putting it back in line needs the manager PIN.",
                        )));
                    }
                    OutboxState::Parked => {
                        tx.outbox_unpark(id, at)?;
                        let rec = JournalRecord {
                            sale_id: row.sale_id.clone(),
                            kind: "outbox_retried".into(),
                            data: serde_json::json!({ "message": id, "op": row.op }),
                        };
                        tx.append_journal(&rec, at)?;
                    }
                    OutboxState::Pending => {
                        tx.outbox_due_now(&row.lane, at)?;
                    }
                    _ => {
                        return Err(StepError::Api(ApiError::new(
                            ErrorCode::InvalidState,
                            "That message is already finished.",
                        )));
                    }
                }
                Ok(())
            })
        })
        .await?;
        self.inner.dispatch_kick.notify_one();
        self.refresh_queue_counts().await;
        Ok(())
    }

    /// Discards a parked message (manager PIN), journaled with the reason.
    pub async fn discard(&self, id: i64, pin: &str, reason: &str) -> Result<(), ApiError> {
        if reason.trim().len() < 3 {
            return Err(ApiError::new(ErrorCode::BadInput, "Say why the message is discarded."));
        }
        self.check_pin(pin).await?;
        let at = self.now();
        let env = self.env().clone();
        let reason = reason.trim().to_string();
        self.db(move |s| {
            s.write(|tx| -> Result<(), StepError> {
                let row = tx.outbox_row(id)?;
                if row.state != OutboxState::Parked {
                    return Err(StepError::Api(ApiError::new(
                        ErrorCode::InvalidState,
                        "Only a parked message can be discarded; a pending one is still being delivered.",
                    )));
                }
                tx.outbox_discard(id, at)?;
                let rec = JournalRecord {
                    sale_id: row.sale_id.clone(),
                    kind: "outbox_discarded".into(),
                    data: serde_json::json!({ "message": id, "op": row.op, "reason": reason, "last_error": row.last_error }),
                };
                tx.append_journal(&rec, at)?;
                // A payment report that will never be sent leaves its sale's lock behind: release
                // it (the release asks the cloud whose it is, and forgets the lock either way).
                if let kasa_core::op::Op::TokenxPayment { order_id, .. } = &row.op {
                    let release = kasa_core::op::Queued {
                        key: env.next_id(),
                        op: kasa_core::op::Op::TokenxRelease { order_id: order_id.clone() },
                    };
                    tx.enqueue(row.sale_id.as_deref(), &release, at)?;
                }
                // A payment whose outcome could not be found out holds its sale; discarding it is
                // the manager's word that no money was taken, and the sale goes on without it.
                let payment = matches!(
                    row.op.kind(),
                    OpKind::CardSale | OpKind::CardLookup | OpKind::MobilePayPayment | OpKind::SettlePayment
                );
                if let (true, Some(sale_id)) = (payment, row.sale_id.as_deref())
                    && let Ok(sale) = tx.sale(sale_id)
                    && sale.state == SaleState::NeedsAttention
                    && sale.attempt.is_some()
                {
                    let event = SaleEvent::PaymentDeclined {
                        code: "DISCARDED".into(),
                        message: format!("A manager discarded the unresolved payment ({reason}); nothing is counted for it."),
                    };
                    crate::dispatch::apply_outcome(tx, sale_id, event, at, &env)?;
                }
                Ok(())
            })
        })
        .await?;
        self.refresh_queue_counts().await;
        Ok(())
    }
}
