//! What the benchmarks share: the repository's examples copied into promotion groups, and
//! the process's memory figures.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::path::Path;

use serde_json::{Value, json};

/// Kilobytes of a `/proc/<pid>/status` line (`VmHWM`, `VmRSS`); this process's without a pid.
pub fn proc_status_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The operator binary running against a kubeconfig, killed when dropped.
pub struct OperatorProcess {
    child: std::process::Child,
}

impl OperatorProcess {
    /// Starts `pingone-aic-operator run` at the playground's pace (resync as given, polls of
    /// 0.5 s, waits of 1 s), watching `default`, without leader election.
    pub fn start(kubeconfig: &Path, resync: std::time::Duration) -> Self {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_pingone-aic-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--leader-election", "false", "--listen-addr", "127.0.0.1:0"])
            .args(["--log-filter", "warn", "--watch-namespaces", "default"])
            .args(["--poll-interval", "500ms", "--wait-interval", "1s"])
            .arg("--resync-interval")
            .arg(format!("{}s", resync.as_secs()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the operator starts");
        Self { child }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `groups` copies of the repository's examples (the hand-written Promotion left out,
/// every policy `Automatic`) into `dir`: group `g` has `gNNN-dev`, `-uat`, `-staging`, `-prod`
/// and `-sandbox`, each mapped to its own PingOne environment. The Secrets are shared.
pub fn write_groups(dir: &Path, groups: usize) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    std::fs::copy(
        examples.join("01-secrets.yaml"),
        dir.join("000-secrets.yaml"),
    )
    .expect("copy the Secrets");
    let templates: Vec<Value> = [
        "02-tenant-environments.yaml",
        "03-pingone-integration-worker.yaml",
        "04-pingone-integration-product-connection.yaml",
    ]
    .iter()
    .flat_map(|f| devkube::manifests::read_file(&examples.join(f)).expect("examples"))
    .collect();
    // One file per group: the manifest reader allows a bounded number of documents per file.
    for group in 0..groups {
        let prefix = format!("g{group:03}");
        let mut text = String::new();
        for (index, template) in templates.iter().enumerate() {
            let replaced = template
                .to_string()
                .replace("\"acme-", &format!("\"{prefix}-"))
                .replace("\"Manual\"", "\"Automatic\"");
            let mut document: Value = serde_json::from_str(&replaced).expect("JSON");
            if document["kind"] == "TenantEnvironment" {
                document["spec"]["pingOne"]["environmentId"] =
                    json!(format!("{group:08x}-0000-4000-8000-{index:012x}"));
            }
            text.push_str(&format!("---\n{document}\n"));
        }
        std::fs::write(dir.join(format!("{prefix}.yaml")), text).expect("write a group");
    }
}
