//! Every way to pay: split card and cash, MobilePay (and a restart while reserved), Settle QR
//! (approve, reject, expiry), refunds through the provider, and voiding a partly paid sale.

use crate::manager;
use std::time::Duration;

use kasa_core::{Currency, MethodKind, Money, PayMethod, PaymentKind, SaleState};
use kasa_engine::ErrorCode;
use kasa_sim::{CustomerScript, Sandbox, SandboxConfig};

use super::{Harness, harness_with, register, settle, wait_for_orders};

const WAIT: Duration = Duration::from_secs(10);

fn manual_customers(c: &mut SandboxConfig) {
    c.mobilepay.customer = CustomerScript::Manual;
}

/// Waits until the register has pointed the Settle shortlink at its callback.
async fn settle_ready(sb: &Sandbox) {
    for _ in 0..200 {
        if sb.settle.callback_uri().is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the register never registered its Settle callback");
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in time");
}

#[tokio::test]
async fn split_card_and_cash_report_both_parts_and_print_one_slip() {
    let h = harness_with(|_| {}).await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    assert!(h.engine.status().methods.contains(&MethodKind::MobilePay));
    let part = Money::new(order.amount.minor / 2, Currency::TRY);
    h.engine.pay_part(&sale.id, PayMethod::Card, Some(part)).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Tendering);
    assert_eq!(after.remaining.minor, order.amount.minor - part.minor);
    assert_eq!(after.notice.unwrap().code, "PART_PAID");
    assert_eq!(h.sandbox.tokenx.status_of(&order.order_id), Some("Locked"), "the lock is kept for the rest");

    let tendered = Money::new(after.remaining.minor + 1_000, Currency::TRY);
    let done = h.engine.pay(&sale.id, PayMethod::Cash { tendered }).await.unwrap();
    assert!(done.state.is_paid());
    assert_eq!(done.change.unwrap().minor, 1_000);
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    let report = h.sandbox.tokenx.payment_of(&order.order_id).unwrap();
    let parts: Vec<(String, i64)> = report["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["method"].as_str().unwrap().to_string(), p["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(parts, [("CARD".to_string(), part.minor), ("CASH".to_string(), order.amount.minor - part.minor)]);
    assert!(report["payments"][0]["slip"]["approvalCode"].is_string());
    let jobs = h.sandbox.printer.wait_for_jobs(1, WAIT).await;
    assert_eq!(jobs.len(), 1, "one slip for the whole sale");
    let text = jobs[0].text();
    assert!(text.contains("KART VISA") && text.contains("NAKİT"), "{text}");
}

#[tokio::test]
async fn mobilepay_payment_is_started_approved_and_captured_once() {
    let h = harness_with(manual_customers).await;
    let order = wait_for_orders(&h.engine, 4).await[1].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::MobilePay).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let view = h.engine.sale_view(&sale.id).await.unwrap();
    let attempt = view.attempt.clone().unwrap();
    assert_eq!(attempt.method, MethodKind::MobilePay);
    assert!(attempt.qr.unwrap().starts_with("https://"), "the terminal's QR link is shown");
    assert!(attempt.qr_svg.unwrap().starts_with("<svg"));
    let mp = h.sandbox.mobilepay.clone();
    wait_until(|| mp.active_payment("KASA-LANE-1").is_some()).await;
    let payment_id = h.sandbox.mobilepay.active_payment("KASA-LANE-1").unwrap();
    h.sandbox.mobilepay.check_in("KASA-LANE-1").unwrap();
    h.sandbox.mobilepay.approve(&payment_id).unwrap();
    let paid = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(paid.payments[0].kind, PaymentKind::MobilePay { payment_id: payment_id.clone() });
    assert_eq!(h.sandbox.mobilepay.captured_payments().len(), 1);
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    assert_eq!(h.sandbox.tokenx.payment_of(&order.order_id).unwrap()["payments"][0]["method"], "MOBILEPAY");

    // A MobilePay refund is created and captured through MobilePay.
    let session = manager(&h.engine).await;
    h.engine.refund(&sale.id, 0, Money::new(1_000, Currency::TRY), &session, "wrong product").await.unwrap();
    settle(&h.engine, WAIT).await;
    let refunds = h.sandbox.mobilepay.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["status"], "Captured");
}

