//! What the engine shows to screens: views, events and errors, one module for the UI's types.
//!
//! Every type here derives `ts_rs::TS`; their TypeScript twins are generated into
//! `ui/src/bindings/` and a test fails when the committed files are stale.

use kasa_core::{
    Line, MethodKind, Money, Notice, OrderSummary, Payment, PaymentKind, PumpOrder, ReceiptInfo, Refund, Sale,
    SaleState, ShopItem,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A sale as the cashier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct SaleView {
    /// Id.
    pub id: String,
    /// When it was opened, RFC 3339 UTC.
    pub created_at: String,
    /// The vehicle's plate, for a pump order.
    pub plate: Option<String>,
    /// State.
    pub state: SaleState,
    /// Waiting for the cloud or the terminal.
    pub busy: bool,
    /// The pump order, if any.
    pub order_id: Option<String>,
    /// Basket lines.
    pub lines: Vec<Line>,
    /// What each line comes to, in the same order.
    pub line_totals: Vec<Money>,
    /// Total to pay.
    pub total: Money,
    /// Payments taken.
    pub payments: Vec<Payment>,
    /// What can still be given back of each payment, in the same order (refunds under way and
    /// done count); nothing while the sale is not paid in full.
    pub refundable: Vec<Money>,
    /// Paid in full (paid, reported or completed): the slip exists and refunds are possible.
    pub is_paid: bool,
    /// Paid so far.
    pub paid: Money,
    /// Left to pay.
    pub remaining: Money,
    /// The payment attempt under way.
    pub attempt: Option<AttemptView>,
    /// Money given back.
    pub refunds: Vec<Refund>,
    /// Change to hand back, for cash.
    pub change: Option<Money>,
    /// The last notice for the cashier.
    pub notice: Option<Notice>,
    /// The pump's fiscal receipt.
    pub receipt: Option<ReceiptInfo>,
    /// Payment attempts so far.
    pub attempts: u32,
    /// The customer slip as printed text, once paid.
    pub slip_text: Option<String>,
    /// The business the sale is invoiced to.
    pub customer: Option<kasa_core::BusinessCustomer>,
    /// Its receipts at the fiscal middleware (empty where receipts are not signed).
    pub fiscal: Vec<kasa_core::FiscalReceipt>,
}

/// A payment attempt as the cashier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct AttemptView {
    /// Method.
    pub method: MethodKind,
    /// The part paid by this attempt.
    pub amount: Money,
    /// Text of the QR code the customer scans, for app and QR payments.
    pub qr: Option<String>,
    /// That QR code as an SVG image.
    pub qr_svg: Option<String>,
}

/// An SVG picture of a QR code holding `data`.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

impl SaleView {
    /// The view of a sale; `slip_text` is the rendered slip when paid.
    pub fn new(sale: &Sale, slip_text: Option<String>) -> SaleView {
        let change = sale.payments.iter().find_map(|p| match p.kind {
            PaymentKind::Cash { change, .. } => Some(change),
            _ => None,
        });
        let zero = Money::zero(sale.basket.currency);
        SaleView {
            id: sale.id.0.clone(),
            created_at: kasa_core::journal::format_time(sale.created_at),
            plate: sale.basket.lines.iter().find_map(|l| match l {
                kasa_core::Line::Fuel { plate_number, .. } => Some(plate_number.clone()),
                kasa_core::Line::Item { .. } => None,
            }),
            state: sale.state,
            busy: sale.state.is_busy(),
            order_id: sale.basket.pump_order_id().map(str::to_string),
            lines: sale.basket.lines.clone(),
            line_totals: sale.basket.lines.iter().map(|l| l.amount().unwrap_or(zero)).collect(),
            total: sale.total().unwrap_or(Money::zero(sale.basket.currency)),
            payments: sale.payments.clone(),
            refundable: (0..sale.payments.len())
                .map(|i| {
                    let none = Money::zero(sale.payments[i].amount.currency);
                    if sale.state.is_paid() { sale.refundable(i).unwrap_or(none) } else { none }
                })
                .collect(),
            is_paid: sale.state.is_paid(),
            paid: sale.paid().unwrap_or(zero),
            remaining: sale.remaining().unwrap_or(zero),
            attempt: sale.attempt.as_ref().map(|a| AttemptView {
                method: a.method.kind(),
                amount: a.amount,
                qr: None,
                qr_svg: None,
            }),
            refunds: sale.refunds.clone(),
            change,
            notice: sale.notice.clone(),
            receipt: sale.receipt.clone(),
            attempts: sale.attempts,
            slip_text,
            customer: sale.customer.clone(),
            fiscal: sale.fiscal.clone(),
        }
    }
}

