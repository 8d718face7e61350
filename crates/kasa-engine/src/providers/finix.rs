//! Finix: card-present sales on the register's terminal, their refunds (reversals), and the
//! terminal itself.
//!
//! A card sale is sent with its stored key as Finix `idempotency_id`. What Finix answers is used
//! only when it is this sale's (its idempotency id, sale tag and device agree) and took exactly
//! what was asked. After a restart an unfinished card sale is resolved by cancelling the
//! terminal's prompt and sending the same request again ([`Op::CardLookup`]); a refusal after
//! an attempt that may have been applied is settled by the transfer itself, looked up by its
//! idempotency id; anything that proves neither a charge nor its absence holds the sale for a
//! manager.

use std::collections::BTreeMap;
use std::time::Duration;

use kasa_connect::ConnectError;
use kasa_connect::finix::{CardPresentDetails, Device, FinixClient, FinixSettings, Transfer};
use kasa_core::op::{Op, Queued};
use kasa_core::{CardSlip, Money, OpKind, Payment, PaymentKind, SaleEvent, SaleState};
use kasa_store::{OutboxRow, Tx};
use time::OffsetDateTime;

use crate::delivery::{
    Delivery, LockChange, approved, declined, done, elapsed_since, refund_outcome, reported_currency, retry, unresolved,
};
use crate::{ApiError, Config, Credentials, Engine, ErrorCode, StepError, connect_error};

/// The keyring entry of the API password.
pub const PASSWORD: &str = "finix.password";

/// The Finix client of a configuration, with its password from `credentials`.
pub(crate) fn client(
    config: &Config,
    credentials: &dyn Credentials,
    http: &kasa_connect::HttpClient,
) -> Result<FinixClient, ApiError> {
    let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
    Ok(FinixClient::new(
        http.clone(),
        FinixSettings {
            base_url: kasa_connect::base_url(&config.finix.base_url).map_err(|e| setup(e.to_string()))?,
            username: config.finix.username.clone(),
            password: credentials.get(PASSWORD).map_err(|e| setup(e.to_string()))?,
            timeout: Duration::from_secs(10),
            sale_timeout: Duration::from_secs(200),
        },
    ))
}

/// Delivers one Finix operation.
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    match &row.op {
        Op::CardSale { amount } => card_sale(engine, row, *amount).await,
        Op::CardLookup { amount, idempotency_id, original_at } => {
            card_lookup(engine, row, *amount, idempotency_id, *original_at).await
        }
        Op::CardRefund { refund_id, transfer_id, amount } => refund(engine, row, refund_id, transfer_id, *amount).await,
        other => Delivery::Park { reason: format!("not a Finix operation: {:?}", other.kind()), event: None },
    }
}

/// A card sale that certainly never reached the payment service is given up after this many
/// attempts; one that may have reached it is retried until its outcome is known.
const CARD_NOT_SENT_ATTEMPTS: u32 = 3;

/// The tags a card sale carries: the same on every attempt, so a repeat is the same request.
fn card_tags(engine: &Engine, sale_id: Option<&str>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if let Some(s) = sale_id {
        tags.insert("sale_id".to_string(), s.to_string());
    }
    tags.insert("terminal_id".to_string(), engine.inner.config.tokenx.terminal_id.clone());
    tags
}

/// Finix's code for a repeated `idempotency_id` with a different request (inferred; the
/// sandbox answers it): the key names a transfer that is not this one.
const IDEMPOTENCY_CONFLICT: &str = "IDEMPOTENCY_ID_REUSED";

/// Finix's answer while the terminal works on a transaction (inferred): passing by nature.
const DEVICE_BUSY: &str = "DEVICE_BUSY";

/// How long after the original card sale recovery still sends it again. Later, a new prompt on
/// the terminal could meet the next customer, so the sale is only looked up.
const RESEND_WINDOW: Duration = Duration::from_secs(600);

