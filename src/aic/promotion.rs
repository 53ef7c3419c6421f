//! Self-service promotions (`/environment/promotion/**`, called on the upper environment; the
//! provisional report on the lower one), with the eventual-consistency handling Ping's own
//! Terraform provider uses: re-read the lock state before acting or retrying, treat 409 while the
//! lock changes state as "wait", and read a 404 on unlock as "already unlocked".

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::startup::Poll;
use super::{AicClient, AicError, ApiFamily, Call, PromotionApi, api_version, encode_segment};

/// `result` of a lock state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockResult {
    /// No lock.
    Unlocked,
    /// Lock being taken.
    Locking,
    /// Lock being released.
    Unlocking,
    /// Locked; a promotion may run.
    Locked,
    /// The lock failed; `description` says why.
    Error,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

/// `promotionStartLocking`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockStart {
    /// Normally `locking`.
    pub result: LockResult,
    /// The id to unlock with; persist it before anything else.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// Text.
    #[serde(default)]
    pub description: Option<String>,
}

/// Lock of one side.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvLock {
    /// Promotion id holding the lock.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// State (values unspecified by Ping).
    #[serde(default)]
    pub state: Option<String>,
    /// Proxy state (values unspecified by Ping).
    #[serde(default)]
    pub proxy_state: Option<String>,
}

/// `promotionLockState`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockState {
    /// Overall result.
    pub result: LockResult,
    /// Promotion id holding the lock.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// Set when `result` is `error`.
    #[serde(default)]
    pub description: Option<String>,
    /// Lower environment.
    #[serde(default)]
    pub lower_env: Option<EnvLock>,
    /// Upper environment.
    #[serde(default)]
    pub upper_env: Option<EnvLock>,
}

/// `promotionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequest {
    /// Only report, change nothing.
    pub dry_run: bool,
    /// Promote despite encrypted secrets in configuration.
    pub ignore_encrypted_secrets: bool,
    /// Unlock when done; the operator unlocks itself, so normally false.
    pub unlock_environments_after_promotion: bool,
    /// Who promotes.
    pub promoter: String,
    /// What is promoted.
    pub promotion_description: String,
}

/// The body of `POST /environment/promotion/rollback`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRequest {
    /// Unlock when done; the operator unlocks itself, so normally false.
    pub unlock_environments_after_promotion: bool,
    /// Who rolls back.
    pub promoter: String,
    /// Why.
    pub promotion_description: String,
}

/// `promotionProgress`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionProgress {
    /// `UNLOCKED`, `READY`, `RUNNING`, … (not an enum in the spec).
    #[serde(default)]
    pub status: String,
    /// Text.
    #[serde(default)]
    pub message: String,
    /// Whether an integrity check blocked the promotion.
    #[serde(default)]
    pub blocking_error: bool,
    /// `LOCKED` / `UNLOCKED`.
    #[serde(default)]
    pub global_lock: Option<String>,
    /// Current promotion.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// ESVs referenced by configuration but missing in the upper environment.
    #[serde(default, rename = "missingESVs")]
    pub missing_esvs: Vec<String>,
    /// Secrets embedded in configuration.
    #[serde(default)]
    pub encrypted_secrets: Vec<String>,
}

impl PromotionProgress {
    /// Whether a promotion is still running. "RUNNING" is documented, "IN_PROGRESS" seen in a fork.
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "RUNNING" | "IN_PROGRESS")
    }
}

/// `promotionReport`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReport {
    /// Report id.
    #[serde(default)]
    pub report_id: Option<String>,
    /// Promotion id.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// Dry run or not.
    #[serde(default)]
    pub dry_run: bool,
    /// Creation time (AIC's own format).
    #[serde(default)]
    pub created_date: Option<String>,
    /// `promotion` or `rollback`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// ESVs the integrity check found missing.
    #[serde(default, rename = "missingESVs")]
    pub missing_esvs: Vec<String>,
    /// The change list (`AMConfig`, `IDMConfig`, …).
    #[serde(default)]
    pub report: Option<serde_json::Value>,
}