#[tokio::test]
async fn a_mobilepay_payment_reserved_during_a_crash_is_captured_exactly_once_after_restart() {
    let sandbox = kasa_sim::Sandbox::start({
        let mut c = SandboxConfig::default();
        c.tokenx.completion_delay = Duration::from_millis(50);
        manual_customers(&mut c);
        c
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sandbox, dir.path(), |_| {}).await;
    let orders = wait_for_orders(&engine, 4).await;

    // Two payments under way when the register dies: one the customer then approves, one the
    // customer rejects while it is down.
    let mut sales = Vec::new();
    for order in &orders[..2] {
        let sale = engine.open_order_sale(&order.order_id).await.unwrap();
        engine.pay(&sale.id, PayMethod::MobilePay).await.unwrap();
        let mp = sandbox.mobilepay.clone();
        wait_until(|| mp.active_payment("KASA-LANE-1").is_some()).await;
        let payment_id = sandbox.mobilepay.active_payment("KASA-LANE-1").unwrap();
        sales.push((sale.id.clone(), order.order_id.clone(), payment_id.clone()));
        if sales.len() == 1 {
            sandbox.mobilepay.check_in("KASA-LANE-1").unwrap();
            engine.shutdown().await; // the crash: the delivery is cut mid-flight
            sandbox.mobilepay.approve(&payment_id).unwrap();
            assert_eq!(sandbox.mobilepay.payment_json(&payment_id).unwrap()["status"], "Reserved");
            break;
        }
    }
    drop(engine);
    let engine = register(&sandbox, dir.path(), |_| {}).await;
    assert!(engine.status().recovery.iter().any(|l| l.contains("MobilePay")), "{:?}", engine.status().recovery);
    let (sale_id, order_id, payment_id) = sales[0].clone();
    let paid = engine.wait_settled(&sale_id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(sandbox.mobilepay.captured_payments().len(), 1, "captured exactly once");
    let history = sandbox.mobilepay.payment_history(&payment_id);
    assert_eq!(history.iter().filter(|s| *s == "Captured").count(), 1, "{history:?}");
    engine.wait_for_state(&sale_id, SaleState::Completed, WAIT).await.unwrap();
    assert_eq!(sandbox.tokenx.accepted_reports(&order_id), 1);

    // The second order: paying again, the customer rejects: cancelled once, order unlocked.
    let (order2, _) = (orders[1].clone(), ());
    let sale2 = engine.open_order_sale(&order2.order_id).await.unwrap();
    engine.pay(&sale2.id, PayMethod::MobilePay).await.unwrap();
    let mp = sandbox.mobilepay.clone();
    wait_until(|| mp.active_payment("KASA-LANE-1").is_some()).await;
    let p2 = sandbox.mobilepay.active_payment("KASA-LANE-1").unwrap();
    sandbox.mobilepay.check_in("KASA-LANE-1").unwrap();
    engine.shutdown().await;
    sandbox.mobilepay.reject(&p2).unwrap();
    drop(engine);
    let engine = register(&sandbox, dir.path(), |_| {}).await;
    let after = engine.wait_settled(&sale2.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open);
    assert_eq!(after.notice.unwrap().code, "CancelledByUser");
    settle(&engine, WAIT).await;
    assert_eq!(sandbox.tokenx.status_of(&order2.order_id), Some("Open"), "the pump order is unlocked");
    assert_eq!(sandbox.mobilepay.captured_payments().len(), 1, "nothing more was captured");
    engine.shutdown().await;
}

async fn settle_sale(h: &Harness, order_index: usize) -> (String, String, String) {
    settle_ready(&h.sandbox).await;
    let order = wait_for_orders(&h.engine, 4).await[order_index].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    let paying = h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let pos_tid = paying.attempt.unwrap().reference.unwrap();
    let view = h.engine.sale_view(&sale.id).await.unwrap();
    assert_eq!(view.attempt.unwrap().qr.unwrap(), format!("http://settle.eu/s/kAsA7d/{pos_tid}"));
    h.sandbox.settle.scan(&pos_tid).await.unwrap();
    let settle = h.sandbox.settle.clone();
    let p = pos_tid.clone();
    wait_until(|| settle.tid_of(&p).is_some()).await;
    let tid = h.sandbox.settle.tid_of(&pos_tid).unwrap();
    (sale.id, order.order_id, tid)
}

#[tokio::test]
async fn settle_qr_payment_scanned_approved_and_captured() {
    let h = harness_with(|_| {}).await;
    let (sale_id, order_id, tid) = settle_sale(&h, 0).await;
    let req = h.sandbox.recorder.of("settle").into_iter().find(|r| r.path == "/merchant/v1/payment_request/").unwrap();
    let body = req.json();
    assert_eq!(body["pos_id"], "kasa-register-1");
    assert!(body["customer"].as_str().unwrap().starts_with("token:"));
    h.sandbox.settle.approve(&tid);
    let paid = h.engine.wait_settled(&sale_id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(paid.payments[0].kind, PaymentKind::Settle { tid: tid.clone() });
    assert_eq!(h.sandbox.settle.outcome_json(&tid).unwrap()["status_code"], 2000);
    h.engine.wait_for_state(&sale_id, SaleState::Completed, WAIT).await.unwrap();
    assert_eq!(h.sandbox.tokenx.payment_of(&order_id).unwrap()["payments"][0]["method"], "SETTLE");
}

#[tokio::test]
async fn settle_rejection_and_expiry_unlock_the_pump_order() {
    let h = harness_with(|_| {}).await;
    let (sale_id, order_id, tid) = settle_sale(&h, 1).await;
    h.sandbox.settle.reject(&tid);
    let after = h.engine.wait_settled(&sale_id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open);
    let n = after.notice.unwrap();
    assert_eq!(n.code, "5006");
    assert!(n.message.contains("rejected"), "{}", n.message);
    settle(&h.engine, WAIT).await;
    assert_eq!(h.sandbox.tokenx.status_of(&order_id), Some("Open"));

    let (sale_id, order_id, tid) = settle_sale(&h, 2).await;
    h.sandbox.settle.expire(&tid);
    let after = h.engine.wait_settled(&sale_id, WAIT).await.unwrap();
    assert_eq!((after.state, after.notice.unwrap().code.as_str()), (SaleState::Open, "5011"));
    settle(&h.engine, WAIT).await;
    assert_eq!(h.sandbox.tokenx.status_of(&order_id), Some("Open"));
    assert!(h.sandbox.settle.captured().is_empty());
}

#[tokio::test]
async fn a_settle_payment_cancelled_before_the_scan_takes_nothing() {
    let h = harness_with(|_| {}).await;
    settle_ready(&h.sandbox).await;
    let order = wait_for_orders(&h.engine, 4).await[3].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    h.engine.cancel_payment(&sale.id).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!((after.state, after.notice.unwrap().code.as_str()), (SaleState::Open, "CANCELLED"));
}

#[tokio::test]
async fn refunds_go_through_the_provider_and_never_past_the_original_amount() {
    let h = harness_with(|_| {}).await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    let session = manager(&h.engine).await;
    let tl = |m| Money::new(m, Currency::TRY);
    let part = order.amount.minor * 4 / 10;

    let wrong = h.engine.refund(&sale.id, 0, tl(part), "wrong-session", "customer returned goods").await.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::NotAuthorized);
    assert_eq!(h.engine.manager_login("135713").await.unwrap_err().code, ErrorCode::Refused, "a wrong PIN");
    h.engine.refund(&sale.id, 0, tl(part), &session, "customer returned goods").await.unwrap();
    settle(&h.engine, WAIT).await;
    // A full refund on top of the partial one is past the original amount.
    let too_much = h.engine.refund(&sale.id, 0, order.amount, &session, "again").await.unwrap_err();
    assert_eq!(too_much.code, ErrorCode::BadInput);
    assert!(too_much.message.contains("only"), "{}", too_much.message);
    h.engine.refund(&sale.id, 0, tl(order.amount.minor - part), &session, "rest of it").await.unwrap();
    settle(&h.engine, WAIT).await;
    let reversals = h.sandbox.finix.reversals();
    assert_eq!(reversals.iter().map(|r| r["amount"].as_i64().unwrap()).sum::<i64>(), order.amount.minor);
    let view = h.engine.sale_view(&sale.id).await.unwrap();
    assert_eq!(view.refunds.len(), 2);
    assert!(h.engine.refund(&sale.id, 0, tl(1), &session, "nothing left").await.is_err());
    // Each refund printed a refund slip.
    let jobs = h.sandbox.printer.wait_for_jobs(3, WAIT).await;
    assert_eq!(jobs.iter().filter(|j| j.text().contains("İADE")).count(), 2);
    let kinds: Vec<String> = h.engine.store().journal_for_sale(&sale.id).unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "refund_completed").count(), 2);
}

