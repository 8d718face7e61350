//! The register's configuration file (TOML).
//!
//! It names every endpoint, the terminal and device ids, the printer and the data directory.
//! It never holds a secret: those live in the OS keyring ([`crate::credentials`]).

use std::path::{Path, PathBuf};

use kasa_core::{Currency, Money, ShopItem};
use kasa_print::{CodePage, StoreInfo, Width};
use serde::{Deserialize, Serialize};

pub use crate::providers::Systems;
pub use crate::providers::mobilepay::MobilePayConfig;
pub use crate::providers::settle::SettleConfig;

/// Everything Kasa needs to run.
///
/// Unknown keys are refused: at the top level by [`Config::parse`] (the optional systems'
/// sections are flattened in, which serde can't combine with `deny_unknown_fields`), inside every
/// section by the section's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The systems a store may use or not (`[mobilepay]`, `[settle]`, …), each section defined
    /// by its provider.
    #[serde(flatten)]
    pub systems: Systems,
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
    /// The manager area.
    #[serde(default)]
    pub manager: ManagerConfig,
}

/// The manager area: when a session ends, and the cash a shift starts with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    /// Seconds without a privileged call after which the manager is logged out (default 300).
    #[serde(default)]
    pub idle_logout_secs: Option<u64>,
    /// Cash in the drawer when the first shift opens, e.g. "500.00" (later shifts start with
    /// what the Z report before them left in the drawer).
    #[serde(default)]
    pub opening_float: Option<String>,
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

