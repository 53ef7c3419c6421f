//! The operator as a cluster runs it: the Helm chart installed for real, the binary started with
//! the chart Deployment's own arguments and a TokenRequest token of the chart's ServiceAccount
//! (there is no kubelet, so it runs beside the API server instead of in a pod), the playground's
//! simulators standing in for PingOne and AIC. RBAC is what kube-apiserver enforces; writes are
//! counted from its audit log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use pingone_aic_playground::{Playground, PlaygroundOptions, repository_examples};
use serde_json::{Value, json};

use crate::cluster::{self, AuditEvent, audit_now, control_plane, eventually, install_crds};
use crate::scenario_support::{
    aic_writes, connection_app_id, esv_version_digest, esv_versions, pingone_writes,
};
use crate::support::fake_connection_credential;
use crate::support::operator_process::OperatorProcess;

/// How often the operator resyncs in these tests: the chart's `resyncInterval`.
const RESYNC: Duration = Duration::from_secs(15);

/// The examples' namespace, a release of the chart watching it, the simulators, and the
/// kubeconfig of the chart's ServiceAccount.
struct Installation {
    namespace: String,
    release_namespace: String,
    service_account: String,
    lease: String,
    kubeconfig: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    playground: Playground,
    _dir: tempfile::TempDir,
}

