//! The people in the store: a cashier at each register selling pump orders and shop baskets,
//! customers who pay by card, cash, MobilePay or Settle (and sometimes change their mind or walk
//! away), and a manager who refunds, voids and, when the day ends, clears what the queue held
//! back. Every choice of sale `k` is drawn from a generator seeded by the run's seed and `k`, so
//! taking a fault away changes what happens to a sale, not what the cashier set out to do.

use std::sync::Arc;
use std::time::Duration;

use kasa_core::{MethodKind, Money, PayMethod, SaleState};
use kasa_engine::{Engine, ErrorCode, SaleView};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::world::World;

/// The manager's PIN in every simulated store.
pub(crate) const PIN: &str = "482916";

/// A manager session for one privileged step (the manager logs in for it, as at the counter).
pub(crate) async fn manager(engine: &Engine) -> String {
    engine.manager_login(PIN).await.map(|s| s.token).unwrap_or_default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(6)..]
}

/// A cashier's shift on one life of register `r`: first what a restart left, then sales until
/// the day's number is sold.
pub(crate) async fn shift(world: Arc<World>, r: usize, engine: Engine) {
    tidy(&world, r, &engine, false).await;
    while let Some(k) = world.take_sale() {
        let mut rng = StdRng::seed_from_u64(world.opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k as u64));
        sell(&world, r, &engine, k, &mut rng).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..3_000))).await;
    }
    world.set_selling(r, false);
}

/// Sells sale `k`.
async fn sell(world: &World, r: usize, engine: &Engine, k: usize, rng: &mut StdRng) {
    let pump = rng.random_bool(0.7);
    let opened = if pump {
        let order = world.pick_order(rng);
        engine.open_order_sale(&order).await
    } else {
        match engine.open_shop_sale().await {
            Ok(s) => {
                let catalog = engine.catalog();
                let mut last = Ok(s);
                for _ in 0..rng.random_range(1..4) {
                    let item = &catalog[rng.random_range(0..catalog.len())];
                    last =
                        engine.add_item(&last.as_ref().map(|s| s.id.clone()).unwrap_or_default(), &item.sku, 1).await;
                    if last.is_err() {
                        break;
                    }
                }
                last
            }
            Err(e) => Err(e),
        }
    };
    let sale = match opened {
        Ok(s) => s,
        Err(e) => {
            world.log(&format!("r{r} #{k} could not open ({:?}): {}", e.code, e.message));
            world.count("sale could not be opened");
            return;
        }
    };
    world.count("sales opened");
    world.log(&format!(
        "r{r} #{k} opened {} {} for {}",
        short(&sale.id),
        sale.order_id.as_deref().unwrap_or("shop"),
        sale.total.minor
    ));
    if sale.is_paid {
        return;
    }
    if rng.random_bool(0.03) {
        let done = engine.cancel_sale(&sale.id).await;
        world.log(&format!("r{r} #{k} customer changed their mind: {}", done.is_ok()));
        world.count("sales the customer called off");
        return;
    }
    let split = rng.random_bool(0.12) && sale.total.minor >= 200;
    let mut tries = 0;
    loop {
        let Ok(view) = engine.sale_view(&sale.id).await else { return };
        if view.is_paid {
            world.count("sales paid");
            after_paid(world, r, engine, k, rng, &view).await;
            return;
        }
        match view.state {
            SaleState::Cancelled => return,
            SaleState::NeedsAttention => {
                world.log(&format!("r{r} #{k} held for the manager"));
                world.count("sales held for the manager");
                return;
            }
            _ if view.busy => {
                wait(world, r, k, engine, &view.id, secs(180)).await;
                continue;
            }
            _ => {}
        }
        tries += 1;
        if tries > 4 {
            give_up(world, r, engine, k, &view).await;
            return;
        }
        let part =
            (split && view.payments.is_empty()).then(|| Money::new(view.remaining.minor / 2, view.total.currency));
        let amount = part.unwrap_or(view.remaining);
        let method = choose(rng, &engine.methods(), amount);
        if matches!(method, PayMethod::Card) && rng.random_bool(0.03) {
            world.sandbox.finix.push_card(kasa_sim::CardScript::WaitForCancel);
            world.log(&format!("r{r} #{k} the customer will walk away from the terminal"));
        }
        match engine.pay_part(&view.id, method.clone(), part).await {
            Ok(v) => {
                world.log(&format!("r{r} #{k} pays {} by {:?}", amount.minor, method.kind()));
                customer(world, rng, &method, &v);
                wait(world, r, k, engine, &v.id, secs(150)).await;
            }
            Err(e) => {
                world.log(&format!("r{r} #{k} pay refused ({:?}): {}", e.code, e.message));
                if e.code == ErrorCode::NotFound {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..8_000))).await;
            }
        }
    }
}

