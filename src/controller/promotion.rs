//! Promotion reconciler: precheck → lock → dry run → promote → unlock, one step per
//! reconcile, each step's outcome recorded in the status before the next step starts.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};

use super::clients::namespace_of;
use super::{Context, FINALIZER, ReconcileError, finish, is_paused, patch_status};
use crate::aic::promotion::{LockResult, PromotionReport as AicReport, PromotionRequest};
use crate::aic::{AicClient, EsvApi, PROMOTION_SCOPE, PromotionApi};
use crate::crd::common::condition;
use crate::crd::pingone_integration::CredentialType;
use crate::crd::promotion::{PromotionPhase, PromotionReport, PromotionStatus};
use crate::crd::{Promotion, TenantEnvironment};
use crate::status::{ConditionStatus, DesiredCondition, set_condition};

/// Condition: the promotion failed; the reason says why.
pub const FAILED: &str = "Failed";

/// Reconciles one Promotion.
pub async fn reconcile(
    promotion: Arc<Promotion>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let key = super::failure_key(promotion.as_ref());
    let api: Api<Promotion> =
        Api::namespaced(ctx.client.clone(), &namespace_of(promotion.as_ref()));
    let result = finalizer(&api, FINALIZER, promotion, |event| async {
        match event {
            FinalizerEvent::Apply(promotion) => step(&promotion, &ctx).await,
            FinalizerEvent::Cleanup(promotion) => cleanup(&promotion, &ctx).await,
        }
    })
    .await
    .map_err(ReconcileError::from);
    finish(&ctx, "Promotion", &key, started, result)
}

/// What one step decided.
struct Outcome {
    status: PromotionStatus,
    next: Action,
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
        }
    } else {
        match advance(promotion, ctx, status.clone(), &now).await {
            Ok(outcome) => outcome,
            Err(err) if err.is_transient() => return Err(err),
            Err(err) => fail(promotion, ctx, status, &err, &now).await,
        }
    };
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &namespace_of(promotion));
    patch_status(
        &api,
        &promotion.name_any(),
        promotion.status.as_ref(),
        &outcome.status,
    )
    .await?;
    Ok(outcome.next)
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
        }
    } else {
        status.phase = PromotionPhase::Unlocking;
        Outcome {
            status,
            next: Action::requeue(Duration::from_secs(1)),
        }
    }
}

