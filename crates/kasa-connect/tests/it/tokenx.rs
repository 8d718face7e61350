//! Token X: token, summary, order, lock, unlock, payment.

use kasa_connect::ConnectError;
use kasa_core::payment::{ReportedMethod, ReportedPayment};
use kasa_core::{CardSlip, Money, OrderStatus};
use kasa_sim::{Fate, Faults};

use super::{sandbox, tokenx};

fn slip() -> CardSlip {
    CardSlip {
        masked_pan: "************0059".into(),
        brand: "VISA".into(),
        entry_mode: "CHIP_ENTRY".into(),
        approval_code: "123456".into(),
        terminal_ref: "DV1".into(),
        transaction_ref: "TR1".into(),
        paid_at: "2026-11-21T12:00:00Z".into(),
    }
}

#[tokio::test]
async fn lists_and_reads_orders_with_one_token() {
    let sb = sandbox().await;
    let c = tokenx(&sb, "VT-0001");
    let list = c.summary().await.unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|o| o.status == OrderStatus::Open));
    let o = c.order(&list[0].order_id).await.unwrap();
    assert_eq!(o.amount, list[0].amount);
    assert_eq!(o.amount, o.litres.price_at(o.unit_price).unwrap(), "amount = litres x unit price");
    assert_eq!(o.vat_rate_bp, 2000);

    let reqs = sb.recorder.of("tokenx");
    assert_eq!(reqs.iter().filter(|r| r.path == "/oauth2/token").count(), 1, "token is cached");
    let token_req = &reqs[0];
    assert_eq!(token_req.method, "POST");
    assert_eq!(token_req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(token_req.body.contains("grant_type=client_credentials"));
    let summary = reqs.iter().find(|r| r.path == "/api/pos/orders/summary").unwrap();
    assert_eq!(summary.query.as_deref(), Some("terminalId=VT-0001"));
    assert!(summary.header("authorization").unwrap().starts_with("Bearer tx-token-"));

    // Neither the client secret nor the cached bearer token shows in debug output.
    let bearer = summary.header("authorization").unwrap().trim_start_matches("Bearer ").to_string();
    let debug = format!("{c:?}");
    assert!(!debug.contains(&sb.config.tokenx.client_secret), "{debug}");
    assert!(!debug.contains(&bearer), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

#[tokio::test]
async fn refreshes_a_rejected_token_once() {
    let sb = sandbox().await;
    let c = tokenx(&sb, "VT-0001");
    c.summary().await.unwrap();
    sb.tokenx.revoke_tokens();
    c.summary().await.unwrap();
    let reqs = sb.recorder.of("tokenx");
    let statuses: Vec<(String, Option<u16>)> = reqs.iter().map(|r| (r.path.clone(), r.status)).collect();
    assert_eq!(
        statuses,
        [
            ("/oauth2/token".to_string(), Some(200)),
            ("/api/pos/orders/summary".to_string(), Some(200)),
            ("/api/pos/orders/summary".to_string(), Some(401)),
            ("/oauth2/token".to_string(), Some(200)),
            ("/api/pos/orders/summary".to_string(), Some(200)),
        ]
    );
}

#[tokio::test]
async fn bad_credentials_and_unknown_orders_are_permanent_errors() {
    let sb = sandbox().await;
    let wrong = kasa_connect::tokenx::TokenxClient::new(
        kasa_connect::http_client(),
        kasa_connect::tokenx::TokenxSettings {
            base_url: kasa_connect::base_url(&sb.tokenx_url()).unwrap(),
            terminal_id: "VT-0001".into(),
            client_id: "kasa-demo".into(),
            client_secret: kasa_connect::Secret::from("wrong"),
            timeout: std::time::Duration::from_secs(5),
        },
    );
    let err = wrong.summary().await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), Some("INVALID_CLIENT")));
    assert!(!err.is_transient());

    let c = tokenx(&sb, "VT-0001");
    let err = c.order("TXO-999999").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("ORDER_NOT_FOUND")));
    let err = tokenx(&sb, "VT-9999").summary().await.unwrap_err();
    assert_eq!(err.code(), Some("UNKNOWN_TERMINAL"));
}

