//! The register's configuration file (TOML).
//!
//! It names every endpoint, the terminal and device ids, the printer and the data directory.
//! It never holds a secret: those live in the OS keyring ([`crate::credentials`]).

use std::path::{Path, PathBuf};

use kasa_core::{Currency, Money, ShopItem};
use kasa_print::{CodePage, StoreInfo, Width};
use serde::{Deserialize, Serialize};

/// Everything Kasa needs to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Currency of the store.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Token X cloud.
    pub tokenx: TokenxConfig,
    /// Finix card terminal.
    pub finix: FinixConfig,
    /// MobilePay, when the store takes it.
    #[serde(default)]
    pub mobilepay: Option<MobilePayConfig>,
    /// Settle, when the store takes it.
    #[serde(default)]
    pub settle: Option<SettleConfig>,
    /// Receipt printer.
    #[serde(default)]
    pub printer: PrinterConfig,
    /// Store details printed on slips.
    #[serde(default)]
    pub store: StoreInfo,
    /// Shop articles the cashier can pick or scan.
    #[serde(default)]
    pub catalog: Vec<CatalogItem>,
    /// How often the order list is refreshed, in milliseconds.
    #[serde(default = "default_sync_ms")]
    pub sync_interval_ms: u64,
    /// Outbox delivery tuning.
    #[serde(default)]
    pub outbox: OutboxConfig,
}

/// How the outbox retries. Delays grow exponentially from `retry_base_ms` up to `retry_cap_ms`,
/// with jitter; operations a cashier waits on (lock, card) retry at a third of the base and give
/// up in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// First retry delay.
    #[serde(default = "default_retry_base")]
    pub retry_base_ms: u64,
    /// Longest retry delay.
    #[serde(default = "default_retry_cap")]
    pub retry_cap_ms: u64,
    /// Deliveries in flight at once.
    #[serde(default = "default_in_flight")]
    pub in_flight: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            retry_base_ms: default_retry_base(),
            retry_cap_ms: default_retry_cap(),
            in_flight: default_in_flight(),
        }
    }
}

fn default_retry_base() -> u64 {
    500
}
fn default_retry_cap() -> u64 {
    30_000
}
fn default_in_flight() -> usize {
    32
}

/// Token X settings. The client secret is the keyring entry `tokenx.client_secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenxConfig {
    /// Base URL, e.g. `https://test-api.devtokeninc.com`.
    pub base_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// This register's virtual terminal id.
    pub terminal_id: String,
}

/// Finix settings. The API password is the keyring entry `finix.password`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinixConfig {
    /// Base URL, e.g. `https://finix.sandbox-payments-api.com`.
    pub base_url: String,
    /// API username.
    pub username: String,
    /// The merchant payments are made to.
    pub merchant_id: String,
    /// The card terminal at this register.
    pub device_id: String,
}

/// MobilePay settings. The access token is the keyring entry `mobilepay.access_token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobilePayConfig {
    /// Base URL of the PoS API.
    pub base_url: String,
    /// The merchant's bio code.
    pub bio_code: String,
    /// This register's terminal id at MobilePay.
    pub terminal_id: String,
}

/// Settle settings. The API secret is the keyring entry `settle.secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleConfig {
    /// Base URL of the merchant API (e.g. `https://api.settle.eu/`).
    pub base_url: String,
    /// Merchant id.
    pub merchant_id: String,
    /// API user.
    pub api_user: String,
    /// This register's `pos_id`.
    pub pos_id: String,
    /// The merchant's shortlink id (the QR codes point at it).
    pub shortlink_id: String,
    /// Where Kasa listens for Settle's scan callbacks (`host:port`; port 0 picks one).
    #[serde(default = "default_callback_listen")]
    pub callback_listen: String,
    /// The address Settle posts scans to, when it differs from the listening address (a
    /// public URL relayed to it).
    #[serde(default)]
    pub callback_url: Option<String>,
}

fn default_callback_listen() -> String {
    "127.0.0.1:0".into()
}

/// Where and how slips are printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `tcp` (network printer), `file` (USB device node or file), `serial`, `spooler`
    /// (Windows), or `none`.
    #[serde(default = "default_printer_kind")]
    pub kind: String,
    /// `host:port` for `tcp`.
    #[serde(default)]
    pub address: Option<String>,
    /// Path for `file` (e.g. `/dev/usb/lp0`) or `serial` (e.g. `/dev/ttyUSB0`, `COM3`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Baud rate for `serial`.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The installed printer's name for `spooler`.
    #[serde(default)]
    pub name: Option<String>,
    /// Model id: `epson-tm`, `generic-58` or `star`.
    #[serde(default = "default_model")]
    pub model: String,
    /// Code page to print in.
    #[serde(default = "default_page")]
    pub code_page: CodePage,
    /// `ESC t` number for the code page, when this printer differs from its model's table.
    #[serde(default)]
    pub page_number: Option<u8>,
    /// Paper width.
    #[serde(default = "default_width")]
    pub width: Width,
    /// Open the cash drawer after a cash sale.
    #[serde(default = "yes")]
    pub open_drawer_on_cash: bool,
}