async fn card_sale(engine: &Engine, row: &OutboxRow, amount: Money) -> Delivery {
    let device = &engine.inner.config.finix.device_id;
    let tags = card_tags(engine, row.sale_id.as_deref());
    match engine.inner.providers.finix.card_sale(device, amount, &row.key, &tags).await {
        Ok(t) => transfer_outcome(t, amount, &row.key, row.sale_id.as_deref(), device, engine.now()),
        Err(e) if e.is_transient() || e.maybe_applied() => {
            let maybe = row.maybe_applied || e.maybe_applied();
            if !maybe && row.attempts + 1 >= CARD_NOT_SENT_ATTEMPTS {
                // Every attempt failed before reaching Finix: certainly no charge.
                let event = SaleEvent::PaymentDeclined {
                    code: "TERMINAL_UNREACHABLE".into(),
                    message: format!("The card payment service could not be reached ({e})."),
                };
                done(Some(event), LockChange::None)
            } else {
                retry(&e)
            }
        }
        // The first request refused (4xx): no earlier attempt exists that it could hide, and it
        // was not applied itself. No money was taken.
        Err(e) if !row.maybe_applied && row.attempts == 0 => done(
            Some(SaleEvent::PaymentDeclined {
                code: e.code().unwrap_or("REFUSED").to_string(),
                message: format!("The card terminal refused the payment: {e}."),
            }),
            LockChange::None,
        ),
        // A refusal after an attempt that may have been applied proves nothing about that
        // attempt: only the transfer itself can tell.
        Err(e) => settle_by_lookup(engine, amount, &row.key, row.sale_id.as_deref(), &e).await,
    }
}

/// After an answer that proves nothing, looks the card sale up by its idempotency id: a final
/// transfer of this sale ends it; anything else holds the sale for a manager (an empty list is
/// no proof that nothing was charged).
async fn settle_by_lookup(
    engine: &Engine,
    amount: Money,
    idempotency_id: &str,
    sale_id: Option<&str>,
    why: &ConnectError,
) -> Delivery {
    let device = &engine.inner.config.finix.device_id;
    let is_final = |t: &Transfer| matches!(t.state.as_str(), "SUCCEEDED" | "FAILED" | "CANCELED");
    match engine.inner.providers.finix.transfers_by_idempotency_id(idempotency_id).await {
        Ok(list) => match list.iter().position(is_final) {
            Some(i) => transfer_outcome(list[i].clone(), amount, idempotency_id, sale_id, device, engine.now()),
            // Still on the terminal, or the terminal busy with it: ask again later.
            None if !list.is_empty() || why.code() == Some(DEVICE_BUSY) => retry(why),
            None => unresolved(format!(
                "Finix answered \"{why}\" and has no final transfer under this sale's idempotency id \
                 {idempotency_id} yet; check the Finix dashboard, then retry or discard the message"
            )),
        },
        Err(e) if e.is_transient() => retry(&e),
        Err(e) => unresolved(format!(
            "Finix answered \"{why}\", and the lookup of idempotency id {idempotency_id} failed: {e}"
        )),
    }
}

