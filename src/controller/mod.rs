//! The reconcile loops: one `kube::runtime::Controller` per resource, sharing a [`Context`].
//!
//! - Secrets are watched metadata-only (no cluster-wide cache of Secret data); a changed Secret
//!   is mapped to the resources that reference it, and marked for reading: Secret data is read
//!   with a GET only when the watch reported a change since the last read or a token must be
//!   renewed (see [`secrets`]).
//! - A reconcile writes status only when it changed, so a resync without drift patches nothing.
//! - Failures are retried per object with backoff when transient and reported in a condition
//!   when permanent (see [`error`]).
//! - A TenantEnvironment is reconciled again when an integration referencing it reports new
//!   ESV writes, so its restart batch starts without waiting for a resync.

mod admission;
pub mod clients;
pub mod credential_check;
pub mod error;
pub mod events;
mod frame;
pub mod integration;
mod lookup;
pub mod memo;
pub mod pacing;
mod plan;
pub mod promotion;
pub mod secrets;
pub mod tenant;
pub mod verification;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use crate::metrics::Metrics;

pub use error::ReconcileError;

/// Name of the operator as it appears in events and field managers.
pub const MANAGER: &str = "pingone-aic-operator";

/// Finalizer the operator puts on the resources whose deletion needs cleanup.
pub const FINALIZER: &str = "pingone-aic.io/cleanup";

/// Annotation that stops every mutation of a resource while `"true"`.
pub const PAUSED_ANNOTATION: &str = "pingone-aic.io/paused";

/// Reconciles running at once per controller unless configured: what bounds the operator's
/// concurrent Kubernetes requests (each HTTP/1.1 request in flight holds a connection, which
/// the client pool keeps) once the admission has let reconciles through.
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Namespaces to watch; empty watches all.
    pub namespaces: Vec<String>,
    /// How often a resource in steady state is looked at again.
    pub resync: Duration,
    /// Reconciles running at once per controller, once admitted by the licences and tenants
    /// they spend on (see [`admission`]): a bound on the load on the Kubernetes API, not on the
    /// SaaS, which the admission and the budgets pace.
    pub concurrency: u16,
    /// Identity of this replica in events.
    pub instance: Option<String>,
    /// How often a running remote operation (restart, lock, promotion) is polled.
    pub poll: Duration,
    /// How often a wait on something outside the operator's hands (a restart, a promotion,
    /// another promotion's lock) is looked at again.
    pub wait: Duration,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            resync: Duration::from_secs(600),
            concurrency: DEFAULT_CONCURRENCY,
            instance: None,
            poll: Duration::from_secs(10),
            wait: Duration::from_secs(30),
        }
    }
}

/// What every reconcile of one scope (a namespace, or the whole cluster) shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// The scope's Secrets: their versions from the metadata watch, their data on demand.
    pub secrets: secrets::Secrets,
    /// How the operator runs.
    pub config: OperatorConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: events::EventRecorder,
    /// SaaS clients with their token caches.
    pub clients: clients::Clients,
    /// The TenantEnvironments of the scope.
    pub tenants: Store<TenantEnvironment>,
    /// The PingOneIntegrations of the scope.
    pub integrations: Store<PingOneIntegration>,
    /// The Promotions of the scope.
    pub promotions: Store<Promotion>,
    failures: Mutex<HashMap<String, u32>>,
    /// The worker schema's credential label field per tenant URL and realm: a property of the
    /// AIC release, read once per operator process instead of on every resync.
    credential_fields: Mutex<HashMap<String, String>>,
    /// What the integration reconciler observed between resyncs.
    pub(crate) memos: integration::Memos,
    /// Promotion phases this process just entered, with nothing asked of AIC in them yet.
    pub(crate) fresh_phases: promotion::FreshPhases,
    /// When each restart under way was last polled.
    pub(crate) polls: pacing::PollPacer,
    /// Which reconciles run at once.
    pub(crate) admission: admission::Admission,
}

impl Context {
    /// How old a remote observation may be and still stand for the current state: the resync
    /// period, so every resync looks at the remote state once and the reconciles in between
    /// (events, other resources' changes) make no calls for what they did not change.
    pub fn observation_age(&self) -> Duration {
        self.config.resync
    }

    /// Publishes an event about `object`; failing to publish is logged, never fatal.
    pub async fn publish<K>(
        &self,
        object: &K,
        type_: EventType,
        action: &str,
        reason: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        self.send(object, None, type_, action, reason, note).await;
    }

