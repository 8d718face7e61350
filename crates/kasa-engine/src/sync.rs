//! Order sync: the register's periodic look at the outside world. Every round it refreshes the
//! order list (which tells online from offline), renews the locks of sales with money under way,
//! picks up the pump's receipts, asks a printer that reported a problem whether it is back, and
//! now and then checks the card terminal's connection. The work itself belongs to the providers.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::Engine;
use crate::providers::{printer, tokenx};

/// How often the card terminal's connection is checked.
const TERMINAL_CHECK: Duration = Duration::from_secs(30);

pub(crate) async fn run(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let interval = Duration::from_millis(engine.inner.config.sync_interval_ms.max(100));
    let mut last = None;
    let mut checked = HashMap::new();
    let mut printer_checked: Option<Instant> = None;
    let mut terminal_checked: Option<Instant> = None;
    loop {
        if shutdown.get() {
            break;
        }
        let fresh = tokenx::refresh(&engine, &mut last).await;
        tokenx::renew_locks(&engine).await;
        tokenx::pick_up_receipts(&engine, if fresh { last.as_deref() } else { None }, &mut checked).await;
        printer::watch(&engine, &mut printer_checked).await;
        if terminal_checked.is_none_or(|t: Instant| t.elapsed() >= TERMINAL_CHECK) {
            terminal_checked = Some(Instant::now());
            // Connection state is recorded by `terminal`; an unreachable Finix shows as offline.
            let _ = engine.terminal().await;
        }
        // Biased, like every select in the engine: branches are polled in order rather than
        // at random, so a simulation run from one seed takes the same path every time.
        tokio::select! {
            biased;
            _ = shutdown.changed() => {}
            _ = engine.inner.sync_kick.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
