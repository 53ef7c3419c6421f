//! PingOneIntegration reconciler: per environment, the PingOne worker credentials (created or
//! adopted application, role grants, enabled flag — or the credentials the user keeps in a
//! Secret), the ESVs that carry them, the AM worker service and its secret mapping (development
//! and sandboxes; upper environments get them by promotion), and `testConnection` once a
//! restart has loaded the ESVs.
//!
//! This module runs the pass ([`reconcile`]: plan the environments, sync each, set the
//! conditions, write the status) and holds what the parts share; the parts are
//! `credential`, `rotation`, `esvs`, `service`, `urls` (literal or placeholder PingOne URLs
//! across a promotion group's regions) and `conditions`.
//!
//! Decisions worth knowing:
//! - A created application's id is written to the status before anything else uses it, so a
//!   crash between the create and the next step cannot create a second application.
//! - The client secret is pushed as a new ESV secret version only when the hash of the values
//!   changed or someone else changed the active version; a resync without drift writes nothing.
//! - The ESV secret is created not usable in placeholders: AM reads it through the secret-label
//!   mapping, so a new version needs no restart.
//! - Verification, retiring superseded versions and rolling back a version AIC refuses are in
//!   [`super::verification`]: a bad secret never leaves AIC without a working version.
//! - Two integrations claiming the same ESV or worker service name in one environment: the
//!   later one (by creation time, then name) reports `Conflict` and touches nothing.
//! - Worker services in upper environments count as promoted when the configuration there
//!   equals the one written in the development environment of the group.
//! - `managementPolicy: Observe` runs the same pass with every write routed through
//!   [`super::plan::Plan`]: the writes are recorded, not made. The status gets the plan, `Ready`
//!   and what the pass saw (an adopted application or secret), never the outcome of a write
//!   it only planned, so `Observe` → `Full` does not adopt twice. Upper environments plan a
//!   promotion once the lower one would be configured; a restart the ESV writes make due is
//!   planned after them (the TenantEnvironment makes it). Deleting an Observe integration
//!   deletes nothing remote, whatever its `deletionPolicy`.
//! - An ESV secret the status has no record of (a tenant configured by hand) is not pushed
//!   blindly: AIC never shows a secret's value, so once everything else is in place
//!   `testConnection` tells whether it holds the credential. If it does, it is adopted as it
//!   is; only otherwise a new version is pushed.
//! - Operator-managed rotation (`workerApplication.secretRotation`) rotates in PingOne with the
//!   previous secret valid for at least the ESV store's cache time plus a restart and
//!   verification ([`MIN_ROTATION_OVERLAP`]), pushes the new version, and deletes the previous
//!   secret only after `testConnection` succeeded with the new one active (not after a rollback
//!   to the previous one) — in the same pass when the new version passes at once. It starts
//!   only while the connection is verified; each step is recorded in the status before it is
//!   taken. Between resyncs a rotation goes on from the application and secret the pass
//!   remembers (each step it takes is written through), so it reads nothing back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::admission::Spends;
use super::clients::{Clients, namespace_of};
use super::credential_check::{self, Candidate, SecretSource};
use super::frame::{self, Reconciled};
use super::memo::{Memo, digest};
use super::plan::{self, Plan, Step};
use super::secrets::SecretVersion;
use super::verification::{self, Pushed, Verification, values_digest};
use super::{Context, FINALIZER, ReconcileError, is_paused, lookup, patch_status};
use crate::aic::am::{self, Worker};
use crate::aic::esv::{self, VariableOutcome};
use crate::aic::{AicClient, AmApi, EsvApi};
use crate::crd::common::parse_duration;
use crate::crd::common::{ApprovalPolicy, ManagementPolicy, condition};
use crate::crd::pingone_integration::{
    CredentialType, DeletionPolicy, EnvironmentPlan, EnvironmentStatus, IntegrationEnvironment,
    PingOneIntegrationStatus, RotationPhase, SecretRotation, SecretRotationStatus,
    WorkerApplication as WorkerApplicationSpec,
};
use crate::crd::promotion::{PromotionPhase, PromotionSpec};
use crate::crd::tenant_environment::Tier;
use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use crate::credentials::{ClientCredentials, ConnectionCredential, SecretData};
use crate::pingone::{self, PingOneApi, Scope, TokenAuthMethod};
use crate::secret::SecretString;
use crate::status::{ConditionStatus, DesiredCondition, set_condition};

mod conditions;
mod credential;
mod esvs;
mod rotation;
mod service;
mod urls;

