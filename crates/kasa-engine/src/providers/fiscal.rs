//! Fiscalization through fiskaltrust's middleware: every receipt of a sale (its own once paid,
//! then one per refund) and the day's closing are signed through the outbox, one lane in the
//! order they were made.
//!
//! A receipt's `x-operation-id` is derived from its outbox key, which is stored with the sale
//! step before the first attempt, so every retry and every restart asks for the same operation;
//! the middleware answers a repeat with the stored result. The body is built from the stored
//! sale each time and is the same on every attempt.
//!
//! When the signing unit is unreachable the middleware processes nothing and says so
//! (`device_not_reachable`); the register keeps selling, prints the slip marked "signature
//! pending" (the printer waits for a signature at most `print_wait_ms`, and not at all while the
//! unit is known to be down), and the receipt is signed late, in order, when the unit answers
//! again. The queue is then in failed mode (its `ftState` says so), which the middleware leaves
//! on a zero receipt: Kasa sends one before the next receipt after an outage, and right after a
//! receipt whose answer carries the failed-mode flag. A zero receipt's operation id is derived
//! from the receipt's key and attempt, so a repeat after a crash is the same operation; a zero
//! receipt whose answer was lost is sent again under the next attempt's id (a second zero
//! receipt carries no amounts, so it costs a number in the middleware's journal, nothing more).
//! The failed mode is known in memory only: after a restart the next answer's `ftState` says so.
//!
//! The body depends on the stored sale and on the `[fiscal]` section (cash box, terminal,
//! country, VAT categories): changed between an unanswered attempt and its retry, it makes the
//! middleware answer a conflict, and the receipt parks with that reason. A parked receipt holds
//! back every later one until the manager retries or discards it; meanwhile, and whenever the
//! middleware does not answer, signing is "stalled": slips print "signature pending" at once and
//! the status bar says why.
//!
//! A refusal (400), a conflicting repeat (422 other than "in progress") or a receipt Kasa cannot
//! build parks the message for the manager with the reason; a second receipt is never sent for
//! the same sale step.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kasa_connect::fiskaltrust::{
    Cases, FiskaltrustClient, FiskaltrustSettings, JournalKind, ReceiptBuilder, SignError, wire,
};
use kasa_core::{FiscalDoc, FiscalState, Op, Sale, SaleEvent};
use kasa_store::OutboxRow;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::{ConfigError, check_url};
use crate::delivery::{Delivery, LockChange, done, outcome};
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, connect_error};

/// The keyring entry of the CashBox access token.
pub const ACCESS_TOKEN: &str = "fiskaltrust.access_token";

/// A VAT rate and its VAT category in the charge item case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VatCategory {
    /// The rate in basis points (2200 = 22 %).
    pub rate_bp: u32,
    /// The category (0–15), e.g. 3 for the normal rate.
    pub category: u8,
}

/// The `[fiscal]` section: fiscalization through fiskaltrust. The CashBox access token is the
/// keyring entry [`ACCESS_TOKEN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiscalConfig {
    /// Base URL of the POS System API (e.g. `https://possystem-api.fiskaltrust.eu/`).
    pub base_url: String,
    /// The CashBox id (a UUID, from the fiskaltrust portal).
    pub cashbox_id: String,
    /// The POS system id, when registered.
    #[serde(default)]
    pub pos_system_id: Option<String>,
    /// This register's terminal id at the middleware (`cbTerminalID`).
    pub terminal_id: String,
    /// The country the receipts are coded for (two letters, e.g. `IT`).
    pub country: String,
    /// Every VAT rate the register sells at, with its category.
    pub vat_categories: Vec<VatCategory>,
    /// How long a slip waits for its signature before it prints marked "signature pending".
    #[serde(default = "default_print_wait_ms")]
    pub print_wait_ms: u64,
    /// `x-operation-lifetime`, in milliseconds.
    #[serde(default = "default_lifetime_ms")]
    pub operation_lifetime_ms: u64,
}

fn default_print_wait_ms() -> u64 {
    4_000
}

fn default_lifetime_ms() -> u64 {
    15_000
}

