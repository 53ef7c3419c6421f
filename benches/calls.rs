//! Call budget: what the operator asks of PingOne and AIC to carry one promotion group from
//! nothing to Ready, and what one resync costs afterwards, against the minimal call sequence
//! written down in [`minimal_sequence`] and the critical path of the simulated restarts and
//! promotions. A report, not a pass/fail test:
//!
//! ```sh
//! cargo bench --bench calls                       # R = P = 5 s
//! CALLS_RESTART_MS=8000 CALLS_PROMOTION_MS=4000 cargo bench --bench calls
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it uses short timings as a smoke
//! test of the report itself.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pingone_aic_playground::{Playground, PlaygroundOptions};

mod support;

/// The operator's polling interval in the playground (`OperatorConfig::poll`).
const POLL: Duration = Duration::from_millis(500);
/// The restart debounce the playground gives every TenantEnvironment.
const DEBOUNCE: Duration = Duration::from_secs(1);

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let millis = |name: &str, bench: u64, smoke: u64| {
        Duration::from_millis(
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if benchmarking { bench } else { smoke }),
        )
    };
    let restart = millis("CALLS_RESTART_MS", 5_000, 1_000);
    let promotion = millis("CALLS_PROMOTION_MS", 5_000, 1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if !benchmarking {
        println!(
            "call budget (smoke run, R and P of a second: fixed costs weigh more than at the benchmark's timings)"
        );
    }
    runtime.block_on(run(restart, promotion));
}

/// A call with its ids folded, e.g. `AIC GET /environment/variables/{id}`.
type Route = String;

/// The fewest calls that carry the examples' group (development → uat → staging → production
/// with a managed worker application in each, and a sandbox with a product connection, every
/// policy `Automatic`) from nothing to verified, for a client that knows nothing beforehand
/// and looks before it writes. `r`, `p` and `l` are the polls one restart, one promotion run
/// (dry run or real) and one lock change take at the operator's interval.
fn minimal_sequence(r: usize, p: usize, l: usize) -> Vec<(Route, usize, &'static str)> {
    let worker_envs = 4;
    let upper_envs = 3;
    let tenants = 5;
    let verified = 5;
    vec![
        // Sign-in: one token per AIC tenant and per PingOne environment with an admin worker.
        (
            "AIC POST /am/oauth2/access_token".into(),
            tenants + upper_envs,
            "a token per tenant, and one with the promotion scope where promotions land",
        ),
        (
            "PingOne POST /{env}/as/token".into(),
            1 + 1 + verified,
            "the admin worker's token, the product connection's credential checked before it is pushed, and AM's token in each testConnection",
        ),
        (
            "PingOne GET /v1/environments/{id}".into(),
            verified,
            "AM's read in each testConnection",
        ),
        // Worker applications.
        (
            "PingOne GET /v1/roles".into(),
            1,
            "role ids, once per process",
        ),
        (
            "PingOne GET /v1/environments/{id}/applications".into(),
            worker_envs,
            "adopt or create: look for the name",
        ),
        (
            "PingOne POST /v1/environments/{id}/applications".into(),
            worker_envs,
            "create",
        ),
        (
            "PingOne POST /v1/environments/{id}/applications/{id}/roleAssignments".into(),
            worker_envs,
            "grant the role",
        ),
        (
            "PingOne GET /v1/environments/{id}/applications/{id}/secret".into(),
            worker_envs,
            "the secret to store",
        ),
        // ESVs: one list of each kind per tenant, then the writes.
        (
            "AIC GET /environment/variables".into(),
            tenants,
            "what exists",
        ),
        (
            "AIC GET /environment/secrets".into(),
            tenants,
            "what exists",
        ),
        (
            "AIC PUT /environment/variables/{id}".into(),
            2 * worker_envs + 1,
            "environment id and client id; the sandbox's environment id",
        ),
        (
            "AIC PUT /environment/secrets/{id}".into(),
            tenants,
            "the client secret or connection JWT",
        ),
        // The worker service in development and the sandbox.
        (
            "AIC POST /am/.../workers?_action=schema".into(),
            1,
            "the product connection's credential field",
        ),
        (
            "AIC GET /am/.../workers/{id}".into(),
            2 + 2 * upper_envs,
            "configured? (upper: as before the promotion, what a rollback restores; promoted?)",
        ),
        (
            "AIC GET /am/.../pingOneWorkerService".into(),
            2,
            "the service exists",
        ),
        ("AIC PUT /am/.../workers/{id}".into(), 2, "configure"),
        ("AIC GET /am/.../mappings/{id}".into(), 2, "mapped?"),
        ("AIC PUT /am/.../mappings/{id}".into(), 2, "map the label"),
        // One restart per tenant.
        (
            "AIC GET /environment/count".into(),
            tenants,
            "what is pending, once the debounce ends",
        ),
        (
            "AIC POST /environment/startup?_action=restart".into(),
            tenants,
            "restart",
        ),
        (
            "AIC GET /environment/startup".into(),
            tenants * r,
            "until ready",
        ),
        // Verification.
        (
            "AIC POST /am/.../workers/{id}?_action=testConnection".into(),
            verified,
            "verify",
        ),
        (
            "AIC GET /environment/secrets/{id}/versions".into(),
            verified,
            "the version that passed was the active one",
        ),
        // Three promotions: precheck the lock, lock, dry run, promote, unlock.
        (
            "AIC GET /environment/promotion/lock/state".into(),
            upper_envs * (1 + 2 * l),
            "unlocked? locked? unlocked again?",
        ),
        (
            "AIC POST /environment/promotion/lock".into(),
            upper_envs,
            "lock",
        ),
        (
            "AIC POST /environment/promotion/promote".into(),
            2 * upper_envs,
            "dry run, promotion",
        ),
        (
            "AIC GET /environment/promotion/promote".into(),
            2 * upper_envs * p,
            "until done",
        ),
        (
            "AIC GET /environment/promotion/report".into(),
            2 * upper_envs,
            "the reports",
        ),
        (
            "AIC DELETE /environment/promotion/lock/{id}".into(),
            upper_envs,
            "unlock",
        ),
    ]
}

