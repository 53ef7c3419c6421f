//! Nothing secret reaches the logs: the whole client flow runs under a global subscriber
//! that captures every event (in a test binary of its own, so no other test's thread can
//! make `tracing` cache an uninterested callsite).

mod pingone_support;

use std::sync::{Arc, Mutex};

use pingone_aic_operator::pingone::{IDENTITY_DATA_ADMIN, PingOneApi, Scope};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_operator::sim::control::FaultSpec;
use pingone_support::{Fixture, worker};

/// Collects everything `tracing` writes during a test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_appears_in_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

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
    secrets.extend(fx.sim.issued_tokens().iter().map(|t| t.expose().to_owned()));
    assert!(secrets.len() >= 6, "tokens were issued");

    let debug = format!("{err:?} {err} {admin:?} {wrong_session:?} {first:?} {rotated:?}");
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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