use conditions::*;
use credential::*;
use esvs::*;
use rotation::*;
pub use rotation::{MIN_ROTATION_OVERLAP, ROTATE_BEFORE_ANNOTATION, rotation_overlap};
use service::*;
use urls::*;

/// Condition: every environment has PingOne worker credentials.
pub const PINGONE_CLIENT_READY: &str = "PingOneClientReady";
/// Condition: every environment's ESVs hold the values and are loaded.
pub const ESVS_SYNCED: &str = "ESVsSynced";
/// Condition: the worker service and its mapping are in place everywhere.
pub const SERVICE_CONFIGURED: &str = "ServiceConfigured";
/// Condition: `testConnection` succeeded everywhere.
pub const CONNECTION_VERIFIED: &str = "ConnectionVerified";
/// Condition: every upper environment has the configuration by promotion.
pub const PROMOTED: &str = "Promoted";

/// Label on the Promotions an integration creates.
pub const INTEGRATION_LABEL: &str = "pingone-aic.io/integration";

/// Whether the ESV secret the operator creates for the credential may be used in placeholders:
/// no, it is read through the secret-label mapping only.
pub(super) const MAPPED_SECRET_IN_PLACEHOLDERS: bool = false;

/// Description written on the ESVs the operator manages.
pub(super) const ESV_DESCRIPTION: &str =
    "PingOne Worker Service credential, managed by pingone-aic-operator";

/// The Secrets an integration reads directly (the TenantEnvironments' own are mapped through
/// them).
pub fn referenced_secrets(integration: &PingOneIntegration) -> Vec<String> {
    integration
        .spec
        .environments
        .iter()
        .filter_map(|e| e.credentials_secret_ref.as_ref().map(|r| r.name.clone()))
        .collect()
}

/// Reconciles one PingOneIntegration.
pub async fn reconcile(
    integration: Arc<PingOneIntegration>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    frame::reconcile(
        integration,
        ctx,
        move |integration| async move { apply(&integration, ctx).await },
        move |integration| async move { cleanup(&integration, ctx).await },
    )
    .await
}

impl Reconciled for PingOneIntegration {
    const CONTROLLER: &'static str = "PingOneIntegration";
    const FINALIZER: Option<&'static str> = Some(FINALIZER);

    fn spends(&self, ctx: &Context) -> BTreeSet<Spends> {
        let names = self.spec.environments.iter().map(|e| e.name.as_str());
        Spends::of_environments(ctx, self.namespace().as_deref(), names, true)
    }
}

/// What one environment contributes to the integration's conditions.
#[derive(Default)]
struct Facts {
    client_ready: bool,
    esvs_synced: bool,
    service_configured: bool,
    verified: bool,
    /// `None` for development and sandboxes.
    promoted: Option<bool>,
    /// What the environment waits for, or what failed there.
    note: Option<String>,
    /// Look again this soon (operator-managed rotation).
    requeue: Option<Duration>,
    /// The environment failed on a conflict the operator will not resolve by guessing (e.g.
    /// two applications of the same name).
    conflict: bool,
    /// PingOne refused a credential from a Secret; the one in AIC stays.
    rejected: bool,
}

/// One environment of the integration with its TenantEnvironment.
struct Target<'a> {
    spec: &'a IntegrationEnvironment,
    tenant: Arc<TenantEnvironment>,
    /// Literal or placeholder PingOne URLs, as decided for the environment's promotion group.
    urls: WorkerUrls,
}

