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

pub(crate) mod finix;
pub(crate) mod mobilepay;
pub(crate) mod printer;
pub(crate) mod settle;
pub(crate) mod tokenx;

use kasa_connect::finix::{FinixClient, FinixSettings};
use kasa_connect::tokenx::TokenxClient;
use kasa_core::op::System;
use kasa_store::{OutboxRow, Tx};
use time::OffsetDateTime;

use crate::delivery::Delivery;
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, StepError, credentials};

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
}

impl Providers {
    /// Builds every provider the configuration names, with its secrets from `credentials`.
    pub(crate) fn build(config: &Config, credentials: &dyn Credentials) -> Result<Providers, ApiError> {
        let http = kasa_connect::http_client();
        let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
        let finix = FinixClient::new(
            http.clone(),
            FinixSettings {
                base_url: kasa_connect::base_url(&config.finix.base_url).map_err(|e| setup(e.to_string()))?,
                username: config.finix.username.clone(),
                password: credentials.get(credentials::FINIX_PASSWORD).map_err(|e| setup(e.to_string()))?,
                timeout: std::time::Duration::from_secs(10),
                sale_timeout: std::time::Duration::from_secs(200),
            },
        );
        Ok(Providers {
            tokenx: tokenx::client_with(http.clone(), config, credentials)?,
            finix,
            mobilepay: mobilepay::MobilePay::build(config, credentials, &http)?,
            settle: settle::Settle::build(config, credentials, &http)?,
            printer: printer::setup(config)?,
        })
    }
}

/// Starts the providers' background work (Settle's callback server, the MobilePay QR code);
/// returns the tasks to wait for at shutdown.
pub(crate) async fn start(engine: &Engine) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let mut tasks = settle::start(engine).await?;
    if engine.inner.providers.mobilepay.is_some() {
        let e2 = engine.clone();
        tasks.push(tokio::spawn(async move { mobilepay::load_terminal_qr(&e2).await }));
    }
    Ok(tasks)
}

/// Delivers one queued operation through the system it goes to.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    match row.op.system() {
        System::Tokenx => tokenx::deliver(engine, row).await,
        System::Finix => finix::deliver(engine, row).await,
        System::MobilePay => mobilepay::deliver(engine, row).await,
        System::Settle => settle::deliver(engine, row).await,
        System::Printer => printer::deliver(engine, row).await,
    }
}

/// Start-up recovery, system by system, inside the caller's transaction: first the sales that
/// were locking are let go, then each payment provider resolves its attempts, and last the locks
/// and reports are looked at with every sale where recovery left it.
pub(crate) fn recover(tx: &Tx<'_>, at: OffsetDateTime, told: &mut Vec<String>) -> Result<(), StepError> {
    tokenx::recover_locking(tx, at, told)?;
    mobilepay::recover(tx, at, told)?;
    settle::recover(tx, at, told)?;
    finix::recover(tx, at, told)?;
    tokenx::recover_locks_and_reports(tx, at, told)
}
