//! The PingOne client against the in-process PingOne simulator: the rules the simulator
//! enforces, and the client's retries, token handling and pagination on top of them.

use crate::pingone_support;

use std::sync::Arc;
use std::time::Duration;

use pingone_aic_operator::metrics::{ExternalCalls, Metrics};
use pingone_aic_operator::pingone::{
    AssignmentOutcome, Credentials, Endpoints, IDENTITY_DATA_ADMIN, PingOne, PingOneApi,
    PingOneConfig, PingOneError, Scope, TokenAuthMethod, WorkerApplication,
};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::config::SimConfig;
use pingone_aic_sim::control::{FaultSpec, SimControl, serve_loopback};
use pingone_aic_sim::pingone::PingOneSim;
use pingone_support::{Fixture, LinkedClock, SEED, worker};

fn token_error(err: PingOneError) -> (u16, String) {
    match err {
        PingOneError::Token { status, error, .. } => (status, error),
        other => panic!("expected a token error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_disabled_app_gets_no_token() {
    let fx = Fixture::new().await;
    let err = fx
        .session("disabled-worker")
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(token_error(err), (401, "invalid_client".into()));
}

#[tokio::test]
async fn the_token_endpoint_enforces_the_auth_method() {
    let fx = Fixture::new().await;
    fx.session("post-worker")
        .verify_credentials()
        .await
        .unwrap();
    fx.session("operator").verify_credentials().await.unwrap();

    // A BASIC app refuses client_secret_post, and a POST app refuses Basic.
    let mut basic_as_post = fx.credentials("operator");
    basic_as_post.auth_method = TokenAuthMethod::ClientSecretPost;
    let err = fx
        .client
        .session(fx.endpoints(), basic_as_post)
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(token_error(err), (401, "invalid_client".into()));
    let mut post_as_basic = fx.credentials("post-worker");
    post_as_basic.auth_method = TokenAuthMethod::ClientSecretBasic;
    let err = fx
        .client
        .session(fx.endpoints(), post_as_basic)
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "PingOneInvalidClient");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn tokens_are_bound_to_the_app_environment_and_secret() {
    let fx = Fixture::new().await;
    let mut wrong_env = fx.credentials("operator");
    wrong_env.environment_id = fx.dev.clone();
    let err = fx
        .client
        .session(fx.endpoints(), wrong_env)
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(token_error(err).1, "invalid_client");
    let mut wrong_secret = fx.credentials("operator");
    wrong_secret.client_secret = SecretString::new("not-the-secret");
    let err = fx
        .client
        .session(fx.endpoints(), wrong_secret)
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(token_error(err).1, "invalid_client");
}

/// A secret reader that counts its reads.
#[derive(Debug)]
struct CountingReader {
    secret: SecretString,
    reads: std::sync::atomic::AtomicUsize,
}

impl pingone_aic_operator::pingone::SecretReader for CountingReader {
    fn read(
        &self,
    ) -> futures::future::BoxFuture<
        '_,
        Result<SecretString, pingone_aic_operator::pingone::PingOneError>,
    > {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let secret = self.secret.clone();
        Box::pin(async move { Ok(secret) })
    }
}

#[tokio::test]
async fn a_deferred_session_reads_its_secret_only_to_request_a_token() {
    let fx = Fixture::new().await;
    let credentials = fx.credentials("operator");
    let identity = credentials.identity();
    let reader = std::sync::Arc::new(CountingReader {
        secret: credentials.client_secret.clone(),
        reads: Default::default(),
    });
    let reads = || reader.reads.load(std::sync::atomic::Ordering::SeqCst);
    assert!(!fx.client.has_live_token(&fx.endpoints(), &identity));

    // No token yet: the first call reads the secret once and requests one.
    let deferred = fx
        .client
        .deferred_session(fx.endpoints(), identity.clone(), reader.clone());
    deferred.environment(&fx.dev).await.unwrap();
    deferred.environment(&fx.dev).await.unwrap();
    assert_eq!((reads(), fx.control().count("POST", "/*/as/token")), (1, 1));
    assert!(fx.client.has_live_token(&fx.endpoints(), &identity));

    // A session built while the token lives uses it without reading anything.
    fx.client
        .deferred_session(fx.endpoints(), identity.clone(), reader.clone())
        .verify_credentials()
        .await
        .unwrap();
    assert_eq!((reads(), fx.control().count("POST", "/*/as/token")), (1, 1));

    // Another version of the credential (another fingerprint) has no live token.
    let mut changed = identity.clone();
    changed.fingerprint[0] ^= 1;
    assert!(!fx.client.has_live_token(&fx.endpoints(), &changed));

    // Past the token's refresh point, renewing it reads the secret once.
    fx.control().advance(Duration::from_secs(3300));
    assert!(!fx.client.has_live_token(&fx.endpoints(), &identity));
    deferred.environment(&fx.dev).await.unwrap();
    assert_eq!((reads(), fx.control().count("POST", "/*/as/token")), (2, 2));
}

#[tokio::test]
async fn tokens_are_cached_dropped_on_credential_change_and_renewed_after_expiry() {
    let fx = Fixture::new().await;
    let session = fx.session("operator");
    session.environment(&fx.dev).await.unwrap();
    session.environment(&fx.dev).await.unwrap();
    assert_eq!(
        fx.control().count("POST", "/*/as/token"),
        1,
        "the token is reused"
    );

    // A changed credential for the same client id gets its own token, not the cached one.
    let mut changed = fx.credentials("operator");
    changed.client_secret = SecretString::new("rotated-elsewhere");
    let err = fx
        .client
        .session(fx.endpoints(), changed)
        .environment(&fx.dev)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "PingOneInvalidClient");
    assert_eq!(fx.control().count("POST", "/*/as/token"), 2);

    // Past its refresh point the token is renewed before use.
    fx.control().advance(Duration::from_secs(3300));
    session.environment(&fx.dev).await.unwrap();
    assert_eq!(fx.control().count("POST", "/*/as/token"), 3);

    // A token the server no longer accepts (expired under a skewed clock) is renewed once.
    let tokens_before = fx.control().count("POST", "/*/as/token");
    let api_401s = fx
        .control()
        .calls()
        .iter()
        .filter(|c| c.status == 401)
        .count();
    fx.control().inject(FaultSpec {
        path: "/v1/environments/*".into(),
        status: Some(401),
        ..FaultSpec::default()
    });
    session.environment(&fx.dev).await.unwrap();
    assert_eq!(fx.control().count("POST", "/*/as/token"), tokens_before + 1);
    assert_eq!(
        fx.control()
            .calls()
            .iter()
            .filter(|c| c.status == 401)
            .count(),
        api_401s + 1
    );
}

#[tokio::test]
async fn the_api_requires_a_valid_bearer_token() {
    let fx = Fixture::new().await;
    let http = pingone_aic_operator::http::client("test").unwrap();
    let url = format!("{}/v1/environments/{}", fx.server.base_url, fx.dev);
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "ACCESS_FAILED");
    assert_eq!(body["details"][0]["code"], "INVALID_TOKEN");
    let bogus = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(bogus.status(), 401);
}

