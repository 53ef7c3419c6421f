//! Promotions that check and undo: the dry run's integrity report stops a promotion before
//! anything changes; a promoted worker service that fails its connection test in the upper
//! environment is rolled back with AIC's rollback (`rollbackOnFailure`), the upper environment
//! is checked to be as before, and the lock is released — also when the operator restarts in
//! the middle of the rollback — or, without `rollbackOnFailure`, the Promotion fails and the
//! promoted configuration stays.

use crate::scenario_support;

use kube::api::Api;
use pingone_aic_operator::crd::Promotion;
use pingone_aic_operator::crd::promotion::{PromotionPhase, PromotionStatus, WorkerState};
use pingone_aic_playground::Playground;
use pingone_aic_sim::aic::Fault;
use scenario_support::*;

const WORKER_PATH: &str = "/am/json/realms/root/realms/alpha/realm-config/services/pingOneWorkerService/workers/group-svc";

fn promotion(name: &str, rollback_on_failure: bool) -> String {
    format!(
        r#"
apiVersion: pingone-aic.io/v1alpha1
kind: Promotion
metadata:
  name: {name}
  namespace: default
spec:
  from: acme-dev
  to: acme-uat
  rollbackOnFailure: {rollback_on_failure}
"#
    )
}

async fn status(playground: &Playground, name: &str) -> Option<PromotionStatus> {
    let api: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    api.get(name).await.ok()?.status
}

async fn finished(playground: &Playground, name: &str) -> PromotionStatus {
    eventually("the promotion ends", || async move {
        status(playground, name)
            .await
            .filter(|s| s.phase.is_final())
    })
    .await
}

/// The next `count` connection tests of the group's worker in acme-uat fail as AM reports a
/// PingOne that refuses the credential.
fn fail_connection_tests(playground: &Playground, count: u32) {
    playground.aic.inject_fault(Fault {
        tenant: Some("acme-uat".into()),
        method: Some("POST".into()),
        path: WORKER_PATH.into(),
        status: Some(400),
        retry_after: None,
        latency_ms: 0,
        count,
    });
}

fn unlocked(playground: &Playground) -> bool {
    let snapshot = playground.aic.snapshot();
    snapshot["tenants"]["acme-dev"]["lock"].is_null()
        && snapshot["tenants"]["acme-uat"]["lock"].is_null()
}

fn uat_worker(playground: &Playground) -> serde_json::Value {
    playground.aic.snapshot()["tenants"]["acme-uat"]["realms"]["alpha"]["workers"]["group-svc"]
        .clone()
}

fn calls(playground: &Playground, method: &str, path: &str) -> usize {
    playground
        .aic
        .calls()
        .iter()
        .filter(|c| {
            c.tenant == "acme-uat" && c.method == method && c.path == path && c.status < 300
        })
        .count()
}

