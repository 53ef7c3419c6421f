//! Promotion reconciler: precheck → lock → dry run → promote → verify (→ roll back) → unlock,
//! one step per reconcile, each step's outcome recorded in the status before the next step
//! starts.
//!
//! - The dry run's integrity check stops the run before anything is promoted: ESVs the upper
//!   environment lacks and secrets embedded in the configuration (which AIC will not promote)
//!   end it `Failed` with a condition naming them.
//! - Before the promotion starts, what the upper environment holds of each integration's worker
//!   service is recorded (`beforePromotion`: absent, present, or present with a passed
//!   connection test). After it, each worker service is tested in the upper environment while
//!   the lock is still held. When a test fails and the Promotion asks for `rollbackOnFailure`,
//!   AIC's provisional rollback report is recorded, the rollback is run, and the upper
//!   environment must be back to what was recorded (a worker that was absent is absent again, one
//!   that passed passes again) before the lock is released and the Promotion ends
//!   `RolledBack`; without it, the Promotion ends `Failed` with the promoted configuration left
//!   in place. A rollback counts as done when AIC is not running one and its last report is a
//!   rollback with this promotion's id, so a restarted operator never starts a second one.
//!
//! - Intent is persisted before each remote call (the phase moves to `Locking` before the lock
//!   is requested), and the promotion id as soon as AIC returns it; a restarted operator in
//!   `Locking` without an id reads it back from the lock state, so it can always unlock.
//! - Every failure after the lock is taken leads to `Unlocking`; the finalizer unlocks too when
//!   a Promotion holding the lock is deleted. AIC cannot unlock while a dry run or promotion
//!   runs, so a Promotion deleted mid-flight waits for the run to end (one progress read per
//!   poll interval, not an exponential backoff) and then unlocks.
//! - Waits (ESVs not yet created or loaded in the upper environment, another promotion holding
//!   the lock) are not failures: the phase stays and a condition says what is awaited.
//! - A dry run or promotion counts as done when AIC is no longer running one and the last
//!   report carries this promotion's id with the matching `dryRun` flag.

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
use super::{Context, FINALIZER, ReconcileError, is_paused, lookup, patch_status};
use crate::aic::am::ConnectionTest;
use crate::aic::promotion::{
    LockResult, PromotionReport as AicReport, PromotionRequest, RollbackRequest,
};
use crate::aic::{AicClient, AmApi, EsvApi, PROMOTION_SCOPE, PromotionApi};
use crate::crd::common::condition;
use crate::crd::promotion::{
    PromotionPhase, PromotionReport, PromotionStatus, WorkerBaseline, WorkerState,
};
use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use crate::status::{ConditionStatus, DesiredCondition, set_condition};

/// Condition: the promotion failed; the reason says why.
pub const FAILED: &str = "Failed";
/// Condition: the promoted worker services passed (True) or failed (False) their test in the
/// upper environment.
pub const VERIFIED: &str = "Verified";
/// Condition: the promotion was rolled back after its verification failed.
pub const ROLLED_BACK: &str = "RolledBack";

/// Reconciles one Promotion.
pub async fn reconcile(
    promotion: Arc<Promotion>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let ctx = ctx.as_ref();
    frame::reconcile(
        promotion,
        ctx,
        move |promotion| async move { step(&promotion, ctx).await },
        move |promotion| async move { cleanup(&promotion, ctx).await },
    )
    .await
}

impl Reconciled for Promotion {
    const CONTROLLER: &'static str = "Promotion";
    const FINALIZER: Option<&'static str> = Some(FINALIZER);

    fn spends(&self, ctx: &Context) -> BTreeSet<Spends> {
        let names = [self.spec.from.as_str(), self.spec.to.as_str()];
        Spends::of_environments(ctx, self.namespace().as_deref(), names, false)
    }
}

/// What one step decided.
struct Outcome {
    status: PromotionStatus,
    next: Action,
    /// The step entered `status.phase` knowing that nothing of it has been asked of AIC yet.
    fresh: bool,
}

/// Phases this process just entered for a Promotion (by uid) in which nothing has been asked
/// of AIC yet, so the phase's first pass need not look for what an earlier process may have
/// started before it stopped (its lock request, its run): it knows. Valid for the one pass
/// after the status patch that entered the phase; a restarted operator knows nothing and
/// looks, as every pass did before.
#[derive(Debug, Default)]
pub(crate) struct FreshPhases(std::sync::Mutex<std::collections::HashMap<String, PromotionPhase>>);

impl FreshPhases {
    /// Records what the pass just written entered (or that it entered nothing fresh).
    fn set(&self, uid: String, fresh: Option<PromotionPhase>) {
        let mut phases = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match fresh {
            Some(phase) => phases.insert(uid, phase),
            None => phases.remove(&uid),
        };
    }

    /// Whether `phase` was just entered fresh; the knowledge is used up.
    fn take(&self, uid: &str, phase: PromotionPhase) -> bool {
        let mut phases = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if phases.get(uid) == Some(&phase) {
            phases.remove(uid);
            return true;
        }
        false
    }
}

