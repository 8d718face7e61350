//! The fiskaltrust client against the sandbox's middleware: what each documented answer means.

use std::time::Duration;

use kasa_connect::fiskaltrust::{FiskaltrustClient, FiskaltrustSettings, JournalKind, SignError, wire};
use kasa_connect::{ConnectError, Secret, base_url, http_client};
use kasa_sim::Sandbox;

use crate::sandbox;

fn client(sb: &Sandbox, token: &str) -> FiskaltrustClient {
    FiskaltrustClient::new(
        http_client(),
        FiskaltrustSettings {
            base_url: base_url(&sb.fiskaltrust_url()).unwrap(),
            cashbox_id: sb.config.fiskaltrust.cashbox_id.clone(),
            access_token: Secret::from(token),
            terminal_id: "T1".into(),
            pos_system_id: None,
            operation_lifetime: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
        },
    )
}

fn receipt(sb: &Sandbox, reference: &str, amount: f64) -> wire::ReceiptRequest {
    wire::ReceiptRequest {
        cashbox_id: sb.config.fiskaltrust.cashbox_id.clone(),
        pos_system_id: None,
        terminal_id: "T1".into(),
        reference: reference.into(),
        moment: "2026-12-01T10:15:00.000Z".into(),
        case: "0x5452200000000001".into(),
        previous_reference: None,
        customer: None,
        charge_items: vec![wire::ChargeItem {
            quantity: 1.0,
            description: "Simit".into(),
            amount,
            vat_rate: 1.0,
            case: "0x5452200000000201".into(),
            product_number: None,
            unit: None,
            unit_price: None,
        }],
        pay_items: vec![wire::PayItem {
            quantity: Some(1.0),
            description: "Cash".into(),
            amount,
            case: "0x5452200000000001".into(),
            money_number: None,
            case_data: None,
        }],
    }
}

const OP: &str = "0b8f3c52-7d1e-4a6b-9c2d-3e4f5a6b7c8d";

#[tokio::test]
async fn a_repeat_is_answered_with_the_stored_receipt_and_a_changed_body_is_a_conflict() {
    let sb = sandbox().await;
    let c = client(&sb, &sb.config.fiskaltrust.access_token);
    let first = c.sign(OP, &receipt(&sb, "S-1", 20.0)).await.unwrap();
    let again = c.sign(OP, &receipt(&sb, "S-1", 20.0)).await.unwrap();
    assert_eq!(first, again, "the same operation is answered with what it was");
    let signed = first.signed();
    assert!(signed.signature.qr.is_some() && !signed.failed_mode);
    assert_eq!(sb.fiskaltrust.signed_count("S-1"), 1);
    match c.sign(OP, &receipt(&sb, "S-1", 25.0)).await {
        Err(SignError::Conflict(op, _)) => assert_eq!(op, OP),
        other => panic!("another body under the same operation id is a conflict: {other:?}"),
    }
    assert_eq!(sb.fiskaltrust.signed_count("S-1"), 1, "never a second receipt");
    // The journals list what was signed.
    let queue = c.configure().await.unwrap().queue_id;
    let receipts = c.journal(&queue, JournalKind::ReceiptJournal, 0, 10).await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["cbReceiptReference"], "S-1");
}

#[tokio::test]
async fn in_progress_down_refused_and_unauthorised_each_say_what_they_are() {
    let sb = sandbox().await;
    let c = std::sync::Arc::new(client(&sb, &sb.config.fiskaltrust.access_token));
    sb.fiskaltrust.set_sign_delay(Duration::from_millis(400));
    let (c2, r) = (c.clone(), receipt(&sb, "S-2", 20.0));
    let first = tokio::spawn(async move { c2.sign(OP, &r).await });
    sb.fiskaltrust.wait_in_progress(1).await;
    assert_eq!(c.sign(OP, &receipt(&sb, "S-2", 20.0)).await.unwrap_err(), SignError::InProgress);
    assert!(first.await.unwrap().is_ok());
    sb.fiskaltrust.set_sign_delay(Duration::ZERO);

    sb.fiskaltrust.set_scu_reachable(false);
    let down = c.sign("1b8f3c52-7d1e-4a6b-9c2d-3e4f5a6b7c8d", &receipt(&sb, "S-3", 20.0)).await.unwrap_err();
    assert!(matches!(down, SignError::SignerDown(_)), "{down:?}");
    assert_eq!(c.echo("ping").await.unwrap(), "ping", "the middleware itself answers");
    sb.fiskaltrust.set_scu_reachable(true);
    // The next answer carries the failed-mode flag until a zero receipt.
    let late = c.sign("1b8f3c52-7d1e-4a6b-9c2d-3e4f5a6b7c8d", &receipt(&sb, "S-3", 20.0)).await.unwrap();
    assert!(late.signed().failed_mode);

    let mut bad = receipt(&sb, "S-4", 20.0);
    bad.pay_items[0].amount = 19.0;
    match c.sign("2b8f3c52-7d1e-4a6b-9c2d-3e4f5a6b7c8d", &bad).await {
        Err(SignError::Refused(reason)) => assert!(reason.contains("mismatch"), "{reason}"),
        other => panic!("a receipt that does not add up is refused: {other:?}"),
    }
    let stranger = client(&sb, "not-the-token");
    match stranger.sign("3b8f3c52-7d1e-4a6b-9c2d-3e4f5a6b7c8d", &receipt(&sb, "S-5", 20.0)).await {
        Err(SignError::Connect(ConnectError::Status { status: 401, .. })) => {}
        other => panic!("a wrong access token is 401: {other:?}"),
    }
}
