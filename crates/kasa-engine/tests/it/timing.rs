//! The money rules under a store's timing: taps that take seconds, lookups that lag, restarts
//! in the middle, and providers whose answers can't be taken as they come.
//!
//! A restart here is `Engine::shutdown` (in-flight deliveries are cut, unrecorded, as a crash
//! cuts them) followed by a new register on the same data directory, which runs start-up
//! recovery; the kill harness in kasa-cli does the same with SIGKILL at random moments.

use crate::manager;
use std::time::Duration;

use kasa_core::{Currency, Money, PayMethod, PaymentKind, SaleState};
use kasa_sim::{CardScript, CustomerScript, NewOrder, Sandbox, SandboxConfig, SettleCustomer};

use super::{invariants, register, settle, wait_for_orders};

const WAIT: Duration = Duration::from_secs(15);
const DEVICE: &str = "DVdemoKasaTerminal1";

async fn sandbox(tune: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut c = SandboxConfig::default();
    c.tokenx.completion_delay = Duration::from_millis(50);
    tune(&mut c);
    Sandbox::start(c).await.unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn finix_calls(sb: &Sandbox, method: &str, path: &str) -> Vec<kasa_sim::Recorded> {
    sb.recorder.of("finix").into_iter().filter(|r| r.method == method && r.path == path).collect()
}

#[tokio::test]
async fn a_restart_during_a_slow_tap_that_lookups_cannot_see_never_reopens_a_charged_sale() {
    // The transfer stays invisible to lookups until the card is read: the old recovery looked it
    // up, found nothing, reopened the sale, and the tap then charged the customer.
    let sb = sandbox(|c| {
        c.finix.default_card = CardScript::WaitForCardholder;
        c.finix.hidden_until_final = true;
        // Lookups lag far behind: the old recovery found nothing and reopened the sale.
        c.finix.lookup_lag = Duration::from_secs(60);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    until("the customer is at the terminal", || sb.finix.is_waiting(DEVICE)).await;
    let lookup = sb.finix.transfers();
    assert_eq!(lookup.len(), 1, "the transfer exists at Finix");
    engine.shutdown().await;
    drop(engine);
    // The card is read while the register is down: the customer is charged.
    assert!(sb.finix.present_card(DEVICE, CardScript::approve(Duration::ZERO)));
    until("the charge is made", || sb.finix.succeeded_transfers().len() == 1).await;

    let engine = register(&sb, dir.path(), |_| {}).await;
    let recovery = engine.status().recovery;
    assert!(recovery.iter().any(|l| l.contains("Do not charge the customer again")), "{recovery:?}");
    let after = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(after.state.is_paid(), "the charge is found, not guessed away: {after:?}");
    engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    // Resolved by the same request with the same idempotency id, after a cancel found nothing
    // left on the terminal.
    let posts = finix_calls(&sb, "POST", "/transfers");
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].json()["idempotency_id"], posts[1].json()["idempotency_id"]);
    assert_eq!(posts[0].body, posts[1].body, "the same request, byte for byte");
    let cancels = finix_calls(&sb, "PUT", &format!("/devices/{DEVICE}"));
    assert_eq!((cancels.len(), cancels[0].status), (1, Some(422)), "nothing was left on the terminal");
    assert_eq!(sb.tokenx.accepted_reports(&order.order_id), 1);
    settle(&engine, WAIT).await;
    invariants::check(engine.store(), &sb, "VT-0001", DEVICE, "slow tap, restart after the tap");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_restart_while_the_customer_is_still_tapping_cancels_the_prompt_and_takes_nothing() {
    let sb = sandbox(|c| {
        // The cardholder is still at the terminal whatever the register does meanwhile.
        c.finix.default_card = CardScript::WaitForCardholder;
        c.finix.hidden_until_final = true;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[1].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    until("the customer is at the terminal", || sb.finix.is_waiting(DEVICE)).await;
    engine.shutdown().await;
    drop(engine);

    // Back at once, mid-tap: the prompt is cancelled, and only that final answer reopens the sale.
    let engine = register(&sb, dir.path(), |_| {}).await;
    let after = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open, "{after:?}");
    assert_eq!(after.notice.unwrap().code, "CANCELLATION_VIA_API");
    settle(&engine, WAIT).await;
    assert!(!sb.finix.present_card(DEVICE, CardScript::approve(Duration::ZERO)), "no prompt is left to tap");
    assert!(sb.finix.succeeded_transfers().is_empty(), "no money was taken");
    assert_eq!(sb.tokenx.status_of(&order.order_id), Some("Open"), "the order is free again");
    let cancels = finix_calls(&sb, "PUT", &format!("/devices/{DEVICE}"));
    assert_eq!(cancels[0].status, Some(200));

    // The cashier takes payment again: one charge in all.
    sb.finix.set_default_card(CardScript::approve(Duration::from_millis(50)));
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    assert!(engine.wait_settled(&sale.id, WAIT).await.unwrap().state.is_paid());
    settle(&engine, WAIT).await;
    let checked = invariants::check(engine.store(), &sb, "VT-0001", DEVICE, "restart mid-tap");
    assert_eq!(checked.charges, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_charge_in_another_currency_is_held_for_a_manager_and_given_back_by_a_void() {
    let sb = sandbox(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    sb.finix.push_card(CardScript::ApproveOther { after: Duration::ZERO, amount: None, currency: Some("USD".into()) });
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let held = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(held.state, SaleState::NeedsAttention, "{held:?}");
    let notice = held.notice.clone().unwrap();
    assert_eq!(notice.code, "CURRENCY_MISMATCH");
    assert!(notice.message.contains("USD") && notice.message.contains("a manager"), "{}", notice.message);
    // The money facts are kept, and nothing treats the sale as paid.
    let stored = engine.sale(&sale.id).await.unwrap();
    assert_eq!(stored.unexpected.len(), 1);
    assert_eq!(stored.unexpected[0].amount, Money::new(order.amount.minor, Currency::USD));
    assert!(stored.payments.is_empty());
    let journal = engine.store().journal_for_sale(&sale.id).unwrap();
    assert!(journal.iter().any(|e| e.kind == "payment_mismatch" && e.data.contains("USD")));
    assert_eq!(sb.tokenx.accepted_reports(&order.order_id), 0, "nothing is reported");
    assert!(sb.printer.jobs().is_empty(), "no slip for money that is not right");
    until("the status bar shows a sale that needs a manager", || engine.status().sales_attention == 1).await;
    assert_eq!(sb.tokenx.locked_by("VT-0001"), vec![order.order_id.clone()], "the order stays locked meanwhile");
    let refused = engine.cancel_sale(&sale.id).await.unwrap_err();
    assert_eq!(refused.code, kasa_engine::ErrorCode::InvalidState);

    // The manager voids it: the charge is given back in its own currency, the order released.
    let session = manager(&engine).await;
    engine.void_sale(&sale.id, &session).await.unwrap();
    let done = engine.wait_for_state(&sale.id, SaleState::Cancelled, WAIT).await.unwrap();
    assert_eq!(done.state, SaleState::Cancelled);
    let reversals = sb.finix.reversals();
    assert_eq!(reversals.len(), 1);
    assert_eq!(
        (reversals[0]["amount"].as_i64(), reversals[0]["currency"].as_str()),
        (Some(order.amount.minor), Some("USD"))
    );
    settle(&engine, WAIT).await;
    assert_eq!(sb.tokenx.status_of(&order.order_id), Some("Open"));
    until("the held count goes back to zero", || engine.status().sales_attention == 0).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_short_approval_is_held_too_and_a_missing_updated_at_does_not_fail_a_paid_transfer() {
    let sb = sandbox(|c| c.finix.omit_updated_at = true).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let orders = wait_for_orders(&engine, 4).await;

    // Approved for less than was asked.
    sb.finix.push_card(CardScript::ApproveOther { after: Duration::ZERO, amount: Some(100), currency: None });
    let short = engine.open_order_sale(&orders[0].order_id).await.unwrap();
    engine.pay(&short.id, PayMethod::Card).await.unwrap();
    let held = engine.wait_settled(&short.id, WAIT).await.unwrap();
    assert_eq!((held.state, held.notice.unwrap().code.as_str()), (SaleState::NeedsAttention, "AMOUNT_MISMATCH"));

    // A transfer with no updated_at (and fields Kasa does not know) still pays.
    let sale = engine.open_order_sale(&orders[1].order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let paid = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    let transfer = sb.finix.succeeded_transfers().into_iter().find(|t| t["amount"] == orders[1].amount.minor).unwrap();
    match &paid.payments[0].kind {
        PaymentKind::Card { slip } => {
            assert_eq!(slip.transaction_ref, transfer["id"].as_str().unwrap());
            assert_eq!(slip.paid_at, transfer["created_at"].as_str().unwrap(), "the creation time stands in");
        }
        other => panic!("{other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn an_order_whose_amount_is_not_litres_times_price_is_refused_with_the_reason() {
    let sb = sandbox(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    wait_for_orders(&engine, 4).await;
    let new = |litres_milli| NewOrder {
        plate_number: "34 KSA 42".into(),
        pump_no: 2,
        nozzle_no: 1,
        product_code: "K95".into(),
        product_name: "Kurşunsuz 95".into(),
        litres_milli,
        unit_price: 4_567,
        vat_rate: 20,
    };
    for (order, why) in [
        (sb.tokenx.add_order_charging(new(41_235), 188_420), "does not match 41.235 L × 45,67 TRY = 1.883,20 TRY"),
        (sb.tokenx.add_order_charging(new(10_000), 0), "is not above zero"),
        (sb.tokenx.add_order_charging(new(10_000), -45_670), "is not above zero"),
    ] {
        let refused = engine.open_order_sale(&order).await.unwrap_err();
        assert_eq!(refused.code, kasa_engine::ErrorCode::Refused);
        assert!(refused.message.contains(why) && refused.message.contains("Ask the attendant"), "{}", refused.message);
    }
    // Within a kuruş of litres × price is a pump's rounding: sold.
    let fine = sb.tokenx.add_order_charging(new(41_235), 188_321);
    engine.open_order_sale(&fine).await.unwrap();
    assert!(engine.store().recent_sales(10).unwrap().len() == 1, "only the good order became a sale");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_parked_slip_or_card_lookup_holds_back_no_other_sale() {
    use kasa_core::op::{Op, Queued};
    let sb = sandbox(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), super::fast_retries).await;
    let orders = wait_for_orders(&engine, 4).await;
    let first = engine.open_order_sale(&orders[0].order_id).await.unwrap();
    engine.pay(&first.id, PayMethod::Card).await.unwrap();
    assert!(engine.wait_settled(&first.id, WAIT).await.unwrap().state.is_paid());
    settle(&engine, WAIT).await;
    let key = engine
        .store()
        .outbox_of_sale(&first.id)
        .unwrap()
        .into_iter()
        .find(|r| r.op.kind() == kasa_core::OpKind::CardSale)
        .unwrap()
        .key;

    // A lookup whose key Finix holds for another request, and a slip of a refund that does not
    // exist: both are parked for the manager.
    let at = time::OffsetDateTime::now_utc();
    let wrong = Queued {
        key: "stuck-lookup".into(),
        op: Op::CardLookup { amount: Money::new(1, Currency::TRY), idempotency_id: key, original_at: None },
    };
    let slip =
        Queued { key: "stuck-slip".into(), op: Op::PrintSlip { copy: false, refund: Some("no-such-refund".into()) } };
    engine
        .store()
        .write(|tx| -> Result<(), kasa_store::StoreError> {
            tx.enqueue(Some(&first.id), &wrong, at)?;
            tx.enqueue(Some(&first.id), &slip, at)?;
            Ok(())
        })
        .unwrap();
    engine.retry_printer().await.unwrap();
    until("both are parked", || engine.store().queue_counts().unwrap().parked == 2).await;
    let parked = engine.store().outbox_open(10).unwrap();
    assert!(
        parked
            .iter()
            .any(|r| r.key == "stuck-lookup" && r.last_error.as_deref().unwrap_or("").contains("different request")),
        "{parked:?}"
    );

    // The next sale takes its card payment and prints its slip all the same.
    let jobs_before = sb.printer.jobs().len();
    let next = engine.open_order_sale(&orders[1].order_id).await.unwrap();
    engine.pay(&next.id, PayMethod::Card).await.unwrap();
    assert!(engine.wait_settled(&next.id, WAIT).await.unwrap().state.is_paid());
    sb.printer.wait_for_jobs(jobs_before + 1, WAIT).await;
    assert_eq!(engine.store().queue_counts().unwrap().parked, 2, "the parked ones wait for the manager");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_mobilepay_payment_the_lookups_cannot_see_yet_is_found_after_a_restart() {
    let sb = sandbox(|c| {
        c.mobilepay.customer = CustomerScript::Manual;
        c.mobilepay.lookup_lag = Duration::from_secs(30);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::MobilePay).await.unwrap();
    until("the payment is started", || sb.mobilepay.active_payment("KASA-LANE-1").is_some()).await;
    let payment_id = sb.mobilepay.active_payment("KASA-LANE-1").unwrap();
    engine.shutdown().await;
    drop(engine);

    let engine = register(&sb, dir.path(), |_| {}).await;
    sb.mobilepay.check_in("KASA-LANE-1").unwrap();
    sb.mobilepay.approve(&payment_id).unwrap();
    let paid = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(paid.payments[0].kind, PaymentKind::MobilePay { payment_id: payment_id.clone() });
    assert_eq!(sb.mobilepay.payments().len(), 1, "started once: the restart found it by its orderId");
    assert_eq!(sb.mobilepay.captured_payments().len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_settle_outcome_that_lags_is_not_read_as_no_payment_and_a_refused_capture_backs_off() {
    let sb = sandbox(|c| {
        c.settle.customer = SettleCustomer::ApproveAfter(Duration::from_millis(200));
        c.settle.lookup_lag = Duration::from_millis(1500);
    })
    .await;
    // Captures are refused (409) for a while, as while Settle's state catches up.
    let refusing = kasa_sim::Faults { error_rate: 1.0, error_status: Some(409), ..Default::default() };
    sb.settle_http.control.set_endpoint_faults("PUT", "/merchant/v1/payment_request/", refusing);
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    until("the Settle callback is registered", || sb.settle.callback_uri().is_some()).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    let paying = engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let pos_tid = paying.attempt.unwrap().reference.unwrap();
    sb.settle.scan(&pos_tid).await.unwrap();
    until("the payment request is made", || sb.settle.tid_of(&pos_tid).is_some()).await;
    // Outcomes answer NOT_FOUND for the first 1.5 s; then the capture is refused until 3 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(engine.sale(&sale.id).await.unwrap().state, SaleState::Paying, "still waiting, not declined");
    sb.settle_http.control.clear_faults();
    let paid = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    let captures = sb
        .recorder
        .of("settle")
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/merchant/v1/payment_request/"))
        .count();
    assert!((2..=8).contains(&captures), "the refused capture backs off instead of spinning ({captures} tries)");
    assert_eq!(sb.settle.captured().len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_refusal_after_an_answer_that_was_lost_is_settled_by_the_transfer_itself() {
    let sb = sandbox(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[2].clone();
    // The first card sale is applied (the card approved) but its answer is lost; the retry is
    // refused with a 401, as after a password change. The old code read that as "declined".
    let lost = kasa_sim::Faults { lost_response_rate: 1.0, ..Default::default() };
    sb.finix_http.control.set_endpoint_faults("POST", "/transfers", lost);
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    until("the first answer is lost", || {
        sb.recorder.of("finix").iter().any(|r| r.method == "POST" && r.fate == kasa_sim::Fate::ResponseLost)
    })
    .await;
    let refused = kasa_sim::Faults { error_rate: 1.0, error_status: Some(401), ..Default::default() };
    sb.finix_http.control.set_endpoint_faults("POST", "/transfers", refused);
    let paid = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "the charge is found by its idempotency id, not written off: {paid:?}");
    sb.finix_http.control.clear_faults();
    settle(&engine, WAIT).await;
    let checked = invariants::check(engine.store(), &sb, "VT-0001", DEVICE, "lost answer, then 401");
    assert_eq!(checked.charges, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_transfer_of_another_request_holds_the_sale_and_a_managers_discard_releases_it() {
    let sb = sandbox(|c| c.finix.answer_other_idempotency_id = true).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let held = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(held.state, SaleState::NeedsAttention, "{held:?}");
    let notice = held.notice.unwrap();
    assert_eq!(notice.code, "UNRESOLVED");
    assert!(notice.message.contains("another request") && notice.message.contains("Do not take payment again"));
    assert!(held.payments.is_empty(), "another request's transfer is not taken as this sale's");
    until("the held sale is counted", || engine.status().sales_attention == 1).await;
    // Nobody can take payment again or void it while its money is unknown.
    assert!(engine.pay(&sale.id, PayMethod::Card).await.is_err());
    let session = manager(&engine).await;
    assert_eq!(engine.void_sale(&sale.id, &session).await.unwrap_err().code, kasa_engine::ErrorCode::InvalidState);

    // It survives a restart as it is: held, the order still locked, nothing guessed.
    engine.shutdown().await;
    drop(engine);
    let engine = register(&sb, dir.path(), |_| {}).await;
    assert_eq!(engine.sale(&sale.id).await.unwrap().state, SaleState::NeedsAttention);
    assert_eq!(sb.tokenx.locked_by("VT-0001"), vec![order.order_id.clone()]);

    // The manager checks Finix and discards the parked payment: the sale goes on without it.
    let session = manager(&engine).await;
    let parked = engine.queue(&session, 100).await.unwrap().into_iter().find(|i| i.state == "parked").unwrap();
    assert_eq!(parked.kind, "card_sale");
    engine.discard(parked.id, &session, "refunded by the card service's desk").await.unwrap();
    let after = engine.sale_view(&sale.id).await.unwrap();
    assert_eq!((after.state, after.notice.unwrap().code.as_str()), (SaleState::Open, "DISCARDED"));
    settle(&engine, WAIT).await;
    assert_eq!(sb.tokenx.status_of(&order.order_id), Some("Open"), "the order is released");
    engine.shutdown().await;
}

#[tokio::test]
async fn app_payments_that_take_another_amount_or_answer_for_another_request_are_held() {
    let sb = sandbox(|c| {
        c.mobilepay.capture_short_by = 500;
        c.settle.customer = SettleCustomer::ApproveAfter(Duration::ZERO);
        c.settle.authorise_short_by = 100;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    until("the Settle callback is registered", || sb.settle.callback_uri().is_some()).await;
    let orders = wait_for_orders(&engine, 4).await;

    // MobilePay captures 5.00 less than asked.
    let mp = engine.open_order_sale(&orders[0].order_id).await.unwrap();
    engine.pay(&mp.id, PayMethod::MobilePay).await.unwrap();
    let held = engine.wait_settled(&mp.id, WAIT).await.unwrap();
    assert_eq!((held.state, held.notice.unwrap().code.as_str()), (SaleState::NeedsAttention, "AMOUNT_MISMATCH"));
    let stored = engine.sale(&mp.id).await.unwrap();
    assert_eq!(stored.unexpected[0].amount.minor, orders[0].amount.minor - 500);

    // Settle authorises 1.00 less than asked.
    let st = engine.open_order_sale(&orders[1].order_id).await.unwrap();
    engine.pay(&st.id, PayMethod::Settle).await.unwrap();
    let paying = engine.wait_for_state(&st.id, SaleState::Paying, WAIT).await.unwrap();
    sb.settle.scan(&paying.attempt.unwrap().reference.unwrap()).await.unwrap();
    let held = engine.wait_settled(&st.id, WAIT).await.unwrap();
    assert_eq!((held.state, held.notice.unwrap().code.as_str()), (SaleState::NeedsAttention, "AMOUNT_MISMATCH"));
    assert_eq!(sb.tokenx.accepted_reports(&orders[1].order_id), 0);
    engine.shutdown().await;

    // A Settle outcome about another POS transaction is never taken as this one's.
    let sb = sandbox(|c| {
        c.settle.customer = SettleCustomer::ApproveAfter(Duration::ZERO);
        c.settle.outcome_pos_tid = Some("someone-else".into());
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&sb, dir.path(), |_| {}).await;
    until("the Settle callback is registered", || sb.settle.callback_uri().is_some()).await;
    let order = wait_for_orders(&engine, 4).await[0].clone();
    let sale = engine.open_order_sale(&order.order_id).await.unwrap();
    engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    let paying = engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    sb.settle.scan(&paying.attempt.unwrap().reference.unwrap()).await.unwrap();
    let held = engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!((held.state, held.notice.unwrap().code.as_str()), (SaleState::NeedsAttention, "UNRESOLVED"));
    assert!(sb.settle.captured().is_empty(), "nothing is captured for a request that may not be this one");
    engine.shutdown().await;
}
