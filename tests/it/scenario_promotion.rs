//! Promotions and restarts under failure: a promotion AIC blocks mid-way ends `Failed` with
//! its reason and the lock released; a Promotion deleted mid-flight releases the lock; a
//! `Manual` restart waits for the approval annotation, and restart polling rides out 500s.

use crate::scenario_support;

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use pingone_aic_operator::crd::promotion::PromotionPhase;
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use pingone_aic_playground::{Playground, PlaygroundOptions};
use pingone_aic_sim::aic::Fault;
use scenario_support::*;

const PROMOTION: &str = r#"
apiVersion: pingone-aic.io/v1alpha1
kind: Promotion
metadata:
  name: dev-to-uat
  namespace: default
spec:
  from: acme-dev
  to: acme-uat
"#;

/// acme-dev and acme-uat, with an integration in acme-dev only: its placeholders reference
/// ESVs acme-uat does not have, which AIC's integrity check blocks.
async fn dev_and_uat(name: &str) -> (Playground, std::path::PathBuf) {
    let dir = examples_dir(
        name,
        &[
            ("01-secrets.yaml", example_secrets()),
            (
                "02-tenants.yaml",
                format!("{DEV_TENANT}\n---\n{UAT_TENANT}"),
            ),
        ],
    );
    let playground = start(dir.clone(), Duration::from_secs(30)).await;
    ready(&playground).await;
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("devonly", "Dev Worker", ""),
    )
    .await;
    ready(&playground).await;
    (playground, dir)
}

fn locks(playground: &Playground) -> (serde_json::Value, serde_json::Value) {
    let snapshot = playground.aic.snapshot();
    (
        snapshot["tenants"]["acme-dev"]["lock"].clone(),
        snapshot["tenants"]["acme-uat"]["lock"].clone(),
    )
}

