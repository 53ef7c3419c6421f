//! `pingone-aic-playground`: starts the playground with devkube served over TCP, follows it on
//! stdout (logs go to stderr) and either exits once everything is Ready or keeps serving until
//! Ctrl-C so a person can `kubectl get/edit/delete` and watch the operator react.
//!
//! Progress is one line per change: per resource its Ready reason and message, and per
//! environment of a PingOneIntegration the note its message carries. Lines that differ only in
//! a correlation id count as unchanged, so a retry loop does not flood the terminal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::Api;
use pingone_aic_operator::budget::{self, Budgets};
use pingone_aic_operator::crd::common::parse_duration_flag;
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use pingone_aic_operator::runtime;
use pingone_aic_operator::telemetry::{self, LogFormat};
use pingone_aic_playground::{Playground, PlaygroundOptions, Progress};
use pingone_aic_sim::aic::RateLimit as AicRateLimit;
use pingone_aic_sim::pingone::RateLimit as PingOneRateLimit;

/// The operator's whole job on its embedded defaults: devkube (a Kubernetes API stand-in you can
/// reach with `kubectl`), simulated PingOne and Advanced Identity Cloud, and the examples.
#[derive(Debug, Parser)]
#[command(version, about)]
struct PlaygroundArgs {
    /// Address devkube (the Kubernetes API stand-in) listens on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig for `kubectl`.
    #[arg(long, default_value = "target/playground/kubeconfig")]
    kubeconfig: PathBuf,
    /// Folder of example manifests to apply (and to seed the simulators from).
    #[arg(long, default_value = "deploy/examples")]
    examples: PathBuf,
    /// How long a simulated AIC restart takes.
    #[arg(long, default_value = "2s", value_parser = parse_duration_flag)]
    restart_duration: Duration,
    /// How long a simulated promotion (and its dry run) takes.
    #[arg(long, default_value = "1s", value_parser = parse_duration_flag)]
    promotion_duration: Duration,
    /// Restart debounce set on every TenantEnvironment (the examples' own is production-sized).
    #[arg(long, default_value = "2s", value_parser = parse_duration_flag)]
    debounce: Duration,
    /// Do not apply the Promotions and restart approvals the examples' `Manual` policies
    /// wait for; do it yourself with kubectl.
    #[arg(long)]
    no_act_as_user: bool,
    /// How long to wait for everything to become Ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration_flag)]
    timeout: Duration,
    /// Exit (0) once everything is Ready instead of serving until Ctrl-C; exit 1 on timeout.
    #[arg(long)]
    exit_when_ready: bool,
    /// Make the PingOne simulator enforce this licence rate (requests/s, 429 above it) and
    /// give the operator the same figure as its `--pingone-license-rate`.
    #[arg(long, value_parser = budget::parse_rate)]
    pingone_license_rate: Option<f64>,
    /// Make the AIC simulator enforce this rate per tenant (requests/s, 429 above it) and give
    /// the operator the same figure as its `--aic-tenant-rate`.
    #[arg(long, value_parser = budget::parse_rate)]
    aic_tenant_rate: Option<f64>,
    /// Log filter directives for the logs on stderr, e.g. `info,pingone_aic_operator=debug`.
    #[arg(long, env = "LOG_FILTER", default_value = "warn")]
    log_filter: String,
}

fn main() -> ExitCode {
    let args = PlaygroundArgs::parse();
    if let Err(err) = telemetry::init(LogFormat::Human, &args.log_filter) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(play(args))
}

