//! The sale's transitions, one small step per event, and the moves they share.

use time::OffsetDateTime;

use crate::IdSource;
use crate::basket::ShopItem;
use crate::fiscal::{BusinessCustomer, FiscalDoc, FiscalReceipt, FiscalSignature, FiscalState};
use crate::money::Money;
use crate::op::{Op, Queued};
use crate::order::ReceiptInfo;
use crate::payment::{MethodKind, PayMethod, Payment, PaymentKind, Refund, RefundState, ReportedPayment};

use super::{Attempt, HeldLock, Notice, NoticeLevel, Sale, SaleError, SaleState};

fn invalid<T>(state: SaleState, what: &'static str) -> Result<T, SaleError> {
    Err(SaleError::InvalidState { state, what })
}

impl Sale {
    /// The cashier asks for (a part of) the payment: lock the pump order first, or start the attempt.
    pub(super) fn on_pay_requested(
        &mut self,
        method: &PayMethod,
        amount: &Option<Money>,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if !matches!(self.state, SaleState::Open | SaleState::Tendering) {
            return invalid(self.state, "starting a payment");
        }
        if self.basket.lines.is_empty() {
            return Err(SaleError::EmptyBasket);
        }
        let remaining = self.remaining()?;
        let part = amount.unwrap_or(remaining);
        if part.minor <= 0 || part.checked_sub(remaining)?.minor > 0 {
            return Err(SaleError::BadPart { amount: part, remaining });
        }
        if let PayMethod::Cash { tendered } = method
            && tendered.checked_sub(part)?.minor < 0
        {
            return Err(SaleError::InsufficientCash { tendered: *tendered, total: part });
        }
        self.attempts += 1;
        self.attempt = Some(Attempt { method: method.clone(), amount: part, reference: None, provider_ref: None });
        self.notice = None;
        match (self.basket.pump_order_id(), &self.lock) {
            (Some(order_id), None) => {
                self.state = SaleState::Locking;
                let order_id = order_id.to_string();
                Ok(vec![queue(ids, Op::TokenxLock { order_id })])
            }
            _ => self.start_attempt(ids),
        }
    }

    /// The cloud locked the order: start the attempt (or give back a lock nobody waits for).
    pub(super) fn on_lock_granted(
        &mut self,
        lock_id: &str,
        expires_at: &OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Locking {
            // The lock outlived the attempt that asked for it: give it back at once.
            let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
            return Ok(vec![queue(ids, Op::TokenxUnlock { order_id, lock_id: lock_id.to_string() })]);
        }
        self.lock = Some(HeldLock { lock_id: lock_id.to_string(), expires_at: *expires_at });
        self.start_attempt(ids)
    }

    /// The cloud extended the lock held while money is under way.
    pub(super) fn on_lock_renewed(&mut self, expires_at: &OffsetDateTime) -> Result<Vec<Queued>, SaleError> {
        match (&mut self.lock, self.state) {
            (Some(lock), SaleState::Paying | SaleState::Tendering | SaleState::NeedsAttention | SaleState::Voiding) => {
                lock.expires_at = *expires_at;
                Ok(Vec::new())
            }
            _ => invalid(self.state, "renewing a lock"),
        }
    }