impl PromotionReport {
    /// Number of configuration items added, modified or deleted.
    pub fn changed_items(&self) -> usize {
        let Some(report) = self.report.as_ref().and_then(|r| r.as_object()) else {
            return 0;
        };
        report
            .values()
            .filter_map(|items| items.as_array())
            .flatten()
            .filter_map(|item| item.get("configChange"))
            .map(|change| {
                ["added", "modified", "deleted"]
                    .iter()
                    .filter_map(|kind| change.get(kind).and_then(|v| v.as_array()))
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }
}

/// `promotionReportMeta`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMeta {
    /// Report id.
    #[serde(default)]
    pub report_id: Option<String>,
    /// Promotion id.
    #[serde(default)]
    pub promotion_id: Option<String>,
    /// Dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Creation time.
    #[serde(default)]
    pub created_date: Option<String>,
}

/// Takes the lock (or finds it already held) and waits until the state reads `locked`; returns
/// the promotion id. `on_id` is called with the id as soon as it is known, so the caller can
/// persist it before waiting (a restarted operator must always be able to unlock).
pub async fn ensure_locked<A: PromotionApi>(
    api: &A,
    poll: Poll,
    mut on_id: impl FnMut(&str),
) -> Result<String, AicError> {
    let deadline = tokio::time::Instant::now() + poll.timeout;
    let mut requested = false;
    loop {
        // The lock state may only be brought up to date by a read, so read before every action.
        let state = api.lock_state().await?;
        match state.result {
            LockResult::Locked => {
                let id = state.promotion_id.ok_or_else(|| AicError::Decode {
                    what: "lock state".into(),
                    detail: "locked without a promotionId".into(),
                })?;
                on_id(&id);
                return Ok(id);
            }
            LockResult::Unlocked if !requested => match api.lock().await {
                Ok(start) => {
                    requested = true;
                    if let Some(id) = &start.promotion_id {
                        on_id(id);
                    }
                }
                // Someone (or an earlier attempt) is already changing the lock: re-read.
                Err(err) if err.status() == Some(StatusCode::CONFLICT) => {}
                Err(err) => return Err(err),
            },
            LockResult::Error => {
                return Err(AicError::Api {
                    family: ApiFamily::Promotion,
                    status: StatusCode::CONFLICT,
                    code: None,
                    reason: None,
                    message: state
                        .description
                        .unwrap_or_else(|| "the promotion lock is in error".into()),
                    detail: None,
                    retry_after: None,
                });
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AicError::Timeout("the promotion lock"));
        }
        tokio::time::sleep(poll.interval).await;
    }
}

/// Releases the lock held by `promotion_id` and waits until the state reads `unlocked`.
pub async fn ensure_unlocked<A: PromotionApi>(
    api: &A,
    promotion_id: &str,
    poll: Poll,
) -> Result<(), AicError> {
    let deadline = tokio::time::Instant::now() + poll.timeout;
    let mut requested = false;
    loop {
        let state = api.lock_state().await?;
        match state.result {
            LockResult::Unlocked => return Ok(()),
            LockResult::Locked | LockResult::Error if !requested => {
                match api.unlock(promotion_id).await {
                    Ok(LockResult::Unlocked) => return Ok(()),
                    // Ping's Terraform provider reads a 404 as "already unlocked".
                    Err(err) if err.is_not_found() => return Ok(()),
                    Ok(_) => requested = true,
                    Err(err) if err.status() == Some(StatusCode::CONFLICT) => {}
                    Err(err) => return Err(err),
                }
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AicError::Timeout("the promotion unlock"));
        }
        tokio::time::sleep(poll.interval).await;
    }
}

/// Polls promotion progress until it no longer runs. A blocked promotion (integrity check) is
/// returned as [`AicError::PromotionBlocked`].
pub async fn wait_for_promotion<A: PromotionApi>(
    api: &A,
    poll: Poll,
) -> Result<PromotionProgress, AicError> {
    let deadline = tokio::time::Instant::now() + poll.timeout;
    let mut errors_in_a_row = 0;
    loop {
        match api.promotion_progress().await {
            Ok(progress) if !progress.is_running() => {
                if progress.blocking_error
                    || !progress.missing_esvs.is_empty()
                    || !progress.encrypted_secrets.is_empty()
                {
                    return Err(AicError::PromotionBlocked {
                        missing_esvs: progress.missing_esvs,
                        encrypted_secrets: progress.encrypted_secrets,
                    });
                }
                return Ok(progress);
            }
            Ok(_) => errors_in_a_row = 0,
            Err(err) if err.is_transient() && errors_in_a_row < poll.max_consecutive_errors => {
                errors_in_a_row += 1;
            }
            Err(err) => return Err(err),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AicError::Timeout("the promotion to finish"));
        }
        tokio::time::sleep(poll.interval).await;
    }
}

