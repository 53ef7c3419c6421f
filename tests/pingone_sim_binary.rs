//! The `pingone-aic-sim` binary as a process: it reads its seed file, prints its base URL on
//! the first line, serves the PingOne simulator there and is stopped by the test.

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

    let http = pingone_aic_operator::http::client("binary-test").unwrap();
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
