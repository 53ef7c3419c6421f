//! Prometheus metrics of the operator: reconciliations, external API calls, restarts and
//! promotions, and leadership. Label values are stable reason strings, never names of secrets
//! or anything user-controlled without bound; the only object names are those of resources in
//! a state that ends (a restart running, a promotion lock held), removed when it does.
//!
//! The chart's PrometheusRule and Grafana dashboard query these names; the artifact checks
//! compare them with what `pingone-aic-operator metrics` prints.

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a reconciliation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// The resource kind, e.g. `TenantEnvironment`.
    pub controller: String,
    /// `success`, or the stable reason of the error.
    pub result: String,
}

/// Labels of a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The resource kind.
    pub controller: String,
}

/// Labels of a call to an external API.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExternalCallLabels {
    /// `pingone` or `aic`.
    pub service: String,
    /// The operation, e.g. `create_application`.
    pub operation: String,
    /// `ok`, or the stable reason of the failure.
    pub outcome: String,
}

/// Labels naming one resource while it is in a state that ends. Not `namespace`: Prometheus
/// gives the scraped pod's namespace that name, and would rename a clashing label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// The resource's namespace.
    pub resource_namespace: String,
    /// The resource's name.
    pub resource_name: String,
}

impl ObjectLabels {
    fn new(namespace: &str, name: &str) -> Self {
        Self {
            resource_namespace: namespace.to_owned(),
            resource_name: name.to_owned(),
        }
    }
}

/// The counter of HTTP calls to PingOne and AIC. The SaaS clients are built before the
/// registry, so they get this handle and [`Metrics::with_external_calls`] exposes the same
/// counter; a clone counts into the same series.
#[derive(Clone, Default)]
pub struct ExternalCalls(Family<ExternalCallLabels, Counter>);

impl std::fmt::Debug for ExternalCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalCalls")
    }
}

