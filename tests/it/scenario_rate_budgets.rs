//! Fleet-wide rate budgets at work: with PingOne's licence rate enforced (and low), the
//! examples converge with hardly a 429, because every reconcile spends the licence's one
//! budget; and a tenant whose AIC answers slowly delays no other promotion group.

use crate::scenario_support;

use std::time::Duration;

use pingone_aic_operator::budget::Budgets;
use pingone_aic_playground::{Playground, PlaygroundOptions, repository_examples};
use pingone_aic_sim::aic::Fault;
use pingone_aic_sim::pingone::RateLimit;
use scenario_support::*;

async fn start_with(budgets: Budgets) -> Playground {
    init_logs();
    Playground::start(PlaygroundOptions {
        examples: repository_examples(),
        resync: Duration::from_secs(5),
        budgets,
        ..Default::default()
    })
    .await
    .expect("the playground starts")
}

fn refused(calls: &[pingone_aic_sim::control::CallRecord]) -> usize {
    calls.iter().filter(|c| c.status == 429).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_low_licence_rate_the_examples_converge_with_few_429s() {
    // The licence allows 3 requests/s; the operator, as one IP, takes half of it. The other
    // half is what the AIC simulator's testConnection calls to PingOne use, as other clients
    // of a real licence would.
    let licence_rate = 3.0;
    let playground = start_with(Budgets {
        pingone_license_rate: licence_rate,
        pingone_ip_share: 0.5,
        ..Budgets::default()
    })
    .await;
    playground.pingone.set_rate_limit(Some(RateLimit {
        requests_per_second: licence_rate,
        burst: Some(3),
    }));
    ready(&playground).await;
    let calls = playground.pingone_control.calls();
    let api_calls = calls.iter().filter(|c| c.path.starts_with("/v1/")).count();
    let limited = refused(&calls);
    eprintln!("{limited} of {api_calls} PingOne API calls answered 429");
    assert!(
        api_calls > 20,
        "the examples took {api_calls} PingOne calls"
    );
    assert!(
        limited <= 3,
        "{limited} of {api_calls} PingOne calls were refused"
    );

    // The limit was really on: a client that ignores it is refused at once.
    let http = pingone_aic_operator::http::client("test").unwrap();
    let worker = playground.pingone.workers().remove(0);
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/as/token",
            playground.pingone_url, worker.environment_id
        ))
        .basic_auth(&worker.id, Some(worker.secret.as_str()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let before = refused(&playground.pingone_control.calls());
    for _ in 0..20 {
        http.get(format!("{}/v1/roles", playground.pingone_url))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
    }
    let after = refused(&playground.pingone_control.calls());
    assert!(
        after - before >= 5,
        "only {} of 20 unbudgeted calls were refused",
        after - before
    );
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tenant_delays_no_other_promotion_group() {
    let playground = start_with(Budgets::default()).await;
    // The sandbox's AIC takes 15 s for every answer; its promotion group is itself alone.
    playground.aic.inject_fault(Fault {
        tenant: Some("acme-sandbox".into()),
        method: None,
        path: "/".into(),
        status: None,
        retry_after: None,
        latency_ms: 15_000,
        count: 100_000,
    });
    let others = [
        "TenantEnvironment/acme-dev",
        "TenantEnvironment/acme-uat",
        "TenantEnvironment/acme-staging",
        "TenantEnvironment/acme-prod",
        "PingOneIntegration/acme-worker",
    ];
    let progress = eventually("the acme group to converge", || async {
        let progress = playground.progress().await.ok()?;
        let group_ready = others
            .iter()
            .all(|name| progress.iter().any(|p| p.resource == *name && p.ready));
        group_ready.then_some(progress)
    })
    .await;
    // The group got there while the slow tenant's integration was still waiting on it.
    let sandbox = progress
        .iter()
        .find(|p| p.resource == "PingOneIntegration/acme-sandbox-connection")
        .expect("the sandbox integration exists");
    assert!(!sandbox.ready, "{progress:#?}");
    assert!(
        playground
            .aic
            .calls()
            .iter()
            .any(|c| c.tenant == "acme-sandbox"),
        "the slow tenant was being worked on"
    );

    // Once its AIC is fast again, the sandbox converges too.
    playground.aic.clear_faults();
    ready(&playground).await;
    playground.stop().await;
}