async fn step(promotion: &Promotion, ctx: &Context) -> Result<Action, ReconcileError> {
    let current = promotion.status.clone().unwrap_or_default();
    if current.phase.is_final() {
        return Ok(Action::await_change());
    }
    // A missing TenantEnvironment fails the Promotion for good, so it is looked up only once
    // the TenantEnvironment cache has been listed (a Promotion can be reconciled first after
    // a start). Bounded, so a cache that never fills cannot hold the reconcile.
    let _ = tokio::time::timeout(Duration::from_secs(10), ctx.tenants.wait_until_ready()).await;
    let now = Time(jiff::Timestamp::now());
    let mut status = current.clone();
    status.observed_generation = promotion.meta().generation;
    if status.start_time.is_none() {
        status.start_time = Some(now.clone());
    }
    let outcome = if is_paused(promotion) {
        set(
            &mut status,
            promotion,
            condition::READY,
            ConditionStatus::False,
            "Paused",
            "the promotion is paused",
            &now,
        );
        Outcome {
            status,
            next: Action::await_change(),
            fresh: false,
        }
    } else if let Err(wait) = paced(promotion, ctx, current.phase) {
        // Woken before the poll interval is up (its own status patch): AIC is asked again
        // when it is.
        return Ok(Action::requeue(wait));
    } else {
        match advance(promotion, ctx, status.clone(), &now).await {
            Ok(outcome) => outcome,
            Err(err) if err.is_transient() => return Err(err),
            Err(err) => fail(promotion, ctx, status, &err, &now).await,
        }
    };
    if outcome.status.phase != current.phase {
        ctx.polls.done(&poll_key(promotion, current.phase));
    }
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &namespace_of(promotion));
    let uid = promotion.uid().unwrap_or_default();
    // Whatever happens to the patch, this pass used up what the previous one knew.
    ctx.fresh_phases.set(uid.clone(), None);
    patch_status(
        &api,
        &promotion.name_any(),
        promotion.status.as_ref(),
        &outcome.status,
    )
    .await?;
    if outcome.fresh {
        ctx.fresh_phases.set(uid, Some(outcome.status.phase));
    }
    let (namespace, name) = (namespace_of(promotion), promotion.name_any());
    ctx.metrics
        .record_promotion_lock(&namespace, &name, outcome.status.lock_held);
    Ok(outcome.next)
}

/// The phases whose passes poll AIC for something under way (a lock change, a run).
fn polls_aic(phase: PromotionPhase) -> bool {
    matches!(
        phase,
        PromotionPhase::Locking
            | PromotionPhase::DryRun
            | PromotionPhase::Promoting
            | PromotionPhase::Unlocking
            | PromotionPhase::RollingBack
    )
}

fn poll_key(promotion: &Promotion, phase: PromotionPhase) -> String {
    format!(
        "promotion/{}/{phase:?}",
        promotion.meta().uid.as_deref().unwrap_or_default()
    )
}

/// Whether a pass in `phase` may ask AIC now: the first of the phase always may, later ones
/// once the poll interval has passed since the previous one asked.
fn paced(promotion: &Promotion, ctx: &Context, phase: PromotionPhase) -> Result<(), Duration> {
    if !polls_aic(phase) {
        return Ok(());
    }
    ctx.polls.poll(
        &poll_key(promotion, phase),
        ctx.config.poll,
        std::time::Instant::now(),
    )
}

/// Records a permanent failure: unlock first when the lock may be held, else fail at once.
async fn fail(
    promotion: &Promotion,
    ctx: &Context,
    mut status: PromotionStatus,
    error: &ReconcileError,
    now: &Time,
) -> Outcome {
    let message = error.to_string();
    set(
        &mut status,
        promotion,
        FAILED,
        ConditionStatus::True,
        error.reason(),
        &message,
        now,
    );
    set(
        &mut status,
        promotion,
        condition::READY,
        ConditionStatus::False,
        error.reason(),
        &message,
        now,
    );
    ctx.publish(
        promotion,
        EventType::Warning,
        "Promote",
        error.reason(),
        message,
    )
    .await;
    if matches!(
        status.phase,
        PromotionPhase::Pending | PromotionPhase::Prechecking
    ) {
        finalize(promotion, ctx, &mut status, now).await;
        Outcome {
            status,
            next: Action::await_change(),
            fresh: false,
        }
    } else {
        status.phase = PromotionPhase::Unlocking;
        Outcome {
            status,
            next: Action::requeue(Duration::from_secs(1)),
            fresh: false,
        }
    }
}

/// Ends the promotion: `Failed` when a failure was recorded, else `Succeeded`.
async fn finalize(promotion: &Promotion, ctx: &Context, status: &mut PromotionStatus, now: &Time) {
    let holds = |type_: &str| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    let failed = holds(FAILED);
    let rolled_back = !failed && holds(ROLLED_BACK);
    status.phase = if failed {
        PromotionPhase::Failed
    } else if rolled_back {
        PromotionPhase::RolledBack
    } else {
        PromotionPhase::Succeeded
    };
    status.completion_time = Some(now.clone());
    let outcome = match status.phase {
        PromotionPhase::Failed => "failed",
        PromotionPhase::RolledBack => "rolled_back",
        _ => "succeeded",
    };
    ctx.metrics
        .promotions
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: outcome.to_owned(),
        })
        .inc();
    if rolled_back {
        let message = status
            .conditions
            .iter()
            .find(|c| c.type_ == ROLLED_BACK)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        set(
            status,
            promotion,
            condition::READY,
            ConditionStatus::False,
            "RolledBack",
            &message,
            now,
        );
        ctx.publish(
            promotion,
            EventType::Warning,
            "Promote",
            "RolledBack",
            message,
        )
        .await;
    } else if !failed {
        let what = if promotion.spec.dry_run_only {
            "dry run"
        } else {
            "promotion"
        };
        let message = format!(
            "{what} from {} to {} succeeded",
            promotion.spec.from, promotion.spec.to
        );
        set(
            status,
            promotion,
            condition::READY,
            ConditionStatus::True,
            "Succeeded",
            &message,
            now,
        );
        ctx.publish(
            promotion,
            EventType::Normal,
            "Promote",
            "Succeeded",
            message,
        )
        .await;
    }
}

