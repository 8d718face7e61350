//! The promises a register keeps, checked where the money is: at the sandbox, and in the
//! register's database. Shared by the chaos, outage and crash tests.

use std::collections::BTreeMap;

use kasa_core::{PaymentKind, SaleState};
use kasa_sim::Sandbox;
use kasa_store::Store;

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Sales in the database.
    pub sales: usize,
    /// Paid sales.
    pub paid: usize,
    /// Card charges at Finix.
    pub charges: usize,
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($msg:tt)+) => {
        if $a != $b {
            return Err(format!("{} (left {:?}, right {:?})", format!($($msg)+), $a, $b));
        }
    };
}

/// Panics with the broken promise unless every promise holds (see [`verify`]).
#[allow(dead_code)]
pub fn check(store: &Store, sandbox: &Sandbox, terminal: &str, device: &str, label: &str) -> Checked {
    verify(store, sandbox, terminal, device, label).unwrap_or_else(|broken| panic!("{broken}"))
}

/// Fails with the broken promise, naming `label`, unless: the database is intact and its journal verifies; the queue is
/// delivered with nothing parked; no sale waits on the cloud or the terminal; every paid pump
/// sale was reported exactly once and no unpaid one at all; every card charge belongs to exactly
/// one paid sale that records it (no double charge, no lost paid sale); and no order is left
/// locked by `terminal`, in the cloud or in the database. `terminal` and `device` name this
/// register at Token X and Finix, so other registers' sales on the same sandbox are told apart.
pub fn verify(store: &Store, sandbox: &Sandbox, terminal: &str, device: &str, label: &str) -> Result<Checked, String> {
    store.integrity_check().map_err(|e| format!("{label}: database integrity: {e}"))?;
    ensure!(store.verify_journal().map_err(|e| e.to_string())?.is_intact(), "{label}: journal intact");
    let counts = store.queue_counts().map_err(|e| e.to_string())?;
    ensure_eq!((counts.pending, counts.parked), (0, 0), "{label}: queue delivered, nothing parked");
    ensure!(store.locks().map_err(|e| e.to_string())?.is_empty(), "{label}: no lock left in the database");

    let sales = store.recent_sales(1_000_000).map_err(|e| e.to_string())?;
    let mut paid_card: BTreeMap<String, String> = BTreeMap::new();
    for s in &sales {
        ensure!(!s.state.is_busy(), "{label}: sale {} left {:?}", s.id, s.state);
        ensure!(s.state != SaleState::NeedsAttention, "{label}: sale {} is held for a manager", s.id);
        let Some(order) = s.basket.pump_order_id() else { continue };
        let reports = sandbox.tokenx.accepted_reports(order);
        if s.state.is_paid() {
            ensure_eq!(reports, 1, "{label}: paid sale {} reported exactly once", s.id);
            ensure!(
                matches!(sandbox.tokenx.status_of(order), Some("Paid") | Some("Completed")),
                "{label}: the order of paid sale {} is paid in the cloud",
                s.id
            );
        } else if s.state != SaleState::Cancelled {
            let ours_paid = sales.iter().any(|o| o.basket.pump_order_id() == Some(order) && o.state.is_paid());
            let reported_here =
                sandbox.tokenx.payment_of(order).is_some_and(|p| p["terminalId"].as_str() == Some(terminal));
            ensure!(ours_paid || !reported_here, "{label}: unpaid sale {} was reported", s.id);
        }
    }
    for s in sales.iter().filter(|s| s.state.is_paid()) {
        for p in &s.payments {
            if let PaymentKind::Card { slip } = &p.kind {
                let before = paid_card.insert(s.id.0.clone(), slip.transaction_ref.clone());
                ensure!(before.is_none(), "{label}: sale {} has one card payment", s.id);
            }
        }
    }
    let charges: Vec<_> =
        sandbox.finix.succeeded_transfers().into_iter().filter(|t| t["device"].as_str() == Some(device)).collect();
    let reversed = |id: &str| -> i64 {
        sandbox
            .finix
            .reversals()
            .iter()
            .filter(|r| r["parent_transfer"].as_str() == Some(id) && r["state"] == "SUCCEEDED")
            .map(|r| r["amount"].as_i64().unwrap_or(0))
            .sum()
    };
    let mut per_sale: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_order: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = 0;
    for t in &charges {
        let id = t["id"].as_str().unwrap_or_default();
        let sale = t["tags"]["sale_id"].as_str().unwrap_or_default().to_string();
        if reversed(id) >= t["amount"].as_i64().unwrap_or(0) {
            // Given back in full: the sale must say so, and not be paid by it.
            let s = sales.iter().find(|s| s.id.0 == sale);
            let refunded = s.is_some_and(|s| !s.state.is_paid() && !s.refunds.is_empty());
            ensure!(refunded, "{label}: charge {id} was reversed, and its sale {sale} records the refund");
            continue;
        }
        kept += 1;
        *per_sale.entry(sale.clone()).or_default() += 1;
        if let Some(order) = sales.iter().find(|s| s.id.0 == sale).and_then(|s| s.basket.pump_order_id()) {
            *per_order.entry(order.to_string()).or_default() += 1;
        }
        ensure_eq!(
            paid_card.get(&sale).map(String::as_str),
            Some(id),
            "{label}: charge {id} belongs to a paid sale that records it"
        );
    }
    ensure!(per_sale.values().all(|n| *n == 1), "{label}: no sale charged twice");
    ensure!(per_order.values().all(|n| *n == 1), "{label}: no pump order charged twice: {per_order:?}");
    ensure_eq!(kept, paid_card.len(), "{label}: card charges == paid card sales");
    ensure!(sandbox.tokenx.locked_by(terminal).is_empty(), "{label}: no order left locked by {terminal}");

    // MobilePay: every captured payment is a paid sale's (or was given back, and its sale says
    // so), no pump order is paid twice, and no reservation is left hanging.
    let mut mp_orders: BTreeMap<String, usize> = BTreeMap::new();
    for p in sandbox.mobilepay.payments() {
        let id = p["paymentId"].as_str().unwrap_or_default();
        let status = p["status"].as_str().unwrap_or_default();
        ensure!(status != "Reserved", "{label}: MobilePay payment {id} is left reserved");
        if status != "Captured" {
            continue;
        }
        let of = |s: &&kasa_core::Sale| {
            s.payments
                .iter()
                .chain(&s.unexpected)
                .any(|x| x.kind == PaymentKind::MobilePay { payment_id: id.to_string() })
        };
        let Some(sale) = sales.iter().find(of) else {
            return Err(format!("{label}: captured MobilePay payment {id} belongs to no sale of this register"));
        };
        let given_back = p["refundedAmount"] == p["capturedAmount"];
        ensure!(
            sale.state.is_paid() || (given_back && !sale.refunds.is_empty()),
            "{label}: captured MobilePay payment {id} belongs to sale {} that is {:?} and did not give it back",
            sale.id,
            sale.state
        );
        if !given_back && let Some(order) = sale.basket.pump_order_id() {
            *mp_orders.entry(order.to_string()).or_default() += 1;
        }
    }
    ensure!(mp_orders.values().all(|n| *n == 1), "{label}: no pump order paid twice by MobilePay: {mp_orders:?}");
    Ok(Checked { sales: sales.len(), paid: sales.iter().filter(|s| s.state.is_paid()).count(), charges: kept })
}
