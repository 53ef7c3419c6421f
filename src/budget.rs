//! Client-side request budgets shared by every reconcile of the process: one per PingOne
//! licence and one per AIC tenant, so a fleet of resources reconciled at once stays under the
//! SaaS rate limits instead of finding them with a storm of 429s.
//!
//! Decisions:
//! - **Which licence.** PingOne enforces its limits per licence, shared by every environment on
//!   it, and the API does not say reliably which licence an environment is on. A
//!   TenantEnvironment may name it (`spec.pingOne.license`, any rate-group name: environments
//!   naming the same one share a budget). Without it the operator assumes one licence per
//!   regional API host (every environment reached through `https://api.pingone.eu/v1`, say,
//!   shares one budget): the conservative reading, since it can only over-count what shares a
//!   licence, never under-count.
//! - **How fast.** `--pingone-license-rate` is the licence's rate in requests per second; the
//!   default, 10/s, is Ping's published base limit of the Configuration rate group (600 per
//!   minute), the group the admin endpoints most likely fall in. `--pingone-ip-share` (default
//!   0.35) is the share of it one client IP may use unless allow-listed; the operator runs from
//!   one IP, so its budget per licence is rate × share (3.5/s by default). AIC publishes no
//!   numbers: `--aic-tenant-rate` (default 10/s per tenant) is a conservative figure near what
//!   fr-config-manager's default of 8 concurrent ESV pushes produces.
//! - **A 429 slows the whole budget.** Its `Retry-After` pushes the budget's next free slot to
//!   now + Retry-After, so every later request on that licence or tenant waits, not only the
//!   one refused; after it requests resume at the sustained rate, without a burst.
//! - **What runs at once** follows from the budgets too: a reconcile is admitted by the
//!   licences and tenants it spends on, a few at a time on each, before it takes a slot (see
//!   the controller's `admission`), so a busy licence's queue never holds back another's.
//!
//! The buckets are GCRA (a token bucket kept as its "theoretical arrival time"): each
//! reservation books the next slot, so waiters queue fairly without polling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How fast calls sharing one budget may go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may go at once after a quiet period.
    pub burst: u32,
}

impl BudgetConfig {
    /// A budget of `per_second`, with a burst of one second's worth (at least one request).
    pub fn per_second(per_second: f64) -> Self {
        let per_second = per_second.max(0.001);
        Self {
            per_second,
            // The float is at least 1 and small: the cast cannot lose anything that matters.
            burst: per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }
}

impl Default for BudgetConfig {
    /// PingOne's default: the per-IP share of a licence at the base limit.
    fn default() -> Self {
        Budgets::default().pingone()
    }
}

/// The operator's rate settings (its `--pingone-license-rate`, `--pingone-ip-share` and
/// `--aic-tenant-rate` flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budgets {
    /// Requests per second of one PingOne licence, as PingOne enforces it.
    pub pingone_license_rate: f64,
    /// Share of a licence's rate one client IP may use (PingOne: 0.35 unless allow-listed).
    pub pingone_ip_share: f64,
    /// Requests per second to one AIC tenant.
    pub aic_tenant_rate: f64,
}

/// Ping's base limit of the Configuration rate group: 600 requests per minute.
pub const PINGONE_BASE_LICENSE_RATE: f64 = 10.0;
/// What one IP may use of a licence unless allow-listed.
pub const PINGONE_IP_SHARE: f64 = 0.35;
/// AIC publishes no limits; a conservative figure per tenant.
pub const AIC_TENANT_RATE: f64 = 10.0;

impl Default for Budgets {
    fn default() -> Self {
        Self {
            pingone_license_rate: PINGONE_BASE_LICENSE_RATE,
            pingone_ip_share: PINGONE_IP_SHARE,
            aic_tenant_rate: AIC_TENANT_RATE,
        }
    }
}

impl Budgets {
    /// The budget of one PingOne licence: its rate times this IP's share.
    pub fn pingone(&self) -> BudgetConfig {
        BudgetConfig::per_second(self.pingone_license_rate * self.pingone_ip_share.clamp(0.0, 1.0))
    }

    /// The budget of one AIC tenant.
    pub fn aic(&self) -> BudgetConfig {
        BudgetConfig::per_second(self.aic_tenant_rate)
    }
}

/// Parses a `--…-rate` flag: requests per second, a finite number above zero.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: give requests per second, a number above 0 (e.g. 10 or 2.5)"
        )),
    }
}

