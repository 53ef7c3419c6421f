//! TenantEnvironment reconciler: checks the AIC service account and the PingOne admin
//! credentials, validates the place of the environment in its promotion group, and owns the
//! environment's restarts.
//!
//! Restarts: what is pending is read from AIC itself (the source of truth, whoever wrote the
//! ESVs). The debounce runs from the last time the operator saw the pending count change, so a
//! batch of writes across integrations costs one restart. `Manual` policy waits for a new value
//! of the `pingone-aic.io/approve-restart` annotation. While AIC restarts, its status endpoint
//! answers intermittent 500s; those are polled through, not reported as failures.
//!
//! `managementPolicy: Observe`: the same checks and reads, and the restart a full pass would
//! make (now, or once the debounce has run) is reported in `status.plan` instead of made.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::admission::Spends;
use super::clients::namespace_of;
use super::frame::{self, Reconciled};
use super::plan::{self, Plan};
use super::{Context, ReconcileError, is_paused, lookup, patch_status};
use crate::aic::{RestartApi, RestartStatus};
use crate::crd::TenantEnvironment;
use crate::crd::common::{ApprovalPolicy, ManagementPolicy, condition, parse_duration};
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

    fn spends(&self, _: &Context) -> BTreeSet<Spends> {
        let mut spends = BTreeSet::new();
        // Its PingOne call, the admin worker's sign-in, is one token per licence and process:
        // holding a licence's place through the restarts it drives would keep the
        // integrations, which spend the licence, waiting.
        Spends::of_environment(self, false, &mut spends);
        spends
    }
}

async fn apply(tenant: &TenantEnvironment, ctx: &Context) -> Result<Action, ReconcileError> {
    let api: Api<TenantEnvironment> = Api::namespaced(ctx.client.clone(), &namespace_of(tenant));
    let generation = tenant.meta().generation;
    let now = Time(jiff::Timestamp::now());
    let mut status = tenant.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let mut next = ctx.config.resync;
    let mut plan = Plan::new(tenant.spec.management_policy);

    let placement = check_placement(tenant, ctx);
    let aic_ok = check_aic(tenant, ctx, &mut status, &now, &mut next, &mut plan).await?;
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
        (Ok(()), true, true) if plan.observing() => plan::observed_readiness(plan.steps().len()),
        (Ok(()), true, true) => (
            ConditionStatus::True,
            "Ready",
            "the tenant environment is reachable with its credentials".to_owned(),
        ),
    };
    status.plan_steps = plan
        .observing()
        .then(|| i64::try_from(plan.steps().len()).unwrap_or(i64::MAX));
    status.plan = plan.into_steps();
    if tenant.spec.management_policy == ManagementPolicy::Full {
        status.plan.clear();
    }
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
    let restarting_since = status
        .restart
        .as_ref()
        .filter(|restart| restart.state == RestartState::Restarting)
        .and_then(|restart| restart.restarting_since.as_ref());
    ctx.metrics.record_restart_state(
        &namespace_of(tenant),
        &tenant.name_any(),
        restarting_since.map(|since| &since.0),
    );
    Ok(Action::requeue(next))
}

