//! Settle scan callbacks: a small HTTP server Kasa runs for Settle's `shortlink_scanned`
//! callbacks, and the board on which a waiting payment attempt hears of its scan.
//!
//! A scan is matched to its attempt by the `argstring` of the QR code, which is the attempt's
//! `pos_tid`. A scan that arrives before its attempt starts waiting is kept for it; the cashier
//! cancelling an attempt wakes its waiter too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::sync::mpsc;

/// What a waiting attempt hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanSignal {
    /// The customer scanned; the scan token.
    Scanned(String),
    /// The cashier cancelled the attempt.
    Cancelled,
}

#[derive(Debug, Default)]
struct Board {
    waiting: HashMap<String, mpsc::UnboundedSender<ScanSignal>>,
    early: HashMap<String, ScanSignal>,
}

/// Who waits for which scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanBoard {
    inner: Arc<Mutex<Board>>,
}

impl ScanBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting for the scan of `pos_tid`; a signal that came early is delivered at once.
    pub(crate) fn wait(&self, pos_tid: &str) -> mpsc::UnboundedReceiver<ScanSignal> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut b = self.lock();
        if let Some(sig) = b.early.remove(pos_tid) {
            let _ = tx.send(sig);
        }
        b.waiting.insert(pos_tid.to_string(), tx);
        rx
    }

    /// Stops waiting for `pos_tid`.
    pub(crate) fn forget(&self, pos_tid: &str) {
        let mut b = self.lock();
        b.waiting.remove(pos_tid);
        b.early.remove(pos_tid);
    }

    /// Hands a signal to the attempt waiting for `pos_tid`, or keeps it for it (a bounded
    /// number of early signals are kept; scans of stale QR codes are not hoarded).
    pub(crate) fn signal(&self, pos_tid: &str, sig: ScanSignal) {
        const EARLY_KEPT: usize = 64;
        let mut b = self.lock();
        let delivered = b.waiting.get(pos_tid).is_some_and(|tx| tx.send(sig.clone()).is_ok());
        if !delivered {
            if b.early.len() >= EARLY_KEPT {
                b.early.clear();
            }
            b.early.insert(pos_tid.to_string(), sig);
        }
    }
}

/// Serves `POST /settle/callback` on `listen` through `listener`; returns the address it is
/// reachable at and the guard that keeps it served.
pub(crate) fn serve(
    listener: &dyn crate::env::Listener,
    listen: &str,
    board: ScanBoard,
) -> std::io::Result<(SocketAddr, Box<dyn Send + Sync>)> {
    listener.serve(listen, Router::new().route("/settle/callback", post(callback)).with_state(board))
}

async fn callback(State(board): State<ScanBoard>, body: Bytes) -> StatusCode {
    match kasa_connect::settle::parse_scan(&body) {
        Ok((token, pos_tid)) => {
            tracing::info!(%pos_tid, "Settle scan received");
            board.signal(&pos_tid, ScanSignal::Scanned(token));
            StatusCode::OK
        }
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable Settle callback was ignored");
            StatusCode::BAD_REQUEST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_reaches_its_waiter_even_when_it_comes_first() {
        let board = ScanBoard::default();
        board.signal("early", ScanSignal::Scanned("token:1".into()));
        let mut rx = board.wait("early");
        assert_eq!(rx.try_recv().unwrap(), ScanSignal::Scanned("token:1".into()));
        let mut rx2 = board.wait("late");
        board.signal("late", ScanSignal::Cancelled);
        assert_eq!(rx2.try_recv().unwrap(), ScanSignal::Cancelled);
        board.forget("late");
        for i in 0..200 {
            board.signal(&format!("stale-{i}"), ScanSignal::Cancelled);
        }
        assert!(board.lock().early.len() <= 64);
    }
}
