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

/// Panics, naming `label`, unless: the database is intact and its journal verifies; the queue is
/// delivered with nothing parked; no sale waits on the cloud or the terminal; every paid pump
/// sale was reported exactly once and no unpaid one at all; every card charge belongs to exactly
/// one paid sale that records it (no double charge, no lost paid sale); and no order is left
/// locked by `terminal`, in the cloud or in the database. `terminal` and `device` name this
/// register at Token X and Finix, so other registers' sales on the same sandbox are told apart.
pub fn check(store: &Store, sandbox: &Sandbox, terminal: &str, device: &str, label: &str) -> Checked {
    store.integrity_check().unwrap();
    assert!(store.verify_journal().unwrap().is_intact(), "{label}: journal intact");
    let counts = store.queue_counts().unwrap();
    assert_eq!((counts.pending, counts.parked), (0, 0), "{label}: queue delivered, nothing parked");
    assert!(store.locks().unwrap().is_empty(), "{label}: no lock left in the database");

    let sales = store.recent_sales(1_000_000).unwrap();
    let mut paid_card: BTreeMap<String, String> = BTreeMap::new();
    for s in &sales {
        assert!(!s.state.is_busy(), "{label}: sale {} left {:?}", s.id, s.state);
        let Some(order) = s.basket.pump_order_id() else { continue };
        let reports = sandbox.tokenx.accepted_reports(order);
        if s.state.is_paid() {
            assert_eq!(reports, 1, "{label}: paid sale {} reported exactly once", s.id);
            assert!(matches!(sandbox.tokenx.status_of(order), Some("Paid") | Some("Completed")));
        } else if s.state != SaleState::Cancelled {
            let ours_paid = sales.iter().any(|o| o.basket.pump_order_id() == Some(order) && o.state.is_paid());
            let reported_here =
                sandbox.tokenx.payment_of(order).is_some_and(|p| p["terminalId"].as_str() == Some(terminal));
            assert!(ours_paid || !reported_here, "{label}: unpaid sale {} was reported", s.id);
        }
    }
    for s in sales.iter().filter(|s| s.state.is_paid()) {
        for p in &s.payments {
            if let PaymentKind::Card { slip } = &p.kind {
                let before = paid_card.insert(s.id.0.clone(), slip.transaction_ref.clone());
                assert!(before.is_none(), "{label}: sale {} has one card payment", s.id);
            }
        }
    }
    let charges: Vec<_> =
        sandbox.finix.succeeded_transfers().into_iter().filter(|t| t["device"].as_str() == Some(device)).collect();
    let mut per_sale: BTreeMap<String, usize> = BTreeMap::new();
    for t in &charges {
        let sale = t["tags"]["sale_id"].as_str().unwrap_or_default().to_string();
        *per_sale.entry(sale.clone()).or_default() += 1;
        assert_eq!(
            paid_card.get(&sale).map(String::as_str),
            t["id"].as_str(),
            "{label}: charge {} belongs to a paid sale that records it",
            t["id"]
        );
    }
    assert!(per_sale.values().all(|n| *n == 1), "{label}: no sale charged twice");
    assert_eq!(charges.len(), paid_card.len(), "{label}: card charges == paid card sales");
    assert!(sandbox.tokenx.locked_by(terminal).is_empty(), "{label}: no order left locked by {terminal}");
    Checked { sales: sales.len(), paid: sales.iter().filter(|s| s.state.is_paid()).count(), charges: charges.len() }
}
