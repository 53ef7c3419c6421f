//! Rotation through a Secret never leaves a tenant without a working credential. The sandbox's
//! product-connection Secret is changed, as a person or a secret manager would, to a
//! well-formed JWT PingOne does not know, to an expired one, to one that is not a JWT, then to
//! the one PingOne issued; an existing worker's Secret gets a client secret PingOne refuses.
//!
//! Throughout, a sampler compares the credential AM would present (the active, latest enabled
//! version of the mapped ESV secret) with what PingOne accepts for the connection: a rejected
//! value is never pushed, and the operator says so in a `CredentialRejected` condition and a
//! Warning Event naming the Secret and key, never the value.

mod scenario_support;
#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::Api;
use pingone_aic_operator::crd::PingOneIntegration;
use pingone_aic_operator::playground::{Playground, repository_examples};
use scenario_support::*;

const CONNECTION: &str = "acme-sandbox-connection";
const SECRET: &str = "pingone-connection-acme-sandbox";
const ESV: &str = "esv-pingone-connection-jwt";

/// The digest of the active version of the connection ESV in the sandbox: the highest
/// numbered enabled one.
fn active_digest(playground: &Playground) -> Option<String> {
    esv_versions(&playground.aic, "acme-sandbox", ESV)
        .into_iter()
        .filter(|(_, status, _)| status == "ENABLED")
        .max_by_key(|(version, _, _)| *version)
        .map(|(_, _, sha)| sha)
}

/// Samples, every 100 ms until finished, whether the active version is what PingOne accepts.
struct Sampler {
    task: tokio::task::JoinHandle<()>,
    broken: Arc<Mutex<Vec<String>>>,
    stop: Arc<Mutex<bool>>,
}

impl Sampler {
    fn start(playground: &Arc<Playground>, app: String) -> Self {
        let broken = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(Mutex::new(false));
        let (playground, sink, stopped) = (playground.clone(), broken.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !*stopped.lock().unwrap() {
                let accepted = playground
                    .pingone
                    .application_secret(&app)
                    .map(|secret| esv_version_digest(&secret));
                let active = active_digest(&playground);
                if active.is_none() || active != accepted {
                    sink.lock().unwrap().push(format!(
                        "active {active:?} while PingOne accepts {accepted:?}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { task, broken, stop }
    }

    /// Stops sampling; every sample where AM would have presented a refused credential.
    async fn finish(self) -> Vec<String> {
        *self.stop.lock().unwrap() = true;
        self.task.await.unwrap();
        self.broken.lock().unwrap().clone()
    }
}

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
    let playground = Arc::new(start(repository_examples(), Duration::from_secs(5)).await);
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let app = connection_app_id(&playground);
    let working = playground.pingone.application_secret(&app).unwrap();
    assert_eq!(
        active_digest(&playground),
        Some(esv_version_digest(&working)),
        "the seeded credential is the active version"
    );
    let versions_at_start = esv_versions(&playground.aic, "acme-sandbox", ESV).len();
    let sampler = Sampler::start(&playground, app.clone());

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
        active_digest(&playground),
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
    Arc::try_unwrap(playground)
        .ok()
        .expect("the sampler let go")
        .stop()
        .await;
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
