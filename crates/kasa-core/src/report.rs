//! Shift reports: the X report (the shift so far) and the Z report (which closes it).
//!
//! A report adds up the shift's *movements*: what a sale's step changed in money. Each time a
//! sale is stored, [`movements`] compares it with what was stored before and names what is new:
//! a payment taken, money given back, a sale paid in full (with its VAT per rate), a sale
//! voided. The store keeps these beside the sale in the same transaction; a shift is every
//! movement after the last Z report's.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::payment::{MethodKind, RefundState};
use crate::{Currency, Money, MoneyError, Sale, SaleState};

/// What a movement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum MovementKind {
    /// A payment taken (towards the sale's total; cash change is not part of it).
    Payment,
    /// Money given back, for one VAT rate of the sale (a refund spans its sale's rates).
    Refund,
    /// A sale paid in full: its gross and VAT for one rate.
    Sale,
    /// A sale abandoned (voided), with or without money given back.
    Void,
}

impl MovementKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Payment => "payment",
            MovementKind::Refund => "refund",
            MovementKind::Sale => "sale",
            MovementKind::Void => "void",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<MovementKind> {
        Some(match s {
            "payment" => MovementKind::Payment,
            "refund" => MovementKind::Refund,
            "sale" => MovementKind::Sale,
            "void" => MovementKind::Void,
            _ => return None,
        })
    }
}

/// One movement of money (or a void) in a shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// What it is.
    pub kind: MovementKind,
    /// The sale.
    pub sale_id: String,
    /// The refund it belongs to, for refunds.
    pub refund_id: Option<String>,
    /// The method money moved by (payments and refunds).
    pub method: Option<MethodKind>,
    /// The VAT rate (sales and refunds), in basis points.
    pub vat_rate_bp: Option<u32>,
    /// The amount: taken, given back, or the sale's gross at this rate.
    pub amount: Money,
    /// The VAT included in `amount`.
    pub vat: Money,
    /// Money given back while voiding the sale, not as a refund after it was paid.
    pub voiding: bool,
}

/// The movements between two stored versions of a sale (`before` absent for a new sale).
pub fn movements(before: Option<&Sale>, after: &Sale) -> Result<Vec<Movement>, MoneyError> {
    let currency = after.basket.currency;
    let zero = Money::new(0, currency);
    let mut out = Vec::new();
    let base = |kind| Movement {
        kind,
        sale_id: after.id.0.clone(),
        refund_id: None,
        method: None,
        vat_rate_bp: None,
        amount: zero,
        vat: zero,
        voiding: false,
    };
    let known_payments = before.map_or(0, |b| b.payments.len());
    for p in after.payments.iter().skip(known_payments) {
        out.push(Movement { method: Some(p.method()), amount: p.amount, ..base(MovementKind::Payment) });
    }
    let was_done =
        |id: &str| before.is_some_and(|b| b.refunds.iter().any(|r| r.id == id && r.state == RefundState::Done));
    for r in after.refunds.iter().filter(|r| r.state == RefundState::Done && !r.unexpected && !was_done(&r.id)) {
        let Some(p) = after.payments.get(r.payment as usize) else { continue };
        // Given back before the sale was ever paid in full: a void, whatever state it is in now
        // (a void whose refund failed waits for a manager).
        let voiding = after.paid_at.is_none();
        for (rate, amount) in share_by_rate(after, r.amount)? {
            out.push(Movement {
                refund_id: Some(r.id.clone()),
                method: Some(p.method()),
                vat_rate_bp: Some(rate),
                amount,
                vat: amount.included_vat(rate),
                voiding,
                ..base(MovementKind::Refund)
            });
        }
    }
    // Paid in full once, whatever states it passes through later.
    let was_paid = before.is_some_and(|b| b.paid_at.is_some());
    if after.paid_at.is_some() && !was_paid {
        for (rate, vat, gross) in after.basket.vat_breakdown()? {
            out.push(Movement { vat_rate_bp: Some(rate), amount: gross, vat, ..base(MovementKind::Sale) });
        }
    }
    let was_cancelled = before.is_some_and(|b| b.state == SaleState::Cancelled);
    if after.state == SaleState::Cancelled && !was_cancelled {
        out.push(base(MovementKind::Void));
    }
    Ok(out)
}

