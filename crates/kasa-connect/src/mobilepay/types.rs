//! What Kasa learns from MobilePay, as Kasa's types: statuses, payments, refunds, terminals,
//! stores and check-ins.

use kasa_core::Money;

/// The status of a payment, as the document lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Started; waiting for a customer at the PoS.
    Initiated,
    /// Prepared without an amount; waiting for ready.
    Prepared,
    /// A customer checked in and is paired with the payment.
    Paired,
    /// Shown to the customer in the app.
    IssuedToUser,
    /// Approved by the customer; ready to capture.
    Reserved,
    /// Captured: the money is taken.
    Captured,
    /// The customer cancelled.
    CancelledByUser,
    /// The PoS cancelled.
    CancelledByClient,
    /// MobilePay cancelled.
    CancelledByMobilePay,
    /// Nobody acted in time.
    ExpiredAndCancelled,
    /// MobilePay refused the customer for an age restriction.
    RejectedByMobilePayDueToAgeRestrictions,
    /// A status this client does not know (neither active nor final).
    Unknown(String),
}

impl PaymentStatus {
    /// Reads a status name (exact spelling; anything else is [`PaymentStatus::Unknown`]).
    pub fn parse(text: &str) -> PaymentStatus {
        match text {
            "Initiated" => PaymentStatus::Initiated,
            "Prepared" => PaymentStatus::Prepared,
            "Paired" => PaymentStatus::Paired,
            "IssuedToUser" => PaymentStatus::IssuedToUser,
            "Reserved" => PaymentStatus::Reserved,
            "Captured" => PaymentStatus::Captured,
            "CancelledByUser" => PaymentStatus::CancelledByUser,
            "CancelledByClient" => PaymentStatus::CancelledByClient,
            "CancelledByMobilePay" => PaymentStatus::CancelledByMobilePay,
            "ExpiredAndCancelled" => PaymentStatus::ExpiredAndCancelled,
            "RejectedByMobilePayDueToAgeRestrictions" => PaymentStatus::RejectedByMobilePayDueToAgeRestrictions,
            other => PaymentStatus::Unknown(other.to_string()),
        }
    }

    /// The name as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            PaymentStatus::Initiated => "Initiated",
            PaymentStatus::Prepared => "Prepared",
            PaymentStatus::Paired => "Paired",
            PaymentStatus::IssuedToUser => "IssuedToUser",
            PaymentStatus::Reserved => "Reserved",
            PaymentStatus::Captured => "Captured",
            PaymentStatus::CancelledByUser => "CancelledByUser",
            PaymentStatus::CancelledByClient => "CancelledByClient",
            PaymentStatus::CancelledByMobilePay => "CancelledByMobilePay",
            PaymentStatus::ExpiredAndCancelled => "ExpiredAndCancelled",
            PaymentStatus::RejectedByMobilePayDueToAgeRestrictions => "RejectedByMobilePayDueToAgeRestrictions",
            PaymentStatus::Unknown(s) => s,
        }
    }

    /// Still going: it blocks a new payment on its PoS and must be finished or cancelled.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Initiated
                | PaymentStatus::Prepared
                | PaymentStatus::Paired
                | PaymentStatus::IssuedToUser
                | PaymentStatus::Reserved
        )
    }

    /// Over: captured, cancelled, expired or rejected; it will not change again.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PaymentStatus::Captured
                | PaymentStatus::CancelledByUser
                | PaymentStatus::CancelledByClient
                | PaymentStatus::CancelledByMobilePay
                | PaymentStatus::ExpiredAndCancelled
                | PaymentStatus::RejectedByMobilePayDueToAgeRestrictions
        )
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment as start, prepare and ready answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// MobilePay's payment id.
    pub payment_id: String,
    /// The PoS's order id.
    pub order_id: String,
    /// Status.
    pub status: PaymentStatus,
}

/// A payment with its amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDetails {
    /// MobilePay's payment id.
    pub payment_id: String,
    /// The PoS's order id.
    pub order_id: String,
    /// Terminal.
    pub terminal_id: Option<String>,
    /// PoS.
    pub pos_id: Option<String>,
    /// Store.
    pub store_id: Option<String>,
    /// Amount requested (`None` for a prepared payment not yet ready).
    pub amount: Option<Money>,
    /// Amount captured (zero until captured).
    pub captured_amount: Money,
    /// Amount refunded by captured refunds.
    pub refunded_amount: Money,
    /// Status.
    pub status: PaymentStatus,
}

impl PaymentDetails {
    /// The payment's id, order id and status.
    pub fn payment(&self) -> Payment {
        Payment { payment_id: self.payment_id.clone(), order_id: self.order_id.clone(), status: self.status.clone() }
    }
}

/// The status of a refund.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// Created; capture or cancel it.
    Initiated,
    /// The money is given back.
    Captured,
    /// Cancelled; nothing is given back.
    Cancelled,
    /// A status this client does not know.
    Unknown(String),
}

impl RefundStatus {
    pub(crate) fn parse(text: &str) -> RefundStatus {
        match text {
            "Initiated" => RefundStatus::Initiated,
            "Captured" => RefundStatus::Captured,
            "Cancelled" => RefundStatus::Cancelled,
            other => RefundStatus::Unknown(other.to_string()),
        }
    }
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// MobilePay's refund id.
    pub refund_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The PoS's refund order id.
    pub refund_order_id: String,
    /// Amount.
    pub amount: Money,
    /// Status.
    pub status: RefundStatus,
}

/// A terminal and its PoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// Terminal id.
    pub terminal_id: String,
    /// Name.
    pub name: Option<String>,
    /// Store.
    pub store_id: Option<String>,
    /// The PoS, if one is created.
    pub pos_id: Option<String>,
}

/// A store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// Store id.
    pub store_id: String,
    /// Name.
    pub name: String,
    /// Street address.
    pub street: String,
    /// Postal code.
    pub zip_code: String,
    /// City.
    pub city: String,
    /// Its terminals.
    pub terminal_ids: Vec<String>,
}

/// Who is checked in at a PoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInStatus {
    /// Terminal.
    pub terminal_id: Option<String>,
    /// PoS.
    pub pos_id: Option<String>,
    /// Whether a customer is checked in.
    pub checked_in: bool,
    /// The customer, when checked in.
    pub customer_id: Option<String>,
    /// Since when (RFC 3339), when checked in.
    pub checked_in_at: Option<String>,
}

/// Filters of the payment list; all empty lists this merchant's active payments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentsQuery {
    /// Only payments in this state (active payments when `None`).
    pub state: Option<PaymentStatus>,
    /// Only payments with this order id.
    pub order_id: Option<String>,
    /// Only payments at this terminal.
    pub terminal_id: Option<String>,
}
