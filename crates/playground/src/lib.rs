//! The playground: devkube, the PingOne and AIC simulators and the operator in one process,
//! seeded from `deploy/examples/`, so the whole job can be watched with one command — and the
//! harness the end-to-end tests drive. A development tool; never a production mode.
//!
//! The simulators are seeded to match the examples: a PingOne organization holding every
//! mapped environment and the operator's admin worker (Environment Admin on the organization),
//! and one AIC tenant per TenantEnvironment with its service account's public key and its place
//! in the promotion group. The examples are applied with their URLs pointed at the simulators:
//! each TenantEnvironment's PingOne URLs at an origin of the PingOne simulator that answers as
//! its region's hosts do (one per region the examples use), so a URL of the wrong region fails
//! as it would against PingOne.
//!
//! With `act_as_user`, the playground does what a person would do for the examples' `Manual`
//! policies: it applies the Promotions the integrations ask for and approves the restarts the
//! environments wait for, saying so each time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use devkube::DevKube;
use pingone_aic_operator::budget::Budgets;
use pingone_aic_operator::controller::OperatorConfig;
use pingone_aic_operator::controller::clients::Clients;
use pingone_aic_operator::controller::tenant::APPROVE_RESTART_ANNOTATION;
use pingone_aic_operator::crd::common::condition;
use pingone_aic_operator::crd::pingone_integration::CredentialType;
use pingone_aic_operator::crd::promotion::{PromotionPhase, PromotionSpec};
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use pingone_aic_operator::http::Backoff;
use pingone_aic_operator::runtime::{self, RunOptions};
use pingone_aic_operator::status;
use pingone_aic_sim::aic::{AicSimConfig, AicSimulator, RunningAicSim};
use pingone_aic_sim::control::{ServerGuard, SimControl, serve_loopback};
use pingone_aic_sim::pingone::{PingOneSim, PingOneSimConfig};

/// How the playground runs.
#[derive(Clone)]
pub struct PlaygroundOptions {
    /// A Kubernetes API to use instead of devkube (the e2e suite's real API server); `serve` is
    /// then not used and the playground has no devkube.
    pub cluster: Option<kube::Client>,
    /// Folder of the example manifests.
    pub examples: PathBuf,
    /// Namespace the examples are applied to.
    pub namespace: String,
    /// Serve devkube over TCP on this address and write a kubeconfig for `kubectl`.
    pub serve: Option<(SocketAddr, PathBuf)>,
    /// How long a simulated AIC restart takes.
    pub restart: Duration,
    /// How long a simulated promotion (and its dry run) takes.
    pub promotion: Duration,
    /// How often the operator looks at resources in steady state.
    pub resync: Duration,
    /// Restart debounce applied to every TenantEnvironment, so the playground does not wait
    /// the examples' production-sized debounce.
    pub debounce: Option<String>,
    /// Apply the Promotions and restart approvals the examples' `Manual` policies wait for.
    pub act_as_user: bool,
    /// Run the operator in this process; without it, operator processes started against the
    /// served kubeconfig do the work (the process-level tests).
    pub run_operator: bool,
    /// The in-process operator's request budgets per PingOne licence and AIC tenant; what runs
    /// at once is admitted from them as in production.
    pub budgets: Budgets,
}

impl Default for PlaygroundOptions {
    fn default() -> Self {
        Self {
            examples: PathBuf::from("deploy/examples"),
            namespace: "default".to_owned(),
            serve: None,
            restart: Duration::from_secs(2),
            promotion: Duration::from_secs(1),
            resync: Duration::from_secs(60),
            debounce: Some("2s".to_owned()),
            act_as_user: true,
            run_operator: true,
            cluster: None,
            budgets: Budgets::default(),
        }
    }
}

/// Why the playground could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    /// The examples could not be read.
    #[error("cannot read the examples: {0}")]
    Examples(String),
    /// A simulator or devkube could not start.
    #[error("cannot start {what}: {reason}")]
    Start {
        /// What failed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// An example could not be applied.
    #[error("cannot apply {object}: {reason}")]
    Apply {
        /// The object.
        object: String,
        /// What the API said.
        reason: String,
    },
}