#[tokio::test]
async fn the_worker_lifecycle_runs_against_the_simulator() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let env = admin.environment(&fx.dev).await.unwrap();
    assert_eq!(env.region, "EU");

    let app = admin
        .create_worker_application(&fx.dev, &worker("aic-worker"))
        .await
        .unwrap();
    assert!(worker("aic-worker").matches(&app));
    // assignActorRoles: false, so the new worker inherited nothing.
    assert!(
        admin
            .list_role_assignments(&fx.dev, &app.id)
            .await
            .unwrap()
            .is_empty()
    );

    let role = admin.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    let scope = Scope::environment(&fx.dev);
    let created = admin
        .create_role_assignment(&fx.dev, &app.id, &role, &scope)
        .await
        .unwrap();
    let AssignmentOutcome::Created(assignment) = created else {
        panic!("expected a new assignment, got {created:?}");
    };
    assert!(!assignment.read_only);
    // A duplicate is reported by PingOne as UNIQUENESS_VIOLATION and by the client as success.
    let again = admin
        .create_role_assignment(&fx.dev, &app.id, &role, &scope)
        .await
        .unwrap();
    assert_eq!(
        again,
        AssignmentOutcome::AlreadyPresent(Some(assignment.clone()))
    );
    assert_eq!(
        fx.control()
            .count("POST", "/v1/environments/*/applications/*/roleAssignments"),
        2
    );
    let statuses: Vec<u16> = fx
        .control()
        .calls()
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/roleAssignments"))
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [201, 400]);

    // The worker's secret is readable by the admin and works at the token endpoint.
    let secret = admin.application_secret(&fx.dev, &app.id).await.unwrap();
    assert!(secret.secret.expose().len() >= 64);
    assert!(secret.previous.is_none());
    let worker_session = fx.worker_session(&app.id, secret.secret.clone());
    worker_session.verify_credentials().await.unwrap();
    // A worker cannot read its own secret (refused, retried within the window, then permanent).
    let own = worker_session
        .application_secret(&fx.dev, &app.id)
        .await
        .unwrap_err();
    assert_eq!(own.status(), Some(403));

    // Deleting is idempotent.
    assert!(
        admin
            .delete_role_assignment(&fx.dev, &app.id, &assignment.id)
            .await
            .unwrap()
    );
    assert!(
        !admin
            .delete_role_assignment(&fx.dev, &app.id, &assignment.id)
            .await
            .unwrap()
    );
    assert!(admin.delete_application(&fx.dev, &app.id).await.unwrap());
    assert!(!admin.delete_application(&fx.dev, &app.id).await.unwrap());
    assert_eq!(admin.application(&fx.dev, &app.id).await.unwrap(), None);
}

