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

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::IdSource;
use crate::basket::{Basket, ShopItem};
use crate::journal::JournalRecord;
use crate::money::{Money, MoneyError};
use crate::op::{Op, Queued, ReportedMethod, ReportedPayment};
use crate::order::ReceiptInfo;

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

/// How the cashier wants the customer to pay (a part of) the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "method", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(tag = "method", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PayMethod {
    /// A card on the payment terminal.
    Card,
    /// Cash; `tendered` is what the customer handed over.
    Cash {
        /// Cash received.
        tendered: Money,
    },
    /// MobilePay in the customer's phone.
    MobilePay,
    /// Settle, by scanning a QR code.
    Settle,
}

/// The kind of a payment method, without its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum MethodKind {
    /// Card.
    Card,
    /// Cash.
    Cash,
    /// MobilePay.
    MobilePay,
    /// Settle.
    Settle,
}

impl PayMethod {
    /// The method's kind.
    pub fn kind(&self) -> MethodKind {
        match self {
            PayMethod::Card => MethodKind::Card,
            PayMethod::Cash { .. } => MethodKind::Cash,
            PayMethod::MobilePay => MethodKind::MobilePay,
            PayMethod::Settle => MethodKind::Settle,
        }
    }
}

/// The customer-slip fields of a card payment, as the terminal reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct CardSlip {
    /// Card number with all but the last four digits masked.
    pub masked_pan: String,
    /// Card brand (VISA, MASTERCARD, ...).
    pub brand: String,
    /// How the card was read (CHIP_ENTRY, CONTACTLESS, ...).
    pub entry_mode: String,
    /// Issuer's approval code.
    pub approval_code: String,
    /// The terminal (device) that took the payment.
    pub terminal_ref: String,
    /// The processor's transaction id.
    pub transaction_ref: String,
    /// When the payment was approved, RFC 3339.
    pub paid_at: String,
}

/// How one payment was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "method", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(tag = "method", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum PaymentKind {
    /// Card, with its slip data.
    Card {
        /// Slip fields.
        slip: CardSlip,
    },
    /// Cash.
    Cash {
        /// Cash received.
        tendered: Money,
        /// Change handed back.
        change: Money,
    },
    /// MobilePay.
    MobilePay {
        /// MobilePay's payment id.
        payment_id: String,
    },
    /// Settle.
    Settle {
        /// Settle's transaction id.
        tid: String,
    },
}

/// A payment taken for a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Payment {
    /// Amount paid (towards the total; cash change is not part of it).
    pub amount: Money,
    /// Method and its details.
    pub kind: PaymentKind,
}

impl Payment {
    /// The method's kind.
    pub fn method(&self) -> MethodKind {
        match self.kind {
            PaymentKind::Card { .. } => MethodKind::Card,
            PaymentKind::Cash { .. } => MethodKind::Cash,
            PaymentKind::MobilePay { .. } => MethodKind::MobilePay,
            PaymentKind::Settle { .. } => MethodKind::Settle,
        }
    }

    fn reported_method(&self) -> ReportedMethod {
        match self.method() {
            MethodKind::Card => ReportedMethod::Card,
            MethodKind::Cash => ReportedMethod::Cash,
            MethodKind::MobilePay => ReportedMethod::Mobilepay,
            MethodKind::Settle => ReportedMethod::Settle,
        }
    }