async fn phase(playground: &Playground) -> Option<PromotionPhase> {
    let api: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    api.get("dev-to-uat").await.ok()?.status.map(|s| s.phase)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_blocked_midway_fails_and_unlocks() {
    let (playground, dir) = dev_and_uat("promotion-blocked").await;
    // The first lock attempts meet a 503 with Retry-After: transient, retried.
    playground.aic.inject_fault(Fault {
        tenant: Some("acme-uat".into()),
        method: Some("POST".into()),
        path: "/environment/promotion/lock".into(),
        status: Some(503),
        retry_after: Some(1),
        latency_ms: 0,
        count: 2,
    });
    apply_yaml::<Promotion>(&playground, PROMOTION).await;
    eventually("the promotion ends", || {
        let playground = &playground;
        async move { phase(playground).await.filter(|p| p.is_final()) }
    })
    .await;
    let api: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    let promotion = api.get("dev-to-uat").await.expect("the promotion");
    let (dev_lock, uat_lock) = locks(&playground);
    let uat_worker = playground.aic.snapshot()["tenants"]["acme-uat"]["realms"]["alpha"]["workers"]
        ["devonly-svc"]
        .clone();
    let locked = playground
        .aic
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path == "/environment/promotion/lock" && c.status < 300)
        .count();
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    let status = promotion.status.expect("a status");
    assert_eq!(status.phase, PromotionPhase::Failed);
    let failed = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Failed")
        .expect("a Failed condition");
    assert_eq!(failed.reason, "IntegrityCheckFailed");
    assert!(failed.message.contains("esv-devonly"), "{}", failed.message);
    assert!(
        locked >= 1,
        "the environments were locked once the faults passed"
    );
    assert!(
        dev_lock.is_null() && uat_lock.is_null(),
        "unlocked: {dev_lock} {uat_lock}"
    );
    assert!(uat_worker.is_null(), "nothing was promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_deleted_mid_flight_releases_the_lock() {
    let (playground, dir) = dev_and_uat("promotion-deleted").await;
    let mut timings = playground.aic.timings();
    timings.promotion_ms = 10_000;
    playground.aic.set_timings(timings);
    apply_yaml::<Promotion>(&playground, PROMOTION).await;
    eventually("the dry run under way", || {
        let playground = &playground;
        async move {
            phase(playground)
                .await
                .filter(|p| *p == PromotionPhase::DryRun)
        }
    })
    .await;
    let (_, held) = locks(&playground);
    assert!(!held.is_null(), "the lock is held during the dry run");
    let api: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    api.delete("dev-to-uat", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("the Promotion gone", || {
        let api = api.clone();
        async move {
            api.get_opt("dev-to-uat")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    let (dev_lock, uat_lock) = locks(&playground);
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        dev_lock.is_null() && uat_lock.is_null(),
        "unlocked: {dev_lock} {uat_lock}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_restart_waits_for_approval_and_polls_through_500s() {
    let dir = examples_dir(
        "manual-restart",
        &[
            ("01-secrets.yaml", example_secrets()),
            (
                "02-tenant.yaml",
                DEV_TENANT.replace("policy: Automatic", "policy: Manual"),
            ),
        ],
    );
    let playground = start_with(PlaygroundOptions {
        examples: dir.clone(),
        resync: Duration::from_secs(30),
        act_as_user: false,
        ..Default::default()
    })
    .await;
    ready(&playground).await;
    apply_yaml::<PingOneIntegration>(
        &playground,
        &worker_integration("manual", "Manual Worker", ""),
    )
    .await;
    let tenants: Api<TenantEnvironment> = Api::namespaced(playground.client.clone(), "default");
    eventually("the restart awaiting approval", || {
        let tenants = tenants.clone();
        async move {
            let tenant = tenants.get("acme-dev").await.ok()?;
            tenant
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "RestartPending" && c.reason == "AwaitingApproval")
                .then_some(())
        }
    })
    .await;
    // Past the debounce, still no restart without approval.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarts = |playground: &Playground| {
        playground
            .aic
            .calls()
            .iter()
            .filter(|c| {
                c.method == "POST"
                    && c.path == "/environment/startup"
                    && c.query.as_deref().is_some_and(|q| q.contains("restart"))
            })
            .count()
    };
    assert_eq!(restarts(&playground), 0, "no restart before approval");
    assert_eq!(
        integration_ready(&playground, "manual").await.map(|r| r.0),
        Some("False".to_owned())
    );
    // Restart polls meet three 500s on top of the simulator's own.
    playground.aic.inject_fault(Fault {
        tenant: Some("acme-dev".into()),
        method: Some("GET".into()),
        path: "/environment/startup".into(),
        status: Some(500),
        retry_after: None,
        latency_ms: 0,
        count: 3,
    });
    tenants
        .patch(
            "acme-dev",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"pingone-aic.io/approve-restart": "approved-1"}}})),
        )
        .await
        .expect("approved");
    ready(&playground).await;
    let count = restarts(&playground);
    let summary = playground.summary().await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(count, 1, "exactly one restart");
    assert_eq!(summary.restarts, 1);
}

/// The operator is killed mid-promotion and a new one takes over: it finds the promotion id in
/// the status, finishes the promotion and releases the lock; the integration becomes Ready in
/// uat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_promotion_finishes_it_after_a_restart() {
    let (mut playground, dir) = group_awaiting_promotion("promotion-restart").await;
    let mut timings = playground.aic.timings();
    timings.promotion_ms = 4_000;
    playground.aic.set_timings(timings);
    apply_yaml::<Promotion>(&playground, PROMOTION).await;
    eventually("the promotion under way", || {
        let playground = &playground;
        async move {
            phase(playground)
                .await
                .filter(|p| matches!(p, PromotionPhase::DryRun | PromotionPhase::Promoting))
        }
    })
    .await;
    playground
        .restart_operator(false)
        .await
        .expect("the operator restarts");
    let end = eventually("the promotion ends", || {
        let playground = &playground;
        async move { phase(playground).await.filter(|p| p.is_final()) }
    })
    .await;
    ready(&playground).await;
    let (dev_lock, uat_lock) = locks(&playground);
    let promotes = playground
        .aic
        .calls()
        .iter()
        .filter(|c| {
            c.tenant == "acme-uat"
                && c.method == "POST"
                && c.path == "/environment/promotion/lock"
                && c.status < 300
        })
        .count();
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(end, PromotionPhase::Succeeded);
    assert_eq!(promotes, 1, "locked once, never again after the restart");
    assert!(
        dev_lock.is_null() && uat_lock.is_null(),
        "unlocked: {dev_lock} {uat_lock}"
    );
}
