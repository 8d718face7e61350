//! Performing one queued operation and classifying its outcome.
//!
//! Each operation is sent with its stored idempotency key. The outcome says what the
//! dispatcher records: done (with the event for the sale and what changed about our locks),
//! retry later (with whether the attempt may have been applied), or park for the manager.

use std::collections::BTreeMap;
use std::time::Duration;

use kasa_connect::ConnectError;
use kasa_connect::finix::{CardPresentDetails, Transfer};
use kasa_core::op::Op;
use kasa_core::{CardSlip, Currency, Money, Payment, PaymentKind, SaleEvent};
use kasa_print::Slip;
use kasa_store::OutboxRow;
use time::OffsetDateTime;

use crate::failpoint::failpoint;
use crate::{Engine, now};

/// A lock operation gives up after this many attempts or this long after it was queued, so a
/// cashier is told "offline" instead of waiting.
const LOCK_ATTEMPTS: u32 = 3;
const LOCK_DEADLINE: Duration = Duration::from_secs(8);
/// A card sale that certainly never reached the payment service is given up after this many
/// attempts; one that may have reached it is retried until its outcome is known.
const CARD_NOT_SENT_ATTEMPTS: u32 = 3;

/// What changed about a lock this register may hold.
#[derive(Debug)]
pub(crate) enum LockChange {
    None,
    Held { order_id: String, lock_id: String, expires_at: OffsetDateTime },
    Gone { order_id: String },
}

/// The outcome of one delivery attempt.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// Finished: mark the message done, update locks, and tell the sale.
    Done { event: Option<SaleEvent>, lock: LockChange },
    /// Try again later with the same key.
    Retry { error: String, maybe_applied: bool },
    /// Failed for good: park for the manager, and tell the sale.
    Park { reason: String, event: Option<SaleEvent> },
}

fn done(event: Option<SaleEvent>, lock: LockChange) -> Delivery {
    Delivery::Done { event, lock }
}

/// Done, with an event for the sale and no lock change.
pub(crate) fn outcome(event: SaleEvent) -> Delivery {
    done(Some(event), LockChange::None)
}

/// The attempt ended without money taken.
pub(crate) fn declined(code: &str, message: &str) -> Delivery {
    outcome(SaleEvent::PaymentDeclined { code: code.to_string(), message: message.to_string() })
}

/// Try again later with the same key.
pub(crate) fn retry(e: &ConnectError) -> Delivery {
    Delivery::Retry { error: e.to_string(), maybe_applied: e.maybe_applied() }
}

/// A provider the register has no settings for.
pub(crate) fn not_configured(what: &str) -> Delivery {
    Delivery::Park { reason: format!("{what} is not configured on this register"), event: None }
}

fn elapsed_since(at: OffsetDateTime) -> Duration {
    Duration::try_from(now() - at).unwrap_or(Duration::ZERO)
}

pub(crate) async fn run(engine: &Engine, row: &OutboxRow) -> Delivery {
    failpoint!("deliver.before_send");
    let delivery = perform(engine, row).await;
    failpoint!("deliver.after_send");
    if let Delivery::Retry { error, .. } = &delivery {
        tracing::warn!(op = row.op.kind().as_str(), attempt = row.attempts + 1, %error, "delivery failed; will retry");
    }
    delivery
}

