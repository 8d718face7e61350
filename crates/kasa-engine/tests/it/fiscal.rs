//! Fiscalization through the fiskaltrust sandbox: the exact receipts sent for each of the
//! document's use cases, signing inside the durable sale, a lost answer and a restart during
//! signing, and selling through a signing unit that is down.

use crate::manager;
use std::time::Duration;

use kasa_core::{BusinessCustomer, FiscalState, PayMethod, SaleState};
use kasa_engine::Engine;
use kasa_sim::Sandbox;
use serde_json::{Value, json};

use crate::{fast_retries, harness, register, settle};

const CASHBOX: &str = "6f1c2a4e-8b3d-4c5e-9a7f-1d2e3c4b5a60";

/// The sign requests the sandbox received, with their operation ids, in arrival order.
fn signs(sandbox: &Sandbox) -> Vec<(String, Value)> {
    sandbox
        .recorder
        .of("fiskaltrust")
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/sign")
        .map(|r| (r.header("x-operation-id").unwrap_or_default().to_string(), r.json()))
        .collect()
}

/// The body of the sign request for `reference` (the last one, if it was repeated).
fn body_of(sandbox: &Sandbox, reference: &str) -> Value {
    signs(sandbox)
        .into_iter()
        .rev()
        .map(|(_, b)| b)
        .find(|b| b["cbReceiptReference"] == reference)
        .unwrap_or_else(|| panic!("no sign request for {reference}"))
}

fn moment(at: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(time::UtcOffset::UTC).format(&f).unwrap()
}

async fn paid_shop_sale(engine: &Engine, items: &[(&str, u32)], pays: &[PayMethod]) -> kasa_core::Sale {
    let sale = engine.open_shop_sale().await.unwrap();
    for (sku, n) in items {
        engine.add_item(&sale.id, sku, *n).await.unwrap();
    }
    pay_all(engine, &sale.id, pays).await
}

async fn pay_all(engine: &Engine, sale_id: &str, pays: &[PayMethod]) -> kasa_core::Sale {
    for (i, p) in pays.iter().enumerate() {
        let part = match p {
            PayMethod::Card if i + 1 < pays.len() => Some(
                kasa_core::Money::parse_decimal("70.00", engine.sale(sale_id).await.unwrap().basket.currency).unwrap(),
            ),
            _ => None,
        };
        engine.pay_part(sale_id, p.clone(), part).await.unwrap();
        engine.wait_settled(sale_id, Duration::from_secs(20)).await.unwrap();
    }
    let s = engine.sale(sale_id).await.unwrap();
    assert!(s.state.is_paid(), "the sale is paid: {:?} {:?}", s.state, s.notice);
    s
}

fn cash(amount: &str) -> PayMethod {
    PayMethod::Cash {
        tendered: kasa_core::Money::parse_decimal(amount, kasa_core::Currency::parse("TRY").unwrap()).unwrap(),
    }
}

