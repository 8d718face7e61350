//! Settle scan callbacks: a small HTTP server Kasa runs for Settle's `shortlink_scanned`
//! callbacks, and the board on which a waiting payment attempt hears of its scan.
//!
//! A scan is matched to its attempt by the `argstring` of the QR code, which is the attempt's
//! `pos_tid`. A scan that arrives before its attempt starts waiting is kept for it; the cashier
//! cancelling an attempt wakes its waiter too.
//!
//! The server trusts no one who can reach it:
//! - It listens on loopback unless the configuration exposes it.
//! - Each start makes a random key (244 bits) and registers the callback URL as
//!   `…/settle/callback/<key>`; a request with another key, or none, is refused. The key is
//!   compared in constant time. Settle signs its callbacks (with its own RSA key, per its
//!   developer documentation), but the integration guide Kasa follows gives neither the header
//!   nor the key, so Kasa uses the one authentication it fully controls: a secret only Settle
//!   and this process know, sent to Settle over HTTPS when the callback is registered.
//! - Bodies above [`MAX_BODY`] are refused before they are read; more than [`RATE_BURST`]
//!   requests at once, refilled at [`RATE_PER_SEC`] a second, are refused with 429.
//! - A scan is accepted only for a `pos_tid` whose QR code is on screen or whose attempt is
//!   waiting, and when the callback names an amount, it must be the attempt's (Settle's scan
//!   callbacks carry none; one that does is not a scan Kasa asked for).
//! - Every refusal is journaled (`settle_callback_refused`), at most [`JOURNALED_PER_MINUTE`] a
//!   minute; the rest are counted in the next entry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use kasa_core::Money;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

/// The largest callback body read (Settle's are a few hundred bytes).
pub(crate) const MAX_BODY: usize = 16 * 1024;
/// Requests served at once before the rate limit refuses.
pub(crate) const RATE_BURST: f64 = 20.0;
/// Requests a second the limit lets through after a burst.
pub(crate) const RATE_PER_SEC: f64 = 10.0;
/// Refusals journaled each minute; the rest are counted.
pub(crate) const JOURNALED_PER_MINUTE: u32 = 30;

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
    /// Attempts waiting for their scan, with their amount.
    waiting: HashMap<String, (Money, mpsc::UnboundedSender<ScanSignal>)>,
    /// QR codes on screen whose attempt does not wait yet, with their amount.
    expected: HashMap<String, Money>,
    early: HashMap<String, ScanSignal>,
}

/// Who waits for which scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanBoard {
    inner: Arc<Mutex<Board>>,
}

/// Why a callback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// What was wrong, for the journal.
    pub(crate) reason: &'static str,
    /// The `pos_tid` it named, if it could be read.
    pub(crate) pos_tid: Option<String>,
    /// Details.
    pub(crate) detail: String,
}

/// The amount of a waiting attempt, or of a QR code on screen.
fn amount_of(b: &Board, pos_tid: &str) -> Option<Money> {
    b.waiting.get(pos_tid).map(|(m, _)| *m).or_else(|| b.expected.get(pos_tid).copied())
}

