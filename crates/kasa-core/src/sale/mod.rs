//! The sale state machine.
//!
//! A [`Sale`] changes only through [`Sale::handle`], which takes one [`SaleEvent`] (a cashier's
//! action or the outcome of an operation), the current time and an identifier source, and
//! returns a [`Transition`]: the operations to queue and the journal record to write. The caller
//! stores the new sale, the operations and the journal record in one transaction.
//!
//! A basket may be paid in parts, by several methods (split payment). Each part is one payment
//! attempt; a part that fails leaves the parts already paid in place and the sale waiting for the
//! rest (`Tendering`), or, when nothing was paid yet, reopens it and releases the pump order.
//!
//! ```text
//!           pay (pump order)          lock granted
//!   Open ───────────────────► Locking ────────────► Paying ◄─────────── pay the rest ──┐
//!    ▲ │ pay (shop only)         │ refused,             │ approved, part left           │
//!    │ └─────────────────────────┼─ unreachable ──┐     ├──────────────────────► Tendering
//!    │◄──────────────────────────┘                │     │ approved, all paid            │ void
//!    │◄──────── declined, nothing paid (unlock) ──┼─────┤                               ▼
//!    │                                            │     ▼                           Voiding ──► Cancelled
//!    └── cancel ──► Cancelled                     │   Paid ──report acked──► Reported ──receipt──► Completed
//!                                                 └──────────────── (shop only: Completed at once) ──┘
//! ```
//!
//! Paid sales can be refunded in part or in full, through the method each payment was made by,
//! never beyond what that payment took.

mod event;
mod steps;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::IdSource;
use crate::basket::Basket;
use crate::fiscal::{BusinessCustomer, FiscalReceipt};
use crate::journal::JournalRecord;
use crate::money::{Money, MoneyError};
use crate::op::Queued;
use crate::order::ReceiptInfo;
use crate::payment::{PayMethod, Payment, Refund, RefundState};

pub use event::{SaleError, SaleEvent, Transition};

/// A sale's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[ts(type = "string")]
pub struct SaleId(pub String);

impl std::fmt::Display for SaleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a sale is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
pub enum SaleState {
    /// Basket editable; ready for payment.
    Open,
    /// Waiting for the cloud to lock the pump order.
    Locking,
    /// A payment attempt is under way (terminal, app, QR).
    Paying,
    /// Part of the total is paid; waiting for the cashier to take the rest.
    Tendering,
    /// Cancelling a sale that was partly paid: giving the paid parts back.
    Voiding,
    /// Paid; the pump order's payment report is on its way to the cloud.
    Paid,
    /// The cloud accepted the payment report; waiting for the pump's receipt.
    Reported,
    /// Finished.
    Completed,
    /// Abandoned (nothing taken, or everything taken given back).
    Cancelled,
    /// Held for a manager: a provider reported a charge that does not match what was asked
    /// (another amount or currency), which a void gives back; or the outcome of a payment could
    /// not be found out, which the manager settles in the queue; or a refund of a void failed.
    NeedsAttention,
}

impl SaleState {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::Open => "Open",
            SaleState::Locking => "Locking",
            SaleState::Paying => "Paying",
            SaleState::Tendering => "Tendering",
            SaleState::Voiding => "Voiding",
            SaleState::Paid => "Paid",
            SaleState::Reported => "Reported",
            SaleState::Completed => "Completed",
            SaleState::Cancelled => "Cancelled",
            SaleState::NeedsAttention => "NeedsAttention",
        }
    }

    /// Whether the customer has paid in full.
    pub fn is_paid(self) -> bool {
        matches!(self, SaleState::Paid | SaleState::Reported | SaleState::Completed)
    }

    /// Whether the sale waits on an operation the cashier is watching (lock, payment, void).
    pub fn is_busy(self) -> bool {
        matches!(self, SaleState::Locking | SaleState::Paying | SaleState::Voiding)
    }
}

