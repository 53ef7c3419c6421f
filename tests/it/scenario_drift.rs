//! Drift is corrected on resync, each correction with an Event: the worker application
//! disabled, its role assignment removed, the worker configuration edited in development, the
//! label mapping deleted, an ESV changed out of band, the application deleted.

use crate::scenario_support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use pingone_aic_operator::aic::{AicClient, AmApi, am, esv};
use pingone_aic_operator::controller::clients::Clients;
use pingone_aic_operator::crd::{PingOneIntegration, TenantEnvironment};
use pingone_aic_operator::pingone::{PingOneApi, TokenAuthMethod, WorkerApplication};
use pingone_aic_playground::Playground;
use scenario_support::*;

const LABEL: &str = "am.services.pingone.worker.driftlabel.clientsecret";

/// How often the operator published an Event with `reason` (counting repeats in a series).
async fn occurrences(playground: &Playground, reason: &str) -> i32 {
    let api: Api<Event> = Api::namespaced(playground.client.clone(), "default");
    api.list(&Default::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .sum()
        })
        .unwrap_or(0)
}

/// Waits for one more `reason` Event than `before` and for everything to be Ready again.
async fn corrected(playground: &Playground, reason: &str, before: i32) {
    eventually(&format!("an Event {reason}"), || async move {
        (occurrences(playground, reason).await > before).then_some(())
    })
    .await;
    ready(playground).await;
}

async fn aic(playground: &Playground) -> AicClient {
    let tenants: Api<TenantEnvironment> = Api::namespaced(playground.client.clone(), "default");
    let tenant = tenants.get("acme-dev").await.expect("acme-dev");
    Clients::new()
        .expect("clients")
        .aic(
            &pingone_aic_operator::controller::secrets::Secrets::unwatched(
                playground.client.clone(),
            ),
            &tenant,
            &[],
        )
        .await
        .expect("an AIC client")
}

async fn app_id(playground: &Playground) -> String {
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    api.get("drift")
        .await
        .expect("drift")
        .status
        .expect("a status")
        .environments[0]
        .worker_app_id
        .clone()
        .expect("an application")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_corrected_with_an_event() {
    let dir = examples_dir(
        "drift",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
            (
                "03-integration.yaml",
                worker_integration("drift", "Drift Worker", ""),
            ),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(2)).await;
    ready(&playground).await;
    let admin = admin_session(&playground, ADMIN_SECRET).await;
    let aic = aic(&playground).await;
    let app = app_id(&playground).await;

    // The application disabled in PingOne.
    let before = occurrences(&playground, "WorkerApplicationRepaired").await;
    admin
        .replace_worker_application(
            DEV_ENVIRONMENT,
            &app,
            &WorkerApplication {
                name: "Drift Worker".into(),
                description: None,
                enabled: false,
                token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
            },
        )
        .await
        .expect("disabled");
    corrected(&playground, "WorkerApplicationRepaired", before).await;
    assert_eq!(pingone_app(&playground, &app)["fields"]["enabled"], true);

    // Its role assignment removed.
    let before = occurrences(&playground, "RoleGranted").await;
    for assignment in admin
        .list_role_assignments(DEV_ENVIRONMENT, &app)
        .await
        .expect("roles")
    {
        admin
            .delete_role_assignment(DEV_ENVIRONMENT, &app, &assignment.id)
            .await
            .expect("removed");
    }
    corrected(&playground, "RoleGranted", before).await;
    assert_eq!(
        admin
            .list_role_assignments(DEV_ENVIRONMENT, &app)
            .await
            .expect("roles")
            .len(),
        1
    );

    // The worker configuration edited in development.
    let before = occurrences(&playground, "WorkerConfigured").await;
    let mut worker = aic
        .get_worker("drift-svc")
        .await
        .expect("read")
        .expect("the worker");
    let desired_client_id = worker.client_id.clone();
    worker.client_id = "edited-by-hand".into();
    am::upsert_worker(&aic, "drift-svc", &worker)
        .await
        .expect("edited");
    corrected(&playground, "WorkerConfigured", before).await;
    let worker = aic
        .get_worker("drift-svc")
        .await
        .expect("read")
        .expect("the worker");
    assert_eq!(worker.client_id, desired_client_id);

    // The label mapping deleted.
    let before = occurrences(&playground, "LabelMapped").await;
    assert!(aic.delete_mapping(LABEL).await.expect("deleted"));
    corrected(&playground, "LabelMapped", before).await;
    assert!(aic.get_mapping(LABEL).await.expect("read").is_some());

    // An ESV changed out of band.
    let before = occurrences(&playground, "VariableWritten").await;
    esv::upsert_variable(
        &aic,
        "esv-drift-environment-id",
        "somewhere-else",
        "by hand",
        "string",
    )
    .await
    .expect("changed");
    corrected(&playground, "VariableWritten", before).await;
    let snapshot = playground.aic.snapshot();
    let variable = &snapshot["tenants"]["acme-dev"]["variables"]["esv-drift-environment-id"];
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD
        .decode(variable["valueBase64"].as_str().unwrap_or_default())
        .expect("base64");
    assert_eq!(String::from_utf8_lossy(&value), DEV_ENVIRONMENT);

    // The application deleted: created again, its id recorded, everything verified again.
    let before = occurrences(&playground, "WorkerApplicationMissing").await;
    assert!(
        admin
            .delete_application(DEV_ENVIRONMENT, &app)
            .await
            .expect("deleted")
    );
    corrected(&playground, "WorkerApplicationMissing", before).await;
    let recreated = app_id(&playground).await;
    assert_ne!(recreated, app);
    assert!(!pingone_app(&playground, &recreated).is_null());

    let aic_calls = playground.aic.calls();
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    // testConnection may fail only while the deleted application was gone, never otherwise.
    let failed = failed_connection_tests(&aic_calls);
    assert!(failed.len() <= 1, "{failed:?}");
}
