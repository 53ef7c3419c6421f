//! Scale: 200 promotion groups (1,000 TenantEnvironments, 400 PingOneIntegrations, 600
//! Promotions the operator creates) in devkube and both simulators, served by this process, with
//! the operator binary as its own process carrying everything to Ready. Prints the time to
//! converge, the calls each simulator received, the Kubernetes API requests, the operator's peak
//! memory (`VmHWM`) and per managed resource, and what one resync costs in steady state. A report, not a pass/fail
//! test: `cargo bench --bench scale` (`SCALE_GROUPS=n` to change the size). Without `--bench`
//! (as `cargo test --all-targets` runs it) it shrinks to 2 groups as a smoke test.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use pingone_aic_playground::{Playground, PlaygroundOptions};

mod support;

use support::{proc_status_kib, start_operator, write_groups};

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

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let groups: usize = if benchmarking {
        std::env::var("SCALE_GROUPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200)
    } else {
        2
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(groups));
}

async fn run(groups: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_groups(dir.path(), groups);
    let resync = Duration::from_secs(30);
    let baseline_kib = proc_status_kib(None, "VmRSS:");
    let started = Instant::now();
    let playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        resync,
        restart: Duration::from_millis(500),
        promotion: Duration::from_millis(500),
        debounce: Some("1s".to_owned()),
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
    let operator = start_operator(&dir.path().join("kubeconfig"), resync);
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
    let pingone_calls = playground.pingone_control.calls().len();
    let aic_calls = playground.aic.calls().len();
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
    let writes = |methods: &mut dyn Iterator<Item = String>| methods.filter(|m| m != "GET").count();
    let steady_writes = writes(&mut steady_pingone.iter().map(|c| c.method.clone()))
        + writes(&mut steady_aic.iter().map(|c| c.method.clone()));
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
    let steady_external_writes = top_routes(
        steady_pingone
            .iter()
            .filter(|c| c.method != "GET")
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
                    .filter(|c| c.method != "GET")
                    .map(|c| format!("AIC {} {}", c.method, c.path)),
            ),
    );
    let peak_kib = proc_status_kib(None, "VmHWM:");
    let operator_peak_kib = proc_status_kib(Some(operator.pid()), "VmHWM:");
    let operator_rss_kib = proc_status_kib(Some(operator.pid()), "VmRSS:");
    drop(operator);
    let summary = playground.summary().await;
    playground.stop().await;

    let tenants = groups * 5;
    println!(
        "scale: {groups} promotion groups, {tenants} TenantEnvironments, {resources} resources"
    );
    println!("  ready:                {}", ready.is_ok());
    println!("  examples applied in:  {:.1} s", applied.as_secs_f64());
    println!("  time to converge:     {:.1} s", converged.as_secs_f64());
    println!(
        "  external calls:       {} PingOne + {} AIC = {} ({:.1} per TenantEnvironment)",
        pingone_calls,
        aic_calls,
        pingone_calls + aic_calls,
        (pingone_calls + aic_calls) as f64 / tenants as f64
    );
    println!("  Kubernetes requests:  {kube_requests}");
    println!(
        "  restarts, promotions: {}, {}",
        summary.restarts, summary.promotions
    );
    println!(
        "  operator memory:      {:.1} MiB peak (VmHWM) at convergence, {:.1} MiB peak and {:.1} MiB resident after the resync ({:.1} KiB per resource)",
        operator_converge_kib as f64 / 1024.0,
        operator_peak_kib as f64 / 1024.0,
        operator_rss_kib as f64 / 1024.0,
        operator_peak_kib as f64 / resources.max(1) as f64
    );
    println!(
        "  benchmark process:    {:.1} MiB peak at convergence, {:.1} MiB after the resync (devkube + simulators; {:.1} MiB at start)",
        peak_converge_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        baseline_kib as f64 / 1024.0
    );
    println!(
        "  one resync ({} s):    {} PingOne + {} AIC calls ({:.2} per TenantEnvironment), {} of them writes; {} Kubernetes requests, {} of them writes",
        resync.as_secs(),
        steady_pingone.len(),
        steady_aic.len(),
        (steady_pingone.len() + steady_aic.len()) as f64 / tenants as f64,
        steady_writes,
        steady_count,
        steady_kube_writes
    );
    println!("  one resync, most frequent calls:");
    for (count, route) in steady_routes {
        println!("    {count:>6}  {route}");
    }
    println!("  one resync, external calls other than GET:");
    for (count, route) in steady_external_writes {
        println!("    {count:>6}  {route}");
    }
}
