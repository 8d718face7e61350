//! The promises a register keeps, checked where the money is: at the sandbox, and in the
//! register's database. Shared by the chaos, outage, crash and timing tests and by the
//! deterministic simulation.
//!
//! [`verify`] is the end-of-run check (everything delivered and settled); [`verify_money`]
//! balances each payment method's books between the register and its provider;
//! [`verify_now`] holds at any moment, while sales are still under way.

use std::collections::BTreeMap;

use kasa_core::{Currency, MethodKind, PaymentKind, RefundState, Sale, SaleState};
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
    /// Paid pump sales whose order another register sold and reported after this one's lock
    /// lapsed (this register was down longer than the lock lives): their report was refused,
    /// and the customer's money was given back in full.
    pub taken_over: usize,
    /// Receipts signed exactly once at the fiscal middleware.
    pub receipts: usize,
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
    verify_with(store, sandbox, terminal, device, true, label)
}

/// [`verify`], with the MobilePay promises checked only when `apps` (this register is the one
/// using the sandbox's MobilePay merchant).
pub fn verify_with(
    store: &Store,
    sandbox: &Sandbox,
    terminal: &str,
    device: &str,
    apps: bool,
    label: &str,
) -> Result<Checked, String> {
    store.integrity_check().map_err(|e| format!("{label}: database integrity: {e}"))?;
    let journal = store.verify_journal().map_err(|e| e.to_string())?;
    if let Some(b) = &journal.first_break {
        return Err(format!("{label}: journal intact (broken at entry {}: {})", b.seq, b.reason));
    }
    let sales = store.recent_sales(1_000_000).map_err(|e| e.to_string())?;
    let counts = store.queue_counts().map_err(|e| e.to_string())?;
    if (counts.pending, counts.parked) != (0, 0) {
        let open: Vec<String> = store
            .outbox_open(10)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| format!("{} {:?}: {}", r.op.kind().as_str(), r.state, r.last_error.as_deref().unwrap_or("")))
            .collect();
        return Err(format!(
            "{label}: queue delivered, nothing parked (left {:?}, right (0, 0)): {}",
            (counts.pending, counts.parked),
            open.join("; ")
        ));
    }
    let locks = store.locks().map_err(|e| e.to_string())?;
    if !locks.is_empty() {
        let held: Vec<String> = locks
            .iter()
            .map(|l| {
                let sale = sales.iter().find(|s| s.id.0 == l.sale_id);
                let state = sale.map(|s| format!("{:?} {:?} {:?}", s.state, s.attempt, s.notice)).unwrap_or_default();
                format!("{} by sale {} ({state})", l.order_id, l.sale_id)
            })
            .collect();
        return Err(format!("{label}: no lock left in the database: {}", held.join("; ")));
    }

    let mut taken_over = 0;
    // Card charges kept by paid sales: transaction ref → sale.
    let mut paid_card: BTreeMap<String, String> = BTreeMap::new();
    for s in &sales {
        ensure!(!s.state.is_busy(), "{label}: sale {} left {:?}", s.id, s.state);
        ensure!(s.state != SaleState::NeedsAttention, "{label}: sale {} is held for a manager", s.id);
        let Some(order) = s.basket.pump_order_id() else { continue };
        let reports = sandbox.tokenx.accepted_reports(order);
        if s.state.is_paid() {
            ensure_eq!(reports, 1, "{label}: paid sale {} reported exactly once", s.id);
            let reported_by =
                sandbox.tokenx.payment_of(order).and_then(|p| p["terminalId"].as_str().map(str::to_string));
            if reported_by.as_deref() != Some(terminal) {
                // Another register sold the order after this one's lock lapsed (it was down
                // longer than a lock lives): this customer must have had the money back.
                let kept: i64 = s.payments.iter().map(|p| p.amount.minor).sum::<i64>()
                    - s.refunds
                        .iter()
                        .filter(|r| r.state == RefundState::Done && !r.unexpected)
                        .map(|r| r.amount.minor)
                        .sum::<i64>();
                ensure_eq!(
                    kept,
                    0,
                    "{label}: paid sale {} of an order another register reported gave the money back",
                    s.id
                );
                taken_over += 1;
            }
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
    // Card payments recorded by sales: each is a charge at Finix, kept unless given back in
    // full (by a refund of a paid sale, or the void of a part-paid one).
    let given_back = |s: &Sale, index: usize, unexpected: bool| -> i64 {
        s.refunds
            .iter()
            .filter(|r| r.state == RefundState::Done && r.payment as usize == index && r.unexpected == unexpected)
            .map(|r| r.amount.minor)
            .sum()
    };
    let mut recorded: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for s in &sales {
        for (unexpected, list) in [(false, &s.payments), (true, &s.unexpected)] {
            for (i, p) in list.iter().enumerate() {
                if let PaymentKind::Card { slip } = &p.kind {
                    let returned = given_back(s, i, unexpected) >= p.amount.minor;
                    if !returned {
                        ensure!(
                            s.state.is_paid(),
                            "{label}: sale {} is {:?} but keeps card charge {}",
                            s.id,
                            s.state,
                            slip.transaction_ref
                        );
                        let before = paid_card.insert(slip.transaction_ref.clone(), s.id.0.clone());
                        ensure!(before.is_none(), "{label}: card charge {} is recorded twice", slip.transaction_ref);
                    }
                    recorded.insert(slip.transaction_ref.clone(), (s.id.0.clone(), returned));
                }
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
    // Pump order → the sales that kept a card charge for it.
    let mut per_order: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut kept = 0;
    for t in &charges {
        let id = t["id"].as_str().unwrap_or_default();
        let sale = t["tags"]["sale_id"].as_str().unwrap_or_default().to_string();
        if reversed(id) >= t["amount"].as_i64().unwrap_or(0) {
            // Given back in full: the sale must say so.
            ensure!(
                recorded.get(id).is_some_and(|(s, returned)| *s == sale && *returned),
                "{label}: charge {id} was reversed, and its sale {sale} records it given back"
            );
            continue;
        }
        kept += 1;
        if let Some(order) = sales.iter().find(|s| s.id.0 == sale).and_then(|s| s.basket.pump_order_id()) {
            per_order.entry(order.to_string()).or_default().insert(sale.clone());
        }
        ensure_eq!(
            paid_card.get(id).map(String::as_str),
            Some(sale.as_str()),
            "{label}: charge {id} belongs to a paid sale that records it"
        );
    }
    ensure!(per_order.values().all(|s| s.len() == 1), "{label}: no pump order charged by two sales: {per_order:?}");
    ensure_eq!(kept, paid_card.len(), "{label}: card charges kept == card payments kept by paid sales");
    ensure!(sandbox.tokenx.locked_by(terminal).is_empty(), "{label}: no order left locked by {terminal}");

    // MobilePay: every captured payment is a paid sale's (or was given back, and its sale says
    // so), no pump order is paid twice, and no reservation is left hanging.
    // Pump order → the sales keeping a MobilePay payment for it (a split may hold two).
    let mut mp_orders: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for p in sandbox.mobilepay.payments().into_iter().filter(|_| apps) {
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
            mp_orders.entry(order.to_string()).or_default().insert(sale.id.0.clone());
        }
    }
    mp_orders.retain(|_, sales| sales.len() > 1);
    ensure!(mp_orders.is_empty(), "{label}: no pump order paid by MobilePay in two sales: {mp_orders:?}");
    let receipts = verify_fiscal(store, &sales, sandbox, label)?;
    verify_reports(store, &sales, label)?;
    Ok(Checked {
        receipts,
        sales: sales.len(),
        paid: sales.iter().filter(|s| s.state.is_paid()).count(),
        charges: kept,
        taken_over,
    })
}

/// The shift reports add up to the sales: every movement the register recorded, added up as an
/// X report does, equals per method the payments and the money given back of the stored sales
/// (unexpected charges aside), and the sales paid in full and voided.
pub fn verify_reports(store: &Store, sales: &[Sale], label: &str) -> Result<(), String> {
    use kasa_core::report::{ReportHead, ReportKind, add_up};
    let Some(currency) = sales.first().map(|s| s.basket.currency) else { return Ok(()) };
    let zero = kasa_core::Money::new(0, currency);
    let head = ReportHead {
        kind: ReportKind::X,
        number: None,
        register: String::new(),
        opened_at: None,
        at: String::new(),
        currency,
        opening_float: zero,
    };
    let movements = store.movements_after(0).map_err(|e| e.to_string())?;
    let r = add_up(head, movements).map_err(|e| e.to_string())?;
    for m in [MethodKind::Cash, MethodKind::Card, MethodKind::MobilePay, MethodKind::Settle] {
        let paid: i64 =
            sales.iter().flat_map(|s| &s.payments).filter(|p| p.method() == m).map(|p| p.amount.minor).sum();
        let back: i64 = sales
            .iter()
            .flat_map(|s| s.refunds.iter().map(move |r| (s, r)))
            .filter(|(s, r)| {
                r.state == RefundState::Done && !r.unexpected && s.payments[r.payment as usize].method() == m
            })
            .map(|(_, r)| r.amount.minor)
            .sum();
        let t = r.methods.iter().find(|t| t.method == m).ok_or("every method is in the report")?;
        ensure_eq!(
            (t.paid.minor, t.refunded.minor),
            (paid, back),
            "{label}: the reports' {} (paid, given back) are the sales' {:?}",
            m.as_str(),
            (paid, back)
        );
    }
    let paid_sales: Vec<&Sale> = sales.iter().filter(|s| s.paid_at.is_some()).collect();
    let gross: i64 = paid_sales.iter().map(|s| s.total().map_or(0, |t| t.minor)).sum();
    let voids = sales.iter().filter(|s| s.state == SaleState::Cancelled).count() as u32;
    ensure_eq!(
        (r.sales, r.gross.minor, r.voids),
        (paid_sales.len() as u32, gross, voids),
        "{label}: the reports' sales, gross and voids are the stored sales'"
    );
    Ok(())
}

/// Fiscalization: every receipt of a fiscalized sale (its own once paid in full, one per
/// refund) is signed exactly once at the middleware, the sale keeps the signature the
/// middleware gave, and the receipts were signed in the order the register queued them.
/// Returns how many receipts it checked.
pub fn verify_fiscal(store: &Store, sales: &[Sale], sandbox: &Sandbox, label: &str) -> Result<usize, String> {
    let numbers: BTreeMap<String, (i64, String)> = sandbox
        .fiskaltrust
        .receipts()
        .iter()
        .filter_map(|r| {
            let reference = r["cbReceiptReference"].as_str()?.to_string();
            Some((reference, (r["ftReceiptNumber"].as_i64()?, r["ftReceiptIdentification"].as_str()?.to_string())))
        })
        .collect();
    // (outbox id of the signing message, receipt number at the middleware)
    let mut order: Vec<(i64, i64)> = Vec::new();
    for s in sales.iter().filter(|s| s.fiscalize) {
        ensure!(
            !s.state.is_paid() || s.fiscal.iter().any(|r| r.refund.is_none()),
            "{label}: paid sale {} has no receipt for the fiscal middleware",
            s.id
        );
        let rows = store.outbox_of_sale(&s.id.0).map_err(|e| e.to_string())?;
        for r in &s.fiscal {
            ensure_eq!(
                sandbox.fiskaltrust.signed_count(&r.reference),
                1,
                "{label}: receipt {} of sale {} signed exactly once",
                r.reference,
                s.id
            );
            let Some(sig) = &r.signature else {
                return Err(format!(
                    "{label}: receipt {} of sale {} is signed but the sale has no signature",
                    r.reference, s.id
                ));
            };
            let Some((number, id)) = numbers.get(&r.reference) else {
                return Err(format!("{label}: receipt {} is not in the middleware's receipt journal", r.reference));
            };
            ensure_eq!(&sig.receipt_id, id, "{label}: sale {} keeps the middleware's receipt number", s.id);
            let doc_of = |row: &kasa_store::OutboxRow| match &row.op {
                kasa_core::Op::FiscalSign { doc: kasa_core::FiscalDoc::Sale } => Some(s.id.0.clone()),
                kasa_core::Op::FiscalSign { doc: kasa_core::FiscalDoc::Refund { refund_id } } => {
                    Some(refund_id.clone())
                }
                _ => None,
            };
            if let Some(row) = rows.iter().find(|row| doc_of(row).as_deref() == Some(r.reference.as_str())) {
                order.push((row.id, *number));
            }
        }
    }
    order.sort();
    ensure!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "{label}: receipts signed in the order they were queued: {order:?}"
    );
    Ok(sales.iter().map(|s| s.fiscal.len()).sum())
}

/// What a register took and gave back by one method, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Books {
    /// Taken.
    pub taken: i64,
    /// Given back.
    pub given_back: i64,
}

impl Books {
    /// What was kept.
    pub fn kept(&self) -> i64 {
        self.taken - self.given_back
    }
}

/// The register's own books per method: every payment its sales record (expected or not)
/// less every refund of them that was done.
pub fn register_books(sales: &[Sale]) -> BTreeMap<&'static str, Books> {
    let mut books: BTreeMap<&'static str, Books> = BTreeMap::new();
    for s in sales {
        for p in s.payments.iter().chain(&s.unexpected) {
            books.entry(p.method().as_str()).or_default().taken += p.amount.minor;
        }
        for r in s.refunds.iter().filter(|r| r.state == RefundState::Done) {
            let list = if r.unexpected { &s.unexpected } else { &s.payments };
            if let Some(p) = list.get(r.payment as usize) {
                books.entry(p.method().as_str()).or_default().given_back += r.amount.minor;
            }
        }
    }
    books
}