/// Checks that `url` is a base URL Kasa may call.
pub(crate) fn check_url(url: &str) -> Result<(), ConfigError> {
    kasa_connect::base_url(url).map(|_| ()).map_err(|e| ConfigError::Invalid(e.to_string()))
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
        let parse = |message: String| ConfigError::Parse { path: origin.to_string(), message };
        let table: toml::Table = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        let known = Config::KEYS.iter().chain(Systems::KEYS);
        if let Some(key) = table.keys().find(|k| !known.clone().any(|known| known == k)) {
            let expected: Vec<String> = known.map(|k| format!("`{k}`")).collect();
            return Err(parse(format!("unknown field `{key}`, expected one of {}", expected.join(", "))));
        }
        let c: Config = toml::from_str(text).map_err(|e| parse(e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// The top-level keys of [`Config`] itself (the optional systems add [`Systems::KEYS`]).
    const KEYS: &[&str] = &[
        "data_dir",
        "currency",
        "tokenx",
        "finix",
        "printer",
        "store",
        "catalog",
        "sync_interval_ms",
        "outbox",
        "manager",
    ];

    /// Checks values the types can't.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.currency()?;
        for url in [&self.tokenx.base_url, &self.finix.base_url] {
            check_url(url)?;
        }
        self.systems.check()?;
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
            systems: Systems::default(),
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
            manager: ManagerConfig::default(),
        }
    }

    /// Adds the optional systems with the sandbox's demo identities; `url` gives the address of
    /// each system's sandbox by its section name (`"mobilepay"`, `"settle"`, …), or `None` to
    /// leave that system out.
    pub fn with_local_systems(mut self, url: impl Fn(&str) -> Option<String>) -> Config {
        self.systems = Systems::local(url);
        self
    }

    /// The secrets of the sandbox's demo identities.
    pub fn local_secrets() -> crate::MemoryCredentials {
        crate::MemoryCredentials::with(crate::providers::LOCAL_SECRETS)
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
        assert!(err(&format!("{GOOD}\n[mobilepay]\nbase_url = \"https://x.example\"\nbio_code = \"B\"\nterminal_id = \"T\"\ntoken = \"t\"\n")).contains("unknown field `token`"));
        assert!(
            err(&format!(
                "{GOOD}\n[mobilepay]\nbase_url = \"http://mp.example\"\nbio_code = \"B\"\nterminal_id = \"T\"\n"
            ))
            .contains("use https://")
        );
        assert!(err(&format!("{GOOD}\n[fiskal]\nx = 1\n")).contains("unknown field `fiskal`, expected one of"));
    }

    const FISCAL: &str = "[fiscal]\nbase_url = \"https://possystem-api.fiskaltrust.eu/\"\n\
         cashbox_id = \"6f1c2a4e-8b3d-4c5e-9a7f-1d2e3c4b5a60\"\nterminal_id = \"T1\"\ncountry = \"IT\"\n\
         vat_categories = [{ rate_bp = 2200, category = 3 }, { rate_bp = 1000, category = 1 }]\n";

    #[test]
    fn a_bad_fiscal_section_says_which_key_and_what_to_do() {
        let cases = [
            (
                "cashbox_id = \"6f1c2a4e-8b3d-4c5e-9a7f-1d2e3c4b5a60\"",
                "cashbox_id = \"box-1\"",
                "fiscal.cashbox_id 'box-1' is not a UUID",
            ),
            ("country = \"IT\"", "country = \"Italia\"", "fiscal.country 'Italia' is not a two-letter country code"),
            ("terminal_id = \"T1\"", "terminal_id = \" \"", "fiscal.terminal_id is empty"),
            (
                "{ rate_bp = 1000, category = 1 }",
                "{ rate_bp = 1000, category = 16 }",
                "category 16 of rate 1000 is above 15",
            ),
            ("https://possystem-api.fiskaltrust.eu/", "http://possystem-api.fiskaltrust.eu/", "use https://"),
            ("country = \"IT\"", "country = \"IT\"\nprint_wait = 3", "unknown field `print_wait`"),
        ];
        for (from, to, says) in cases {
            let text = format!("{GOOD}\n{}", FISCAL.replace(from, to));
            let e = match Config::parse(&text, "kasa.toml") {
                Err(e) => e.to_string(),
                Ok(c) => c.check().map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
            };
            assert!(e.contains(says), "{to}: {e}");
        }
        let text = format!(
            "{GOOD}\n{}",
            FISCAL.replace(
                "vat_categories = [{ rate_bp = 2200, category = 3 }, { rate_bp = 1000, category = 1 }]",
                "vat_categories = []"
            )
        );
        let e = Config::parse(&text, "kasa.toml").and_then(|c| c.check()).unwrap_err().to_string();
        assert!(e.contains("fiscal.vat_categories is empty"), "{e}");
    }

    #[test]
    fn an_exposed_settle_callback_needs_a_public_https_address() {
        let settle = "[settle]\nbase_url = \"https://api.settle.eu/\"\nmerchant_id = \"m\"\napi_user = \"u\"\npos_id = \"p\"\nshortlink_id = \"s\"\n";
        let cases = [
            ("callback_listen = \"0.0.0.0:8085\"\n", Some("set settle.callback_url")),
            (
                "callback_listen = \"0.0.0.0:8085\"\ncallback_url = \"http://register.example/settle/callback\"\n",
                Some("is not https://"),
            ),
            ("callback_listen = \"0.0.0.0:8085\"\ncallback_url = \"https://register.example/settle/callback\"\n", None),
            ("callback_listen = \"127.0.0.1:8085\"\n", None),
        ];
        for (extra, says) in cases {
            let got = Config::parse(&format!("{GOOD}\n{settle}{extra}"), "kasa.toml");
            match (got, says) {
                (Err(e), Some(says)) => assert!(e.to_string().contains(says), "{extra}: {e}"),
                (Ok(_), None) => {}
                (got, _) => panic!("{extra}: {got:?}"),
            }
        }
    }

    #[test]
    fn the_optional_systems_are_sections_of_their_own() {
        let text = format!(
            "{GOOD}\n[mobilepay]\nbase_url = \"https://api.mobilepay.dk\"\nbio_code = \"B1\"\nterminal_id = \"LANE-1\"\n\
             [settle]\nbase_url = \"https://api.settle.eu/\"\nmerchant_id = \"m\"\napi_user = \"u\"\npos_id = \"p\"\nshortlink_id = \"s\"\n{FISCAL}"
        );
        let c = Config::parse(&text, "kasa.toml").unwrap();
        assert_eq!(c.systems.mobilepay.as_ref().unwrap().terminal_id, "LANE-1");
        assert_eq!(c.systems.settle.as_ref().unwrap().callback_listen, "127.0.0.1:0");
        // What Kasa writes it reads back, and the key lists name every section it writes.
        let written = toml::to_string(&c).unwrap();
        assert_eq!(Config::parse(&written, "written").unwrap(), c);
        let table: toml::Table = toml::from_str(&written).unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut known: Vec<&str> = Config::KEYS.iter().chain(Systems::KEYS).copied().collect();
        known.sort_unstable();
        assert_eq!(keys, known);
    }
}
