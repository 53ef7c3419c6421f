//! Promotion groups across PingOne regions. The playground serves each region's PingOne hosts
//! on an origin of their own, where other regions' environments do not exist, so a worker
//! service carrying the development environment's URLs fails `testConnection` in an upper
//! environment of another region.
//!
//! - dev and uat in EU, staging and production in NA, `service.regionalUrls: Literal`: refused
//!   as `RegionMismatch` with nothing written; switched to `Auto`, the group is promoted
//!   automatically and verified in every tier, the worker service carrying URL placeholders and
//!   each environment its own region's URLs.
//! - dev and uat both in EU: literal URLs and no URL ESVs; switched to `Placeholders`, the
//!   existing group converges (URL ESVs everywhere, the worker rewritten and promoted again,
//!   verified) without anything deleted, and back to literal URLs the same way.

use crate::scenario_support;

use std::time::Duration;

use base64::Engine;
use kube::api::{Api, Patch, PatchParams};
use pingone_aic_operator::crd::PingOneIntegration;
use pingone_aic_operator::crd::promotion::PromotionPhase;
use pingone_aic_playground::{Playground, PlaygroundOptions};
use scenario_support::*;

const API_URL_ESV: &str = "esv-pingone-api-url";
const AUTH_URL_ESV: &str = "esv-pingone-auth-url";
const WORKER: &str = "pingone-worker-aic";

/// The operator's admin worker of the NA organization (the example one is in EU, and an
/// organization's environments are all in one region).
const NA_ADMIN_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: pingone-admin-worker-na
type: Opaque
stringData:
  clientId: 9a9a9a9a-0000-4000-8000-000000000002
  clientSecret: example-na-admin-client-secret-not-real
  environmentId: 88888888-8888-4888-8888-888888888888
"#;

/// One TenantEnvironment of the example group, restarts automatic.
fn tenant(name: &str, tier: &str, from: Option<&str>, number: u8, region: &str) -> String {
    let admin = if region == "EU" {
        "pingone-admin-worker"
    } else {
        "pingone-admin-worker-na"
    };
    let promotes_from = from
        .map(|f| format!("\n  promotesFrom: {f}"))
        .unwrap_or_default();
    let n = number.to_string().repeat(8);
    let m = number.to_string().repeat(4);
    format!(
        r#"
apiVersion: pingone-aic.io/v1alpha1
kind: TenantEnvironment
metadata:
  name: {name}
spec:
  tenantUrl: https://openam-{name}.id.forgerock.io
  tier: {tier}{promotes_from}
  realm: alpha
  serviceAccount:
    id: 2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e0{number}
    privateKeySecretRef:
      name: aic-{name}-service-account
      key: jwk
  pingOne:
    environmentId: {n}-{m}-4{m2}-8{m2}-{n}{m}
    region: {region}
    adminCredentialsSecretRef:
      name: {admin}
  restart:
    policy: Automatic
    debounce: 1s
"#,
        m2 = &m[..3],
    )
}

/// The example worker integration over `environments`, promoted automatically.
fn integration(environments: &[&str], regional_urls: &str) -> String {
    let listed: String = environments
        .iter()
        .map(|e| format!("\n    - name: {e}"))
        .collect();
    format!(
        r#"
apiVersion: pingone-aic.io/v1alpha1
kind: PingOneIntegration
metadata:
  name: acme-worker
spec:
  credentialType: WorkerApplication
  environments:{listed}
  workerApplication:
    name: Advanced Identity Cloud Worker
    adoptExisting: true
  service:
    regionalUrls: {regional_urls}
  promotion:
    policy: Automatic
"#
    )
}

async fn start_group(name: &str, tenants: &[String], regional_urls: &str) -> Playground {
    let names: Vec<String> = tenants
        .iter()
        .map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("  name: "))
                .expect("a name")
                .to_owned()
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = examples_dir(
        name,
        &[
            (
                "01-secrets.yaml",
                format!("{}\n---\n{NA_ADMIN_SECRET}", example_secrets()),
            ),
            ("02-tenants.yaml", tenants.join("\n---\n")),
            ("03-integration.yaml", integration(&names, regional_urls)),
        ],
    );
    let playground = start_with(PlaygroundOptions {
        examples: dir.clone(),
        resync: Duration::from_secs(30),
        act_as_user: false,
        ..Default::default()
    })
    .await;
    let _ = std::fs::remove_dir_all(dir);
    playground
}