/// A decimal amount of the wire (`123.45`) in minor units of `currency`.
fn minor(v: &serde_json::Value, currency: &str) -> i64 {
    let exp = Currency::parse(currency).map(|c| c.exponent()).unwrap_or(2);
    (v.as_f64().unwrap_or(0.0) * 10f64.powi(exp as i32)).round() as i64
}

/// The providers' books for what concerns this register: card charges on `device` less their
/// reversals; and, when `apps` (this register is the one using the sandbox's MobilePay and
/// Settle merchant), MobilePay and Settle captures less their refunds.
pub fn provider_books(sandbox: &Sandbox, device: &str, apps: bool) -> BTreeMap<&'static str, Books> {
    let mut books: BTreeMap<&'static str, Books> = BTreeMap::new();
    let charges: Vec<_> =
        sandbox.finix.succeeded_transfers().into_iter().filter(|t| t["device"].as_str() == Some(device)).collect();
    let reversals = sandbox.finix.reversals();
    let card = books.entry("card").or_default();
    for t in &charges {
        card.taken += t["amount"].as_i64().unwrap_or(0);
        let id = t["id"].as_str().unwrap_or_default();
        card.given_back += reversals
            .iter()
            .filter(|r| r["parent_transfer"].as_str() == Some(id) && r["state"] == "SUCCEEDED")
            .map(|r| r["amount"].as_i64().unwrap_or(0))
            .sum::<i64>();
    }
    if apps {
        let mp = books.entry("mobilepay").or_default();
        for p in sandbox.mobilepay.payments() {
            let currency = p["currencyCode"].as_str().unwrap_or("TRY");
            mp.taken += minor(&p["capturedAmount"], currency);
            mp.given_back += minor(&p["refundedAmount"], currency);
        }
        let st = books.entry("settle").or_default();
        for r in sandbox.settle.captured() {
            let sum = |list: &serde_json::Value| {
                list.as_array().map(|a| a.iter().map(|x| x["amount"].as_i64().unwrap_or(0)).sum::<i64>()).unwrap_or(0)
            };
            st.taken += sum(&r["captures"]);
            st.given_back += sum(&r["refunds"]);
        }
    }
    books
}

