//! Lifecycle of integrations in one tenant environment: `deletionPolicy` Retain and Delete
//! (created applications deleted, adopted ones kept), `pingone-aic.io/paused`, and conflicts
//! (two integrations claiming the same ESVs, two applications of the same name).

use crate::scenario_support;

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use pingone_aic_operator::crd::PingOneIntegration;
use scenario_support::*;

fn dev_only(name: &str) -> std::path::PathBuf {
    examples_dir(
        name,
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policies_retain_and_delete() {
    let dir = dev_only("deletion");
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;
    let adopted_app = create_app(&playground, "Adopted Worker").await;
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("keep", "Keep Worker", "  deletionPolicy: Retain"),
    )
    .await;
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("drop", "Drop Worker", "  deletionPolicy: Delete"),
    )
    .await;
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("adopted", "Adopted Worker", "  deletionPolicy: Delete"),
    )
    .await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let app_of = |name: &'static str| {
        let api = api.clone();
        async move {
            api.get(name)
                .await
                .expect("the integration")
                .status
                .expect("a status")
                .environments[0]
                .worker_app_id
                .clone()
                .expect("an application")
        }
    };
    let keep_app = app_of("keep").await;
    let drop_app = app_of("drop").await;
    assert_eq!(
        app_of("adopted").await,
        adopted_app,
        "the existing application was adopted"
    );

    for name in ["keep", "drop", "adopted"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    eventually("the integrations gone", || {
        let api = api.clone();
        async move {
            api.list(&Default::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        }
    })
    .await;
    let snapshot = playground.aic.snapshot();
    let dev = &snapshot["tenants"]["acme-dev"];
    let has_app = |id: &str| !pingone_app(&playground, id).is_null();
    let (keep_exists, drop_exists, adopted_exists) = (
        has_app(&keep_app),
        has_app(&drop_app),
        has_app(&adopted_app),
    );
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    // Retain: everything stays.
    assert!(keep_exists, "Retain keeps the application");
    assert!(!dev["variables"]["esv-keep-client-id"].is_null());
    assert!(!dev["secrets"]["esv-keep-client-secret"].is_null());
    assert!(!dev["realms"]["alpha"]["workers"]["keep-svc"].is_null());
    assert!(
        !dev["realms"]["alpha"]["mappings"]["am.services.pingone.worker.keeplabel.clientsecret"]
            .is_null()
    );
    // Delete: what the operator created is gone; the adopted application stays.
    assert!(
        !drop_exists,
        "Delete deletes the application the operator created"
    );
    assert!(adopted_exists, "Delete keeps an adopted application");
    for name in ["drop", "adopted"] {
        assert!(
            dev["variables"][format!("esv-{name}-client-id")].is_null(),
            "{name}"
        );
        assert!(
            dev["variables"][format!("esv-{name}-environment-id")].is_null(),
            "{name}"
        );
        assert!(
            dev["secrets"][format!("esv-{name}-client-secret")].is_null(),
            "{name}"
        );
        assert!(
            dev["realms"]["alpha"]["workers"][format!("{name}-svc")].is_null(),
            "{name}"
        );
        assert!(
            dev["realms"]["alpha"]["mappings"]
                [format!("am.services.pingone.worker.{name}label.clientsecret")]
            .is_null(),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_integration_changes_nothing() {
    let dir = dev_only("paused");
    let playground = start(dir.clone(), Duration::from_secs(1)).await;
    ready(&playground).await;
    let text = worker_integration("paused", "Paused Worker", "").replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    pingone-aic.io/paused: \"true\"\n",
    );
    let pingone_start = playground.pingone_control.calls().len();
    let aic_start = playground.aic.calls().len();
    apply_yaml::<PingOneIntegration>(&playground, &text).await;
    let (status, reason, _) = eventually("the Paused condition", || {
        let playground = &playground;
        async move { integration_ready(playground, "paused").await }
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Paused"));
    // Several resyncs later, still nothing written anywhere.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pingone = pingone_writes(&playground.pingone_control.calls()[pingone_start..]);
    let aic = aic_writes(&playground.aic.calls()[aic_start..]);
    assert_eq!(pingone, Vec::<String>::new());
    assert_eq!(aic, Vec::<String>::new());

    // Unpaused, it does its work.
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    api.patch(
        "paused",
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"pingone-aic.io/paused": null}}}),
        ),
    )
    .await
    .expect("unpaused");
    ready(&playground).await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_reported_never_guessed() {
    let dir = dev_only("conflicts");
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;
    // Two applications of the same name: the operator will not pick one.
    create_app(&playground, "Twin Worker").await;
    create_app(&playground, "Twin Worker").await;
    apply_yaml::<PingOneIntegration>(&playground, &worker_integration("twins", "Twin Worker", ""))
        .await;
    // Two integrations claiming the same ESVs and service: the later one reports Conflict.
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("first", "First Worker", ""),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second =
        worker_integration("first", "Second Worker", "").replace("name: first\n", "name: second\n");
    apply_yaml::<PingOneIntegration>(&playground, &second).await;

    let twins = eventually("twins reports a conflict", || {
        let playground = &playground;
        async move {
            integration_ready(playground, "twins")
                .await
                .filter(|r| r.1 == "Conflict")
        }
    })
    .await;
    let second = eventually("second reports a conflict", || {
        let playground = &playground;
        async move {
            integration_ready(playground, "second")
                .await
                .filter(|r| r.1 == "Conflict")
        }
    })
    .await;
    let first = eventually("first becomes Ready", || {
        let playground = &playground;
        async move {
            integration_ready(playground, "first")
                .await
                .filter(|r| r.0 == "True")
        }
    })
    .await;
    let second_app_created = pingone_writes(&playground.pingone_control.calls())
        .iter()
        .filter(|c| c.starts_with("POST") && c.ends_with("/applications -> 201"))
        .count();
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(twins.0, "False");
    assert!(twins.2.contains("Twin Worker"), "{twins:?}");
    assert_eq!(second.0, "False");
    assert!(second.2.contains("first"), "{second:?}");
    assert_eq!(first.0, "True");
    // The two twins (by the test) and First Worker; neither twins nor second created one.
    assert_eq!(second_app_created, 3);
}