/// Waits until every receipt of the sale is signed.
async fn signed(engine: &Engine, sale_id: &str) -> kasa_core::Sale {
    for _ in 0..500 {
        let s = engine.sale(sale_id).await.unwrap();
        if !s.fiscal.is_empty() && s.fiscal.iter().all(|r| r.state == FiscalState::Signed) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the receipts of {sale_id} were never signed");
}

fn card_pay_item(p: &kasa_core::Payment, amount: f64, refund: bool) -> Value {
    let kasa_core::PaymentKind::Card { slip } = &p.kind else { panic!("not a card payment") };
    json!({
        "Quantity": 1.0,
        "Description": format!("Card {} {}{}", slip.brand, slip.masked_pan, if refund { " refund" } else { "" }),
        "Amount": amount,
        "ftPayItemCase": "0x5452200000000005",
        "MoneyNumber": slip.transaction_ref,
        "ftPayItemCaseData": { "Provider": {
            "Protocol": "finix",
            "Action": if refund { "refund" } else { "payment" },
            "ProtocolVersion": "2022-02-01",
            "ProtocolResponse": {
                "TransferId": slip.transaction_ref,
                "ApprovalCode": slip.approval_code,
                "TerminalId": slip.terminal_ref,
                "EntryMode": slip.entry_mode,
            }
        }}
    })
}

/// What a use case does at the register: the reference of the receipt it makes, and the body
/// that must be sent for it.
type Played<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = (String, Value)> + 'a>>;

/// One use case of the document: what the cashier does, and the receipt that must be sent.
struct UseCase {
    name: &'static str,
    run: fn(&Engine) -> Played<'_>,
}

fn kola() -> Value {
    json!({ "Quantity": 2.0, "Description": "Kola 330 ml", "Amount": 90.0, "VATRate": 20.0,
            "ftChargeItemCase": "0x5452200000000301", "ProductNumber": "5449000000996", "UnitPrice": 45.0 })
}

fn kahve() -> Value {
    json!({ "Quantity": 1.0, "Description": "Türk Kahvesi", "Amount": 60.0, "VATRate": 10.0,
            "ftChargeItemCase": "0x5452200000000101", "ProductNumber": "8690000000200", "UnitPrice": 60.0 })
}

fn header(reference: &str, at: &str, case: &str) -> Value {
    json!({ "ftCashBoxID": CASHBOX, "cbTerminalID": "T1", "cbReceiptReference": reference,
            "cbReceiptMoment": at, "ftReceiptCase": case })
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

const CASES: &[UseCase] = &[
    UseCase {
        name: "standard sale: two VAT rates, cash",
        run: |e| {
            Box::pin(async move {
                let s = paid_shop_sale(e, &[("5449000000996", 2), ("8690000000200", 1)], &[cash("150.00")]).await;
                let expected = with(
                    header(&s.id.0, &moment(s.paid_at.unwrap()), "0x5452200000000001"),
                    json!({ "cbChargeItems": [kola(), kahve()],
                            "cbPayItems": [{ "Quantity": 1.0, "Description": "Cash", "Amount": 150.0, "ftPayItemCase": "0x5452200000000001" }] }),
                );
                (s.id.0, expected)
            })
        },
    },
    UseCase {
        name: "mixed payment: card then cash",
        run: |e| {
            Box::pin(async move {
                let s = paid_shop_sale(e, &[("8690000000309", 1)], &[PayMethod::Card, cash("50.00")]).await;
                let expected = with(
                    header(&s.id.0, &moment(s.paid_at.unwrap()), "0x5452200000000001"),
                    json!({ "cbChargeItems": [{ "Quantity": 1.0, "Description": "Cam Suyu 3 L", "Amount": 120.0, "VATRate": 20.0,
                                                "ftChargeItemCase": "0x5452200000000301", "ProductNumber": "8690000000309", "UnitPrice": 120.0 }],
                            "cbPayItems": [card_pay_item(&s.payments[0], 70.0, false),
                                           { "Quantity": 1.0, "Description": "Cash", "Amount": 50.0, "ftPayItemCase": "0x5452200000000001" }] }),
                );
                (s.id.0, expected)
            })
        },
    },
    UseCase {
        name: "B2B invoice with the customer",
        run: |e| {
            Box::pin(async move {
                let sale = e.open_shop_sale().await.unwrap();
                e.add_item(&sale.id, "8690000000200", 1).await.unwrap();
                let acme = BusinessCustomer {
                    name: "ACME Lojistik A.Ş.".into(),
                    address: Some("Atatürk Cad. 12, 34000 İstanbul".into()),
                    vat_id: "TR1234567890".into(),
                };
                e.set_customer(&sale.id, Some(acme)).await.unwrap();
                let s = pay_all(e, &sale.id, &[PayMethod::Card]).await;
                let expected = with(
                    header(&s.id.0, &moment(s.paid_at.unwrap()), "0x5452200000201002"),
                    json!({ "cbCustomer": { "Name": "ACME Lojistik A.Ş.", "Address": "Atatürk Cad. 12, 34000 İstanbul", "VATId": "TR1234567890" },
                            "cbChargeItems": [kahve()],
                            "cbPayItems": [card_pay_item(&s.payments[0], 60.0, false)] }),
                );
                (s.id.0, expected)
            })
        },
    },
    UseCase {
        name: "refund of part of a sale",
        run: |e| {
            Box::pin(async move {
                let s = paid_shop_sale(e, &[("5449000000996", 2), ("8690000000200", 1)], &[cash("150.00")]).await;
                signed(e, &s.id.0).await;
                let back = kasa_core::Money::parse_decimal("75.00", s.basket.currency).unwrap();
                let v =
                    e.refund(&s.id.0, 0, back, &super::manager(e).await, "customer changed their mind").await.unwrap();
                let s = e.sale(&v.id).await.unwrap();
                let r = &s.refunds[0];
                let expected = with(
                    header(&r.id, &moment(r.at), "0x5452200000100001"),
                    json!({ "cbPreviousReceiptReference": s.id.0,
                            "cbChargeItems": [
                                { "Quantity": -1.0, "Description": "Kola 330 ml", "Amount": -45.0, "VATRate": 20.0,
                                  "ftChargeItemCase": "0x5452200000000301", "ProductNumber": "5449000000996", "UnitPrice": 45.0 },
                                { "Quantity": -0.5, "Description": "Türk Kahvesi", "Amount": -30.0, "VATRate": 10.0,
                                  "ftChargeItemCase": "0x5452200000000101", "ProductNumber": "8690000000200", "UnitPrice": 60.0 }],
                            "cbPayItems": [{ "Quantity": 1.0, "Description": "Cash refund", "Amount": -75.0, "ftPayItemCase": "0x5452200000000001" }] }),
                );
                (r.id.clone(), expected)
            })
        },
    },
];

#[tokio::test]
async fn each_use_case_of_the_document_sends_exactly_its_receipt() {
    let h = harness().await;
    let session = manager(&h.engine).await;
    for case in CASES {
        let (reference, expected) = (case.run)(&h.engine).await;
        settle(&h.engine, Duration::from_secs(20)).await;
        assert_eq!(body_of(&h.sandbox, &reference), expected, "{}: the receipt sent", case.name);
        assert_eq!(h.sandbox.fiskaltrust.signed_count(&reference), 1, "{}: signed once", case.name);
    }
    // Every receipt was signed and its signature kept with its sale.
    for s in h.engine.recent_sales(&session, 10).await.unwrap() {
        let sale = signed(&h.engine, &s.id).await;
        for r in &sale.fiscal {
            let sig = r.signature.as_ref().unwrap();
            assert!(sig.qr.is_some() && !sig.lines.is_empty(), "{}: a QR and text signature", r.reference);
        }
    }
}

#[tokio::test]
async fn a_receipt_that_does_not_add_up_or_has_an_unknown_rate_is_refused_before_sending() {
    let mut c = kasa_engine::Config::local("/nonexistent".into(), "http://127.0.0.1:1/", "http://127.0.0.1:1/", None)
        .with_local_systems(|n| (n == "fiskaltrust").then(|| "http://127.0.0.1:1/".to_string()));
    let f = c.systems.fiscal.as_mut().unwrap();
    f.vat_categories.retain(|v| v.rate_bp != 1000);
    // The builder says what is wrong, without a request.
    let cases = kasa_connect::fiskaltrust::Cases {
        country: f.country.clone(),
        vat_categories: f.vat_categories.iter().map(|v| (v.rate_bp, v.category)).collect(),
    };
    let b = kasa_connect::fiskaltrust::ReceiptBuilder {
        cashbox_id: CASHBOX.into(),
        pos_system_id: None,
        terminal_id: "T1".into(),
        cases,
    };
    let mut sale = kasa_core::Sale::new(
        kasa_core::SaleId("S1".into()),
        kasa_core::Basket::new(kasa_core::Currency::parse("TRY").unwrap()),
        time::OffsetDateTime::UNIX_EPOCH,
    );
    let coffee = kasa_core::ShopItem {
        sku: "8690000000200".into(),
        name: "Türk Kahvesi".into(),
        unit_price: kasa_core::Money::parse_decimal("60.00", sale.basket.currency).unwrap(),
        vat_rate_bp: 1000,
    };
    sale.basket.add_item(coffee, 1).unwrap();
    sale.paid_at = Some(time::OffsetDateTime::UNIX_EPOCH);
    let e = b.sale_receipt(&sale).unwrap_err();
    assert!(e.to_string().contains("VAT rate 10.00 % has no fiscal VAT category"), "{e}");
    // Items that do not add up to the payments.
    let mut r = kasa_connect::fiskaltrust::wire::ReceiptRequest {
        cashbox_id: CASHBOX.into(),
        pos_system_id: None,
        terminal_id: "T1".into(),
        reference: "X".into(),
        moment: "2026-12-01T10:00:00.000Z".into(),
        case: "0x5452200000000001".into(),
        previous_reference: None,
        customer: None,
        charge_items: Vec::new(),
        pay_items: Vec::new(),
    };
    r.pay_items.push(kasa_connect::fiskaltrust::wire::PayItem {
        quantity: None,
        description: "Cash".into(),
        amount: 10.0,
        case: "0x5452200000000001".into(),
        money_number: None,
        case_data: None,
    });
    let e = kasa_connect::fiskaltrust::validate(&r).unwrap_err();
    assert!(e.to_string().contains("add up to 0.00 but its payments to 10.00"), "{e}");
    c.systems.fiscal.as_mut().unwrap().country = "Türkiye".into();
    assert!(c.check().unwrap_err().to_string().contains("fiscal.country 'Türkiye' is not a two-letter country code"));
}

#[tokio::test]
async fn a_lost_answer_and_a_restart_during_signing_leave_exactly_one_signature() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&h.sandbox, dir.path(), fast_retries).await;
    h.engine.shutdown().await;
    // The middleware takes a while, and the first answer is lost after it signed.
    h.sandbox.fiskaltrust.set_sign_delay(Duration::from_millis(300));
    h.sandbox.fiskaltrust_http.control.set_endpoint_faults(
        "POST",
        "/v2/sign",
        kasa_sim::Faults { lost_response_rate: 1.0, ..Default::default() },
    );
    let sale = engine.open_shop_sale().await.unwrap();
    engine.add_item(&sale.id, "8690000000101", 1).await.unwrap();
    engine.pay(&sale.id, cash("20.00")).await.unwrap();
    // The sign request went out and was applied; the register stops before hearing back.
    for _ in 0..200 {
        if !signs(&h.sandbox).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown().await;
    drop(engine);
    h.sandbox.fiskaltrust_http.control.clear_faults();
    let engine = register(&h.sandbox, dir.path(), fast_retries).await;
    let s = signed(&engine, &sale.id).await;
    let ids: std::collections::BTreeSet<String> =
        signs(&h.sandbox).into_iter().filter(|(_, b)| b["cbReceiptReference"] == sale.id).map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 1, "every attempt carried the same operation id: {ids:?}");
    assert_eq!(h.sandbox.fiskaltrust.signed_count(&sale.id), 1, "one signature at the middleware");
    let theirs = h.sandbox.fiskaltrust.response_of(ids.iter().next().unwrap()).unwrap();
    assert_eq!(s.fiscal[0].signature.as_ref().unwrap().receipt_id, theirs["ftReceiptIdentification"].as_str().unwrap());
    engine.shutdown().await;
}

