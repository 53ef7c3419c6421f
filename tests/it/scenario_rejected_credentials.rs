//! Rotation through a Secret never leaves a tenant without a working credential. The sandbox's
//! product-connection Secret is changed, as a person or a secret manager would, to a
//! well-formed JWT PingOne does not know, to an expired one, to one that is not a JWT, then to
//! the one PingOne issued; an existing worker's Secret gets a client secret PingOne refuses.
//!
//! Throughout, a sampler compares the credential AM would present (the active, latest enabled
//! version of the mapped ESV secret) with what PingOne accepts for the connection: a rejected
//! value is never pushed, and the operator says so in a `CredentialRejected` condition and a
//! Warning Event naming the Secret and key, never the value.

use crate::scenario_support;
use crate::support;

use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use pingone_aic_operator::crd::PingOneIntegration;
use pingone_aic_playground::{Playground, repository_examples};
use scenario_support::*;

const CONNECTION: &str = "acme-sandbox-connection";
const SECRET: &str = "pingone-connection-acme-sandbox";
const ESV: &str = "esv-pingone-connection-jwt";

async fn ready_condition(
    api: &Api<PingOneIntegration>,
    name: &str,
) -> Option<(String, String, String)> {
    let integration = api.get(name).await.ok()?;
    let ready = integration
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some((ready.status, ready.reason, ready.message))
}

/// Waits for Ready=False with reason CredentialRejected and returns its message.
async fn rejected(api: &Api<PingOneIntegration>, name: &str) -> String {
    eventually("the CredentialRejected condition", || async {
        ready_condition(api, name)
            .await
            .filter(|(status, reason, _)| status == "False" && reason == "CredentialRejected")
            .map(|(_, _, message)| message)
    })
    .await
}