/// The register's connection and queue state, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct StatusView {
    /// Token X answered the last time it was asked.
    pub online: bool,
    /// Why the register is offline.
    pub offline_reason: Option<String>,
    /// Seconds since the order list was last refreshed, if ever.
    #[ts(type = "number | null")]
    pub orders_age_secs: Option<u64>,
    /// Operations waiting for delivery.
    #[ts(type = "number")]
    pub queue_pending: i64,
    /// Operations parked for the manager.
    #[ts(type = "number")]
    pub queue_parked: i64,
    /// Sales held for a manager (a provider took another amount than was asked).
    #[ts(type = "number")]
    pub sales_attention: i64,
    /// This register's terminal id.
    pub terminal_id: String,
    /// The last printer problem, if the last job failed.
    pub printer_problem: Option<String>,
    /// Why the card terminal can't take payments, when it can't.
    pub terminal_problem: Option<String>,
    /// Whether receipts are signed by the fiscal middleware.
    pub fiscal: bool,
    /// Why receipts are not being signed now (they wait in the queue), when they are not.
    pub fiscal_problem: Option<String>,
    /// Where the journal's chain is broken, when a verification found it broken.
    pub journal_problem: Option<String>,
    /// Running against the built-in sandbox.
    pub demo: bool,
    /// What start-up recovery did, for the cashier to read.
    pub recovery: Vec<String>,
    /// Payment methods this register offers.
    pub methods: Vec<MethodKind>,
}

/// Something the screens should react to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EngineEvent {
    /// The cached order list changed.
    OrdersChanged {
        /// The list, newest first.
        orders: Vec<OrderSummary>,
    },
    /// A sale changed.
    SaleChanged {
        /// The sale.
        sale: Box<SaleView>,
    },
    /// Connectivity, queue or printer state changed.
    StatusChanged {
        /// The status.
        status: Box<StatusView>,
    },
    /// Long work (an export) moved on.
    Progress {
        /// Which work, e.g. `journal_export`.
        task: String,
        /// Done so far.
        #[ts(type = "number")]
        done: u64,
        /// Of this many.
        #[ts(type = "number")]
        total: u64,
    },
}

/// A card terminal as the manager sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct TerminalView {
    /// Finix device id.
    pub id: String,
    /// Model, e.g. `PAX_A920PRO`.
    pub model: String,
    /// Name.
    pub name: Option<String>,
    /// Serial number.
    pub serial_number: Option<String>,
    /// Activated.
    pub enabled: bool,
    /// Ready for payments (connection open).
    pub connected: bool,
}

impl From<kasa_connect::finix::Device> for TerminalView {
    fn from(d: kasa_connect::finix::Device) -> TerminalView {
        TerminalView {
            connected: d.is_connected(),
            id: d.id,
            model: d.model,
            name: d.name,
            serial_number: d.serial_number,
            enabled: d.enabled,
        }
    }
}

/// An order with what the cashier needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct OrderDetail {
    /// The order.
    pub order: PumpOrder,
}

/// A shop article the cashier can add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// The article.
    pub item: ShopItem,
}

/// Error codes the UI acts on. Closed: add one only when a screen does something with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No such order, sale or item.
    NotFound,
    /// Not possible in the current state.
    InvalidState,
    /// The input is wrong (amount, quantity).
    BadInput,
    /// The cloud or terminal can't be reached.
    Offline,
    /// The remote side refused.
    Refused,
    /// Something the manager must fix (configuration, keyring, database).
    Setup,
    /// Another register is running on this data directory.
    RegisterRunning,
    /// A manager session is needed, or it has ended: log in with the manager PIN.
    NotAuthorized,
    /// An internal failure.
    Internal,
}

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for the user saying what happened and what to do.
    pub message: String,
}

impl ApiError {
    /// An error of a code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }
}

/// The TypeScript declarations of every type the UI receives or sends, as one module.
/// `ui/src/bindings.ts` is this text; a test fails when the committed file is stale.
pub fn typescript_bindings() -> String {
    use ts_rs::Config;
    let cfg = Config::new();
    let mut out = String::from("// Generated from the Rust types by `kasa bindings`; do not edit.\n");
    macro_rules! emit {
        ($($t:ty),*) => {$(
            out.push_str("\nexport ");
            out.push_str(&<$t as TS>::decl(&cfg));
            out.push('\n');
        )*};
    }
    emit!(
        crate::manager::QueueItem,
        crate::access::ManagerSession,
        crate::search::SearchPage,
        crate::search::SaleDetail,
        kasa_core::search::SaleQuery,
        kasa_core::journal::JournalEntry,
        kasa_core::report::ShiftReport,
        kasa_core::report::ReportKind,
        kasa_core::report::MethodTotal,
        kasa_core::report::VatTotal,
        kasa_core::journal::Verification,
        kasa_core::journal::ChainBreak,
        kasa_core::journal::BreakKind,
        TerminalView,
        AttemptView,
        SaleView,
        StatusView,
        EngineEvent,
        OrderDetail,
        CatalogEntry,
        ErrorCode,
        ApiError,
        kasa_core::OrderSummary,
        kasa_core::PumpOrder,
        kasa_core::OrderStatus,
        kasa_core::LockInfo,
        kasa_core::ReceiptInfo,
        kasa_core::Money,
        kasa_core::Currency,
        kasa_core::Litres,
        kasa_core::Line,
        kasa_core::ShopItem,
        kasa_core::Payment,
        kasa_core::PaymentKind,
        kasa_core::CardSlip,
        kasa_core::PayMethod,
        kasa_core::Notice,
        kasa_core::MethodKind,
        kasa_core::Refund,
        kasa_core::RefundState,
        kasa_core::NoticeLevel,
        kasa_core::SaleState,
        kasa_core::BusinessCustomer,
        kasa_core::FiscalReceipt,
        kasa_core::FiscalSignature,
        kasa_core::FiscalState,
        kasa_core::SignatureLine
    );
    out
}
