//! The register's sale steps: opening a sale for a pump order or for shop articles, adding
//! articles, taking payment (in parts, by any method set up), cancelling, voiding, refunding,
//! and waiting for a sale to settle. Each step is one transaction through [`Engine::apply`].

use std::time::Duration;

use kasa_core::{
    Basket, Money, OrderStatus, OrderSummary, PayMethod, PumpOrder, Sale, SaleEvent, SaleId, SaleState, ShopItem,
};
use kasa_store::StoreError;

use crate::failpoint::failpoint;
use crate::providers;
use crate::{ApiError, Engine, EngineEvent, ErrorCode, SaleView, StepError, connect_error, dto, persist};

/// How long an unchanged listing may go unwritten.
const LISTING_REWRITE: time::Duration = time::Duration::seconds(60);

impl Engine {
    /// Cached orders, newest first (shown even offline).
    pub async fn orders(&self) -> Result<Vec<OrderSummary>, ApiError> {
        self.db(|s| Ok(s.orders(200)?)).await
    }

    /// Fetches the order list from the cloud now, caches it and returns it (newest first).
    pub async fn fetch_orders(&self) -> Result<Vec<OrderSummary>, ApiError> {
        let mut list = self.inner.providers.tokenx.summary().await.map_err(|e| connect_error(&e))?;
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.order_id.cmp(&b.order_id)));
        let at = self.now();
        // The same listing as the one stored a moment ago is not written again: the cached list
        // is already this, and the stored time of the listing (only read after a restart) may lag
        // a little behind, which shows the list older than it is, never fresher.
        let (unchanged, changed) = {
            let stored = self.inner.stored_listing.lock().unwrap_or_else(|e| e.into_inner());
            let unchanged = stored.as_ref().is_some_and(|(l, when)| *l == list && at - *when < LISTING_REWRITE);
            // Only the orders that differ from the stored listing are written again.
            let changed: Vec<OrderSummary> = match stored.as_ref() {
                Some((l, _)) => list.iter().filter(|o| !l.contains(o)).cloned().collect(),
                None => list.clone(),
            };
            (unchanged, changed)
        };
        if !unchanged {
            let stored = list.clone();
            // A cache of the cloud's list: it need not wait for the disk.
            self.db(move |s| Ok(s.write_without_sync(|tx| tx.record_listing(&changed, &stored, at))?)).await?;
            *self.inner.stored_listing.lock().unwrap_or_else(|e| e.into_inner()) = Some((list.clone(), at));
        }
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).orders_listed_at = Some(at);
        Ok(list)
    }

    /// Asks order sync to refresh now.
    pub fn refresh_orders(&self) {
        self.inner.sync_kick.notify_one();
    }

    /// Fetches an order from the cloud directly (for the CLI's `orders` listing).
    pub async fn fetch_order(&self, order_id: &str) -> Result<PumpOrder, ApiError> {
        self.inner.providers.tokenx.order(order_id).await.map_err(|e| connect_error(&e))
    }

    /// The shop articles the cashier can add.
    pub fn catalog(&self) -> &[ShopItem] {
        &self.inner.catalog
    }

    /// Opens a sale for a pump order, or returns the sale already under way for it.
    pub async fn open_order_sale(&self, order_id: &str) -> Result<SaleView, ApiError> {
        let id = order_id.to_string();
        let existing = self.db(move |s| Ok(s.live_sale_of_order(&id)?)).await?;
        if let Some(sale) = existing
            && sale.state != SaleState::Completed
        {
            return Ok(self.view(&sale));
        }
        let order = match self.inner.providers.tokenx.order(order_id).await {
            Ok(o) => {
                let at = self.now();
                let o2 = o.clone();
                self.db(move |s| Ok(s.write_without_sync(|tx| tx.put_order(&o2, at))?)).await?;
                o
            }
            Err(e) if e.status() == Some(404) => {
                return Err(ApiError::new(
                    ErrorCode::NotFound,
                    format!("order {order_id} is not in the cloud any more"),
                ));
            }
            Err(e) if e.is_transient() => {
                let id = order_id.to_string();
                self.db(move |s| Ok(s.order(&id)?)).await?.ok_or_else(|| connect_error(&e))?
            }
            Err(e) => return Err(connect_error(&e)),
        };
        match order.status {
            OrderStatus::Paid | OrderStatus::Completed => {
                return Err(ApiError::new(ErrorCode::Refused, "This order is already paid.".to_string()));
            }
            OrderStatus::Cancelled => {
                return Err(ApiError::new(ErrorCode::Refused, "This order was cancelled at the pump.".to_string()));
            }
            OrderStatus::Open | OrderStatus::Locked => {}
        }
        // Trust nothing unchecked: an amount that is not litres × unit price is not sold.
        order.check().map_err(|problem| {
            ApiError::new(
                ErrorCode::Refused,
                format!(
                    "Order {order_id} can't be paid here: {problem}. Ask the attendant to check the pump's sale, \
                     or take payment at the pump."
                ),
            )
        })?;
        self.open_sale(Basket::for_order(&order)).await
    }

    /// Opens a sale with no pump order, for shop articles.
    pub async fn open_shop_sale(&self) -> Result<SaleView, ApiError> {
        let currency = self.inner.config.currency().map_err(|e| ApiError::new(ErrorCode::Setup, e.to_string()))?;
        self.open_sale(Basket::new(currency)).await
    }

    pub(crate) async fn open_sale(&self, basket: Basket) -> Result<SaleView, ApiError> {
        let at = self.now();
        let mut sale = Sale::new(SaleId(self.env().next_id()), basket, at);
        // Its receipts are signed where this register fiscalizes, whatever happens to the
        // configuration before it is paid.
        sale.fiscalize = self.inner.providers.fiscal.is_some();
        let s2 = sale.clone();
        // Nothing is paid or sent yet: the sale's first step with money (pay) waits for the disk,
        // and takes this one with it.
        self.db(move |s| {
            s.write_without_sync(|tx| -> Result<(), StoreError> {
                tx.put_sale(&s2)?;
                tx.append_journal(&s2.opened_record(), at)?;
                Ok(())
            })?;
            Ok(())
        })
        .await?;
        self.after_change(&sale, false);
        Ok(self.view(&sale))
    }

    /// Adds a catalog article by SKU (barcode).
    pub async fn add_item(&self, sale_id: &str, sku: &str, quantity: u32) -> Result<SaleView, ApiError> {
        let item = self
            .inner
            .catalog
            .iter()
            .find(|i| i.sku == sku)
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no article with barcode {sku}")))?;
        let sale = self.apply(sale_id, SaleEvent::ItemAdded { item, quantity }).await?;
        Ok(self.view(&sale))
    }

    /// Names the business a sale is invoiced to (a B2B invoice at the fiscal middleware), or
    /// clears it; while the basket is open.
    pub async fn set_customer(
        &self,
        sale_id: &str,
        customer: Option<kasa_core::BusinessCustomer>,
    ) -> Result<SaleView, ApiError> {
        let sale = self.apply(sale_id, SaleEvent::CustomerSet { customer }).await?;
        Ok(self.view(&sale))
    }

    /// Starts taking payment of the whole remainder. Returns at once with the sale locking or
    /// paying (or done, for cash without a pump order); follow it with
    /// [`Engine::wait_settled`] or the events.
    pub async fn pay(&self, sale_id: &str, method: PayMethod) -> Result<SaleView, ApiError> {
        self.pay_part(sale_id, method, None).await
    }

    /// Starts taking payment of `amount` of what is left (a split payment), or all of it.
    pub async fn pay_part(
        &self,
        sale_id: &str,
        method: PayMethod,
        amount: Option<Money>,
    ) -> Result<SaleView, ApiError> {
        if !self.methods().contains(&method.kind()) {
            return Err(ApiError::new(ErrorCode::Setup, "This payment method is not set up on this register."));
        }
        let sale = self.apply(sale_id, SaleEvent::PayRequested { method, amount }).await?;
        Ok(self.view(&sale))
    }

    /// Cancels the payment attempt under way (card at the terminal, app or QR payment). The
    /// sale goes back to waiting for payment when the provider confirms; no money is taken.
    pub async fn cancel_payment(&self, sale_id: &str) -> Result<(), ApiError> {
        let sale = self.sale(sale_id).await?;
        let attempt = match (&sale.attempt, sale.state) {
            (Some(a), SaleState::Paying) => a.clone(),
            _ => return Err(ApiError::new(ErrorCode::InvalidState, "There is no payment under way to cancel.")),
        };
        providers::cancel(self, &attempt).await
    }

    /// Abandons an open sale. A partly paid one is voided by a manager ([`Engine::void_sale`]).
    pub async fn cancel_sale(&self, sale_id: &str) -> Result<SaleView, ApiError> {
        // Checked in the transaction that cancels: a payment finishing meanwhile can't slip by.
        let only_open = |sale: &Sale| match sale.state {
            SaleState::Tendering | SaleState::NeedsAttention => Err(ApiError::new(
                ErrorCode::InvalidState,
                "Money was taken for this sale: a manager voids it with the PIN, which gives it back.",
            )),
            _ => Ok(()),
        };
        let sale = self.apply_checked(sale_id, SaleEvent::CancelRequested, only_open).await?;
        Ok(self.view(&sale))
    }

    /// Voids a partly paid sale (manager session): every paid part is given back through its
    /// method, then the pump order is released and the sale cancelled.
    pub async fn void_sale(&self, sale_id: &str, session: &str) -> Result<SaleView, ApiError> {
        self.authorize(session).await?;
        let sale = self.apply(sale_id, SaleEvent::CancelRequested).await?;
        Ok(self.view(&sale))
    }

    /// Gives back `amount` of payment `payment` of a paid sale, through the method it was paid
    /// by (manager session). Never more than the payment took.
    pub async fn refund(
        &self,
        sale_id: &str,
        payment: u32,
        amount: Money,
        session: &str,
        reason: &str,
    ) -> Result<SaleView, ApiError> {
        if reason.trim().len() < 3 {
            return Err(ApiError::new(ErrorCode::BadInput, "Say why the money is given back."));
        }
        self.authorize(session).await?;
        let event = SaleEvent::RefundRequested { payment, amount, reason: reason.trim().to_string() };
        let sale = self.apply(sale_id, event).await?;
        Ok(self.view(&sale))
    }

    /// The newest sales, newest first (for the manager's sales list).
    pub async fn recent_sales(&self, session: &str, limit: u32) -> Result<Vec<SaleView>, ApiError> {
        self.authorize(session).await?;
        let sales = self.db(move |s| Ok(s.recent_sales(limit)?)).await?;
        Ok(sales.iter().map(|s| self.view(s)).collect())
    }

    /// One sale.
    pub async fn sale(&self, sale_id: &str) -> Result<Sale, ApiError> {
        let id = sale_id.to_string();
        self.db(move |s| s.sale(&id)?.ok_or_else(|| StepError::Store(StoreError::NotFound(format!("sale {id}"))))).await
    }

    /// The view of one sale.
    pub async fn sale_view(&self, sale_id: &str) -> Result<SaleView, ApiError> {
        Ok(self.view(&self.sale(sale_id).await?))
    }

    /// Waits until the sale is not waiting on the cloud or the terminal, or the timeout passes.
    pub async fn wait_settled(&self, sale_id: &str, timeout: Duration) -> Result<SaleView, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.get_and_update();
            let sale = self.sale(sale_id).await?;
            if !sale.state.is_busy() || tokio::time::Instant::now() >= deadline {
                return Ok(self.view(&sale));
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Waits until the sale reaches `state`, or the timeout passes; returns the sale.
    pub async fn wait_for_state(&self, sale_id: &str, state: SaleState, timeout: Duration) -> Result<Sale, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.get_and_update();
            let sale = self.sale(sale_id).await?;
            if sale.state == state || tokio::time::Instant::now() >= deadline {
                return Ok(sale);
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Applies one event to a sale in one transaction and wakes whoever must act on it.
    pub(crate) async fn apply(&self, sale_id: &str, event: SaleEvent) -> Result<Sale, ApiError> {
        self.apply_checked(sale_id, event, |_| Ok(())).await
    }

    /// Like [`Engine::apply`], after `check` accepted the sale as it is inside the transaction.
    pub(crate) async fn apply_checked(
        &self,
        sale_id: &str,
        event: SaleEvent,
        check: impl FnOnce(&Sale) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<Sale, ApiError> {
        let id = sale_id.to_string();
        let at = self.now();
        let env = self.env().clone();
        let (sale, queued) = self
            .db(move |s| {
                s.write(|tx| -> Result<(Sale, bool), StepError> {
                    let mut sale = tx.sale(&id)?;
                    check(&sale).map_err(StepError::Api)?;
                    let t = sale.handle(event, at, &mut env.ids())?;
                    persist(tx, &sale, &t, at)?;
                    failpoint!(&env, "step.before_commit");
                    Ok((sale, !t.ops.is_empty()))
                })
            })
            .await?;
        failpoint!(self.env(), "step.after_commit");
        self.after_change(&sale, queued);
        Ok(sale)
    }

    pub(crate) fn after_change(&self, sale: &Sale, queued: bool) {
        if queued {
            self.inner.dispatch_kick.notify_one();
        }
        self.inner.changes.send_modify(|n| *n += 1);
        let _ = self.inner.events.send(EngineEvent::SaleChanged { sale: Box::new(self.view(sale)) });
    }

    pub(crate) fn view(&self, sale: &Sale) -> SaleView {
        let slip = sale.state.is_paid().then(|| self.slip_text(sale)).flatten();
        let mut view = SaleView::new(sale, slip);
        if let (Some(a), Some(v)) = (&sale.attempt, &mut view.attempt) {
            v.qr = providers::qr(self, a);
            v.qr_svg = v.qr.as_deref().and_then(dto::qr_svg);
        }
        view
    }
}
