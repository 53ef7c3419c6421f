//! The AIC client against the AIC simulator over loopback HTTP: authentication, ESVs,
//! restarts, the worker service and mappings, testConnection against a stand-in PingOne, tier
//! immutability and promotions.
// The simulator is a development tool, absent from `--no-default-features` builds.

use crate::aic_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aic_common::*;
use pingone_aic_operator::aic::am::{self, WorkerOutcome, client_secret_label};
use pingone_aic_operator::aic::auth::{ASSERTION_LIFETIME, ServiceAccountKey};
use pingone_aic_operator::aic::esv::{self, VariableOutcome, placeholder};
use pingone_aic_operator::aic::promotion::{self, PromotionRequest};
use pingone_aic_operator::aic::startup::{self, Poll, RestartOutcome};
use pingone_aic_operator::aic::{
    AicClient, AicError, AmApi, ConnectionTest, EsvApi, LockResult, PromotionApi, RestartApi,
    RestartStatus, VersionStatus, Worker,
};
use pingone_aic_operator::metrics::{ExternalCalls, Metrics};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::aic::{Fault, RunningAicSim};
use serde_json::{Value, json};

const VAR_CLIENT: &str = "esv-pingone-worker-client-id";
const VAR_ENV: &str = "esv-pingone-environment-id";
const SECRET: &str = "esv-pingone-worker-client-secret";
const IDENTIFIER: &str = "pingoneworkeraic";

