//! Payments: how a customer pays (a method), what a payment took, what was given back, and
//! how payments are reported to the cloud against a pump order.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::money::Money;

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

impl MethodKind {
    /// The stable lower-case name stored in the database (`card`, `cash`, `mobilepay`, `settle`).
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Card => "card",
            MethodKind::Cash => "cash",
            MethodKind::MobilePay => "mobilepay",
            MethodKind::Settle => "settle",
        }
    }

    /// From its stored name.
    pub fn parse(name: &str) -> Option<MethodKind> {
        [MethodKind::Card, MethodKind::Cash, MethodKind::MobilePay, MethodKind::Settle]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
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

    pub(crate) fn reported_method(&self) -> ReportedMethod {
        match self.method() {
            MethodKind::Card => ReportedMethod::Card,
            MethodKind::Cash => ReportedMethod::Cash,
            MethodKind::MobilePay => ReportedMethod::Mobilepay,
            MethodKind::Settle => ReportedMethod::Settle,
        }
    }

    pub(crate) fn slip(&self) -> Option<CardSlip> {
        match &self.kind {
            PaymentKind::Card { slip } => Some(slip.clone()),
            _ => None,
        }
    }
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

/// How a payment is named in the Token X payment report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "UPPERCASE")]
pub enum ReportedMethod {
    /// A card on a payment terminal.
    Card,
    /// Cash in the drawer.
    Cash,
    /// MobilePay.
    Mobilepay,
    /// Settle QR.
    Settle,
}

/// One payment as reported to the cloud against a pump order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPayment {
    /// Method.
    pub method: ReportedMethod,
    /// The part of the order amount paid this way.
    pub amount: Money,
    /// The customer slip data of a card payment.
    pub slip: Option<CardSlip>,
}
