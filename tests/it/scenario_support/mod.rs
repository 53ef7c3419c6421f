//! Helpers shared by the scenario tests: starting the playground, waiting for conditions, and
//! reading the simulators' and devkube's logs.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use pingone_aic_playground::{Playground, PlaygroundOptions, Progress};

/// Starts the playground on `examples` with a short resync.
pub async fn start(examples: PathBuf, resync: Duration) -> Playground {
    init_logs();
    Playground::start(PlaygroundOptions {
        examples,
        resync,
        ..Default::default()
    })
    .await
    .expect("the playground starts")
}

/// Logs to stderr when `TEST_LOG` names a filter.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing::subscriber::set_global_default(
            pingone_aic_operator::telemetry::subscriber(
                pingone_aic_operator::telemetry::LogFormat::Human,
                &filter,
                std::io::stderr,
            )
            .unwrap(),
        );
    }
}

/// Waits until every resource is Ready; panics with the last progress after a generous timeout.
pub async fn ready(playground: &Playground) -> Vec<Progress> {
    playground
        .wait_ready(Duration::from_secs(180), |_| {})
        .await
        .unwrap_or_else(|last| panic!("not everything became Ready: {last:#?}"))
}

/// Polls `check` until it returns `Some`, panicking with `what` after a generous timeout
/// (only there to avoid hanging; nothing is asserted about time).
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    testkit::eventually(what, Duration::from_secs(180), check).await
}

/// PingOne calls that change something: every call but reads and token requests.
pub fn pingone_writes(calls: &[pingone_aic_sim::control::CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.method != "GET" && !c.path.ends_with("/as/token"))
        .map(|c| format!("{} {} -> {}", c.method, c.path, c.status))
        .collect()
}

/// AIC calls that change something or cost a round trip to PingOne: every call but reads
/// (including the read-only `_action=schema`) and service-account token requests. `testConnection` counts: it is verification, done once
/// after a change, never on a resync without drift.
pub fn aic_writes(calls: &[pingone_aic_sim::aic::CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            c.method != "GET"
                && !c.path.ends_with("/access_token")
                && c.query.as_deref() != Some("_action=schema")
        })
        .map(|c| {
            format!(
                "{} {} {}?{} -> {}",
                c.tenant,
                c.method,
                c.path,
                c.query.clone().unwrap_or_default(),
                c.status
            )
        })
        .collect()
}

/// devkube requests that patch or replace a status subresource (log lines are
/// `METHOD path?query`, possibly followed by ` -> status`).
pub fn status_writes(requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| {
            let request = r.split(" -> ").next().unwrap_or_default();
            let path = request.split('?').next().unwrap_or_default();
            (request.starts_with("PATCH") || request.starts_with("PUT"))
                && path.trim_end().ends_with("/status")
        })
        .cloned()
        .collect()
}

/// `testConnection` calls answered with an error.
pub fn failed_connection_tests(calls: &[pingone_aic_sim::aic::CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            c.query
                .as_deref()
                .is_some_and(|q| q.contains("testConnection"))
                && c.status >= 300
        })
        .map(|c| format!("{} {} -> {}", c.tenant, c.path, c.status))
        .collect()
}

/// Writes `documents` (YAML text per file name) into a fresh folder for a focused scenario.
pub fn examples_dir(name: &str, files: &[(&str, String)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pingone-aic-scenario-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("an example file");
    }
    dir
}

/// The repository's example Secrets, for focused scenarios that reuse their keys.
pub fn example_secrets() -> String {
    std::fs::read_to_string(pingone_aic_playground::repository_examples().join("01-secrets.yaml"))
        .expect("the example Secrets")
}

/// The repository's example TenantEnvironments.
pub fn example_tenants() -> String {
    std::fs::read_to_string(
        pingone_aic_playground::repository_examples().join("02-tenant-environments.yaml"),
    )
    .expect("the example TenantEnvironments")
}

/// The example development TenantEnvironment alone (`acme-dev`).
pub const DEV_TENANT: &str = r#"
apiVersion: pingone-aic.io/v1alpha1
kind: TenantEnvironment
metadata:
  name: acme-dev