/// Parses `--pingone-ip-share`: a fraction above 0 and at most 1.
pub fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(format!(
            "{text:?} is not a share: give a fraction above 0 and at most 1 (PingOne's default is 0.35)"
        )),
    }
}

/// Buckets keyed by what shares a budget (a licence, a tenant origin).
#[derive(Debug)]
pub struct RequestBudget {
    config: BudgetConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The time the next request would go at if no burst were left.
    next_free: jiff::Timestamp,
    /// Nothing goes before this (the last 429's `Retry-After`), not even requests that had
    /// reserved their slot before it came.
    held_until: jiff::Timestamp,
}

impl RequestBudget {
    /// An empty budget with this rate.
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate of every bucket.
    pub fn config(&self) -> BudgetConfig {
        self.config
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.config.per_second.max(0.001))
    }

    /// How far ahead of its slot a request may go: the burst.
    fn tolerance(&self) -> Duration {
        self.interval()
            .saturating_mul(self.config.burst.max(1).saturating_sub(1))
    }

    /// Takes one request from `key`'s budget and says how long to wait before sending it.
    pub fn reserve(&self, key: &str, now: jiff::Timestamp) -> Duration {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            next_free: now,
            held_until: now,
        });
        let booked = bucket.next_free.max(now);
        bucket.next_free = add(booked, self.interval());
        let go_at = booked
            .checked_sub(signed(self.tolerance()))
            .unwrap_or(jiff::Timestamp::MIN);
        elapsed(now, go_at)
    }

    /// Records a 429 on `key`: no request of that budget goes before `now + retry_after`, and
    /// the ones after it go at the sustained rate.
    pub fn hold_off(&self, key: &str, now: jiff::Timestamp, retry_after: Duration) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let until = add(now, retry_after);
        let resume = add(until, self.tolerance());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            next_free: resume,
            held_until: until,
        });
        bucket.next_free = bucket.next_free.max(resume);
        bucket.held_until = bucket.held_until.max(until);
    }

    /// How long a request that already waited for its slot must still wait because a 429
    /// came meanwhile; zero when none did.
    pub fn held_for(&self, key: &str, now: jiff::Timestamp) -> Duration {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .get(key)
            .map_or(Duration::ZERO, |bucket| elapsed(now, bucket.held_until))
    }

    /// Waits for a slot of `key`, on the caller's clock: the reservation, then any hold a
    /// 429 imposed while waiting.
    pub async fn spend<F>(
        &self,
        key: &str,
        now: impl Fn() -> jiff::Timestamp,
        sleep: impl Fn(Duration) -> F,
    ) where
        F: Future<Output = ()>,
    {
        let wait = self.reserve(key, now());
        if !wait.is_zero() {
            sleep(wait).await;
        }
        loop {
            let held = self.held_for(key, now());
            if held.is_zero() {
                return;
            }
            sleep(held).await;
        }
    }
}

fn signed(duration: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX)
}

/// `at + by`, saturating.
fn add(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    at.checked_add(signed(by)).unwrap_or(jiff::Timestamp::MAX)
}

