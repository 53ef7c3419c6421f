//! Spacing of status polls: however many events wake a reconcile (its own status patch,
//! another resource's change), a remote status under way (a restart) is asked for at most once
//! per poll interval, counted from the request that started it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each polled thing was last asked about, by key.
#[derive(Debug, Default)]
pub struct PollPacer {
    last: Mutex<HashMap<String, Instant>>,
}

impl PollPacer {
    /// Records that `key` was just asked about (or started).
    pub fn asked(&self, key: &str, now: Instant) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), now);
    }

    /// Whether `key` may be polled at `now`: `Ok` (and recorded as asked) once `interval` has
    /// passed since it was last asked about or when it never was, else how long to wait.
    pub fn poll(&self, key: &str, interval: Duration, now: Instant) -> Result<(), Duration> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get(key) {
            let since = now.saturating_duration_since(*at);
            if since < interval {
                return Err(interval - since);
            }
        }
        last.insert(key.to_owned(), now);
        Ok(())
    }

    /// Forgets `key` (what it polled has ended).
    pub fn done(&self, key: &str) {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_polled_once_per_interval_from_its_start() {
        let pacer = PollPacer::default();
        let start = Instant::now();
        let interval = Duration::from_millis(500);
        // Never asked: poll.
        assert_eq!(pacer.poll("other", interval, start), Ok(()));
        pacer.asked("restart", start);
        // Woken 100 ms after the restart was requested: wait the rest of the interval.
        assert_eq!(
            pacer.poll("restart", interval, start + Duration::from_millis(100)),
            Err(Duration::from_millis(400))
        );
        assert_eq!(
            pacer.poll("restart", interval, start + Duration::from_millis(500)),
            Ok(())
        );
        assert_eq!(
            pacer.poll("restart", interval, start + Duration::from_millis(700)),
            Err(Duration::from_millis(300))
        );
        pacer.done("restart");
        assert_eq!(
            pacer.poll("restart", interval, start + Duration::from_millis(701)),
            Ok(())
        );
    }
}