#[tokio::test]
async fn cancelling_a_partly_paid_sale_refunds_the_parts_and_unlocks() {
    let h = harness_with(|_| {}).await;
    let order = wait_for_orders(&h.engine, 4).await[2].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay_part(&sale.id, PayMethod::Card, Some(Money::new(10_000, Currency::TRY))).await.unwrap();
    assert_eq!(h.engine.wait_settled(&sale.id, WAIT).await.unwrap().state, SaleState::Tendering);
    // A cashier can't simply cancel it: voiding gives money back and needs the manager.
    assert_eq!(h.engine.cancel_sale(&sale.id).await.unwrap_err().code, ErrorCode::InvalidState);
    let session = manager(&h.engine).await;
    assert_eq!(h.engine.void_sale(&sale.id, "wrong-session").await.unwrap_err().code, ErrorCode::NotAuthorized);
    h.engine.void_sale(&sale.id, &session).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Cancelled);
    assert_eq!(after.notice.unwrap().code, "VOIDED");
    settle(&h.engine, WAIT).await;
    assert_eq!(h.sandbox.finix.reversals().len(), 1);
    assert_eq!(h.sandbox.tokenx.status_of(&order.order_id), Some("Open"));
    assert_eq!(h.sandbox.tokenx.accepted_reports(&order.order_id), 0, "a voided sale is never reported");
}

