//! Kasa's sandbox: local, stateful stand-ins for every system Kasa talks to.
//!
//! [`Sandbox::start`] brings up the Token X cloud, the Finix, MobilePay and Settle APIs, the
//! fiskaltrust middleware and a virtual receipt printer, each on its own ephemeral loopback
//! port, with a simulated pump adding and completing orders.
//! Tests drive them through the handles here (card outcomes, outages, faults) and assert on
//! what Kasa sent through the shared [`Recorder`]. The same sandbox runs in demo mode and
//! behind `kasa sim`.

pub mod clock;
pub mod finix;
pub mod fiskaltrust;
pub mod http;
pub mod mobilepay;
pub mod printer;
pub mod settle;
pub mod tokenx;

pub use finix::{CardScript, Finix, FinixConfig};
pub use fiskaltrust::{Fiskaltrust, FiskaltrustConfig};
pub use http::{Control, Fate, Faults, Recorded, Recorder, Served};
pub use mobilepay::{CustomerScript, MobilePay, MobilePayConfig};
pub use printer::{Job, VirtualPrinter};
pub use settle::{Settle, SettleConfig, SettleCustomer};
pub use tokenx::{NewOrder, Tokenx, TokenxConfig};

/// Settings for the whole sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Token X.
    pub tokenx: TokenxConfig,
    /// Finix.
    pub finix: FinixConfig,
    /// MobilePay.
    pub mobilepay: MobilePayConfig,
    /// Settle.
    pub settle: SettleConfig,
    /// fiskaltrust.
    pub fiskaltrust: FiskaltrustConfig,
    /// Seed for fault injection.
    pub fault_seed: u64,
    /// Where the virtual printer keeps a copy of every job.
    pub printer_spool: Option<std::path::PathBuf>,
}

impl Default for SandboxConfig {
    /// A quick sandbox for tests: cards and app payments are approved at once, Settle customers
    /// wait for the test to decide. MobilePay's merchant is set to the stations' currency and
    /// the fiscal queue is coded for Türkiye.
    fn default() -> Self {
        let tokenx = TokenxConfig::default();
        let mut mobilepay = MobilePayConfig::default();
        for m in &mut mobilepay.merchants {
            m.currency = tokenx.currency.clone();
        }
        SandboxConfig {
            tokenx,
            finix: FinixConfig::default(),
            mobilepay,
            settle: SettleConfig::default(),
            fiskaltrust: FiskaltrustConfig::turkiye(),
            fault_seed: 0,
            printer_spool: None,
        }
    }
}

impl SandboxConfig {
    /// A lively sandbox for demos: orders keep arriving, cards take a moment, and app and QR
    /// customers wait for the demo panel's buttons.
    pub fn demo() -> SandboxConfig {
        let mut c = SandboxConfig::default();
        c.tokenx.initial_orders = 5;
        c.tokenx.order_interval = Some(std::time::Duration::from_secs(20));
        c.tokenx.completion_delay = std::time::Duration::from_secs(2);
        c.finix.default_card = CardScript::approve(std::time::Duration::from_millis(1500));
        c.mobilepay.customer = CustomerScript::Manual;
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
    /// MobilePay state and controls.
    pub mobilepay: MobilePay,
    /// MobilePay's HTTP service.
    pub mobilepay_http: Served,
    /// Settle state and controls.
    pub settle: Settle,
    /// Settle's HTTP service.
    pub settle_http: Served,
    /// fiskaltrust state and controls.
    pub fiskaltrust: Fiskaltrust,
    /// fiskaltrust's HTTP service.
    pub fiskaltrust_http: Served,
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
        let mobilepay = MobilePay::new(config.mobilepay.clone());
        let mobilepay_http =
            http::serve("mobilepay", mobilepay.router(), recorder.clone(), config.fault_seed ^ 0x3b).await?;
        let settle = Settle::new(config.settle.clone());
        let settle_http = http::serve("settle", settle.router(), recorder.clone(), config.fault_seed ^ 0x5e7).await?;
        let fiskaltrust = Fiskaltrust::new(config.fiskaltrust.clone());
        let fiskaltrust_http =
            http::serve("fiskaltrust", fiskaltrust.router(), recorder.clone(), config.fault_seed ^ 0xf15c).await?;
        let printer = VirtualPrinter::start(config.printer_spool.clone()).await?;
        let pump = tokenx.spawn_pump();
        Ok(Sandbox {
            tokenx,
            finix,
            tokenx_http,
            finix_http,
            mobilepay,
            mobilepay_http,
            settle,
            settle_http,
            fiskaltrust,
            fiskaltrust_http,
            printer,
            recorder,
            config,
            pump,
        })
    }

    /// Base URL of Token X.
    pub fn tokenx_url(&self) -> String {
        self.tokenx_http.url()
    }

    /// Base URL of Finix.
    pub fn finix_url(&self) -> String {
        self.finix_http.url()
    }

    /// Base URL of MobilePay.
    pub fn mobilepay_url(&self) -> String {
        self.mobilepay_http.url()
    }

    /// Base URL of Settle.
    pub fn settle_url(&self) -> String {
        self.settle_http.url()
    }

    /// Base URL of the fiskaltrust middleware (the service root; the API is under `/v2`).
    pub fn fiskaltrust_url(&self) -> String {
        self.fiskaltrust_http.url()
    }

    /// `host:port` of the virtual printer.
    pub fn printer_addr(&self) -> String {
        self.printer.addr.to_string()
    }

    /// The base URL of a service by the name of its section in Kasa's configuration
    /// (`tokenx`, `finix`, `mobilepay`, `settle`, `fiskaltrust`), or `None` for a name it doesn't serve.
    pub fn url(&self, name: &str) -> Option<String> {
        match name {
            "tokenx" => Some(self.tokenx_url()),
            "finix" => Some(self.finix_url()),
            "mobilepay" => Some(self.mobilepay_url()),
            "settle" => Some(self.settle_url()),
            "fiskaltrust" => Some(self.fiskaltrust_url()),
            _ => None,
        }
    }
}