    /// Publishes an Event about what happened in one environment of `object`: the Event's
    /// `related` object is that TenantEnvironment, with `part` (e.g. an ESV secret version) as
    /// its field path, so Events that differ in environment or part are separate series
    /// instead of one series that keeps the first note.
    #[allow(clippy::too_many_arguments)]
    pub async fn publish_in<K>(
        &self,
        object: &K,
        environment: &str,
        part: Option<String>,
        type_: EventType,
        action: &str,
        reason: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let related = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(TenantEnvironment::api_version(&()).into_owned()),
            kind: Some(TenantEnvironment::kind(&()).into_owned()),
            name: Some(environment.to_owned()),
            namespace: object.meta().namespace.clone(),
            field_path: part,
            ..Default::default()
        };
        self.send(object, Some(related), type_, action, reason, note)
            .await;
    }

    async fn send<K>(
        &self,
        object: &K,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
        type_: EventType,
        action: &str,
        reason: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = events::EventNote {
            regarding: object.object_ref(&()),
            related,
            type_,
            action,
            reason,
            note,
        };
        if let Err(err) = self.recorder.publish(event).await {
            tracing::warn!(error = %error::describe_kube(&err), reason, "cannot publish an event");
        }
    }

    /// The cached credential label field of a tenant's worker schema.
    pub fn credential_field(&self, tenant: &str) -> Option<String> {
        self.credential_fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    /// Remembers the credential label field of a tenant's worker schema.
    pub fn remember_credential_field(&self, tenant: &str, field: &str) {
        self.credential_fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), field.to_owned());
    }

    /// Counts a failure of `key`'s reconcile and returns how many happened in a row.
    fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count += 1;
        *count - 1
    }

    fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Whether the resource carries `pingone-aic.io/paused: "true"`.
pub fn is_paused<K: Resource>(object: &K) -> bool {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Patches the status subresource when `status` differs from `current`; returns whether it
/// wrote. Comparing first is what keeps steady state free of writes.
pub async fn patch_status<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    status: &S,
) -> Result<bool, ReconcileError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    // Optional fields are left out when empty, and a merge patch that leaves a field out keeps
    // it: fields the status no longer has must be sent as `null`, or the stored status never
    // equals the computed one and every resync patches again.
    let old = current
        .map(serde_json::to_value)
        .transpose()
        .map_err(|err| ReconcileError::Finalizer(err.to_string()))?
        .unwrap_or(serde_json::Value::Null);
    let new =
        serde_json::to_value(status).map_err(|err| ReconcileError::Finalizer(err.to_string()))?;
    let patch = serde_json::json!({ "status": merge_patch(&old, &new) });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(true)
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: objects recurse, fields only in
/// `old` become `null`, everything else is `new`'s value.
pub fn merge_patch(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    match (old, new) {
        (serde_json::Value::Object(old), serde_json::Value::Object(new)) => {
            let mut patch = serde_json::Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(previous) if previous == value => {}
                    Some(previous) => {
                        patch.insert(key.clone(), merge_patch(previous, value));
                    }
                    None => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), serde_json::Value::Null);
            }
            serde_json::Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Records metrics for a reconcile and turns its error into the next look.
pub(crate) fn finish(
    ctx: &Context,
    controller: &str,
    key: &str,
    started: Instant,
    result: Result<Action, ReconcileError>,
) -> Result<Action, ReconcileError> {
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => {
            ctx.record_success(key);
            ctx.metrics.record_reconcile(controller, "success", seconds);
        }
        Err(err) => {
            ctx.metrics
                .record_reconcile(controller, err.reason(), seconds);
        }
    }
    result
}

/// The key an object's consecutive failures are counted under, `Kind/namespace/name`; the
/// reconcilers clear it on success with the same key.
pub(crate) fn failure_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// How many transient failures in a row make the Ready condition say so.
const FAILURES_BEFORE_REPORT: u32 = 3;