/// One line of progress: a resource and what its Ready condition says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// `Kind/name`.
    pub resource: String,
    /// Whether it is Ready.
    pub ready: bool,
    /// The Ready condition's reason (empty before the first status).
    pub reason: String,
    /// The Ready condition's message.
    pub message: String,
}

/// A running playground. Dropping it stops everything.
pub struct Playground {
    /// The Kubernetes API stand-in; `None` when the playground runs against a real cluster.
    pub devkube: Option<DevKube>,
    /// A client of the Kubernetes API in use: devkube's, or the cluster's.
    pub client: kube::Client,
    /// The PingOne simulator.
    pub pingone: PingOneSim,
    /// The PingOne simulator's control: call log, faults, clock.
    pub pingone_control: SimControl,
    /// The AIC simulator.
    pub aic: AicSimulator,
    /// Namespace of the examples.
    pub namespace: String,
    /// The kubeconfig written for `kubectl`, when serving over TCP.
    pub kubeconfig: Option<PathBuf>,
    /// devkube's URL, when serving over TCP.
    pub devkube_url: Option<String>,
    /// The PingOne simulator's base URL (its control API is under `/_sim/`), answering for
    /// every region.
    pub pingone_url: String,
    /// The base URL of each region's PingOne hosts (see the module doc), by region code.
    pub pingone_region_urls: BTreeMap<String, String>,
    /// Each AIC tenant's base URL, by TenantEnvironment name.
    pub aic_urls: BTreeMap<String, String>,
    started: Instant,
    _devkube_server: Option<devkube::Server>,
    _pingone_server: ServerGuard,
    _pingone_region_servers: Vec<ServerGuard>,
    aic_server: Option<RunningAicSim>,
    stop: tokio::sync::watch::Sender<bool>,
    operator_stop: tokio::sync::watch::Sender<bool>,
    operator: Option<tokio::task::JoinHandle<()>>,
    resync: Duration,
    budgets: Budgets,
    helper: Option<tokio::task::JoinHandle<()>>,
}

impl Playground {
    /// The Kubernetes API stand-in. Panics when the playground runs against a real cluster,
    /// which has none: only tests of devkube itself ask for it.
    pub fn devkube(&self) -> &DevKube {
        self.devkube
            .as_ref()
            .expect("this playground runs against a real cluster, not devkube")
    }

    /// Starts the simulators, devkube and the operator, and applies the examples.
    pub async fn start(options: PlaygroundOptions) -> Result<Self, PlaygroundError> {
        let documents = devkube::manifests::read_dir(&options.examples)
            .map_err(|e| PlaygroundError::Examples(e.to_string()))?;
        let seed = Seed::from_documents(&documents)?;

        let control = SimControl::new();
        let pingone_config: PingOneSimConfig = serde_json::from_value(seed.pingone_config())
            .map_err(|e| start_error("the PingOne simulator", e))?;
        let pingone = PingOneSim::new(pingone_config, control.clone())
            .map_err(|e| start_error("the PingOne simulator", e))?;
        let pingone_server = serve_loopback(pingone.app())
            .await
            .map_err(|e| start_error("the PingOne simulator", e))?;
        let mut pingone_region_servers = Vec::new();
        let mut pingone_regions = BTreeMap::new();
        for region in seed.regions() {
            let server = serve_loopback(pingone.regional_app(&region))
                .await
                .map_err(|e| start_error("the PingOne simulator", e))?;
            pingone_regions.insert(region, server.base_url.clone());
            pingone_region_servers.push(server);
        }

        let aic_config: AicSimConfig = serde_json::from_value(seed.aic_config(&options))
            .map_err(|e| start_error("the AIC simulator", e))?;
        let aic = AicSimulator::new(aic_config).map_err(|e| start_error("the AIC simulator", e))?;
        let aic_server = aic
            .serve()
            .await
            .map_err(|e| start_error("the AIC simulator", e))?;

        let (devkube, client, devkube_server, kubeconfig) = match &options.cluster {
            Some(client) => (None, client.clone(), None, None),
            None => {
                let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
                let client = devkube.client();
                let (server, kubeconfig) = match &options.serve {
                    Some((addr, path)) => {
                        let (server, path) = serve_devkube(&devkube, *addr, path).await?;
                        (Some(server), Some(path))
                    }
                    None => (None, None),
                };
                (Some(devkube), client, server, kubeconfig)
            }
        };

        let urls = Urls {
            pingone: pingone_server.base_url.clone(),
            pingone_regions,
            tenants: aic_server
                .urls()
                .iter()
                .map(|(name, url)| (name.clone(), url.as_str().trim_end_matches('/').to_owned()))
                .collect(),
        };
        apply_examples(&client, &options, &documents, &urls).await?;

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (operator_stop, operator) = if options.run_operator {
            let (stop, handle) = spawn_operator(
                client.clone(),
                options.namespace.clone(),
                options.resync,
                options.budgets,
            )?;
            (stop, Some(handle))
        } else {
            (tokio::sync::watch::channel(false).0, None)
        };
        let helper = options.act_as_user.then(|| {
            tokio::spawn(act_as_user(
                client.clone(),
                options.namespace.clone(),
                stopped.clone(),
            ))
        });
        Ok(Self {
            devkube,
            client,
            pingone,
            pingone_control: control,
            aic,
            namespace: options.namespace,
            kubeconfig,
            devkube_url: devkube_server.as_ref().map(devkube::Server::url),
            pingone_url: urls.pingone,
            pingone_region_urls: urls.pingone_regions,
            aic_urls: urls.tenants,
            started: Instant::now(),
            _devkube_server: devkube_server,
            _pingone_server: pingone_server,
            _pingone_region_servers: pingone_region_servers,
            aic_server: Some(aic_server),
            stop,
            operator_stop,
            operator,
            resync: options.resync,
            budgets: options.budgets,
            helper,
        })
    }

