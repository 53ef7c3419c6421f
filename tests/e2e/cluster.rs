//! The control plane the suite runs against, as `tests/e2e/control-plane/control-plane exec`
//! describes it in the environment: an admin client, kubectl, namespaces, the CRDs, service
//! account tokens, the Helm chart installed for real, the audit log, and an API-server restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::repo_path;

/// Held shared by every test that uses the API server, and exclusively by the one that
/// restarts it, so that no other test sees the restart.
pub static API_SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The running control plane, from the environment `control-plane exec` sets.
pub struct ControlPlane {
    /// The admin (system:masters) kubeconfig.
    pub kubeconfig: PathBuf,
    /// kube-apiserver's JSON audit log: every request of a service account.
    pub audit_log: PathBuf,
    /// This run's folder (certificates, logs, pids).
    pub dir: PathBuf,
    script: PathBuf,
}

/// The control plane; the suite refuses to run without one rather than guess a cluster.
pub fn control_plane() -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let var = |name: &str| {
            std::env::var(name).map(PathBuf::from).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: run the e2e suite through its control plane, \
                     `bash .ci/e2e` (or tests/e2e/control-plane/control-plane exec -- cargo test --test e2e)"
                )
            })
        };
        ControlPlane {
            kubeconfig: var("E2E_KUBECONFIG"),
            audit_log: var("E2E_AUDIT_LOG"),
            dir: var("E2E_CONTROL_PLANE"),
            script: var("E2E_CONTROL_PLANE_SCRIPT"),
        }
    })
}

impl ControlPlane {
    /// A client with the admin certificate.
    pub async fn admin(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }

    /// `kubectl --kubeconfig <admin> <args>`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, args)
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        kubectl_ok(&self.kubeconfig, args)
    }

    /// Stops kube-apiserver and starts it again on the same port and etcd; returns once it
    /// answers `/readyz` again.
    pub fn restart_apiserver(&self) {
        let output = blocking(|| {
            Command::new("bash")
                .arg(&self.script)
                .arg("restart-apiserver")
                .env("E2E_CONTROL_PLANE", &self.dir)
                .output()
                .expect("the control-plane script runs")
        });
        assert!(
            output.status.success(),
            "kube-apiserver did not come back: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The audit log's events (one JSON object a line), at their final stage.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["stage"] == "ResponseComplete")
            .map(|event| AuditEvent {
                user: text_at(&event, "/user/username"),
                verb: text_at(&event, "/verb"),
                api_group: text_at(&event, "/objectRef/apiGroup"),
                resource: text_at(&event, "/objectRef/resource"),
                subresource: text_at(&event, "/objectRef/subresource"),
                namespace: text_at(&event, "/objectRef/namespace"),
                name: text_at(&event, "/objectRef/name"),
                code: event
                    .pointer("/responseStatus/code")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u16,
                received: text_at(&event, "/requestReceivedTimestamp"),
            })
            .collect()
    }

    /// A kubeconfig at `path` that authenticates as service account `namespace/name` with a
    /// token from the TokenRequest API, as a pod of that service account would.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str, path: &Path) {
        let token =
            self.kubectl_ok(&["create", "token", name, "-n", namespace, "--duration", "3h"]);
        let admin: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&self.kubeconfig).unwrap()).unwrap();
        let cluster = &admin["clusters"][0]["cluster"];
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": token.trim()}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": name}}],
            "current-context": "e2e",
        });
        std::fs::write(path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    }

    /// Installs the chart as `release` into `namespace` with Helm's own install action (its Go
    /// SDK), `values` on top of the chart's defaults; every object goes through the API
    /// server. Returns the objects Helm created.
    pub fn helm_install(&self, release: &str, namespace: &str, values: &Value) -> Vec<Value> {
        let output = blocking(|| {
            Command::new("python3")
                .arg(repo_path("tests/e2e/helm_install.py"))
                .arg(&self.kubeconfig)
                .arg(repo_path("charts/pingone-aic-operator"))
                .arg(release)
                .arg(namespace)
                .arg(values.to_string())
                .output()
        });
        let output = match output {
            Ok(output) => output,
            Err(error) => {
                panic!("python3 with helm-python-sdk is needed (.ci/e2e installs it): {error}")
            }
        };
        assert!(
            output.status.success(),
            "helm install {release} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let manifest: Value = serde_json::from_slice(&output.stdout).expect("the release as JSON");
        manifest["objects"].as_array().cloned().unwrap_or_default()
    }
}

/// One request in the audit log.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub user: String,
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    /// RFC 3339 with microseconds, so it orders as text.
    pub received: String,
}

impl AuditEvent {
    /// Whether the request asked to change something.
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }

    /// `verb group/resource[/subresource] namespace/name -> code`, for messages.
    pub fn line(&self) -> String {
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        format!(
            "{} {}/{}{} {}/{} -> {}",
            self.verb, self.api_group, self.resource, sub, self.namespace, self.name, self.code
        )
    }
}

fn text_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The current time in the audit log's format, to cut it into windows.
pub fn audit_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).expect("a readable kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a usable kubeconfig");
    kube::Client::try_from(config).expect("a client")
}

/// Runs blocking work (a child process) without stalling the test's async runtime.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(work),
        Err(_) => work(),
    }
}

/// `kubectl --kubeconfig <kubeconfig> <args>`, with its discovery cache beside the kubeconfig.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    assert!(
        crate::support::kubectl_available(),
        "the e2e suite needs kubectl"
    );
    blocking(|| {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(kubeconfig.with_extension("kubectl-cache"))
            .args(args)
            .output()
            .expect("kubectl runs")
    })
}

/// kubectl that must succeed; its stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Applies `crds/` server-side once per run and waits until the three are Established.
pub fn install_crds() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let plane = control_plane();
    plane.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "e2e",
        "-f",
        repo_path("crds").to_str().unwrap(),
    ]);
    plane.kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "--timeout=60s",
        "crd/tenantenvironments.pingone-aic.io",
        "crd/pingoneintegrations.pingone-aic.io",
        "crd/promotions.pingone-aic.io",
    ]);
    *done = true;
}

/// Creates a namespace named `prefix-N` and returns its name. Namespaces are left behind: the
/// control plane has no namespace controller to finish deleting them, and it is thrown away.
pub async fn namespace(client: &kube::Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", fastrand::u32(..) % 1_000_000);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .expect("the namespace is created");
    name
}

/// The operator's container as the chart installed it: its args and environment, with what a
/// pod would resolve (`fieldRef`s to the pod's name and namespace) filled in for `identity`.
/// The metrics address is moved to loopback, the one change: the process runs on this host.
pub async fn chart_operator(
    client: &kube::Client,
    namespace: &str,
    deployment: &str,
    identity: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = deployments
        .get(deployment)
        .await
        .expect("the chart's Deployment");
    let container = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .expect("a container");
    let mut args = container.args.unwrap_or_default();
    if let Some(at) = args.iter().position(|a| a == "--listen-addr") {
        args[at + 1] = "127.0.0.1:0".to_owned();
    }
    let mut env = BTreeMap::new();
    for var in container.env.unwrap_or_default() {
        let value = match var
            .value_from
            .and_then(|f| f.field_ref)
            .map(|f| f.field_path)
        {
            Some(path) if path == "metadata.name" => identity.to_owned(),
            Some(path) if path == "metadata.namespace" => namespace.to_owned(),
            Some(path) => panic!("the test does not resolve fieldRef {path}"),
            None => var.value.unwrap_or_default(),
        };
        env.insert(var.name, value);
    }
    (args, env.into_iter().collect())
}

pub use testkit::eventually;
