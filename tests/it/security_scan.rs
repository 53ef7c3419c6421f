//! Security evidence from one full run (devkube, both simulators, the operator; the examples
//! with every policy `Automatic` so only the operator acts, then the integrations deleted):
//!
//! - capture and scan: every log line (captured at TRACE, JSON, for every crate), every Event,
//!   every object's status and condition messages, and devkube's request log hold none of the
//!   run's secrets (Secret values, private JWK members, PingOne application secrets current and
//!   previous, tokens either simulator issued — and each of those in base64);
//! - least-privilege RBAC: every (group, resource, verb) the operator sent to the Kubernetes API
//!   is granted by the chart's default render (`deploy/operator/rbac.yaml`), and everything
//!   granted but unused is on a documented allow-list. Container settings are checked by
//!   `.ci/check-artifacts`, which also pins the chart's RBAC verbs; this test ties them to use.
//!
//! The capture is the default subscriber of every thread of the test's own runtime.

use crate::evidence;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams};
use pingone_aic_operator::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use pingone_aic_operator::telemetry::{LogFormat, subscriber};
use pingone_aic_playground::{Playground, PlaygroundOptions};
use serde_json::Value;

use evidence::{ApiAccess, Capture, access_of, known_secrets, write_automatic_examples};

/// Granted but not exercised by a playground run, and why they stay. Entries marked
/// "unused today" are candidates for removal from the chart (and from the verbs
/// `.ci/check-artifacts` pins): the operator reads through watches and writes with patches.
const GRANTED_UNUSED: &[(&str, &str, &str, &str)] = &[
    (
        "coordination.k8s.io",
        "leases",
        "*",
        "leader election (two replicas); the playground runs one replica without it",
    ),
    (
        "pingone-aic.io",
        "pingoneintegrations/finalizers",
        "update",
        "owner references with blockOwnerDeletion on the Promotions the operator creates need it \
         where the OwnerReferencesPermissionEnforcement admission plugin runs",
    ),
    (
        "pingone-aic.io",
        "promotions",
        "get",
        "unused today: the Promotion reconciler works from its watch (the other two read their \
         latest object, as their status may be ahead of the watch)",
    ),
    (
        "pingone-aic.io",
        "tenantenvironments/status",
        "get",
        "unused today: objects are read whole",
    ),
    (
        "pingone-aic.io",
        "pingoneintegrations/status",
        "get",
        "unused today: objects are read whole",
    ),
    (
        "pingone-aic.io",
        "promotions/status",
        "get",
        "unused today: objects are read whole",
    ),
    (
        "pingone-aic.io",
        "*",
        "update",
        "unused today: writes are patches",
    ),
    (
        "pingone-aic.io",
        "tenantenvironments",
        "patch",
        "unused today: the tenant controller writes only the status and holds no finalizer",
    ),
];
fn rbac_rules() -> BTreeSet<ApiAccess> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/operator/rbac.yaml"),
    )
    .expect("read the rendered RBAC");
    let documents = devkube::manifests::parse_documents(&text).expect("the RBAC render parses");
    let mut granted = BTreeSet::new();
    for document in documents {
        if !matches!(document["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in document["rules"].as_array().into_iter().flatten() {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        granted.insert(ApiAccess {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                        });
                    }
                }
            }
        }
    }
    granted
}

fn allowed_unused(access: &ApiAccess) -> bool {
    GRANTED_UNUSED.iter().any(|(group, resource, verb, _)| {
        *group == access.group
            && (*resource == "*" || *resource == access.resource)
            && (*verb == "*" || *verb == access.verb)
    })
}

#[test]
fn nothing_secret_is_logged_and_rbac_is_least_privilege() {
    let capture = Capture::default();
    let dispatch = tracing::Dispatch::new(
        subscriber(LogFormat::Json, "trace", capture.clone()).expect("a valid filter"),
    );
    testkit::logs::run_logging_to(dispatch, scan(capture));
}

