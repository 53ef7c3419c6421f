//! Bad input, table-driven, against one running playground (the examples, every policy
//! `Automatic`): malformed Secrets (missing keys, empty values, a JWK that is not one or is the
//! wrong key or has no private part, a product-connection credential that is not a JWT, wrong
//! client secrets, a deleted Secret) and malformed answers from the simulators (HTML error
//! pages, truncated JSON, JSON of the wrong types, on token and API endpoints of both).
//!
//! Each case breaks one thing, waits for the affected resource to report it — `Ready` False
//! with the case's specific reason and a message — then repairs it and waits for everything to
//! be Ready again: a clear condition, and recovery without restarting anything. No panic may
//! happen anywhere in the process (a panic hook counts them), so no crash loop either.

use crate::evidence;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use pingone_aic_operator::crd::common::condition;
use pingone_aic_operator::crd::{PingOneIntegration, TenantEnvironment};
use pingone_aic_playground::{Playground, PlaygroundOptions};
use pingone_aic_sim::aic::Fault;
use pingone_aic_sim::control::FaultSpec;

static PANICS: AtomicUsize = AtomicUsize::new(0);

const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
    <body><h1>Bad Gateway</h1><p>The proxy received an invalid response.</p></body></html>";

/// Which resource reports a case.
#[derive(Clone, Copy)]
enum Target {
    Tenant(&'static str),
    Integration(&'static str),
}

/// What a case breaks.
enum Break {
    /// Replace a Secret's data (the original is restored afterwards).
    SecretData(&'static str, Vec<(&'static str, String)>),
    /// Delete a Secret (re-created afterwards).
    DeleteSecret(&'static str),
    /// A raw answer from PingOne for a route, then restart the operator so it calls again.
    PingOne(&'static str, &'static str, u16, &'static str, &'static str),
    /// A raw answer from a tenant of AIC for a path prefix, then restart the operator.
    Aic(
        &'static str,
        &'static str,
        &'static str,
        u16,
        &'static str,
        &'static str,
    ),
}

struct Case {
    name: &'static str,
    breaks: Break,
    target: Target,
    /// Reasons that say what is wrong (any one of them; `Prefix*` for any reason starting so). Empty for a transient failure
    /// (a 5xx): the operator retries with backoff and logs each failure (after several in a
    /// row the Ready condition says so) — the case then checks that it retried and recovered.
    reasons: &'static [&'static str],
}

fn other_jwk() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/test-other-key.jwk.json"),
    )
    .expect("the fixture key")
}

fn public_only(jwk: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(jwk).expect("a JWK");
    for member in evidence::PRIVATE_JWK_MEMBERS {
        value.as_object_mut().expect("an object").remove(member);
    }
    value.to_string()
}