impl FiscalConfig {
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        check_url(&self.base_url)?;
        if self.print_wait_ms > 30_000 {
            return Err(ConfigError::Invalid(format!(
                "fiscal.print_wait_ms {} is more than 30000; a cashier should not wait longer for a slip",
                self.print_wait_ms
            )));
        }
        if uuid::Uuid::parse_str(&self.cashbox_id).is_err() {
            return Err(ConfigError::Invalid(format!(
                "fiscal.cashbox_id '{}' is not a UUID; copy the CashBox id from the fiskaltrust portal",
                self.cashbox_id
            )));
        }
        self.cases().prefix().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.terminal_id.trim().is_empty() {
            return Err(ConfigError::Invalid("fiscal.terminal_id is empty; name this register, e.g. T1".into()));
        }
        if self.vat_categories.is_empty() {
            return Err(ConfigError::Invalid(
                "fiscal.vat_categories is empty; list every VAT rate sold with its category, e.g. { rate_bp = 2200, category = 3 }"
                    .into(),
            ));
        }
        if let Some(v) = self.vat_categories.iter().find(|v| v.category > 15) {
            return Err(ConfigError::Invalid(format!(
                "fiscal.vat_categories: category {} of rate {} is above 15",
                v.category, v.rate_bp
            )));
        }
        Ok(())
    }

    fn cases(&self) -> Cases {
        Cases {
            country: self.country.clone(),
            vat_categories: self.vat_categories.iter().map(|v| (v.rate_bp, v.category)).collect(),
        }
    }

    /// The sandbox's demo cash box at `base_url`, coded for Türkiye's VAT rates (the demo store
    /// sells at 20, 10 and 1 %).
    pub(crate) fn local(base_url: String) -> FiscalConfig {
        FiscalConfig {
            base_url,
            cashbox_id: kasa_sim_ids::CASHBOX.into(),
            pos_system_id: None,
            terminal_id: "T1".into(),
            country: "TR".into(),
            vat_categories: [(2000, 3), (1000, 1), (100, 2), (0, 7)]
                .into_iter()
                .map(|(rate_bp, category)| VatCategory { rate_bp, category })
                .collect(),
            print_wait_ms: default_print_wait_ms(),
            operation_lifetime_ms: default_lifetime_ms(),
        }
    }
}

/// The sandbox's demo identity (the same values as `kasa-sim`'s default cash box).
pub(crate) mod kasa_sim_ids {
    /// The demo CashBox id.
    pub const CASHBOX: &str = "6f1c2a4e-8b3d-4c5e-9a7f-1d2e3c4b5a60";
    /// The demo access token.
    pub const ACCESS_TOKEN: &str = "demo-fiskaltrust-token";
}

/// The register's cash box at the middleware.
#[derive(Debug)]
pub(crate) struct Fiscal {
    client: FiskaltrustClient,
    builder: ReceiptBuilder,
    /// The queue is (or may be) in failed mode: a zero receipt goes before the next receipt.
    failed: AtomicBool,
    /// The middleware's queue id, learnt from `POST /v2/configuration`.
    queue_id: Mutex<Option<String>>,
    print_wait: Duration,
}

impl Fiscal {
    /// The cash box of `config`'s `[fiscal]` section, if it has one.
    pub(crate) fn build(
        config: &Config,
        credentials: &dyn Credentials,
        http: &kasa_connect::HttpClient,
    ) -> Result<Option<Fiscal>, ApiError> {
        let Some(c) = &config.systems.fiscal else { return Ok(None) };
        let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
        let client = FiskaltrustClient::new(
            http.clone(),
            FiskaltrustSettings {
                base_url: kasa_connect::base_url(&c.base_url).map_err(|e| setup(e.to_string()))?,
                cashbox_id: c.cashbox_id.clone(),
                access_token: credentials.get(ACCESS_TOKEN).map_err(|e| setup(e.to_string()))?,
                terminal_id: c.terminal_id.clone(),
                pos_system_id: c.pos_system_id.clone(),
                operation_lifetime: Duration::from_millis(c.operation_lifetime_ms),
                timeout: Duration::from_secs(20),
            },
        );
        let builder = ReceiptBuilder {
            cashbox_id: c.cashbox_id.clone(),
            pos_system_id: c.pos_system_id.clone(),
            terminal_id: c.terminal_id.clone(),
            cases: c.cases(),
        };
        Ok(Some(Fiscal {
            client,
            builder,
            failed: AtomicBool::new(false),
            queue_id: Mutex::new(None),
            print_wait: Duration::from_millis(c.print_wait_ms),
        }))
    }

