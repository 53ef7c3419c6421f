//! `managementPolicy: Observe`: a plan over a fresh promotion group that names every change in
//! order and makes none; an empty plan over a tenant already configured as the operator would
//! configure it; and `Observe` → `Full` making exactly the planned changes.

use crate::scenario_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use pingone_aic_operator::crd::{PingOneIntegration, TenantEnvironment};
use pingone_aic_playground::Playground;
use scenario_support::*;

/// The PingOne environment of `acme-uat`.
const UAT_ENVIRONMENT: &str = "22222222-2222-4222-8222-222222222222";

fn tenants(name: &str, with_uat: bool) -> std::path::PathBuf {
    let mut files = vec![
        ("01-secrets.yaml", example_secrets()),
        ("02-dev.yaml", DEV_TENANT.to_owned()),
    ];
    if with_uat {
        files.push(("03-uat.yaml", UAT_TENANT.to_owned()));
    }
    examples_dir(name, &files)
}

/// An integration with the default ESV and service names in `environments`.
fn integration(name: &str, policy: &str, environments: &[&str]) -> String {
    let environments: String = environments
        .iter()
        .map(|e| format!("    - name: {e}\n"))
        .collect();
    format!(
        r#"
apiVersion: pingone-aic.io/v1alpha1
kind: PingOneIntegration
metadata:
  name: {name}
  namespace: default
spec:
  managementPolicy: {policy}
  credentialType: WorkerApplication
  environments:
{environments}  workerApplication:
    name: AIC Worker
    adoptExisting: true
  promotion:
    policy: Automatic
"#
    )
}

/// The integration's plan (environment → steps) once an Observe pass has written one.
async fn plan_of(playground: &Playground, name: &str) -> BTreeMap<String, Vec<String>> {
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    eventually(&format!("{name} has a plan"), || {
        let api = api.clone();
        async move {
            let status = api.get(name).await.ok()?.status?;
            status.plan_steps?;
            let steps: usize = status.plan.iter().map(|p| p.steps.len()).sum();
            assert_eq!(status.plan_steps, Some(steps as i64), "{status:#?}");
            Some(
                status
                    .plan
                    .into_iter()
                    .map(|p| (p.environment, p.steps))
                    .collect(),
            )
        }
    })
    .await
}

/// What kind of change a SaaS write is, in the words the plan starts its steps with; `None`
/// for calls that change nothing (`testConnection`, token requests, reads).
fn write_kind(method: &str, path: &str, query: &str) -> Option<&'static str> {
    Some(match method {
        "GET" => return None,
        _ if path.ends_with("/as/token") || path.ends_with("/access_token") => return None,
        _ if query.contains("testConnection") || query.contains("_action=schema") => {
            return None;
        }
        "POST" if path.ends_with("/applications") => "create worker application",
        "POST" if path.ends_with("/roleAssignments") => "grant role",
        "PUT" if path.starts_with("/environment/variables/") => "write ESV",
        "PUT" if path.starts_with("/environment/secrets/") => "create ESV secret",
        "POST" if path.ends_with("/versions") => "push a new version",
        "POST" if path.starts_with("/environment/startup") => "restart",
        "POST" if path.ends_with("/pingOneWorkerService") && query.contains("create") => {
            "create the PingOne Worker Service"
        }
        "PUT" if path.contains("/workers/") => "write worker configuration",
        "PUT" if path.contains("/mappings/") => "map label",
        _ => "unclassified",
    })
}

/// The kinds of the SaaS writes since the given positions of the call logs, sorted.
fn writes_since(playground: &Playground, pingone_from: usize, aic_from: usize) -> Vec<String> {
    let pingone = playground.pingone_control.calls()[pingone_from..].to_vec();
    let aic = playground.aic.calls()[aic_from..].to_vec();
    let mut kinds: Vec<String> =
        pingone
            .iter()
            .filter_map(|c| write_kind(&c.method, &c.path, ""))
            .chain(aic.iter().filter_map(|c| {
                write_kind(&c.method, &c.path, c.query.as_deref().unwrap_or_default())
            }))
            .map(str::to_owned)
            .collect();
    kinds.sort();
    kinds
}

