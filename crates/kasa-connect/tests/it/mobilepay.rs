//! MobilePay PoS: every endpoint of `mobilepay-pos-api.md`, client against sandbox.
//!
//! Each line of the document's endpoint lists and the test that covers it:
//!
//! | Document line                                        | Client method                  | Test |
//! |------------------------------------------------------|--------------------------------|------|
//! | `GET api/pos/refund/create`                          | `refund_create`                | [`refunds_up_to_the_captured_amount`] |
//! | `POST api/pos/refund/create`                         | `refund_create_post`           | [`refunds_up_to_the_captured_amount`] |
//! | `GET api/pos/refund/details`                         | `refund_details`               | [`refunds_up_to_the_captured_amount`] |
//! | `GET api/pos/refunds`                                | `refunds`                      | [`refunds_up_to_the_captured_amount`] |
//! | `GET api/pos/refund/capture`                         | `refund_capture`               | [`refunds_up_to_the_captured_amount`] |
//! | `GET api/pos/refund/cancel`                          | `refund_cancel`                | [`refunds_up_to_the_captured_amount`] |
//! | `GET api/pos/terminal/qrcode`                        | `qrcode`                       | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `GET api/pos/payment/start`                          | `start`                        | [`direct_flow_from_start_to_capture`] |
//! | `GET api/pos/payment/start/byPosId`                  | `start_by_pos`                 | [`post_forms_send_the_fields_as_json`] |
//! | `POST api/pos/payment/start`                         | `start_post`                   | [`post_forms_send_the_fields_as_json`] |
//! | `POST api/pos/payment/start/byPosId`                 | `start_by_pos_post`            | [`post_forms_send_the_fields_as_json`] |
//! | `GET api/pos/payment/prepare`                        | `prepare`                      | [`prepared_flow_get_and_post`] |
//! | `POST api/pos/payment/prepare`                       | `prepare_post`                 | [`prepared_flow_get_and_post`] |
//! | `GET api/pos/payment/ready`                          | `ready`                        | [`prepared_flow_get_and_post`] |
//! | `POST api/pos/payment/ready`                         | `ready_post`                   | [`prepared_flow_get_and_post`] |
//! | `GET api/pos/payment/details`                        | `details`                      | [`direct_flow_from_start_to_capture`] |
//! | `GET api/pos/payments`                               | `payments`, `active_payments`  | [`payments_are_listed_active_or_by_state`] |
//! | `GET api/pos/payment/status` (all eleven statuses)   | `status`                       | [`every_status_of_the_document_is_reported`] |
//! | `GET api/pos/payment/capture` (only when Reserved)   | `capture`                      | [`capture_only_when_reserved_and_up_to_the_reserved_amount`] |
//! | `GET api/pos/payment/cancel` (not when Captured)     | `cancel`                       | [`cancel_is_refused_once_captured`] |
//! | `GET api/pos/payment/id/retrieve/bystate`            | `retrieve_by_state`            | [`a_lost_payment_id_is_recovered`] |
//! | `GET api/pos/payment/id/retrieve/byterminal`         | `retrieve_by_terminal`         | [`a_lost_payment_id_is_recovered`] |
//! | `GET api/pos/payment/id/retrieve/byposId`            | `retrieve_by_pos`              | [`a_lost_payment_id_is_recovered`] |
//! | "only one active payment on the PoS"                 | `start`, `prepare`             | [`one_active_payment_per_pos`] |
//! | `GET api/pos/manage/token`                           | `create_token`                 | [`access_token_is_created_once_and_reset_with_the_previous_one`] |
//! | `GET api/pos/manage/token/reset`                     | `reset_token`                  | [`access_token_is_created_once_and_reset_with_the_previous_one`] |
//! | `POST api/pos/manage/token`                          | `create_token_post`            | [`access_token_is_created_once_and_reset_with_the_previous_one`] |
//! | `GET api/pos/manage/create`                          | `create_pos`                   | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `POST api/pos/manage/create`                         | `create_pos_post`              | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `GET api/pos/manage/delete`                          | `delete_pos`                   | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `DELETE api/pos/manage/delete`                       | `delete_pos_via_delete`        | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `GET api/pos/manage/terminal/information`            | `terminal_information`         | [`a_pos_is_created_shown_as_a_qr_code_and_deleted`] |
//! | `GET api/pos/manage/stores`                          | `stores`                       | [`stores_and_store_information`] |
//! | `GET api/pos/manage/store`                           | `store`                        | [`stores_and_store_information`] |
//! | `GET api/pos/manage/checkInStatus/byposId`           | `check_in_status_by_pos`       | [`check_in_status_by_pos_and_by_terminal`] |
//! | `GET api/pos/manage/checkInStatus/byterminalId`      | `check_in_status`              | [`check_in_status_by_pos_and_by_terminal`] |
//! | `accessToken` + `bioCode` on every call; `401`       | all                            | [`wrong_or_missing_credentials_answer_401`] |
//!
//! Transport failures (outage, lost answer, injected 503) are in
//! [`an_outage_is_not_sent_and_a_lost_start_is_repeated_safely`]; the simulated customer's
//! scripts and the sandbox's control routes in [`the_scripted_customer_acts_alone`].

use kasa_connect::ExposeSecret;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kasa_connect::mobilepay::{MobilePayClient, MobilePaySettings, PaymentStatus, PaymentsQuery, RefundStatus};
use kasa_connect::{ConnectError, Secret, base_url, http_client};
use kasa_core::{Currency, Money};
use kasa_sim::http::{self, Served};
use kasa_sim::mobilepay::{CustomerError, MerchantConfig, StoreConfig, TerminalConfig};
use kasa_sim::{CustomerScript, Fate, Faults, MobilePay, MobilePayConfig, Recorded, Recorder};

const BIO: &str = "KASA-BIO-0001";
const TOKEN: &str = "mp-demo-access-token";
const LANE1: &str = "KASA-LANE-1";
const POS1: &str = "POS-KASA-LANE-1";
const LANE2: &str = "KASA-LANE-2";

/// A MobilePay sandbox served on loopback.
struct Mp {
    mp: MobilePay,
    http: Served,
    recorder: Recorder,
}

async fn serve(config: MobilePayConfig) -> Mp {
    let mp = MobilePay::new(config);
    let recorder = Recorder::default();
    let http = http::serve("mobilepay", mp.router(), recorder.clone(), 5).await.expect("mobilepay serves");
    Mp { mp, http, recorder }
}

