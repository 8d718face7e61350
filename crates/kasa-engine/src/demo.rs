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
    let config = Config::local(data_dir, &sandbox.tokenx_url(), &sandbox.finix_url(), Some(sandbox.printer_addr()));
    let engine = Engine::start_with(config, &Config::local_secrets(), true).await?;
    Ok(Demo { sandbox, engine })
}