async fn scan(capture: Capture) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_automatic_examples(dir.path()).expect("write the examples");
    let playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        ..Default::default()
    })
    .await
    .expect("the playground starts");

    let ready = playground
        .wait_ready(Duration::from_secs(300), |_| {})
        .await;
    if let Err(last) = &ready {
        playground_dump(&playground).await;
        panic!("not everything became Ready: {last:#?}");
    }

    // Statuses of the Ready run, before the deletions take the integrations and (through owner
    // references) their Promotions away.
    let mut haystacks: Vec<(String, String)> = Vec::new();
    let promotions: Api<Promotion> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    let promotions = promotions.list(&Default::default()).await.unwrap();
    assert!(!promotions.items.is_empty(), "the operator promoted");
    for promotion in promotions {
        haystacks.push((
            "Promotion".into(),
            serde_json::to_string(&promotion).unwrap(),
        ));
    }
    let integrations: Api<PingOneIntegration> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    for integration in integrations.list(&Default::default()).await.unwrap() {
        haystacks.push((
            "PingOneIntegration".into(),
            serde_json::to_string(&integration).unwrap(),
        ));
    }

    // Deletion paths too: the integrations' finalizers run (one Retain, one Delete policy).
    let mut deleted_paths = BTreeSet::new();
    for integration in integrations.list(&Default::default()).await.unwrap() {
        let name = integration.metadata.name.clone().unwrap_or_default();
        integrations
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete an integration");
        deleted_paths.insert(format!(
            "DELETE /apis/pingone-aic.io/v1alpha1/namespaces/{}/pingoneintegrations/{name}",
            playground.namespace
        ));
    }
    let mut gone = false;
    for _ in 0..240 {
        if integrations
            .list(&Default::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(gone, "the integrations' finalizers finished");

    // The request log before this test reads Secrets and Events for the scan.
    // devkube logs `METHOD path?query -> status`; the status plays no part here.
    let requests: Vec<String> = playground
        .devkube()
        .requests()
        .into_iter()
        .map(|line| line.split(" -> ").next().unwrap_or_default().to_owned())
        .collect();

    // --- capture and scan -------------------------------------------------------------------
    let secrets = known_secrets(&playground).await;
    assert!(
        secrets.len() >= 5 * 6 + 2,
        "the run knows its secrets (JWK members, admin secret, credential): {}",
        secrets.len()
    );
    let events: Api<Event> = Api::namespaced(playground.client.clone(), &playground.namespace);
    let events = events.list(&Default::default()).await.expect("list Events");
    assert!(!events.items.is_empty(), "the run recorded Events");
    for event in &events.items {
        haystacks.push(("Event".into(), serde_json::to_string(event).unwrap()));
    }
    let core_events: Api<CoreEvent> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    for event in core_events
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        haystacks.push(("core Event".into(), serde_json::to_string(&event).unwrap()));
    }
    let tenants: Api<TenantEnvironment> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    for tenant in tenants.list(&Default::default()).await.unwrap() {
        haystacks.push((
            "TenantEnvironment".into(),
            serde_json::to_string(&tenant).unwrap(),
        ));
    }
    haystacks.push(("devkube request log".into(), requests.join("\n")));
    haystacks.push((
        "AIC simulator state".into(),
        playground.aic.snapshot().to_string(),
    ));

    let logs = capture.text();
    let lines = logs.lines().count();
    assert!(lines > 100, "logs were captured ({lines} lines)");
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "the capture holds TRACE lines"
    );
    haystacks.push(("log".into(), logs));

    let mut leaks = Vec::new();
    for (what, text) in &haystacks {
        for secret in &secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(80)
                    .map_or(0, |(i, _)| i);
                leaks.push(format!(
                    "{what}: a secret of {} characters near {:?}",
                    secret.len(),
                    &text[start..at]
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    eprintln!(
        "scanned {lines} log lines, {} Events, statuses and the request log for {} secrets: none found",
        events.items.len(),
        secrets.len()
    );

    // --- least-privilege RBAC ----------------------------------------------------------------
    // The examples are created before the operator starts: the leading POSTs are the harness's.
    let operator_requests: Vec<&String> = requests
        .iter()
        .skip_while(|line| line.starts_with("POST "))
        .filter(|line| !deleted_paths.contains(line.split('?').next().unwrap_or_default()))
        .collect();
    let used: BTreeSet<ApiAccess> = operator_requests
        .iter()
        .filter_map(|line| access_of(line))
        .collect();
    let granted = rbac_rules();
    let missing: Vec<&ApiAccess> = used.iter().filter(|a| !granted.contains(a)).collect();
    let unused: Vec<&ApiAccess> = granted
        .iter()
        .filter(|a| !used.contains(a) && !allowed_unused(a))
        .collect();
    for access in &used {
        eprintln!(
            "used: {}/{} {}",
            if access.group.is_empty() {
                "core"
            } else {
                &access.group
            },
            access.resource,
            access.verb
        );
    }
    assert!(
        missing.is_empty(),
        "used but not granted by the chart: {missing:#?}"
    );
    assert!(
        unused.is_empty(),
        "granted by the chart but never used (remove them, or document them in GRANTED_UNUSED): {unused:#?}"
    );

    playground.stop().await;
}

async fn playground_dump(playground: &Playground) {
    let tenants: Api<TenantEnvironment> =
        Api::namespaced(playground.client.clone(), &playground.namespace);
    if let Ok(list) = tenants.list(&Default::default()).await {
        for t in list {
            eprintln!(
                "{}: {}",
                t.metadata.name.unwrap_or_default(),
                serde_json::to_value(&t.status).unwrap_or(Value::Null)
            );
        }
    }
}
