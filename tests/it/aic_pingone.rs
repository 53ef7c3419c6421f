//! Both simulators together: the AIC simulator's `testConnection` obtains a real token from the
//! PingOne simulator's token endpoint with the worker credentials stored as ESVs, and reads the
//! environment with it.

use crate::aic_common;

use aic_common::*;
use pingone_aic_operator::aic::am::{self, client_secret_label};
use pingone_aic_operator::aic::esv::{self, placeholder};
use pingone_aic_operator::aic::startup;
use pingone_aic_operator::aic::{AicClient, AmApi, ConnectionTest, EsvApi, Worker};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::config::SimConfig;
use pingone_aic_sim::control::{SimControl, serve_loopback};
use pingone_aic_sim::pingone::PingOneSim;

const SEED: &str = r#"
pingone:
  organizations:
    - name: Example Corp
      environments:
        - { name: Dev, region: EU }
  workers:
    - name: aic-worker
      environment: Dev
      secret: aic-worker-secret-0123456789-0123456789-0123456789-0123456789-ab
      roles:
        - { role: Identity Data Admin, scope: Dev }
"#;

/// The worker service `pingone-worker-aic` in `dev` with placeholders for its client id and
/// environment id, the given URLs, its secret label mapped to the ESV secret; then the restart
/// that loads what is pending.
async fn configure_worker(dev: &AicClient, api_url: String, auth_url: String) {
    am::ensure_worker_service(dev).await.unwrap();
    let worker = Worker {
        client_id: placeholder("esv-pingone-worker-client-id"),
        environment_id: placeholder("esv-pingone-environment-id"),
        client_secret_purpose: "pingoneworkeraic".into(),
        api_url,
        auth_url,
        ..Worker::default()
    };
    am::upsert_worker(dev, "pingone-worker-aic", &worker)
        .await
        .unwrap();
    am::upsert_mapping(
        dev,
        &client_secret_label("pingoneworkeraic"),
        "esv-pingone-worker-client-secret",
    )
    .await
    .unwrap();
    startup::restart_if_pending(dev, Some(poll()))
        .await
        .unwrap();
}

#[tokio::test]
async fn test_connection_reaches_the_pingone_simulator() {
    let seed = SimConfig::parse(SEED).unwrap();
    let pingone = PingOneSim::new(seed.pingone, SimControl::new()).unwrap();
    let server = serve_loopback(pingone.app()).await.unwrap();
    let seeded = pingone
        .workers()
        .into_iter()
        .find(|w| w.name == "aic-worker")
        .unwrap();

    let (_aic, running) = start(instant()).await;
    let dev = client(&running, "dev");
    esv::upsert_variable(
        &dev,
        "esv-pingone-worker-client-id",
        &seeded.id,
        "client id",
        "string",
    )
    .await
    .unwrap();
    esv::upsert_variable(
        &dev,
        "esv-pingone-environment-id",
        &seeded.environment_id,
        "environment id",
        "string",
    )
    .await
    .unwrap();
    esv::push_secret(
        &dev,
        "esv-pingone-worker-client-secret",
        &SecretString::new(seeded.secret.clone()),
        "client secret",
        true,
    )
    .await
    .unwrap();
    configure_worker(
        &dev,
        format!("{}/v1", server.base_url),
        server.base_url.clone(),
    )
    .await;

    match dev.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Succeeded(body) => {
            assert_eq!(body["environmentId"], seeded.environment_id.as_str());
            assert_eq!(body["environmentName"], "Dev");
            assert_eq!(body["region"], "Europe");
        }
        other => panic!("{other:?}"),
    }

    // A secret PingOne does not know, as the only enabled version: PingOne refuses it.
    esv::push_secret(
        &dev,
        "esv-pingone-worker-client-secret",
        &SecretString::new("not-the-secret"),
        "client secret",
        true,
    )
    .await
    .unwrap();
    let versions = dev
        .list_secret_versions("esv-pingone-worker-client-secret")
        .await
        .unwrap();
    assert_eq!(esv::active_version(&versions), Some("2"));
    esv::disable_other_versions(&dev, "esv-pingone-worker-client-secret", &versions, "2")
        .await
        .unwrap();
    match dev.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Failed { message, .. } => {
            assert!(
                message.contains("Failed to retrieve PingOne Worker access token"),
                "{message}"
            );
            assert!(message.contains("401"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    running.stop().await;
}

#[tokio::test]
async fn test_connection_resolves_url_placeholders_and_needs_the_environment_s_region() {
    let seed = SimConfig::parse(SEED).unwrap();
    let pingone = PingOneSim::new(seed.pingone, SimControl::new()).unwrap();
    let eu = serve_loopback(pingone.regional_app("EU")).await.unwrap();
    let na = serve_loopback(pingone.regional_app("NA")).await.unwrap();
    let seeded = pingone
        .workers()
        .into_iter()
        .find(|w| w.name == "aic-worker")
        .unwrap();

    let (_aic, running) = start(instant()).await;
    let dev = client(&running, "dev");
    for (id, value) in [
        ("esv-pingone-worker-client-id", seeded.id.as_str()),
        ("esv-pingone-environment-id", seeded.environment_id.as_str()),
    ] {
        esv::upsert_variable(&dev, id, value, "worker", "string")
            .await
            .unwrap();
    }
    esv::push_secret(
        &dev,
        "esv-pingone-worker-client-secret",
        &SecretString::new(seeded.secret.clone()),
        "client secret",
        false,
    )
    .await
    .unwrap();
    configure_worker(
        &dev,
        placeholder("esv-pingone-api-url"),
        placeholder("esv-pingone-auth-url"),
    )
    .await;

    // No URL variables yet: AM cannot resolve the placeholders.
    match dev.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Failed { message, .. } => {
            assert!(
                message.contains("Unable to resolve configuration placeholder"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Another region's hosts: the EU environment does not exist there.
    let dev = &dev;
    let write_urls = |origin: String| async move {
        for (id, value) in [
            ("esv-pingone-api-url", format!("{origin}/v1")),
            ("esv-pingone-auth-url", origin.clone()),
        ] {
            esv::upsert_variable(dev, id, &value, "url", "string")
                .await
                .unwrap();
        }
        startup::restart_if_pending(dev, Some(poll()))
            .await
            .unwrap();
    };
    write_urls(na.base_url.clone()).await;
    match dev.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Failed { message, .. } => {
            assert!(message.contains("404"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // Its own region's hosts, loaded by a restart: the connection works.
    write_urls(eu.base_url.clone()).await;
    match dev.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Succeeded(body) => {
            assert_eq!(body["environmentId"], seeded.environment_id.as_str());
            assert_eq!(body["apiServerUrl"], format!("{}/v1", eu.base_url));
            assert_eq!(body["region"], "Europe");
        }
        other => panic!("{other:?}"),
    }
    running.stop().await;
}
