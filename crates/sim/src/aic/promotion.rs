//! `/environment/promotion/**`: locks that move `locking → locked` (and `unlocking →
//! unlocked`) after a delay but only once the state is read, as Ping's Terraform provider
//! observed; dry-run and real promotions with the missing-ESV integrity check; reports.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde_json::{Map, Value, json};

use super::state::{Lock, LockPhase, RunningPromotion};
use super::{Ctx, Need, parse_body, promo_error, promo_json, query, unconfirmed};
use crate::control::new_id;

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/environment/promotion/lock", post(lock))
        .route("/environment/promotion/lock/state", get(lock_state))
        .route("/environment/promotion/lock/{id}", delete(unlock))
        .route(
            "/environment/promotion/promote",
            get(progress).post(promote),
        )
        .route("/environment/promotion/report", get(last_report))
        .route(
            "/environment/promotion/report/provisional",
            get(provisional),
        )
        .route("/environment/promotion/report/{id}", get(report_by_id))
        .route("/environment/promotion/reports", get(reports))
        .route(
            "/environment/promotion/report/provisional-rollback",
            get(provisional_rollback),
        )
        .route("/environment/promotion/rollback", post(rollback))
}

fn guard(ctx: &Ctx, headers: &HeaderMap, need: Need) -> Result<(), Response> {
    ctx.authorize(headers, need)?;
    // The spec marks Accept-API-Version as required on every promotion call.
    if !headers.contains_key("accept-api-version") {
        return Err(promo_error(
            StatusCode::BAD_REQUEST,
            "Accept-API-Version header is required",
        ));
    }
    Ok(())
}

fn conflict(message: &str) -> Response {
    promo_json(StatusCode::CONFLICT, json!({"message": message}))
}

fn env_lock(promotion_id: &str, state: &str) -> Value {
    json!({"promotionId": promotion_id, "state": state, "proxyState": state})
}

async fn lock(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionWrite) {
        return r;
    }
    let mut state = ctx.state();
    // The spec declares 202, 401 and 409 for a lock: an environment that nothing is promoted
    // into conflicts with the request as a locked one does.
    let Some(lower) = state.lower_of(&ctx.tenant) else {
        return conflict("This environment is not promoted into from a lower environment");
    };
    if state.is_locked(&ctx.tenant) || state.is_locked(&lower) {
        return conflict("Environment is already locked, locking or unlocking");
    }
    let promotion_id = new_id();
    let until_ms = state.after(std::time::Duration::from_millis(state.timings.lock_ms));
    state.locks.push(Lock {
        promotion_id: promotion_id.clone(),
        lower,
        upper: ctx.tenant.to_string(),
        phase: LockPhase::Locking { until_ms },
    });
    promo_json(
        StatusCode::ACCEPTED,
        json!({"result": "locking", "promotionId": promotion_id, "description": "Environment lock in progress"}),
    )
}

async fn lock_state(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    // `localLockOnly` narrows the answer to this side of the lock; the simulator's answer is
    // the same for both sides, so only its type is checked.
    if let Err(message) = query::check(
        &q,
        &[("localLockOnly", query::Param::Boolean { allow_empty: true })],
    ) {
        return promo_error(StatusCode::BAD_REQUEST, &message);
    }
    let mut state = ctx.state();
    state.tick_lock(&ctx.tenant);
    let body = match state.lock_index(&ctx.tenant).map(|i| &state.locks[i]) {
        None => json!({
            "result": "unlocked",
            "lowerEnv": {"state": "unlocked", "proxyState": "unlocked"},
            "upperEnv": {"state": "unlocked", "proxyState": "unlocked"},
        }),
        Some(lock) => {
            let result = match lock.phase {
                LockPhase::Locking { .. } => "locking",
                LockPhase::Locked => "locked",
                LockPhase::Unlocking { .. } => "unlocking",
            };
            json!({
                "result": result,
                "promotionId": lock.promotion_id,
                "lowerEnv": env_lock(&lock.promotion_id, result),
                "upperEnv": env_lock(&lock.promotion_id, result),
            })
        }
    };
    promo_json(StatusCode::OK, body)
}

