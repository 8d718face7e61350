//! The manager's queue: a permanent failure is parked with its reason, retried on demand, and
//! discarded only with the PIN, leaving a journal entry.

use std::time::Duration;

use kasa_core::{PayMethod, SaleState};
use kasa_engine::ErrorCode;
use kasa_sim::{CardScript, Faults};

use super::{harness, harness_with, manager, wait_for_orders};

const WAIT: Duration = Duration::from_secs(10);

fn refuse_reports_for(h: &super::Harness, order_id: &str) {
    let refuse = Faults { error_rate: 1.0, error_status: Some(422), ..Faults::default() };
    h.sandbox.tokenx_http.control.set_endpoint_faults("POST", &format!("/api/pos/orders/{order_id}/payment"), refuse);
}

async fn wait_parked(h: &super::Harness, n: usize) -> Vec<kasa_engine::manager::QueueItem> {
    for _ in 0..200 {
        let q = h.engine.queue(&super::manager(&h.engine).await, 100).await.unwrap();
        if q.iter().filter(|i| i.state == "parked").count() >= n {
            return q;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing was parked");
}

#[tokio::test]
async fn parked_reports_are_retried_or_discarded_with_the_pin() {
    let h = harness().await;
    let orders = wait_for_orders(&h.engine, 4).await;

    // The cloud refuses the payment report for good: the sale is paid, the report parked.
    refuse_reports_for(&h, &orders[0].order_id);
    let sale = h.engine.open_order_sale(&orders[0].order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let queue = wait_parked(&h, 1).await;
    let item = queue.iter().find(|i| i.state == "parked").unwrap().clone();
    assert_eq!(item.kind, "tokenx_payment");
    assert_eq!(item.sale_id.as_deref(), Some(sale.id.as_str()));
    assert!(item.last_error.as_deref().unwrap().contains("422"), "{item:?}");
    let view = h.engine.sale_view(&sale.id).await.unwrap();
    assert_eq!(view.state, SaleState::Paid);
    assert_eq!(view.notice.unwrap().code, "REPORT_REFUSED");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.engine.status().queue_parked, 1);

    // Putting a parked message back in line needs a manager session, checked in the engine.
    let refused = h.engine.retry_now(item.id, None).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotAuthorized, "{refused:?}");
    assert_eq!(h.engine.set_first_manager_pin("12a456").await.unwrap_err().code, ErrorCode::BadInput);
    assert_eq!(
        h.engine.set_first_manager_pin("2468").await.unwrap_err().code,
        ErrorCode::BadInput,
        "6 digits at least"
    );
    let session = manager(&h.engine).await;
    assert_eq!(h.engine.retry_now(item.id, Some("wrong-session")).await.unwrap_err().code, ErrorCode::NotAuthorized);

    // Retry now, once the cloud accepts it again: delivered, the sale completes.
    h.sandbox.tokenx_http.control.clear_faults();
    h.engine.retry_now(item.id, Some(&session)).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Completed, WAIT).await.unwrap();
    assert_eq!(h.sandbox.tokenx.accepted_reports(&orders[0].order_id), 1);

    // A second refusal is discarded by the manager: a PIN is needed, and a reason.
    refuse_reports_for(&h, &orders[1].order_id);
    let sale2 = h.engine.open_order_sale(&orders[1].order_id).await.unwrap();
    h.engine.pay(&sale2.id, PayMethod::Cash { tendered: sale2.total }).await.unwrap();
    let item2 = wait_parked(&h, 1).await.into_iter().find(|i| i.state == "parked").unwrap();
    assert_eq!(h.engine.set_first_manager_pin("135713").await.unwrap_err().code, ErrorCode::Refused, "set already");
    assert_eq!(h.engine.discard(item2.id, &session, " ").await.unwrap_err().code, ErrorCode::BadInput);
    let wrong = h.engine.discard(item2.id, "wrong-session", "settled by phone").await.unwrap_err();
    assert_eq!(wrong.code, ErrorCode::NotAuthorized);
    h.engine.discard(item2.id, &session, "settled by phone with Token X").await.unwrap();
    assert!(h.engine.queue(&session, 100).await.unwrap().iter().all(|i| i.id != item2.id));
    let entry = h
        .engine
        .store()
        .journal_for_sale(&sale2.id)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "outbox_discarded")
        .unwrap();
    assert!(entry.data.contains("settled by phone with Token X"), "{}", entry.data);
    assert!(h.engine.verify_journal().await.unwrap().is_intact());
    // A pending (not parked) message can't be discarded.
    assert_eq!(h.engine.discard(item2.id, &session, "again").await.unwrap_err().code, ErrorCode::InvalidState);
}

