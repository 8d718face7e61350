//! The Token X cloud: pump orders, their locks and the payment reports.
//!
//! Delivers the lock, unlock, release and payment-report operations with their stored request
//! ids; keeps the order list fresh and the register's online state (order sync calls in here);
//! renews the lock of a sale while money is under way; picks up the pump's receipts; and at
//! start-up resolves what a crash left: a lock request nobody waits for, a lock no sale stands
//! behind, a report not yet acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use kasa_connect::tokenx::{TokenxClient, TokenxSettings};
use kasa_connect::{Secret, base_url};
use kasa_core::op::{Op, Queued};
use kasa_core::{OpKind, OrderStatus, OrderSummary, SaleEvent, SaleState};
use kasa_store::{OutboxRow, StoreError, Tx};
use time::OffsetDateTime;

use crate::delivery::{Delivery, LockChange, done, elapsed_since, retry};
use crate::dispatch::apply_outcome;
use crate::{ApiError, Config, Credentials, Engine, EngineEvent, ErrorCode, StepError};

/// The keyring entry of the OAuth client secret.
pub const CLIENT_SECRET: &str = "tokenx.client_secret";

/// A lock operation gives up after this many attempts or this long after it was queued, so a
/// cashier is told "offline" instead of waiting.
const LOCK_ATTEMPTS: u32 = 3;
const LOCK_DEADLINE: Duration = Duration::from_secs(8);

/// The Token X client of a configuration, with its secret from `credentials`.
pub(crate) fn client(config: &Config, credentials: &dyn Credentials) -> Result<TokenxClient, ApiError> {
    client_with(kasa_connect::http_client(), config, credentials)
}

pub(crate) fn client_with(
    http: kasa_connect::HttpClient,
    config: &Config,
    credentials: &dyn Credentials,
) -> Result<TokenxClient, ApiError> {
    let setup = |e: String| ApiError::new(ErrorCode::Setup, e);
    let client_secret: Secret = credentials.get(CLIENT_SECRET).map_err(|e| setup(e.to_string()))?;
    Ok(TokenxClient::new(
        http,
        TokenxSettings {
            base_url: base_url(&config.tokenx.base_url).map_err(|e| setup(e.to_string()))?,
            terminal_id: config.tokenx.terminal_id.clone(),
            client_id: config.tokenx.client_id.clone(),
            client_secret,
            timeout: Duration::from_secs(10),
        },
    ))
}

