//! TenantEnvironment reconciler: checks the AIC service account and the PingOne admin
//! credentials, validates the place of the environment in its promotion group, and owns the
//! environment's restarts.
//!
//! Restarts: what is pending is read from AIC itself (the source of truth, whoever wrote the
//! ESVs). The debounce runs from the last time the operator saw the pending count change, so a
//! batch of writes across integrations costs one restart. `Manual` policy waits for a new value
//! of the `pingone-aic.io/approve-restart` annotation. While AIC restarts, its status endpoint
//! answers intermittent 500s; those are polled through, not reported as failures.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::clients::namespace_of;
use super::frame::{self, Reconciled};
use super::{Context, ReconcileError, is_paused, patch_status};
use crate::aic::{RestartApi, RestartStatus};
use crate::crd::TenantEnvironment;
use crate::crd::common::{ApprovalPolicy, condition, parse_duration};
use crate::crd::tenant_environment::{
    RestartState, RestartStatus as RestartRecord, TenantEnvironmentStatus,
};
use crate::pingone::PingOneApi;
use crate::status::{ConditionStatus, DesiredCondition, set_condition};

/// Annotation whose every new value approves one restart under the `Manual` policy.
pub const APPROVE_RESTART_ANNOTATION: &str = "pingone-aic.io/approve-restart";

/// Condition: the AIC service account can sign in.
pub const AIC_AUTHENTICATED: &str = "AICAuthenticated";
/// Condition: the PingOne admin worker can sign in.
pub const PINGONE_AUTHENTICATED: &str = "PingOneAuthenticated";
/// Condition: ESV changes wait for a restart.
pub const RESTART_PENDING: &str = "RestartPending";

/// The Secrets a TenantEnvironment reads.
pub fn referenced_secrets(tenant: &TenantEnvironment) -> Vec<String> {
    let mut names = vec![
        tenant
            .spec
            .service_account
            .private_key_secret_ref
            .name
            .clone(),
    ];
    if let Some(admin) = &tenant.spec.ping_one.admin_credentials_secret_ref {
        names.push(admin.name.clone());
    }
    names
}

/// Reconciles one TenantEnvironment.
pub async fn reconcile(
    tenant: Arc<TenantEnvironment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    frame::reconcile(
        tenant,
        ctx,
        move |tenant| async move { apply(&tenant, ctx).await },
        // Never called: without a finalizer, a deletion needs no work.
        |_| async { Ok(Action::await_change()) },
    )
    .await
}

impl Reconciled for TenantEnvironment {
    const CONTROLLER: &'static str = "TenantEnvironment";
    // Nothing remote belongs to a TenantEnvironment itself.
    const FINALIZER: Option<&'static str> = None;
}

async fn apply(tenant: &TenantEnvironment, ctx: &Context) -> Result<Action, ReconcileError> {
    let api: Api<TenantEnvironment> = Api::namespaced(ctx.client.clone(), &namespace_of(tenant));
    let generation = tenant.meta().generation;
    let now = Time(jiff::Timestamp::now());
    let mut status = tenant.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let mut next = ctx.config.resync;

    let placement = check_placement(tenant, ctx);
    let aic_ok = check_aic(tenant, ctx, &mut status, &now, &mut next).await?;
    let pingone_ok = check_pingone(tenant, ctx, &mut status, &now).await?;

    let (ready, reason, message) = match (&placement, aic_ok, pingone_ok) {
        (Err(err), _, _) => (ConditionStatus::False, err.reason(), err.to_string()),
        (Ok(()), false, _) => (
            ConditionStatus::False,
            "AICAuthenticationFailed",
            "the AIC service account cannot sign in; see the AICAuthenticated condition".to_owned(),
        ),
        (Ok(()), true, false) => (
            ConditionStatus::False,
            "PingOneAuthenticationFailed",
            "the PingOne admin worker cannot sign in; see the PingOneAuthenticated condition"
                .to_owned(),
        ),
        (Ok(()), true, true) => (
            ConditionStatus::True,
            "Ready",
            "the tenant environment is reachable with its credentials".to_owned(),
        ),
    };
    let ready_changed = set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_: condition::READY,
            status: ready,
            reason,
            message: &message,
        },
        generation,
        &now,
    );
    if let (Err(err), true) = (&placement, ready_changed) {
        ctx.publish(
            tenant,
            EventType::Warning,
            "Validate",
            err.reason(),
            err.to_string(),
        )
        .await;
    }
    patch_status(&api, &tenant.name_any(), tenant.status.as_ref(), &status).await?;
    Ok(Action::requeue(next))
}