#[tokio::test]
async fn sales_go_on_while_the_signing_unit_is_down_and_are_signed_late_in_order() {
    let h = harness().await;
    let dir = tempfile::tempdir().unwrap();
    h.engine.shutdown().await;
    let engine = register(&h.sandbox, dir.path(), fast_retries).await;
    h.sandbox.fiskaltrust.set_scu_reachable(false);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let s = paid_shop_sale(&engine, &[("8690000000101", 1)], &[cash("20.00")]).await;
        ids.push(s.id.0.clone());
    }
    settle_prints(&h.sandbox, ids.len()).await;
    for job in h.sandbox.printer.jobs().iter().take(ids.len()) {
        assert!(
            job.text().contains("İMZA BEKLENİYOR"),
            "a slip printed while the unit is down says so:\n{}",
            job.text()
        );
    }
    assert!(engine.status().fiscal_problem.is_some(), "the status bar says receipts are not being signed");
    for id in &ids {
        assert_eq!(engine.sale(id).await.unwrap().fiscal[0].state, FiscalState::Pending);
        assert_eq!(h.sandbox.fiskaltrust.signed_count(id), 0);
    }
    h.sandbox.fiskaltrust.set_scu_reachable(true);
    for id in &ids {
        signed(&engine, id).await;
    }
    settle(&engine, Duration::from_secs(20)).await;
    // Signed exactly once each, in the order they were sold, and the queue left failed mode.
    let numbered: Vec<String> = h
        .sandbox
        .fiskaltrust
        .receipts()
        .iter()
        .map(|r| r["cbReceiptReference"].as_str().unwrap().to_string())
        .filter(|r| ids.contains(r))
        .collect();
    assert_eq!(numbered, ids, "signed in the order sold");
    for id in &ids {
        assert_eq!(h.sandbox.fiskaltrust.signed_count(id), 1);
    }
    assert!(!h.sandbox.fiskaltrust.in_failed_mode(), "a zero receipt took the queue out of failed mode");
    assert!(engine.status().fiscal_problem.is_none());
    // The signed slip can be reprinted, with its signature and QR code.
    let before = h.sandbox.printer.jobs().len();
    engine.reprint(&ids[0], Some(&manager(&engine).await)).await.unwrap();
    settle_prints(&h.sandbox, before + 1).await;
    let job = h.sandbox.printer.jobs().last().unwrap().clone();
    let sig = engine.sale(&ids[0]).await.unwrap().fiscal[0].signature.clone().unwrap();
    assert!(job.text().contains(&sig.receipt_id) && !job.text().contains("İMZA BEKLENİYOR"), "{}", job.text());
    let qr = kasa_print::decode::blocks(&job.bytes, kasa_print::Model::EPSON_TM).into_iter().find_map(|b| match b {
        kasa_print::layout::Block::Qr(d) => Some(d),
        _ => None,
    });
    assert_eq!(qr, sig.qr, "the signature's QR code reads back from the printed bytes");
    engine.shutdown().await;
}