/// What a Finix transfer's state means for the card sale of `idempotency_id` asking `amount`.
/// A transfer is taken as this sale's only when what it carries agrees: its idempotency id and,
/// where given, the sale it is tagged with and the device it was taken on.
fn transfer_outcome(
    t: Transfer,
    amount: Money,
    idempotency_id: &str,
    sale_id: Option<&str>,
    device: &str,
    now: OffsetDateTime,
) -> Delivery {
    let tagged = t.tags.as_ref().and_then(|tags| tags.get("sale_id")).map(String::as_str);
    let foreign = match (t.idempotency_id.as_deref(), tagged, sale_id) {
        (Some(k), _, _) if k != idempotency_id => Some(format!("idempotency id {k}, not {idempotency_id}")),
        (_, Some(tag), Some(ours)) if tag != ours => Some(format!("sale {tag}, not {ours}")),
        _ => t.device.as_deref().filter(|d| *d != device).map(|d| format!("device {d}, not {device}")),
    };
    if let Some(what) = foreign {
        // Never use another request's transfer as this sale's outcome.
        return unresolved(format!(
            "Finix answered with transfer {} of another request ({what}); check the Finix dashboard",
            t.id
        ));
    }
    match t.state.as_str() {
        "SUCCEEDED" => {
            let card = t.card_present_details.clone().unwrap_or(CardPresentDetails {
                masked_account_number: None,
                brand: None,
                entry_mode: None,
                approval_code: None,
            });
            let slip = CardSlip {
                masked_pan: card.masked_account_number.unwrap_or_default(),
                brand: card.brand.unwrap_or_default(),
                entry_mode: card.entry_mode.unwrap_or_default(),
                approval_code: card.approval_code.unwrap_or_default(),
                terminal_ref: t.device.clone().unwrap_or_else(|| device.to_string()),
                transaction_ref: t.id.clone(),
                paid_at: t
                    .updated_at
                    .clone()
                    .or(t.created_at.clone())
                    .unwrap_or_else(|| kasa_core::journal::format_time(now)),
            };
            let paid = Money::new(t.amount, reported_currency(&t.currency));
            approved(Payment { amount: paid, kind: PaymentKind::Card { slip } }, amount)
        }
        "FAILED" | "CANCELED" => {
            let code = t.failure_code.unwrap_or_else(|| "DECLINED".into());
            let message = t.failure_message.unwrap_or_else(|| "The payment was not approved.".into());
            done(Some(SaleEvent::PaymentDeclined { code, message }), LockChange::None)
        }
        other => Delivery::Retry { error: format!("transfer {} is {other}", t.id), maybe_applied: true },
    }
}

/// After a restart: how did the card sale sent with `idempotency_id` end? An empty lookup
/// proves nothing (the customer may still be tapping, or the lookup lags), so the answer comes
/// from the one call Finix answers definitely: any prompt still on the terminal is cancelled
/// first, then the same sale is sent again with the same idempotency id, and Finix answers
/// with the original transfer if one exists (or, if the first request never arrived, takes
/// this one: the same single payment the cashier asked for, with the customer asked to tap).
/// Only a final transfer ends the attempt; any other answer holds the sale for a manager.
/// Long after the original, the sale is only looked up: a new prompt then could meet the next
/// customer.
async fn card_lookup(
    engine: &Engine,
    row: &OutboxRow,
    amount: Money,
    idempotency_id: &str,
    original_at: Option<OffsetDateTime>,
) -> Delivery {
    let device = &engine.inner.config.finix.device_id;
    let finix = &engine.inner.providers.finix;
    let sale_id = row.sale_id.as_deref();
    if crate::failpoint::planted("empty_lookup_reopens") {
        return planted_empty_lookup(engine, amount, idempotency_id, sale_id).await;
    }
    let since = original_at.unwrap_or(row.created_at);
    if elapsed_since(engine, since) > RESEND_WINDOW {
        let why = ConnectError::Config(format!(
            "the card sale was made {} minutes ago, too long to ask the customer again",
            elapsed_since(engine, since).as_secs() / 60
        ));
        return settle_by_lookup(engine, amount, idempotency_id, sale_id, &why).await;
    }
    // On every attempt: a prompt this lookup put there itself is cancelled too, which at worst
    // ends the attempt with nothing taken.
    match finix.cancel(device).await {
        Ok(t) => tracing::info!(transfer = %t.id, "cancelled the prompt left on the terminal"),
        // Nothing in progress on the terminal: the transfer ended, or never started.
        Err(e) if e.status() == Some(422) => {}
        Err(e) if e.is_transient() => return retry(&e),
        Err(e) => tracing::warn!(error = %e, "the terminal refused the cancel; resolving the sale by its key"),
    }
    let tags = card_tags(engine, sale_id);
    match finix.card_sale(device, amount, idempotency_id, &tags).await {
        Ok(t) => transfer_outcome(t, amount, idempotency_id, sale_id, device, engine.now()),
        Err(e) if e.code() == Some(IDEMPOTENCY_CONFLICT) => unresolved(format!(
            "Finix holds a different request under this sale's idempotency id ({e}); check the Finix dashboard"
        )),
        Err(e) if e.is_transient() || e.maybe_applied() => retry(&e),
        Err(e) => settle_by_lookup(engine, amount, idempotency_id, sale_id, &e).await,
    }
}

