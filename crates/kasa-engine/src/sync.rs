//! Order sync: keeps the cached order list fresh, tells online from offline, and picks up the
//! pump's receipt for paid sales.

use std::time::Duration;

use kasa_core::{OrderStatus, SaleEvent, SaleState};

use kasa_core::IdSource;

use crate::{Engine, EngineEvent, UuidIds, now};

pub(crate) async fn run(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let interval = Duration::from_millis(engine.inner.config.sync_interval_ms.max(100));
    let mut first = true;
    loop {
        if *shutdown.borrow() {
            break;
        }
        refresh(&engine, &mut first).await;
        renew_locks(&engine).await;
        pick_up_receipts(&engine).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = engine.inner.sync_kick.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn refresh(engine: &Engine, first: &mut bool) {
    match engine.inner.tokenx.summary().await {
        Ok(list) => {
            engine.set_online(true, None);
            let at = now();
            let changed = engine.db(move |s| Ok(s.write(|tx| tx.upsert_order_summaries(&list, at))?)).await;
            match changed {
                Ok(n) if n > 0 || *first => {
                    *first = false;
                    if let Ok(orders) = engine.orders().await {
                        let _ = engine.inner.events.send(EngineEvent::OrdersChanged { orders });
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "storing the order list failed"),
            }
        }
        Err(e) => {
            if e.is_transient() {
                engine.set_online(false, Some(e.to_string()));
            } else {
                // Answered, but refused: online, with a problem the manager must fix.
                tracing::error!(error = %e, "Token X refused the order list");
                engine.set_online(true, None);
            }
        }
    }
}

/// Renew a lock this long before it lapses, while the customer is still paying.
const RENEW_BEFORE: time::Duration = time::Duration::seconds(60);

/// Keeps the locks of sales that are paying from lapsing: a card payment can outlast a lock.
async fn renew_locks(engine: &Engine) {
    let Ok(paying) = engine.db(|s| Ok(s.sales_in(&[SaleState::Paying])?)).await else { return };
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

/// For sales paid for a pump order, reads the order once the cloud lists it completed and
/// stores the pump's receipt with the sale.
async fn pick_up_receipts(engine: &Engine) {
    let waiting = match engine.db(|s| Ok(s.sales_in(&[SaleState::Paid, SaleState::Reported])?)).await {
        Ok(w) => w,
        Err(_) => return,
    };
    for sale in waiting {
        let Some(order_id) = sale.basket.pump_order_id().map(str::to_string) else { continue };
        let oid = order_id.clone();
        let listed = engine.db(move |s| Ok(s.orders(500)?.into_iter().find(|o| o.order_id == oid))).await;
        if !matches!(listed, Ok(Some(ref o)) if o.status == OrderStatus::Completed) {
            continue;
        }
        let Ok(order) = engine.inner.tokenx.order(&order_id).await else { continue };
        let Some(receipt) = order.receipt.clone() else { continue };
        let at = now();
        let _ = engine.db(move |s| Ok(s.write(|tx| tx.put_order(&order, at))?)).await;
        if let Err(e) = engine.apply(&sale.id.0, SaleEvent::ReceiptIssued { receipt }).await {
            tracing::warn!(sale = %sale.id, error = %e, "could not record the pump receipt");
        }
    }
}
