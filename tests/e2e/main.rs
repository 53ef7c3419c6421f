//! Opt-in end-to-end tests against a real Kubernetes cluster (kind, k3d, or any cluster you
//! may experiment on), for what no stand-in can prove: real CRD admission, RBAC as the API
//! server enforces it, and the Helm install with two replicas failing over.
//!
//! Ignored by default. Run them with a cluster at hand:
//!
//! ```sh
//! export E2E_KUBECONFIG=$HOME/.kube/config        # the cluster to use (required)
//! export E2E_IMAGE=pingone-aic-operator:dev       # an image the cluster can pull (Helm tests)
//! cargo test --test e2e -- --ignored --test-threads 1
//! ```
//!
//! With kind: `docker build -t pingone-aic-operator:dev . && kind load docker-image
//! pingone-aic-operator:dev`. The Helm tests need `helm` on the PATH. Each test works in a
//! namespace of its own and deletes it at the end.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The kubeconfig of the cluster under test; the tests refuse to guess one.
fn kubeconfig() -> String {
    std::env::var("E2E_KUBECONFIG")
        .expect("set E2E_KUBECONFIG to the kubeconfig of the cluster to test against")
}

fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs")
}

fn kubectl_ok(args: &[&str]) -> String {
    let output = kubectl(args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A namespace that is deleted when the test ends, pass or fail.
struct Namespace(String);

impl Namespace {
    fn new(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", fastrand::u32(..) % 1_000_000);
        kubectl_ok(&["create", "namespace", &name]);
        Namespace(name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

fn install_crds() {
    kubectl_ok(&[
        "apply",
        "--server-side",
        "-f",
        repo("crds").to_str().unwrap(),
    ]);
    kubectl_ok(&[
        "wait",
        "--for",
        "condition=Established",
        "--timeout=60s",
        "crd/tenantenvironments.pingone-aic.io",
        "crd/pingoneintegrations.pingone-aic.io",
        "crd/promotions.pingone-aic.io",
    ]);
}

#[test]
#[ignore = "requires a real cluster: set E2E_KUBECONFIG and run with --ignored"]
fn the_api_server_accepts_the_crds_and_the_examples() {
    install_crds();
    let namespace = Namespace::new("e2e-examples");
    kubectl_ok(&[
        "apply",
        "-n",
        &namespace.0,
        "-f",
        repo("deploy/examples").to_str().unwrap(),
    ]);
    let listed = kubectl_ok(&["get", "pingone-aic", "-n", &namespace.0, "-o", "name"]);
    assert_eq!(listed.lines().count(), 8, "{listed}");
}

#[test]
#[ignore = "requires a real cluster: set E2E_KUBECONFIG and run with --ignored"]
fn the_api_server_rejects_each_invalid_example_with_its_message() {
    install_crds();
    let namespace = Namespace::new("e2e-invalid");
    let dir = repo("deploy/examples/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expected-error: "))
            .expect("every invalid example documents its message")
            .to_owned();
        let documents: Vec<&str> = text.split("\n---\n").collect();
        if documents.len() == 2 {
            // An update: create the first, then replace it with the second.
            let first = tempfile_with(documents[0]);
            kubectl_ok(&["create", "-n", &namespace.0, "-f", first.to_str().unwrap()]);
            let second = tempfile_with(documents[1]);
            let output = kubectl(&[
                "replace",
                "-n",
                &namespace.0,
                "-f",
                second.to_str().unwrap(),
            ]);
            assert_rejected(&file, &output, &expected);
            let _ = kubectl(&["delete", "-n", &namespace.0, "-f", first.to_str().unwrap()]);
        } else {
            let output = kubectl(&["create", "-n", &namespace.0, "-f", file.to_str().unwrap()]);
            assert_rejected(&file, &output, &expected);
        }
    }
}

fn tempfile_with(text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("e2e-{}.yaml", fastrand::u64(..)));
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_rejected(file: &Path, output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{} was accepted", file.display());
    assert!(
        stderr.contains(expected),
        "{}: expected {expected:?}, the API server said {stderr}",
        file.display()
    );
}

fn helm(args: &[&str]) -> Output {
    Command::new("helm")
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(args)
        .output()
        .expect("helm runs")
}

fn image() -> (String, String) {
    let image = std::env::var("E2E_IMAGE").expect("set E2E_IMAGE to an image the cluster can pull");
    match image.rsplit_once(':') {
        Some((repository, tag)) => (repository.to_owned(), tag.to_owned()),
        None => (image, "latest".to_owned()),
    }
}

fn lease_holder(namespace: &str) -> String {
    kubectl_ok(&[
        "get",
        "lease",
        "pingone-aic-operator",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
#[ignore = "requires a real cluster, helm and an operator image: set E2E_KUBECONFIG and E2E_IMAGE"]
fn helm_install_two_replicas_and_failover() {
    let namespace = Namespace::new("e2e-helm");
    let (repository, tag) = image();
    let output = helm(&[
        "install",
        "pingone-aic-operator",
        repo("charts/pingone-aic-operator").to_str().unwrap(),
        "-n",
        &namespace.0,
        "--set",
        &format!("image.repository={repository}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "replicaCount=2",
        "--wait",
        "--timeout",
        "180s",
    ]);
    assert!(
        output.status.success(),
        "helm install failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // RBAC as the API server enforces it: read-only on Secrets, nothing on Pods.
    let service_account = format!("system:serviceaccount:{}:pingone-aic-operator", namespace.0);
    for (verb, resource, allowed) in [
        ("get", "secrets", "yes"),
        ("update", "secrets", "no"),
        ("delete", "secrets", "no"),
        ("get", "pods", "no"),
        ("patch", "tenantenvironments.pingone-aic.io/status", "yes"),
        ("create", "promotions.pingone-aic.io", "yes"),
        ("delete", "pingoneintegrations.pingone-aic.io", "no"),
    ] {
        let output = kubectl(&[
            "auth",
            "can-i",
            verb,
            resource,
            "--as",
            &service_account,
            "-n",
            &namespace.0,
        ]);
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert_eq!(answer, allowed, "can the operator {verb} {resource}?");
    }

    // Two replicas: one holds the lease; when its pod goes, the other takes over.
    let mut first = String::new();
    wait_until("a lease holder", Duration::from_secs(120), || {
        first = lease_holder(&namespace.0);
        !first.is_empty()
    });
    kubectl_ok(&["delete", "pod", &first, "-n", &namespace.0, "--wait=false"]);
    wait_until("a new lease holder", Duration::from_secs(180), || {
        let holder = lease_holder(&namespace.0);
        !holder.is_empty() && holder != first
    });
    let _ = helm(&["uninstall", "pingone-aic-operator", "-n", &namespace.0]);
}