/// `later - earlier`, zero when `later` is not later.
fn elapsed(earlier: jiff::Timestamp, later: jiff::Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        start + jiff::SignedDuration::from_secs(seconds)
    }

    #[test]
    fn a_burst_goes_at_once_then_calls_are_spaced() {
        let budget = RequestBudget::new(BudgetConfig {
            per_second: 2.0,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(budget.reserve("licence", at(0)), Duration::ZERO);
        }
        assert_eq!(budget.reserve("licence", at(0)), Duration::from_millis(500));
        assert_eq!(
            budget.reserve("licence", at(0)),
            Duration::from_millis(1000)
        );
        // Another key has its own bucket.
        assert_eq!(budget.reserve("other", at(0)), Duration::ZERO);
        // Time refills the bucket.
        assert_eq!(budget.reserve("licence", at(10)), Duration::ZERO);
    }

    #[test]
    fn two_environments_on_one_licence_share_its_budget() {
        use crate::crd::tenant_environment::Region;
        use crate::pingone::Endpoints;
        use crate::pingone::client::license_key;
        let eu = Endpoints::new(Region::EU, None, None).unwrap();
        let na = Endpoints::new(Region::NA, None, None).unwrap();
        // The key names the licence, not the environment: with none named, every environment
        // of a region shares one; a named licence is shared across whatever names it.
        assert_eq!(license_key(&eu, None), license_key(&eu, None));
        assert_ne!(license_key(&eu, None), license_key(&na, None));
        assert_eq!(
            license_key(&eu, Some("acme")),
            license_key(&na, Some("acme"))
        );
        assert_ne!(license_key(&eu, Some("acme")), license_key(&eu, None));
        let budget = RequestBudget::new(BudgetConfig {
            per_second: 1.0,
            burst: 1,
        });
        // Environment A's call takes the burst; environment B's first call waits behind it.
        assert_eq!(
            budget.reserve(&license_key(&eu, None), at(0)),
            Duration::ZERO
        );
        assert_eq!(
            budget.reserve(&license_key(&eu, None), at(0)),
            Duration::from_secs(1)
        );
        assert_eq!(
            budget.reserve(&license_key(&na, None), at(0)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_429_delays_every_later_reservation_of_the_budget() {
        let budget = RequestBudget::new(BudgetConfig {
            per_second: 10.0,
            burst: 10,
        });
        assert_eq!(budget.reserve("licence", at(0)), Duration::ZERO);
        budget.hold_off("licence", at(0), Duration::from_secs(5));
        // Whoever asks next waits out the Retry-After, then calls are spaced at the rate: no
        // burst right after a refusal.
        assert_eq!(budget.reserve("licence", at(0)), Duration::from_secs(5));
        assert_eq!(
            budget.reserve("licence", at(0)),
            Duration::from_millis(5100)
        );
        assert_eq!(
            budget.reserve("licence", at(3)),
            Duration::from_millis(2200)
        );
        // Other budgets are not slowed.
        assert_eq!(budget.reserve("other", at(0)), Duration::ZERO);
        // A shorter Retry-After later does not shorten the wait already imposed.
        budget.hold_off("licence", at(1), Duration::from_secs(1));
        assert_eq!(
            budget.reserve("licence", at(3)),
            Duration::from_millis(2300)
        );
        // Once it has passed, the budget is whole again.
        assert_eq!(budget.reserve("licence", at(60)), Duration::ZERO);
    }

    #[test]
    fn a_429_also_holds_requests_that_had_reserved_before_it() {
        let budget = RequestBudget::new(BudgetConfig {
            per_second: 1.0,
            burst: 1,
        });
        assert_eq!(budget.reserve("licence", at(0)), Duration::ZERO);
        // This one booked the slot at 1 s and is sleeping towards it ...
        assert_eq!(budget.reserve("licence", at(0)), Duration::from_secs(1));
        // ... when the first call comes back 429, Retry-After: 4.
        budget.hold_off("licence", at(0), Duration::from_secs(4));
        assert_eq!(budget.held_for("licence", at(1)), Duration::from_secs(3));
        assert_eq!(budget.held_for("licence", at(4)), Duration::ZERO);
        assert_eq!(budget.held_for("other", at(1)), Duration::ZERO);
    }

    #[test]
    fn the_pingone_budget_is_the_ip_share_of_the_licence() {
        let budgets = Budgets {
            pingone_license_rate: 20.0,
            pingone_ip_share: 0.35,
            aic_tenant_rate: 4.0,
        };
        let config = budgets.pingone();
        assert!((config.per_second - 7.0).abs() < 1e-9);
        assert_eq!(config.burst, 7);
        let budget = RequestBudget::new(config);
        for _ in 0..7 {
            assert_eq!(budget.reserve("licence", at(0)), Duration::ZERO);
        }
        assert_eq!(
            budget.reserve("licence", at(0)),
            Duration::from_secs_f64(1.0 / 7.0)
        );
        // The defaults: Ping's base limit (600/minute) at a 35 % share.
        assert!((Budgets::default().pingone().per_second - 3.5).abs() < 1e-9);
        // A share above 1 cannot raise the budget over the licence.
        let whole = Budgets {
            pingone_ip_share: 3.0,
            ..budgets
        };
        assert!((whole.pingone().per_second - 20.0).abs() < 1e-9);
    }

    #[test]
    fn rate_flags_refuse_what_is_not_a_rate() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("0").unwrap_err().contains("above 0"));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("inf").is_err());
        assert_eq!(parse_share("0.35"), Ok(0.35));
        assert!(parse_share("1.5").unwrap_err().contains("at most 1"));
        assert!(parse_share("0").is_err());
    }
}