/// The recovery bug the kill harness and the simulation must catch: believing an empty lookup.
/// Only in test builds (feature `failpoints`), switched on by `KASA_PLANTED_BUG`.
async fn planted_empty_lookup(engine: &Engine, amount: Money, idempotency_id: &str, sale_id: Option<&str>) -> Delivery {
    let device = &engine.inner.config.finix.device_id;
    match engine.inner.providers.finix.transfers_by_idempotency_id(idempotency_id).await {
        Ok(list) => match list.into_iter().next() {
            Some(t) => transfer_outcome(t, amount, idempotency_id, sale_id, device, engine.now()),
            None => declined("NOT_STARTED", "The register restarted before the card payment reached the card service."),
        },
        Err(e) => retry(&e),
    }
}

/// Gives back `amount` of a card sale (a Finix reversal with its own idempotency id). What
/// Finix says it gave back must be what was asked; otherwise the refund stays under way (its
/// amount still counted) for the manager to settle.
async fn refund(engine: &Engine, row: &OutboxRow, refund_id: &str, transfer_id: &str, amount: Money) -> Delivery {
    match engine.inner.providers.finix.refund(transfer_id, amount, &row.key).await {
        Ok(t) if t.amount != amount.minor || reported_currency(&t.currency) != amount.currency => Delivery::Park {
            reason: format!(
                "Finix reversed {} {} of transfer {transfer_id} although {} was asked; check it in the Finix dashboard",
                t.amount,
                t.currency,
                amount.display_grouped()
            ),
            event: None,
        },
        result => refund_outcome(refund_id, result.map(|_| ())),
    }
}

/// Cancels the card payment waiting at the terminal (the cashier pressed cancel). The sale
/// moves on when the transfer's outcome arrives.
pub(crate) async fn cancel(engine: &Engine) -> Result<(), ApiError> {
    match engine.inner.providers.finix.cancel(&engine.inner.config.finix.device_id).await {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(422) => {
            Err(ApiError::new(ErrorCode::InvalidState, "The terminal has no payment in progress to cancel."))
        }
        Err(e) => Err(connect_error(&e)),
    }
}

/// What the cashier reads when the card terminal can't take payments, if it can't.
pub(crate) fn terminal_problem(device: &Device) -> Option<String> {
    if device.is_connected() {
        None
    } else if device.enabled {
        Some("The card terminal is not connected: check that it is on, online, with the Finix app open.".into())
    } else {
        Some("The card terminal is not activated: activate it in the manager area.".into())
    }
}

/// Start-up recovery: a sale that was **paying by card** is never charged twice. Its card sale
/// is replaced by a [`Op::CardLookup`] of the same idempotency id, in doubt from the start.
pub(crate) fn recover(
    tx: &Tx<'_>,
    at: OffsetDateTime,
    env: &crate::Env,
    told: &mut Vec<String>,
) -> Result<(), StepError> {
    for sale in tx.sales_in(&[SaleState::Paying])? {
        for row in tx.outbox_pending_of(&sale.id.0, OpKind::CardSale)? {
            let Op::CardSale { amount } = row.op else { continue };
            tx.outbox_abandon(row.id, "replaced at start-up by a lookup of its outcome", at)?;
            let op = Op::CardLookup { amount, idempotency_id: row.key.clone(), original_at: Some(row.created_at) };
            let id = tx.enqueue(Some(&sale.id.0), &Queued { key: env.next_id(), op }, at)?;
            tx.outbox_in_doubt(id)?;
            told.push(format!(
                "Sale {}: the register restarted during a card payment of {}; its outcome is being checked with the card service: a prompt left on the terminal is cancelled and the same payment asked again, so the customer may be asked to tap. Do not charge the customer again.",
                crate::recovery::short(&sale.id.0),
                amount.display_grouped()
            ));
        }
    }
    Ok(())
}
