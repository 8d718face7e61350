//! The Finix sandbox: devices and card-present transfers, after `finix-pos-integration.md`.
//!
//! Every call needs HTTP Basic auth and the `Finix-Version` header. A card-present transfer is
//! answered when the simulated terminal reaches an outcome: approved or declined after a delay
//! from a script of card outcomes, or cancelled through `PUT /devices/{id}` with
//! `{"action": "CANCEL"}`. The outcome runs in its own task, as a real terminal carries on when
//! the HTTP caller goes away.
//!
//! Inferred where the guide is silent (a real sandbox can settle it): a repeated
//! `idempotency_id` with the same body returns the original transfer, with a different body
//! answers `422`; a missing `Finix-Version` answers `400`; a transfer on a disabled device
//! answers `422`; a second transfer on a busy device answers `422 DEVICE_BUSY`; `CANCEL` with
//! nothing in progress answers `422`.
//!
//! Refunds are reversals (`POST /transfers/{id}/reversals` with `refund_amount`), partial or full,
//! never more in all than the original transfer; a reversal carries its own `idempotency_id`.
//!
//! Timing as a store sees it, for the tests that hold Kasa to its money promises: a cardholder
//! takes a while at the terminal ([`FinixConfig::tap`], drawn per card from the seeded
//! generator); lookups (`GET /transfers?idempotency_id=`, `GET /transfers/{id}`) can lag behind
//! creation ([`FinixConfig::lookup_lag`]) or not see a transfer at all until the card is read
//! ([`FinixConfig::hidden_until_final`], as with a terminal that reports the transfer only when
//! it is done). A repeated `POST /transfers` with the same `idempotency_id` always finds the
//! original (Finix's idempotent-request page: "the same idempotency_id ... will return the
//! original response or raise an exception if the new request differs"), however lagging the
//! lookups are.

mod api;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use kasa_core::signal::{Signal, Watcher};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tokio::sync::oneshot;

/// Settings of the Finix sandbox.
#[derive(Debug, Clone)]
pub struct FinixConfig {
    /// API username (Basic auth user).
    pub username: String,
    /// API password.
    pub password: String,
    /// The merchant Kasa sells for.
    pub merchant_id: String,
    /// Devices that exist, are enabled and connected from the start.
    pub preset_devices: Vec<String>,
    /// What an unscripted card does.
    pub default_card: CardScript,
    /// Probability that an unscripted card is declined instead (decided by the seeded generator).
    pub decline_rate: f64,
    /// Seed for ids and trace ids.
    pub seed: u64,
    /// When set, an unscripted card's time at the terminal is drawn from this range (instead
    /// of the delay of `default_card`).
    pub tap: Option<(Duration, Duration)>,
    /// How long after creation a transfer stays invisible to lookups.
    pub lookup_lag: Duration,
    /// Lookups do not see a transfer until the card is read (its outcome is reached).
    pub hidden_until_final: bool,
    /// Leave out `updated_at` from transfers (a field Kasa must not need).
    pub omit_updated_at: bool,
    /// Answer transfers as if they had been made under another `idempotency_id` (a provider
    /// that mixes up requests).
    pub answer_other_idempotency_id: bool,
}

impl Default for FinixConfig {
    fn default() -> Self {
        FinixConfig {
            username: "USdemoKasa".into(),
            password: "demo-finix-password".into(),
            merchant_id: "MUdemoKasaMerchant".into(),
            preset_devices: vec!["DVdemoKasaTerminal1".into(), "DVdemoKasaTerminal2".into()],
            default_card: CardScript::approve(Duration::from_millis(0)),
            decline_rate: 0.0,
            seed: 11,
            tap: None,
            lookup_lag: Duration::ZERO,
            hidden_until_final: false,
            omit_updated_at: false,
            answer_other_idempotency_id: false,
        }
    }
}

