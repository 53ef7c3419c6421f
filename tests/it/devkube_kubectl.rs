//! The installed `kubectl` against devkube over TCP: CRDs and examples applied, `get` with the
//! printer columns, `get -w`, `patch`, `delete`, and every invalid example rejected with the
//! message it documents. Skips with a message where `kubectl` is not installed.

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use devkube::{DevKube, Options};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use support::repo_path;

/// Runs kubectl with the kubeconfig off the async runtime.
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache_dir(kubeconfig))
        .args(args);
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || command.output().expect("kubectl runs")),
    )
    .await
    .expect("kubectl finished before the timeout")
    .unwrap()
}

/// kubectl's discovery cache, next to the kubeconfig rather than in the user's home.
fn cache_dir(kubeconfig: &Path) -> PathBuf {
    kubeconfig.with_file_name("kubectl-cache")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args).await;
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Kills the child process when dropped, so a failing test leaves none behind.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tenant_environments(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("pingone-aic.io", "v1alpha1", "TenantEnvironment");
    Api::namespaced_with(client, "default", &ApiResource::from_gvk(&gvk))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_gets_watches_patches_and_deletes() {
    if !support::kubectl_available() {
        return;
    }
    // An empty server: the CRDs arrive through the API, as on a fresh cluster.
    let devkube = DevKube::with_options(Options {
        ..Options::default()
    });
    let server = devkube
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    server.write_kubeconfig(&config).unwrap();
    let crds = repo_path("crds");
    let examples = repo_path("deploy/examples");

    let out = kubectl_ok(&config, &["apply", "-f", crds.to_str().unwrap()]).await;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/tenantenvironments.pingone-aic.io created"), "{out}");
    let out = kubectl_ok(&config, &["apply", "-f", crds.to_str().unwrap()]).await;
    assert!(
        out.contains("tenantenvironments.pingone-aic.io unchanged"),
        "{out}"
    );

    let out = kubectl_ok(&config, &["apply", "-f", examples.to_str().unwrap()]).await;
    assert!(
        out.contains("tenantenvironment.pingone-aic.io/acme-dev created"),
        "{out}"
    );

    let out = kubectl_ok(&config, &["get", "tenantenvironments"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "TIER", "READY", "REASON", "POLICY", "PLAN", "AGE"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("acme-dev") && l.contains("development")),
        "{out}"
    );
    let explained = kubectl_ok(&config, &["explain", "tenv.spec.tier"]).await;
    assert!(
        explained.contains("KIND:       TenantEnvironment") && explained.contains("sandbox"),
        "{explained}"
    );
    let all = kubectl_ok(&config, &["get", "pingone-aic"]).await;
    assert!(
        all.contains("promotion.pingone-aic.io/acme-dev-to-uat-1"),
        "{all}"
    );
    let wide = kubectl_ok(&config, &["get", "tenv", "-o", "wide"]).await;
    assert!(
        wide.contains("TENANT") && wide.contains("https://openam-acme-euw2-dev.id.forgerock.io"),
        "{wide}"
    );

    // `get -w` prints the current rows, then each change.
    let mut watch = Reaper(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&config)
            .arg("--cache-dir")
            .arg(cache_dir(&config))
            .args(["get", "tenantenvironments", "-w", "--request-timeout=60s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = watch.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let mut wait_for = async |needle: &str| {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines.recv().await.expect("kubectl get -w ended");
                let found = line.contains(needle);
                printed.push(line);
                if found {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never printed"));
    };
    wait_for("acme-uat").await;
    let mut copy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "pingone-aic.io/v1alpha1",
        "kind": "TenantEnvironment",
        "metadata": {"name": "acme-watched"},
        "spec": {
            "tenantUrl": "https://openam-acme-watched.id.forgerock.io",
            "tier": "sandbox",
            "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "s", "key": "jwk"}},
            "pingOne": {"environmentId": "11111111-1111-4111-8111-111111111111", "region": "EU"}
        }
    }))
    .unwrap();
    copy.metadata.namespace = Some("default".into());
    let api = tenant_environments(server.client().unwrap());
    api.create(&PostParams::default(), &copy).await.unwrap();
    wait_for("acme-watched").await;
    drop(watch);

    let out = kubectl_ok(
        &config,
        &[
            "patch",
            "tenv",
            "acme-dev",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"team":"identity"}}}"#,
        ],
    )
    .await;
    assert!(
        out.contains("tenantenvironment.pingone-aic.io/acme-dev patched"),
        "{out}"
    );
    let patched = api.get("acme-dev").await.unwrap();
    assert_eq!(patched.labels()["team"], "identity");
    let out = kubectl_ok(
        &config,
        &["get", "tenv", "-l", "team=identity", "-o", "name"],
    )
    .await;
    assert_eq!(out.trim(), "tenantenvironment.pingone-aic.io/acme-dev");

    // Events the operator records (events.k8s.io) are what `kubectl describe` and `get events`
    // show (core v1).
    let recorder = Recorder::new(
        server.client().unwrap(),
        Reporter {
            controller: "pingone-aic-operator".into(),
            instance: None,
        },
    );
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "AuthenticationFailed".into(),
        note: Some("the service account key was refused".into()),
        action: "Authenticate".into(),
        secondary: None,
    };
    recorder
        .publish(
            &event,
            &patched.object_ref(&ApiResource::from_gvk(&GroupVersionKind::gvk(
                "pingone-aic.io",
                "v1alpha1",
                "TenantEnvironment",
            ))),
        )
        .await
        .unwrap();
    let described = kubectl_ok(&config, &["describe", "tenv", "acme-dev"]).await;
    assert!(
        described.contains("the service account key was refused"),
        "{described}"
    );
    let events = kubectl_ok(&config, &["get", "events"]).await;
    assert!(
        events.lines().next().unwrap().starts_with("LAST SEEN"),
        "{events}"
    );
    assert!(
        events.contains("tenantenvironment/acme-dev") && events.contains("AuthenticationFailed"),
        "{events}"
    );

    let out = kubectl_ok(&config, &["delete", "tenv", "acme-watched"]).await;
    assert!(out.contains("\"acme-watched\" deleted"), "{out}");
    assert!(api.get_opt("acme-watched").await.unwrap().is_none());

    // kubectl sends built-in objects it generates itself as protobuf.
    let out = kubectl_ok(
        &config,
        &[
            "create",
            "secret",
            "generic",
            "pasted-jwt",
            "--from-literal=jwt=header.payload.signature",
        ],
    )
    .await;
    assert!(out.contains("secret/pasted-jwt created"), "{out}");
    let secrets: Api<Secret> = Api::namespaced(server.client().unwrap(), "default");
    let secret = secrets.get("pasted-jwt").await.unwrap();
    assert_eq!(secret.data.unwrap()["jwt"].0, b"header.payload.signature");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));

    // Server-side apply and waiting on a field.
    let promotion = examples.join("05-promotion.yaml");
    let out = kubectl_ok(
        &config,
        &["apply", "--server-side", "-f", promotion.to_str().unwrap()],
    )
    .await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = kubectl_ok(
        &config,
        &[
            "wait",
            "--for=jsonpath={.spec.tier}=development",
            "tenv/acme-dev",
            "--timeout=30s",
        ],
    )
    .await;
    assert!(out.contains("condition met"), "{out}");

    // Mistakes are refused at admission with the message each example documents.
    let mut checked = 0;
    for (index, file) in support::invalid_examples().iter().enumerate() {
        let expected = support::expected_error(file);
        let namespace = format!("invalid-{index}");
        kubectl_ok(&config, &["create", "namespace", &namespace]).await;
        let output = kubectl(
            &config,
            &["apply", "-n", &namespace, "-f", file.to_str().unwrap()],
        )
        .await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{} was accepted", file.display());
        assert!(
            stderr.contains("is invalid") || stderr.contains("Error from server"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&expected),
            "{}: expected {expected:?} in {stderr}",
            file.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no invalid examples found");

    let out = kubectl_ok(&config, &["delete", "-f", examples.to_str().unwrap()]).await;
    assert!(
        out.contains("tenantenvironment.pingone-aic.io \"acme-dev\" deleted"),
        "{out}"
    );
    let left = kubectl_ok(&config, &["get", "pingone-aic", "-o", "name"]).await;
    assert_eq!(left.trim(), "", "everything applied was deleted");
    server.shutdown().await;
}
