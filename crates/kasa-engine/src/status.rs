//! What the register shows about itself: online or offline, the queue, the printer and the
//! terminal, the methods it can take now; and the one way a part of that changes (set it, and tell
//! the screens only if it changed).

use std::time::Duration;

use kasa_core::MethodKind;
use kasa_core::journal::Verification;
use kasa_store::QueueCounts;

use crate::{ApiError, Engine, EngineEvent, Live, StatusView};

impl Engine {
    /// Connectivity, queue and printer state.
    pub fn status(&self) -> StatusView {
        let methods = self.methods();
        let live = self.inner.live.lock().unwrap_or_else(|e| e.into_inner());
        StatusView {
            online: live.online,
            offline_reason: live.offline_reason.clone(),
            orders_age_secs: live.orders_listed_at.map(|t| (self.now() - t).whole_seconds().max(0) as u64),
            queue_pending: live.queue.pending,
            queue_parked: live.queue.parked,
            sales_attention: live.queue.attention,
            terminal_id: self.inner.config.tokenx.terminal_id.clone(),
            printer_problem: live.printer_problem.clone(),
            terminal_problem: live.terminal_problem.clone(),
            fiscal: self.inner.providers.fiscal.is_some(),
            fiscal_problem: live.fiscal_problem.clone(),
            journal_problem: live.journal_problem.clone(),
            demo: self.inner.demo,
            recovery: live.recovery.clone(),
            methods,
        }
    }

    /// Waits until every queued operation is delivered or parked, or the timeout passes;
    /// returns the counts left.
    pub async fn drain(&self, timeout: Duration) -> Result<QueueCounts, ApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let counts = self.db(|s| Ok(s.queue_counts()?)).await?;
            if counts.pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(counts);
            }
            self.inner.dispatch_kick.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Verifies the whole journal chain, on demand.
    pub async fn verify_journal(&self) -> Result<Verification, ApiError> {
        self.verify_journal_in(false).await
    }

    /// [`Engine::verify_journal`] for the manager area (session; journaled).
    pub async fn verify_journal_as_manager(&self, session: &str) -> Result<Verification, ApiError> {
        self.authorize(session).await?;
        let v = self.verify_journal_in(false).await?;
        self.journal_event("journal_verified", serde_json::json!({ "entries": v.entries, "intact": v.is_intact() }))
            .await?;
        Ok(v)
    }

    /// Verifies the journal (from its checkpoint when `fast`). Intact, the checkpoint moves to
    /// the end verified; broken, the break is journaled and shown in the
    /// status bar.
    pub(crate) async fn verify_journal_in(&self, fast: bool) -> Result<Verification, ApiError> {
        let at = self.now();
        let v = self
            .db(move |s| {
                let v = s.verify_journal_from(fast)?;
                match &v.first_break {
                    None => {
                        if let Some(head) = s.journal_page(v.from + v.entries - 1, 1)?.pop() {
                            s.write(|tx| tx.set_journal_checkpoint(head.seq, &head.hash, at))?;
                        }
                    }
                    Some(b) => {
                        let rec = kasa_core::journal::JournalRecord {
                            sale_id: None,
                            kind: "journal_break_found".into(),
                            data: serde_json::json!({ "seq": b.seq, "kind": b.kind, "reason": b.reason }),
                        };
                        s.write(|tx| tx.append_journal(&rec, at))?;
                    }
                }
                Ok(v)
            })
            .await?;
        let problem = v.first_break.as_ref().map(|b| format!("Journal broken at entry {}: {}.", b.seq, b.reason));
        if let Some(p) = &problem {
            tracing::error!("{p}");
        }
        self.update_live(|live| replace(&mut live.journal_problem, problem));
        Ok(v)
    }

    pub(crate) async fn refresh_queue_counts(&self) {
        if let Ok(counts) = self.db(|s| Ok(s.queue_counts()?)).await {
            self.set_queue_counts(counts);
        }
    }

    /// The payment methods this register offers now (see [`crate::providers::methods`]).
    pub fn methods(&self) -> Vec<MethodKind> {
        let connected = self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).terminal_problem.is_none();
        crate::providers::methods(self, connected)
    }

    /// Changes what the register knows of itself; the screens hear of it only if it changed.
    fn update_live(&self, change: impl FnOnce(&mut Live) -> bool) {
        let changed = change(&mut self.inner.live.lock().unwrap_or_else(|e| e.into_inner()));
        if changed {
            self.emit_status();
        }
    }

    pub(crate) fn set_queue_counts(&self, counts: QueueCounts) {
        self.update_live(|live| replace(&mut live.queue, counts));
    }

    pub(crate) fn emit_status(&self) {
        let _ = self.inner.events.send(EngineEvent::StatusChanged { status: Box::new(self.status()) });
    }

    pub(crate) fn set_online(&self, online: bool, reason: Option<String>) {
        let mut reconnected = false;
        self.update_live(|live| {
            reconnected = online && !live.online;
            replace(&mut live.online, online) | replace(&mut live.offline_reason, reason)
        });
        if reconnected {
            // Back online: what waited for the cloud goes now rather than at its next backoff.
            let engine = self.clone();
            self.spawn(async move {
                let at = engine.now();
                let _ = engine.db(move |s| Ok(s.write(|tx| tx.outbox_due_now("order:", at))?)).await;
                engine.inner.dispatch_kick.notify_one();
            });
        }
    }

    pub(crate) fn set_printer_problem(&self, problem: Option<String>) {
        self.update_live(|live| replace(&mut live.printer_problem, problem));
    }

    /// Whether receipts are not being signed now (the status bar shows why).
    pub(crate) fn fiscal_stalled(&self) -> bool {
        self.inner.live.lock().unwrap_or_else(|e| e.into_inner()).fiscal_problem.is_some()
    }

    pub(crate) fn set_fiscal_problem(&self, problem: Option<String>) {
        self.update_live(|live| replace(&mut live.fiscal_problem, problem));
    }

    pub(crate) fn set_terminal_problem(&self, problem: Option<String>) {
        self.update_live(|live| replace(&mut live.terminal_problem, problem));
    }
}

/// Puts `value` in `slot`; whether that changed it.
fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}
