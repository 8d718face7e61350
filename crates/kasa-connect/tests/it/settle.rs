//! Settle: shortlink callback, payment request, outcome polling with every status, capture,
//! abort and refund, against the sandbox.
//!
//! | document step | test |
//! |---|---|
//! | 1. QR code `http://settle.eu/s/<shortlink_id>/<vendors_transaction_id>` | `qr_scan_callback_request_capture` |
//! | 2–3. scan → `shortlink_scanned` callback with the scan token and argstring | `qr_scan_callback_request_capture` |
//! | 4. `POST /payment_request/` with `customer` = token, `pos_tid`, `pos_id`, amount, currency | `qr_scan_callback_request_capture` |
//! | 4. outcome 1003 PENDING | `qr_scan_callback_request_capture` |
//! | 5–6. confirmation → 3008 AUTH | `qr_scan_callback_request_capture` |
//! | 7. `PUT /payment_request/<tid>/` `{action: capture}` (and refused before AUTH) | `qr_scan_callback_request_capture` |
//! | 8. outcome 2000 OK | `qr_scan_callback_request_capture` |
//! | 5. rejection → 5006 REJECTED | `rejection_expiry_abort_and_unknown_codes` |
//! | outcome 4004, 4019, 5011, 5012; unknown codes | `rejection_expiry_abort_and_unknown_codes` |

use std::time::Duration;

use kasa_connect::settle::{SettleClient, SettleSettings, Status, parse_scan};
use kasa_connect::{Secret, base_url, http_client};
use kasa_core::{Currency, Money};
use kasa_sim::{Recorder, Settle, SettleConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

struct Rig {
    settle: Settle,
    client: SettleClient,
    recorder: Recorder,
    _served: kasa_sim::Served,
    scans: mpsc::UnboundedReceiver<Vec<u8>>,
}

/// A callback endpoint on loopback that hands each posted body to the test.
async fn callback_server() -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/settle/callback", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0_u8; 4096];
            loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(body.as_bytes().to_vec());
                        break;
                    }
                }
            }
            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    (url, rx)
}

async fn rig() -> Rig {
    let settle = Settle::new(SettleConfig::default());
    let recorder = Recorder::default();
    let served = kasa_sim::http::serve("settle", settle.router(), recorder.clone(), 3).await.unwrap();
    let c = SettleConfig::default();
    let client = SettleClient::new(
        http_client(),
        SettleSettings {
            base_url: base_url(&served.url()).unwrap(),
            merchant_id: c.merchant_id,
            api_user: c.api_user,
            secret: Secret::from(c.secret),
            pos_id: "kasa-register-1".into(),
            shortlink_id: c.shortlink_id,
            timeout: Duration::from_secs(5),
        },
    );
    let (url, scans) = callback_server().await;
    client.set_callback(&url).await.unwrap();
    Rig { settle, client, recorder, _served: served, scans }
}

async fn scan(r: &mut Rig, pos_tid: &str) -> String {
    r.settle.scan(pos_tid).await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(5), r.scans.recv()).await.unwrap().unwrap();
    let scan = parse_scan(&body).unwrap();
    assert_eq!((scan.pos_tid.as_str(), scan.amount), (pos_tid, None));
    scan.token
}

