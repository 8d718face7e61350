//! The outside systems a register works with, one home each.
//!
//! A provider module owns everything about its system on the engine's side: building its
//! client from the configuration and the keyring, delivering its operations from the outbox
//! (`deliver`), resolving what a crash left of them at start-up (`recover`), its background work
//! (`start`), and what it contributes to the register's status. This module is the one place
//! that knows them all: the [`Providers`] a register holds, the router from an operation to its
//! provider, and the order in which they recover.
//!
//! The dispatch is a closed `match` over [`System`] rather than a trait object: every provider
//! is known at compile time, its operations are variants of the core's `Op`, and each provider
//! keeps its own state (a MobilePay PoS remembers payment ids, Settle its scan board), which a
//! common trait would only blur.

pub mod finix;
pub mod fiscal;
pub mod mobilepay;
pub(crate) mod printer;
pub mod settle;
pub mod tokenx;

use kasa_connect::finix::FinixClient;
use kasa_connect::tokenx::TokenxClient;
use kasa_core::op::System;
use kasa_core::{Attempt, MethodKind};
use kasa_store::{OutboxRow, Tx};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::ConfigError;
use crate::delivery::Delivery;
use crate::{ApiError, Config, Credentials, Engine, Env, ErrorCode, StepError};

/// The configuration sections of the systems a store may use or not, flattened into
/// [`Config`]: each is a top-level section of the file (`[mobilepay]`, `[settle]`), defined by
/// its provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Systems {
    /// MobilePay, when the store takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobilepay: Option<mobilepay::MobilePayConfig>,
    /// Settle, when the store takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<settle::SettleConfig>,
    /// Fiscalization through fiskaltrust, where the law asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiscal: Option<fiscal::FiscalConfig>,
}

impl Systems {
    /// The top-level keys these sections take in the configuration file.
    pub(crate) const KEYS: &[&str] = &["mobilepay", "settle", "fiscal"];

    /// Checks every section present.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        self.mobilepay.as_ref().map_or(Ok(()), |m| m.check())?;
        self.settle.as_ref().map_or(Ok(()), |s| s.check())?;
        self.fiscal.as_ref().map_or(Ok(()), |f| f.check())
    }

    /// Every system with the sandbox's demo identity, at the address `url` gives for its key.
    pub(crate) fn local(url: impl Fn(&str) -> Option<String>) -> Systems {
        Systems {
            mobilepay: url("mobilepay").map(mobilepay::MobilePayConfig::local),
            settle: url("settle").map(settle::SettleConfig::local),
            fiscal: url("fiskaltrust").map(fiscal::FiscalConfig::local),
        }
    }
}

/// The keyring entries of every system, with the secret each has in the sandbox.
pub(crate) const LOCAL_SECRETS: &[(&str, &str)] = &[
    (tokenx::CLIENT_SECRET, "demo-secret"),
    (finix::PASSWORD, "demo-finix-password"),
    (mobilepay::ACCESS_TOKEN, "mp-demo-access-token"),
    (settle::SECRET, "demo-settle-secret"),
    (fiscal::ACCESS_TOKEN, fiscal::kasa_sim_ids::ACCESS_TOKEN),
    // The public demo key ("kasa-demo-journal-key-not-secret" in hex): a demo journal proves nothing.
    (crate::credentials::JOURNAL_KEY, "6b6173612d64656d6f2d6a6f75726e616c2d6b65792d6e6f742d736563726574"),
];

/// Every system this register is set up to use.
#[derive(Debug)]
pub(crate) struct Providers {
    /// The Token X cloud.
    pub(crate) tokenx: TokenxClient,
    /// Finix and its card terminal.
    pub(crate) finix: FinixClient,
    /// MobilePay, when set up.
    pub(crate) mobilepay: Option<mobilepay::MobilePay>,
    /// Settle, when set up.
    pub(crate) settle: Option<settle::Settle>,
    /// The receipt printer, when there is one.
    pub(crate) printer: Option<printer::PrinterSetup>,
    /// The fiscal middleware, when receipts are signed.
    pub(crate) fiscal: Option<fiscal::Fiscal>,
}