#[tokio::test]
async fn rotation_with_overlap_keeps_the_old_secret_until_it_expires() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let app = admin
        .create_worker_application(&fx.dev, &worker("rotating"))
        .await
        .unwrap();
    let first = admin
        .application_secret(&fx.dev, &app.id)
        .await
        .unwrap()
        .secret;

    let expires = fx.control().now() + jiff::SignedDuration::from_mins(10);
    let rotated = admin
        .rotate_application_secret(&fx.dev, &app.id, Some(expires))
        .await
        .unwrap();
    assert_ne!(rotated.secret, first);
    let previous = rotated.previous.expect("previous during the overlap");
    assert_eq!(previous.secret.as_ref(), Some(&first));
    // Both secrets work during the overlap.
    fx.worker_session(&app.id, first.clone())
        .verify_credentials()
        .await
        .unwrap();
    fx.worker_session(&app.id, rotated.secret.clone())
        .verify_credentials()
        .await
        .unwrap();

    // After expiresAt the old one is refused and no longer shown.
    fx.control().advance(Duration::from_secs(11 * 60));
    let err = fx
        .worker_session(&app.id, first.clone())
        .verify_credentials()
        .await
        .unwrap_err();
    assert_eq!(token_error(err).1, "invalid_client");
    assert!(
        admin
            .application_secret(&fx.dev, &app.id)
            .await
            .unwrap()
            .previous
            .is_none()
    );

    // Without an overlap the old secret stops at once.
    let second = rotated.secret;
    let third = admin
        .rotate_application_secret(&fx.dev, &app.id, None)
        .await
        .unwrap();
    assert!(third.previous.is_none());
    assert!(
        fx.worker_session(&app.id, second)
            .verify_credentials()
            .await
            .is_err()
    );

    // Deleting the previous secret ends an overlap early.
    let expires = fx.control().now() + jiff::SignedDuration::from_hours(1);
    let fourth = admin
        .rotate_application_secret(&fx.dev, &app.id, Some(expires))
        .await
        .unwrap();
    admin
        .delete_previous_secret(&fx.dev, &app.id)
        .await
        .unwrap();
    assert!(
        fx.worker_session(&app.id, third.secret)
            .verify_credentials()
            .await
            .is_err()
    );
    fx.worker_session(&app.id, fourth.secret)
        .verify_credentials()
        .await
        .unwrap();

    // An overlap outside 1 minute..30 days is refused.
    let too_long = fx.control().now() + jiff::SignedDuration::from_hours(24 * 31);
    let err = admin
        .rotate_application_secret(&fx.dev, &app.id, Some(too_long))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn the_client_follows_next_links_and_matches_names_case_insensitively() {
    let fx = Fixture::new().await;
    fx.sim.set_page_size(2);
    let admin = fx.session("operator");
    for name in ["a", "b", "AIC-Worker", "c", "aic-worker"] {
        admin
            .create_worker_application(&fx.dev, &worker(name))
            .await
            .unwrap();
    }
    // Dev also holds the seeded post-worker and disabled-worker.
    let all = admin.list_applications(&fx.dev).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(
        fx.control().count("GET", "/v1/environments/*/applications"),
        4
    );
    let found = admin
        .find_applications_by_name(&fx.dev, "aic-worker")
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "names are not unique");
}

