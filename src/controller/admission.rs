//! Which reconciles run at once: a reconcile is admitted by the PingOne licences and AIC tenants
//! it will spend budget on, a few at a time on each, and only then takes one of its
//! controller's slots.
//!
//! Why not the controller's own concurrency limit alone: a reconcile waiting on a budget holds
//! its slot. When the queue is ordered so that many resources of one licence come first (a
//! fleet applied licence by licence), they fill every slot while they queue for that licence's
//! 3.5 calls/s, and the other licences sit idle. Here a reconcile waits for its licence and
//! tenant *before* it holds anything, so resources of a busy licence wait behind each other
//! and never in front of another licence's; the number running grows with the licences and
//! tenants in the fleet, as the rates the SaaS gives it do.
//!
//! Per licence the admission lets through the calls its budget keeps in flight at a typical
//! latency (Little's law) four times over, since a reconcile spends much of its time on AIC,
//! Kubernetes or a poll between its PingOne calls; per tenant likewise. Every key is taken in
//! one global order, so two reconciles sharing keys cannot each hold what the other waits for.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Context;
use super::clients::Clients;
use super::lookup;
use crate::budget::BudgetConfig;
use crate::crd::TenantEnvironment;
use crate::pingone::client::license_key;

/// The latency of a typical SaaS call, for sizing what runs at once.
const TYPICAL_CALL_LATENCY: Duration = Duration::from_millis(500);
/// How many times the in-flight calls of a budget are admitted as reconciles.
const RECONCILES_PER_CALL_IN_FLIGHT: f64 = 4.0;
/// Fewest reconciles at once on one licence or tenant, whatever its rate.
const MIN_PER_KEY: usize = 2;

/// What a reconcile will spend budget on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Spends {
    /// A PingOne licence's budget (its key, as `pingone::client::license_key` gives it).
    License(String),
    /// An AIC tenant's budget (its origin).
    Tenant(String),
}

impl Spends {
    /// What working on `environment` spends: its AIC tenant, and its PingOne licence when
    /// `with_license`.
    pub(crate) fn of_environment(
        environment: &TenantEnvironment,
        with_license: bool,
        spends: &mut BTreeSet<Spends>,
    ) {
        if let Ok(origin) = crate::aic::tenant_origin(&environment.spec.tenant_url) {
            spends.insert(Spends::Tenant(origin.to_string()));
        }
        if with_license && let Ok(endpoints) = Clients::pingone_endpoints(environment) {
            let license = environment.spec.ping_one.license.as_deref();
            spends.insert(Spends::License(license_key(&endpoints, license)));
        }
    }

    /// What working on the TenantEnvironments `names` of `namespace` spends, as the cache
    /// holds them (one not there yet spends nothing).
    pub(crate) fn of_environments<'a>(
        ctx: &Context,
        namespace: Option<&str>,
        names: impl IntoIterator<Item = &'a str>,
        with_license: bool,
    ) -> BTreeSet<Spends> {
        let mut spends = BTreeSet::new();
        for name in names {
            if let Some(environment) = lookup::named(&ctx.tenants, namespace, name) {
                Self::of_environment(&environment, with_license, &mut spends);
            }
        }
        spends
    }
}

/// The admission gates of one scope, shared by its controllers.
pub(crate) struct Admission {
    per_license: usize,
    per_tenant: usize,
    /// Reconciles admitted at once per controller.
    per_controller: usize,
    gates: Mutex<HashMap<Spends, Arc<Semaphore>>>,
    controllers: Mutex<HashMap<&'static str, Arc<Semaphore>>>,
}

/// What an admitted reconcile holds until it ends.
#[must_use = "the reconcile is admitted while this lives"]
pub(crate) struct Admitted {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Admission {
    /// Gates sized from the PingOne licence budget and the AIC tenant budget, and at most
    /// `per_controller` reconciles of one controller at once.
    pub(crate) fn new(pingone: BudgetConfig, aic: BudgetConfig, per_controller: u16) -> Self {
        Self {
            per_license: reconciles_for(pingone),
            per_tenant: reconciles_for(aic),
            per_controller: usize::from(per_controller.max(1)),
            gates: Mutex::new(HashMap::new()),
            controllers: Mutex::new(HashMap::new()),
        }
    }

    /// Reconciles at once on one licence and on one tenant.
    pub(crate) fn per_key(&self) -> (usize, usize) {
        (self.per_license, self.per_tenant)
    }