/// Fails unless, for every method a provider keeps books of, what the register says it kept
/// equals what the provider kept: sales − refunds = captured − reversed.
pub fn verify_money(store: &Store, sandbox: &Sandbox, device: &str, apps: bool, label: &str) -> Result<(), String> {
    let sales = store.recent_sales(1_000_000).map_err(|e| e.to_string())?;
    let ours = register_books(&sales);
    let theirs = provider_books(sandbox, device, apps);
    for (method, provider) in &theirs {
        let register = ours.get(method).copied().unwrap_or_default();
        ensure_eq!(
            register.kept(),
            provider.kept(),
            "{label}: {method}: the register kept {} ({} taken, {} given back) but the provider kept {} ({} captured, {} reversed)",
            register.kept(),
            register.taken,
            register.given_back,
            provider.kept(),
            provider.taken,
            provider.given_back
        );
    }
    Ok(())
}

/// Orders the cloud holds locked for `terminal` that nothing in the register stands behind: no
/// sale of it in a state that holds a lock, and no Token X message for the order still queued.
/// Empty at every moment a register keeps its word (a lock it no longer needs is released at
/// once, through the queue).
pub fn unowned_locks(store: &Store, sandbox: &Sandbox, terminal: &str) -> Result<Vec<String>, String> {
    let holding = [
        SaleState::Locking,
        SaleState::Paying,
        SaleState::Tendering,
        SaleState::Voiding,
        SaleState::NeedsAttention,
        SaleState::Paid,
    ];
    let sales = store.sales_in(&holding).map_err(|e| e.to_string())?;
    let queued = store.outbox_open(1_000_000).map_err(|e| e.to_string())?;
    Ok(sandbox
        .tokenx
        .locked_by(terminal)
        .into_iter()
        .filter(|order| {
            let by_sale = sales.iter().any(|s| s.basket.pump_order_id() == Some(order.as_str()));
            let lane = kasa_core::op::Op::TokenxRelease { order_id: order.clone() }.lane();
            let by_queue = queued.iter().any(|r| r.lane == lane);
            !by_sale && !by_queue
        })
        .collect())
}

