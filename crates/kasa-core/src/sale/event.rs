//! What can happen to a sale, what a step can refuse, and what a step asks the caller to store.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::basket::ShopItem;
use crate::fiscal::{BusinessCustomer, FiscalSignature};
use crate::journal::JournalRecord;
use crate::money::{Money, MoneyError};
use crate::op::Queued;
use crate::order::ReceiptInfo;
use crate::payment::{PayMethod, Payment};

use super::SaleState;

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
    /// The fiscal middleware signed one of the sale's receipts.
    FiscalSigned {
        /// The receipt's reference.
        reference: String,
        /// What the middleware answered.
        signature: FiscalSignature,
    },
    /// The cashier named the business to invoice (or cleared it).
    CustomerSet {
        /// The business; none for a plain receipt.
        customer: Option<BusinessCustomer>,
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
            SaleEvent::FiscalSigned { .. } => "fiscal_signed",
            SaleEvent::CustomerSet { .. } => "customer_set",
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
    /// An invoice's customer without a name or VAT id.
    #[error("an invoice needs the company's name and VAT id; enter both, or clear the customer")]
    IncompleteCustomer,
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