spec:
  tenantUrl: https://openam-acme-euw2-dev.id.forgerock.io
  tier: development
  realm: alpha
  serviceAccount:
    id: 2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e01
    privateKeySecretRef:
      name: aic-acme-dev-service-account
      key: jwk
  pingOne:
    environmentId: 11111111-1111-4111-8111-111111111111
    region: EU
    adminCredentialsSecretRef:
      name: pingone-admin-worker
  restart:
    policy: Automatic
    debounce: 60s
"#;

/// SHA-256 (hex) of a secret as the AIC simulator's snapshot shows ESV secret versions (it
/// hashes the stored base64 text).
pub fn esv_version_digest(secret: &str) -> String {
    use base64::Engine;
    let stored = base64::engine::general_purpose::STANDARD.encode(secret);
    let digest = ring::digest::digest(&ring::digest::SHA256, stored.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// An ESV secret as the simulator holds it (no value), `Null` when absent.
pub fn esv_secret(
    aic: &pingone_aic_sim::aic::AicSimulator,
    tenant: &str,
    secret: &str,
) -> serde_json::Value {
    aic.snapshot()["tenants"][tenant]["secrets"][secret].clone()
}

/// The versions of an ESV secret in a tenant: (version, status, sha256).
pub fn esv_versions(
    aic: &pingone_aic_sim::aic::AicSimulator,
    tenant: &str,
    secret: &str,
) -> Vec<(i64, String, String)> {
    let snapshot = aic.snapshot();
    snapshot["tenants"][tenant]["secrets"][secret]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| {
            (
                v["version"].as_i64().unwrap_or_default(),
                v["status"].as_str().unwrap_or_default().to_owned(),
                v["sha256"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// PingOne token requests that were refused.
pub fn refused_tokens(calls: &[pingone_aic_sim::control::CallRecord]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.path.ends_with("/as/token") && c.status >= 300)
        .map(|c| format!("{} {} -> {}", c.method, c.path, c.status))
        .collect()
}

/// The example admin worker's credentials (see `deploy/examples/01-secrets.yaml`).
pub const ADMIN_CLIENT_ID: &str = "9a9a9a9a-0000-4000-8000-000000000001";
/// Its secret.
pub const ADMIN_SECRET: &str = "example-admin-client-secret-not-real";
/// Its environment.
pub const ADMIN_ENVIRONMENT: &str = "99999999-9999-4999-8999-999999999999";
/// The PingOne environment of `acme-dev`.
pub const DEV_ENVIRONMENT: &str = "11111111-1111-4111-8111-111111111111";

/// A PingOne session of the example admin worker against the playground's PingOne simulator,
/// for tests acting as a person in the PingOne console.
pub async fn admin_session(
    playground: &Playground,
    secret: &str,
) -> pingone_aic_operator::pingone::PingOneSession {
    use pingone_aic_operator::crd::TenantEnvironment;
    let tenants: kube::Api<TenantEnvironment> =
        kube::Api::namespaced(playground.client.clone(), &playground.namespace);
    let tenant = tenants.get("acme-dev").await.expect("acme-dev");
    let endpoints =
        pingone_aic_operator::pingone::Endpoints::for_environment(&tenant.spec.ping_one)
            .expect("endpoints");
    pingone_aic_operator::pingone::PingOne::new(Default::default())
        .expect("a PingOne client")
        .session(
            endpoints,
            pingone_aic_operator::pingone::Credentials {
                environment_id: ADMIN_ENVIRONMENT.to_owned(),
                client_id: ADMIN_CLIENT_ID.to_owned(),
                client_secret: secret.into(),
                auth_method: pingone_aic_operator::pingone::TokenAuthMethod::ClientSecretBasic,
            },
        )
}

/// An application in the PingOne simulator's state.
pub fn pingone_app(playground: &Playground, id: &str) -> serde_json::Value {
    playground.pingone.state()["applications"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["id"] == id))
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// Creates a Secret with string data, or replaces the given keys of an existing one.
pub async fn put_secret(playground: &Playground, name: &str, data: &[(&str, &str)]) {
    use base64::Engine;
    use k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> =
        kube::Api::namespaced(playground.client.clone(), &playground.namespace);
    if api.get_opt(name).await.expect("a Secret read").is_some() {
        let encoded: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    serde_json::json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        api.patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"data": encoded})),
        )
        .await
        .expect("the Secret is updated");
    } else {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": data.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        }))
        .expect("a Secret");
        api.create(&Default::default(), &secret)
            .await
            .expect("the Secret is created");
    }
}

/// A WorkerApplication integration in `acme-dev` named `name`, with ESVs and a service of its
/// own (`esv-<name>-…`, service `<name>-svc`, label `<name>label`), and extra YAML under `spec`.
pub fn worker_integration(name: &str, app: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: pingone-aic.io/v1alpha1
kind: PingOneIntegration
metadata:
  name: {name}
  namespace: default
spec:
  credentialType: WorkerApplication
  environments:
    - name: acme-dev
  workerApplication:
    name: {app}
    adoptExisting: true
  esv:
    environmentId: esv-{name}-environment-id
    clientId: esv-{name}-client-id
    clientSecret: esv-{name}-client-secret
  service:
    name: {name}-svc
    secretLabelIdentifier: {name}label
{extra_spec}
"#
    )
}

