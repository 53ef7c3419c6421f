//! Prometheus metrics of the operator: reconciliations, external API calls, restarts and
//! promotions, and leadership. Label values are stable reason strings, never names of secrets
//! or anything user-controlled without bound.

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
    pub external_calls: Family<ExternalCallLabels, Counter>,
    /// AIC restarts the operator requested.
    pub restarts: Counter,
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
        let external_calls = Family::<ExternalCallLabels, Counter>::default();
        registry.register(
            "external_calls",
            "Calls to the PingOne and Advanced Identity Cloud APIs",
            external_calls.clone(),
        );
        let restarts = Counter::default();
        registry.register(
            "restarts",
            "Advanced Identity Cloud restarts requested",
            restarts.clone(),
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
        self.external_calls
            .get_or_create(&ExternalCallLabels {
                service: service.to_owned(),
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
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
}
