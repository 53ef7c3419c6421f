//! Scale: 1,000 promotion groups (5,000 TenantEnvironments, 2,000 PingOneIntegrations, 3,000
//! Promotions the operator creates) in devkube and both simulators, served by this process, with
//! the operator binary as its own process carrying everything to Ready, under the rate limits:
//! groups share PingOne licences, the simulators answer 429 above the licence and tenant rates,
//! and the operator is given the same rates for its budgets. Prints the time to converge against
//! the bound the budgets allow, the calls each simulator received and the 429s, the Kubernetes
//! API requests, the operator's peak memory (`VmHWM`) and per managed resource, what one quiet
//! resync costs, and the same figures for a rotation of every worker secret at once. A report,
//! not a pass/fail test: `cargo bench --bench scale` (`SCALE_GROUPS`, `SCALE_GROUPS_PER_LICENSE`,
//! `SCALE_LICENSE_RATE`, `SCALE_TENANT_RATE`, `SCALE_RESYNC_SECONDS`). Without `--bench` (as
//! `cargo test --all-targets` runs it) it shrinks to 2 groups and a 30 s resync as a smoke test.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use pingone_aic_operator::budget::{self, Budgets};
use pingone_aic_operator::controller::integration::ROTATE_BEFORE_ANNOTATION;
use pingone_aic_operator::crd::PingOneIntegration;
use pingone_aic_operator::crd::pingone_integration::CredentialType;
use pingone_aic_playground::{Playground, PlaygroundOptions};
use pingone_aic_sim::aic::RateLimit as AicRateLimit;
use pingone_aic_sim::control::CallRecord;
use pingone_aic_sim::pingone::RateLimit as PingOneRateLimit;

mod support;

use support::{license_of, proc_status_kib, start_operator, write_groups};

/// The most frequent calls, with names and ids folded, for the steady-state breakdown.
fn top_routes(calls: impl Iterator<Item = String>) -> Vec<(usize, String)> {
    let names = regex::Regex::new(r"g[0-9]{3}-[a-z-]+[0-9]*|[0-9a-f]{8}-[0-9a-f-]{27}|\?.*$")
        .expect("a valid pattern");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for call in calls {
        *counts
            .entry(names.replace_all(&call, "{}").into_owned())
            .or_default() += 1;
    }
    let mut top: Vec<(usize, String)> = counts.into_iter().map(|(k, v)| (v, k)).collect();
    top.sort_by(|a, b| b.cmp(a));
    top.truncate(12);
    top
}

/// The fleet the benchmark runs: its size, how groups share PingOne licences, and the rates the
/// simulators enforce (the operator is given the same figures as its budget flags).
#[derive(Clone, Copy, Debug)]
struct Fleet {
    groups: usize,
    groups_per_license: usize,
    /// Requests per second of one PingOne licence (the simulator answers 429 above it).
    license_rate: f64,
    /// Requests per second of one AIC tenant.
    tenant_rate: f64,
    /// The operator's resync period.
    resync_seconds: u64,
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: f64| -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let fleet = Fleet {
        groups: if benchmarking {
            number("SCALE_GROUPS", 1000.0) as usize
        } else {
            2
        },
        groups_per_license: number("SCALE_GROUPS_PER_LICENSE", 40.0).max(1.0) as usize,
        license_rate: number("SCALE_LICENSE_RATE", budget::PINGONE_BASE_LICENSE_RATE),
        tenant_rate: number("SCALE_TENANT_RATE", budget::AIC_TENANT_RATE),
        resync_seconds: number(
            "SCALE_RESYNC_SECONDS",
            if benchmarking { 300.0 } else { 30.0 },
        ) as u64,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(fleet));
}