/// Shares `amount` over the sale's VAT rates in proportion to each rate's gross, the cents
/// left over going to the largest remainders, so the parts add up exactly.
pub fn share_by_rate(sale: &Sale, amount: Money) -> Result<Vec<(u32, Money)>, MoneyError> {
    let rates = sale.basket.vat_breakdown()?;
    let total: i64 = rates.iter().map(|(_, _, g)| g.minor).sum();
    if total <= 0 || rates.len() == 1 {
        let rate = rates.first().map_or(0, |(r, _, _)| *r);
        return Ok(vec![(rate, amount)]);
    }
    let mut parts: Vec<(u32, i64, i64)> = rates
        .iter()
        .map(|(rate, _, gross)| {
            let exact = i128::from(amount.minor) * i128::from(gross.minor);
            (*rate, (exact / i128::from(total)) as i64, (exact % i128::from(total)) as i64)
        })
        .collect();
    let mut left = amount.minor - parts.iter().map(|p| p.1).sum::<i64>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|a, b| parts[*b].2.cmp(&parts[*a].2).then(a.cmp(b)));
    for i in order {
        if left == 0 {
            break;
        }
        parts[i].1 += 1;
        left -= 1;
    }
    Ok(parts.into_iter().map(|(rate, minor, _)| (rate, Money::new(minor, amount.currency))).collect())
}

/// X (the shift so far) or Z (closing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum ReportKind {
    /// The shift so far; closes nothing.
    X,
    /// Closes the shift, numbered without gaps.
    Z,
}

/// Totals of one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct MethodTotal {
    /// The method.
    pub method: MethodKind,
    /// Payments taken.
    pub payments: u32,
    /// Their sum.
    pub paid: Money,
    /// Refunds (and void returns) given back by it.
    pub refunds: u32,
    /// Their sum.
    pub refunded: Money,
    /// Paid less given back.
    pub net: Money,
}

/// Totals of one VAT rate, net of refunds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct VatTotal {
    /// Rate in basis points (2000 = 20 %).
    pub rate_bp: u32,
    /// Gross sold less gross refunded.
    pub gross: Money,
    /// VAT in it.
    pub vat: Money,
    /// Gross less VAT.
    pub net: Money,
}

/// A shift report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct ShiftReport {
    /// X or Z.
    pub kind: ReportKind,
    /// The Z report's number (from 1, without gaps); none for an X report.
    #[ts(type = "number | null")]
    pub number: Option<u64>,
    /// The register (its Token X terminal id).
    pub register: String,
    /// When the shift opened: the previous Z report's time (none before the first Z).
    pub opened_at: Option<String>,
    /// When this report was made.
    pub at: String,
    /// Currency.
    pub currency: Currency,
    /// Sales paid in full.
    pub sales: u32,
    /// Their gross.
    pub gross: Money,
    /// Per method, in a fixed order.
    pub methods: Vec<MethodTotal>,
    /// Per VAT rate, ascending.
    pub vat: Vec<VatTotal>,
    /// Refunds given after a sale was paid.
    pub refunds: u32,
    /// Their sum.
    pub refunded: Money,
    /// Sales voided.
    pub voids: u32,
    /// Money given back while voiding them.
    pub voided: Money,
    /// Cash in the drawer when the shift opened.
    pub opening_float: Money,
    /// Float plus cash taken less cash given back.
    pub cash_expected: Money,
    /// Cash counted at the close (Z).
    pub cash_counted: Option<Money>,
    /// Counted less expected.
    pub difference: Option<Money>,
    /// The manager's note (needed when there is a difference).
    pub note: Option<String>,
    /// Cash left in the drawer for the next shift (Z).
    pub next_float: Option<Money>,
    /// The last movement the report covers (the next shift starts after it).
    #[ts(type = "number")]
    pub last_movement: i64,
}

