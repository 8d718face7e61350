//! Selling pump orders and shop articles through the engine, asserting what the sandbox saw.

use std::time::Duration;

use kasa_core::{Currency, Money, OrderStatus, PayMethod, PaymentKind, SaleState};
use kasa_sim::CardScript;

use super::{harness, harness_with, register, wait_for_orders};

const WAIT: Duration = Duration::from_secs(10);

/// No card payment reached Finix (looking at the terminal's connection is not a payment).
fn no_transfers(h: &super::Harness) -> bool {
    h.sandbox.recorder.of("finix").iter().all(|r| r.path != "/transfers")
}

#[tokio::test]
async fn sells_a_pump_order_by_card_end_to_end() {
    let h = harness().await;
    let orders = wait_for_orders(&h.engine, 4).await;
    let order = orders.iter().find(|o| o.status == OrderStatus::Open).unwrap().clone();
    h.sandbox.recorder.clear();

    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    assert_eq!(sale.total, order.amount);
    let started = h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    assert_eq!(started.state, SaleState::Locking);
    let paid = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert!(paid.slip_text.as_deref().unwrap().contains("KART VISA ************0059"));
    let done = h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    let receipt = done.receipt.clone().expect("the pump's receipt is kept with the sale");

    // What Token X received: lock, then payment with the slip data, with ids reused nowhere.
    let tx = h.sandbox.recorder.of("tokenx");
    let lock = tx.iter().find(|r| r.path.ends_with("/lock")).unwrap();
    assert_eq!(lock.path, format!("/api/pos/orders/{}/lock", order.order_id));
    assert!(lock.header("authorization").unwrap().starts_with("Bearer "));
    let lock_body = lock.json();
    assert_eq!(lock_body["terminalId"], "VT-0001");
    let lock_request_id = lock_body["requestId"].as_str().unwrap().to_string();
    let pay = tx.iter().find(|r| r.path.ends_with("/payment")).unwrap().json();
    let transfer = h.sandbox.finix.succeeded_transfers().pop().unwrap();
    assert_eq!(pay["terminalId"], "VT-0001");
    let journal = h.engine.store().journal_for_sale(&sale.id).unwrap();
    let granted = journal.iter().find(|e| e.kind == "lock_granted").unwrap();
    let granted: serde_json::Value = serde_json::from_str(&granted.data).unwrap();
    assert_eq!(pay["lockId"], granted["event"]["lock_id"], "the payment names the lock that was granted");
    assert_ne!(pay["requestId"].as_str().unwrap(), lock_request_id);
    assert_eq!(pay["payments"][0]["method"], "CARD");
    assert_eq!(pay["payments"][0]["amount"], order.amount.minor);
    assert_eq!(pay["payments"][0]["currency"], "TRY");
    let slip = &pay["payments"][0]["slip"];
    assert_eq!(slip["maskedPan"], "************0059");
    assert_eq!(slip["brand"], "VISA");
    assert_eq!(slip["entryMode"], "CHIP_ENTRY");
    assert_eq!(slip["approvalCode"], transfer["card_present_details"]["approval_code"]);
    assert_eq!(slip["transactionRef"], transfer["id"]);
    assert_eq!(slip["terminalRef"], "DVdemoKasaTerminal1");
    assert!(tx.iter().all(|r| !r.path.ends_with("/unlock")), "a paid order is not unlocked");

    // What Finix received: one card-present transfer with the sale's idempotency id (besides
    // the register's periodic look at the terminal's connection).
    let fx: Vec<_> = h.sandbox.recorder.of("finix").into_iter().filter(|r| r.path == "/transfers").collect();
    assert_eq!(fx.len(), 1);
    let t = &fx[0];
    assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/transfers"));
    assert_eq!(t.header("finix-version"), Some("2022-02-01"));
    assert!(t.header("authorization").unwrap().starts_with("Basic "));
    let body = t.json();
    assert_eq!(body["amount"], order.amount.minor);
    assert_eq!(body["device"], "DVdemoKasaTerminal1");
    assert_eq!(body["operation_key"], "CARD_PRESENT_DEBIT");
    assert_eq!(body["tags"]["sale_id"], sale.id.as_str());
    let key = body["idempotency_id"].as_str().unwrap();
    let outbox = h.engine.store().outbox_of_sale(&sale.id).unwrap();
    let card_row = outbox.iter().find(|r| r.op.kind() == kasa_core::OpKind::CardSale).unwrap();
    assert_eq!(card_row.key, key, "the key stored before the first attempt is the one sent");
    assert_eq!(transfer["idempotency_id"], key);

    // The slip reached the printer, and the journal holds every step, intact.
    let jobs = h.sandbox.printer.wait_for_jobs(1, WAIT).await;
    let printed = jobs[0].text();
    assert!(printed.contains("KASA PETROL") && printed.contains("TOPLAM"), "{printed}");
    assert!(printed.contains(&format!("Onay {}", slip["approvalCode"].as_str().unwrap())));
    let mut kinds: Vec<String> =
        h.engine.store().journal_for_sale(&sale.id).unwrap().into_iter().map(|e| e.kind).collect();
    // The receipt is signed in its own lane, beside the report and the pump's receipt.
    let signed = kinds.iter().filter(|k| *k == "fiscal_signed").count();
    kinds.retain(|k| k != "fiscal_signed");
    assert_eq!(
        kinds,
        ["sale_opened", "pay_requested", "lock_granted", "payment_approved", "report_acknowledged", "receipt_issued"]
    );
    assert_eq!(signed, 1, "the sale's receipt signed once");
    assert!(h.engine.verify_journal().await.unwrap().is_intact());
    assert_eq!(receipt, h.engine.fetch_order(&order.order_id).await.unwrap().receipt.unwrap());
    assert!(h.engine.store().locks().unwrap().is_empty(), "no lock left behind");
}