/// The reports of one run of [`promote`].
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionRun {
    /// The promotion id (lock id).
    pub promotion_id: String,
    /// The dry run's report.
    pub dry_run: Option<PromotionReport>,
    /// The real promotion's report (absent for a dry run only).
    pub promotion: Option<PromotionReport>,
}

/// Lock → dry run → (promote) → unlock, always unlocking once locked, even on failure. For a
/// controller that persists each step, the building blocks above are the better fit; this is
/// the whole sequence for tools and tests.
pub async fn promote<A: PromotionApi>(
    api: &A,
    request: &PromotionRequest,
    poll: Poll,
    on_id: impl FnMut(&str),
) -> Result<PromotionRun, AicError> {
    let promotion_id = ensure_locked(api, poll, on_id).await?;
    let result = promote_locked(api, request, poll, &promotion_id).await;
    let unlocked = ensure_unlocked(api, &promotion_id, poll).await;
    let run = result?;
    unlocked?;
    Ok(run)
}

async fn promote_locked<A: PromotionApi>(
    api: &A,
    request: &PromotionRequest,
    poll: Poll,
    promotion_id: &str,
) -> Result<PromotionRun, AicError> {
    let dry = PromotionRequest {
        dry_run: true,
        unlock_environments_after_promotion: false,
        ..request.clone()
    };
    api.promote(&dry).await?;
    wait_for_promotion(api, poll).await?;
    let dry_report = report_for(api, promotion_id, true).await?;
    if let Some(report) = &dry_report
        && !report.missing_esvs.is_empty()
    {
        return Err(AicError::PromotionBlocked {
            missing_esvs: report.missing_esvs.clone(),
            encrypted_secrets: Vec::new(),
        });
    }
    let mut run = PromotionRun {
        promotion_id: promotion_id.to_owned(),
        dry_run: dry_report,
        promotion: None,
    };
    if request.dry_run {
        return Ok(run);
    }
    let real = PromotionRequest {
        dry_run: false,
        unlock_environments_after_promotion: false,
        ..request.clone()
    };
    api.promote(&real).await?;
    wait_for_promotion(api, poll).await?;
    run.promotion = report_for(api, promotion_id, false).await?;
    Ok(run)
}

/// The newest report of this promotion and kind. "The last report" can lag behind or belong to
/// another run, so it is checked and, if it does not match, the report list is searched.
pub async fn report_for<A: PromotionApi>(
    api: &A,
    promotion_id: &str,
    dry_run: bool,
) -> Result<Option<PromotionReport>, AicError> {
    let matches = |id: Option<&str>, dry: bool| id == Some(promotion_id) && dry == dry_run;
    if let Some(last) = api.promotion_report(None).await?
        && matches(last.promotion_id.as_deref(), last.dry_run)
    {
        return Ok(Some(last));
    }
    let mut candidates: Vec<ReportMeta> = api
        .list_promotion_reports()
        .await?
        .into_iter()
        .filter(|meta| matches(meta.promotion_id.as_deref(), meta.dry_run))
        .collect();
    candidates.sort_by(|a, b| a.created_date.cmp(&b.created_date));
    match candidates.pop().and_then(|meta| meta.report_id) {
        Some(report_id) => api.promotion_report(Some(&report_id)).await,
        None => Ok(None),
    }
}

fn promo(method: Method, path: &str) -> Call {
    Call::new(
        method,
        ApiFamily::Promotion,
        api_version::PROMOTION,
        path.to_owned(),
    )
}

impl AicClient {
    pub(crate) async fn promo_lock(&self) -> Result<LockStart, AicError> {
        self.json(promo(Method::POST, "/environment/promotion/lock"))
            .await
    }