    /// The cloud refused the lock: back to open, saying why.
    pub(super) fn on_lock_refused(&mut self, code: &str, message: &str) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Locking {
            return invalid(self.state, "a lock refusal");
        }
        self.back_to_open();
        let text = match code {
            "ORDER_LOCKED" => "This order is being paid at another register. Pick another order or wait.".to_string(),
            "ORDER_NOT_OPEN" => "This order is no longer open for payment (paid at the pump or cancelled).".to_string(),
            _ => format!("The cloud refused to lock the order: {message}"),
        };
        self.notice = Some(Notice::warning(code, text));
        Ok(Vec::new())
    }

    /// The cloud could not be reached to lock: back to open, releasing a lock that may exist.
    pub(super) fn on_lock_unavailable(
        &mut self,
        message: &str,
        maybe_locked: &bool,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Locking {
            return invalid(self.state, "a lock failure");
        }
        self.back_to_open();
        self.notice = Some(Notice::warning(
            "OFFLINE",
            format!(
                "Token X cloud unreachable ({message}); a pump order can't be locked offline. \
                 Try again when the register is online."
            ),
        ));
        let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
        Ok(if *maybe_locked { vec![queue(ids, Op::TokenxRelease { order_id })] } else { Vec::new() })
    }

    /// The customer scanned the QR code: ask Settle for the payment.
    pub(super) fn on_settle_scanned(&mut self, token: &str, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let (amount, pos_tid) = self.settle_attempt("a Settle scan")?;
        Ok(vec![queue(ids, Op::SettleRequest { amount, pos_tid, token: token.to_string() })])
    }

    /// Settle took the payment request: follow it.
    pub(super) fn on_settle_requested(&mut self, tid: &str, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let (amount, pos_tid) = self.settle_attempt("a Settle payment request")?;
        if let Some(a) = &mut self.attempt {
            a.provider_ref = Some(tid.to_string());
        }
        Ok(vec![queue(ids, Op::SettleAwait { amount, tid: tid.to_string(), pos_tid: Some(pos_tid) })])
    }

    /// The attempt took the money asked: wait for the rest, or finish.
    pub(super) fn on_payment_approved(
        &mut self,
        payment: &Payment,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if !self.awaits_outcome() {
            return invalid(self.state, "an approved payment");
        }
        self.payments.push(payment.clone());
        self.attempt = None;
        self.after_payment(ids)
    }

    /// The provider took another amount or currency: hold the charge apart for a manager.
    pub(super) fn on_payment_mismatch(&mut self, payment: &Payment) -> Result<Vec<Queued>, SaleError> {
        if !self.awaits_outcome() {
            return invalid(self.state, "a mismatched payment");
        }
        if payment.amount.minor <= 0 {
            return Err(SaleError::Unknown(format!(
                "a charge of {} is no charge to hold",
                payment.amount.display_grouped()
            )));
        }
        let asked = self.attempt.take().map(|a| a.amount);
        self.unexpected.push(payment.clone());
        self.state = SaleState::NeedsAttention;
        let code = match asked {
            Some(a) if a.currency != payment.amount.currency => "CURRENCY_MISMATCH",
            _ => "AMOUNT_MISMATCH",
        };
        let asked = asked.map(|a| a.display_grouped()).unwrap_or_else(|| "another amount".into());
        self.notice = Some(Notice {
            level: NoticeLevel::Error,
            code: code.into(),
            message: format!(
                "The payment service took {} although {asked} was asked. The sale is held: a manager \
                 voids it with the PIN, which gives the money back; then take payment again.",
                payment.amount.display_grouped()
            ),
        });
        Ok(Vec::new())
    }

    /// The outcome could not be found out: hold the sale for a manager, keeping the attempt.
    pub(super) fn on_payment_unresolved(&mut self, reason: &str) -> Result<Vec<Queued>, SaleError> {
        if !self.awaits_outcome() {
            return invalid(self.state, "an unresolved payment");
        }
        let method = self.attempt.as_ref().map(|a| a.method.kind()).unwrap_or(MethodKind::Card);
        self.state = SaleState::NeedsAttention;
        self.notice = Some(Notice {
            level: NoticeLevel::Error,
            code: "UNRESOLVED".into(),
            message: format!(
                "The outcome of the {} payment is not known: {reason}. Do not take payment again: the sale is \
                 held until a manager checks the payment service and retries or discards it in the queue.",
                method_name(method)
            ),
        });
        Ok(Vec::new())
    }

    /// The attempt ended with no money taken: reopen (releasing the order) or wait for the rest.
    pub(super) fn on_payment_declined(
        &mut self,
        code: &str,
        message: &str,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if !self.awaits_outcome() {
            return invalid(self.state, "a declined payment");
        }
        let method = self.attempt.take().map(|a| a.method.kind()).unwrap_or(MethodKind::Card);
        let text = decline_text(method, code, message);
        let mut ops = Vec::new();
        if self.payments.is_empty() {
            if let Some(lock) = self.lock.take() {
                let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
                ops.push(queue(ids, Op::TokenxUnlock { order_id, lock_id: lock.lock_id }));
            }
            self.back_to_open();
            self.notice = Some(Notice::warning(code, text));
        } else {
            // Parts already paid stay paid: the cashier takes the rest another way.
            self.state = SaleState::Tendering;
            let left = self.remaining()?;
            self.notice = Some(Notice::warning(code, format!("{text} Still to pay: {}.", left.display_grouped())));
        }
        Ok(ops)
    }

    /// The cloud accepted the payment report.
    pub(super) fn on_report_acknowledged(&mut self) -> Result<Vec<Queued>, SaleError> {
        if self.state == SaleState::Completed {
            // The pump's receipt can be seen before the acknowledgement is recorded.
            return Ok(Vec::new());
        }
        if self.state != SaleState::Paid {
            return invalid(self.state, "a payment report acknowledgement");
        }
        self.state = SaleState::Reported;
        self.notice = None;
        Ok(Vec::new())
    }

    /// The cloud refused the payment report for good.
    pub(super) fn on_report_refused(&mut self, message: &str) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Paid {
            return invalid(self.state, "a payment report refusal");
        }
        self.notice = Some(Notice {
            level: NoticeLevel::Error,
            code: "REPORT_REFUSED".into(),
            message: format!(
                "Paid, but the cloud refused the payment report: {message}. It is parked for the manager."
            ),
        });
        Ok(Vec::new())
    }

    /// The pump issued its receipt: the sale is complete.
    pub(super) fn on_receipt_issued(&mut self, receipt: &ReceiptInfo) -> Result<Vec<Queued>, SaleError> {
        if !matches!(self.state, SaleState::Paid | SaleState::Reported) {
            return invalid(self.state, "a pump receipt");
        }
        self.receipt = Some(receipt.clone());
        self.state = SaleState::Completed;
        Ok(Vec::new())
    }

    /// A shop article joins the basket.
    pub(super) fn on_item_added(&mut self, item: &ShopItem, quantity: &u32) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Open {
            return invalid(self.state, "changing the basket");
        }
        if *quantity == 0 {
            return Err(SaleError::EmptyBasket);
        }
        self.basket.add_item(item.clone(), *quantity)?;
        self.total()?;
        Ok(Vec::new())
    }

    /// Cancel an open sale, or void one where money was taken (giving it back first).
    pub(super) fn on_cancel_requested(
        &mut self,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        match self.state {
            SaleState::Open => {
                self.state = SaleState::Cancelled;
                self.notice = None;
                Ok(Vec::new())
            }
            SaleState::NeedsAttention if self.attempt.is_some() => invalid(
                self.state,
                "voiding while the outcome of the payment under way is unknown (retry or discard it in the queue first)",
            ),
            SaleState::Tendering | SaleState::NeedsAttention => {
                // Give every paid part (and every unexpected charge) back, then release the
                // order.
                self.state = SaleState::Voiding;
                let mut ops = Vec::new();
                for (unexpected, count, reason) in [
                    (false, self.payments.len(), "sale cancelled before it was fully paid"),
                    (true, self.unexpected.len(), "charge that does not match what was asked"),
                ] {
                    for i in 0..count {
                        let amount = self.still_to_give_back(i, unexpected)?;
                        if amount.minor > 0 {
                            ops.extend(self.start_refund(i, unexpected, amount, reason, now, ids)?);
                        }
                    }
                }
                self.notice = Some(Notice::info("VOIDING", "Giving the money taken back before cancelling."));
                ops.extend(self.finish_void_if_done(ids));
                Ok(ops)
            }
            state => invalid(state, "cancelling"),
        }
    }

    /// The manager gives back a part of a payment, never beyond what it took.
    pub(super) fn on_refund_requested(
        &mut self,
        payment: &u32,
        amount: &Money,
        reason: &str,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        if !self.state.is_paid() {
            return invalid(self.state, "refunding");
        }
        let available = self.refundable(*payment as usize)?;
        if amount.minor <= 0 || amount.checked_sub(available)?.minor > 0 {
            return Err(SaleError::RefundTooLarge { amount: *amount, available });
        }
        self.start_refund(*payment as usize, false, *amount, reason, now, ids)
    }

    /// A refund went through: print its slip, and finish a void once all went back.
    pub(super) fn on_refund_completed(
        &mut self,
        refund_id: &str,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        let r = self.refund_mut(refund_id)?;
        r.state = RefundState::Done;
        let mut ops = self.refund_receipt(refund_id, ids);
        if self.state == SaleState::Voiding {
            ops.extend(self.finish_void_if_done(ids));
        }
        Ok(ops)
    }

    /// A provider refused a refund for good.
    pub(super) fn on_refund_failed(&mut self, refund_id: &str, message: &str) -> Result<Vec<Queued>, SaleError> {
        let r = self.refund_mut(refund_id)?;
        r.state = RefundState::Failed;
        if self.state == SaleState::Voiding {
            // The void can't finish: the sale is held until a manager voids it again.
            self.state = SaleState::NeedsAttention;
        }
        self.notice = Some(Notice {
            level: NoticeLevel::Error,
            code: "REFUND_FAILED".into(),
            message: format!("A refund was refused: {message}. It is parked for the manager."),
        });
        Ok(Vec::new())
    }
}