/// The promises that hold at every moment, while sales go on, for every register on the
/// sandbox (`registers`: each one's database and terminal id): no pump order charged twice by
/// card (a charge counts until reversed in full), across registers; no lock held for a terminal
/// without a reason in its register.
pub fn verify_now(registers: &[(&Store, &str)], sandbox: &Sandbox, label: &str) -> Result<(), String> {
    let reversed: BTreeMap<String, i64> =
        sandbox.finix.reversals().iter().filter(|r| r["state"] == "SUCCEEDED").fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r["parent_transfer"].as_str().unwrap_or_default().to_string()).or_default() +=
                r["amount"].as_i64().unwrap_or(0);
            m
        });
    // Pump order → the sales that keep a card charge for it, with their register.
    let mut per_order: BTreeMap<String, std::collections::BTreeSet<(String, String)>> = BTreeMap::new();
    for t in sandbox.finix.succeeded_transfers() {
        let id = t["id"].as_str().unwrap_or_default();
        if reversed.get(id).copied().unwrap_or(0) >= t["amount"].as_i64().unwrap_or(0) {
            continue;
        }
        let sale_id = t["tags"]["sale_id"].as_str().unwrap_or_default();
        for (store, terminal) in registers {
            // Counted for a paid sale that keeps it as one of its payments; a charge waiting to
            // be given back is the end-of-day check's business.
            let Some(sale) = store.sale(sale_id).map_err(|e| e.to_string())? else { continue };
            let keeps = sale
                .payments
                .iter()
                .any(|p| matches!(&p.kind, PaymentKind::Card { slip } if slip.transaction_ref == id));
            if let (true, true, Some(order)) = (sale.state.is_paid(), keeps, sale.basket.pump_order_id()) {
                per_order.entry(order.to_string()).or_default().insert((sale_id.to_string(), terminal.to_string()));
            }
        }
    }
    for (order, sales) in per_order.iter_mut() {
        // A register down longer than a lock lives loses the order to another register, which
        // may sell it again; the cloud then holds the other's report, and the first one's
        // customer is owed the money back (checked at the end of the day). Two charges on
        // one register, or with no report to tell them apart, stay broken.
        let reporter = sandbox.tokenx.payment_of(order).and_then(|p| p["terminalId"].as_str().map(str::to_string));
        let terminals: std::collections::BTreeSet<&String> = sales.iter().map(|(_, t)| t).collect();
        if let Some(reporter) = reporter
            && terminals.len() > 1
        {
            sales.retain(|(_, t)| *t == reporter);
        }
    }
    per_order.retain(|_, sales| sales.len() > 1);
    ensure!(per_order.is_empty(), "{label}: pump orders charged by card in two sales: {per_order:?}");
    for (store, terminal) in registers {
        let unowned = unowned_locks(store, sandbox, terminal)?;
        ensure!(
            unowned.is_empty(),
            "{label}: orders locked for {terminal} with nothing in the register behind them: {unowned:?}"
        );
    }
    Ok(())
}
