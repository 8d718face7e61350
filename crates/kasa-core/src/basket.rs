//! The basket: what the customer is paying for.
//!
//! A basket holds at most one pump order line and any number of shop items; a sale may also
//! have no pump order at all.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::money::{Currency, Litres, Money, MoneyError};
use crate::order::PumpOrder;

/// A shop article as scanned or picked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ShopItem {
    /// Article number or barcode.
    pub sku: String,
    /// Name shown on screen and slip.
    pub name: String,
    /// Price of one unit, VAT included.
    pub unit_price: Money,
    /// VAT rate in basis points.
    pub vat_rate_bp: u32,
}

/// One line of a basket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
#[ts(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Line {
    /// Fuel from a pump order.
    Fuel {
        /// The cloud's order id.
        order_id: String,
        /// Pump number.
        pump_no: u32,
        /// Vehicle plate.
        plate_number: String,
        /// Product name.
        product_name: String,
        /// Litres delivered.
        litres: Litres,
        /// Price per litre.
        unit_price: Money,
        /// Line amount as the pump computed it.
        amount: Money,
        /// VAT rate in basis points.
        vat_rate_bp: u32,
    },
    /// A shop article.
    Item {
        /// The article.
        item: ShopItem,
        /// How many.
        quantity: u32,
    },
}

impl Line {
    /// The line's amount, VAT included.
    pub fn amount(&self) -> Result<Money, MoneyError> {
        match self {
            Line::Fuel { amount, .. } => Ok(*amount),
            Line::Item { item, quantity } => item.unit_price.checked_mul(i64::from(*quantity)),
        }
    }

    /// The VAT rate in basis points.
    pub fn vat_rate_bp(&self) -> u32 {
        match self {
            Line::Fuel { vat_rate_bp, .. } => *vat_rate_bp,
            Line::Item { item, .. } => item.vat_rate_bp,
        }
    }

    /// A one-line description for screens and slips.
    pub fn description(&self) -> String {
        match self {
            Line::Fuel { pump_no, product_name, .. } => format!("Pump {pump_no} {product_name}"),
            Line::Item { item, .. } => item.name.clone(),
        }
    }
}

/// The lines a customer pays for, all in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Basket {
    /// Currency of every line.
    pub currency: Currency,
    /// Lines in the order they were added.
    pub lines: Vec<Line>,
}

impl Basket {
    /// An empty basket.
    pub fn new(currency: Currency) -> Basket {
        Basket { currency, lines: Vec::new() }
    }

    /// A basket holding one pump order.
    pub fn for_order(order: &PumpOrder) -> Basket {
        let mut basket = Basket::new(order.amount.currency);
        basket.lines.push(Line::Fuel {
            order_id: order.order_id.clone(),
            pump_no: order.pump_no,
            plate_number: order.plate_number.clone(),
            product_name: order.product_name.clone(),
            litres: order.litres,
            unit_price: order.unit_price,
            amount: order.amount,
            vat_rate_bp: order.vat_rate_bp,
        });
        basket
    }

    /// Adds `quantity` of a shop article, merging with an existing line of the same article.
    pub fn add_item(&mut self, item: ShopItem, quantity: u32) -> Result<(), MoneyError> {
        if item.unit_price.currency != self.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, item.unit_price.currency));
        }
        for line in &mut self.lines {
            if let Line::Item { item: existing, quantity: q } = line
                && existing.sku == item.sku
            {
                *q = q.checked_add(quantity).ok_or(MoneyError::Overflow)?;
                return Ok(());
            }
        }
        self.lines.push(Line::Item { item, quantity });
        Ok(())
    }

    /// The pump order in the basket, if any.
    pub fn pump_order_id(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Fuel { order_id, .. } => Some(order_id.as_str()),
            Line::Item { .. } => None,
        })
    }

    /// The amount of the fuel line (what the cloud expects to be reported), if any.
    pub fn fuel_amount(&self) -> Option<Money> {
        self.lines.iter().find_map(|l| match l {
            Line::Fuel { amount, .. } => Some(*amount),
            Line::Item { .. } => None,
        })
    }

    /// Total to pay.
    pub fn total(&self) -> Result<Money, MoneyError> {
        let amounts = self.lines.iter().map(Line::amount).collect::<Result<Vec<_>, _>>()?;
        Money::sum(self.currency, amounts)
    }

    /// VAT per rate (basis points, VAT amount, gross amount), rates ascending.
    pub fn vat_breakdown(&self) -> Result<Vec<(u32, Money, Money)>, MoneyError> {
        let mut by_rate: Vec<(u32, Money)> = Vec::new();
        for line in &self.lines {
            let amount = line.amount()?;
            match by_rate.iter_mut().find(|(r, _)| *r == line.vat_rate_bp()) {
                Some((_, gross)) => *gross = gross.checked_add(amount)?,
                None => by_rate.push((line.vat_rate_bp(), amount)),
            }
        }
        by_rate.sort_by_key(|(r, _)| *r);
        Ok(by_rate.into_iter().map(|(r, gross)| (r, gross.included_vat(r), gross)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cola() -> ShopItem {
        ShopItem {
            sku: "8690000000017".into(),
            name: "Cola 330 ml".into(),
            unit_price: Money::new(3500, Currency::TRY),
            vat_rate_bp: 1000,
        }
    }

    #[test]
    fn merges_items_and_totals() {
        let mut b = Basket::new(Currency::TRY);
        b.add_item(cola(), 1).unwrap();
        b.add_item(cola(), 2).unwrap();
        assert_eq!(b.lines.len(), 1);
        assert_eq!(b.total().unwrap(), Money::new(10_500, Currency::TRY));
        assert_eq!(b.pump_order_id(), None);
        let vat = b.vat_breakdown().unwrap();
        assert_eq!(vat, vec![(1000, Money::new(955, Currency::TRY), Money::new(10_500, Currency::TRY))]);
    }

    #[test]
    fn refuses_an_item_in_another_currency() {
        let mut b = Basket::new(Currency::EUR);
        assert!(matches!(b.add_item(cola(), 1), Err(MoneyError::CurrencyMismatch(..))));
        assert!(b.lines.is_empty());
    }
}