impl Default for PrinterConfig {
    fn default() -> Self {
        PrinterConfig {
            kind: default_printer_kind(),
            address: None,
            path: None,
            baud: default_baud(),
            name: None,
            model: default_model(),
            code_page: default_page(),
            page_number: None,
            width: default_width(),
            open_drawer_on_cash: true,
        }
    }
}

/// A shop article in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    /// Barcode or article number.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Price with VAT, as a decimal string (`"35.00"`).
    pub price: String,
    /// VAT rate in percent.
    pub vat_percent: u32,
}

fn default_currency() -> String {
    "TRY".into()
}
fn default_sync_ms() -> u64 {
    1000
}
fn default_printer_kind() -> String {
    "none".into()
}
fn default_baud() -> u32 {
    9600
}
fn default_model() -> String {
    "epson-tm".into()
}
fn default_page() -> CodePage {
    CodePage::Cp857
}
fn default_width() -> Width {
    Width::Mm80
}
fn yes() -> bool {
    true
}

/// Why a configuration can't be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or missing fields.
    #[error("the configuration {path} is not valid: {message}")]
    Parse {
        /// File.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is wrong.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.to_string() })?;
        c.check()?;
        Ok(c)
    }

    /// Checks values the types can't.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.currency()?;
        let mut urls = vec![&self.tokenx.base_url, &self.finix.base_url];
        urls.extend(self.mobilepay.as_ref().map(|m| &m.base_url));
        urls.extend(self.settle.as_ref().map(|s| &s.base_url));
        for url in urls {
            kasa_connect::base_url(url).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if let Some(s) = &self.settle
            && s.callback_listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "settle.callback_listen '{}' is not host:port (e.g. 127.0.0.1:8085)",
                s.callback_listen
            )));
        }
        if self.tokenx.terminal_id.trim().is_empty() {
            return Err(ConfigError::Invalid("tokenx.terminal_id is empty".into()));
        }
        let p = &self.printer;
        let missing = |what: &str| Err(ConfigError::Invalid(format!("printer.kind = \"{}\" needs {what}", p.kind)));
        match p.kind.as_str() {
            "none" => {}
            "tcp" if p.address.is_none() => return missing("printer.address (host:9100)"),
            "file" if p.path.is_none() => return missing("printer.path (e.g. /dev/usb/lp0)"),
            "serial" if p.path.is_none() => return missing("printer.path (e.g. /dev/ttyUSB0) and printer.baud"),
            "spooler" if p.name.is_none() => return missing("printer.name (the printer's name in Windows)"),
            "tcp" | "file" | "serial" | "spooler" => {}
            other => {
                return Err(ConfigError::Invalid(format!(
                    "printer.kind '{other}' is unknown; use tcp, file, serial, spooler or none"
                )));
            }
        }
        if kasa_print::Model::by_id(&self.printer.model).is_none() {
            return Err(ConfigError::Invalid(format!(
                "printer.model '{}' is unknown; use epson-tm, generic-58 or star",
                self.printer.model
            )));
        }
        self.shop_items()?;
        if self.outbox.retry_base_ms == 0
            || self.outbox.retry_cap_ms < self.outbox.retry_base_ms
            || self.outbox.in_flight == 0
        {
            return Err(ConfigError::Invalid(
                "outbox: retry_base_ms must be positive, retry_cap_ms at least retry_base_ms, in_flight positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The store currency.
    pub fn currency(&self) -> Result<Currency, ConfigError> {
        Currency::parse(&self.currency).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The catalog as domain items.
    pub fn shop_items(&self) -> Result<Vec<ShopItem>, ConfigError> {
        let cur = self.currency()?;
        self.catalog
            .iter()
            .map(|c| {
                Ok(ShopItem {
                    sku: c.sku.clone(),
                    name: c.name.clone(),
                    unit_price: Money::parse_decimal(&c.price, cur)
                        .map_err(|e| ConfigError::Invalid(format!("catalog item {}: {e}", c.sku)))?,
                    vat_rate_bp: c.vat_percent * 100,
                })
            })
            .collect()
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("kasa.db")
    }

    /// A configuration for services on loopback with the sandbox's demo identities: the
    /// Token X client `kasa-demo` as terminal `VT-0001`, the Finix merchant and terminal the
    /// sandbox provides, and a network printer at `printer_addr`.
    pub fn local(data_dir: PathBuf, tokenx_url: &str, finix_url: &str, printer_addr: Option<String>) -> Config {
        Config {
            data_dir,
            mobilepay: None,
            settle: None,
            currency: default_currency(),
            tokenx: TokenxConfig {
                base_url: tokenx_url.to_string(),
                client_id: "kasa-demo".into(),
                terminal_id: "VT-0001".into(),
            },
            finix: FinixConfig {
                base_url: finix_url.to_string(),
                username: "USdemoKasa".into(),
                merchant_id: "MUdemoKasaMerchant".into(),
                device_id: "DVdemoKasaTerminal1".into(),
            },
            printer: PrinterConfig {
                kind: if printer_addr.is_some() { "tcp".into() } else { "none".into() },
                address: printer_addr,
                ..PrinterConfig::default()
            },
            store: StoreInfo::default(),
            catalog: Config::demo_catalog(),
            sync_interval_ms: default_sync_ms(),
            outbox: OutboxConfig::default(),
        }
    }

    /// Adds the sandbox's demo MobilePay and Settle identities at these URLs.
    pub fn with_local_apps(mut self, mobilepay_url: Option<&str>, settle_url: Option<&str>) -> Config {
        self.mobilepay = mobilepay_url.map(|u| MobilePayConfig {
            base_url: u.to_string(),
            bio_code: "KASA-BIO-0001".into(),
            terminal_id: "KASA-LANE-1".into(),
        });
        self.settle = settle_url.map(|u| SettleConfig {
            base_url: u.to_string(),
            merchant_id: "kasademo".into(),
            api_user: "kasa-pos".into(),
            pos_id: "kasa-register-1".into(),
            shortlink_id: "kAsA7d".into(),
            callback_listen: default_callback_listen(),
            callback_url: None,
        });
        self
    }

    /// The secrets of the sandbox's demo identities.
    pub fn local_secrets() -> crate::MemoryCredentials {
        crate::MemoryCredentials::with(&[
            (crate::credentials::TOKENX_CLIENT_SECRET, "demo-secret"),
            (crate::credentials::FINIX_PASSWORD, "demo-finix-password"),
            (crate::credentials::MOBILEPAY_ACCESS_TOKEN, "mp-demo-access-token"),
            (crate::credentials::SETTLE_SECRET, "demo-settle-secret"),
        ])
    }

    /// A small demo catalog of market articles.
    pub fn demo_catalog() -> Vec<CatalogItem> {
        let item = |sku: &str, name: &str, price: &str, vat: u32| CatalogItem {
            sku: sku.into(),
            name: name.into(),
            price: price.into(),
            vat_percent: vat,
        };
        vec![
            item("8690504000017", "Su 0,5 L", "15.00", 1),
            item("8690000000101", "Simit", "20.00", 1),
            item("5449000000996", "Kola 330 ml", "45.00", 20),
            item("8690526000035", "Çikolatalı Gofret", "25.00", 10),
            item("8690000000200", "Türk Kahvesi", "60.00", 10),
            item("8690000000309", "Cam Suyu 3 L", "120.00", 20),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "/var/lib/kasa"
[tokenx]
base_url = "https://test-api.devtokeninc.com"
client_id = "station-42"
terminal_id = "VT-0001"
[finix]
base_url = "https://finix.sandbox-payments-api.com"
username = "USsRhsHYZGBPnQw8CByJyEQW"
merchant_id = "MUeDVrf2ahuKc9Eg5TeZugvs"
device_id = "DV7DvjGoZ2AEdhAKhtKXVv4b"
[printer]
kind = "tcp"
address = "192.168.1.50:9100"
code_page = "cp1254"
[[catalog]]
sku = "1"
name = "Çay"
price = "12.50"
vat_percent = 10
"#;

    #[test]
    fn reads_a_full_configuration() {
        let c = Config::parse(GOOD, "kasa.toml").unwrap();
        assert_eq!(c.printer.code_page, CodePage::Cp1254);
        assert_eq!(c.printer.model, "epson-tm");
        assert_eq!(c.shop_items().unwrap()[0].unit_price.minor, 1250);
        assert_eq!(c.database_path(), PathBuf::from("/var/lib/kasa/kasa.db"));
    }

    #[test]
    fn errors_say_what_to_fix() {
        let err = |text: &str| Config::parse(text, "kasa.toml").unwrap_err().to_string();
        assert!(err(&GOOD.replace("https://test-api", "http://test-api")).contains("use https://"));
        assert!(err(&GOOD.replace("[tokenx]", "secret = \"x\"\n[tokenx]")).contains("unknown field `secret`"));
        assert!(err(&GOOD.replace("address = \"192.168.1.50:9100\"\n", "")).contains("needs printer.address"));
        assert!(err(&GOOD.replace("price = \"12.50\"", "price = \"12,50\"")).contains("catalog item 1"));
        assert!(err("data_dir = 3").contains("kasa.toml"));
    }
}