#[tokio::test]
async fn put_is_a_full_replace() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let app = admin
        .create_worker_application(&fx.dev, &worker("replace-me"))
        .await
        .unwrap();
    assert!(app.description.is_some());
    let desired = WorkerApplication {
        description: None,
        enabled: false,
        ..worker("replaced")
    };
    let replaced = admin
        .replace_worker_application(&fx.dev, &app.id, &desired)
        .await
        .unwrap();
    assert_eq!(replaced.id, app.id);
    assert!(desired.matches(&replaced), "{replaced:?}");
    let read = admin.application(&fx.dev, &app.id).await.unwrap().unwrap();
    assert_eq!(read.description, None);
    assert!(!read.enabled);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    fx.control().inject(FaultSpec {
        method: Some("GET".into()),
        path: "/v1/environments/*/applications".into(),
        status: Some(429),
        retry_after: Some("2".into()),
        ..FaultSpec::default()
    });
    let apps = admin.list_applications(&fx.dev).await.unwrap();
    assert_eq!(apps.len(), 2);
    let sleeps = fx.clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert!(sleeps[0] >= Duration::from_secs(2), "{sleeps:?}");
    let statuses: Vec<u16> = fx.control().calls().iter().map(|c| c.status).collect();
    assert_eq!(&statuses[statuses.len() - 2..], [429, 200]);
}

#[tokio::test]
async fn every_answer_is_counted_in_the_metrics_the_429s_a_retry_absorbed_included() {
    let calls = ExternalCalls::default();
    let fx = Fixture::with_config(PingOneConfig {
        calls: calls.clone(),
        ..PingOneConfig::default()
    })
    .await;
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    fx.control().inject(FaultSpec {
        method: Some("GET".into()),
        path: "/v1/environments/*/applications".into(),
        status: Some(429),
        retry_after: Some("1".into()),
        ..FaultSpec::default()
    });
    admin.list_applications(&fx.dev).await.unwrap();
    let text = Metrics::with_external_calls(calls).encode();
    for series in [
        r#"{service="pingone",operation="get_token",outcome="ok"} 1"#,
        r#"{service="pingone",operation="list applications",outcome="PingOneRateLimited"} 1"#,
        r#"{service="pingone",operation="list applications",outcome="ok"} 1"#,
    ] {
        assert!(
            text.contains(&format!("pingone_aic_external_calls_total{series}")),
            "{series} missing in\n{text}"
        );
    }
}

#[tokio::test]
async fn a_long_retry_after_is_returned_instead_of_slept_on() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    fx.control().inject(FaultSpec {
        path: "/v1/environments/*".into(),
        status: Some(429),
        retry_after: Some("120".into()),
        ..FaultSpec::default()
    });
    let err = admin.environment(&fx.dev).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(fx.clock.sleeps().is_empty());
}

#[tokio::test]
async fn server_errors_are_retried_but_not_for_application_create() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    fx.control().inject(FaultSpec {
        method: Some("GET".into()),
        path: "/v1/environments/*".into(),
        status: Some(500),
        times: 2,
        ..FaultSpec::default()
    });
    admin.environment(&fx.dev).await.unwrap();
    assert_eq!(fx.clock.sleeps().len(), 2);

    // A create whose answer was lost may have happened; repeating it could make a duplicate.
    fx.control().inject(FaultSpec {
        method: Some("POST".into()),
        path: "/v1/environments/*/applications".into(),
        status: Some(503),
        ..FaultSpec::default()
    });
    let err = admin
        .create_worker_application(&fx.dev, &worker("once"))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        fx.control()
            .count("POST", "/v1/environments/*/applications"),
        1
    );
}

#[tokio::test]
async fn a_403_is_retried_within_the_propagation_window_then_permanent() {
    let fx = Fixture::new().await;
    // The Client Application Developer can manage apps but can assign no role.
    let developer = fx.session("post-worker");
    let app = developer
        .create_worker_application(&fx.dev, &worker("dev-made"))
        .await
        .unwrap();
    let role = developer.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    let err = developer
        .create_role_assignment(&fx.dev, &app.id, &role, &Scope::environment(&fx.dev))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_transient());
    assert_eq!(err.reason(), "PingOneForbidden");
    let waited: Duration = fx.clock.sleeps().iter().sum();
    assert!(waited >= Duration::from_secs(20), "waited {waited:?}");
    assert!(waited < Duration::from_secs(60), "waited {waited:?}");
    assert!(
        fx.control()
            .count("POST", "/v1/environments/*/applications/*/roleAssignments")
            > 2
    );
}