fn set(
    status: &mut PromotionStatus,
    promotion: &Promotion,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: &Time,
) {
    set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_,
            status: value,
            reason,
            message,
        },
        promotion.meta().generation,
        now,
    );
}

fn tenant(
    ctx: &Context,
    promotion: &Promotion,
    name: &str,
) -> Result<Arc<TenantEnvironment>, ReconcileError> {
    lookup::named(&ctx.tenants, promotion.meta().namespace.as_deref(), name).ok_or_else(|| {
        ReconcileError::invalid(
            "TenantEnvironmentNotFound",
            format!("TenantEnvironment {name:?} does not exist in this namespace"),
        )
    })
}

async fn upper_client(ctx: &Context, promotion: &Promotion) -> Result<AicClient, ReconcileError> {
    let upper = tenant(ctx, promotion, &promotion.spec.to)?;
    ctx.clients
        .aic(&ctx.secrets, &upper, &[PROMOTION_SCOPE])
        .await
}

/// One pass over a promotion: the resource, the operator's context and the pass's clock.
struct Pass<'a> {
    promotion: &'a Promotion,
    ctx: &'a Context,
    now: &'a Time,
}

impl Pass<'_> {
    /// Sets the Ready condition (False: the promotion is under way) to `reason`.
    fn note(&self, status: &mut PromotionStatus, reason: &str, message: &str) {
        set(
            status,
            self.promotion,
            condition::READY,
            ConditionStatus::False,
            reason,
            message,
            self.now,
        );
    }

    /// Stays in the phase, saying what it waits for; looks again after the wait interval.
    fn wait(&self, mut status: PromotionStatus, reason: &str, message: String) -> Outcome {
        self.note(&mut status, reason, &message);
        Outcome {
            status,
            next: Action::requeue(self.ctx.config.wait),
            fresh: false,
        }
    }

    /// Moves to `phase`, whose Ready reason is its name; the next pass follows at once.
    fn enter(&self, mut status: PromotionStatus, phase: PromotionPhase, message: &str) -> Outcome {
        status.phase = phase;
        self.note(&mut status, &format!("{phase:?}"), message);
        Outcome {
            status,
            next: Action::requeue(Duration::from_secs(1)),
            fresh: false,
        }
    }

    /// Ends in failure keeping what this pass recorded in `status` (a report, a condition):
    /// for permanent failures found by looking, not by a failed call.
    async fn fail(&self, status: PromotionStatus, error: ReconcileError) -> Outcome {
        fail(self.promotion, self.ctx, status, &error, self.now).await
    }

    /// Moves to `phase` as [`Pass::enter`] does, knowing that nothing of it has been asked of
    /// AIC: its first pass starts it without looking for an earlier start.
    fn enter_fresh(
        &self,
        status: PromotionStatus,
        phase: PromotionPhase,
        message: &str,
    ) -> Outcome {
        Outcome {
            fresh: true,
            ..self.enter(status, phase, message)
        }
    }

    /// Whether this process entered `phase` in the previous pass and asked nothing of it yet.
    fn fresh(&self, phase: PromotionPhase) -> bool {
        self.ctx.fresh_phases.take(
            self.promotion.meta().uid.as_deref().unwrap_or_default(),
            phase,
        )
    }

    /// Stays in the phase; AIC is working, so look again after the poll interval.
    fn poll(&self, status: PromotionStatus) -> Outcome {
        Outcome {
            status,
            next: Action::requeue(self.ctx.config.poll),
            fresh: false,
        }
    }
}

/// Moves the promotion one step on: one function per phase.
async fn advance(
    promotion: &Promotion,
    ctx: &Context,
    status: PromotionStatus,
    now: &Time,
) -> Result<Outcome, ReconcileError> {
    let pass = Pass {
        promotion,
        ctx,
        now,
    };
    match status.phase {
        PromotionPhase::Pending => start(&pass, status),
        PromotionPhase::Prechecking => precheck(&pass, status).await,
        PromotionPhase::Locking => lock(&pass, status).await,
        PromotionPhase::DryRun | PromotionPhase::Promoting => run(&pass, status).await,
        PromotionPhase::Verifying => verify(&pass, status).await,
        PromotionPhase::RollingBack => roll_back(&pass, status).await,
        PromotionPhase::Unlocking => release(&pass, status).await,
        PromotionPhase::Succeeded | PromotionPhase::Failed | PromotionPhase::RolledBack => {
            Ok(Outcome {
                status,
                next: Action::await_change(),
                fresh: false,
            })
        }
    }
}

/// Pending: the pair is valid and no earlier promotion to the same target is unfinished.
fn start(pass: &Pass<'_>, status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    validate_pair(pass.promotion, pass.ctx)?;
    if let Some(other) = earlier_promotion_to_same_target(pass.promotion, pass.ctx) {
        return Ok(pass.wait(
            status,
            "WaitingForPromotion",
            format!(
                "Promotion {other:?} to {} runs first",
                pass.promotion.spec.to
            ),
        ));
    }
    Ok(pass.enter(
        status,
        PromotionPhase::Prechecking,
        "checking the upper environment's ESVs",
    ))
}

