//! Secret rotation without a failed connection: operator-managed rotation of a managed
//! worker's secret (`workerApplication.secretRotation`), and rotation through an updated
//! Kubernetes Secret (an existing worker's client secret, the PingOne admin secret).
//!
//! "No failed connection" is checked on the simulators: no `testConnection` answered with an
//! error and PingOne refused no token request, from start to end.

use crate::scenario_support;

use std::time::Duration;

use kube::api::Api;
use pingone_aic_operator::controller::tenant::{AIC_AUTHENTICATED, PINGONE_AUTHENTICATED};
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
    let restarts_before = playground.summary().await.restarts;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let first = api.get("rotating").await.expect("the integration");
    let env = &first.status.as_ref().expect("a status").environments[0];
    let app_id = env.worker_app_id.clone().expect("a managed application");
    let first_secret = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");

    // Wait for a whole rotation: rotated, pushed, verified, previous deleted.
    // While the new secret waits for verification, PingOne must keep the previous one valid
    // for at least the ESV cache time (600 s) beyond now. Verification follows the push at
    // once, so the next connection test (the rotation's) is slowed to let the poll see it.
    playground
        .aic
        .inject_fault(pingone_aic_sim::aic::Fault {
            tenant: Some("acme-dev".into()),
            method: Some("POST".into()),
            path: format!(
                "/am/json/realms/root/realms/alpha/realm-config/services/pingOneWorkerService/workers/{}",
                first.spec.service.name
            ),
            status: None,
            retry_after: None,
            latency_ms: 2000,
            count: 1,
        });
    let overlap_seen = std::sync::Arc::new(std::sync::Mutex::new(None::<jiff::SignedDuration>));
    let rotated = eventually("a completed rotation", || {
        let api = api.clone();
        let playground = &playground;
        let app_id = app_id.clone();
        let overlap_seen = overlap_seen.clone();
        async move {
            let integration = api.get("rotating").await.ok()?;
            let env = integration.status?.environments.into_iter().next()?;
            let rotation = env.secret_rotation.clone()?;
            // The phase is written at its checkpoint (Rotating) and again after the pass, so a
            // rotation under way shows either while its verification runs.
            if rotation.phase.is_some()
                && let Some(expires) = pingone_app(playground, &app_id)["previous"]["expiresAt"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            {
                *overlap_seen.lock().unwrap() =
                    Some(expires.duration_since(jiff::Timestamp::now()));
            }
            (rotation.rotations >= 1 && rotation.phase.is_none()).then_some(env)
        }
    })
    .await;
    let overlap = overlap_seen
        .lock()
        .unwrap()
        .expect("the previous secret was seen valid during verification");
    assert!(
        overlap >= jiff::SignedDuration::from_secs(600),
        "the previous secret outlives the ESV cache: {overlap:?}"
    );
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
    let secret = esv_secret(
        &playground.aic,
        "acme-dev",
        "esv-pingone-worker-client-secret",
    );
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
    // The client secret is read by AM through the secret-label mapping alone, so its ESV is
    // not usable in placeholders and a new version leaves nothing pending: no restart.
    assert!(
        restarts_before >= 1,
        "the first setup's ESV variables needed a restart"
    );
    assert_eq!(
        restarts, restarts_before,
        "the rotation restarted the tenant"
    );
    assert_eq!(secret["useInPlaceholders"], false, "{secret}");
    assert!(progress.iter().all(|p| p.ready), "{progress:#?}");
}

const EXISTING_WORKER: &str = r#"
apiVersion: pingone-aic.io/v1alpha1
kind: PingOneIntegration
metadata:
  name: existing
  namespace: default
spec:
  credentialType: WorkerApplication
  environments:
    - name: acme-dev
      credentialsSecretRef:
        name: existing-worker
"#;