impl ScanBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The QR code of `pos_tid` for `amount` is shown: its scan may come before its attempt
    /// starts waiting. A bounded number are kept.
    pub(crate) fn expect(&self, pos_tid: &str, amount: Money) {
        const EXPECTED_KEPT: usize = 64;
        let mut b = self.lock();
        if b.expected.len() >= EXPECTED_KEPT && !b.expected.contains_key(pos_tid) {
            b.expected.clear();
        }
        b.expected.insert(pos_tid.to_string(), amount);
    }

    /// Starts waiting for the scan of `pos_tid` for `amount`; a signal that came early is
    /// delivered at once.
    pub(crate) fn wait(&self, pos_tid: &str, amount: Money) -> mpsc::UnboundedReceiver<ScanSignal> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut b = self.lock();
        if let Some(sig) = b.early.remove(pos_tid) {
            let _ = tx.send(sig);
        }
        b.expected.remove(pos_tid);
        b.waiting.insert(pos_tid.to_string(), (amount, tx));
        rx
    }

    /// Stops waiting for `pos_tid`.
    pub(crate) fn forget(&self, pos_tid: &str) {
        let mut b = self.lock();
        b.waiting.remove(pos_tid);
        b.expected.remove(pos_tid);
        b.early.remove(pos_tid);
    }

    /// The cashier cancelled the attempt of `pos_tid`: its waiter wakes, now or when it starts.
    pub(crate) fn cancel(&self, pos_tid: &str) {
        self.signal(pos_tid, ScanSignal::Cancelled);
    }

    /// A scan of `pos_tid`, which named `amount` if anything: handed to the attempt waiting for
    /// it, kept for an attempt whose QR code is shown, or refused.
    pub(crate) fn scanned(&self, pos_tid: &str, token: String, amount: Option<i64>) -> Result<(), Refusal> {
        let refuse = |reason, detail: String| Refusal { reason, pos_tid: Some(pos_tid.to_string()), detail };
        let expected = amount_of(&self.lock(), pos_tid);
        let Some(expected) = expected else {
            return Err(refuse("unknown_pos_tid", "no payment attempt waits for this QR code".into()));
        };
        if let Some(named) = amount.filter(|a| *a != expected.minor) {
            return Err(refuse(
                "wrong_amount",
                format!("the callback names {named} minor units; the attempt is for {}", expected.minor),
            ));
        }
        self.signal(pos_tid, ScanSignal::Scanned(token));
        Ok(())
    }

    /// Hands a signal to the attempt waiting for `pos_tid`, or keeps it for it (a bounded
    /// number of early signals are kept; scans of stale QR codes are not hoarded).
    fn signal(&self, pos_tid: &str, sig: ScanSignal) {
        const EARLY_KEPT: usize = 64;
        let mut b = self.lock();
        let delivered = b.waiting.get(pos_tid).is_some_and(|(_, tx)| tx.send(sig.clone()).is_ok());
        if !delivered {
            if b.early.len() >= EARLY_KEPT {
                b.early.clear();
            }
            b.early.insert(pos_tid.to_string(), sig);
        }
    }
}

/// A token bucket: `RATE_BURST` at once, refilled at `RATE_PER_SEC`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How many refusals this minute were journaled, and how many were only counted.
#[derive(Debug)]
struct Tally {
    minute: Instant,
    journaled: u32,
    unjournaled: u64,
}

#[derive(Clone)]
struct Callbacks {
    board: ScanBoard,
    key: Arc<String>,
    bucket: Arc<Mutex<Bucket>>,
    tally: Arc<Mutex<Tally>>,
    refused: mpsc::UnboundedSender<(Refusal, u64)>,
}

impl Callbacks {
    /// Hands a refusal to the journal, unless this minute's share is used up.
    fn refuse(&self, status: StatusCode, r: Refusal) -> StatusCode {
        tracing::warn!(reason = r.reason, pos_tid = r.pos_tid.as_deref().unwrap_or(""), detail = %r.detail, "a Settle callback was refused");
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        if t.minute.elapsed() >= Duration::from_secs(60) {
            t.minute = Instant::now();
            t.journaled = 0;
        }
        if t.journaled < JOURNALED_PER_MINUTE {
            t.journaled += 1;
            let before = std::mem::take(&mut t.unjournaled);
            let _ = self.refused.send((r, before));
        } else {
            t.unjournaled += 1;
        }
        status
    }
}

/// The running callback server.
pub(crate) struct Served {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// The path segment that authenticates Settle's callbacks (after `/settle/callback/`).
    pub(crate) key: String,
    /// Keeps it served.
    pub(crate) guard: Box<dyn Send + Sync>,
    /// The refusals to journal, each with how many were refused unjournaled before it.
    pub(crate) refused: mpsc::UnboundedReceiver<(Refusal, u64)>,
}

/// Serves `POST /settle/callback/<key>` on `listen` through `listener`.
pub(crate) fn serve(
    listener: &dyn crate::env::Listener,
    listen: &str,
    board: ScanBoard,
    key: String,
) -> std::io::Result<Served> {
    let (tx, refused) = mpsc::unbounded_channel();
    let state = Callbacks {
        board,
        key: Arc::new(key.clone()),
        bucket: Arc::new(Mutex::new(Bucket { tokens: RATE_BURST, at: Instant::now() })),
        tally: Arc::new(Mutex::new(Tally { minute: Instant::now(), journaled: 0, unjournaled: 0 })),
        refused: tx,
    };
    let router = Router::new()
        .route("/settle/callback", post(unkeyed))
        .route("/settle/callback/{key}", post(callback))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let (addr, guard) = listener.serve(listen, router)?;
    Ok(Served { addr, key, guard, refused })
}

