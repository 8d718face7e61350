//! X and Z reports add up to what the journal says was sold, given back and voided, and Z
//! numbers run without gaps through restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use kasa_core::payment::{MethodKind, RefundState};
use kasa_core::report::ShiftReport;
use kasa_core::{Currency, Money, PayMethod, Sale, SaleState};
use kasa_engine::{Config, Engine, ErrorCode};
use kasa_sim::{Sandbox, SandboxConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{manager, register};

const WAIT: Duration = Duration::from_secs(20);

fn tl(minor: i64) -> Money {
    Money::new(minor, Currency::TRY)
}

/// What the shift's sales add up to, worked out from the sales the journal names and their
/// final state (independently of the movements the reports are made of).
#[derive(Debug, Default, PartialEq)]
struct Expected {
    sales: u32,
    gross: i64,
    paid: BTreeMap<String, (u32, i64)>,
    given_back: BTreeMap<String, i64>,
    refunds: u32,
    refunded: i64,
    voids: u32,
    voided: i64,
    vat_gross: BTreeMap<u32, i64>,
}

fn method(m: MethodKind) -> String {
    format!("{m:?}")
}

fn expected(sales: &[Sale]) -> Expected {
    let mut e = Expected::default();
    for s in sales {
        for p in &s.payments {
            let t = e.paid.entry(method(p.method())).or_default();
            t.0 += 1;
            t.1 += p.amount.minor;
        }
        let voided = s.state == SaleState::Cancelled;
        if voided {
            e.voids += 1;
        }
        if s.paid_at.is_some() {
            e.sales += 1;
            e.gross += s.total().unwrap().minor;
            for (rate, _, gross) in s.basket.vat_breakdown().unwrap() {
                *e.vat_gross.entry(rate).or_default() += gross.minor;
            }
        }
        for r in s.refunds.iter().filter(|r| r.state == RefundState::Done && !r.unexpected) {
            *e.given_back.entry(method(s.payments[r.payment as usize].method())).or_default() += r.amount.minor;
            if s.paid_at.is_none() {
                e.voided += r.amount.minor;
            } else {
                e.refunds += 1;
                e.refunded += r.amount.minor;
                for (rate, part) in kasa_core::report::share_by_rate(s, r.amount).unwrap() {
                    *e.vat_gross.entry(rate).or_default() -= part.minor;
                }
            }
        }
    }
    e.vat_gross.retain(|_, v| *v != 0);
    e
}

fn of_report(r: &ShiftReport) -> Expected {
    let mut e = Expected {
        sales: r.sales,
        gross: r.gross.minor,
        refunds: r.refunds,
        refunded: r.refunded.minor,
        voids: r.voids,
        voided: r.voided.minor,
        ..Expected::default()
    };
    for t in &r.methods {
        if t.payments > 0 {
            e.paid.insert(method(t.method), (t.payments, t.paid.minor));
        }
        if t.refunded.minor != 0 {
            e.given_back.insert(method(t.method), t.refunded.minor);
        }
    }
    for v in r.vat.iter().filter(|v| v.gross.minor != 0) {
        e.vat_gross.insert(v.rate_bp, v.gross.minor);
    }
    e
}

/// The sales the journal names after entry `after`.
fn journaled_sales(engine: &Engine, after: i64) -> Vec<Sale> {
    let mut ids: Vec<String> = Vec::new();
    for e in engine.store().journal_page(after, 1_000_000).unwrap() {
        if let Some(id) = e.sale_id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    ids.iter().map(|id| engine.store().sale(id).unwrap().unwrap()).collect()
}

const SKUS: [&str; 5] = ["8690504000017", "8690000000101", "5449000000996", "8690000000200", "8690526000035"];

/// One random sale: paid in cash, by card, split, then perhaps refunded in part; or voided
/// after a part was paid; or abandoned before any payment.
async fn random_sale(engine: &Engine, session: &str, rng: &mut StdRng) {
    let sale = engine.open_shop_sale().await.unwrap();
    for _ in 0..rng.random_range(1..=3) {
        let sku = SKUS[rng.random_range(0..SKUS.len())];
        let _ = engine.add_item(&sale.id, sku, rng.random_range(1..=3)).await;
    }
    let view = engine.sale_view(&sale.id).await.unwrap();
    if view.total.minor == 0 {
        engine.cancel_sale(&sale.id).await.unwrap();
        return;
    }
    let total = view.total.minor;
    let cash_all = PayMethod::Cash { tendered: tl(total + rng.random_range(0..5_000)) };
    match rng.random_range(0..10) {
        0 => {
            engine.cancel_sale(&sale.id).await.unwrap();
            return;
        }
        1 | 2 if total > 200 => {
            // A part paid, then the sale is voided: the part is given back.
            let part = if rng.random_bool(0.5) { PayMethod::Card } else { PayMethod::Cash { tendered: tl(total) } };
            engine.pay_part(&sale.id, part, Some(tl(total / 2))).await.unwrap();
            engine.wait_settled(&sale.id, WAIT).await.unwrap();
            engine.void_sale(&sale.id, session).await.unwrap();
            engine.wait_for_state(&sale.id, SaleState::Cancelled, WAIT).await.unwrap();
            return;
        }
        3 | 4 if total > 200 => {
            engine.pay_part(&sale.id, PayMethod::Card, Some(tl(total / 3))).await.unwrap();
            engine.wait_settled(&sale.id, WAIT).await.unwrap();
            engine.pay(&sale.id, PayMethod::Cash { tendered: tl(total) }).await.unwrap();
        }
        5 | 6 => {
            engine.pay(&sale.id, PayMethod::Card).await.unwrap();
        }
        _ => {
            engine.pay(&sale.id, cash_all).await.unwrap();
        }
    }
    let paid = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.is_paid, "{:?} {:?}", paid.state, paid.notice);
    if rng.random_bool(0.3) {
        let i = rng.random_range(0..paid.payments.len());
        let most = paid.refundable[i].minor;
        let amount = tl(rng.random_range(1..=most));
        engine.refund(&sale.id, i as u32, amount, session, "returned by the customer").await.unwrap();
        for _ in 0..500 {
            let s = engine.sale(&sale.id).await.unwrap();
            if s.refunds.iter().all(|r| r.state != RefundState::Pending) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn x_and_z_reports_add_up_the_journaled_sales_and_z_numbers_run_without_gaps_across_restarts() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let with_float = |c: &mut Config| c.manager.opening_float = Some("500.00".into());
    let mut engine = register(&sandbox, dir.path(), with_float).await;
    let mut after = 0;
    for shift in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(shift + 11);
        let session = manager(&engine).await;
        for _ in 0..12 {
            random_sale(&engine, &session, &mut rng).await;
        }
        let sales = journaled_sales(&engine, after);
        let want = expected(&sales);
        let x = engine.x_report(&session).await.unwrap();
        assert_eq!(of_report(&x), want, "shift {shift}: the X report");
        let cash = want.paid.get("Cash").map_or(0, |t| t.1) - want.given_back.get("Cash").copied().unwrap_or(0);
        let float = if shift == 0 { 50_000 } else { 40_000 };
        assert_eq!(x.opening_float.minor, float, "the float: configured, then what the last Z left");
        assert_eq!(x.cash_expected.minor, float + cash);

        // The count is short: the Z needs a note, then closes with the same totals.
        let counted = tl(x.cash_expected.minor - 150);
        let e = engine.z_report(&session, counted, None, tl(40_000)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadInput, "{}", e.message);
        let z = engine.z_report(&session, counted, Some("1.50 short".into()), tl(40_000)).await.unwrap();
        assert_eq!(z.number, Some(shift + 1));
        assert_eq!(of_report(&z), want, "shift {shift}: the Z report");
        assert_eq!(z.difference, Some(tl(-150)));
        assert_eq!(engine.z_report_by_number(&session, shift + 1).await.unwrap(), z);

        // Printed on the receipt printer, as the manager reads it.
        engine.print_report(&session, z.number).await.unwrap();
        // (Slips of the shift's sales may still be printing: the report is found among the jobs.)
        let title = format!("Z REPORT No {}", shift + 1);
        let jobs: Vec<String> = sandbox.printer.jobs().iter().map(|j| j.text()).collect();
        let printed = jobs.iter().find(|t| t.contains(&title)).unwrap_or_else(|| panic!("{title} printed: {jobs:?}"));
        assert!(printed.contains("Cash expected"), "{printed}");

        // A new shift starts empty.
        let next = engine.x_report(&session).await.unwrap();
        assert_eq!((next.sales, next.gross.minor, next.voids), (0, 0, 0));
        assert_eq!(next.opened_at.as_deref(), Some(z.at.as_str()));
        after = engine.store().journal_stats().unwrap().entries;
        if shift % 2 == 0 {
            engine.shutdown().await;
            drop(engine);
            engine = register(&sandbox, dir.path(), with_float).await;
        }
    }
    assert_eq!(engine.store().z_numbers().unwrap(), [1, 2, 3, 4]);
    let journal = engine.store().journal_page(0, 1_000_000).unwrap();
    assert_eq!(journal.iter().filter(|e| e.kind == "z_report").count(), 4, "each Z is a journal entry");
    // The register fiscalizes: each Z queued the daily closing under its number, in its own
    // transaction, and the middleware signed them.
    assert!(engine.status().fiscal, "the sandbox register fiscalizes");
    let closings: Vec<String> =
        journal.iter().filter(|e| e.kind == "fiscal_daily_closing").map(|e| e.data.clone()).collect();
    assert_eq!(closings.len(), 4, "{closings:?}");
    for (i, c) in closings.iter().enumerate() {
        assert!(c.contains(&format!("\"z\":{}", i + 1)), "{c}");
    }
    let left = engine.drain(Duration::from_secs(20)).await.unwrap();
    assert_eq!((left.pending, left.parked), (0, 0), "the closings were signed");
    assert!(engine.verify_journal().await.unwrap().is_intact());
    engine.shutdown().await;
}
