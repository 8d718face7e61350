//! The sale state machine, step by step.

use super::*;
use crate::SequentialIds;
use crate::basket::ShopItem;
use crate::money::{Currency, Litres};
use crate::op::Op;
use crate::order::{OrderStatus, PumpOrder};
use crate::payment::{CardSlip, PaymentKind, ReportedMethod};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 12:00 UTC);

fn try_(minor: i64) -> Money {
    Money::new(minor, Currency::TRY)
}

fn order() -> PumpOrder {
    PumpOrder {
        order_id: "ORD-1".into(),
        plate_number: "34 ABC 123".into(),
        pump_no: 3,
        nozzle_no: 1,
        product_code: "DSL".into(),
        product_name: "Motorin".into(),
        litres: Litres::parse("30.000").unwrap(),
        unit_price: try_(4500),
        amount: try_(135_000),
        vat_rate_bp: 2000,
        status: OrderStatus::Open,
        created_at: NOW,
        lock: None,
        receipt: None,
    }
}

fn slip() -> CardSlip {
    CardSlip {
        masked_pan: "************0059".into(),
        brand: "VISA".into(),
        entry_mode: "CHIP_ENTRY".into(),
        approval_code: "004839".into(),
        terminal_ref: "DV1".into(),
        transaction_ref: "TR1".into(),
        paid_at: "2026-11-21T12:00:05Z".into(),
    }
}

fn pump_sale() -> (Sale, SequentialIds) {
    (Sale::new(SaleId("S1".into()), Basket::for_order(&order()), NOW), SequentialIds::new("k"))
}

fn kinds(t: &Transition) -> Vec<(&str, &str)> {
    t.ops.iter().map(|q| (q.key.as_str(), q.op.kind().as_str())).collect()
}

#[test]
fn card_sale_of_a_pump_order_runs_lock_pay_report_receipt() {
    let (mut s, mut ids) = pump_sale();
    let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Locking);
    assert_eq!(kinds(&t), [("k1", "tokenx_lock")]);
    assert_eq!(t.journal.kind, "pay_requested");

    let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Paying);
    assert_eq!(kinds(&t), [("k2", "card_sale")]);
    assert_eq!(t.ops[0].op, Op::CardSale { amount: try_(135_000) });

    let payment = Payment { amount: try_(135_000), kind: PaymentKind::Card { slip: slip() } };
    let t = s.handle(SaleEvent::PaymentApproved { payment }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Paid);
    assert_eq!(kinds(&t), [("k3", "tokenx_payment"), ("k4", "print_slip")]);
    match &t.ops[0].op {
        Op::TokenxPayment { lock_id, payments, .. } => {
            assert_eq!(lock_id, "L1");
            assert_eq!(payments[0].slip.as_ref().unwrap().approval_code, "004839");
            assert_eq!(payments[0].amount, try_(135_000));
        }
        other => panic!("unexpected {other:?}"),
    }

    assert_eq!(s.paid_at, Some(NOW));

    // The report and the receipt come later; the sale stays paid at the time it was paid (the
    // time its slip shows, on paper and on screen alike).
    let later = NOW + time::Duration::seconds(75);
    s.handle(SaleEvent::ReportAcknowledged, later, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Reported);
    let receipt = ReceiptInfo { fiscal_no: "F1".into(), z_no: "Z1".into(), eku_no: "E1".into(), issued_at: later };
    s.handle(SaleEvent::ReceiptIssued { receipt }, later, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Completed);
    assert_eq!((s.paid_at, s.updated_at), (Some(NOW), later));
}

#[test]
fn declined_card_unlocks_and_reopens_with_a_notice() {
    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    let t = s
        .handle(
            SaleEvent::PaymentDeclined { code: "DECLINED".into(), message: "Insufficient funds.".into() },
            NOW,
            &mut ids,
        )
        .unwrap();
    assert_eq!(s.state, SaleState::Open);
    assert_eq!(t.ops[0].op, Op::TokenxUnlock { order_id: "ORD-1".into(), lock_id: "L1".into() });
    assert_eq!(s.lock, None);
    let notice = s.notice.clone().unwrap();
    assert_eq!(notice.code, "DECLINED");
    assert!(notice.message.contains("No money was taken"), "{}", notice.message);
    // A second attempt gets fresh keys.
    let t = s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    assert_eq!(kinds(&t), [("k4", "tokenx_lock")]);
    assert_eq!(s.attempts, 2);
}