async fn warning_notes(playground: &Playground, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(playground.client.clone(), "default");
    events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_pingone_refuses_is_never_pushed_and_the_working_one_stays_active() {
    let playground = start(repository_examples(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let app = connection_app_id(&playground);
    let working = playground.pingone.application_secret(&app).unwrap();
    assert_eq!(
        active_digest(&playground.aic, "acme-sandbox", ESV),
        Some(esv_version_digest(&working)),
        "the seeded credential is the active version"
    );
    let versions_at_start = esv_versions(&playground.aic, "acme-sandbox", ESV).len();
    let sampler = CredentialSampler::start(&playground, "acme-sandbox", ESV, &app);

    // A well-formed JWT PingOne does not know: refused before it reaches AIC.
    let unknown = support::fake_connection_credential("unknown-to-pingone");
    put_secret(&playground, SECRET, &[("credential", &unknown)]).await;
    let message = rejected(&api, CONNECTION).await;
    assert!(
        message.contains(SECRET)
            && message.contains("key credential")
            && message.contains("acme-sandbox"),
        "{message}"
    );
    assert!(
        !message.contains(&unknown),
        "the value never shows: {message}"
    );
    let notes = eventually("a Warning Event", || async {
        let notes = warning_notes(&playground, "CredentialRejected").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(notes.iter().all(|n| !n.contains(&unknown)), "{notes:?}");

    // An expired JWT of this environment: refused offline.
    let expired = {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(
            r#"{"iss":"https://auth.pingone.com/55555555-5555-4555-8555-555555555555/as","exp":1700000000}"#,
        );
        format!("{header}.{payload}.c2lnbmF0dXJl")
    };
    put_secret(&playground, SECRET, &[("credential", &expired)]).await;
    eventually("the expiry named", || async {
        ready_condition(&api, CONNECTION)
            .await
            .filter(|(_, _, message)| message.contains("expired at"))
    })
    .await;

    // Not a JWT at all: refused as malformed, before anything else.
    put_secret(&playground, SECRET, &[("credential", "not-a-jwt")]).await;
    eventually("the malformed value named", || async {
        ready_condition(&api, CONNECTION)
            .await
            .filter(|(status, _, message)| status == "False" && message.contains("JWT"))
    })
    .await;
    // Several resyncs later nothing was pushed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        esv_versions(&playground.aic, "acme-sandbox", ESV).len(),
        versions_at_start,
        "no refused value became a version"
    );

    // The credential PingOne issued: checked, pushed, verified, and the old version retired.
    let broken = sampler.finish().await;
    let issued = playground
        .pingone
        .issue_application_secret(&app)
        .expect("PingOne issues a new credential");
    put_secret(&playground, SECRET, &[("credential", &issued)]).await;
    ready(&playground).await;
    assert_eq!(
        active_digest(&playground.aic, "acme-sandbox", ESV),
        Some(esv_version_digest(&issued))
    );
    let enabled: Vec<i64> = esv_versions(&playground.aic, "acme-sandbox", ESV)
        .into_iter()
        .filter(|(_, status, _)| status == "ENABLED")
        .map(|(version, _, _)| version)
        .collect();
    assert_eq!(
        enabled.len(),
        1,
        "superseded versions are disabled: {enabled:?}"
    );

    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
    assert!(
        failed_connection_tests(&playground.aic.calls()).is_empty(),
        "no refused value was ever tested in AIC"
    );
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_pingone_refuses_is_never_pushed() {
    let dir = examples_dir(
        "rejected-client-secret",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", example_tenants()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let (app, secret) = existing_worker(&playground, "Existing Worker").await;
    put_secret(
        &playground,
        "existing-worker",
        &[
            ("clientId", &app),
            ("clientSecret", "not-what-pingone-issued"),
        ],
    )
    .await;
    let integration = worker_integration("existing", "unused", "").replace(
        "  workerApplication:\n    name: unused\n    adoptExisting: true\n",
        "",
    );
    let integration = integration.replace(
        "    - name: acme-dev\n",
        "    - name: acme-dev\n      credentialsSecretRef:\n        name: existing-worker\n",
    );
    apply_yaml::<PingOneIntegration>(&playground, &integration).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let message = rejected(&api, "existing").await;
    assert!(
        message.contains("existing-worker") && message.contains("key clientSecret"),
        "{message}"
    );
    assert!(!message.contains("not-what-pingone-issued"), "{message}");
    let snapshot = playground.aic.snapshot();
    assert!(
        snapshot["tenants"]["acme-dev"]["secrets"]["esv-existing-client-secret"].is_null(),
        "nothing was pushed: {}",
        snapshot["tenants"]["acme-dev"]["secrets"]
    );
    assert!(
        snapshot["tenants"]["acme-dev"]["variables"]["esv-existing-client-id"].is_null(),
        "not even the client id"
    );

    // The right secret: pushed and verified.
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", secret.expose())],
    )
    .await;
    ready(&playground).await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A person rotates an existing worker's secret in PingOne, keeping the previous one valid,
/// and updates the Secret; PingOne accepts the new value, but AIC's connection test fails after
/// the push. The operator pushes the last verified value again, from the Secret it keeps beside
/// the integration, says so, and tries the new value again once the refusal's observation is
/// stale. Throughout, the credential AM would present is one PingOne accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_credential_aic_refuses_is_rolled_back_to_the_last_verified_one() {
    use k8s_openapi::api::core::v1::Secret;
    use pingone_aic_operator::pingone::PingOneApi;
    use pingone_aic_sim::aic::Fault;

    const ESV_SECRET: &str = "esv-existing-client-secret";
    let dir = examples_dir(
        "rolled-back-client-secret",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", example_tenants()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let (app, first) = existing_worker_from_secret(&playground).await;
    // What passed is kept beside the integration, owned by it.
    let secrets: Api<Secret> = Api::namespaced(playground.client.clone(), "default");
    let kept = secrets
        .get("existing-verified")
        .await
        .expect("the Secret keeping the last verified credential");
    assert_eq!(
        kept.data
            .as_ref()
            .and_then(|d| d.get("acme-dev"))
            .map(|v| v.0.clone()),
        Some(first.expose().as_bytes().to_vec())
    );
    let owner = &kept.metadata.owner_references.as_ref().expect("an owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("PingOneIntegration", "existing")
    );

    let active = {
        let aic = playground.aic.clone();
        move || active_digest(&aic, "acme-dev", ESV_SECRET)
    };
    let sampler = CredentialSampler::start(&playground, "acme-dev", ESV_SECRET, &app);

    // Rotate in PingOne with the previous secret kept valid; AIC's next connection test fails.
    let admin = admin_session(&playground, ADMIN_SECRET).await;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let second = admin
        .rotate_application_secret(DEV_ENVIRONMENT, &app, Some(expires))
        .await
        .expect("the secret is rotated");
    playground.aic.inject_raw_fault(
        Fault {
            tenant: Some("acme-dev".into()),
            method: Some("POST".into()),
            path: "/am/json/realms/root/realms/alpha/realm-config/services/pingOneWorkerService/workers/existing-svc".into(),
            status: Some(400),
            retry_after: None,
            latency_ms: 0,
            count: 1,
        },
        "application/json",
        r#"{"code":400,"reason":"Bad Request","message":"Failed to retrieve PingOne Worker access token.[Status: 401 Unauthorized]"}"#,
    );
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", second.secret.expose())],
    )
    .await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let message = rejected(&api, "existing").await;
    assert!(
        message.contains("testConnection failed with version 2")
            && message.contains("version 3 holds the last verified credential again"),
        "{message}"
    );
    assert!(!message.contains(second.secret.expose()), "{message}");
    assert_eq!(
        active(),
        Some(esv_version_digest(first.expose())),
        "the last verified value is active"
    );
    let versions = esv_versions(&playground.aic, "acme-dev", ESV_SECRET);
    assert!(
        versions
            .iter()
            .any(|(v, status, _)| *v == 2 && status == "DISABLED"),
        "the failed version is retired once the restored one passed: {versions:?}"
    );
    let restored = warning_notes(&playground, "CredentialRestored").await;
    assert!(
        restored
            .iter()
            .any(|n| n.contains("as version 3") && n.contains("failed version 2")),
        "{restored:?}"
    );

    // Once the refusal is stale the new value is tried again, and this time it passes.
    eventually("the new value verified after all", || {
        let api = api.clone();
        let active = active.clone();
        let want = esv_version_digest(second.secret.expose());
        async move {
            let env = api
                .get("existing")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            (env.connection_verified && active() == Some(want.clone())).then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let kept = secrets
        .get("existing-verified")
        .await
        .expect("the kept Secret");
    assert_eq!(
        kept.data
            .as_ref()
            .and_then(|d| d.get("acme-dev"))
            .map(|v| v.0.clone()),
        Some(second.secret.expose().as_bytes().to_vec()),
        "the new value is kept once it passed"
    );

    // Reverted to the old value, still valid as PingOne's previous secret: AIC deduplicates
    // only against the latest version, so it comes back as a new version, verified again.
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", first.expose())],
    )
    .await;
    eventually("the old value active and verified again", || {
        let api = api.clone();
        let active = active.clone();
        let want = esv_version_digest(first.expose());
        async move {
            let env = api
                .get("existing")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            (env.connection_verified && active() == Some(want.clone())).then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let broken = sampler.finish().await;
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Two changes of a Secret in quick succession, within the operator's debounce: a refused value
/// and then the right one. The operator ends with the right one, and the refused one never
/// becomes a version, whether it saw it or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_changes_in_quick_succession_end_with_the_last_and_push_no_refused_one() {
    use pingone_aic_operator::pingone::PingOneApi;
    const ESV_SECRET: &str = "esv-existing-client-secret";
    let dir = examples_dir(
        "quick-succession",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-tenant.yaml", example_tenants()),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(5)).await;
    ready(&playground).await;
    let (app, _first) = existing_worker_from_secret(&playground).await;
    let sampler = CredentialSampler::start(&playground, "acme-dev", ESV_SECRET, &app);
    let admin = admin_session(&playground, ADMIN_SECRET).await;
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    let second = admin
        .rotate_application_secret(DEV_ENVIRONMENT, &app, Some(expires))
        .await
        .expect("the secret is rotated");
    let refused = "typed-in-the-wrong-field";
    put_secret(&playground, "existing-worker", &[("clientSecret", refused)]).await;
    put_secret(
        &playground,
        "existing-worker",
        &[("clientSecret", second.secret.expose())],
    )
    .await;
    let want = esv_version_digest(second.secret.expose());
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    eventually("the last value active and verified", || {
        let (api, aic) = (api.clone(), playground.aic.clone());
        let want = want.clone();
        async move {
            let env = api
                .get("existing")
                .await
                .ok()?
                .status?
                .environments
                .into_iter()
                .next()?;
            (env.connection_verified
                && active_digest(&aic, "acme-dev", ESV_SECRET) == Some(want.clone()))
            .then_some(())
        }
    })
    .await;
    ready(&playground).await;
    let broken = sampler.finish().await;
    let versions = esv_versions(&playground.aic, "acme-dev", ESV_SECRET);
    assert!(
        versions
            .iter()
            .all(|(_, _, sha)| *sha != esv_version_digest(refused)),
        "the refused value never became a version: {versions:?}"
    );
    assert!(
        broken.is_empty(),
        "AM would have presented a credential PingOne refuses: {:?}",
        &broken[..broken.len().min(5)]
    );
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// An existing worker application in acme-dev, its credentials in the Secret `existing-worker`,
/// and the integration `existing` reading them, Ready. Returns the application id and secret.
async fn existing_worker_from_secret(
    playground: &Playground,
) -> (String, pingone_aic_operator::secret::SecretString) {
    let (app, first) = existing_worker(playground, "Existing Worker").await;
    put_secret(
        playground,
        "existing-worker",
        &[("clientId", &app), ("clientSecret", first.expose())],
    )
    .await;
    let integration = worker_integration("existing", "unused", "")
        .replace(
            "  workerApplication:\n    name: unused\n    adoptExisting: true\n",
            "",
        )
        .replace(
            "    - name: acme-dev\n",
            "    - name: acme-dev\n      credentialsSecretRef:\n        name: existing-worker\n",
        );
    apply_yaml::<PingOneIntegration>(playground, &integration).await;
    ready(playground).await;
    (app, first)
}