async fn unlock(State(ctx): State<Ctx>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionWrite) {
        return r;
    }
    let mut state = ctx.state();
    // A run that has ended by now has ended whether or not anyone asked for its progress.
    tick_promotion(&mut state, &ctx.tenant);
    let Some(index) = state
        .locks
        .iter()
        .position(|l| l.promotion_id == id && l.upper == *ctx.tenant)
    else {
        return promo_error(StatusCode::NOT_FOUND, "No lock found for this promotion id");
    };
    if state.locks[index].phase != LockPhase::Locked {
        return conflict("Environment is currently locking or unlocking");
    }
    if state.tenants[&*ctx.tenant].promotion.is_some() {
        return conflict("A promotion is running");
    }
    let lock_ms = state.timings.lock_ms;
    if lock_ms == 0 {
        state.locks.remove(index);
        return promo_json(
            StatusCode::OK,
            json!({"result": "unlocked", "promotionId": id, "description": "Environment unlocked"}),
        );
    }
    let until_ms = state.after(std::time::Duration::from_millis(lock_ms));
    state.locks[index].phase = LockPhase::Unlocking { until_ms };
    promo_json(
        StatusCode::ACCEPTED,
        json!({"result": "unlocking", "promotionId": id, "description": "Environment unlock in progress"}),
    )
}

async fn promote(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionWrite) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return promo_error(StatusCode::BAD_REQUEST, &m),
    };
    let Some(dry_run) = body.get("dryRun").and_then(Value::as_bool) else {
        return promo_error(StatusCode::BAD_REQUEST, "dryRun in body is required");
    };
    start_run(&ctx, body, dry_run, false)
}

/// `POST /environment/promotion/rollback` on the upper environment: while it is locked and no
/// run is under way, undoes the last promotion into it (409 otherwise, as the spec says).
async fn rollback(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionWrite) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return promo_error(StatusCode::BAD_REQUEST, &m),
    };
    start_run(&ctx, body, false, true)
}

/// Starts a promotion (or a rollback) on this upper environment, which must be locked by its
/// own lock and have no run under way; it finishes after `promotionMs`.
fn start_run(ctx: &Ctx, body: Map<String, Value>, dry_run: bool, rollback: bool) -> Response {
    let mut state = ctx.state();
    tick_promotion(&mut state, &ctx.tenant);
    let locked = state
        .lock_index(&ctx.tenant)
        .map(|i| &state.locks[i])
        .filter(|l| l.upper == *ctx.tenant && l.phase == LockPhase::Locked)
        .map(|l| l.promotion_id.clone());
    let Some(promotion_id) = locked else {
        return conflict("Environment is not in locked state");
    };
    let tenant = &state.tenants[&*ctx.tenant];
    if tenant.promotion.is_some() {
        return conflict("A promotion or rollback is already running");
    }
    if rollback && tenant.before_last_promotion.is_none() {
        return conflict("There is no promotion to roll back");
    }
    let until_ms = state.after(std::time::Duration::from_millis(state.timings.promotion_ms));
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant");
    tenant.promotion = Some(RunningPromotion {
        promotion_id,
        dry_run,
        until_ms,
        unlock_after: body
            .get("unlockEnvironmentsAfterPromotion")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        request: Value::Object(body),
        rollback,
    });
    tenant.last_progress = None;
    let result = if rollback {
        "Rollback process initiated successfully"
    } else {
        "Promotion process initiated successfully"
    };
    promo_json(StatusCode::ACCEPTED, json!({ "result": result }))
}

