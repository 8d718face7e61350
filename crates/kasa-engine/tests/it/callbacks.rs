//! The Settle callback server trusts no one who can reach it: a callback without the key of this
//! start, with another key, for a QR code no attempt shows, for another amount, too large, or
//! one of a flood is refused and journaled, and the customer's real scan still pays.

use std::time::Duration;

use kasa_core::{PayMethod, SaleState};
use kasa_sim::SettleCustomer;

use super::{harness_with, wait_for_orders};

const WAIT: Duration = Duration::from_secs(10);

fn scan_body(pos_tid: &str, amount: Option<i64>) -> String {
    let amount = amount.map(|a| format!(r#","amount":{a}"#)).unwrap_or_default();
    format!(
        r#"{{"meta":{{"seqno":0,"labels":[],"uri":null,"id":"D5S6WYjnQ_ObT-DyZfrVPA","context":"ctx:x","timestamp":"2026-12-02 08:58:49","event":"shortlink_scanned"}},"object":{{"id":"token:1234567890","argstring":"{pos_tid}"{amount}}}}}"#
    )
}

#[tokio::test]
async fn forged_settle_callbacks_are_refused_and_journaled() {
    let h = harness_with(|c| c.settle.customer = SettleCustomer::Manual).await;
    let sb = h.sandbox.settle.clone();
    let mut uri = None;
    for _ in 0..500 {
        uri = sb.callback_uri();
        if uri.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let uri = uri.expect("the register registered its callback");
    let url = reqwest::Url::parse(&uri).unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"), "the callback listens on loopback by default: {uri}");
    let (base, key) = uri.rsplit_once('/').unwrap();
    assert_eq!(base.rsplit_once('/').unwrap().1, "callback");
    assert_eq!(key.len(), 64, "a 256-bit key in the URL: {uri}");

    let order = wait_for_orders(&h.engine, 1).await[0].clone();
    let sale = h.engine.open_order_sale(&order.order_id).await.unwrap();
    h.engine.pay(&sale.id, PayMethod::Settle).await.unwrap();
    h.engine.wait_for_state(&sale.id, SaleState::Paying, WAIT).await.unwrap();
    let attempt = h.engine.sale_view(&sale.id).await.unwrap().attempt.expect("an attempt");
    let qr = attempt.qr.expect("a QR code");
    let pos_tid = qr.rsplit('/').next().unwrap().to_string();

    let http = reqwest::Client::new();
    let post = |to: String, body: String| {
        let http = http.clone();
        async move { http.post(to).body(body).send().await.unwrap().status().as_u16() }
    };
    let wrong_key = format!("{base}/{}", "0".repeat(64));
    let cases = [
        ("no key", post(base.to_string(), scan_body(&pos_tid, None)).await, 401),
        ("wrong key", post(wrong_key, scan_body(&pos_tid, None)).await, 401),
        ("unknown pos_tid", post(uri.clone(), scan_body("KASA-NOBODY", None)).await, 409),
        ("wrong amount", post(uri.clone(), scan_body(&pos_tid, Some(attempt.amount.minor + 1))).await, 409),
        (
            "not a scan",
            post(uri.clone(), r#"{"meta":{"event":"payment_request_update"},"object":{"id":"x"}}"#.into()).await,
            400,
        ),
        ("oversized", post(uri.clone(), format!("{}{}", scan_body(&pos_tid, None), " ".repeat(20_000))).await, 413),
    ];
    for (what, got, want) in cases {
        assert_eq!(got, want, "{what}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sb.pending().is_empty(), "a forged scan made a payment request");
    assert_eq!(h.engine.sale(&sale.id).await.unwrap().state, SaleState::Paying);

    // Two floods: the rate limit refuses most, and only a bounded share is journaled.
    let mut passed = 0;
    for round in 0..2 {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
        let flood = futures_statuses(&http, base, 100).await;
        let limited = flood.iter().filter(|s| **s == 429).count();
        assert!(limited >= 60, "{limited} of 100 were rate limited: {flood:?}");
        assert!(flood.iter().all(|s| *s == 429 || *s == 401), "{flood:?}");
        passed += 100 - limited;
    }
    assert!(passed + 6 > 30, "the floods gave {passed} refusals to journal; the test needs more than 30");

    let refused = || {
        h.engine
            .store()
            .journal_page(0, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "settle_callback_refused")
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap())
            .collect::<Vec<_>>()
    };
    let mut journaled = refused();
    for _ in 0..100 {
        if journaled.len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        journaled = refused();
    }
    let reasons: Vec<&str> = journaled.iter().take(6).map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["no_key", "wrong_key", "unknown_pos_tid", "wrong_amount", "unreadable", "unreadable"]);
    assert_eq!(journaled[3]["pos_tid"], pos_tid.as_str());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refused().len(), 30, "at most 30 refusals a minute are journaled");

    // The customer's real scan, after the limit refills, still pays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sb.scan(&pos_tid).await.unwrap();
    for _ in 0..500 {
        if !sb.pending().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sb.approve(&sb.tid_of(&pos_tid).expect("a payment request for the scanned QR code"));
    let paid = h.engine.wait_settled(&sale.id, WAIT).await.unwrap();
    assert!(paid.state.is_paid(), "{paid:?}");
    assert_eq!(sb.captured().len(), 1);
}

async fn futures_statuses(http: &reqwest::Client, base: &str, n: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (http, to) = (http.clone(), base.to_string());
        tasks.push(tokio::spawn(async move { http.post(to).body("{}").send().await.unwrap().status().as_u16() }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