/// A sandbox whose customer does nothing unless told.
async fn manual() -> Mp {
    serve(MobilePayConfig { customer: CustomerScript::Manual, ..Default::default() }).await
}

fn client_as(s: &Mp, bio: &str, token: &str, terminal: &str) -> MobilePayClient {
    MobilePayClient::new(
        http_client(),
        MobilePaySettings {
            base_url: base_url(&s.http.url()).unwrap(),
            bio_code: bio.into(),
            access_token: Secret::from(token),
            terminal_id: terminal.into(),
            pos_id: s.mp.pos_id(terminal),
            timeout: Duration::from_secs(5),
        },
    )
}

fn client(s: &Mp, terminal: &str) -> MobilePayClient {
    client_as(s, BIO, TOKEN, terminal)
}

fn dkk(minor: i64) -> Money {
    Money::new(minor, Currency::DKK)
}

/// The requests the sandbox received on a path, oldest first.
fn received(s: &Mp, path: &str) -> Vec<Recorded> {
    s.recorder.of("mobilepay").into_iter().filter(|r| r.path == path).collect()
}

fn last(s: &Mp, path: &str) -> Recorded {
    received(s, path).pop().unwrap_or_else(|| panic!("nothing received on {path}"))
}

/// The query string's fields.
fn query(r: &Recorded) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(r.query.as_deref().unwrap_or("").as_bytes()).into_owned().collect()
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn assert_status(err: &ConnectError, status: u16, code: &str) {
    assert_eq!((err.status(), err.code()), (Some(status), Some(code)), "{err}");
    assert!(!err.is_transient() && !err.maybe_applied(), "{err:?}");
}

async fn wait_for(c: &MobilePayClient, payment_id: &str, want: PaymentStatus) {
    for _ in 0..200 {
        if c.status(payment_id).await.unwrap() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("payment {payment_id} never became {want}");
}

/// Takes a payment all the way to Captured at `lane` and answers its id.
async fn captured(s: &Mp, c: &MobilePayClient, order_id: &str, amount: Money) -> String {
    let p = c.start(order_id, amount).await.unwrap();
    s.mp.check_in(c.terminal_id()).unwrap();
    s.mp.approve(&p.payment_id).unwrap();
    c.capture(&p.payment_id, amount).await.unwrap();
    p.payment_id
}

#[tokio::test]
async fn direct_flow_from_start_to_capture() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let p = c.start("order-1", dkk(12_345)).await.unwrap();
    assert_eq!((p.order_id.as_str(), &p.status), ("order-1", &PaymentStatus::Initiated));
    assert_eq!(
        query(&last(&s, "/api/pos/payment/start")),
        fields(&[
            ("orderId", "order-1"),
            ("amount", "123.45"),
            ("terminalId", LANE1),
            ("currencyCode", "DKK"),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );
    assert_eq!(last(&s, "/api/pos/payment/start").method, "GET");

    s.mp.check_in(LANE1).unwrap();
    assert_eq!(c.status(&p.payment_id).await.unwrap(), PaymentStatus::IssuedToUser);
    assert_eq!(s.mp.payment_history(&p.payment_id), ["Initiated", "Paired", "IssuedToUser"]);
    s.mp.approve(&p.payment_id).unwrap();
    assert_eq!(c.status(&p.payment_id).await.unwrap(), PaymentStatus::Reserved);

    let d = c.details(&p.payment_id).await.unwrap();
    assert_eq!(d.amount, Some(dkk(12_345)));
    assert_eq!(d.captured_amount, dkk(0));
    assert_eq!((d.terminal_id.as_deref(), d.pos_id.as_deref()), (Some(LANE1), Some(POS1)));
    assert_eq!(d.store_id.as_deref(), Some("STORE-0001"));
    assert_eq!(query(&last(&s, "/api/pos/payment/details"))["paymentId"], p.payment_id);

    // A partial capture takes less than was reserved.
    let done = c.capture(&p.payment_id, dkk(12_000)).await.unwrap();
    assert_eq!((done.status, done.captured_amount), (PaymentStatus::Captured, dkk(12_000)));
    assert_eq!(
        query(&last(&s, "/api/pos/payment/capture")),
        fields(&[("paymentId", &p.payment_id), ("amount", "120.00"), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    let captured = s.mp.captured_payments();
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0]["capturedAmount"], serde_json::json!(120.0));
    assert_eq!(captured[0]["amount"].to_string(), "123.45", "amounts are decimal numbers");

    let err = c.details("no-such-payment").await.unwrap_err();
    assert_status(&err, 404, "PAYMENT_NOT_FOUND");
}

#[tokio::test]
async fn every_status_of_the_document_is_reported() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let mut seen = Vec::new();
    let mut note = async |id: &str| seen.push(c.status(id).await.unwrap());

    let p = c.start("o-1", dkk(1_000)).await.unwrap().payment_id;
    note(&p).await; // Initiated
    s.mp.pair(LANE1).unwrap();
    note(&p).await; // Paired
    s.mp.issue(&p).unwrap();
    note(&p).await; // IssuedToUser
    s.mp.approve(&p).unwrap();
    note(&p).await; // Reserved
    c.capture(&p, dkk(1_000)).await.unwrap();
    note(&p).await; // Captured

    let p = c.prepare("o-2").await.unwrap().payment_id;
    note(&p).await; // Prepared
    c.cancel(&p).await.unwrap();
    note(&p).await; // CancelledByClient

    let p = c.start("o-3", dkk(1_000)).await.unwrap().payment_id;
    s.mp.check_in(LANE1).unwrap();
    s.mp.reject(&p).unwrap();
    note(&p).await; // CancelledByUser

    let p = c.start("o-4", dkk(1_000)).await.unwrap().payment_id;
    s.mp.cancel_by_mobilepay(&p).unwrap();
    note(&p).await; // CancelledByMobilePay

    let p = c.start("o-5", dkk(1_000)).await.unwrap().payment_id;
    s.mp.expire(&p).unwrap();
    note(&p).await; // ExpiredAndCancelled

    let p = c.start("o-6", dkk(1_000)).await.unwrap().payment_id;
    s.mp.check_in(LANE1).unwrap();
    s.mp.age_reject(&p).unwrap();
    note(&p).await; // RejectedByMobilePayDueToAgeRestrictions

    use PaymentStatus::*;
    assert_eq!(
        seen,
        [
            Initiated,
            Paired,
            IssuedToUser,
            Reserved,
            Captured,
            Prepared,
            CancelledByClient,
            CancelledByUser,
            CancelledByMobilePay,
            ExpiredAndCancelled,
            RejectedByMobilePayDueToAgeRestrictions,
        ]
    );
    let distinct: BTreeSet<&str> = seen.iter().map(PaymentStatus::as_str).collect();
    assert_eq!(distinct.len(), 11, "all eleven statuses of the document");
    assert!(seen[..4].iter().all(PaymentStatus::is_active));
    assert!(seen[4].is_final() && seen[6..].iter().all(PaymentStatus::is_final));
    assert!(seen[5].is_active(), "Prepared is active");
    for r in received(&s, "/api/pos/payment/status") {
        let q = query(&r);
        assert_eq!((q["accessToken"].as_str(), q["bioCode"].as_str()), (TOKEN, BIO));
        assert!(q.contains_key("paymentId"));
    }

    // The customer cannot act on a payment in the wrong state.
    assert!(matches!(s.mp.approve(&p), Err(CustomerError::WrongState { .. })));
    assert!(matches!(s.mp.reject("nope"), Err(CustomerError::UnknownPayment(_))));
}

#[tokio::test]
async fn one_active_payment_per_pos() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let first = c.start("o-1", dkk(5_000)).await.unwrap();

    // The same orderId again answers the same payment (a retry after a lost answer).
    let again = c.start("o-1", dkk(5_000)).await.unwrap();
    assert_eq!(again.payment_id, first.payment_id);
    assert_eq!(s.mp.payments().len(), 1);
    // The same orderId for another amount is refused.
    assert_status(&c.start("o-1", dkk(5_001)).await.unwrap_err(), 409, "ORDER_ID_REUSED");

    // Another payment is refused while the first is active, by every way of starting one.
    assert_status(&c.start("o-2", dkk(100)).await.unwrap_err(), 409, "ACTIVE_PAYMENT_EXISTS");
    assert_status(&c.start_by_pos("o-2", dkk(100)).await.unwrap_err(), 409, "ACTIVE_PAYMENT_EXISTS");
    assert_status(&c.prepare("o-2").await.unwrap_err(), 409, "ACTIVE_PAYMENT_EXISTS");
    // Reserved is still active.
    s.mp.check_in(LANE1).unwrap();
    s.mp.approve(&first.payment_id).unwrap();
    assert_status(&c.start_post("o-2", dkk(100)).await.unwrap_err(), 409, "ACTIVE_PAYMENT_EXISTS");

    // Once it is cancelled the PoS is free.
    let cancelled = c.cancel(&first.payment_id).await.unwrap();
    assert_eq!(cancelled.status, PaymentStatus::CancelledByClient);
    let second = c.start("o-2", dkk(100)).await.unwrap();
    assert_ne!(second.payment_id, first.payment_id);
    assert_eq!(s.mp.active_payment(LANE1).as_deref(), Some(second.payment_id.as_str()));
}

#[tokio::test]
async fn capture_only_when_reserved_and_up_to_the_reserved_amount() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let p = c.start("o-1", dkk(10_000)).await.unwrap().payment_id;
    assert_status(&c.capture(&p, dkk(10_000)).await.unwrap_err(), 409, "PAYMENT_NOT_RESERVED");
    s.mp.check_in(LANE1).unwrap();
    assert_status(&c.capture(&p, dkk(10_000)).await.unwrap_err(), 409, "PAYMENT_NOT_RESERVED");
    s.mp.approve(&p).unwrap();

    assert_status(&c.capture(&p, dkk(10_001)).await.unwrap_err(), 422, "AMOUNT_EXCEEDS_RESERVED");
    let err = c.capture(&p, dkk(0)).await.unwrap_err();
    assert_status(&err, 400, "INVALID_AMOUNT");
    assert_eq!(c.status(&p).await.unwrap(), PaymentStatus::Reserved, "refused captures change nothing");

    let d = c.capture(&p, dkk(10_000)).await.unwrap();
    assert_eq!((d.status, d.captured_amount), (PaymentStatus::Captured, dkk(10_000)));
    // Repeating the same capture answers the captured payment; another amount is refused.
    assert_eq!(c.capture(&p, dkk(10_000)).await.unwrap().captured_amount, dkk(10_000));
    assert_status(&c.capture(&p, dkk(5_000)).await.unwrap_err(), 409, "PAYMENT_ALREADY_CAPTURED");

    // Cancelled payments cannot be captured either.
    let q = c.start("o-2", dkk(100)).await.unwrap().payment_id;
    c.cancel(&q).await.unwrap();
    assert_status(&c.capture(&q, dkk(100)).await.unwrap_err(), 409, "PAYMENT_NOT_RESERVED");
}