#[tokio::test]
async fn sells_a_pump_order_for_cash_with_change_and_drawer() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[1].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    let tendered = Money::new((order.amount.minor / 10_000 + 1) * 10_000, Currency::TRY);
    h.engine.pay(&sale.id, PayMethod::Cash { tendered }).await.unwrap();
    let paid = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid());
    assert_eq!(paid.change.unwrap().minor, tendered.minor - order.amount.minor);
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();

    let pay = h.sandbox.recorder.of("tokenx").into_iter().find(|r| r.path.ends_with("/payment")).unwrap().json();
    assert_eq!(
        pay["payments"],
        serde_json::json!([{"method": "CASH", "amount": order.amount.minor, "currency": "TRY"}])
    );
    assert!(no_transfers(&h), "cash never touches the card terminal");
    let job = h.sandbox.printer.wait_for_jobs(1, WAIT).await.remove(0);
    let (_, events) = kasa_print::decode::parse(&job.bytes, kasa_print::Model::EPSON_TM);
    assert!(events.contains(&kasa_print::decode::Event::Drawer), "cash opens the drawer");
    assert!(job.text().contains("PARA ÜSTÜ"));
}

#[tokio::test]
async fn a_declined_card_unlocks_the_order_and_says_so() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    h.sandbox.finix.push_card(CardScript::decline(Duration::ZERO));
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open);
    let notice = after.notice.unwrap();
    assert_eq!(notice.code, "GENERIC_DECLINE");
    assert!(notice.message.starts_with("Card declined") && notice.message.contains("No money was taken"));
    h.engine.drain(WAIT).await.unwrap();
    assert_eq!(h.sandbox.tokenx.status_of(&order.order_id), Some("Open"), "the order is unlocked");
    let unlock = h.sandbox.recorder.of("tokenx").into_iter().find(|r| r.path.ends_with("/unlock")).unwrap().json();
    assert_eq!(unlock["terminalId"], "VT-0001");
    assert!(h.engine.store().locks().unwrap().is_empty());
    assert!(h.sandbox.finix.succeeded_transfers().is_empty());

    // The cashier tries again with another card: a new attempt with fresh keys succeeds.
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    assert!(h.engine.wait_settled(&sale.id, WAIT).await.unwrap().state.is_paid());
    let keys: Vec<String> =
        h.sandbox.finix.transfers().iter().map(|t| t["idempotency_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[tokio::test]
async fn a_lock_held_by_another_register_allows_no_payment() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[2].clone();
    h.sandbox.tokenx.lock_as(&order.order_id, "VT-0002").unwrap();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open);
    let notice = after.notice.unwrap();
    assert_eq!(notice.code, "ORDER_LOCKED");
    assert!(notice.message.contains("another register"), "{}", notice.message);
    assert!(no_transfers(&h), "no payment was attempted");
    assert!(after.payments.is_empty());
}