/// A payment attempt under way, or waiting for the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Attempt {
    /// How the customer pays this part.
    pub method: PayMethod,
    /// The part of the total this attempt pays.
    pub amount: Money,
    /// The provider's reference chosen for it: the MobilePay `orderId`, or the Settle `pos_tid`
    /// the QR code carries.
    pub reference: Option<String>,
    /// The provider's id of the payment once it exists (Settle's `tid`).
    #[serde(default)]
    pub provider_ref: Option<String>,
}

/// How serious a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum NoticeLevel {
    /// For information.
    Info,
    /// The step did not happen; the cashier can go on.
    Warning,
    /// Needs attention.
    Error,
}

/// What the cashier should be told about the sale's last step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Notice {
    /// Severity.
    pub level: NoticeLevel,
    /// Machine-readable reason, e.g. `ORDER_LOCKED`, `DECLINED`.
    pub code: String,
    /// A sentence for the cashier saying what happened and what to do.
    pub message: String,
}

impl Notice {
    fn warning(code: &str, message: impl Into<String>) -> Notice {
        Notice { level: NoticeLevel::Warning, code: code.to_string(), message: message.into() }
    }

    fn info(code: &str, message: impl Into<String>) -> Notice {
        Notice { level: NoticeLevel::Info, code: code.to_string(), message: message.into() }
    }
}

/// The lock a sale holds on its pump order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct HeldLock {
    /// The cloud's lock id.
    pub lock_id: String,
    /// When it lapses.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub expires_at: OffsetDateTime,
}

/// A sale: a basket, its payments and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    /// Id.
    pub id: SaleId,
    /// When it was opened.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// What is paid for.
    pub basket: Basket,
    /// Where it is.
    pub state: SaleState,
    /// Payment attempts started so far.
    pub attempts: u32,
    /// The attempt under way (or waiting for the lock).
    #[serde(default)]
    pub attempt: Option<Attempt>,
    /// The lock held on the pump order.
    pub lock: Option<HeldLock>,
    /// Payments taken.
    pub payments: Vec<Payment>,
    /// Money given back.
    #[serde(default)]
    pub refunds: Vec<Refund>,
    /// Charges a provider reported that do not match what was asked: never counted as paid,
    /// given back when the sale is voided.
    #[serde(default)]
    pub unexpected: Vec<Payment>,
    /// The last thing the cashier should know.
    pub notice: Option<Notice>,
    /// The pump's receipt, once issued.
    pub receipt: Option<ReceiptInfo>,
    /// When it was paid in full: the time its slip shows, whatever happens to it later (the
    /// report, the pump's receipt). Absent in sales stored before it was kept.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<OffsetDateTime>,
    /// Whether its receipts are signed by the fiscal middleware (set when it is opened, from the
    /// register's configuration).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fiscalize: bool,
    /// The business the sale is invoiced to (a B2B invoice), set while the basket is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<BusinessCustomer>,
    /// Its receipts at the fiscal middleware: the sale's own once paid, then one per refund.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fiscal: Vec<FiscalReceipt>,
}

impl Sale {
    /// A new open sale.
    pub fn new(id: SaleId, basket: Basket, now: OffsetDateTime) -> Sale {
        Sale {
            id,
            created_at: now,
            updated_at: now,
            basket,
            state: SaleState::Open,
            attempts: 0,
            attempt: None,
            lock: None,
            payments: Vec::new(),
            refunds: Vec::new(),
            unexpected: Vec::new(),
            notice: None,
            receipt: None,
            paid_at: None,
            fiscalize: false,
            customer: None,
            fiscal: Vec::new(),
        }
    }

    /// The journal record of opening this sale.
    pub fn opened_record(&self) -> JournalRecord {
        JournalRecord {
            sale_id: Some(self.id.0.clone()),
            kind: "sale_opened".into(),
            data: serde_json::json!({ "basket": self.basket }),
        }
    }

    /// Total to pay.
    pub fn total(&self) -> Result<Money, MoneyError> {
        self.basket.total()
    }

