//! The sandbox's clock: the wall clock, or, on a thread running a deterministic simulation, a
//! virtual one that follows Tokio's paused time from a chosen start.
//!
//! Every timestamp the sandbox writes (`created_at`, expiries, lock deadlines) is read here, so
//! a simulated day passes in the sandbox exactly as it passes in the register.

use std::cell::Cell;

use time::OffsetDateTime;

thread_local! {
    static VIRTUAL: Cell<Option<(OffsetDateTime, tokio::time::Instant)>> = const { Cell::new(None) };
}

/// The current UTC time, by this thread's clock.
pub fn now() -> OffsetDateTime {
    match VIRTUAL.with(Cell::get) {
        Some((base, start)) => base + start.elapsed(),
        None => OffsetDateTime::now_utc(),
    }
}

/// From now on, on this thread, the time is `base` plus the Tokio time elapsed since this call.
pub fn use_virtual(base: OffsetDateTime) {
    VIRTUAL.with(|v| v.set(Some((base, tokio::time::Instant::now()))));
}

/// Back to the wall clock on this thread.
pub fn use_system() {
    VIRTUAL.with(|v| v.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_virtual_clock_follows_tokio_time() {
        let base = time::macros::datetime!(2026-06-01 08:00 UTC);
        use_virtual(base);
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        assert_eq!(now(), base + time::Duration::hours(1));
        use_system();
        assert!(now() > base + time::Duration::days(30));
    }
}