impl Sale {
    /// Whether the sale waits for the outcome of its payment attempt: paying, or held for a
    /// manager because that outcome could not be found out.
    fn awaits_outcome(&self) -> bool {
        self.state == SaleState::Paying || (self.state == SaleState::NeedsAttention && self.attempt.is_some())
    }

    fn refund_mut(&mut self, refund_id: &str) -> Result<&mut Refund, SaleError> {
        self.refunds
            .iter_mut()
            .find(|r| r.id == refund_id)
            .ok_or_else(|| SaleError::Unknown(format!("no refund {refund_id} in this sale")))
    }

    /// Records a refund and queues what gives the money back (cash: at once, from the drawer).
    fn start_refund(
        &mut self,
        index: usize,
        unexpected: bool,
        amount: Money,
        reason: &str,
        now: OffsetDateTime,
        ids: &mut dyn IdSource,
    ) -> Result<Vec<Queued>, SaleError> {
        let id = ids.next_id();
        let list = if unexpected { &self.unexpected } else { &self.payments };
        let payment = list.get(index).cloned().ok_or_else(|| SaleError::Unknown(format!("no payment {index}")))?;
        let op = match &payment.kind {
            PaymentKind::Card { slip } => {
                Some(Op::CardRefund { refund_id: id.clone(), transfer_id: slip.transaction_ref.clone(), amount })
            }
            PaymentKind::MobilePay { payment_id } => {
                Some(Op::MobilePayRefund { refund_id: id.clone(), payment_id: payment_id.clone(), amount })
            }
            PaymentKind::Settle { tid } => Some(Op::SettleRefund { refund_id: id.clone(), tid: tid.clone(), amount }),
            PaymentKind::Cash { .. } => None,
        };
        let state = if op.is_some() { RefundState::Pending } else { RefundState::Done };
        self.refunds.push(Refund {
            id: id.clone(),
            payment: index as u32,
            unexpected,
            amount,
            reason: reason.to_string(),
            state,
            at: now,
        });
        let mut ops: Vec<Queued> = op.into_iter().map(|op| queue(ids, op)).collect();
        if state == RefundState::Done {
            ops.extend(self.refund_receipt(&id, ids));
        }
        Ok(ops)
    }