/// The acme group with dev and uat in EU, staging and production in NA.
fn two_region_tenants() -> Vec<String> {
    vec![
        tenant("acme-dev", "development", None, 1, "EU"),
        tenant("acme-uat", "uat", Some("acme-dev"), 2, "EU"),
        tenant("acme-staging", "staging", Some("acme-uat"), 3, "NA"),
        tenant("acme-prod", "production", Some("acme-staging"), 4, "NA"),
    ]
}

fn variable(snapshot: &serde_json::Value, tenant: &str, id: &str) -> Option<String> {
    let text = snapshot["tenants"][tenant]["variables"][id]["valueBase64"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64");
    Some(String::from_utf8(bytes).expect("UTF-8"))
}

fn worker(snapshot: &serde_json::Value, tenant: &str) -> serde_json::Value {
    snapshot["tenants"][tenant]["realms"]["alpha"]["workers"][WORKER].clone()
}

async fn set_regional_urls(playground: &Playground, mode: &str) {
    let api: Api<PingOneIntegration> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    api.patch(
        "acme-worker",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"service": {"regionalUrls": mode}}})),
    )
    .await
    .expect("the integration is patched");
}

/// The last `testConnection` answer in each tenant.
fn last_connection_tests(playground: &Playground) -> std::collections::BTreeMap<String, u16> {
    playground
        .aic
        .calls()
        .iter()
        .filter(|c| {
            c.query
                .as_deref()
                .is_some_and(|q| q.contains("testConnection"))
        })
        .map(|c| (c.tenant.clone(), c.status))
        .collect()
}