#[tokio::test]
async fn qr_scan_callback_request_capture() {
    let mut r = rig().await;
    assert_eq!(r.client.qr_url("sale-42"), "http://settle.eu/s/kAsA7d/sale-42");
    let token = scan(&mut r, "sale-42").await;
    assert!(token.starts_with("token:"));
    let tid = r.client.request_payment(&token, "sale-42", Money::new(2000, Currency::EUR)).await.unwrap();
    let req = r.recorder.of("settle").into_iter().find(|x| x.path == "/merchant/v1/payment_request/").unwrap();
    assert_eq!(
        req.json(),
        serde_json::json!({"action": "SALE", "allow_credit": true, "pos_tid": "sale-42", "pos_id": "kasa-register-1",
                           "customer": token, "currency": "EUR", "amount": 2000})
    );
    assert_eq!(req.header("authorization"), Some("SECRET demo-settle-secret"));
    assert_eq!(req.header("x-settle-merchant"), Some("kasademo"));
    // Repeating the request for the same pos_tid answers the same tid.
    assert_eq!(r.client.request_payment(&token, "sale-42", Money::new(2000, Currency::EUR)).await.unwrap(), tid);

    assert_eq!(r.client.outcome(&tid).await.unwrap().status(), Status::Pending);
    assert_eq!(r.client.capture(&tid).await.unwrap_err().status(), Some(409), "no capture before AUTH");
    r.settle.approve(&tid);
    let o = r.client.outcome(&tid).await.unwrap();
    assert_eq!((o.status(), o.auth_amount, o.pos_tid.as_str()), (Status::Auth, 2000, "sale-42"));
    r.client.capture(&tid).await.unwrap();
    assert_eq!(r.client.outcome(&tid).await.unwrap().status(), Status::Ok);
    r.client.refund(&tid, Money::new(500, Currency::EUR), "r1").await.unwrap();
    r.client.refund(&tid, Money::new(500, Currency::EUR), "r1").await.unwrap(); // a repeat refunds once
    assert_eq!(r.client.refund(&tid, Money::new(1501, Currency::EUR), "r2").await.unwrap_err().status(), Some(409));
    r.client.refund(&tid, Money::new(1500, Currency::EUR), "r3").await.unwrap();
    // A used scan token can't pay again.
    let err = r.client.request_payment(&token, "sale-43", Money::new(10, Currency::EUR)).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(404), Some("CUSTOMER_NOT_FOUND")));
}

#[tokio::test]
async fn rejection_expiry_abort_and_unknown_codes() {
    let mut r = rig().await;
    let eur = |m| Money::new(m, Currency::EUR);
    let t1 = scan(&mut r, "a").await;
    let rejected = r.client.request_payment(&t1, "a", eur(100)).await.unwrap();
    r.settle.reject(&rejected);
    assert_eq!(r.client.outcome(&rejected).await.unwrap().status(), Status::Rejected);

    let t2 = scan(&mut r, "b").await;
    let expired = r.client.request_payment(&t2, "b", eur(100)).await.unwrap();
    r.settle.expire(&expired);
    assert_eq!(r.client.outcome(&expired).await.unwrap().status(), Status::RequestExpired);

    let t3 = scan(&mut r, "c").await;
    let auth_lapsed = r.client.request_payment(&t3, "c", eur(100)).await.unwrap();
    r.settle.approve(&auth_lapsed);
    r.settle.expire(&auth_lapsed);
    assert_eq!(r.client.outcome(&auth_lapsed).await.unwrap().status(), Status::AuthExpired);

    let t4 = scan(&mut r, "d").await;
    let aborted = r.client.request_payment(&t4, "d", eur(100)).await.unwrap();
    r.client.abort(&aborted).await.unwrap();
    assert_eq!(r.client.outcome(&aborted).await.unwrap().status(), Status::Aborted);

    assert_eq!(r.client.outcome("nosuchtid").await.unwrap().status(), Status::NotFound);
    for s in [Status::Rejected, Status::RequestExpired, Status::AuthExpired, Status::Aborted, Status::NotFound] {
        assert!(s.is_failed() && !s.is_pending(), "{s:?}");
    }
    assert!(Status::from_code(1010).is_pending(), "an unknown 1xxx code is still pending");
    assert!(Status::from_code(5099).is_failed(), "an unknown 5xxx code is a failure");
    assert_eq!(Status::from_code(3008).code(), 3008);

    // Wrong credentials.
    let bad = SettleClient::new(
        http_client(),
        SettleSettings {
            base_url: base_url(&r._served.url()).unwrap(),
            merchant_id: "kasademo".into(),
            api_user: "kasa-pos".into(),
            secret: Secret::from("wrong"),
            pos_id: "p".into(),
            shortlink_id: "kAsA7d".into(),
            timeout: Duration::from_secs(5),
        },
    );
    assert_eq!(bad.outcome(&rejected).await.unwrap_err().status(), Some(401));
    assert!(parse_scan(br#"{"meta":{"event":"other"},"object":{"id":"x"}}"#).is_err());
}
