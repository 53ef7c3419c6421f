//! A client-side request budget per PingOne environment. PingOne rate limits are per licence
//! and shared by every environment on it, so many resources reconciled at once must not burst
//! past them; a token bucket per environment spreads the calls out before PingOne has to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How fast calls against one environment may go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may go at once after a quiet period.
    pub burst: u32,
}

impl Default for BudgetConfig {
    /// Roughly 10 requests per second per operator, well under a licence's base limit.
    fn default() -> Self {
        Self {
            per_second: 10.0,
            burst: 20,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: jiff::Timestamp,
}

/// Token buckets keyed by environment id.
#[derive(Debug)]
pub struct RequestBudget {
    config: BudgetConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RequestBudget {
    /// An empty budget with this rate.
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket and says how long to wait before sending it.
    /// The bucket may go below zero: each caller reserves its slot, so waiters queue fairly
    /// without polling.
    pub fn reserve(&self, key: &str, now: jiff::Timestamp) -> Duration {
        let rate = self.config.per_second.max(0.001);
        let burst = f64::from(self.config.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = super::clock::elapsed(bucket.at, now).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        if now > bucket.at {
            bucket.at = now;
        }
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_calls_are_spaced() {
        let budget = RequestBudget::new(BudgetConfig {
            per_second: 2.0,
            burst: 3,
        });
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(budget.reserve("env", now), Duration::ZERO);
        }
        assert_eq!(budget.reserve("env", now), Duration::from_millis(500));
        assert_eq!(budget.reserve("env", now), Duration::from_millis(1000));
        // Another environment has its own bucket.
        assert_eq!(budget.reserve("other", now), Duration::ZERO);
        // Time refills the bucket.
        let later = now + jiff::SignedDuration::from_secs(10);
        assert_eq!(budget.reserve("env", later), Duration::ZERO);
    }
}