/// Ends the promotion: `Failed` when a failure was recorded, else `Succeeded`.
async fn finalize(promotion: &Promotion, ctx: &Context, status: &mut PromotionStatus, now: &Time) {
    let failed = status
        .conditions
        .iter()
        .any(|c| c.type_ == FAILED && c.status == "True");
    status.phase = if failed {
        PromotionPhase::Failed
    } else {
        PromotionPhase::Succeeded
    };
    status.completion_time = Some(now.clone());
    ctx.metrics
        .promotions
        .get_or_create(&crate::metrics::OutcomeLabels {
            outcome: if failed { "failed" } else { "succeeded" }.to_owned(),
        })
        .inc();
    if !failed {
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
    let namespace = promotion.namespace();
    ctx.tenants
        .state()
        .into_iter()
        .find(|t| t.namespace() == namespace && t.name_any() == name)
        .ok_or_else(|| {
            ReconcileError::invalid(
                "TenantEnvironmentNotFound",
                format!("TenantEnvironment {name:?} does not exist in this namespace"),
            )
        })
}

async fn upper_client(ctx: &Context, promotion: &Promotion) -> Result<AicClient, ReconcileError> {
    let upper = tenant(ctx, promotion, &promotion.spec.to)?;
    ctx.clients
        .aic(&ctx.client, &upper, &[PROMOTION_SCOPE])
        .await
}

/// Moves the promotion one step on.
async fn advance(
    promotion: &Promotion,
    ctx: &Context,
    mut status: PromotionStatus,
    now: &Time,
) -> Result<Outcome, ReconcileError> {
    let waiting = |mut status: PromotionStatus, reason: &str, message: String| {
        set(
            &mut status,
            promotion,
            condition::READY,
            ConditionStatus::False,
            reason,
            &message,
            now,
        );
        Ok(Outcome {
            status,
            next: Action::requeue(ctx.config.wait),
        })
    };
    match status.phase {
        PromotionPhase::Pending => {
            validate_pair(promotion, ctx)?;
            if let Some(other) = earlier_promotion_to_same_target(promotion, ctx) {
                return waiting(
                    status,
                    "WaitingForPromotion",
                    format!("Promotion {other:?} to {} runs first", promotion.spec.to),
                );
            }
            status.phase = PromotionPhase::Prechecking;
            set(
                &mut status,
                promotion,
                condition::READY,
                ConditionStatus::False,
                "Prechecking",
                "checking the upper environment's ESVs",
                now,
            );
            Ok(Outcome {
                status,
                next: Action::requeue(Duration::from_secs(1)),
            })
        }
        PromotionPhase::Prechecking => {
            let upper = upper_client(ctx, promotion).await?;
            let (missing, pending) = check_esvs(promotion, ctx, &upper).await?;
            if !missing.is_empty() {
                status.report = Some(PromotionReport {
                    missing_esvs: missing.clone(),
                    ..Default::default()
                });
                return waiting(
                    status,
                    "WaitingForESVs",
                    format!(
                        "{} lacks ESVs the configuration needs: {}",
                        promotion.spec.to,
                        missing.join(", ")
                    ),
                );
            }
            if !pending.is_empty() {
                return waiting(
                    status,
                    "WaitingForRestart",
                    format!(
                        "ESVs of {} wait for a restart: {}",
                        promotion.spec.to,
                        pending.join(", ")
                    ),
                );
            }
            let lock = upper.lock_state().await?;
            if lock.result != LockResult::Unlocked {
                return waiting(
                    status,
                    "WaitingForLock",
                    format!(
                        "{} is {:?} by another promotion",
                        promotion.spec.to, lock.result
                    ),
                );
            }
            // Intent first: a restart between this patch and the lock call finds the phase and
            // reads the lock's id back from the lock state.
            status.report = None;
            status.phase = PromotionPhase::Locking;
            set(
                &mut status,
                promotion,
                condition::READY,
                ConditionStatus::False,
                "Locking",
                "locking the environments",
                now,
            );
            Ok(Outcome {
                status,
                next: Action::requeue(Duration::from_secs(1)),
            })
        }
        PromotionPhase::Locking => {
            let upper = upper_client(ctx, promotion).await?;
            if status.promotion_id.is_none() {
                let state = upper.lock_state().await?;
                match (state.result, state.promotion_id) {
                    (LockResult::Unlocked, _) => {
                        let started = upper.lock().await?;
                        status.lock_held = true;
                        status.promotion_id = match started.promotion_id {
                            Some(id) => Some(id),
                            None => upper.lock_state().await?.promotion_id,
                        };
                        ctx.publish(
                            promotion,
                            EventType::Normal,
                            "Lock",
                            "Locking",
                            format!("locking {} and {}", promotion.spec.from, promotion.spec.to),
                        )
                        .await;
                    }
                    (_, Some(id)) => {
                        // Our own lock, requested before a restart lost its answer.
                        status.lock_held = true;
                        status.promotion_id = Some(id);
                    }
                    (result, None) => {
                        return waiting(
                            status,
                            "WaitingForLock",
                            format!("lock state is {result:?}"),
                        );
                    }
                }
                return Ok(Outcome {
                    status,
                    next: Action::requeue(ctx.config.poll),
                });
            }
            let state = upper.lock_state().await?;
            match state.result {
                LockResult::Locked => {
                    status.phase = PromotionPhase::DryRun;
                    set(
                        &mut status,
                        promotion,
                        condition::READY,
                        ConditionStatus::False,
                        "DryRun",
                        "running the dry run",
                        now,
                    );
                    Ok(Outcome {
                        status,
                        next: Action::requeue(Duration::from_secs(1)),
                    })
                }
                LockResult::Error => Err(ReconcileError::invalid(
                    "LockFailed",
                    format!(
                        "AIC could not lock the environments: {}",
                        state.description.unwrap_or_default()
                    ),
                )),
                _ => Ok(Outcome {
                    status,
                    next: Action::requeue(ctx.config.poll),
                }),
            }
        }
        PromotionPhase::DryRun | PromotionPhase::Promoting => {
            let dry_run = status.phase == PromotionPhase::DryRun;
            let upper = upper_client(ctx, promotion).await?;
            let progress = upper.promotion_progress().await?;
            if progress.is_running() {
                return Ok(Outcome {
                    status,
                    next: Action::requeue(ctx.config.poll),
                });
            }
            if progress.blocking_error {
                status.report = Some(PromotionReport {
                    missing_esvs: progress.missing_esvs.clone(),
                    ..Default::default()
                });
                return Err(ReconcileError::invalid(
                    "IntegrityCheckFailed",
                    format!(
                        "AIC blocked the promotion: {}{}",
                        progress.message,
                        if progress.missing_esvs.is_empty() {
                            String::new()
                        } else {
                            format!(" (missing ESVs: {})", progress.missing_esvs.join(", "))
                        }
                    ),
                ));
            }
            let report = upper.promotion_report(None).await?;
            let ours = report.as_ref().filter(|r| {
                r.dry_run == dry_run
                    && r.promotion_id.is_some()
                    && r.promotion_id == status.promotion_id
            });
            let Some(report) = ours else {
                upper
                    .promote(&PromotionRequest {
                        dry_run,
                        ignore_encrypted_secrets: false,
                        unlock_environments_after_promotion: false,
                        promoter: super::MANAGER.to_owned(),
                        promotion_description: promotion.spec.description.clone().unwrap_or_else(
                            || format!("{} to {}", promotion.spec.from, promotion.spec.to),
                        ),
                    })
                    .await?;
                return Ok(Outcome {
                    status,
                    next: Action::requeue(ctx.config.poll),
                });
            };
            status.report = Some(summarize(report));
            if !report.missing_esvs.is_empty() {
                return Err(ReconcileError::invalid(
                    "MissingESVs",
                    format!(
                        "the upper environment lacks ESVs: {}",
                        report.missing_esvs.join(", ")
                    ),
                ));
            }
            if dry_run && !promotion.spec.dry_run_only {
                status.phase = PromotionPhase::Promoting;
                set(
                    &mut status,
                    promotion,
                    condition::READY,
                    ConditionStatus::False,
                    "Promoting",
                    "promoting the configuration",
                    now,
                );
                return Ok(Outcome {
                    status,
                    next: Action::requeue(Duration::from_secs(1)),
                });
            }
            status.phase = PromotionPhase::Unlocking;
            set(
                &mut status,
                promotion,
                condition::READY,
                ConditionStatus::False,
                "Unlocking",
                "unlocking the environments",
                now,
            );
            Ok(Outcome {
                status,
                next: Action::requeue(Duration::from_secs(1)),
            })
        }
        PromotionPhase::Unlocking => {
            let upper = upper_client(ctx, promotion).await?;
            if unlock(&upper, status.promotion_id.as_deref()).await? {
                status.lock_held = false;
                finalize(promotion, ctx, &mut status, now).await;
                Ok(Outcome {
                    status,
                    next: Action::await_change(),
                })
            } else {
                Ok(Outcome {
                    status,
                    next: Action::requeue(ctx.config.poll),
                })
            }
        }
        PromotionPhase::Succeeded | PromotionPhase::Failed => Ok(Outcome {
            status,
            next: Action::await_change(),
        }),
    }
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
    let namespace = promotion.namespace();
    let created = promotion.creation_timestamp();
    ctx.promotions
        .state()
        .into_iter()
        .filter(|p| p.namespace() == namespace && p.name_any() != promotion.name_any())
        .filter(|p| p.spec.to == promotion.spec.to)
        .filter(|p| !p.status.as_ref().is_some_and(|s| s.phase.is_final()))
        .filter(|p| {
            let started = p
                .status
                .as_ref()
                .is_some_and(|s| s.phase != PromotionPhase::Pending);
            started
                || (p.creation_timestamp(), p.name_any()) < (created.clone(), promotion.name_any())
        })
        .map(|p| p.name_any())
        .next()
}

/// The ESVs the integrations spanning the pair need in the upper environment: those missing,
/// and those present but not loaded yet.
async fn check_esvs(
    promotion: &Promotion,
    ctx: &Context,
    upper: &AicClient,
) -> Result<(Vec<String>, Vec<String>), ReconcileError> {
    let namespace = promotion.namespace();
    let mut variables = Vec::new();
    let mut secrets = Vec::new();
    for integration in ctx.integrations.state() {
        if integration.namespace() != namespace {
            continue;
        }
        let names: Vec<&str> = integration
            .spec
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        if !names.contains(&promotion.spec.from.as_str())
            || !names.contains(&promotion.spec.to.as_str())
        {
            continue;
        }
        let esv = &integration.spec.esv;
        variables.push(esv.environment_id.clone());
        match integration.spec.credential_type {
            CredentialType::WorkerApplication => {
                variables.push(esv.client_id.clone());
                secrets.push(esv.client_secret.clone());
            }
            CredentialType::ProductConnection => secrets.push(esv.connection_jwt.clone()),
        }
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