    /// Waits until a reconcile of `controller` spending on `spends` may run: a place on each
    /// licence and tenant, in order, then a slot of the controller.
    pub(crate) async fn admit(
        &self,
        controller: &'static str,
        spends: BTreeSet<Spends>,
    ) -> Admitted {
        let mut permits = Vec::with_capacity(spends.len() + 1);
        // A BTreeSet iterates in order: every reconcile takes shared keys in the same order.
        for key in spends {
            let gate = self.gate(key);
            permits.push(acquire(gate).await);
        }
        let slots = self.controller_slots(controller);
        permits.push(acquire(slots).await);
        Admitted { _permits: permits }
    }

    fn gate(&self, key: Spends) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        let places = match key {
            Spends::License(_) => self.per_license,
            Spends::Tenant(_) => self.per_tenant,
        };
        gates
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(places)))
            .clone()
    }

    fn controller_slots(&self, controller: &'static str) -> Arc<Semaphore> {
        let mut controllers = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        controllers
            .entry(controller)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_controller)))
            .clone()
    }
}

async fn acquire(gate: Arc<Semaphore>) -> OwnedSemaphorePermit {
    // The gates are never closed.
    gate.acquire_owned()
        .await
        .unwrap_or_else(|_| unreachable!("admission gates are never closed"))
}

/// Reconciles admitted at once on one budget.
fn reconciles_for(budget: BudgetConfig) -> usize {
    let in_flight = budget.per_second * TYPICAL_CALL_LATENCY.as_secs_f64();
    let reconciles = (in_flight * RECONCILES_PER_CALL_IN_FLIGHT).ceil();
    // Small and positive: the cast loses nothing.
    (reconciles.clamp(1.0, 4096.0) as usize).max(MIN_PER_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budgets;

    fn license(name: &str) -> Spends {
        Spends::License(name.to_owned())
    }

    #[test]
    fn the_places_follow_the_rates() {
        let admission = Admission::new(Budgets::default().pingone(), Budgets::default().aic(), 64);
        // 3.5 calls/s × 0.5 s × 4 and 10 × 0.5 × 4.
        assert_eq!(admission.per_key(), (7, 20));
        let slow = Admission::new(
            BudgetConfig::per_second(0.1),
            BudgetConfig::per_second(0.1),
            8,
        );
        assert_eq!(slow.per_key(), (MIN_PER_KEY, MIN_PER_KEY));
    }

    #[tokio::test]
    async fn a_busy_licence_does_not_hold_back_another() {
        let admission = Admission::new(
            BudgetConfig::per_second(0.5),
            BudgetConfig::per_second(0.5),
            64,
        );
        let (per_license, _) = admission.per_key();
        let mut held = Vec::new();
        for _ in 0..per_license {
            held.push(admission.admit("c", BTreeSet::from([license("a")])).await);
        }
        // Licence a is full: one more waits…
        let waiting = admission.admit("c", BTreeSet::from([license("a")]));
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_err()
        );
        // …while licence b's reconciles go at once.
        let other = tokio::time::timeout(
            Duration::from_millis(20),
            admission.admit("c", BTreeSet::from([license("b")])),
        )
        .await;
        assert!(other.is_ok());
        // A place freed on a is taken by the one waiting.
        held.pop();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut waiting)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_controller_slots_bound_what_runs_once_admitted() {
        let admission = Admission::new(
            BudgetConfig::per_second(100.0),
            BudgetConfig::per_second(100.0),
            1,
        );
        let first = admission.admit("c", BTreeSet::from([license("a")])).await;
        let second = admission.admit("c", BTreeSet::from([license("b")]));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut second)
                .await
                .is_err()
        );
        // Another controller has slots of its own.
        let elsewhere = tokio::time::timeout(
            Duration::from_millis(20),
            admission.admit("d", BTreeSet::from([license("b")])),
        )
        .await;
        assert!(elsewhere.is_ok());
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut second)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn reconciles_sharing_keys_all_finish() {
        let admission = Arc::new(Admission::new(
            BudgetConfig::per_second(0.1),
            BudgetConfig::per_second(0.1),
            64,
        ));
        // MIN_PER_KEY places each; six reconciles want both keys or one of them.
        let keys = [
            BTreeSet::from([license("a"), Spends::Tenant("t".into())]),
            BTreeSet::from([Spends::Tenant("t".into())]),
            BTreeSet::from([license("a")]),
        ];
        let runs = (0..6).map(|i| {
            let admission = admission.clone();
            let keys = keys[i % 3].clone();
            async move {
                let _admitted = admission.admit("c", keys).await;
                tokio::task::yield_now().await;
            }
        });
        tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(runs))
            .await
            .expect("no deadlock");
    }
}
