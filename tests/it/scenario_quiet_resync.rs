//! A resync without changes costs the Kubernetes API almost nothing: once the examples are
//! Ready and settled, resync periods read no Secret and write nothing, and send at most one
//! request per managed resource and period. A Secret that changes (a new resourceVersion) is
//! read again by the reconciles it triggers, and what derives from it (the service account's
//! AIC token) is renewed from the new version; then the resyncs are quiet again.

use crate::scenario_support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use pingone_aic_playground::{Playground, repository_examples};
use scenario_support::*;

/// Requests that read a Secret's data (GET of one Secret).
fn secret_reads(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| {
            let path = r.split(['?', ' ']).nth(1).unwrap_or_default();
            r.starts_with("GET ") && path.contains("/secrets/")
        })
        .cloned()
        .collect()
}

/// The operator's requests: all but the playground's stand-in user's, who lists the resources
/// without parameters every few moments (the operator's watchers list with parameters).
fn operator_requests(requests: Vec<String>) -> Vec<String> {
    requests
        .into_iter()
        .filter(|r| {
            let path = r.split(' ').nth(1).unwrap_or_default();
            let user_list = r.starts_with("GET ")
                && !path.contains('?')
                && ["/tenantenvironments", "/pingoneintegrations", "/promotions"]
                    .iter()
                    .any(|kind| path.ends_with(kind));
            !user_list
        })
        .collect()
}

/// Requests that change something.
fn writes(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| !r.starts_with("GET "))
        .cloned()
        .collect()
}

async fn managed_resources(client: &kube::Client) -> usize {
    let tenants: Api<TenantEnvironment> = Api::namespaced(client.clone(), "default");
    let integrations: Api<PingOneIntegration> = Api::namespaced(client.clone(), "default");
    let promotions: Api<Promotion> = Api::namespaced(client.clone(), "default");
    let lp = Default::default();
    tenants.list(&lp).await.expect("tenants").items.len()
        + integrations
            .list(&lp)
            .await
            .expect("integrations")
            .items
            .len()
        + promotions.list(&lp).await.expect("promotions").items.len()
}

/// Waits for a resync window in which the operator wrote nothing to Kubernetes.
async fn settle(playground: &Playground, resync: Duration) {
    for _ in 0..6 {
        let before = playground.devkube().requests().len();
        tokio::time::sleep(resync * 2).await;
        if writes(&playground.devkube().requests()[before..]).is_empty() {
            return;
        }
    }
    panic!("the operator kept writing to Kubernetes after Ready");
}

/// The operator's Kubernetes requests in a window of at least `periods` resync periods, and how many
/// periods it really spanned (a loaded machine stretches it).
async fn window(playground: &Playground, resync: Duration, periods: u32) -> (Vec<String>, u32) {
    let start = playground.devkube().requests().len();
    let began = std::time::Instant::now();
    tokio::time::sleep(resync * periods + resync / 4).await;
    let requests = operator_requests(playground.devkube().requests()[start..].to_vec());
    let spanned = (began.elapsed().as_secs_f64() / resync.as_secs_f64()).ceil() as u32;
    (requests, spanned.max(periods))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_resyncs_read_no_secret_and_a_changed_secret_is_read_again() {
    let resync = Duration::from_secs(2);
    let playground = start(repository_examples(), resync).await;
    ready(&playground).await;
    settle(&playground, resync).await;
    let resources = managed_resources(&playground.client).await;

    let (requests, periods) = window(&playground, resync, 3).await;
    eprintln!(
        "{} Kubernetes requests in {periods} resync periods for {resources} resources: {requests:?}",
        requests.len()
    );
    assert_eq!(secret_reads(&requests), Vec::<String>::new());
    assert_eq!(writes(&requests), Vec::<String>::new());
    // Every resource is resynced once per period, plus once for a period cut by the window's
    // ends.
    let bound = resources * (periods as usize + 1);
    assert!(
        requests.len() <= bound,
        "{} requests, at most {bound} expected: {requests:?}",
        requests.len()
    );

    // A new resourceVersion of the development tenant's service-account Secret (an unrelated
    // key added; the private key is the same).
    let tenants: Api<TenantEnvironment> = Api::namespaced(playground.client.clone(), "default");
    let dev = tenants.get("acme-dev").await.expect("acme-dev");
    let key_secret = dev.spec.service_account.private_key_secret_ref.name.clone();
    let aic_before = playground.aic.calls().len();
    let kube_before = playground.devkube().requests().len();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(playground.client.clone(), "default");
    secrets
        .patch(
            &key_secret,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"note": "rotated-by-test"}})),
        )
        .await
        .expect("the Secret changes");
    let reread = format!("/namespaces/default/secrets/{key_secret}");
    eventually(
        "the changed Secret is read and a token minted from it",
        || {
            let playground = &playground;
            let reread = reread.clone();
            async move {
                let read = secret_reads(&playground.devkube().requests()[kube_before..])
                    .iter()
                    .any(|r| r.contains(&reread));
                let minted = playground.aic.calls()[aic_before..]
                    .iter()
                    .any(|c| c.tenant == "acme-dev" && c.path.ends_with("/access_token"));
                (read && minted).then_some(())
            }
        },
    )
    .await;
    ready(&playground).await;
    settle(&playground, resync).await;

    let (requests, periods) = window(&playground, resync, 2).await;
    playground.stop().await;
    assert_eq!(secret_reads(&requests), Vec::<String>::new());
    assert_eq!(writes(&requests), Vec::<String>::new());
    assert!(
        requests.len() <= resources * (periods as usize + 1),
        "{requests:?}"
    );
}

#[test]
fn secret_reads_and_writes_are_told_apart() {
    let lines = [
        "GET /api/v1/namespaces/default/secrets/admin -> 200".to_owned(),
        "GET /api/v1/namespaces/default/secrets?watch=true&resourceVersion=5 -> 200".to_owned(),
        "GET /apis/pingone-aic.io/v1alpha1/namespaces/default/tenantenvironments -> 200".to_owned(),
        "PATCH /api/v1/namespaces/default/secrets/admin -> 200".to_owned(),
    ];
    assert_eq!(secret_reads(&lines), vec![lines[0].clone()]);
    assert_eq!(writes(&lines), vec![lines[3].clone()]);
    let operator = operator_requests(lines.to_vec());
    assert_eq!(operator.len(), 3);
    assert!(!operator.contains(&lines[2]));
}