async fn apply(integration: &PingOneIntegration, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = namespace_of(integration);
    let api: Api<PingOneIntegration> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = Time(jiff::Timestamp::now());
    let generation = integration.meta().generation;
    let mut status = integration.status.clone().unwrap_or_default();
    status.observed_generation = generation;

    let outcome = plan(integration, ctx);
    let targets = match outcome {
        Ok(targets) => targets,
        Err(err) => {
            let message = err.to_string();
            let changed = set(
                &mut status,
                generation,
                condition::READY,
                ConditionStatus::False,
                err.reason(),
                &message,
                &now,
            );
            if changed {
                ctx.publish(
                    integration,
                    EventType::Warning,
                    "Validate",
                    err.reason(),
                    message,
                )
                .await;
            }
            write_status(&api, integration, &status).await?;
            return Ok(Action::requeue(ctx.config.resync));
        }
    };
    if is_paused(integration) {
        set(
            &mut status,
            generation,
            condition::READY,
            ConditionStatus::False,
            "Paused",
            "the integration is paused: the operator makes no change",
            &now,
        );
        write_status(&api, integration, &status).await?;
        return Ok(Action::await_change());
    }

    let policy = integration.spec.management_policy;
    let observed_inputs = observation_inputs(integration, ctx, &targets);
    let observed_key = memo_prefix(integration);
    if let Some(inputs) = &observed_inputs
        && ctx
            .memos
            .observed
            .fresh(&observed_key, inputs, ctx.observation_age())
            .is_some()
    {
        return Ok(Action::requeue(ctx.config.resync));
    }
    let mut plans = Vec::new();
    let mut failures = Vec::new();
    let wanted: Vec<&str> = targets.iter().map(|t| t.spec.name.as_str()).collect();
    status
        .environments
        .retain(|e| wanted.contains(&e.name.as_str()));
    let mut facts = BTreeMap::new();
    let mut next = ctx.config.resync;
    for target in &targets {
        let name = target.spec.name.clone();
        let index = match status.environments.iter().position(|e| e.name == name) {
            Some(index) => index,
            None => {
                status.environments.push(EnvironmentStatus {
                    name: name.clone(),
                    ..Default::default()
                });
                status.environments.len() - 1
            }
        };
        let mut plan = Plan::new(policy);
        let result = sync_environment(
            integration,
            ctx,
            &api,
            target,
            &targets,
            &mut EnvironmentPass {
                status: &mut status,
                index,
                plan: &mut plan,
            },
            &now,
        )
        .await;
        if !plan.steps().is_empty() {
            plans.push(EnvironmentPlan {
                environment: name.clone(),
                steps: plan.into_steps(),
            });
        }
        let fact = match result {
            Ok(fact) => fact,
            Err(err) if err.is_transient() => {
                if policy == ManagementPolicy::Full {
                    checkpoint(&api, integration, &status, Checkpoint::EndedEarly).await?;
                }
                return Err(err);
            }
            Err(err) => {
                failures.push(format!("{name}: {err}"));
                ctx.publish_in(
                    integration,
                    &name,
                    None,
                    EventType::Warning,
                    "Reconcile",
                    err.reason(),
                    format!("{name}: {err}"),
                )
                .await;
                Facts {
                    note: Some(format!("{name}: {err}")),
                    conflict: matches!(err, ReconcileError::Conflict { .. }),
                    rejected: err.reason() == credential_check::REJECTED,
                    ..Default::default()
                }
            }
        };
        if fact.note.is_some() {
            next = next.min(ctx.config.wait);
        }
        if let Some(requeue) = fact.requeue {
            next = next.min(requeue.max(Duration::from_millis(100)));
        }
        facts.insert(name, fact);
    }
    if policy == ManagementPolicy::Observe {
        // The environments' entries hold what the pass saw (an adopted application or ESV
        // secret, a verified connection), never the outcome of a write it only planned; the
        // conditions other than Ready wait for a full pass.
        let steps = plans.iter().map(|p| p.steps.len()).sum::<usize>();
        status.plan = plans;
        status.plan_steps = Some(i64::try_from(steps).unwrap_or(i64::MAX));
        let (ready, reason, message) = match failures.as_slice() {
            [] => plan::observed_readiness(steps),
            failed => (
                ConditionStatus::False,
                "ObserveFailed",
                format!(
                    "managementPolicy is Observe; the plan may be incomplete: {}",
                    failed.join("; ")
                ),
            ),
        };
        set(
            &mut status,
            generation,
            condition::READY,
            ready,
            reason,
            &message,
            &now,
        );
        write_status(&api, integration, &status).await?;
        if let (Some(inputs), true) = (observed_inputs, failures.is_empty()) {
            ctx.memos.observed.record(&observed_key, inputs, ());
        }
        return Ok(Action::requeue(ctx.config.resync));
    }
    status.plan.clear();
    status.plan_steps = None;
    set_conditions(&mut status, generation, &facts, &now);
    write_status(&api, integration, &status).await?;
    Ok(Action::requeue(next))
}

/// The environment a step works on, inside the status the pass is computing: a step changes
/// its environment's entry; a checkpoint writes the whole status.
pub(super) struct EnvironmentPass<'s> {
    status: &'s mut PingOneIntegrationStatus,
    index: usize,
    /// The writes of this environment, made (`Full`) or only recorded (`Observe`).
    plan: &'s mut Plan,
}