    /// When every paid part is given back, the void ends: the order is released and the sale
    /// cancelled.
    fn finish_void_if_done(&mut self, ids: &mut dyn IdSource) -> Vec<Queued> {
        if self.refunds.iter().any(|r| r.state == RefundState::Pending) {
            return Vec::new();
        }
        let mut ops = Vec::new();
        if let Some(lock) = self.lock.take() {
            let order_id = self.basket.pump_order_id().unwrap_or_default().to_string();
            ops.push(queue(ids, Op::TokenxUnlock { order_id, lock_id: lock.lock_id }));
        }
        self.state = SaleState::Cancelled;
        self.notice = Some(Notice::info("VOIDED", "The paid parts were given back and the sale cancelled."));
        ops
    }

    /// With the lock held (or no pump order), starts the attempt.
    fn start_attempt(&mut self, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let Some(attempt) = self.attempt.clone() else {
            return Err(SaleError::InvalidState { state: self.state, what: "paying without a method" });
        };
        self.state = SaleState::Paying;
        let amount = attempt.amount;
        match attempt.method {
            PayMethod::Cash { tendered } => {
                let change = tendered.checked_sub(amount)?;
                self.payments.push(Payment { amount, kind: PaymentKind::Cash { tendered, change } });
                self.attempt = None;
                self.after_payment(ids)
            }
            PayMethod::Card => Ok(vec![queue(ids, Op::CardSale { amount })]),
            PayMethod::MobilePay => {
                let order_id = ids.next_id();
                self.set_reference(order_id.clone());
                Ok(vec![queue(ids, Op::MobilePayPayment { amount, order_id, start: true })])
            }
            PayMethod::Settle => {
                let pos_tid = ids.next_id();
                self.set_reference(pos_tid.clone());
                Ok(vec![queue(ids, Op::SettleScanWait { amount, pos_tid })])
            }
        }
    }