    pub(crate) async fn promo_lock_state(&self) -> Result<LockState, AicError> {
        self.json(promo(Method::GET, "/environment/promotion/lock/state"))
            .await
    }

    pub(crate) async fn promo_unlock(&self, promotion_id: &str) -> Result<LockResult, AicError> {
        #[derive(Deserialize)]
        struct Unlock {
            result: LockResult,
        }
        let call = promo(
            Method::DELETE,
            &format!(
                "/environment/promotion/lock/{}",
                encode_segment(promotion_id)
            ),
        );
        match self.send(&call).await {
            Ok(answer) => Ok(super::decode::<Unlock>(&call, &answer.body)?.result),
            Err(err) if err.is_not_found() => Ok(LockResult::Unlocked),
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn promo_promote(&self, request: &PromotionRequest) -> Result<(), AicError> {
        let body =
            serde_json::to_value(request).map_err(|err| AicError::Config(err.to_string()))?;
        self.send(&promo(Method::POST, "/environment/promotion/promote").body(body))
            .await
            .map(|_| ())
    }

    pub(crate) async fn promo_rollback(&self, request: &RollbackRequest) -> Result<(), AicError> {
        let body =
            serde_json::to_value(request).map_err(|err| AicError::Config(err.to_string()))?;
        self.send(&promo(Method::POST, "/environment/promotion/rollback").body(body))
            .await
            .map(|_| ())
    }

    pub(crate) async fn promo_provisional_rollback(&self) -> Result<PromotionReport, AicError> {
        self.json(promo(
            Method::GET,
            "/environment/promotion/report/provisional-rollback",
        ))
        .await
    }

    pub(crate) async fn promo_progress(&self) -> Result<PromotionProgress, AicError> {
        self.json(promo(Method::GET, "/environment/promotion/promote"))
            .await
    }

    pub(crate) async fn promo_report(
        &self,
        id: Option<&str>,
    ) -> Result<Option<PromotionReport>, AicError> {
        let path = match id {
            Some(id) => format!("/environment/promotion/report/{}", encode_segment(id)),
            None => "/environment/promotion/report".to_owned(),
        };
        self.json_opt(promo(Method::GET, &path)).await
    }

    pub(crate) async fn promo_provisional(&self) -> Result<PromotionReport, AicError> {
        self.json(promo(
            Method::GET,
            "/environment/promotion/report/provisional",
        ))
        .await
    }

    pub(crate) async fn promo_reports(&self) -> Result<Vec<ReportMeta>, AicError> {
        self.json(promo(Method::GET, "/environment/promotion/reports"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A scripted upper environment: lock states in order, lock/unlock answers, reports.
    #[derive(Default)]
    struct Fake {
        states: Mutex<VecDeque<LockResult>>,
        lock_answers: Mutex<VecDeque<Result<LockStart, StatusCode>>>,
        unlock_answers: Mutex<VecDeque<Result<LockResult, StatusCode>>>,
        last_report: Option<PromotionReport>,
        reports: Vec<PromotionReport>,
        calls: Mutex<Vec<&'static str>>,
    }

    fn error(status: StatusCode) -> AicError {
        AicError::from_response(ApiFamily::Promotion, status, None, br#"{"message":"busy"}"#)
    }

    impl PromotionApi for Fake {
        async fn lock(&self) -> Result<LockStart, AicError> {
            self.calls.lock().unwrap().push("lock");
            self.lock_answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("scripted")
                .map_err(error)
        }
        async fn lock_state(&self) -> Result<LockState, AicError> {
            self.calls.lock().unwrap().push("state");
            let result = self.states.lock().unwrap().pop_front().expect("scripted");
            Ok(LockState {
                result,
                promotion_id: Some("p1".into()),
                description: None,
                lower_env: None,
                upper_env: None,
            })
        }
        async fn unlock(&self, _: &str) -> Result<LockResult, AicError> {
            self.calls.lock().unwrap().push("unlock");
            self.unlock_answers
                .lock()
                .unwrap()
                .pop_front()
                .expect("scripted")
                .map_err(error)
        }
        async fn promote(&self, _: &PromotionRequest) -> Result<(), AicError> {
            Ok(())
        }
        async fn promotion_progress(&self) -> Result<PromotionProgress, AicError> {
            Ok(PromotionProgress::default())
        }
        async fn promotion_report(
            &self,
            id: Option<&str>,
        ) -> Result<Option<PromotionReport>, AicError> {
            Ok(match id {
                None => self.last_report.clone(),
                Some(id) => self
                    .reports
                    .iter()
                    .find(|r| r.report_id.as_deref() == Some(id))
                    .cloned(),
            })
        }
        async fn provisional_report(&self) -> Result<PromotionReport, AicError> {
            Ok(PromotionReport::default())
        }
        async fn rollback(&self, _: &RollbackRequest) -> Result<(), AicError> {
            Ok(())
        }
        async fn provisional_rollback_report(&self) -> Result<PromotionReport, AicError> {
            Ok(PromotionReport::default())
        }
        async fn list_promotion_reports(&self) -> Result<Vec<ReportMeta>, AicError> {
            Ok(self
                .reports
                .iter()
                .map(|r| ReportMeta {
                    report_id: r.report_id.clone(),
                    promotion_id: r.promotion_id.clone(),
                    dry_run: r.dry_run,
                    created_date: r.created_date.clone(),
                })
                .collect())
        }
    }

    fn poll() -> Poll {
        Poll {
            interval: Duration::from_millis(1),
            timeout: Duration::from_secs(10),
            max_consecutive_errors: 3,
        }
    }

    #[tokio::test]
    async fn a_conflicting_lock_is_followed_by_reading_the_state_again() {
        use LockResult::*;
        let fake = Fake {
            states: Mutex::new(vec![Unlocked, Locking, Locking, Locked].into()),
            lock_answers: Mutex::new(vec![Err(StatusCode::CONFLICT)].into()),
            ..Fake::default()
        };
        let mut seen = Vec::new();
        let id = ensure_locked(&fake, poll(), |id| seen.push(id.to_owned()))
            .await
            .unwrap();
        assert_eq!(id, "p1");
        assert_eq!(seen, ["p1"]);
        assert_eq!(
            *fake.calls.lock().unwrap(),
            ["state", "lock", "state", "state", "state"]
        );
    }

    #[tokio::test]
    async fn unlock_404_means_unlocked_and_409_means_read_again() {
        use LockResult::*;
        let fake = Fake {
            states: Mutex::new(vec![Locked].into()),
            unlock_answers: Mutex::new(vec![Err(StatusCode::NOT_FOUND)].into()),
            ..Fake::default()
        };
        ensure_unlocked(&fake, "p1", poll()).await.unwrap();
        assert_eq!(*fake.calls.lock().unwrap(), ["state", "unlock"]);

        let fake = Fake {
            states: Mutex::new(vec![Locked, Locked, Unlocking, Unlocked].into()),
            unlock_answers: Mutex::new(vec![Err(StatusCode::CONFLICT), Ok(Unlocking)].into()),
            ..Fake::default()
        };
        ensure_unlocked(&fake, "p1", poll()).await.unwrap();
        assert_eq!(
            *fake.calls.lock().unwrap(),
            ["state", "unlock", "state", "unlock", "state", "state"]
        );
    }

    #[tokio::test]
    async fn a_stale_last_report_is_not_taken_for_this_promotions() {
        let report = |id: &str, promotion: &str, dry: bool, date: &str| PromotionReport {
            report_id: Some(id.into()),
            promotion_id: Some(promotion.into()),
            dry_run: dry,
            created_date: Some(date.into()),
            ..PromotionReport::default()
        };
        let fake = Fake {
            last_report: Some(report("r0", "old", false, "2026-01-01")),
            reports: vec![
                report("r0", "old", false, "2026-01-01"),
                report("r1", "p1", true, "2026-01-02"),
                report("r2", "p1", true, "2026-01-03"),
            ],
            ..Fake::default()
        };
        let found = report_for(&fake, "p1", true).await.unwrap().unwrap();
        assert_eq!(found.report_id.as_deref(), Some("r2"));
        assert!(report_for(&fake, "p1", false).await.unwrap().is_none());
    }
}