/// Finishes a run whose time is up. A promotion checks integrity and copies the configuration
/// (unless it is a dry run or blocked); a rollback restores what the last promotion replaced.
/// Either leaves a report and the progress to answer.
fn tick_promotion(state: &mut super::state::State, upper: &str) {
    let now = state.now_ms();
    let due = state.tenants[upper]
        .promotion
        .as_ref()
        .is_some_and(|p| p.until_ms <= now);
    if !due {
        return;
    }
    let Some(lower) = state.lower_of(upper) else {
        return;
    };
    let running = state
        .tenants
        .get_mut(upper)
        .and_then(|t| t.promotion.take())
        .expect("due");
    // Secrets embedded in the configuration are reported by every run of a promotion (not of
    // a rollback) and block a real one unless it asked to ignore them; they are never copied.
    let embedded: Vec<String> = if running.rollback {
        Vec::new()
    } else {
        state.tenants[&lower]
            .embedded_secrets
            .iter()
            .cloned()
            .collect()
    };
    let ignore_embedded = running
        .request
        .get("ignoreEncryptedSecrets")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let blocked_by_embedded = !embedded.is_empty() && !running.dry_run && !ignore_embedded;
    let (kind, missing, changes, message) = if running.rollback {
        let tenant = state.tenants.get_mut(upper).expect("tenant");
        let restored = tenant.before_last_promotion.take().unwrap_or_default();
        let changes = super::state::realm_changes(&restored, &tenant.realms);
        tenant.realms = restored;
        ("rollback", Vec::new(), changes, "Rollback completed")
    } else {
        let missing = state.missing_esvs(&lower, upper);
        let blocked = !missing.is_empty() || blocked_by_embedded;
        let changes = if blocked {
            json!([])
        } else {
            state.am_changes(&lower, upper)
        };
        if !blocked && !running.dry_run {
            state.copy_am_config(&lower, upper);
        }
        let message = if !missing.is_empty() {
            "Promotion blocked: ESVs missing in the upper environment"
        } else if blocked_by_embedded {
            "Promotion blocked: encrypted secrets in configuration"
        } else if running.dry_run {
            "Dry run completed"
        } else {
            "Promotion completed"
        };
        ("promotion", missing, changes, message)
    };
    let blocked = !missing.is_empty() || blocked_by_embedded;
    let ignored: Vec<&String> = if ignore_embedded && !running.dry_run {
        embedded.iter().collect()
    } else {
        Vec::new()
    };
    let created = state.now_text();
    let report_id = new_id();
    let text = |name: &str| {
        running
            .request
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let tag = if running.rollback {
        "rollback".to_owned()
    } else {
        format!("dryrun={}", running.dry_run)
    };
    let report = json!({
        "reportId": report_id,
        "reportName": format!("Report_{created}_{tag}_{report_id}"),
        "promotionId": running.promotion_id,
        "createdDate": created,
        "dryRun": running.dry_run,
        "type": kind,
        "promoter": text("promoter"),
        "promotionDescription": text("promotionDescription"),
        "missingESVs": missing,
        "previouslyIgnoredEncryptedSecrets": ignored,
        "report": {"AMConfig": changes, "IDMConfig": []},
    });
    let mut progress = json!({
        "blockingError": blocked,
        "globalLock": "LOCKED",
        "promotionId": running.promotion_id,
        "status": if blocked { unconfirmed::BLOCKED_STATUS } else { "READY" },
        "message": message,
        "timeStamp": created,
        "type": kind,
    });
    if blocked {
        progress["missingESVs"] = json!(missing);
    }
    if !embedded.is_empty() {
        progress["encryptedSecrets"] = json!(embedded);
    }
    if !blocked && !running.dry_run && running.unlock_after {
        state
            .locks
            .retain(|l| l.promotion_id != running.promotion_id);
        progress["globalLock"] = json!("UNLOCKED");
    }
    let tenant = state.tenants.get_mut(upper).expect("tenant");
    tenant.reports.push(report);
    tenant.last_progress = Some(progress);
}

/// `GET /environment/promotion/report/provisional-rollback` on the upper environment: what a
/// rollback would change now.
async fn provisional_rollback(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let mut state = ctx.state();
    tick_promotion(&mut state, &ctx.tenant);
    let tenant = &state.tenants[&*ctx.tenant];
    let Some(before) = &tenant.before_last_promotion else {
        return promo_error(
            StatusCode::BAD_REQUEST,
            "There is no promotion to roll back",
        );
    };
    let changes = super::state::realm_changes(before, &tenant.realms);
    provisional_report(&state, "rollback", Vec::new(), changes)
}

async fn progress(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let mut state = ctx.state();
    tick_promotion(&mut state, &ctx.tenant);
    let now = state.now_text();
    let tenant = &state.tenants[&*ctx.tenant];
    let lock = state.lock_index(&ctx.tenant).map(|i| &state.locks[i]);
    let body = if let Some(running) = &tenant.promotion {
        let kind = if running.rollback {
            "rollback"
        } else {
            "promotion"
        };
        json!({"blockingError": false, "globalLock": "LOCKED", "message": "Update configuration",
               "promotionId": running.promotion_id, "status": "RUNNING", "timeStamp": now, "type": kind})
    } else if let (Some(last), Some(lock)) = (&tenant.last_progress, lock)
        && last.get("promotionId").and_then(Value::as_str) == Some(lock.promotion_id.as_str())
    {
        last.clone()
    } else if let Some(lock) = lock {
        json!({"blockingError": false, "globalLock": "LOCKED", "message": "Environment ready for promotion",
               "promotionId": lock.promotion_id, "status": "READY", "timeStamp": now, "type": "promotion"})
    } else {
        json!({"blockingError": false, "globalLock": "UNLOCKED", "message": "Environment unlocked",
               "status": "UNLOCKED", "timeStamp": now, "type": "promotion"})
    };
    promo_json(StatusCode::OK, body)
}

async fn last_report(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let mut state = ctx.state();
    tick_promotion(&mut state, &ctx.tenant);
    match state.tenants[&*ctx.tenant].reports.last() {
        Some(report) => promo_json(StatusCode::OK, report.clone()),
        None => promo_error(StatusCode::NOT_FOUND, "No promotion report found"),
    }
}

async fn report_by_id(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let state = ctx.state();
    let found = state.tenants[&*ctx.tenant]
        .reports
        .iter()
        .find(|r| r.get("reportId").and_then(Value::as_str) == Some(id.as_str()));
    match found {
        Some(report) => promo_json(StatusCode::OK, report.clone()),
        None => promo_error(StatusCode::NOT_FOUND, "report not found for given id"),
    }
}

async fn reports(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let state = ctx.state();
    let list: Vec<Value> = state.tenants[&*ctx.tenant]
        .reports
        .iter()
        .map(|r| {
            json!({"createdDate": r["createdDate"], "dryRun": r["dryRun"], "promotionId": r["promotionId"],
                   "reportId": r["reportId"], "type": r["type"], "promoter": r["promoter"]})
        })
        .collect();
    promo_json(StatusCode::OK, Value::Array(list))
}

/// On the lower environment: what a promotion to its upper neighbour would change now.
async fn provisional(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = guard(&ctx, &headers, Need::PromotionRead) {
        return r;
    }
    let state = ctx.state();
    let Some(upper) = state.upper_of(&ctx.tenant) else {
        return promo_error(
            StatusCode::BAD_REQUEST,
            "This environment is not promoted to an upper environment",
        );
    };
    let missing = state.missing_esvs(&ctx.tenant, &upper);
    let changes = state.am_changes(&ctx.tenant, &upper);
    provisional_report(&state, "promotion", missing, changes)
}

/// A provisional report: what a promotion (or a rollback) would change now, run as a dry run.
fn provisional_report(
    state: &super::state::State,
    kind: &str,
    missing: Vec<String>,
    changes: Value,
) -> Response {
    let created = state.now_text();
    let report_id = new_id();
    let tag = if kind == "rollback" {
        "provisional-rollback"
    } else {
        "provisional"
    };
    promo_json(
        StatusCode::OK,
        json!({
            "reportId": report_id,
            "reportName": format!("Report_{created}_{tag}_{report_id}"),
            "createdDate": created,
            "dryRun": true,
            "type": kind,
            "missingESVs": missing,
            "report": {"AMConfig": changes, "IDMConfig": []},
        }),
    )
}