/// Picks how the customer pays, among what the register offers now.
fn choose(rng: &mut StdRng, offered: &[MethodKind], amount: Money) -> PayMethod {
    let weights =
        [(MethodKind::Card, 45), (MethodKind::Cash, 25), (MethodKind::MobilePay, 15), (MethodKind::Settle, 15)];
    let open: Vec<(MethodKind, u32)> = weights.into_iter().filter(|(m, _)| offered.contains(m)).collect();
    let total: u32 = open.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    let mut kind = MethodKind::Cash;
    for (m, w) in open {
        if roll < w {
            kind = m;
            break;
        }
        roll -= w;
    }
    match kind {
        MethodKind::Card => PayMethod::Card,
        MethodKind::MobilePay => PayMethod::MobilePay,
        MethodKind::Settle => PayMethod::Settle,
        MethodKind::Cash => {
            let round = 10_i64.pow(amount.currency.exponent()) * 10;
            let tendered = if rng.random_bool(0.5) { amount.minor } else { (amount.minor / round + 1) * round };
            PayMethod::Cash { tendered: Money::new(tendered, amount.currency) }
        }
    }
}

/// The customer of an app or QR payment, on their phone: acts on the sandbox alone, so a
/// register that crashes meanwhile doesn't stop them.
fn customer(world: &World, rng: &mut StdRng, method: &PayMethod, view: &SaleView) {
    let think = Duration::from_millis(rng.random_range(500..6_000));
    let roll: f64 = rng.random();
    let sandbox = world.sandbox.clone();
    match method {
        PayMethod::MobilePay => {
            let terminal = crate::world::MOBILEPAY_TERMINAL.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(think).await;
                for _ in 0..40 {
                    if let Some(payment) = sandbox.mobilepay.active_payment(&terminal) {
                        let _ = sandbox.mobilepay.check_in(&terminal);
                        let _ = if roll < 0.82 {
                            sandbox.mobilepay.approve(&payment)
                        } else if roll < 0.92 {
                            sandbox.mobilepay.reject(&payment)
                        } else {
                            sandbox.mobilepay.expire(&payment)
                        };
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
        }
        PayMethod::Settle => {
            let Some(pos_tid) = view.attempt.as_ref().and_then(|a| a.qr.as_deref()).and_then(|q| q.rsplit('/').next())
            else {
                return;
            };
            let pos_tid = pos_tid.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(think).await;
                if roll >= 0.95 {
                    return; // never scans
                }
                for _ in 0..10 {
                    if sandbox.settle.scan(&pos_tid).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Some(tid) = sandbox.settle.tid_of(&pos_tid) {
                        tokio::time::sleep(think).await;
                        if roll < 0.82 {
                            sandbox.settle.approve(&tid)
                        } else if roll < 0.9 {
                            sandbox.settle.reject(&tid)
                        } else {
                            sandbox.settle.expire(&tid)
                        }
                        return;
                    }
                }
            });
        }
        _ => {}
    }
}

/// Waits for the payment under way; a cashier whose customer walked away cancels it.
async fn wait(world: &World, r: usize, k: usize, engine: &Engine, id: &str, patience: Duration) {
    let Ok(v) = engine.wait_settled(id, patience).await else { return };
    if v.busy && v.state == SaleState::Paying {
        let cancelled = engine.cancel_payment(id).await;
        world.log(&format!("r{r} #{k} cashier cancels the payment: {}", cancelled.is_ok()));
        world.count("payments cancelled by the cashier");
        let _ = engine.wait_settled(id, secs(60)).await;
    }
    if let Ok(v) = engine.sale_view(id).await {
        let notice = v.notice.as_ref().map(|n| n.code.as_str()).unwrap_or("-");
        world.log(&format!("r{r} #{k} now {:?} (paid {}, notice {notice})", v.state, v.paid.minor));
        if v.state == SaleState::Open && notice != "-" {
            world.count("payments declined or failed");
        }
    }
}

/// Gives a refund now and then, as a manager would for a returned article.
async fn after_paid(world: &World, r: usize, engine: &Engine, k: usize, rng: &mut StdRng, view: &SaleView) {
    if !rng.random_bool(0.06) || view.refundable.is_empty() {
        return;
    }
    let i = rng.random_range(0..view.refundable.len());
    let can = view.refundable[i];
    if can.minor <= 0 {
        return;
    }
    let amount = if rng.random_bool(0.5) { can } else { Money::new((can.minor / 2).max(1), can.currency) };
    match engine.refund(&view.id, i as u32, amount, &manager(engine).await, "returned by the customer").await {
        Ok(_) => {
            world.log(&format!("r{r} #{k} refund of {} asked", amount.minor));
            world.count("refunds asked");
            let _ = engine.wait_settled(&view.id, secs(180)).await;
        }
        Err(e) => world.log(&format!("r{r} #{k} refund refused ({:?}): {}", e.code, e.message)),
    }
}

/// The cashier stops trying: a sale with nothing paid is cancelled, a part-paid one voided by
/// the manager (which gives the part back).
async fn give_up(world: &World, r: usize, engine: &Engine, k: usize, view: &SaleView) {
    if view.payments.is_empty() {
        let done = engine.cancel_sale(&view.id).await;
        world.log(&format!("r{r} #{k} given up, cancelled: {}", done.is_ok()));
        world.count("sales given up");
    } else {
        let done = engine.void_sale(&view.id, &manager(engine).await).await;
        world.log(&format!("r{r} #{k} given up, voided: {}", done.is_ok()));
        world.count("sales voided");
        let _ = engine.wait_settled(&view.id, secs(180)).await;
    }
}