async fn perform(engine: &Engine, row: &OutboxRow) -> Delivery {
    let tokenx = &engine.inner.tokenx;
    let key = row.key.as_str();
    match &row.op {
        Op::TokenxLock { order_id } => {
            let gone = || LockChange::Gone { order_id: order_id.clone() };
            if row.attempts == 0 && elapsed_since(row.created_at) > LOCK_DEADLINE {
                // Queued too long behind other work: the cashier has been told nothing yet, so
                // don't lock now; report it unavailable without sending.
                let event =
                    SaleEvent::LockUnavailable { message: "the request waited too long".into(), maybe_locked: false };
                return done(Some(event), gone());
            }
            match tokenx.lock(order_id, key, None).await {
                Ok(l) => done(
                    Some(SaleEvent::LockGranted { lock_id: l.lock_id.clone(), expires_at: l.expires_at }),
                    LockChange::Held { order_id: order_id.clone(), lock_id: l.lock_id, expires_at: l.expires_at },
                ),
                Err(e) if e.status() == Some(409) => done(
                    Some(SaleEvent::LockRefused {
                        code: e.code().unwrap_or("ORDER_LOCKED").to_string(),
                        message: e.to_string(),
                    }),
                    gone(),
                ),
                Err(e) if e.is_transient() || e.maybe_applied() => {
                    let maybe = row.maybe_applied || e.maybe_applied();
                    if row.attempts + 1 >= LOCK_ATTEMPTS || elapsed_since(row.created_at) > LOCK_DEADLINE {
                        let event = SaleEvent::LockUnavailable { message: e.to_string(), maybe_locked: maybe };
                        // A lock that may exist keeps its row until the queued release confirms.
                        done(Some(event), if maybe { LockChange::None } else { gone() })
                    } else {
                        retry(&e)
                    }
                }
                Err(e) => done(
                    Some(SaleEvent::LockRefused {
                        code: e.code().unwrap_or("REFUSED").to_string(),
                        message: e.to_string(),
                    }),
                    gone(),
                ),
            }
        }
        Op::TokenxUnlock { order_id, lock_id } => match tokenx.unlock(order_id, lock_id, key).await {
            // 409: the lock is not ours (it lapsed and someone else holds the order).
            Ok(()) => done(None, LockChange::Gone { order_id: order_id.clone() }),
            Err(e) if matches!(e.status(), Some(409) | Some(404)) => {
                done(None, LockChange::Gone { order_id: order_id.clone() })
            }
            Err(e) if e.is_transient() => retry(&e),
            Err(e) => Delivery::Park { reason: e.to_string(), event: None },
        },
        Op::TokenxRelease { order_id } => release(engine, row, order_id).await,
        Op::TokenxPayment { order_id, lock_id, payments } => {
            match tokenx.payment(order_id, lock_id, key, payments).await {
                Ok(()) => done(Some(SaleEvent::ReportAcknowledged), LockChange::Gone { order_id: order_id.clone() }),
                Err(e) if e.is_transient() => retry(&e),
                Err(e) => Delivery::Park {
                    reason: e.to_string(),
                    event: Some(SaleEvent::ReportRefused { message: e.to_string() }),
                },
            }
        }
        Op::CardSale { amount } => card_sale(engine, row, *amount).await,
        Op::CardLookup { amount, idempotency_id, original_at } => {
            card_lookup(engine, row, *amount, idempotency_id, *original_at).await
        }
        Op::MobilePayPayment { amount, order_id, start } => {
            crate::mobilepay::payment(engine, row, *amount, order_id, *start).await
        }
        Op::SettleScanWait { pos_tid, .. } => crate::apps::settle_scan_wait(engine, pos_tid).await,
        Op::SettleRequest { amount, pos_tid, token } => {
            crate::apps::settle_request(engine, row, *amount, pos_tid, token).await
        }
        Op::SettleAwait { amount, tid, pos_tid } => {
            crate::apps::settle_await(engine, *amount, tid, pos_tid.as_deref()).await
        }
        Op::CardRefund { .. } | Op::MobilePayRefund { .. } | Op::SettleRefund { .. } => {
            crate::apps::refund(engine, row).await
        }
        Op::PrintSlip { copy, refund } => print(engine, row, *copy, refund.as_deref()).await,
    }
}

/// Unlocks an order this register may have locked, if the cloud says the lock is ours.
async fn release(engine: &Engine, row: &OutboxRow, order_id: &str) -> Delivery {
    let gone = LockChange::Gone { order_id: order_id.to_string() };
    // A later sale of this order owns the lock row now: its lock is not ours to release.
    let oid = order_id.to_string();
    if let Ok(Some(lock)) = engine.db(move |s| Ok(s.lock_of(&oid)?)).await
        && Some(lock.sale_id.as_str()) != row.sale_id.as_deref()
    {
        return done(None, LockChange::None);
    }
    let tokenx = &engine.inner.tokenx;
    match tokenx.order(order_id).await {
        Ok(order) => match order.lock {
            Some(l) if l.terminal_id == tokenx.terminal_id() => {
                match tokenx.unlock(order_id, &l.lock_id, &row.key).await {
                    Ok(()) => done(None, gone),
                    Err(e) if e.status() == Some(409) => done(None, gone),
                    Err(e) if e.is_transient() => retry(&e),
                    Err(e) => Delivery::Park { reason: e.to_string(), event: None },
                }
            }
            _ => done(None, gone),
        },
        Err(e) if e.status() == Some(404) => done(None, gone),
        Err(e) if e.is_transient() => retry(&e),
        Err(e) => Delivery::Park { reason: e.to_string(), event: None },
    }
}

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

/// The payment's outcome could not be found out: the operation is parked for the manager and
/// the sale held, with what is known.
pub(crate) fn unresolved(reason: String) -> Delivery {
    Delivery::Park { reason: reason.clone(), event: Some(SaleEvent::PaymentUnresolved { reason }) }
}