    /// Signing stopped (the signing unit or the middleware did not answer, or a receipt is
    /// parked and holds back the later ones): the status bar says why, and while it does slips
    /// print "signature pending" at once (see `Engine::fiscal_stalled`). The next signature
    /// clears it.
    fn stall(&self, engine: &Engine, problem: String) {
        engine.set_fiscal_problem(Some(problem));
    }

    /// How long a slip waits for its signature.
    pub(crate) fn print_wait(&self) -> Duration {
        self.print_wait
    }

    /// The receipt an operation signs, built from the stored sale.
    /// The receipt an operation signs, built from the stored sale, with its moment.
    fn receipt(&self, doc: &FiscalDoc, sale: Option<&Sale>) -> Result<(OffsetDateTime, wire::ReceiptRequest), String> {
        let need = || sale.ok_or_else(|| "the receipt's sale is not in the database".to_string());
        let built = match doc {
            FiscalDoc::Sale => {
                let s = need()?;
                self.builder.sale_receipt(s).map(|r| (s.paid_at, r))
            }
            FiscalDoc::Refund { refund_id } => {
                let s = need()?;
                let at = s.refunds.iter().find(|r| &r.id == refund_id).map(|r| r.at);
                self.builder.refund_receipt(s, refund_id).map(|r| (at, r))
            }
            FiscalDoc::DailyClosing { reference, at, .. } => {
                self.builder.daily_closing(reference, *at).map(|r| (Some(*at), r))
            }
        };
        match built.map_err(|e| e.to_string())? {
            (Some(at), r) => Ok((at, r)),
            // The builder refuses a receipt without its moment first.
            (None, _) => Err("the receipt has no moment".into()),
        }
    }
}

