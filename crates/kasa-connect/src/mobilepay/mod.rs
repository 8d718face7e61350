//! The MobilePay PoS client, after `mobilepay-pos-api.md`.
//!
//! Every call names the merchant by `bioCode` and carries its long-lived `accessToken` (only
//! `manage/token` and `manage/token/reset` do without it). Calls are GET requests with the
//! fields in the query string; the POST forms the document offers (start, prepare, ready,
//! token, PoS creation, refund creation) send the same fields as a JSON body and are chosen
//! with the `*_post` methods. Because the access token travels in the query string, errors
//! built from transport failures have the query removed from their URL.
//!
//! The document gives no JSON shapes; [`wire`] holds the ones Kasa reads (amounts as decimal
//! numbers in major units with `currencyCode`, errors as `{"errorCode", "message"}`), and the
//! conversions to [`Money`] are explicit, through the decimal text, never through floating
//! point arithmetic.

use crate::ExposeSecret;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::transport::Method;
use kasa_core::{Currency, Money};
use serde::de::DeserializeOwned;

use crate::{ConnectError, Secret, Url};

const SYSTEM: &str = "MobilePay";

pub mod paths;
mod types;
pub mod wire;

pub use types::*;

use wire::Field;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct MobilePaySettings {
    /// Base URL (the paths start with `api/pos/`).
    pub base_url: Url,
    /// The merchant's bioCode.
    pub bio_code: String,
    /// The merchant's long-lived access token (the client adopts a created or reset one).
    pub access_token: Secret,
    /// This register's terminal id.
    pub terminal_id: String,
    /// This register's posId, for the calls by posId (the client adopts a created one).
    pub pos_id: Option<String>,
    /// Timeout of each call.
    pub timeout: Duration,
}

/// How a call is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Get,
    Post,
    Delete,
}

/// Which credentials a call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// `accessToken` and `bioCode`.
    Token,
    /// `bioCode` only (the caller adds what else it needs).
    BioCode,
}

/// The MobilePay PoS client.
#[derive(Debug)]
pub struct MobilePayClient {
    http: crate::HttpClient,
    settings: MobilePaySettings,
    access_token: Mutex<Secret>,
    pos_id: Mutex<Option<String>>,
}

fn bad(detail: impl Into<String>) -> ConnectError {
    ConnectError::BadAnswer { system: SYSTEM, detail: detail.into() }
}

/// A transport failure (its text leaves out the query string, which holds the access token).
fn money(amount: &serde_json::Number, currency: Currency) -> Result<Money, ConnectError> {
    Money::parse_decimal(&amount.to_string(), currency).map_err(|e| bad(e.to_string()))
}

fn currency(code: &str) -> Result<Currency, ConnectError> {
    Currency::parse(code).map_err(|e| bad(e.to_string()))
}

impl TryFrom<wire::Payment> for PaymentDetails {
    type Error = ConnectError;
    fn try_from(w: wire::Payment) -> Result<Self, ConnectError> {
        let cur = currency(&w.currency_code)?;
        let or_zero = |n: Option<&serde_json::Number>| n.map(|n| money(n, cur)).unwrap_or(Ok(Money::zero(cur)));
        Ok(PaymentDetails {
            amount: w.amount.as_ref().map(|n| money(n, cur)).transpose()?,
            captured_amount: or_zero(w.captured_amount.as_ref())?,
            refunded_amount: or_zero(w.refunded_amount.as_ref())?,
            status: PaymentStatus::parse(&w.status),
            payment_id: w.payment_id,
            order_id: w.order_id,
            terminal_id: w.terminal_id,
            pos_id: w.pos_id,
            store_id: w.store_id,
        })
    }
}

impl TryFrom<wire::Refund> for Refund {
    type Error = ConnectError;
    fn try_from(w: wire::Refund) -> Result<Self, ConnectError> {
        Ok(Refund {
            amount: money(&w.amount, currency(&w.currency_code)?)?,
            status: RefundStatus::parse(&w.status),
            refund_id: w.refund_id,
            payment_id: w.payment_id,
            refund_order_id: w.refund_order_id,
        })
    }
}

