//! An outage shows: when AIC keeps failing for a tenant environment, the operator keeps
//! retrying and, after several failures in a row, its Ready condition says why; once AIC
//! answers again, Ready recovers without anyone touching the resource.

use crate::scenario_support;

use std::time::Duration;

use kube::api::Api;
use pingone_aic_operator::crd::TenantEnvironment;
use pingone_aic_operator::status;
use pingone_aic_playground::repository_examples;
use pingone_aic_sim::aic::Fault;
use scenario_support::*;

async fn ready_condition(
    playground: &pingone_aic_playground::Playground,
    name: &str,
) -> Option<(String, String, String)> {
    let api: Api<TenantEnvironment> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    let tenant = api.get(name).await.ok()?;
    let conditions = tenant.status?.conditions;
    let ready = status::find(&conditions, "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_aic_outage_shows_in_ready_and_clears_by_itself() {
    let playground = start(repository_examples(), Duration::from_secs(1)).await;
    ready(&playground).await;

    playground.aic.inject_fault(Fault {
        tenant: Some("acme-sandbox".into()),
        method: None,
        path: "/environment".into(),
        status: Some(503),
        retry_after: None,
        latency_ms: 0,
        count: 100_000,
    });
    let (_, reason, message) = eventually("Ready to report the outage", || async {
        ready_condition(&playground, "acme-sandbox")
            .await
            .filter(|(status, _, _)| status == "False")
    })
    .await;
    assert!(
        reason.starts_with("AIC"),
        "reason {reason:?} names the failing service"
    );
    assert!(message.contains("retrying after"), "{message}");

    // Another tenant, not failing, stays Ready.
    let other = ready_condition(&playground, "acme-dev").await.unwrap();
    assert_eq!(other.0, "True");

    playground.aic.clear_faults();
    eventually("Ready to recover", || async {
        ready_condition(&playground, "acme-sandbox")
            .await
            .filter(|(status, _, _)| status == "True")
    })
    .await;
    playground.stop().await;
}
