//! Secret rotation without a failed connection: operator-managed rotation of a managed
//! worker's secret (`workerApplication.secretRotation`), and rotation through an updated
//! Kubernetes Secret (an existing worker's client secret, the PingOne admin secret).
//!
//! "No failed connection" is checked on the simulators: no `testConnection` answered with an
//! error and PingOne refused no token request, from start to end.

mod scenario_support;

use std::time::Duration;

use kube::api::Api;
use pingone_aic_operator::crd::PingOneIntegration;
use pingone_aic_operator::crd::pingone_integration::RotationPhase;
use scenario_support::*;

const ROTATING_WORKER: &str = r#"
apiVersion: pingone-aic.io/v1alpha1
kind: PingOneIntegration
metadata:
  name: rotating
spec:
  credentialType: WorkerApplication
  environments:
    - name: acme-dev
  workerApplication:
    name: Rotating Worker
    secretRotation:
      interval: 8s
      overlap: 2s
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_managed_rotation_keeps_the_connection_working() {
    let dir = examples_dir(
        "rotation",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
            ("03-integration.yaml", ROTATING_WORKER.to_owned()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let first = api.get("rotating").await.expect("the integration");
    let env = &first.status.as_ref().expect("a status").environments[0];
    let app_id = env.worker_app_id.clone().expect("a managed application");
    let first_secret = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");

    // Wait for a whole rotation: rotated, pushed, restarted, verified, previous deleted.
    let rotated = eventually("a completed rotation", || {
        let api = api.clone();
        async move {
            let integration = api.get("rotating").await.ok()?;
            let env = integration.status?.environments.into_iter().next()?;
            let rotation = env.secret_rotation.clone()?;
            (rotation.rotations >= 1 && rotation.phase.is_none()).then_some(env)
        }
    })
    .await;
    let progress = playground.progress().await.expect("progress");
    let pingone_calls = playground.pingone_control.calls();
    let aic_calls = playground.aic.calls();
    let current_secret = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");
    let state = playground.pingone.state();
    let versions = esv_versions(
        &playground.aic,
        "acme-dev",
        "esv-pingone-worker-client-secret",
    );
    let restarts = playground.summary().await.restarts;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_ne!(first_secret, current_secret, "PingOne holds a new secret");
    let rotations = pingone_calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with(&format!("{app_id}/secret")))
        .count();
    assert!(rotations >= 1, "the secret was rotated in PingOne");
    let previous_deleted = pingone_calls
        .iter()
        .filter(|c| c.method == "DELETE" && c.path.ends_with(&format!("{app_id}/secret")))
        .count();
    assert!(previous_deleted >= 1, "the previous secret was deleted");
    let app = state["applications"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["id"] == app_id.as_str()))
        .cloned()
        .expect("the application in the simulator");
    assert!(
        app["previous"].is_null(),
        "no previous secret is left valid after verification: {}",
        app["previous"]
    );
    // The ESV: the new secret is the one enabled version; the first one is disabled.
    let enabled: Vec<_> = versions.iter().filter(|v| v.1 == "ENABLED").collect();
    assert_eq!(enabled.len(), 1, "{versions:?}");
    assert_eq!(
        enabled[0].2,
        esv_version_digest(&current_secret),
        "{versions:?}"
    );
    assert!(
        versions
            .iter()
            .any(|v| v.2 == esv_version_digest(&first_secret) && v.1 == "DISABLED"),
        "{versions:?}"
    );
    assert_eq!(rotated.secret_version, Some(enabled[0].0.to_string()));
    assert!(rotated.connection_verified);
    assert_eq!(
        rotated.secret_rotation.unwrap().phase,
        None::<RotationPhase>
    );
    // No failed connection at any point.
    assert_eq!(failed_connection_tests(&aic_calls), Vec::<String>::new());
    assert_eq!(refused_tokens(&pingone_calls), Vec::<String>::new());
    assert!(
        restarts >= 2,
        "the first setup and the rotation each needed a restart"
    );
    assert!(progress.iter().all(|p| p.ready), "{progress:#?}");
}
