//! Fault campaign: for each seed, the examples (every policy `Automatic`, so the operator alone
//! acts) run against devkube and both simulators while a seeded schedule injects faults —
//! PingOne and AIC answering 429 with `Retry-After`, 500, 502, 503 or slowly; devkube dropping
//! every watch, compacting its history (410 on resume) and bumping resourceVersions under the
//! operator (409 on its next write); the operator killed mid-request or stopped and replaced.
//! When the faults stop, invariants must hold:
//!
//! - every resource converges to Ready;
//! - no promotion lock is left on any tenant;
//! - no duplicate worker application in any PingOne environment;
//! - every tenant's ESV client secret, active and loaded version, holds a secret PingOne accepts
//!   for the client id in its ESV (current, or previous and not expired) — so no secret still
//!   needed was revoked;
//! - a working credential is active: the sandbox's connection JWT that AM presents is the one
//!   PingOne holds — and, sampled all along while the faults run, in every tenant that has its
//!   ESVs the credential AM presents is one PingOne accepts;
//! - nothing was deleted: no DELETE reached either simulator, and every worker application of
//!   the `Retain` integration still exists.
//!
//! The schedule is a function of the seed (`fastrand::Rng::with_seed`); a failure names its
//! seed, and `FAULT_SEEDS=7,42 cargo test --test it fault_campaign` replays chosen seeds (thread
//! timing still varies between runs, the faults and their order do not).

use crate::evidence;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use pingone_aic_operator::crd::{PingOneIntegration, TenantEnvironment};
use pingone_aic_playground::{Playground, PlaygroundOptions};
use pingone_aic_sim::aic::Fault;
use pingone_aic_sim::control::FaultSpec;
use serde_json::{Value, json};

/// Seeds run by default; two run at a time.
const DEFAULT_SEEDS: [u64; 8] = [11, 23, 37, 41, 53, 67, 79, 97];
/// How long faults are injected, per seed.
const CHAOS: Duration = Duration::from_secs(10);
/// Upper bound for convergence once faults stop (a bound, not a measurement).
const CONVERGE: Duration = Duration::from_secs(180);