/// A person rotates an existing worker's secret in PingOne (keeping the previous one valid for
/// a while, as PingOne offers) and updates the Kubernetes Secret; later they delete the previous
/// secret. The operator pushes the new ESV version at once, verifies it, disables the old one,
/// and no connection fails. Then the operator's own PingOne admin secret and AIC service-account
/// key: a changed value is used on the next reconcile (a wrong one shows at once, the right one
/// recovers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotated_in_kubernetes_are_used_at_once() {
    use pingone_aic_operator::pingone::PingOneApi;
    let dir = examples_dir(
        "cluster-rotation",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;

    // As a person in the PingOne console: an existing worker with Identity Data Admin.
    let (app_id, first) = existing_worker(&playground, "Existing Worker").await;
    let admin = admin_session(&playground, ADMIN_SECRET).await;
    put_secret(
        &playground,
        "existing-worker",
        &[("clientId", &app_id), ("clientSecret", first.expose())],
    )
    .await;
    let integration: PingOneIntegration = serde_json::from_value(
        devkube::manifests::parse_documents(EXISTING_WORKER).expect("YAML")[0].clone(),
    )
    .expect("an integration");
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    api.create(&Default::default(), &integration)
        .await
        .expect("the integration is created");
    ready(&playground).await;

    // Rotate in PingOne, keeping the previous secret valid; put the new one in the Secret.
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let second = admin
        .rotate_application_secret(DEV_ENVIRONMENT, &app_id, Some(expires))
        .await
        .expect("the secret is rotated");
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", second.secret.expose())],
    )
    .await;
    let new_digest = esv_version_digest(second.secret.expose());
    let old_digest = esv_version_digest(first.expose());
    eventually("the new version verified and the old one disabled", || {
        let api = api.clone();
        let playground = &playground;
        let (new_digest, old_digest) = (new_digest.clone(), old_digest.clone());
        async move {
            let versions = esv_versions(
                &playground.aic,
                "acme-dev",
                "esv-pingone-worker-client-secret",
            );
            let env = api
                .get("existing")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            let new_enabled = versions
                .iter()
                .any(|v| v.2 == new_digest && v.1 == "ENABLED");
            let old_disabled = versions
                .iter()
                .any(|v| v.2 == old_digest && v.1 == "DISABLED");
            (new_enabled && old_disabled && env.connection_verified).then_some(())
        }
    })
    .await;
    // Nobody used the previous secret after the rotation: AIC tried the new version first.
    let app_state = pingone_app(&playground, &app_id);
    assert!(
        app_state["previous"]["lastUsed"].is_null(),
        "{}",
        app_state["previous"]
    );
    admin
        .delete_previous_secret(DEV_ENVIRONMENT, &app_id)
        .await
        .expect("the previous secret is deleted");

    ready(&playground).await;
    let pingone_calls = playground.pingone_control.calls();
    let aic_calls = playground.aic.calls();
    assert_eq!(failed_connection_tests(&aic_calls), Vec::<String>::new());
    assert_eq!(refused_tokens(&pingone_calls), Vec::<String>::new());

    // The operator's own credentials are read at once too: a wrong PingOne admin secret and a
    // wrong AIC service-account key show at once, and the right ones recover.
    put_secret(
        &playground,
        "pingone-admin-worker",
        &[("clientSecret", "not-the-secret")],
    )
    .await;
    tenant_condition(&playground, PINGONE_AUTHENTICATED, "False").await;
    put_secret(
        &playground,
        "pingone-admin-worker",
        &[("clientSecret", ADMIN_SECRET)],
    )
    .await;
    tenant_condition(&playground, PINGONE_AUTHENTICATED, "True").await;
    let uat_key = k8s_secret_value(&playground, "aic-acme-uat-service-account", "jwk").await;
    let dev_key = k8s_secret_value(&playground, "aic-acme-dev-service-account", "jwk").await;
    put_secret(
        &playground,
        "aic-acme-dev-service-account",
        &[("jwk", &uat_key)],
    )
    .await;
    tenant_condition(&playground, AIC_AUTHENTICATED, "False").await;
    put_secret(
        &playground,
        "aic-acme-dev-service-account",
        &[("jwk", &dev_key)],
    )
    .await;
    tenant_condition(&playground, AIC_AUTHENTICATED, "True").await;
    ready(&playground).await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn tenant_condition(
    playground: &pingone_aic_playground::Playground,
    type_: &str,
    value: &str,
) {
    use pingone_aic_operator::crd::TenantEnvironment;
    let api: Api<TenantEnvironment> = Api::namespaced(playground.client.clone(), "default");
    eventually(&format!("{type_} = {value}"), || {
        let api = api.clone();
        async move {
            let tenant = api.get("acme-dev").await.ok()?;
            tenant
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == value)
                .then_some(())
        }
    })
    .await;
}

