//! PingOneIntegration reconciler: per environment, the PingOne worker credentials (created or
//! adopted application, role grants, enabled flag — or the credentials the user keeps in a
//! Secret), the ESVs that carry them, the AM worker service and its secret mapping (development
//! and sandboxes; upper environments get them by promotion), and `testConnection` once a
//! restart has loaded the ESVs.
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
//! - Operator-managed rotation (`workerApplication.secretRotation`) rotates in PingOne with the
//!   previous secret valid for at least the ESV store's cache time plus a restart and
//!   verification ([`MIN_ROTATION_OVERLAP`]), pushes the new version, and deletes the previous
//!   secret only after `testConnection` succeeded with the new one active (not after a rollback
//!   to the previous one). It starts only while the connection is verified; each step is
//!   recorded in the status before it is taken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::clients::{Clients, namespace_of};
use super::credential_check::{self, Candidate, SecretSource};
use super::frame::{self, Reconciled};
use super::memo::{Memo, digest};
use super::verification::{self, Pushed, Verification, values_digest};
use super::{Context, FINALIZER, ReconcileError, is_paused, patch_status};
use crate::aic::am::{self, Worker};
use crate::aic::esv::{self, VariableOutcome};
use crate::aic::{AicClient, AmApi, EsvApi};
use crate::crd::common::parse_duration;
use crate::crd::common::{ApprovalPolicy, condition};
use crate::crd::pingone_integration::{
    CredentialType, DeletionPolicy, EnvironmentStatus, IntegrationEnvironment,
    PingOneIntegrationStatus, RotationPhase, SecretRotation, SecretRotationStatus,
    WorkerApplication as WorkerApplicationSpec,
};
use crate::crd::promotion::{PromotionPhase, PromotionSpec};
use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use crate::credentials::{ClientCredentials, ConnectionCredential, SecretData};
use crate::pingone::{self, PingOneApi, Scope, TokenAuthMethod};
use crate::secret::SecretString;
use crate::status::{ConditionStatus, DesiredCondition, set_condition};

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
            patch_status(
                &api,
                &integration.name_any(),
                integration.status.as_ref(),
                &status,
            )
            .await?;
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
        patch_status(
            &api,
            &integration.name_any(),
            integration.status.as_ref(),
            &status,
        )
        .await?;
        return Ok(Action::await_change());
    }

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
        let result = sync_environment(
            integration,
            ctx,
            &api,
            target,
            &targets,
            &mut status,
            index,
            &now,
        )
        .await;
        let fact = match result {
            Ok(fact) => fact,
            Err(err) if err.is_transient() => {
                checkpoint(&api, integration, &status, Checkpoint::EndedEarly).await?;
                return Err(err);
            }
            Err(err) => {
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
    set_conditions(&mut status, generation, &facts, &now);
    patch_status(
        &api,
        &integration.name_any(),
        integration.status.as_ref(),
        &status,
    )
    .await?;
    Ok(Action::requeue(next))
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
    let written = patch_status(
        api,
        &integration.name_any(),
        integration.status.as_ref(),
        status,
    )
    .await?;
    if written {
        tracing::debug!(integration = %integration.name_any(), checkpoint = ?why, "status checkpoint");
    }
    Ok(())
}

/// Resolves the environments and checks for conflicts with other integrations.
fn plan<'a>(
    integration: &'a PingOneIntegration,
    ctx: &Context,
) -> Result<Vec<Target<'a>>, ReconcileError> {
    let namespace = integration.namespace();
    let tenants: Vec<Arc<TenantEnvironment>> = ctx
        .tenants
        .state()
        .into_iter()
        .filter(|t| t.namespace() == namespace)
        .collect();
    let mut targets = Vec::new();
    for spec in &integration.spec.environments {
        let tenant = tenants
            .iter()
            .find(|t| t.name_any() == spec.name)
            .cloned()
            .ok_or_else(|| {
                ReconcileError::invalid(
                    "TenantEnvironmentNotFound",
                    format!(
                        "TenantEnvironment {:?} does not exist in this namespace",
                        spec.name
                    ),
                )
            })?;
        targets.push(Target { spec, tenant });
    }
    // Mutable environments first (development, sandboxes), then up the promotion group.
    targets.sort_by_key(|t| t.tenant.spec.tier.rank().unwrap_or(0));
    for other in ctx.integrations.state() {
        if other.namespace() != namespace || other.name_any() == integration.name_any() {
            continue;
        }
        let other_first = (other.creation_timestamp(), other.name_any())
            < (integration.creation_timestamp(), integration.name_any());
        if !other_first {
            continue;
        }
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

/// The ESV ids and worker service name an integration writes.
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
}

impl Memos {
    fn forget(&self, prefix: &str) {
        self.credentials.forget_prefix(prefix);
        self.esvs_loaded.forget_prefix(prefix);
        self.services.forget_prefix(prefix);
        self.promoted.forget_prefix(prefix);
        self.rejected.forget_prefix(prefix);
    }
}

/// A credential as last observed, and when operator-managed rotation wants to look again.
#[derive(Clone)]
struct SeenCredential {
    credential: Credential,
    due: Option<Instant>,
}