impl Installation {
    /// Installs the chart as a release watching a fresh namespace, and seeds that namespace with
    /// the repository's examples (pointed at the simulators) as a user would.
    async fn new(prefix: &str) -> Self {
        install_crds();
        let plane = control_plane();
        let admin = plane.admin().await;
        let namespace = cluster::namespace(&admin, prefix).await;
        let release_namespace = format!("{namespace}-system");
        let release = format!("{prefix}-operator");
        let values = json!({
            "watchNamespaces": [namespace],
            "resyncInterval": format!("{}s", RESYNC.as_secs()),
            "leaderElection": {"enabled": true},
            // The simulators restart and promote in about a second: poll at their pace.
            "extraEnv": [
                {"name": "POLL_INTERVAL", "value": "500ms"},
                {"name": "WAIT_INTERVAL", "value": "1s"},
            ],
        });
        let objects = plane.helm_install(&release, &release_namespace, &values);
        assert_accepted(&objects, &release_namespace);
        let of_kind = |kind: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind)
                .and_then(|o| o["metadata"]["name"].as_str())
                .unwrap_or_else(|| panic!("the chart has no {kind}"))
                .to_owned()
        };
        let service_account = of_kind("ServiceAccount");
        let deployment = of_kind("Deployment");
        // Namespaced rules only: nothing cluster-wide when namespaces are listed.
        assert!(
            !objects
                .iter()
                .any(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding"),
            "a namespaced release grants nothing cluster-wide"
        );

        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("operator.kubeconfig");
        plane.service_account_kubeconfig(&release_namespace, &service_account, &kubeconfig);
        let (args, env) =
            cluster::chart_operator(&admin, &release_namespace, &deployment, "unset").await;
        let lease = args
            .iter()
            .position(|a| a == "--lease-name")
            .map(|at| args[at + 1].clone())
            .expect("the chart names the lease");

        let playground = Playground::start(PlaygroundOptions {
            cluster: Some(admin),
            examples: repository_examples(),
            namespace: namespace.clone(),
            run_operator: false,
            act_as_user: true,
            resync: RESYNC,
            ..PlaygroundOptions::default()
        })
        .await
        .expect("the simulators start and the examples are applied");
        Self {
            namespace,
            release_namespace,
            service_account,
            lease,
            kubeconfig,
            args,
            env,
            playground,
            _dir: dir,
        }
    }

    /// The operator as a pod named `identity` of the chart's Deployment would run it.
    fn operator(&self, identity: &str) -> OperatorProcess {
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .map(|(name, value)| match name.as_str() {
                "POD_NAME" => (name.clone(), identity.to_owned()),
                _ => (name.clone(), value.clone()),
            })
            .collect();
        env.push((
            "KUBECONFIG_PATH".to_owned(),
            self.kubeconfig.to_str().unwrap().to_owned(),
        ));
        crate::support::operator_process::start(&self.args, &env)
    }

    /// The API server's name for the operator: its ServiceAccount.
    fn user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.release_namespace, self.service_account
        )
    }

    /// The operator's requests in the audit log, received at or after `since`.
    fn requests_since(&self, since: &str) -> Vec<AuditEvent> {
        let user = self.user();
        control_plane()
            .audit_events()
            .into_iter()
            .filter(|e| e.user == user && e.received.as_str() >= since)
            .collect()
    }

    /// Waits until every example is Ready; on timeout, fails with the operators' logs.
    async fn wait_ready(&self, operators: &[&OperatorProcess]) {
        if let Err(last) = self
            .playground
            .wait_ready(Duration::from_secs(240), |_| {})
            .await
        {
            let logs: Vec<String> = operators.iter().map(|o| o.logs()).collect();
            panic!(
                "not everything became Ready: {last:#?}\n--- operator logs:\n{}",
                logs.join("\n---\n")
            );
        }
    }

    /// The API server refused the operator nothing: RBAC grants what it does.
    fn assert_never_forbidden(&self) {
        let forbidden: Vec<String> = self
            .requests_since("")
            .iter()
            .filter(|e| e.code == 403)
            .map(AuditEvent::line)
            .collect();
        assert!(
            forbidden.is_empty(),
            "the API server refused the operator:\n{}",
            forbidden.join("\n")
        );
    }

    /// The API server accepted every write of the operator as well formed: no 400 or 422 (an
    /// Event or a status patch the real schema refuses would otherwise be lost quietly). The
    /// one 422 that is expected is kube's finalizer helper: it adds the finalizer with a JSON
    /// patch that first tests the list it read, and a read older than the last write fails
    /// that test (then it reads again).
    fn assert_writes_well_formed(&self) {
        let finalizer_test = |e: &AuditEvent| {
            e.verb == "patch"
                && e.code == 422
                && e.api_group == "pingone-aic.io"
                && e.subresource.is_empty()
        };
        let refused: Vec<String> = self
            .requests_since("")
            .iter()
            .filter(|e| e.is_write() && matches!(e.code, 400 | 422) && !finalizer_test(e))
            .map(AuditEvent::line)
            .collect();
        assert!(
            refused.is_empty(),
            "the API server refused writes of the operator as malformed:\n{}",
            refused.join("\n")
        );
    }

    async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> =
            Api::namespaced(self.playground.client.clone(), &self.release_namespace);
        leases
            .get_opt(&self.lease)
            .await
            .ok()
            .flatten()
            .and_then(|lease| lease.spec?.holder_identity)
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend_from_slice(args);
        control_plane().kubectl_ok(&all)
    }

    /// `kubectl get <resource> -o jsonpath=<path>` in the examples' namespace.
    fn jsonpath(&self, resource: &str, path: &str) -> String {
        self.kubectl_ok(&["get", resource, "-o", &format!("jsonpath={path}")])
    }

    /// What was written to Kubernetes (leases apart), PingOne and AIC during one `window`.
    async fn writes_during(&self, window: Duration) -> Writes {
        let since = audit_now();
        let pingone_start = self.playground.pingone_control.calls().len();
        let aic_start = self.playground.aic.calls().len();
        tokio::time::sleep(window).await;
        let (leases, kube): (Vec<AuditEvent>, Vec<AuditEvent>) = self
            .requests_since(&since)
            .into_iter()
            .filter(AuditEvent::is_write)
            .partition(|e| e.resource == "leases");
        Writes {
            kube: kube.iter().map(AuditEvent::line).collect(),
            lease_renewals: leases.len(),
            pingone: pingone_writes(&self.playground.pingone_control.calls()[pingone_start..]),
            aic: aic_writes(&self.playground.aic.calls()[aic_start..]),
        }
    }

    /// Waits for a quiet resync window after Ready (the last status patches and superseded
    /// versions settle first) and returns what the next full window wrote.
    async fn steady_state(&self) -> Writes {
        let window = RESYNC + Duration::from_secs(3);
        for attempt in 1.. {
            let writes = self.writes_during(window).await;
            if writes.is_quiet() {
                break;
            }
            assert!(
                attempt < 5,
                "the operator kept writing for {attempt} resync windows after Ready: {writes:#?}"
            );
            eprintln!("still settling: {writes:?}");
        }
        self.writes_during(window).await
    }
}