/// The demo panel's customer: what its buttons do to the payment under way.
#[cfg(feature = "demo")]
#[tokio::test]
async fn the_demo_panel_customer_scans_approves_and_lets_payments_expire() {
    use kasa_engine::demo::{CustomerAction, play_customer};

    assert_eq!("expire".parse::<CustomerAction>().unwrap(), CustomerAction::Expire);
    let bad = "dance".parse::<CustomerAction>().unwrap_err();
    assert_eq!(bad.code, ErrorCode::BadInput);
    assert!(bad.message.contains("scan, approve, reject or expire"), "{}", bad.message);

    let h = harness_with(manual_customers).await;
    let nothing = play_customer(&h.engine, &h.sandbox, CustomerAction::Approve).await.unwrap_err();
    assert_eq!(nothing.code, ErrorCode::InvalidState);

    // MobilePay: the customer walks away and the payment expires; the pump order is unlocked.
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::MobilePay).await.unwrap();
    let mp = h.sandbox.mobilepay.clone();
    wait_until(|| mp.active_payment("KASA-LANE-1").is_some()).await;
    let scan = play_customer(&h.engine, &h.sandbox, CustomerAction::Scan).await.unwrap_err();
    assert!(scan.message.contains("nothing to scan"), "{}", scan.message);
    play_customer(&h.engine, &h.sandbox, CustomerAction::Expire).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open, "{after:?}");
    assert!(after.payments.is_empty());
    settle(&h.engine, WAIT).await;
    assert_eq!(h.sandbox.tokenx.status_of(&order.order_id), Some("Open"));
    assert!(h.sandbox.mobilepay.captured_payments().is_empty());

    // Settle: deciding before the scan is refused; scan then approve pays the order.
    settle_ready(&h.sandbox).await;
    let order = wait_for_orders(&h.engine, 4).await[1].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let early = play_customer(&h.engine, &h.sandbox, CustomerAction::Approve).await.unwrap_err();
    assert!(early.message.contains("Scan the QR code first"), "{}", early.message);
    play_customer(&h.engine, &h.sandbox, CustomerAction::Scan).await.unwrap();
    let settle_sim = h.sandbox.settle.clone();
    wait_until(|| !settle_sim.pending().is_empty()).await;
    play_customer(&h.engine, &h.sandbox, CustomerAction::Approve).await.unwrap();
    let paid = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(h.sandbox.settle.captured().len(), 1);
}
