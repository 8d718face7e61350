//! The Token X POS Integration client, per `tokenx-contract.md`.
//!
//! Paths and field names live in [`paths`] and [`wire`] only, so a change in the real contract
//! is made in one place. The client fetches an access token with client credentials, keeps it
//! until shortly before it expires, and on a `401` fetches a new one once and repeats the call.

use crate::ExposeSecret;
use std::time::Duration;

use tokio::time::Instant;

use crate::transport::{Method, StatusCode};
use kasa_core::payment::{ReportedMethod, ReportedPayment};
use kasa_core::{Currency, Litres, LockInfo, Money, OrderStatus, OrderSummary, PumpOrder, ReceiptInfo};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{ConnectError, Secret, Url};

const SYSTEM: &str = "Token X";

/// The contract's paths, relative to the base URL.
pub mod paths {
    /// Client-credentials token.
    pub const TOKEN: &str = "oauth2/token";
    /// Get Order Summary List.
    pub const SUMMARY: &str = "api/pos/orders/summary";
    /// Get Order, Lock, Unlock and Payment live under this prefix, one segment each.
    pub const ORDERS: [&str; 3] = ["api", "pos", "orders"];
}

/// The contract's JSON shapes.
pub mod wire {
    use serde::{Deserialize, Serialize};

    /// Token answer.
    #[derive(Debug, Deserialize)]
    pub struct Token {
        /// The bearer token.
        pub access_token: crate::Secret,
        /// Lifetime in seconds.
        pub expires_in: u64,
    }

    /// Error body.
    #[derive(Debug, Deserialize)]
    pub struct Error {
        /// UPPER_SNAKE code.
        pub code: String,
        /// Message.
        #[serde(default)]
        pub message: String,
    }

    /// A summary list entry.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Summary {
        pub order_id: String,
        pub plate_number: String,
        pub pump_no: u32,
        pub product_name: String,
        pub amount: i64,
        pub currency: String,
        pub status: String,
        pub created_at: String,
    }

    /// The summary list.
    #[derive(Debug, Deserialize)]
    pub struct SummaryList {
        pub orders: Vec<Summary>,
    }

    /// A lock inside an order.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Lock {
        pub lock_id: String,
        pub terminal_id: String,
        pub expires_at: String,
    }

    /// Receipt info inside an order.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Receipt {
        pub fiscal_no: String,
        pub z_no: String,
        pub eku_no: String,
        pub issued_at: String,
    }

    /// Get Order.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Order {
        pub order_id: String,
        pub plate_number: String,
        pub pump_no: u32,
        pub nozzle_no: u32,
        pub product_code: String,
        pub product_name: String,
        pub litres: String,
        pub unit_price: i64,
        pub amount: i64,
        pub vat_rate: f64,
        pub currency: String,
        pub status: String,
        pub created_at: String,
        pub lock: Option<Lock>,
        pub receipt: Option<Receipt>,
    }

    /// Lock request.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LockRequest<'a> {
        pub terminal_id: &'a str,
        pub request_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lock_id: Option<&'a str>,
    }

    /// Lock answer.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct LockGrant {
        pub lock_id: String,
        pub expires_at: String,
    }

    /// Unlock request.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct UnlockRequest<'a> {
        pub terminal_id: &'a str,
        pub lock_id: &'a str,
        pub request_id: &'a str,
    }

    /// Card slip fields in a payment.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Slip<'a> {
        pub masked_pan: &'a str,
        pub brand: &'a str,
        pub entry_mode: &'a str,
        pub approval_code: &'a str,
        pub terminal_ref: &'a str,
        pub transaction_ref: &'a str,
        pub paid_at: &'a str,
    }

    /// One payment line.
    #[derive(Debug, Serialize)]
    pub struct Payment<'a> {
        pub method: &'a str,
        pub amount: i64,
        pub currency: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub slip: Option<Slip<'a>>,
    }

    /// Payment request.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PaymentRequest<'a> {
        pub terminal_id: &'a str,
        pub lock_id: &'a str,
        pub request_id: &'a str,
        pub payments: Vec<Payment<'a>>,
    }

    /// Payment answer.
    #[derive(Debug, Deserialize)]
    pub struct PaymentAnswer {
        pub status: String,
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct TokenxSettings {
    /// Base URL.
    pub base_url: Url,
    /// This register's virtual terminal id.
    pub terminal_id: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// Timeout of each call.
    pub timeout: Duration,
}

/// A granted lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// Lock id.
    pub lock_id: String,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

/// The Token X client.
#[derive(Debug)]
pub struct TokenxClient {
    http: crate::HttpClient,
    settings: TokenxSettings,
    token: Mutex<Option<(Secret, Instant)>>,
}

fn bad(detail: impl Into<String>) -> ConnectError {
    ConnectError::BadAnswer { system: SYSTEM, detail: detail.into() }
}

fn parse_time(s: &str) -> Result<OffsetDateTime, ConnectError> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| bad(format!("time '{s}': {e}")))
}

