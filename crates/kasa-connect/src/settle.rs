//! The Settle client, after `settle-coffee-shop-pos-integration.md`.
//!
//! Kasa shows a QR code `http://settle.eu/s/<shortlink_id>/<pos_tid>`; Settle reports the scan
//! to Kasa's callback with a scan token; Kasa requests the payment with that token as
//! `customer`, polls its outcome, and captures it once authorised (3008). Requests carry
//! `X-Settle-Merchant`, `X-Settle-User` and `Authorization: SECRET <secret>`.

use crate::ExposeSecret;
use std::time::Duration;

use crate::transport::Method;
use kasa_core::Money;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ConnectError, Secret, Url};

const SYSTEM: &str = "Settle";

/// Settle's JSON shapes.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// Payment request.
    #[derive(Debug, Serialize)]
    pub struct PaymentRequest<'a> {
        pub action: &'a str,
        pub allow_credit: bool,
        pub pos_tid: &'a str,
        pub pos_id: &'a str,
        pub customer: &'a str,
        pub currency: &'a str,
        pub amount: i64,
    }

    /// The id of a created payment request (`tid`).
    #[derive(Debug, Deserialize)]
    pub struct Created {
        pub id: String,
    }

    /// An action on a payment request.
    #[derive(Debug, Serialize)]
    pub struct Action<'a> {
        pub action: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub amount: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub refund_id: Option<&'a str>,
    }

    /// The shortlink's callback.
    #[derive(Debug, Serialize)]
    pub struct Callback<'a> {
        pub callback_uri: &'a str,
    }

    /// An error body.
    #[derive(Debug, Deserialize)]
    pub struct Error {
        #[serde(default)]
        pub error_code: String,
        #[serde(default)]
        pub error_description: String,
    }

    /// What Settle posts to the callback when a shortlink is scanned.
    #[derive(Debug, Deserialize)]
    pub struct Callbacked {
        pub meta: Meta,
        pub object: Object,
    }

    /// Callback metadata.
    #[derive(Debug, Deserialize)]
    pub struct Meta {
        pub event: String,
    }

    /// The scanned object.
    #[derive(Debug, Deserialize)]
    pub struct Object {
        pub id: String,
        #[serde(default)]
        pub argstring: String,
        /// Not in Settle's scan callbacks; read so that a callback naming an amount can be
        /// checked against the attempt's.
        #[serde(default)]
        pub amount: Option<i64>,
    }
}

/// A payment request's outcome status, by Settle's `status_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// 1003: waiting for the customer.
    Pending,
    /// 3008: authorised; capture it.
    Auth,
    /// 2000: captured; the money is the merchant's.
    Ok,
    /// 4004: no such request.
    NotFound,
    /// 4019: aborted by the POS.
    Aborted,
    /// 5006: rejected by the customer.
    Rejected,
    /// 5011: the customer did not answer in time.
    RequestExpired,
    /// 5012: authorised but not captured in time.
    AuthExpired,
    /// A code this client does not know: a 1xxx or 3xxx code is treated as still pending, a
    /// 2xxx as done, anything else as failed.
    Other(u16),
}

impl Status {
    /// From a `status_code`.
    pub fn from_code(code: u16) -> Status {
        match code {
            1003 => Status::Pending,
            3008 => Status::Auth,
            2000 => Status::Ok,
            4004 => Status::NotFound,
            4019 => Status::Aborted,
            5006 => Status::Rejected,
            5011 => Status::RequestExpired,
            5012 => Status::AuthExpired,
            other => Status::Other(other),
        }
    }

    /// The `status_code`.
    pub fn code(self) -> u16 {
        match self {
            Status::Pending => 1003,
            Status::Auth => 3008,
            Status::Ok => 2000,
            Status::NotFound => 4004,
            Status::Aborted => 4019,
            Status::Rejected => 5006,
            Status::RequestExpired => 5011,
            Status::AuthExpired => 5012,
            Status::Other(c) => c,
        }
    }

    /// Whether the customer may still decide.
    pub fn is_pending(self) -> bool {
        match self {
            Status::Pending => true,
            Status::Other(c) => (1000..2000).contains(&c) || (3000..4000).contains(&c) && c != 3008,
            _ => false,
        }
    }

    /// Whether the request failed for good (no money taken).
    pub fn is_failed(self) -> bool {
        match self {
            Status::NotFound | Status::Aborted | Status::Rejected | Status::RequestExpired | Status::AuthExpired => {
                true
            }
            Status::Other(c) => c >= 4000,
            _ => false,
        }
    }
}

/// The outcome document of a payment request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Outcome {
    /// Settle's transaction id.
    #[serde(default)]
    pub tid: String,
    /// The status code.
    pub status_code: u16,
    /// The POS transaction id.
    #[serde(default)]
    pub pos_tid: String,
    /// Amount requested.
    #[serde(default)]
    pub amount: i64,
    /// Amount authorised.
    #[serde(default)]
    pub auth_amount: i64,
    /// Currency of the request, when Settle names it.
    #[serde(default)]
    pub currency: Option<String>,
}