/// The environment's place in its promotion group: `promotesFrom` names an existing
/// TenantEnvironment of a lower tier.
fn check_placement(tenant: &TenantEnvironment, ctx: &Context) -> Result<(), ReconcileError> {
    let Some(lower_name) = &tenant.spec.promotes_from else {
        return Ok(());
    };
    let namespace = tenant.namespace();
    let lower = ctx
        .tenants
        .state()
        .into_iter()
        .find(|t| t.namespace() == namespace && &t.name_any() == lower_name);
    let Some(lower) = lower else {
        return Err(ReconcileError::invalid(
            "PromotesFromNotFound",
            format!(
                "promotesFrom names TenantEnvironment {lower_name:?}, which does not exist in this namespace"
            ),
        ));
    };
    let (Some(lower_rank), Some(rank)) = (lower.spec.tier.rank(), tenant.spec.tier.rank()) else {
        return Err(ReconcileError::invalid(
            "InvalidPromotesFrom",
            format!("{lower_name:?} is a sandbox; a sandbox is in no promotion group"),
        ));
    };
    if lower_rank >= rank {
        return Err(ReconcileError::invalid(
            "InvalidPromotesFrom",
            format!(
                "promotesFrom {lower_name:?} is a {:?} environment, not lower than this {:?} one",
                lower.spec.tier, tenant.spec.tier
            ),
        ));
    }
    Ok(())
}

/// Signs in to AIC and drives the restart cycle; returns whether AIC authentication works.
async fn check_aic(
    tenant: &TenantEnvironment,
    ctx: &Context,
    status: &mut TenantEnvironmentStatus,
    now: &Time,
    next: &mut Duration,
) -> Result<bool, ReconcileError> {
    let generation = tenant.meta().generation;
    let aic = match ctx.clients.aic(&ctx.client, tenant, &[]).await {
        Ok(aic) => aic,
        Err(err) if !err.is_transient() => {
            record_failure(tenant, ctx, status, AIC_AUTHENTICATED, &err, now).await;
            return Ok(false);
        }
        Err(err) => return Err(err),
    };
    // The restart cycle may need no call at all (its reads come from snapshots), so the
    // credential is checked on its own; a cached token makes this free.
    if settle_aic(aic.sign_in().await, tenant, ctx, status, now)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let mut restart = status.restart.clone().unwrap_or_default();
    let mut restart_finished = false;
    if restart.state == RestartState::Restarting {
        match aic.restart_status().await {
            Ok(RestartStatus::Ready) => {
                // The restart loaded the pending ESVs: `loaded` flags read before it are stale.
                aic.record_restart();
                restart_finished = true;
                restart.state = RestartState::Idle;
                restart.restarting_since = None;
                restart.pending_since = None;
                restart.pending_esvs = 0;
                restart.last_change_seen = None;
                restart.last_restart_time = Some(now.clone());
                restart.restart_count += 1;
                ctx.publish(
                    tenant,
                    EventType::Normal,
                    "Restart",
                    "Restarted",
                    "AIC services restarted; pending ESV changes are loaded".to_owned(),
                )
                .await;
            }
            Ok(RestartStatus::Restarting) => *next = ctx.config.poll,
            // AIC answers 500s while it restarts: poll again, it is not a failure.
            Err(err) if err.is_transient() => *next = ctx.config.poll,
            Err(err) => {
                record_failure(
                    tenant,
                    ctx,
                    status,
                    AIC_AUTHENTICATED,
                    &ReconcileError::Aic(err),
                    now,
                )
                .await;
                return Ok(false);
            }
        }
    }
    // A restart that just finished loaded what was pending: the next reconcile looks again.
    if restart.state != RestartState::Restarting && !restart_finished {
        // Integrations read the tenant's ESV lists anyway; the pending count comes from them.
        let integrated = !super::integrations_including(
            &ctx.integrations,
            tenant.namespace(),
            &[tenant.name_any()],
        )
        .is_empty();
        let pending = aic.pending_within(ctx.observation_age(), integrated).await;
        let Some(count) = settle_aic(pending, tenant, ctx, status, now).await? else {
            return Ok(false);
        };
        let pending = i64::try_from(count.secrets + count.variables).unwrap_or(i64::MAX);
        plan_restart(tenant, ctx, &aic, &mut restart, pending, now, next).await?;
    }
    set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_: AIC_AUTHENTICATED,
            status: ConditionStatus::True,
            reason: "Authenticated",
            message: "the service account signs in",
        },
        generation,
        now,
    );
    let (pending_status, reason, message) = restart_condition(tenant, &restart);
    set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_: RESTART_PENDING,
            status: pending_status,
            reason,
            message: &message,
        },
        generation,
        now,
    );
    status.restart = Some(restart);
    Ok(true)
}