    /// Paid so far.
    pub fn paid(&self) -> Result<Money, MoneyError> {
        Money::sum(self.basket.currency, self.payments.iter().map(|p| p.amount))
    }

    /// Left to pay.
    pub fn remaining(&self) -> Result<Money, MoneyError> {
        self.total()?.checked_sub(self.paid()?)
    }

    /// The payment (or unexpected charge) a refund gives back.
    pub fn refunded_payment(&self, refund: &Refund) -> Option<&Payment> {
        let list = if refund.unexpected { &self.unexpected } else { &self.payments };
        list.get(refund.payment as usize)
    }

    /// What can still be given back of payment `index` (refunds pending or done count).
    pub fn refundable(&self, index: usize) -> Result<Money, SaleError> {
        self.still_to_give_back(index, false)
    }

    /// What is left to give back of payment `index`, or of unexpected charge `index`.
    fn still_to_give_back(&self, index: usize, unexpected: bool) -> Result<Money, SaleError> {
        let list = if unexpected { &self.unexpected } else { &self.payments };
        let p = list.get(index).ok_or_else(|| SaleError::Unknown(format!("no payment {index} in this sale")))?;
        let given = Money::sum(
            p.amount.currency,
            self.refunds
                .iter()
                .filter(|r| r.payment as usize == index && r.unexpected == unexpected && r.state != RefundState::Failed)
                .map(|r| r.amount),
        )?;
        Ok(p.amount.checked_sub(given)?)
    }

    /// Applies one event. On error the sale is unchanged.
    pub fn handle(
        &mut self,
        event: SaleEvent,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Transition, SaleError> {
        let mut next = self.clone();
        let ops = next.apply(&event, now, ids)?;
        next.updated_at = now;
        if next.state.is_paid() && !self.state.is_paid() {
            next.paid_at = Some(now);
        }
        let journal = JournalRecord {
            sale_id: Some(self.id.0.clone()),
            kind: event.kind().to_string(),
            data: serde_json::json!({ "event": event, "state": next.state }),
        };
        *self = next;
        Ok(Transition { ops, journal })
    }

    fn apply(
        &mut self,
        event: &SaleEvent,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        use SaleEvent as E;
        match event {
            E::PayRequested { method, amount } => self.on_pay_requested(method, amount, ids),
            E::LockGranted { lock_id, expires_at } => self.on_lock_granted(lock_id, expires_at, ids),
            E::LockRenewed { expires_at } => self.on_lock_renewed(expires_at),
            E::LockRefused { code, message } => self.on_lock_refused(code, message),
            E::LockUnavailable { message, maybe_locked } => self.on_lock_unavailable(message, maybe_locked, ids),
            E::SettleScanned { token } => self.on_settle_scanned(token, ids),
            E::SettleRequested { tid } => self.on_settle_requested(tid, ids),
            E::PaymentApproved { payment } => self.on_payment_approved(payment, ids),
            E::PaymentMismatch { payment } => self.on_payment_mismatch(payment),
            E::PaymentUnresolved { reason } => self.on_payment_unresolved(reason),
            E::PaymentDeclined { code, message } => self.on_payment_declined(code, message, ids),
            E::ReportAcknowledged => self.on_report_acknowledged(),
            E::ReportRefused { message } => self.on_report_refused(message),
            E::ReceiptIssued { receipt } => self.on_receipt_issued(receipt),
            E::ItemAdded { item, quantity } => self.on_item_added(item, quantity),
            E::CancelRequested => self.on_cancel_requested(now, ids),
            E::RefundRequested { payment, amount, reason } => {
                self.on_refund_requested(payment, amount, reason, now, ids)
            }
            E::RefundCompleted { refund_id } => self.on_refund_completed(refund_id, ids),
            E::RefundFailed { refund_id, message } => self.on_refund_failed(refund_id, message),
            E::FiscalSigned { reference, signature } => self.on_fiscal_signed(reference, signature),
            E::CustomerSet { customer } => self.on_customer_set(customer),
        }
    }
}