/// Delivers one Token X operation with its stored key (the cloud's `requestId`).
pub(crate) async fn deliver(engine: &Engine, row: &OutboxRow) -> Delivery {
    let tokenx = &engine.inner.providers.tokenx;
    let key = row.key.as_str();
    match &row.op {
        Op::TokenxLock { order_id } => {
            let gone = || LockChange::Gone { order_id: order_id.clone() };
            if row.attempts == 0 && elapsed_since(engine, row.created_at) > LOCK_DEADLINE {
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
                    if row.attempts + 1 >= LOCK_ATTEMPTS || elapsed_since(engine, row.created_at) > LOCK_DEADLINE {
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
            // The planted bug the simulation must catch: a report whose answer was lost goes
            // out again under a new request id, which the cloud can't tell from a second one.
            let fresh;
            let key = if row.maybe_applied && crate::failpoint::planted("lost_answer_new_report") {
                fresh = engine.env().next_id();
                fresh.as_str()
            } else {
                key
            };
            let acknowledged =
                || done(Some(SaleEvent::ReportAcknowledged), LockChange::Gone { order_id: order_id.clone() });
            match tokenx.payment(order_id, lock_id, key, payments).await {
                Ok(()) => acknowledged(),
                Err(e) if e.is_transient() => retry(&e),
                // The lock lapsed while the report waited (an outage longer than the lock's
                // life): lock the order again and report under the new lock, with the same
                // request id (the report was refused, so nothing was applied under it).
                Err(e) if e.code() == Some("ORDER_NOT_LOCKED") => {
                    // One request id per attempt, derived from the report's key: a relock whose
                    // answer was lost holds the order until it lapses (the next attempt hears
                    // ORDER_LOCKED and waits), and an id is never asked again for a lock that
                    // has lapsed since.
                    let relock = format!("{key}-relock-{}", row.attempts);
                    match tokenx.lock(order_id, &relock, None).await {
                        Ok(l) => match tokenx.payment(order_id, &l.lock_id, key, payments).await {
                            Ok(()) => acknowledged(),
                            Err(e) if e.is_transient() => retry(&e),
                            Err(e) => refused(&e.to_string()),
                        },
                        Err(e) if e.is_transient() => retry(&e),
                        // Another register holds the order now: its sale may yet fail and let
                        // the order go, so keep asking rather than leave a paid order open.
                        // LOCK_RELEASED: a repeated request id whose lock has lapsed (the contract is
                        // silent; the code is the sandbox's, inferred).
                        Err(e) if matches!(e.code(), Some("ORDER_LOCKED") | Some("LOCK_RELEASED")) => retry(&e),
                        Err(e) => refused(&format!(
                            "{LOCK_LAPSED} and it could not be locked again ({e}); \
                             the customer has paid here: make sure no other register charges this order"
                        )),
                    }
                }
                Err(e) => refused(&e.to_string()),
            }
        }
        other => Delivery::Park { reason: format!("not a Token X operation: {:?}", other.kind()), event: None },
    }
}

/// How a parked payment report begins when the order's lock lapsed and the order could not be
/// locked again (sold at another register, or closed): the manager's cue to check the portal.
pub const LOCK_LAPSED: &str = "the order's lock lapsed before the payment was reported";

/// A report the cloud refused: parked for the manager with the reason, and the sale told.
fn refused(reason: &str) -> Delivery {
    Delivery::Park { reason: reason.to_string(), event: Some(SaleEvent::ReportRefused { message: reason.to_string() }) }
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
    let tokenx = &engine.inner.providers.tokenx;
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

/// Refreshes the order list; tells the screens when it changed.
/// Returns whether `last` now holds this round's listing.
pub(crate) async fn refresh(engine: &Engine, last: &mut Option<Vec<OrderSummary>>) -> bool {
    match engine.fetch_orders().await {
        Ok(list) => {
            engine.set_online(true, None);
            if last.as_ref() != Some(&list) {
                let _ = engine.inner.events.send(EngineEvent::OrdersChanged { orders: list.clone() });
                *last = Some(list);
            }
            true
        }
        Err(e) if e.code == ErrorCode::Offline => {
            engine.set_online(false, Some(e.message));
            false
        }
        Err(e) => {
            // Answered, but refused: online, with a problem the manager must fix.
            tracing::error!(error = %e, "Token X refused the order list");
            engine.set_online(true, None);
            false
        }
    }
}

/// Renew a lock this long before it lapses, while the customer is still paying.
const RENEW_BEFORE: time::Duration = time::Duration::seconds(60);

/// Keeps the locks of sales that are paying from lapsing: a card payment can outlast a lock.
pub(crate) async fn renew_locks(engine: &Engine) {
    // A paid sale holds its lock until the cloud has its payment report: an outage can delay
    // the report past the lock's life.
    let holding =
        [SaleState::Paying, SaleState::Tendering, SaleState::Voiding, SaleState::NeedsAttention, SaleState::Paid];
    let Ok(paying) = engine.db(move |s| Ok(s.sales_in(&holding)?)).await else { return };
    for sale in paying {
        let (Some(lock), Some(order_id)) = (sale.lock.clone(), sale.basket.pump_order_id()) else { continue };
        if lock.expires_at - engine.now() > RENEW_BEFORE {
            continue;
        }
        let request = engine.env().next_id();
        match engine.inner.providers.tokenx.lock(order_id, &request, Some(&lock.lock_id)).await {
            Ok(l) => {
                let (oid, lid, at) = (order_id.to_string(), l.lock_id.clone(), engine.now());
                let _ = engine.db(move |s| Ok(s.write(|tx| tx.lock_held(&oid, &lid, l.expires_at, at))?)).await;
                let _ = engine.apply(&sale.id.0, SaleEvent::LockRenewed { expires_at: l.expires_at }).await;
            }
            Err(e) => tracing::warn!(sale = %sale.id, error = %e, "renewing the lock failed; will try again"),
        }
    }
}

/// How often a paid sale's order is read when the list no longer shows it.
const UNLISTED_CHECK: Duration = Duration::from_secs(5);

/// For sales paid for a pump order, reads the order once the cloud lists it completed (or, when
/// the list no longer carries it, every few seconds) and stores the pump's receipt with the sale.
/// `listing` is the order list this round fetched, when it could.
pub(crate) async fn pick_up_receipts(
    engine: &Engine,
    listing: Option<&[OrderSummary]>,
    checked: &mut HashMap<String, Instant>,
) {
    let waiting = match engine.db(|s| Ok(s.sales_in(&[SaleState::Paid, SaleState::Reported])?)).await {
        Ok(w) => w,
        Err(_) => return,
    };
    checked.retain(|id, _| waiting.iter().any(|s| &s.id.0 == id));
    if waiting.is_empty() {
        return;
    }
    let listed: HashMap<String, OrderStatus> = match listing {
        Some(list) => list.iter().map(|o| (o.order_id.clone(), o.status)).collect(),
        None => match engine.orders().await {
            Ok(list) => list.into_iter().map(|o| (o.order_id, o.status)).collect(),
            Err(_) => return,
        },
    };
    for sale in waiting {
        let Some(order_id) = sale.basket.pump_order_id().map(str::to_string) else { continue };
        let due = match listed.get(&order_id) {
            Some(OrderStatus::Completed) => true,
            Some(_) => false,
            None => checked.get(&sale.id.0).is_none_or(|t| t.elapsed() >= UNLISTED_CHECK),
        };
        if !due {
            continue;
        }
        checked.insert(sale.id.0.clone(), Instant::now());
        let Ok(order) = engine.inner.providers.tokenx.order(&order_id).await else { continue };
        let Some(receipt) = order.receipt.clone() else { continue };
        let at = engine.now();
        let _ = engine.db(move |s| Ok(s.write(|tx| tx.put_order(&order, at))?)).await;
        if let Err(e) = engine.apply(&sale.id.0, SaleEvent::ReceiptIssued { receipt }).await {
            tracing::warn!(sale = %sale.id, error = %e, "could not record the pump receipt");
        }
    }
}

/// Start-up recovery, first part: a sale that was **locking** is not continued (nobody waits on
/// it any more): its lock request is abandoned and, since it may have reached the cloud, a
/// release is queued.
pub(crate) fn recover_locking(
    tx: &Tx<'_>,
    at: OffsetDateTime,
    env: &crate::Env,
    told: &mut Vec<String>,
) -> Result<(), StepError> {
    for sale in tx.sales_in(&[SaleState::Locking])? {
        let order = sale.basket.pump_order_id().unwrap_or_default().to_string();
        for row in tx.outbox_pending_of(&sale.id.0, OpKind::TokenxLock)? {
            tx.outbox_abandon(row.id, "abandoned at start-up: the register restarted while locking", at)?;
        }
        let event =
            SaleEvent::LockUnavailable { message: "the register restarted while locking".into(), maybe_locked: true };
        apply_outcome(tx, &sale.id.0, event, at, env)?;
        told.push(format!(
            "Sale {}: the register restarted while locking pump order {order}; the order is being released. Take payment again.",
            crate::recovery::short(&sale.id.0)
        ));
    }
    Ok(())
}

/// Start-up recovery, last part (after the payment providers had their say): a **lock** no live
/// sale stands behind is released, and a **paid** sale's unacknowledged report stays queued, to
/// be sent again with its request id.
pub(crate) fn recover_locks_and_reports(
    tx: &Tx<'_>,
    at: OffsetDateTime,
    env: &crate::Env,
    told: &mut Vec<String>,
) -> Result<(), StepError> {
    for lock in tx.locks()? {
        let live = match tx.sale(&lock.sale_id) {
            Ok(s) => matches!(
                s.state,
                SaleState::Locking
                    | SaleState::Paying
                    | SaleState::Tendering
                    | SaleState::Voiding
                    | SaleState::NeedsAttention
                    | SaleState::Paid
            ),
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let lane = Op::TokenxRelease { order_id: lock.order_id.clone() }.lane();
        if live || tx.outbox_lane_has(&lane, &[OpKind::TokenxRelease, OpKind::TokenxUnlock])? {
            continue;
        }
        let release = Queued { key: env.next_id(), op: Op::TokenxRelease { order_id: lock.order_id.clone() } };
        tx.enqueue(Some(&lock.sale_id), &release, at)?;
        told.push(format!("Pump order {}: a lock left by an unfinished attempt is being released.", lock.order_id));
    }
    for sale in tx.sales_in(&[SaleState::Paid])? {
        if !tx.outbox_pending_of(&sale.id.0, OpKind::TokenxPayment)?.is_empty() {
            told.push(format!(
                "Sale {}: paid; its payment report will be sent again (the cloud recognises a repeat).",
                crate::recovery::short(&sale.id.0)
            ));
        }
    }
    Ok(())
}
