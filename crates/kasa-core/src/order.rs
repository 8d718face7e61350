//! Pump orders as Kasa understands them, independent of any wire format.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use ts_rs::TS;

use crate::money::{Litres, Money};

/// Where an order is in the cloud's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
pub enum OrderStatus {
    /// Waiting for payment; any register may lock it.
    Open,
    /// Locked by a register that is taking payment.
    Locked,
    /// Paid; the pump has not yet issued its receipt.
    Paid,
    /// The pump issued its fiscal receipt.
    Completed,
    /// Cancelled at the pump.
    Cancelled,
}

impl OrderStatus {
    /// Whether a cashier can still start a payment for the order.
    pub fn is_payable(self) -> bool {
        matches!(self, OrderStatus::Open)
    }
}

/// One line of the cloud's order list: enough to show and pick an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct OrderSummary {
    /// The cloud's order id.
    pub order_id: String,
    /// Vehicle plate as entered at the pump.
    pub plate_number: String,
    /// Pump number.
    pub pump_no: u32,
    /// Product sold (e.g. "Motorin").
    pub product_name: String,
    /// Amount to pay.
    pub amount: Money,
    /// Life-cycle status.
    pub status: OrderStatus,
    /// When the pump added the order.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub created_at: OffsetDateTime,
}

/// A lock as the cloud reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct LockInfo {
    /// The lock's id, needed to unlock and to report payment.
    pub lock_id: String,
    /// The register that holds it.
    pub terminal_id: String,
    /// When it lapses unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub expires_at: OffsetDateTime,
}

/// The pump's fiscal receipt for a completed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ReceiptInfo {
    /// Fiscal receipt number.
    pub fiscal_no: String,
    /// Z report number.
    pub z_no: String,
    /// Electronic journal (EKÜ) number.
    pub eku_no: String,
    /// When the pump issued the receipt.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub issued_at: OffsetDateTime,
}

/// A pump order in full, as Get Order returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct PumpOrder {
    /// The cloud's order id.
    pub order_id: String,
    /// Vehicle plate.
    pub plate_number: String,
    /// Pump number.
    pub pump_no: u32,
    /// Nozzle number.
    pub nozzle_no: u32,
    /// Product code at the pump.
    pub product_code: String,
    /// Product name.
    pub product_name: String,
    /// Quantity delivered.
    pub litres: Litres,
    /// Price per litre.
    pub unit_price: Money,
    /// Amount to pay (VAT included).
    pub amount: Money,
    /// VAT rate in basis points (2000 = 20 %).
    pub vat_rate_bp: u32,
    /// Life-cycle status.
    pub status: OrderStatus,
    /// When the pump added the order.
    #[serde(with = "time::serde::rfc3339")]
    #[ts(type = "string")]
    pub created_at: OffsetDateTime,
    /// The current lock, if any.
    pub lock: Option<LockInfo>,
    /// The pump's receipt, once completed.
    pub receipt: Option<ReceiptInfo>,
}

impl PumpOrder {
    /// The summary line of this order.
    pub fn summary(&self) -> OrderSummary {
        OrderSummary {
            order_id: self.order_id.clone(),
            plate_number: self.plate_number.clone(),
            pump_no: self.pump_no,
            product_name: self.product_name.clone(),
            amount: self.amount,
            status: self.status,
            created_at: self.created_at,
        }
    }
}