async fn settle_prints(sandbox: &Sandbox, n: usize) {
    for _ in 0..500 {
        if sandbox.printer.jobs().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{n} slips were never printed");
}

#[tokio::test]
async fn a_slip_waits_for_its_signature_and_prints_it() {
    let h = harness().await;
    h.sandbox.fiskaltrust.set_sign_delay(Duration::from_millis(400));
    let s = paid_shop_sale(&h.engine, &[("8690000000101", 1)], &[cash("20.00")]).await;
    settle_prints(&h.sandbox, 1).await;
    let s = signed(&h.engine, &s.id.0).await;
    let sig = s.fiscal[0].signature.clone().unwrap();
    let job = h.sandbox.printer.jobs()[0].clone();
    assert!(job.text().contains(&sig.receipt_id), "the first slip waited and carries the signature:\n{}", job.text());
    assert_eq!(s.state, SaleState::Completed);
}

#[tokio::test]
async fn a_signature_slower_than_the_wait_prints_pending_and_the_reprint_is_signed() {
    let h = harness().await;
    h.engine.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = register(&h.sandbox, dir.path(), |c| c.systems.fiscal.as_mut().unwrap().print_wait_ms = 200).await;
    h.sandbox.fiskaltrust.set_sign_delay(Duration::from_millis(1_500));
    let s = paid_shop_sale(&engine, &[("8690000000101", 1)], &[cash("20.00")]).await;
    settle_prints(&h.sandbox, 1).await;
    assert!(h.sandbox.printer.jobs()[0].text().contains("İMZA BEKLENİYOR"), "the slip did not wait past print_wait_ms");
    let s = signed(&engine, &s.id.0).await;
    engine.reprint(&s.id.0, Some(&manager(&engine).await)).await.unwrap();
    settle_prints(&h.sandbox, 2).await;
    let copy = h.sandbox.printer.jobs()[1].text();
    assert!(copy.contains(&s.fiscal[0].signature.as_ref().unwrap().receipt_id) && !copy.contains("İMZA"), "{copy}");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_receipt_that_cannot_be_signed_holds_back_the_later_ones_until_the_manager_acts() {
    let h = harness().await;
    h.engine.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    // A configuration that lacks the 10 % rate: the coffee's receipt cannot be built.
    let engine = register(&h.sandbox, dir.path(), |c| {
        fast_retries(c);
        c.systems.fiscal.as_mut().unwrap().vat_categories.retain(|v| v.rate_bp != 1000);
    })
    .await;
    let session = manager(&engine).await;
    let coffee = paid_shop_sale(&engine, &[("8690000000200", 1)], &[cash("60.00")]).await;
    let simit = paid_shop_sale(&engine, &[("8690000000101", 1)], &[cash("20.00")]).await;
    settle_prints(&h.sandbox, 2).await;
    let parked = loop {
        let q = engine.queue(&session, 100).await.unwrap();
        if let Some(p) = q.iter().find(|i| i.state == "parked" && i.kind == "fiscal_sign") {
            break p.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(parked.last_error.as_deref().unwrap_or_default().contains("VAT rate 10.00 %"), "{parked:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.sandbox.fiskaltrust.signed_count(&simit.id.0), 0, "the later receipt does not pass the parked one");
    assert!(engine.status().fiscal_problem.unwrap().contains("later ones wait"));
    assert!(
        h.sandbox.printer.jobs()[1].text().contains("İMZA BEKLENİYOR"),
        "slips do not wait while signing is stalled"
    );
    engine.shutdown().await;
    drop(engine);
    // The configuration is fixed; the manager puts the receipt back in line.
    let engine = register(&h.sandbox, dir.path(), fast_retries).await;
    // A restart ended the session: the manager logs in again.
    assert_eq!(
        engine.retry_now(parked.id, Some(&session)).await.unwrap_err().code,
        kasa_engine::ErrorCode::NotAuthorized
    );
    engine.retry_now(parked.id, Some(&manager(&engine).await)).await.unwrap();
    signed(&engine, &simit.id.0).await;
    signed(&engine, &coffee.id.0).await;
    let order: Vec<String> = h
        .sandbox
        .fiskaltrust
        .receipts()
        .iter()
        .map(|r| r["cbReceiptReference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order, [coffee.id.0.clone(), simit.id.0.clone()], "signed in the order sold");
    assert!(engine.status().fiscal_problem.is_none());
    engine.shutdown().await;
}

#[tokio::test]
async fn the_daily_closing_is_signed_after_the_days_receipts_and_the_journals_show_them() {
    let h = harness().await;
    let session = manager(&h.engine).await;
    let s = paid_shop_sale(&h.engine, &[("8690000000101", 1)], &[cash("20.00")]).await;
    assert_eq!(
        h.engine.fiscal_daily_closing("wrong-session", Some(1)).await.unwrap_err().code,
        kasa_engine::ErrorCode::NotAuthorized
    );
    let closing = h.engine.fiscal_daily_closing(&session, Some(1)).await.unwrap();
    settle(&h.engine, Duration::from_secs(20)).await;
    let receipts = h.engine.fiscal_journal(&session, "ReceiptJournal", 0, 100).await.unwrap();
    let refs: Vec<&str> = receipts.iter().map(|r| r["cbReceiptReference"].as_str().unwrap()).collect();
    assert_eq!(refs, [s.id.0.as_str(), closing.as_str()], "the closing comes after the day's receipts");
    assert_eq!(receipts[1]["ftReceiptCase"], "0x5452200000002011");
    let actions = h.engine.fiscal_journal(&session, "ActionJournal", 0, 100).await.unwrap();
    assert!(actions.iter().any(|a| a["Type"] == "DailyClosing"), "{actions:?}");
    let e = h.engine.fiscal_journal(&session, "Nonsense", 0, 10).await.unwrap_err();
    assert!(e.message.contains("ReceiptJournal"), "{}", e.message);
}
