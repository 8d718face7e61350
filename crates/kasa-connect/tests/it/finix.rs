//! Finix: devices, connection check, card-present sales, declines, cancel and refunds.
//!
//! | document step | test |
//! |---|---|
//! | Step 3: `POST /merchants/{id}/devices` (model, name, serial_number) | `creates_activates_and_checks_a_device` |
//! | Step 4: `PUT /devices/{id}` `{"action": "ACTIVATE"}` → `enabled: true` (and DEACTIVATE) | `creates_activates_and_checks_a_device` |
//! | Step 5: `GET /devices/{id}?include_connection=true` → connection open / closed | `creates_activates_and_checks_a_device`, `declines_and_unreachable_devices_fail_the_transfer` |
//! | Step 5: closed connection → transfer fails with `DEVICE_UNREACHABLE` | `declines_and_unreachable_devices_fail_the_transfer` |
//! | Step 6: `POST /transfers` with `device`, `operation_key`, `tags` → card_present_details | `an_approved_card_sale_carries_slip_fields` |
//! | `idempotency_id` on `/transfers` (and lookup by it) | `a_repeated_idempotency_id_returns_the_original_transfer` |
//! | declines: `failure_code` / `failure_message` | `declines_and_unreachable_devices_fail_the_transfer` |
//! | Step 7: `PUT /devices/{id}` `{"action": "CANCEL"}` → `FAILED`, `CANCELLATION_VIA_API` | `cancel_on_the_device_fails_the_waiting_sale` |
//! | Basic auth, `Finix-Version` on every call; error envelope `_embedded.errors` | `creates_activates_and_checks_a_device`, `wrong_password_reads_the_error_envelope` |
//! | refunds: `POST /transfers/{id}/reversals` with `refund_amount`, partial up to the original | `refunds_are_reversals_up_to_the_original_amount` |

use std::collections::BTreeMap;
use std::time::Duration;

use kasa_core::{Currency, Money};
use kasa_sim::CardScript;

use super::{finix, sandbox};

const DEVICE: &str = "DVdemoKasaTerminal1";

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([("sale_id".to_string(), "S-1".to_string())])
}

#[tokio::test]
async fn creates_activates_and_checks_a_device() {
    let sb = sandbox().await;
    let c = finix(&sb);
    let d = c.create_device("MUdemoKasaMerchant", "PAX_A800", "Lane 2", "Cashier Two", "19046260945").await.unwrap();
    assert!(d.id.starts_with("DV"));
    assert!(!d.enabled);
    let d2 = c.device(&d.id).await.unwrap();
    assert!(!d2.is_connected(), "a device that is not activated reports a closed connection");
    assert_eq!(d2.connection.as_deref(), Some("Closed"));
    assert!(c.activate(&d.id).await.unwrap().enabled);
    assert!(c.device(&d.id).await.unwrap().is_connected());
    assert!(!c.deactivate(&d.id).await.unwrap().enabled);

    let err = c.create_device("MUnope", "PAX_A800", "x", "x", "1").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("NOT_FOUND")));

    for r in sb.recorder.of("finix") {
        assert_eq!(r.header("finix-version"), Some("2022-02-01"), "{} {}", r.method, r.path);
        assert!(r.header("authorization").unwrap().starts_with("Basic "));
    }
    let create = sb.recorder.of("finix").into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(create.path, "/merchants/MUdemoKasaMerchant/devices");
    assert_eq!(create.json()["model"], "PAX_A800");
    let get = sb.recorder.of("finix").into_iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(get.query.as_deref(), Some("include_connection=true"));
    let put = sb.recorder.of("finix").into_iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.json(), serde_json::json!({"action": "ACTIVATE"}));
}

#[tokio::test]
async fn an_approved_card_sale_carries_slip_fields() {
    let sb = sandbox().await;
    let c = finix(&sb);
    let t = c.card_sale(DEVICE, Money::new(137_670, Currency::TRY), "idem-1", &tags()).await.unwrap();
    assert_eq!(t.state, "SUCCEEDED");
    let card = t.card_present_details.unwrap();
    assert_eq!(card.masked_account_number.as_deref(), Some("************0059"));
    assert_eq!(card.brand.as_deref(), Some("VISA"));
    assert_eq!(card.approval_code.unwrap().len(), 6);
    let body = sb.recorder.of("finix").pop().unwrap().json();
    assert_eq!(
        body,
        serde_json::json!({
            "amount": 137670, "currency": "TRY", "device": DEVICE, "operation_key": "CARD_PRESENT_DEBIT",
            "tags": {"sale_id": "S-1"}, "idempotency_id": "idem-1"
        })
    );
}