/// Once an object's reconcile has failed transiently several times in a row (PingOne or AIC
/// down, rate limits that do not clear), says so in its Ready condition: retries go on, but an
/// outage must show in `kubectl get`, not only in logs. Only for resources whose reconcile
/// recomputes Ready on every success, so the report is replaced as soon as the outage ends.
pub(crate) async fn report_persistent_failure<K>(ctx: &Context, object: &K, error: &ReconcileError)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    if !error.is_transient() {
        return;
    }
    let failures = ctx
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&failure_key(object))
        .copied()
        .unwrap_or(0);
    // This failure is not counted yet: the error policy runs after the reconcile returns.
    if failures + 1 < FAILURES_BEFORE_REPORT {
        return;
    }
    let Ok(value) = serde_json::to_value(object) else {
        return;
    };
    let mut conditions: Vec<crate::crd::common::Condition> = value
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let message = format!("retrying after {} failures in a row: {error}", failures + 1);
    let changed = crate::status::set_condition(
        &mut conditions,
        crate::status::DesiredCondition {
            type_: crate::crd::common::condition::READY,
            status: crate::status::ConditionStatus::False,
            reason: error.reason(),
            message: &message,
        },
        object.meta().generation,
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    if !changed {
        return;
    }
    let api: Api<K> = Api::namespaced(
        ctx.client.clone(),
        object.meta().namespace.as_deref().unwrap_or_default(),
    );
    let patch = serde_json::json!({ "status": { "conditions": conditions } });
    let name = object.meta().name.clone().unwrap_or_default();
    if api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .is_ok()
    {
        ctx.publish(
            object,
            EventType::Warning,
            "Reconcile",
            error.reason(),
            message,
        )
        .await;
    }
}

/// The error policy shared by the controllers: log, then back off per object.
pub(crate) fn error_policy<K>(object: Arc<K>, error: &ReconcileError, ctx: Arc<Context>) -> Action
where
    K: Resource<DynamicType = ()>,
{
    let key = failure_key(object.as_ref());
    let failures = ctx.record_failure(&key);
    let delay = error::retry_delay(error, failures);
    if error.is_expected() {
        tracing::debug!(object = %key, retry_in_ms = delay.as_millis() as u64, "{error}");
    } else {
        tracing::warn!(
            object = %key,
            reason = error.reason(),
            transient = error.is_transient(),
            retry_in_seconds = delay.as_secs(),
            error = %error,
            "reconcile failed"
        );
    }
    Action::requeue(delay)
}