impl ExternalCalls {
    /// Counts one HTTP answer (or a call that got none): `outcome` is `ok` or the stable reason
    /// of the error it became, e.g. `PingOneRateLimited` for a 429. Every attempt counts, so
    /// the 429s a retry absorbed show too.
    pub fn record(&self, service: &str, operation: &str, outcome: &str) {
        self.0
            .get_or_create(&ExternalCallLabels {
                service: service.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// Labels of a finished promotion.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded` or `failed`.
    pub outcome: String,
}

/// The operator's metrics and the registry that exposes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by controller and result.
    pub reconciliations: Family<ReconcileLabels, Counter>,
    /// Reconciliation duration by controller.
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// Calls to PingOne and AIC by operation and outcome.
    pub external_calls: ExternalCalls,
    /// AIC restarts the operator requested.
    pub restarts: Counter,
    /// When the running restart of each restarting TenantEnvironment was requested.
    pub restart_started: Family<ObjectLabels, Gauge>,
    /// When this process first saw each Promotion holding the promotion lock.
    pub promotion_lock_acquired: Family<ObjectLabels, Gauge>,
    /// Promotions by outcome.
    pub promotions: Family<OutcomeLabels, Counter>,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `pingone_aic` prefix.
    pub fn new() -> Self {
        Self::with_external_calls(ExternalCalls::default())
    }

    /// Registers every metric, exposing `external_calls` (the SaaS clients' handle) as the
    /// external call counter.
    pub fn with_external_calls(external_calls: ExternalCalls) -> Self {
        let mut registry = Registry::with_prefix("pingone_aic");
        let reconciliations = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconciliations by controller and result",
            reconciliations.clone(),
        );
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            });
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            reconcile_duration.clone(),
        );
        registry.register(
            "external_calls",
            "HTTP calls to the PingOne and Advanced Identity Cloud APIs, retries included",
            external_calls.0.clone(),
        );
        let restarts = Counter::default();
        registry.register(
            "restarts",
            "Advanced Identity Cloud restarts requested",
            restarts.clone(),
        );
        let restart_started = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "restart_started_timestamp_seconds",
            "When the running AIC restart of a TenantEnvironment was requested (Unix time)",
            restart_started.clone(),
        );
        let promotion_lock_acquired = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "promotion_lock_acquired_timestamp_seconds",
            "When this operator was first seen holding the promotion lock for a Promotion (Unix time)",
            promotion_lock_acquired.clone(),
        );
        let promotions = Family::<OutcomeLabels, Counter>::default();
        registry.register("promotions", "Promotions by outcome", promotions.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciliations,
            reconcile_duration,
            external_calls,
            restarts,
            restart_started,
            promotion_lock_acquired,
            promotions,
            leader,
        }
    }

    /// Records one reconciliation.
    pub fn record_reconcile(&self, controller: &str, result: &str, seconds: f64) {
        self.reconciliations
            .get_or_create(&ReconcileLabels {
                controller: controller.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.to_owned(),
            })
            .observe(seconds);
    }

    /// Records one call to an external API.
    pub fn record_external_call(&self, service: &str, operation: &str, outcome: &str) {
        self.external_calls.record(service, operation, outcome);
    }

    /// Sets whether a TenantEnvironment is restarting, and since when (its status' record);
    /// a restart that ended removes the series.
    pub fn record_restart_state(&self, namespace: &str, name: &str, since: Option<&Timestamp>) {
        let labels = ObjectLabels::new(namespace, name);
        match since {
            Some(since) => {
                self.restart_started
                    .get_or_create(&labels)
                    .set(since.as_second());
            }
            None => {
                self.restart_started.remove(&labels);
            }
        }
    }

    /// Sets whether a Promotion holds the promotion lock. The status records no time, so the
    /// first time this process sees it held counts: after a restart of the operator the series
    /// starts anew, late rather than wrong.
    pub fn record_promotion_lock(&self, namespace: &str, name: &str, held: bool) {
        let labels = ObjectLabels::new(namespace, name);
        if held {
            let since = self.promotion_lock_acquired.get_or_create(&labels);
            if since.get() == 0 {
                since.set(Timestamp::now().as_second());
            }
        } else {
            self.promotion_lock_acquired.remove(&labels);
        }
    }

    /// A registry with a series in every family, recorded the way the operator records them:
    /// an empty family prints nothing, so this is how the `metrics` command lists every name
    /// the operator exports (the chart's alerts and dashboard are checked against it).
    pub fn sample() -> Self {
        let metrics = Self::new();
        metrics.record_reconcile("TenantEnvironment", "success", 0.01);
        metrics.record_external_call("pingone", "get_token", "ok");
        metrics.restarts.inc();
        metrics.record_restart_state(
            "namespace",
            "tenant-environment",
            Some(&Timestamp::UNIX_EPOCH),
        );
        metrics.record_promotion_lock("namespace", "promotion", true);
        metrics
            .promotions
            .get_or_create(&OutcomeLabels {
                outcome: "succeeded".to_owned(),
            })
            .inc();
        metrics
    }

    /// This replica stopped reconciling: it drops the states it reported (restarts, locks),
    /// which the new leader reports from then on.
    pub fn stopped_leading(&self) {
        self.leader.set(0);
        self.restart_started.clear();
        self.promotion_lock_acquired.clear();
    }

    /// The metrics in the OpenMetrics text format Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.record_reconcile("TenantEnvironment", "success", 0.02);
        metrics.record_reconcile("TenantEnvironment", "success", 0.03);
        metrics.record_external_call("pingone", "create_application", "ok");
        metrics.restarts.inc();
        metrics.leader.set(1);
        let text = metrics.encode();
        assert!(text.contains(
            r#"pingone_aic_reconciliations_total{controller="TenantEnvironment",result="success"} 2"#
        ), "{text}");
        assert!(text.contains(
            r#"pingone_aic_external_calls_total{service="pingone",operation="create_application",outcome="ok"} 1"#
        ), "{text}");
        assert!(text.contains("pingone_aic_restarts_total 1"), "{text}");
        assert!(text.contains("pingone_aic_leader 1"), "{text}");
        assert!(
            text.contains(
                r#"pingone_aic_reconcile_duration_seconds_count{controller="TenantEnvironment"} 2"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_sample_shows_every_family_registered() {
        let text = Metrics::sample().encode();
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        // One per `registry.register` call in `with_external_calls`.
        let registered = include_str!("metrics.rs")
            .matches(concat!("registry", ".register("))
            .count();
        assert_eq!(families, registered, "{text}");
    }

    #[test]
    fn calls_counted_by_the_clients_handle_appear_in_the_exposition() {
        let calls = ExternalCalls::default();
        let metrics = Metrics::with_external_calls(calls.clone());
        calls.record("aic", "esv", "AICRateLimited");
        calls.clone().record("aic", "esv", "AICRateLimited");
        calls.record("pingone", "get_token", "ok");
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"pingone_aic_external_calls_total{service="aic",operation="esv",outcome="AICRateLimited"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"pingone_aic_external_calls_total{service="pingone",operation="get_token",outcome="ok"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_restart_in_progress_is_exposed_until_it_ends() {
        let metrics = Metrics::new();
        let since: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        metrics.record_restart_state("team-a", "dev", Some(&since));
        let series = format!(
            r#"pingone_aic_restart_started_timestamp_seconds{{resource_namespace="team-a",resource_name="dev"}} {}"#,
            since.as_second()
        );
        assert!(metrics.encode().contains(&series), "{}", metrics.encode());
        metrics.record_restart_state("team-a", "dev", None);
        let text = metrics.encode();
        assert!(
            !text.contains("pingone_aic_restart_started_timestamp_seconds"),
            "{text}"
        );
    }

    #[test]
    fn a_held_promotion_lock_keeps_its_first_seen_time_until_released() {
        let metrics = Metrics::new();
        let before = Timestamp::now().as_second();
        metrics.record_promotion_lock("team-a", "to-uat", true);
        let labels = ObjectLabels::new("team-a", "to-uat");
        let first = metrics.promotion_lock_acquired.get_or_create(&labels).get();
        assert!(first >= before, "{first} < {before}");
        metrics
            .promotion_lock_acquired
            .get_or_create(&labels)
            .set(first - 600);
        metrics.record_promotion_lock("team-a", "to-uat", true);
        let text = metrics.encode();
        let series = format!(
            r#"pingone_aic_promotion_lock_acquired_timestamp_seconds{{resource_namespace="team-a",resource_name="to-uat"}} {}"#,
            first - 600
        );
        assert!(text.contains(&series), "{text}");
        metrics.record_promotion_lock("team-a", "to-uat", false);
        assert!(!metrics.encode().contains(r#"resource_name="to-uat""#));
    }

    #[test]
    fn a_replica_that_stops_leading_reports_no_restart_or_lock() {
        let metrics = Metrics::new();
        metrics.leader.set(1);
        metrics.record_restart_state("team-a", "dev", Some(&Timestamp::now()));
        metrics.record_promotion_lock("team-a", "to-uat", true);
        metrics.stopped_leading();
        let text = metrics.encode();
        assert!(text.contains("pingone_aic_leader 0"), "{text}");
        assert!(!text.contains("resource_name="), "{text}");
    }
}