    /// Stops the operator and starts a new one against the same devkube and simulators, as a
    /// rescheduled pod would: nothing carries over but what is in Kubernetes and the services.
    /// `graceful` lets it shut down; otherwise it is killed wherever it is, mid-request.
    pub async fn restart_operator(&mut self, graceful: bool) -> Result<(), PlaygroundError> {
        if let Some(mut running) = self.operator.take() {
            if graceful {
                let _ = self.operator_stop.send(true);
                if tokio::time::timeout(Duration::from_secs(10), &mut running)
                    .await
                    .is_err()
                {
                    running.abort();
                }
            } else {
                running.abort();
                let _ = running.await;
            }
        }
        let (operator_stop, operator) = spawn_operator(
            self.client.clone(),
            self.namespace.clone(),
            self.resync,
            self.budgets,
        )?;
        self.operator_stop = operator_stop;
        self.operator = Some(operator);
        Ok(())
    }

    /// Where each resource stands.
    pub async fn progress(&self) -> Result<Vec<Progress>, kube::Error> {
        let mut lines = Vec::new();
        let tenants: Api<TenantEnvironment> = Api::namespaced(self.client.clone(), &self.namespace);
        for object in tenants.list(&Default::default()).await? {
            let conditions = object
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            lines.push(progress_of(&object, &conditions));
        }
        let integrations: Api<PingOneIntegration> =
            Api::namespaced(self.client.clone(), &self.namespace);
        for object in integrations.list(&Default::default()).await? {
            let conditions = object
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            lines.push(progress_of(&object, &conditions));
        }
        let promotions: Api<Promotion> = Api::namespaced(self.client.clone(), &self.namespace);
        for object in promotions.list(&Default::default()).await? {
            let conditions = object
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            lines.push(progress_of(&object, &conditions));
        }
        Ok(lines)
    }

    /// Waits until every resource is Ready, calling `report` with the progress whenever it
    /// changes; on timeout returns the last progress. It looks four times a second, less often
    /// the more resources there are (every 2.25 s at 10,000).
    pub async fn wait_ready(
        &self,
        timeout: Duration,
        mut report: impl FnMut(&[Progress]),
    ) -> Result<Vec<Progress>, Vec<Progress>> {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        loop {
            if let Ok(progress) = self.progress().await {
                if progress != last {
                    report(&progress);
                    last = progress;
                }
                if !last.is_empty() && last.iter().all(|p| p.ready) {
                    return Ok(last);
                }
            }
            if Instant::now() >= deadline {
                return Err(last);
            }
            // Every look lists every resource: at thousands of them, looking four times a
            // second would cost the API server more than the operator does.
            let pause = Duration::from_millis(250) + Duration::from_micros(200) * last.len() as u32;
            tokio::time::sleep(pause).await;
        }
    }