/// The fewest calls that rotate the secret of `worker_envs` managed workers at once while the
/// previous secret stays valid until the new one is verified in AIC: rotate in PingOne, push a
/// version, test it (AM asks PingOne for a token and reads the environment), see that it was
/// the active version, disable the superseded one, delete the previous secret in PingOne.
fn minimal_rotation(worker_envs: usize) -> Vec<(Route, usize, &'static str)> {
    vec![
        (
            "PingOne POST /v1/environments/{id}/applications/{id}/secret".into(),
            worker_envs,
            "rotate, the previous secret kept valid",
        ),
        (
            "AIC POST /environment/secrets/{id}/versions?_action=create".into(),
            worker_envs,
            "the new version",
        ),
        (
            "AIC POST /am/.../workers/{id}?_action=testConnection".into(),
            worker_envs,
            "verify",
        ),
        (
            "PingOne POST /{env}/as/token".into(),
            worker_envs,
            "AM's token in each testConnection",
        ),
        (
            "PingOne GET /v1/environments/{id}".into(),
            worker_envs,
            "AM's read in each testConnection",
        ),
        (
            "AIC GET /environment/secrets/{id}/versions".into(),
            worker_envs,
            "the version that passed was the active one",
        ),
        (
            "AIC POST /environment/secrets/{id}/versions/{v}?_action=changestatus".into(),
            worker_envs,
            "disable the superseded version",
        ),
        (
            "PingOne DELETE /v1/environments/{id}/applications/{id}/secret".into(),
            worker_envs,
            "delete the previous secret",
        ),
    ]
}

/// Prints `measured` against `minimal` route by route and the totals; returns the ratio.
fn compare(measured: &BTreeMap<Route, usize>, minimal: &[(Route, usize, &str)]) -> f64 {
    let mut routes: Vec<&Route> = measured.keys().collect();
    for (route, _, _) in minimal {
        if !measured.contains_key(route) {
            routes.push(route);
        }
    }
    routes.sort();
    let minimal_by_route: BTreeMap<&Route, (usize, &str)> =
        minimal.iter().map(|(r, n, why)| (r, (*n, *why))).collect();
    for route in routes {
        let got = measured.get(route).copied().unwrap_or(0);
        let (want, why) = minimal_by_route.get(route).copied().unwrap_or((0, ""));
        let flag = if got > want { "+" } else { " " };
        println!("    {got:>5} {want:>5} {flag} {route}  {why}");
    }
    let total: usize = measured.values().sum();
    let minimal_total: usize = minimal.iter().map(|(_, n, _)| n).sum();
    let ratio = total as f64 / minimal_total as f64;
    println!(
        "  total:            {total} calls; minimal {minimal_total}; ratio {ratio:.2} (target <= 1.10)"
    );
    ratio
}