async fn card_sale(engine: &Engine, row: &OutboxRow, amount: Money) -> Delivery {
    let device = &engine.inner.config.finix.device_id;
    let tags = card_tags(engine, row.sale_id.as_deref());
    match engine.inner.finix.card_sale(device, amount, &row.key, &tags).await {
        Ok(t) => transfer_outcome(t, amount, &row.key, row.sale_id.as_deref(), device),
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
    match engine.inner.finix.transfers_by_idempotency_id(idempotency_id).await {
        Ok(list) => match list.iter().position(is_final) {
            Some(i) => transfer_outcome(list[i].clone(), amount, idempotency_id, sale_id, device),
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

/// The currency a provider names, as Kasa's type; a code that is no currency at all becomes
/// ISO 4217's `XXX` ("no currency"), which never equals what was asked.
pub(crate) fn reported_currency(code: &str) -> Currency {
    Currency::parse(code).unwrap_or(Currency::XXX)
}

/// A payment the provider approved: the sale's payment when it took exactly what was asked,
/// otherwise a mismatch the sale holds for a manager (the money facts kept, nothing reported).
/// An amount of nothing, or a currency that can't be read, is an answer not yet complete.
pub(crate) fn approved(payment: Payment, asked: Money) -> Delivery {
    if payment.amount == asked {
        return outcome(SaleEvent::PaymentApproved { payment });
    }
    if payment.amount.minor <= 0 || payment.amount.currency == Currency::XXX {
        return unresolved(format!(
            "the payment service reports the payment taken, but for {} (asked {})",
            payment.amount.display_grouped(),
            asked.display_grouped()
        ));
    }
    tracing::error!(asked = %asked.display_grouped(), charged = %payment.amount.display_grouped(), "a provider took another amount than was asked");
    outcome(SaleEvent::PaymentMismatch { payment })
}

/// What a Finix transfer's state means for the card sale of `idempotency_id` asking `amount`.
/// A transfer is taken as this sale's only when what it carries agrees: its idempotency id and,
/// where given, the sale it is tagged with and the device it was taken on.
fn transfer_outcome(t: Transfer, amount: Money, idempotency_id: &str, sale_id: Option<&str>, device: &str) -> Delivery {
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
                    .unwrap_or_else(|| kasa_core::journal::format_time(now())),
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
    let finix = &engine.inner.finix;
    let sale_id = row.sale_id.as_deref();
    if crate::failpoint::planted("empty_lookup_reopens") {
        return planted_empty_lookup(engine, amount, idempotency_id, sale_id).await;
    }
    let since = original_at.unwrap_or(row.created_at);
    if elapsed_since(since) > RESEND_WINDOW {
        let why = ConnectError::Config(format!(
            "the card sale was made {} minutes ago, too long to ask the customer again",
            elapsed_since(since).as_secs() / 60
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
        Ok(t) => transfer_outcome(t, amount, idempotency_id, sale_id, device),
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
    match engine.inner.finix.transfers_by_idempotency_id(idempotency_id).await {
        Ok(list) => match list.into_iter().next() {
            Some(t) => transfer_outcome(t, amount, idempotency_id, sale_id, device),
            None => declined("NOT_STARTED", "The register restarted before the card payment reached the card service."),
        },
        Err(e) => retry(&e),
    }
}

async fn print(engine: &Engine, row: &OutboxRow, copy: bool, refund: Option<&str>) -> Delivery {
    let Some(printer) = engine.inner.printer.clone() else {
        return done(None, LockChange::None);
    };
    let Some(sale_id) = row.sale_id.clone() else { return done(None, LockChange::None) };
    let sale = match engine.sale(&sale_id).await {
        Ok(s) => s,
        Err(e) => return Delivery::Park { reason: e.message, event: None },
    };
    let store = &engine.inner.config.store;
    let (slip, cash) = match refund {
        Some(id) => {
            let Some(r) = sale.refunds.iter().find(|r| r.id == id) else {
                return Delivery::Park { reason: format!("no refund {id} in sale {sale_id}"), event: None };
            };
            let cash = sale.refunded_payment(r).is_some_and(|p| matches!(p.kind, PaymentKind::Cash { .. }));
            (Slip::from_refund(&sale, r, store), cash)
        }
        None => (
            Slip::from_sale(&sale, store, copy),
            sale.payments.iter().any(|p| matches!(p.kind, PaymentKind::Cash { .. })),
        ),
    };
    let slip = match slip {
        Ok(s) => s,
        Err(e) => return Delivery::Park { reason: e.to_string(), event: None },
    };
    let mut setup = printer.setup;
    // The drawer opens for cash taken or given back, never for a copy.
    setup.open_drawer = cash && !copy && engine.inner.config.printer.open_drawer_on_cash;
    let blocks = kasa_print::layout::layout(&slip, printer.width);
    let bytes = match kasa_print::escpos::render(&blocks, &setup) {
        Ok(b) => b,
        Err(e) => return Delivery::Park { reason: e.to_string(), event: None },
    };
    let target = printer.target.clone();
    let sent = tokio::task::spawn_blocking(move || kasa_print::driver::send(&target, &bytes, Default::default())).await;
    match sent {
        Ok(Ok(())) => {
            engine.set_printer_problem(None);
            done(None, LockChange::None)
        }
        Ok(Err(e)) => {
            // The cashier is told; the slip stays queued and prints once the printer is back.
            engine.set_printer_problem(Some(format!("Printer: {e}")));
            if e.is_transient() {
                Delivery::Retry { error: e.to_string(), maybe_applied: false }
            } else {
                Delivery::Park { reason: e.to_string(), event: None }
            }
        }
        Err(e) => Delivery::Retry { error: e.to_string(), maybe_applied: false },
    }
}
