//! The manager's outbox queue view: looking at it, retrying and discarding messages, each
//! behind a manager session (see [`crate::access`]); what changes a message is journaled.

use kasa_core::journal::JournalRecord;
use kasa_core::{OpKind, SaleEvent, SaleState};
use kasa_store::{OutboxRow, OutboxState};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{ApiError, Engine, ErrorCode, StepError};

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

impl Engine {
    /// Pending and parked messages, oldest first.
    pub async fn queue(&self, session: &str, limit: u32) -> Result<Vec<QueueItem>, ApiError> {
        self.authorize(session).await?;
        self.db(move |s| Ok(s.outbox_open(limit)?.into_iter().map(QueueItem::from).collect())).await
    }

    /// Delivers a message now: a pending one skips its backoff (anyone may ask, as the status
    /// bar's "retry" does); a parked one goes back in line, which needs a manager session and
    /// is journaled. Both the state and the right are checked again inside the transaction
    /// that acts.
    pub async fn retry_now(&self, id: i64, session: Option<&str>) -> Result<(), ApiError> {
        if let Some(session) = session {
            self.authorize(session).await?;
        }
        let parked = self.db(move |s| Ok(s.outbox_message(id)?.state == OutboxState::Parked)).await?;
        let authorised = match session {
            Some(_) => true,
            None if parked => {
                return Err(ApiError::new(
                    ErrorCode::NotAuthorized,
                    "A parked message goes back in line only in the manager area.",
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
                            ErrorCode::NotAuthorized,
                            "This message was parked meanwhile: putting it back in line needs the manager area.",
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

    /// Discards a parked message (manager session), journaled with the reason.
    pub async fn discard(&self, id: i64, session: &str, reason: &str) -> Result<(), ApiError> {
        if reason.trim().len() < 3 {
            return Err(ApiError::new(ErrorCode::BadInput, "Say why the message is discarded."));
        }
        self.authorize(session).await?;
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