impl EnvironmentPass<'_> {
    /// This environment's entry of the status.
    fn entry(&self) -> &EnvironmentStatus {
        &self.status.environments[self.index]
    }

    /// This environment's entry of the status, to change.
    fn entry_mut(&mut self) -> &mut EnvironmentStatus {
        &mut self.status.environments[self.index]
    }

    /// This environment's entry of the status and its plan, to change together.
    fn entry_and_plan(&mut self) -> (&mut EnvironmentStatus, &mut Plan) {
        (&mut self.status.environments[self.index], self.plan)
    }

    /// Whether this pass only observes.
    fn observing(&self) -> bool {
        self.plan.observing()
    }
}

/// Why a pass writes its status before its end. Each records a fact that must be on the API
/// server before anything else can fail, or the next pass (after a crash, or after a failed
/// call) would redo what must happen once.
#[derive(Clone, Copy, Debug)]
enum Checkpoint {
    /// A worker application was created: without its id on record, a retry creates a second.
    ApplicationCreated,
    /// An existing application was adopted: without the record, the operator would not know
    /// the application is not its own (and must survive `deletionPolicy: Delete`).
    ApplicationAdopted,
    /// A secret rotation is about to be asked of PingOne: the intent comes first, so a restart
    /// finds the phase and resumes instead of rotating twice.
    RotationStarting,
    /// A rotated secret passed `testConnection` and the previous one is about to be deleted:
    /// a restart after the deletion then finds the rotation verifying, not still rotating, and
    /// does not rotate again.
    RotationVerified,
    /// A transient failure ends the pass early: what the environments before it did is kept.
    EndedEarly,
}

/// Writes the status mid-pass, for `why`; a status the API server already holds is not
/// written again.
async fn checkpoint(
    api: &Api<PingOneIntegration>,
    integration: &PingOneIntegration,
    status: &PingOneIntegrationStatus,
    why: Checkpoint,
) -> Result<(), ReconcileError> {
    let written = write_status(api, integration, status).await?;
    if written {
        tracing::debug!(integration = %integration.name_any(), checkpoint = ?why, "status checkpoint");
    }
    Ok(())
}

/// Writes the status the pass computed, unless the API server holds it already; whether it
/// wrote.
async fn write_status(
    api: &Api<PingOneIntegration>,
    integration: &PingOneIntegration,
    status: &PingOneIntegrationStatus,
) -> Result<bool, ReconcileError> {
    patch_status(
        api,
        &integration.name_any(),
        integration.status.as_ref(),
        status,
    )
    .await
}

/// What an Observe pass's plan depends on besides the remote state, as a digest: the spec, the
/// TenantEnvironments (whose status records their restarts) and the Promotions of the
/// namespace. `None` under `Full`, and when an environment's credentials come from a Secret:
/// only its data (read when a pass runs) tells whether it changed.
fn observation_inputs(
    integration: &PingOneIntegration,
    ctx: &Context,
    targets: &[Target<'_>],
) -> Option<String> {
    if integration.spec.management_policy != ManagementPolicy::Observe
        || targets
            .iter()
            .any(|t| t.spec.credentials_secret_ref.is_some())
    {
        return None;
    }
    let mut parts = vec![
        integration
            .meta()
            .generation
            .unwrap_or_default()
            .to_string(),
    ];
    for target in targets {
        let tenant = target.tenant.meta();
        parts.push(format!(
            "{}@{}",
            tenant.uid.clone().unwrap_or_default(),
            tenant.resource_version.clone().unwrap_or_default()
        ));
    }
    let namespace = integration.meta().namespace.as_deref();
    let mut promotions: Vec<String> = ctx
        .promotions
        .state_filter(|p| lookup::in_namespace(p, namespace))
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p.name_any(),
                p.meta().resource_version.clone().unwrap_or_default()
            )
        })
        .collect();
    promotions.sort();
    parts.extend(promotions);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(digest(&parts))
}