/// Writes in a window, by where they went.
#[derive(Debug)]
struct Writes {
    kube: Vec<String>,
    lease_renewals: usize,
    pingone: Vec<String>,
    aic: Vec<String>,
}

impl Writes {
    fn is_quiet(&self) -> bool {
        self.kube.is_empty() && self.pingone.is_empty() && self.aic.is_empty()
    }
}

/// Every object of the release exists on the server as Helm created it.
fn assert_accepted(objects: &[Value], release_namespace: &str) {
    assert!(objects.len() >= 5, "the release has objects: {objects:?}");
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let group = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map(|(group, _)| group)
            .unwrap_or("");
        let resource = if group.is_empty() {
            format!("{}/{name}", kind.to_lowercase())
        } else {
            format!("{}.{group}/{name}", kind.to_lowercase())
        };
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(release_namespace);
        let found = control_plane().kubectl_ok(&["get", &resource, "-n", namespace, "-o", "name"]);
        assert!(!found.trim().is_empty(), "{resource} is not on the server");
    }
}

/// Worker applications per (environment, name) in the PingOne simulator; more than one is an
/// action done twice.
fn duplicated_worker_applications(playground: &Playground) -> Vec<String> {
    let mut per_name: BTreeMap<(String, String), usize> = BTreeMap::new();
    let state = playground.pingone.state();
    for app in state["applications"].as_array().into_iter().flatten() {
        if app["fields"]["type"] == "WORKER" {
            let key = (
                app["environmentId"].as_str().unwrap_or_default().to_owned(),
                app["fields"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            *per_name.entry(key).or_default() += 1;
        }
    }
    per_name
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|((env, name), count)| format!("{count} × {name:?} in {env}"))
        .collect()
}

/// Promotion locks the operator took in the AIC simulator (one per promotion run).
fn locks_taken(playground: &Playground) -> usize {
    playground
        .aic
        .calls()
        .iter()
        .filter(|c| {
            c.method == "POST" && c.path.ends_with("/environment/promotion/lock") && c.status < 300
        })
        .count()
}

fn encoded(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_runs_the_examples_to_ready_then_rests_follows_secrets_pauses_and_deletes() {
    let _api_server = cluster::API_SERVER.read().await;
    let install = Installation::new("chart").await;
    let operator = install.operator("operator-0");
    install.wait_ready(&[&operator]).await;
    install.assert_never_forbidden();
    assert!(
        install.lease_holder().await.as_deref() == Some("operator-0"),
        "the only replica leads"
    );

    // Steady state: a full resync window writes nothing to Kubernetes, PingOne or AIC.
    let quiet = install.steady_state().await;
    eprintln!(
        "steady state: {} lease renewals in one resync window",
        quiet.lease_renewals
    );
    assert!(quiet.is_quiet(), "{quiet:#?}");
    assert!(
        quiet.lease_renewals > 0,
        "the leader renews its lease: the audit log sees the operator"
    );

    // Paused, the product connection ignores a rotated credential...
    let connection = "pingoneintegration/acme-sandbox-connection";
    install.kubectl_ok(&["annotate", connection, "pingone-aic.io/paused=true"]);
    eventually("the Paused condition", Duration::from_secs(60), || async {
        let ready = install.jsonpath(
            connection,
            "{.status.conditions[?(@.type==\"Ready\")].reason}",
        );
        (ready == "Paused").then_some(())
    })
    .await;
    let playground = &install.playground;
    let connection_app = connection_app_id(playground);
    let rotated = fake_connection_credential("rotated-on-a-real-api-server");
    assert!(
        playground
            .pingone
            .set_application_secret(&connection_app, &rotated)
    );
    let version_before = install.jsonpath(connection, "{.status.environments[0].secretVersion}");
    let aic_start = playground.aic.calls().len();
    install.kubectl_ok(&[
        "patch",
        "secret",
        "pingone-connection-acme-sandbox",
        "--type",
        "merge",
        "-p",
        &json!({"data": {"credential": encoded(&rotated)}}).to_string(),
    ]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sandbox_writes: Vec<String> = aic_writes(&playground.aic.calls()[aic_start..])
        .into_iter()
        .filter(|w| w.starts_with("acme-sandbox "))
        .collect();
    assert_eq!(
        sandbox_writes,
        Vec::<String>::new(),
        "paused: nothing written"
    );

    // ... and, unpaused, carries it to the ESV and verifies the connection with it.
    install.kubectl_ok(&["annotate", connection, "pingone-aic.io/paused-"]);
    let digest = esv_version_digest(&rotated);
    eventually(
        "the rotated credential in the ESV",
        Duration::from_secs(120),
        || async {
            esv_versions(
                &playground.aic,
                "acme-sandbox",
                "esv-pingone-connection-jwt",
            )
            .iter()
            .any(|(_, _, sha)| *sha == digest)
            .then_some(())
        },
    )
    .await;
    eventually(
        "the connection verified with the new version",
        Duration::from_secs(120),
        || async {
            let out = install.jsonpath(
                connection,
                "{.status.conditions[?(@.type==\"Ready\")].status}/{.status.environments[0].connectionVerified}/{.status.environments[0].secretVersion}",
            );
            let mut parts = out.split('/');
            let verified = parts.next() == Some("True") && parts.next() == Some("true");
            let version = parts.next().unwrap_or_default();
            (verified && !version.is_empty() && version != version_before).then_some(())
        },
    )
    .await;

    // Deletion through the finalizer: Retain keeps the worker applications and ESVs...
    let worker_apps: Vec<String> = install
        .jsonpath(
            "pingoneintegration/acme-worker",
            "{.status.environments[*].workerAppId}",
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        worker_apps.len(),
        4,
        "one worker application per environment"
    );
    install.kubectl_ok(&["delete", "pingoneintegration/acme-worker", "--timeout=120s"]);
    for app in &worker_apps {
        assert!(
            playground.pingone.application_secret(app).is_some(),
            "Retain keeps worker application {app}"
        );
    }
    let snapshot = playground.aic.snapshot();
    assert!(
        !snapshot["tenants"]["acme-dev"]["variables"]["esv-pingone-worker-client-id"].is_null()
    );

    // ... Delete removes what the operator made: the ESVs and the service configuration.
    install.kubectl_ok(&["delete", connection, "--timeout=120s"]);
    let snapshot = playground.aic.snapshot();
    let sandbox = &snapshot["tenants"]["acme-sandbox"];
    assert!(
        sandbox["secrets"]["esv-pingone-connection-jwt"].is_null(),
        "{sandbox:#}"
    );
    assert!(sandbox["variables"]["esv-pingone-connection-environment-id"].is_null());
    assert!(sandbox["realms"]["alpha"]["workers"]["pingone-connection-aic"].is_null());
    let left = install.kubectl_ok(&["get", "pingoneintegrations", "-o", "name"]);
    assert_eq!(
        left.trim(),
        "",
        "both integrations are gone from Kubernetes"
    );

    install.assert_never_forbidden();
    install.assert_writes_well_formed();
    let mut operator = operator;
    assert!(
        operator.terminate(Duration::from_secs(30)),
        "the operator exits cleanly on SIGTERM:\n{}",
        operator.logs()
    );
    install.playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_the_real_lease_over_and_does_nothing_twice() {
    let _api_server = cluster::API_SERVER.read().await;
    let install = Installation::new("failover").await;
    let a = install.operator("operator-a");
    eventually("a to lead", Duration::from_secs(60), || async {
        (install.lease_holder().await.as_deref() == Some("operator-a")).then_some(())
    })
    .await;
    let b = install.operator("operator-b");
    install.wait_ready(&[&a, &b]).await;
    assert!(b.logged("waiting to lead"), "b waits:\n{}", b.logs());
    assert!(!b.logged("leading"), "b must not lead:\n{}", b.logs());

    // The leader dies without releasing the lease; b takes it once it expires.
    let leases: Api<Lease> = Api::namespaced(
        install.playground.client.clone(),
        &install.release_namespace,
    );
    let held = leases.get(&install.lease).await.unwrap().spec.unwrap();
    let duration = held.lease_duration_seconds.expect("a lease duration") as u64;
    let mut a = a;
    a.kill();
    let killed = Instant::now();
    let renewed_by_a = leases
        .get(&install.lease)
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .expect("a renewed")
        .0;
    eventually(
        "b to take the lease over",
        Duration::from_secs(duration * 4),
        || async { (install.lease_holder().await.as_deref() == Some("operator-b")).then_some(()) },
    )
    .await;
    let taken = leases.get(&install.lease).await.unwrap().spec.unwrap();
    let acquired = taken.acquire_time.expect("b acquired").0;
    let gap = acquired.duration_since(renewed_by_a);
    eprintln!(
        "lease taken over {:.1} s after a's last renewal ({:.1} s after the kill; lease duration {duration} s)",
        gap.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    // b waits out the lease and at most one retry period more (a third of the duration).
    assert!(
        gap.as_secs_f64() <= duration as f64 * 4.0 / 3.0 + 1.0,
        "b took {gap:?} after a's last renewal to take a {duration} s lease"
    );
    eventually(
        "b to start its controllers",
        Duration::from_secs(30),
        || async { b.logged("leading").then_some(()) },
    )
    .await;

    // What changes next is b's work, done once: a new Promotion runs to the end with one lock.
    let locks_before = locks_taken(&install.playground);
    let manifest = "apiVersion: pingone-aic.io/v1alpha1\nkind: Promotion\nmetadata:\n  name: acme-dev-to-uat-after-failover\nspec:\n  from: acme-dev\n  to: acme-uat\n  description: applied after the leader died\n";
    let file = install._dir.path().join("promotion.yaml");
    std::fs::write(&file, manifest).unwrap();
    install.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    let phase = eventually(
        "the new promotion to finish",
        Duration::from_secs(120),
        || async {
            let phase = install.jsonpath(
                "promotion/acme-dev-to-uat-after-failover",
                "{.status.phase}",
            );
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        },
    )
    .await;
    assert_eq!(phase, "Succeeded", "b:\n{}", b.logs());
    assert_eq!(
        locks_taken(&install.playground) - locks_before,
        1,
        "one promotion, one lock"
    );
    let duplicates = duplicated_worker_applications(&install.playground);
    assert!(duplicates.is_empty(), "{duplicates:?}");
    install.assert_never_forbidden();
    let mut b = b;
    assert!(b.terminate(Duration::from_secs(30)), "{}", b.logs());
    install.playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_rides_out_an_api_server_restart() {
    // Alone: every other test would see the restart too.
    let _api_server = cluster::API_SERVER.write().await;
    let install = Installation::new("restart").await;
    let operator = install.operator("operator-0");
    // Mid-reconcile: the first worker application exists, the rest of the work is in flight.
    eventually("the first reconciles", Duration::from_secs(120), || async {
        let state = install.playground.pingone.state();
        state["applications"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|app| app["fields"]["name"] == "Advanced Identity Cloud Worker")
            .then_some(())
    })
    .await;
    let pending = install
        .playground
        .progress()
        .await
        .unwrap()
        .iter()
        .filter(|p| !p.ready)
        .count();
    eprintln!("restarting kube-apiserver with {pending} resources not Ready yet");
    let stopping = audit_now();
    control_plane().restart_apiserver();
    // While it starts, before its RBAC caches fill, kube-apiserver refuses requests it would
    // allow; from when it is ready again, nothing may be refused.
    let ready_again = audit_now();

    install.wait_ready(&[&operator]).await;
    let mut operator = operator;
    assert!(
        !operator.exited(),
        "the operator recovers by itself:\n{}",
        operator.logs()
    );
    let duplicates = duplicated_worker_applications(&install.playground);
    assert!(duplicates.is_empty(), "{duplicates:?}");
    // Each Promotion (the example's, and those the user applies for the Manual policy) ran
    // once: one lock each, all Succeeded.
    let phases = install.kubectl_ok(&[
        "get",
        "promotions",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    let phases: Vec<&str> = phases.split_whitespace().collect();
    assert!(
        !phases.is_empty() && phases.iter().all(|p| *p == "Succeeded"),
        "{phases:?}"
    );
    assert_eq!(
        locks_taken(&install.playground),
        phases.len(),
        "one lock per promotion"
    );
    let refused = |from: &str, to: &str| -> Vec<String> {
        install
            .requests_since(from)
            .into_iter()
            .filter(|e| e.code == 403 && e.received.as_str() < to)
            .map(|e| e.line())
            .collect()
    };
    let during = refused(&stopping, &ready_again);
    eprintln!(
        "{} requests refused while kube-apiserver started",
        during.len()
    );
    let before = refused("", &stopping);
    let after = refused(&ready_again, "~");
    assert!(
        before.is_empty() && after.is_empty(),
        "refused outside the restart: {before:?} {after:?}"
    );
    assert!(
        operator.terminate(Duration::from_secs(30)),
        "{}",
        operator.logs()
    );
    install.playground.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_release_grants_what_the_operator_needs_and_no_more() {
    let _api_server = cluster::API_SERVER.read().await;
    install_crds();
    let plane = control_plane();
    let admin = plane.admin().await;
    let release_namespace = cluster::namespace(&admin, "cluster-wide").await;
    // No operator runs for this release: it would reconcile every other test's namespace.
    let objects = plane.helm_install(
        "everywhere",
        &release_namespace,
        &json!({"watchNamespaces": []}),
    );
    assert_accepted(&objects, &release_namespace);
    let service_account = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .and_then(|o| o["metadata"]["name"].as_str())
        .unwrap()
        .to_owned();
    let user = format!("system:serviceaccount:{release_namespace}:{service_account}");
    let can = |verb: &str, resource: &str| {
        let output = plane.kubectl(&["auth", "can-i", verb, resource, "-A", "--as", &user]);
        String::from_utf8_lossy(&output.stdout).trim() == "yes"
    };
    for (verb, resource) in [
        ("watch", "tenantenvironments.pingone-aic.io"),
        ("patch", "pingoneintegrations.pingone-aic.io/status"),
        ("create", "promotions.pingone-aic.io"),
        ("list", "secrets"),
        ("create", "secrets"),
        ("patch", "secrets"),
        ("create", "events.events.k8s.io"),
    ] {
        assert!(can(verb, resource), "{user} may {verb} {resource}");
    }
    for (verb, resource) in [
        ("update", "secrets"),
        ("delete", "secrets"),
        ("delete", "tenantenvironments.pingone-aic.io"),
        ("create", "pods"),
    ] {
        assert!(!can(verb, resource), "{user} must not {verb} {resource}");
    }
    // RBAC lets the operator create and patch any Secret; the chart's admission policy keeps
    // those writes to the Secrets it owns. A write of someone else's Secret, or of one without
    // the operator's label, is refused with the policy's message (the policy takes effect
    // within seconds of its creation).
    plane.kubectl_ok(&[
        "-n",
        &release_namespace,
        "create",
        "secret",
        "generic",
        "someone-elses",
        "--from-literal=key=value",
    ]);
    let refusal = |args: &[&str]| {
        let mut full = vec!["--as", user.as_str(), "-n", release_namespace.as_str()];
        full.extend_from_slice(args);
        let output = plane.kubectl(&full);
        (!output.status.success())
            .then(|| String::from_utf8_lossy(&output.stderr).into_owned())
            .filter(|stderr| stderr.contains("writes only the Secrets it owns"))
    };
    let relabel = ["label", "secret", "someone-elses", "taken=yes"];
    let unlabelled = [
        "create",
        "secret",
        "generic",
        "anything-verified",
        "--from-literal=key=value",
    ];
    cluster::eventually(
        "the policy refuses the operator's writes of Secrets it does not own",
        Duration::from_secs(30),
        || async { refusal(&relabel).and_then(|_| refusal(&unlabelled)) },
    )
    .await;
}