fn seeds() -> Vec<u64> {
    std::env::var("FAULT_SEEDS")
        .ok()
        .map(|text| {
            text.split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_SEEDS.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_lose_leak_or_duplicate_anything() {
    let seeds = seeds();
    let results: Vec<(u64, Result<Report, String>)> = futures::stream::iter(seeds.clone())
        .map(|seed| async move { (seed, run_seed(seed).await) })
        .buffer_unordered(2)
        .collect()
        .await;
    let mut invariants = 0;
    let mut failures = Vec::new();
    for (seed, result) in &results {
        match result {
            Ok(report) => {
                eprintln!(
                    "seed {seed}: {} faults, {} operator restarts, {} invariants hold, \
                     {} credential checks held while the faults ran",
                    report.faults, report.restarts, report.invariants, report.running_checks
                );
                invariants += report.invariants;
            }
            Err(why) => failures.push(format!(
                "seed {seed} (replay with FAULT_SEEDS={seed}): {why}"
            )),
        }
    }
    println!(
        "seeds run: {}, invariants checked: {invariants}",
        results.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

struct Report {
    faults: usize,
    restarts: usize,
    invariants: usize,
    /// Checks that a working credential was active, sampled while the faults ran.
    running_checks: usize,
}

const PINGONE_ROUTES: [&str; 4] = [
    "/v1/**",
    "/*/as/token",
    "/v1/environments/*/applications/**",
    "/v1/environments/*/applications",
];
const AIC_PREFIXES: [&str; 5] = [
    "/",
    "/environment",
    "/am/json",
    "/am/oauth2",
    "/environment/promotion",
];
const STATUSES: [u16; 4] = [429, 500, 502, 503];

async fn run_seed(seed: u64) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    evidence::write_automatic_examples(dir.path()).map_err(|e| e.to_string())?;
    let mut playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;

    let mut rng = fastrand::Rng::with_seed(seed);
    let tenant_names = playground.aic.tenant_names();
    let start = tokio::time::Instant::now();
    let deadline = start + CHAOS;
    // Every seed restarts the operator at least once, at a point of the seed's choosing.
    let forced_restart = start + Duration::from_millis(rng.u64(500..9_000));
    let (mut faults, mut restarts, mut touches) = (0, 0, 0u32);
    let (mut running_checks, mut broken) = (0, None);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(150..600))).await;
        // A working credential is active at every moment, not only once the faults stop.
        let applications = playground.pingone.state()["applications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match working_credentials(
            &playground.aic.snapshot(),
            &applications,
            playground.pingone_control.now(),
            Settled::No,
        ) {
            Ok(held) => running_checks += held,
            Err(why) => {
                broken.get_or_insert_with(|| format!("while the faults ran: {why}"));
            }
        }
        if restarts == 0 && tokio::time::Instant::now() >= forced_restart {
            restarts += 1;
            playground
                .restart_operator(rng.bool())
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        let roll = rng.u32(0..100);
        faults += 1;
        match roll {
            0..=29 => {
                let latency = rng.bool() && rng.bool();
                let status = STATUSES[rng.usize(..STATUSES.len())];
                playground.pingone_control.inject(FaultSpec {
                    method: None,
                    path: PINGONE_ROUTES[rng.usize(..PINGONE_ROUTES.len())].to_owned(),
                    times: rng.u32(1..4),
                    status: (!latency).then_some(status),
                    body: None,
                    retry_after: (!latency && status == 429).then(|| rng.u32(0..3).to_string()),
                    latency_ms: latency.then(|| rng.u64(100..1500)),
                    answer_delay_ms: None,
                });
            }
            30..=54 => {
                let latency = rng.bool() && rng.bool();
                let status = STATUSES[rng.usize(..STATUSES.len())];
                playground.aic.inject_fault(Fault {
                    tenant: rng
                        .bool()
                        .then(|| tenant_names[rng.usize(..tenant_names.len())].clone()),
                    method: None,
                    path: AIC_PREFIXES[rng.usize(..AIC_PREFIXES.len())].to_owned(),
                    status: (!latency).then_some(status),
                    retry_after: (!latency && status == 429).then(|| rng.u64(0..3)),
                    latency_ms: if latency { rng.u64(100..1500) } else { 0 },
                    count: rng.u32(1..4),
                });
            }
            55..=69 => playground.devkube().drop_watches(),
            70..=77 => playground.devkube().compact(),
            78..=91 => {
                touches += 1;
                touch(&playground, &mut rng, touches).await;
            }
            _ if restarts < 2 => {
                restarts += 1;
                playground
                    .restart_operator(rng.bool())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ => playground.devkube().drop_watches(),
        }
    }
    playground.pingone_control.clear_faults();

    let result = match playground.wait_ready(CONVERGE, |_| {}).await {
        Ok(_) if broken.is_some() => Err(broken.unwrap_or_default()),
        Ok(progress) => check_invariants(&playground, progress.len()).await,
        Err(last) => Err(format!(
            "not everything became Ready after the faults stopped: {last:#?}"
        )),
    };
    playground.stop().await;
    result.map(|invariants| Report {
        faults,
        restarts,
        invariants,
        running_checks,
    })
}

/// Bumps a resource's resourceVersion behind the operator's back (an annotation, no spec
/// change), so its next write that carries the old version gets 409 Conflict.
async fn touch(playground: &Playground, rng: &mut fastrand::Rng, n: u32) {
    let patch = json!({"metadata": {"annotations": {"chaos.example/touch": n.to_string()}}});
    let params = PatchParams::default();
    if rng.bool() {
        let api: Api<TenantEnvironment> =
            Api::namespaced(playground.client.clone(), &playground.namespace);
        if let Ok(list) = api.list(&Default::default()).await
            && !list.items.is_empty()
        {
            let name = list.items[rng.usize(..list.items.len())]
                .metadata
                .name
                .clone()
                .unwrap_or_default();
            let _ = api.patch(&name, &params, &Patch::Merge(&patch)).await;
        }
    } else {
        let api: Api<PingOneIntegration> =
            Api::namespaced(playground.client.clone(), &playground.namespace);
        if let Ok(list) = api.list(&Default::default()).await
            && !list.items.is_empty()
        {
            let name = list.items[rng.usize(..list.items.len())]
                .metadata
                .name
                .clone()
                .unwrap_or_default();
            let _ = api.patch(&name, &params, &Patch::Merge(&patch)).await;
        }
    }
}

/// SHA-256 of a secret as the AIC simulator hashes an ESV version: of the `valueBase64` sent.
fn sha256_hex(secret: &str) -> String {
    let sent = base64::engine::general_purpose::STANDARD.encode(secret);
    ring::digest::digest(&ring::digest::SHA256, sent.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode(value_base64: &Value) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(value_base64.as_str()?)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Checks the invariants; returns how many were checked.
async fn check_invariants(playground: &Playground, ready: usize) -> Result<usize, String> {
    let mut checked = ready; // every resource Ready
    let aic = playground.aic.snapshot();
    let pingone = playground.pingone.state();
    let now = playground.pingone_control.now();

    // No promotion lock left.
    for (name, tenant) in aic["tenants"].as_object().into_iter().flatten() {
        if !tenant["lock"].is_null() {
            return Err(format!("tenant {name} is still locked: {}", tenant["lock"]));
        }
        checked += 1;
    }

    // No duplicate worker applications.
    let applications = pingone["applications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut per_env: BTreeMap<(String, String), usize> = BTreeMap::new();
    for app in &applications {
        if app["fields"]["type"] == "WORKER" {
            let key = (
                app["environmentId"].as_str().unwrap_or_default().to_owned(),
                app["fields"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            *per_env.entry(key).or_default() += 1;
        }
    }
    for ((env, name), count) in &per_env {
        if *count > 1 {
            return Err(format!(
                "{count} worker applications named {name:?} in environment {env}"
            ));
        }
        checked += 1;
    }

    checked += working_credentials(&aic, &applications, now, Settled::Yes)?;

    // Nothing deleted: no DELETE reached a simulator; the Retain integration's apps remain.
    let pingone_deletes = playground
        .pingone_control
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE" && !c.faulted)
        .count();
    // Releasing a promotion lock is a DELETE that deletes nothing.
    let aic_deletes: Vec<String> = playground
        .aic
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE" && !c.path.starts_with("/environment/promotion/lock/"))
        .map(|c| format!("{} {}", c.tenant, c.path))
        .collect();
    if pingone_deletes > 0 || !aic_deletes.is_empty() {
        return Err(format!(
            "{pingone_deletes} DELETE calls reached PingOne; AIC received {aic_deletes:?}"
        ));
    }
    checked += 2;
    let workers = per_env
        .keys()
        .filter(|(_, name)| name == "Advanced Identity Cloud Worker")
        .count();
    if workers < 4 {
        return Err(format!(
            "{workers} worker applications of the Retain integration remain (expected 4)"
        ));
    }
    checked += 1;
    Ok(checked)
}

/// Whether the operator's work is over (faults stopped, everything Ready) or still under way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Settled {
    Yes,
    No,
}

/// A working credential is active: in every tenant that has its ESVs, the client secret AM
/// presents (the active version; once settled, the loaded one too) is one PingOne accepts for
/// the ESV client id, and the sandbox's active connection JWT is the one PingOne holds. While
/// the operator works, a tenant whose ESV secret does not exist yet is skipped. Returns how
/// many checks held.
fn working_credentials(
    aic: &serde_json::Value,
    applications: &[serde_json::Value],
    now: jiff::Timestamp,
    settled: Settled,
) -> Result<usize, String> {
    // Every ESV client secret holds a secret PingOne accepts for the ESV client id.
    let mut checked = 0;
    let mut verified = 0;
    for (name, tenant) in aic["tenants"].as_object().into_iter().flatten() {
        let Some(client_id) =
            decode(&tenant["variables"]["esv-pingone-worker-client-id"]["valueBase64"])
        else {
            continue;
        };
        let secret = &tenant["secrets"]["esv-pingone-worker-client-secret"];
        if settled == Settled::No && secret.is_null() {
            continue;
        }
        let app = applications
            .iter()
            .find(|a| a["id"] == client_id.as_str())
            .ok_or_else(|| format!("{name}: the ESV client id {client_id} is no application"))?;
        let mut accepted = vec![sha256_hex(app["secret"].as_str().unwrap_or_default())];
        if let Some(previous) = app["previous"].as_object() {
            let alive = previous["expiresAt"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t > now);
            if alive {
                accepted.push(sha256_hex(previous["secret"].as_str().unwrap_or_default()));
            }
        }
        // While the operator works, only what AM presents now must work; once settled, what
        // the running services loaded too.
        let which_versions: &[&str] = match settled {
            Settled::Yes => &["activeVersion", "loadedVersion"],
            Settled::No => &["activeVersion"],
        };
        for which in which_versions.iter().copied() {
            let version = secret[which].as_str().unwrap_or_default();
            let hash = secret["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["version"].to_string().trim_matches('"') == version)
                .and_then(|v| v["sha256"].as_str())
                .ok_or_else(|| format!("{name}: no {which} {version:?} of the client secret"))?;
            if !accepted.iter().any(|a| a == hash) {
                return Err(format!(
                    "{name}: the client secret's {which} ({version}) is not a secret PingOne accepts for {client_id}"
                ));
            }
            checked += 1;
        }
        verified += 1;
    }
    if settled == Settled::Yes && verified < 4 {
        return Err(format!(
            "only {verified} tenants hold the worker ESVs (expected the 4 of the promotion group)"
        ));
    }

    // A working credential is active: the sandbox's connection JWT that AM presents (the
    // active version) is the one PingOne holds for the product connection.
    let jwt = &aic["tenants"]["acme-sandbox"]["secrets"]["esv-pingone-connection-jwt"];
    if settled == Settled::No && jwt.is_null() {
        return Ok(checked);
    }
    let connection = applications
        .iter()
        .find(|a| a["fields"]["name"] == "Product connection acme-sandbox-connection")
        .ok_or("no product connection in PingOne")?;
    let active = jwt["activeVersion"].as_str().unwrap_or_default();
    let active_hash = jwt["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"].to_string().trim_matches('"') == active)
        .and_then(|v| v["sha256"].as_str())
        .ok_or_else(|| {
            format!("acme-sandbox: no active version {active:?} of the connection JWT")
        })?;
    if active_hash != sha256_hex(connection["secret"].as_str().unwrap_or_default()) {
        return Err(format!(
            "acme-sandbox: the active connection JWT (version {active}) is not the credential PingOne holds"
        ));
    }
    checked += 1;
    Ok(checked)
}