#[test]
fn lock_conflict_allows_no_payment() {
    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    let t = s
        .handle(SaleEvent::LockRefused { code: "ORDER_LOCKED".into(), message: "locked".into() }, NOW, &mut ids)
        .unwrap();
    assert!(t.ops.is_empty());
    assert_eq!(s.state, SaleState::Open);
    assert!(s.notice.as_ref().unwrap().message.contains("another register"));
    let err = s.handle(
        SaleEvent::PaymentApproved { payment: Payment { amount: try_(1), kind: PaymentKind::Card { slip: slip() } } },
        NOW,
        &mut ids,
    );
    assert!(matches!(err, Err(SaleError::InvalidState { .. })));
    assert!(s.payments.is_empty());
}

#[test]
fn unreachable_cloud_releases_a_lock_that_may_exist() {
    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    let t = s
        .handle(SaleEvent::LockUnavailable { message: "timed out".into(), maybe_locked: true }, NOW, &mut ids)
        .unwrap();
    assert_eq!(t.ops[0].op, Op::TokenxRelease { order_id: "ORD-1".into() });
    assert_eq!(s.notice.as_ref().unwrap().code, "OFFLINE");

    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    let t =
        s.handle(SaleEvent::LockUnavailable { message: "refused".into(), maybe_locked: false }, NOW, &mut ids).unwrap();
    assert!(t.ops.is_empty());
}

#[test]
fn late_lock_grant_is_given_back() {
    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::LockUnavailable { message: "x".into(), maybe_locked: false }, NOW, &mut ids).unwrap();
    let t = s.handle(SaleEvent::LockGranted { lock_id: "L9".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    assert_eq!(t.ops[0].op, Op::TokenxUnlock { order_id: "ORD-1".into(), lock_id: "L9".into() });
    assert_eq!(s.state, SaleState::Open);
}

#[test]
fn cash_for_a_pump_order_pays_on_lock_and_gives_change() {
    let (mut s, mut ids) = pump_sale();
    let method = PayMethod::Cash { tendered: try_(140_000) };
    s.handle(SaleEvent::PayRequested { method, amount: None }, NOW, &mut ids).unwrap();
    let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Paid);
    assert_eq!(kinds(&t), [("k2", "tokenx_payment"), ("k3", "print_slip")]);
    assert_eq!(s.payments[0].kind, PaymentKind::Cash { tendered: try_(140_000), change: try_(5_000) });
}

#[test]
fn cash_short_of_the_total_is_refused_without_change() {
    let (mut s, mut ids) = pump_sale();
    let before = s.clone();
    let err = s.handle(
        SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(100) }, amount: None },
        NOW,
        &mut ids,
    );
    assert!(matches!(err, Err(SaleError::InsufficientCash { .. })));
    assert_eq!(s, before);
}

#[test]
fn shop_only_sale_completes_without_the_cloud() {
    let mut basket = Basket::new(Currency::TRY);
    basket
        .add_item(ShopItem { sku: "1".into(), name: "Su".into(), unit_price: try_(1000), vat_rate_bp: 1000 }, 2)
        .unwrap();
    let mut s = Sale::new(SaleId("S2".into()), basket, NOW);
    let mut ids = SequentialIds::new("k");
    let t = s
        .handle(
            SaleEvent::PayRequested { method: PayMethod::Cash { tendered: try_(2000) }, amount: None },
            NOW,
            &mut ids,
        )
        .unwrap();
    assert_eq!(s.state, SaleState::Completed);
    assert_eq!(kinds(&t), [("k1", "print_slip")]);

    let mut empty = Sale::new(SaleId("S3".into()), Basket::new(Currency::TRY), NOW);
    assert_eq!(
        empty.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids),
        Err(SaleError::EmptyBasket)
    );
}

#[test]
fn cancel_only_when_open() {
    let (mut s, mut ids) = pump_sale();
    s.handle(SaleEvent::PayRequested { method: PayMethod::Card, amount: None }, NOW, &mut ids).unwrap();
    assert!(s.handle(SaleEvent::CancelRequested, NOW, &mut ids).is_err());
    s.handle(SaleEvent::LockRefused { code: "ORDER_LOCKED".into(), message: String::new() }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Cancelled);
}