/// Prechecking: the upper environment has every ESV the configuration needs, loaded, and is
/// not locked by another promotion.
async fn precheck(pass: &Pass<'_>, mut status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    let to = &pass.promotion.spec.to;
    let upper = upper_client(pass.ctx, pass.promotion).await?;
    let (missing, pending) = check_esvs(pass.promotion, pass.ctx, &upper).await?;
    if !missing.is_empty() {
        status.report = Some(PromotionReport {
            missing_esvs: missing.clone(),
            ..Default::default()
        });
        let message = format!(
            "{to} lacks ESVs the configuration needs: {}",
            missing.join(", ")
        );
        return Ok(pass.wait(status, "WaitingForESVs", message));
    }
    if !pending.is_empty() {
        let message = format!("ESVs of {to} wait for a restart: {}", pending.join(", "));
        return Ok(pass.wait(status, "WaitingForRestart", message));
    }
    let lock = upper.lock_state().await?;
    if lock.result != LockResult::Unlocked {
        let message = format!("{to} is {:?} by another promotion", lock.result);
        return Ok(pass.wait(status, "WaitingForLock", message));
    }
    // Intent first: a restart between this patch and the lock call finds the phase and reads
    // the lock's id back from the lock state.
    status.report = None;
    Ok(pass.enter_fresh(status, PromotionPhase::Locking, "locking the environments"))
}

/// Locking: asks for the lock once (or finds our own, requested before a restart lost its
/// answer), then polls until AIC says the environments are locked.
async fn lock(pass: &Pass<'_>, mut status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    let promotion = pass.promotion;
    let upper = upper_client(pass.ctx, promotion).await?;
    if status.promotion_id.is_none() {
        // Entered just now after the precheck saw it unlocked: no lock of ours can exist.
        let (result, holder) = if pass.fresh(PromotionPhase::Locking) {
            (LockResult::Unlocked, None)
        } else {
            let state = upper.lock_state().await?;
            (state.result, state.promotion_id)
        };
        match (result, holder) {
            (LockResult::Unlocked, _) => {
                let started = upper.lock().await?;
                status.lock_held = true;
                status.promotion_id = match started.promotion_id {
                    Some(id) => Some(id),
                    None => upper.lock_state().await?.promotion_id,
                };
                let message = format!("locking {} and {}", promotion.spec.from, promotion.spec.to);
                pass.ctx
                    .publish(promotion, EventType::Normal, "Lock", "Locking", message)
                    .await;
            }
            (_, Some(id)) => {
                status.lock_held = true;
                status.promotion_id = Some(id);
            }
            (result, None) => {
                let message = format!("lock state is {result:?}");
                return Ok(pass.wait(status, "WaitingForLock", message));
            }
        }
        return Ok(pass.poll(status));
    }
    let state = upper.lock_state().await?;
    match state.result {
        LockResult::Locked => {
            Ok(pass.enter_fresh(status, PromotionPhase::DryRun, "running the dry run"))
        }
        LockResult::Error => Err(ReconcileError::invalid(
            "LockFailed",
            format!(
                "AIC could not lock the environments: {}",
                state.description.unwrap_or_default()
            ),
        )),
        _ => Ok(pass.poll(status)),
    }
}

/// DryRun and Promoting: starts the run once, waits for it, and reads its report; a dry run
/// with nothing missing goes on to the promotion unless the Promotion asks for a dry run only.
async fn run(pass: &Pass<'_>, mut status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    let promotion = pass.promotion;
    let dry_run = status.phase == PromotionPhase::DryRun;
    let upper = upper_client(pass.ctx, promotion).await?;
    if pass.fresh(status.phase) {
        // Entered just now, with nothing started: no run of ours to find.
        start_run(promotion, &upper, dry_run).await?;
        return Ok(pass.poll(status));
    }
    let progress = upper.promotion_progress().await?;
    if progress.is_running() {
        return Ok(pass.poll(status));
    }
    if progress.blocking_error {
        status.report = Some(PromotionReport {
            missing_esvs: progress.missing_esvs.clone(),
            encrypted_secrets: progress.encrypted_secrets.clone(),
            ..Default::default()
        });
        let mut found = Vec::new();
        if !progress.missing_esvs.is_empty() {
            found.push(format!(
                "missing ESVs: {}",
                progress.missing_esvs.join(", ")
            ));
        }
        if !progress.encrypted_secrets.is_empty() {
            found.push(format!(
                "encrypted secrets: {}",
                progress.encrypted_secrets.join(", ")
            ));
        }
        let found = if found.is_empty() {
            String::new()
        } else {
            format!(" ({})", found.join("; "))
        };
        let error = ReconcileError::invalid(
            "IntegrityCheckFailed",
            format!("AIC blocked the promotion: {}{found}", progress.message),
        );
        return Ok(pass.fail(status, error).await);
    }
    let report = upper.promotion_report(None).await?;
    let decision = after_run(
        status.phase,
        promotion.spec.dry_run_only,
        status.promotion_id.as_deref(),
        report.as_ref(),
    );
    match decision {
        AfterRun::Start => {
            start_run(promotion, &upper, dry_run).await?;
            Ok(pass.poll(status))
        }
        AfterRun::MissingEsvs(report) => {
            status.report = Some(summarize(report));
            let error = ReconcileError::invalid(
                "MissingESVs",
                format!(
                    "the upper environment lacks ESVs: {}",
                    report.missing_esvs.join(", ")
                ),
            );
            Ok(pass.fail(status, error).await)
        }
        AfterRun::Next(report, next) => {
            let mut summary = summarize(report);
            if dry_run && !progress.encrypted_secrets.is_empty() {
                // AIC promotes no secret embedded in configuration: stop before anything
                // changes rather than promote a configuration that lacks them.
                summary.encrypted_secrets = progress.encrypted_secrets.clone();
                status.report = Some(summary);
                let error = ReconcileError::invalid(
                    "EncryptedSecrets",
                    format!(
                        "the dry run found secrets embedded in the configuration of {}, which AIC does not promote: {}; store them as ESV secrets and reference them by placeholder",
                        promotion.spec.from,
                        progress.encrypted_secrets.join(", ")
                    ),
                );
                return Ok(pass.fail(status, error).await);
            }
            status.report = Some(summary);
            match next {
                PromotionPhase::Promoting => {
                    // Recorded before the promotion is asked for: after it, the upper
                    // environment no longer shows what a rollback must bring back.
                    status.before_promotion = Some(baseline(pass, &upper).await?);
                    Ok(pass.enter_fresh(status, next, "promoting the configuration"))
                }
                _ if !dry_run => Ok(pass.enter(
                    status,
                    PromotionPhase::Verifying,
                    "testing the promoted worker services",
                )),
                _ => Ok(pass.enter_fresh(status, next, "unlocking the environments")),
            }
        }
    }
}