async fn raw_token(
    base: &url::Url,
    aud: &str,
    exp_offset: i64,
    jwk: &str,
    scope: &str,
) -> (u16, Value) {
    let key = ServiceAccountKey::from_jwk(SA, &SecretString::new(jwk)).unwrap();
    let now = jiff::Timestamp::now();
    let issued = jiff::Timestamp::from_second(now.as_second() + exp_offset).unwrap();
    let assertion = key.sign_assertion(aud, issued, ASSERTION_LIFETIME).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{base}am/oauth2/access_token"))
        .form(&[
            ("client_id", "service-account"),
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.expose()),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn aud_of(base: &url::Url) -> String {
    format!(
        "http://{}:{}/am/oauth2/access_token",
        base.host_str().unwrap(),
        base.port().unwrap()
    )
}

async fn bearer(running: &RunningAicSim, tenant: &str) -> String {
    let base = running.url(tenant).unwrap();
    let (status, body) = raw_token(base, &aud_of(base), 0, JWK, &ALL_SCOPES.join(" ")).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn raw(
    running: &RunningAicSim,
    tenant: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let token = bearer(running, tenant).await;
    let url = format!(
        "{}{}",
        running.url(tenant).unwrap(),
        path.trim_start_matches('/')
    );
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("Accept-API-Version", "protocol=1.0,resource=1.0");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn worker(auth_url: &str) -> Worker {
    Worker {
        client_id: placeholder(VAR_CLIENT),
        environment_id: placeholder(VAR_ENV),
        client_secret_purpose: IDENTIFIER.into(),
        api_url: auth_url.to_owned(),
        auth_url: auth_url.to_owned(),
        ..Worker::default()
    }
}

/// Task 2 and 3 on one tenant: ESVs, worker, mapping.
async fn configure(client: &AicClient, pingone: &str, with_worker: bool) {
    esv::upsert_variable(
        client,
        VAR_CLIENT,
        CLIENT_ID,
        "PingOne worker client id",
        "string",
    )
    .await
    .unwrap();
    esv::upsert_variable(client, VAR_ENV, ENV_ID, "PingOne environment id", "string")
        .await
        .unwrap();
    esv::push_secret(
        client,
        SECRET,
        &SecretString::new(CLIENT_SECRET),
        "PingOne worker client secret",
        true,
    )
    .await
    .unwrap();
    if with_worker {
        am::ensure_worker_service(client).await.unwrap();
        am::upsert_worker(client, "pingone-worker-aic", &worker(pingone))
            .await
            .unwrap();
        am::upsert_mapping(client, &client_secret_label(IDENTIFIER), SECRET)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn jwt_with_wrong_aud_expired_exp_or_wrong_key_gets_invalid_grant() {
    let (sim, running) = start(instant()).await;
    let base = running.url("dev").unwrap().clone();
    let scope = "fr:am:*";
    let (status, body) = raw_token(&base, &aud_of(&base), 0, JWK, scope).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 899);
    assert_eq!(body["token_type"], "Bearer");

    let (status, body) = raw_token(
        &base,
        "https://evil.example.com:443/am/oauth2/access_token",
        0,
        JWK,
        scope,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = raw_token(&base, &aud_of(&base), -600, JWK, scope).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = raw_token(&base, &aud_of(&base), 0, OTHER_JWK, scope).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Clients that know only the host name send https and :443.
    let host_only = format!(
        "https://{}:443/am/oauth2/access_token",
        base.host_str().unwrap()
    );
    let (status, body) = raw_token(&base, &host_only, 0, JWK, scope).await;
    assert_eq!(status, 200, "{body}");

    // A tenant known by a public https origin accepts aud with and without :443.
    sim.set_origin(
        "dev",
        url::Url::parse("https://dev.tenant.example.com").unwrap(),
    );
    for aud in [
        "https://dev.tenant.example.com:443/am/oauth2/access_token",
        "https://dev.tenant.example.com/am/oauth2/access_token",
    ] {
        let (status, body) = raw_token(&base, aud, 0, JWK, scope).await;
        assert_eq!(status, 200, "{aud}: {body}");
    }
    running.stop().await;
}

#[tokio::test]
async fn scopes_not_granted_give_an_error_naming_them() {
    let (_sim, running) = start(instant()).await;
    let client = client_with(&running, "dev", SA, &["fr:am:*", "fr:idc:foo"], 0);
    let err = client.get_variable(VAR_CLIENT).await.unwrap_err();
    match &err {
        AicError::InvalidScope { scopes } => assert_eq!(scopes, &["fr:idc:foo"]),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("fr:idc:foo"));
    assert!(!err.is_transient());

    // A token without fr:am:* is refused by AM.
    let limited = client_with(&running, "dev", LIMITED_SA, &["fr:idc:esv:read"], 0);
    assert!(limited.get_variable(VAR_CLIENT).await.unwrap().is_none());
    let err = limited.get_worker_service().await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    let err = limited
        .put_variable(
            VAR_CLIENT,
            &esv::VariableWrite {
                value_base64: "eA==".into(),
                description: String::new(),
                expression_type: "string".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    running.stop().await;
}

#[tokio::test]
async fn tokens_are_cached_per_credential() {
    let (sim, running) = start(instant()).await;
    let client = client(&running, "dev");
    for _ in 0..3 {
        client.get_variable(VAR_CLIENT).await.unwrap();
    }
    let token_calls = sim
        .calls()
        .iter()
        .filter(|c| c.path == "/am/oauth2/access_token")
        .count();
    assert_eq!(token_calls, 1);
    running.stop().await;
}

#[tokio::test]
async fn variables_read_loaded_false_until_a_restart_completes() {
    let mut timings = instant();
    timings.restart_ms = 3_600_000;
    let (sim, running) = start(timings).await;
    let client = client(&running, "dev");
    let outcome = esv::upsert_variable(&client, VAR_CLIENT, CLIENT_ID, "d", "string")
        .await
        .unwrap();
    assert!(matches!(outcome, VariableOutcome::Created(_)));
    assert!(!outcome.variable().loaded);
    assert_eq!(client.pending_count().await.unwrap().variables, 1);

    // Unchanged value: no write at all.
    sim.clear_calls();
    let again = esv::upsert_variable(&client, VAR_CLIENT, CLIENT_ID, "d", "string")
        .await
        .unwrap();
    assert!(matches!(again, VariableOutcome::Unchanged(_)));
    assert!(sim.calls().iter().all(|c| c.method == "GET"));
    // A new description alone goes through setDescription, not a PUT of the value.
    sim.clear_calls();
    let described =
        esv::upsert_variable(&client, VAR_CLIENT, CLIENT_ID, "new description", "string")
            .await
            .unwrap();
    assert!(matches!(described, VariableOutcome::Updated(_)));
    assert!(sim.calls().iter().all(|c| c.method != "PUT"));
    assert_eq!(
        client
            .get_variable(VAR_CLIENT)
            .await
            .unwrap()
            .unwrap()
            .description,
        "new description"
    );

    assert_eq!(
        startup::restart_if_pending(&client, None).await.unwrap(),
        RestartOutcome::Restarted
    );
    assert_eq!(
        client.restart_status().await.unwrap(),
        RestartStatus::Restarting
    );
    assert!(
        !client
            .get_variable(VAR_CLIENT)
            .await
            .unwrap()
            .unwrap()
            .loaded
    );
    sim.advance_clock(Duration::from_secs(7200));
    startup::wait_until_ready(&client, poll()).await.unwrap();
    assert!(
        client
            .get_variable(VAR_CLIENT)
            .await
            .unwrap()
            .unwrap()
            .loaded
    );
    assert!(!client.pending_count().await.unwrap().any());
    assert_eq!(
        startup::restart_if_pending(&client, None).await.unwrap(),
        RestartOutcome::NothingPending
    );

    // expressionType is fixed at creation.
    let err = esv::upsert_variable(&client, VAR_CLIENT, "1", "d", "int")
        .await
        .unwrap_err();
    assert!(
        matches!(err, AicError::VariableTypeMismatch { .. }),
        "{err:?}"
    );
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("/environment/variables/{VAR_CLIENT}"),
        Some(json!({"valueBase64": "MQ==", "expressionType": "int"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Changing the type of an existing variable is not permitted"));
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        "/environment/variables/esv-new",
        Some(json!({"valueBase64": "MQ=="})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("expressionType cannot be empty"));
    // Bodies are checked against the spec's schema first: neither field is nullable, and the
    // type is one of the enum's values (reference: the validator's 400).
    for bad in [
        json!({"valueBase64": "MQ==", "expressionType": null}),
        json!({"valueBase64": "MQ==", "expressionType": ""}),
        json!({"valueBase64": "MQ==", "expressionType": "string", "description": null}),
    ] {
        let (status, body) = raw(
            &running,
            "dev",
            reqwest::Method::PUT,
            "/environment/variables/esv-new",
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert!(
            body.contains("request body has an error: doesn't match schema"),
            "{body}"
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn restart_polling_survives_three_500s() {
    let mut timings = instant();
    timings.restart_poll_failures = 3;
    let (sim, running) = start(timings).await;
    // No retries inside the client: the poll loop alone must tolerate the errors.
    let client = client_with(&running, "dev", SA, &ALL_SCOPES, 0);
    client.restart().await.unwrap();
    startup::wait_until_ready(
        &client,
        Poll {
            max_consecutive_errors: 3,
            ..poll()
        },
    )
    .await
    .unwrap();
    let failures = sim
        .calls()
        .iter()
        .filter(|c| c.path == "/environment/startup" && c.method == "GET" && c.status == 500)
        .count();
    assert_eq!(failures, 3);

    // Tolerating fewer errors than AIC produces fails.
    client.restart().await.unwrap();
    let err = startup::wait_until_ready(
        &client,
        Poll {
            max_consecutive_errors: 2,
            ..poll()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    running.stop().await;
}

#[tokio::test]
async fn secret_values_are_never_returned_and_same_value_makes_no_version() {
    let (sim, running) = start(instant()).await;
    let client = client(&running, "dev");
    let value = SecretString::new(CLIENT_SECRET);
    let first = esv::push_secret(&client, SECRET, &value, "d", true)
        .await
        .unwrap();
    assert_eq!(
        (first.created, first.new_version, first.version.as_str()),
        (true, true, "1")
    );
    let second = esv::push_secret(&client, SECRET, &value, "d", true)
        .await
        .unwrap();
    assert_eq!(
        (second.created, second.new_version, second.version.as_str()),
        (false, false, "1")
    );
    assert_eq!(client.list_secret_versions(SECRET).await.unwrap().len(), 1);
    let third = esv::push_secret(
        &client,
        SECRET,
        &SecretString::new("rotated-Zq82"),
        "d",
        true,
    )
    .await
    .unwrap();
    assert_eq!((third.new_version, third.version.as_str()), (true, "2"));
    let secret = client.get_secret(SECRET).await.unwrap().unwrap();
    assert_eq!(secret.active_version, "2");
    assert!(secret.is_pending());

    // Create-only PUT.
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("/environment/secrets/{SECRET}"),
        Some(json!({"valueBase64": "eA==", "encoding": "generic", "useInPlaceholders": true})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("the secret already exists"));

    // Nothing the API returns, nor the control API's state, carries the value.
    let encoded = esv::encode_value(CLIENT_SECRET);
    for path in [
        format!("/environment/secrets/{SECRET}"),
        "/environment/secrets".to_owned(),
        format!("/environment/secrets/{SECRET}/versions"),
        format!("/environment/secrets/{SECRET}/versions/1"),
        format!("/environment/secrets/{SECRET}/versions/latest"),
        "/_sim/state".to_owned(),
    ] {
        let (status, body) = raw(&running, "dev", reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.contains(CLIENT_SECRET) && !body.contains(&encoded),
            "{path} leaked the value"
        );
    }
    assert!(!sim.snapshot().to_string().contains(&encoded));

    // The latest version cannot be disabled or destroyed; older ones can, and stay listed.
    let err = client
        .set_secret_version_status(SECRET, "2", VersionStatus::Disabled)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Cannot disable latest secret version")
    );
    assert!(client.destroy_secret_version(SECRET, "2").await.is_err());
    assert_eq!(
        esv::disable_other_versions(
            &client,
            SECRET,
            &client.list_secret_versions(SECRET).await.unwrap(),
            "2"
        )
        .await
        .unwrap(),
        ["1"]
    );
    let destroyed = client.destroy_secret_version(SECRET, "1").await.unwrap();
    assert_eq!(destroyed.status, "DESTROYED");
    let versions = client.list_secret_versions(SECRET).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version.as_str(), v.status.as_str()))
            .collect::<Vec<_>>(),
        [("2", "ENABLED"), ("1", "DESTROYED")]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_connection_test_spends_the_pingone_licence_budget() {
    use pingone_aic_operator::budget::{BudgetConfig, RequestBudget};
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    // One request a quarter-hour: the burst of one is all there is.
    let licences = Arc::new(RequestBudget::new(BudgetConfig {
        per_second: 1.0 / 900.0,
        burst: 1,
    }));
    let client =
        client(&running, "dev").with_connection_test_budget(licences.clone(), "license:l1".into());
    configure(&client, &pingone.url, true).await;
    client.test_connection("pingone-worker-aic").await.unwrap();
    let now = jiff::Timestamp::now();
    // AM's read of the environment took the licence's slot; another licence is untouched.
    assert!(licences.reserve("license:l1", now) > Duration::from_secs(800));
    assert_eq!(licences.reserve("license:l2", now), Duration::ZERO);
    running.stop().await;
}

#[tokio::test]
async fn test_connection_fails_before_the_restart_and_succeeds_after() {
    let pingone = fake_pingone().await;
    let (sim, running) = start(instant()).await;
    let client = client(&running, "dev");

    // The mapping's label exists only once a worker carries the identifier.
    let err = am::upsert_mapping(&client, &client_secret_label(IDENTIFIER), SECRET)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST));

    configure(&client, &pingone.url, true).await;
    match client.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Failed { message, .. } => assert!(
            message.contains("esv.pingone.worker.client.id"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
    startup::restart_if_pending(&client, Some(poll()))
        .await
        .unwrap();
    match client.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Succeeded(body) => {
            assert_eq!(body["environmentId"], ENV_ID);
            assert_eq!(body["environmentName"], "Test Environment");
            assert_eq!(body["region"], "Europe");
        }
        other => panic!("{other:?}"),
    }

    // A wrong secret in a new version makes the test fail with PingOne's answer, although the
    // right one is still enabled as version 1: AM presents the active (latest enabled) version
    // of a mapped secret alone (AIC docs, "Use ESVs for signing and encryption keys"). The
    // mapping needs no restart.
    esv::push_secret(&client, SECRET, &SecretString::new("wrong"), "d", true)
        .await
        .unwrap();
    let versions = client.list_secret_versions(SECRET).await.unwrap();
    assert!(
        versions
            .iter()
            .any(|v| v.version == "1" && v.status == "ENABLED"),
        "{versions:?}"
    );
    match client.test_connection("pingone-worker-aic").await.unwrap() {
        ConnectionTest::Failed { message, .. } => {
            assert!(
                message.contains("401") && message.contains("invalid_client"),
                "{message}"
            );
            assert!(!message.contains("wrong"));
        }
        other => panic!("{other:?}"),
    }

    // ESVs the worker and mapping use cannot be deleted before them.
    assert_eq!(
        client
            .delete_variable(VAR_CLIENT)
            .await
            .unwrap_err()
            .status(),
        Some(http::StatusCode::BAD_REQUEST)
    );
    assert!(client.delete_secret(SECRET).await.is_err());

    // Steady state: re-applying the same configuration writes nothing.
    sim.clear_calls();
    assert!(matches!(
        am::upsert_worker(&client, "pingone-worker-aic", &worker(&pingone.url))
            .await
            .unwrap(),
        WorkerOutcome::Unchanged(_)
    ));
    assert!(
        !am::upsert_mapping(&client, &client_secret_label(IDENTIFIER), SECRET)
            .await
            .unwrap()
    );
    assert!(sim.calls().iter().all(|c| c.method == "GET"));
    running.stop().await;
}

#[tokio::test]
async fn worker_ids_are_url_encoded_and_the_schema_names_the_credential_field() {
    let (sim, running) = start(instant()).await;
    let client = client(&running, "sandbox");
    let id = "PingOne Worker/AIC";
    let written = client
        .put_worker(id, &worker("https://auth.pingone.eu"))
        .await
        .unwrap();
    assert_eq!(written.id, id);
    assert!(written.rev.is_some());
    let read = client.get_worker(id).await.unwrap().unwrap();
    assert_eq!(read.client_secret_purpose, IDENTIFIER);
    assert!(
        sim.calls()
            .iter()
            .any(|c| c.path.ends_with("/workers/PingOne%20Worker%2FAIC"))
    );
    assert_eq!(client.list_workers().await.unwrap().len(), 1);
    // A worker in client-secret mode carries no credential field at all, as in every capture.
    let (status, echoed) = raw(
        &running,
        "sandbox",
        reqwest::Method::GET,
        "/am/json/realms/root/realms/alpha/realm-config/services/pingOneWorkerService/workers/PingOne%20Worker%2FAIC",
        None,
    )
    .await;
    assert_eq!(status, 200, "{echoed}");
    assert!(!echoed.contains("credentialPurpose"), "{echoed}");
    let schema = client.worker_schema().await.unwrap();
    assert_eq!(
        am::credential_field(&schema).as_deref(),
        Some("credentialPurpose")
    );

    // Unknown attributes get AM's 400 with the valid ones.
    let mut bad = worker("https://auth.pingone.eu");
    bad.other.insert("clientSecret".into(), json!("x"));
    match client.put_worker("w2", &bad).await.unwrap_err() {
        AicError::Api {
            detail: Some(detail),
            ..
        } => {
            assert!(
                detail["validAttributes"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("clientId"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(client.delete_worker(id).await.unwrap());
    assert!(!client.delete_worker(id).await.unwrap());
    running.stop().await;
}

#[tokio::test]
async fn am_writes_on_upper_tiers_are_refused_as_immutable() {
    let (_sim, running) = start(instant()).await;
    for tenant in ["uat", "prod"] {
        let client = client(&running, tenant);
        let err = client
            .put_worker("pingone-worker-aic", &worker("https://auth.pingone.eu"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AicError::Immutable { .. }),
            "{tenant}: {err:?}"
        );
        assert_eq!(err.reason(), "AICEnvironmentImmutable");
        assert!(
            client.get_worker_service().await.unwrap().is_some(),
            "reads stay allowed"
        );
    }
    let sandbox = client(&running, "sandbox");
    am::ensure_worker_service(&sandbox).await.unwrap();
    sandbox
        .put_worker("w", &worker("https://auth.pingone.eu"))
        .await
        .unwrap();
    running.stop().await;
}

#[tokio::test]
async fn worker_service_is_created_when_absent() {
    let mut config = config(instant());
    config.tenants[0].worker_service = false;
    let sim = pingone_aic_sim::aic::AicSimulator::new(config).unwrap();
    let running = sim.serve().await.unwrap();
    let client = client(&running, "dev");
    assert!(client.get_worker_service().await.unwrap().is_none());
    assert!(am::ensure_worker_service(&client).await.unwrap());
    assert!(!am::ensure_worker_service(&client).await.unwrap());
    let service = client.get_worker_service().await.unwrap().unwrap();
    assert_eq!(service["_type"]["_id"], "pingOneWorkerService");
    running.stop().await;
}

fn request() -> PromotionRequest {
    PromotionRequest {
        promoter: "pingone-aic-operator".into(),
        promotion_description: "PingOne Worker Service".into(),
        ..PromotionRequest::default()
    }
}

#[tokio::test]
async fn promotion_missing_an_esv_reports_it_promotes_nothing_and_unlocks() {
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    let dev = client(&running, "dev");
    let uat = client(&running, "uat");
    configure(&dev, &pingone.url, true).await;
    // uat has the environment id but not the client id.
    esv::upsert_variable(&uat, VAR_ENV, ENV_ID, "d", "string")
        .await
        .unwrap();
    esv::push_secret(&uat, SECRET, &SecretString::new(CLIENT_SECRET), "d", true)
        .await
        .unwrap();

    let mut persisted = None;
    let err = promotion::promote(&uat, &request(), poll(), |id| {
        persisted = Some(id.to_owned())
    })
    .await
    .unwrap_err();
    match &err {
        AicError::PromotionBlocked { missing_esvs, .. } => assert_eq!(missing_esvs, &[VAR_CLIENT]),
        other => panic!("{other:?}"),
    }
    assert!(
        persisted.is_some(),
        "the promotion id was handed out before waiting"
    );
    assert_eq!(uat.lock_state().await.unwrap().result, LockResult::Unlocked);
    assert!(
        uat.get_worker("pingone-worker-aic")
            .await
            .unwrap()
            .is_none()
    );
    let report = uat.promotion_report(None).await.unwrap().unwrap();
    assert_eq!(report.missing_esvs, [VAR_CLIENT]);
    assert!(report.dry_run);

    // With the ESV in place the promotion carries the worker and mapping up.
    esv::upsert_variable(&uat, VAR_CLIENT, CLIENT_ID, "d", "string")
        .await
        .unwrap();
    let provisional = dev.provisional_report().await.unwrap();
    assert!(provisional.changed_items() >= 2, "{provisional:?}");
    let run = promotion::promote(&uat, &request(), poll(), |_| {})
        .await
        .unwrap();
    let promoted = run.promotion.unwrap();
    assert!(!promoted.dry_run);
    assert!(promoted.changed_items() >= 2);
    assert_eq!(uat.lock_state().await.unwrap().result, LockResult::Unlocked);
    assert!(
        uat.get_worker("pingone-worker-aic")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        uat.get_mapping(&client_secret_label(IDENTIFIER))
            .await
            .unwrap()
            .is_some()
    );
    assert!(uat.list_promotion_reports().await.unwrap().len() >= 3);
    let report_id = promoted.report_id.clone().unwrap();
    assert_eq!(
        uat.promotion_report(Some(&report_id))
            .await
            .unwrap()
            .unwrap()
            .report_id,
        Some(report_id)
    );

    // The upper tier's ESVs load on its own restart; then its connection works.
    startup::restart_if_pending(&uat, Some(poll()))
        .await
        .unwrap();
    assert!(matches!(
        uat.test_connection("pingone-worker-aic").await.unwrap(),
        ConnectionTest::Succeeded(_)
    ));
    running.stop().await;
}

#[tokio::test]
async fn esv_writes_are_refused_while_locked_in_both_environments() {
    let mut timings = instant();
    timings.lock_ms = 3_600_000;
    let (sim, running) = start(timings).await;
    let dev = client_with(&running, "dev", SA, &ALL_SCOPES, 0);
    let uat = client_with(&running, "uat", SA, &ALL_SCOPES, 0);
    let start = uat.lock().await.unwrap();
    let id = start.promotion_id.unwrap();
    assert_eq!(start.result, LockResult::Locking);

    // Not yet locked: a promotion is refused, and a second lock conflicts.
    let err = uat
        .promote(&PromotionRequest {
            dry_run: true,
            ..request()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::CONFLICT));
    assert_eq!(
        uat.lock().await.unwrap_err().status(),
        Some(http::StatusCode::CONFLICT)
    );

    for client in [&dev, &uat] {
        let err = esv::upsert_variable(client, VAR_CLIENT, "x", "d", "string")
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::CONFLICT), "{err:?}");
        assert!(err.is_transient());
        let err = esv::push_secret(client, SECRET, &SecretString::new("x"), "d", true)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::CONFLICT));
    }
    // The lock becomes "locked" only once time has passed and the state is read.
    sim.advance_clock(Duration::from_secs(7200));
    let locked = promotion::ensure_locked(&uat, poll(), |_| {})
        .await
        .unwrap();
    assert_eq!(locked, id);
    // Unlocking takes time too, and a second unlock while unlocking conflicts.
    assert_eq!(uat.unlock(&id).await.unwrap(), LockResult::Unlocking);
    assert_eq!(
        uat.unlock(&id).await.unwrap_err().status(),
        Some(http::StatusCode::CONFLICT)
    );
    assert_eq!(
        uat.lock_state().await.unwrap().result,
        LockResult::Unlocking
    );
    assert!(
        esv::upsert_variable(&dev, VAR_CLIENT, "x", "d", "string")
            .await
            .is_err()
    );
    sim.advance_clock(Duration::from_secs(7200));
    promotion::ensure_unlocked(&uat, &id, poll()).await.unwrap();
    assert_eq!(uat.lock_state().await.unwrap().result, LockResult::Unlocked);
    esv::upsert_variable(&dev, VAR_CLIENT, "x", "d", "string")
        .await
        .unwrap();
    // Unlocking an unknown promotion reads as unlocked.
    assert_eq!(
        uat.unlock("no-such-promotion").await.unwrap(),
        LockResult::Unlocked
    );
    running.stop().await;
}

#[tokio::test]
async fn every_answer_is_counted_in_the_metrics_the_429s_a_retry_absorbed_included() {
    let (sim, running) = start(instant()).await;
    let calls = ExternalCalls::default();
    let client = client(&running, "dev").with_calls(calls.clone());
    sim.inject_fault(Fault {
        tenant: Some("dev".into()),
        method: Some("GET".into()),
        path: "/environment/variables".into(),
        status: Some(429),
        retry_after: Some(0),
        latency_ms: 0,
        count: 2,
    });
    assert!(client.get_variable(VAR_CLIENT).await.unwrap().is_none());
    let text = Metrics::with_external_calls(calls).encode();
    for series in [
        r#"{service="aic",operation="get_token",outcome="ok"} 1"#,
        r#"{service="aic",operation="esv",outcome="AICRateLimited"} 2"#,
        r#"{service="aic",operation="esv",outcome="AICNotFound"} 1"#,
    ] {
        assert!(
            text.contains(&format!("pingone_aic_external_calls_total{series}")),
            "{series} missing in\n{text}"
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn retry_after_and_transient_faults_are_retried() {
    let (sim, running) = start(instant()).await;
    let client = client(&running, "dev");
    client.get_variable(VAR_CLIENT).await.unwrap();
    sim.clear_calls();
    sim.inject_fault(Fault {
        tenant: Some("dev".into()),
        method: Some("GET".into()),
        path: "/environment/variables".into(),
        status: Some(429),
        retry_after: Some(0),
        latency_ms: 0,
        count: 2,
    });
    assert!(client.get_variable(VAR_CLIENT).await.unwrap().is_none());
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 429, 404]);

    // A 500 on a POST is not retried (it may have been processed); a 429 is.
    sim.clear_calls();
    sim.inject_fault(Fault {
        tenant: None,
        method: Some("POST".into()),
        path: "/environment/startup".into(),
        status: Some(500),
        retry_after: None,
        latency_ms: 0,
        count: 1,
    });
    assert!(client.restart().await.is_err());
    assert_eq!(sim.calls().len(), 1);

    // A restart poll answered 500 (AIC does while it restarts) is not retried at once: the
    // next poll is the retry. A 429 still is, after its Retry-After.
    for (status, expected) in [(500, vec![500]), (429, vec![429, 200])] {
        sim.clear_calls();
        sim.inject_fault(Fault {
            tenant: Some("dev".into()),
            method: Some("GET".into()),
            path: "/environment/startup".into(),
            status: Some(status),
            retry_after: Some(0),
            latency_ms: 0,
            count: 1,
        });
        let _ = client.restart_status().await;
        let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
        assert_eq!(statuses, expected, "a poll answered {status}");
    }
    running.stop().await;
}

#[tokio::test]
async fn writes_to_one_tenant_are_serialised() {
    let (sim, running) = start(instant()).await;
    // Two independent clients, as two reconcilers would have.
    let a = client(&running, "dev");
    let b = client(&running, "dev");
    let other = client(&running, "sandbox");
    a.get_variable(VAR_CLIENT).await.unwrap();
    b.get_variable(VAR_CLIENT).await.unwrap();
    other.get_variable(VAR_CLIENT).await.unwrap();
    sim.inject_fault(Fault {
        tenant: None,
        method: Some("PUT".into()),
        path: "/environment/variables/".into(),
        status: None,
        retry_after: None,
        latency_ms: 100,
        count: 10,
    });
    let write = |client: AicClient, id: &'static str| async move {
        esv::upsert_variable(&client, id, "v", "d", "string")
            .await
            .unwrap();
    };
    tokio::join!(
        write(a.clone(), "esv-one"),
        write(b.clone(), "esv-two"),
        write(a, "esv-three"),
        write(other, "esv-four"),
    );
    assert_eq!(sim.max_concurrent_writes("dev"), 1);
    assert_eq!(sim.calls().iter().filter(|c| c.method == "PUT").count(), 4);
    running.stop().await;
}

#[tokio::test]
async fn nothing_secret_reaches_logs_or_debug_output() {
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let pingone = fake_pingone().await;
    let (sim, running) = start(instant()).await;
    let client = client(&running, "dev");
    sim.inject_fault(Fault {
        tenant: None,
        method: Some("GET".into()),
        path: "/environment/secrets".into(),
        status: Some(503),
        retry_after: Some(0),
        latency_ms: 0,
        count: 1,
    });
    configure(&client, &pingone.url, true).await;
    startup::restart_if_pending(&client, Some(poll()))
        .await
        .unwrap();
    let result = client.test_connection("pingone-worker-aic").await.unwrap();
    let err = client
        .create_secret(
            SECRET,
            &pingone_aic_operator::aic::SecretCreate {
                value_base64: SecretString::new(esv::encode_value(CLIENT_SECRET)),
                encoding: "generic".into(),
                use_in_placeholders: true,
                description: String::new(),
            },
        )
        .await
        .unwrap_err();

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("AIC call"), "debug logging was captured");
    let private: Value = serde_json::from_str(JWK).unwrap();
    let debug = format!("{client:?} {result:?} {err:?} {err}");
    for needle in [
        CLIENT_SECRET.to_owned(),
        esv::encode_value(CLIENT_SECRET),
        private["d"].as_str().unwrap()[..24].to_owned(),
        "sim-".to_owned(),
        "p1-token".to_owned(),
    ] {
        assert!(!logs.contains(&needle), "logs contain {needle}");
        assert!(!debug.contains(&needle), "debug output contains {needle}");
    }
    running.stop().await;
}

#[tokio::test]
async fn control_api_serves_state_calls_faults_and_clock() {
    let (_sim, running) = start(instant()).await;
    let base = running.url("dev").unwrap().clone();
    let http = reqwest::Client::new();
    let clock: Value = http
        .post(format!("{base}_sim/clock"))
        .json(&json!({"advanceMs": 60000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["offsetMs"], 60000);
    let status = http
        .post(format!("{base}_sim/faults"))
        .json(&json!({"path": "/environment/count", "status": 502}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (status, _) = raw(
        &running,
        "dev",
        reqwest::Method::GET,
        "/environment/count",
        None,
    )
    .await;
    assert_eq!(status, 502);
    let (status, _) = raw(
        &running,
        "dev",
        reqwest::Method::GET,
        "/environment/count",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let calls: Vec<Value> = http
        .get(format!("{base}_sim/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c["path"] == "/environment/count" && c["status"] == 502)
    );
    let state: Value = http
        .get(format!("{base}_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["tenants"]["prod"]["tier"], "production");
    running.stop().await;
}

#[tokio::test]
async fn promotions_run_for_a_while_and_sandboxes_cannot_be_promoted() {
    let mut timings = instant();
    timings.promotion_ms = 3_600_000;
    let (sim, running) = start(timings).await;
    let uat = client(&running, "uat");
    let id = promotion::ensure_locked(&uat, poll(), |_| {})
        .await
        .unwrap();
    uat.promote(&PromotionRequest {
        dry_run: true,
        ..request()
    })
    .await
    .unwrap();
    let progress = uat.promotion_progress().await.unwrap();
    assert!(progress.is_running(), "{progress:?}");
    // Unlocking during a promotion conflicts.
    assert_eq!(
        uat.unlock(&id).await.unwrap_err().status(),
        Some(http::StatusCode::CONFLICT)
    );
    sim.advance_clock(Duration::from_secs(7200));
    let done = promotion::wait_for_promotion(&uat, poll()).await.unwrap();
    assert_eq!(done.status, "READY");
    assert_eq!(done.promotion_id.as_deref(), Some(id.as_str()));
    promotion::ensure_unlocked(&uat, &id, poll()).await.unwrap();
    assert_eq!(uat.promotion_progress().await.unwrap().status, "UNLOCKED");

    // Nothing is promoted into these: a lock conflicts with them (the spec's 409; it declares
    // no 400 for a lock).
    for tenant in ["sandbox", "dev"] {
        let err = client(&running, tenant).lock().await.unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::CONFLICT), "{tenant}");
    }
    running.stop().await;
}

/// dev with its worker service configured against `pingone_url`, and uat with the ESVs it
/// references: a promotion from dev to uat can run. Returns uat's client.
async fn ready_to_promote(running: &RunningAicSim, pingone_url: &str) -> AicClient {
    let dev = client(running, "dev");
    configure(&dev, pingone_url, true).await;
    let uat = client(running, "uat");
    for id in [VAR_CLIENT, VAR_ENV] {
        esv::upsert_variable(&uat, id, "x", "d", "string")
            .await
            .unwrap();
    }
    esv::push_secret(&uat, SECRET, &SecretString::new("s"), "d", true)
        .await
        .unwrap();
    uat
}

/// The spec's rollback: on the locked upper environment, `report/provisional-rollback` says what
/// undoing the last promotion changes and `POST rollback` (202) undoes it; without a lock, while
/// a run is under way or with nothing to undo, it conflicts (409).
#[tokio::test]
async fn the_last_promotion_can_be_rolled_back_while_locked() {
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    let uat = ready_to_promote(&running, &pingone.url).await;
    let rollback_body = json!({"promoter": "tests", "promotionDescription": "undo", "unlockEnvironmentsAfterPromotion": false});
    let rollback = |body: Value| {
        raw(
            &running,
            "uat",
            reqwest::Method::POST,
            "/environment/promotion/rollback",
            Some(body),
        )
    };
    // Not locked: refused.
    assert_eq!(rollback(rollback_body.clone()).await.0, 409);

    let id = promotion::ensure_locked(&uat, poll(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        rollback(rollback_body.clone()).await.0,
        409,
        "nothing was promoted yet"
    );
    uat.promote(&request()).await.unwrap();
    promotion::wait_for_promotion(&uat, poll()).await.unwrap();
    assert_eq!(uat.list_workers().await.unwrap().len(), 1, "promoted");

    let (status, report) = raw(
        &running,
        "uat",
        reqwest::Method::GET,
        "/environment/promotion/report/provisional-rollback",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["type"], "rollback");
    let workers = &report["report"]["AMConfig"][0]["configChange"];
    assert_eq!(workers["deleted"].as_array().unwrap().len(), 1, "{report}");

    let (status, started) = rollback(rollback_body.clone()).await;
    assert_eq!(status, 202, "{started}");
    let done = promotion::wait_for_promotion(&uat, poll()).await.unwrap();
    assert_eq!(done.status, "READY");
    assert!(uat.list_workers().await.unwrap().is_empty(), "rolled back");
    let last = uat.promotion_report(None).await.unwrap().unwrap();
    assert_eq!(last.promotion_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        rollback(rollback_body).await.0,
        409,
        "the promotion is undone already"
    );
    promotion::ensure_unlocked(&uat, &id, poll()).await.unwrap();
    running.stop().await;
}

#[tokio::test]
async fn secrets_embedded_in_configuration_are_reported_and_block_unless_ignored() {
    let pingone = fake_pingone().await;
    let (sim, running) = start(instant()).await;
    let uat = ready_to_promote(&running, &pingone.url).await;
    let item = "Journeys > Login > HTTP Client node";
    sim.seed_embedded_secret("dev", item);
    let id = promotion::ensure_locked(&uat, poll(), |_| {})
        .await
        .unwrap();

    uat.promote(&PromotionRequest {
        dry_run: true,
        ..request()
    })
    .await
    .unwrap();
    let dry = uat.promotion_progress().await.unwrap();
    assert!(!dry.blocking_error, "a dry run only reports: {dry:?}");
    assert_eq!(dry.encrypted_secrets, vec![item.to_owned()]);

    uat.promote(&request()).await.unwrap();
    let blocked = uat.promotion_progress().await.unwrap();
    assert!(blocked.blocking_error, "{blocked:?}");
    assert_eq!(blocked.encrypted_secrets, vec![item.to_owned()]);
    assert!(
        uat.list_workers().await.unwrap().is_empty(),
        "nothing promoted"
    );

    uat.promote(&PromotionRequest {
        ignore_encrypted_secrets: true,
        ..request()
    })
    .await
    .unwrap();
    let done = uat.promotion_progress().await.unwrap();
    assert!(!done.blocking_error, "{done:?}");
    assert_eq!(uat.list_workers().await.unwrap().len(), 1, "promoted");
    let (status, report) = raw(
        &running,
        "uat",
        reqwest::Method::GET,
        "/environment/promotion/report",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["previouslyIgnoredEncryptedSecrets"], json!([item]));
    promotion::ensure_unlocked(&uat, &id, poll()).await.unwrap();
    running.stop().await;
}

#[tokio::test]
async fn mapping_rules_follow_aic() {
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    let dev = client(&running, "dev");
    configure(&dev, &pingone.url, true).await;
    let label = client_secret_label(IDENTIFIER);
    let base = "/am/json/realms/root/realms/alpha/realm-config/secrets/stores/GoogleSecretManagerSecretStoreProvider/ESV/mappings";
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("{base}/{label}"),
        Some(json!({"secretId": label, "aliases": [SECRET, "esv-other"]})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Only a single alias"));
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("{base}/{label}"),
        Some(json!({"aliases": [SECRET]})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Secret value is missing"));
    let (status, _) = raw(
        &running,
        "dev",
        reqwest::Method::POST,
        &format!("{base}?_action=create"),
        Some(json!({"_id": label, "secretId": label, "aliases": [SECRET]})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::POST,
        &format!("{base}?_action=schema"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(&label));
    let (status, body) = raw(&running, "dev", reqwest::Method::GET, "/am/json/realms/root/realm-config/secrets/stores/GoogleSecretManagerSecretStoreProvider/ESV/mappings?_queryFilter=true", None).await;
    assert_eq!(status, 403);
    assert!(body.contains("not available in PingOne Advanced Identity Cloud"));
    let mapping = dev.get_mapping(&label).await.unwrap().unwrap();
    assert_eq!(mapping.aliases, [SECRET]);
    assert!(mapping.rev.is_some());
    assert!(dev.delete_mapping(&label).await.unwrap());
    assert!(!dev.delete_mapping(&label).await.unwrap());
    // Mappings on upper tiers are static configuration too.
    let uat = client(&running, "uat");
    assert!(matches!(
        am::upsert_mapping(&uat, &label, SECRET).await.unwrap_err(),
        AicError::Immutable { .. }
    ));
    running.stop().await;
}

#[tokio::test]
async fn one_router_serves_all_tenants_by_host() {
    use tower::ServiceExt;
    let sim = pingone_aic_sim::aic::AicSimulator::new(config(instant())).unwrap();
    let router = sim.router();
    for (host, tenant) in [("uat.localhost:9000", "uat"), ("prod.aic.test", "prod")] {
        let request = axum::http::Request::builder()
            .uri("/environment/startup")
            .header("host", host)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(sim.calls().last().unwrap().tenant, tenant);
    }
}

#[test]
fn the_simulator_configuration_reads_from_yaml() {
    let jwk: Value = serde_json::from_str(JWK).unwrap();
    let yaml = format!(
        r#"
tenants:
  - name: dev
    tier: development
    port: 0
    serviceAccounts:
      - id: {SA}
        scopes: ["fr:am:*", "fr:idc:esv:*"]
        jwk: {{ kty: RSA, n: "{n}", e: "{e}" }}
  - name: uat
    tier: uat
    url: https://uat.tenant.example.com
promotionGroups: [[dev, uat]]
timings:
  restartMs: 500
  restartPollFailures: 2
"#,
        n = jwk["n"].as_str().unwrap(),
        e = jwk["e"].as_str().unwrap(),
    );
    let config: pingone_aic_sim::aic::AicSimConfig = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(config.timings.restart_poll_failures, 2);
    assert_eq!(config.timings.token_lifetime_s, 899);
    assert_eq!(config.tenants[0].realms, ["alpha", "bravo"]);
    let sim = pingone_aic_sim::aic::AicSimulator::new(config).unwrap();
    assert_eq!(sim.tenant_names(), ["dev", "uat"]);
    assert!(sim.tenant_router("dev").is_some() && sim.tenant_router("nope").is_none());

    let mut bad = aic_common::config(instant());
    bad.promotion_groups = vec![vec!["dev".into(), "qa".into()]];
    assert!(pingone_aic_sim::aic::AicSimulator::new(bad).is_err());
}

#[tokio::test]
async fn product_connection_credential_mode_tests_with_the_mapped_jwt() {
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    let dev = client(&running, "dev");
    esv::push_secret(
        &dev,
        "esv-pingone-connection-jwt",
        &SecretString::new(credential_jwt()),
        "JWT",
        false,
    )
    .await
    .unwrap();
    let field = am::discover_credential_field(&dev).await.unwrap().unwrap();
    let mut worker = Worker {
        environment_id: ENV_ID.into(),
        api_url: pingone.url.clone(),
        auth_url: pingone.url.clone(),
        use_credential: true,
        ..Worker::default()
    };
    worker.other.insert(field, json!("pingoneconnaic"));
    am::upsert_worker(&dev, "pingone-connection", &worker)
        .await
        .unwrap();
    am::upsert_mapping(
        &dev,
        &am::credential_label("pingoneconnaic"),
        "esv-pingone-connection-jwt",
    )
    .await
    .unwrap();
    // A secret used only through a mapping needs no restart.
    match dev.test_connection("pingone-connection").await.unwrap() {
        ConnectionTest::Succeeded(body) => {
            assert_eq!(body["credentialId"], "c0fd-credential");
            assert!(
                body["createdAt"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-04-21")
            );
        }
        other => panic!("{other:?}"),
    }
    running.stop().await;
}

#[tokio::test]
async fn a_configured_public_origin_is_kept_when_served_on_loopback() {
    let mut config = aic_common::config(instant());
    config.tenants[1].url = Some("https://uat.tenant.example.com".into());
    let sim = pingone_aic_sim::aic::AicSimulator::new(config).unwrap();
    let running = sim.serve().await.unwrap();
    assert_eq!(running.url("uat").unwrap().host_str(), Some("127.0.0.1"));
    assert_eq!(
        sim.snapshot()["tenants"]["uat"]["origin"],
        "https://uat.tenant.example.com/"
    );
    assert_eq!(
        sim.snapshot()["tenants"]["dev"]["origin"].as_str(),
        Some(running.url("dev").unwrap().as_str())
    );
    // The documented audience of the public origin is accepted on the loopback port.
    let base = running.url("uat").unwrap().clone();
    let (status, body) = raw_token(
        &base,
        "https://uat.tenant.example.com:443/am/oauth2/access_token",
        0,
        JWK,
        "fr:am:*",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    running.stop().await;
}

#[tokio::test]
async fn each_endpoint_family_gets_its_accept_api_version() {
    let pingone = fake_pingone().await;
    let (sim, running) = start(instant()).await;
    let dev = client(&running, "dev");
    configure(&dev, &pingone.url, true).await;
    dev.pending_count().await.unwrap();
    dev.test_connection("pingone-worker-aic").await.unwrap();
    client(&running, "uat").lock_state().await.unwrap();
    let expected = |path: &str, query: Option<&str>| -> Option<&'static str> {
        if path == "/environment/count" {
            Some("resource=2.0")
        } else if path.starts_with("/environment/") {
            // ESV, startup and promotion families share the value.
            Some("protocol=1.0,resource=1.0")
        } else if path.contains("/secrets/stores/") {
            Some("protocol=2.1,resource=2.0")
        } else if query.is_some_and(|q| q.contains("testConnection")) {
            Some("resource=1.0")
        } else if path.contains("/realm-config/services/") {
            Some("protocol=2.0,resource=1.0")
        } else {
            None
        }
    };
    let calls = sim.calls();
    assert!(calls.len() > 10);
    for call in calls.iter().filter(|c| c.path != "/am/oauth2/access_token") {
        assert_eq!(
            call.accept_api_version.as_deref(),
            expected(&call.path, call.query.as_deref()),
            "{} {}",
            call.method,
            call.path
        );
    }
    running.stop().await;
}

/// What frodo reads before its own login, on a real tenant without a session (frodo-lib HAR
/// captures, `exportAmConfigEntities` Cloud tests): the session cookie's name and AM's version.
#[tokio::test]
async fn server_information_is_read_without_a_session() {
    let (_sim, running) = start(instant()).await;
    let base = running.url("dev").unwrap();
    let http = pingone_aic_operator::http::client("aic-tests").unwrap();
    let info = http
        .get(format!("{base}am/json/serverinfo/*"))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    assert_eq!(info.headers()["content-api-version"], "resource=2.0");
    assert_eq!(
        info.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["_id"], "*");
    assert_eq!(info["realm"], "/");
    let cookie = info["cookieName"].as_str().unwrap();
    assert!(
        !cookie.is_empty() && cookie.bytes().all(|b| b.is_ascii_hexdigit()),
        "{cookie}"
    );

    let version = http
        .get(format!("{base}am/json/serverinfo/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(version.headers()["content-api-version"], "resource=1.0");
    let version: Value = version.json().await.unwrap();
    assert_eq!(version["version"], "7.6.0-SNAPSHOT");
    assert!(
        version["fullVersion"]
            .as_str()
            .unwrap()
            .starts_with("ForgeRock Access Management 7.6.0-SNAPSHOT Build ")
    );
}

/// `GET /openidm/managed/svcacct/{id}` (frodo-lib `ServiceAccountOps` captures): the account's
/// IDM object with its public key as a JWKS string, for a token with `fr:idm:*`.
#[tokio::test]
async fn a_service_account_reads_its_idm_object_with_the_idm_scope() {
    let (_sim, running) = start(instant()).await;
    let path = format!("openidm/managed/svcacct/{SA}?_fields=*");
    // The test account holds no IDM scope: refused.
    let (status, _) = raw(&running, "dev", reqwest::Method::GET, &path, None).await;
    assert_eq!(status, 403);

    let mut config = config(instant());
    config.tenants[0].service_accounts[0]
        .scopes
        .push("fr:idm:*".into());
    let sim = pingone_aic_sim::aic::AicSimulator::new(config).unwrap();
    let running = sim.serve().await.unwrap();
    let base = running.url("dev").unwrap();
    let (status, token) = raw_token(base, &aud_of(base), 0, JWK, "fr:am:* fr:idm:*").await;
    assert_eq!(status, 200, "{token}");
    let get = |path: String| {
        pingone_aic_operator::http::client("aic-tests")
            .unwrap()
            .get(format!("{base}{path}"))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .send()
    };
    let account: Value = get(path).await.unwrap().json().await.unwrap();
    assert_eq!(account["_id"], SA);
    assert_eq!(account["name"], "aic-tests");
    assert_eq!(account["accountStatus"], "Active");
    let jwks: Value = serde_json::from_str(account["jwks"].as_str().unwrap()).unwrap();
    let public: Value = serde_json::from_str(JWK).unwrap();
    assert_eq!(jwks["keys"][0]["n"], public["n"]);
    let unknown = get("openidm/managed/svcacct/no-such-account".into())
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// The realm's ESV store: readable with AIC's settings, never deletable, its type's schema
/// readable; store and mapping answers carry `resource=2.0`, the realm services `resource=1.0`
/// (frodo-lib captures: `SecretStoreOps`, `exportAmConfigEntities`).
#[tokio::test]
async fn the_esv_store_is_read_only_and_answers_as_its_api_version() {
    let (_sim, running) = start(instant()).await;
    let token = bearer(&running, "dev").await;
    let base = running.url("dev").unwrap();
    let realm = "am/json/realms/root/realms/alpha/realm-config";
    let call = |method: reqwest::Method, path: String| {
        pingone_aic_operator::http::client("aic-tests")
            .unwrap()
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
            .header("Accept-API-Version", "protocol=2.0,resource=1.0")
            .send()
    };
    let store_path = format!("{realm}/secrets/stores/GoogleSecretManagerSecretStoreProvider/ESV");
    let store = call(reqwest::Method::GET, store_path.clone())
        .await
        .unwrap();
    assert_eq!(store.status(), 200);
    assert_eq!(
        store.headers()["content-api-version"],
        "protocol=2.0,resource=2.0"
    );
    let store: Value = store.json().await.unwrap();
    for field in [
        "_id",
        "_rev",
        "_type",
        "expiryDurationSeconds",
        "project",
        "secretFormat",
        "serviceAccount",
    ] {
        assert!(store.get(field).is_some(), "the store has {field}: {store}");
    }
    assert_eq!(store["expiryDurationSeconds"], 600);

    let deleted = call(reqwest::Method::DELETE, store_path.clone())
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403);
    assert_eq!(
        deleted.headers()["content-type"],
        "application/json;charset=UTF-8"
    );
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(
        deleted["message"],
        "This operation is not available in PingOne Advanced Identity Cloud."
    );

    let schema = call(
        reqwest::Method::POST,
        format!("{realm}/secrets/stores/GoogleSecretManagerSecretStoreProvider?_action=schema"),
    )
    .await
    .unwrap();
    assert_eq!(schema.status(), 200);
    let schema: Value = schema.json().await.unwrap();
    assert!(
        schema["properties"]["expiryDurationSeconds"].is_object(),
        "{schema}"
    );

    let mappings = call(
        reqwest::Method::GET,
        format!("{store_path}/mappings?_queryFilter=true"),
    )
    .await
    .unwrap();
    assert_eq!(mappings.status(), 200);
    assert_eq!(
        mappings.headers()["content-api-version"],
        "protocol=2.0,resource=2.0"
    );
    let service = call(
        reqwest::Method::GET,
        format!("{realm}/services/pingOneWorkerService"),
    )
    .await
    .unwrap();
    assert_eq!(
        service.headers()["content-api-version"],
        "protocol=2.0,resource=1.0"
    );
}

/// Labels with fixed names take a mapping without any configuration, and an alias need not name
/// an existing ESV (frodo-lib captures of real tenants: `…stateless.signing.ES512` PUT 201,
/// `am.services.iot.cert.verification` `?_action=create` 201, aliases of ESVs never created).
/// The realm's store collection is not offered (403, reference §6); the realm's services list
/// names each service without `_rev` (capture "Get List of Realm Services").
#[tokio::test]
async fn fixed_labels_map_without_configuration_and_the_store_list_is_not_offered() {
    let pingone = fake_pingone().await;
    let (_sim, running) = start(instant()).await;
    configure(&client(&running, "dev"), &pingone.url, true).await;
    let realm = "/am/json/realms/root/realms/alpha/realm-config";
    let mappings =
        format!("{realm}/secrets/stores/GoogleSecretManagerSecretStoreProvider/ESV/mappings");
    let es512 = "am.services.oauth2.stateless.signing.ES512";
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("{mappings}/{es512}"),
        Some(json!({"secretId": es512, "aliases": ["esv-never-created"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let iot = "am.services.iot.cert.verification";
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::POST,
        &format!("{mappings}?_action=create"),
        Some(json!({"secretId": iot, "aliases": ["esv-iot"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::PUT,
        &format!("{mappings}/am.services.not.a.label"),
        Some(json!({"secretId": "am.services.not.a.label", "aliases": ["esv-x"]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::POST,
        &format!("{realm}/secrets/stores?_action=nextdescendents"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains("not available in PingOne Advanced Identity Cloud"),
        "{body}"
    );

    let (status, body) = raw(
        &running,
        "dev",
        reqwest::Method::POST,
        &format!("{realm}/services?_action=nextdescendents"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let services: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = services["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(s.get("_rev").is_none(), "{s}");
            assert!(s["_type"].is_object(), "{s}");
            s["_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, ["pingOneWorkerService"]);
    running.stop().await;
}

/// `GET /environment/info` (read by frodo-lib's `info.getInfo()`, fields from its
/// `EnvInfoInterface`): the tier, whether configuration arrives only by promotion, and whether a
/// promotion lock covers the environment.
#[tokio::test]
async fn environment_info_reports_tier_immutability_and_the_lock() {
    let mut timings = instant();
    timings.lock_ms = 3_600_000;
    let (_sim, running) = start(timings).await;
    let info = |tenant: &'static str| {
        let running = &running;
        async move {
            let (status, body) = raw(
                running,
                tenant,
                reqwest::Method::GET,
                "environment/info",
                None,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let dev = info("dev").await;
    assert_eq!(
        (&dev["tier"], &dev["immutable"], &dev["locked"]),
        (&json!("development"), &json!(false), &json!(false))
    );
    let uat = client_with(&running, "uat", SA, &ALL_SCOPES, 0);
    uat.lock().await.unwrap();
    let upper = info("uat").await;
    assert_eq!(
        (&upper["tier"], &upper["immutable"], &upper["locked"]),
        (&json!("uat"), &json!(true), &json!(true))
    );
    assert_eq!(
        info("dev").await["locked"],
        true,
        "the lock covers both sides"
    );

    let url = format!("{}environment/info", running.url("dev").unwrap());
    let anonymous = pingone_aic_operator::http::client("aic-tests")
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