/// What the simulated cardholder does at the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum CardScript {
    /// The card is approved after the delay.
    Approve {
        /// Time at the terminal.
        after: Duration,
        /// Card brand.
        brand: String,
        /// Last four digits.
        last4: String,
        /// Entry mode.
        entry_mode: String,
    },
    /// The card is declined after the delay.
    Decline {
        /// Time at the terminal.
        after: Duration,
        /// `failure_code`.
        code: String,
        /// `failure_message`.
        message: String,
    },
    /// Nothing happens until the sale is cancelled (or five minutes pass).
    WaitForCancel,
    /// The cardholder stands at the terminal until a test says what the card does
    /// ([`Finix::present_card`]), the sale is cancelled, or five minutes pass.
    WaitForCardholder,
    /// The terminal approves after the delay but reports another amount or currency than was
    /// asked (a partial approval, or a misconfigured terminal).
    ApproveOther {
        /// Time at the terminal.
        after: Duration,
        /// The amount reported, when it differs.
        amount: Option<i64>,
        /// The currency reported, when it differs.
        currency: Option<String>,
    },
}

impl CardScript {
    /// A VISA chip card approved after `after`.
    pub fn approve(after: Duration) -> CardScript {
        CardScript::Approve { after, brand: "VISA".into(), last4: "0059".into(), entry_mode: "CHIP_ENTRY".into() }
    }

    /// A decline with Finix's generic code after `after`.
    pub fn decline(after: Duration) -> CardScript {
        CardScript::Decline {
            after,
            code: "GENERIC_DECLINE".into(),
            message: "The card was declined by the issuer.".into(),
        }
    }

    /// The same script with its time at the terminal set to `after`.
    fn taking(self, took: Duration) -> CardScript {
        match self {
            CardScript::Approve { brand, last4, entry_mode, .. } => {
                CardScript::Approve { after: took, brand, last4, entry_mode }
            }
            CardScript::Decline { code, message, .. } => CardScript::Decline { after: took, code, message },
            CardScript::ApproveOther { amount, currency, .. } => {
                CardScript::ApproveOther { after: took, amount, currency }
            }
            CardScript::WaitForCancel => CardScript::WaitForCancel,
            CardScript::WaitForCardholder => CardScript::WaitForCardholder,
        }
    }

    fn delay(&self) -> Option<Duration> {
        match self {
            CardScript::Approve { after, .. }
            | CardScript::Decline { after, .. }
            | CardScript::ApproveOther { after, .. } => Some(*after),
            CardScript::WaitForCancel | CardScript::WaitForCardholder => None,
        }
    }
}

struct Device {
    json: Value,
    enabled: bool,
    connected: bool,
}

struct Pending {
    transfer_id: String,
    cancel: Option<oneshot::Sender<()>>,
    /// For a cardholder who waits to be told what to do ([`CardScript::WaitForCardholder`]).
    decide: Option<oneshot::Sender<CardScript>>,
}

struct Inner {
    config: FinixConfig,
    reversed: BTreeMap<String, i64>,
    devices: BTreeMap<String, Device>,
    transfers: BTreeMap<String, Value>,
    done: BTreeMap<String, Watcher<bool>>,
    idempotency: BTreeMap<String, (Value, String)>,
    /// When each transfer becomes visible to lookups (absent: visible).
    visible_from: BTreeMap<String, tokio::time::Instant>,
    /// Transfers lookups do not see until their outcome is reached.
    hidden: std::collections::BTreeSet<String>,
    pending: BTreeMap<String, Pending>,
    scripts: VecDeque<CardScript>,
    rng: StdRng,
}

impl Inner {
    /// Whether lookups see a transfer yet.
    fn visible(&self, id: &str) -> bool {
        !self.hidden.contains(id) && self.visible_from.get(id).is_none_or(|from| tokio::time::Instant::now() >= *from)
    }

    /// A transfer as the API answers it.
    fn answer(&self, id: &str) -> Option<Value> {
        let mut t = self.transfers.get(id)?.clone();
        if self.config.answer_other_idempotency_id && t["idempotency_id"].is_string() {
            t["idempotency_id"] = json!("someone-else");
        }
        if self.config.omit_updated_at
            && let Some(o) = t.as_object_mut()
        {
            o.remove("updated_at");
        }
        Some(t)
    }
}

/// The Finix sandbox's state; cheap to clone.
#[derive(Clone)]
pub struct Finix {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Finix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finix")
    }
}

fn now() -> String {
    crate::clock::now().format(&Rfc3339).unwrap_or_default()
}

const BASE: &str = "https://finix.sandbox-payments-api.com";