/// Asks AIC for the dry run or the promotion.
async fn start_run(
    promotion: &Promotion,
    upper: &AicClient,
    dry_run: bool,
) -> Result<(), ReconcileError> {
    upper
        .promote(&PromotionRequest {
            dry_run,
            ignore_encrypted_secrets: false,
            unlock_environments_after_promotion: false,
            promoter: super::MANAGER.to_owned(),
            promotion_description: promotion
                .spec
                .description
                .clone()
                .unwrap_or_else(|| format!("{} to {}", promotion.spec.from, promotion.spec.to)),
        })
        .await?;
    Ok(())
}

/// What the DryRun or Promoting phase does once AIC's run is neither running nor blocked,
/// decided from AIC's last report. No I/O.
#[derive(Debug, PartialEq)]
enum AfterRun<'r> {
    /// No report of this run: start it (again, when a restart lost the answer to the first ask).
    Start,
    /// The run's report lists ESVs the upper environment lacks.
    MissingEsvs(&'r AicReport),
    /// The run is done: go on to this phase.
    Next(&'r AicReport, PromotionPhase),
}

fn after_run<'r>(
    phase: PromotionPhase,
    dry_run_only: bool,
    promotion_id: Option<&str>,
    report: Option<&'r AicReport>,
) -> AfterRun<'r> {
    let dry_run = phase == PromotionPhase::DryRun;
    let ours = report.filter(|r| {
        r.dry_run == dry_run && promotion_id.is_some() && r.promotion_id.as_deref() == promotion_id
    });
    match ours {
        None => AfterRun::Start,
        Some(report) if !report.missing_esvs.is_empty() => AfterRun::MissingEsvs(report),
        Some(report) if dry_run && !dry_run_only => {
            AfterRun::Next(report, PromotionPhase::Promoting)
        }
        Some(report) => AfterRun::Next(report, PromotionPhase::Unlocking),
    }
}

/// The integrations whose environments include both sides of the promotion.
fn spanning_integrations(promotion: &Promotion, ctx: &Context) -> Vec<Arc<PingOneIntegration>> {
    let namespace = promotion.meta().namespace.as_deref();
    let mut integrations: Vec<Arc<PingOneIntegration>> = ctx.integrations.state_filter(|i| {
        let has = |name: &str| i.spec.environments.iter().any(|e| e.name == name);
        lookup::in_namespace(i, namespace) && has(&promotion.spec.from) && has(&promotion.spec.to)
    });
    integrations.sort_by_key(|i| i.name_any());
    integrations
}

/// The spanning integrations whose worker service the promotion carries: configured and
/// verified in the lower environment. One still being set up there has nothing to promote yet,
/// so the promotion is not tested (or rolled back) for it.
fn carried_integrations(promotion: &Promotion, ctx: &Context) -> Vec<Arc<PingOneIntegration>> {
    spanning_integrations(promotion, ctx)
        .into_iter()
        .filter(|integration| {
            integration
                .status
                .as_ref()
                .and_then(|s| {
                    s.environments
                        .iter()
                        .find(|e| e.name == promotion.spec.from)
                })
                .is_some_and(|e| e.service_configured && e.label_mapped && e.connection_verified)
        })
        .collect()
}

/// What the upper environment holds of each carried integration's worker service now: one
/// read per worker; whether its connection passed comes from the integration's status.
async fn baseline(
    pass: &Pass<'_>,
    upper: &AicClient,
) -> Result<Vec<WorkerBaseline>, ReconcileError> {
    let to = &pass.promotion.spec.to;
    let mut before = Vec::new();
    for integration in carried_integrations(pass.promotion, pass.ctx) {
        let worker = integration.spec.service.name.clone();
        let verified = integration
            .status
            .as_ref()
            .and_then(|s| s.environments.iter().find(|e| &e.name == to))
            .is_some_and(|e| e.connection_verified);
        let state = match upper.get_worker(&worker).await? {
            None => WorkerState::Absent,
            Some(_) if verified => WorkerState::Verified,
            Some(_) => WorkerState::Present,
        };
        before.push(WorkerBaseline {
            integration: integration.name_any(),
            worker,
            state,
        });
    }
    Ok(before)
}

/// How long connection tests meeting a PingOne that cannot answer are repeated before the
/// failure counts: an outage of PingOne is not a broken configuration.
const PINGONE_UNAVAILABLE_GRACE: Duration = Duration::from_secs(300);

/// What testing the worker services found.
#[derive(Default)]
struct Tested {
    /// Why a worker service is not right (missing, or its credential refused).
    failures: Vec<String>,
    /// Tests PingOne could not answer (5xx, 429).
    unavailable: Vec<String>,
}

