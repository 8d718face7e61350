//! The sale state machine.
//!
//! A [`Sale`] changes only through [`Sale::handle`], which takes one [`SaleEvent`] (a cashier's
//! action or the outcome of an operation), the current time and an identifier source, and
//! returns a [`Transition`]: the operations to queue and the journal record to write. The caller
//! stores the new sale, the operations and the journal record in one transaction.
//!
//! ```text
//!            pay (pump order)            lock granted (card)
//!   Open ─────────────────────► Locking ─────────────────────► Paying
//!    ▲  │ pay (shop only, card)    │ refused / unreachable        │
//!    │  └──────────────────────────┼──────────────► Paying        │ approved
//!    │◄────────────────────────────┘                              ▼
//!    │◄─────────────── declined / cancelled (unlock queued) ──── Paid ──report acked──► Reported
//!    │                                                             │ (shop only)           │ receipt
//!    └── cancel ──► Cancelled                                      └──────► Completed ◄────┘
//! ```

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
    /// Waiting for the payment (card terminal).
    Paying,
    /// Paid; the pump order's payment report is on its way to the cloud.
    Paid,
    /// The cloud accepted the payment report; waiting for the pump's receipt.
    Reported,
    /// Finished.
    Completed,
    /// Abandoned before payment.
    Cancelled,
}

impl SaleState {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::Open => "Open",
            SaleState::Locking => "Locking",
            SaleState::Paying => "Paying",
            SaleState::Paid => "Paid",
            SaleState::Reported => "Reported",
            SaleState::Completed => "Completed",
            SaleState::Cancelled => "Cancelled",
        }
    }

    /// Whether the customer has paid.
    pub fn is_paid(self) -> bool {
        matches!(self, SaleState::Paid | SaleState::Reported | SaleState::Completed)
    }

    /// Whether the sale waits on an operation the cashier is watching (lock or payment).
    pub fn is_busy(self) -> bool {
        matches!(self, SaleState::Locking | SaleState::Paying)
    }
}

/// How the cashier wants the customer to pay.
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
}

/// A payment taken for a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Payment {
    /// Amount paid.
    pub amount: Money,
    /// Method and its details.
    pub kind: PaymentKind,
}

impl Payment {
    fn reported_method(&self) -> ReportedMethod {
        match self.kind {
            PaymentKind::Card { .. } => ReportedMethod::Card,
            PaymentKind::Cash { .. } => ReportedMethod::Cash,
        }
    }