#[tokio::test]
async fn lock_conflicts_repeats_renewal_and_unlock() {
    let sb = sandbox().await;
    let a = tokenx(&sb, "VT-0001");
    let b = tokenx(&sb, "VT-0002");
    let id = sb.tokenx.order_ids()[0].clone();

    let lock = a.lock(&id, "req-1", None).await.unwrap();
    assert!(lock.lock_id.starts_with("LCK-"));
    // Same request id: same lock.
    assert_eq!(a.lock(&id, "req-1", None).await.unwrap().lock_id, lock.lock_id);
    // Another register is refused.
    let err = b.lock(&id, "req-b", None).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("ORDER_LOCKED")));
    assert!(!err.is_transient() && !err.maybe_applied());
    // Renewal extends the lock.
    let renewed = a.lock(&id, "req-2", Some(&lock.lock_id)).await.unwrap();
    assert!(renewed.expires_at >= lock.expires_at);
    // Only the holder may unlock.
    let err = b.unlock(&id, &lock.lock_id, "u-b").await.unwrap_err();
    assert_eq!(err.code(), Some("LOCK_NOT_HELD"));
    a.unlock(&id, &lock.lock_id, "u-1").await.unwrap();
    a.unlock(&id, &lock.lock_id, "u-2").await.unwrap(); // already unlocked: fine
    assert_eq!(sb.tokenx.status_of(&id), Some("Open"));
    // The released lock's request id no longer grants anything.
    let err = a.lock(&id, "req-1", None).await.unwrap_err();
    assert_eq!(err.code(), Some("LOCK_RELEASED"));

    let body = sb.recorder.of("tokenx").into_iter().find(|r| r.path.ends_with("/unlock")).unwrap().json();
    assert_eq!(body, serde_json::json!({"terminalId": "VT-0002", "lockId": lock.lock_id, "requestId": "u-b"}));
}

#[tokio::test]
async fn payment_is_idempotent_checked_and_completed_by_the_pump() {
    let sb = sandbox().await;
    let c = tokenx(&sb, "VT-0001");
    let id = sb.tokenx.order_ids()[1].clone();
    let order = c.order(&id).await.unwrap();
    let card = |amount: Money| ReportedPayment { method: ReportedMethod::Card, amount, slip: Some(slip()) };

    // Not locked: refused.
    let err = c.payment(&id, "LCK-x", "p-0", &[card(order.amount)]).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(409), Some("ORDER_NOT_LOCKED")));

    let lock = c.lock(&id, "l-1", None).await.unwrap();
    // Amounts that don't add up: refused.
    let short = Money::new(order.amount.minor - 1, order.amount.currency);
    let err = c.payment(&id, &lock.lock_id, "p-1", &[card(short)]).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(422), Some("AMOUNT_MISMATCH")));
    // A card without its slip: refused.
    let no_slip = ReportedPayment { method: ReportedMethod::Card, amount: order.amount, slip: None };
    assert_eq!(c.payment(&id, &lock.lock_id, "p-2", &[no_slip]).await.unwrap_err().code(), Some("SLIP_MISSING"));

    c.payment(&id, &lock.lock_id, "p-3", &[card(order.amount)]).await.unwrap();
    c.payment(&id, &lock.lock_id, "p-3", &[card(order.amount)]).await.unwrap(); // repeat: same answer
    let reported = sb.tokenx.payment_of(&id).unwrap();
    assert_eq!(reported["payments"][0]["slip"]["approvalCode"], "123456");
    assert_eq!(reported["payments"][0]["method"], "CARD");

    // The pump completes the order with its receipt.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let done = c.order(&id).await.unwrap();
    assert_eq!(done.status, OrderStatus::Completed);
    let r = done.receipt.unwrap();
    assert!(!r.fiscal_no.is_empty() && !r.z_no.is_empty() && !r.eku_no.is_empty());
    // A completed order can't be locked again.
    assert_eq!(c.lock(&id, "l-2", None).await.unwrap_err().code(), Some("ORDER_NOT_OPEN"));
}

#[tokio::test]
async fn an_outage_is_not_sent_and_a_lost_answer_is_unknown() {
    let sb = sandbox().await;
    let c = tokenx(&sb, "VT-0001");
    c.summary().await.unwrap();
    sb.tokenx_http.control.set_outage(true).await;
    let err = c.summary().await.unwrap_err();
    assert!(matches!(err, ConnectError::NotSent { .. }), "{err:?}");
    assert!(err.is_transient() && !err.maybe_applied());
    sb.tokenx_http.control.set_outage(false).await;
    c.summary().await.unwrap();

    // The lock is applied but its answer is lost: the retry with the same request id gets it.
    let id = sb.tokenx.order_ids()[2].clone();
    sb.tokenx_http.control.set_faults(Faults { lost_response_rate: 1.0, ..Faults::default() });
    let err = c.lock(&id, "req-lost", None).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoAnswer { .. }), "{err:?}");
    assert!(err.is_transient() && err.maybe_applied());
    sb.tokenx_http.control.set_faults(Faults::default());
    assert_eq!(sb.tokenx.status_of(&id), Some("Locked"));
    let lock = c.lock(&id, "req-lost", None).await.unwrap();
    assert_eq!(sb.tokenx.order_json(&id).unwrap()["lock"]["lockId"], lock.lock_id.as_str());
    assert!(sb.recorder.of("tokenx").iter().any(|r| r.fate == Fate::ResponseLost));

    // An injected 503 is transient.
    sb.tokenx_http.control.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let err = c.summary().await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());
}