impl Tested {
    /// Tests one worker service in the upper environment.
    async fn worker(
        &mut self,
        upper: &AicClient,
        to: &str,
        worker: &str,
    ) -> Result<(), ReconcileError> {
        if upper.get_worker(worker).await?.is_none() {
            self.failures
                .push(format!("worker service {worker} is missing in {to}"));
            return Ok(());
        }
        let test = upper.test_connection(worker).await?;
        if let ConnectionTest::Failed { message, .. } = &test {
            let text =
                format!("worker service {worker} failed its connection test in {to}: {message}");
            if test.pingone_unavailable() {
                self.unavailable.push(text);
            } else {
                self.failures.push(text);
            }
        }
        Ok(())
    }

    /// The failures, with the unavailable tests counted as failures once PingOne has been
    /// unavailable for longer than the grace period; `None` while they are to be repeated.
    fn conclude(mut self, status: &mut PromotionStatus, now: &Time) -> Option<Vec<String>> {
        if self.unavailable.is_empty() || !self.failures.is_empty() {
            status.pingone_unavailable_since = None;
            self.failures.append(&mut self.unavailable);
            return Some(self.failures);
        }
        let since = status
            .pingone_unavailable_since
            .get_or_insert_with(|| now.clone())
            .clone();
        let waited = now.0.duration_since(since.0).unsigned_abs();
        if waited < PINGONE_UNAVAILABLE_GRACE {
            return None;
        }
        status.pingone_unavailable_since = None;
        Some(self.unavailable)
    }
}

/// Verifying: the worker service of every integration the promotion carried (as recorded
/// before it) is in the upper environment and passes its connection test; a failure rolls back
/// (`rollbackOnFailure`) or fails.
async fn verify(pass: &Pass<'_>, mut status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    let promotion = pass.promotion;
    let to = &promotion.spec.to;
    let upper = upper_client(pass.ctx, promotion).await?;
    let workers: Vec<String> = match &status.before_promotion {
        Some(before) => before.iter().map(|b| b.worker.clone()).collect(),
        None => carried_integrations(promotion, pass.ctx)
            .iter()
            .map(|i| i.spec.service.name.clone())
            .collect(),
    };
    let mut tested = Tested::default();
    for worker in &workers {
        tested.worker(&upper, to, worker).await?;
    }
    let unavailable = tested.unavailable.join("; ");
    let Some(failures) = tested.conclude(&mut status, pass.now) else {
        return Ok(pass.wait(status, "PingOneUnavailable", unavailable));
    };
    if failures.is_empty() {
        set(
            &mut status,
            promotion,
            VERIFIED,
            ConditionStatus::True,
            "ConnectionTested",
            &format!("the promoted worker services passed their connection test in {to}"),
            pass.now,
        );
        return Ok(pass.enter_fresh(
            status,
            PromotionPhase::Unlocking,
            "unlocking the environments",
        ));
    }
    let message = failures.join("; ");
    set(
        &mut status,
        promotion,
        VERIFIED,
        ConditionStatus::False,
        "VerificationFailed",
        &message,
        pass.now,
    );
    if !promotion.spec.rollback_on_failure {
        let error = ReconcileError::invalid(
            "VerificationFailed",
            format!("{message}; the promoted configuration stays (rollbackOnFailure is off)"),
        );
        return Ok(pass.fail(status, error).await);
    }
    pass.ctx
        .publish(
            promotion,
            EventType::Warning,
            "Verify",
            "VerificationFailed",
            format!("{message}; rolling back"),
        )
        .await;
    Ok(pass.enter(
        status,
        PromotionPhase::RollingBack,
        &format!("rolling back: {message}"),
    ))
}

/// RollingBack: records the provisional rollback report and starts AIC's rollback once (or
/// finds it, started before a restart lost the answer), waits for it, then checks the upper
/// environment is as it was before the promotion.
async fn roll_back(
    pass: &Pass<'_>,
    mut status: PromotionStatus,
) -> Result<Outcome, ReconcileError> {
    let promotion = pass.promotion;
    let upper = upper_client(pass.ctx, promotion).await?;
    if upper.promotion_progress().await?.is_running() {
        return Ok(pass.poll(status));
    }
    let report = upper.promotion_report(None).await?;
    let done = report.as_ref().is_some_and(|r| {
        r.kind.as_deref() == Some("rollback")
            && status.promotion_id.is_some()
            && r.promotion_id == status.promotion_id
    });
    if !done {
        status.rollback_report = Some(summarize(&upper.provisional_rollback_report().await?));
        let reason = verification_failure(&status);
        match upper
            .rollback(&RollbackRequest {
                unlock_environments_after_promotion: false,
                promoter: super::MANAGER.to_owned(),
                promotion_description: format!("rollback of {}: {reason}", promotion.name_any()),
            })
            .await
        {
            Ok(()) => {}
            // Nothing runs (read above), so a conflict means there is nothing to roll back.
            Err(crate::aic::AicError::Api {
                status: code,
                message,
                ..
            }) if code == http::StatusCode::CONFLICT => {
                let error = ReconcileError::invalid(
                    "RollbackFailed",
                    format!("AIC refused the rollback: {message}"),
                );
                return Ok(pass.fail(status, error).await);
            }
            Err(err) => return Err(err.into()),
        }
        return Ok(pass.poll(status));
    }
    let to = &promotion.spec.to;
    let Some(before) = status.before_promotion.clone() else {
        let error = ReconcileError::invalid(
            "RollbackVerificationFailed",
            format!("rolled back, but there is no record of what {to} held before the promotion"),
        );
        return Ok(pass.fail(status, error).await);
    };
    let mut tested = Tested::default();
    for entry in &before {
        let worker = &entry.worker;
        match entry.state {
            WorkerState::Absent => {
                if upper.get_worker(worker).await?.is_some() {
                    tested
                        .failures
                        .push(format!("worker service {worker} is still in {to}"));
                }
            }
            WorkerState::Present => {
                if upper.get_worker(worker).await?.is_none() {
                    tested
                        .failures
                        .push(format!("worker service {worker} is missing in {to}"));
                }
            }
            WorkerState::Verified => tested.worker(&upper, to, worker).await?,
        }
    }
    let unavailable = tested.unavailable.join("; ");
    let Some(differences) = tested.conclude(&mut status, pass.now) else {
        return Ok(pass.wait(status, "PingOneUnavailable", unavailable));
    };
    if !differences.is_empty() {
        let error = ReconcileError::invalid(
            "RollbackVerificationFailed",
            format!(
                "rolled back, but {to} is not as before the promotion: {}",
                differences.join("; ")
            ),
        );
        return Ok(pass.fail(status, error).await);
    }
    let message = format!(
        "{}; rolled back, {to} is as before the promotion",
        verification_failure(&status)
    );
    set(
        &mut status,
        promotion,
        ROLLED_BACK,
        ConditionStatus::True,
        "VerificationFailed",
        &message,
        pass.now,
    );
    Ok(pass.enter(
        status,
        PromotionPhase::Unlocking,
        "unlocking the environments",
    ))
}

