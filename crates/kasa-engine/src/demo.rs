//! Demo mode: the register against its own sandbox, started in-process on loopback.
//!
//! A simulated pump keeps adding orders, cards are approved after a moment, and slips go to
//! the virtual printer, so a new user sees a working register at once.

use std::path::PathBuf;

use kasa_sim::{Sandbox, SandboxConfig};

use crate::{ApiError, Config, Engine, ErrorCode};

/// The manager PIN a demo register starts with (the README gives it).
pub const DEMO_PIN: &str = "246810";

/// A running demo: the sandbox and the register using it.
#[derive(Debug)]
pub struct Demo {
    /// The sandbox (Token X, Finix, printer).
    pub sandbox: Sandbox,
    /// The register.
    pub engine: Engine,
}

/// Starts the sandbox and a register against it with its data in `data_dir`.
/// The virtual printer spools every slip to `data_dir/printer/`.
pub async fn start(data_dir: PathBuf, mut sandbox: SandboxConfig) -> Result<Demo, ApiError> {
    sandbox.printer_spool.get_or_insert_with(|| data_dir.join("printer"));
    let sandbox = Sandbox::start(sandbox)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Setup, format!("the demo sandbox could not start: {e}")))?;
    let config = Config::local(data_dir, &sandbox.tokenx_url(), &sandbox.finix_url(), Some(sandbox.printer_addr()))
        .with_local_systems(|name| sandbox.url(name));
    let engine = Engine::start_with(config, &Config::local_secrets(), crate::Env::system(), true).await?;
    if !engine.has_manager_pin().await? {
        engine.set_first_manager_pin(DEMO_PIN).await?;
    }
    Ok(Demo { sandbox, engine })
}

/// What the sandbox's customer does on the demo panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerAction {
    /// Scans the Settle QR code (MobilePay needs no scan: the customer checks in).
    Scan,
    /// Approves the payment in the app.
    Approve,
    /// Rejects the payment in the app.
    Reject,
    /// Walks away: the request (or its authorisation) expires.
    Expire,
}

impl std::str::FromStr for CustomerAction {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scan" => Ok(Self::Scan),
            "approve" => Ok(Self::Approve),
            "reject" => Ok(Self::Reject),
            "expire" => Ok(Self::Expire),
            other => Err(ApiError::new(
                ErrorCode::BadInput,
                format!("Unknown sandbox action \"{other}\": use scan, approve, reject or expire."),
            )),
        }
    }
}

/// Plays the sandbox's customer for the app or QR payment under way at this register:
/// `Scan` scans the Settle QR code; `Approve`, `Reject` and `Expire` decide (in MobilePay the
/// customer checks in first). Returns what was done, for the demo panel.
pub async fn play_customer(engine: &Engine, sandbox: &Sandbox, action: CustomerAction) -> Result<String, ApiError> {
    use kasa_core::{PayMethod, SaleState};
    let paying = engine.store().sales_in(&[SaleState::Paying])?;
    let attempt = paying
        .iter()
        .filter_map(|s| s.attempt.clone())
        .find(|a| matches!(a.method, PayMethod::Settle | PayMethod::MobilePay))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "No app or QR payment is under way."))?;
    let fail = |e: String| ApiError::new(ErrorCode::InvalidState, e);
    let said = match action {
        CustomerAction::Scan => "The customer scanned the QR code.",
        CustomerAction::Approve => "The customer approved the payment.",
        CustomerAction::Reject => "The customer rejected the payment.",
        CustomerAction::Expire => "The customer walked away; the payment expired.",
    };
    match attempt.method {
        PayMethod::Settle => {
            let pos_tid = attempt.reference.unwrap_or_default();
            if action == CustomerAction::Scan {
                sandbox.settle.scan(&pos_tid).await.map_err(fail)?;
                return Ok(said.into());
            }
            let tid = sandbox.settle.tid_of(&pos_tid).ok_or_else(|| fail("Scan the QR code first.".into()))?;
            match action {
                CustomerAction::Approve => sandbox.settle.approve(&tid),
                CustomerAction::Reject => sandbox.settle.reject(&tid),
                _ => sandbox.settle.expire(&tid),
            }
        }
        _ => {
            if action == CustomerAction::Scan {
                return Err(fail("MobilePay has nothing to scan here: approve, reject or let it expire.".into()));
            }
            let terminal =
                engine.config().systems.mobilepay.as_ref().map(|m| m.terminal_id.clone()).unwrap_or_default();
            let payment = sandbox
                .mobilepay
                .active_payment(&terminal)
                .ok_or_else(|| fail("The MobilePay payment is still starting.".into()))?;
            let _ = sandbox.mobilepay.check_in(&terminal);
            match action {
                CustomerAction::Approve => sandbox.mobilepay.approve(&payment),
                CustomerAction::Reject => sandbox.mobilepay.reject(&payment),
                _ => sandbox.mobilepay.expire(&payment),
            }
            .map_err(|e| fail(format!("{e:?}")))?;
        }
    }
    Ok(said.into())
}