/// Resolves the environments and checks for conflicts with other integrations.
fn plan<'a>(
    integration: &'a PingOneIntegration,
    ctx: &Context,
) -> Result<Vec<Target<'a>>, ReconcileError> {
    let namespace = integration.meta().namespace.as_deref();
    let mut targets = Vec::new();
    for spec in &integration.spec.environments {
        let tenant = lookup::named(&ctx.tenants, namespace, &spec.name).ok_or_else(|| {
            ReconcileError::invalid(
                "TenantEnvironmentNotFound",
                format!(
                    "TenantEnvironment {:?} does not exist in this namespace",
                    spec.name
                ),
            )
        })?;
        targets.push(Target {
            spec,
            tenant,
            urls: WorkerUrls::Literal,
        });
    }
    // Mutable environments first (development, sandboxes), then up the promotion group.
    targets.sort_by_key(|t| t.tenant.spec.tier.rank().unwrap_or(0));
    let urls = plan_urls(integration, ctx, &targets)?;
    for (target, urls) in targets.iter_mut().zip(urls) {
        target.urls = urls;
    }
    // Integrations made before this one that share one of its environments.
    let this = (
        integration.meta().creation_timestamp.as_ref(),
        integration.meta().name.as_deref(),
    );
    let earlier = ctx.integrations.state_filter(|other| {
        lookup::in_namespace(other, namespace)
            && (
                other.meta().creation_timestamp.as_ref(),
                other.meta().name.as_deref(),
            ) < this
            && other
                .spec
                .environments
                .iter()
                .any(|e| targets.iter().any(|t| t.spec.name == e.name))
    });
    for other in earlier {
        for target in &targets {
            if !other
                .spec
                .environments
                .iter()
                .any(|e| e.name == target.spec.name)
            {
                continue;
            }
            let ours = claimed_names(integration);
            let theirs = claimed_names(&other);
            if let Some(clash) = ours.iter().find(|n| theirs.contains(n)) {
                return Err(ReconcileError::conflict(
                    "Conflict",
                    format!(
                        "PingOneIntegration {:?} already manages {clash:?} in {}; use other ESV names or another service name",
                        other.name_any(),
                        target.spec.name
                    ),
                ));
            }
        }
    }
    Ok(targets)
}

/// The ESVs an environment needs before a promotion into it: variables and secrets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequiredEsvs {
    /// Variable ids.
    pub variables: Vec<String>,
    /// Secret ids.
    pub secrets: Vec<String>,
}

/// The ESVs the integration's worker service references in `environment` (one of its
/// environments): the credential's, and the URL variables when its promotion group carries
/// placeholder URLs. An integration that cannot be planned (a missing TenantEnvironment, a
/// `RegionMismatch`) writes no worker service, so it asks for no URL variables.
pub fn required_esvs(
    integration: &PingOneIntegration,
    ctx: &Context,
    environment: &str,
) -> RequiredEsvs {
    let esv = &integration.spec.esv;
    let mut required = RequiredEsvs {
        variables: vec![esv.environment_id.clone()],
        secrets: Vec::new(),
    };
    match integration.spec.credential_type {
        CredentialType::WorkerApplication => {
            required.variables.push(esv.client_id.clone());
            required.secrets.push(esv.client_secret.clone());
        }
        CredentialType::ProductConnection => required.secrets.push(esv.connection_jwt.clone()),
    }
    let placeholders = plan(integration, ctx).is_ok_and(|targets| {
        targets
            .iter()
            .any(|t| t.spec.name == environment && t.urls == WorkerUrls::Placeholders)
    });
    if placeholders {
        required.variables.push(esv.api_url.clone());
        required.variables.push(esv.auth_url.clone());
    }
    required
}

/// The ESV ids and worker service name an integration writes and no other may. The URL
/// variables are not among them: they hold the environment's own PingOne URLs, the same
/// values whichever integration writes them, so integrations may share them.
fn claimed_names(integration: &PingOneIntegration) -> Vec<String> {
    let esv = &integration.spec.esv;
    let mut names = vec![
        esv.environment_id.clone(),
        integration.spec.service.name.clone(),
    ];
    match integration.spec.credential_type {
        CredentialType::WorkerApplication => {
            names.push(esv.client_id.clone());
            names.push(esv.client_secret.clone());
        }
        CredentialType::ProductConnection => names.push(esv.connection_jwt.clone()),
    }
    names
}

/// What the integration reconciler remembers between resyncs (see [`super::memo`]), per
/// integration (by uid) and environment.
#[derive(Debug, Default)]
pub struct Memos {
    credentials: Memo<SeenCredential>,
    /// Whether the environment's ESVs were loaded by the running services.
    esvs_loaded: Memo<bool>,
    /// A mutable environment's worker service, configuration and label mapping are in place.
    services: Memo<()>,
    /// Whether an upper environment holds the promoted worker configuration.
    promoted: Memo<bool>,
    /// Why a credential was refused (by PingOne before a push, or by AIC's testConnection
    /// after one), by the digest of the values refused.
    pub(super) rejected: Memo<String>,
    /// An Observe pass's plan is in the status, observed with these inputs: the passes that
    /// events cause before the next resync (its own status write first) read nothing again.
    observed: Memo<()>,
    /// What a credential Secret at one version holds, without the value: by the Secret's
    /// version, so a version seen before is not read again.
    sourced: Memo<SourcedValues>,
}

