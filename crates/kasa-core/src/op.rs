//! Operations a sale asks the outside world to perform.
//!
//! Each operation is written to the outbox in the same transaction as the sale step that causes
//! it, together with an idempotency key made before its first attempt. The key is the
//! operation's identity at the remote side: Token X `requestId`, Finix `idempotency_id`. Every
//! retry reuses it, so a repeated delivery is recognised rather than performed again.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::fiscal::FiscalDoc;
use crate::money::Money;
use crate::payment::ReportedPayment;

/// An outbound operation. The idempotency key travels beside it, never inside it, so no
/// operation can be built without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Lock a pump order for this register (Token X Lock).
    TokenxLock {
        /// The order.
        order_id: String,
    },
    /// Release a lock this register holds (Token X Unlock).
    TokenxUnlock {
        /// The order.
        order_id: String,
        /// The lock to release.
        lock_id: String,
    },
    /// Release whatever lock this register may hold on an order whose lock outcome is unknown:
    /// read the order and unlock it if the lock is this terminal's.
    TokenxRelease {
        /// The order.
        order_id: String,
    },
    /// Report the payment of a pump order with its slip data (Token X Payment).
    TokenxPayment {
        /// The order.
        order_id: String,
        /// The lock held while paying.
        lock_id: String,
        /// What was paid, and how.
        payments: Vec<ReportedPayment>,
    },
    /// Take a card-present payment on the configured terminal (Finix Transfer with a device).
    CardSale {
        /// Amount to charge.
        amount: Money,
    },
    /// Find out, after a restart, how a card sale whose outcome is unknown ended: cancel any
    /// prompt still on the terminal, then send the same sale again with the same idempotency id,
    /// which Finix answers with the original transfer if one exists. Only that definite answer
    /// ends the attempt; an empty lookup proves nothing (the customer may still be tapping).
    CardLookup {
        /// Amount of the sale looked up.
        amount: Money,
        /// The idempotency id of the original card sale.
        idempotency_id: String,
        /// When the original card sale was queued: long after it, the same sale is no longer
        /// sent again (a new prompt would meet another customer), only looked up.
        #[serde(default, with = "time::serde::rfc3339::option")]
        original_at: Option<time::OffsetDateTime>,
    },
    /// Take a MobilePay payment: start it (when `start`), wait for the customer, capture it when
    /// reserved. `order_id` is the payment's MobilePay `orderId`, chosen before the first
    /// attempt, so a repeated or resumed delivery finds the same payment.
    MobilePayPayment {
        /// Amount.
        amount: Money,
        /// MobilePay `orderId`.
        order_id: String,
        /// Start the payment if none exists yet (false after a restart: only resume one).
        start: bool,
    },
    /// Wait for the customer to scan the Settle QR code carrying `pos_tid` (Kasa's callback
    /// handler hears of the scan); gives up after a few minutes.
    SettleScanWait {
        /// Amount the customer will be asked for.
        amount: Money,
        /// The POS transaction id in the QR code.
        pos_tid: String,
    },
    /// Ask the customer who scanned (scan token) for the payment. Settle recognises a repeated
    /// `pos_tid`, so a retry does not ask twice.
    SettleRequest {
        /// Amount.
        amount: Money,
        /// The POS transaction id.
        pos_tid: String,
        /// The scan token Settle gave for the scan.
        token: String,
    },
    /// Follow a Settle payment request until the customer decides; capture it once authorised.
    SettleAwait {
        /// Amount.
        amount: Money,
        /// Settle's transaction id.
        tid: String,
        /// The POS transaction id the request was made for, checked against Settle's outcome.
        #[serde(default)]
        pos_tid: Option<String>,
    },
    /// Refund part or all of a card payment (a Finix reversal).
    CardRefund {
        /// The refund's id in the sale.
        refund_id: String,
        /// The transfer refunded.
        transfer_id: String,
        /// Amount to give back.
        amount: Money,
    },
    /// Refund part or all of a MobilePay payment (create, then capture the refund).
    MobilePayRefund {
        /// The refund's id in the sale (also the MobilePay `refundOrderId`).
        refund_id: String,
        /// The payment refunded.
        payment_id: String,
        /// Amount to give back.
        amount: Money,
    },
    /// Refund part or all of a Settle payment.
    SettleRefund {
        /// The refund's id in the sale.
        refund_id: String,
        /// Settle's transaction id of the payment.
        tid: String,
        /// Amount to give back.
        amount: Money,
    },
    /// Have a receipt signed by the fiscal middleware (fiskaltrust `POST /v2/sign`); the
    /// idempotency key is its `x-operation-id`.
    FiscalSign {
        /// What is signed.
        doc: FiscalDoc,
    },
    /// Print the sale's customer slip.
    PrintSlip {
        /// A reprint, marked as a copy.
        copy: bool,
        /// Print the slip of this refund instead of the sale's.
        #[serde(default)]
        refund: Option<String>,
    },
}

/// The kind of an operation, for retry policy, logs and the manager's queue view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// [`Op::TokenxLock`].
    TokenxLock,
    /// [`Op::TokenxUnlock`].
    TokenxUnlock,
    /// [`Op::TokenxRelease`].
    TokenxRelease,
    /// [`Op::TokenxPayment`].
    TokenxPayment,
    /// [`Op::CardSale`].
    CardSale,
    /// [`Op::CardLookup`].
    CardLookup,
    /// [`Op::MobilePayPayment`].
    MobilePayPayment,
    /// [`Op::SettleScanWait`], [`Op::SettleRequest`], [`Op::SettleAwait`].
    SettlePayment,
    /// [`Op::CardRefund`], [`Op::MobilePayRefund`], [`Op::SettleRefund`].
    Refund,
    /// [`Op::PrintSlip`].
    PrintSlip,
    /// [`Op::FiscalSign`].
    FiscalSign,
}

