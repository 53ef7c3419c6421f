//! The `pingone-aic-sim` binary as a process: it reads its seed file, prints the PingOne base
//! URL on the first line and one `aic <name> <url>` line per AIC tenant, serves the simulators
//! there and is stopped by the test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the simulator when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SEED: &str = r#"
pingone:
  pageSize: 10
  organizations:
    - name: Example Corp
      environments:
        - { id: 5c2a0c83-6d9f-4b6e-9d0e-6a4f1f3b2e10, name: Administrators, region: CA }
  workers:
    - id: 9d3e1b7a-0f57-4c8e-8a6b-2f3c4d5e6f70
      name: operator
      environment: Administrators
      secret: binary-test-secret-0123456789-0123456789-0123456789-0123456789
      roles:
        - { role: Environment Admin }
"#;

#[tokio::test]
async fn the_binary_serves_the_seeded_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("sim.yaml");
    std::fs::write(&seed, SEED).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pingone-aic-sim"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let first_line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("the simulator prints its URL")
    .unwrap()
    .unwrap();
    let base = first_line.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base:?}");

    let http = http_client();
    let env = "5c2a0c83-6d9f-4b6e-9d0e-6a4f1f3b2e10";
    let token: serde_json::Value = http
        .post(format!("{base}/{env}/as/token"))
        .basic_auth(
            "9d3e1b7a-0f57-4c8e-8a6b-2f3c4d5e6f70",
            Some("binary-test-secret-0123456789-0123456789-0123456789-0123456789"),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 3600);
    let environment: serde_json::Value = http
        .get(format!("{base}/v1/environments/{env}"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(environment["region"], "CA");
    let calls: serde_json::Value = http
        .get(format!("{base}/_sim/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["counts"]["POST /{env}/as/token"], 1, "{calls}");
    assert_eq!(calls["counts"]["GET /v1/environments/{env}"], 1, "{calls}");
}

/// Starts the binary with a seed and reads `lines` lines of its stdout.
async fn start(seed: &str, lines: usize) -> (Running, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.yaml");
    std::fs::write(&path, seed).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pingone-aic-sim"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut read = Vec::new();
            for _ in 0..lines {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                read.push(line.trim().to_owned());
            }
            std::io::Result::Ok(read)
        }),
    )
    .await
    .expect("the simulator prints its URLs")
    .unwrap()
    .unwrap();
    (running, read, dir)
}

const SEED_WITH_AIC: &str = r#"
pingone:
  organizations:
    - name: Example Corp
      environments:
        - { id: 5c2a0c83-6d9f-4b6e-9d0e-6a4f1f3b2e10, name: Administrators, region: EU }
aic:
  tenants:
    - { name: dev, tier: development }
    - { name: uat, tier: uat }
  promotionGroups: [[dev, uat]]
  timings: { restartMs: 100 }
"#;

#[tokio::test]
async fn the_binary_serves_aic_tenants_next_to_pingone() {
    let (_running, lines, _dir) = start(SEED_WITH_AIC, 3).await;
    assert!(lines[0].starts_with("http://127.0.0.1:"), "{lines:?}");
    let mut tenants = std::collections::BTreeMap::new();
    for line in &lines[1..] {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line:?}");
        assert_eq!(parts[0], "aic", "{line:?}");
        assert!(parts[2].starts_with("http://127.0.0.1:"), "{line:?}");
        tenants.insert(parts[1].to_owned(), parts[2].to_owned());
    }
    assert_eq!(
        tenants.keys().collect::<Vec<_>>(),
        ["dev", "uat"],
        "{lines:?}"
    );
    assert_ne!(tenants["dev"], tenants["uat"], "one port per tenant");

    let http = http_client();
    for (name, url) in &tenants {
        let state: serde_json::Value = http
            .get(format!("{url}/_sim/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected = if name == "dev" { "development" } else { "uat" };
        assert_eq!(state["tenants"][name]["tier"], expected, "{state}");
        // The tenant's APIs want a token, as AIC's do.
        let unauthenticated = http
            .get(format!("{url}/environment/variables"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status(), 401, "{name}");
    }
    // PingOne still answers on the first line's URL.
    let environment = http
        .get(format!(
            "{}/v1/environments/5c2a0c83-6d9f-4b6e-9d0e-6a4f1f3b2e10",
            lines[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(environment.status(), 401, "a bearer token is required");
}

#[test]
fn the_binary_refuses_a_bad_aic_seed() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("sim.yaml");
    std::fs::write(
        &seed,
        "aic:
  tenants:
    - { name: dev, tier: moon }
",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pingone-aic-sim"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no URL is printed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("moon"));
}

#[test]
fn the_binary_refuses_a_bad_seed() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("sim.yaml");
    std::fs::write(
        &seed,
        "pingone:\n  workers:\n    - { name: w, environment: nowhere }\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pingone-aic-sim"))
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&seed)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no URL is printed");
    assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere"));
}

/// A plain HTTP client; the workspace builds reqwest with rustls and no provider of its own.
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
