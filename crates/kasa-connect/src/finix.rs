//! The Finix client for card-present payments, per `finix-pos-integration.md`.
//!
//! Every call carries HTTP Basic auth and the `Finix-Version` header. A card-present sale is a
//! `POST /transfers` naming the device; it answers when the terminal reaches an outcome, so the
//! call's timeout is long. Errors come in Finix's envelope (`_embedded.errors`).

use crate::ExposeSecret;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::transport::Method;
use kasa_core::Money;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ConnectError, Secret, Url};

const SYSTEM: &str = "Finix";

/// The API version Kasa speaks.
pub const VERSION: &str = "2022-02-01";

/// Finix's JSON shapes.
pub mod wire {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    /// The error envelope.
    #[derive(Debug, Deserialize)]
    pub struct Envelope {
        #[serde(rename = "_embedded")]
        pub embedded: Option<Errors>,
    }

    /// Errors inside the envelope.
    #[derive(Debug, Deserialize)]
    pub struct Errors {
        #[serde(default)]
        pub errors: Vec<ErrorItem>,
    }

    /// One error.
    #[derive(Debug, Deserialize)]
    pub struct ErrorItem {
        #[serde(default)]
        pub code: String,
        #[serde(default)]
        pub message: String,
    }

    /// Create Device.
    #[derive(Debug, Serialize)]
    pub struct CreateDevice<'a> {
        pub description: &'a str,
        pub model: &'a str,
        pub name: &'a str,
        pub serial_number: &'a str,
    }

    /// Device action.
    #[derive(Debug, Serialize)]
    pub struct Action<'a> {
        pub action: &'a str,
    }

    /// Card-present sale.
    #[derive(Debug, Serialize)]
    pub struct CreateTransfer<'a> {
        pub amount: i64,
        pub currency: &'a str,
        pub device: &'a str,
        pub operation_key: &'a str,
        pub tags: &'a BTreeMap<String, String>,
        pub idempotency_id: &'a str,
    }

    /// Refund request.
    #[derive(Debug, Serialize)]
    pub struct CreateReversal<'a> {
        pub refund_amount: i64,
        pub idempotency_id: &'a str,
    }

    /// A list of transfers.
    #[derive(Debug, Deserialize)]
    pub struct TransferPage {
        #[serde(rename = "_embedded")]
        pub embedded: Option<EmbeddedTransfers>,
    }

    /// Transfers inside a page.
    #[derive(Debug, Deserialize)]
    pub struct EmbeddedTransfers {
        #[serde(default)]
        pub transfers: Vec<super::Transfer>,
    }
}

/// A device (payment terminal) resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Id.
    pub id: String,
    /// Model, e.g. `PAX_A920PRO`.
    #[serde(default)]
    pub model: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Activated.
    pub enabled: bool,
    /// `Open` or `Closed` when asked with `include_connection`.
    #[serde(default)]
    pub connection: Option<String>,
    /// Merchant.
    #[serde(default)]
    pub merchant: String,
}

impl Device {
    /// Whether the terminal is ready for payments (`connection` open, in any letter case).
    pub fn is_connected(&self) -> bool {
        self.connection.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("open"))
    }
}

/// Card details of a card-present transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPresentDetails {
    /// Masked card number.
    pub masked_account_number: Option<String>,
    /// Brand.
    pub brand: Option<String>,
    /// Entry mode.
    pub entry_mode: Option<String>,
    /// Approval code.
    pub approval_code: Option<String>,
}

/// A transfer resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Id.
    pub id: String,
    /// `PENDING`, `SUCCEEDED`, `FAILED`, ...
    pub state: String,
    /// Amount in minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Device that took it.
    #[serde(default)]
    pub device: Option<String>,
    /// Why it failed.
    #[serde(default)]
    pub failure_code: Option<String>,
    /// Message for the failure.
    #[serde(default)]
    pub failure_message: Option<String>,
    /// The idempotency id it was created with.
    #[serde(default)]
    pub idempotency_id: Option<String>,
    /// Card details.
    #[serde(default)]
    pub card_present_details: Option<CardPresentDetails>,
    /// Created (not needed to use the transfer, so its absence is no error).
    #[serde(default)]
    pub created_at: Option<String>,
    /// Last change (likewise optional: Kasa reads only what it needs).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Tags (absent or `null` when the transfer has none).
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct FinixSettings {
    /// Base URL.
    pub base_url: Url,
    /// API username.
    pub username: String,
    /// API password.
    pub password: Secret,
    /// Timeout for ordinary calls.
    pub timeout: Duration,
    /// Timeout for a card-present sale, which waits for the cardholder.
    pub sale_timeout: Duration,
}

