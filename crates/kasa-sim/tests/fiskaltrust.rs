//! The fiskaltrust sandbox against its wire contract: every status it answers, idempotent
//! repeats, operations in progress and in conflict, failed mode, receipt numbering and the
//! journals. Requests go through the router in-process (`oneshot`), or through the served port's
//! fault plan for the sandbox as a whole.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::Request;
use http_body_util::BodyExt;
use kasa_sim::http::Unanswered;
use kasa_sim::{Fate, Faults, Fiskaltrust, FiskaltrustConfig, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

/// One CashBox's client: its credentials on every request.
#[derive(Clone)]
struct Client {
    ft: Fiskaltrust,
    router: Router,
    config: FiskaltrustConfig,
}

/// An answer: status, body as sent, body as JSON (`Null` when not JSON).
struct Answer {
    status: u16,
    text: String,
    json: Value,
}

impl Client {
    fn new(config: FiskaltrustConfig) -> Client {
        let ft = Fiskaltrust::new(config.clone());
        Client { router: ft.router(), ft, config }
    }

    fn italy() -> Client {
        Client::new(FiskaltrustConfig::default())
    }

    /// Signs in a task of its own, as a second register would.
    fn spawn_sign(
        &self,
        operation_id: String,
        body: Value,
        extra: Vec<(&'static str, String)>,
    ) -> tokio::task::JoinHandle<Answer> {
        let c = self.clone();
        tokio::spawn(async move { c.sign_with(&operation_id, &body, &extra).await })
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: String) -> Answer {
        let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req.body(Body::from(body)).expect("a request");
        let Ok(resp) = self.router.clone().oneshot(req).await;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("a body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, text, json }
    }

    fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x-cashbox-id", self.config.cashbox_id.clone()),
            ("x-cashbox-accesstoken", self.config.access_token.clone()),
        ]
    }

    async fn sign_with(&self, operation_id: &str, body: &Value, extra: &[(&'static str, String)]) -> Answer {
        let mut headers = self.credentials();
        headers.push(("x-operation-id", operation_id.to_string()));
        headers.extend(extra.iter().cloned());
        self.send("POST", "/v2/sign", &headers, body.to_string()).await
    }

    async fn sign(&self, operation_id: &str, body: &Value) -> Answer {
        self.sign_with(operation_id, body, &[]).await
    }

    async fn journal(&self, kind: &str, query: &str) -> Answer {
        let path = format!("/v2/journal/{}/{kind}{query}", self.config.queue_id);
        self.send("GET", &path, &self.credentials(), String::new()).await
    }
}

fn op(n: u32) -> String {
    format!("5a0e7c3d-1b2f-4a6e-8d9c-{n:012}")
}

fn cashbox() -> String {
    FiskaltrustConfig::default().cashbox_id
}

/// A cash sale of one item at 22 %.
fn sale(reference: &str, amount: f64) -> Value {
    json!({
        "ftCashBoxID": cashbox(),
        "ftPosSystemId": "0b8e2f4c-7d1a-4e3b-9c5f-2a6d8e0f1b3c",
        "cbTerminalID": "T1",
        "cbReceiptReference": reference,
        "cbReceiptMoment": "2024-03-29T10:15:00.000Z",
        "ftReceiptCase": "0x4954200000000001",
        "cbChargeItems": [{
            "Quantity": 1.0, "Description": "Espresso", "Amount": amount, "VATRate": 22.0,
            "ftChargeItemCase": "0x4954200000000301", "ProductNumber": "SKU1"
        }],
        "cbPayItems": [{"Quantity": 1.0, "Description": "Cash", "Amount": amount, "ftPayItemCase": "0x4954200000000001"}]
    })
}

/// A receipt without items of the given case.
fn itemless(reference: &str, case: &str) -> Value {
    json!({
        "ftCashBoxID": cashbox(),
        "cbTerminalID": "T1",
        "cbReceiptReference": reference,
        "cbReceiptMoment": "2024-03-29T18:00:00Z",
        "ftReceiptCase": case,
        "cbChargeItems": [],
        "cbPayItems": []
    })
}

fn zero(reference: &str) -> Value {
    itemless(reference, "0x4954200000002000")
}

fn refund(reference: &str, previous: &str, amount: f64) -> Value {
    let mut r = sale(reference, -amount);
    r["ftReceiptCase"] = json!("0x4954200000100001");
    r["cbPreviousReceiptReference"] = json!(previous);
    r["cbChargeItems"][0]["Quantity"] = json!(-1.0);
    r
}

fn without(r: &mut Value, field: &str) {
    if let Some(m) = r.as_object_mut() {
        m.remove(field);
    }
}

fn details(a: &Answer) -> (String, String) {
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.json["error"], "validation_error", "{}", a.text);
    let d = &a.json["details"];
    (d["field"].as_str().unwrap_or("").to_string(), d["reason"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_receipt_is_signed_with_the_documented_response() {
    let c = Client::italy();
    let body = json!({
        "ftCashBoxID": cashbox(),
        "ftPosSystemId": "0b8e2f4c-7d1a-4e3b-9c5f-2a6d8e0f1b3c",
        "cbTerminalID": "T1",
        "cbReceiptReference": "SALE-1234",
        "cbReceiptMoment": "2024-03-29T10:15:00.000Z",
        "ftReceiptCase": "0x4954200000000001",
        "cbChargeItems": [
            {"Quantity": 2.0, "Description": "Product A", "Amount": 122.00, "VATRate": 22.00,
             "ftChargeItemCase": "0x4954200000000301", "ProductNumber": "SKU123"},
            {"Quantity": 1.0, "Description": "Service B", "Amount": 50.00, "VATRate": 10.00,
             "ftChargeItemCase": "0x4954200000000102"}
        ],
        "cbPayItems": [
            {"Description": "Cash", "Amount": 100.00, "ftPayItemCase": "0x4954200000000001"},
            {"Description": "Credit Card", "Amount": 72.00, "ftPayItemCase": "0x4954200000000005",
             "ftPayItemCaseData": {"Provider": {"Protocol": "worldline_wpi_2", "Action": "payment"}}}
        ]
    });
    let a = c.sign(&op(1), &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let r = &a.json;
    assert_eq!(r["ftQueueID"], c.config.queue_id);
    assert_eq!(r["ftCashBoxIdentification"], "IT-SCU-1234567");
    assert_eq!(r["ftReceiptIdentification"], "ft1");
    assert_eq!(r["ftQueueRow"], 1);
    assert_eq!(r["ftState"], "0x4954200000000000");
    assert!(uuid::Uuid::try_parse(r["ftQueueItemID"].as_str().unwrap_or("")).is_ok(), "{r}");
    let at = r["ftReceiptMoment"].as_str().unwrap_or("");
    assert!(at.ends_with('Z') && at.len() == 24 && at.as_bytes()[19] == b'.', "{at}");
    let sigs = r["ftSignatures"].as_array().cloned().unwrap_or_default();
    assert_eq!(sigs.len(), 3);
    assert_eq!(
        sigs[0],
        json!({"ftSignatureFormat": "0x4954200000000001", "ftSignatureType": "0x4954200000000001",
               "Caption": "RT Device", "Data": "RT-12345678"})
    );
    assert_eq!(sigs[1]["Caption"], "Signature");
    assert_eq!(sigs[1]["ftSignatureType"], "0x4954200000000002");
    let hash = sigs[1]["Data"].as_str().unwrap_or("");
    assert_eq!(hash.len(), 64);
    assert_eq!(sigs[2]["Caption"], "QR");
    assert_eq!(sigs[2]["ftSignatureFormat"], "0x4954200000000003");
    assert_eq!(sigs[2]["Data"], format!("IT-SCU-1234567_ft1_{at}_172.00_{hash}"));

    assert_eq!(c.ft.signed_count("SALE-1234"), 1);
    assert_eq!(c.ft.operations(), 1);
    assert_eq!(c.ft.response_of(&op(1)).as_ref(), Some(r));
    let journal = c.ft.receipts();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0]["ftReceiptNumber"], 1);
    assert_eq!(journal[0]["ftReceiptTotal"], 172.0);
    assert_eq!(journal[0]["cbReceiptReference"], "SALE-1234");
    assert_eq!(journal[0]["ftQueueItemId"], r["ftQueueItemID"]);
}

#[tokio::test]
async fn the_same_operation_repeated_answers_the_stored_response_byte_for_byte() {
    let c = Client::italy();
    let first = c.sign(&op(1), &sale("S-1", 3.5)).await;
    assert_eq!(first.status, 200);
    // The same body written differently (keys reordered, numbers as integers) is the same request.
    let rewritten =
        r#"{"cbPayItems":[{"Quantity":1,"Description":"Cash","Amount":3.50,"ftPayItemCase":"0x4954200000000001"}],
        "ftCashBoxID":"CASHBOX","ftPosSystemId":"0b8e2f4c-7d1a-4e3b-9c5f-2a6d8e0f1b3c","cbTerminalID":"T1",
        "cbReceiptReference":"S-1","cbReceiptMoment":"2024-03-29T10:15:00.000Z","ftReceiptCase":"0x4954200000000001",
        "cbChargeItems":[{"Quantity":1,"Description":"Espresso","Amount":3.5,"VATRate":22,
        "ftChargeItemCase":"0x4954200000000301","ProductNumber":"SKU1"}]}"#
            .replace("CASHBOX", &cashbox());
    for _ in 0..3 {
        let again = c.sign(&op(1), &sale("S-1", 3.5)).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.text, first.text);
        let mut headers = c.credentials();
        headers.push(("x-operation-id", op(1).to_uppercase()));
        let same = c.send("POST", "/v2/sign", &headers, rewritten.clone()).await;
        assert_eq!(same.status, 200, "{}", same.text);
        assert_eq!(same.text, first.text);
    }
    // Still repeatable with the SCU down: the answer is stored, nothing is signed.
    c.ft.set_scu_reachable(false);
    assert_eq!(c.sign(&op(1), &sale("S-1", 3.5)).await.text, first.text);
    assert!(!c.ft.in_failed_mode());
    assert_eq!(c.ft.signed_count("S-1"), 1);
    assert_eq!(c.ft.operations(), 1);
    assert_eq!(c.ft.receipts().len(), 1);
}

#[tokio::test]
async fn a_reference_signed_under_another_operation_is_refused() {
    let c = Client::italy();
    assert_eq!(c.sign(&op(1), &sale("S-1", 3.5)).await.status, 200);
    let a = c.sign(&op(2), &sale("S-1", 3.5)).await;
    assert_eq!(details(&a), ("cbReceiptReference".into(), "duplicate cbReceiptReference".into()));
    assert_eq!(c.ft.signed_count("S-1"), 1);
    assert_eq!(c.ft.response_of(&op(2)), None);
}

#[tokio::test]
async fn the_same_operation_with_another_body_is_a_conflict_and_signs_nothing() {
    let c = Client::italy();
    let first = c.sign(&op(1), &sale("S-1", 3.5)).await;
    assert_eq!(first.status, 200);
    for other in [sale("S-1", 4.0), sale("S-2", 3.5)] {
        let a = c.sign(&op(1), &other).await;
        assert_eq!(a.status, 422, "{}", a.text);
        assert_eq!(a.json["error"], "operation_conflict");
        assert!(a.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert_eq!(c.ft.receipts().len(), 1);
    assert_eq!(c.ft.signed_count("S-2"), 0);
    assert_eq!(c.sign(&op(1), &sale("S-1", 3.5)).await.text, first.text);
}

#[tokio::test(start_paused = true)]
async fn a_repeat_while_signing_is_in_progress_answers_422_then_the_result() {
    let c = Client::new(FiskaltrustConfig { sign_delay: Duration::from_secs(2), ..Default::default() });
    let first = c.spawn_sign(op(1), sale("S-1", 3.5), Vec::new());
    c.ft.wait_in_progress(1).await;
    assert_eq!(c.ft.in_progress(), 1);
    let repeat = c.sign(&op(1), &sale("S-1", 3.5)).await;
    assert_eq!(repeat.status, 422, "{}", repeat.text);
    assert_eq!(repeat.json["error"], "operation_in_progress");
    let other = c.sign(&op(1), &sale("S-1", 9.0)).await;
    assert_eq!(other.json["error"], "operation_conflict");
    // Another operation for the same reference while the first is signing is a duplicate.
    let rival = c.sign(&op(2), &sale("S-1", 3.5)).await;
    assert_eq!(details(&rival).1, "duplicate cbReceiptReference");
    assert!(c.ft.receipts().is_empty());

    let first = first.await.expect("the first request").text;
    let done: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
    assert_eq!(done["ftReceiptIdentification"], "ft1");
    assert_eq!(c.ft.in_progress(), 0);
    assert_eq!(c.sign(&op(1), &sale("S-1", 3.5)).await.text, first);
    assert_eq!(c.ft.signed_count("S-1"), 1);
}

#[tokio::test(start_paused = true)]
async fn an_operation_past_its_lifetime_still_answers_422_and_still_finishes() {
    let c = Client::new(FiskaltrustConfig { sign_delay: Duration::from_secs(5), ..Default::default() });
    let lifetime = [("x-operation-lifetime", "1000".to_string())];
    let first = c.spawn_sign(op(1), sale("S-1", 3.5), lifetime.to_vec());
    c.ft.wait_in_progress(1).await;
    let early = c.sign_with(&op(1), &sale("S-1", 3.5), &lifetime).await;
    assert_eq!(early.json["error"], "operation_in_progress");
    assert!(!early.json["message"].as_str().unwrap_or("").contains("lifetime"), "{}", early.text);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = c.sign_with(&op(1), &sale("S-1", 3.5), &lifetime).await;
    assert_eq!(late.status, 422);
    assert_eq!(late.json["error"], "operation_in_progress");
    assert!(late.json["message"].as_str().unwrap_or("").contains("lifetime of 1000 ms"), "{}", late.text);
    assert_eq!(first.await.expect("the first request").status, 200);
    assert_eq!(c.ft.signed_count("S-1"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_sign_abandoned_midway_leaves_nothing_behind() {
    let c = Client::new(FiskaltrustConfig { sign_delay: Duration::from_secs(2), ..Default::default() });
    let first = c.spawn_sign(op(1), sale("S-1", 3.5), Vec::new());
    c.ft.wait_in_progress(1).await;
    first.abort();
    assert!(first.await.is_err());
    assert_eq!(c.ft.in_progress(), 0);
    assert_eq!(c.ft.receipts().len(), 0);
    // Neither the operation nor the reference is held: both are processed anew.
    let again = c.sign(&op(1), &sale("S-1", 3.5)).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["ftReceiptIdentification"], "ft1");
}

#[tokio::test]
async fn credentials_are_checked_on_every_endpoint() {
    let c = Client::italy();
    let journal = format!("/v2/journal/{}/ReceiptJournal", c.config.queue_id);
    let endpoints = [
        ("POST", "/v2/sign", sale("S-1", 1.0).to_string()),
        ("POST", "/v2/echo", json!({"Message": "hi"}).to_string()),
        ("POST", "/v2/configuration", json!({"ftCashBoxID": cashbox(), "cbTerminalID": "T1"}).to_string()),
        ("GET", journal.as_str(), String::new()),
    ];
    let id = ("x-cashbox-id", c.config.cashbox_id.clone());
    let token = ("x-cashbox-accesstoken", c.config.access_token.clone());
    let operation = ("x-operation-id", op(1));
    let wrong_token = ("x-cashbox-accesstoken", "stolen".to_string());
    let wrong_id = ("x-cashbox-id", "00000000-0000-4000-8000-000000000000".to_string());
    for (method, path, body) in &endpoints {
        for headers in [
            vec![operation.clone()],
            vec![id.clone(), operation.clone()],
            vec![token.clone(), operation.clone()],
            vec![id.clone(), wrong_token.clone(), operation.clone()],
            vec![wrong_id.clone(), token.clone(), operation.clone()],
        ] {
            let a = c.send(method, path, &headers, body.clone()).await;
            assert_eq!(a.status, 401, "{method} {path} {headers:?}: {}", a.text);
            assert_eq!(a.json["error"], "unauthorized");
            assert!(a.json["message"].is_string());
        }
    }
    assert!(c.ft.receipts().is_empty());
    assert!(c.ft.terminals().is_empty());
}

#[tokio::test]
async fn invalid_receipts_are_refused_with_the_field_and_reason() {
    let c = Client::italy();
    let mismatch = {
        let mut r = sale("S-1", 10.0);
        r["cbPayItems"][0]["Amount"] = json!(9.99);
        r
    };
    let a = c.sign(&op(1), &mismatch).await;
    assert_eq!(
        a.json,
        json!({"error": "validation_error", "message": "Receipt validation failed",
               "details": {"field": "cbChargeItems", "reason": "Total amount mismatch with payment items"}})
    );

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut r = sale("S-1", 10.0);
        f(&mut r);
        r
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (edit(&|r| r["cbReceiptReference"] = Value::Null), "cbReceiptReference", "required"),
        (
            edit(&|r| r["cbReceiptMoment"] = json!("2024-03-29T12:15:00+02:00")),
            "cbReceiptMoment",
            "must be an RFC 3339 UTC timestamp",
        ),
        (edit(&|r| r["cbReceiptMoment"] = json!("yesterday")), "cbReceiptMoment", "must be an RFC 3339 UTC timestamp"),
        (edit(&|r| without(r, "cbPayItems")), "cbPayItems", "required"),
        (edit(&|r| without(r, "cbChargeItems")), "cbChargeItems", "required"),
        (edit(&|r| r["cbChargeItems"][0]["Quantity"] = Value::Null), "cbChargeItems[0].Quantity", "required"),
        (
            edit(&|r| r["cbChargeItems"][0]["Description"] = json!(7)),
            "cbChargeItems[0].Description",
            "must be a string",
        ),
        (edit(&|r| r["cbChargeItems"][0]["Amount"] = json!("10")), "cbChargeItems[0].Amount", "must be a number"),
        (
            edit(&|r| r["cbChargeItems"][0]["VATRate"] = json!(7.0)),
            "cbChargeItems[0].VATRate",
            "VAT rate is not one of the queue's rates",
        ),
        (
            edit(&|r| r["cbChargeItems"][0]["ftChargeItemCase"] = json!("0x4954200000000101")),
            "cbChargeItems[0].ftChargeItemCase",
            "VAT category does not match the item's VATRate",
        ),
        (
            edit(&|r| r["cbChargeItems"][0]["ftChargeItemCase"] = json!("0x495420000000301")),
            "cbChargeItems[0].ftChargeItemCase",
            "country code does not match the queue's country",
        ),
        (edit(&|r| r["cbPayItems"][0]["Description"] = Value::Null), "cbPayItems[0].Description", "required"),
        (
            edit(&|r| r["cbPayItems"][0]["ftPayItemCase"] = json!("0x4445200000000001")),
            "cbPayItems[0].ftPayItemCase",
            "country code does not match the queue's country",
        ),
        (
            edit(&|r| r["ftReceiptCase"] = json!("0x4445200000000001")),
            "ftReceiptCase",
            "country code does not match the queue's country",
        ),
        (
            edit(&|r| r["ftReceiptCase"] = json!("receipt")),
            "ftReceiptCase",
            "must be a hex string like 0x4954200000000001",
        ),
        (edit(&|r| r["ftReceiptCase"] = json!("0x4954200000000999")), "ftReceiptCase", "unknown receipt case"),
        (
            edit(&|r| r["ftCashBoxID"] = json!("00000000-0000-4000-8000-000000000000")),
            "ftCashBoxID",
            "does not match x-cashbox-id",
        ),
        (edit(&|r| r["ftReceiptCase"] = json!("0x4954200000201002")), "cbCustomer", "required for a B2B invoice"),
        (
            edit(&|r| {
                r["ftReceiptCase"] = json!("0x4954200000201002");
                r["cbCustomer"] = json!({"Name": "ACME"})
            }),
            "cbCustomer.VATId",
            "required",
        ),
        (refund("R-1", "", 10.0), "cbPreviousReceiptReference", "required for a refund"),
        (
            refund("R-1", "NEVER-SIGNED", 10.0),
            "cbPreviousReceiptReference",
            "no receipt with this reference was signed",
        ),
        (
            {
                let mut z = zero("Z-1");
                z["cbChargeItems"] = sale("x", 1.0)["cbChargeItems"].clone();
                z
            },
            "cbChargeItems",
            "a zero receipt or daily closing carries no items",
        ),
        (
            {
                let mut z = itemless("D-1", "0x4954200000002011");
                z["cbPayItems"] = sale("x", 1.0)["cbPayItems"].clone();
                z
            },
            "cbPayItems",
            "a zero receipt or daily closing carries no items",
        ),
    ];
    for (n, (body, field, reason)) in cases.iter().enumerate() {
        let a = c.sign(&op(n as u32 + 10), body).await;
        assert_eq!(details(&a), (field.to_string(), reason.to_string()), "case {n}: {}", a.text);
    }

    for (headers, field, reason) in [
        (c.credentials(), "x-operation-id", "required"),
        ([c.credentials(), vec![("x-operation-id", "op-1".to_string())]].concat(), "x-operation-id", "must be a UUID"),
        (
            [c.credentials(), vec![("x-operation-id", op(2)), ("x-operation-lifetime", "soon".to_string())]].concat(),
            "x-operation-lifetime",
            "must be a number of milliseconds",
        ),
    ] {
        let a = c.send("POST", "/v2/sign", &headers, sale("S-1", 1.0).to_string()).await;
        assert_eq!(details(&a), (field.to_string(), reason.to_string()));
    }
    let mut headers = c.credentials();
    headers.push(("x-operation-id", op(3)));
    let a = c.send("POST", "/v2/sign", &headers, "{not json".into()).await;
    assert_eq!(details(&a).0, "body");

    assert!(c.ft.receipts().is_empty());
    assert_eq!(c.ft.operations(), 0);
    // A refused request is not stored: the same operation with a good body is signed.
    let a = c.sign(&op(1), &sale("S-1", 10.0)).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn b2b_invoices_refunds_and_closings_are_signed() {
    let c = Client::italy();
    let mut invoice = sale("INV-1", 1000.0);
    invoice["ftReceiptCase"] = json!("0x4954200000201002");
    invoice["cbCustomer"] = json!({"Name": "ACME Corp", "Address": "Via Roma 123", "VATId": "IT12345678901"});
    invoice["cbPayItems"][0] =
        json!({"Description": "Bank Transfer", "Amount": 1000.0, "ftPayItemCase": "0x495420000000000a"});
    assert_eq!(c.sign(&op(1), &invoice).await.status, 200);
    let r = c.sign(&op(2), &refund("REF-1", "INV-1", 61.0)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["ftSignatures"][2]["Data"].as_str().unwrap_or("").contains("_-61.00_"), "{}", r.text);
    let d = c.sign(&op(3), &itemless("DAY-1", "0x4954200000002011")).await;
    assert_eq!(d.status, 200, "{}", d.text);
    let receipts = c.ft.receipts();
    let totals: Vec<f64> = receipts.iter().map(|r| r["ftReceiptTotal"].as_f64().unwrap_or(f64::NAN)).collect();
    assert_eq!(totals, vec![1000.0, -61.0, 0.0]);
    assert_eq!(receipts[1]["ftReceiptCase"], "0x4954200000100001");
    assert!(c.ft.action_journal().iter().any(|a| a["Type"] == "DailyClosing"));
}

#[tokio::test]
async fn with_the_scu_down_signs_fail_and_a_zero_receipt_ends_failed_mode() {
    let c = Client::italy();
    assert_eq!(c.sign(&op(1), &sale("S-1", 2.0)).await.status, 200);
    let last_contact = c.ft.receipts()[0]["ftReceiptMoment"].clone();
    c.ft.set_scu_reachable(false);
    assert!(!c.ft.scu_reachable());
    for _ in 0..2 {
        let a = c.sign(&op(2), &sale("S-2", 4.0)).await;
        assert_eq!(a.status, 500, "{}", a.text);
        assert_eq!(
            a.json,
            json!({"error": "device_not_reachable", "message": "RT device is not responding",
                   "details": {"deviceId": "RT-12345678", "lastContact": last_contact}})
        );
    }
    assert!(c.ft.in_failed_mode());
    assert_eq!(c.ft.response_of(&op(2)), None);
    assert_eq!(c.ft.signed_count("S-2"), 0);
    let entered: Vec<Value> = c.ft.action_journal().into_iter().filter(|a| a["Type"] == "FailedModeStarted").collect();
    assert_eq!(entered.len(), 1, "entered once");
    assert!(entered[0]["Message"].as_str().unwrap_or("").contains("RT-12345678"));
    // The middleware itself is up.
    let echo = c.send("POST", "/v2/echo", &c.credentials(), r#"{"Message":"ping"}"#.into()).await;
    assert_eq!((echo.status, echo.text.as_str()), (200, r#"{"Message":"ping"}"#));
    assert_eq!(c.sign(&op(3), &zero("Z-0")).await.status, 500);

    c.ft.set_scu_reachable(true);
    let retried = c.sign(&op(2), &sale("S-2", 4.0)).await;
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.json["ftState"], "0x4954200000000002");
    assert_eq!(retried.json["ftReceiptIdentification"], "ft2");
    let next = c.sign(&op(4), &sale("S-3", 1.0)).await;
    assert_eq!(next.json["ftState"], "0x4954200000000002");
    assert_eq!(c.ft.failed_mode_receipts(), Some(2));
    assert!(c.ft.in_failed_mode());

    let z = c.sign(&op(3), &zero("Z-0")).await;
    assert_eq!(z.status, 200, "{}", z.text);
    assert_eq!(z.json["ftState"], "0x4954200000000000");
    assert_eq!(z.json["ftReceiptIdentification"], "ft4");
    assert!(!c.ft.in_failed_mode());
    let ended: Vec<Value> = c.ft.action_journal().into_iter().filter(|a| a["Type"] == "FailedModeEnded").collect();
    assert_eq!(ended.len(), 1);
    assert!(ended[0]["Message"].as_str().unwrap_or("").contains("2 receipt(s) were signed in failed mode"));
    let after = c.sign(&op(5), &sale("S-4", 1.0)).await;
    assert_eq!(after.json["ftState"], "0x4954200000000000");
    let states: Vec<Value> = c.ft.receipts().iter().map(|r| r["ftState"].clone()).collect();
    assert_eq!(
        states,
        vec![
            json!("0x4954200000000000"),
            json!("0x4954200000000002"),
            json!("0x4954200000000002"),
            json!("0x4954200000000000"),
            json!("0x4954200000000000")
        ]
    );
}

#[tokio::test]
async fn receipts_are_numbered_without_gaps_whatever_fails_between_them() {
    let c = Client::italy();
    let mut expected = Vec::new();
    for n in 1..=12u32 {
        // Refused and failed attempts in between take no number.
        let mut bad = sale(&format!("S-{n}"), 5.0);
        bad["cbPayItems"][0]["Amount"] = json!(4.0);
        assert_eq!(c.sign(&op(1000 + n), &bad).await.status, 400);
        c.ft.set_scu_reachable(false);
        assert_eq!(c.sign(&op(n), &sale(&format!("S-{n}"), 5.0)).await.status, 500);
        c.ft.set_scu_reachable(true);
        let body = match n {
            4 => zero("Z-4"),
            9 => itemless("D-9", "0x4954200000002011"),
            _ => sale(&format!("S-{n}"), 5.0),
        };
        let a = c.sign(&op(n), &body).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["ftReceiptIdentification"], format!("ft{n:X}"));
        assert_eq!(a.json["ftQueueRow"], n);
        expected.push(n);
    }
    let numbers: Vec<u32> = c.ft.receipts().iter().map(|r| r["ftReceiptNumber"].as_u64().unwrap_or(0) as u32).collect();
    assert_eq!(numbers, expected);
    let ids: Vec<String> =
        c.ft.receipts().iter().map(|r| r["ftReceiptIdentification"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(ids[9..], ["ftA".to_string(), "ftB".into(), "ftC".into()]);
}

#[tokio::test]
async fn journals_page_by_row() {
    let c = Client::italy();
    for n in 1..=5u32 {
        assert_eq!(c.sign(&op(n), &sale(&format!("S-{n}"), f64::from(n))).await.status, 200);
    }
    let all = c.journal("ReceiptJournal", "").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.json, Value::Array(c.ft.receipts()));
    let page = c.journal("ReceiptJournal", "?from=2&take=2").await;
    let refs: Vec<&str> =
        page.json.as_array().into_iter().flatten().filter_map(|r| r["cbReceiptReference"].as_str()).collect();
    assert_eq!(refs, ["S-3", "S-4"]);
    let rest = c.journal("ReceiptJournal", "?from=4").await;
    assert_eq!(rest.json.as_array().map(Vec::len), Some(1));
    assert_eq!(rest.json[0]["ftReceiptTotal"], 5.0);
    assert_eq!(c.journal("ReceiptJournal", "?from=5").await.json, json!([]));
    assert_eq!(c.journal("ReceiptJournal", "?take=0").await.json, json!([]));
    assert_eq!(c.journal("ReceiptJournal", "?take=5000").await.json.as_array().map(Vec::len), Some(5));

    let items = c.journal("QueueItem", "?from=3&take=1").await;
    assert_eq!(items.status, 200);
    let item = &items.json[0];
    assert_eq!(item["ftQueueRow"], 4);
    assert_eq!(item["operationId"], op(4));
    assert_eq!(item["cbReceiptReference"], "S-4");
    assert_eq!(item["request"], sale("S-4", 4.0));
    assert_eq!(Some(&item["response"]), c.ft.response_of(&op(4)).as_ref());
    assert!(item["ftWorkMoment"].is_string() && item["ftDoneMoment"].is_string());

    for t in ["T1", "T2", "T1"] {
        let body = json!({"ftCashBoxID": cashbox(), "cbTerminalID": t}).to_string();
        assert_eq!(c.send("POST", "/v2/configuration", &c.credentials(), body).await.status, 200);
    }
    c.ft.set_scu_reachable(false);
    assert_eq!(c.sign(&op(6), &sale("S-6", 1.0)).await.status, 500);
    let actions = c.journal("ActionJournal", "").await;
    let kinds: Vec<&str> = actions.json.as_array().into_iter().flatten().filter_map(|a| a["Type"].as_str()).collect();
    assert_eq!(kinds, ["TerminalPaired", "TerminalPaired", "FailedModeStarted"]);
    let rows: Vec<u64> =
        actions.json.as_array().into_iter().flatten().filter_map(|a| a["ftQueueRow"].as_u64()).collect();
    assert_eq!(rows, [1, 2, 3]);
    assert_eq!(actions.json[2]["Priority"], 1);
    let tail = c.journal("ActionJournal", "?from=1&take=1").await;
    assert_eq!(tail.json.as_array().map(Vec::len), Some(1));
    assert_eq!(tail.json[0]["Message"], "Terminal T2 paired");
    assert_eq!(Value::Array(c.ft.action_journal()), actions.json);

    let unknown = c.journal("Receipts", "").await;
    assert_eq!(details(&unknown).0, "type");
    assert_eq!(details(&c.journal("ReceiptJournal", "?take=-1").await).0, "take");
    assert_eq!(details(&c.journal("ReceiptJournal", "?from=x").await).0, "from");
    let path = "/v2/journal/00000000-0000-4000-8000-000000000000/ReceiptJournal";
    let missing = c.send("GET", path, &c.credentials(), String::new()).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["error"], "not_found");
}

#[tokio::test]
async fn configuration_pairs_terminals_once() {
    let c = Client::italy();
    let pair = |t: &str| json!({"ftCashBoxID": cashbox(), "cbTerminalID": t}).to_string();
    let a = c.send("POST", "/v2/configuration", &c.credentials(), pair("T1")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.json,
        json!({"ftCashBoxID": c.config.cashbox_id, "ftQueueID": c.config.queue_id,
               "ftCashBoxIdentification": "IT-SCU-1234567", "Country": "IT", "Terminals": ["T1"]})
    );
    c.send("POST", "/v2/configuration", &c.credentials(), pair("T2")).await;
    let again = c.send("POST", "/v2/configuration", &c.credentials(), pair("T1")).await;
    assert_eq!(again.json["Terminals"], json!(["T1", "T2"]));
    assert_eq!(c.ft.terminals(), ["T1", "T2"]);
    let wrong = json!({"ftCashBoxID": "00000000-0000-4000-8000-000000000000", "cbTerminalID": "T3"}).to_string();
    let refused = c.send("POST", "/v2/configuration", &c.credentials(), wrong).await;
    assert_eq!(details(&refused).0, "ftCashBoxID");
    assert_eq!(c.ft.terminals().len(), 2);
}

#[tokio::test]
async fn the_sandbox_serves_it_with_the_common_fault_knobs() {
    // The document's Italian queue (the whole sandbox's default is coded for Türkiye).
    let c = SandboxConfig { fiskaltrust: kasa_sim::FiskaltrustConfig::default(), ..Default::default() };
    let sandbox = Sandbox::start(c).await.expect("the sandbox starts");
    assert_eq!(sandbox.url("fiskaltrust"), Some(sandbox.fiskaltrust_url()));
    let config = &sandbox.config.fiskaltrust;
    let request = |operation: &str, reference: &str| {
        Request::builder()
            .method("POST")
            .uri("/v2/sign")
            .header("content-type", "application/json")
            .header("x-cashbox-id", config.cashbox_id.as_str())
            .header("x-cashbox-accesstoken", config.access_token.as_str())
            .header("x-operation-id", operation)
            .body(Bytes::from(sale(reference, 12.5).to_string()))
            .expect("a request")
    };
    // The receipt is signed but its answer is lost on the way back.
    sandbox.fiskaltrust_http.control.set_faults(Faults { lost_response_rate: 1.0, ..Default::default() });
    assert_eq!(sandbox.fiskaltrust_http.call(request(&op(1), "S-1")).await.err(), Some(Unanswered::Cut));
    assert_eq!(sandbox.fiskaltrust.signed_count("S-1"), 1);
    sandbox.fiskaltrust_http.control.clear_faults();
    let resp = sandbox.fiskaltrust_http.call(request(&op(1), "S-1")).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    assert_eq!(Some(body), sandbox.fiskaltrust.response_of(&op(1)));
    assert_eq!(sandbox.fiskaltrust.signed_count("S-1"), 1);
    let fates: Vec<Fate> = sandbox.recorder.of("fiskaltrust").iter().map(|r| r.fate).collect();
    assert_eq!(fates, [Fate::ResponseLost, Fate::Answered]);

    // The demo panel's control.
    let down = Request::builder().method("POST").uri("/_sim/fiskaltrust/scu/down").body(Bytes::new());
    let resp = sandbox.fiskaltrust_http.call(down.expect("a request")).await.expect("an answer");
    assert_eq!(resp.status(), 200);
    assert!(!sandbox.fiskaltrust.scu_reachable());
    assert_eq!(sandbox.fiskaltrust_http.call(request(&op(2), "S-2")).await.map(|r| r.status().as_u16()), Ok(500));
}
