//! Kasa's sandbox: local, stateful stand-ins for every system Kasa talks to.
//!
//! [`Sandbox::start`] brings up the Token X cloud, the Finix API and a virtual receipt printer,
//! each on its own ephemeral loopback port, with a simulated pump adding and completing orders.
//! Tests drive them through the handles here (card outcomes, outages, faults) and assert on
//! what Kasa sent through the shared [`Recorder`]. The same sandbox runs in demo mode and
//! behind `kasa sim`.

pub mod finix;
pub mod http;
pub mod printer;
pub mod tokenx;

pub use finix::{CardScript, Finix, FinixConfig};
pub use http::{Control, Fate, Faults, Recorded, Recorder, Served};
pub use printer::{Job, VirtualPrinter};
pub use tokenx::{NewOrder, Tokenx, TokenxConfig};

/// Settings for the whole sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Token X.
    pub tokenx: TokenxConfig,
    /// Finix.
    pub finix: FinixConfig,
    /// Seed for fault injection.
    pub fault_seed: u64,
    /// Where the virtual printer keeps a copy of every job.
    pub printer_spool: Option<std::path::PathBuf>,
}

impl SandboxConfig {
    /// A lively sandbox for demos: orders keep arriving and cards take a moment.
    pub fn demo() -> SandboxConfig {
        let mut c = SandboxConfig::default();
        c.tokenx.initial_orders = 5;
        c.tokenx.order_interval = Some(std::time::Duration::from_secs(20));
        c.tokenx.completion_delay = std::time::Duration::from_secs(2);
        c.finix.default_card = CardScript::approve(std::time::Duration::from_millis(1500));
        c
    }
}

/// A running sandbox. Dropping it stops every service.
#[derive(Debug)]
pub struct Sandbox {
    /// Token X state and controls.
    pub tokenx: Tokenx,
    /// Finix state and controls.
    pub finix: Finix,
    /// Token X's HTTP service.
    pub tokenx_http: Served,
    /// Finix's HTTP service.
    pub finix_http: Served,
    /// The receipt printer.
    pub printer: VirtualPrinter,
    /// Every HTTP request received.
    pub recorder: Recorder,
    /// The settings it was started with.
    pub config: SandboxConfig,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl Sandbox {
    /// Starts every service on loopback. Must run inside a Tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let recorder = Recorder::default();
        let tokenx = Tokenx::new(config.tokenx.clone());
        let finix = Finix::new(config.finix.clone());
        let tokenx_http = http::serve("tokenx", tokenx.router(), recorder.clone(), config.fault_seed).await?;
        let finix_http = http::serve("finix", finix.router(), recorder.clone(), config.fault_seed ^ 0x5eed).await?;
        let printer = VirtualPrinter::start(config.printer_spool.clone()).await?;
        let pump = tokenx.spawn_pump();
        Ok(Sandbox { tokenx, finix, tokenx_http, finix_http, printer, recorder, config, pump })
    }

    /// Base URL of Token X.
    pub fn tokenx_url(&self) -> String {
        self.tokenx_http.url()
    }

    /// Base URL of Finix.
    pub fn finix_url(&self) -> String {
        self.finix_http.url()
    }

    /// `host:port` of the virtual printer.
    pub fn printer_addr(&self) -> String {
        self.printer.addr.to_string()
    }
}
