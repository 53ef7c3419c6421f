//! `pingone-aic-operator status` as a process against the playground served over TCP: the tree
//! of the examples once they are Ready, the same tree under the kubectl plugin's name (and
//! through kubectl itself), other namespaces, and `--watch` drawing a new frame on a change.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use kube::api::{Api, PostParams};
use pingone_aic_operator::crd::Promotion;
use pingone_aic_playground::{Playground, PlaygroundOptions, repository_examples};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_pingone-aic-operator");

fn run(program: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    (
        status.success(),
        String::from_utf8(stdout).expect("UTF-8 output"),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The NAME column of each line: the tree's shape without ages.
fn names(text: &str) -> Vec<String> {
    let width = text
        .lines()
        .next()
        .and_then(|h| h.find("TIER"))
        .expect("a header");
    text.lines()
        .map(|l| {
            l.chars()
                .take(width)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

fn line<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| {
            l.trim_start_matches(['│', '├', '└', '─', ' '])
                .starts_with(name)
        })
        .unwrap_or_else(|| panic!("no line for {name} in\n{text}"))
}

/// Every value of the example Secrets long enough to be a credential.
fn example_secret_values() -> Vec<String> {
    let documents = devkube::manifests::read_dir(&repository_examples()).unwrap();
    documents
        .iter()
        .filter(|d| d["kind"] == "Secret")
        .flat_map(|d| {
            ["stringData", "data"]
                .into_iter()
                .filter_map(|section| d[section].as_object().cloned())
                .flat_map(|map| map.into_iter().map(|(_, v)| v))
        })
        .filter_map(|v: Value| v.as_str().map(str::to_owned))
        .filter(|v| v.len() >= 16)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_draws_the_examples_promotion_group_and_sandbox() {
    crate::scenario_support::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let playground = Playground::start(PlaygroundOptions {
        examples: repository_examples(),
        serve: Some(("127.0.0.1:0".parse().unwrap(), kubeconfig.clone())),
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    playground
        .wait_ready(Duration::from_secs(300), |_| {})
        .await
        .unwrap_or_else(|last| panic!("not everything became Ready: {last:#?}"));

    let config = kubeconfig.to_str().unwrap().to_owned();
    let dir_path = dir.path().to_owned();
    let client = playground.client.clone();
    tokio::task::spawn_blocking(move || {
        check_once(&config);
        check_plugin(&dir_path, &config);
        check_watch(&config, client);
    })
    .await
    .unwrap();
    playground.stop().await;
}

/// One `status` against the kubeconfig's namespace: the whole tree, in order.
fn check_once(kubeconfig: &str) {
    let (ok, out, err) = run(
        Path::new(OPERATOR),
        &["status", "--kubeconfig", kubeconfig],
        &[],
    );
    assert!(ok, "{err}");
    // `*` ends a name the playground chose (it numbers the Promotions it applies).
    let expected = [
        "NAME",
        "Promotion group acme-dev",
        "├─ TenantEnvironment/acme-dev",
        "│  └─ PingOneIntegration/acme-worker",
        "├─ TenantEnvironment/acme-uat",
        "│  ├─ Promotion/acme-dev-to-uat-1",
        "│  └─ PingOneIntegration/acme-worker",
        "├─ TenantEnvironment/acme-staging",
        "│  ├─ Promotion/playground-acme-uat-to-acme-staging-*",
        "│  └─ PingOneIntegration/acme-worker",
        "└─ TenantEnvironment/acme-prod",
        "   ├─ Promotion/playground-acme-staging-to-acme-prod-*",
        "   └─ PingOneIntegration/acme-worker",
        "Sandboxes",
        "└─ TenantEnvironment/acme-sandbox",
        "   └─ PingOneIntegration/acme-sandbox-connection",
    ];
    let actual = names(&out);
    assert_eq!(actual.len(), expected.len(), "\n{out}");
    for (actual, expected) in actual.iter().zip(expected) {
        let matches = match expected.strip_suffix('*') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == expected,
        };
        assert!(matches, "{actual:?} where {expected:?} belongs:\n{out}");
    }
    for (tenant, tier) in [
        ("acme-dev", "development"),
        ("acme-uat", "uat"),
        ("acme-staging", "staging"),
        ("acme-prod", "production"),
        ("acme-sandbox", "sandbox"),
    ] {
        let words: Vec<&str> = line(&out, &format!("TenantEnvironment/{tenant}"))
            .split_whitespace()
            .skip_while(|w| !w.starts_with("TenantEnvironment/"))
            .collect();
        assert_eq!(words[1..5], [tier, "True", "Ready", "restart"], "\n{out}");
    }
    let worker_lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("PingOneIntegration/acme-worker"))
        .collect();
    assert!(
        worker_lines[0].contains("client ✓  ESVs ✓") && worker_lines[0].contains("connection ✓"),
        "{out}"
    );
    assert!(
        !worker_lines[0].contains("promoted"),
        "dev is not promoted into: {out}"
    );
    for upper in &worker_lines[1..] {
        assert!(
            upper.contains("True    Ready")
                && upper.contains("connection ✓")
                && upper.contains("promoted ✓"),
            "{out}"
        );
    }
    assert!(
        line(&out, "Promotion/acme-dev-to-uat-1").contains("Succeeded")
            && line(&out, "Promotion/acme-dev-to-uat-1").contains("acme-dev → acme-uat"),
        "{out}"
    );
    assert!(
        line(&out, "PingOneIntegration/acme-sandbox-connection").contains("credential ✓  ESVs ✓"),
        "{out}"
    );
    for value in example_secret_values() {
        assert!(!out.contains(&value), "a Secret value was printed");
    }

    let (ok, all, err) = run(
        Path::new(OPERATOR),
        &["status", "-A", "--kubeconfig", kubeconfig],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(names(&all)[1], "Namespace default", "\n{all}");
    assert_eq!(names(&all)[2], "├─ Promotion group acme-dev", "\n{all}");

    let (ok, empty, err) = run(
        Path::new(OPERATOR),
        &["status", "elsewhere", "--kubeconfig", kubeconfig],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(
        empty,
        "No TenantEnvironments, PingOneIntegrations or Promotions in namespace elsewhere.\n"
    );
}

/// Under the plugin's name the binary is `status`, with `KUBECONFIG` and `-n`; kubectl finds it
/// on PATH as `kubectl pingone-aic`.
fn check_plugin(dir: &Path, kubeconfig: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join("kubectl-pingone_aic");
    std::os::unix::fs::symlink(OPERATOR, &plugin).unwrap();
    let env = [("KUBECONFIG", std::ffi::OsStr::new(kubeconfig))];
    let (ok, out, err) = run(&plugin, &["-n", "default"], &env);
    assert!(ok, "{err}");
    let (_, direct, _) = run(
        Path::new(OPERATOR),
        &["status", "--kubeconfig", kubeconfig],
        &[],
    );
    assert_eq!(names(&out), names(&direct), "\n{out}");
    let (ok, help, _) = run(&plugin, &["--help"], &env);
    assert!(ok && help.contains("Usage: kubectl pingone-aic"), "{help}");

    if testkit::kubectl_available() {
        let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        let env = [
            ("KUBECONFIG", std::ffi::OsStr::new(kubeconfig)),
            ("PATH", path.as_os_str()),
        ];
        let (ok, out, err) = run(Path::new("kubectl"), &["pingone-aic", "-A"], &env);
        assert!(ok, "{err}");
        assert!(
            names(&out).contains(&"│  ├─ TenantEnvironment/acme-dev".to_owned()),
            "{out}"
        );
    }
}

/// `--watch` draws the tree, then a new frame when a Promotion appears, and stops on Ctrl-C.
fn check_watch(kubeconfig: &str, client: kube::Client) {
    let mut child = Command::new(OPERATOR)
        .args(["status", "--watch", "--kubeconfig", kubeconfig])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, matches: &dyn Fn(&str) -> bool| loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                seen.push(line.clone());
                if matches(&line) {
                    return;
                }
            }
            Err(_) => panic!("no {what}; output so far:\n{}", seen.join("\n")),
        }
    };
    wait_for("first frame", &|l| {
        l.contains("PingOneIntegration/acme-sandbox-connection")
    });

    let promotion: Promotion = serde_json::from_value(json!({
        "apiVersion": "pingone-aic.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": "status-watch-dry-run"},
        "spec": {"from": "acme-dev", "to": "acme-uat", "dryRunOnly": true},
    }))
    .unwrap();
    tokio::runtime::Handle::current()
        .block_on(
            Api::<Promotion>::namespaced(client, "default")
                .create(&PostParams::default(), &promotion),
        )
        .expect("the Promotion is created");
    // A pipe gets frames separated by a blank line; the new one shows the Promotion.
    wait_for("blank line between frames", &|l| l.is_empty());
    wait_for("the new Promotion", &|l| {
        l.contains("Promotion/status-watch-dry-run")
    });

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?} on Ctrl-C");
}

#[tokio::test]
async fn status_says_when_the_crds_are_not_installed() {
    let client = devkube::DevKube::new().client();
    let err = pingone_aic_operator::status_tree::source::list(&client, Some("default"))
        .await
        .expect_err("nothing to list without the CRDs");
    let message = err.to_string();
    assert!(message.starts_with("cannot list "), "{message}");
    assert!(
        message.contains("are the pingone-aic.io CRDs installed?"),
        "{message}"
    );
}