impl std::fmt::Debug for SeenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenCredential")
            .field("client_id", &self.credential.client_id)
            .field("due", &self.due)
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
    secret: SecretString,
    /// When operator-managed rotation wants to look again.
    requeue: Option<Duration>,
    /// The Secret a person or a secret manager wrote it to; `None` when the operator manages
    /// the worker application and PingOne issued the secret.
    source: Option<SecretSource>,
    /// PingOne's previous secret of a managed worker while a rotation keeps it valid.
    previous: Option<SecretString>,
}

#[allow(clippy::too_many_arguments)]
async fn sync_environment(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    targets: &[Target<'_>],
    status: &mut PingOneIntegrationStatus,
    index: usize,
    now: &Time,
) -> Result<Facts, ReconcileError> {
    let tenant = &target.tenant;
    let mut facts = Facts::default();
    let credential = credential(integration, ctx, api, target, status, index).await?;
    facts.client_ready = true;
    facts.requeue = credential.requeue;
    status.environments[index].client_id = credential.client_id.clone();

    let aic = ctx.clients.aic(&ctx.client, tenant, &[]).await?;
    let age = ctx.observation_age();
    let key = memo_key(integration, &target.spec.name);
    let inputs = esv_inputs(
        integration,
        tenant,
        &credential,
        &status.environments[index],
    );
    let loaded = match ctx.memos.esvs_loaded.fresh(&key, &inputs, age) {
        Some(loaded) => loaded,
        None => {
            let loaded = sync_esvs(
                integration,
                ctx,
                &aic,
                tenant,
                &credential,
                &mut status.environments[index],
            )
            .await?;
            let inputs = esv_inputs(
                integration,
                tenant,
                &credential,
                &status.environments[index],
            );
            ctx.memos.esvs_loaded.record(&key, inputs, loaded);
            loaded
        }
    };
    facts.esvs_synced = loaded;

    let desired = desired_worker(integration, ctx, tenant, targets, &aic).await?;
    let desired_json = serde_json::to_string(&desired).unwrap_or_default();
    let generation = integration
        .meta()
        .generation
        .unwrap_or_default()
        .to_string();
    let env = &mut status.environments[index];
    if tenant.spec.tier.is_mutable() {
        let inputs = |env: &EnvironmentStatus| {
            digest(&[
                &generation,
                &desired_json,
                &format!("{}/{}", env.service_configured, env.label_mapped),
            ])
        };
        if ctx.memos.services.fresh(&key, &inputs(env), age).is_none() {
            configure_service(integration, ctx, &aic, &desired, env).await?;
            ctx.memos.services.record(&key, inputs(env), ());
        }
    } else {
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
            facts.note = Some(promotion_note(integration, ctx, tenant, targets, status).await?);
        }
    }
    let env = &mut status.environments[index];
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
        let pushed = Pushed {
            environment_id: tenant.spec.ping_one.environment_id.as_str(),
            client_id: credential.client_id.as_deref(),
            secret: &credential.secret,
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

/// What decides an environment's ESVs and whether they are loaded, as a digest: the values,
/// the secret version recorded, and the tenant environment's restarts.
fn esv_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    credential: &Credential,
    env: &EnvironmentStatus,
) -> String {
    let restart = tenant
        .status
        .as_ref()
        .and_then(|s| s.restart.as_ref())
        // A finished restart is what loads written ESVs; the states in between change nothing.
        .map(|r| {
            format!(
                "{}/{:?}",
                r.restart_count,
                r.last_restart_time.as_ref().map(|t| t.0)
            )
        })
        .unwrap_or_default();
    environment_digest(
        integration,
        tenant,
        &[
            &restart,
            credential.client_id.as_deref().unwrap_or_default(),
            credential.secret.expose(),
            env.secret_version.as_deref().unwrap_or_default(),
            env.values_hash.as_deref().unwrap_or_default(),
        ],
    )
}

/// Reads or establishes the worker credential of one environment.
async fn credential(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    status: &mut PingOneIntegrationStatus,
    index: usize,
) -> Result<Credential, ReconcileError> {
    let namespace = namespace_of(integration);
    if let Some(secret_ref) = &target.spec.credentials_secret_ref {
        let data = SecretData::fetch(&ctx.client, &namespace, &secret_ref.name).await?;
        return Ok(match integration.spec.credential_type {
            CredentialType::ProductConnection => {
                let jwt = ConnectionCredential::from_secret(&data)?;
                Credential {
                    client_id: None,
                    secret: jwt.0,
                    requeue: None,
                    source: Some(SecretSource {
                        secret: secret_ref.name.clone(),
                        key: "credential",
                    }),
                    previous: None,
                }
            }
            CredentialType::WorkerApplication => {
                let credentials = ClientCredentials::from_secret(&data)?;
                Credential {
                    client_id: Some(credentials.client_id),
                    secret: credentials.client_secret,
                    requeue: None,
                    source: Some(SecretSource {
                        secret: secret_ref.name.clone(),
                        key: "clientSecret",
                    }),
                    previous: None,
                }
            }
        });
    }
    let Some(app_spec) = &integration.spec.worker_application else {
        return Err(ReconcileError::invalid(
            "CredentialsMissing",
            format!(
                "{} has no credentialsSecretRef and the integration manages no worker application",
                target.spec.name
            ),
        ));
    };
    let tenant = &target.tenant;
    let session = ctx.clients.pingone_admin(&ctx.client, tenant).await?.ok_or_else(|| {
        ReconcileError::invalid(
            "AdminCredentialsMissing",
            format!("TenantEnvironment {} has no pingOne.adminCredentialsSecretRef; the operator needs it to manage worker applications", target.spec.name),
        )
    })?;
    // Between resyncs the worker application, its role and its secret are taken as last seen
    // unless something that decides them changed; a rotation in progress is always driven.
    let key = memo_key(integration, &target.spec.name);
    let rotating = status.environments[index]
        .secret_rotation
        .as_ref()
        .is_some_and(|r| r.phase.is_some());
    let inputs = credential_inputs(integration, tenant, &session, &status.environments[index]);
    if !rotating
        && let Some(seen) = ctx
            .memos
            .credentials
            .fresh(&key, &inputs, ctx.observation_age())
    {
        let now = Instant::now();
        if seen.due.is_none_or(|due| due > now) {
            return Ok(Credential {
                requeue: seen.due.map(|due| due - now),
                ..seen.credential
            });
        }
    }
    let credential = observe_worker_credential(
        integration,
        ctx,
        api,
        target,
        status,
        index,
        &session,
        app_spec,
    )
    .await?;
    let inputs = credential_inputs(integration, tenant, &session, &status.environments[index]);
    ctx.memos.credentials.record(
        &key,
        inputs,
        SeenCredential {
            credential: credential.clone(),
            due: credential.requeue.map(|after| Instant::now() + after),
        },
    );
    Ok(credential)
}

/// What decides an environment's worker credential, as a digest.
fn credential_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    session: &pingone::PingOneSession,
    env: &EnvironmentStatus,
) -> String {
    let rotation = serde_json::to_string(&env.secret_rotation).unwrap_or_default();
    environment_digest(
        integration,
        tenant,
        &[
            &session.credential_digest(),
            env.worker_app_id.as_deref().unwrap_or_default(),
            &format!("{:?}", env.worker_app_created),
            &rotation,
        ],
    )
}