fn parse_status(s: &str) -> Result<OrderStatus, ConnectError> {
    Ok(match s {
        "Open" => OrderStatus::Open,
        "Locked" => OrderStatus::Locked,
        "Paid" => OrderStatus::Paid,
        "Completed" => OrderStatus::Completed,
        "Cancelled" => OrderStatus::Cancelled,
        other => return Err(bad(format!("unknown order status '{other}'"))),
    })
}

fn currency(s: &str) -> Result<Currency, ConnectError> {
    Currency::parse(s).map_err(|e| bad(e.to_string()))
}

impl TryFrom<wire::Summary> for OrderSummary {
    type Error = ConnectError;
    fn try_from(w: wire::Summary) -> Result<Self, ConnectError> {
        Ok(OrderSummary {
            amount: Money::new(w.amount, currency(&w.currency)?),
            status: parse_status(&w.status)?,
            created_at: parse_time(&w.created_at)?,
            order_id: w.order_id,
            plate_number: w.plate_number,
            pump_no: w.pump_no,
            product_name: w.product_name,
        })
    }
}

impl TryFrom<wire::Order> for PumpOrder {
    type Error = ConnectError;
    fn try_from(w: wire::Order) -> Result<Self, ConnectError> {
        let cur = currency(&w.currency)?;
        let vat = (w.vat_rate * 100.0).round();
        if !(0.0..=10_000.0).contains(&vat) {
            return Err(bad(format!("VAT rate {} out of range", w.vat_rate)));
        }
        Ok(PumpOrder {
            litres: Litres::parse(&w.litres).map_err(|e| bad(e.to_string()))?,
            unit_price: Money::new(w.unit_price, cur),
            amount: Money::new(w.amount, cur),
            vat_rate_bp: vat as u32,
            status: parse_status(&w.status)?,
            created_at: parse_time(&w.created_at)?,
            lock: w
                .lock
                .map(|l| {
                    Ok::<_, ConnectError>(LockInfo {
                        expires_at: parse_time(&l.expires_at)?,
                        lock_id: l.lock_id,
                        terminal_id: l.terminal_id,
                    })
                })
                .transpose()?,
            receipt: w
                .receipt
                .map(|r| {
                    Ok::<_, ConnectError>(ReceiptInfo {
                        issued_at: parse_time(&r.issued_at)?,
                        fiscal_no: r.fiscal_no,
                        z_no: r.z_no,
                        eku_no: r.eku_no,
                    })
                })
                .transpose()?,
            order_id: w.order_id,
            plate_number: w.plate_number,
            pump_no: w.pump_no,
            nozzle_no: w.nozzle_no,
            product_code: w.product_code,
            product_name: w.product_name,
        })
    }
}

fn method_name(m: ReportedMethod) -> &'static str {
    match m {
        ReportedMethod::Card => "CARD",
        ReportedMethod::Cash => "CASH",
        ReportedMethod::Mobilepay => "MOBILEPAY",
        ReportedMethod::Settle => "SETTLE",
    }
}

impl TokenxClient {
    /// A client; no call is made until the first request.
    pub fn new(http: crate::HttpClient, settings: TokenxSettings) -> TokenxClient {
        TokenxClient { http, settings, token: Mutex::new(None) }
    }

    /// This register's terminal id.
    pub fn terminal_id(&self) -> &str {
        &self.settings.terminal_id
    }

    fn url(&self, path: &str) -> Result<Url, ConnectError> {
        self.settings.base_url.join(path).map_err(|e| ConnectError::Config(format!("bad Token X path {path}: {e}")))
    }

    /// An order's URL, `tail` after its id; the id is encoded as one segment.
    fn order_url(&self, order_id: &str, tail: Option<&str>) -> Result<Url, ConnectError> {
        let [a, b, c] = paths::ORDERS;
        let mut segments = vec![a, b, c, order_id];
        segments.extend(tail);
        crate::endpoint(SYSTEM, &self.settings.base_url, &segments)
    }