/// The integrations of `namespace` that include any of the named TenantEnvironments.
pub(crate) fn integrations_including(
    store: &Store<PingOneIntegration>,
    namespace: Option<String>,
    tenants: &[String],
) -> Vec<ObjectRef<PingOneIntegration>> {
    store
        .state_filter(|i| {
            lookup::in_namespace(i, namespace.as_deref())
                && i.spec
                    .environments
                    .iter()
                    .any(|e| tenants.contains(&e.name))
        })
        .iter()
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// Maps a changed Secret to the objects of `store` that reference it.
fn referencing<K>(
    store: &Store<K>,
    secret: &PartialObjectMeta<Secret>,
    references: impl Fn(&K) -> Vec<String>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let namespace = secret.metadata.namespace.as_deref();
    let name = secret.name_any();
    store
        .state_filter(|object| {
            lookup::in_namespace(object, namespace) && references(object).contains(&name)
        })
        .iter()
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

fn scoped_api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controllers of every configured scope until `shutdown` completes.
pub async fn run(
    client: kube::Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    clients: clients::Clients,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runs = scopes.into_iter().map(|scope| {
        run_scope(
            client.clone(),
            config.clone(),
            metrics.clone(),
            clients.clone(),
            scope,
            stopped.clone(),
        )
    });
    let all = futures::future::join_all(runs);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        () = shutdown => {
            let _ = stop.send(true);
            all.await;
        }
    }
}

/// A controller of `K` whose cache holds what the reconcilers read and nothing else: the
/// bookkeeping the API server attaches to every object (`managedFields`, `kubectl apply`'s
/// copy of the last applied object) is dropped before an object is cached, which at thousands
/// of objects is a good part of the operator's memory. This is `Controller::new` with that
/// one step added to its watch stream.
fn cached_controller<K>(api: Api<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = kube::runtime::reflector(
        writer,
        watcher(api, watcher::Config::default().any_semantic()).modify(prune_bookkeeping),
    )
    .applied_objects();
    Controller::for_stream(stream, reader)
}

/// Drops what the API server and `kubectl apply` record on an object for themselves.
fn prune_bookkeeping<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stop_signal(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn run_scope(
    client: kube::Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    clients: clients::Clients,
    namespace: Option<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let ns = namespace.as_deref();
    let tenants = cached_controller(scoped_api::<TenantEnvironment>(&client, ns));
    let integrations = cached_controller(scoped_api::<PingOneIntegration>(&client, ns));
    let promotions = cached_controller(scoped_api::<Promotion>(&client, ns));

    let ctx = Arc::new(Context {
        recorder: events::EventRecorder::new(client.clone(), MANAGER, config.instance.as_deref()),
        client: client.clone(),
        secrets: secrets::Secrets::watched(client.clone()),
        config: config.clone(),
        metrics,
        tenants: tenants.store(),
        integrations: integrations.store(),
        promotions: promotions.store(),
        failures: Mutex::new(HashMap::new()),
        credential_fields: Mutex::new(HashMap::new()),
        memos: integration::Memos::default(),
        fresh_phases: promotion::FreshPhases::default(),
        polls: pacing::PollPacer::default(),
        admission: admission::Admission::new(
            clients.pingone_budget(),
            clients.aic_budget(),
            config.concurrency,
        ),
        clients,
    });

    let (per_license, per_tenant) = ctx.admission.per_key();
    tracing::info!(
        scope = ns.unwrap_or("cluster"),
        per_license,
        per_tenant,
        per_controller = config.concurrency,
        "reconciles admitted at once"
    );
    // The controllers' own concurrency stays unlimited: what runs at once is decided by the
    // admission, which a reconcile passes before it holds anything (see `admission`).
    let tenant_store = ctx.tenants.clone();
    let integration_store = ctx.integrations.clone();
    let tenant_secrets = ctx.secrets.clone();
    let tenant_controller = tenants
        .watches(
            scoped_api::<PartialObjectMeta<Secret>>(&client, ns),
            watcher::Config::default(),
            move |secret| {
                tenant_secrets.touched(&secret);
                referencing(&tenant_store, &secret, tenant::referenced_secrets)
            },
        )
        .watches(
            scoped_api::<PingOneIntegration>(&client, ns),
            watcher::Config::default(),
            move |integration: PingOneIntegration| {
                let namespace = integration.namespace();
                integration
                    .spec
                    .environments
                    .iter()
                    .map(|e| {
                        let reference = ObjectRef::new(&e.name);
                        match &namespace {
                            Some(ns) => reference.within(ns),
                            None => reference,
                        }
                    })
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stop_signal(stop.clone()))
        .run(tenant::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "TenantEnvironment controller event");
            }
        });
    let promotion_controller = promotions
        .graceful_shutdown_on(stop_signal(stop.clone()))
        .run(promotion::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "Promotion controller event");
            }
        });
    let by_secret = (
        integration_store.clone(),
        ctx.tenants.clone(),
        ctx.secrets.clone(),
    );
    let by_tenant = integration_store.clone();
    let by_promotion = integration_store;
    let integration_controller = integrations
        .watches(
            scoped_api::<PartialObjectMeta<Secret>>(&client, ns),
            watcher::Config::default(),
            move |secret| {
                let (integrations, tenants, secrets) = &by_secret;
                secrets.touched(&secret);
                let via_tenants: Vec<String> =
                    referencing(tenants, &secret, tenant::referenced_secrets)
                        .into_iter()
                        .map(|r| r.name)
                        .collect();
                let mut refs = referencing(integrations, &secret, integration::referenced_secrets);
                refs.extend(integrations_including(
                    integrations,
                    secret.namespace(),
                    &via_tenants,
                ));
                refs
            },
        )
        .watches(
            scoped_api::<TenantEnvironment>(&client, ns),
            watcher::Config::default(),
            move |tenant: TenantEnvironment| {
                integrations_including(&by_tenant, tenant.namespace(), &[tenant.name_any()])
            },
        )
        .watches(
            scoped_api::<Promotion>(&client, ns),
            watcher::Config::default(),
            move |promotion: Promotion| {
                integrations_including(
                    &by_promotion,
                    promotion.namespace(),
                    std::slice::from_ref(&promotion.spec.to),
                )
            },
        )
        .graceful_shutdown_on(stop_signal(stop.clone()))
        .run(integration::reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(error = %err, "PingOneIntegration controller event");
            }
        });
    futures::join!(
        tenant_controller,
        promotion_controller,
        integration_controller
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_removes_what_the_status_no_longer_has() {
        let old = serde_json::json!({"restart": {"state": "Pending", "pendingSince": "t1", "count": 1}, "gone": 1});
        let new = serde_json::json!({"restart": {"state": "Idle", "count": 1}});
        assert_eq!(
            merge_patch(&old, &new),
            serde_json::json!({"restart": {"state": "Idle", "pendingSince": null}, "gone": null})
        );
        assert_eq!(merge_patch(&serde_json::Value::Null, &new), new);
    }
}