    /// The amount and `pos_tid` of the Settle attempt under way.
    fn settle_attempt(&self, what: &'static str) -> Result<(Money, String), SaleError> {
        match (&self.attempt, self.state) {
            (Some(Attempt { method: PayMethod::Settle, amount, reference: Some(pos_tid), .. }), SaleState::Paying) => {
                Ok((*amount, pos_tid.clone()))
            }
            _ => Err(SaleError::InvalidState { state: self.state, what }),
        }
    }

    fn set_reference(&mut self, reference: String) {
        if let Some(a) = &mut self.attempt {
            a.reference = Some(reference);
        }
    }

    /// After a part is paid: wait for the rest, or finish.
    fn after_payment(&mut self, ids: &mut dyn IdSource) -> Result<Vec<Queued>, SaleError> {
        let left = self.remaining()?;
        if left.minor > 0 {
            self.state = SaleState::Tendering;
            self.notice =
                Some(Notice::info("PART_PAID", format!("Part paid. Still to pay: {}.", left.display_grouped())));
            return Ok(Vec::new());
        }
        Ok(self.finish_payment(ids))
    }

    /// After the money is taken: report a pump order and print the slip.
    fn finish_payment(&mut self, ids: &mut dyn IdSource) -> Vec<Queued> {
        self.attempt = None;
        self.notice = None;
        let mut ops = Vec::new();
        match (self.basket.pump_order_id(), self.basket.fuel_amount(), &self.lock) {
            (Some(order_id), Some(fuel), Some(lock)) => {
                // The cloud is told how the fuel line was paid: payments cover it in the order
                // they were taken, and what is left of a payment went to shop items.
                let mut left = fuel.minor;
                let payments = self
                    .payments
                    .iter()
                    .filter_map(|p| {
                        let share = p.amount.minor.min(left);
                        left -= share;
                        (share > 0).then(|| ReportedPayment {
                            method: p.reported_method(),
                            amount: Money::new(share, fuel.currency),
                            slip: p.slip(),
                        })
                    })
                    .collect();
                let op = Op::TokenxPayment { order_id: order_id.to_string(), lock_id: lock.lock_id.clone(), payments };
                ops.push(queue(ids, op));
                self.state = SaleState::Paid;
            }
            _ => self.state = SaleState::Completed,
        }
        if self.fiscalize {
            self.fiscal.push(FiscalReceipt {
                reference: self.id.0.clone(),
                refund: None,
                state: FiscalState::Pending,
                signature: None,
            });
            ops.push(queue(ids, Op::FiscalSign { doc: FiscalDoc::Sale }));
        }
        ops.push(queue(ids, Op::PrintSlip { copy: false, refund: None }));
        ops
    }