/// Creates an object from YAML text.
pub async fn apply_yaml<K>(playground: &Playground, text: &str) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K =
        serde_json::from_value(devkube::manifests::parse_documents(text).expect("YAML")[0].clone())
            .expect("a valid object");
    let api: kube::Api<K> = kube::Api::namespaced(playground.client.clone(), &playground.namespace);
    api.create(&Default::default(), &object)
        .await
        .expect("the object is created")
}

/// The Ready condition (status, reason, message) of an integration.
pub async fn integration_ready(
    playground: &Playground,
    name: &str,
) -> Option<(String, String, String)> {
    use pingone_aic_operator::crd::PingOneIntegration;
    let api: kube::Api<PingOneIntegration> =
        kube::Api::namespaced(playground.client.clone(), &playground.namespace);
    let integration = api.get(name).await.ok()?;
    let status = integration.status?;
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Creates a worker application as a person would, returning its id.
pub async fn create_app(playground: &Playground, name: &str) -> String {
    use pingone_aic_operator::pingone::{PingOneApi, TokenAuthMethod, WorkerApplication};
    let admin = admin_session(playground, ADMIN_SECRET).await;
    admin
        .create_worker_application(
            DEV_ENVIRONMENT,
            &WorkerApplication {
                name: name.into(),
                description: None,
                enabled: true,
                token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
            },
        )
        .await
        .expect("the application is created")
        .id
}

/// The example uat TenantEnvironment (`acme-uat`, promoted from `acme-dev`).
pub const UAT_TENANT: &str = r#"
apiVersion: pingone-aic.io/v1alpha1
kind: TenantEnvironment
metadata:
  name: acme-uat
spec:
  tenantUrl: https://openam-acme-euw2-uat.id.forgerock.io
  tier: uat
  promotesFrom: acme-dev
  realm: alpha
  serviceAccount:
    id: 2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e02
    privateKeySecretRef:
      name: aic-acme-uat-service-account
      key: jwk
  pingOne:
    environmentId: 22222222-2222-4222-8222-222222222222
    region: EU
    adminCredentialsSecretRef:
      name: pingone-admin-worker
  restart:
    policy: Automatic
    debounce: 60s
"#;

/// Starts the playground with explicit options (the examples folder included).
pub async fn start_with(options: PlaygroundOptions) -> Playground {
    init_logs();
    Playground::start(options)
        .await
        .expect("the playground starts")
}

/// The id of the sandbox's product connection in the PingOne simulator (seeded from the
/// examples).
pub fn connection_app_id(playground: &Playground) -> String {
    playground.pingone.state()["applications"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|app| app["fields"]["name"] == "Product connection acme-sandbox-connection")
        .and_then(|app| app["id"].as_str())
        .expect("the seeded product connection")
        .to_owned()
}

/// As a person in the PingOne console: a worker application in `acme-dev` with Identity Data
/// Admin, made outside the operator. Returns its id and client secret.
pub async fn existing_worker(
    playground: &Playground,
    name: &str,
) -> (String, pingone_aic_operator::secret::SecretString) {
    use pingone_aic_operator::pingone::{PingOneApi, Scope};
    let app_id = create_app(playground, name).await;
    let admin = admin_session(playground, ADMIN_SECRET).await;
    let role = admin
        .role_id("Identity Data Admin")
        .await
        .expect("the role");
    admin
        .create_role_assignment(
            DEV_ENVIRONMENT,
            &app_id,
            &role,
            &Scope::environment(DEV_ENVIRONMENT),
        )
        .await
        .expect("the role is granted");
    let secret = admin
        .application_secret(DEV_ENVIRONMENT, &app_id)
        .await
        .expect("the secret");
    (app_id, secret.secret)
}

/// The digests (as [`esv_versions`] shows them) of the credentials PingOne accepts now for an
/// application: its secret and, while a rotation keeps it valid, the previous one.
pub fn accepted_digests(pingone: &pingone_aic_sim::pingone::PingOneSim, app: &str) -> Vec<String> {
    let state = pingone.state()["applications"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["id"] == app))
        .cloned()
        .unwrap_or_default();
    let mut accepted: Vec<String> = pingone
        .application_secret(app)
        .map(|secret| esv_version_digest(&secret))
        .into_iter()
        .collect();
    let previous_valid = state["previous"]["expiresAt"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|expires| expires > jiff::Timestamp::now());
    if previous_valid && let Some(previous) = state["previous"]["secret"].as_str() {
        accepted.push(esv_version_digest(previous));
    }
    accepted
}

