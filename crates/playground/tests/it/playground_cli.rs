//! The `playground` command as a process: with `--exit-when-ready` it carries the examples to
//! Ready and exits 0 with a summary (or fails, listing the failing conditions, when they cannot
//! become Ready in time); without it, it keeps serving so the installed `kubectl`
//! can read the resources, rotate a Secret and delete a resource while the operator reacts,
//! until SIGINT stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

/// Every value of the example Secrets long enough to be a credential.
fn example_secret_values() -> Vec<String> {
    let documents = devkube::manifests::read_dir(&examples()).unwrap();
    let mut values = Vec::new();
    for document in documents.iter().filter(|d| d["kind"] == "Secret") {
        for section in ["stringData", "data"] {
            if let Some(map) = document[section].as_object() {
                values.extend(
                    map.values()
                        .filter_map(Value::as_str)
                        .filter(|v| v.len() >= 16)
                        .map(str::to_owned),
                );
            }
        }
    }
    assert!(!values.is_empty());
    values
}

fn assert_no_secrets(text: &str) {
    for value in example_secret_values() {
        assert!(!text.contains(&value), "a Secret value was printed");
    }
}

#[test]
fn exit_when_ready_carries_the_examples_to_ready_and_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pingone-aic-playground"))
        .args(["--exit-when-ready", "--timeout", "180s"])
        .arg("--examples")
        .arg(examples())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    // Read both pipes on threads so neither fills up; bounded by the playground's own timeout
    // plus a margin.
    let stdout = running.0.stdout.take().unwrap();
    let stderr = running.0.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_exit(&mut running.0, Duration::from_secs(240)).expect("the playground exits");
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.success(),
        "exit {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The kubeconfig's default place is relative to the current directory.
    assert!(dir.path().join("target/playground/kubeconfig").is_file());
    assert!(
        stdout.contains("kubectl --kubeconfig target/playground/kubeconfig get pingone-aic"),
        "{stdout}"
    );
    assert!(stdout.contains("Everything is Ready."), "{stdout}");
    for figure in [
        "elapsed",
        "PingOne calls",
        "AIC calls",
        "AIC restarts",
        "promotions",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(figure)),
            "no {figure:?} in the summary:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("Promotion/acme-dev-to-uat-1"),
        "progress names the resources:\n{stdout}"
    );
    assert_no_secrets(&stdout);
    assert_no_secrets(&stderr);
}