fn cases(dev_jwk: &str) -> Vec<Case> {
    const SA: &str = "aic-acme-dev-service-account";
    const ADMIN: &str = "pingone-admin-worker";
    const CONNECTION: &str = "pingone-connection-acme-sandbox";
    let admin = |secret: Option<&str>| {
        let mut data = vec![
            (
                "clientId",
                "9a9a9a9a-0000-4000-8000-000000000001".to_owned(),
            ),
            (
                "environmentId",
                "99999999-9999-4999-8999-999999999999".to_owned(),
            ),
        ];
        if let Some(secret) = secret {
            data.push(("clientSecret", secret.to_owned()));
        }
        data
    };
    vec![
        Case {
            name: "service-account Secret without the jwk key",
            breaks: Break::SecretData(SA, vec![("key", dev_jwk.to_owned())]),
            target: Target::Tenant("acme-dev"),
            reasons: &["SecretKeyMissing"],
        },
        Case {
            name: "service-account jwk empty",
            breaks: Break::SecretData(SA, vec![("jwk", String::new())]),
            target: Target::Tenant("acme-dev"),
            reasons: &[
                "SecretValueInvalid",
                "SecretKeyMissing",
                "AICInvalidPrivateKey",
            ],
        },
        Case {
            name: "service-account jwk not JSON",
            breaks: Break::SecretData(SA, vec![("jwk", "-----BEGIN PRIVATE KEY-----".into())]),
            target: Target::Tenant("acme-dev"),
            reasons: &["AICInvalidPrivateKey", "SecretValueInvalid"],
        },
        Case {
            name: "service-account jwk without private members",
            breaks: Break::SecretData(SA, vec![("jwk", public_only(dev_jwk))]),
            target: Target::Tenant("acme-dev"),
            reasons: &["AICInvalidPrivateKey", "SecretValueInvalid"],
        },
        Case {
            name: "service-account jwk of another key",
            breaks: Break::SecretData(SA, vec![("jwk", other_jwk())]),
            target: Target::Tenant("acme-dev"),
            reasons: &["AICAuthenticationFailed", "AICUnauthorized"],
        },
        Case {
            name: "PingOne admin Secret without clientSecret",
            breaks: Break::SecretData(ADMIN, admin(None)),
            target: Target::Tenant("acme-dev"),
            reasons: &["SecretKeyMissing", "AdminCredentialsMissing"],
        },
        Case {
            name: "PingOne admin clientSecret empty",
            breaks: Break::SecretData(ADMIN, admin(Some(""))),
            target: Target::Tenant("acme-dev"),
            reasons: &[
                "SecretValueInvalid",
                "SecretKeyMissing",
                "AdminCredentialsMissing",
            ],
        },
        Case {
            name: "PingOne admin clientSecret wrong",
            breaks: Break::SecretData(ADMIN, admin(Some("not-the-secret-of-this-worker"))),
            target: Target::Tenant("acme-dev"),
            reasons: &[
                "PingOneInvalidClient",
                "PingOneInvalidCredentials",
                "PingOneAuthenticationFailed",
                "PingOneUnauthorized",
            ],
        },
        Case {
            name: "product-connection credential not a JWT",
            breaks: Break::SecretData(CONNECTION, vec![("credential", "not-a-jwt".into())]),
            target: Target::Integration("acme-sandbox-connection"),
            reasons: &[
                "CredentialMalformed",
                "SecretValueInvalid",
                "CredentialsUnavailable",
            ],
        },
        Case {
            name: "product-connection credential empty",
            breaks: Break::SecretData(CONNECTION, vec![("credential", String::new())]),
            target: Target::Integration("acme-sandbox-connection"),
            reasons: &[
                "CredentialMalformed",
                "SecretValueInvalid",
                "SecretKeyMissing",
                "CredentialsMissing",
                "CredentialsUnavailable",
            ],
        },
        Case {
            name: "service-account Secret deleted",
            breaks: Break::DeleteSecret(SA),
            target: Target::Tenant("acme-dev"),
            reasons: &["SecretNotFound"],
        },
        Case {
            name: "PingOne token endpoint answers an HTML 502 page",
            breaks: Break::PingOne("/*/as/token", "POST", 502, "text/html", HTML_PAGE),
            target: Target::Tenant("acme-dev"),
            reasons: &[],
        },
        Case {
            name: "PingOne token endpoint answers truncated JSON",
            breaks: Break::PingOne(
                "/*/as/token",
                "POST",
                200,
                "application/json",
                r#"{"access_token": "eyJhbGciOi"#,
            ),
            target: Target::Tenant("acme-dev"),
            reasons: &["PingOne*"],
        },
        Case {
            name: "PingOne token endpoint answers JSON of the wrong types",
            breaks: Break::PingOne(
                "/*/as/token",
                "POST",
                200,
                "application/json",
                r#"{"access_token": 42, "token_type": ["Bearer"], "expires_in": "soon"}"#,
            ),
            target: Target::Tenant("acme-dev"),
            reasons: &["PingOne*"],
        },
        Case {
            name: "PingOne application read answers JSON of the wrong types",
            breaks: Break::PingOne(
                "/v1/environments/*/applications/**",
                "GET",
                200,
                "application/json",
                r#"{"id": 7, "name": ["x"], "enabled": "yes", "protocol": null}"#,
            ),
            target: Target::Integration("acme-worker"),
            reasons: &["PingOne*", "CredentialsUnavailable"],
        },
        Case {
            name: "AIC token endpoint answers an HTML 503 page",
            breaks: Break::Aic(
                "acme-dev",
                "/am/oauth2",
                "POST",
                503,
                "text/html",
                HTML_PAGE,
            ),
            target: Target::Tenant("acme-dev"),
            reasons: &[],
        },
        Case {
            name: "AIC token endpoint answers truncated JSON",
            breaks: Break::Aic(
                "acme-dev",
                "/am/oauth2",
                "POST",
                200,
                "application/json",
                r#"{"access_token": "abc", "expires_"#,
            ),
            target: Target::Tenant("acme-dev"),
            reasons: &["AIC*"],
        },
    ]
}