/// The digest of the active version of an ESV secret: the highest-numbered enabled one, which
/// is what AM presents through the secret-label mapping.
pub fn active_digest(
    aic: &pingone_aic_sim::aic::AicSimulator,
    tenant: &str,
    esv: &str,
) -> Option<String> {
    esv_versions(aic, tenant, esv)
        .into_iter()
        .filter(|(_, status, _)| status == "ENABLED")
        .max_by_key(|(version, _, _)| *version)
        .map(|(_, _, sha)| sha)
}

/// Samples every 100 ms, for the whole scenario, whether the credential AM would present in a
/// tenant (the active version of the mapped ESV secret, once it exists) is one PingOne accepts
/// for `app`. It holds the simulators only, so the playground stays free to restart its
/// operator.
pub struct CredentialSampler {
    task: tokio::task::JoinHandle<()>,
    broken: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CredentialSampler {
    pub fn start(playground: &Playground, tenant: &str, esv: &str, app: &str) -> Self {
        let broken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (aic, pingone) = (playground.aic.clone(), playground.pingone.clone());
        let (sink, stopped) = (broken.clone(), stop.clone());
        let (tenant, esv, app) = (tenant.to_owned(), esv.to_owned(), app.to_owned());
        let task = tokio::spawn(async move {
            // Until the operator first writes the ESV secret there is nothing to present; from
            // then on there must always be a working one.
            let mut written = false;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let accepted = accepted_digests(&pingone, &app);
                let active = active_digest(&aic, &tenant, &esv);
                written |= active.is_some();
                if written && active.as_ref().is_none_or(|a| !accepted.contains(a)) {
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
    pub async fn finish(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("the sampler");
        self.broken.lock().unwrap().clone()
    }
}

/// acme-dev and acme-uat with one integration (`group`, worker service `group-svc`) across
/// both, waiting for its promotion; restarts and promotions at the simulator's timings.
pub async fn group_awaiting_promotion(name: &str) -> (Playground, PathBuf) {
    let dir = examples_dir(
        name,
        &[
            ("01-secrets.yaml", example_secrets()),
            (
                "02-tenants.yaml",
                format!("{DEV_TENANT}\n---\n{UAT_TENANT}"),
            ),
        ],
    );
    let playground = start_with(PlaygroundOptions {
        examples: dir.clone(),
        resync: Duration::from_secs(30),
        act_as_user: false,
        ..Default::default()
    })
    .await;
    ready(&playground).await;
    let group = worker_integration("group", "Group Worker", "").replace(
        "    - name: acme-dev\n",
        "    - name: acme-dev\n    - name: acme-uat\n",
    );
    apply_yaml::<pingone_aic_operator::crd::PingOneIntegration>(&playground, &group).await;
    eventually("the integration awaiting a promotion", || {
        let playground = &playground;
        async move {
            integration_ready(playground, "group")
                .await
                .filter(|r| r.2.contains("AwaitingPromotion"))
        }
    })
    .await;
    (playground, dir)
}