/// The middleware's operation id for an outbox key: the key itself when it is a UUID (the
/// register makes them so), otherwise a UUID derived from it; `label` derives the ids of the
/// zero receipts a delivery sends.
pub(crate) fn operation_id(key: &str, label: Option<&str>) -> String {
    if label.is_none()
        && let Ok(u) = uuid::Uuid::parse_str(key)
    {
        return u.hyphenated().to_string();
    }
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    if let Some(l) = label {
        h.update(b"\0");
        h.update(l.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// Delivers one signing operation.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    let Some(fiscal) = engine.inner.providers.fiscal.as_ref() else {
        return crate::delivery::not_configured("Fiscalization");
    };
    let Op::FiscalSign { doc } = &row.op else {
        return Delivery::Park { reason: format!("not a signing operation: {:?}", row.op.kind()), event: None };
    };
    let sale = match &row.sale_id {
        Some(id) => match engine.sale(id).await {
            Ok(s) => Some(s),
            Err(e) => return Delivery::Retry { error: e.message, maybe_applied: row.maybe_applied },
        },
        None => None,
    };
    let (at, receipt) = match fiscal.receipt(doc, sale.as_ref()) {
        Ok(r) => r,
        Err(reason) => {
            fiscal.stall(engine, format!("A receipt cannot be signed; later ones wait. See the queue ({reason})"));
            return Delivery::Park { reason: format!("The receipt cannot be signed: {reason}"), event: None };
        }
    };
    let reference = receipt.reference.clone();
    // Already signed (a repeat after its outcome was recorded): nothing to do.
    if let Some(s) = &sale
        && s.fiscal.iter().any(|r| r.reference == reference && r.state == FiscalState::Signed)
    {
        return done(None, LockChange::None);
    }
    if fiscal.failed.load(Ordering::SeqCst)
        && let Err(d) =
            zero_receipt(engine, fiscal, &operation_id(&row.key, Some(&format!("zero-{}", row.attempts))), at).await
    {
        return d;
    }
    let op_id = if row.maybe_applied && crate::failpoint::planted("fiscal_new_operation_id") {
        // The planted bug the harnesses must catch: a receipt whose answer was lost is sent
        // again as a new operation.
        operation_id(&row.key, Some(&format!("attempt-{}", row.attempts)))
    } else {
        operation_id(&row.key, None)
    };
    let signed = match fiscal.client.sign(&op_id, &receipt).await {
        Ok(resp) => resp.signed(),
        Err(e) => return failed(engine, fiscal, row, e),
    };
    engine.set_fiscal_problem(None);
    if signed.failed_mode {
        // The unit answers again but the queue is still in failed mode: leave it now, so the
        // next receipt does not wait for it. Should this fail, the next delivery sends it first.
        fiscal.failed.store(true, Ordering::SeqCst);
        let _ = zero_receipt(engine, fiscal, &operation_id(&row.key, Some("zero-after")), at).await;
    }
    tracing::info!(reference = %reference, receipt = %signed.signature.receipt_id, "receipt signed");
    match &row.sale_id {
        Some(_) => outcome(SaleEvent::FiscalSigned { reference, signature: signed.signature }),
        None => done(None, LockChange::None),
    }
}

/// Sends a zero receipt to take the queue out of failed mode; on failure, what the delivery
/// comes to.
async fn zero_receipt(engine: &Engine, fiscal: &Fiscal, op_id: &str, at: time::OffsetDateTime) -> Result<(), Delivery> {
    let reference = format!("ZERO-{}", &op_id[..8]);
    let receipt = fiscal
        .builder
        .zero_receipt(&reference, at)
        .map_err(|e| Delivery::Park { reason: e.to_string(), event: None })?;
    match fiscal.client.sign(op_id, &receipt).await {
        Ok(resp) => {
            if !resp.signed().failed_mode {
                fiscal.failed.store(false, Ordering::SeqCst);
            }
            tracing::info!(reference = %reference, "zero receipt signed: the fiscal queue left failed mode");
            Ok(())
        }
        // The operation id was used: that zero receipt was sent.
        Err(SignError::Conflict(..)) => Ok(()),
        Err(SignError::InProgress) => {
            Err(Delivery::Retry { error: "zero receipt still in progress".into(), maybe_applied: true })
        }
        Err(SignError::Connect(c)) if c.is_transient() => {
            fiscal.stall(engine, format!("Fiscal middleware unreachable: receipts wait ({c})"));
            Err(Delivery::Retry { error: format!("zero receipt: {c}"), maybe_applied: c.maybe_applied() })
        }
        Err(e @ SignError::SignerDown(_)) => {
            fiscal.stall(engine, format!("Fiscal signing unit unreachable: slips print \"signature pending\" ({e})"));
            Err(Delivery::Retry { error: format!("zero receipt: {e}"), maybe_applied: false })
        }
        Err(e) => {
            // Refused for good: the receipts wait, in order, for the manager.
            fiscal.stall(engine, format!("The zero receipt was refused; see the queue ({e})"));
            Err(Delivery::Park {
                reason: format!("The zero receipt that ends the middleware's failed mode was refused: {e}"),
                event: None,
            })
        }
    }
}

fn failed(engine: &Engine, fiscal: &Fiscal, row: &OutboxRow, e: SignError) -> Delivery {
    match e {
        SignError::SignerDown(_) => {
            fiscal.failed.store(true, Ordering::SeqCst);
            fiscal.stall(
                engine,
                format!("Fiscal signing unit unreachable: slips print \"signature pending\" and are signed when it is back ({e})"),
            );
            // Not processed: the same operation is sent again later.
            Delivery::Retry { error: e.to_string(), maybe_applied: row.maybe_applied }
        }
        SignError::InProgress => Delivery::Retry { error: e.to_string(), maybe_applied: true },
        SignError::Conflict(..) | SignError::Refused(_) => {
            // Parked, it holds back every later receipt (they are signed in order).
            fiscal.stall(
                engine,
                format!("A receipt was refused by the middleware; later ones wait. See the queue ({e})"),
            );
            Delivery::Park { reason: e.to_string(), event: None }
        }
        SignError::Connect(c) if c.is_transient() => {
            fiscal.stall(
                engine,
                format!("Fiscal middleware unreachable: receipts wait and are signed when it answers ({c})"),
            );
            Delivery::Retry { error: c.to_string(), maybe_applied: c.maybe_applied() || row.maybe_applied }
        }
        SignError::Connect(c) => {
            fiscal.stall(engine, format!("Fiscal middleware refused Kasa; later receipts wait. See the queue ({c})"));
            Delivery::Park { reason: c.to_string(), event: None }
        }
    }
}

/// At start: pairs this terminal with the cash box and learns the queue id (for the journals).
/// One request tells whether the middleware answers: if it does not, slips do not wait for
/// signatures until it does. The middleware being away is no reason not to sell: receipts wait
/// in the outbox.
pub(crate) async fn start(engine: &Engine) {
    let Some(fiscal) = engine.inner.providers.fiscal.as_ref() else { return };
    match fiscal.client.configure().await {
        Ok(c) => *fiscal.queue_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.queue_id),
        Err(e) if e.is_transient() => fiscal.stall(
            engine,
            format!("Fiscal middleware unreachable: receipts wait and are signed when it answers ({e})"),
        ),
        Err(e) => tracing::warn!(error = %e, "the fiscal middleware's configuration could not be read"),
    }
}