fn card(amount: i64, tr: &str) -> Payment {
    let mut s = slip();
    s.transaction_ref = tr.into();
    Payment { amount: try_(amount), kind: PaymentKind::Card { slip: s } }
}

fn pay(s: &mut Sale, ids: &mut SequentialIds, method: PayMethod, amount: Option<i64>) -> Result<Transition, SaleError> {
    s.handle(SaleEvent::PayRequested { method, amount: amount.map(try_) }, NOW, ids)
}

#[test]
fn split_card_then_cash_reports_both_parts_once_fully_paid() {
    let (mut s, mut ids) = pump_sale();
    // 1,350.00 in all: 1,000.00 by card first.
    pay(&mut s, &mut ids, PayMethod::Card, Some(100_000)).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    let t = s.handle(SaleEvent::PaymentApproved { payment: card(100_000, "TR1") }, NOW, &mut ids).unwrap();
    assert!(t.ops.is_empty(), "nothing is reported before the whole total is paid");
    assert_eq!(s.state, SaleState::Tendering);
    assert_eq!(s.remaining().unwrap(), try_(35_000));
    assert_eq!(s.notice.as_ref().unwrap().code, "PART_PAID");
    // The rest in cash, without locking again.
    let t = pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(40_000) }, None).unwrap();
    assert_eq!(s.state, SaleState::Paid);
    assert_eq!(kinds(&t).iter().map(|(_, k)| *k).collect::<Vec<_>>(), ["tokenx_payment", "print_slip"]);
    match &t.ops[0].op {
        Op::TokenxPayment { payments, .. } => {
            let parts: Vec<(ReportedMethod, i64)> = payments.iter().map(|p| (p.method, p.amount.minor)).collect();
            assert_eq!(parts, [(ReportedMethod::Card, 100_000), (ReportedMethod::Cash, 35_000)]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.payments[1].kind, PaymentKind::Cash { tendered: try_(40_000), change: try_(5_000) });
}

#[test]
fn a_failed_second_part_keeps_the_first_and_the_lock() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR1") }, NOW, &mut ids).unwrap();
    pay(&mut s, &mut ids, PayMethod::MobilePay, None).unwrap();
    let t = s
        .handle(
            SaleEvent::PaymentDeclined { code: "CancelledByUser".into(), message: "The customer cancelled.".into() },
            NOW,
            &mut ids,
        )
        .unwrap();
    assert!(t.ops.is_empty(), "no unlock while a part is paid");
    assert_eq!(s.state, SaleState::Tendering);
    assert!(s.lock.is_some());
    let n = s.notice.clone().unwrap();
    assert!(n.message.contains("Still to pay: 850,00 TRY"), "{}", n.message);
    // Parts must be positive and within what is left.
    assert!(matches!(pay(&mut s, &mut ids, PayMethod::Card, Some(90_000)), Err(SaleError::BadPart { .. })));
    assert!(matches!(pay(&mut s, &mut ids, PayMethod::Card, Some(0)), Err(SaleError::BadPart { .. })));
}

