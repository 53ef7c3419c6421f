//! Admission by the real API server: the CRDs from `crds/` become Established, every example is
//! accepted, every mistake in `deploy/examples/invalid/` is refused with the message its file
//! documents, and devkube refuses each with the same text.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use devkube::{DevKube, Options};
use serde_json::Value;

use crate::cluster::{self, control_plane, install_crds, kubectl, kubectl_ok};
use crate::support::repo_path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_become_established_and_every_example_is_accepted() {
    let _api_server = cluster::API_SERVER.read().await;
    install_crds();
    let plane = control_plane();
    let names: Vec<String> = std::fs::read_dir(repo_path("crds"))
        .unwrap()
        .map(|entry| {
            let file = entry.unwrap().file_name().into_string().unwrap();
            format!("crd/{}", file.trim_end_matches(".yaml"))
        })
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let mut args = vec!["get", "-o", "json"];
    args.extend(names.iter().map(String::as_str));
    let crds: Value = serde_json::from_str(&plane.kubectl_ok(&args)).unwrap();
    let crds = crds["items"].as_array().unwrap();
    assert_eq!(crds.len(), names.len());
    for crd in crds {
        let conditions = crd["status"]["conditions"].as_array().unwrap();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c["type"] == wanted && c["status"] == "True"),
                "{}: {wanted} is not True: {conditions:?}",
                crd["metadata"]["name"]
            );
        }
        // A structural schema is what the server needs to serve, prune and default.
        assert!(
            !conditions
                .iter()
                .any(|c| c["type"] == "NonStructuralSchema" && c["status"] == "True"),
            "{conditions:?}"
        );
    }

    let client = plane.admin().await;
    let namespace = cluster::namespace(&client, "examples").await;
    let examples = repo_path("deploy/examples");
    let applied = plane.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "e2e",
        "-n",
        &namespace,
        "-f",
        examples.to_str().unwrap(),
    ]);
    let ours = plane.kubectl_ok(&["get", "pingone-aic", "-n", &namespace, "-o", "name"]);
    let ours: Vec<&str> = ours.lines().collect();
    assert_eq!(
        ours.len(),
        documents_of_kinds(
            &examples,
            &["TenantEnvironment", "PingOneIntegration", "Promotion"]
        ),
        "every example is stored:\n{applied}\n{ours:?}"
    );
    // `kubectl get` prints the CRDs' columns.
    let table = plane.kubectl_ok(&["get", "tenv", "-n", &namespace]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "TIER", "READY", "REASON", "POLICY", "PLAN", "AGE"],
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mistake_is_refused_with_its_message_and_devkube_says_the_same() {
    let _api_server = cluster::API_SERVER.read().await;
    install_crds();
    let plane = control_plane();
    let client = plane.admin().await;

    // devkube, served over TCP and given the CRDs through its API as a fresh cluster would be.
    let devkube = DevKube::with_options(Options {
        ..Options::default()
    });
    let server = devkube
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let devkube_config = dir.path().join("devkube.kubeconfig");
    server.write_kubeconfig(&devkube_config).unwrap();
    kubectl_ok(
        &devkube_config,
        &[
            "apply",
            "--server-side",
            "-f",
            repo_path("crds").to_str().unwrap(),
        ],
    );

    let files = crate::support::invalid_examples();
    assert!(files.len() >= 10, "the invalid examples are missing");
    let mut disagreements = Vec::new();
    let mut undocumented = Vec::new();
    for file in &files {
        let expected = crate::support::expected_error(file);
        let namespace = cluster::namespace(&client, "invalid").await;
        let real = refusal(
            &plane.kubectl(&["apply", "-n", &namespace, "-f", path(file)]),
            file,
        );
        if !real.contains(&expected) {
            undocumented.push(format!(
                "{}:\n  kube-apiserver: {real}\n  documented:     {expected}",
                file.display()
            ));
        }
        kubectl_ok(&devkube_config, &["create", "namespace", &namespace]);
        let stand_in = refusal(
            &kubectl(
                &devkube_config,
                &["apply", "-n", &namespace, "-f", path(file)],
            ),
            file,
        );
        if stand_in != real {
            disagreements.push(format!(
                "{}:\n  kube-apiserver: {real}\n  devkube:        {stand_in}",
                file.display()
            ));
        }
    }
    assert!(
        undocumented.is_empty(),
        "the API server's messages are not the documented ones:\n{}",
        undocumented.join("\n")
    );
    assert!(
        disagreements.is_empty(),
        "devkube and kube-apiserver refuse differently:\n{}",
        disagreements.join("\n")
    );
    server.shutdown().await;
}

/// What the server said when it refused `file`: the causes after `is invalid: ` on kubectl's
/// error line (a create prints `The Kind "name" is invalid: ...`, an apply that patches
/// prints `Kind.group "name" is invalid: ...`; the causes are the same), or, when there are
/// several, the `* ` lines that follow it.
fn refusal(output: &std::process::Output, file: &Path) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{} was accepted:\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout)
    );
    let mut lines = stderr.lines();
    let first = lines
        .by_ref()
        .find_map(|line| line.split_once(" is invalid: ").map(|(_, causes)| causes))
        .unwrap_or_else(|| panic!("{}: not refused as invalid: {stderr}", file.display()))
        .trim();
    if !first.is_empty() {
        return first.to_owned();
    }
    // Several causes: one `* cause` line each.
    lines
        .filter_map(|line| line.strip_prefix("* "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn path(file: &Path) -> &str {
    file.to_str().expect("a UTF-8 path")
}

/// How many documents of `kinds` the manifests in `dir` hold.
fn documents_of_kinds(dir: &Path, kinds: &[&str]) -> usize {
    devkube::manifests::read_dir(dir)
        .unwrap()
        .iter()
        .filter(|doc| {
            doc.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|kind| kinds.contains(&kind))
        })
        .count()
}
