//! The example promotion group (development → uat → staging → production, plus a sandbox) with
//! `promotion.policy: Automatic` and automatic restarts everywhere, and nobody acting as the
//! user: from nothing to every environment Ready with the connection verified, through the
//! Promotions the integration creates itself, in group order, every lock released.

use crate::scenario_support;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use pingone_aic_operator::controller::integration::INTEGRATION_LABEL;
use pingone_aic_operator::crd::promotion::PromotionPhase;
use pingone_aic_operator::crd::{PingOneIntegration, Promotion};
use pingone_aic_playground::{PlaygroundOptions, repository_examples};
use scenario_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_promotion_carries_the_group_to_ready() {
    let read = |file: &str| {
        std::fs::read_to_string(repository_examples().join(file)).expect("an example file")
    };
    let dir = examples_dir(
        "automatic",
        &[
            ("01-secrets.yaml", read("01-secrets.yaml")),
            (
                "02-tenant-environments.yaml",
                read("02-tenant-environments.yaml").replace("policy: Manual", "policy: Automatic"),
            ),
            (
                "03-pingone-integration-worker.yaml",
                read("03-pingone-integration-worker.yaml")
                    .replace("policy: Manual", "policy: Automatic"),
            ),
            (
                "04-pingone-integration-product-connection.yaml",
                read("04-pingone-integration-product-connection.yaml"),
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
    let promotions: Api<Promotion> = Api::namespaced(playground.client.clone(), "default");
    let list = promotions
        .list(&Default::default())
        .await
        .expect("promotions")
        .items;
    let integrations: Api<PingOneIntegration> =
        Api::namespaced(playground.client.clone(), "default");
    let worker = integrations.get("acme-worker").await.expect("acme-worker");
    let snapshot = playground.aic.snapshot();
    let summary = playground.summary().await;
    playground.stop().await;
    let _ = std::fs::remove_dir_all(dir);

    let mut pairs: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            assert_eq!(
                p.labels().get(INTEGRATION_LABEL).map(String::as_str),
                Some("acme-worker"),
                "created by the integration"
            );
            assert_eq!(
                p.status.as_ref().map(|s| s.phase),
                Some(PromotionPhase::Succeeded)
            );
            (p.spec.from.clone(), p.spec.to.clone())
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("acme-dev".to_owned(), "acme-uat".to_owned()),
            ("acme-staging".to_owned(), "acme-prod".to_owned()),
            ("acme-uat".to_owned(), "acme-staging".to_owned()),
        ]
    );
    let status = worker.status.expect("a status");
    for env in &status.environments {
        assert!(env.connection_verified, "{} verified", env.name);
        assert!(env.service_configured && env.label_mapped, "{}", env.name);
    }
    for tenant in [
        "acme-dev",
        "acme-uat",
        "acme-staging",
        "acme-prod",
        "acme-sandbox",
    ] {
        assert!(
            snapshot["tenants"][tenant]["lock"].is_null(),
            "{tenant} unlocked"
        );
        assert!(
            !snapshot["tenants"][tenant]["variables"]["esv-pingone-environment-id"].is_null()
                || tenant == "acme-sandbox",
            "{tenant} has the ESVs"
        );
    }
    assert_eq!(summary.promotions, 3);
    eprintln!("{summary:?}");
}