/// Sorts an AIC answer: a permanent error is recorded on the AICAuthenticated condition and
/// gives `None`; a transient one is returned, for a retry with backoff.
async fn settle_aic<T>(
    result: Result<T, crate::aic::AicError>,
    tenant: &TenantEnvironment,
    ctx: &Context,
    status: &mut TenantEnvironmentStatus,
    now: &Time,
) -> Result<Option<T>, ReconcileError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if !err.is_transient() => {
            let err = ReconcileError::Aic(err);
            record_failure(tenant, ctx, status, AIC_AUTHENTICATED, &err, now).await;
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Decides whether to restart now, given what AIC counts as pending.
async fn plan_restart(
    tenant: &TenantEnvironment,
    ctx: &Context,
    aic: &impl RestartApi,
    restart: &mut RestartRecord,
    pending: i64,
    now: &Time,
    next: &mut Duration,
) -> Result<(), ReconcileError> {
    if pending == 0 {
        restart.state = RestartState::Idle;
        restart.pending_since = None;
        restart.pending_esvs = 0;
        restart.last_change_seen = None;
        return Ok(());
    }
    if restart.state == RestartState::Idle {
        restart.state = RestartState::Pending;
        restart.pending_since = Some(now.clone());
    }
    if restart.pending_esvs != pending || restart.last_change_seen.is_none() {
        restart.pending_esvs = pending;
        restart.last_change_seen = Some(now.clone());
    }
    let debounce = parse_duration(&tenant.spec.restart.debounce).map_err(|e| {
        ReconcileError::invalid("InvalidDuration", format!("spec.restart.debounce: {e}"))
    })?;
    let since_change = restart
        .last_change_seen
        .as_ref()
        .map_or(Duration::ZERO, |seen| elapsed(seen, now));
    if since_change < debounce {
        *next = (*next).min(debounce - since_change + Duration::from_secs(1));
        return Ok(());
    }
    if is_paused(tenant) {
        return Ok(());
    }
    let approval = match tenant.spec.restart.policy {
        ApprovalPolicy::Automatic => None,
        ApprovalPolicy::Manual => {
            let annotation = tenant
                .annotations()
                .get(APPROVE_RESTART_ANNOTATION)
                .cloned();
            match annotation {
                Some(value) if restart.last_approval.as_ref() != Some(&value) => Some(value),
                _ => return Ok(()),
            }
        }
    };
    aic.restart().await?;
    ctx.metrics.restarts.inc();
    restart.state = RestartState::Restarting;
    restart.restarting_since = Some(now.clone());
    if approval.is_some() {
        restart.last_approval = approval;
    }
    *next = ctx.config.poll;
    ctx.publish(
        tenant,
        EventType::Normal,
        "Restart",
        "RestartRequested",
        format!("restarting AIC services to load {pending} pending ESV change(s)"),
    )
    .await;
    Ok(())
}

fn restart_condition(
    tenant: &TenantEnvironment,
    restart: &RestartRecord,
) -> (ConditionStatus, &'static str, String) {
    match restart.state {
        RestartState::Idle => (
            ConditionStatus::False,
            "NothingPending",
            "no ESV change waits for a restart".to_owned(),
        ),
        RestartState::Restarting => (
            ConditionStatus::True,
            "Restarting",
            "AIC services are restarting".to_owned(),
        ),
        RestartState::Pending if is_paused(tenant) => (
            ConditionStatus::True,
            "Paused",
            format!(
                "{} ESV change(s) wait; the resource is paused",
                restart.pending_esvs
            ),
        ),
        RestartState::Pending => match tenant.spec.restart.policy {
            ApprovalPolicy::Manual => (
                ConditionStatus::True,
                "AwaitingApproval",
                format!(
                    "{} ESV change(s) wait for a restart; approve it by setting the annotation {APPROVE_RESTART_ANNOTATION} to a new value",
                    restart.pending_esvs
                ),
            ),
            ApprovalPolicy::Automatic => (
                ConditionStatus::True,
                "Debouncing",
                format!(
                    "{} ESV change(s) wait; restarting {} after the last change",
                    restart.pending_esvs, tenant.spec.restart.debounce
                ),
            ),
        },
    }
}

/// Checks the PingOne admin worker; `true` when it signs in or is not configured.
async fn check_pingone(
    tenant: &TenantEnvironment,
    ctx: &Context,
    status: &mut TenantEnvironmentStatus,
    now: &Time,
) -> Result<bool, ReconcileError> {
    let session = match ctx.clients.pingone_admin(&ctx.client, tenant).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            status
                .conditions
                .retain(|c| c.type_ != PINGONE_AUTHENTICATED);
            return Ok(true);
        }
        Err(err) if !err.is_transient() => {
            record_failure(tenant, ctx, status, PINGONE_AUTHENTICATED, &err, now).await;
            return Ok(false);
        }
        Err(err) => return Err(err),
    };
    match session.verify_credentials().await {
        Ok(()) => {
            set_condition(
                &mut status.conditions,
                DesiredCondition {
                    type_: PINGONE_AUTHENTICATED,
                    status: ConditionStatus::True,
                    reason: "Authenticated",
                    message: "the admin worker signs in",
                },
                tenant.meta().generation,
                now,
            );
            Ok(true)
        }
        Err(err) if !err.is_transient() => {
            record_failure(
                tenant,
                ctx,
                status,
                PINGONE_AUTHENTICATED,
                &ReconcileError::PingOne(err),
                now,
            )
            .await;
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

/// Sets a failed condition and, when it is news, publishes a warning event.
async fn record_failure(
    tenant: &TenantEnvironment,
    ctx: &Context,
    status: &mut TenantEnvironmentStatus,
    type_: &str,
    error: &ReconcileError,
    now: &Time,
) {
    let message = error.to_string();
    let changed = set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_,
            status: ConditionStatus::False,
            reason: error.reason(),
            message: &message,
        },
        tenant.meta().generation,
        now,
    );
    if changed {
        ctx.publish(
            tenant,
            EventType::Warning,
            "Authenticate",
            error.reason(),
            message,
        )
        .await;
    }
}

fn elapsed(since: &Time, now: &Time) -> Duration {
    Duration::try_from(now.0.duration_since(since.0)).unwrap_or(Duration::ZERO)
}
