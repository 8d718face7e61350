//! Order sync: keeps the cached order list fresh, tells online from offline, and picks up the
//! pump's receipt for paid sales.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kasa_core::{OrderStatus, OrderSummary, SaleEvent, SaleState};

use kasa_core::IdSource;

use crate::{Engine, EngineEvent, ErrorCode, UuidIds, now};

pub(crate) async fn run(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let interval = Duration::from_millis(engine.inner.config.sync_interval_ms.max(100));
    let mut last = None;
    let mut checked = HashMap::new();
    let mut printer_checked: Option<Instant> = None;
    let mut terminal_checked: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        refresh(&engine, &mut last).await;
        renew_locks(&engine).await;
        pick_up_receipts(&engine, &mut checked).await;
        watch_printer(&engine, &mut printer_checked).await;
        if terminal_checked.is_none_or(|t: Instant| t.elapsed() >= TERMINAL_CHECK) {
            terminal_checked = Some(Instant::now());
            // Connection state is recorded by `terminal`; an unreachable Finix shows as offline.
            let _ = engine.terminal().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = engine.inner.sync_kick.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Refreshes the order list; tells the screens when it changed.
async fn refresh(engine: &Engine, last: &mut Option<Vec<OrderSummary>>) {
    match engine.fetch_orders().await {
        Ok(list) => {
            engine.set_online(true, None);
            if last.as_ref() != Some(&list) {
                let _ = engine.inner.events.send(EngineEvent::OrdersChanged { orders: list.clone() });
                *last = Some(list);
            }
        }
        Err(e) if e.code == ErrorCode::Offline => engine.set_online(false, Some(e.message)),
        Err(e) => {
            // Answered, but refused: online, with a problem the manager must fix.
            tracing::error!(error = %e, "Token X refused the order list");
            engine.set_online(true, None);
        }
    }
}

/// How often the card terminal's connection is checked.
const TERMINAL_CHECK: Duration = Duration::from_secs(30);

/// While the printer reports a problem, it is asked this often whether it is back.
const PRINTER_CHECK: Duration = Duration::from_secs(2);

/// When a printer problem was reported, asks the printer whether it is back; once it is, the
/// problem is cleared and the slips waiting for it print at once.
async fn watch_printer(engine: &Engine, last: &mut Option<Instant>) {
    if engine.status().printer_problem.is_none() || last.is_some_and(|t| t.elapsed() < PRINTER_CHECK) {
        return;
    }
    *last = Some(Instant::now());
    match engine.printer_status().await {
        Ok(Some(st)) if st.can_print() => {
            engine.set_printer_problem(None);
            let _ = engine.retry_printer().await;
        }
        Ok(Some(st)) => engine.set_printer_problem(Some(format!("Printer: {}", st.describe()))),
        Ok(None) => {}
        Err(e) => engine.set_printer_problem(Some(format!("Printer: {}", e.message))),
    }
}

/// Renew a lock this long before it lapses, while the customer is still paying.
const RENEW_BEFORE: time::Duration = time::Duration::seconds(60);

/// Keeps the locks of sales that are paying from lapsing: a card payment can outlast a lock.
async fn renew_locks(engine: &Engine) {
    let holding = [SaleState::Paying, SaleState::Tendering, SaleState::Voiding, SaleState::NeedsAttention];
    let Ok(paying) = engine.db(move |s| Ok(s.sales_in(&holding)?)).await else { return };
    for sale in paying {
        let (Some(lock), Some(order_id)) = (sale.lock.clone(), sale.basket.pump_order_id()) else { continue };
        if lock.expires_at - now() > RENEW_BEFORE {
            continue;
        }
        let request = UuidIds.next_id();
        match engine.inner.tokenx.lock(order_id, &request, Some(&lock.lock_id)).await {
            Ok(l) => {
                let (oid, lid, at) = (order_id.to_string(), l.lock_id.clone(), now());
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
async fn pick_up_receipts(engine: &Engine, checked: &mut HashMap<String, Instant>) {
    let waiting = match engine.db(|s| Ok(s.sales_in(&[SaleState::Paid, SaleState::Reported])?)).await {
        Ok(w) => w,
        Err(_) => return,
    };
    checked.retain(|id, _| waiting.iter().any(|s| &s.id.0 == id));
    let listed: HashMap<String, OrderStatus> = match engine.orders().await {
        Ok(list) => list.into_iter().map(|o| (o.order_id, o.status)).collect(),
        Err(_) => return,
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
        let Ok(order) = engine.inner.tokenx.order(&order_id).await else { continue };
        let Some(receipt) = order.receipt.clone() else { continue };
        let at = now();
        let _ = engine.db(move |s| Ok(s.write(|tx| tx.put_order(&order, at))?)).await;
        if let Err(e) = engine.apply(&sale.id.0, SaleEvent::ReceiptIssued { receipt }).await {
            tracing::warn!(sale = %sale.id, error = %e, "could not record the pump receipt");
        }
    }
}
