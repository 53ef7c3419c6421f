//! Two `pingone-aic-operator run` processes with leader election against the playground's
//! devkube (served over TCP) and simulators: one leads and carries the examples to Ready while
//! the other waits; when the leader is killed, the other takes the Lease over and reconciles
//! what changes next. The playground runs without its in-process operator here.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use pingone_aic_operator::crd::Promotion;
use pingone_aic_operator::crd::promotion::{PromotionPhase, PromotionSpec};
use pingone_aic_playground::{Playground, PlaygroundOptions, repository_examples};
use support::operator_process::OperatorProcess;

const LEASE: &str = "pingone-aic-operator-failover-test";

/// An operator process competing for the test's Lease as `identity`.
fn start_operator(kubeconfig: &Path, identity: &str) -> OperatorProcess {
    let args = [
        "run",
        "--kubeconfig",
        kubeconfig.to_str().expect("a UTF-8 path"),
        "--leader-election",
        "true",
        "--lease-name",
        LEASE,
        "--lease-namespace",
        "default",
        "--identity",
        identity,
        "--listen-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--log-filter",
        "info",
        "--watch-namespaces",
        "default",
        // The simulators restart and promote in about a second; poll like the
        // playground does rather than at production pace.
        "--poll-interval",
        "500ms",
        "--wait-interval",
        "1s",
        "--resync-interval",
        "60s",
    ];
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    support::operator_process::start(&args, &[])
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec?.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_over_when_the_leader_dies() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let playground = Playground::start(PlaygroundOptions {
        examples: repository_examples(),
        serve: Some(("127.0.0.1:0".parse().unwrap(), kubeconfig.clone())),
        run_operator: false,
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    let leases: Api<Lease> = Api::namespaced(playground.client.clone(), "default");
    let started = Instant::now();
    let stage = |what: &str| eprintln!("[{:>5.1}s] {what}", started.elapsed().as_secs_f64());

    // `a` starts first so that it is the one that leads; `b` then competes and waits.
    let a = start_operator(&kubeconfig, "a");
    testkit::eventually("a to lead", Duration::from_secs(60), || async {
        (holder(&leases).await.as_deref() == Some("a")).then_some(())
    })
    .await;
    stage("a leads");
    let b = start_operator(&kubeconfig, "b");

    let ready = playground
        .wait_ready(Duration::from_secs(180), |_| {})
        .await;
    if let Err(last) = &ready {
        panic!(
            "not everything became Ready: {last:#?}\n--- a:\n{}\n--- b:\n{}",
            a.logs(),
            b.logs()
        );
    }
    stage("everything is Ready");
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));
    assert!(a.logged("leading"), "a leads:\n{}", a.logs());
    assert!(b.logged("waiting to lead"), "b waits:\n{}", b.logs());
    assert!(!b.logged("leading"), "b must not lead:\n{}", b.logs());

    // The leader dies without releasing its lease; b takes over once it expires.
    drop(a);
    stage("a killed");
    testkit::eventually(
        "b to take the lease over",
        Duration::from_secs(90),
        || async { (holder(&leases).await.as_deref() == Some("b")).then_some(()) },
    )
    .await;
    stage("b holds the lease");
    testkit::eventually(
        "b to start its controllers",
        Duration::from_secs(30),
        || async { b.logged("leading").then_some(()) },
    )
    .await;

    // A change after the hand-over is reconciled by b: a new promotion, applied with kubectl as
    // a person would (through the API client where kubectl is not installed), runs to the end.
    let promotions: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    let manifest = "apiVersion: pingone-aic.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: acme-dev-to-uat-after-failover\nspec:\n  from: acme-dev\n  to: acme-uat\n  description: applied after the leader died\n";
    let applied_with_kubectl = support::kubectl_available()
        && Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()
            .map(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(manifest.as_bytes())
                    .unwrap();
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "kubectl apply failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            })
            .is_some();
    if !applied_with_kubectl {
        eprintln!("kubectl is not installed; creating the Promotion through the API client");
        promotions
            .create(
                &PostParams::default(),
                &Promotion::new(
                    "acme-dev-to-uat-after-failover",
                    PromotionSpec {
                        from: "acme-dev".into(),
                        to: "acme-uat".into(),
                        dry_run_only: false,
                        rollback_on_failure: false,
                        description: Some("applied after the leader died".into()),
                    },
                ),
            )
            .await
            .unwrap();
    }
    let phase = testkit::eventually(
        "the new promotion to finish",
        Duration::from_secs(120),
        || async {
            promotions
                .get("acme-dev-to-uat-after-failover")
                .await
                .ok()
                .and_then(|p| p.status)
                .map(|s| s.phase)
                .filter(|phase| phase.is_final())
        },
    )
    .await;
    assert_eq!(phase, PromotionPhase::Succeeded, "b:\n{}", b.logs());
    stage("b ran the new promotion");

    // b stops gracefully on SIGTERM.
    let mut b = b;
    assert!(
        b.terminate(Duration::from_secs(30)),
        "b exited with an error:\n{}",
        b.logs()
    );
    playground.stop().await;
}