impl Outcome {
    /// The status.
    pub fn status(&self) -> Status {
        Status::from_code(self.status_code)
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct SettleSettings {
    /// Base URL (e.g. `https://api.settle.demo/`).
    pub base_url: Url,
    /// Merchant id.
    pub merchant_id: String,
    /// API user.
    pub api_user: String,
    /// API secret.
    pub secret: Secret,
    /// This POS's id (`pos_id`).
    pub pos_id: String,
    /// The merchant's shortlink id.
    pub shortlink_id: String,
    /// Timeout of each call.
    pub timeout: Duration,
}

/// The Settle client.
#[derive(Debug)]
pub struct SettleClient {
    http: crate::HttpClient,
    settings: SettleSettings,
}

impl SettleClient {
    /// A client.
    pub fn new(http: crate::HttpClient, settings: SettleSettings) -> SettleClient {
        SettleClient { http, settings }
    }

    /// The text of the QR code a customer scans to pay for `pos_tid`.
    pub fn qr_url(&self, pos_tid: &str) -> String {
        format!("http://settle.eu/s/{}/{pos_tid}", self.settings.shortlink_id)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<Option<T>, ConnectError> {
        let url = crate::endpoint_dir(SYSTEM, &self.settings.base_url, path)?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(self.settings.timeout)
            .header("X-Settle-Merchant", &self.settings.merchant_id)
            .header("X-Settle-User", &self.settings.api_user)
            .header("Authorization", format!("SECRET {}", self.settings.secret.expose_secret()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send(SYSTEM).await?;
        let bytes = crate::answer(SYSTEM, resp, |b| {
            serde_json::from_slice::<wire::Error>(b).ok().map(|e| (e.error_code, e.error_description))
        })?;
        // Actions answer 204 with no body.
        if bytes.is_empty() { Ok(None) } else { crate::from_json(SYSTEM, &bytes).map(Some) }
    }

    fn json<T: Serialize>(v: &T) -> Result<serde_json::Value, ConnectError> {
        crate::to_json(SYSTEM, v)
    }

    /// Points the shortlink's scans at Kasa's callback.
    pub async fn set_callback(&self, callback_uri: &str) -> Result<(), ConnectError> {
        let body = Self::json(&wire::Callback { callback_uri })?;
        let path = ["merchant", "v1", "shortlink", self.settings.shortlink_id.as_str()];
        self.call::<serde_json::Value>(Method::PUT, &path, Some(body)).await.map(|_| ())
    }

    /// Requests a payment from the customer who scanned (scan token); returns the `tid`.
    pub async fn request_payment(&self, customer: &str, pos_tid: &str, amount: Money) -> Result<String, ConnectError> {
        let body = Self::json(&wire::PaymentRequest {
            action: "SALE",
            allow_credit: true,
            pos_tid,
            pos_id: &self.settings.pos_id,
            customer,
            currency: amount.currency.as_str(),
            amount: amount.minor,
        })?;
        let created: Option<wire::Created> =
            self.call(Method::POST, &["merchant", "v1", "payment_request"], Some(body)).await?;
        created.map(|c| c.id).ok_or_else(|| ConnectError::BadAnswer {
            system: SYSTEM,
            detail: "no id in the payment request answer".into(),
        })
    }

    /// The outcome of a payment request (4004 comes back as a `NotFound` outcome).
    pub async fn outcome(&self, tid: &str) -> Result<Outcome, ConnectError> {
        let path = ["merchant", "v1", "payment_request", tid, "outcome"];
        match self.call::<Outcome>(Method::GET, &path, None).await {
            Ok(Some(o)) => Ok(o),
            Ok(None) => Err(ConnectError::BadAnswer { system: SYSTEM, detail: "empty outcome".into() }),
            Err(e) if e.status() == Some(404) => Ok(Outcome {
                tid: tid.to_string(),
                status_code: 4004,
                pos_tid: String::new(),
                amount: 0,
                auth_amount: 0,
                currency: None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn action(
        &self,
        tid: &str,
        action: &str,
        amount: Option<i64>,
        refund_id: Option<&str>,
    ) -> Result<(), ConnectError> {
        let body = Self::json(&wire::Action { action, amount, refund_id })?;
        let path = ["merchant", "v1", "payment_request", tid];
        self.call::<serde_json::Value>(Method::PUT, &path, Some(body)).await.map(|_| ())
    }

    /// Captures an authorised payment.
    pub async fn capture(&self, tid: &str) -> Result<(), ConnectError> {
        self.action(tid, "capture", None, None).await
    }

    /// Aborts a payment request the customer has not finished.
    pub async fn abort(&self, tid: &str) -> Result<(), ConnectError> {
        self.action(tid, "abort", None, None).await
    }

    /// Refunds `amount` of a captured payment; `refund_id` makes a repeat safe.
    pub async fn refund(&self, tid: &str, amount: Money, refund_id: &str) -> Result<(), ConnectError> {
        self.action(tid, "refund", Some(amount.minor), Some(refund_id)).await
    }
}

/// A `shortlink_scanned` callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The scan token a payment request is made with.
    pub token: String,
    /// The QR code's argstring: the attempt's `pos_tid`.
    pub pos_tid: String,
    /// An amount, if the callback names one (Settle's scans do not).
    pub amount: Option<i64>,
}

/// Reads a scan callback's body.
pub fn parse_scan(body: &[u8]) -> Result<Scan, String> {
    let c: wire::Callbacked = serde_json::from_slice(body).map_err(|e| format!("not a Settle callback: {e}"))?;
    if c.meta.event != "shortlink_scanned" {
        return Err(format!("unexpected Settle event '{}'", c.meta.event));
    }
    if !c.object.id.starts_with("token:") || c.object.argstring.is_empty() {
        return Err("a scan callback names no scan token or no argstring".into());
    }
    Ok(Scan { token: c.object.id, pos_tid: c.object.argstring, amount: c.object.amount })
}