    /// Figures for the end: elapsed time, calls per simulated service, restarts, promotions.
    pub async fn summary(&self) -> Summary {
        let tenants: Api<TenantEnvironment> = Api::namespaced(self.client.clone(), &self.namespace);
        let restarts = tenants
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter_map(|t| t.status.as_ref()?.restart.as_ref().map(|r| r.restart_count))
                    .sum()
            })
            .unwrap_or(0);
        let promotions: Api<Promotion> = Api::namespaced(self.client.clone(), &self.namespace);
        let promoted = promotions
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|p| {
                        p.status
                            .as_ref()
                            .is_some_and(|s| s.phase == PromotionPhase::Succeeded)
                    })
                    .count()
            })
            .unwrap_or(0);
        Summary {
            elapsed: self.started.elapsed(),
            pingone_calls: self.pingone_control.calls().len(),
            aic_calls: self.aic.calls().len(),
            restarts,
            promotions: promoted,
        }
    }

    /// Stops the operator, the simulators and devkube.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = self.operator_stop.send(true);
        if let Some(helper) = self.helper.take() {
            helper.abort();
        }
        if let Some(operator) = self.operator.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(10), operator).await;
        }
        if let Some(server) = self.aic_server.take() {
            server.stop().await;
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(operator) = self.operator.take() {
            operator.abort();
        }
        if let Some(helper) = self.helper.take() {
            helper.abort();
        }
    }
}

/// Serves devkube over TCP on `addr` and writes a kubeconfig for it at `path`.
async fn serve_devkube(
    devkube: &DevKube,
    addr: SocketAddr,
    path: &Path,
) -> Result<(devkube::Server, PathBuf), PlaygroundError> {
    let server = devkube
        .serve(addr)
        .await
        .map_err(|e| start_error("devkube", e))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| start_error("devkube", e))?;
    }
    server
        .write_kubeconfig(path)
        .map_err(|e| start_error("devkube", e))?;
    Ok((server, path.to_owned()))
}

/// The figures printed when the playground is done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Time since start.
    pub elapsed: Duration,
    /// Calls the PingOne simulator received.
    pub pingone_calls: usize,
    /// Calls the AIC simulator received.
    pub aic_calls: usize,
    /// AIC restarts the operator carried out.
    pub restarts: i64,
    /// Promotions that succeeded.
    pub promotions: usize,
}

/// Starts the operator in-process against devkube; it runs until the returned sender says stop.
fn spawn_operator(
    client: kube::Client,
    namespace: String,
    resync: Duration,
    budgets: Budgets,
) -> Result<
    (
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ),
    PlaygroundError,
> {
    let clients = Clients::with(
        pingone_aic_operator::pingone::PingOneConfig {
            budget: budgets.pingone(),
            ..Default::default()
        },
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_retries: 3,
        },
    )
    .map_err(|e| start_error("the operator", e))?
    .with_aic_budget(budgets.aic());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run_options = RunOptions {
        kubeconfig: None,
        operator: OperatorConfig {
            namespaces: vec![namespace],
            resync,
            concurrency: pingone_aic_operator::controller::DEFAULT_CONCURRENCY,
            instance: Some("playground".to_owned()),
            poll: Duration::from_millis(500),
            wait: Duration::from_secs(1),
        },
        listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        budgets,
        leader_election: None,
    };
    let operator_client = client;
    let mut operator_stop = stopped.clone();
    let operator = tokio::spawn(async move {
        let shutdown = async move {
            let _ = operator_stop.wait_for(|s| *s).await;
        };
        if let Err(err) = runtime::run_with(operator_client, clients, run_options, shutdown).await {
            tracing::error!(error = %err, "the operator stopped");
        }
    });
    Ok((stop, operator))
}

fn start_error(what: &'static str, err: impl std::fmt::Display) -> PlaygroundError {
    PlaygroundError::Start {
        what,
        reason: err.to_string(),
    }
}