#[tokio::test]
async fn a_lock_is_renewed_while_the_customer_pays() {
    // Locks lapse 61 s after they are granted, so the register renews at once.
    let h = harness_with(|c| c.tokenx.lock_ttl = Duration::from_secs(61)).await;
    let order = wait_for_orders(&h.engine, 4).await[0].clone();
    h.sandbox.finix.push_card(CardScript::WaitForCancel);
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Card).await.unwrap();
    let paying = h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let granted = paying.lock.clone().unwrap();
    let mut renewed = None;
    for _ in 0..100 {
        let s = h.engine.sale(&sale.id).await.unwrap();
        if s.lock.as_ref().is_some_and(|l| l.expires_at > granted.expires_at) {
            renewed = s.lock;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let renewed = renewed.expect("the lock was renewed");
    assert_eq!(renewed.lock_id, granted.lock_id);
    let renewal = h
        .sandbox
        .recorder
        .of("tokenx")
        .into_iter()
        .find(|r| r.path.ends_with("/lock") && r.json()["lockId"] == granted.lock_id.as_str())
        .expect("a renewal names the lock it extends");
    assert_eq!(renewal.status, Some(200));
    h.engine.cancel_payment(&sale.id).await.unwrap();
    assert_eq!(h.engine.wait_settled(&sale.id, WAIT).await.unwrap().state, SaleState::Open);
}

#[tokio::test]
async fn the_card_terminal_is_managed_and_offered_only_while_connected() {
    let h = harness().await;
    let session = manager(&h.engine).await;
    let device = h.engine.terminal().await.unwrap();
    assert!(device.is_connected());
    assert!(h.engine.methods().contains(&kasa_core::MethodKind::Card));

    // The terminal loses its connection: card payments are not offered, with the reason.
    h.sandbox.finix.set_connected("DVdemoKasaTerminal1", false);
    assert!(!h.engine.terminal().await.unwrap().is_connected());
    assert!(!h.engine.methods().contains(&kasa_core::MethodKind::Card));
    assert!(h.engine.status().terminal_problem.unwrap().contains("not connected"));
    let sale = h.engine.open_shop_sale().await.unwrap();
    let sku = h.engine.catalog()[0].sku.clone();
    h.engine.add_item(&sale.id, &sku, 1).await.unwrap();
    assert_eq!(h.engine.pay(&sale.id, PayMethod::Card).await.unwrap_err().code, ErrorCode::Setup);
    h.sandbox.finix.set_connected("DVdemoKasaTerminal1", true);
    h.engine.terminal().await.unwrap();
    assert!(h.engine.methods().contains(&kasa_core::MethodKind::Card));

    // Deactivating needs the PIN; a deactivated terminal is not offered either.
    assert_eq!(h.engine.set_terminal_active(false, "wrong-session").await.unwrap_err().code, ErrorCode::NotAuthorized);
    let off = h.engine.set_terminal_active(false, &session).await.unwrap();
    assert!(!off.enabled);
    assert!(h.engine.status().terminal_problem.unwrap().contains("not activated"));
    assert!(h.engine.set_terminal_active(true, &session).await.unwrap().enabled);
    assert_eq!(h.engine.status().terminal_problem, None);

    // A new terminal is registered under the merchant.
    let created = h.engine.create_terminal("PAX_A800", "Lane 3", "19046260945", &session).await.unwrap();
    assert!(created.id.starts_with("DV") && !created.enabled);
    let journal = h.engine.store().journal_page(0, 1000).unwrap();
    let kinds: Vec<&str> = journal.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"terminal_deactivated") && kinds.contains(&"terminal_created"));
}