#[test]
fn app_payments_get_a_reference_before_their_first_attempt() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Settle, None).unwrap();
    let t = s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    let reference = s.attempt.as_ref().unwrap().reference.clone().unwrap();
    assert_eq!(t.ops[0].op, Op::SettleScanWait { amount: try_(135_000), pos_tid: reference.clone() });
    assert_eq!(t.ops[0].op.lane(), format!("settle:{reference}"));
    let t = s.handle(SaleEvent::SettleScanned { token: "token:1".into() }, NOW, &mut ids).unwrap();
    assert_eq!(
        t.ops[0].op,
        Op::SettleRequest { amount: try_(135_000), pos_tid: reference.clone(), token: "token:1".into() }
    );
    let t = s.handle(SaleEvent::SettleRequested { tid: "p2ybyw4tq73n".into() }, NOW, &mut ids).unwrap();
    assert_eq!(
        t.ops[0].op,
        Op::SettleAwait { amount: try_(135_000), tid: "p2ybyw4tq73n".into(), pos_tid: Some(reference.clone()) }
    );
    assert_eq!(s.attempt.as_ref().unwrap().provider_ref.as_deref(), Some("p2ybyw4tq73n"));
    let t = s
        .handle(
            SaleEvent::PaymentDeclined { code: "5006".into(), message: "Rejected in the app.".into() },
            NOW,
            &mut ids,
        )
        .unwrap();
    assert_eq!(t.ops[0].op.kind(), crate::OpKind::TokenxUnlock, "nothing paid: the order is released");
    assert_eq!(s.state, SaleState::Open);

    pay(&mut s, &mut ids, PayMethod::MobilePay, None).unwrap();
    let t = s.handle(SaleEvent::LockGranted { lock_id: "L2".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    match &t.ops[0].op {
        Op::MobilePayPayment { order_id, start, .. } => {
            assert!(*start);
            assert_eq!(Some(order_id), s.attempt.as_ref().unwrap().reference.as_ref());
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn paid_by_card() -> (Sale, SequentialIds) {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::PaymentApproved { payment: card(135_000, "TR9") }, NOW, &mut ids).unwrap();
    (s, ids)
}

#[test]
fn refunds_never_exceed_the_payment() {
    let (mut s, mut ids) = paid_by_card();
    let refund = |amount| SaleEvent::RefundRequested { payment: 0, amount: try_(amount), reason: "wrong pump".into() };
    let t = s.handle(refund(35_000), NOW, &mut ids).unwrap();
    match &t.ops[0].op {
        Op::CardRefund { transfer_id, amount, .. } => {
            assert_eq!((transfer_id.as_str(), amount.minor), ("TR9", 35_000))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.refundable(0).unwrap(), try_(100_000));
    // A full refund on top is past the original amount.
    assert_eq!(
        s.handle(refund(135_000), NOW, &mut ids),
        Err(SaleError::RefundTooLarge { amount: try_(135_000), available: try_(100_000) })
    );
    let id = s.refunds[0].id.clone();
    let t = s.handle(SaleEvent::RefundCompleted { refund_id: id }, NOW, &mut ids).unwrap();
    assert!(matches!(t.ops[0].op, Op::PrintSlip { refund: Some(_), .. }), "a refund slip is printed");
    s.handle(refund(100_000), NOW, &mut ids).unwrap();
    assert_eq!(s.refundable(0).unwrap(), try_(0));
    assert!(s.handle(refund(1), NOW, &mut ids).is_err());
    // A failed refund frees its amount again.
    let id = s.refunds[1].id.clone();
    s.handle(SaleEvent::RefundFailed { refund_id: id, message: "closed".into() }, NOW, &mut ids).unwrap();
    assert_eq!(s.refundable(0).unwrap(), try_(100_000));
}

#[test]
fn cancelling_a_partly_paid_sale_gives_the_parts_back_then_releases_the_order() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(20_000) }, Some(20_000)).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
    s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR5") }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Tendering);
    let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Voiding);
    let kinds: Vec<&str> = t.ops.iter().map(|q| q.op.kind().as_str()).collect();
    assert_eq!(kinds, ["print_slip", "refund"], "cash back at once, the card refunded");
    let card_refund = s.refunds.iter().find(|r| r.state == RefundState::Pending).unwrap().id.clone();
    let t = s.handle(SaleEvent::RefundCompleted { refund_id: card_refund }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Cancelled);
    assert!(t.ops.iter().any(|q| q.op.kind() == crate::OpKind::TokenxUnlock));
    assert_eq!(s.notice.unwrap().code, "VOIDED");
}