fn condition<'s>(status: &'s PromotionStatus, type_: &str) -> (&'s str, &'s str, &'s str) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("a {type_} condition in {:?}", status.conditions));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_embedded_in_the_configuration_stop_the_promotion_at_the_dry_run() {
    let (playground, dir) = group_awaiting_promotion("promotion-embedded-secret").await;
    playground
        .aic
        .seed_embedded_secret("acme-dev", "Journeys > Login > HTTP Client node");
    apply_yaml::<Promotion>(&playground, &promotion("dev-to-uat", true)).await;
    let end = finished(&playground, "dev-to-uat").await;
    let promotes = playground
        .aic
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/environment/promotion/promote")
        .count();
    let (worker, unlocked) = (uat_worker(&playground), unlocked(&playground));
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_eq!(end.phase, PromotionPhase::Failed);
    let (_, reason, message) = condition(&end, "Failed");
    assert_eq!(reason, "EncryptedSecrets");
    assert!(message.contains("HTTP Client node"), "{message}");
    assert_eq!(
        end.report.expect("a report").encrypted_secrets,
        vec!["Journeys > Login > HTTP Client node".to_owned()]
    );
    assert_eq!(promotes, 1, "the dry run only");
    assert!(end.before_promotion.is_none(), "never got to promote");
    assert!(worker.is_null(), "nothing was promoted");
    assert!(unlocked, "the lock was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_failing_verification_is_rolled_back_across_an_operator_restart() {
    let (mut playground, dir) = group_awaiting_promotion("promotion-rollback-restart").await;
    fail_connection_tests(&playground, 1);
    // Long enough runs that the operator can be restarted while the rollback runs.
    let mut timings = playground.aic.timings();
    timings.promotion_ms = 3_000;
    playground.aic.set_timings(timings);
    apply_yaml::<Promotion>(&playground, &promotion("dev-to-uat", true)).await;
    eventually("the rollback under way", || {
        let playground = &playground;
        async move {
            status(playground, "dev-to-uat")
                .await
                .filter(|s| s.phase == PromotionPhase::RollingBack && s.rollback_report.is_some())
        }
    })
    .await;
    playground
        .restart_operator(false)
        .await
        .expect("the operator restarts");
    let end = finished(&playground, "dev-to-uat").await;
    let rollbacks = calls(&playground, "POST", "/environment/promotion/rollback");
    let (worker, unlocked) = (uat_worker(&playground), unlocked(&playground));
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_eq!(
        end.phase,
        PromotionPhase::RolledBack,
        "{:?}",
        end.conditions
    );
    let (verified, reason, message) = condition(&end, "Verified");
    assert_eq!((verified, reason), ("False", "VerificationFailed"));
    assert!(message.contains("group-svc"), "{message}");
    let (rolled_back, _, message) = condition(&end, "RolledBack");
    assert_eq!(rolled_back, "True");
    assert!(message.contains("as before the promotion"), "{message}");
    assert_eq!(condition(&end, "Ready").1, "RolledBack");
    let before = end.before_promotion.expect("what uat held before");
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].state, WorkerState::Absent);
    assert!(
        end.rollback_report
            .expect("the provisional report")
            .changed_items
            > 0,
        "the rollback removes the promoted worker"
    );
    assert_eq!(rollbacks, 1, "one rollback, none again after the restart");
    assert!(worker.is_null(), "uat is back to no worker service");
    assert!(unlocked, "the lock was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_second_promotion_is_rolled_back_to_the_working_one() {
    let (playground, dir) = group_awaiting_promotion("promotion-rollback-working").await;
    apply_yaml::<Promotion>(&playground, &promotion("first", true)).await;
    assert_eq!(
        finished(&playground, "first").await.phase,
        PromotionPhase::Succeeded
    );
    ready(&playground).await;
    let promoted = uat_worker(&playground);
    assert!(
        !promoted.is_null(),
        "the first promotion brought the worker"
    );

    // The next test in uat fails (the promoted configuration), the one after the rollback
    // passes (the configuration from before).
    fail_connection_tests(&playground, 1);
    apply_yaml::<Promotion>(&playground, &promotion("second", true)).await;
    let end = finished(&playground, "second").await;
    let (worker, unlocked) = (uat_worker(&playground), unlocked(&playground));
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_eq!(
        end.phase,
        PromotionPhase::RolledBack,
        "{:?}",
        end.conditions
    );
    let before = end.before_promotion.expect("what uat held before");
    assert_eq!(before[0].state, WorkerState::Verified);
    assert_eq!(
        worker, promoted,
        "uat holds the worker of the first promotion"
    );
    assert!(unlocked, "the lock was released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rollback_a_failed_verification_fails_and_keeps_the_promotion() {
    let (playground, dir) = group_awaiting_promotion("promotion-verification-failed").await;
    fail_connection_tests(&playground, 1);
    apply_yaml::<Promotion>(&playground, &promotion("dev-to-uat", false)).await;
    let end = finished(&playground, "dev-to-uat").await;
    let rollbacks = calls(&playground, "POST", "/environment/promotion/rollback");
    let (worker, unlocked) = (uat_worker(&playground), unlocked(&playground));
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    assert_eq!(end.phase, PromotionPhase::Failed);
    let (_, reason, message) = condition(&end, "Failed");
    assert_eq!(reason, "VerificationFailed");
    assert!(message.contains("rollbackOnFailure is off"), "{message}");
    assert_eq!(rollbacks, 0);
    assert!(!worker.is_null(), "the promoted configuration stays");
    assert!(unlocked, "the lock was released");
}