fn progress_of<K: Resource<DynamicType = ()>>(
    object: &K,
    conditions: &[pingone_aic_operator::crd::common::Condition],
) -> Progress {
    let ready = status::find(conditions, condition::READY);
    Progress {
        resource: format!(
            "{}/{}",
            K::kind(&()),
            object.meta().name.clone().unwrap_or_default()
        ),
        ready: ready.is_some_and(|c| c.status == "True"),
        reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
        message: ready.map(|c| c.message.clone()).unwrap_or_default(),
    }
}

/// Where the simulators listen.
struct Urls {
    pingone: String,
    /// Each region's origin, by region code.
    pingone_regions: BTreeMap<String, String>,
    tenants: BTreeMap<String, String>,
}

/// What the simulators are seeded with, read from the examples.
struct Seed {
    tenants: Vec<TenantEnvironment>,
    integrations: Vec<PingOneIntegration>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl Seed {
    fn from_documents(documents: &[Value]) -> Result<Self, PlaygroundError> {
        let mut tenants = Vec::new();
        let mut integrations = Vec::new();
        let mut secrets = BTreeMap::new();
        for document in documents {
            match document["kind"].as_str() {
                Some("TenantEnvironment") => tenants.push(
                    serde_json::from_value(document.clone())
                        .map_err(|e| PlaygroundError::Examples(e.to_string()))?,
                ),
                Some("PingOneIntegration") => integrations.push(
                    serde_json::from_value(document.clone())
                        .map_err(|e| PlaygroundError::Examples(e.to_string()))?,
                ),
                Some("Secret") => {
                    let secret: Secret = serde_json::from_value(document.clone())
                        .map_err(|e| PlaygroundError::Examples(e.to_string()))?;
                    let mut data: BTreeMap<String, String> =
                        secret.string_data.clone().unwrap_or_default();
                    for (key, bytes) in secret.data.iter().flatten() {
                        data.insert(key.clone(), String::from_utf8_lossy(&bytes.0).into_owned());
                    }
                    secrets.insert(secret.name_any(), data);
                }
                _ => {}
            }
        }
        Ok(Self {
            tenants,
            integrations,
            secrets,
        })
    }

    /// The PingOne regions of the TenantEnvironments, as region codes.
    fn regions(&self) -> std::collections::BTreeSet<String> {
        self.tenants
            .iter()
            .map(|t| format!("{:?}", t.spec.ping_one.region))
            .collect()
    }

    fn secret(&self, name: &str, key: &str) -> Option<&String> {
        self.secrets.get(name)?.get(key)
    }

    /// One organization with every mapped environment, plus each admin worker's own
    /// environment and the worker with Environment Admin across the organization.
    fn pingone_config(&self) -> Value {
        let mut environments = BTreeMap::new();
        let mut workers = BTreeMap::new();
        for tenant in &self.tenants {
            let ping_one = &tenant.spec.ping_one;
            // The licence a TenantEnvironment declares is the one the simulator rate-limits
            // it on, together with its admin worker's home environment.
            environments.insert(
                ping_one.environment_id.clone(),
                json!({"id": ping_one.environment_id, "name": tenant.name_any(), "region": format!("{:?}", ping_one.region),
                       "license": ping_one.license}),
            );
            let Some(admin) = &ping_one.admin_credentials_secret_ref else {
                continue;
            };
            let (Some(client_id), Some(secret)) = (
                self.secret(&admin.name, "clientId"),
                self.secret(&admin.name, "clientSecret"),
            ) else {
                continue;
            };
            let home = self
                .secret(&admin.name, "environmentId")
                .cloned()
                .unwrap_or_else(|| ping_one.environment_id.clone());
            environments.entry(home.clone()).or_insert_with(|| {
                json!({"id": home, "name": "Administrators", "region": format!("{:?}", ping_one.region),
                       "license": ping_one.license})
            });
            workers.insert(
                client_id.clone(),
                json!({"id": client_id, "name": "pingone-aic-operator admin", "environment": home, "secret": secret,
                       "roles": [{"role": "Environment Admin", "scopeType": "ORGANIZATION"}]}),
            );
        }
        // Product connections are made in the PingOne console; the playground registers the
        // examples' credentials as if they had been.
        for integration in &self.integrations {
            if integration.spec.credential_type != CredentialType::ProductConnection {
                continue;
            }
            for environment in &integration.spec.environments {
                let tenant = self
                    .tenants
                    .iter()
                    .find(|t| t.name_any() == environment.name);
                let secret = environment
                    .credentials_secret_ref
                    .as_ref()
                    .and_then(|r| self.secret(&r.name, "credential"));
                let (Some(tenant), Some(credential)) = (tenant, secret) else {
                    continue;
                };
                let env_id = &tenant.spec.ping_one.environment_id;
                workers.insert(
                    format!("connection-{}-{}", integration.name_any(), environment.name),
                    json!({"name": format!("Product connection {}", integration.name_any()), "environment": env_id,
                           "secret": credential, "tokenEndpointAuthMethod": "PRODUCT_CONNECTION",
                           "roles": [{"role": "Identity Data Admin", "scope": env_id}]}),
                );
            }
        }
        json!({
            "organizations": [{"name": "Playground", "environments": environments.into_values().collect::<Vec<_>>()}],
            "workers": workers.into_values().collect::<Vec<_>>(),
        })
    }

    /// One tenant per TenantEnvironment, its service account's public key taken from the
    /// example Secret, and the promotion group read from `promotesFrom`.
    fn aic_config(&self, options: &PlaygroundOptions) -> Value {
        let tenants: Vec<Value> = self
            .tenants
            .iter()
            .map(|tenant| {
                let key_ref = &tenant.spec.service_account.private_key_secret_ref;
                let jwk = self
                    .secret(&key_ref.name, &key_ref.key)
                    .and_then(|text| serde_json::from_str::<Value>(text).ok())
                    .map(|jwk| json!({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}))
                    .unwrap_or(Value::Null);
                json!({
                    "name": tenant.name_any(),
                    "tier": tenant.spec.tier,
                    "realms": [tenant.spec.realm],
                    "serviceAccounts": [{
                        "id": tenant.spec.service_account.id,
                        "scopes": ["fr:am:*", "fr:idc:esv:*", "fr:idc:promotion:*"],
                        "jwk": jwk,
                    }],
                })
            })
            .collect();
        let mut groups = Vec::new();
        for root in self
            .tenants
            .iter()
            .filter(|t| t.spec.promotes_from.is_none() && t.spec.tier.rank().is_some())
        {
            let mut group = vec![root.name_any()];
            while let Some(next) = self
                .tenants
                .iter()
                .find(|t| t.spec.promotes_from.as_deref() == group.last().map(String::as_str))
            {
                group.push(next.name_any());
            }
            if group.len() > 1 {
                groups.push(group);
            }
        }
        json!({
            "tenants": tenants,
            "promotionGroups": groups,
            "timings": {
                "restartMs": options.restart.as_millis() as u64,
                "restartPollFailures": 1,
                "lockMs": (options.promotion.as_millis() / 2) as u64,
                "promotionMs": options.promotion.as_millis() as u64,
            },
        })
    }
}

/// Applies the examples in order, pointing TenantEnvironments at the simulators.
async fn apply_examples(
    client: &kube::Client,
    options: &PlaygroundOptions,
    documents: &[Value],
    urls: &Urls,
) -> Result<(), PlaygroundError> {
    let namespace = options.namespace.as_str();
    let mut ordered: Vec<&Value> = documents.iter().collect();
    let rank = |d: &Value| match d["kind"].as_str() {
        Some("Secret") => 0,
        Some("TenantEnvironment") => 1,
        Some("PingOneIntegration") => 2,
        _ => 3,
    };
    ordered.sort_by_key(|d| rank(d));
    for document in ordered {
        let mut object = document.clone();
        object["metadata"]["namespace"] = json!(namespace);
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "TenantEnvironment" {
            if let Some(url) = urls.tenants.get(&name) {
                object["spec"]["tenantUrl"] = json!(url);
            }
            let pingone = object["spec"]["pingOne"]["region"]
                .as_str()
                .and_then(|region| urls.pingone_regions.get(region))
                .unwrap_or(&urls.pingone)
                .clone();
            object["spec"]["pingOne"]["apiUrl"] = json!(format!("{pingone}/v1"));
            object["spec"]["pingOne"]["authUrl"] = json!(pingone);
            if let Some(debounce) = &options.debounce {
                object["spec"]["restart"]["debounce"] = json!(debounce);
            }
        }
        let failed = |reason: String| PlaygroundError::Apply {
            object: format!("{kind}/{name}"),
            reason,
        };
        let result = match kind.as_str() {
            "Secret" => create::<Secret>(client, namespace, object).await,
            "TenantEnvironment" => create::<TenantEnvironment>(client, namespace, object).await,
            "PingOneIntegration" => create::<PingOneIntegration>(client, namespace, object).await,
            "Promotion" => create::<Promotion>(client, namespace, object).await,
            other => Err(format!("unexpected kind {other}")),
        };
        result.map_err(failed)?;
    }
    Ok(())
}

async fn create<K>(client: &kube::Client, namespace: &str, object: Value) -> Result<(), String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(object).map_err(|e| e.to_string())?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &typed)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Does what a person would for `Manual` policies: applies the Promotions integrations ask
/// for and approves the restarts environments wait for.
async fn act_as_user(
    client: kube::Client,
    namespace: String,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let tenants: Api<TenantEnvironment> = Api::namespaced(client.clone(), &namespace);
    let integrations: Api<PingOneIntegration> = Api::namespaced(client.clone(), &namespace);
    let promotions: Api<Promotion> = Api::namespaced(client.clone(), &namespace);
    let awaiting =
        regex::Regex::new(r"apply a Promotion with from: ([a-z0-9.-]+) and to: ([a-z0-9.-]+)")
            .expect("a valid pattern");
    let mut approvals = 0u32;
    loop {
        if let Ok(list) = tenants.list(&Default::default()).await {
            for tenant in list {
                let waiting = tenant
                    .status
                    .as_ref()
                    .and_then(|s| {
                        status::find(
                            &s.conditions,
                            pingone_aic_operator::controller::tenant::RESTART_PENDING,
                        )
                        .cloned()
                    })
                    .is_some_and(|c| c.reason == "AwaitingApproval");
                // An approval the operator has not acted on yet is still in flight: approving
                // again would only repeat the line (and the annotation write).
                let given = tenant.annotations().get(APPROVE_RESTART_ANNOTATION);
                let acted_on = tenant
                    .status
                    .as_ref()
                    .and_then(|s| s.restart.as_ref())
                    .and_then(|r| r.last_approval.as_ref());
                let in_flight = given.is_some() && given != acted_on;
                if waiting && !in_flight {
                    approvals += 1;
                    let patch = json!({"metadata": {"annotations": {APPROVE_RESTART_ANNOTATION: format!("playground-{approvals}")}}});
                    if tenants
                        .patch(
                            &tenant.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                        .is_ok()
                    {
                        println!(
                            "  [as the user] approved the restart of {} (annotation {APPROVE_RESTART_ANNOTATION})",
                            tenant.name_any()
                        );
                    }
                }
            }
        }
        if let Ok(list) = integrations.list(&Default::default()).await {
            let existing: Vec<Promotion> = promotions
                .list(&Default::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            for integration in list {
                let Some(promoted) = integration.status.as_ref().and_then(|s| {
                    status::find(
                        &s.conditions,
                        pingone_aic_operator::controller::integration::PROMOTED,
                    )
                    .cloned()
                }) else {
                    continue;
                };
                for captures in awaiting.captures_iter(&promoted.message) {
                    let (from, to) = (captures[1].to_owned(), captures[2].to_owned());
                    let running = existing.iter().any(|p| {
                        p.spec.from == from
                            && p.spec.to == to
                            && !p.status.as_ref().is_some_and(|s| s.phase.is_final())
                    });
                    if running {
                        continue;
                    }
                    let count = existing.iter().filter(|p| p.spec.to == to).count() + 1;
                    let name = format!("playground-{from}-to-{to}-{count}");
                    let promotion = Promotion::new(
                        &name,
                        PromotionSpec {
                            from: from.clone(),
                            to: to.clone(),
                            dry_run_only: false,
                            rollback_on_failure: true,
                            description: Some(
                                "applied by the playground, as a person would".into(),
                            ),
                        },
                    );
                    if promotions
                        .create(&PostParams::default(), &promotion)
                        .await
                        .is_ok()
                    {
                        println!("  [as the user] applied Promotion {name} ({from} -> {to})");
                    }
                }
            }
        }
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The examples folder of the repository, for tests.
pub fn repository_examples() -> PathBuf {
    // The workspace root is two levels above this crate.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}