#[tokio::test]
async fn a_grant_that_is_still_propagating_succeeds_once_it_lands() {
    let seed = SimConfig::parse(SEED).unwrap();
    let control = SimControl::new();
    let mut pingone = seed.pingone;
    pingone.grant_propagation_seconds = 5;
    let sim = PingOneSim::new(pingone, control.clone()).unwrap();
    let server = serve_loopback(sim.app()).await.unwrap();
    let clock = LinkedClock {
        control: control.clone(),
        sleeps: Arc::default(),
    };
    let client = PingOne::with_clock(PingOneConfig::default(), Arc::new(clock.clone())).unwrap();
    let endpoints =
        Endpoints::custom(&format!("{}/v1", server.base_url), &server.base_url).unwrap();
    let operator = sim
        .workers()
        .into_iter()
        .find(|w| w.name == "operator")
        .unwrap();
    let admin = client.session(
        endpoints.clone(),
        Credentials {
            environment_id: operator.environment_id,
            client_id: operator.id,
            client_secret: operator.secret.into(),
            auth_method: TokenAuthMethod::ClientSecretBasic,
        },
    );
    let dev = sim.environment_id("Dev").unwrap();
    let app = admin
        .create_worker_application(&dev, &worker("fresh"))
        .await
        .unwrap();
    let role = admin.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    admin
        .create_role_assignment(&dev, &app.id, &role, &Scope::environment(&dev))
        .await
        .unwrap();
    // The new worker's grant has not propagated yet: its first call is refused, then works.
    let secret = admin
        .application_secret(&dev, &app.id)
        .await
        .unwrap()
        .secret;
    let fresh = client.session(
        endpoints,
        Credentials {
            environment_id: dev.clone(),
            client_id: app.id.clone(),
            client_secret: secret,
            auth_method: TokenAuthMethod::ClientSecretBasic,
        },
    );
    let sleeps_before = clock.sleeps().len();
    fresh.environment(&dev).await.unwrap();
    assert!(
        clock.sleeps().len() > sleeps_before,
        "the first call was refused and retried"
    );
}

#[tokio::test]
async fn a_young_environment_404_is_retried_until_it_is_served() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let young = fx
        .sim
        .add_environment("Example Corp", "Brand-new", "EU")
        .unwrap();
    let apps = admin.list_applications(&young).await.unwrap();
    assert!(apps.is_empty());
    let waited: Duration = fx.clock.sleeps().iter().sum();
    assert!(waited >= Duration::from_secs(17), "waited {waited:?}");

    // An old environment's 404 is final at once.
    let sleeps = fx.clock.sleeps().len();
    assert_eq!(
        admin.application(&fx.dev, "no-such-app").await.unwrap(),
        None
    );
    assert_eq!(fx.clock.sleeps().len(), sleeps);
}

#[tokio::test]
async fn secrets_of_more_powerful_apps_and_read_only_assignments_are_protected() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let org_admin = fx.credentials("org-admin");
    let admins = fx.sim.environment_id("Administrators").unwrap();
    // The org admin's Organization Admin assignment is read-only to an Environment Admin…
    let assignments = admin
        .list_role_assignments(&admins, &org_admin.client_id)
        .await
        .unwrap();
    assert_eq!(assignments.len(), 1);
    assert!(assignments[0].read_only);
    // …so the Environment Admin may not read that app's secret.
    let err = admin
        .application_secret(&admins, &org_admin.client_id)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
}

