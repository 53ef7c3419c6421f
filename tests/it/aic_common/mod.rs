//! Shared setup for the AIC client and simulator tests: a three-tier promotion group plus a
//! sandbox, clients with fast retries, and a stand-in PingOne token endpoint on loopback.
#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use pingone_aic_operator::aic::startup::Poll;
use pingone_aic_operator::aic::{AicClient, AicClientConfig, TokenCache};

use pingone_aic_operator::http::Backoff;
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::aic::{
    AicSimConfig, AicSimulator, RunningAicSim, ServiceAccountConfig, TenantConfig, Tier, Timings,
};

pub const JWK: &str = include_str!("../../fixtures/test-service-account.jwk.json");
pub const OTHER_JWK: &str = include_str!("../../fixtures/test-other-key.jwk.json");
pub const SA: &str = "3f2a6c1e-0000-4000-8000-00000000sa01";
pub const LIMITED_SA: &str = "3f2a6c1e-0000-4000-8000-00000000sa02";
pub const ALL_SCOPES: [&str; 3] = ["fr:am:*", "fr:idc:esv:*", "fr:idc:promotion:*"];

/// Timings that make everything finish at once.
pub fn instant() -> Timings {
    Timings {
        restart_ms: 0,
        restart_poll_failures: 0,
        lock_ms: 0,
        promotion_ms: 0,
        token_lifetime_s: 899,
    }
}

fn tenant(name: &str, tier: Tier) -> TenantConfig {
    let public: serde_json::Value = serde_json::from_str(JWK).unwrap();
    let public = serde_json::json!({"kty": "RSA", "n": public["n"], "e": public["e"]});
    TenantConfig {
        name: name.into(),
        tier,
        port: 0,
        url: None,
        realms: vec!["alpha".into(), "bravo".into()],
        worker_service: true,
        service_accounts: vec![
            ServiceAccountConfig {
                id: SA.into(),
                scopes: ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                jwk: public.clone(),
                name: Some("aic-tests".into()),
            },
            ServiceAccountConfig {
                id: LIMITED_SA.into(),
                scopes: vec!["fr:idc:esv:read".into()],
                jwk: public,
                name: None,
            },
        ],
    }
}

pub fn config(timings: Timings) -> AicSimConfig {
    AicSimConfig {
        tenants: vec![
            tenant("dev", Tier::Development),
            tenant("uat", Tier::Uat),
            tenant("prod", Tier::Production),
            tenant("sandbox", Tier::Sandbox),
        ],
        promotion_groups: vec![vec!["dev".into(), "uat".into(), "prod".into()]],
        timings,
        rate_limit: None,
    }
}

pub async fn start(timings: Timings) -> (AicSimulator, RunningAicSim) {
    let sim = AicSimulator::new(config(timings)).unwrap();
    let running = sim.serve().await.unwrap();
    (sim, running)
}

pub fn fast_backoff(max_retries: u32) -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_retries,
    }
}

pub fn client_with(
    running: &RunningAicSim,
    tenant: &str,
    account: &str,
    scopes: &[&str],
    max_retries: u32,
) -> AicClient {
    AicClient::new(
        AicClientConfig {
            tenant_url: running.url(tenant).unwrap().to_string(),
            realm: "alpha".into(),
            service_account_id: account.into(),
            private_key: SecretString::new(JWK).into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            backoff: fast_backoff(max_retries),
        },
        pingone_aic_operator::http::client("aic-tests").unwrap(),
        TokenCache::default(),
    )
    .unwrap()
}

pub fn client(running: &RunningAicSim, tenant: &str) -> AicClient {
    client_with(running, tenant, SA, &ALL_SCOPES, 3)
}

pub fn poll() -> Poll {
    Poll {
        interval: Duration::from_millis(2),
        timeout: Duration::from_secs(20),
        max_consecutive_errors: 5,
    }
}

/// A stand-in for PingOne: the client-credentials token endpoint (Basic auth) and the
/// environment read, for one worker client.
pub struct FakePingOne {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakePingOne {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub const ENV_ID: &str = "219b7c4d-0000-4000-8000-000000000e43";
pub const CLIENT_ID: &str = "faa1230c-0000-4000-8000-0000000003c0";
pub const CLIENT_SECRET: &str = "worker-secret-value-Zq81";

/// A stand-in for a PingOne product-connection credential (a signed JWT; the signature is not
/// checked by anything here).
pub fn credential_jwt() -> String {
    let part = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2ln",
        part(serde_json::json!({"alg": "RS256"})),
        part(serde_json::json!({"jti": "c0fd-credential", "iat": 1_776_793_320, "env": ENV_ID}))
    )
}

pub async fn fake_pingone() -> FakePingOne {
    let router = Router::new()
        .route(
            "/{env}/as/token",
            post(|Path(env): Path<String>, headers: HeaderMap, body: String| async move {
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                if let Some(assertion) = form.get("client_assertion") {
                    return if env == ENV_ID && *assertion == credential_jwt() {
                        (StatusCode::OK, axum::Json(serde_json::json!({"access_token": "p1-token", "token_type": "Bearer", "expires_in": 3600}))).into_response()
                    } else {
                        (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "invalid_client"}))).into_response()
                    };
                }
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                );
                let auth = headers.get("authorization").and_then(|h| h.to_str().ok()).unwrap_or_default();
                if env == ENV_ID && auth == expected {
                    (StatusCode::OK, axum::Json(serde_json::json!({"access_token": "p1-token", "token_type": "Bearer", "expires_in": 3600}))).into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"error": "invalid_client", "error_description": "Request denied: Unsupported authentication method"}))).into_response()
                }
            }),
        )
        .route(
            "/environments/{env}",
            get(|Path(env): Path<String>| async move {
                axum::Json(serde_json::json!({"id": env, "name": "Test Environment", "region": "EU", "organization": {"id": "99f0-org"}}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    FakePingOne {
        url,
        stop: Some(stop),
    }
}