    async fn token(&self, fresh: bool) -> Result<Secret, ConnectError> {
        let mut guard = self.token.lock().await;
        if !fresh
            && let Some((t, until)) = guard.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose_secret()),
        ];
        let resp =
            self.http.post(self.url(paths::TOKEN)?).timeout(self.settings.timeout).form(&form).send(SYSTEM).await?;
        let t: wire::Token = read(resp)?;
        // Renew a little early so a token never expires between check and use.
        let life =
            Duration::from_secs(t.expires_in).saturating_sub(Duration::from_secs(30)).max(Duration::from_secs(1));
        *guard = Some((t.access_token.clone(), Instant::now() + life));
        Ok(t.access_token)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, ConnectError> {
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.settings.timeout)
                .bearer_auth(token.expose_secret())
                .query(query);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send(SYSTEM).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !fresh {
                fresh = true;
                continue;
            }
            return read(resp);
        }
    }

    /// Get Order Summary List.
    pub async fn summary(&self) -> Result<Vec<OrderSummary>, ConnectError> {
        let list: wire::SummaryList = self
            .call(Method::GET, self.url(paths::SUMMARY)?, &[("terminalId", &self.settings.terminal_id)], None)
            .await?;
        list.orders.into_iter().map(OrderSummary::try_from).collect()
    }

    /// Get Order.
    pub async fn order(&self, order_id: &str) -> Result<PumpOrder, ConnectError> {
        let path = self.order_url(order_id, None)?;
        let w: wire::Order = self.call(Method::GET, path, &[("terminalId", &self.settings.terminal_id)], None).await?;
        PumpOrder::try_from(w)
    }

    /// Lock; `renew` repeats the call for a lock already held, to extend it.
    pub async fn lock(&self, order_id: &str, request_id: &str, renew: Option<&str>) -> Result<Lock, ConnectError> {
        let body = wire::LockRequest { terminal_id: &self.settings.terminal_id, request_id, lock_id: renew };
        let body = crate::to_json(SYSTEM, &body)?;
        let path = self.order_url(order_id, Some("lock"))?;
        let g: wire::LockGrant = self.call(Method::POST, path, &[], Some(&body)).await?;
        Ok(Lock { expires_at: parse_time(&g.expires_at)?, lock_id: g.lock_id })
    }

    /// Unlock.
    pub async fn unlock(&self, order_id: &str, lock_id: &str, request_id: &str) -> Result<(), ConnectError> {
        let body = wire::UnlockRequest { terminal_id: &self.settings.terminal_id, lock_id, request_id };
        let body = crate::to_json(SYSTEM, &body)?;
        let path = self.order_url(order_id, Some("unlock"))?;
        let _: serde_json::Value = self.call(Method::POST, path, &[], Some(&body)).await?;
        Ok(())
    }

    /// Payment, with the card slip data of each card payment.
    pub async fn payment(
        &self,
        order_id: &str,
        lock_id: &str,
        request_id: &str,
        payments: &[ReportedPayment],
    ) -> Result<(), ConnectError> {
        let body = wire::PaymentRequest {
            terminal_id: &self.settings.terminal_id,
            lock_id,
            request_id,
            payments: payments
                .iter()
                .map(|p| wire::Payment {
                    method: method_name(p.method),
                    amount: p.amount.minor,
                    currency: p.amount.currency.as_str(),
                    slip: p.slip.as_ref().map(|s| wire::Slip {
                        masked_pan: &s.masked_pan,
                        brand: &s.brand,
                        entry_mode: &s.entry_mode,
                        approval_code: &s.approval_code,
                        terminal_ref: &s.terminal_ref,
                        transaction_ref: &s.transaction_ref,
                        paid_at: &s.paid_at,
                    }),
                })
                .collect(),
        };
        let body = crate::to_json(SYSTEM, &body)?;
        let path = self.order_url(order_id, Some("payment"))?;
        let a: wire::PaymentAnswer = self.call(Method::POST, path, &[], Some(&body)).await?;
        if a.status == "Paid" { Ok(()) } else { Err(bad(format!("payment answered status '{}'", a.status))) }
    }
}

fn read<T: DeserializeOwned>(resp: crate::transport::Response) -> Result<T, ConnectError> {
    let bytes =
        crate::answer(SYSTEM, resp, |b| serde_json::from_slice::<wire::Error>(b).ok().map(|e| (e.code, e.message)))?;
    crate::from_json(SYSTEM, &bytes)
}