/// The environment's place in its promotion group: `promotesFrom` names an existing
/// TenantEnvironment of a lower tier.
fn check_placement(tenant: &TenantEnvironment, ctx: &Context) -> Result<(), ReconcileError> {
    let Some(lower_name) = &tenant.spec.promotes_from else {
        return Ok(());
    };
    let lower = lookup::named(&ctx.tenants, tenant.meta().namespace.as_deref(), lower_name);
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
    plan: &mut Plan,
) -> Result<bool, ReconcileError> {
    let generation = tenant.meta().generation;
    let aic = match ctx.clients.aic(&ctx.secrets, tenant, &[]).await {
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
    let poll_key = restart_poll_key(tenant);
    let polled = if restart.state == RestartState::Restarting {
        ctx.polls
            .poll(&poll_key, ctx.config.poll, std::time::Instant::now())
    } else {
        Ok(())
    };
    if let Err(wait) = polled {
        // Woken before the poll interval is up (its own status patch, an integration's
        // change): the restart is asked about when the interval is.
        *next = (*next).min(wait);
    } else if restart.state == RestartState::Restarting {
        match aic.restart_status().await {
            Ok(RestartStatus::Ready) => {
                // The restart loaded the pending ESVs: `loaded` flags read before it are stale.
                aic.record_restart();
                ctx.polls.done(&poll_key);
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
        plan_restart(tenant, ctx, &aic, &mut restart, pending, now, next, plan).await?;
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

/// What to do about a restart, given the restart record, the spec and what AIC counts as
/// pending.
#[derive(Debug, PartialEq)]
enum RestartDecision {
    /// Nothing waits, or what waits is not due: debouncing, paused, or not approved yet.
    Wait {
        /// Look again this soon (the end of the debounce), or at the usual pace when `None`.
        recheck_in: Option<Duration>,
    },
    /// Restart now, consuming this approval (`Manual` policy) if there is one.
    Restart { approval: Option<String> },
}

/// Decides about the restart and keeps the record's bookkeeping (when the batch was first
/// seen, when it last changed). No I/O: what it decides follows from its arguments alone.
fn decide_restart(
    tenant: &TenantEnvironment,
    restart: &mut RestartRecord,
    pending: i64,
    now: &Time,
) -> Result<RestartDecision, ReconcileError> {
    let wait = RestartDecision::Wait { recheck_in: None };
    if pending == 0 {
        restart.state = RestartState::Idle;
        restart.pending_since = None;
        restart.pending_esvs = 0;
        restart.last_change_seen = None;
        return Ok(wait);
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
        return Ok(RestartDecision::Wait {
            recheck_in: Some(debounce - since_change + Duration::from_secs(1)),
        });
    }
    if is_paused(tenant) {
        return Ok(wait);
    }
    match tenant.spec.restart.policy {
        ApprovalPolicy::Automatic => Ok(RestartDecision::Restart { approval: None }),
        ApprovalPolicy::Manual => match tenant.annotations().get(APPROVE_RESTART_ANNOTATION) {
            Some(value) if restart.last_approval.as_ref() != Some(value) => {
                Ok(RestartDecision::Restart {
                    approval: Some(value.clone()),
                })
            }
            _ => Ok(wait),
        },
    }
}

/// The key of a tenant's restart polls: its uid, so a re-created tenant starts afresh.
fn restart_poll_key(tenant: &TenantEnvironment) -> String {
    format!(
        "restart/{}",
        tenant.meta().uid.as_deref().unwrap_or_default()
    )
}

/// Decides about the restart, then carries it out (through `plan`). An Observe pass plans a
/// restart that only waits for the debounce: a full pass makes it once the debounce has run.
#[allow(clippy::too_many_arguments)]
async fn plan_restart(
    tenant: &TenantEnvironment,
    ctx: &Context,
    aic: &impl RestartApi,
    restart: &mut RestartRecord,
    pending: i64,
    now: &Time,
    next: &mut Duration,
    plan: &mut Plan,
) -> Result<(), ReconcileError> {
    let name = tenant.name_any();
    let step = plan::Step::RestartTenant {
        tenant: &name,
        pending,
    };
    let approval = match decide_restart(tenant, restart, pending, now)? {
        RestartDecision::Wait { recheck_in } => {
            if let Some(recheck_in) = recheck_in {
                *next = (*next).min(recheck_in);
                if plan.observing() {
                    plan.act(step);
                }
            }
            return Ok(());
        }
        RestartDecision::Restart { approval } => approval,
    };
    if !plan.act(step) {
        return Ok(());
    }
    aic.restart().await?;
    ctx.polls
        .asked(&restart_poll_key(tenant), std::time::Instant::now());
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
    let session = match ctx.clients.pingone_admin(&ctx.secrets, tenant).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The development environment of the examples, with its restart policy and annotations.
    fn tenant(policy: &str, debounce: &str, annotations: &[(&str, &str)]) -> TenantEnvironment {
        let annotations: std::collections::BTreeMap<&str, &str> =
            annotations.iter().copied().collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pingone-aic.io/v1alpha1",
            "kind": "TenantEnvironment",
            "metadata": { "name": "acme-dev", "namespace": "default", "annotations": annotations },
            "spec": {
                "tenantUrl": "https://openam-acme-euw2-dev.id.forgerock.io",
                "tier": "development",
                "realm": "alpha",
                "serviceAccount": {
                    "id": "2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e01",
                    "privateKeySecretRef": { "name": "aic-acme-dev-service-account", "key": "jwk" }
                },
                "pingOne": {
                    "environmentId": "11111111-1111-4111-8111-111111111111",
                    "region": "EU",
                    "adminCredentialsSecretRef": { "name": "pingone-admin-worker" }
                },
                "restart": { "policy": policy, "debounce": debounce }
            }
        }))
        .expect("a valid TenantEnvironment")
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap())
    }

    #[test]
    fn an_automatic_restart_waits_for_the_debounce_after_the_last_change() {
        let tenant = tenant("Automatic", "60s", &[]);
        let mut record = RestartRecord::default();
        let wait = |s| RestartDecision::Wait {
            recheck_in: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            decide_restart(&tenant, &mut record, 2, &at(0)).unwrap(),
            wait(61)
        );
        assert_eq!(record.state, RestartState::Pending);
        assert_eq!(record.pending_since, Some(at(0)));
        // Another change restarts the debounce; the batch keeps its first sighting.
        assert_eq!(
            decide_restart(&tenant, &mut record, 3, &at(30)).unwrap(),
            wait(61)
        );
        assert_eq!(record.pending_since, Some(at(0)));
        assert_eq!(
            decide_restart(&tenant, &mut record, 3, &at(80)).unwrap(),
            wait(11)
        );
        assert_eq!(
            decide_restart(&tenant, &mut record, 3, &at(90)).unwrap(),
            RestartDecision::Restart { approval: None }
        );
    }

    #[test]
    fn nothing_pending_resets_the_record() {
        let tenant = tenant("Automatic", "60s", &[]);
        let mut record = RestartRecord::default();
        decide_restart(&tenant, &mut record, 2, &at(0)).unwrap();
        let decision = decide_restart(&tenant, &mut record, 0, &at(10)).unwrap();
        assert_eq!(decision, RestartDecision::Wait { recheck_in: None });
        assert_eq!(record.state, RestartState::Idle);
        assert_eq!(
            (
                record.pending_since,
                record.last_change_seen,
                record.pending_esvs
            ),
            (None, None, 0)
        );
    }

    #[test]
    fn a_manual_restart_needs_a_new_approval_each_time() {
        let unapproved = tenant("Manual", "0s", &[]);
        let mut record = RestartRecord::default();
        let wait = RestartDecision::Wait { recheck_in: None };
        assert_eq!(
            decide_restart(&unapproved, &mut record, 1, &at(0)).unwrap(),
            wait
        );
        let approved = tenant("Manual", "0s", &[(APPROVE_RESTART_ANNOTATION, "first")]);
        assert_eq!(
            decide_restart(&approved, &mut record, 1, &at(5)).unwrap(),
            RestartDecision::Restart {
                approval: Some("first".into())
            }
        );
        // The approval acted on is recorded; the same value again approves nothing.
        record.last_approval = Some("first".into());
        assert_eq!(
            decide_restart(&approved, &mut record, 1, &at(9)).unwrap(),
            wait
        );
    }

    #[test]
    fn a_paused_environment_never_restarts() {
        let paused = tenant(
            "Automatic",
            "0s",
            &[(crate::controller::PAUSED_ANNOTATION, "true")],
        );
        let mut record = RestartRecord::default();
        assert_eq!(
            decide_restart(&paused, &mut record, 4, &at(0)).unwrap(),
            RestartDecision::Wait { recheck_in: None }
        );
        assert_eq!(record.state, RestartState::Pending);
    }

    #[test]
    fn a_malformed_debounce_is_an_error_not_a_zero() {
        let tenant = tenant("Automatic", "1d", &[]);
        let err = decide_restart(&tenant, &mut RestartRecord::default(), 1, &at(0)).unwrap_err();
        assert_eq!(err.reason(), "InvalidDuration");
        assert!(err.to_string().contains("spec.restart.debounce"), "{err}");
    }
}