/// What the integration needs of a credential Secret's values when it does not read them.
#[derive(Clone, Debug)]
struct SourcedValues {
    client_id: Option<String>,
    /// [`values_digest`] of the values.
    hash: String,
}

impl Memos {
    fn forget(&self, prefix: &str) {
        self.credentials.forget_prefix(prefix);
        self.esvs_loaded.forget_prefix(prefix);
        self.services.forget_prefix(prefix);
        self.promoted.forget_prefix(prefix);
        self.rejected.forget_prefix(prefix);
        self.observed.forget_prefix(prefix);
        self.sourced.forget_prefix(prefix);
    }
}

/// A credential as last observed, and when operator-managed rotation wants to look again.
#[derive(Clone)]
struct SeenCredential {
    credential: Credential,
}

impl std::fmt::Debug for SeenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenCredential")
            .field("client_id", &self.credential.client_id)
            .finish_non_exhaustive()
    }
}

/// The key of what an integration's memos hold for one environment.
pub(super) fn memo_key(integration: &PingOneIntegration, environment: &str) -> String {
    format!("{}{environment}", memo_prefix(integration))
}

/// The key prefix of an integration's memos: its uid, so a re-created integration starts afresh.
fn memo_prefix(integration: &PingOneIntegration) -> String {
    format!(
        "{}/",
        integration.uid().unwrap_or_else(|| integration.name_any())
    )
}

/// The credential AIC uses to reach PingOne in one environment.
#[derive(Clone)]
struct Credential {
    client_id: Option<String>,
    /// The secret value; `None` when the pass has not read it from its Secret (see
    /// [`credential::secret_value`]), and `hash` stands for it.
    secret: Option<SecretString>,
    /// [`values_digest`] of the environment id, the client id and the secret.
    hash: String,
    /// When operator-managed rotation wants to look again.
    requeue: Option<Duration>,
    /// The Secret a person or a secret manager wrote it to; `None` when the operator manages
    /// the worker application and PingOne issued the secret.
    source: Option<SecretSource>,
    /// PingOne's previous secret of a managed worker while a rotation keeps it valid.
    previous: Option<SecretString>,
    /// The worker application is only planned (Observe): its client id and secret do not
    /// exist yet.
    planned: bool,
}