/// Why the promoted configuration was rejected, as the `Verified` condition says.
fn verification_failure(status: &PromotionStatus) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == VERIFIED && c.status == "False")
        .map_or_else(|| "verification failed".to_owned(), |c| c.message.clone())
}

/// Unlocking: releases the lock, then reports the promotion's end.
async fn release(pass: &Pass<'_>, mut status: PromotionStatus) -> Result<Outcome, ReconcileError> {
    let upper = upper_client(pass.ctx, pass.promotion).await?;
    // Entered just now from a finished run or verification: the lock is ours and held.
    let unlocked = match status.promotion_id.as_deref() {
        Some(id) if pass.fresh(PromotionPhase::Unlocking) => {
            upper.unlock(id).await? == LockResult::Unlocked
        }
        id => unlock(&upper, id).await?,
    };
    if !unlocked {
        return Ok(pass.poll(status));
    }
    status.lock_held = false;
    finalize(pass.promotion, pass.ctx, &mut status, pass.now).await;
    Ok(Outcome {
        status,
        next: Action::await_change(),
        fresh: false,
    })
}

/// Asks AIC to unlock and says whether the lock is gone.
async fn unlock(upper: &AicClient, promotion_id: Option<&str>) -> Result<bool, ReconcileError> {
    let state = upper.lock_state().await?;
    match state.result {
        LockResult::Unlocked => return Ok(true),
        LockResult::Unlocking => return Ok(false),
        _ => {}
    }
    let id = promotion_id.map(str::to_owned).or(state.promotion_id);
    let Some(id) = id else {
        return Ok(false);
    };
    Ok(upper.unlock(&id).await? == LockResult::Unlocked)
}

/// Before a Promotion holding the lock goes away, the lock is released.
async fn cleanup(promotion: &Promotion, ctx: &Context) -> Result<Action, ReconcileError> {
    let status = promotion.status.clone().unwrap_or_default();
    if !status.lock_held {
        return Ok(Action::await_change());
    }
    let upper = upper_client(ctx, promotion).await?;
    let still_releasing = || ReconcileError::InProgress {
        message: "the promotion lock is still being released".to_owned(),
        poll: ctx.config.poll,
    };
    // AIC refuses to unlock while a dry run or promotion runs (409); that ends by itself, so
    // it is polled like an unlock in progress rather than backed off exponentially, with one
    // read instead of refused unlocks.
    if upper.promotion_progress().await?.is_running() {
        return Err(still_releasing());
    }
    let unlocked = match unlock(&upper, status.promotion_id.as_deref()).await {
        Ok(unlocked) => unlocked,
        Err(ReconcileError::Aic(err)) if err.is_transient() => {
            tracing::debug!(error = %err, "unlock not possible yet");
            false
        }
        Err(err) => return Err(err),
    };
    if unlocked {
        ctx.publish(
            promotion,
            EventType::Normal,
            "Unlock",
            "Unlocked",
            "released the promotion lock before deletion".to_owned(),
        )
        .await;
        ctx.metrics
            .record_promotion_lock(&namespace_of(promotion), &promotion.name_any(), false);
        Ok(Action::await_change())
    } else {
        Err(still_releasing())
    }
}

fn summarize(report: &AicReport) -> PromotionReport {
    let mut items = Vec::new();
    if let Some(groups) = report.report.as_ref().and_then(|r| r.as_object()) {
        for entries in groups.values().filter_map(|v| v.as_array()) {
            for entry in entries {
                if let Some(item) = entry.get("configItem").and_then(|i| i.as_str()) {
                    items.push(item.to_owned());
                }
            }
        }
    }
    items.truncate(20);
    PromotionReport {
        changed_items: i64::try_from(report.changed_items()).unwrap_or(i64::MAX),
        items,
        missing_esvs: report.missing_esvs.clone(),
        encrypted_secrets: Vec::new(),
    }
}

/// `to` must be the environment promoted from `from`.
fn validate_pair(promotion: &Promotion, ctx: &Context) -> Result<(), ReconcileError> {
    tenant(ctx, promotion, &promotion.spec.from)?;
    let upper = tenant(ctx, promotion, &promotion.spec.to)?;
    if upper.spec.promotes_from.as_deref() != Some(promotion.spec.from.as_str()) {
        return Err(ReconcileError::invalid(
            "InvalidTarget",
            format!(
                "{} is not promoted from {} (its promotesFrom is {:?}); promotions go one step up the group",
                promotion.spec.to, promotion.spec.from, upper.spec.promotes_from
            ),
        ));
    }
    Ok(())
}