    fn slip(&self) -> Option<CardSlip> {
        match &self.kind {
            PaymentKind::Card { slip } => Some(slip.clone()),
            _ => None,
        }
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

/// Where a refund is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum RefundState {
    /// Sent, or waiting to be sent.
    Pending,
    /// The money went back.
    Done,
    /// The provider refused it for good.
    Failed,
}

/// Money given back for one payment of a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Refund {
    /// Id (also the provider's refund reference).
    pub id: String,
    /// Index of the refunded payment in the sale's payments (or, for a refund of an unexpected
    /// charge, in its `unexpected` charges).
    pub payment: u32,
    /// Whether this gives back an unexpected charge rather than a payment.
    #[serde(default)]
    pub unexpected: bool,
    /// Amount given back.
    pub amount: Money,
    /// Why (for the journal and the slip).
    pub reason: String,
    /// Where it is.
    pub state: RefundState,
    /// When it was asked for.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub at: OffsetDateTime,
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

/// Something that happened to a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SaleEvent {
    /// The cashier asked to take payment: the rest of the total, or `amount` of it.
    PayRequested {
        /// Method chosen.
        method: PayMethod,
        /// The part to pay now; the whole remainder when absent.
        #[serde(default)]
        amount: Option<Money>,
    },
    /// The cloud locked the pump order for this register.
    LockGranted {
        /// Lock id.
        lock_id: String,
        /// Expiry.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The cloud extended the lock held while the customer pays.
    LockRenewed {
        /// New expiry.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The cloud refused the lock (another register holds it, or the order is no longer open).
    LockRefused {
        /// The cloud's error code.
        code: String,
        /// The cloud's message.
        message: String,
    },
    /// The cloud could not be reached to lock the order.
    LockUnavailable {
        /// What went wrong.
        message: String,
        /// Whether the lock request may have reached the cloud (so a lock may exist).
        maybe_locked: bool,
    },
    /// The customer scanned the Settle QR code of the attempt.
    SettleScanned {
        /// The scan token to request the payment with.
        token: String,
    },
    /// Settle took the payment request.
    SettleRequested {
        /// Settle's transaction id.
        tid: String,
    },
    /// The payment attempt was approved.
    PaymentApproved {
        /// The payment.
        payment: Payment,
    },
    /// The provider reports a charge for the attempt that is not what was asked (another amount
    /// or currency). The money is held, not counted as paid, and given back by a void.
    PaymentMismatch {
        /// The charge as the provider reported it.
        payment: Payment,
    },
    /// The outcome of the payment attempt could not be found out for certain (the provider
    /// answered something that proves neither a charge nor its absence). The sale is held for a
    /// manager; the operation stays parked, to be retried or discarded.
    PaymentUnresolved {
        /// What is known, for the manager.
        reason: String,
    },
    /// The payment attempt was declined or cancelled; no money was taken.
    PaymentDeclined {
        /// Reason code (e.g. `CANCELLATION_VIA_API`).
        code: String,
        /// Reason for the cashier.
        message: String,
    },
    /// The cloud accepted the payment report.
    ReportAcknowledged,
    /// The cloud refused the payment report for good; the manager must look at it.
    ReportRefused {
        /// The cloud's reason.
        message: String,
    },
    /// The pump issued its fiscal receipt.
    ReceiptIssued {
        /// Receipt details.
        receipt: ReceiptInfo,
    },
    /// The cashier added a shop article to the basket.
    ItemAdded {
        /// The article.
        item: ShopItem,
        /// How many.
        quantity: u32,
    },
    /// The cashier abandoned the sale. Parts already paid are given back first.
    CancelRequested,
    /// The manager asked to give back `amount` of payment `payment`.
    RefundRequested {
        /// Index of the payment in the sale.
        payment: u32,
        /// Amount.
        amount: Money,
        /// Why.
        reason: String,
    },
    /// A refund went through.
    RefundCompleted {
        /// The refund.
        refund_id: String,
    },
    /// A provider refused a refund for good.
    RefundFailed {
        /// The refund.
        refund_id: String,
        /// The provider's reason.
        message: String,
    },
}

impl SaleEvent {
    /// The journal kind of this event.
    pub fn kind(&self) -> &'static str {
        match self {
            SaleEvent::PayRequested { .. } => "pay_requested",
            SaleEvent::LockGranted { .. } => "lock_granted",
            SaleEvent::LockRenewed { .. } => "lock_renewed",
            SaleEvent::LockRefused { .. } => "lock_refused",
            SaleEvent::LockUnavailable { .. } => "lock_unavailable",
            SaleEvent::SettleScanned { .. } => "settle_scanned",
            SaleEvent::SettleRequested { .. } => "settle_requested",
            SaleEvent::PaymentApproved { .. } => "payment_approved",
            SaleEvent::PaymentMismatch { .. } => "payment_mismatch",
            SaleEvent::PaymentUnresolved { .. } => "payment_unresolved",
            SaleEvent::PaymentDeclined { .. } => "payment_declined",
            SaleEvent::ReportAcknowledged => "report_acknowledged",
            SaleEvent::ReportRefused { .. } => "report_refused",
            SaleEvent::ReceiptIssued { .. } => "receipt_issued",
            SaleEvent::ItemAdded { .. } => "item_added",
            SaleEvent::CancelRequested => "cancel_requested",
            SaleEvent::RefundRequested { .. } => "refund_requested",
            SaleEvent::RefundCompleted { .. } => "refund_completed",
            SaleEvent::RefundFailed { .. } => "refund_failed",
        }
    }
}

/// Why an event could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    /// The event does not fit the sale's state.
    #[error("this sale is {state:?}; {what} is not possible now")]
    InvalidState {
        /// Current state.
        state: SaleState,
        /// What was attempted.
        what: &'static str,
    },
    /// Nothing to pay for.
    #[error("the basket is empty; add an order or an item first")]
    EmptyBasket,
    /// Cash tendered does not cover the part paid in cash.
    #[error("cash tendered {tendered} does not cover {total}")]
    InsufficientCash {
        /// Tendered.
        tendered: Money,
        /// The amount to cover.
        total: Money,
    },
    /// A part larger than what is left to pay, or not positive.
    #[error("{amount} is not a part of what is left to pay ({remaining}); enter an amount above zero and up to it")]
    BadPart {
        /// Asked.
        amount: Money,
        /// Left to pay.
        remaining: Money,
    },
    /// A refund beyond what the payment took.
    #[error("refund of {amount} refused: only {available} of this payment can still be given back")]
    RefundTooLarge {
        /// Asked.
        amount: Money,
        /// Still refundable.
        available: Money,
    },
    /// No such payment or refund.
    #[error("{0}")]
    Unknown(String),
    /// An amount could not be computed.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// What a transition asks the caller to persist with the new sale.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Operations to queue, in order.
    pub ops: Vec<Queued>,
    /// The journal record of this step.
    pub journal: JournalRecord,
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
        let invalid = |state, what| Err(SaleError::InvalidState { state, what });
        match event {
            SaleEvent::PayRequested { method, amount } => {
                if !matches!(self.state, SaleState::Open | SaleState::Tendering) {
                    return invalid(self.state, "starting a payment");
                }
                if self.basket.lines.is_empty() {
                    return Err(SaleError::EmptyBasket);
                }
                let remaining = self.remaining()?;
                let part = amount.unwrap_or(remaining);
                if part.minor <= 0 || part.checked_sub(remaining)?.minor > 0 {
                    return Err(SaleError::BadPart { amount: part, remaining });
                }
                if let PayMethod::Cash { tendered } = method
                    && tendered.checked_sub(part)?.minor < 0
                {
                    return Err(SaleError::InsufficientCash { tendered: *tendered, total: part });
                }
                self.attempts += 1;
                self.attempt =
                    Some(Attempt { method: method.clone(), amount: part, reference: None, provider_ref: None });
                self.notice = None;
                match (self.basket.pump_order_id(), &self.lock) {
                    (Some(order_id), None) => {
                        self.state = SaleState::Locking;
                        let order_id = order_id.to_string();
                        Ok(vec![queue(ids, Op::TokenxLock { order_id })])
                    }
                    _ => self.start_attempt(ids),
                }
            }
            SaleEvent::LockGranted { lock_id, expires_at } => {
                if self.state != SaleState::Locking {
                    // The lock outlived the attempt that asked for it: give it back at once.
                    let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                    return Ok(vec![queue(ids, Op::TokenxUnlock { order_id, lock_id: lock_id.clone() })]);
                }
                self.lock = Some(HeldLock { lock_id: lock_id.clone(), expires_at: *expires_at });
                self.start_attempt(ids)
            }
            SaleEvent::LockRenewed { expires_at } => match (&mut self.lock, self.state) {
                (
                    Some(lock),
                    SaleState::Paying | SaleState::Tendering | SaleState::NeedsAttention | SaleState::Voiding,
                ) => {
                    lock.expires_at = *expires_at;
                    Ok(Vec::new())
                }
                _ => invalid(self.state, "renewing a lock"),
            },
            SaleEvent::LockRefused { code, message } => {
                if self.state != SaleState::Locking {
                    return invalid(self.state, "a lock refusal");
                }
                self.back_to_open();
                let text = match code.as_str() {
                    "ORDER_LOCKED" => {
                        "This order is being paid at another register. Pick another order or wait.".to_string()
                    }
                    "ORDER_NOT_OPEN" => {
                        "This order is no longer open for payment (paid at the pump or cancelled).".to_string()
                    }
                    _ => format!("The cloud refused to lock the order: {message}"),
                };
                self.notice = Some(Notice::warning(code, text));
                Ok(Vec::new())
            }
            SaleEvent::LockUnavailable { message, maybe_locked } => {
                if self.state != SaleState::Locking {
                    return invalid(self.state, "a lock failure");
                }
                self.back_to_open();
                self.notice = Some(Notice::warning(
                    "OFFLINE",
                    format!(
                        "Token X cloud unreachable ({message}); a pump order can't be locked offline. \
                         Try again when the register is online."
                    ),
                ));
                let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                Ok(if *maybe_locked { vec![queue(ids, Op::TokenxRelease { order_id })] } else { Vec::new() })
            }
            SaleEvent::SettleScanned { token } => {
                let (amount, pos_tid) = self.settle_attempt("a Settle scan")?;
                Ok(vec![queue(ids, Op::SettleRequest { amount, pos_tid, token: token.clone() })])
            }
            SaleEvent::SettleRequested { tid } => {
                let (amount, pos_tid) = self.settle_attempt("a Settle payment request")?;
                if let Some(a) = &mut self.attempt {
                    a.provider_ref = Some(tid.clone());
                }
                Ok(vec![queue(ids, Op::SettleAwait { amount, tid: tid.clone(), pos_tid: Some(pos_tid) })])
            }
            SaleEvent::PaymentApproved { payment } => {
                if !self.awaits_outcome() {
                    return invalid(self.state, "an approved payment");
                }
                self.payments.push(payment.clone());
                self.attempt = None;
                self.after_payment(ids)
            }
            SaleEvent::PaymentMismatch { payment } => {
                if !self.awaits_outcome() {
                    return invalid(self.state, "a mismatched payment");
                }
                if payment.amount.minor <= 0 {
                    return Err(SaleError::Unknown(format!(
                        "a charge of {} is no charge to hold",
                        payment.amount.display_grouped()
                    )));
                }
                let asked = self.attempt.take().map(|a| a.amount);
                self.unexpected.push(payment.clone());
                self.state = SaleState::NeedsAttention;
                let code = match asked {
                    Some(a) if a.currency != payment.amount.currency => "CURRENCY_MISMATCH",
                    _ => "AMOUNT_MISMATCH",
                };
                let asked = asked.map(|a| a.display_grouped()).unwrap_or_else(|| "another amount".into());
                self.notice = Some(Notice {
                    level: NoticeLevel::Error,
                    code: code.into(),
                    message: format!(
                        "The payment service took {} although {asked} was asked. The sale is held: a manager \
                         voids it with the PIN, which gives the money back; then take payment again.",
                        payment.amount.display_grouped()
                    ),
                });
                Ok(Vec::new())
            }
            SaleEvent::PaymentUnresolved { reason } => {
                if !self.awaits_outcome() {
                    return invalid(self.state, "an unresolved payment");
                }
                let method = self.attempt.as_ref().map(|a| a.method.kind()).unwrap_or(MethodKind::Card);
                self.state = SaleState::NeedsAttention;
                self.notice = Some(Notice {
                    level: NoticeLevel::Error,
                    code: "UNRESOLVED".into(),
                    message: format!(
                        "The outcome of the {} payment is not known: {reason}. Do not take payment again: the sale is \
                         held until a manager checks the payment service and retries or discards it in the queue.",
                        method_name(method)
                    ),
                });
                Ok(Vec::new())
            }
            SaleEvent::PaymentDeclined { code, message } => {
                if !self.awaits_outcome() {
                    return invalid(self.state, "a declined payment");
                }
                let method = self.attempt.take().map(|a| a.method.kind()).unwrap_or(MethodKind::Card);
                let text = decline_text(method, code, message);
                let mut ops = Vec::new();
                if self.payments.is_empty() {
                    if let Some(lock) = self.lock.take() {
                        let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                        ops.push(queue(ids, Op::TokenxUnlock { order_id, lock_id: lock.lock_id }));
                    }
                    self.back_to_open();
                    self.notice = Some(Notice::warning(code, text));
                } else {
                    // Parts already paid stay paid: the cashier takes the rest another way.
                    self.state = SaleState::Tendering;
                    let left = self.remaining()?;
                    self.notice =
                        Some(Notice::warning(code, format!("{text} Still to pay: {}.", left.display_grouped())));
                }
                Ok(ops)
            }
            SaleEvent::ReportAcknowledged => {
                if self.state == SaleState::Completed {
                    // The pump's receipt can be seen before the acknowledgement is recorded.
                    return Ok(Vec::new());
                }
                if self.state != SaleState::Paid {
                    return invalid(self.state, "a payment report acknowledgement");
                }
                self.state = SaleState::Reported;
                self.notice = None;
                Ok(Vec::new())
            }
            SaleEvent::ReportRefused { message } => {
                if self.state != SaleState::Paid {
                    return invalid(self.state, "a payment report refusal");
                }
                self.notice = Some(Notice {
                    level: NoticeLevel::Error,
                    code: "REPORT_REFUSED".into(),
                    message: format!(
                        "Paid, but the cloud refused the payment report: {message}. It is parked for the manager."
                    ),
                });
                Ok(Vec::new())
            }
            SaleEvent::ReceiptIssued { receipt } => {
                if !matches!(self.state, SaleState::Paid | SaleState::Reported) {
                    return invalid(self.state, "a pump receipt");
                }
                self.receipt = Some(receipt.clone());
                self.state = SaleState::Completed;
                Ok(Vec::new())
            }
            SaleEvent::ItemAdded { item, quantity } => {
                if self.state != SaleState::Open {
                    return invalid(self.state, "changing the basket");
                }
                if *quantity == 0 {
                    return Err(SaleError::EmptyBasket);
                }
                self.basket.add_item(item.clone(), *quantity)?;
                self.total()?;
                Ok(Vec::new())
            }
            SaleEvent::CancelRequested => match self.state {
                SaleState::Open => {
                    self.state = SaleState::Cancelled;
                    self.notice = None;
                    Ok(Vec::new())
                }
                SaleState::NeedsAttention if self.attempt.is_some() => invalid(
                    self.state,
                    "voiding while the outcome of the payment under way is unknown (retry or discard it in the queue first)",
                ),
                SaleState::Tendering | SaleState::NeedsAttention => {
                    // Give every paid part (and every unexpected charge) back, then release the
                    // order.
                    self.state = SaleState::Voiding;
                    let mut ops = Vec::new();
                    for (unexpected, count, reason) in [
                        (false, self.payments.len(), "sale cancelled before it was fully paid"),
                        (true, self.unexpected.len(), "charge that does not match what was asked"),
                    ] {
                        for i in 0..count {
                            let amount = self.still_to_give_back(i, unexpected)?;
                            if amount.minor > 0 {
                                ops.extend(self.start_refund(i, unexpected, amount, reason, now, ids)?);
                            }
                        }
                    }
                    self.notice = Some(Notice::info("VOIDING", "Giving the money taken back before cancelling."));
                    ops.extend(self.finish_void_if_done(ids));
                    Ok(ops)
                }
                state => invalid(state, "cancelling"),
            },
            SaleEvent::RefundRequested { payment, amount, reason } => {
                if !self.state.is_paid() {
                    return invalid(self.state, "refunding");
                }
                let available = self.refundable(*payment as usize)?;
                if amount.minor <= 0 || amount.checked_sub(available)?.minor > 0 {
                    return Err(SaleError::RefundTooLarge { amount: *amount, available });
                }
                self.start_refund(*payment as usize, false, *amount, reason, now, ids)
            }
            SaleEvent::RefundCompleted { refund_id } => {
                let r = self.refund_mut(refund_id)?;
                r.state = RefundState::Done;
                let mut ops = vec![queue(ids, Op::PrintSlip { copy: false, refund: Some(refund_id.clone()) })];
                if self.state == SaleState::Voiding {
                    ops.extend(self.finish_void_if_done(ids));
                }
                Ok(ops)
            }
            SaleEvent::RefundFailed { refund_id, message } => {
                let r = self.refund_mut(refund_id)?;
                r.state = RefundState::Failed;
                if self.state == SaleState::Voiding {
                    // The void can't finish: the sale is held until a manager voids it again.
                    self.state = SaleState::NeedsAttention;
                }
                self.notice = Some(Notice {
                    level: NoticeLevel::Error,
                    code: "REFUND_FAILED".into(),
                    message: format!("A refund was refused: {message}. It is parked for the manager."),
                });
                Ok(Vec::new())
            }
        }
    }

    /// Whether the sale waits for the outcome of its payment attempt: paying, or held for a
    /// manager because that outcome could not be found out.
    fn awaits_outcome(&self) -> bool {
        self.state == SaleState::Paying || (self.state == SaleState::NeedsAttention && self.attempt.is_some())
    }

    fn refund_mut(&mut self, refund_id: &str) -> Result<&mut Refund, SaleError> {
        self.refunds
            .iter_mut()
            .find(|r| r.id == refund_id)
            .ok_or_else(|| SaleError::Unknown(format!("no refund {refund_id} in this sale")))
    }

    /// Records a refund and queues what gives the money back (cash: at once, from the drawer).
    fn start_refund(
        &mut self,
        index: usize,
        unexpected: bool,
        amount: Money,
        reason: &str,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        let id = ids.next_id();
        let list = if unexpected { &self.unexpected } else { &self.payments };
        let payment = list.get(index).cloned().ok_or_else(|| SaleError::Unknown(format!("no payment {index}")))?;
        let op = match &payment.kind {
            PaymentKind::Card { slip } => {
                Some(Op::CardRefund { refund_id: id.clone(), transfer_id: slip.transaction_ref.clone(), amount })
            }
            PaymentKind::MobilePay { payment_id } => {
                Some(Op::MobilePayRefund { refund_id: id.clone(), payment_id: payment_id.clone(), amount })
            }
            PaymentKind::Settle { tid } => Some(Op::SettleRefund { refund_id: id.clone(), tid: tid.clone(), amount }),
            PaymentKind::Cash { .. } => None,
        };
        let state = if op.is_some() { RefundState::Pending } else { RefundState::Done };
        self.refunds.push(Refund {
            id: id.clone(),
            payment: index as u32,
            unexpected,
            amount,
            reason: reason.to_string(),
            state,
            at: now,
        });
        let mut ops: Vec<Queued> = op.into_iter().map(|op| queue(ids, op)).collect();
        if state == RefundState::Done {
            ops.push(queue(ids, Op::PrintSlip { copy: false, refund: Some(id) }));
        }
        Ok(ops)
    }

    /// When every paid part is given back, the void ends: the order is released and the sale
    /// cancelled.
    fn finish_void_if_done(&mut self, ids: &mut dyn IdSource) -> Vec<Queued> {
        if self.refunds.iter().any(|r| r.state == RefundState::Pending) {
            return Vec::new();
        }
        let mut ops = Vec::new();
        if let Some(lock) = self.lock.take() {
            let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
            ops.push(queue(ids, Op::TokenxUnlock { order_id, lock_id: lock.lock_id }));
        }
        self.state = SaleState::Cancelled;
        self.notice = Some(Notice::info("VOIDED", "The paid parts were given back and the sale cancelled."));
        ops
    }

    /// With the lock held (or no pump order), starts the attempt.
    fn start_attempt(&mut self, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let Some(attempt) = self.attempt.clone() else {
            return Err(SaleError::InvalidState { state: self.state, what: "paying without a method" });
        };
        self.state = SaleState::Paying;
        let amount = attempt.amount;
        match attempt.method {
            PayMethod::Cash { tendered } => {
                let change = tendered.checked_sub(amount)?;
                self.payments.push(Payment { amount, kind: PaymentKind::Cash { tendered, change } });
                self.attempt = None;
                self.after_payment(ids)
            }
            PayMethod::Card => Ok(vec![queue(ids, Op::CardSale { amount })]),
            PayMethod::MobilePay => {
                let order_id = ids.next_id();
                self.set_reference(order_id.clone());
                Ok(vec![queue(ids, Op::MobilePayPayment { amount, order_id, start: true })])
            }
            PayMethod::Settle => {
                let pos_tid = ids.next_id();
                self.set_reference(pos_tid.clone());
                Ok(vec![queue(ids, Op::SettleScanWait { amount, pos_tid })])
            }
        }
    }

    /// The amount and `pos_tid` of the Settle attempt under way.
    fn settle_attempt(&self, what: &'static str) -> Result<(Money, String), SaleError> {
        match (&self.attempt, self.state) {
            (Some(Attempt { method: PayMethod::Settle, amount, reference: Some(pos_tid), .. }), SaleState::Paying) => {
                Ok((*amount, pos_tid.clone()))
            }
            _ => Err(SaleError::InvalidState { state: self.state, what }),
        }
    }

    fn set_reference(&mut self, reference: String) {
        if let Some(a) = &mut self.attempt {
            a.reference = Some(reference);
        }
    }

    /// After a part is paid: wait for the rest, or finish.
    fn after_payment(&mut self, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let left = self.remaining()?;
        if left.minor > 0 {
            self.state = SaleState::Tendering;
            self.notice =
                Some(Notice::info("PART_PAID", format!("Part paid. Still to pay: {}.", left.display_grouped())));
            return Ok(Vec::new());
        }
        Ok(self.finish_payment(ids))
    }

    /// After the money is taken: report a pump order and print the slip.
    fn finish_payment(&mut self, ids: &mut dyn IdSource) -> Vec<Queued> {
        self.attempt = None;
        self.notice = None;
        let mut ops = Vec::new();
        match (self.basket.pump_order_id(), self.basket.fuel_amount(), &self.lock) {
            (Some(order_id), Some(fuel), Some(lock)) => {
                // The cloud is told how the fuel line was paid: payments cover it in the order
                // they were taken, and what is left of a payment went to shop items.
                let mut left = fuel.minor;
                let payments = self
                    .payments
                    .iter()
                    .filter_map(|p| {
                        let share = p.amount.minor.min(left);
                        left -= share;
                        (share > 0).then(|| ReportedPayment {
                            method: p.reported_method(),
                            amount: Money::new(share, fuel.currency),
                            slip: p.slip(),
                        })
                    })
                    .collect();
                let op = Op::TokenxPayment { order_id: order_id.to_string(), lock_id: lock.lock_id.clone(), payments };
                ops.push(queue(ids, op));
                self.state = SaleState::Paid;
            }
            _ => self.state = SaleState::Completed,
        }
        ops.push(queue(ids, Op::PrintSlip { copy: false, refund: None }));
        ops
    }

    fn back_to_open(&mut self) {
        self.state = SaleState::Open;
        self.attempt = None;
        self.lock = None;
    }
}