impl Providers {
    /// Builds every provider the configuration names, with its secrets from `credentials`.
    pub(crate) fn build(config: &Config, credentials: &dyn Credentials, env: &Env) -> Result<Providers, ApiError> {
        let http = env.http();
        Ok(Providers {
            tokenx: tokenx::client_with(http.clone(), config, credentials)?,
            finix: finix::client(config, credentials, &http)?,
            mobilepay: mobilepay::MobilePay::build(config, credentials, &http)?,
            settle: settle::Settle::build(config, credentials, &http)?,
            printer: printer::setup(config)?,
            fiscal: fiscal::Fiscal::build(config, credentials, &http)?,
        })
    }
}

/// Starts the providers' background work (Settle's callback server, the MobilePay QR code).
pub(crate) async fn start(engine: &Engine) -> Result<(), ApiError> {
    settle::start(engine).await?;
    if engine.inner.providers.fiscal.is_some() {
        let e2 = engine.clone();
        engine.spawn(async move { fiscal::start(&e2).await });
    }
    if engine.inner.providers.mobilepay.is_some() {
        let e2 = engine.clone();
        engine.spawn(async move { mobilepay::load_terminal_qr(&e2).await });
    }
    Ok(())
}

/// Delivers one queued operation through the system it goes to.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    match row.op.system() {
        System::Tokenx => tokenx::deliver(engine, row).await,
        System::Finix => finix::deliver(engine, row).await,
        System::MobilePay => mobilepay::deliver(engine, row).await,
        System::Settle => settle::deliver(engine, row).await,
        System::Printer => printer::deliver(engine, row).await,
        System::Fiscal => fiscal::deliver(engine, row).await,
    }
}

/// The payment methods this register offers now: cash always; the card while the terminal
/// reports an open connection; MobilePay when set up; Settle once its callback is registered.
pub(crate) fn methods(engine: &Engine, terminal_connected: bool) -> Vec<MethodKind> {
    let providers = &engine.inner.providers;
    let mut m = Vec::new();
    if terminal_connected {
        m.push(MethodKind::Card);
    }
    m.push(MethodKind::Cash);
    if providers.mobilepay.is_some() {
        m.push(MethodKind::MobilePay);
    }
    if providers.settle.as_ref().is_some_and(|s| s.is_ready()) {
        m.push(MethodKind::Settle);
    }
    m
}

/// Asks the provider of the payment under way to cancel it.
pub(crate) async fn cancel(engine: &Engine, attempt: &Attempt) -> Result<(), ApiError> {
    match attempt.method.kind() {
        MethodKind::Card => finix::cancel(engine).await,
        MethodKind::Settle => settle::cancel(engine, attempt).await,
        MethodKind::MobilePay => mobilepay::cancel(engine, attempt.reference.as_deref().unwrap_or_default()).await,
        MethodKind::Cash => Err(ApiError::new(ErrorCode::InvalidState, "A cash payment has nothing to cancel.")),
    }
}

/// The QR code the customer scans for the payment under way, if its method shows one.
pub(crate) fn qr(engine: &Engine, attempt: &Attempt) -> Option<String> {
    match attempt.method.kind() {
        MethodKind::Settle => attempt
            .reference
            .as_deref()
            .zip(engine.inner.providers.settle.as_ref())
            .map(|(pos_tid, settle)| settle.qr_url(pos_tid, attempt.amount)),
        MethodKind::MobilePay => mobilepay::terminal_qr(engine),
        MethodKind::Card | MethodKind::Cash => None,
    }
}

/// Start-up recovery, system by system, inside the caller's transaction: first the sales that
/// were locking are let go, then each payment provider resolves its attempts, and last the locks
/// and reports are looked at with every sale where recovery left it.
pub(crate) fn recover(tx: &Tx<'_>, at: OffsetDateTime, env: &Env, told: &mut Vec<String>) -> Result<(), StepError> {
    tokenx::recover_locking(tx, at, env, told)?;
    mobilepay::recover(tx, at, env, told)?;
    settle::recover(tx, at, env, told)?;
    finix::recover(tx, at, env, told)?;
    tokenx::recover_locks_and_reports(tx, at, env, told)
}