#[test]
fn a_charge_that_is_not_what_was_asked_is_held_and_given_back_by_a_void() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    // The terminal reports dollars for a lira sale.
    let charged = Payment { amount: Money::new(135_000, Currency::USD), kind: card(0, "TR7").kind };
    let t = s.handle(SaleEvent::PaymentMismatch { payment: charged.clone() }, NOW, &mut ids).unwrap();
    assert!(t.ops.is_empty(), "nothing is reported or printed for money that is not right");
    assert_eq!(s.state, SaleState::NeedsAttention);
    assert!(!s.state.is_paid() && !s.state.is_busy());
    assert_eq!(s.payments, []);
    assert_eq!(s.unexpected, [charged]);
    let n = s.notice.clone().unwrap();
    assert_eq!((n.level, n.code.as_str()), (NoticeLevel::Error, "CURRENCY_MISMATCH"));
    assert!(n.message.contains("1.350,00 USD") && n.message.contains("1.350,00 TRY"), "{}", n.message);
    assert!(s.lock.is_some(), "the order stays locked while the money is sorted out");
    assert!(pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(135_000) }, None).is_err());

    // The manager voids it: the charge goes back in its own currency, then the order is free.
    let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Voiding);
    match &t.ops[..] {
        [q] => assert_eq!(
            q.op,
            Op::CardRefund {
                refund_id: s.refunds[0].id.clone(),
                transfer_id: "TR7".into(),
                amount: Money::new(135_000, Currency::USD)
            }
        ),
        other => panic!("one reversal expected, got {other:?}"),
    }
    assert!(s.refunds[0].unexpected);
    let id = s.refunds[0].id.clone();
    let t = s.handle(SaleEvent::RefundCompleted { refund_id: id }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Cancelled);
    assert!(t.ops.iter().any(|q| q.op.kind() == crate::OpKind::TokenxUnlock));
    assert_eq!(s.refunded_payment(&s.refunds[0]).unwrap().amount.currency, Currency::USD);
}

#[test]
fn a_short_approval_after_a_paid_part_is_held_with_both() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(35_000) }, Some(35_000)).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
    let short = card(90_000, "TR8");
    s.handle(SaleEvent::PaymentMismatch { payment: short }, NOW, &mut ids).unwrap();
    assert_eq!(s.notice.as_ref().unwrap().code, "AMOUNT_MISMATCH");
    let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    let kinds: Vec<&str> = t.ops.iter().map(|q| q.op.kind().as_str()).collect();
    assert_eq!(kinds, ["print_slip", "refund"], "the cash back at once, the short card charge reversed");
    let amounts: Vec<(bool, i64)> = s.refunds.iter().map(|r| (r.unexpected, r.amount.minor)).collect();
    assert_eq!(amounts, [(false, 35_000), (true, 90_000)]);
}

#[test]
fn an_unresolved_payment_holds_the_sale_until_its_outcome_is_known() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Card, None).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    let reason = "Finix answered 401 to the repeated request".to_string();
    s.handle(SaleEvent::PaymentUnresolved { reason }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::NeedsAttention);
    assert!(s.attempt.is_some(), "the attempt is kept: its outcome is still to come");
    assert_eq!(s.notice.as_ref().unwrap().code, "UNRESOLVED");
    assert!(s.notice.as_ref().unwrap().message.contains("Do not take payment again"));
    // Neither another payment nor a void while the money is unknown.
    assert!(pay(&mut s, &mut ids, PayMethod::Cash { tendered: try_(135_000) }, None).is_err());
    assert!(matches!(s.handle(SaleEvent::CancelRequested, NOW, &mut ids), Err(SaleError::InvalidState { .. })));
    // The manager retries it; the definite answer arrives and the sale goes on as usual.
    let t = s.handle(SaleEvent::PaymentApproved { payment: card(135_000, "TR3") }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Paid);
    assert_eq!(kinds(&t).iter().map(|(_, k)| *k).collect::<Vec<_>>(), ["tokenx_payment", "print_slip"]);
}

#[test]
fn a_refund_that_fails_during_a_void_holds_the_sale() {
    let (mut s, mut ids) = pump_sale();
    pay(&mut s, &mut ids, PayMethod::Card, Some(50_000)).unwrap();
    s.handle(SaleEvent::LockGranted { lock_id: "L1".into(), expires_at: NOW }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::PaymentApproved { payment: card(50_000, "TR5") }, NOW, &mut ids).unwrap();
    s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    let id = s.refunds[0].id.clone();
    s.handle(SaleEvent::RefundFailed { refund_id: id, message: "closed".into() }, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::NeedsAttention, "not left voiding for ever");
    // Voiding again asks for the refund again.
    let t = s.handle(SaleEvent::CancelRequested, NOW, &mut ids).unwrap();
    assert_eq!(s.state, SaleState::Voiding);
    assert_eq!(t.ops.iter().filter(|q| q.op.kind() == crate::OpKind::Refund).count(), 1);
}
