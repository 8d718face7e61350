//! A value that changes over time and the tasks that wait for it to change: the register's
//! shutdown, its change counter, a network's or a service's outage.
//!
//! Tokio's `watch` channel does the same, but spreads its waiters over eight queues chosen at
//! random, so tasks waiting on one change wake in an order that differs from run to run. The
//! deterministic simulation needs every run of a seed to replay exactly; here waiters wake in the
//! order they began to wait.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    notify: Notify,
}

#[derive(Debug)]
struct State<T> {
    value: T,
    version: u64,
    closed: bool,
}

/// The writing end: sets the value and wakes the waiters. Dropping it wakes them with
/// [`Closed`].
#[derive(Debug)]
pub struct Signal<T> {
    shared: Arc<Shared<T>>,
}

/// A reading end that remembers which version it has seen.
#[derive(Debug, Clone)]
pub struct Watcher<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// The [`Signal`] is gone: the value will not change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signal was dropped")]
pub struct Closed;

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Clone> Signal<T> {
    /// A signal holding `value`.
    pub fn new(value: T) -> Signal<T> {
        let state = Mutex::new(State { value, version: 0, closed: false });
        Signal { shared: Arc::new(Shared { state, notify: Notify::new() }) }
    }

    /// The current value.
    pub fn get(&self) -> T {
        self.shared.lock().value.clone()
    }

    /// Sets the value, wakes every waiter and returns the previous value.
    pub fn send_replace(&self, value: T) -> T {
        let old = {
            let mut s = self.shared.lock();
            s.version += 1;
            std::mem::replace(&mut s.value, value)
        };
        self.shared.notify.notify_waiters();
        old
    }

    /// Changes the value in place and wakes every waiter.
    pub fn send_modify(&self, change: impl FnOnce(&mut T)) {
        {
            let mut s = self.shared.lock();
            s.version += 1;
            change(&mut s.value);
        }
        self.shared.notify.notify_waiters();
    }

    /// A watcher that has seen the current value.
    pub fn subscribe(&self) -> Watcher<T> {
        Watcher { shared: self.shared.clone(), seen: self.shared.lock().version }
    }
}

impl<T> Drop for Signal<T> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.notify.notify_waiters();
    }
}

impl<T: Clone> Watcher<T> {
    /// The current value, without marking it seen.
    pub fn get(&self) -> T {
        self.shared.lock().value.clone()
    }

    /// The current value, marked seen.
    pub fn get_and_update(&mut self) -> T {
        let s = self.shared.lock();
        self.seen = s.version;
        s.value.clone()
    }

    /// Waits until the value changes after the last one seen, and marks it seen.
    pub async fn changed(&mut self) -> Result<(), Closed> {
        loop {
            let mut notified = std::pin::pin!(self.shared.notify.notified());
            // Registered before the check, so a change between the check and the wait wakes it.
            notified.as_mut().enable();
            {
                let s = self.shared.lock();
                if s.version != self.seen {
                    self.seen = s.version;
                    return Ok(());
                }
                if s.closed {
                    return Err(Closed);
                }
            }
            notified.await;
        }
    }

    /// Waits until the value satisfies `ready` (at once when it already does) and returns it.
    pub async fn wait_for(&mut self, mut ready: impl FnMut(&T) -> bool) -> Result<T, Closed> {
        loop {
            let mut notified = std::pin::pin!(self.shared.notify.notified());
            notified.as_mut().enable();
            {
                let s = self.shared.lock();
                self.seen = s.version;
                if ready(&s.value) {
                    return Ok(s.value.clone());
                }
                if s.closed {
                    return Err(Closed);
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(f)
    }

    #[test]
    fn waiters_wake_in_the_order_they_began_to_wait() {
        block_on(async {
            let signal = Signal::new(false);
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for i in 0..20 {
                let (mut w, order) = (signal.subscribe(), order.clone());
                tasks.push(tokio::task::spawn(async move {
                    w.wait_for(|v| *v).await.expect("the signal lives");
                    order.lock().unwrap().push(i);
                }));
            }
            tokio::task::yield_now().await;
            signal.send_replace(true);
            for t in tasks {
                t.await.expect("the task ran");
            }
            assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
        });
    }

    #[test]
    fn a_change_is_seen_once_and_a_dropped_signal_ends_the_wait() {
        block_on(async {
            let signal = Signal::new(0u64);
            let mut w = signal.subscribe();
            signal.send_modify(|n| *n += 1);
            w.changed().await.expect("changed");
            assert_eq!(w.get(), 1);
            let waiting = tokio::task::spawn(async move { w.changed().await });
            tokio::task::yield_now().await;
            drop(signal);
            assert_eq!(waiting.await.expect("the task ran"), Err(Closed));
        });
    }
}
