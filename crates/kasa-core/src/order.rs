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

/// Why an order from the cloud cannot be sold as it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderProblem {
    /// Nothing (or less than nothing) to pay.
    #[error("its amount {0} is not above zero")]
    NotPositive(String),
    /// No fuel, or no price.
    #[error("its quantity ({litres} L) or unit price ({unit_price}) is not above zero")]
    BadQuantity {
        /// Litres.
        litres: String,
        /// Price per litre.
        unit_price: String,
    },
    /// The amount is not litres × unit price.
    #[error("its amount {amount} does not match {litres} L × {unit_price} = {expected}")]
    AmountMismatch {
        /// Amount asked.
        amount: String,
        /// Litres.
        litres: String,
        /// Price per litre.
        unit_price: String,
        /// Litres × unit price.
        expected: String,
    },
    /// The amount and the unit price are in different currencies.
    #[error("its amount is in {amount} but its unit price in {unit_price}")]
    Currency {
        /// Currency of the amount.
        amount: String,
        /// Currency of the unit price.
        unit_price: String,
    },
}

impl PumpOrder {
    /// Checks that the order can be sold as it stands: a positive amount that is its litres
    /// times its unit price. A pump rounds or truncates to the minor unit, so the two may differ
    /// by one minor unit (one kuruş); anything more is refused.
    pub fn check(&self) -> Result<(), OrderProblem> {
        if self.amount.minor <= 0 {
            return Err(OrderProblem::NotPositive(self.amount.display_grouped()));
        }
        if self.amount.currency != self.unit_price.currency {
            return Err(OrderProblem::Currency {
                amount: self.amount.currency.to_string(),
                unit_price: self.unit_price.currency.to_string(),
            });
        }
        if self.litres.milli() <= 0 || self.unit_price.minor <= 0 {
            return Err(OrderProblem::BadQuantity {
                litres: self.litres.to_wire(),
                unit_price: self.unit_price.display_grouped(),
            });
        }
        let expected = self.litres.price_at(self.unit_price).map_err(|_| OrderProblem::AmountMismatch {
            amount: self.amount.display_grouped(),
            litres: self.litres.to_wire(),
            unit_price: self.unit_price.display_grouped(),
            expected: "more than can be counted".into(),
        })?;
        if (expected.minor - self.amount.minor).abs() > 1 {
            return Err(OrderProblem::AmountMismatch {
                amount: self.amount.display_grouped(),
                litres: self.litres.to_wire(),
                unit_price: self.unit_price.display_grouped(),
                expected: expected.display_grouped(),
            });
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use time::macros::datetime;

    fn order(litres: &str, unit_price: i64, amount: i64) -> PumpOrder {
        PumpOrder {
            order_id: "O".into(),
            plate_number: "34 ABC 123".into(),
            pump_no: 1,
            nozzle_no: 1,
            product_code: "DSL".into(),
            product_name: "Motorin".into(),
            litres: Litres::parse(litres).unwrap(),
            unit_price: Money::new(unit_price, Currency::TRY),
            amount: Money::new(amount, Currency::TRY),
            vat_rate_bp: 2000,
            status: OrderStatus::Open,
            created_at: datetime!(2026-12-01 12:00 UTC),
            lock: None,
            receipt: None,
        }
    }

    #[test]
    fn an_order_is_sold_only_when_its_amount_is_litres_times_price() {
        // 41.235 L at 45.67 TRY/L = 1,883.2024... TRY: 1,883.20 rounded, 1,883.21 within a kuruş.
        assert_eq!(order("41.235", 4567, 188_320).check(), Ok(()));
        assert_eq!(order("41.235", 4567, 188_321).check(), Ok(()));
        assert_eq!(order("41.235", 4567, 188_319).check(), Ok(()));
        let off = order("41.235", 4567, 188_420).check().unwrap_err();
        assert_eq!(off.to_string(), "its amount 1.884,20 TRY does not match 41.235 L × 45,67 TRY = 1.883,20 TRY");
        assert!(matches!(order("41.235", 4567, 0).check(), Err(OrderProblem::NotPositive(_))));
        assert!(matches!(order("41.235", 4567, -5).check(), Err(OrderProblem::NotPositive(_))));
        assert!(matches!(order("0.000", 4567, 100).check(), Err(OrderProblem::BadQuantity { .. })));
        assert!(matches!(order("10.000", 0, 100).check(), Err(OrderProblem::BadQuantity { .. })));
        let mut usd = order("10.000", 100, 1000);
        usd.unit_price.currency = Currency::USD;
        assert!(matches!(usd.check(), Err(OrderProblem::Currency { .. })));
    }
}