/// PingOne calls the simulator charged to each licence (API calls; token requests are another
/// rate group), and 429s answered, from its call log.
fn pingone_by_license(calls: &[CallRecord], fleet: Fleet) -> (BTreeMap<usize, usize>, usize) {
    let mut per_license = BTreeMap::new();
    let mut refused = 0;
    for call in calls {
        if call.status == 429 {
            refused += 1;
        }
        if call.path.ends_with("/as/token") {
            continue;
        }
        let license = call
            .path
            .strip_prefix("/v1/environments/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|env| license_of_environment(env, fleet.groups_per_license));
        // Calls naming no environment (the role list) go to the admin worker's licence; which
        // one is not in the log, and they are a handful, so they count against the first.
        *per_license.entry(license.unwrap_or(0)).or_default() += 1;
    }
    (per_license, refused)
}

/// The licence of an environment id the benchmark made: an administrators environment names
/// it in its last group, a mapped environment's first group is its promotion group.
fn license_of_environment(env: &str, per: usize) -> Option<usize> {
    if let Some(tail) = env.strip_prefix("99999999-9999-4999-8999-") {
        return usize::from_str_radix(tail, 16).ok();
    }
    let group = usize::from_str_radix(env.split('-').next()?, 16).ok()?;
    Some(license_of(group, per))
}

/// What one phase of the benchmark (convergence, the fleet-wide rotation) asked of the SaaS
/// and how long the budgets alone must make it take.
struct PhaseCalls {
    pingone: usize,
    aic: usize,
    refused: usize,
    /// The busiest licence's calls ÷ the operator's budget for it, and the same for the busiest
    /// tenant: the least time the budgets allow, whatever the concurrency.
    license_bound: Duration,
    tenant_bound: Duration,
}

impl PhaseCalls {
    fn take(playground: &Playground, fleet: Fleet) -> Self {
        let pingone_calls = playground.pingone_control.calls();
        let aic_calls = playground.aic.calls();
        let (per_license, pingone_refused) = pingone_by_license(&pingone_calls, fleet);
        let mut per_tenant = BTreeMap::<&str, usize>::new();
        for call in &aic_calls {
            *per_tenant.entry(call.tenant.as_str()).or_default() += 1;
        }
        let budgets = Budgets {
            pingone_license_rate: fleet.license_rate,
            aic_tenant_rate: fleet.tenant_rate,
            ..Budgets::default()
        };
        let busiest = |n: Option<&usize>, rate: f64| {
            Duration::from_secs_f64(n.copied().unwrap_or(0) as f64 / rate)
        };
        Self {
            pingone: pingone_calls.len(),
            aic: aic_calls.len(),
            refused: pingone_refused + aic_calls.iter().filter(|c| c.status == 429).count(),
            license_bound: busiest(per_license.values().max(), budgets.pingone().per_second),
            tenant_bound: busiest(per_tenant.values().max(), budgets.aic().per_second),
        }
    }

    fn total(&self) -> usize {
        self.pingone + self.aic
    }

    /// The bound a phase is judged against: the budgets' or the critical path, the larger.
    fn bound(&self, critical_path: Duration) -> Duration {
        self.license_bound.max(self.tenant_bound).max(critical_path)
    }

    fn print(&self, phase: &str, took: Duration, critical_path: Duration, tenants: usize) {
        let bound = self.bound(critical_path);
        println!(
            "  {phase}: {:.1} s; bound {:.1} s (busiest licence {:.1} s, busiest tenant {:.1} s, critical path {:.1} s); ratio {:.2} (target <= 1.3)",
            took.as_secs_f64(),
            bound.as_secs_f64(),
            self.license_bound.as_secs_f64(),
            self.tenant_bound.as_secs_f64(),
            critical_path.as_secs_f64(),
            took.as_secs_f64() / bound.as_secs_f64()
        );
        println!(
            "    calls: {} PingOne + {} AIC = {} ({:.1} per TenantEnvironment); 429s: {} ({:.2} % of calls; target <= 1 %)",
            self.pingone,
            self.aic,
            self.total(),
            self.total() as f64 / tenants as f64,
            self.refused,
            100.0 * self.refused as f64 / self.total().max(1) as f64
        );
    }
}

async fn run(fleet: Fleet) {
    let groups = fleet.groups;
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_groups(dir.path(), groups, Some(fleet.groups_per_license));
    // Five minutes (the operator's default is ten): with the PingOne budgets at their defaults,
    // a resync of every environment every 30 s would need more requests than the licences
    // allow (12,000 PingOne reads per resync against 25 licences at 3.5/s).
    let resync = Duration::from_secs(fleet.resync_seconds);
    let restart = Duration::from_millis(500);
    let promotion = Duration::from_millis(500);
    let debounce = Duration::from_secs(1);
    let baseline_kib = proc_status_kib(None, "VmRSS:");
    let started = Instant::now();
    let playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        resync,
        restart,
        promotion,
        debounce: Some(format!("{}s", debounce.as_secs())),
        // The operator runs as its own process, so its memory is measured apart from devkube's
        // and the simulators'.
        serve: Some((
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            dir.path().join("kubeconfig"),
        )),
        run_operator: false,
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    playground.pingone.set_rate_limit(Some(PingOneRateLimit {
        requests_per_second: fleet.license_rate,
        burst: None,
    }));
    playground.aic.set_rate_limit(Some(AicRateLimit {
        requests_per_second: fleet.tenant_rate,
        burst: None,
    }));
    let operator = start_operator(
        &dir.path().join("kubeconfig"),
        resync,
        &[
            "--pingone-license-rate".to_owned(),
            fleet.license_rate.to_string(),
            "--aic-tenant-rate".to_owned(),
            fleet.tenant_rate.to_string(),
        ],
    );
    let applied = started.elapsed();
    let mut last_line = Instant::now();
    let ready = playground
        .wait_ready(Duration::from_secs(3_600), |progress| {
            if last_line.elapsed() > Duration::from_secs(15) {
                let done = progress.iter().filter(|p| p.ready).count();
                eprintln!(
                    "  {:>5.0} s: {done}/{} Ready",
                    started.elapsed().as_secs_f64(),
                    progress.len()
                );
                last_line = Instant::now();
            }
        })
        .await;
    let converged = started.elapsed();
    let resources = match &ready {
        Ok(progress) => progress.len(),
        Err(last) => {
            let stuck: Vec<_> = last.iter().filter(|p| !p.ready).take(10).collect();
            eprintln!("not everything became Ready: {stuck:#?}");
            last.len()
        }
    };
    let convergence_calls = PhaseCalls::take(&playground, fleet);
    let convergence_routes = top_routes(
        playground
            .pingone_control
            .calls()
            .iter()
            .map(|c| {
                format!(
                    "PingOne {} {} -> {}",
                    c.method,
                    c.route.as_deref().unwrap_or(&c.path),
                    c.status
                )
            })
            .chain(
                playground
                    .aic
                    .calls()
                    .iter()
                    .map(|c| format!("AIC {} {} -> {}", c.method, c.path, c.status)),
            ),
    );
    let kube_requests = playground.devkube().requests_answered();
    let peak_converge_kib = proc_status_kib(None, "VmHWM:");
    let operator_converge_kib = proc_status_kib(Some(operator.pid()), "VmHWM:");

    // Steady state: what one resync period costs once everything is Ready.
    playground.pingone_control.clear_calls();
    playground.aic.clear_calls();
    let kube_before = playground.devkube().requests_answered();
    // One resync period: every resource is looked at once in it, whatever its phase.
    tokio::time::sleep(resync).await;
    let steady_pingone = playground.pingone_control.calls();
    let steady_aic = playground.aic.calls();
    // The request log keeps the latest 50,000 only: take the resync's share from its end.
    let steady_count = (playground.devkube().requests_answered() - kube_before) as usize;
    let log = playground.devkube().requests();
    let steady_kube: Vec<String> = log[log.len().saturating_sub(steady_count)..].to_vec();
    let steady_writes = steady_pingone.iter().filter(|c| c.method != "GET").count()
        + steady_aic.iter().filter(|c| c.method != "GET").count();
    let steady_kube_writes = steady_kube
        .iter()
        .filter(|l| !l.starts_with("GET "))
        .count();
    let steady_routes = top_routes(
        steady_pingone
            .iter()
            .map(|c| {
                format!(
                    "PingOne {} {}",
                    c.method,
                    c.route.as_deref().unwrap_or(&c.path)
                )
            })
            .chain(
                steady_aic
                    .iter()
                    .map(|c| format!("AIC {} {}", c.method, c.path)),
            )
            .chain(steady_kube.iter().map(|l| format!("Kubernetes {l}"))),
    );
    let steady_operator_kib = proc_status_kib(Some(operator.pid()), "VmRSS:");

    // Every worker secret of the fleet rotated at once, as on the day a rotation policy is
    // rolled out or a leak is answered: each worker integration asks for its secrets issued
    // before now to be replaced.
    playground.pingone_control.clear_calls();
    playground.aic.clear_calls();
    let rotation_started = Instant::now();
    let rotated = rotate_every_worker_secret(&playground).await;
    let rotation_ready = playground
        .wait_ready(Duration::from_secs(3_600), |_| {})
        .await
        .is_ok();
    let rotation_took = rotation_started.elapsed();
    let rotation_calls = PhaseCalls::take(&playground, fleet);

    let peak_kib = proc_status_kib(None, "VmHWM:");
    let operator_peak_kib = proc_status_kib(Some(operator.pid()), "VmHWM:");
    let operator_rss_kib = proc_status_kib(Some(operator.pid()), "VmRSS:");
    drop(operator);
    let summary = playground.summary().await;
    playground.stop().await;

    // Each group's path: the development environment's debounce and restart, then three
    // promotions one after another (lock, dry run, promotion, unlock); a rotation is one
    // restart-free push and test per environment, its path a fraction of a second.
    let lock = promotion / 2;
    let critical_path = debounce + restart + 3 * (2 * lock + 2 * promotion);
    let tenants = groups * 5;
    let licenses = groups.div_ceil(fleet.groups_per_license);
    println!(
        "scale: {groups} promotion groups, {tenants} TenantEnvironments, {resources} resources; {licenses} PingOne licences of {} groups at {} requests/s (the operator's budget {:.1}/s each), AIC tenants at {} requests/s",
        fleet.groups_per_license,
        fleet.license_rate,
        Budgets {
            pingone_license_rate: fleet.license_rate,
            ..Budgets::default()
        }
        .pingone()
        .per_second,
        fleet.tenant_rate
    );
    println!("  ready:                {}", ready.is_ok());
    println!("  examples applied in:  {:.1} s", applied.as_secs_f64());
    convergence_calls.print("time to converge", converged, critical_path, tenants);
    println!("  calls to converge, most frequent:");
    for (count, route) in convergence_routes {
        println!("    {count:>6}  {route}");
    }
    println!(
        "  Kubernetes requests to converge: {kube_requests} ({:.1} per resource)",
        kube_requests as f64 / resources.max(1) as f64
    );
    println!(
        "  restarts, promotions: {}, {}",
        summary.restarts, summary.promotions
    );
    println!(
        "  operator memory:      {:.1} MiB peak (VmHWM) at convergence, {:.1} MiB resident after the quiet resync, {:.1} MiB peak at the end ({:.1} KiB per resource at the peak)",
        operator_converge_kib as f64 / 1024.0,
        steady_operator_kib as f64 / 1024.0,
        operator_peak_kib as f64 / 1024.0,
        operator_peak_kib as f64 / resources.max(1) as f64
    );
    println!(
        "                        {:.1} MiB resident at the end",
        operator_rss_kib as f64 / 1024.0
    );
    println!(
        "  benchmark process:    {:.1} MiB peak at convergence, {:.1} MiB at the end (devkube + simulators; {:.1} MiB at start)",
        peak_converge_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        baseline_kib as f64 / 1024.0
    );
    println!(
        "  one quiet resync ({} s): {} PingOne + {} AIC calls ({:.2} per TenantEnvironment), {} of them writes; {} Kubernetes requests ({:.2} per resource), {} of them writes",
        resync.as_secs(),
        steady_pingone.len(),
        steady_aic.len(),
        (steady_pingone.len() + steady_aic.len()) as f64 / tenants as f64,
        steady_writes,
        steady_count,
        steady_count as f64 / resources.max(1) as f64,
        steady_kube_writes
    );
    println!("  one quiet resync, most frequent calls:");
    for (count, route) in steady_routes {
        println!("    {count:>6}  {route}");
    }
    println!(
        "  rotation of every worker secret ({rotated} worker environments), all Ready again: {rotation_ready}"
    );
    rotation_calls.print("time to rotate", rotation_took, Duration::ZERO, tenants);
}

/// Asks every worker-application integration to rotate each environment's secret issued before
/// now (the `pingone-aic.io/rotate-before` annotation), then waits until each of those environments completed
/// a rotation (its previous secret deleted). Returns the number of environments rotated.
async fn rotate_every_worker_secret(playground: &Playground) -> usize {
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let integrations = api.list(&ListParams::default()).await.expect("a list");
    let now = jiff::Timestamp::now().to_string();
    let mut rotating = 0;
    for integration in &integrations {
        if integration.spec.credential_type != CredentialType::WorkerApplication {
            continue;
        }
        rotating += integration.spec.environments.len();
        let patch =
            serde_json::json!({"metadata": {"annotations": {ROTATE_BEFORE_ANNOTATION: now}}});
        api.patch(
            &integration.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("a rotation request");
    }
    let done = || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let rotated = list
            .iter()
            .filter_map(|i| i.status.as_ref())
            .flat_map(|s| &s.environments)
            .filter_map(|e| e.secret_rotation.as_ref())
            .filter(|r| r.rotations >= 1 && r.phase.is_none())
            .count();
        Some(rotated)
    };
    let deadline = Instant::now() + Duration::from_secs(3_600);
    let mut last_line = Instant::now();
    loop {
        let rotated = done().await.unwrap_or(0);
        if rotated >= rotating || Instant::now() > deadline {
            return rotated;
        }
        if last_line.elapsed() > Duration::from_secs(15) {
            eprintln!("  rotation: {rotated}/{rotating} environments rotated");
            last_line = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