/// The kinds of the plan's steps, sorted.
fn planned_kinds(plan: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    const KINDS: [&str; 10] = [
        "create worker application",
        "grant role",
        "write ESV",
        "create ESV secret",
        "push a new version",
        "restart",
        "create the PingOne Worker Service",
        "write worker configuration",
        "map label",
        "promote",
    ];
    let mut kinds: Vec<String> = plan
        .values()
        .flatten()
        .map(|step| {
            KINDS
                .iter()
                .find(|k| step.starts_with(*k))
                .map_or_else(|| format!("unknown step {step:?}"), |k| k.to_string())
        })
        .collect();
    kinds.sort();
    kinds
}

/// The integration's status once a full pass of its current generation left it Ready.
async fn full_and_ready(
    playground: &Playground,
    name: &str,
) -> pingone_aic_operator::crd::pingone_integration::PingOneIntegrationStatus {
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    eventually(
        &format!("{name} is Ready under managementPolicy Full"),
        || {
            let api = api.clone();
            async move {
                let integration = api.get(name).await.ok()?;
                let status = integration.status?;
                let ready = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (ready
                    && status.plan_steps.is_none()
                    && status.observed_generation == integration.metadata.generation)
                    .then_some(status)
            }
        },
    )
    .await
}

/// The SaaS calls since the given positions, one line each, for assertion messages.
fn call_lines(playground: &Playground, pingone_from: usize, aic_from: usize) -> Vec<String> {
    let pingone = playground.pingone_control.calls()[pingone_from..].to_vec();
    let aic = playground.aic.calls()[aic_from..].to_vec();
    pingone
        .iter()
        .map(|c| format!("PingOne {} {}", c.method, c.path))
        .chain(aic.iter().map(|c| {
            format!(
                "{} {} {}?{}",
                c.tenant,
                c.method,
                c.path,
                c.query.clone().unwrap_or_default()
            )
        }))
        .collect()
}