fn limited(s: &Callbacks) -> Option<StatusCode> {
    if s.bucket.lock().unwrap_or_else(|e| e.into_inner()).take() { None } else { Some(StatusCode::TOO_MANY_REQUESTS) }
}

async fn unkeyed(State(s): State<Callbacks>) -> StatusCode {
    if let Some(status) = limited(&s) {
        return status;
    }
    s.refuse(
        StatusCode::UNAUTHORIZED,
        Refusal { reason: "no_key", pos_tid: None, detail: "the callback URL carries no key".into() },
    )
}

async fn callback(
    State(s): State<Callbacks>,
    Path(key): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> StatusCode {
    if let Some(status) = limited(&s) {
        return status;
    }
    if !bool::from(key.as_bytes().ct_eq(s.key.as_bytes())) {
        return s.refuse(
            StatusCode::UNAUTHORIZED,
            Refusal { reason: "wrong_key", pos_tid: None, detail: "the callback URL carries another key".into() },
        );
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return s.refuse(
                e.status(),
                Refusal { reason: "unreadable", pos_tid: None, detail: format!("the body could not be read: {e}") },
            );
        }
    };
    match kasa_connect::settle::parse_scan(&body) {
        Ok(scan) => match s.board.scanned(&scan.pos_tid, scan.token, scan.amount) {
            Ok(()) => {
                tracing::info!(pos_tid = %scan.pos_tid, "Settle scan received");
                StatusCode::OK
            }
            Err(r) => s.refuse(StatusCode::CONFLICT, r),
        },
        Err(e) => s.refuse(StatusCode::BAD_REQUEST, Refusal { reason: "unreadable", pos_tid: None, detail: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kasa_core::Currency;

    fn lira(minor: i64) -> Money {
        Money::new(minor, Currency::parse("TRY").unwrap())
    }

    #[test]
    fn a_scan_reaches_its_waiter_even_when_it_comes_first() {
        let board = ScanBoard::default();
        board.expect("early", lira(100));
        board.scanned("early", "token:1".into(), None).unwrap();
        let mut rx = board.wait("early", lira(100));
        assert_eq!(rx.try_recv().unwrap(), ScanSignal::Scanned("token:1".into()));
        let mut rx2 = board.wait("late", lira(100));
        board.cancel("late");
        assert_eq!(rx2.try_recv().unwrap(), ScanSignal::Cancelled);
        board.forget("late");
        for i in 0..200 {
            board.expect(&format!("stale-{i}"), lira(1));
            board.cancel(&format!("stale-{i}"));
        }
        let b = board.lock();
        assert!(b.early.len() <= 64 && b.expected.len() <= 64);
    }

    #[test]
    fn a_scan_no_attempt_waits_for_or_for_another_amount_is_refused() {
        let board = ScanBoard::default();
        let refused = board.scanned("nobody", "token:1".into(), None).unwrap_err();
        assert_eq!(refused.reason, "unknown_pos_tid");
        let mut rx = board.wait("p-1", lira(5000));
        assert_eq!(board.scanned("p-1", "token:2".into(), Some(4999)).unwrap_err().reason, "wrong_amount");
        assert!(rx.try_recv().is_err(), "a refused scan reached the attempt");
        board.scanned("p-1", "token:3".into(), Some(5000)).unwrap();
        assert_eq!(rx.try_recv().unwrap(), ScanSignal::Scanned("token:3".into()));
        board.forget("p-1");
        assert_eq!(board.scanned("p-1", "token:4".into(), None).unwrap_err().reason, "unknown_pos_tid");
    }

    #[test]
    fn the_bucket_lets_a_burst_through_then_refuses() {
        let mut b = Bucket { tokens: RATE_BURST, at: Instant::now() };
        let passed = (0..100).filter(|_| b.take()).count();
        assert!((20..=21).contains(&passed), "{passed}");
    }
}