    /// A refund's slip, and its receipt for the middleware when the sale's own receipt was
    /// made (a void of a sale never paid in full gives back money no receipt counted).
    fn refund_receipt(&mut self, refund_id: &str, ids: &mut dyn IdSource) -> Vec<Queued> {
        let mut ops = Vec::new();
        if self.fiscalize && self.fiscal.iter().any(|r| r.refund.is_none()) {
            self.fiscal.push(FiscalReceipt {
                reference: refund_id.to_string(),
                refund: Some(refund_id.to_string()),
                state: FiscalState::Pending,
                signature: None,
            });
            ops.push(queue(ids, Op::FiscalSign { doc: FiscalDoc::Refund { refund_id: refund_id.to_string() } }));
        }
        ops.push(queue(ids, Op::PrintSlip { copy: false, refund: Some(refund_id.to_string()) }));
        ops
    }

    /// The business to invoice is named (or cleared) while the basket can change.
    pub(super) fn on_customer_set(&mut self, customer: &Option<BusinessCustomer>) -> Result<Vec<Queued>, SaleError> {
        if self.state != SaleState::Open {
            return invalid(self.state, "changing the invoice's customer");
        }
        if let Some(c) = customer
            && (c.name.trim().is_empty() || c.vat_id.trim().is_empty())
        {
            return Err(SaleError::IncompleteCustomer);
        }
        self.customer = customer.clone();
        Ok(Vec::new())
    }

    /// The middleware signed a receipt: the signature is kept for the slip and its reprints.
    /// A repeated answer changes nothing.
    pub(super) fn on_fiscal_signed(
        &mut self,
        reference: &str,
        signature: &FiscalSignature,
    ) -> Result<Vec<Queued>, SaleError> {
        let r = self
            .fiscal
            .iter_mut()
            .find(|r| r.reference == reference)
            .ok_or_else(|| SaleError::Unknown(format!("no receipt {reference} in this sale")))?;
        if r.state == FiscalState::Pending {
            r.state = FiscalState::Signed;
            r.signature = Some(signature.clone());
        }
        Ok(Vec::new())
    }

    fn back_to_open(&mut self) {
        self.state = SaleState::Open;
        self.attempt = None;
        self.lock = None;
    }
}

fn queue(ids: &mut dyn IdSource, op: Op) -> Queued {
    Queued { key: ids.next_id(), op }
}

fn method_name(method: MethodKind) -> &'static str {
    match method {
        MethodKind::Card => "card",
        MethodKind::Cash => "cash",
        MethodKind::MobilePay => "MobilePay",
        MethodKind::Settle => "Settle",
    }
}

/// What the cashier reads when an attempt ends without money taken.
fn decline_text(method: MethodKind, code: &str, message: &str) -> String {
    match (method, code) {
        (_, "CANCELLATION_VIA_API" | "CANCELLED") => "Payment cancelled. No money was taken.".to_string(),
        // The payment never reached a cardholder: not a decline.
        (_, "TERMINAL_UNREACHABLE" | "DEVICE_UNREACHABLE" | "NOT_STARTED" | "SERVICE_UNREACHABLE" | "DISCARDED") => {
            format!("{message} No money was taken; try again or take another payment method.")
        }
        (MethodKind::Card, _) => {
            format!("Card declined: {message} No money was taken; ask for another card or payment method.")
        }
        _ => format!("Payment not completed: {message} No money was taken; try again or take another payment method."),
    }
}
