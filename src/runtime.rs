//! `pingone-aic-operator run`: the operator as it runs in a cluster — Kubernetes client from
//! a kubeconfig or the pod's service account, the health/metrics endpoint, leader election on a
//! Lease so that two replicas are safe, and graceful shutdown.
//!
//! A replica that is not the leader serves `/healthz`, `/readyz` and `/metrics` and waits; it is
//! ready (so a node drain can always evict the leader under a PodDisruptionBudget). A leader
//! that loses its lease stops its controllers and goes back to waiting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_lease_manager::LeaseManagerBuilder;

use crate::controller::{self, OperatorConfig, clients::Clients};
use crate::metrics::Metrics;
use crate::server::{self, Readiness};

/// How the operator process runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Kubeconfig file; the in-cluster configuration (or `KUBECONFIG`) when absent.
    pub kubeconfig: Option<PathBuf>,
    /// What the controllers do.
    pub operator: OperatorConfig,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub listen_addr: SocketAddr,
    /// Request budgets per PingOne licence and per AIC tenant.
    pub budgets: crate::budget::Budgets,
    /// Leader election; `None` runs the controllers at once (one replica only).
    pub leader_election: Option<LeaderElection>,
}

/// Where and as whom this replica competes for the leader lease.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is held without renewal.
    pub duration: Duration,
}

/// Why the operator could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No Kubernetes configuration could be found or read.
    #[error("cannot configure the Kubernetes client: {0}")]
    KubeConfig(String),
    /// The health/metrics endpoint could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The SaaS clients could not be built.
    #[error("cannot build the API clients: {0}")]
    Clients(String),
    /// Leader election failed.
    #[error("leader election: {0}")]
    LeaderElection(String),
}

/// Builds the Kubernetes client from a kubeconfig file or the environment.
pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RuntimeError> {
    crate::http::install_crypto_provider();
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| RuntimeError::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| RuntimeError::KubeConfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RuntimeError::KubeConfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| RuntimeError::KubeConfig(e.to_string()))
}

/// Runs the operator until `shutdown` completes.
pub async fn run(
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let client = kube_client(options.kubeconfig.as_ref()).await?;
    let clients =
        Clients::with_budgets(options.budgets).map_err(|e| RuntimeError::Clients(e.to_string()))?;
    run_with(client, clients, options, shutdown).await
}

/// Runs the operator with a given Kubernetes client and SaaS clients (tests and the playground
/// pass their own) until `shutdown` completes.
pub async fn run_with(
    client: kube::Client,
    clients: Clients,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let metrics = Arc::new(Metrics::with_external_calls(clients.external_calls()));
    let readiness = Arc::new(Readiness::default());
    let listener =
        server::bind(options.listen_addr)
            .await
            .map_err(|source| RuntimeError::Listen {
                addr: options.listen_addr,
                source,
            })?;
    tracing::info!(addr = %listener.local_addr().map_or(options.listen_addr, |a| a), "serving /healthz, /readyz and /metrics");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        server::router(metrics.clone(), readiness.clone()),
        wait_for(stopped.clone()),
    ));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    readiness.set(true);

    let result = match options.leader_election.clone() {
        None => {
            metrics.leader.set(1);
            controller::run(
                client,
                options.operator.clone(),
                metrics.clone(),
                clients,
                wait_for(stopped.clone()),
            )
            .await;
            Ok(())
        }
        Some(election) => {
            lead(
                client,
                clients,
                &options,
                election,
                metrics.clone(),
                stopped.clone(),
            )
            .await
        }
    };
    metrics.stopped_leading();
    let _ = server.await;
    tracing::info!("stopped");
    result
}

/// Competes for the lease; runs the controllers while holding it.
async fn lead(
    client: kube::Client,
    clients: Clients,
    options: &RunOptions,
    election: LeaderElection,
    metrics: Arc<Metrics>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let seconds = election.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .build()
        .await
        .map_err(|e| RuntimeError::LeaderElection(e.to_string()))?;
    let (mut leading, task) = manager.watch().await;
    let mut stop = stopped.clone();
    loop {
        tracing::info!(identity = %election.identity, lease = %election.lease_name, "waiting to lead");
        tokio::select! {
            changed = leading.wait_for(|leader| *leader) => {
                if changed.is_err() {
                    return Err(RuntimeError::LeaderElection("the lease watch ended".into()));
                }
            }
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        tracing::info!(identity = %election.identity, "leading: starting the controllers");
        metrics.leader.set(1);
        let (lost_tx, lost_rx) = tokio::sync::watch::channel(false);
        let mut watch_lease = leading.clone();
        let mut watch_stop = stopped.clone();
        let ended = tokio::spawn(async move {
            tokio::select! {
                _ = watch_lease.wait_for(|leader| !*leader) => {}
                _ = watch_stop.wait_for(|stopped| *stopped) => {}
            }
            let _ = lost_tx.send(true);
        });
        controller::run(
            client.clone(),
            options.operator.clone(),
            metrics.clone(),
            clients.clone(),
            wait_for(lost_rx),
        )
        .await;
        ended.abort();
        metrics.stopped_leading();
        if *stopped.borrow() {
            break;
        }
        tracing::warn!(identity = %election.identity, "lost the lease: controllers stopped");
    }
    // Dropping the receiver makes the lease task release the lease for a fast hand-over.
    drop(leading);
    match task.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(RuntimeError::LeaderElection(err.to_string())),
        Err(err) => Err(RuntimeError::LeaderElection(err.to_string())),
    }
}

async fn wait_for(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("termination requested");
}