/// Folds ids and names out of a call so calls of one kind count together.
fn fold(service: &str, method: &str, path: &str, query: Option<&str>) -> Route {
    let uuid = regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        .expect("a valid pattern");
    let mut path = uuid.replace_all(path, "{id}").into_owned();
    if service == "PingOne" && path.ends_with("/as/token") {
        path = "/{env}/as/token".to_owned();
    }
    if let Some(rest) = path.strip_prefix("/am/json/realms/root/realms/alpha/realm-config") {
        let rest = regex::Regex::new(r"/(workers|mappings)/[^/]+$")
            .expect("a valid pattern")
            .replace(rest, "/$1/{id}");
        let tail = rest.rsplit_once("/services/").map_or_else(
            || {
                rest.rsplit_once("/ESV")
                    .map_or(rest.to_string(), |(_, t)| t.to_owned())
            },
            |(_, t)| format!("/{t}"),
        );
        let tail = tail.trim_start_matches("/pingOneWorkerService");
        path = if tail.is_empty() {
            "/am/.../pingOneWorkerService".to_owned()
        } else {
            format!("/am/...{tail}")
        };
    }
    path = regex::Regex::new(r"^/environment/(variables|secrets)/[^/?]+")
        .expect("a valid pattern")
        .replace(&path, "/environment/$1/{id}")
        .into_owned();
    path = regex::Regex::new(r"/versions/[^/?]+$")
        .expect("a valid pattern")
        .replace(&path, "/versions/{v}")
        .into_owned();
    let action = query
        .and_then(|q| q.split('&').find(|kv| kv.starts_with("_action=")))
        .map(|a| format!("?{a}"))
        .unwrap_or_default();
    format!("{service} {method} {path}{action}")
}

/// The calls both simulators logged, by route.
fn calls_by_route(playground: &Playground) -> BTreeMap<Route, usize> {
    let mut counts = BTreeMap::new();
    for call in playground.pingone_control.calls() {
        *counts
            .entry(fold("PingOne", &call.method, &call.path, None))
            .or_default() += 1;
    }
    for call in playground.aic.calls() {
        *counts
            .entry(fold("AIC", &call.method, &call.path, call.query.as_deref()))
            .or_default() += 1;
    }
    counts
}