/// Every environment of the integration verified, and the Promotions it created succeeded.
async fn verified_everywhere(playground: &Playground, environments: &[&str]) {
    let api: Api<PingOneIntegration> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    let status = api
        .get("acme-worker")
        .await
        .expect("acme-worker")
        .status
        .expect("a status");
    for name in environments {
        let env = status
            .environments
            .iter()
            .find(|e| &e.name == name)
            .unwrap_or_else(|| panic!("{name} in the status"));
        assert!(env.connection_verified, "{name} verified");
        assert!(env.service_configured && env.label_mapped, "{name}");
    }
    let tests = last_connection_tests(playground);
    for name in environments {
        assert_eq!(
            tests.get(*name),
            Some(&200),
            "last testConnection in {name}"
        );
    }
    let promotions: Api<pingone_aic_operator::crd::Promotion> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    for promotion in promotions.list(&Default::default()).await.unwrap().items {
        assert_eq!(
            promotion.status.map(|s| s.phase),
            Some(PromotionPhase::Succeeded)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_region_group_is_refused_literal_then_promoted_with_placeholders() {
    let playground = start_group("regions-two", &two_region_tenants(), "Literal").await;
    let (status, _, message) = eventually("the integration reports the mismatch", || {
        let playground = &playground;
        async move {
            integration_ready(playground, "acme-worker")
                .await
                .filter(|(_, reason, _)| reason == "RegionMismatch")
        }
    })
    .await;
    assert_eq!(status, "False");
    for part in ["acme-dev (EU", "acme-staging (NA", "Auto or Placeholders"] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    // Nothing of the integration was written anywhere: no worker service, no ESV, no
    // application in PingOne.
    let snapshot = playground.aic.snapshot();
    assert!(worker(&snapshot, "acme-dev").is_null(), "no worker in dev");
    let integration_writes: Vec<String> = aic_writes(&playground.aic.calls())
        .into_iter()
        .filter(|w| w.contains("/environment/") || w.contains("pingOneWorkerService"))
        .filter(|w| !w.contains("/environment/restart"))
        .collect();
    assert_eq!(integration_writes, Vec::<String>::new());
    assert_eq!(
        pingone_writes(&playground.pingone_control.calls()),
        Vec::<String>::new()
    );

    set_regional_urls(&playground, "Auto").await;
    ready(&playground).await;
    let environments = ["acme-dev", "acme-uat", "acme-staging", "acme-prod"];
    verified_everywhere(&playground, &environments).await;
    let snapshot = playground.aic.snapshot();
    let eu = &playground.pingone_region_urls["EU"];
    let na = &playground.pingone_region_urls["NA"];
    assert_ne!(eu, na);
    for (name, origin) in [
        ("acme-dev", eu),
        ("acme-uat", eu),
        ("acme-staging", na),
        ("acme-prod", na),
    ] {
        assert_eq!(
            variable(&snapshot, name, API_URL_ESV),
            Some(format!("{origin}/v1")),
            "{name}"
        );
        assert_eq!(
            variable(&snapshot, name, AUTH_URL_ESV),
            Some(origin.clone()),
            "{name}"
        );
        // The same configuration in every tier, written in dev and promoted.
        let worker = worker(&snapshot, name);
        assert_eq!(worker["apiUrl"], "&{esv.pingone.api.url}", "{name}");
        assert_eq!(worker["authUrl"], "&{esv.pingone.auth.url}", "{name}");
    }
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_region_group_keeps_literal_urls_until_placeholders_are_asked_for() {
    let tenants = vec![
        tenant("acme-dev", "development", None, 1, "EU"),
        tenant("acme-uat", "uat", Some("acme-dev"), 2, "EU"),
    ];
    let environments = ["acme-dev", "acme-uat"];
    let playground = start_group("regions-same", &tenants, "Auto").await;
    ready(&playground).await;
    verified_everywhere(&playground, &environments).await;
    let eu = playground.pingone_region_urls["EU"].clone();
    let snapshot = playground.aic.snapshot();
    for name in environments {
        assert_eq!(
            worker(&snapshot, name)["apiUrl"],
            format!("{eu}/v1"),
            "{name}"
        );
        assert_eq!(worker(&snapshot, name)["authUrl"], eu.as_str(), "{name}");
        for id in [API_URL_ESV, AUTH_URL_ESV] {
            assert_eq!(variable(&snapshot, name, id), None, "{name} {id}");
        }
    }
    assert!(
        !aic_writes(&playground.aic.calls())
            .iter()
            .any(|w| w.contains("url")),
        "no URL ESV was written"
    );
    let variables_before: Vec<String> = snapshot["tenants"]["acme-dev"]["variables"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();

    set_regional_urls(&playground, "Placeholders").await;
    eventually("uat holds the placeholder worker by promotion", || {
        let playground = &playground;
        async move {
            let snapshot = playground.aic.snapshot();
            (worker(&snapshot, "acme-uat")["apiUrl"] == "&{esv.pingone.api.url}").then_some(())
        }
    })
    .await;
    ready(&playground).await;
    verified_everywhere(&playground, &environments).await;
    let snapshot = playground.aic.snapshot();
    for name in environments {
        assert_eq!(
            variable(&snapshot, name, API_URL_ESV),
            Some(format!("{eu}/v1"))
        );
        assert_eq!(variable(&snapshot, name, AUTH_URL_ESV), Some(eu.clone()));
        assert_eq!(
            worker(&snapshot, name)["authUrl"],
            "&{esv.pingone.auth.url}"
        );
    }
    for id in variables_before {
        assert!(
            !snapshot["tenants"]["acme-dev"]["variables"][&id].is_null(),
            "{id} is kept"
        );
    }
    assert!(urls_hashes(&playground).await.iter().all(Option::is_some));

    // And back: literal URLs again, promoted; the URL variables stay, unreferenced.
    set_regional_urls(&playground, "Auto").await;
    eventually("uat holds the literal worker again by promotion", || {
        let playground = &playground;
        let literal = format!("{eu}/v1");
        async move {
            let snapshot = playground.aic.snapshot();
            (worker(&snapshot, "acme-uat")["apiUrl"] == literal.as_str()).then_some(())
        }
    })
    .await;
    ready(&playground).await;
    verified_everywhere(&playground, &environments).await;
    let snapshot = playground.aic.snapshot();
    for name in environments {
        assert_eq!(worker(&snapshot, name)["authUrl"], eu.as_str(), "{name}");
        assert_eq!(variable(&snapshot, name, AUTH_URL_ESV), Some(eu.clone()));
    }
    assert!(urls_hashes(&playground).await.iter().all(Option::is_none));
    playground.stop().await;
}

/// `urlsHash` of each environment in the integration's status.
async fn urls_hashes(playground: &Playground) -> Vec<Option<String>> {
    let api: Api<PingOneIntegration> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    let status = api.get("acme-worker").await.unwrap().status.unwrap();
    status
        .environments
        .into_iter()
        .map(|e| e.urls_hash)
        .collect()
}