/// Observes (and where needed creates, repairs or rotates) the managed worker application of
/// one environment and returns its credential.
#[allow(clippy::too_many_arguments)]
async fn observe_worker_credential(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    status: &mut PingOneIntegrationStatus,
    index: usize,
    session: &pingone::PingOneSession,
    app_spec: &WorkerApplicationSpec,
) -> Result<Credential, ReconcileError> {
    let tenant = &target.tenant;
    let environment_id = tenant.spec.ping_one.environment_id.clone();
    let desired = pingone::WorkerApplication {
        name: app_spec.name.clone(),
        description: Some(format!(
            "PingOne Worker Service of Advanced Identity Cloud; managed by pingone-aic-operator ({})",
            integration.name_any()
        )),
        enabled: true,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
    };
    let recorded = status.environments[index].worker_app_id.clone();
    let app = match recorded.clone() {
        Some(id) => match session.application(&environment_id, &id).await? {
            Some(app) => app,
            None => {
                ctx.publish_in(integration, &target.spec.name, None, EventType::Warning, "Drift", "WorkerApplicationMissing", format!("{}: worker application {id} was deleted outside the operator; creating it again", target.spec.name)).await;
                create_application(
                    integration,
                    ctx,
                    api,
                    session,
                    &environment_id,
                    &desired,
                    status,
                    index,
                )
                .await?
            }
        },
        None => {
            let existing = session
                .find_applications_by_name(&environment_id, &app_spec.name)
                .await?;
            match existing.as_slice() {
                [] => {
                    create_application(
                        integration,
                        ctx,
                        api,
                        session,
                        &environment_id,
                        &desired,
                        status,
                        index,
                    )
                    .await?
                }
                [one] if app_spec.adopt_existing => {
                    let env = &mut status.environments[index];
                    env.worker_app_id = Some(one.id.clone());
                    env.worker_app_created = Some(false);
                    checkpoint(api, integration, status, Checkpoint::ApplicationAdopted).await?;
                    ctx.publish_in(
                        integration,
                        &target.spec.name,
                        None,
                        EventType::Normal,
                        "Adopt",
                        "WorkerApplicationAdopted",
                        format!(
                            "{}: adopted the existing application {:?} ({})",
                            target.spec.name, one.name, one.id
                        ),
                    )
                    .await;
                    one.clone()
                }
                [one] => {
                    return Err(ReconcileError::conflict(
                        "ApplicationExists",
                        format!(
                            "{}: an application named {:?} already exists ({}); set workerApplication.adoptExisting to adopt it or choose another name",
                            target.spec.name, one.name, one.id
                        ),
                    ));
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
                    return Err(ReconcileError::conflict(
                        "DuplicateApplications",
                        format!(
                            "{}: {} applications are named {:?} ({}); the operator will not guess which one to use",
                            target.spec.name,
                            many.len(),
                            app_spec.name,
                            ids.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    if !desired.matches(&app) {
        let created_by_us = status.environments[index].worker_app_created == Some(true);
        if created_by_us || !app.enabled {
            session
                .replace_worker_application(&environment_id, &app.id, &desired)
                .await?;
            ctx.publish_in(
                integration,
                &target.spec.name,
                None,
                EventType::Normal,
                "Drift",
                "WorkerApplicationRepaired",
                format!(
                    "{}: restored the worker application's settings (enabled, client credentials)",
                    target.spec.name
                ),
            )
            .await;
        }
    }
    // An application created in this pass has no role assignments to look at.
    let env = &status.environments[index];
    let created_now = env.worker_app_created == Some(true) && env.worker_app_id != recorded;
    let assignments = if created_now || app_spec.roles.is_empty() {
        Vec::new()
    } else {
        session
            .list_role_assignments(&environment_id, &app.id)
            .await?
    };
    for role in &app_spec.roles {
        let role_id = session.role_id(role).await?;
        let scope = Scope::environment(environment_id.clone());
        let present = assignments
            .iter()
            .any(|a| a.role.id == role_id && a.scope.id == scope.id);
        if !present {
            session
                .create_role_assignment(&environment_id, &app.id, &role_id, &scope)
                .await?;
            ctx.publish_in(
                integration,
                &target.spec.name,
                None,
                EventType::Normal,
                "Grant",
                "RoleGranted",
                format!(
                    "{}: granted {role} on environment {environment_id}",
                    target.spec.name
                ),
            )
            .await;
        }
    }
    let mut secret = session.application_secret(&environment_id, &app.id).await?;
    let mut requeue = None;
    if let Some(rotation) = &app_spec.secret_rotation {
        let outcome = rotate(
            integration,
            ctx,
            api,
            session,
            &environment_id,
            &app.id,
            rotation,
            status,
            index,
            &secret,
        )
        .await?;
        requeue = Some(outcome.requeue);
        if let Some(rotated) = outcome.rotated {
            secret = rotated;
        }
    }
    Ok(Credential {
        client_id: Some(app.id),
        secret: secret.secret,
        requeue,
        source: None,
        previous: secret.previous.and_then(|p| p.secret),
    })
}

/// How long PingOne must keep accepting the previous secret after a rotation at the least: AIC
/// caches ESV secrets for up to `expiryDurationSeconds` (600 s by default) after a new version,
/// and the new version still has to be verified with `testConnection` (after a restart, for a
/// secret created usable in placeholders).
pub const MIN_ROTATION_OVERLAP: Duration = Duration::from_secs(600 + 20 * 60);

/// The overlap a rotation grants the previous secret: the spec's, raised to the minimum above
/// and capped at the 30 days PingOne allows.
pub fn rotation_overlap(spec_overlap: Duration) -> Duration {
    spec_overlap
        .max(MIN_ROTATION_OVERLAP)
        .min(Duration::from_secs(30 * 24 * 3600))
}

/// What a pass of the rotation state machine decided.
struct RotationOutcome {
    /// The secret after a rotation made in this pass.
    rotated: Option<pingone::ApplicationSecret>,
    /// When to look again.
    requeue: Duration,
}

/// Operator-managed rotation of a managed worker's secret: record → rotate in PingOne with the
/// previous secret kept valid → (the caller pushes the new ESV version; a restart loads it;
/// `testConnection` verifies it and disables the superseded versions) → drop the previous
/// secret in PingOne. Each step is recorded in the status before it is taken, so a restarted
/// operator resumes instead of rotating twice. A rotation starts only while the connection is
/// verified, so a broken setup is never made worse by one.
#[allow(clippy::too_many_arguments)]
async fn rotate(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    session: &impl PingOneApi,
    environment_id: &str,
    app_id: &str,
    spec: &SecretRotation,
    status: &mut PingOneIntegrationStatus,
    index: usize,
    current: &pingone::ApplicationSecret,
) -> Result<RotationOutcome, ReconcileError> {
    let now = jiff::Timestamp::now();
    let invalid = |field: &str, e: crate::crd::common::InvalidDuration| {
        ReconcileError::invalid(
            "InvalidDuration",
            format!("spec.workerApplication.secretRotation.{field}: {e}"),
        )
    };
    let interval = parse_duration(&spec.interval)
        .map_err(|e| invalid("interval", e))?
        .max(Duration::from_secs(1));
    let overlap = parse_duration(&spec.overlap).map_err(|e| invalid("overlap", e))?;
    let env_name = status.environments[index].name.clone();
    let soon = ctx.config.wait;
    let mut state = status.environments[index]
        .secret_rotation
        .clone()
        .unwrap_or_default();
    let mut outcome = RotationOutcome {
        rotated: None,
        requeue: interval,
    };
    let rotate_now = match state.phase {
        None => {
            let Some(last) = state.last_rotation_time.clone() else {
                // The secret in use counts as fresh from the moment the operator first sees it.
                state.last_rotation_time = Some(Time(now));
                status.environments[index].secret_rotation = Some(state);
                return Ok(outcome);
            };
            let due = elapsed(&last.0, &now) >= interval;
            if !due {
                outcome.requeue = interval.saturating_sub(elapsed(&last.0, &now));
                return Ok(outcome);
            }
            if !status.environments[index].connection_verified {
                outcome.requeue = soon;
                return Ok(outcome);
            }
            let overlap = rotation_overlap(overlap);
            state.phase = Some(RotationPhase::Rotating);
            state.started_time = Some(Time(now));
            state.previous_expires_time = Some(Time(add(now, overlap)));
            status.environments[index].secret_rotation = Some(state.clone());
            checkpoint(api, integration, status, Checkpoint::RotationStarting).await?;
            true
        }
        // Recorded but perhaps not done: PingOne shows a previous secret once it rotated.
        Some(RotationPhase::Rotating) => current.previous.is_none(),
        Some(RotationPhase::Verifying) => false,
    };
    if state.phase == Some(RotationPhase::Rotating) {
        if rotate_now {
            outcome.rotated = Some(
                pingone_rotate(
                    integration,
                    ctx,
                    session,
                    environment_id,
                    app_id,
                    &env_name,
                    &state,
                )
                .await?,
            );
        }
        state.phase = Some(RotationPhase::Verifying);
        outcome.requeue = soon;
    } else if state.phase == Some(RotationPhase::Verifying) {
        // `connectionVerified` was cleared when the new version was pushed and is set again
        // only by a successful `testConnection` while it was active; the superseded ESV
        // versions were disabled right then. If the new secret failed and the previous one was
        // pushed again, what passed is the previous one: it must not be deleted.
        let env = &status.environments[index];
        let new_secret_passed = env.verified_hash.as_deref()
            == Some(values_digest(environment_id, Some(app_id), &current.secret).as_str());
        if env.connection_verified && new_secret_passed {
            session
                .delete_previous_secret(environment_id, app_id)
                .await?;
            state.phase = None;
            state.last_rotation_time = state.started_time.take().or(Some(Time(now)));
            state.previous_expires_time = None;
            state.rotations += 1;
            ctx.publish_in(
                integration,
                &env_name,
                None,
                EventType::Normal,
                "Rotate",
                "PreviousSecretDeleted",
                format!(
                    "{env_name}: the new worker secret is verified in AIC; deleted the previous one in PingOne"
                ),
            )
            .await;
        } else {
            outcome.requeue = soon;
        }
    }
    status.environments[index].secret_rotation = Some(state);
    Ok(outcome)
}

async fn pingone_rotate(
    integration: &PingOneIntegration,
    ctx: &Context,
    session: &impl PingOneApi,
    environment_id: &str,
    app_id: &str,
    env_name: &str,
    state: &SecretRotationStatus,
) -> Result<pingone::ApplicationSecret, ReconcileError> {
    let expires = state
        .previous_expires_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(|| add(jiff::Timestamp::now(), MIN_ROTATION_OVERLAP));
    let secret = session
        .rotate_application_secret(environment_id, app_id, Some(expires))
        .await?;
    ctx.publish_in(
        integration,
        env_name,
        None,
        EventType::Normal,
        "Rotate",
        "SecretRotated",
        format!(
            "{env_name}: rotated the worker secret in PingOne; the previous one stays valid until {expires}"
        ),
    )
    .await;
    Ok(secret)
}

fn elapsed(since: &jiff::Timestamp, now: &jiff::Timestamp) -> Duration {
    Duration::try_from(now.duration_since(*since)).unwrap_or(Duration::ZERO)
}

fn add(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(at)
}

/// Creates the worker application and records its id in the status at once.
#[allow(clippy::too_many_arguments)]
async fn create_application(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    session: &impl PingOneApi,
    environment_id: &str,
    desired: &pingone::WorkerApplication,
    status: &mut PingOneIntegrationStatus,
    index: usize,
) -> Result<pingone::Application, ReconcileError> {
    let app = session
        .create_worker_application(environment_id, desired)
        .await?;
    let env = &mut status.environments[index];
    env.worker_app_id = Some(app.id.clone());
    env.worker_app_created = Some(true);
    env.connection_verified = false;
    let env_name = env.name.clone();
    checkpoint(api, integration, status, Checkpoint::ApplicationCreated).await?;
    ctx.publish_in(
        integration,
        &env_name,
        None,
        EventType::Normal,
        "Create",
        "WorkerApplicationCreated",
        format!(
            "{env_name}: created worker application {:?} ({})",
            desired.name, app.id
        ),
    )
    .await;
    Ok(app)
}

/// The ESV secret that carries the credential.
pub(super) fn secret_esv(integration: &PingOneIntegration) -> &str {
    match integration.spec.credential_type {
        CredentialType::WorkerApplication => &integration.spec.esv.client_secret,
        CredentialType::ProductConnection => &integration.spec.esv.connection_jwt,
    }
}

/// Checks a new credential: a value refused once (by PingOne, or by AIC after a push) is
/// refused again without asking while the observation is fresh; one from a Secret is checked
/// with PingOne ([`credential_check::check`]).
async fn check_before_push(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    credential: &Credential,
    hash: &str,
    environment: &str,
) -> Result<(), ReconcileError> {
    let key = memo_key(integration, environment);
    if let Some(message) = ctx.memos.rejected.fresh(&key, hash, ctx.observation_age()) {
        return Err(ReconcileError::invalid(credential_check::REJECTED, message));
    }
    let Some(source) = &credential.source else {
        return Ok(());
    };
    let candidate = match &credential.client_id {
        Some(client_id) => Candidate::ClientSecret {
            client_id,
            secret: &credential.secret,
        },
        None => Candidate::Connection(&credential.secret),
    };
    let checked = credential_check::check(
        &ctx.clients,
        tenant,
        environment,
        source,
        candidate,
        jiff::Timestamp::now(),
    )
    .await;
    if let Err(err @ ReconcileError::Invalid { .. }) = &checked {
        ctx.memos
            .rejected
            .record(&key, hash.to_owned(), err.to_string());
    }
    checked
}

/// Writes the ESVs that differ; returns whether they are all loaded by the running services.
async fn sync_esvs(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    tenant: &TenantEnvironment,
    credential: &Credential,
    env: &mut EnvironmentStatus,
) -> Result<bool, ReconcileError> {
    let names = &integration.spec.esv;
    let environment_id = tenant.spec.ping_one.environment_id.as_str();
    let hash = values_digest(
        environment_id,
        credential.client_id.as_deref(),
        &credential.secret,
    );
    // A new value must not be one refused already (by PingOne, or by AIC's testConnection
    // after a push), and one from a Secret must be one PingOne accepts before any ESV changes:
    // the client id and its secret, or the connection JWT, go to AIC together or not at all.
    if env.values_hash.as_deref() != Some(hash.as_str()) {
        check_before_push(integration, ctx, tenant, credential, &hash, &env.name).await?;
    }
    let mut variables = vec![(names.environment_id.as_str(), environment_id)];
    if let Some(client_id) = &credential.client_id {
        variables.push((names.client_id.as_str(), client_id.as_str()));
    }
    // Reads come from the tenant's ESV snapshot: one list of variables and one of secrets per
    // tenant and resync, shared with the other integrations and the restart check.
    let view = aic.snapshot_view(ctx.observation_age());
    view.prefetch().await?;
    let mut loaded = true;
    for (id, value) in variables {
        let outcome = esv::upsert_variable(&view, id, value, ESV_DESCRIPTION, "string").await?;
        match &outcome {
            VariableOutcome::Unchanged(variable) => loaded &= variable.loaded,
            VariableOutcome::Created(_) | VariableOutcome::Updated(_) => {
                loaded = false;
                env.connection_verified = false;
                ctx.publish_in(
                    integration,
                    &env.name,
                    None,
                    EventType::Normal,
                    "WriteESV",
                    "VariableWritten",
                    format!("{}: wrote ESV {id}", env.name),
                )
                .await;
            }
        }
    }
    let secret_id = secret_esv(integration);
    let existing = view.get_secret(secret_id).await?;
    let unchanged = existing.as_ref().is_some_and(|secret| {
        env.values_hash.as_deref() == Some(hash.as_str())
            && env.secret_version.as_deref() == Some(secret.active_version.as_str())
    });
    if unchanged {
        loaded &= existing.as_ref().is_some_and(|s| !s.is_pending());
    } else {
        // AM reads this secret through the secret-label mapping alone, which needs no restart;
        // created not usable in placeholders, its new versions leave nothing pending (AIC
        // "Use ESVs for signing and encryption keys"). The flag is fixed at creation: a secret
        // created usable in placeholders keeps it, and each new version waits for a restart.
        let push = esv::push_secret(
            &view,
            secret_id,
            &credential.secret,
            ESV_DESCRIPTION,
            MAPPED_SECRET_IN_PLACEHOLDERS,
        )
        .await?;
        if push.new_version {
            // A secret read only through the mapping is in use at once; one usable in
            // placeholders waits for a restart.
            let in_placeholders = existing
                .as_ref()
                .map_or(MAPPED_SECRET_IN_PLACEHOLDERS, |s| s.use_in_placeholders);
            if in_placeholders {
                loaded = false;
            }
            env.connection_verified = false;
            ctx.publish_in(
                integration,
                &env.name,
                Some(format!("{secret_id}@{}", push.version)),
                EventType::Normal,
                "WriteESV",
                "SecretVersionPushed",
                format!(
                    "{}: pushed version {} of ESV secret {secret_id}",
                    env.name, push.version
                ),
            )
            .await;
        } else {
            loaded &= view
                .get_secret(secret_id)
                .await?
                .is_some_and(|s| !s.is_pending());
        }
        env.secret_version = Some(push.version);
        env.values_hash = Some(hash);
    }
    Ok(loaded)
}

/// The worker service configuration as the development environment of the group holds it
/// (an environment's own when it is mutable).
async fn desired_worker(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    targets: &[Target<'_>],
    aic: &AicClient,
) -> Result<Worker, ReconcileError> {
    let source = if tenant.spec.tier.is_mutable() {
        tenant.clone()
    } else {
        group_root(ctx, tenant, targets)
    };
    let endpoints = Clients::pingone_endpoints(&source)?;
    let names = &integration.spec.esv;
    let label = &integration.spec.service.secret_label_identifier;
    let mut worker = Worker {
        id: String::new(),
        rev: None,
        client_id: esv::placeholder(&names.client_id),
        client_secret_purpose: label.clone(),
        environment_id: esv::placeholder(&names.environment_id),
        api_url: endpoints.api.as_str().trim_end_matches('/').to_owned(),
        auth_url: endpoints.auth.as_str().trim_end_matches('/').to_owned(),
        use_credential: false,
        other: BTreeMap::new(),
    };
    if integration.spec.credential_type == CredentialType::ProductConnection {
        worker.use_credential = true;
        worker.client_id = String::new();
        let key = format!("{}#{}", tenant.spec.tenant_url, tenant.spec.realm);
        let field = match ctx.credential_field(&key) {
            Some(field) => field,
            None => {
                let schema = aic.worker_schema().await?;
                let field = am::credential_field(&schema).ok_or_else(|| {
                    ReconcileError::invalid("CredentialFieldUnknown", "the worker service schema names no credential label field; this AIC release may not support product connections")
                })?;
                ctx.remember_credential_field(&key, &field);
                field
            }
        };
        worker
            .other
            .insert(field, serde_json::Value::String(label.clone()));
    }
    Ok(worker)
}

/// The development environment at the bottom of `tenant`'s promotion group.
fn group_root(
    ctx: &Context,
    tenant: &TenantEnvironment,
    targets: &[Target<'_>],
) -> TenantEnvironment {
    let mut current = tenant.clone();
    for _ in 0..8 {
        let Some(lower) = &current.spec.promotes_from else {
            break;
        };
        let found = targets
            .iter()
            .map(|t| t.tenant.clone())
            .chain(ctx.tenants.state())
            .find(|t| &t.name_any() == lower && t.namespace() == tenant.namespace());
        match found {
            Some(next) => current = (*next).clone(),
            None => break,
        }
    }
    current
}

/// Writes the worker service, the configuration and the secret mapping where they differ.
async fn configure_service(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    desired: &Worker,
    env: &mut EnvironmentStatus,
) -> Result<(), ReconcileError> {
    let service = &integration.spec.service;
    let current = aic.get_worker(&service.name).await?;
    // A worker configuration lives inside the service, so finding it proves the service
    // exists: the service is read only when the worker is missing (one read less per resync).
    if current.is_none() && am::ensure_worker_service(aic).await? {
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "WorkerServiceCreated",
            format!("{}: created the PingOne Worker Service", env.name),
        )
        .await;
    }
    let unchanged = current.as_ref().is_some_and(|c| c.satisfies(desired));
    if !unchanged {
        aic.put_worker(&service.name, desired).await?;
        env.connection_verified = false;
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "WorkerConfigured",
            format!(
                "{}: wrote worker configuration {:?} with ESV placeholders",
                env.name, service.name
            ),
        )
        .await;
    }
    env.service_configured = true;
    let label = match integration.spec.credential_type {
        CredentialType::WorkerApplication => {
            am::client_secret_label(&service.secret_label_identifier)
        }
        CredentialType::ProductConnection => am::credential_label(&service.secret_label_identifier),
    };
    if am::upsert_mapping(aic, &label, secret_esv(integration)).await? {
        env.connection_verified = false;
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "LabelMapped",
            format!(
                "{}: mapped {label} to ESV {}",
                env.name,
                secret_esv(integration)
            ),
        )
        .await;
    }
    env.label_mapped = true;
    Ok(())
}

/// What an upper environment waits for; creates the Promotion under the `Automatic` policy.
async fn promotion_note(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    targets: &[Target<'_>],
    status: &PingOneIntegrationStatus,
) -> Result<String, ReconcileError> {
    let name = tenant.name_any();
    let Some(lower) = tenant.spec.promotes_from.clone() else {
        return Ok(format!("{name}: not promoted"));
    };
    let lower_done = status
        .environments
        .iter()
        .find(|e| e.name == lower)
        .is_some_and(|e| e.connection_verified && e.service_configured);
    if !targets.iter().any(|t| t.spec.name == lower) {
        return Ok(format!(
            "{name}: the integration does not include {lower}, which it is promoted from"
        ));
    }
    if !lower_done {
        return Ok(format!(
            "{name}: waits until {lower} is configured and verified, then for a promotion from it"
        ));
    }
    let namespace = integration.namespace();
    let ours: Vec<Arc<Promotion>> = ctx
        .promotions
        .state()
        .into_iter()
        .filter(|p| p.namespace() == namespace && p.spec.to == name && p.spec.from == lower)
        .collect();
    if let Some(running) = ours
        .iter()
        .find(|p| !p.status.as_ref().is_some_and(|s| s.phase.is_final()))
    {
        return Ok(format!(
            "{name}: Promotion {} is in progress",
            running.name_any()
        ));
    }
    match integration.spec.promotion.policy {
        ApprovalPolicy::Manual => Ok(format!(
            "{name}: AwaitingPromotion — apply a Promotion with from: {lower} and to: {name}"
        )),
        ApprovalPolicy::Automatic => {
            let mine: Vec<&Arc<Promotion>> = ours
                .iter()
                .filter(|p| p.labels().get(INTEGRATION_LABEL) == Some(&integration.name_any()))
                .collect();
            if let Some(failed) = mine.iter().find(|p| {
                p.status
                    .as_ref()
                    .is_some_and(|s| s.phase == PromotionPhase::Failed)
            }) {
                return Ok(format!(
                    "{name}: Promotion {} failed; delete it to try again",
                    failed.name_any()
                ));
            }
            let promotion_name = format!("{}-to-{name}-{}", integration.name_any(), mine.len() + 1);
            create_promotion(integration, ctx, &promotion_name, &lower, &name).await?;
            Ok(format!("{name}: created Promotion {promotion_name}"))
        }
    }
}

async fn create_promotion(
    integration: &PingOneIntegration,
    ctx: &Context,
    name: &str,
    from: &str,
    to: &str,
) -> Result<(), ReconcileError> {
    let namespace = namespace_of(integration);
    let mut promotion = Promotion::new(
        name,
        PromotionSpec {
            from: from.to_owned(),
            to: to.to_owned(),
            dry_run_only: false,
            description: Some(format!(
                "PingOne Worker Service ({})",
                integration.name_any()
            )),
        },
    );
    promotion.metadata.namespace = Some(namespace.clone());
    promotion.metadata.labels =
        Some([(INTEGRATION_LABEL.to_owned(), integration.name_any())].into());
    promotion.metadata.owner_references = Some(vec![OwnerReference {
        api_version: PingOneIntegration::api_version(&()).into_owned(),
        kind: PingOneIntegration::kind(&()).into_owned(),
        name: integration.name_any(),
        uid: integration.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.create(&PostParams::default(), &promotion).await {
        Ok(_) => {
            ctx.publish(
                integration,
                EventType::Normal,
                "Promote",
                "PromotionCreated",
                format!("created Promotion {name} from {from} to {to}"),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

fn set(
    status: &mut PingOneIntegrationStatus,
    generation: Option<i64>,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: &Time,
) -> bool {
    set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_,
            status: value,
            reason,
            message,
        },
        generation,
        now,
    )
}

/// A condition type, the per-environment fact it reflects, and its reasons when true / false.
type ConditionCheck = (&'static str, fn(&Facts) -> bool, &'static str, &'static str);

fn set_conditions(
    status: &mut PingOneIntegrationStatus,
    generation: Option<i64>,
    facts: &BTreeMap<String, Facts>,
    now: &Time,
) {
    let failing = |pick: fn(&Facts) -> bool| -> Vec<&str> {
        facts
            .iter()
            .filter(|(_, f)| !pick(f))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let notes: Vec<&str> = facts.values().filter_map(|f| f.note.as_deref()).collect();
    let detail = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    let mut all = true;
    let checks: [ConditionCheck; 5] = [
        (
            PINGONE_CLIENT_READY,
            |f| f.client_ready,
            "ClientReady",
            "CredentialsUnavailable",
        ),
        (ESVS_SYNCED, |f| f.esvs_synced, "Synced", "Pending"),
        (
            SERVICE_CONFIGURED,
            |f| f.service_configured,
            "Configured",
            "NotConfigured",
        ),
        (
            CONNECTION_VERIFIED,
            |f| f.verified,
            "Verified",
            "NotVerified",
        ),
        (
            PROMOTED,
            |f| f.promoted != Some(false),
            "Promoted",
            "AwaitingPromotion",
        ),
    ];
    let mut first_failure = None;
    for (type_, pick, ok_reason, bad_reason) in checks {
        let bad = failing(pick);
        if bad.is_empty() {
            set(
                status,
                generation,
                type_,
                ConditionStatus::True,
                ok_reason,
                "every environment",
                now,
            );
        } else {
            all = false;
            first_failure.get_or_insert(bad_reason);
            let message = format!("not yet in {}{detail}", bad.join(", "));
            set(
                status,
                generation,
                type_,
                ConditionStatus::False,
                bad_reason,
                &message,
                now,
            );
        }
    }
    // A refused credential leaves the tenant working with an earlier one, which is not what
    // the spec asks for.
    all &= !facts.values().any(|f| f.rejected);
    // A conflict is what a person must resolve, so it is what Ready reports first.
    if facts.values().any(|f| f.conflict) {
        first_failure = Some("Conflict");
    } else if facts.values().any(|f| f.rejected) {
        first_failure = Some(credential_check::REJECTED);
    }
    if all {
        set(
            status,
            generation,
            condition::READY,
            ConditionStatus::True,
            "Ready",
            "the PingOne Worker Service works in every environment",
            now,
        );
    } else {
        let message = format!("in progress{detail}");
        set(
            status,
            generation,
            condition::READY,
            ConditionStatus::False,
            first_failure.unwrap_or("Progressing"),
            &message,
            now,
        );
    }
}

/// With `deletionPolicy: Delete`, removes what the operator created; `Retain` keeps it all.
async fn cleanup(
    integration: &PingOneIntegration,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    ctx.memos.forget(&memo_prefix(integration));
    if integration.spec.deletion_policy == DeletionPolicy::Retain || is_paused(integration) {
        return Ok(Action::await_change());
    }
    let status = integration.status.clone().unwrap_or_default();
    let namespace = integration.namespace();
    for spec in &integration.spec.environments {
        let Some(tenant) = ctx
            .tenants
            .state()
            .into_iter()
            .find(|t| t.namespace() == namespace && t.name_any() == spec.name)
        else {
            continue;
        };
        let aic = ctx.clients.aic(&ctx.client, &tenant, &[]).await?;
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
        for id in claimed_names(integration)
            .iter()
            .filter(|n| n.starts_with("esv-"))
        {
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
            && let Some(session) = ctx.clients.pingone_admin(&ctx.client, &tenant).await?
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
