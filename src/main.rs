//! The `pingone-aic-operator` command line (`run`, `crdgen`, `status`, `metrics`;
//! `kubectl pingone-aic` when invoked as `kubectl-pingone_aic`): a thin layer over the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pingone_aic_operator::budget::{self, Budgets, parse_rate, parse_share};
use pingone_aic_operator::controller::OperatorConfig;
use pingone_aic_operator::crd;
use pingone_aic_operator::crd::common::parse_duration_flag;
use pingone_aic_operator::runtime::{self, LeaderElection, RunOptions};
use pingone_aic_operator::status_tree::{self, Scope, StatusOptions};
use pingone_aic_operator::telemetry::{self, LogFormat};

/// Kubernetes operator for PingOne and PingOne Advanced Identity Cloud.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator against a Kubernetes cluster.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions of all resources as multi-document YAML.
    Crdgen {
        /// Write one file per CRD (`<plural>.<group>.yaml`) into this folder instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Show each promotion group as a tree, from the Kubernetes API alone.
    ///
    /// Tenant environments in promotion order with their restart state, each integration's
    /// progress per environment, running Promotions. Also the kubectl plugin
    /// `kubectl pingone-aic`: this binary linked as `kubectl-pingone_aic` on PATH.
    Status(StatusArgs),
    /// Print the metric families the operator exports, each with an example series (OpenMetrics
    /// text): the names and labels dashboards and alerts can query.
    Metrics,
}

/// Name under which the binary behaves as `kubectl pingone-aic`: kubectl runs
/// `kubectl-pingone_aic` from PATH for that command, so a symlink or copy of this binary under
/// that name is the plugin.
const KUBECTL_PLUGIN: &str = "kubectl-pingone_aic";

/// `kubectl pingone-aic`: the `status` command as a kubectl plugin.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl pingone-aic",
    bin_name = "kubectl pingone-aic",
    version,
    about = "Show each pingone-aic.io promotion group as a tree: tenant environments in promotion order with their restart state, each integration's progress per environment, running Promotions."
)]
struct PluginCli {
    #[command(flatten)]
    status: StatusArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Namespace to show; by default the kubeconfig context's namespace.
    #[arg(value_name = "NAMESPACE", conflicts_with_all = ["namespace", "all_namespaces"])]
    namespace_arg: Option<String>,
    /// Namespace to show, as kubectl's `-n`.
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Show every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// Keep drawing the tree as resources change, until Ctrl-C.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Kubeconfig file; by default `KUBECONFIG`, then `~/.kube/config`.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

/// Logging flags.
#[derive(Debug, Args)]
struct LogArgs {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log filter directives, e.g. `info,pingone_aic_operator=debug`.
    #[arg(long, env = "LOG_FILTER", default_value = "info")]
    log_filter: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Kubeconfig file; by default the in-cluster configuration or `KUBECONFIG`.
    #[arg(long, env = "KUBECONFIG_PATH")]
    kubeconfig: Option<PathBuf>,
    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// How often a resource in steady state is looked at again (e.g. `10m`).
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration_flag)]
    resync_interval: Duration,
    /// How often a running AIC operation (restart, lock, promotion) is polled.
    #[arg(long, env = "POLL_INTERVAL", default_value = "10s", value_parser = parse_duration_flag)]
    poll_interval: Duration,
    /// How often a wait on something outside the operator's hands (a restart, a promotion,
    /// another promotion's lock) is looked at again.
    #[arg(long, env = "WAIT_INTERVAL", default_value = "30s", value_parser = parse_duration_flag)]
    wait_interval: Duration,
    /// Most reconciles running at once per resource kind. What runs is first admitted by the
    /// PingOne licences and AIC tenants it spends on (a few at a time on each, from the rate
    /// budgets); this bounds the load on the Kubernetes API on top of that.
    #[arg(long, env = "CONCURRENCY")]
    concurrency: Option<u16>,
    /// Requests per second of one PingOne licence (default: Ping's base limit of the
    /// Configuration rate group, 600 per minute).
    #[arg(long, env = "PINGONE_LICENSE_RATE", default_value_t = budget::PINGONE_BASE_LICENSE_RATE, value_parser = parse_rate)]
    pingone_license_rate: f64,
    /// Share of a licence's rate this operator (one client IP) may use.
    #[arg(long, env = "PINGONE_IP_SHARE", default_value_t = budget::PINGONE_IP_SHARE, value_parser = parse_share)]
    pingone_ip_share: f64,
    /// Requests per second to one AIC tenant.
    #[arg(long, env = "AIC_TENANT_RATE", default_value_t = budget::AIC_TENANT_RATE, value_parser = parse_rate)]
    aic_tenant_rate: f64,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen_addr: SocketAddr,
    /// Compete for a Lease so that only one replica acts.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "pingone-aic-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

fn main() -> ExitCode {
    if invoked_as_kubectl_plugin() {
        return status(PluginCli::parse().status);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(*args),
        Command::Status(args) => status(args),
        Command::Crdgen { out_dir } => match crdgen(out_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
        Command::Metrics => {
            print!(
                "{}",
                pingone_aic_operator::metrics::Metrics::sample().encode()
            );
            ExitCode::SUCCESS
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    if let Err(err) = telemetry::init(args.log.log_format, &args.log.log_filter) {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("pingone-aic-operator-{}", std::process::id()));
    let budgets = Budgets {
        pingone_license_rate: args.pingone_license_rate,
        pingone_ip_share: args.pingone_ip_share,
        aic_tenant_rate: args.aic_tenant_rate,
    };
    let options = RunOptions {
        kubeconfig: args.kubeconfig,
        operator: OperatorConfig {
            namespaces: args
                .watch_namespaces
                .into_iter()
                .filter(|n| !n.is_empty())
                .collect(),
            resync: args.resync_interval,
            concurrency: args
                .concurrency
                .unwrap_or(pingone_aic_operator::controller::DEFAULT_CONCURRENCY)
                .max(1),
            instance: Some(identity.clone()),
            poll: args.poll_interval,
            wait: args.wait_interval,
        },
        listen_addr: args.listen_addr,
        budgets,
        leader_election: args.leader_election.then(|| LeaderElection {
            lease_name: args.lease_name,
            namespace: args.lease_namespace,
            identity,
            duration: Duration::from_secs(15),
        }),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(runtime::run(options, runtime::termination_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the operator stopped");
            ExitCode::FAILURE
        }
    }
}

fn invoked_as_kubectl_plugin() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .is_some_and(|program| program.file_stem().is_some_and(|s| s == KUBECTL_PLUGIN))
}

fn status(args: StatusArgs) -> ExitCode {
    let scope = match (args.namespace_arg.or(args.namespace), args.all_namespaces) {
        (_, true) => Scope::All,
        (Some(namespace), false) => Scope::Namespace(namespace),
        (None, false) => Scope::ContextNamespace,
    };
    let options = StatusOptions {
        kubeconfig: args.kubeconfig,
        scope,
        watch: args.watch,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(status_tree::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn crdgen(out_dir: Option<PathBuf>) -> Result<(), String> {
    let Some(dir) = out_dir else {
        let yaml = crd::crds_yaml().map_err(|e| format!("cannot render the CRDs: {e}"))?;
        print!("{yaml}");
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        let yaml = crd::to_yaml(&definition).map_err(|e| format!("cannot render a CRD: {e}"))?;
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