async fn run(restart: Duration, promotion: Duration) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    support::write_groups(dir.path(), 1, None);
    // Longer than the convergence, so the calls to converge hold no periodic resync.
    let resync = Duration::from_secs(60);
    let started = Instant::now();
    let playground = Playground::start(PlaygroundOptions {
        examples: dir.path().to_path_buf(),
        act_as_user: false,
        resync,
        restart,
        promotion,
        debounce: Some(format!("{}ms", DEBOUNCE.as_millis())),
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    let ready = playground
        .wait_ready(Duration::from_secs(600), |_| {})
        .await
        .is_ok();
    let converged = started.elapsed();
    let measured = calls_by_route(&playground);
    let restarts_per_tenant = restarts(&playground);

    // The unavoidable path: the development environment's restart after its debounce, then the
    // three promotions one after the other (lock, dry run, promotion, unlock each); the upper
    // environments' restarts run meanwhile.
    let lock = promotion / 2;
    let critical_path = DEBOUNCE + restart + 3 * (2 * lock + 2 * promotion);
    let polls = |d: Duration| d.as_millis().div_ceil(POLL.as_millis()) as usize;
    let minimal = minimal_sequence(polls(restart), polls(promotion), polls(lock));

    println!(
        "call budget: one promotion group (4 worker environments + a product-connection sandbox), R = {:.1} s, P = {:.1} s, lock {:.1} s, poll {:.1} s, debounce {:.1} s",
        restart.as_secs_f64(),
        promotion.as_secs_f64(),
        lock.as_secs_f64(),
        POLL.as_secs_f64(),
        DEBOUNCE.as_secs_f64()
    );
    println!("  ready:            {ready}");
    println!(
        "  convergence:      {:.1} s; critical path {:.1} s; ratio {:.2} (target <= 1.2)",
        converged.as_secs_f64(),
        critical_path.as_secs_f64(),
        converged.as_secs_f64() / critical_path.as_secs_f64()
    );
    println!("  restarts:         {restarts_per_tenant:?} (target: exactly one per tenant)");
    println!("  calls to converge, measured vs minimal:");
    compare(&measured, &minimal);

    // One resync with nothing to do.
    playground.pingone_control.clear_calls();
    playground.aic.clear_calls();
    tokio::time::sleep(resync + Duration::from_secs(3)).await;
    let steady = calls_by_route(&playground);
    let tenants = 5;
    let steady_total: usize = steady.values().sum();
    let steady_writes: usize = steady
        .iter()
        .filter(|(route, _)| route.split(' ').nth(1).is_none_or(|m| m != "GET"))
        .map(|(_, n)| n)
        .sum();
    let aic_per_tenant = per_tenant_reads(&playground);
    println!(
        "  one resync ({} s): {steady_total} calls ({:.1} per environment; target <= 6), {steady_writes} of them not GET (target 0)",
        resync.as_secs(),
        steady_total as f64 / tenants as f64
    );
    println!("    AIC reads per tenant: {aic_per_tenant:?}");
    for (route, count) in &steady {
        println!("    {count:>5} {route}");
    }

    // Every worker secret of the group rotated at once, as `pingone-aic.io/rotate-before`
    // asks: from the request until each environment's previous secret is deleted.
    playground.pingone_control.clear_calls();
    playground.aic.clear_calls();
    let started = Instant::now();
    let rotated = rotate_worker_secrets(&playground).await;
    let took = started.elapsed();
    let measured = calls_by_route(&playground);
    println!(
        "  rotation of the {rotated} worker secrets at once: {:.1} s, calls measured vs minimal:",
        took.as_secs_f64()
    );
    compare(&measured, &minimal_rotation(4));
    playground.stop().await;
}

/// Restart requests per AIC tenant.
fn restarts(playground: &Playground) -> BTreeMap<String, usize> {
    let mut per_tenant = BTreeMap::new();
    for call in playground.aic.calls() {
        if call.method == "POST"
            && call.path == "/environment/startup"
            && call.query.as_deref() == Some("_action=restart")
        {
            *per_tenant.entry(call.tenant).or_default() += 1;
        }
    }
    per_tenant
}

/// AIC calls per tenant.
fn per_tenant_reads(playground: &Playground) -> BTreeMap<String, usize> {
    let mut per_tenant = BTreeMap::new();
    for call in playground.aic.calls() {
        *per_tenant.entry(call.tenant).or_default() += 1;
    }
    per_tenant
}

/// Annotates the worker integration with `pingone-aic.io/rotate-before` set to now and waits
/// until every one of its environments has completed a rotation; returns how many did.
async fn rotate_worker_secrets(playground: &Playground) -> usize {
    use kube::api::{Api, Patch, PatchParams};
    use pingone_aic_operator::controller::integration::ROTATE_BEFORE_ANNOTATION;
    use pingone_aic_operator::crd::PingOneIntegration;
    let api: Api<PingOneIntegration> = Api::namespaced(playground.client.clone(), "default");
    let now = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {ROTATE_BEFORE_ANNOTATION: now}}});
    api.patch(
        "g000-worker",
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .expect("a rotation request");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let rotated = api
            .get("g000-worker")
            .await
            .ok()
            .and_then(|i| i.status)
            .map_or(0, |s| {
                s.environments
                    .iter()
                    .filter_map(|e| e.secret_rotation.as_ref())
                    .filter(|r| r.rotations >= 1 && r.phase.is_none())
                    .count()
            });
        if rotated >= 4 || Instant::now() > deadline {
            return rotated;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
