//! What the benchmarks share: the repository's examples copied into promotion groups, the
//! operator as a process, and the memory figures of a process.
// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::path::Path;

use serde_json::{Value, json};
use testkit::process::Process;

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

/// Starts `pingone-aic-operator run` at the playground's pace (resync as given, polls of 0.5 s,
/// waits of 1 s), watching `default`, without leader election, with `extra` arguments (its
/// rate budgets); killed when dropped.
pub fn start_operator(kubeconfig: &Path, resync: std::time::Duration, extra: &[String]) -> Process {
    let mut args: Vec<String> = vec!["run".into(), "--kubeconfig".into()];
    args.push(kubeconfig.display().to_string());
    for arg in [
        "--leader-election",
        "false",
        "--listen-addr",
        "127.0.0.1:0",
        "--log-filter",
        "warn",
        "--watch-namespaces",
        "default",
        "--poll-interval",
        "500ms",
        "--wait-interval",
        "1s",
        "--resync-interval",
    ] {
        args.push(arg.into());
    }
    args.push(format!("{}s", resync.as_secs()));
    args.extend(extra.iter().cloned());
    let operator = env!("CARGO_BIN_EXE_pingone-aic-operator");
    // BENCH_OPERATOR_WRAPPER runs the operator under a profiler (e.g. `heaptrack`).
    match std::env::var("BENCH_OPERATOR_WRAPPER") {
        Ok(wrapper) if !wrapper.trim().is_empty() => {
            args.insert(0, operator.to_owned());
            Process::start(wrapper.trim(), &args, &[])
        }
        _ => Process::start(operator, &args, &[]),
    }
}

/// The PingOne environment id of group `group`'s `index`th TenantEnvironment.
pub fn environment_id(group: usize, index: usize) -> String {
    format!("{group:08x}-0000-4000-8000-{index:012x}")
}

/// Writes `groups` copies of the repository's examples (the hand-written Promotion left out,
/// every policy `Automatic`) into `dir`: group `g` has `gNNN-dev`, `-uat`, `-staging`, `-prod`
/// and `-sandbox`, each mapped to its own PingOne environment ([`environment_id`]). The AIC
/// Secrets are shared. With `groups_per_license`, consecutive groups share a PingOne licence
/// `lNNN` (its index from [`license_of`]), each licence with an admin worker of its own in an
/// administrators environment on that licence, as an organization per licence would have;
/// without it every group uses the examples' one admin worker and names no licence.
pub fn write_groups(dir: &Path, groups: usize, groups_per_license: Option<usize>) {
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
    if let Some(per) = groups_per_license {
        let mut text = String::new();
        for license in 0..groups.div_ceil(per.max(1)) {
            let secret = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("pingone-admin-worker-l{license:03}")},
                "stringData": {
                    "clientId": format!("9a9a9a9a-0000-4000-8000-{license:012x}"),
                    "clientSecret": format!("example-admin-client-secret-l{license:03}-not-real"),
                    "environmentId": format!("99999999-9999-4999-8999-{license:012x}"),
                },
            });
            text.push_str(&format!("---\n{secret}\n"));
        }
        std::fs::write(dir.join("001-admin-secrets.yaml"), text).expect("write the admin Secrets");
    }
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
                let ping_one = &mut document["spec"]["pingOne"];
                ping_one["environmentId"] = json!(environment_id(group, index));
                if let Some(per) = groups_per_license {
                    let license = license_of(group, per);
                    ping_one["license"] = json!(format!("l{license:03}"));
                    if ping_one.get("adminCredentialsSecretRef").is_some() {
                        ping_one["adminCredentialsSecretRef"]["name"] =
                            json!(format!("pingone-admin-worker-l{license:03}"));
                    }
                }
            }
            text.push_str(&format!("---\n{document}\n"));
        }
        std::fs::write(dir.join(format!("{prefix}.yaml")), text).expect("write a group");
    }
}

/// The licence group `group` is on when `per` groups share one.
pub fn license_of(group: usize, per: usize) -> usize {
    group / per.max(1)
}