/// The Finix client.
#[derive(Debug)]
pub struct FinixClient {
    http: crate::HttpClient,
    settings: FinixSettings,
}

impl FinixClient {
    /// A client.
    pub fn new(http: crate::HttpClient, settings: FinixSettings) -> FinixClient {
        FinixClient { http, settings }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        timeout: Duration,
    ) -> Result<T, ConnectError> {
        let url = crate::endpoint(SYSTEM, &self.settings.base_url, path)?;
        let mut req = self
            .http
            .request(method, url)
            .timeout(timeout)
            .basic_auth(&self.settings.username, self.settings.password.expose_secret())
            .header("Finix-Version", VERSION)
            .header("Accept", "application/hal+json")
            .query(query);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send(SYSTEM).await?;
        let bytes = crate::answer(SYSTEM, resp, |b| {
            let first = serde_json::from_slice::<wire::Envelope>(b).ok()?.embedded?.errors.into_iter().next()?;
            Some((first.code, first.message))
        })?;
        crate::from_json(SYSTEM, &bytes)
    }

    fn json<T: Serialize>(v: &T) -> Result<serde_json::Value, ConnectError> {
        crate::to_json(SYSTEM, v)
    }

    /// Creates a device under a merchant.
    pub async fn create_device(
        &self,
        merchant_id: &str,
        model: &str,
        name: &str,
        description: &str,
        serial_number: &str,
    ) -> Result<Device, ConnectError> {
        let body = Self::json(&wire::CreateDevice { description, model, name, serial_number })?;
        self.call(Method::POST, &["merchants", merchant_id, "devices"], &[], Some(body), self.settings.timeout).await
    }

    /// Reads a device, with its connection state.
    pub async fn device(&self, device_id: &str) -> Result<Device, ConnectError> {
        self.call(Method::GET, &["devices", device_id], &[("include_connection", "true")], None, self.settings.timeout)
            .await
    }

    async fn action<T: DeserializeOwned>(&self, device_id: &str, action: &str) -> Result<T, ConnectError> {
        let body = Self::json(&wire::Action { action })?;
        self.call(Method::PUT, &["devices", device_id], &[], Some(body), self.settings.timeout).await
    }

    /// Activates a device.
    pub async fn activate(&self, device_id: &str) -> Result<Device, ConnectError> {
        self.action(device_id, "ACTIVATE").await
    }

    /// Deactivates a device.
    pub async fn deactivate(&self, device_id: &str) -> Result<Device, ConnectError> {
        self.action(device_id, "DEACTIVATE").await
    }

    /// Cancels the transaction in progress on a device; returns the cancelled transfer.
    pub async fn cancel(&self, device_id: &str) -> Result<Transfer, ConnectError> {
        self.action(device_id, "CANCEL").await
    }

    /// A card-present sale on a device; answers with the transfer's outcome.
    pub async fn card_sale(
        &self,
        device_id: &str,
        amount: Money,
        idempotency_id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Transfer, ConnectError> {
        let body = Self::json(&wire::CreateTransfer {
            amount: amount.minor,
            currency: amount.currency.as_str(),
            device: device_id,
            operation_key: "CARD_PRESENT_DEBIT",
            tags,
            idempotency_id,
        })?;
        self.call(Method::POST, &["transfers"], &[], Some(body), self.settings.sale_timeout).await
    }

    /// Refunds `amount` of a card sale (a reversal); `idempotency_id` makes a repeat safe.
    pub async fn refund(
        &self,
        transfer_id: &str,
        amount: Money,
        idempotency_id: &str,
    ) -> Result<Transfer, ConnectError> {
        let body = Self::json(&wire::CreateReversal { refund_amount: amount.minor, idempotency_id })?;
        self.call(Method::POST, &["transfers", transfer_id, "reversals"], &[], Some(body), self.settings.timeout).await
    }

    /// Reads a transfer.
    pub async fn transfer(&self, transfer_id: &str) -> Result<Transfer, ConnectError> {
        self.call(Method::GET, &["transfers", transfer_id], &[], None, self.settings.timeout).await
    }

    /// Transfers created with an idempotency id (for recovering an unknown outcome).
    pub async fn transfers_by_idempotency_id(&self, idempotency_id: &str) -> Result<Vec<Transfer>, ConnectError> {
        let page: wire::TransferPage = self
            .call(Method::GET, &["transfers"], &[("idempotency_id", idempotency_id)], None, self.settings.timeout)
            .await?;
        Ok(page.embedded.map(|e| e.transfers).unwrap_or_default())
    }
}