impl OpKind {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::TokenxLock => "tokenx_lock",
            OpKind::TokenxUnlock => "tokenx_unlock",
            OpKind::TokenxRelease => "tokenx_release",
            OpKind::TokenxPayment => "tokenx_payment",
            OpKind::CardSale => "card_sale",
            OpKind::CardLookup => "card_lookup",
            OpKind::MobilePayPayment => "mobilepay_payment",
            OpKind::SettlePayment => "settle_payment",
            OpKind::Refund => "refund",
            OpKind::PrintSlip => "print_slip",
            OpKind::FiscalSign => "fiscal_sign",
        }
    }
}

impl Op {
    /// This operation's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::TokenxLock { .. } => OpKind::TokenxLock,
            Op::TokenxUnlock { .. } => OpKind::TokenxUnlock,
            Op::TokenxRelease { .. } => OpKind::TokenxRelease,
            Op::TokenxPayment { .. } => OpKind::TokenxPayment,
            Op::CardSale { .. } => OpKind::CardSale,
            Op::CardLookup { .. } => OpKind::CardLookup,
            Op::MobilePayPayment { .. } => OpKind::MobilePayPayment,
            Op::SettleScanWait { .. } | Op::SettleRequest { .. } | Op::SettleAwait { .. } => OpKind::SettlePayment,
            Op::CardRefund { .. } | Op::MobilePayRefund { .. } | Op::SettleRefund { .. } => OpKind::Refund,
            Op::PrintSlip { .. } => OpKind::PrintSlip,
            Op::FiscalSign { .. } => OpKind::FiscalSign,
        }
    }

    /// The delivery lane. Messages in one lane are delivered strictly in order; lanes are
    /// independent, so a slow printer never holds back a payment report.
    ///
    /// Cloud calls about one pump order share the order's lane, whichever sale made them, so
    /// a release left by an abandoned attempt always runs before a later attempt's lock.
    /// Card sales share the terminal's lane (a terminal takes one card at a time), MobilePay
    /// payments the PoS's (MobilePay allows one active payment per point of sale) and slips the
    /// printer's: these are device lanes ([`DEVICE_LANE`]), where one sale's message waits for
    /// another sale's earlier one only while that one is being delivered or due, never while it
    /// backs off after a failure or is parked for the manager. Order between a sale's operations
    /// in different lanes follows from the state machine, which queues an operation only after
    /// the outcome it depends on. Settle payments and refunds are independent of each other.
    /// Receipts share a strict lane ([`STRICT_LANE`]), where a parked message holds back every
    /// later one.
    pub fn lane(&self) -> String {
        match self {
            Op::TokenxLock { order_id }
            | Op::TokenxUnlock { order_id, .. }
            | Op::TokenxRelease { order_id }
            | Op::TokenxPayment { order_id, .. } => format!("order:{order_id}"),
            Op::CardSale { .. } | Op::CardLookup { .. } => format!("{DEVICE_LANE}terminal"),
            Op::MobilePayPayment { .. } => format!("{DEVICE_LANE}mobilepay"),
            Op::SettleScanWait { pos_tid, .. } | Op::SettleRequest { pos_tid, .. } => format!("settle:{pos_tid}"),
            Op::SettleAwait { tid, .. } => format!("settle:{tid}"),
            Op::CardRefund { refund_id, .. }
            | Op::MobilePayRefund { refund_id, .. }
            | Op::SettleRefund { refund_id, .. } => {
                format!("refund:{refund_id}")
            }
            Op::PrintSlip { .. } => format!("{DEVICE_LANE}printer"),
            // Receipts are signed in the order they were made, a late one included.
            Op::FiscalSign { .. } => format!("{STRICT_LANE}fiscal"),
        }
    }
}

/// The outside system an operation goes to: each has one home in the engine, which delivers,
/// recovers and watches what goes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The Token X cloud (pump orders).
    Tokenx,
    /// Finix (card terminals).
    Finix,
    /// MobilePay.
    MobilePay,
    /// Settle.
    Settle,
    /// The receipt printer.
    Printer,
    /// The fiscal middleware (fiskaltrust).
    Fiscal,
}

impl Op {
    /// The system this operation goes to. A refund goes to the provider of the payment it gives
    /// back.
    pub fn system(&self) -> System {
        match self {
            Op::TokenxLock { .. } | Op::TokenxUnlock { .. } | Op::TokenxRelease { .. } | Op::TokenxPayment { .. } => {
                System::Tokenx
            }
            Op::CardSale { .. } | Op::CardLookup { .. } | Op::CardRefund { .. } => System::Finix,
            Op::MobilePayPayment { .. } | Op::MobilePayRefund { .. } => System::MobilePay,
            Op::SettleScanWait { .. } | Op::SettleRequest { .. } | Op::SettleAwait { .. } | Op::SettleRefund { .. } => {
                System::Settle
            }
            Op::PrintSlip { .. } => System::Printer,
            Op::FiscalSign { .. } => System::Fiscal,
        }
    }
}

/// The prefix of a device's lane: shared by every sale that uses the device, in order, but
/// never held up by another sale's message that is failing (see [`Op::lane`]).
pub const DEVICE_LANE: &str = "device:";

/// The prefix of a strict lane: every message waits for every older one, pending or parked,
/// whatever sale made it (receipts to be signed, which must keep their order).
pub const STRICT_LANE: &str = "strict:";

/// An operation together with the idempotency key it will carry on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// The idempotency key.
    pub key: String,
    /// The operation.
    pub op: Op,
}