/// An unfinished Promotion to the same environment created before this one.
fn earlier_promotion_to_same_target(promotion: &Promotion, ctx: &Context) -> Option<String> {
    let namespace = promotion.meta().namespace.as_deref();
    let this = (
        promotion.meta().creation_timestamp.as_ref(),
        promotion.meta().name.as_deref(),
    );
    ctx.promotions
        .find(|p| {
            let started = p
                .status
                .as_ref()
                .is_some_and(|s| s.phase != PromotionPhase::Pending);
            lookup::in_namespace(p, namespace)
                && p.meta().name.as_deref() != this.1
                && p.spec.to == promotion.spec.to
                && !p.status.as_ref().is_some_and(|s| s.phase.is_final())
                && (started
                    || (
                        p.meta().creation_timestamp.as_ref(),
                        p.meta().name.as_deref(),
                    ) < this)
        })
        .map(|p| p.name_any())
}

/// The ESVs the integrations spanning the pair need in the upper environment: those missing,
/// and those present but not loaded yet.
async fn check_esvs(
    promotion: &Promotion,
    ctx: &Context,
    upper: &AicClient,
) -> Result<(Vec<String>, Vec<String>), ReconcileError> {
    let mut variables = Vec::new();
    let mut secrets = Vec::new();
    for integration in spanning_integrations(promotion, ctx) {
        let required = super::integration::required_esvs(&integration, ctx, &promotion.spec.to);
        variables.extend(required.variables);
        secrets.extend(required.secrets);
    }
    let mut missing = Vec::new();
    let mut pending = Vec::new();
    // Two list reads at most, shared with the integrations and restarts of the tenant.
    let upper = upper.snapshot_view(ctx.observation_age());
    for id in variables {
        match upper.get_variable(&id).await? {
            None => missing.push(id),
            Some(variable) if !variable.loaded => pending.push(id),
            Some(_) => {}
        }
    }
    for id in secrets {
        match upper.get_secret(&id).await? {
            None => missing.push(id),
            Some(secret) if secret.is_pending() => pending.push(id),
            Some(_) => {}
        }
    }
    Ok((missing, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(promotion_id: &str, dry_run: bool, missing: &[&str]) -> AicReport {
        AicReport {
            promotion_id: Some(promotion_id.into()),
            dry_run,
            missing_esvs: missing.iter().map(|m| (*m).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pingone_being_unavailable_is_waited_out_for_a_while_then_counts() {
        let start = Time(jiff::Timestamp::from_second(1_000_000).unwrap());
        let later = |seconds: i64| Time(start.0 + jiff::SignedDuration::from_secs(seconds));
        let unavailable = || Tested {
            failures: Vec::new(),
            unavailable: vec!["502".to_owned()],
        };
        let mut status = PromotionStatus::default();
        assert_eq!(
            unavailable().conclude(&mut status, &start),
            None,
            "repeated at first"
        );
        assert_eq!(status.pingone_unavailable_since.as_ref(), Some(&start));
        assert_eq!(
            unavailable().conclude(&mut status, &later(299)),
            None,
            "within the grace"
        );
        assert_eq!(
            unavailable().conclude(&mut status, &later(300)),
            Some(vec!["502".to_owned()]),
            "past the grace it is a failure"
        );
        assert!(status.pingone_unavailable_since.is_none());

        let mut status = PromotionStatus::default();
        let mixed = Tested {
            failures: vec!["401".to_owned()],
            unavailable: vec!["502".to_owned()],
        };
        assert_eq!(
            mixed.conclude(&mut status, &start),
            Some(vec!["401".to_owned(), "502".to_owned()]),
            "a refusal is not waited out"
        );
        assert_eq!(
            Tested::default().conclude(&mut status, &start),
            Some(Vec::new()),
            "all passed"
        );
    }

    #[test]
    fn a_run_without_a_report_of_its_own_is_started() {
        use PromotionPhase::{DryRun, Promoting};
        assert_eq!(after_run(DryRun, false, Some("p1"), None), AfterRun::Start);
        let other = report("p0", true, &[]);
        assert_eq!(
            after_run(DryRun, false, Some("p1"), Some(&other)),
            AfterRun::Start,
            "an earlier promotion's report"
        );
        let dry = report("p1", true, &[]);
        assert_eq!(
            after_run(Promoting, false, Some("p1"), Some(&dry)),
            AfterRun::Start,
            "the dry run's report does not finish the promotion"
        );
        assert_eq!(
            after_run(DryRun, false, None, Some(&dry)),
            AfterRun::Start,
            "without a lock id nothing is ours"
        );
    }

    #[test]
    fn a_finished_run_goes_on_or_fails_on_missing_esvs() {
        use PromotionPhase::{DryRun, Promoting, Unlocking};
        let dry = report("p1", true, &[]);
        assert_eq!(
            after_run(DryRun, false, Some("p1"), Some(&dry)),
            AfterRun::Next(&dry, Promoting)
        );
        assert_eq!(
            after_run(DryRun, true, Some("p1"), Some(&dry)),
            AfterRun::Next(&dry, Unlocking),
            "a dry run only"
        );
        let promoted = report("p1", false, &[]);
        assert_eq!(
            after_run(Promoting, false, Some("p1"), Some(&promoted)),
            AfterRun::Next(&promoted, Unlocking)
        );
        let missing = report("p1", true, &["esv-a"]);
        assert_eq!(
            after_run(DryRun, false, Some("p1"), Some(&missing)),
            AfterRun::MissingEsvs(&missing)
        );
    }
}
