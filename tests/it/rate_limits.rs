//! Rate limits: the simulators' per-licence (PingOne) and per-tenant (AIC) limits answer 429
//! with `Retry-After` like the services, and the operator's shared budgets keep its clients
//! under them.

use crate::aic_common;
use crate::pingone_support;
use crate::support;

use std::time::Duration;

use pingone_aic_operator::budget::BudgetConfig;
use pingone_aic_operator::pingone::{PingOneApi, PingOneConfig};
use pingone_aic_sim::aic::{self, Timings};
use pingone_aic_sim::pingone::RateLimit;
use pingone_support::Fixture;
use serde_json::Value;
use support::openapi::{Direction, Spec};

const SPEC: &str = "pingone-management-openapi.yml";

#[tokio::test]
async fn the_pingone_licence_rate_answers_429_with_retry_after_and_resets() {
    let fx = Fixture::new().await;
    fx.sim.set_rate_limit(Some(RateLimit {
        requests_per_second: 1.0,
        burst: Some(2),
    }));
    let operator = fx.credentials("operator");
    let http = pingone_aic_operator::http::client("test").unwrap();
    let token: Value = http
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
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let read = || {
        http.get(format!("{}/v1/environments/{}", fx.server.base_url, fx.dev))
            .bearer_auth(&bearer)
            .send()
    };
    // The burst goes through; the next call is refused, and keeps being refused while the
    // licence's clock does not move.
    for _ in 0..2 {
        assert_eq!(read().await.unwrap().status(), 200);
    }
    let refused = read().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "REQUEST_LIMITED");
    assert_eq!(body["details"][0]["code"], "LIMIT_EXCEEDED");
    if let Some(spec) = Spec::load(SPEC) {
        let schema = spec.schema("P1Error").clone();
        let errors = spec.validate(&schema, &body, Direction::Response);
        assert!(errors.is_empty(), "{errors:?}\n{body:#}");
    }
    assert_eq!(read().await.unwrap().status(), 429);
    // After the Retry-After the licence holds a request again.
    fx.control().advance(Duration::from_secs(1));
    assert_eq!(read().await.unwrap().status(), 200);
    assert_eq!(read().await.unwrap().status(), 429);
    // Off again, nothing is limited.
    fx.sim.set_rate_limit(None);
    for _ in 0..5 {
        assert_eq!(read().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn sessions_on_one_licence_share_its_budget_and_stay_under_the_rate() {
    let limit = RateLimit {
        requests_per_second: 2.0,
        burst: Some(2),
    };
    let budget = BudgetConfig {
        per_second: 2.0,
        burst: 2,
    };
    let run = |licences: [Option<&'static str>; 2]| async move {
        let fx = Fixture::with_config(PingOneConfig {
            budget,
            ..PingOneConfig::default()
        })
        .await;
        let sessions: Vec<_> = licences
            .iter()
            .map(|licence| fx.session("operator").on_license(*licence))
            .collect();
        // The token first, so both sessions start from the same cached token.
        sessions[0].verify_credentials().await.unwrap();
        fx.sim.set_rate_limit(Some(limit));
        for _ in 0..6 {
            for session in &sessions {
                session.environment(&fx.dev).await.unwrap();
            }
        }
        fx.control().count("GET", "/v1/environments/*")
    };
    // Both sessions spend the licence's one budget (the default one per regional API host):
    // twelve reads, none refused.
    assert_eq!(run([None, None]).await, 12);
    // Told they are on two licences while the simulator has them on one, the sessions
    // together go at twice the rate and PingOne refuses some calls (retried after their
    // Retry-After, so all twelve still succeed).
    let with_refusals = run([Some("a"), Some("b")]).await;
    assert!(with_refusals > 12, "{with_refusals} calls for 12 reads");
}

#[tokio::test]
async fn a_429_holds_off_the_whole_licence() {
    let fx = Fixture::with_config(PingOneConfig {
        budget: BudgetConfig {
            per_second: 100.0,
            burst: 100,
        },
        // No retries: the refused call comes back at once, and what the other session waits
        // is the budget's doing alone.
        backoff: pingone_aic_operator::http::Backoff {
            max_retries: 0,
            ..PingOneConfig::default().backoff
        },
        ..PingOneConfig::default()
    })
    .await;
    let first = fx.session("operator");
    let second = fx.session("operator");
    first.verify_credentials().await.unwrap();
    fx.control().inject(pingone_aic_sim::control::FaultSpec {
        path: "/v1/environments/*".into(),
        status: Some(429),
        retry_after: Some("7".into()),
        ..Default::default()
    });
    let refused = first.environment(&fx.dev).await.unwrap_err();
    assert_eq!(refused.status(), Some(429));
    assert!(fx.clock.sleeps().is_empty(), "{:?}", fx.clock.sleeps());
    // The other session was never refused, yet its next call waits out the Retry-After.
    second.environment(&fx.dev).await.unwrap();
    // (A hair under 7 s: the real clock under the simulated one moved meanwhile.)
    let sleeps = fx.clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert!(
        sleeps[0] > Duration::from_millis(6500) && sleeps[0] <= Duration::from_secs(7),
        "{sleeps:?}"
    );
}

#[tokio::test]
async fn the_aic_tenant_rate_answers_429_with_retry_after_and_resets() {
    let (sim, running) = aic_common::start(Timings::default()).await;
    sim.set_rate_limit(Some(aic::RateLimit {
        requests_per_second: 1.0,
        burst: Some(2),
    }));
    let http = pingone_aic_operator::http::client("test").unwrap();
    let dev = running.url("dev").unwrap().clone();
    let uat = running.url("uat").unwrap().clone();
    let call = |origin: &url::Url| {
        http.get(origin.join("/environment/variables").unwrap())
            .send()
    };
    // Unauthenticated calls count too: the limit comes before anything else.
    for _ in 0..2 {
        assert_eq!(call(&dev).await.unwrap().status(), 401);
    }
    let refused = call(&dev).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], 429);
    // The limit is per tenant.
    assert_eq!(call(&uat).await.unwrap().status(), 401);
    sim.advance_clock(Duration::from_secs(1));
    assert_eq!(call(&dev).await.unwrap().status(), 401);
    assert_eq!(call(&dev).await.unwrap().status(), 429);
}