#[tokio::test]
async fn an_app_created_without_opting_out_inherits_the_callers_roles() {
    let fx = Fixture::new().await;
    let token = fx.sim.issued_tokens();
    assert!(token.is_empty());
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    let token = fx.sim.issued_tokens().remove(0);
    let http = pingone_aic_operator::http::client("test").unwrap();
    let created: serde_json::Value = http
        .post(format!(
            "{}/v1/environments/{}/applications",
            fx.server.base_url, fx.dev
        ))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "inherits", "enabled": true, "type": "WORKER", "protocol": "OPENID_CONNECT",
            "grantTypes": ["CLIENT_CREDENTIALS"], "tokenEndpointAuthMethod": "CLIENT_SECRET_BASIC"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let inherited = admin.list_role_assignments(&fx.dev, id).await.unwrap();
    assert_eq!(inherited.len(), 1, "the operator's Environment Admin");
}

#[tokio::test]
async fn role_lookup_is_cached_and_unknown_roles_are_errors() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let first = admin.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    let env_admin = admin.role_id("Environment Admin").await.unwrap();
    assert_ne!(first, env_admin);
    assert_eq!(fx.control().count("GET", "/v1/roles"), 1);
    let err = admin.role_id("No Such Role").await.unwrap_err();
    assert_eq!(err.reason(), "PingOneRoleNotFound");
}

#[tokio::test]
async fn the_request_budget_spaces_calls_per_licence() {
    let fx = Fixture::with_config(PingOneConfig {
        budget: pingone_aic_operator::budget::BudgetConfig {
            per_second: 1.0,
            burst: 2,
        },
        ..PingOneConfig::default()
    })
    .await;
    let admin = fx.session("operator");
    for _ in 0..5 {
        admin.environment(&fx.dev).await.unwrap();
    }
    // Two calls used the burst; the other three waited about a second each for the bucket
    // (a little less, as the real clock under the simulated one moves too).
    let waited: Duration = fx.clock.sleeps().iter().sum();
    assert!(waited >= Duration::from_secs(2), "waited {waited:?}");
}