fn expected(reasons: &[&str], reason: &str) -> bool {
    reasons.iter().any(|r| match r.strip_suffix('*') {
        Some(prefix) => reason.starts_with(prefix),
        None => *r == reason,
    })
}

/// The conditions of a target: (type, status, reason, message).
async fn conditions_of(
    playground: &Playground,
    target: Target,
) -> Vec<(String, String, String, String)> {
    let conditions = match target {
        Target::Tenant(name) => {
            let api: Api<TenantEnvironment> =
                Api::namespaced(playground.client.clone(), &playground.namespace);
            api.get(name)
                .await
                .ok()
                .and_then(|t| t.status)
                .map(|s| s.conditions)
        }
        Target::Integration(name) => {
            let api: Api<PingOneIntegration> =
                Api::namespaced(playground.client.clone(), &playground.namespace);
            api.get(name)
                .await
                .ok()
                .and_then(|t| t.status)
                .map(|s| s.conditions)
        }
    };
    conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason, c.message))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_yields_clear_conditions_and_recovers() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let dir = tempfile::tempdir().expect("a temporary directory");
    evidence::write_automatic_examples(dir.path()).expect("write the examples");
    let mut playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    playground
        .wait_ready(Duration::from_secs(240), |_| {})
        .await
        .unwrap_or_else(|last| panic!("the examples did not become Ready: {last:#?}"));

    let secrets: Api<Secret> = Api::namespaced(playground.client.clone(), &playground.namespace);
    let dev_jwk = String::from_utf8(
        secrets
            .get("aic-acme-dev-service-account")
            .await
            .unwrap()
            .data
            .unwrap()["jwk"]
            .0
            .clone(),
    )
    .unwrap();

    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for case in cases(&dev_jwk) {
        playground.pingone_control.clear_calls();
        playground.aic.clear_calls();
        // Break.
        let mut original = None;
        match &case.breaks {
            Break::SecretData(name, data) => {
                let mut secret = secrets.get(name).await.expect("the Secret");
                original = Some(secret.clone());
                secret.data = Some(
                    data.iter()
                        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                        .collect::<BTreeMap<_, _>>(),
                );
                secrets
                    .replace(name, &PostParams::default(), &secret)
                    .await
                    .expect("replace the Secret");
            }
            Break::DeleteSecret(name) => {
                original = Some(secrets.get(name).await.expect("the Secret"));
                secrets
                    .delete(name, &DeleteParams::default())
                    .await
                    .expect("delete the Secret");
            }
            Break::PingOne(path, method, status, content_type, body) => {
                playground.pingone_control.inject_raw(
                    FaultSpec {
                        method: Some((*method).to_owned()),
                        path: (*path).to_owned(),
                        times: 10_000,
                        status: Some(*status),
                        ..Default::default()
                    },
                    content_type,
                    body,
                );
                playground.restart_operator(true).await.unwrap();
            }
            Break::Aic(tenant, path, method, status, content_type, body) => {
                playground.aic.inject_raw_fault(
                    Fault {
                        tenant: Some((*tenant).to_owned()),
                        method: Some((*method).to_owned()),
                        path: (*path).to_owned(),
                        status: Some(*status),
                        retry_after: None,
                        latency_ms: 0,
                        count: 10_000,
                    },
                    content_type,
                    body,
                );
                playground.restart_operator(true).await.unwrap();
            }
        }

        if case.reasons.is_empty() {
            // Transient: wait until the faulted route has been retried, then check the
            // resource kept its last known condition rather than flapping or crashing.
            let mut retried = 0;
            for _ in 0..120 {
                retried = playground
                    .pingone_control
                    .calls()
                    .iter()
                    .filter(|c| c.faulted)
                    .count()
                    + playground
                        .aic
                        .calls()
                        .iter()
                        .filter(|c| c.status == 503 && c.path.starts_with("/am/oauth2"))
                        .count();
                if retried >= 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if retried < 3 {
                wrong.push(format!("{}: retried only {retried} times", case.name));
            }
            let line = format!(
                "{:<58} {:<22} {:<28} retried {retried} times with backoff; Ready reports a persistent outage",
                case.name, "-", "(transient)"
            );
            eprintln!("{line}");
            table.push(line);
        } else {
            // Observe: Ready False, and the condition that says why (Ready or a specific one).
            let mut seen = None;
            for _ in 0..60 {
                let conditions = conditions_of(&playground, case.target).await;
                let not_ready = conditions
                    .iter()
                    .any(|(t, status, _, _)| t == condition::READY && status == "False");
                if not_ready {
                    let specific = conditions.iter().find(|(_, status, reason, _)| {
                        status != "True" && expected(case.reasons, reason)
                    });
                    let failing = specific
                        .or_else(|| {
                            conditions.iter().find(|(t, status, _, _)| {
                                t != condition::READY && t != "RestartPending" && status == "False"
                            })
                        })
                        .or_else(|| {
                            conditions.iter().find(|(t, status, _, _)| {
                                t == condition::READY && status == "False"
                            })
                        });
                    seen = failing.map(|(t, _, reason, message)| {
                        (t.clone(), reason.clone(), message.clone())
                    });
                    if specific.is_some() {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let (kind, reason, message) =
                seen.unwrap_or_else(|| ("Ready".into(), "(still Ready)".into(), String::new()));
            if !expected(case.reasons, &reason) || message.is_empty() {
                wrong.push(format!(
                    "{}: {kind} reason {reason:?} (expected one of {:?}), message {message:?}",
                    case.name, case.reasons
                ));
            }
            let line = format!("{:<58} {:<22} {:<28} {}", case.name, kind, reason, message);
            eprintln!("{line}");
            table.push(line);
        }

        // Repair.
        match (&case.breaks, original) {
            (Break::SecretData(name, _), Some(mut secret)) => {
                let current = secrets.get(name).await.expect("the Secret");
                secret.metadata.resource_version = current.metadata.resource_version;
                secrets
                    .replace(name, &PostParams::default(), &secret)
                    .await
                    .expect("restore the Secret");
            }
            (Break::DeleteSecret(_), Some(mut secret)) => {
                secret.metadata.resource_version = None;
                secret.metadata.uid = None;
                secret.metadata.creation_timestamp = None;
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .expect("re-create the Secret");
            }
            _ => {
                playground.pingone_control.clear_faults();
                playground.aic.clear_faults();
            }
        }
        if let Err(last) = playground
            .wait_ready(Duration::from_secs(300), |_| {})
            .await
        {
            wrong.push(format!(
                "{}: did not recover after the repair: {:?}",
                case.name,
                last.iter().filter(|p| !p.ready).collect::<Vec<_>>()
            ));
            break;
        }
    }
    playground.stop().await;

    println!(
        "{:<58} {:<22} {:<28} message",
        "case", "condition", "reason"
    );
    for line in &table {
        println!("{line}");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "nothing panicked");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