async fn k8s_secret_value(
    playground: &pingone_aic_playground::Playground,
    name: &str,
    key: &str,
) -> String {
    use k8s_openapi::api::core::v1::Secret;
    let api: Api<Secret> = Api::namespaced(playground.client.clone(), "default");
    let secret = api.get(name).await.expect("the Secret");
    let data = secret.data.unwrap_or_default();
    String::from_utf8(data[key].0.clone()).expect("text")
}

/// Operator-managed rotation whose new secret AIC's connection test refuses: the operator
/// pushes the previous secret again (PingOne still holds it during the overlap), does not
/// delete it in PingOne, and finishes the rotation once the new secret passes on a later try.
/// Throughout, the credential AM would present is one PingOne accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_aic_refuses_is_rolled_back_and_finished_later() {
    use pingone_aic_sim::aic::Fault;
    const ESV_SECRET: &str = "esv-pingone-worker-client-secret";
    let dir = examples_dir(
        "rotation-rollback",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
            ("03-integration.yaml", ROTATING_WORKER.to_owned()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let integration = api.get("rotating").await.expect("the integration");
    let app_id = integration.status.as_ref().expect("a status").environments[0]
        .worker_app_id
        .clone()
        .expect("a managed application");
    let sampler = CredentialSampler::start(&playground, "acme-dev", ESV_SECRET, &app_id);
    // The next connection test is the rotation's: it fails once, as AM reports a refused token.
    playground.aic.inject_raw_fault(
        Fault {
            tenant: Some("acme-dev".into()),
            method: Some("POST".into()),
            path: format!(
                "/am/json/realms/root/realms/alpha/realm-config/services/pingOneWorkerService/workers/{}",
                integration.spec.service.name
            ),
            status: Some(400),
            retry_after: None,
            latency_ms: 0,
            count: 1,
        },
        "application/json",
        r#"{"code":400,"reason":"Bad Request","message":"Failed to retrieve PingOne Worker access token.[Status: 401 Unauthorized]"}"#,
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(playground.client.clone(), "default");
    let restored = eventually("the previous secret pushed again", || {
        let events = events.clone();
        async move {
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("CredentialRestored"))
                .find_map(|e| e.note)
        }
    })
    .await;
    assert!(
        restored.contains("acme-dev: pushed the last verified credential again"),
        "{restored}"
    );
    let rotated = eventually("the rotation finished after all", || {
        let api = api.clone();
        async move {
            let env = api
                .get("rotating")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            let rotation = env.secret_rotation.clone()?;
            (rotation.rotations >= 1 && rotation.phase.is_none() && env.connection_verified)
                .then_some(env)
        }
    })
    .await;
    let broken = sampler.finish().await;
    let current = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");
    assert_eq!(
        active_digest(&playground.aic, "acme-dev", ESV_SECRET),
        Some(esv_version_digest(&current)),
        "the new secret is what AM presents"
    );
    assert_eq!(rotated.verified_version, rotated.secret_version);
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Operator-managed rotation with the operator killed at each step, while that step's call is
/// in flight: PingOne has rotated but its answer is late; AIC takes the new version late;
/// PingOne has dropped the previous secret but its answer is late. Each time a new operator
/// resumes from what Kubernetes and the services hold: the rotation completes once, AM always
/// presents a credential PingOne accepts, and no connection test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_managed_rotation_resumes_after_a_kill_at_each_step() {
    use pingone_aic_sim::aic::Fault;
    use pingone_aic_sim::control::FaultSpec;
    const ESV_SECRET: &str = "esv-pingone-worker-client-secret";
    let dir = examples_dir(
        "rotation-kills",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
            ("03-integration.yaml", ROTATING_WORKER.to_owned()),
        ],
    );
    let mut playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let app_id = api
        .get("rotating")
        .await
        .expect("the integration")
        .status
        .expect("a status")
        .environments[0]
        .worker_app_id
        .clone()
        .expect("a managed application");
    let sampler = CredentialSampler::start(&playground, "acme-dev", ESV_SECRET, &app_id);
    let secret_path = format!("/v1/environments/{DEV_ENVIRONMENT}/applications/{app_id}/secret");
    for method in ["POST", "DELETE"] {
        playground.pingone_control.inject(FaultSpec {
            method: Some(method.into()),
            path: secret_path.clone(),
            times: 1,
            answer_delay_ms: Some(1500),
            ..Default::default()
        });
    }
    playground.aic.inject_fault(Fault {
        tenant: Some("acme-dev".into()),
        method: Some("POST".into()),
        path: format!("/environment/secrets/{ESV_SECRET}/versions"),
        status: None,
        retry_after: None,
        latency_ms: 1500,
        count: 1,
    });

    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut kills = Vec::new();
    let mut last = None;
    let rotated = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no completed rotation after kills at {kills:?}"
        );
        let env = api
            .get("rotating")
            .await
            .ok()
            .and_then(|i| i.status)
            .and_then(|s| s.environments.into_iter().next());
        let rotation = env
            .as_ref()
            .and_then(|e| e.secret_rotation.clone())
            .unwrap_or_default();
        if rotation.rotations >= 1 && rotation.phase.is_none() {
            break env.expect("the environment");
        }
        // The step the operator is at: the phase it recorded and, while verifying, whether
        // PingOne dropped the previous secret already.
        let previous_dropped = rotation.phase == Some(RotationPhase::Verifying)
            && pingone_app(&playground, &app_id)["previous"].is_null();
        let step = (rotation.phase, previous_dropped);
        if step.0.is_some() && last.as_ref() != Some(&step) {
            last = Some(step);
            tokio::time::sleep(Duration::from_millis(300)).await;
            playground
                .restart_operator(false)
                .await
                .expect("a new operator starts");
            kills.push(format!("{step:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let broken = sampler.finish().await;
    let current = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");
    let app = pingone_app(&playground, &app_id);
    let aic_calls = playground.aic.calls();
    let active = active_digest(&playground.aic, "acme-dev", ESV_SECRET);
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    eprintln!("operator killed at {kills:?}");
    assert!(
        kills.len() >= 2,
        "killed while rotating and verifying: {kills:?}"
    );
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses (kills at {kills:?}): {:?}",
        &broken[..broken.len().min(5)]
    );
    assert_eq!(
        active,
        Some(esv_version_digest(&current)),
        "AM presents the new secret"
    );
    assert!(
        app["previous"].is_null(),
        "the previous secret is gone: {}",
        app["previous"]
    );
    assert_eq!(rotated.secret_rotation.map(|r| r.rotations), Some(1));
    assert_eq!(failed_connection_tests(&aic_calls), Vec::<String>::new());
}

/// An ESV secret created usable in placeholders before the operator took it over (by hand, or
/// by an earlier release) keeps that flag, which AIC cannot change: a rotation of it waits for a
/// restart of the tenant and is verified after it. Throughout, AM presents a credential PingOne
/// accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_usable_in_placeholders_is_rotated_through_a_restart() {
    use pingone_aic_operator::pingone::PingOneApi;
    const ESV_SECRET: &str = "esv-pingone-worker-client-secret";
    let dir = examples_dir(
        "placeholder-secret-rotation",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let (app_id, first) = existing_worker(&playground, "Existing Worker").await;
    playground
        .aic
        .seed_secret("acme-dev", ESV_SECRET, first.expose(), true);
    put_secret(
        &playground,
        "existing-worker",
        &[("clientId", &app_id), ("clientSecret", first.expose())],
    )
    .await;
    apply_yaml::<PingOneIntegration>(&playground, EXISTING_WORKER).await;
    ready(&playground).await;
    let restarts_before = playground.summary().await.restarts;
    let sampler = CredentialSampler::start(&playground, "acme-dev", ESV_SECRET, &app_id);

    let admin = admin_session(&playground, ADMIN_SECRET).await;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let second = admin
        .rotate_application_secret(DEV_ENVIRONMENT, &app_id, Some(expires))
        .await
        .expect("the secret is rotated");
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", second.secret.expose())],
    )
    .await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let want = esv_version_digest(second.secret.expose());
    eventually("the new version verified", || {
        let (api, aic, want) = (api.clone(), playground.aic.clone(), want.clone());
        async move {
            let env = api
                .get("existing")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            (env.connection_verified && active_digest(&aic, "acme-dev", ESV_SECRET) == Some(want))
                .then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let restarts = playground.summary().await.restarts;
    let secret = esv_secret(&playground.aic, "acme-dev", ESV_SECRET);
    let broken = sampler.finish().await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_eq!(
        secret["useInPlaceholders"], true,
        "the flag is kept: {secret}"
    );
    assert!(
        restarts > restarts_before,
        "the rotation waited for a restart ({restarts_before} before, {restarts} after)"
    );
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
}

/// The example promotion group with every worker secret rotated every few seconds from the
/// start, so development rotates while its promotions to uat, staging and production hold its
/// lock (AIC refuses ESV writes then). Every environment rotates, every lock is released, and
/// in every environment AM always presents a credential PingOne accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_during_promotions_wait_for_the_locks_and_keep_every_credential_working() {
    use pingone_aic_playground::repository_examples;
    const ESV_SECRET: &str = "esv-pingone-worker-client-secret";
    let read = |file: &str| {
        std::fs::read_to_string(repository_examples().join(file)).expect("an example file")
    };
    let dir = examples_dir(
        "rotation-during-promotions",
        &[
            ("01-secrets.yaml", read("01-secrets.yaml")),
            (
                "02-tenant-environments.yaml",
                read("02-tenant-environments.yaml"),
            ),
            (
                "03-pingone-integration-worker.yaml",
                read("03-pingone-integration-worker.yaml")
                    .replace("interval: 720h", "interval: 6s")
                    .replace("overlap: 2h", "overlap: 2s"),
            ),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let apps: Vec<(String, String)> = eventually("the four worker applications", || {
        let api = api.clone();
        async move {
            let status = api.get("acme-worker").await.ok()?.status?;
            let apps: Vec<(String, String)> = status
                .environments
                .iter()
                .filter_map(|e| Some((e.name.clone(), e.worker_app_id.clone()?)))
                .collect();
            (apps.len() == 4).then_some(apps)
        }
    })
    .await;
    let samplers: Vec<(String, CredentialSampler)> = apps
        .iter()
        .map(|(env, app)| {
            (
                env.clone(),
                CredentialSampler::start(&playground, env, ESV_SECRET, app),
            )
        })
        .collect();
    ready(&playground).await;
    eventually("a completed rotation in every environment", || {
        let api = api.clone();
        async move {
            let status = api.get("acme-worker").await.ok()?.status?;
            status
                .environments
                .iter()
                .all(|e| {
                    e.secret_rotation
                        .as_ref()
                        .is_some_and(|r| r.rotations >= 1 && r.phase.is_none())
                })
                .then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let refused_while_locked = playground
        .aic
        .calls()
        .iter()
        .filter(|c| c.tenant == "acme-dev" && c.method == "POST" && c.path.ends_with("/versions"))
        .filter(|c| c.status >= 400)
        .count();
    eprintln!("development's new versions refused while locked: {refused_while_locked}");
    let snapshot = playground.aic.snapshot();
    let mut broken = Vec::new();
    for (env, sampler) in samplers {
        broken.extend(
            sampler
                .finish()
                .await
                .into_iter()
                .map(|b| format!("{env}: {b}")),
        );
    }
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    for (name, tenant) in snapshot["tenants"].as_object().into_iter().flatten() {
        assert!(
            tenant["lock"].is_null(),
            "{name} is still locked: {}",
            tenant["lock"]
        );
    }
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
}

/// A rotation asked for with `pingone-aic.io/rotate-before` (an integration without periodic
/// rotation, as after a leak): every worker secret issued before the time is rotated once,
/// with no failed connection and no restart; the new secret, issued after it, is left alone,
/// and a malformed time is reported, not acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_rotation_replaces_each_secret_once() {
    use pingone_aic_operator::controller::integration::ROTATE_BEFORE_ANNOTATION;
    let dir = examples_dir(
        "requested-rotation",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", DEV_TENANT.to_owned()),
            (
                "03-integration.yaml",
                worker_integration("leaked", "Leaked Worker", ""),
            ),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;
    let restarts_before = playground.summary().await.restarts;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let first = api.get("leaked").await.expect("the integration");
    let env = &first.status.as_ref().expect("a status").environments[0];
    assert_eq!(env.secret_rotation, None, "no rotation is configured");
    let app_id = env.worker_app_id.clone().expect("a managed application");
    let first_secret = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");
    let annotate = |value: String| {
        let api = api.clone();
        async move {
            let patch =
                serde_json::json!({"metadata": {"annotations": {ROTATE_BEFORE_ANNOTATION: value}}});
            api.patch(
                "leaked",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("the annotation is set");
        }
    };

    annotate("last tuesday".to_owned()).await;
    // Reported in the environment's part of Ready, naming the annotation.
    let (status, _, message) = eventually("the malformed time reported", || async {
        integration_ready(&playground, "leaked")
            .await
            .filter(|(_, _, message)| message.contains("\"last tuesday\" is not an RFC 3339 time"))
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.contains("acme-dev: annotation pingone-aic.io/rotate-before"),
        "{message}"
    );
    assert_eq!(
        playground.pingone.application_secret(&app_id).as_ref(),
        Some(&first_secret),
        "nothing rotated on a malformed time"
    );

    annotate(jiff::Timestamp::now().to_string()).await;
    eventually("the requested rotation done", || {
        let api = api.clone();
        async move {
            let integration = api.get("leaked").await.ok()?;
            let env = integration.status?.environments.into_iter().next()?;
            let rotation = env.secret_rotation?;
            (rotation.rotations == 1 && rotation.phase.is_none() && env.connection_verified)
                .then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let rotated_secret = playground
        .pingone
        .application_secret(&app_id)
        .expect("the application's secret");
    // A few more passes (each resync, the status patches' events) leave the new secret alone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let integration = api.get("leaked").await.expect("the integration");
    let env = &integration.status.as_ref().expect("a status").environments[0];
    let pingone_calls = playground.pingone_control.calls();
    let aic_calls = playground.aic.calls();
    let restarts = playground.summary().await.restarts;
    let app = pingone_app(&playground, &app_id);
    let current_secret = playground.pingone.application_secret(&app_id);
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_ne!(first_secret, rotated_secret, "PingOne holds a new secret");
    assert_eq!(current_secret, Some(rotated_secret), "rotated once only");
    assert_eq!(env.secret_rotation.as_ref().map(|r| r.rotations), Some(1));
    let rotations = pingone_calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with(&format!("{app_id}/secret")))
        .count();
    assert_eq!(rotations, 1, "one rotation in PingOne");
    assert!(
        app["previous"].is_null(),
        "the previous secret was deleted: {app}"
    );
    assert_eq!(failed_connection_tests(&aic_calls), Vec::<String>::new());
    assert_eq!(refused_tokens(&pingone_calls), Vec::<String>::new());
    assert_eq!(
        restarts, restarts_before,
        "the rotation restarted the tenant"
    );
}
