//! Kasa's pure domain.
//!
//! Everything a register decides lives here as plain data and pure functions: money and
//! quantities, pump orders and baskets, the sale state machine, the operations a sale asks the
//! outside world to perform, and the hash chain that makes the journal tamper-evident.
//!
//! This crate performs no I/O and never reads the clock or a random source: time and fresh
//! identifiers are passed in by the caller, so every transition is reproducible in a test.

pub mod basket;
pub mod fiscal;
pub mod journal;
pub mod money;
pub mod op;
pub mod order;
pub mod payment;
pub mod report;
pub mod sale;
pub mod search;
pub mod signal;

pub use basket::{Basket, Line, ShopItem};
pub use fiscal::{BusinessCustomer, FiscalDoc, FiscalReceipt, FiscalSignature, FiscalState, SignatureLine};
pub use money::{Currency, Litres, Money, MoneyError};
pub use op::{Op, OpKind};
pub use order::{LockInfo, OrderProblem, OrderStatus, OrderSummary, PumpOrder, ReceiptInfo};
pub use payment::{
    CardSlip, MethodKind, PayMethod, Payment, PaymentKind, Refund, RefundState, ReportedMethod, ReportedPayment,
};
pub use sale::{Attempt, Notice, NoticeLevel, Sale, SaleError, SaleEvent, SaleId, SaleState, Transition};

/// A source of fresh, unique identifiers (idempotency keys, request ids).
///
/// The engine backs it with random UUIDs; tests back it with a counter.
pub trait IdSource {
    /// Returns an identifier never returned before.
    fn next_id(&mut self) -> String;
}

/// Identifiers from a counter with a prefix; deterministic, for tests and replays.
#[derive(Debug, Clone)]
pub struct SequentialIds {
    prefix: String,
    next: u64,
}

impl SequentialIds {
    /// Starts at 1 with the given prefix.
    pub fn new(prefix: impl Into<String>) -> Self {
        SequentialIds { prefix: prefix.into(), next: 1 }
    }
}

impl IdSource for SequentialIds {
    fn next_id(&mut self) -> String {
        let id = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}