    fn slip(&self) -> Option<CardSlip> {
        match &self.kind {
            PaymentKind::Card { slip } => Some(slip.clone()),
            PaymentKind::Cash { .. } => None,
        }
    }
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
    /// The cashier asked to take payment.
    PayRequested {
        /// Method chosen.
        method: PayMethod,
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
    /// The payment was approved.
    PaymentApproved {
        /// The payment.
        payment: Payment,
    },
    /// The payment was declined or cancelled; no money was taken.
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
    /// The cashier abandoned the sale.
    CancelRequested,
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
            SaleEvent::PaymentApproved { .. } => "payment_approved",
            SaleEvent::PaymentDeclined { .. } => "payment_declined",
            SaleEvent::ReportAcknowledged => "report_acknowledged",
            SaleEvent::ReportRefused { .. } => "report_refused",
            SaleEvent::ReceiptIssued { .. } => "receipt_issued",
            SaleEvent::ItemAdded { .. } => "item_added",
            SaleEvent::CancelRequested => "cancel_requested",
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
    /// Cash tendered does not cover the total.
    #[error("cash tendered {tendered} does not cover the total {total}")]
    InsufficientCash {
        /// Tendered.
        tendered: Money,
        /// Total.
        total: Money,
    },
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
    /// The method of the attempt under way.
    pub pending: Option<PayMethod>,
    /// The lock held on the pump order.
    pub lock: Option<HeldLock>,
    /// Payments taken.
    pub payments: Vec<Payment>,
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
            pending: None,
            lock: None,
            payments: Vec::new(),
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

    /// Applies one event. On error the sale is unchanged.
    pub fn handle(
        &mut self,
        event: SaleEvent,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Transition, SaleError> {
        let mut next = self.clone();
        let ops = next.apply(&event, ids)?;
        next.updated_at = now;
        let journal = JournalRecord {
            sale_id: Some(self.id.0.clone()),
            kind: event.kind().to_string(),
            data: serde_json::json!({ "event": event, "state": next.state }),
        };
        *self = next;
        Ok(Transition { ops, journal })
    }

    fn apply(&mut self, event: &SaleEvent, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let mut queue = |op: Op| Queued { key: ids.next_id(), op };
        let invalid = |state, what| Err(SaleError::InvalidState { state, what });
        match event {
            SaleEvent::PayRequested { method } => {
                if self.state != SaleState::Open {
                    return invalid(self.state, "starting a payment");
                }
                if self.basket.lines.is_empty() {
                    return Err(SaleError::EmptyBasket);
                }
                let total = self.total()?;
                if let PayMethod::Cash { tendered } = method
                    && tendered.checked_sub(total)?.minor < 0
                {
                    return Err(SaleError::InsufficientCash { tendered: *tendered, total });
                }
                self.attempts += 1;
                self.pending = Some(method.clone());
                self.notice = None;
                match self.basket.pump_order_id() {
                    Some(order_id) => {
                        self.state = SaleState::Locking;
                        Ok(vec![queue(Op::TokenxLock { order_id: order_id.to_string() })])
                    }
                    None => self.start_payment(&mut queue),
                }
            }
            SaleEvent::LockGranted { lock_id, expires_at } => {
                if self.state != SaleState::Locking {
                    // The lock outlived the attempt that asked for it: give it back at once.
                    let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                    return Ok(vec![queue(Op::TokenxUnlock { order_id, lock_id: lock_id.clone() })]);
                }
                self.lock = Some(HeldLock { lock_id: lock_id.clone(), expires_at: *expires_at });
                self.start_payment(&mut queue)
            }
            SaleEvent::LockRenewed { expires_at } => match (&mut self.lock, self.state) {
                (Some(lock), SaleState::Paying) => {
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
                Ok(if *maybe_locked { vec![queue(Op::TokenxRelease { order_id })] } else { Vec::new() })
            }
            SaleEvent::PaymentApproved { payment } => {
                if self.state != SaleState::Paying {
                    return invalid(self.state, "an approved payment");
                }
                self.payments.push(payment.clone());
                Ok(self.finish_payment(&mut queue))
            }
            SaleEvent::PaymentDeclined { code, message } => {
                if self.state != SaleState::Paying {
                    return invalid(self.state, "a declined payment");
                }
                let mut ops = Vec::new();
                if let Some(lock) = self.lock.take() {
                    let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                    ops.push(queue(Op::TokenxUnlock { order_id, lock_id: lock.lock_id }));
                }
                self.back_to_open();
                let text = match code.as_str() {
                    "CANCELLATION_VIA_API" => "Card payment cancelled. No money was taken.".to_string(),
                    // The payment never reached a cardholder: not a decline.
                    "TERMINAL_UNREACHABLE" | "DEVICE_UNREACHABLE" | "NOT_STARTED" => {
                        format!("{message} No money was taken; try again or take another payment method.")
                    }
                    _ => {
                        format!("Card declined: {message} No money was taken; ask for another card or payment method.")
                    }
                };
                self.notice = Some(Notice::warning(code, text));
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
            SaleEvent::CancelRequested => {
                if self.state != SaleState::Open {
                    return invalid(self.state, "cancelling");
                }
                self.state = SaleState::Cancelled;
                self.notice = None;
                Ok(Vec::new())
            }
        }
    }

    /// With the lock held (or no pump order), takes the pending payment.
    fn start_payment(&mut self, queue: &mut dyn FnMut(Op) -> Queued) -> Result<Vec<Queued>, SaleError> {
        let total = self.total()?;
        match self.pending.clone() {
            Some(PayMethod::Cash { tendered }) => {
                let change = tendered.checked_sub(total)?;
                self.payments.push(Payment { amount: total, kind: PaymentKind::Cash { tendered, change } });
                self.state = SaleState::Paying;
                Ok(self.finish_payment(queue))
            }
            Some(PayMethod::Card) => {
                self.state = SaleState::Paying;
                Ok(vec![queue(Op::CardSale { amount: total })])
            }
            None => Err(SaleError::InvalidState { state: self.state, what: "paying without a method" }),
        }
    }

    /// After the money is taken: report a pump order and print the slip.
    fn finish_payment(&mut self, queue: &mut dyn FnMut(Op) -> Queued) -> Vec<Queued> {
        self.pending = None;
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
                ops.push(queue(Op::TokenxPayment {
                    order_id: order_id.to_string(),
                    lock_id: lock.lock_id.clone(),
                    payments,
                }));
                self.state = SaleState::Paid;
            }
            _ => self.state = SaleState::Completed,
        }
        ops.push(queue(Op::PrintSlip { copy: false }));
        ops
    }

    fn back_to_open(&mut self) {
        self.state = SaleState::Open;
        self.pending = None;
        self.lock = None;
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
        let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
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
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
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
        let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
        assert_eq!(kinds(&t), [("k4", "tokenx_lock")]);
        assert_eq!(s.attempts, 2);
    }

    #[test]
    fn lock_conflict_allows_no_payment() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
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
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
        let t = s
            .handle(SaleEvent::LockUnavailable { message: "timed out".into(), maybe_locked: true }, NOW, &mut ids)
            .unwrap();
        assert_eq!(t.ops[0].op, Op::TokenxRelease { order_id: "ORD-1".into() });
        assert_eq!(s.notice.as_ref().unwrap().code, "OFFLINE");

        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
        let t = s
            .handle(SaleEvent::LockUnavailable { message: "refused".into(), maybe_locked: false }, NOW, &mut ids)
            .unwrap();
        assert!(t.ops.is_empty());
    }

    #[test]
    fn late_lock_grant_is_given_back() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
        s.handle(SaleEvent::LockUnavailable { message: "x".into(), maybe_locked: false }, NOW, &mut ids).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L9".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        assert_eq!(t.ops[0].op, Op::TokenxUnlock { order_id: "ORD-1".into(), lock_id: "L9".into() });
        assert_eq!(s.state, SaleState::Open);
    }