/// Waits for a child to exit, polling, at most `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The lines a child prints, as they come.
struct Lines {
    receiver: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn of(reader: impl std::io::Read + Send + 'static) -> Self {
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            receiver,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) that satisfies `matches`, waiting at most `timeout`.
    fn wait_for(&mut self, timeout: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the expected line did not come; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn drain(&mut self) -> String {
        while let Ok(line) = self.receiver.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

/// Runs kubectl with the playground's kubeconfig; returns (success, stdout, stderr).
fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=20s")
        .args(args)
        .output()
        .expect("kubectl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn kubectl_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = kubectl(kubeconfig, args);
    assert!(ok, "kubectl {args:?} failed: {stderr}");
    stdout
}

fn get_json(url: &str) -> Value {
    // A blocking GET over plain HTTP on loopback, with std only, keeps this test free of an
    // async runtime around the child processes.
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    let body = http_exchange(authority, &request);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

fn put_json(url: &str, body: &Value) -> u16 {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_once('/').expect("a path");
    let body = body.to_string();
    let request = format!(
        "PUT /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Sends a request and returns the body of the (not chunked, or de-chunked) response.
fn http_exchange(authority: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    }
}

/// A JWT-shaped fake product-connection credential (never a real one).
fn sandbox_secret_version(kubeconfig: &Path) -> String {
    kubectl_ok(
        kubeconfig,
        &[
            "get",
            "p1i",
            "acme-sandbox-connection",
            "-o",
            "jsonpath={.status.environments[0].secretVersion}",
        ],
    )
}

#[test]
fn kubectl_drives_the_serving_playground() {
    if !testkit::kubectl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let child = Command::new(env!("CARGO_BIN_EXE_pingone-aic-playground"))
        .args(["--timeout", "180s", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--examples")
        .arg(examples())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut lines = Lines::of(running.0.stdout.take().unwrap());

    let pingone = lines.wait_for(Duration::from_secs(60), |l| {
        l.trim_start().starts_with("PingOne simulator")
    });
    let pingone = pingone
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let sandbox = lines.wait_for(Duration::from_secs(10), |l| l.contains("acme-sandbox "));
    let sandbox = sandbox
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let hint = lines.wait_for(Duration::from_secs(10), |l| {
        l.trim_start().starts_with("kubectl --kubeconfig")
    });
    assert_eq!(
        hint.trim(),
        format!(
            "kubectl --kubeconfig {} get pingone-aic",
            kubeconfig.display()
        )
    );
    lines.wait_for(Duration::from_secs(180), |l| l == "Everything is Ready.");

    // `get` shows the printer columns, every resource Ready.
    let table = kubectl_ok(&kubeconfig, &["get", "pingone-aic"]);
    assert!(
        table.contains("READY") && table.contains("REASON"),
        "{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("pingone-aic.io/"))
        .collect();
    assert!(rows.len() >= 8, "{table}");
    assert!(rows.iter().all(|r| r.contains("True")), "{table}");

    // Rotate the sandbox's product-connection credential: regenerate it in (simulated)
    // PingOne, as the console does, then put it into the Secret. The operator pushes a new
    // ESV secret version, restarts the tenant and verifies the connection with it.
    let state = get_json(&format!("{pingone}/_sim/pingone/state"));
    let connection = state["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|app| app["fields"]["name"] == "Product connection acme-sandbox-connection")
        .expect("the seeded product connection")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = sandbox_secret_version(&kubeconfig);
    assert!(!before.is_empty());
    let versions_before = get_json(&format!("{sandbox}/_sim/state"))["tenants"]["acme-sandbox"]
        ["secrets"]["esv-pingone-connection-jwt"]["versions"]
        .as_array()
        .map_or(0, Vec::len);
    let rotated = testkit::fake_connection_credential("rotated-by-the-playground-test");
    assert_eq!(
        put_json(
            &format!("{pingone}/_sim/pingone/applications/{connection}/secret"),
            &serde_json::json!({ "secret": rotated }),
        ),
        204
    );
    let patch = serde_json::json!({"data": {"credential": STANDARD.encode(&rotated)}}).to_string();
    kubectl_ok(
        &kubeconfig,
        &[
            "patch",
            "secret",
            "pingone-connection-acme-sandbox",
            "--type",
            "merge",
            "-p",
            &patch,
        ],
    );
    let after =
        testkit::eventually_blocking("a new ESV secret version", Duration::from_secs(120), || {
            let version = sandbox_secret_version(&kubeconfig);
            (!version.is_empty() && version != before).then_some(version)
        });
    assert_ne!(after, before);
    let versions_after = get_json(&format!("{sandbox}/_sim/state"))["tenants"]["acme-sandbox"]
        ["secrets"]["esv-pingone-connection-jwt"]["versions"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        versions_after > versions_before,
        "{versions_before} -> {versions_after}"
    );
    // The connection works with the rotated credential: Ready again, verified.
    testkit::eventually_blocking(
        "the sandbox verified again",
        Duration::from_secs(120),
        || {
            let out = kubectl_ok(
                &kubeconfig,
                &[
                    "get",
                    "p1i",
                    "acme-sandbox-connection",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}/{.status.environments[0].connectionVerified}/{.status.environments[0].secretVersion}",
                ],
            );
            (out == format!("True/true/{after}")).then_some(())
        },
    );

    // Delete the sandbox integration (deletionPolicy: Delete): the operator removes its
    // service configuration from the tenant, then the resource goes.
    kubectl_ok(
        &kubeconfig,
        &["delete", "p1i", "acme-sandbox-connection", "--wait=false"],
    );
    testkit::eventually_blocking("the integration gone", Duration::from_secs(120), || {
        let (ok, _, stderr) = kubectl(&kubeconfig, &["get", "p1i", "acme-sandbox-connection"]);
        (!ok && stderr.contains("NotFound")).then_some(())
    });
    let tenant = &get_json(&format!("{sandbox}/_sim/state"))["tenants"]["acme-sandbox"];
    let workers = &tenant["realms"]["alpha"]["workers"];
    assert!(
        workers.get("pingone-connection-aic").is_none(),
        "the worker service configuration is removed: {workers}"
    );

    // Ctrl-C stops it cleanly.
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status =
        wait_exit(&mut running.0, Duration::from_secs(60)).expect("the playground stops on SIGINT");
    let output = lines.drain();
    assert!(status.success(), "exit {status:?}\n{output}");
    assert!(output.contains("Stopping"), "{output}");
    assert_no_secrets(&output);
    assert!(
        !output.contains(&rotated),
        "the rotated credential was printed"
    );
}

#[test]
fn exit_when_ready_fails_with_the_failing_conditions_when_not_ready_in_time() {
    // Without a person (`--no-act-as-user`) nobody applies the Promotions to staging and
    // production the examples' Manual policy waits for: the examples cannot all become Ready.
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pingone-aic-playground"))
        .args(["--exit-when-ready", "--no-act-as-user", "--timeout", "5s"])
        .arg("--examples")
        .arg(examples())
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let status = wait_exit(&mut running.0, Duration::from_secs(120)).expect("the playground exits");
    let stdout = out.join().unwrap();
    assert!(!status.success(), "{stdout}");
    assert!(
        stdout.contains("Not everything became Ready within 5.0s; failing conditions:"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("PingOneIntegration/acme-worker: ") && l.contains("=False")),
        "{stdout}"
    );
    assert!(!stdout.contains("Everything is Ready."), "{stdout}");
    assert_no_secrets(&stdout);
}