#[tokio::test]
async fn cancel_is_refused_once_captured() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let p = captured(&s, &c, "o-1", dkk(2_500)).await;
    let err = c.cancel(&p).await.unwrap_err();
    assert_status(&err, 409, "PAYMENT_CAPTURED");
    assert!(err.to_string().contains("refund"), "{err}");
    assert_eq!(c.status(&p).await.unwrap(), PaymentStatus::Captured);

    // Any other state can be cancelled: here Reserved and IssuedToUser.
    let q = c.start("o-2", dkk(100)).await.unwrap().payment_id;
    s.mp.check_in(LANE1).unwrap();
    s.mp.approve(&q).unwrap();
    assert_eq!(c.cancel(&q).await.unwrap().status, PaymentStatus::CancelledByClient);
    let r = c.start("o-3", dkk(100)).await.unwrap().payment_id;
    s.mp.check_in(LANE1).unwrap();
    assert_eq!(c.cancel(&r).await.unwrap().status, PaymentStatus::CancelledByClient);
    // Cancelling again leaves it as it is.
    assert_eq!(c.cancel(&r).await.unwrap().status, PaymentStatus::CancelledByClient);
    s.mp.expire(&c.start("o-4", dkk(100)).await.unwrap().payment_id).unwrap();
    let expired = s.mp.payments().pop().unwrap()["paymentId"].as_str().unwrap().to_string();
    assert_eq!(c.cancel(&expired).await.unwrap().status, PaymentStatus::ExpiredAndCancelled);
    assert_eq!(query(&last(&s, "/api/pos/payment/cancel"))["paymentId"], expired);
}