async fn play(args: PlaygroundArgs) -> ExitCode {
    let started = Instant::now();
    let options = PlaygroundOptions {
        examples: args.examples.clone(),
        serve: Some((args.listen, args.kubeconfig.clone())),
        restart: args.restart_duration,
        promotion: args.promotion_duration,
        debounce: Some(if args.debounce.subsec_millis() == 0 {
            format!("{}s", args.debounce.as_secs())
        } else {
            format!("{}ms", args.debounce.as_millis())
        }),
        act_as_user: !args.no_act_as_user,
        budgets: Budgets {
            pingone_license_rate: args
                .pingone_license_rate
                .unwrap_or(budget::PINGONE_BASE_LICENSE_RATE),
            aic_tenant_rate: args.aic_tenant_rate.unwrap_or(budget::AIC_TENANT_RATE),
            ..Budgets::default()
        },
        ..PlaygroundOptions::default()
    };
    let playground = match Playground::start(options).await {
        Ok(playground) => playground,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(rate) = args.pingone_license_rate {
        playground.pingone.set_rate_limit(Some(PingOneRateLimit {
            requests_per_second: rate,
            burst: None,
        }));
    }
    if let Some(rate) = args.aic_tenant_rate {
        playground.aic.set_rate_limit(Some(AicRateLimit {
            requests_per_second: rate,
            burst: None,
        }));
    }
    print_header(&playground, &args);

    let mut signal = std::pin::pin!(runtime::termination_signal());
    let mut display = Display::default();
    let mut ready_since: Option<Instant> = None;
    let mut timed_out = false;
    let mut announced = false;
    let code = loop {
        tokio::select! {
            () = &mut signal => {
                println!("Stopping (interrupted).");
                break if args.exit_when_ready && ready_since.is_none() {
                    ExitCode::from(130)
                } else {
                    ExitCode::SUCCESS
                };
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let Ok(progress) = playground.progress().await else {
            continue;
        };
        display.show(&progress, started.elapsed());
        let all_ready = !progress.is_empty() && progress.iter().all(|p| p.ready);
        match (all_ready, ready_since) {
            (true, None) if announced => {
                ready_since = Some(Instant::now());
                println!("{} Everything is Ready again.", stamp(started.elapsed()));
            }
            (true, None) => {
                ready_since = Some(Instant::now());
                announced = true;
                print_summary(&playground).await;
                if args.exit_when_ready {
                    break ExitCode::SUCCESS;
                }
                print_interactive_hint(&playground);
            }
            (false, Some(_)) => ready_since = None,
            _ => {}
        }
        if !announced && !timed_out && started.elapsed() >= args.timeout {
            timed_out = true;
            println!(
                "Not everything became Ready within {}; failing conditions:",
                human(args.timeout)
            );
            for line in failing_conditions(&playground).await {
                println!("  {line}");
            }
            if args.exit_when_ready {
                break ExitCode::FAILURE;
            }
            println!("Still serving; Ctrl-C stops.");
        }
    };
    playground.stop().await;
    code
}

fn print_header(playground: &Playground, args: &PlaygroundArgs) {
    println!(
        "pingone-aic-playground: the examples in {} against simulated PingOne and AIC",
        args.examples.display()
    );
    if let Some(url) = &playground.devkube_url {
        println!("  Kubernetes API (devkube)  {url}");
    }
    println!(
        "  PingOne simulator         {}  (control API under /_sim/)",
        playground.pingone_url
    );
    for (region, url) in &playground.pingone_region_urls {
        println!("  PingOne region {region:<10} {url}");
    }
    for (name, url) in &playground.aic_urls {
        println!("  AIC tenant {name:<14} {url}");
    }
    if let Some(path) = &playground.kubeconfig {
        println!("Watch it with:");
        println!("  kubectl --kubeconfig {} get pingone-aic", path.display());
        println!(
            "  cargo run -- status --watch --kubeconfig {}   (each promotion group as a tree)",
            path.display()
        );
    }
    println!("Progress (elapsed, resource, what is happening now):");
}

fn print_interactive_hint(playground: &Playground) {
    let kubeconfig = playground
        .kubeconfig
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!(
        "Still serving: change things with kubectl --kubeconfig {kubeconfig} (get, edit, delete, \
         rotate a Secret) and watch the operator react here. Ctrl-C stops."
    );
}

async fn print_summary(playground: &Playground) {
    let summary = playground.summary().await;
    let mut by_tenant: BTreeMap<String, usize> = BTreeMap::new();
    for call in playground.aic.calls() {
        *by_tenant.entry(call.tenant).or_default() += 1;
    }
    let tenants: Vec<String> = by_tenant
        .iter()
        .map(|(tenant, calls)| format!("{tenant} {calls}"))
        .collect();
    println!("Everything is Ready.");
    println!("Summary:");
    println!("  elapsed          {}", human(summary.elapsed));
    println!("  PingOne calls    {}", summary.pingone_calls);
    println!(
        "  AIC calls        {} ({})",
        summary.aic_calls,
        tenants.join(", ")
    );
    println!("  AIC restarts     {}", summary.restarts);
    println!("  promotions       {}", summary.promotions);
}

/// Every condition that is not True, of every resource that is not Ready.
async fn failing_conditions(playground: &Playground) -> Vec<String> {
    let client = playground.client.clone();
    let namespace = playground.namespace.as_str();
    let mut lines = Vec::new();
    let mut add =
        |kind: &str, name: String, conditions: &[pingone_aic_operator::crd::common::Condition]| {
            let ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return;
            }
            if conditions.is_empty() {
                lines.push(format!("{kind}/{name}: no status yet"));
            }
            for c in conditions.iter().filter(|c| c.status != "True") {
                lines.push(format!(
                    "{kind}/{name}: {}={} {}: {}",
                    c.type_, c.status, c.reason, c.message
                ));
            }
        };
    let tenants: Api<TenantEnvironment> = Api::namespaced(client.clone(), namespace);
    for t in tenants
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let conditions = t.status.map(|s| s.conditions).unwrap_or_default();
        add(
            "TenantEnvironment",
            t.metadata.name.unwrap_or_default(),
            &conditions,
        );
    }
    let integrations: Api<PingOneIntegration> = Api::namespaced(client.clone(), namespace);
    for i in integrations
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let conditions = i.status.map(|s| s.conditions).unwrap_or_default();
        add(
            "PingOneIntegration",
            i.metadata.name.unwrap_or_default(),
            &conditions,
        );
    }
    let promotions: Api<Promotion> = Api::namespaced(client, namespace);
    for p in promotions
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
        add(
            "Promotion",
            p.metadata.name.unwrap_or_default(),
            &conditions,
        );
    }
    lines
}