impl Engine {
    /// Queues the day's closing receipt at the middleware (with the Z report's number when
    /// there is one), with the manager PIN. Signed in order after every receipt of the day.
    pub async fn fiscal_daily_closing(&self, session: &str, z_number: Option<u64>) -> Result<String, ApiError> {
        if self.inner.providers.fiscal.is_none() {
            return Err(not_set_up());
        }
        self.authorize(session).await?;
        let at = self.now();
        let env = self.env().clone();
        let reference = self.db(move |s| Ok(s.write(|tx| queue_daily_closing(tx, &env, at, z_number))?)).await?;
        self.inner.dispatch_kick.notify_one();
        Ok(reference)
    }

    /// Entries of one of the middleware's journals (`ReceiptJournal`, `ActionJournal`,
    /// `QueueItem`) after row `from`, for the manager area (manager session).
    pub async fn fiscal_journal(
        &self,
        session: &str,
        kind: &str,
        from: u64,
        take: u32,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let Some(fiscal) = self.inner.providers.fiscal.as_ref() else {
            return Err(not_set_up());
        };
        self.authorize(session).await?;
        fiscal.journal(kind, from, take).await
    }
}

/// Queues the daily closing receipt (under the Z report's number when there is one) and
/// journals it, in the caller's transaction; its reference.
pub(crate) fn queue_daily_closing(
    tx: &kasa_store::Tx<'_>,
    env: &crate::Env,
    at: time::OffsetDateTime,
    z_number: Option<u64>,
) -> Result<String, kasa_store::StoreError> {
    let id = env.next_id();
    let reference = match z_number {
        Some(n) => format!("Z{n:04}-{}", &id[..8.min(id.len())]),
        None => format!("Z-{id}"),
    };
    let q = kasa_core::op::Queued {
        key: env.next_id(),
        op: Op::FiscalSign { doc: FiscalDoc::DailyClosing { reference: reference.clone(), at, z_number } },
    };
    tx.enqueue(None, &q, at)?;
    let data = serde_json::json!({ "reference": reference, "z": z_number });
    let rec = kasa_core::journal::JournalRecord { sale_id: None, kind: "fiscal_daily_closing".into(), data };
    tx.append_journal(&rec, at)?;
    Ok(reference)
}

fn not_set_up() -> ApiError {
    ApiError::new(ErrorCode::BadInput, "Fiscalization is not set up on this register (no [fiscal] section).")
}

impl Fiscal {
    async fn journal(&self, kind: &str, from: u64, take: u32) -> Result<Vec<serde_json::Value>, ApiError> {
        let kind = JournalKind::parse(kind).ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadInput,
                format!("No journal '{kind}'; ask for ReceiptJournal, ActionJournal or QueueItem."),
            )
        })?;
        let known = self.queue_id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let queue = match known {
            Some(q) => q,
            None => {
                let c = self.client.configure().await.map_err(|e| connect_error(&e))?;
                *self.queue_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.queue_id.clone());
                c.queue_id
            }
        };
        self.client.journal(&queue, kind, from, take.clamp(1, 1000)).await.map_err(|e| connect_error(&e))
    }
}

/// Reads one of the middleware's journals without a register (it only reads the middleware,
/// so it works beside a running register).
pub async fn read_journal(
    config: &Config,
    credentials: &dyn Credentials,
    kind: &str,
    from: u64,
    take: u32,
) -> Result<Vec<serde_json::Value>, ApiError> {
    config.systems.check().map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
    let fiscal = Fiscal::build(config, credentials, &crate::Env::system().http())?.ok_or_else(not_set_up)?;
    fiscal.journal(kind, from, take).await
}