#[tokio::test]
async fn prepared_flow_get_and_post() {
    let s = manual().await;
    let c = client(&s, LANE1);

    // GET: prepare, ready, then the customer.
    let p = c.prepare("o-1").await.unwrap();
    assert_eq!(p.status, PaymentStatus::Prepared);
    assert_eq!(c.details(&p.payment_id).await.unwrap().amount, None, "no amount until ready");
    assert_eq!(
        query(&last(&s, "/api/pos/payment/prepare")),
        fields(&[("orderId", "o-1"), ("terminalId", LANE1), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    let err = c.ready(&p.payment_id, "another-order", dkk(4_250)).await.unwrap_err();
    assert_status(&err, 400, "INVALID_REQUEST");
    let r = c.ready(&p.payment_id, "o-1", dkk(4_250)).await.unwrap();
    assert_eq!(r.status, PaymentStatus::Initiated);
    assert_eq!(
        query(&last(&s, "/api/pos/payment/ready")),
        fields(&[
            ("orderId", "o-1"),
            ("amount", "42.50"),
            ("terminalId", LANE1),
            ("currencyCode", "DKK"),
            ("paymentId", &p.payment_id),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );
    // Ready again with the same amount answers it; with another it is refused.
    assert_eq!(c.ready(&p.payment_id, "o-1", dkk(4_250)).await.unwrap().payment_id, p.payment_id);
    assert_status(&c.ready(&p.payment_id, "o-1", dkk(1)).await.unwrap_err(), 409, "PAYMENT_NOT_PREPARED");
    s.mp.check_in(LANE1).unwrap();
    s.mp.approve(&p.payment_id).unwrap();
    assert_eq!(c.capture(&p.payment_id, dkk(4_250)).await.unwrap().status, PaymentStatus::Captured);
    assert_eq!(s.mp.payment_history(&p.payment_id)[..2], ["Prepared", "Initiated"]);

    // POST: a customer who checks in while the amount is pending is paired, and sees the
    // amount as soon as the payment is ready.
    let p = c.prepare_post("o-2").await.unwrap();
    assert_eq!(p.status, PaymentStatus::Prepared);
    let body = last(&s, "/api/pos/payment/prepare");
    assert_eq!((body.method.as_str(), body.query.as_deref()), ("POST", None));
    assert_eq!(
        body.json(),
        serde_json::json!({"orderId": "o-2", "terminalId": LANE1, "accessToken": TOKEN, "bioCode": BIO})
    );
    s.mp.check_in(LANE1).unwrap();
    assert_eq!(c.status(&p.payment_id).await.unwrap(), PaymentStatus::Paired);
    let r = c.ready_post(&p.payment_id, "o-2", dkk(999)).await.unwrap();
    assert_eq!(r.status, PaymentStatus::IssuedToUser);
    let body = last(&s, "/api/pos/payment/ready");
    assert_eq!(body.method, "POST");
    assert_eq!(
        body.json(),
        serde_json::json!({
            "orderId": "o-2", "amount": 9.99, "terminalId": LANE1, "currencyCode": "DKK",
            "paymentId": p.payment_id, "accessToken": TOKEN, "bioCode": BIO
        })
    );

    // Only a prepared payment can be made ready.
    c.cancel(&p.payment_id).await.unwrap();
    let direct = c.start("o-3", dkk(100)).await.unwrap();
    assert_status(&c.ready(&direct.payment_id, "o-3", dkk(200)).await.unwrap_err(), 409, "PAYMENT_NOT_PREPARED");
}

#[tokio::test]
async fn post_forms_send_the_fields_as_json() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let p = c.start_post("o-1", dkk(4_550)).await.unwrap();
    assert_eq!(p.status, PaymentStatus::Initiated);
    let r = last(&s, "/api/pos/payment/start");
    assert_eq!((r.method.as_str(), r.query.as_deref()), ("POST", None));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "orderId": "o-1", "amount": 45.5, "terminalId": LANE1, "currencyCode": "DKK",
            "accessToken": TOKEN, "bioCode": BIO
        })
    );
    c.cancel(&p.payment_id).await.unwrap();

    // By posId, GET.
    let p = c.start_by_pos("o-2", dkk(100_000)).await.unwrap();
    assert_eq!(c.details(&p.payment_id).await.unwrap().terminal_id.as_deref(), Some(LANE1));
    let r = last(&s, "/api/pos/payment/start/byPosId");
    assert_eq!(r.method, "GET");
    assert_eq!(
        query(&r),
        fields(&[
            ("orderId", "o-2"),
            ("amount", "1000.00"),
            ("posId", POS1),
            ("currencyCode", "DKK"),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );
    c.cancel(&p.payment_id).await.unwrap();

    // By posId, POST.
    let p = c.start_by_pos_post("o-3", dkk(1)).await.unwrap();
    assert_eq!(c.details(&p.payment_id).await.unwrap().amount, Some(dkk(1)));
    let r = last(&s, "/api/pos/payment/start/byPosId");
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.json(),
        serde_json::json!({
            "orderId": "o-3", "amount": 0.01, "posId": POS1, "currencyCode": "DKK",
            "accessToken": TOKEN, "bioCode": BIO
        })
    );

    // Another currency than the merchant's is refused.
    c.cancel(&p.payment_id).await.unwrap();
    let err = c.start("o-4", Money::new(100, Currency::EUR)).await.unwrap_err();
    assert_status(&err, 400, "INVALID_CURRENCY");
    // A register without a PoS cannot start by posId.
    let no_pos = client(&s, LANE2);
    assert!(matches!(no_pos.start_by_pos("o-5", dkk(1)).await, Err(ConnectError::Config(_))));
}

#[tokio::test]
async fn payments_are_listed_active_or_by_state() {
    let s = manual().await;
    let lane1 = client(&s, LANE1);
    let lane2 = client(&s, LANE2);
    lane2.create_pos().await.unwrap();

    let done = captured(&s, &lane1, "o-done", dkk(700)).await;
    let a = lane1.start("o-a", dkk(100)).await.unwrap().payment_id;
    let b = lane2.start("o-b", dkk(200)).await.unwrap().payment_id;
    let gone = {
        lane2.cancel(&b).await.unwrap();
        b
    };
    let b = lane2.start("o-b2", dkk(300)).await.unwrap().payment_id;

    let ids = |list: Vec<kasa_connect::mobilepay::PaymentDetails>| {
        list.into_iter().map(|p| p.payment_id).collect::<Vec<String>>()
    };
    assert_eq!(ids(lane1.payments(&PaymentsQuery::default()).await.unwrap()), [a.clone(), b.clone()]);
    assert_eq!(
        query(&last(&s, "/api/pos/payments")),
        fields(&[("accessToken", TOKEN), ("bioCode", BIO)]),
        "no filter: active payments"
    );
    assert_eq!(ids(lane1.active_payments().await.unwrap()), [a]);
    assert_eq!(query(&last(&s, "/api/pos/payments"))["terminalId"], LANE1);
    assert_eq!(ids(lane2.active_payments().await.unwrap()), std::slice::from_ref(&b));

    let by_state = |state: PaymentStatus| PaymentsQuery { state: Some(state), ..Default::default() };
    assert_eq!(ids(lane1.payments(&by_state(PaymentStatus::Captured)).await.unwrap()), [done]);
    assert_eq!(query(&last(&s, "/api/pos/payments"))["state"], "Captured");
    assert_eq!(ids(lane1.payments(&by_state(PaymentStatus::CancelledByClient)).await.unwrap()), [gone]);
    let by_order = PaymentsQuery { order_id: Some("o-b2".into()), ..Default::default() };
    assert_eq!(ids(lane1.payments(&by_order).await.unwrap()), [b]);
    let q = query(&last(&s, "/api/pos/payments"));
    assert_eq!((q["orderId"].as_str(), q.get("state")), ("o-b2", None));
    let none =
        PaymentsQuery { state: Some(PaymentStatus::Captured), terminal_id: Some(LANE2.into()), ..Default::default() };
    assert!(lane1.payments(&none).await.unwrap().is_empty());

    let err = lane1.payments(&by_state(PaymentStatus::Unknown("Paid".into()))).await.unwrap_err();
    assert_status(&err, 400, "INVALID_STATE");
    let d = lane1.payments(&by_state(PaymentStatus::Captured)).await.unwrap().remove(0);
    assert_eq!((d.captured_amount, d.order_id.as_str()), (dkk(700), "o-done"));
}

#[tokio::test]
async fn a_lost_payment_id_is_recovered() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let p = c.start("o-lost", dkk(1_500)).await.unwrap().payment_id;

    // By terminal and orderId, in any state or in the one given.
    assert_eq!(c.retrieve_by_terminal("o-lost", None).await.unwrap(), Some(p.clone()));
    assert_eq!(c.retrieve_by_terminal("o-lost", Some(PaymentStatus::Initiated)).await.unwrap(), Some(p.clone()));
    assert_eq!(
        query(&last(&s, "/api/pos/payment/id/retrieve/byterminal")),
        fields(&[
            ("orderId", "o-lost"),
            ("terminalId", LANE1),
            ("paymentState", "Initiated"),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );
    assert_eq!(c.retrieve_by_terminal("o-lost", Some(PaymentStatus::Reserved)).await.unwrap(), None);
    assert_eq!(c.retrieve_by_terminal("o-never", None).await.unwrap(), None);
    assert_eq!(client(&s, LANE2).retrieve_by_terminal("o-lost", None).await.unwrap(), None, "another terminal");

    // By posId and orderId.
    assert_eq!(c.retrieve_by_pos("o-lost", None).await.unwrap(), Some(p.clone()));
    assert_eq!(c.retrieve_by_pos("o-lost", Some(PaymentStatus::Initiated)).await.unwrap(), Some(p.clone()));
    assert_eq!(
        query(&last(&s, "/api/pos/payment/id/retrieve/byposId")),
        fields(&[
            ("paymentState", "Initiated"),
            ("orderId", "o-lost"),
            ("posId", POS1),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );

    // By state: only Captured is supported, as the document says.
    assert_eq!(c.retrieve_by_state("o-lost", PaymentStatus::Captured).await.unwrap(), None);
    let err = c.retrieve_by_state("o-lost", PaymentStatus::Initiated).await.unwrap_err();
    assert_status(&err, 400, "STATE_NOT_SUPPORTED");
    s.mp.check_in(LANE1).unwrap();
    s.mp.approve(&p).unwrap();
    c.capture(&p, dkk(1_500)).await.unwrap();
    assert_eq!(c.retrieve_by_state("o-lost", PaymentStatus::Captured).await.unwrap(), Some(p.clone()));
    assert_eq!(
        query(&last(&s, "/api/pos/payment/id/retrieve/bystate")),
        fields(&[("orderId", "o-lost"), ("state", "Captured"), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    assert_eq!(c.retrieve_by_pos("o-lost", Some(PaymentStatus::Captured)).await.unwrap(), Some(p));
}

#[tokio::test]
async fn refunds_up_to_the_captured_amount() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let open = c.start("o-open", dkk(500)).await.unwrap().payment_id;
    let err = c.refund_create(&open, dkk(100), "r-0").await.unwrap_err();
    assert_status(&err, 409, "PAYMENT_NOT_CAPTURED");
    c.cancel(&open).await.unwrap();

    let p = captured(&s, &c, "o-1", dkk(10_000)).await;
    let r1 = c.refund_create(&p, dkk(6_000), "r-1").await.unwrap();
    assert_eq!(
        (r1.status.clone(), r1.amount, r1.payment_id.as_str()),
        (RefundStatus::Initiated, dkk(6_000), p.as_str())
    );
    assert_eq!(
        query(&last(&s, "/api/pos/refund/create")),
        fields(&[
            ("amount", "60.00"),
            ("currencyCode", "DKK"),
            ("paymentId", &p),
            ("refundOrderId", "r-1"),
            ("accessToken", TOKEN),
            ("bioCode", BIO),
        ])
    );
    // The same refundOrderId again answers the same refund; for another amount it is refused.
    assert_eq!(c.refund_create(&p, dkk(6_000), "r-1").await.unwrap().refund_id, r1.refund_id);
    assert_status(&c.refund_create(&p, dkk(1), "r-1").await.unwrap_err(), 409, "REFUND_ORDER_ID_REUSED");
    // More than captured less refunds pending or done is refused.
    let err = c.refund_create(&p, dkk(4_001), "r-2").await.unwrap_err();
    assert_status(&err, 422, "AMOUNT_EXCEEDS_REFUNDABLE");

    let r1 = c.refund_capture(&r1.refund_id).await.unwrap();
    assert_eq!(r1.status, RefundStatus::Captured);
    assert_eq!(query(&last(&s, "/api/pos/refund/capture"))["refundId"], r1.refund_id);
    assert_eq!(c.refund_capture(&r1.refund_id).await.unwrap().status, RefundStatus::Captured, "repeat");
    assert_status(&c.refund_cancel(&r1.refund_id).await.unwrap_err(), 409, "REFUND_CAPTURED");
    assert_eq!(c.details(&p).await.unwrap().refunded_amount, dkk(6_000));

    let r2 = c.refund_create_post(&p, dkk(4_000), "r-2").await.unwrap();
    let body = last(&s, "/api/pos/refund/create");
    assert_eq!(body.method, "POST");
    assert_eq!(
        body.json(),
        serde_json::json!({
            "amount": 40.0, "currencyCode": "DKK", "paymentId": p, "refundOrderId": "r-2",
            "accessToken": TOKEN, "bioCode": BIO
        })
    );
    let r2 = c.refund_cancel(&r2.refund_id).await.unwrap();
    assert_eq!(r2.status, RefundStatus::Cancelled);
    assert_eq!(query(&last(&s, "/api/pos/refund/cancel"))["refundId"], r2.refund_id);
    assert_status(&c.refund_capture(&r2.refund_id).await.unwrap_err(), 409, "REFUND_CANCELLED");
    // A cancelled refund frees its amount again.
    let r3 = c.refund_create(&p, dkk(4_000), "r-3").await.unwrap();

    let d = c.refund_details(&r1.refund_id).await.unwrap();
    assert_eq!(d, r1);
    assert_eq!(query(&last(&s, "/api/pos/refund/details"))["refundId"], r1.refund_id);
    assert_eq!(c.refunds(&p).await.unwrap(), [r1.refund_id, r2.refund_id, r3.refund_id]);
    assert_eq!(
        query(&last(&s, "/api/pos/refunds")),
        fields(&[("paymentId", &p), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    assert_status(&c.refund_details("nope").await.unwrap_err(), 404, "REFUND_NOT_FOUND");
    assert_eq!(s.mp.refunds().len(), 3);
}

fn with_second_merchant() -> MobilePayConfig {
    let mut config = MobilePayConfig { customer: CustomerScript::Manual, ..Default::default() };
    config.merchants.push(MerchantConfig {
        bio_code: "KASA-BIO-0002".into(),
        access_token: None,
        currency: "DKK".into(),
        stores: vec![StoreConfig {
            store_id: "STORE-0002".into(),
            name: "Kasa Aarhus".into(),
            street: "Strøget 2".into(),
            zip_code: "8000".into(),
            city: "Aarhus C".into(),
            terminals: vec![TerminalConfig { terminal_id: "AAR-1".into(), name: "Aarhus 1".into(), pos_id: None }],
        }],
    });
    config
}

#[tokio::test]
async fn access_token_is_created_once_and_reset_with_the_previous_one() {
    let s = serve(with_second_merchant()).await;
    let c = client_as(&s, "KASA-BIO-0002", "", "AAR-1");
    // Without a token nothing works yet.
    assert_status(&c.stores().await.unwrap_err(), 401, "UNAUTHORIZED");

    let token = c.create_token().await.unwrap();
    assert_eq!(Some(token.expose_secret().to_string()), s.mp.access_token("KASA-BIO-0002"));
    assert!(!format!("{token:?}").contains(token.expose_secret()));
    let r = last(&s, "/api/pos/manage/token");
    assert_eq!((r.method.as_str(), query(&r)), ("GET", fields(&[("bioCode", "KASA-BIO-0002")])));
    // The client uses it from now on.
    assert_eq!(c.stores().await.unwrap(), ["STORE-0002"]);
    // Only when the merchant has none.
    assert_status(&c.create_token().await.unwrap_err(), 409, "ACCESS_TOKEN_EXISTS");
    assert_status(&c.create_token_post().await.unwrap_err(), 409, "ACCESS_TOKEN_EXISTS");
    let r = last(&s, "/api/pos/manage/token");
    assert_eq!((r.method.as_str(), r.json()), ("POST", serde_json::json!({"bioCode": "KASA-BIO-0002"})));
    assert_status(&client_as(&s, "KASA-BIO-9999", "", "AAR-1").create_token().await.unwrap_err(), 401, "UNAUTHORIZED");

    // Reset: needs the previous token; the old one stops working.
    let stale = client_as(&s, "KASA-BIO-0002", token.expose_secret(), "AAR-1");
    let new = c.reset_token().await.unwrap();
    assert_ne!(new.expose_secret(), token.expose_secret());
    assert_eq!(
        query(&last(&s, "/api/pos/manage/token/reset")),
        fields(&[("previousAccessToken", token.expose_secret()), ("bioCode", "KASA-BIO-0002")])
    );
    assert_eq!(c.stores().await.unwrap(), ["STORE-0002"]);
    assert_status(&stale.stores().await.unwrap_err(), 401, "UNAUTHORIZED");
    assert_status(&stale.reset_token().await.unwrap_err(), 401, "UNAUTHORIZED");

    // POST form: the first merchant's token removed, then created by POST.
    let s = serve(MobilePayConfig {
        merchants: vec![MerchantConfig { access_token: None, ..MobilePayConfig::default().merchants.remove(0) }],
        ..Default::default()
    })
    .await;
    let c = client_as(&s, BIO, "", LANE1);
    let token = c.create_token_post().await.unwrap();
    assert_eq!(last(&s, "/api/pos/manage/token").json(), serde_json::json!({"bioCode": BIO}));
    assert_eq!(s.mp.access_token(BIO).as_deref(), Some(token.expose_secret()));
    assert_eq!(c.terminal_information().await.unwrap().pos_id.as_deref(), Some(POS1));
}

#[tokio::test]
async fn a_pos_is_created_shown_as_a_qr_code_and_deleted() {
    let s = manual().await;
    let c = client(&s, LANE2);
    let t = c.terminal_information().await.unwrap();
    assert_eq!((t.terminal_id.as_str(), t.pos_id.as_deref()), (LANE2, None));
    assert_eq!((t.store_id.as_deref(), t.name.as_deref()), (Some("STORE-0001"), Some("Lane 2")));
    assert_eq!(
        query(&last(&s, "/api/pos/manage/terminal/information")),
        fields(&[("terminalId", LANE2), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    // Without a PoS there is no QR code and no payment.
    assert_status(&c.qrcode().await.unwrap_err(), 409, "NO_POS");
    assert_status(&c.start("o-1", dkk(100)).await.unwrap_err(), 409, "NO_POS");
    assert_status(&c.delete_pos().await.unwrap_err(), 404, "POS_NOT_FOUND");

    let t = c.create_pos().await.unwrap();
    let pos = t.pos_id.clone().unwrap();
    assert_eq!(c.pos_id().as_deref(), Some(pos.as_str()), "the client adopts the new posId");
    assert_eq!(s.mp.pos_id(LANE2).as_deref(), Some(pos.as_str()));
    assert_eq!(
        query(&last(&s, "/api/pos/manage/create")),
        fields(&[("terminalId", LANE2), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    // Only when the terminal has none.
    assert_status(&c.create_pos().await.unwrap_err(), 409, "POS_EXISTS");
    assert_eq!(c.terminal_information().await.unwrap().pos_id.as_deref(), Some(pos.as_str()));

    let qr = c.qrcode().await.unwrap();
    assert_eq!(qr.scheme(), "https");
    assert!(qr.as_str().contains(&pos), "{qr}");
    assert_eq!(
        query(&last(&s, "/api/pos/terminal/qrcode")),
        fields(&[("terminalId", LANE2), ("accessToken", TOKEN), ("bioCode", BIO)])
    );

    // A PoS with an active payment cannot be deleted.
    let p = c.start_by_pos("o-2", dkk(100)).await.unwrap().payment_id;
    assert_status(&c.delete_pos().await.unwrap_err(), 409, "ACTIVE_PAYMENT_EXISTS");
    c.cancel(&p).await.unwrap();

    let t = c.delete_pos().await.unwrap();
    assert_eq!((t.pos_id, c.pos_id()), (None, None));
    let r = last(&s, "/api/pos/manage/delete");
    assert_eq!((r.method.as_str(), query(&r)["terminalId"].as_str()), ("GET", LANE2));

    // POST create, DELETE delete.
    let t = c.create_pos_post().await.unwrap();
    assert!(t.pos_id.is_some() && t.pos_id.as_deref() != Some(pos.as_str()), "a new posId");
    let r = last(&s, "/api/pos/manage/create");
    assert_eq!(
        (r.method.as_str(), r.json()),
        ("POST", serde_json::json!({"terminalId": LANE2, "accessToken": TOKEN, "bioCode": BIO}))
    );
    let t = c.delete_pos_via_delete().await.unwrap();
    assert_eq!(t.pos_id, None);
    let r = last(&s, "/api/pos/manage/delete");
    assert_eq!(
        (r.method.as_str(), query(&r)),
        ("DELETE", fields(&[("terminalId", LANE2), ("accessToken", TOKEN), ("bioCode", BIO)]))
    );
    assert_eq!(s.mp.pos_id(LANE2), None);

    // A payment keeps the posId it was taken at: it can still be found by it.
    let found = client_as(&s, BIO, TOKEN, LANE2);
    assert!(found.retrieve_by_terminal("o-2", None).await.unwrap().is_some());
    assert_status(&client(&s, "NO-SUCH-LANE").terminal_information().await.unwrap_err(), 404, "TERMINAL_NOT_FOUND");
}

#[tokio::test]
async fn stores_and_store_information() {
    let s = serve(with_second_merchant()).await;
    let c = client(&s, LANE1);
    assert_eq!(c.stores().await.unwrap(), ["STORE-0001"], "only the merchant's own stores");
    assert_eq!(query(&last(&s, "/api/pos/manage/stores")), fields(&[("accessToken", TOKEN), ("bioCode", BIO)]));
    let store = c.store("STORE-0001").await.unwrap();
    assert_eq!(store.name, "Kasa Forecourt Vesterbro");
    assert_eq!(
        (store.street.as_str(), store.zip_code.as_str(), store.city.as_str()),
        ("Vesterbrogade 1", "1620", "København V")
    );
    assert_eq!(store.terminal_ids, [LANE1, LANE2]);
    assert_eq!(
        query(&last(&s, "/api/pos/manage/store")),
        fields(&[("storeId", "STORE-0001"), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    assert_status(&c.store("STORE-0002").await.unwrap_err(), 404, "STORE_NOT_FOUND");
}

#[tokio::test]
async fn check_in_status_by_pos_and_by_terminal() {
    let s = manual().await;
    let c = client(&s, LANE1);
    let nobody = c.check_in_status().await.unwrap();
    assert!(!nobody.checked_in && nobody.customer_id.is_none());
    assert_eq!(nobody.pos_id.as_deref(), Some(POS1));
    assert_eq!(
        query(&last(&s, "/api/pos/manage/checkInStatus/byterminalId")),
        fields(&[("terminalId", LANE1), ("accessToken", TOKEN), ("bioCode", BIO)])
    );

    // A customer who checks in before the payment is paired as soon as it starts.
    s.mp.check_in(POS1).unwrap();
    let by_terminal = c.check_in_status().await.unwrap();
    let by_pos = c.check_in_status_by_pos().await.unwrap();
    assert!(by_terminal.checked_in && by_terminal.customer_id.is_some() && by_terminal.checked_in_at.is_some());
    assert_eq!(by_terminal, by_pos);
    assert_eq!(
        query(&last(&s, "/api/pos/manage/checkInStatus/byposId")),
        fields(&[("posId", POS1), ("accessToken", TOKEN), ("bioCode", BIO)])
    );
    let p = c.start("o-1", dkk(100)).await.unwrap();
    assert_eq!(p.status, PaymentStatus::IssuedToUser);

    // The customer leaves when the payment is over.
    c.cancel(&p.payment_id).await.unwrap();
    assert!(!c.check_in_status_by_pos().await.unwrap().checked_in);
    s.mp.check_in(LANE1).unwrap();
    s.mp.check_out(LANE1).unwrap();
    assert!(!c.check_in_status().await.unwrap().checked_in);
    assert_status(&client(&s, LANE2).check_in_status().await.unwrap_err(), 409, "NO_POS");
}

#[tokio::test]
async fn wrong_or_missing_credentials_answer_401() {
    let s = serve(with_second_merchant()).await;
    let wrong = client_as(&s, BIO, "not-the-token", LANE1);
    let err = wrong.start("o-1", dkk(100)).await.unwrap_err();
    assert_status(&err, 401, "UNAUTHORIZED");
    assert!(!err.to_string().contains("not-the-token"), "{err}");
    assert!(!format!("{wrong:?}").contains("not-the-token"));
    assert!(!format!("{:?}", client(&s, LANE1)).contains(TOKEN));
    // Another merchant's bioCode with this token.
    assert_status(&client_as(&s, "KASA-BIO-0002", TOKEN, LANE1).details("x").await.unwrap_err(), 401, "UNAUTHORIZED");
    assert_eq!(s.mp.payments().len(), 0, "nothing was started");

    // Missing fields, sent by hand.
    let http = reqwest::Client::new();
    let base = s.http.url();
    for (path, q) in [
        ("/api/pos/payment/status", format!("paymentId=x&bioCode={BIO}")),
        ("/api/pos/payment/status", format!("paymentId=x&accessToken={TOKEN}")),
        ("/api/pos/manage/stores", String::new()),
        ("/api/pos/manage/token", String::new()),
        ("/api/pos/manage/token/reset", format!("bioCode={BIO}")),
    ] {
        let resp = http.get(format!("{base}{path}?{q}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}?{q}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["errorCode"], "UNAUTHORIZED");
    }
    // Another merchant's terminal is not found, even with valid credentials.
    let other = client(&s, "AAR-1");
    assert_status(&other.terminal_information().await.unwrap_err(), 404, "TERMINAL_NOT_FOUND");
}

#[tokio::test]
async fn an_outage_is_not_sent_and_a_lost_start_is_repeated_safely() {
    let s = manual().await;
    let c = client(&s, LANE1);
    // A first call lets the service's accept loop start before the outage begins (an outage
    // set before the loop has run is not seen by it).
    assert_eq!(c.stores().await.unwrap(), ["STORE-0001"]);
    s.http.control.set_outage(true).await;
    let err = c.start("o-1", dkk(100)).await.unwrap_err();
    assert!(matches!(err, ConnectError::NotSent { system: "MobilePay", .. }), "{err:?}");
    assert!(err.is_transient() && !err.maybe_applied());
    assert!(!err.to_string().contains(TOKEN) && !err.to_string().contains("accessToken"), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN));
    s.http.control.set_outage(false).await;
    assert!(s.mp.payments().is_empty());

    // The start is applied but its answer lost: repeating the orderId finds the same payment.
    s.http.control.set_faults(Faults { lost_response_rate: 1.0, ..Faults::default() });
    let err = c.start("o-1", dkk(100)).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoAnswer { .. }), "{err:?}");
    assert!(err.is_transient() && err.maybe_applied());
    assert!(!err.to_string().contains(TOKEN), "{err}");
    s.http.control.set_faults(Faults::default());
    assert_eq!(s.recorder.of("mobilepay").last().unwrap().fate, Fate::ResponseLost);
    let p = c.start("o-1", dkk(100)).await.unwrap();
    assert_eq!(s.mp.payments().len(), 1, "started once");
    assert_eq!(s.mp.active_payment(LANE1), Some(p.payment_id.clone()));

    // An injected 503 is transient and may have been applied.
    s.http.control.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let err = c.status(&p.payment_id).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(503), Some("SERVICE_UNAVAILABLE")));
    assert!(err.is_transient() && err.maybe_applied());
    s.http.control.set_faults(Faults::default());

    // A timeout is no answer either, and keeps the token out too.
    s.http.control.set_faults(Faults { latency: Duration::from_millis(500), ..Faults::default() });
    let impatient = MobilePayClient::new(
        http_client(),
        MobilePaySettings {
            base_url: base_url(&s.http.url()).unwrap(),
            bio_code: BIO.into(),
            access_token: Secret::from(TOKEN),
            terminal_id: LANE1.into(),
            pos_id: None,
            timeout: Duration::from_millis(50),
        },
    );
    let err = impatient.status(&p.payment_id).await.unwrap_err();
    assert!(matches!(err, ConnectError::NoAnswer { .. }), "{err:?}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
}

#[tokio::test]
async fn the_scripted_customer_acts_alone() {
    let s = serve(MobilePayConfig {
        customer: CustomerScript::ApproveAfter(Duration::from_millis(20)),
        ..Default::default()
    })
    .await;
    let c = client(&s, LANE1);
    let p = c.start("o-1", dkk(100)).await.unwrap();
    assert_eq!(p.status, PaymentStatus::Initiated);
    wait_for(&c, &p.payment_id, PaymentStatus::Reserved).await;
    assert_eq!(s.mp.payment_history(&p.payment_id), ["Initiated", "Paired", "IssuedToUser", "Reserved"]);
    c.capture(&p.payment_id, dkk(100)).await.unwrap();

    s.mp.push_customer(CustomerScript::RejectAfter(Duration::ZERO));
    let p = c.start("o-2", dkk(100)).await.unwrap();
    wait_for(&c, &p.payment_id, PaymentStatus::CancelledByUser).await;
    s.mp.push_customer(CustomerScript::ExpireAfter(Duration::ZERO));
    let p = c.start("o-3", dkk(100)).await.unwrap();
    wait_for(&c, &p.payment_id, PaymentStatus::ExpiredAndCancelled).await;

    // A prepared payment waits for ready before the script runs.
    let p = c.prepare("o-4").await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(c.status(&p.payment_id).await.unwrap(), PaymentStatus::Prepared);
    c.ready(&p.payment_id, "o-4", dkk(100)).await.unwrap();
    wait_for(&c, &p.payment_id, PaymentStatus::Reserved).await;
    c.cancel(&p.payment_id).await.unwrap();

    // The demo panel's controls approve or reject the active payment of a terminal, and are
    // neither faulted nor recorded.
    s.mp.set_customer(CustomerScript::Manual);
    let http = reqwest::Client::new();
    let p = c.start("o-5", dkk(100)).await.unwrap();
    let resp = http.post(format!("{}/_sim/mobilepay/terminals/{LANE1}/approve", s.http.url())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((body["paymentId"].as_str(), body["status"].as_str()), (Some(p.payment_id.as_str()), Some("Reserved")));
    c.cancel(&p.payment_id).await.unwrap();
    let p = c.start("o-6", dkk(100)).await.unwrap();
    let resp = http.post(format!("{}/_sim/mobilepay/terminals/{LANE1}/reject", s.http.url())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(c.status(&p.payment_id).await.unwrap(), PaymentStatus::CancelledByUser);
    let resp = http.post(format!("{}/_sim/mobilepay/terminals/{LANE1}/reject", s.http.url())).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404, "nothing active any more");
    assert!(s.recorder.of("mobilepay").iter().all(|r| !r.path.starts_with("/_sim/")));
}
