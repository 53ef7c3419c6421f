//! End to end: the real controllers against devkube and both simulators, seeded from
//! `deploy/examples/`, carry every example resource to Ready.

use std::time::Duration;

use pingone_aic_playground::{Playground, PlaygroundOptions, repository_examples};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_become_ready() {
    crate::scenario_support::init_logs();
    let playground = Playground::start(PlaygroundOptions {
        examples: repository_examples(),
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    let result = playground
        .wait_ready(Duration::from_secs(300), |progress| {
            for line in progress {
                eprintln!(
                    "{:<45} {:<6} {:<24} {}",
                    line.resource, line.ready, line.reason, line.message
                );
            }
            eprintln!("--");
        })
        .await;
    let summary = playground.summary().await;
    eprintln!("{summary:?}");
    let events = events_of(&playground.client, "acme-worker").await;
    playground.stop().await;
    // Each environment's work is an Event of its own, related to its TenantEnvironment, rather
    // than one series per reason that keeps the first environment's note.
    for reason in ["WorkerApplicationCreated", "ConnectionVerified"] {
        let mut named: Vec<String> = events
            .iter()
            .filter(|(r, _, _)| r == reason)
            .map(|(_, related, note)| {
                assert!(
                    note.starts_with(&format!("{related}:")),
                    "{note} is about {related}"
                );
                related.clone()
            })
            .collect();
        named.sort();
        named.dedup();
        assert_eq!(
            named,
            ["acme-dev", "acme-prod", "acme-staging", "acme-uat"],
            "{reason}: {events:?}"
        );
    }
    let progress = result.unwrap_or_else(|last| panic!("not everything became Ready: {last:#?}"));
    assert!(progress.iter().all(|p| p.ready));
}

/// `(reason, related object's name, note)` of the Events about PingOneIntegration `name`.
async fn events_of(client: &kube::Client, name: &str) -> Vec<(String, String, String)> {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), "default");
    api.list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.related.and_then(|r| r.name).unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}