impl Finix {
    /// A sandbox with the preset device, if configured.
    pub fn new(config: FinixConfig) -> Finix {
        let rng = StdRng::seed_from_u64(config.seed);
        let preset = config.preset_devices.clone();
        let f = Finix {
            inner: Arc::new(Mutex::new(Inner {
                config,
                reversed: BTreeMap::new(),
                devices: BTreeMap::new(),
                transfers: BTreeMap::new(),
                done: BTreeMap::new(),
                idempotency: BTreeMap::new(),
                visible_from: BTreeMap::new(),
                hidden: std::collections::BTreeSet::new(),
                pending: BTreeMap::new(),
                scripts: VecDeque::new(),
                rng,
            })),
        };
        for (n, id) in preset.into_iter().enumerate() {
            let mut g = f.lock();
            let merchant = g.config.merchant_id.clone();
            let (name, desc, serial) =
                (format!("Kasa lane {}", n + 1), format!("Register {}", n + 1), format!("12345678{n:02}"));
            let json = device_json(&id, &merchant, "PAX_A920PRO", &name, &desc, &serial, true);
            g.devices.insert(id, Device { json, enabled: true, connected: true });
        }
        f
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues what the next card at any terminal does.
    pub fn push_card(&self, script: CardScript) {
        self.lock().scripts.push_back(script);
    }

    /// Sets what unscripted cards do.
    pub fn set_default_card(&self, script: CardScript) {
        self.lock().config.default_card = script;
    }

    /// Powers a device's connection on or off.
    pub fn set_connected(&self, device_id: &str, connected: bool) {
        if let Some(d) = self.lock().devices.get_mut(device_id) {
            d.connected = connected;
        }
    }

    /// Every transfer, in no particular order.
    pub fn transfers(&self) -> Vec<Value> {
        self.lock().transfers.values().cloned().collect()
    }

    /// Sales that took money (succeeded debits; refunds are reversals).
    pub fn succeeded_transfers(&self) -> Vec<Value> {
        self.transfers().into_iter().filter(|t| t["state"] == "SUCCEEDED" && t["type"] == "DEBIT").collect()
    }

    /// Reversals (refunds) made.
    pub fn reversals(&self) -> Vec<Value> {
        self.transfers().into_iter().filter(|t| t["type"] == "REVERSAL").collect()
    }

    /// What the card of the cardholder waiting at `device_id` does now (the card is read at
    /// once, whatever delay `script` names). Returns whether someone was waiting.
    pub fn present_card(&self, device_id: &str, script: CardScript) -> bool {
        let decide = self.lock().pending.get_mut(device_id).and_then(|p| p.decide.take());
        decide.is_some_and(|d| d.send(script).is_ok())
    }

    /// Whether a sale is waiting at a device's terminal.
    pub fn is_waiting(&self, device_id: &str) -> bool {
        self.lock().pending.contains_key(device_id)
    }

    fn new_id(&self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let mut g = self.lock();
        let tail: String = (0..22).map(|_| ALPHABET[g.rng.random_range(0..ALPHABET.len())] as char).collect();
        format!("{prefix}{tail}")
    }
}

fn device_json(
    id: &str,
    merchant: &str,
    model: &str,
    name: &str,
    description: &str,
    serial: &str,
    enabled: bool,
) -> Value {
    let at = now();
    json!({
        "id": id,
        "created_at": at,
        "updated_at": at,
        "configuration_details": {
            "allow_debit": true,
            "check_for_duplicate_transactions": true,
            "prompt_amount_confirmation": true,
            "prompt_manual_entry": false,
            "signature_threshold_amount": 10000,
            "bypass_device_on_capture": true,
            "prompt_receipt_confirmation": true,
            "display_tip_on_receipt": false,
            "prompt_tip_on_screen": false,
            "allow_standalone_authorizations": false,
            "allow_standalone_sales": false,
            "allow_standalone_refunds": false,
            "prompt_for_signature": "NEVER"
        },
        "description": description,
        "enabled": enabled,
        "idle_message": null,
        "merchant": merchant,
        "model": model,
        "name": name,
        "serial_number": serial,
        "tags": {},
        "_links": {
            "self": { "href": format!("{BASE}/devices/{id}") },
            "merchant": { "href": format!("{BASE}/merchants/{merchant}") },
            "transfers": { "href": format!("{BASE}/transfers") }
        }
    })
}