fn queue(ids: &mut dyn IdSource, op: Op) -> Queued {
    Queued { key: ids.next_id(), op }
}

fn method_name(method: MethodKind) -> &'static str {
    match method {
        MethodKind::Card => "card",
        MethodKind::Cash => "cash",
        MethodKind::MobilePay => "MobilePay",
        MethodKind::Settle => "Settle",
    }
}

/// What the cashier reads when an attempt ends without money taken.
fn decline_text(method: MethodKind, code: &str, message: &str) -> String {
    match (method, code) {
        (_, "CANCELLATION_VIA_API" | "CANCELLED") => "Payment cancelled. No money was taken.".to_string(),
        // The payment never reached a cardholder: not a decline.
        (_, "TERMINAL_UNREACHABLE" | "DEVICE_UNREACHABLE" | "NOT_STARTED" | "SERVICE_UNREACHABLE" | "DISCARDED") => {
            format!("{message} No money was taken; try again or take another payment method.")
        }
        (MethodKind::Card, _) => {
            format!("Card declined: {message} No money was taken; ask for another card or payment method.")
        }
        _ => format!("Payment not completed: {message} No money was taken; try again or take another payment method."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SequentialIds;
    use crate::money::{Currency, Litres};
    use crate::order::{OrderStatus, PumpOrder};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

    fn try_(minor: i64) -> Money {
        Money::new(minor, Currency::TRY)
    }

    fn order() -> PumpOrder {
        PumpOrder {
            order_id: "ORD-1".into(),
            plate_number: "34 ABC 123".into(),
            pump_no: 3,
            nozzle_no: 1,
            product_code: "DSL".into(),
            product_name: "Motorin".into(),
            litres: Litres::parse("30.000").unwrap(),
            unit_price: try_(4500),
            amount: try_(135_000),
            vat_rate_bp: 2000,
            status: OrderStatus::Open,
            created_at: NOW,
            lock: None,
            receipt: None,
        }
    }

    fn slip() -> CardSlip {
        CardSlip {
            masked_pan: "************0059".into(),
            brand: "VISA".into(),
            entry_mode: "CHIP_ENTRY".into(),
            approval_code: "004839".into(),
            terminal_ref: "DV1".into(),
            transaction_ref: "TR1".into(),
            paid_at: "2026-11-21T12:00:05Z".into(),
        }
    }

    fn pump_sale() -> (Sale, SequentialIds) {
        (Sale::new(SaleId("S1".into()), Basket::for_order(&order()), NOW), SequentialIds::new("k"))
    }

    fn kinds(t: &Transition) -> Vec<(&str, &str)> {
        t.ops.iter().map(|q| (q.key.as_str(), q.op.kind().as_str())).collect()
    }

    #[test]
    fn card_sale_of_a_pump_order_runs_lock_pay_report_receipt() {
        let (mut s, mut ids) = pump_sale();
        let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Locking);
        assert_eq!(kinds(&t), [("k1", "tokenx_lock")]);
        assert_eq!(t.journal.kind, "pay_requested");

        let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Paying);
        assert_eq!(kinds(&t), [("k2", "card_sale")]);
        assert_eq!(t.ops[0].op, Op::CardSale { amount: try_(135_000) });

        let payment = Payment { amount: try_(135_000), kind: PaymentKind::Card { slip: slip() } };
        let t = s.handle(SaleEvent::PaymentApproved { payment }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Paid);
        assert_eq!(kinds(&t), [("k3", "tokenx_payment"), ("k4", "print_slip")]);
        match &t.ops[0].op {
            Op::TokenxPayment { lock_id, payments, .. } => {
                assert_eq!(lock_id, "L1");
                assert_eq!(payments[0].slip.as_ref().unwrap().approval_code, "004839");
                assert_eq!(payments[0].amount, try_(135_000));
            }
            other => panic!("unexpected {other:?}"),
        }

        s.handle(SaleEvent::ReportAcknowledged, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Reported);
        let receipt = ReceiptInfo { fiscal_no: "F1".into(), z_no: "Z1".into(), eku_no: "E1".into(), issued_at: NOW };
        s.handle(SaleEvent::ReceiptIssued { receipt }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Completed);
    }

    #[test]
    fn declined_card_unlocks_and_reopens_with_a_notice() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        let t = s
            .handle(
                SaleEvent::PaymentDeclined { code: "DECLINED".into(), message: "Insufficient funds.".into() },
                NOW,
                &mut ids,
            )
            .unwrap();
        assert_eq!(s.state, SaleState::Open);
        assert_eq!(t.ops[0].op, Op::TokenxUnlock { order_id: "ORD-1".into(), lock_id: "L1".into() });
        assert_eq!(s.lock, None);
        let notice = s.notice.clone().unwrap();
        assert_eq!(notice.code, "DECLINED");
        assert!(notice.message.contains("No money was taken"), "{}", notice.message);
        // A second attempt gets fresh keys.
        let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        assert_eq!(kinds(&t), [("k4", "tokenx_lock")]);
        assert_eq!(s.attempts, 2);
    }

    #[test]
    fn lock_conflict_allows_no_payment() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        let t = s
            .handle(SaleEvent::LockRefused { code: "ORDER_LOCKED".into(), message: "locked".into() }, NOW, &mut ids)
            .unwrap();
        assert!(t.ops.is_empty());
        assert_eq!(s.state, SaleState::Open);
        assert!(s.notice.as_ref().unwrap().message.contains("another register"));
        let err = s.handle(
            SaleEvent::PaymentApproved {
                payment: Payment { amount: try_(1), kind: PaymentKind::Card { slip: slip() } },
            },
            NOW,
            &mut ids,
        );
        assert!(matches!(err, Err(SaleError::InvalidState { .. })));
        assert!(s.payments.is_empty());
    }

    #[test]
    fn unreachable_cloud_releases_a_lock_that_may_exist() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        let t = s
            .handle(SaleEvent::LockUnavailable { message: "timed out".into(), maybe_locked: true }, NOW, &mut ids)
            .unwrap();
        assert_eq!(t.ops[0].op, Op::TokenxRelease { order_id: "ORD-1".into() });
        assert_eq!(s.notice.as_ref().unwrap().code, "OFFLINE");

        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        let t = s
            .handle(SaleEvent::LockUnavailable { message: "refused".into(), maybe_locked: false }, NOW, &mut ids)
            .unwrap();
        assert!(t.ops.is_empty());
    }

    #[test]
    fn late_lock_grant_is_given_back() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::LockUnavailable { message: "x".into(), maybe_locked: false }, NOW, &mut ids).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L9".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        assert_eq!(t.ops[0].op, Op::TokenxUnlock { order_id: "ORD-1".into(), lock_id: "L9".into() });
        assert_eq!(s.state, SaleState::Open);
    }

    #[test]
    fn cash_for_a_pump_order_pays_on_lock_and_gives_change() {
        let (mut s, mut ids) = pump_sale();
        let method = PayMethod::Cash { tendered: try_(140_000) };
        s.handle(SaleEvent::PayRequested { method, amount: None }, NOW, &mut ids).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Paid);
        assert_eq!(kinds(&t), [("k2", "tokenx_payment"), ("k3", "print_slip")]);
        assert_eq!(s.payments[0].kind, PaymentKind::Cash { tendered: try_(140_000), change: try_(5_000) });
    }

    #[test]
    fn cash_short_of_the_total_is_refused_without_change() {
        let (mut s, mut ids) = pump_sale();
        let before = s.clone();
        let err = s.handle(
            SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(100) }, amount: None },
            NOW,
            &mut ids,
        );
        assert!(matches!(err, Err(SaleError::InsufficientCash { .. })));
        assert_eq!(s, before);
    }

    #[test]
    fn shop_only_sale_completes_without_the_cloud() {
        let mut basket = Basket::new(Currency::TRY);
        basket
            .add_item(ShopItem { sku: "1".into(), name: "Su".into(), unit_price: try_(1000), vat_rate_bp: 1000 }, 2)
            .unwrap();
        let mut s = Sale::new(SaleId("S2".into()), basket, NOW);
        let mut ids = SequentialIds::new("k");
        let t = s
            .handle(
                SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(2000) }, amount: None },
                NOW,
                &mut ids,
            )
            .unwrap();
        assert_eq!(s.state, SaleState::Completed);
        assert_eq!(kinds(&t), [("k1", "print_slip")]);

        let mut empty = Sale::new(SaleId("S3".into()), Basket::new(Currency::TRY), NOW);
        assert_eq!(
            empty.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids),
            Err(SaleError::EmptyBasket)
        );
    }

    #[test]
    fn cancel_only_when_open() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
        assert!(s.handle(SaleEvent::CancelRequested, NOW, &mut ids).is_err());
        s.handle(SaleEvent::LockRefused { code: "ORDER_LOCKED".into(), message: String::new() }, NOW, &mut ids)
            .unwrap();
        s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Cancelled);
    }

    fn card(amount: i64, tr: &str) -> Payment {
        let mut s = slip();
        s.transaction_ref = tr.into();
        Payment { amount: try_(amount), kind: PaymentKind::Card { slip: s } }
    }

    fn pay(
        s: &mut Sale,
        ids: &mut SequentialIds,
        method: PayMethod,
        amount: Option<i64>,
    ) -> Result<Transition, SaleError> {
        s.handle(SaleEvent::PayRequested { method, amount: amount.map(try_) }, NOW, ids)
    }

    #[test]
    fn split_card_then_cash_reports_both_parts_once_fully_paid() {
        let (mut s, mut ids) = pump_sale();
        // 1,350.00 in all: 1,000.00 by card first.
        pay(&mut s, &mut ids, PayMethod::Card, Some(100_000)).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        let t = s.handle(SaleEvent::PaymentApproved { payment: card(100_000, "TR1") }, NOW, &mut ids).unwrap();
        assert!(t.ops.is_empty(), "nothing is reported before the whole total is paid");
        assert_eq!(s.state, SaleState::Tendering);
        assert_eq!(s.remaining().unwrap(), try_(35_000));
        assert_eq!(s.notice.as_ref().unwrap().code, "PART_PAID");
        // The rest in cash, without locking again.
        let t = pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(40_000) }, None).unwrap();
        assert_eq!(s.state, SaleState::Paid);
        assert_eq!(kinds(&t).iter().map(|(_, k)| *k).collect::<Vec<_>>(), ["tokenx_payment", "print_slip"]);
        match &t.ops[0].op {
            Op::TokenxPayment { payments, .. } => {
                let parts: Vec<(ReportedMethod, i64)> = payments.iter().map(|p| (p.method, p.amount.minor)).collect();
                assert_eq!(parts, [(ReportedMethod::Card, 100_000), (ReportedMethod::Cash, 35_000)]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.payments[1].kind, PaymentKind::Cash { tendered: try_(40_000), change: try_(5_000) });
    }

    #[test]
    fn a_failed_second_part_keeps_the_first_and_the_lock() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR1") }, NOW, &mut ids).unwrap();
        pay(&mut s, &mut ids, PayMethod::MobilePay, None).unwrap();
        let t = s
            .handle(
                SaleEvent::PaymentDeclined {
                    code: "CancelledByUser".into(),
                    message: "The customer cancelled.".into(),
                },
                NOW,
                &mut ids,
            )
            .unwrap();
        assert!(t.ops.is_empty(), "no unlock while a part is paid");
        assert_eq!(s.state, SaleState::Tendering);
        assert!(s.lock.is_some());
        let n = s.notice.clone().unwrap();
        assert!(n.message.contains("Still to pay: 850,00 TRY"), "{}", n.message);
        // Parts must be positive and within what is left.
        assert!(matches!(pay(&mut s, &mut ids, PayMethod::Card, Some(90_000)), Err(SaleError::BadPart { .. })));
        assert!(matches!(pay(&mut s, &mut ids, PayMethod::Card, Some(0)), Err(SaleError::BadPart { .. })));
    }

    #[test]
    fn app_payments_get_a_reference_before_their_first_attempt() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Settle, None).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        let reference = s.attempt.as_ref().unwrap().reference.clone().unwrap();
        assert_eq!(t.ops[0].op, Op::SettleScanWait { amount: try_(135_000), pos_tid: reference.clone() });
        assert_eq!(t.ops[0].op.lane(), format!("settle:{reference}"));
        let t = s.handle(SaleEvent::SettleScanned { token: "token:1".into() }, NOW, &mut ids).unwrap();
        assert_eq!(
            t.ops[0].op,
            Op::SettleRequest { amount: try_(135_000), pos_tid: reference.clone(), token: "token:1".into() }
        );
        let t = s.handle(SaleEvent::SettleRequested { tid: "p2ybyw4tq73n".into() }, NOW, &mut ids).unwrap();
        assert_eq!(
            t.ops[0].op,
            Op::SettleAwait { amount: try_(135_000), tid: "p2ybyw4tq73n".into(), pos_tid: Some(reference.clone()) }
        );
        assert_eq!(s.attempt.as_ref().unwrap().provider_ref.as_deref(), Some("p2ybyw4tq73n"));
        let t = s
            .handle(
                SaleEvent::PaymentDeclined { code: "5006".into(), message: "Rejected in the app.".into() },
                NOW,
                &mut ids,
            )
            .unwrap();
        assert_eq!(t.ops[0].op.kind(), crate::OpKind::TokenxUnlock, "nothing paid: the order is released");
        assert_eq!(s.state, SaleState::Open);

        pay(&mut s, &mut ids, PayMethod::MobilePay, None).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L2".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        match &t.ops[0].op {
            Op::MobilePayPayment { order_id, start, .. } => {
                assert!(*start);
                assert_eq!(Some(order_id), s.attempt.as_ref().unwrap().reference.as_ref());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn paid_by_card() -> (Sale, SequentialIds) {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::PaymentApproved { payment: card(135_000, "TR9") }, NOW, &mut ids).unwrap();
        (s, ids)
    }

    #[test]
    fn refunds_never_exceed_the_payment() {
        let (mut s, mut ids) = paid_by_card();
        let refund =
            |amount| SaleEvent::RefundRequested { payment: 0, amount: try_(amount), reason: "wrong pump".into() };
        let t = s.handle(refund(35_000), NOW, &mut ids).unwrap();
        match &t.ops[0].op {
            Op::CardRefund { transfer_id, amount, .. } => {
                assert_eq!((transfer_id.as_str(), amount.minor), ("TR9", 35_000))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.refundable(0).unwrap(), try_(100_000));
        // A full refund on top is past the original amount.
        assert_eq!(
            s.handle(refund(135_000), NOW, &mut ids),
            Err(SaleError::RefundTooLarge { amount: try_(135_000), available: try_(100_000) })
        );
        let id = s.refunds[0].id.clone();
        let t = s.handle(SaleEvent::RefundCompleted { refund_id: id }, NOW, &mut ids).unwrap();
        assert!(matches!(t.ops[0].op, Op::PrintSlip { refund: Some(_), .. }), "a refund slip is printed");
        s.handle(refund(100_000), NOW, &mut ids).unwrap();
        assert_eq!(s.refundable(0).unwrap(), try_(0));
        assert!(s.handle(refund(1), NOW, &mut ids).is_err());
        // A failed refund frees its amount again.
        let id = s.refunds[1].id.clone();
        s.handle(SaleEvent::RefundFailed { refund_id: id, message: "closed".into() }, NOW, &mut ids).unwrap();
        assert_eq!(s.refundable(0).unwrap(), try_(100_000));
    }

    #[test]
    fn cancelling_a_partly_paid_sale_gives_the_parts_back_then_releases_the_order() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(20_000) }, Some(20_000)).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
        s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR5") }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Tendering);
        let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Voiding);
        let kinds: Vec<&str> = t.ops.iter().map(|q| q.op.kind().as_str()).collect();
        assert_eq!(kinds, ["print_slip", "refund"], "cash back at once, the card refunded");
        let card_refund = s.refunds.iter().find(|r| r.state == RefundState::Pending).unwrap().id.clone();
        let t = s.handle(SaleEvent::RefundCompleted { refund_id: card_refund }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Cancelled);
        assert!(t.ops.iter().any(|q| q.op.kind() == crate::OpKind::TokenxUnlock));
        assert_eq!(s.notice.unwrap().code, "VOIDED");
    }

    #[test]
    fn a_charge_that_is_not_what_was_asked_is_held_and_given_back_by_a_void() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        // The terminal reports dollars for a lira sale.
        let charged = Payment { amount: Money::new(135_000, Currency::USD), kind: card(0, "TR7").kind };
        let t = s.handle(SaleEvent::PaymentMismatch { payment: charged.clone() }, NOW, &mut ids).unwrap();
        assert!(t.ops.is_empty(), "nothing is reported or printed for money that is not right");
        assert_eq!(s.state, SaleState::NeedsAttention);
        assert!(!s.state.is_paid() && !s.state.is_busy());
        assert_eq!(s.payments, []);
        assert_eq!(s.unexpected, [charged]);
        let n = s.notice.clone().unwrap();
        assert_eq!((n.level, n.code.as_str()), (NoticeLevel::Error, "CURRENCY_MISMATCH"));
        assert!(n.message.contains("1.350,00 USD") && n.message.contains("1.350,00 TRY"), "{}", n.message);
        assert!(s.lock.is_some(), "the order stays locked while the money is sorted out");
        assert!(pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(135_000) }, None).is_err());

        // The manager voids it: the charge goes back in its own currency, then the order is free.
        let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Voiding);
        match &t.ops[..] {
            [q] => assert_eq!(
                q.op,
                Op::CardRefund {
                    refund_id: s.refunds[0].id.clone(),
                    transfer_id: "TR7".into(),
                    amount: Money::new(135_000, Currency::USD)
                }
            ),
            other => panic!("one reversal expected, got {other:?}"),
        }
        assert!(s.refunds[0].unexpected);
        let id = s.refunds[0].id.clone();
        let t = s.handle(SaleEvent::RefundCompleted { refund_id: id }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Cancelled);
        assert!(t.ops.iter().any(|q| q.op.kind() == crate::OpKind::TokenxUnlock));
        assert_eq!(s.refunded_payment(&s.refunds[0]).unwrap().amount.currency, Currency::USD);
    }

    #[test]
    fn a_short_approval_after_a_paid_part_is_held_with_both() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(35_000) }, Some(35_000)).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
        let short = card(90_000, "TR8");
        s.handle(SaleEvent::PaymentMismatch { payment: short }, NOW, &mut ids).unwrap();
        assert_eq!(s.notice.as_ref().unwrap().code, "AMOUNT_MISMATCH");
        let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        let kinds: Vec<&str> = t.ops.iter().map(|q| q.op.kind().as_str()).collect();
        assert_eq!(kinds, ["print_slip", "refund"], "the cash back at once, the short card charge reversed");
        let amounts: Vec<(bool, i64)> = s.refunds.iter().map(|r| (r.unexpected, r.amount.minor)).collect();
        assert_eq!(amounts, [(false, 35_000), (true, 90_000)]);
    }

    #[test]
    fn an_unresolved_payment_holds_the_sale_until_its_outcome_is_known() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        let reason = "Finix answered 401 to the repeated request".to_string();
        s.handle(SaleEvent::PaymentUnresolved { reason }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::NeedsAttention);
        assert!(s.attempt.is_some(), "the attempt is kept: its outcome is still to come");
        assert_eq!(s.notice.as_ref().unwrap().code, "UNRESOLVED");
        assert!(s.notice.as_ref().unwrap().message.contains("Do not take payment again"));
        // Neither another payment nor a void while the money is unknown.
        assert!(pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(135_000) }, None).is_err());
        assert!(matches!(s.handle(SaleEvent::CancelRequested, NOW, &mut ids), Err(SaleError::InvalidState { .. })));
        // The manager retries it; the definite answer arrives and the sale goes on as usual.
        let t = s.handle(SaleEvent::PaymentApproved { payment: card(135_000, "TR3") }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Paid);
        assert_eq!(kinds(&t).iter().map(|(_, k)| *k).collect::<Vec<_>>(), ["tokenx_payment", "print_slip"]);
    }

    #[test]
    fn a_refund_that_fails_during_a_void_holds_the_sale() {
        let (mut s, mut ids) = pump_sale();
        pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
        s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR5") }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        let id = s.refunds[0].id.clone();
        s.handle(SaleEvent::RefundFailed { refund_id: id, message: "closed".into() }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::NeedsAttention, "not left voiding for ever");
        // Voiding again asks for the refund again.
        let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Voiding);
        assert_eq!(t.ops.iter().filter(|q| q.op.kind() == crate::OpKind::Refund).count(), 1);
    }
}