/// What a cashier does with sales a restart or the day left unfinished: waits out those still
/// busy, cancels open ones, pays what is left of part-paid ones in cash; at the end of the day
/// (`closing`) the manager also retries what the queue parked.
pub(crate) async fn tidy(world: &World, r: usize, engine: &Engine, closing: bool) {
    let unfinished = [
        SaleState::Open,
        SaleState::Locking,
        SaleState::Paying,
        SaleState::Tendering,
        SaleState::Voiding,
        SaleState::NeedsAttention,
    ];
    let Ok(sales) = engine.store().sales_in(&unfinished) else { return };
    for s in sales {
        let id = s.id.0.clone();
        let Ok(view) = engine.wait_settled(&id, secs(300)).await else { continue };
        match view.state {
            SaleState::Open => {
                let _ = engine.cancel_sale(&id).await;
                world.log(&format!("r{r} tidy: cancelled open sale {}", short(&id)));
            }
            SaleState::Tendering => {
                let rest = view.remaining;
                let paid = engine.pay(&id, PayMethod::Cash { tendered: rest }).await;
                world.log(&format!("r{r} tidy: rest of {} paid in cash: {}", short(&id), paid.is_ok()));
                let _ = engine.wait_settled(&id, secs(60)).await;
            }
            SaleState::NeedsAttention if closing => {
                world.log(&format!("r{r} tidy: sale {} is held for the manager", short(&id)));
            }
            _ => {}
        }
    }
    if closing && let Ok(queue) = engine.queue(&manager(engine).await, 1_000).await {
        for item in queue.iter().filter(|i| i.state == "parked" && taken_over(i)) {
            give_back(world, r, engine, item).await;
        }
        for item in queue.iter().filter(|i| i.state == "parked" && i.kind == "card_lookup") {
            // A card sale too old to ask the customer again, with no final transfer found: the
            // manager looks at the Finix dashboard, as the parked message says to.
            let charged = world.sandbox.finix.transfers().iter().any(|t| {
                t["tags"]["sale_id"].as_str() == item.sale_id.as_deref()
                    && t["state"] != "FAILED"
                    && t["state"] != "CANCELED"
            });
            if !charged {
                let done =
                    engine.discard(item.id, &manager(engine).await, "no such card sale on the Finix dashboard").await;
                world.log(&format!(
                    "r{r} tidy: nothing on the dashboard, discarded lookup {}: {}",
                    item.id,
                    done.is_ok()
                ));
                world.count("card lookups discarded by the manager after checking the dashboard");
            }
        }
        let Ok(queue) = engine.queue(&manager(engine).await, 1_000).await else { return };
        for item in queue.into_iter().filter(|i| i.state == "parked" && !taken_over(i)) {
            let retried = engine.retry_now(item.id, Some(&manager(engine).await)).await;
            world.log(&format!("r{r} tidy: manager retries parked {} ({}): {}", item.id, item.kind, retried.is_ok()));
        }
    }
}

/// Whether a parked message is a payment report the cloud refused because another register
/// sold the order after this one's lock lapsed.
pub(crate) fn taken_over(item: &kasa_engine::manager::QueueItem) -> bool {
    item.kind == "tokenx_payment"
        && item.last_error.as_deref().is_some_and(|e| e.contains(kasa_engine::providers::tokenx::LOCK_LAPSED))
}

/// A report refused because another register sold the order meanwhile is not retried: the
/// manager reads its reason, gives this customer's money back and discards the report.
async fn give_back(world: &World, r: usize, engine: &Engine, item: &kasa_engine::manager::QueueItem) {
    let Some(id) = item.sale_id.clone() else { return };
    // The manager looks the order up in the Token X portal first: only an order another
    // register reported is given back; anything else stays parked for a closer look.
    let Ok(sale) = engine.sale(&id).await else { return };
    let Some(order) = sale.basket.pump_order_id() else { return };
    let reporter = world.sandbox.tokenx.payment_of(order).and_then(|p| p["terminalId"].as_str().map(str::to_string));
    if reporter.is_none() || reporter.as_deref() == Some(world.slots[r].terminal.as_str()) {
        world.log(&format!("r{r} tidy: report {} refused, but no other register paid the order", item.id));
        return;
    }
    let Ok(view) = engine.wait_settled(&id, secs(60)).await else { return };
    for (i, amount) in view.refundable.iter().enumerate() {
        if amount.minor > 0 {
            let done = engine
                .refund(&id, i as u32, *amount, &manager(engine).await, "the order was paid at another register")
                .await;
            world.log(&format!(
                "r{r} tidy: gave back {} of {} (order taken over): {}",
                amount.minor,
                short(&id),
                done.is_ok()
            ));
        }
    }
    let discarded = engine
        .discard(item.id, &manager(engine).await, "the order was paid at another register; money given back")
        .await;
    world.log(&format!("r{r} tidy: discarded the refused report {}: {}", item.id, discarded.is_ok()));
    world.count("orders taken over after a lapsed lock, given back");
}