/// What a report is made of besides its movements.
#[derive(Debug, Clone)]
pub struct ReportHead {
    /// X or Z.
    pub kind: ReportKind,
    /// The Z number.
    pub number: Option<u64>,
    /// The register.
    pub register: String,
    /// When the shift opened.
    pub opened_at: Option<String>,
    /// Now.
    pub at: String,
    /// Currency.
    pub currency: Currency,
    /// Cash in the drawer at the start.
    pub opening_float: Money,
}

/// Adds up a shift's movements (with their ids, ascending).
pub fn add_up<I>(head: ReportHead, movements: I) -> Result<ShiftReport, MoneyError>
where
    I: IntoIterator<Item = (i64, Movement)>,
{
    let c = head.currency;
    let zero = Money::new(0, c);
    let order = [MethodKind::Cash, MethodKind::Card, MethodKind::MobilePay, MethodKind::Settle];
    let mut methods: Vec<MethodTotal> = order
        .iter()
        .map(|m| MethodTotal { method: *m, payments: 0, paid: zero, refunds: 0, refunded: zero, net: zero })
        .collect();
    let mut vat: Vec<VatTotal> = Vec::new();
    let mut r = ShiftReport {
        kind: head.kind,
        number: head.number,
        register: head.register,
        opened_at: head.opened_at,
        at: head.at,
        currency: c,
        sales: 0,
        gross: zero,
        methods: Vec::new(),
        vat: Vec::new(),
        refunds: 0,
        refunded: zero,
        voids: 0,
        voided: zero,
        opening_float: head.opening_float,
        cash_expected: zero,
        cash_counted: None,
        difference: None,
        note: None,
        next_float: None,
        last_movement: 0,
    };
    let mut last_refund: Option<String> = None;
    let mut sales_seen: Option<String> = None;
    for (id, m) in movements {
        r.last_movement = r.last_movement.max(id);
        match m.kind {
            MovementKind::Payment => {
                let t = method_total(&mut methods, m.method);
                t.payments += 1;
                t.paid = t.paid.checked_add(m.amount)?;
            }
            MovementKind::Refund => {
                let new_refund = last_refund.as_deref() != m.refund_id.as_deref();
                last_refund = m.refund_id.clone();
                let t = method_total(&mut methods, m.method);
                t.refunds += u32::from(new_refund);
                t.refunded = t.refunded.checked_add(m.amount)?;
                if m.voiding {
                    r.voided = r.voided.checked_add(m.amount)?;
                } else {
                    r.refunds += u32::from(new_refund);
                    r.refunded = r.refunded.checked_add(m.amount)?;
                    let v = rate_total(&mut vat, m.vat_rate_bp.unwrap_or(0), zero);
                    v.gross = v.gross.checked_sub(m.amount)?;
                    v.vat = v.vat.checked_sub(m.vat)?;
                }
            }
            MovementKind::Sale => {
                if sales_seen.as_deref() != Some(m.sale_id.as_str()) {
                    r.sales += 1;
                    sales_seen = Some(m.sale_id.clone());
                }
                r.gross = r.gross.checked_add(m.amount)?;
                let v = rate_total(&mut vat, m.vat_rate_bp.unwrap_or(0), zero);
                v.gross = v.gross.checked_add(m.amount)?;
                v.vat = v.vat.checked_add(m.vat)?;
            }
            MovementKind::Void => r.voids += 1,
        }
    }
    for t in &mut methods {
        t.net = t.paid.checked_sub(t.refunded)?;
    }
    for v in &mut vat {
        v.net = v.gross.checked_sub(v.vat)?;
    }
    vat.sort_by_key(|v| v.rate_bp);
    let cash = methods.iter().find(|t| t.method == MethodKind::Cash).map_or(zero, |t| t.net);
    r.cash_expected = r.opening_float.checked_add(cash)?;
    r.methods = methods;
    r.vat = vat;
    Ok(r)
}