impl From<wire::Terminal> for Terminal {
    fn from(w: wire::Terminal) -> Self {
        Terminal { terminal_id: w.terminal_id, name: w.name, store_id: w.store_id, pos_id: w.pos_id }
    }
}

/// `None` for a "no such payment" answer, which is an answer when looking a payment up.
fn found(r: Result<wire::PaymentId, ConnectError>) -> Result<Option<String>, ConnectError> {
    match r {
        Ok(p) => Ok(Some(p.payment_id)),
        Err(e) if e.status() == Some(404) && e.code() == Some("PAYMENT_NOT_FOUND") => Ok(None),
        Err(e) => Err(e),
    }
}

impl MobilePayClient {
    /// A client; no call is made until the first request.
    pub fn new(http: crate::HttpClient, settings: MobilePaySettings) -> MobilePayClient {
        let access_token = Mutex::new(settings.access_token.clone());
        let pos_id = Mutex::new(settings.pos_id.clone());
        MobilePayClient { http, settings, access_token, pos_id }
    }

    /// This register's terminal id.
    pub fn terminal_id(&self) -> &str {
        &self.settings.terminal_id
    }

    /// This register's posId, as configured or created.
    pub fn pos_id(&self) -> Option<String> {
        lock(&self.pos_id).clone()
    }

    /// Replaces the access token the calls carry.
    pub fn set_access_token(&self, token: Secret) {
        *lock(&self.access_token) = token;
    }

