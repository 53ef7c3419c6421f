//! Nothing secret reaches the logs: the whole client flow runs on a runtime whose threads log to
//! a subscriber that captures every event at trace level.

use crate::pingone_support;

use pingone_aic_operator::pingone::{IDENTITY_DATA_ADMIN, PingOneApi, Scope};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::control::FaultSpec;
use pingone_support::{Fixture, worker};
use testkit::logs::Capture;

#[test]
fn no_token_or_secret_appears_in_logs_or_debug_output() {
    let captured = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    testkit::logs::run_logging_to(tracing::Dispatch::new(subscriber), scan(captured));
}

async fn scan(captured: Capture) {
    let fx = Fixture::new().await;
    let admin = fx.session("operator");
    let app = admin
        .create_worker_application(&fx.dev, &worker("quiet"))
        .await
        .unwrap();
    let role = admin.role_id(IDENTITY_DATA_ADMIN).await.unwrap();
    admin
        .create_role_assignment(&fx.dev, &app.id, &role, &Scope::environment(&fx.dev))
        .await
        .unwrap();
    let first = admin.application_secret(&fx.dev, &app.id).await.unwrap();
    fx.control().inject(FaultSpec {
        path: "/v1/environments/*/applications/*/secret".into(),
        status: Some(429),
        retry_after: Some("1".into()),
        ..FaultSpec::default()
    });
    let expires = fx.control().now() + jiff::SignedDuration::from_mins(5);
    let rotated = admin
        .rotate_application_secret(&fx.dev, &app.id, Some(expires))
        .await
        .unwrap();
    let worker_session = fx.worker_session(&app.id, rotated.secret.clone());
    worker_session.verify_credentials().await.unwrap();
    let mut wrong = fx.credentials("operator");
    wrong.client_secret = SecretString::new("wrong-secret-that-must-not-show-up");
    let wrong_session = fx.client.session(fx.endpoints(), wrong);
    let err = wrong_session.verify_credentials().await.unwrap_err();

    let mut secrets: Vec<String> = vec![
        fx.credentials("operator").client_secret.expose().to_owned(),
        first.secret.expose().to_owned(),
        rotated.secret.expose().to_owned(),
        "wrong-secret-that-must-not-show-up".to_owned(),
    ];
    secrets.extend(fx.sim.issued_tokens());
    assert!(secrets.len() >= 6, "tokens were issued");

    let debug = format!("{err:?} {err} {admin:?} {wrong_session:?} {first:?} {rotated:?}");
    let logs = captured.text();
    assert!(
        logs.contains("PingOne API call"),
        "the client logged its calls"
    );
    assert!(
        logs.contains("retrying PingOne call"),
        "the client logged its retry"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret or token is in the logs"
        );
        assert!(
            !debug.contains(secret.as_str()),
            "a secret or token is in Debug output"
        );
    }
}