fn rate_total(vat: &mut Vec<VatTotal>, rate_bp: u32, zero: Money) -> &mut VatTotal {
    let i = match vat.iter().position(|v| v.rate_bp == rate_bp) {
        Some(i) => i,
        None => {
            vat.push(VatTotal { rate_bp, gross: zero, vat: zero, net: zero });
            vat.len() - 1
        }
    };
    &mut vat[i]
}

fn method_total(methods: &mut [MethodTotal], method: Option<MethodKind>) -> &mut MethodTotal {
    let m = method.unwrap_or(MethodKind::Cash);
    let i = methods.iter().position(|t| t.method == m).unwrap_or(0);
    &mut methods[i]
}

/// Why a Z report cannot close the shift.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// Counted cash differs from expected and no note says why.
    #[error(
        "the counted cash ({counted}) differs from the expected {expected} by {difference}: write a note saying why"
    )]
    NoteNeeded {
        /// Counted.
        counted: Money,
        /// Expected.
        expected: Money,
        /// Counted less expected.
        difference: Money,
    },
    /// More cash left for the next shift than was counted, or a negative amount.
    #[error("the float left for the next shift ({0}) must be between zero and the cash counted")]
    BadFloat(Money),
    /// An amount in another currency.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl ShiftReport {
    /// Closes the report with the cash counted, the manager's note, and the float left in the
    /// drawer for the next shift.
    pub fn close(&mut self, counted: Money, note: Option<&str>, next_float: Money) -> Result<(), CloseError> {
        let difference = counted.checked_sub(self.cash_expected)?;
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        if difference.minor != 0 && note.is_none_or(|n| n.chars().count() < 3) {
            return Err(CloseError::NoteNeeded { counted, expected: self.cash_expected, difference });
        }
        if next_float.minor < 0 || next_float.minor > counted.minor || next_float.currency != counted.currency {
            return Err(CloseError::BadFloat(next_float));
        }
        self.cash_counted = Some(counted);
        self.difference = Some(difference);
        self.note = note.map(str::to_string);
        self.next_float = Some(next_float);
        Ok(())
    }

    /// The report's lines as text, for the receipt printer and the PDF.
    pub fn lines(&self) -> Vec<(String, String)> {
        let m = |x: &Money| x.display_grouped();
        let mut out = vec![
            (
                match (self.kind, self.number) {
                    (ReportKind::Z, Some(n)) => format!("Z REPORT No {n}"),
                    _ => "X REPORT (shift so far)".to_string(),
                },
                String::new(),
            ),
            ("Register".into(), self.register.clone()),
            ("From".into(), self.opened_at.clone().unwrap_or_else(|| "first sale".into())),
            ("To".into(), self.at.clone()),
            ("Sales".into(), self.sales.to_string()),
            ("Gross".into(), m(&self.gross)),
        ];
        for t in self.methods.iter().filter(|t| t.payments > 0 || t.refunds > 0) {
            out.push((format!("{:?} ({} paid, {} back)", t.method, t.payments, t.refunds), m(&t.net)));
        }
        for v in &self.vat {
            let pct = format!("{}.{:02} %", v.rate_bp / 100, v.rate_bp % 100);
            out.push((format!("VAT {pct} gross"), m(&v.gross)));
            out.push((format!("VAT {pct} tax"), m(&v.vat)));
        }
        out.push((format!("Refunds ({})", self.refunds), m(&self.refunded)));
        out.push((format!("Voids ({})", self.voids), m(&self.voided)));
        out.push(("Opening float".into(), m(&self.opening_float)));
        out.push(("Cash expected".into(), m(&self.cash_expected)));
        if let (Some(c), Some(d)) = (&self.cash_counted, &self.difference) {
            out.push(("Cash counted".into(), m(c)));
            out.push(("Difference".into(), m(d)));
        }
        if let Some(n) = &self.note {
            out.push(("Note".into(), n.clone()));
        }
        if let Some(f) = &self.next_float {
            out.push(("Float left".into(), m(f)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
