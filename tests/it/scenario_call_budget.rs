//! Between resyncs, reconciles caused by events cost no SaaS call: once the examples are Ready,
//! metadata changes on every resource (each one a watch event and a reconcile of it and of the
//! resources that follow it) while several resync periods pass add nothing to what the
//! resyncs themselves read, which is at most six reads per environment each.

use crate::scenario_support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use pingone_aic_operator::crd::{PingOneIntegration, TenantEnvironment};
use pingone_aic_playground::repository_examples;
use scenario_support::*;

/// Sets a meaningless annotation on every TenantEnvironment and PingOneIntegration.
async fn touch_everything(client: &kube::Client, round: usize) {
    let patch = Patch::Merge(serde_json::json!({
        "metadata": {"annotations": {"test.example/touch": round.to_string()}}
    }));
    let tenants: Api<TenantEnvironment> = Api::namespaced(client.clone(), "default");
    for tenant in tenants.list(&Default::default()).await.expect("tenants") {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        tenants
            .patch(&name, &PatchParams::default(), &patch)
            .await
            .expect("annotate a TenantEnvironment");
    }
    let integrations: Api<PingOneIntegration> = Api::namespaced(client.clone(), "default");
    for integration in integrations
        .list(&Default::default())
        .await
        .expect("integrations")
    {
        let name = integration.metadata.name.clone().unwrap_or_default();
        integrations
            .patch(&name, &PatchParams::default(), &patch)
            .await
            .expect("annotate a PingOneIntegration");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_between_resyncs_read_nothing_and_a_resync_reads_six_per_environment() {
    let resync = Duration::from_secs(3);
    let playground = start(repository_examples(), resync).await;
    ready(&playground).await;
    // Let what follows Ready settle (last verifications, status patches).
    tokio::time::sleep(resync * 2).await;

    let environments = 5;
    let periods = 3;
    let pingone_start = playground.pingone_control.calls().len();
    let aic_start = playground.aic.calls().len();
    let rounds = 12;
    let window = std::time::Instant::now();
    for round in 0..rounds {
        touch_everything(&playground.client, round).await;
        tokio::time::sleep(resync * periods / rounds as u32).await;
    }
    let pingone = playground.pingone_control.calls()[pingone_start..].to_vec();
    let aic = playground.aic.calls()[aic_start..].to_vec();
    // On a loaded machine the rounds themselves take time: count the periods the window
    // really spanned, not the ones it was meant to.
    let spanned = window.elapsed().as_secs_f64() / resync.as_secs_f64();
    let periods = (spanned.ceil() as u32).max(periods);
    playground.stop().await;

    assert!(pingone_writes(&pingone).is_empty(), "{pingone:?}");
    assert!(aic_writes(&aic).is_empty(), "{aic:?}");
    // Every resource is resynced at most once per period, plus once for a period cut by the
    // window's ends; each of the twelve rounds of events, observed as in full, would cost
    // about eight reads per environment on its own.
    let reads = pingone.len() + aic.len();
    eprintln!("{reads} SaaS reads in {periods} resync periods with {rounds} rounds of events");
    let bound = 6 * environments * (periods as usize + 1);
    assert!(
        reads <= bound,
        "{reads} SaaS calls in {periods} resync periods with {rounds} rounds of events; at most {bound} expected: {:?}",
        aic.iter()
            .map(|c| format!("{} {} {}", c.tenant, c.method, c.path))
            .chain(
                pingone
                    .iter()
                    .map(|c| format!("PingOne {} {}", c.method, c.path))
            )
            .collect::<Vec<_>>()
    );
    assert!(
        reads > 0,
        "the resyncs in the window looked at the remote state"
    );
}