fn positions(playground: &Playground) -> (usize, usize) {
    (
        playground.pingone_control.calls().len(),
        playground.aic.calls().len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_over_a_fresh_group_plans_every_change_in_order_and_makes_none() {
    let playground = start(tenants("observe-fresh", true), Duration::from_secs(60)).await;
    ready(&playground).await;
    let (pingone_from, aic_from) = positions(&playground);
    apply_yaml::<PingOneIntegration>(
        &playground,
        &integration("observed", "Observe", &["acme-dev", "acme-uat"]),
    )
    .await;
    let plan = plan_of(&playground, "observed").await;
    let label = "am.services.pingone.worker.pingoneworkeraic.clientsecret";
    let environment_steps = |tenant: &str, environment: &str| {
        vec![
            format!("create worker application AIC Worker in PingOne environment {environment}"),
            format!(
                "grant role Identity Data Admin on environment {environment} to worker application AIC Worker"
            ),
            "write ESV esv-pingone-environment-id".to_owned(),
            "write ESV esv-pingone-worker-client-id".to_owned(),
            "create ESV secret esv-pingone-worker-client-secret".to_owned(),
            format!(
                "restart {tenant} (pending: esv-pingone-environment-id, esv-pingone-worker-client-id)"
            ),
        ]
    };
    let mut dev = environment_steps("acme-dev", DEV_ENVIRONMENT);
    // The realm of the simulator's tenants has the PingOne Worker Service already.
    dev.extend([
        "write worker configuration pingone-worker-aic with ESV placeholders".to_owned(),
        format!("map label {label} to ESV esv-pingone-worker-client-secret"),
    ]);
    let mut uat = environment_steps("acme-uat", UAT_ENVIRONMENT);
    uat.push("promote acme-uat from acme-dev".to_owned());
    assert_eq!(plan.get("acme-dev"), Some(&dev), "{plan:#?}");
    assert_eq!(plan.get("acme-uat"), Some(&uat), "{plan:#?}");
    let (status, reason, message) = integration_ready(&playground, "observed")
        .await
        .expect("a Ready condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ChangesPlanned")
    );
    assert!(message.contains("15 change(s) planned"), "{message}");

    // Nothing was written, nothing created in Kubernetes, nothing restarted.
    let pingone = playground.pingone_control.calls()[pingone_from..].to_vec();
    let aic = playground.aic.calls()[aic_from..].to_vec();
    assert!(pingone_writes(&pingone).is_empty(), "{pingone:?}");
    assert!(aic_writes(&aic).is_empty(), "{aic:?}");
    assert!(
        aic.iter().all(|c| c.method == "GET"
            || c.path.ends_with("/access_token")
            || c.query.as_deref() == Some("_action=schema")),
        "{aic:?}"
    );
    let promotions: Api<pingone_aic_operator::crd::Promotion> =
        Api::namespaced(playground.client.clone(), "default");
    assert!(
        promotions
            .list(&Default::default())
            .await
            .expect("promotions")
            .items
            .is_empty()
    );
    // One pass read each thing once, as a resync does: the passes that followed (the status
    // write's own) read nothing again.
    let calls = call_lines(&playground, pingone_from, aic_from);
    let distinct: BTreeSet<&String> = calls.iter().collect();
    assert_eq!(distinct.len(), calls.len(), "{calls:#?}");
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_over_a_configured_tenant_plans_nothing_and_full_then_changes_nothing() {
    let resync = Duration::from_secs(3);
    let playground = start(tenants("observe-configured", false), resync).await;
    ready(&playground).await;
    // The tenant configured as the operator configures it, by a first integration that is
    // then deleted with everything it made left in place.
    apply_yaml::<PingOneIntegration>(&playground, &integration("first", "Full", &["acme-dev"]))
        .await;
    ready(&playground).await;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let app = api.get("first").await.unwrap().status.unwrap().environments[0]
        .worker_app_id
        .clone()
        .expect("the worker application");
    tokio::time::sleep(resync * 2).await;
    let (pingone_from, aic_from) = positions(&playground);
    tokio::time::sleep(resync * 3).await;
    let full_calls = call_lines(&playground, pingone_from, aic_from);
    api.delete("first", &DeleteParams::default())
        .await
        .expect("the first integration is deleted");
    eventually("the first integration is gone", || {
        let api = api.clone();
        async move { api.get_opt("first").await.ok()?.is_none().then_some(()) }
    })
    .await;

    let (pingone_from, aic_from) = positions(&playground);
    apply_yaml::<PingOneIntegration>(
        &playground,
        &integration("adopting", "Observe", &["acme-dev"]),
    )
    .await;
    let plan = plan_of(&playground, "adopting").await;
    assert!(plan.is_empty(), "{plan:#?}");
    let (status, reason, _) = integration_ready(&playground, "adopting")
        .await
        .expect("a Ready condition");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "NoChangesPlanned")
    );
    // The one call that is not a read: testConnection, which tells that the ESV secret the
    // operator has no record of holds the credential (AIC never shows its value).
    let pingone = playground.pingone_control.calls()[pingone_from..].to_vec();
    let aic = playground.aic.calls()[aic_from..].to_vec();
    assert!(pingone_writes(&pingone).is_empty(), "{pingone:?}");
    let aic_changes = aic_writes(&aic);
    assert!(
        aic_changes.len() == 1 && aic_changes[0].contains("testConnection"),
        "{aic_changes:?}"
    );

    // Observing costs what resyncs cost, and the adoption is not tested again.
    tokio::time::sleep(resync * 2).await;
    let (pingone_from, aic_from) = positions(&playground);
    tokio::time::sleep(resync * 4).await;
    let observe_calls = call_lines(&playground, pingone_from, aic_from);
    assert!(writes_since(&playground, pingone_from, aic_from).is_empty());
    let resync_reads: BTreeSet<&String> = full_calls.iter().collect();
    let observed_reads: BTreeSet<&String> = observe_calls.iter().collect();
    assert!(
        observed_reads.is_subset(&resync_reads),
        "Observe reads what a resync does not: {:#?}",
        observed_reads.difference(&resync_reads)
    );
    // Whole passes only: each begins with the application's read (PingOne) and the ESV
    // listing (AIC); a pass reads each thing once, as a resync does.
    let per_pass = |starts: &str, log: &str| {
        let lines: Vec<&String> = observe_calls
            .iter()
            .filter(|l| l.starts_with(log))
            .collect();
        let begins: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.ends_with(starts))
            .map(|(i, _)| i)
            .collect();
        assert!(
            begins.len() >= 2,
            "two passes in four resync periods: {observe_calls:#?}"
        );
        let calls = begins[begins.len() - 1] - begins[0];
        (calls, begins.len() - 1)
    };
    let (pingone_calls, pingone_passes) = per_pass(&format!("applications/{app}"), "PingOne");
    let (aic_calls, aic_passes) = per_pass("/environment/variables?", "acme-dev");
    let resync_pingone = resync_reads
        .iter()
        .filter(|l| l.starts_with("PingOne"))
        .count();
    let resync_aic = resync_reads.len() - resync_pingone;
    assert!(
        pingone_calls <= resync_pingone * pingone_passes && aic_calls <= resync_aic * aic_passes,
        "Observe: {pingone_calls} PingOne calls in {pingone_passes} passes, {aic_calls} AIC calls in {aic_passes}; a resync reads {resync_pingone} and {resync_aic}: {observe_calls:#?}"
    );

    // Full carries out the empty plan: nothing.
    let (pingone_from, aic_from) = positions(&playground);
    api.patch(
        "adopting",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"managementPolicy": "Full"}})),
    )
    .await
    .expect("the policy is patched");
    let status = full_and_ready(&playground, "adopting").await;
    let writes = writes_since(&playground, pingone_from, aic_from);
    assert!(writes.is_empty(), "{writes:?}");
    assert!(status.plan.is_empty(), "{status:#?}");
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_then_full_makes_exactly_the_planned_changes() {
    let playground = start(tenants("observe-then-full", false), Duration::from_secs(60)).await;
    ready(&playground).await;
    let (pingone_from, aic_from) = positions(&playground);
    apply_yaml::<PingOneIntegration>(
        &playground,
        &integration("planned", "Observe", &["acme-dev"]),
    )
    .await;
    let plan = plan_of(&playground, "planned").await;
    assert!(
        writes_since(&playground, pingone_from, aic_from).is_empty(),
        "Observe wrote"
    );
    let planned = planned_kinds(&plan);
    assert_eq!(planned.len(), 8, "{plan:#?}");

    let (pingone_from, aic_from) = positions(&playground);
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    api.patch(
        "planned",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"managementPolicy": "Full"}})),
    )
    .await
    .expect("the policy is patched");
    let status = full_and_ready(&playground, "planned").await;
    let writes = writes_since(&playground, pingone_from, aic_from);
    assert_eq!(writes, planned, "the writes made are the plan's changes");
    assert!(status.plan.is_empty(), "{status:#?}");
    assert!(status.environments[0].connection_verified, "{status:#?}");
    playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_tenant_plans_its_restart_and_full_makes_it() {
    let resync = Duration::from_secs(3);
    let observed_tenant = DEV_TENANT.replacen("spec:\n", "spec:\n  managementPolicy: Observe\n", 1);
    let dir = examples_dir(
        "observe-tenant",
        &[
            ("01-secrets.yaml", example_secrets()),
            ("02-dev.yaml", observed_tenant),
        ],
    );
    let playground = start(dir, resync).await;
    ready(&playground).await;
    let tenants: Api<TenantEnvironment> = Api::namespaced(playground.client.clone(), "default");
    let tenant = tenants.get("acme-dev").await.unwrap().status.unwrap();
    assert_eq!(
        (tenant.plan.len(), tenant.plan_steps),
        (0, Some(0)),
        "{tenant:#?}"
    );

    // A full integration writes two variables; the observed tenant plans the restart that
    // loads them and makes none.
    apply_yaml::<PingOneIntegration>(&playground, &integration("loaded", "Full", &["acme-dev"]))
        .await;
    let status = eventually("acme-dev plans a restart", || {
        let tenants = tenants.clone();
        async move {
            let status = tenants.get("acme-dev").await.ok()?.status?;
            (status.plan_steps == Some(1)).then_some(status)
        }
    })
    .await;
    assert_eq!(
        status.plan,
        ["restart acme-dev (2 ESV change(s) pending)"],
        "{status:#?}"
    );
    let ready_condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready_condition.reason, "ChangesPlanned");
    // Well past the debounce, still no restart.
    tokio::time::sleep(resync * 3).await;
    let restarts = |from: usize| {
        playground.aic.calls()[from..]
            .iter()
            .filter(|c| c.method == "POST" && c.path.starts_with("/environment/startup"))
            .count()
    };
    assert_eq!(restarts(0), 0);

    let aic_from = playground.aic.calls().len();
    tenants
        .patch(
            "acme-dev",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"managementPolicy": "Full"}})),
        )
        .await
        .expect("the policy is patched");
    full_and_ready(&playground, "loaded").await;
    assert_eq!(restarts(aic_from), 1, "one restart loads the planned batch");
    let status = tenants.get("acme-dev").await.unwrap().status.unwrap();
    assert!(
        status.plan.is_empty() && status.plan_steps.is_none(),
        "{status:#?}"
    );
    playground.stop().await;
}