    fn require_pos(&self) -> Result<String, ConnectError> {
        self.pos_id().ok_or_else(|| {
            ConnectError::Config("MobilePay: this register has no posId; create the PoS or configure pos_id".into())
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        form: Form,
        path: &str,
        fields: &[(&str, Field<'_>)],
        auth: Auth,
    ) -> Result<T, ConnectError> {
        let url = self
            .settings
            .base_url
            .join(path)
            .map_err(|e| ConnectError::Config(format!("bad MobilePay path {path}: {e}")))?;
        let token = lock(&self.access_token).clone();
        let mut all: Vec<(&str, Field<'_>)> = fields.to_vec();
        if auth == Auth::Token {
            all.push(("accessToken", Field::Text(token.expose_secret())));
        }
        all.push(("bioCode", Field::Text(&self.settings.bio_code)));
        let req = match form {
            Form::Get => self.http.get(url).query(&wire::query(&all)),
            Form::Delete => self.http.request(Method::DELETE, url).query(&wire::query(&all)),
            Form::Post => self.http.post(url).json(&wire::body(&all).map_err(ConnectError::Config)?),
        };
        let resp = req.timeout(self.settings.timeout).header("Accept", "application/json").send(SYSTEM).await?;
        read(resp)
    }

    async fn start_form(&self, form: Form, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        let fields = [
            ("orderId", Field::Text(order_id)),
            ("amount", Field::Amount(amount)),
            ("terminalId", Field::Text(&self.settings.terminal_id)),
            ("currencyCode", Field::Text(amount.currency.as_str())),
        ];
        self.payment(form, paths::START, &fields).await
    }

    async fn start_by_pos_form(&self, form: Form, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        let pos_id = self.require_pos()?;
        let fields = [
            ("orderId", Field::Text(order_id)),
            ("amount", Field::Amount(amount)),
            ("posId", Field::Text(&pos_id)),
            ("currencyCode", Field::Text(amount.currency.as_str())),
        ];
        self.payment(form, paths::START_BY_POS, &fields).await
    }

    async fn payment(&self, form: Form, path: &str, fields: &[(&str, Field<'_>)]) -> Result<Payment, ConnectError> {
        let w: wire::Payment = self.call(form, path, fields, Auth::Token).await?;
        Ok(PaymentDetails::try_from(w)?.payment())
    }

    async fn payment_details(&self, path: &str, fields: &[(&str, Field<'_>)]) -> Result<PaymentDetails, ConnectError> {
        let w: wire::Payment = self.call(Form::Get, path, fields, Auth::Token).await?;
        PaymentDetails::try_from(w)
    }

    /// The link to this terminal's QR code image, for the customer to scan.
    pub async fn qrcode(&self) -> Result<Url, ConnectError> {
        let fields = [("terminalId", Field::Text(&self.settings.terminal_id))];
        let w: wire::QrCode = self.call(Form::Get, paths::QRCODE, &fields, Auth::Token).await?;
        Url::parse(&w.qr_code_url).map_err(|e| bad(format!("QR code link '{}': {e}", w.qr_code_url)))
    }

    /// Starts a payment at this terminal (GET). Refused while another payment is active on the
    /// PoS.
    pub async fn start(&self, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.start_form(Form::Get, order_id, amount).await
    }

    /// Starts a payment at this terminal (POST).
    pub async fn start_post(&self, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.start_form(Form::Post, order_id, amount).await
    }

    /// Starts a payment at this register's posId (GET).
    pub async fn start_by_pos(&self, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.start_by_pos_form(Form::Get, order_id, amount).await
    }

    /// Starts a payment at this register's posId (POST).
    pub async fn start_by_pos_post(&self, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.start_by_pos_form(Form::Post, order_id, amount).await
    }

    async fn prepare_form(&self, form: Form, order_id: &str) -> Result<Payment, ConnectError> {
        let fields = [("orderId", Field::Text(order_id)), ("terminalId", Field::Text(&self.settings.terminal_id))];
        self.payment(form, paths::PREPARE, &fields).await
    }

    /// Prepares a payment before its amount is known (GET); make it ready with
    /// [`MobilePayClient::ready`].
    pub async fn prepare(&self, order_id: &str) -> Result<Payment, ConnectError> {
        self.prepare_form(Form::Get, order_id).await
    }

    /// Prepares a payment (POST).
    pub async fn prepare_post(&self, order_id: &str) -> Result<Payment, ConnectError> {
        self.prepare_form(Form::Post, order_id).await
    }

    async fn ready_form(
        &self,
        form: Form,
        payment_id: &str,
        order_id: &str,
        amount: Money,
    ) -> Result<Payment, ConnectError> {
        let fields = [
            ("orderId", Field::Text(order_id)),
            ("amount", Field::Amount(amount)),
            ("terminalId", Field::Text(&self.settings.terminal_id)),
            ("currencyCode", Field::Text(amount.currency.as_str())),
            ("paymentId", Field::Text(payment_id)),
        ];
        self.payment(form, paths::READY, &fields).await
    }

    /// Makes a prepared payment ready for the customer's approval, with its amount (GET).
    pub async fn ready(&self, payment_id: &str, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.ready_form(Form::Get, payment_id, order_id, amount).await
    }

    /// Makes a prepared payment ready (POST).
    pub async fn ready_post(&self, payment_id: &str, order_id: &str, amount: Money) -> Result<Payment, ConnectError> {
        self.ready_form(Form::Post, payment_id, order_id, amount).await
    }

    /// A payment's details.
    pub async fn details(&self, payment_id: &str) -> Result<PaymentDetails, ConnectError> {
        self.payment_details(paths::DETAILS, &[("paymentId", Field::Text(payment_id))]).await
    }

    /// Payments of the merchant: active ones, or those in `query.state`, optionally of one
    /// order or terminal.
    pub async fn payments(&self, query: &PaymentsQuery) -> Result<Vec<PaymentDetails>, ConnectError> {
        let mut fields = Vec::new();
        if let Some(s) = &query.state {
            fields.push(("state", Field::Text(s.as_str())));
        }
        if let Some(o) = &query.order_id {
            fields.push(("orderId", Field::Text(o)));
        }
        if let Some(t) = &query.terminal_id {
            fields.push(("terminalId", Field::Text(t)));
        }
        let list: wire::PaymentList = self.call(Form::Get, paths::PAYMENTS, &fields, Auth::Token).await?;
        list.payments.into_iter().map(PaymentDetails::try_from).collect()
    }

    /// The active payments at this terminal (at most one, unless something is amiss): after a
    /// restart, the one to continue or cancel.
    pub async fn active_payments(&self) -> Result<Vec<PaymentDetails>, ConnectError> {
        self.payments(&PaymentsQuery { terminal_id: Some(self.settings.terminal_id.clone()), ..Default::default() })
            .await
    }

    /// A payment's status.
    pub async fn status(&self, payment_id: &str) -> Result<PaymentStatus, ConnectError> {
        let fields = [("paymentId", Field::Text(payment_id))];
        let w: wire::Status = self.call(Form::Get, paths::STATUS, &fields, Auth::Token).await?;
        if w.payment_id != payment_id {
            return Err(bad(format!("asked for payment {payment_id}, got {}", w.payment_id)));
        }
        Ok(PaymentStatus::parse(&w.status))
    }

    /// Captures a reserved payment, up to the reserved amount.
    pub async fn capture(&self, payment_id: &str, amount: Money) -> Result<PaymentDetails, ConnectError> {
        let fields = [("paymentId", Field::Text(payment_id)), ("amount", Field::Amount(amount))];
        self.payment_details(paths::CAPTURE, &fields).await
    }

    /// Cancels a payment in any state but captured.
    pub async fn cancel(&self, payment_id: &str) -> Result<PaymentDetails, ConnectError> {
        self.payment_details(paths::CANCEL, &[("paymentId", Field::Text(payment_id))]).await
    }

    /// Finds the paymentId of an order by state (the document allows only `Captured`);
    /// `None` when there is no such payment.
    pub async fn retrieve_by_state(
        &self,
        order_id: &str,
        state: PaymentStatus,
    ) -> Result<Option<String>, ConnectError> {
        let fields = [("orderId", Field::Text(order_id)), ("state", Field::Text(state.as_str()))];
        found(self.call(Form::Get, paths::RETRIEVE_BY_STATE, &fields, Auth::Token).await)
    }

    /// Finds the paymentId of an order at this terminal, optionally in one state; `None` when
    /// there is no such payment.
    pub async fn retrieve_by_terminal(
        &self,
        order_id: &str,
        state: Option<PaymentStatus>,
    ) -> Result<Option<String>, ConnectError> {
        let mut fields =
            vec![("orderId", Field::Text(order_id)), ("terminalId", Field::Text(&self.settings.terminal_id))];
        if let Some(s) = &state {
            fields.push(("paymentState", Field::Text(s.as_str())));
        }
        found(self.call(Form::Get, paths::RETRIEVE_BY_TERMINAL, &fields, Auth::Token).await)
    }

    /// Finds the paymentId of an order at this register's posId, optionally in one state;
    /// `None` when there is no such payment.
    pub async fn retrieve_by_pos(
        &self,
        order_id: &str,
        state: Option<PaymentStatus>,
    ) -> Result<Option<String>, ConnectError> {
        let pos_id = self.require_pos()?;
        let mut fields = Vec::new();
        if let Some(s) = &state {
            fields.push(("paymentState", Field::Text(s.as_str())));
        }
        fields.push(("orderId", Field::Text(order_id)));
        fields.push(("posId", Field::Text(&pos_id)));
        found(self.call(Form::Get, paths::RETRIEVE_BY_POS, &fields, Auth::Token).await)
    }

    async fn refund_create_form(
        &self,
        form: Form,
        payment_id: &str,
        amount: Money,
        refund_order_id: &str,
    ) -> Result<Refund, ConnectError> {
        let fields = [
            ("amount", Field::Amount(amount)),
            ("currencyCode", Field::Text(amount.currency.as_str())),
            ("paymentId", Field::Text(payment_id)),
            ("refundOrderId", Field::Text(refund_order_id)),
        ];
        let w: wire::Refund = self.call(form, paths::REFUND_CREATE, &fields, Auth::Token).await?;
        Refund::try_from(w)
    }

    /// Creates a refund of a captured payment (GET); `refund_order_id` makes a repeat safe.
    pub async fn refund_create(
        &self,
        payment_id: &str,
        amount: Money,
        refund_order_id: &str,
    ) -> Result<Refund, ConnectError> {
        self.refund_create_form(Form::Get, payment_id, amount, refund_order_id).await
    }

    /// Creates a refund (POST).
    pub async fn refund_create_post(
        &self,
        payment_id: &str,
        amount: Money,
        refund_order_id: &str,
    ) -> Result<Refund, ConnectError> {
        self.refund_create_form(Form::Post, payment_id, amount, refund_order_id).await
    }

    async fn refund_call(&self, path: &str, refund_id: &str) -> Result<Refund, ConnectError> {
        let w: wire::Refund = self.call(Form::Get, path, &[("refundId", Field::Text(refund_id))], Auth::Token).await?;
        Refund::try_from(w)
    }

    /// A refund's details.
    pub async fn refund_details(&self, refund_id: &str) -> Result<Refund, ConnectError> {
        self.refund_call(paths::REFUND_DETAILS, refund_id).await
    }

    /// Captures a refund: the money goes back to the customer.
    pub async fn refund_capture(&self, refund_id: &str) -> Result<Refund, ConnectError> {
        self.refund_call(paths::REFUND_CAPTURE, refund_id).await
    }

    /// Cancels a refund that is not captured.
    pub async fn refund_cancel(&self, refund_id: &str) -> Result<Refund, ConnectError> {
        self.refund_call(paths::REFUND_CANCEL, refund_id).await
    }

    /// The refund ids of a payment, oldest first.
    pub async fn refunds(&self, payment_id: &str) -> Result<Vec<String>, ConnectError> {
        let fields = [("paymentId", Field::Text(payment_id))];
        let w: wire::RefundIds = self.call(Form::Get, paths::REFUNDS, &fields, Auth::Token).await?;
        Ok(w.refund_ids)
    }

    async fn token_form(&self, form: Form) -> Result<Secret, ConnectError> {
        let w: wire::Token = self.call(form, paths::TOKEN, &[], Auth::BioCode).await?;
        let token = w.access_token;
        self.set_access_token(token.clone());
        Ok(token)
    }

    /// Creates the merchant's long-lived access token (GET; only when it has none) and uses it
    /// from now on.
    pub async fn create_token(&self) -> Result<Secret, ConnectError> {
        self.token_form(Form::Get).await
    }

    /// Creates the access token (POST).
    pub async fn create_token_post(&self) -> Result<Secret, ConnectError> {
        self.token_form(Form::Post).await
    }

    /// Replaces the access token with a new one, proving the current one, and uses the new one
    /// from now on.
    pub async fn reset_token(&self) -> Result<Secret, ConnectError> {
        let previous = lock(&self.access_token).clone();
        let fields = [("previousAccessToken", Field::Text(previous.expose_secret()))];
        let w: wire::Token = self.call(Form::Get, paths::TOKEN_RESET, &fields, Auth::BioCode).await?;
        let token = w.access_token;
        self.set_access_token(token.clone());
        Ok(token)
    }

    async fn create_pos_form(&self, form: Form) -> Result<Terminal, ConnectError> {
        let fields = [("terminalId", Field::Text(&self.settings.terminal_id))];
        let w: wire::Terminal = self.call(form, paths::CREATE, &fields, Auth::Token).await?;
        if w.pos_id.is_none() {
            return Err(bad("the PoS was created but no posId came back"));
        }
        *lock(&self.pos_id) = w.pos_id.clone();
        Ok(Terminal::from(w))
    }

    /// Creates a PoS for this terminal (GET; only when it has none) and uses its posId from now
    /// on.
    pub async fn create_pos(&self) -> Result<Terminal, ConnectError> {
        self.create_pos_form(Form::Get).await
    }

    /// Creates a PoS for this terminal (POST).
    pub async fn create_pos_post(&self) -> Result<Terminal, ConnectError> {
        self.create_pos_form(Form::Post).await
    }

    async fn delete_pos_form(&self, form: Form) -> Result<Terminal, ConnectError> {
        let fields = [("terminalId", Field::Text(&self.settings.terminal_id))];
        let w: wire::Terminal = self.call(form, paths::DELETE, &fields, Auth::Token).await?;
        *lock(&self.pos_id) = None;
        Ok(Terminal::from(w))
    }

    /// Deletes this terminal's PoS (GET).
    pub async fn delete_pos(&self) -> Result<Terminal, ConnectError> {
        self.delete_pos_form(Form::Get).await
    }

    /// Deletes this terminal's PoS (HTTP DELETE).
    pub async fn delete_pos_via_delete(&self) -> Result<Terminal, ConnectError> {
        self.delete_pos_form(Form::Delete).await
    }

    /// This terminal and its PoS.
    pub async fn terminal_information(&self) -> Result<Terminal, ConnectError> {
        let fields = [("terminalId", Field::Text(&self.settings.terminal_id))];
        let w: wire::Terminal = self.call(Form::Get, paths::TERMINAL_INFORMATION, &fields, Auth::Token).await?;
        Ok(Terminal::from(w))
    }

    /// The merchant's store ids.
    pub async fn stores(&self) -> Result<Vec<String>, ConnectError> {
        let w: wire::StoreIds = self.call(Form::Get, paths::STORES, &[], Auth::Token).await?;
        Ok(w.store_ids)
    }

    /// A store's information.
    pub async fn store(&self, store_id: &str) -> Result<Store, ConnectError> {
        let w: wire::Store =
            self.call(Form::Get, paths::STORE, &[("storeId", Field::Text(store_id))], Auth::Token).await?;
        Ok(Store {
            store_id: w.store_id,
            name: w.name,
            street: w.street,
            zip_code: w.zip_code,
            city: w.city,
            terminal_ids: w.terminal_ids,
        })
    }

    async fn check_in(&self, path: &str, fields: &[(&str, Field<'_>)]) -> Result<CheckInStatus, ConnectError> {
        let w: wire::CheckIn = self.call(Form::Get, path, fields, Auth::Token).await?;
        Ok(CheckInStatus {
            terminal_id: w.terminal_id,
            pos_id: w.pos_id,
            checked_in: w.checked_in,
            customer_id: w.customer_id,
            checked_in_at: w.checked_in_at,
        })
    }

    /// Who is checked in at this terminal's PoS.
    pub async fn check_in_status(&self) -> Result<CheckInStatus, ConnectError> {
        self.check_in(paths::CHECK_IN_BY_TERMINAL, &[("terminalId", Field::Text(&self.settings.terminal_id))]).await
    }

    /// Who is checked in at this register's posId.
    pub async fn check_in_status_by_pos(&self) -> Result<CheckInStatus, ConnectError> {
        let pos_id = self.require_pos()?;
        self.check_in(paths::CHECK_IN_BY_POS, &[("posId", Field::Text(&pos_id))]).await
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T: DeserializeOwned>(resp: crate::transport::Response) -> Result<T, ConnectError> {
    let bytes = crate::answer(SYSTEM, resp, |b| match serde_json::from_slice::<wire::Error>(b) {
        Ok(e) if !e.error_code.is_empty() => Some((e.error_code, e.message)),
        _ => None,
    })?;
    crate::from_json(SYSTEM, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_classify() {
        let all = [
            "Initiated",
            "Prepared",
            "Paired",
            "IssuedToUser",
            "Reserved",
            "Captured",
            "CancelledByUser",
            "CancelledByClient",
            "CancelledByMobilePay",
            "ExpiredAndCancelled",
            "RejectedByMobilePayDueToAgeRestrictions",
        ];
        for name in all {
            let s = PaymentStatus::parse(name);
            assert!(!matches!(s, PaymentStatus::Unknown(_)), "{name}");
            assert_eq!(s.as_str(), name);
            assert_ne!(s.is_active(), s.is_final(), "{name} is either active or final");
        }
        let odd = PaymentStatus::parse("Reversed");
        assert_eq!(odd, PaymentStatus::Unknown("Reversed".into()));
        assert!(!odd.is_active() && !odd.is_final());
        assert_eq!(odd.to_string(), "Reversed");
    }

    #[test]
    fn amounts_are_decimal_text_in_queries_and_numbers_in_bodies() {
        let m = Money::new(12_345, Currency::DKK);
        let fields = [("amount", Field::Amount(m)), ("orderId", Field::Text("o-1"))];
        assert_eq!(
            wire::query(&fields),
            [("amount".to_string(), "123.45".to_string()), ("orderId".to_string(), "o-1".to_string())]
        );
        assert_eq!(wire::body(&fields).unwrap().to_string(), r#"{"amount":123.45,"orderId":"o-1"}"#);
        let n: serde_json::Number = "100.0".parse().unwrap();
        assert_eq!(money(&n, Currency::DKK).unwrap(), Money::new(10_000, Currency::DKK));
        let n: serde_json::Number = "0.1".parse().unwrap();
        assert_eq!(money(&n, Currency::DKK).unwrap(), Money::new(10, Currency::DKK));
        let n: serde_json::Number = "1.005".parse().unwrap();
        assert!(money(&n, Currency::DKK).is_err(), "three fraction digits are refused");
    }
}
