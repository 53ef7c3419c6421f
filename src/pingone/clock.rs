//! Time as the client sees it: the wall clock for token expiry and the elapsed-time bounds of
//! retries, and sleeping between retries. Behind a trait so tests can run retry schedules on a
//! manual clock and check the waits without waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

/// A source of time and a way to wait.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> jiff::Timestamp;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when slept on or advanced, and remembers every sleep.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: jiff::Timestamp,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A manual clock starting at `start`.
    pub fn new(start: jiff::Timestamp) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.now = add(state.now, by);
    }

    /// Every sleep requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sleeps
            .clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.sleeps.push(duration);
        state.now = add(state.now, duration);
        Box::pin(futures::future::ready(()))
    }
}

/// `at + by`, saturating at jiff's maximum rather than panicking.
pub fn add(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// `later - earlier`, zero when `later` is not later.
pub fn elapsed(earlier: jiff::Timestamp, later: jiff::Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}
