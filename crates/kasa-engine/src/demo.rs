//! Demo mode: the register against its own sandbox, started in-process on loopback.
//!
//! A simulated pump keeps adding orders, cards are approved after a moment, and slips go to
//! the virtual printer, so a new user sees a working register at once.

use std::path::PathBuf;

use kasa_sim::{Sandbox, SandboxConfig};

use crate::{ApiError, Config, Engine, ErrorCode};

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
        .with_local_apps(Some(&sandbox.mobilepay_url()), Some(&sandbox.settle_url()));
    let engine = Engine::start_with(config, &Config::local_secrets(), true).await?;
    Ok(Demo { sandbox, engine })
}

/// Plays the sandbox's customer for the app or QR payment under way at this register:
/// `scan` scans the Settle QR code, `approve` and `reject` decide (in MobilePay the customer
/// checks in first). Returns what was done, for the demo panel.
pub async fn play_customer(engine: &Engine, sandbox: &Sandbox, action: &str) -> Result<String, ApiError> {
    use kasa_core::{PayMethod, SaleState};
    let paying = engine.store().sales_in(&[SaleState::Paying])?;
    let attempt = paying
        .iter()
        .filter_map(|s| s.attempt.clone())
        .find(|a| matches!(a.method, PayMethod::Settle | PayMethod::MobilePay))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidState, "No app or QR payment is under way."))?;
    let fail = |e: String| ApiError::new(ErrorCode::InvalidState, e);
    match (attempt.method, action) {
        (PayMethod::Settle, "scan") => {
            let pos_tid = attempt.reference.unwrap_or_default();
            sandbox.settle.scan(&pos_tid).await.map_err(fail)?;
            Ok("The customer scanned the QR code.".into())
        }
        (PayMethod::Settle, decision) => {
            let pos_tid = attempt.reference.unwrap_or_default();
            let tid = sandbox.settle.tid_of(&pos_tid).ok_or_else(|| fail("Scan the QR code first.".into()))?;
            if decision == "approve" {
                sandbox.settle.approve(&tid)
            } else {
                sandbox.settle.reject(&tid)
            }
            Ok(format!("The customer chose to {decision}."))
        }
        (PayMethod::MobilePay, decision) => {
            let terminal = engine.config().mobilepay.as_ref().map(|m| m.terminal_id.clone()).unwrap_or_default();
            let payment = sandbox
                .mobilepay
                .active_payment(&terminal)
                .ok_or_else(|| fail("The MobilePay payment is still starting.".into()))?;
            let _ = sandbox.mobilepay.check_in(&terminal);
            let r = if decision == "approve" {
                sandbox.mobilepay.approve(&payment)
            } else {
                sandbox.mobilepay.reject(&payment)
            };
            r.map_err(|e| fail(format!("{e:?}")))?;
            Ok(format!("The customer chose to {decision}."))
        }
        _ => Err(fail("Unknown sandbox action.".into())),
    }
}