    #[test]
    fn cash_for_a_pump_order_pays_on_lock_and_gives_change() {
        let (mut s, mut ids) = pump_sale();
        let method = PayMethod::Cash { tendered: try_(140_000) };
        s.handle(SaleEvent::PayRequested { method }, NOW, &mut ids).unwrap();
        let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Paid);
        assert_eq!(kinds(&t), [("k2", "tokenx_payment"), ("k3", "print_slip")]);
        assert_eq!(s.payments[0].kind, PaymentKind::Cash { tendered: try_(140_000), change: try_(5_000) });
    }

    #[test]
    fn cash_short_of_the_total_is_refused_without_change() {
        let (mut s, mut ids) = pump_sale();
        let before = s.clone();
        let err = s.handle(SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(100) } }, NOW, &mut ids);
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
            .handle(SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(2000) } }, NOW, &mut ids)
            .unwrap();
        assert_eq!(s.state, SaleState::Completed);
        assert_eq!(kinds(&t), [("k1", "print_slip")]);

        let mut empty = Sale::new(SaleId("S3".into()), Basket::new(Currency::TRY), NOW);
        assert_eq!(
            empty.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids),
            Err(SaleError::EmptyBasket)
        );
    }

    #[test]
    fn cancel_only_when_open() {
        let (mut s, mut ids) = pump_sale();
        s.handle(SaleEvent::PayRequested { method: PayMethod::Card }, NOW, &mut ids).unwrap();
        assert!(s.handle(SaleEvent::CancelRequested, NOW, &mut ids).is_err());
        s.handle(SaleEvent::LockRefused { code: "ORDER_LOCKED".into(), message: String::new() }, NOW, &mut ids)
            .unwrap();
        s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
        assert_eq!(s.state, SaleState::Cancelled);
    }
}