#[tokio::test]
async fn a_sandbox_that_is_down_shows_offline_instead_of_hanging() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[3].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.sandbox.tokenx_http.control.set_outage(true).await;

    let started = std::time::Instant::now();
    while h.engine.status().online {
        assert!(started.elapsed() < Duration::from_secs(2), "offline must show within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = h.engine.status();
    assert!(status.offline_reason.as_deref().unwrap().contains("unreachable"));
    assert!(status.orders_age_secs.is_some_and(|age| age < 5), "the cached list shows its age: {status:?}");

    let t0 = std::time::Instant::now();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "the cashier is told quickly: {:?}", t0.elapsed());
    assert_eq!(after.state, SaleState::Open);
    assert_eq!(after.notice.unwrap().code, "OFFLINE");
    assert!(no_transfers(&h));
    // The cached list is still there while offline.
    assert_eq!(h.engine.orders().await.unwrap().len(), 4);

    // Back online: the register notices and the order can be sold.
    h.sandbox.tokenx_http.control.set_outage(false).await;
    let t1 = std::time::Instant::now();
    while !h.engine.status().online {
        assert!(t1.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    assert!(h.engine.wait_settled(&sale.id, WAIT).await.unwrap().state.is_paid());
}

#[tokio::test]
async fn shop_articles_sell_for_cash_without_the_cloud() {
    let h = harness_with(|c| c.tokenx.initial_orders = 0).await;
    h.sandbox.tokenx_http.control.set_outage(true).await;
    let sale = h.engine.open_shop_sale().await.unwrap();
    let sku = h.engine.catalog()[0].sku.clone();
    h.engine.add_item(&sale.id, &sku, 2).await.unwrap();
    let view = h.engine.add_item(&sale.id, &sku, 1).await.unwrap();
    assert_eq!(view.total.minor, 3 * h.engine.catalog()[0].unit_price.minor);
    let unknown = h.engine.add_item(&sale.id, "000", 1).await.unwrap_err();
    assert_eq!(unknown.code, kasa_engine::ErrorCode::NotFound);
    let short = h.engine.pay(&sale.id, PayMethod::Cash { tendered: Money::new(1, Currency::TRY) }).await.unwrap_err();
    assert_eq!(short.code, kasa_engine::ErrorCode::BadInput);
    assert!(short.message.contains("does not cover"));
    let done = h.engine.pay(&sale.id, PayMethod::Cash { tendered: Money::new(10_000, Currency::TRY) }).await.unwrap();
    assert_eq!(done.state, SaleState::Completed);
    assert!(matches!(done.payments[0].kind, PaymentKind::Cash { .. }));
    assert!(h.sandbox.recorder.of("tokenx").iter().all(|r| !r.path.contains("/lock")));
}

#[tokio::test]
async fn a_card_cancelled_at_the_terminal_reopens_the_sale() {
    let h = harness().await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    h.sandbox.finix.push_card(CardScript::WaitForCancel);
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    for _ in 0..200 {
        if h.sandbox.finix.is_waiting("DVdemoKasaTerminal1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.engine.cancel_payment(&sale.id).await.unwrap();
    let after = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert_eq!(after.state, SaleState::Open);
    assert_eq!(after.notice.unwrap().code, "CANCELLATION_VIA_API");
    h.engine.drain(WAIT).await.unwrap();
    assert_eq!(h.sandbox.tokenx.status_of(&order.order_id), Some("Open"));
    let cancelled = h.engine.cancel_sale(&sale.id).await.unwrap();
    assert_eq!(cancelled.state, SaleState::Cancelled);
}

#[tokio::test]
async fn a_register_restarted_offline_shows_the_last_list_with_its_age() {
    let h = harness().await;
    let listed = wait_for_orders(&h.engine, 4).await;
    h.engine.shutdown().await;
    h.sandbox.tokenx_http.control.set_outage(true).await;

    let engine = register(&h.sandbox, h._dir.path(), |_| {}).await;
    let started = std::time::Instant::now();
    while engine.status().offline_reason.is_none() {
        assert!(started.elapsed() < Duration::from_secs(2), "offline must show within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = engine.status();
    assert!(!status.online);
    assert!(status.orders_age_secs.is_some(), "the age of the list outlives the restart: {status:?}");
    let cached = engine.orders().await.unwrap();
    assert_eq!(
        cached.iter().map(|o| &o.order_id).collect::<Vec<_>>(),
        listed.iter().take(cached.len()).map(|o| &o.order_id).collect::<Vec<_>>()
    );
    assert!(cached.len() >= 4);
    // The order's details were never fetched, so it can't be opened until the cloud is back.
    let refused = engine.open_order_sale(&cached[0].order_id).await.unwrap_err();
    assert_eq!(refused.code, kasa_engine::ErrorCode::Offline);
    assert!(refused.message.contains("keeps working"), "{}", refused.message);
    engine.shutdown().await;
}

#[tokio::test]
async fn the_receipt_is_picked_up_when_the_cloud_no_longer_lists_the_order() {
    // Finished orders leave the list at once: the register must read the order itself.
    let h = harness_with(|c| c.tokenx.finished_listed_for = Duration::ZERO).await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Cash { tendered: sale.total }).await.unwrap();
    let done = h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    assert!(done.receipt.is_some());
    let listed = h.engine.orders().await.unwrap();
    assert!(listed.iter().all(|o| o.order_id != order.order_id), "the cached list follows the cloud's");
}