#[allow(clippy::too_many_arguments)]
async fn sync_environment(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    targets: &[Target<'_>],
    pass: &mut EnvironmentPass<'_>,
    now: &Time,
) -> Result<Facts, ReconcileError> {
    let tenant = &target.tenant;
    let mut facts = Facts::default();
    let mut credential = credential(integration, ctx, api, target, pass).await?;
    facts.client_ready = true;
    facts.requeue = credential.requeue;
    pass.entry_mut().client_id = credential.client_id.clone();

    let aic = ctx.clients.aic(&ctx.secrets, tenant, &[]).await?;
    let age = ctx.observation_age();
    let key = memo_key(integration, &target.spec.name);
    let url_variables = url_variables(integration, tenant, target.urls)?;
    let inputs = esv_inputs(
        integration,
        tenant,
        &credential,
        &url_variables,
        pass.entry(),
    );
    // An Observe pass trusts no cached observation and records none (see `super::plan`).
    let observing = pass.observing();
    let fresh = ctx.memos.esvs_loaded.fresh(&key, &inputs, age);
    let (loaded, unknown_secret) = match fresh.filter(|_| !observing) {
        Some(loaded) => (loaded, None),
        None => {
            let (env, plan) = pass.entry_and_plan();
            let esvs = sync_esvs(
                integration,
                ctx,
                &aic,
                tenant,
                &mut credential,
                &url_variables,
                env,
                plan,
            )
            .await?;
            if esvs.unknown_secret.is_none() && !observing {
                let inputs = esv_inputs(
                    integration,
                    tenant,
                    &credential,
                    &url_variables,
                    pass.entry(),
                );
                ctx.memos.esvs_loaded.record(&key, inputs, esvs.loaded);
            }
            (esvs.loaded, esvs.unknown_secret)
        }
    };
    facts.esvs_synced = loaded;

    let desired = desired_worker(integration, ctx, target, targets, &aic).await?;
    let desired_json = serde_json::to_string(&desired).unwrap_or_default();
    let generation = integration
        .meta()
        .generation
        .unwrap_or_default()
        .to_string();
    let (env, plan) = pass.entry_and_plan();
    if tenant.spec.tier.is_mutable() {
        let inputs = |env: &EnvironmentStatus| {
            digest(&[
                &generation,
                &desired_json,
                &format!("{}/{}", env.service_configured, env.label_mapped),
            ])
        };
        if observing || ctx.memos.services.fresh(&key, &inputs(env), age).is_none() {
            configure_service(integration, ctx, &aic, &desired, env, plan).await?;
            if !observing {
                ctx.memos.services.record(&key, inputs(env), ());
            }
        }
    } else {
        // While a promotion into this environment runs, the Promotion tests what it brought
        // (and may roll it back): nothing is read or tested here until it has ended.
        if let Some(running) = ctx.promotions.find(|p| {
            lookup::in_namespace(p, tenant.meta().namespace.as_deref())
                && p.spec.to == target.spec.name
                && p.status
                    .as_ref()
                    .is_some_and(|s| s.phase != PromotionPhase::Pending && !s.phase.is_final())
        }) {
            facts.promoted = Some(false);
            facts.note = Some(format!(
                "{}: Promotion {} is in progress",
                target.spec.name,
                running.name_any()
            ));
            return Ok(facts);
        }
        // A promotion is what changes an upper environment's worker: look again when one into
        // this environment has ended, or at the resync.
        let promotions: Vec<String> = ctx
            .promotions
            .state()
            .iter()
            .filter(|p| p.namespace() == tenant.namespace() && p.spec.to == target.spec.name)
            .filter_map(|p| {
                let phase = p.status.as_ref().map(|s| s.phase)?;
                phase
                    .is_final()
                    .then(|| format!("{}={phase:?}", p.name_any()))
            })
            .collect();
        let inputs = digest(&[&generation, &desired_json, &promotions.join(",")]);
        let promoted = match ctx.memos.promoted.fresh(&key, &inputs, age) {
            Some(promoted) => promoted,
            None => {
                let promoted = aic
                    .get_worker(&integration.spec.service.name)
                    .await?
                    .is_some_and(|current| current.satisfies(&desired));
                ctx.memos.promoted.record(&key, inputs, promoted);
                promoted
            }
        };
        env.promoted = Some(promoted);
        env.service_configured = promoted;
        env.label_mapped = promoted;
        facts.promoted = Some(promoted);
        if !promoted {
            facts.note = Some(
                promotion_note(integration, ctx, tenant, targets, pass.status, pass.plan).await?,
            );
        }
    }
    if let Some(active) = unknown_secret {
        adopt_or_push_secret(
            integration,
            ctx,
            &aic,
            tenant,
            &mut credential,
            pass,
            &active,
            now,
        )
        .await?;
    }
    if observing {
        // Verification changes nothing to plan; it follows the writes in a full pass.
        return Ok(facts);
    }
    let env = pass.entry_mut();
    facts.service_configured = env.service_configured && env.label_mapped;
    if !loaded {
        env.connection_verified = false;
        facts.note.get_or_insert_with(|| {
            format!(
                "{}: the ESVs wait for a restart of the tenant environment",
                target.spec.name
            )
        });
        return Ok(facts);
    }
    if !facts.service_configured {
        return Ok(facts);
    }
    if env.connection_verified && env.verified_hash.is_none() {
        // Verified before the operator kept what passed: what is in the ESVs is what passed.
        env.verified_hash = env.values_hash.clone();
        env.verified_version = env.secret_version.clone();
    }
    if !env.connection_verified {
        let secret = secret_value(integration, ctx, tenant, &mut credential).await?;
        let env = pass.entry_mut();
        let pushed = Pushed {
            environment_id: tenant.spec.ping_one.environment_id.as_str(),
            client_id: credential.client_id.as_deref(),
            secret: &secret,
            previous: credential.previous.as_ref(),
            from_secret: credential.source.is_some(),
        };
        match verification::verify(integration, ctx, &aic, env, &pushed, now).await? {
            Verification::Verified => {}
            Verification::Pending(note) => {
                facts.note = Some(note);
                return Ok(facts);
            }
            Verification::Rejected(message) => {
                facts.verified = env.connection_verified;
                facts.rejected = true;
                facts.note = Some(message);
                return Ok(facts);
            }
        }
    }
    conclude_rotation(integration, ctx, api, target, pass, &mut credential).await?;
    facts.requeue = credential.requeue;
    facts.verified = true;
    Ok(facts)
}

/// A digest of what an environment's observation depends on: the integration's spec
/// generation, the TenantEnvironment (uid and generation) and the part's own `inputs`.
fn environment_digest(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    inputs: &[&str],
) -> String {
    let owner = [
        integration
            .meta()
            .generation
            .unwrap_or_default()
            .to_string(),
        tenant.uid().unwrap_or_default(),
        tenant.meta().generation.unwrap_or_default().to_string(),
    ];
    let parts: Vec<&str> = owner
        .iter()
        .map(String::as_str)
        .chain(inputs.iter().copied())
        .collect();
    digest(&parts)
}

/// The ESV secret that carries the credential.
pub(super) fn secret_esv(integration: &PingOneIntegration) -> &str {
    match integration.spec.credential_type {
        CredentialType::WorkerApplication => &integration.spec.esv.client_secret,
        CredentialType::ProductConnection => &integration.spec.esv.connection_jwt,
    }
}

/// With `deletionPolicy: Delete`, removes what the operator created; `Retain` keeps it all.
async fn cleanup(
    integration: &PingOneIntegration,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    ctx.memos.forget(&memo_prefix(integration));
    // Observe never deletes anything remote, whatever the deletion policy.
    if integration.spec.deletion_policy == DeletionPolicy::Retain
        || is_paused(integration)
        || integration.spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Action::await_change());
    }
    let status = integration.status.clone().unwrap_or_default();
    let namespace = integration.meta().namespace.as_deref();
    for spec in &integration.spec.environments {
        let Some(tenant) = lookup::named(&ctx.tenants, namespace, &spec.name) else {
            continue;
        };
        let aic = ctx.clients.aic(&ctx.secrets, &tenant, &[]).await?;
        if tenant.spec.tier.is_mutable() {
            aic.delete_worker(&integration.spec.service.name).await?;
            let label = match integration.spec.credential_type {
                CredentialType::WorkerApplication => {
                    am::client_secret_label(&integration.spec.service.secret_label_identifier)
                }
                CredentialType::ProductConnection => {
                    am::credential_label(&integration.spec.service.secret_label_identifier)
                }
            };
            aic.delete_mapping(&label).await?;
        }
        // URL variables are deleted where the status records them written, unless another
        // integration of the environment shares them.
        let wrote_urls = status
            .environments
            .iter()
            .any(|e| e.name == spec.name && e.urls_hash.is_some());
        let shared = |id: &str| {
            ctx.integrations
                .find(|other| {
                    lookup::in_namespace(other, namespace)
                        && other.meta().name != integration.meta().name
                        && other.spec.environments.iter().any(|e| e.name == spec.name)
                        && [&other.spec.esv.api_url, &other.spec.esv.auth_url]
                            .iter()
                            .any(|n| n.as_str() == id)
                })
                .is_some()
        };
        let esv = &integration.spec.esv;
        let urls = [esv.api_url.clone(), esv.auth_url.clone()]
            .into_iter()
            .filter(|id| wrote_urls && !shared(id));
        for id in claimed_names(integration)
            .into_iter()
            .filter(|n| n.starts_with("esv-"))
            .chain(urls)
        {
            let id = &id;
            if id == secret_esv(integration) {
                aic.delete_secret(id).await?;
            } else {
                aic.delete_variable(id).await?;
            }
        }
        let env = status.environments.iter().find(|e| e.name == spec.name);
        if let Some(app_id) = env
            .filter(|e| e.worker_app_created == Some(true))
            .and_then(|e| e.worker_app_id.clone())
            && let Some(session) = ctx.clients.pingone_admin(&ctx.secrets, &tenant).await?
        {
            session
                .delete_application(&tenant.spec.ping_one.environment_id, &app_id)
                .await?;
        }
        ctx.publish_in(
            integration,
            &spec.name,
            None,
            EventType::Normal,
            "Delete",
            "Cleaned",
            format!("{}: deleted what the integration created", spec.name),
        )
        .await;
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_secret_outlives_the_esv_cache_and_verification() {
        // AIC caches ESV secrets for 600 s (expiryDurationSeconds); a short overlap is raised.
        assert!(rotation_overlap(Duration::from_secs(2)) >= Duration::from_secs(600));
        assert_eq!(
            rotation_overlap(Duration::from_secs(2)),
            MIN_ROTATION_OVERLAP
        );
        assert_eq!(
            rotation_overlap(Duration::from_secs(7200)),
            Duration::from_secs(7200)
        );
        // PingOne accepts at most 30 days.
        assert_eq!(
            rotation_overlap(Duration::from_secs(90 * 24 * 3600)),
            Duration::from_secs(30 * 24 * 3600)
        );
    }
}