#[tokio::test]
async fn a_repeated_idempotency_id_returns_the_original_transfer() {
    let sb = sandbox().await;
    let c = finix(&sb);
    let amount = Money::new(500, Currency::TRY);
    let first = c.card_sale(DEVICE, amount, "idem-2", &tags()).await.unwrap();
    let again = c.card_sale(DEVICE, amount, "idem-2", &tags()).await.unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(sb.finix.succeeded_transfers().len(), 1, "charged once");
    let found = c.transfers_by_idempotency_id("idem-2").await.unwrap();
    assert_eq!(found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [first.id.as_str()]);
    assert_eq!(c.transfer(&first.id).await.unwrap().state, "SUCCEEDED");
    let err = c.card_sale(DEVICE, Money::new(501, Currency::TRY), "idem-2", &tags()).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(422), Some("IDEMPOTENCY_ID_REUSED")));
    assert!(c.transfers_by_idempotency_id("never-used").await.unwrap().is_empty());
}

#[tokio::test]
async fn declines_and_unreachable_devices_fail_the_transfer() {
    let sb = sandbox().await;
    let c = finix(&sb);
    sb.finix.push_card(CardScript::decline(Duration::ZERO));
    let t = c.card_sale(DEVICE, Money::new(100, Currency::TRY), "idem-3", &tags()).await.unwrap();
    assert_eq!((t.state.as_str(), t.failure_code.as_deref()), ("FAILED", Some("GENERIC_DECLINE")));
    assert!(t.failure_message.is_some());

    sb.finix.set_connected(DEVICE, false);
    assert!(!c.device(DEVICE).await.unwrap().is_connected());
    let t = c.card_sale(DEVICE, Money::new(100, Currency::TRY), "idem-4", &tags()).await.unwrap();
    assert_eq!(t.failure_code.as_deref(), Some("DEVICE_UNREACHABLE"));
}

#[tokio::test]
async fn cancel_on_the_device_fails_the_waiting_sale() {
    let sb = sandbox().await;
    let c = std::sync::Arc::new(finix(&sb));
    sb.finix.push_card(CardScript::WaitForCancel);
    let c2 = c.clone();
    let sale =
        tokio::spawn(async move { c2.card_sale(DEVICE, Money::new(100, Currency::TRY), "idem-5", &tags()).await });
    for _ in 0..100 {
        if sb.finix.is_waiting(DEVICE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = c.cancel(DEVICE).await.unwrap();
    assert_eq!(cancelled.failure_code.as_deref(), Some("CANCELLATION_VIA_API"));
    let t = sale.await.unwrap().unwrap();
    assert_eq!((t.id, t.state.as_str()), (cancelled.id, "FAILED"));
    let put = sb.recorder.of("finix").into_iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(
        (put.path.as_str(), put.json()),
        ("/devices/DVdemoKasaTerminal1", serde_json::json!({"action": "CANCEL"}))
    );
    // Nothing in progress now.
    let err = c.cancel(DEVICE).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
}

#[tokio::test]
async fn wrong_password_reads_the_error_envelope() {
    let sb = sandbox().await;
    let c = kasa_connect::finix::FinixClient::new(
        kasa_connect::http_client(),
        kasa_connect::finix::FinixSettings {
            base_url: kasa_connect::base_url(&sb.finix_url()).unwrap(),
            username: "USdemoKasa".into(),
            password: kasa_connect::Secret::from("nope"),
            timeout: Duration::from_secs(5),
            sale_timeout: Duration::from_secs(5),
        },
    );
    let err = c.device(DEVICE).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(401), Some("UNKNOWN")));
    assert!(err.to_string().contains("Unauthorized"));
    assert!(!format!("{:?}", kasa_connect::Secret::from("nope")).contains("nope"));
}

#[tokio::test]
async fn refunds_are_reversals_up_to_the_original_amount() {
    let sb = sandbox().await;
    let c = finix(&sb);
    let sale = c.card_sale(DEVICE, Money::new(10_000, Currency::TRY), "idem-r", &tags()).await.unwrap();
    let part = c.refund(&sale.id, Money::new(4_000, Currency::TRY), "rev-1").await.unwrap();
    assert_eq!((part.state.as_str(), part.amount), ("SUCCEEDED", 4_000));
    // The same idempotency id again: the same reversal, not a second refund.
    assert_eq!(c.refund(&sale.id, Money::new(4_000, Currency::TRY), "rev-1").await.unwrap().id, part.id);
    let err = c.refund(&sale.id, Money::new(6_001, Currency::TRY), "rev-2").await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(422), Some("REFUND_AMOUNT_TOO_LARGE")));
    c.refund(&sale.id, Money::new(6_000, Currency::TRY), "rev-3").await.unwrap();
    assert_eq!(sb.finix.reversals().len(), 2);
    let body = sb.recorder.of("finix").into_iter().find(|r| r.path.ends_with("/reversals")).unwrap();
    assert_eq!(body.path, format!("/transfers/{}/reversals", sale.id));
    assert_eq!(body.json(), serde_json::json!({"refund_amount": 4000, "idempotency_id": "rev-1"}));
}