/// What was last printed per resource and per integration environment.
#[derive(Default)]
struct Display {
    shown: BTreeMap<String, String>,
}

impl Display {
    /// Prints the lines that changed since the last call.
    fn show(&mut self, progress: &[Progress], elapsed: Duration) {
        let mut current = BTreeMap::new();
        for p in progress {
            let state = if p.ready {
                "Ready".to_owned()
            } else if p.reason.is_empty() {
                "waiting for the operator".to_owned()
            } else {
                p.reason.clone()
            };
            let notes = environment_notes(&p.message);
            let message = if notes.is_empty() {
                p.message.clone()
            } else {
                String::new()
            };
            current.insert(p.resource.clone(), line(&state, &message));
            for (environment, note) in notes {
                current.insert(format!("{}  {environment}:", p.resource), note);
            }
        }
        // An environment note that disappeared means that environment has nothing left to do;
        // a resource that disappeared was deleted.
        let gone: Vec<String> = self
            .shown
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.shown.remove(&key);
            if let Some((resource, _)) = key.split_once("  ") {
                // The notes of a deleted resource go with it.
                if current.contains_key(resource) {
                    println!("{} {key} done", stamp(elapsed));
                }
            } else {
                println!("{} {key:<44} deleted", stamp(elapsed));
            }
        }
        for (key, text) in current {
            let normalised = normalise(&text);
            if self.shown.get(&key) != Some(&normalised) {
                println!("{} {key:<44} {}", stamp(elapsed), shorten(&text));
                self.shown.insert(key, normalised);
            }
        }
    }
}

fn line(state: &str, message: &str) -> String {
    if message.is_empty() {
        state.to_owned()
    } else {
        format!("{state:<20} {message}")
    }
}

/// Splits `in progress (env: note; env: note)` into its environments' notes.
fn environment_notes(message: &str) -> Vec<(String, String)> {
    let Some(inner) = message
        .split_once(" (")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for part in inner.split("; ") {
        match part.split_once(": ") {
            Some((environment, note))
                if !environment.is_empty()
                    && environment
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                notes.push((environment.to_owned(), note.to_owned()));
            }
            _ => return Vec::new(),
        }
    }
    notes
}

/// Drops what changes on every retry (correlation ids) for the change check.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("Correlation ID: ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "Correlation ID: ".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Keeps a line readable in a terminal.
fn shorten(text: &str) -> String {
    const MAX: usize = 160;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

fn stamp(elapsed: Duration) -> String {
    format!("[{:>6.1}s]", elapsed.as_secs_f64())
}

fn human(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        format!(
            "{}m{:02}s",
            duration.as_secs() / 60,
            duration.as_secs() % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_messages_split_into_environment_notes() {
        let notes = environment_notes(
            "in progress (acme-dev: the ESVs wait for a restart; acme-uat: Promotion p is in progress)",
        );
        assert_eq!(
            notes,
            [
                (
                    "acme-dev".to_owned(),
                    "the ESVs wait for a restart".to_owned()
                ),
                (
                    "acme-uat".to_owned(),
                    "Promotion p is in progress".to_owned()
                ),
            ]
        );
        assert!(environment_notes("the tenant environment is reachable").is_empty());
        assert!(environment_notes("in progress (not a note)").is_empty());
    }

    #[test]
    fn correlation_ids_do_not_count_as_changes() {
        assert_eq!(
            normalise("denied (Correlation ID: 66c6cf78-ad66-4f2e) x"),
            normalise("denied (Correlation ID: 04f5bc72-ab3a-447b) x"),
        );
    }
}
