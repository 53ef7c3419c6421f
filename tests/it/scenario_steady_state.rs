//! Steady state costs nothing: once every example resource is Ready, resyncs without drift
//! make no write call to PingOne or AIC (reads and token requests only; `testConnection` counts
//! as a write because it is verification done once per change), restart nothing, and patch no
//! status.

use crate::scenario_support;

use std::time::Duration;

use pingone_aic_playground::repository_examples;
use scenario_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_without_drift_write_nothing() {
    let resync = Duration::from_secs(2);
    let playground = start(repository_examples(), resync).await;
    ready(&playground).await;

    // Let the work that follows Ready (superseded versions, the last status patches) finish:
    // wait for a resync window in which nothing was written.
    let mut quiet_windows = 0;
    loop {
        quiet_windows += 1;
        assert!(
            quiet_windows <= 4,
            "the operator kept writing for {quiet_windows} resync windows after Ready"
        );
        let pingone_before = playground.pingone_control.calls().len();
        let aic_before = playground.aic.calls().len();
        let kube_before = playground.devkube().requests().len();
        tokio::time::sleep(resync * 2).await;
        let pingone = pingone_writes(&playground.pingone_control.calls()[pingone_before..]);
        let aic = aic_writes(&playground.aic.calls()[aic_before..]);
        let kube = status_writes(&playground.devkube().requests()[kube_before..]);
        if pingone.is_empty() && aic.is_empty() && kube.is_empty() {
            break;
        }
        eprintln!("still settling: {pingone:?} {aic:?} {kube:?}");
    }

    let restarts_before = playground.summary().await.restarts;
    let pingone_start = playground.pingone_control.calls().len();
    let aic_start = playground.aic.calls().len();
    let kube_start = playground.devkube().requests().len();
    // At least two resyncs of every resource.
    tokio::time::sleep(resync * 3 + Duration::from_millis(500)).await;
    let pingone = playground.pingone_control.calls()[pingone_start..].to_vec();
    let aic = playground.aic.calls()[aic_start..].to_vec();
    let kube = playground.devkube().requests()[kube_start..].to_vec();
    let summary = playground.summary().await;
    let progress = playground.progress().await.expect("progress");
    let restarts_per_tenant: Vec<(String, i64)> = {
        let tenants: kube::Api<pingone_aic_operator::crd::TenantEnvironment> =
            kube::Api::namespaced(playground.client.clone(), "default");
        tenants
            .list(&Default::default())
            .await
            .expect("tenants")
            .items
            .iter()
            .map(|t| {
                (
                    kube::ResourceExt::name_any(t),
                    t.status
                        .as_ref()
                        .and_then(|s| s.restart.as_ref())
                        .map_or(0, |r| r.restart_count),
                )
            })
            .collect()
    };
    playground.stop().await;
    eprintln!("restarts per tenant: {restarts_per_tenant:?}");
    // Every tenant needed its ESVs loaded once: exactly one restart each, however many
    // integrations and changes went into it.
    for (tenant, count) in &restarts_per_tenant {
        assert_eq!(*count, 1, "{tenant} restarted {count} times");
    }

    assert!(progress.iter().all(|p| p.ready), "{progress:#?}");
    assert!(
        !aic.is_empty(),
        "resyncs happened (the operator read something)"
    );
    assert_eq!(pingone_writes(&pingone), Vec::<String>::new());
    assert_eq!(aic_writes(&aic), Vec::<String>::new());
    assert_eq!(status_writes(&kube), Vec::<String>::new());
    assert_eq!(
        summary.restarts, restarts_before,
        "no restart in steady state"
    );
    eprintln!(
        "steady state over {:?}: {} PingOne calls, {} AIC calls, {} Kubernetes requests",
        resync * 3,
        pingone.len(),
        aic.len(),
        kube.len()
    );
    let mut per_tenant = std::collections::BTreeMap::<String, usize>::new();
    for call in &aic {
        *per_tenant.entry(call.tenant.clone()).or_default() += 1;
    }
    eprintln!("AIC calls per tenant: {per_tenant:?}");
}

#[test]
fn status_writes_are_recognised_with_or_without_a_status_suffix() {
    let lines = [
        "PATCH /apis/pingone-aic.io/v1alpha1/namespaces/default/tenantenvironments/a/status".to_owned(),
        "PATCH /apis/pingone-aic.io/v1alpha1/namespaces/default/tenantenvironments/a/status?fieldManager=x -> 200".to_owned(),
        "PATCH /apis/pingone-aic.io/v1alpha1/namespaces/default/tenantenvironments/a -> 200".to_owned(),
        "GET /apis/pingone-aic.io/v1alpha1/namespaces/default/tenantenvironments/a/status -> 200".to_owned(),
    ];
    assert_eq!(status_writes(&lines).len(), 2);
}