#[tokio::test]
async fn the_simulator_expires_tokens_by_its_clock() {
    let fx = Fixture::new().await;
    let http = pingone_aic_operator::http::client("test").unwrap();
    let operator = fx.credentials("operator");
    let token: serde_json::Value = http
        .post(format!(
            "{}/{}/as/token",
            fx.server.base_url, operator.environment_id
        ))
        .basic_auth(&operator.client_id, Some(operator.client_secret.expose()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/environments/{}", fx.server.base_url, fx.dev);
    let fresh = http.get(&url).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(fresh.status(), 200);
    fx.control().advance(Duration::from_secs(3601));
    let stale = http.get(&url).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(stale.status(), 401);
}

#[tokio::test]
async fn the_control_api_works_over_http() {
    let fx = Fixture::new().await;
    let http = pingone_aic_operator::http::client("test").unwrap();
    let base = &fx.server.base_url;
    let added = http
        .post(format!("{base}/_sim/faults"))
        .json(&serde_json::json!({
            "method": "GET", "path": "/v1/roles", "times": 2, "status": 503,
            "body": { "id": "x", "code": "UNEXPECTED_ERROR", "message": "down" }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 204);
    let refused = http
        .post(format!("{base}/_sim/faults"))
        .json(&serde_json::json!({ "path": "/v1/roles", "bogus": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    for expected in [503, 503, 401] {
        let answer = http.get(format!("{base}/v1/roles")).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), expected);
    }
    let calls: serde_json::Value = http
        .get(format!("{base}/_sim/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["counts"]["GET /v1/roles"], 3);
    assert_eq!(calls["calls"][0]["faulted"], true);
    assert_eq!(calls["calls"][2]["faulted"], false);

    let before = fx.control().now();
    let advanced = http
        .post(format!("{base}/_sim/clock/advance"))
        .json(&serde_json::json!({ "seconds": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    assert!(fx.control().now() >= before + jiff::SignedDuration::from_secs(600));

    let created: serde_json::Value = http
        .post(format!("{base}/_sim/pingone/environments"))
        .json(
            &serde_json::json!({ "organization": "Example Corp", "name": "Made", "region": "SG" }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state: serde_json::Value = http
        .get(format!("{base}/_sim/pingone/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let made = state["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["id"] == created["id"])
        .unwrap();
    assert_eq!(made["region"], "SG");

    http.delete(format!("{base}/_sim/calls"))
        .send()
        .await
        .unwrap();
    assert!(fx.control().calls().is_empty());
}

#[tokio::test]
async fn application_bodies_are_validated_and_enabled_defaults_to_false() {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    admin.verify_credentials().await.unwrap();
    let token = fx.sim.issued_tokens().remove(0);
    let http = pingone_aic_operator::http::client("test").unwrap();
    let url = format!(
        "{}/v1/environments/{}/applications",
        fx.server.base_url, fx.dev
    );
    let post = |body: serde_json::Value| http.post(&url).bearer_auth(&token).json(&body).send();
    let created = post(serde_json::json!({
        "name": "quiet", "type": "WORKER", "protocol": "OPENID_CONNECT",
        "grantTypes": ["CLIENT_CREDENTIALS"], "tokenEndpointAuthMethod": "CLIENT_SECRET_BASIC",
        "assignActorRoles": false
    }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["enabled"], false);
    assert!(created.get("assignActorRoles").is_none());
    let saml_worker = post(serde_json::json!({
        "name": "x", "enabled": true, "type": "WORKER", "protocol": "SAML"
    }))
    .await
    .unwrap();
    assert_eq!(saml_worker.status(), 400);
    let body: serde_json::Value = saml_worker.json().await.unwrap();
    // A worker is an OIDC application only (PingOne docs, worker applications).
    assert_eq!(body["details"][0]["target"], "type");
    let bad_method = post(serde_json::json!({
        "name": "x", "enabled": true, "type": "WORKER", "protocol": "OPENID_CONNECT",
        "grantTypes": ["CLIENT_CREDENTIALS"], "tokenEndpointAuthMethod": "MAGIC"
    }))
    .await
    .unwrap();
    let body: serde_json::Value = bad_method.json().await.unwrap();
    assert_eq!(body["details"][0]["target"], "tokenEndpointAuthMethod");
    assert!(body["details"][0]["innerError"]["allowedValues"].is_array());

    // Admin roles go only to OIDC and SAML applications.
    let link: serde_json::Value = post(serde_json::json!({
        "name": "link", "enabled": true, "type": "PORTAL_LINK_APP", "protocol": "EXTERNAL_LINK",
        "homePageUrl": "https://example.com"
    }))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let link_id = link["id"].as_str().unwrap();
    let role = admin.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    let err = admin
        .create_role_assignment(&fx.dev, link_id, &role, &Scope::environment(&fx.dev))
        .await
        .unwrap_err();
    match err {
        PingOneError::Api {
            status: 400, body, ..
        } => {
            assert_eq!(body.details[0].target.as_deref(), Some("application"));
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// Every refusal is a P1Error in JSON, as the spec declares for each status, 405 and a
/// malformed `cursor` included (the framework's own answers had an empty or plain-text body).
#[tokio::test]
async fn a_wrong_method_and_a_malformed_cursor_are_p1_errors() {
    let fx = Fixture::new().await;
    fx.session("operator").verify_credentials().await.unwrap();
    let token = fx.sim.issued_tokens().remove(0);
    let http = pingone_aic_operator::http::client("test").unwrap();
    let url = format!("{}/v1/environments", fx.server.base_url);
    for (method, query, status) in [
        (reqwest::Method::POST, "", 405),
        (reqwest::Method::DELETE, "", 405),
        (reqwest::Method::GET, "?cursor=abc", 400),
    ] {
        let answer = http
            .request(method.clone(), format!("{url}{query}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{method} {query}");
        let content_type = answer.headers()[reqwest::header::CONTENT_TYPE].clone();
        assert!(
            content_type
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{method} {query}"
        );
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(
            body["id"].is_string() && body["code"].is_string(),
            "{method} {query}: {body}"
        );
    }
}

/// The create body is one of the spec's protocol schemas (`ApplicationOIDC`, `ApplicationSAML`,
/// `ApplicationWSFED`, `ApplicationExternalLink`), checked as PingOne validates it: the fields a
/// protocol requires, the application types it takes (the built-in `PING_ONE_*` applications
/// have no create schema; per-protocol types from the Terraform provider's docs), nested
/// objects with their own required fields, enums and ranges. Nothing refused is created.
#[tokio::test]
async fn application_bodies_are_checked_against_their_protocol_schema() {
    let fx = Fixture::new().await;
    fx.session("operator").verify_credentials().await.unwrap();
    let token = fx.sim.issued_tokens().remove(0);
    let http = pingone_aic_operator::http::client("test").unwrap();
    let url = format!(
        "{}/v1/environments/{}/applications",
        fx.server.base_url, fx.dev
    );
    let ws_fed = serde_json::json!({
        "name": "refused", "enabled": true, "type": "WEB_APP", "protocol": "WS_FED",
        "domainName": "example.com", "replyUrl": "https://example.com/wsfed",
        "idpSigning": {"algorithm": "SHA256withRSA", "key": {"id": "k"}},
    });
    let worker = serde_json::json!({
        "name": "refused", "enabled": true, "type": "WORKER", "protocol": "OPENID_CONNECT",
        "grantTypes": ["CLIENT_CREDENTIALS"], "tokenEndpointAuthMethod": "CLIENT_SECRET_BASIC",
    });
    let with = |base: &serde_json::Value, field: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |base: &serde_json::Value, field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    for (body, code, target) in [
        (
            with(&ws_fed, "type", "PING_ONE_PORTAL".into()),
            "INVALID_VALUE",
            "type",
        ),
        (
            without(&ws_fed, "domainName"),
            "REQUIRED_VALUE",
            "domainName",
        ),
        (
            serde_json::json!({"name": "refused", "enabled": true, "type": "WEB_APP", "protocol": "SAML", "spEntityId": "urn:sp"}),
            "REQUIRED_VALUE",
            "acsUrls",
        ),
        (
            with(&ws_fed, "surprise", 1.into()),
            "INVALID_VALUE",
            "surprise",
        ),
        (
            with(
                &ws_fed,
                "idpSigning",
                serde_json::json!({"key": {"id": "k"}}),
            ),
            "REQUIRED_VALUE",
            "idpSigning.algorithm",
        ),
        (
            with(
                &worker,
                "corsSettings",
                serde_json::json!({"behavior": "ALLOW_ALL"}),
            ),
            "INVALID_VALUE",
            "corsSettings.behavior",
        ),
        (
            with(
                &worker,
                "accessControl",
                serde_json::json!({"group": {"type": "ANY_GROUP"}}),
            ),
            "REQUIRED_VALUE",
            "accessControl.group.groups",
        ),
        (
            with(&worker, "deviceTimeout", 0.into()),
            "OUT_OF_RANGE",
            "deviceTimeout",
        ),
        (
            with(&worker, "redirectUris", serde_json::json!([1])),
            "INVALID_VALUE",
            "redirectUris",
        ),
    ] {
        let answer = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{body}");
        let error: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(error["details"][0]["code"], code, "{error}");
        assert_eq!(error["details"][0]["target"], target, "{error}");
    }
    let apps = fx.sim.state();
    let refused = apps["applications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["name"] == "refused")
        .count();
    assert_eq!(refused, 0);

    let accepted = with(&ws_fed, "name", "wsfed".into());
    let answer = http
        .post(&url)
        .bearer_auth(&token)
        .json(&accepted)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let created: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(created["idpSigning"], accepted["idpSigning"]);
}

#[tokio::test]
async fn a_region_s_hosts_know_only_the_environments_of_that_region() {
    let seed = SimConfig::parse(
        r#"
pingone:
  organizations:
    - name: Example Corp
      environments:
        - { name: Dev, region: EU }
  workers:
    - name: admin
      environment: Dev
      secret: admin-secret-0123456789
      roles:
        - { role: Environment Admin, scopeType: ORGANIZATION }
"#,
    )
    .unwrap();
    let sim = PingOneSim::new(seed.pingone, SimControl::new()).unwrap();
    let eu = serve_loopback(sim.regional_app("EU")).await.unwrap();
    let na = serve_loopback(sim.regional_app("NA")).await.unwrap();
    let admin = sim
        .workers()
        .into_iter()
        .find(|w| w.name == "admin")
        .unwrap();
    let http = pingone_aic_operator::http::client("test").unwrap();
    let token = |origin: String| {
        let (http, admin) = (&http, &admin);
        async move {
            http.post(format!("{origin}/{}/as/token", admin.environment_id))
                .basic_auth(&admin.id, Some(&admin.secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(token(na.base_url.clone()).await.status(), 404);
    let issued = token(eu.base_url.clone()).await;
    assert_eq!(issued.status(), 200);
    let body: serde_json::Value = issued.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    for (origin, status) in [(&eu.base_url, 200), (&na.base_url, 404)] {
        let read = http
            .get(format!("{origin}/v1/environments/{}", admin.environment_id))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), status, "{origin}");
    }
}
