//! A stateful simulator of PingOne Advanced Identity Cloud tenant environments: service-account
//! tokens, ESVs and restarts, the AM PingOne Worker Service with ESV secret mappings and a
//! `testConnection` that really calls PingOne's token endpoint, the realm's read-only ESV secret
//! store, immutable upper tiers, promotion locks, runs and reports, and what clients such as
//! frodo read around their login (AM's server information, a service account's IDM object).
//!
//! Each tenant is its own origin, as real tenants are (clients build every URL from the origin):
//! [`AicSimulator::serve`] binds one loopback port per tenant, [`AicSimulator::tenant_router`]
//! gives one tenant's router for in-process use, and [`AicSimulator::router`] dispatches on the
//! `Host` header. [`AicSimConfig`] is meant to be the `aic:` section of the simulator binary's
//! configuration file.
//!
//! Time is the simulator's own clock (wall clock plus an offset tests can advance), so restarts,
//! locks and promotions can be made to finish without waiting.
//!
//! Choices where the reference marks AIC behaviour unconfirmed are collected in [`unconfirmed`]
//! so each is one place to change.
//!
//! Control API, on every tenant origin under `/_sim/`: `GET state`, `GET|DELETE calls`,
//! `GET|POST|DELETE faults` (a [`Fault`] as JSON), `GET|POST clock` (`{"advanceMs":n}`),
//! `GET|PUT timings` ([`Timings`]), `POST|DELETE embedded-secrets` (`{"item":"…"}`: a
//! configuration item holding a secret in the configuration itself, which promotions report as
//! `encryptedSecrets`). The same operations exist as methods for in-process use.
//!
//! Configuration (the `aic:` section; camelCase):
//!
//! ```yaml
//! tenants:
//!   - name: dev
//!     tier: development          # development | uat | staging | production | sandbox
//!     port: 8081                 # 0 or absent: any free port
//!     realms: [alpha, bravo]     # default
//!     serviceAccounts:
//!       - id: 3f2a6c1e-…
//!         scopes: ["fr:am:*", "fr:idc:esv:*", "fr:idc:promotion:*"]
//!         jwk: { kty: RSA, n: "…", e: "AQAB" }   # the public key
//!         name: operator         # its IDM name; the id by default
//!   - name: uat
//!     tier: uat
//!     port: 8082
//!     serviceAccounts: [ … ]
//! promotionGroups: [[dev, uat]]
//! timings: { restartMs: 3000, restartPollFailures: 2, lockMs: 500, promotionMs: 1000 }
//! rateLimit: { requestsPerSecond: 5, burst: 10 }   # per tenant; off when absent
//! ```
//!
//! Rate limit: AIC publishes no numbers (the reference, § 9), so the simulator's is
//! configuration only, off by default: each tenant is a token bucket of `requestsPerSecond`
//! with room for `burst`, and a call over it (token requests included) is answered 429 in its
//! family's error format with `Retry-After` in whole seconds. [`AicSimulator::set_rate_limit`]
//! changes it in-process.
//!
//! `testConnection` calls the worker's `authUrl` for real (`POST {authUrl}/{environmentId}/as/token`,
//! client credentials with Basic auth, or the credential as a client assertion in JWT mode) and
//! then `GET {apiUrl}/environments/{environmentId}` for the environment's name and region, so
//! pointing the worker at the PingOne simulator exercises both simulators together.
//!
//! The JWT's `exp` is checked against the wall clock (the caller signed with it); issued tokens
//! expire on the simulator's clock, so advancing it expires them.

// Handlers return early with a ready `Response` as the error; boxing it would only add noise
// to a test double whose speed does not matter.
#![allow(clippy::result_large_err)]

mod am;
mod esv;
mod info;
mod labels;
mod oauth;
mod promotion;
mod query;
mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

pub use state::CallRecord;
use state::{Account, Realm, State as SimState, Tenant};

/// Tier of a tenant environment (AIC docs, "Tenant environments": development, UAT, staging,
/// production; sandboxes stand outside the promotion group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Development,
    Uat,
    Staging,
    Production,
    Sandbox,
}

impl Tier {
    /// Whether AM configuration may be written directly: only in development and in sandboxes;
    /// every other tier receives it by promotion (AIC docs, "Manage configuration").
    pub fn is_mutable(self) -> bool {
        matches!(self, Tier::Development | Tier::Sandbox)
    }
}

/// One path segment of a `Location` header: percent-encoded as the URL standard encodes path
/// segments, so a worker id with a space or a slash stays one segment.
fn path_segment(segment: &str) -> String {
    let mut url = url::Url::parse("http://location.invalid/").expect("a valid base URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .push(segment);
    url.path().trim_start_matches('/').to_owned()
}

/// Decisions about behaviour the sources do not confirm, kept together.
pub mod unconfirmed {
    /// Name of the worker attribute holding the JWT credential label identifier (by analogy with
    /// `clientSecretPurpose`).
    pub const CREDENTIAL_FIELD: &str = "credentialPurpose";
    /// ESV writes while a promotion lock is held: 409 with this message.
    pub const ESV_LOCKED_STATUS: u16 = 409;
    /// Message of the ESV-write-while-locked refusal.
    pub const ESV_LOCKED_MESSAGE: &str =
        "ESV changes are not allowed while the environment is locked for promotion";
    /// Deleting an ESV that AM configuration still references (a placeholder in a worker, or a
    /// mapping alias) is refused (documented; status and message are not): 400 with this message.
    pub const ESV_IN_USE_MESSAGE: &str =
        "The ESV is referenced by configuration and cannot be deleted";
    /// Destroying the latest secret version: 403 (reported in fr-config-manager#146).
    pub const DESTROY_LATEST_STATUS: u16 = 403;
    /// A mapping for a label AM does not know: 400 with this message.
    pub const UNKNOWN_LABEL_MESSAGE: &str = "Invalid config: secretId is not a valid secret label";
    /// A promotion blocked by its integrity check finishes with this status and
    /// `blockingError: true`; nothing is promoted and the lock stays until unlocked.
    pub const BLOCKED_STATUS: &str = "READY";
    /// Mappings are AM static configuration, so upper tiers refuse writes like other AM config.
    pub const MAPPINGS_IMMUTABLE_ON_UPPER_TIERS: bool = true;
    /// A restart requested while one runs is answered `restarting` and does not extend it.
    pub const RESTART_WHILE_RESTARTING_IS_NOOP: bool = true;
}

/// The `aic:` section of the simulator configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AicSimConfig {
    /// The tenant environments.
    pub tenants: Vec<TenantConfig>,
    /// Promotion groups, lowest first (e.g. `[dev, uat, staging, prod]`).
    #[serde(default)]
    pub promotion_groups: Vec<Vec<String>>,
    /// Durations and fault options.
    #[serde(default)]
    pub timings: Timings,
    /// Rate limit of each tenant (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// A tenant's rate limit.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet period (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// One simulated tenant environment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantConfig {
    /// Name used in the control API and promotion groups.
    pub name: String,
    /// Tier; AM configuration is writable only in development and sandbox.
    pub tier: Tier,
    /// Port to listen on with [`AicSimulator::serve`]; 0 picks a free one.
    #[serde(default)]
    pub port: u16,
    /// Origin the tenant is known by, when not `http://127.0.0.1:<port>`.
    #[serde(default)]
    pub url: Option<String>,
    /// AM realms (default `alpha` and `bravo`).
    #[serde(default = "default_realms")]
    pub realms: Vec<String>,
    /// Whether the realms start with `pingOneWorkerService` (real tenants do).
    #[serde(default = "default_true")]
    pub worker_service: bool,
    /// Service accounts.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
}

fn default_realms() -> Vec<String> {
    vec!["alpha".into(), "bravo".into()]
}

fn default_true() -> bool {
    true
}

/// A service account: id, granted scopes and public key.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountConfig {
    /// Id (the JWT's `iss`/`sub`).
    pub id: String,
    /// Scopes it may request.
    pub scopes: Vec<String>,
    /// Public JWK (a private one works too; only `n` and `e` are read), or a JWKS.
    pub jwk: Value,
    /// Its name in IDM (`managed/svcacct`); the id when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Durations and fault options.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Timings {
    /// How long a restart takes.
    pub restart_ms: u64,
    /// Status polls answered 500 after each restart request (AIC does this while restarting).
    pub restart_poll_failures: u32,
    /// How long locking and unlocking take.
    pub lock_ms: u64,
    /// How long a promotion (or dry run) takes.
    pub promotion_ms: u64,
    /// Access token lifetime (`expires_in`).
    pub token_lifetime_s: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            restart_ms: 3000,
            restart_poll_failures: 0,
            lock_ms: 500,
            promotion_ms: 1000,
            token_lifetime_s: 899,
        }
    }
}

/// A fault to inject into the next `count` calls matching `method` and `path` (a prefix).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Only this tenant (default: any).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Only this method (default: any).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix.
    pub path: String,
    /// Status to answer with (default: none — latency only).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` seconds to send with the status.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Delay before answering.
    #[serde(default)]
    pub latency_ms: u64,
    /// How many calls to affect.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SimConfigError {
    /// Two tenants share a name.
    #[error("tenant {0:?} is declared twice")]
    DuplicateTenant(String),
    /// A promotion group names an unknown tenant.
    #[error("promotion group names unknown tenant {0:?}")]
    UnknownTenant(String),
    /// A key is not an RSA JWK.
    #[error("service account {0:?}: the JWK is not an RSA key with n and e")]
    BadKey(String),
    /// A URL is invalid.
    #[error("tenant {0:?}: invalid url")]
    BadUrl(String),
}

pub(crate) struct Shared {
    state: Mutex<SimState>,
    http: reqwest::Client,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Handler context: the shared state and which tenant the router serves.
#[derive(Clone)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    tenant: Arc<str>,
}

/// The simulator. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct AicSimulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AicSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<String> = self.shared.lock().tenants.keys().cloned().collect();
        f.debug_struct("AicSimulator")
            .field("tenants", &tenants)
            .finish()
    }
}

fn public_key(jwk: &Value) -> Option<(Vec<u8>, Vec<u8>)> {
    let jwk = jwk
        .get("keys")
        .and_then(|k| k.as_array())
        .and_then(|k| k.first())
        .unwrap_or(jwk);
    if jwk.get("kty")?.as_str()? != "RSA" {
        return None;
    }
    let n = URL_SAFE_NO_PAD.decode(jwk.get("n")?.as_str()?).ok()?;
    let e = URL_SAFE_NO_PAD.decode(jwk.get("e")?.as_str()?).ok()?;
    Some((n, e))
}

impl AicSimulator {
    /// Builds the simulator from its configuration.
    pub fn new(config: AicSimConfig) -> Result<Self, SimConfigError> {
        let mut tenants = BTreeMap::new();
        for tenant in config.tenants {
            let mut accounts = Vec::new();
            for account in tenant.service_accounts {
                let (n, e) = public_key(&account.jwk)
                    .ok_or_else(|| SimConfigError::BadKey(account.id.clone()))?;
                accounts.push(Account {
                    name: account.name.unwrap_or_else(|| account.id.clone()),
                    id: account.id,
                    scopes: account.scopes,
                    n,
                    e,
                });
            }
            let origin = match &tenant.url {
                Some(url) => Some(
                    url::Url::parse(url)
                        .map_err(|_| SimConfigError::BadUrl(tenant.name.clone()))?,
                ),
                None if tenant.port != 0 => {
                    url::Url::parse(&format!("http://127.0.0.1:{}", tenant.port)).ok()
                }
                None => None,
            };
            let realms = tenant
                .realms
                .iter()
                .map(|name| {
                    let realm = Realm {
                        service: tenant.worker_service.then_some(true),
                        ..Realm::default()
                    };
                    (name.clone(), realm)
                })
                .collect();
            let state = Tenant {
                tier: tenant.tier,
                port: tenant.port,
                origin,
                accounts,
                variables: BTreeMap::new(),
                secrets: BTreeMap::new(),
                restart: None,
                realms,
                promotion: None,
                last_progress: None,
                reports: Vec::new(),
                before_last_promotion: None,
                embedded_secrets: Default::default(),
            };
            if tenants.insert(tenant.name.clone(), state).is_some() {
                return Err(SimConfigError::DuplicateTenant(tenant.name));
            }
        }
        for name in config.promotion_groups.iter().flatten() {
            if !tenants.contains_key(name) {
                return Err(SimConfigError::UnknownTenant(name.clone()));
            }
        }
        // reqwest may be built with rustls and no provider of its own (the workspace's one TLS
        // stack); a provider already installed by the process is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent("pingone-aic-sim")
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(SimState {
                    tenants,
                    groups: config.promotion_groups,
                    tokens: HashMap::new(),
                    locks: Vec::new(),
                    calls: Vec::new(),
                    faults: Vec::new(),
                    raw_faults: Vec::new(),
                    clock_offset_ms: 0,
                    timings: config.timings,
                    writes_in_flight: HashMap::new(),
                    rate_limit: config.rate_limit,
                    rate: HashMap::new(),
                }),
                http,
            }),
        })
    }

    /// The router of one tenant, mounted at `/`.
    pub fn tenant_router(&self, tenant: &str) -> Option<Router> {
        if !self.shared.lock().tenants.contains_key(tenant) {
            return None;
        }
        let ctx = Ctx {
            shared: self.shared.clone(),
            tenant: Arc::from(tenant),
        };
        let router = Router::new()
            .route("/am/oauth2/access_token", post(oauth::token))
            .route("/am/oauth2/realms/root/access_token", post(oauth::token))
            .merge(esv::routes())
            .merge(info::routes())
            .merge(am::routes())
            .merge(promotion::routes())
            .nest("/_sim", control_routes())
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(ctx.clone(), observe))
            .with_state(ctx);
        Some(router)
    }

    /// One router for all tenants, choosing the tenant by the `Host` header (the authority of
    /// its origin, or a first DNS label equal to the tenant name; a single tenant always matches).
    pub fn router(&self) -> Router {
        let routers: Vec<(String, Router)> = self
            .tenant_names()
            .into_iter()
            .filter_map(|name| self.tenant_router(&name).map(|r| (name, r)))
            .collect();
        let shared = self.shared.clone();
        Router::new().fallback(any(move |request: Request| {
            let routers = routers.clone();
            let shared = shared.clone();
            async move {
                let host = request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let chosen = {
                    let state = shared.lock();
                    routers
                        .iter()
                        .find(|(name, _)| {
                            let origin_matches = state
                                .tenants
                                .get(name)
                                .and_then(|t| t.origin.as_ref())
                                .is_some_and(|o| {
                                    let authority = match o.port() {
                                        Some(port) => {
                                            format!("{}:{port}", o.host_str().unwrap_or_default())
                                        }
                                        None => o.host_str().unwrap_or_default().to_owned(),
                                    };
                                    authority.eq_ignore_ascii_case(&host)
                                });
                            origin_matches || host.split(['.', ':']).next() == Some(name.as_str())
                        })
                        .or_else(|| (routers.len() == 1).then(|| &routers[0]))
                        .map(|(_, r)| r.clone())
                };
                match chosen {
                    Some(router) => router.oneshot(request).await.unwrap_or_else(|e| match e {}),
                    None => esv_error(StatusCode::NOT_FOUND, "no simulated tenant for this host"),
                }
            }
        }))
    }

    /// Names of the tenants.
    pub fn tenant_names(&self) -> Vec<String> {
        self.shared.lock().tenants.keys().cloned().collect()
    }

    /// Sets the origin a tenant is known by (used for the JWT `aud` check and host routing).
    pub fn set_origin(&self, tenant: &str, origin: url::Url) {
        if let Some(t) = self.shared.lock().tenants.get_mut(tenant) {
            t.origin = Some(origin);
        }
    }

    /// Binds every tenant on 127.0.0.1 (its configured port, or a free one) and serves it.
    pub async fn serve(&self) -> std::io::Result<RunningAicSim> {
        let mut urls = BTreeMap::new();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let ports: Vec<(String, u16, bool)> = {
            let state = self.shared.lock();
            state
                .tenants
                .iter()
                .map(|(name, t)| {
                    // A configured public origin stays the tenant's name; otherwise the bound
                    // loopback address becomes its origin.
                    let keep_origin = t
                        .origin
                        .as_ref()
                        .is_some_and(|o| o.host_str().is_none_or(|h| h != "127.0.0.1"));
                    (name.clone(), t.port, keep_origin)
                })
                .collect()
        };
        for (name, port, keep_origin) in ports {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            let address = listener.local_addr()?;
            let url = url::Url::parse(&format!("http://{address}"))
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if !keep_origin {
                self.set_origin(&name, url.clone());
            }
            let router = self
                .tenant_router(&name)
                .ok_or_else(|| std::io::Error::other("tenant vanished"))?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            }));
            stops.push(stop);
            urls.insert(name, url);
        }
        Ok(RunningAicSim { urls, stops, tasks })
    }

    /// The call log (control API calls excluded).
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    /// Empties the call log.
    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Every access token issued so far, for tests that check nothing leaks them.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared
            .lock()
            .tokens
            .keys()
            .map(|t| t.as_str().into())
            .collect()
    }

    /// The most write calls (anything but GET, token requests excluded) a tenant has served at
    /// the same time.
    pub fn max_concurrent_writes(&self, tenant: &str) -> u32 {
        self.shared
            .lock()
            .writes_in_flight
            .get(tenant)
            .map_or(0, |e| e.1)
    }

    /// Adds a fault.
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.faults.clear();
        state.raw_faults.clear();
    }

    /// Adds a fault answering `fault.status` (200 when absent) with `body` as is, under
    /// `content_type`: truncated JSON, wrong types, an HTML error page from a proxy.
    pub fn inject_raw_fault(&self, fault: Fault, content_type: &str, body: &str) {
        self.shared
            .lock()
            .raw_faults
            .push((fault, content_type.to_owned(), body.to_owned()));
    }

    /// Moves the simulator's clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset_ms += i64::try_from(by.as_millis()).unwrap_or(0);
    }

    /// Current durations and fault options.
    pub fn timings(&self) -> Timings {
        self.shared.lock().timings.clone()
    }

    /// Replaces durations and fault options.
    pub fn set_timings(&self, timings: Timings) {
        self.shared.lock().timings = timings;
    }

    /// Turns each tenant's rate limit on (`Some`) or off, with full buckets.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = self.shared.lock();
        state.rate_limit = limit;
        state.rate.clear();
    }

    /// The state as JSON, for tests and `GET /_sim/state`. Secret values appear only as SHA-256.
    pub fn snapshot(&self) -> Value {
        snapshot(&self.shared.lock())
    }

    /// Seeds a configuration item of `tenant` that holds a secret in the configuration itself
    /// (e.g. a journey node with a pasted client secret): promotions from it report it under
    /// `encryptedSecrets` and refuse to promote unless asked to ignore it.
    pub fn seed_embedded_secret(&self, tenant: &str, item: &str) {
        if let Some(t) = self.shared.lock().tenants.get_mut(tenant) {
            t.embedded_secrets.insert(item.to_owned());
        }
    }

    /// Seeds an ESV variable as loaded (as if set and restarted long ago).
    pub fn seed_variable(&self, tenant: &str, id: &str, value: &str, expression_type: &str) {
        let mut state = self.shared.lock();
        let now = state.now_text();
        if let Some(t) = state.tenants.get_mut(tenant) {
            let value_base64 = base64::engine::general_purpose::STANDARD.encode(value);
            t.variables.insert(
                id.to_owned(),
                state::Variable {
                    loaded_value: Some(value_base64.clone()),
                    value_base64,
                    description: String::new(),
                    expression_type: expression_type.to_owned(),
                    last_change_date: now,
                    last_changed_by: "seed".into(),
                },
            );
        }
    }

    /// Seeds an ESV secret with one version, loaded (as if created and restarted long ago):
    /// for secrets made before the operator, e.g. usable in placeholders.
    pub fn seed_secret(&self, tenant: &str, id: &str, value: &str, use_in_placeholders: bool) {
        let mut state = self.shared.lock();
        let now = state.now_text();
        if let Some(t) = state.tenants.get_mut(tenant) {
            t.secrets.insert(
                id.to_owned(),
                state::Secret {
                    encoding: "generic".into(),
                    use_in_placeholders,
                    description: String::new(),
                    last_change_date: now.clone(),
                    last_changed_by: "seed".into(),
                    versions: vec![state::SecretVersion {
                        number: 1,
                        status: state::VersionStatus::Enabled,
                        create_date: now,
                        value: base64::engine::general_purpose::STANDARD.encode(value),
                    }],
                    loaded_version: 1,
                },
            );
        }
    }
}

/// A running simulator; stops when dropped or on [`RunningAicSim::stop`].
#[derive(Debug)]
pub struct RunningAicSim {
    urls: BTreeMap<String, url::Url>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningAicSim {
    /// Base URL of a tenant.
    pub fn url(&self, tenant: &str) -> Option<&url::Url> {
        self.urls.get(tenant)
    }

    /// Base URLs of all tenants.
    pub fn urls(&self) -> &BTreeMap<String, url::Url> {
        &self.urls
    }

    /// Stops serving and waits for the servers to finish.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningAicSim {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

fn snapshot(state: &SimState) -> Value {
    let tenants: serde_json::Map<String, Value> = state
        .tenants
        .iter()
        .map(|(name, t)| {
            let secrets: serde_json::Map<String, Value> = t
                .secrets
                .iter()
                .map(|(id, s)| {
                    let mut v = s.to_json(id);
                    v["versions"] = s
                        .versions
                        .iter()
                        .map(|ver| {
                            let digest = ring::digest::digest(&ring::digest::SHA256, ver.value.as_bytes());
                            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
                            json!({"version": ver.number, "status": ver.status.as_str(), "sha256": hex})
                        })
                        .collect();
                    (id.clone(), v)
                })
                .collect();
            let realms: serde_json::Map<String, Value> = t
                .realms
                .iter()
                .map(|(name, r)| {
                    (name.clone(), json!({
                        "pingOneWorkerService": r.service.map(|enabled| json!({"enabled": enabled})),
                        "workers": r.workers,
                        "mappings": r.mappings,
                    }))
                })
                .collect();
            let lock = state.lock_index(name).map(|i| {
                let l = &state.locks[i];
                json!({"promotionId": l.promotion_id, "lower": l.lower, "upper": l.upper, "phase": format!("{:?}", l.phase)})
            });
            (name.clone(), json!({
                "tier": t.tier,
                "origin": t.origin.as_ref().map(|o| o.as_str()),
                "restarting": t.restart.is_some(),
                "variables": t.variables.iter().map(|(id, v)| (id.clone(), v.to_json(id, true))).collect::<serde_json::Map<_, _>>(),
                "secrets": secrets,
                "realms": realms,
                "lock": lock,
                "reports": t.reports.len(),
            }))
        })
        .collect();
    json!({"tenants": tenants, "timings": state.timings, "clockOffsetMs": state.clock_offset_ms})
}

// ----- responses -----

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// ESV-family error: `{code, message}`.
pub(crate) fn esv_error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"code": status.as_u16(), "message": message}))
}

/// AM-family error: `{code, reason, message}`.
pub(crate) fn am_error(status: StatusCode, message: &str) -> Response {
    am_json(
        status,
        json!({"code": status.as_u16(), "reason": status.canonical_reason().unwrap_or(""), "message": message}),
    )
}

/// AM response with `Content-API-Version`, AM's `Content-Type` (with its charset, as every
/// capture shows) and, when the body has `_rev`, an `ETag`.
pub(crate) fn am_json(status: StatusCode, body: Value) -> Response {
    let etag = body
        .get("_rev")
        .and_then(|r| r.as_str())
        .and_then(|r| HeaderValue::from_str(&format!("\"{r}\"")).ok());
    let mut response = json_response(status, body);
    response.headers_mut().insert(
        "content-api-version",
        HeaderValue::from_static("protocol=2.0,resource=1.0"),
    );
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Promotion response with `Content-API-Version: resource=1.0`.
pub(crate) fn promo_json(status: StatusCode, body: Value) -> Response {
    let mut response = json_response(status, body);
    response.headers_mut().insert(
        "content-api-version",
        HeaderValue::from_static("resource=1.0"),
    );
    response
}

/// Promotion-family error: `{code, message, status}`.
pub(crate) fn promo_error(status: StatusCode, message: &str) -> Response {
    promo_json(
        status,
        json!({"code": status.as_u16(), "message": message, "status": status.canonical_reason().unwrap_or("")}),
    )
}

fn family_error(path: &str, status: StatusCode, message: &str) -> Response {
    if path.starts_with("/am/oauth2") {
        json_response(
            status,
            json!({"error": "server_error", "error_description": message}),
        )
    } else if path.starts_with("/am/") {
        am_error(status, message)
    } else if path.starts_with("/environment/promotion") {
        promo_error(status, message)
    } else {
        esv_error(status, message)
    }
}

async fn not_found(request: Request) -> Response {
    family_error(request.uri().path(), StatusCode::NOT_FOUND, "Not Found")
}

pub(crate) fn parse_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("The request body must be a JSON object".into()),
        Err(err) => Err(format!("Invalid JSON: {err}")),
    }
}

// ----- authorization -----

/// What a route needs from the caller's token.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    EsvRead,
    EsvUpdate,
    EsvRestart,
    Am,
    PromotionRead,
    PromotionWrite,
    Idm,
}

impl Need {
    fn scope(self) -> &'static str {
        match self {
            Need::EsvRead => "fr:idc:esv:read",
            Need::EsvUpdate => "fr:idc:esv:update",
            Need::EsvRestart => "fr:idc:esv:restart",
            Need::Am => "fr:am:*",
            Need::PromotionRead => "fr:idc:promotion:read",
            Need::PromotionWrite => "fr:idc:promotion:*",
            Need::Idm => "fr:idm:*",
        }
    }
}

/// Whether a granted scope covers a needed one (`fr:idc:esv:*` covers `fr:idc:esv:read`).
pub(crate) fn covers(granted: &str, needed: &str) -> bool {
    granted == needed
        || granted
            .strip_suffix('*')
            .is_some_and(|prefix| needed.starts_with(prefix))
}

impl Ctx {
    pub(crate) fn state(&self) -> MutexGuard<'_, SimState> {
        self.shared.lock()
    }

    /// Checks the bearer token; returns the service account id or the error response.
    pub(crate) fn authorize(&self, headers: &HeaderMap, need: Need) -> Result<String, Response> {
        let state = self.state();
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        let record = token.and_then(|t| state.tokens.get(t));
        let valid = record.filter(|r| r.tenant == *self.tenant && r.expires_at_ms > state.now_ms());
        let Some(record) = valid else {
            let mut response = match need {
                Need::Am => am_error(StatusCode::UNAUTHORIZED, "Access Denied"),
                Need::PromotionRead | Need::PromotionWrite => promo_json(
                    StatusCode::UNAUTHORIZED,
                    json!({"code": 401, "message": "unauthorized"}),
                ),
                _ => esv_error(StatusCode::UNAUTHORIZED, "unauthorized"),
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ForgeRock\", error=\"invalid_token\""),
            );
            return Err(response);
        };
        if !record.scopes.iter().any(|s| covers(s, need.scope())) {
            return Err(match need {
                // What AIC answered Frodo for AM calls without fr:am:*.
                Need::Am => am_error(StatusCode::FORBIDDEN, "No session for request."),
                Need::PromotionRead | Need::PromotionWrite => {
                    promo_error(StatusCode::FORBIDDEN, "forbidden")
                }
                _ => esv_error(StatusCode::FORBIDDEN, "forbidden"),
            });
        }
        let account = record.account.clone();
        let now = state.now_ms();
        drop(state);
        // Restarts complete on their own time, whatever is called next.
        if let Some(tenant) = self.state().tenants.get_mut(&*self.tenant) {
            tenant.tick_restart(now);
        }
        Ok(account)
    }
}

// ----- call log and faults -----

async fn observe(State(ctx): State<Ctx>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let accept_api_version = request
        .headers()
        .get("accept-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let control = path.starts_with("/_sim");
    let write = !control && method != "GET" && path != "/am/oauth2/access_token";
    if write {
        let mut state = ctx.state();
        let entry = state
            .writes_in_flight
            .entry(ctx.tenant.to_string())
            .or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }
    let raw = if control {
        None
    } else {
        let mut state = ctx.state();
        let index = state.raw_faults.iter().position(|(f, _, _)| {
            f.tenant.as_deref().is_none_or(|t| t == &*ctx.tenant)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&method))
                && path.starts_with(&f.path)
        });
        index.map(|i| {
            let taken = state.raw_faults[i].clone();
            state.raw_faults[i].0.count = state.raw_faults[i].0.count.saturating_sub(1);
            if state.raw_faults[i].0.count == 0 {
                state.raw_faults.remove(i);
            }
            taken
        })
    };
    let limited = if control || raw.is_some() {
        None
    } else {
        ctx.state().take_rate(&ctx.tenant).err()
    };
    if let Some(seconds) = limited {
        let mut response = family_error(&path, StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        if write && let Some(entry) = ctx.state().writes_in_flight.get_mut(&*ctx.tenant) {
            entry.0 -= 1;
        }
        ctx.state().calls.push(CallRecord {
            tenant: ctx.tenant.to_string(),
            method,
            path,
            query,
            accept_api_version,
            status: response.status().as_u16(),
        });
        return response;
    }
    let fault = if control || raw.is_some() {
        None
    } else {
        let mut state = ctx.state();
        let index = state.faults.iter().position(|f| {
            f.tenant.as_deref().is_none_or(|t| t == &*ctx.tenant)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(&method))
                && path.starts_with(&f.path)
        });
        index.map(|i| {
            let fault = state.faults[i].clone();
            state.faults[i].count = state.faults[i].count.saturating_sub(1);
            if state.faults[i].count == 0 {
                state.faults.remove(i);
            }
            fault
        })
    };
    let response = match (raw, fault) {
        (Some((fault, content_type, body)), _) => {
            let status = fault
                .status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        (None, Some(fault)) => {
            if fault.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
            }
            match fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                Some(status) => {
                    let mut response = family_error(&path, status, "Injected fault");
                    if let Some(seconds) = fault.retry_after {
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                    }
                    response
                }
                None => next.run(request).await,
            }
        }
        (None, None) => next.run(request).await,
    };
    if write && let Some(entry) = ctx.state().writes_in_flight.get_mut(&*ctx.tenant) {
        entry.0 -= 1;
    }
    if !control {
        ctx.state().calls.push(CallRecord {
            tenant: ctx.tenant.to_string(),
            method,
            path,
            query,
            accept_api_version,
            status: response.status().as_u16(),
        });
    }
    response
}

// ----- control API -----

fn control_routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/state",
            get(|State(ctx): State<Ctx>| async move { axum::Json(snapshot(&ctx.state())) }),
        )
        .route(
            "/calls",
            get(|State(ctx): State<Ctx>| async move { axum::Json(ctx.state().calls.clone()) })
                .delete(|State(ctx): State<Ctx>| async move {
                    ctx.state().calls.clear();
                    StatusCode::NO_CONTENT
                }),
        )
        .route(
            "/faults",
            post(
                |State(ctx): State<Ctx>, axum::Json(fault): axum::Json<Fault>| async move {
                    ctx.state().faults.push(fault);
                    StatusCode::NO_CONTENT
                },
            )
            .get(|State(ctx): State<Ctx>| async move { axum::Json(ctx.state().faults.clone()) })
            .delete(|State(ctx): State<Ctx>| async move {
                ctx.state().faults.clear();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/embedded-secrets",
            post(
                |State(ctx): State<Ctx>, axum::Json(body): axum::Json<Value>| async move {
                    let Some(item) = body.get("item").and_then(Value::as_str) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let mut state = ctx.state();
                    if let Some(tenant) = state.tenants.get_mut(&*ctx.tenant) {
                        tenant.embedded_secrets.insert(item.to_owned());
                    }
                    StatusCode::NO_CONTENT
                },
            )
            .delete(|State(ctx): State<Ctx>| async move {
                if let Some(tenant) = ctx.state().tenants.get_mut(&*ctx.tenant) {
                    tenant.embedded_secrets.clear();
                }
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/clock",
            get(|State(ctx): State<Ctx>| async move {
                let state = ctx.state();
                axum::Json(json!({"now": state.now_text(), "offsetMs": state.clock_offset_ms}))
            })
            .post(
                |State(ctx): State<Ctx>, axum::Json(body): axum::Json<Value>| async move {
                    let advance = body.get("advanceMs").and_then(Value::as_i64).unwrap_or(0);
                    let mut state = ctx.state();
                    state.clock_offset_ms += advance.max(0);
                    axum::Json(json!({"now": state.now_text(), "offsetMs": state.clock_offset_ms}))
                },
            ),
        )
        .route(
            "/timings",
            get(|State(ctx): State<Ctx>| async move { axum::Json(ctx.state().timings.clone()) })
                .put(
                    |State(ctx): State<Ctx>, axum::Json(timings): axum::Json<Timings>| async move {
                        ctx.state().timings = timings.clone();
                        axum::Json(timings)
                    },
                ),
        )
}

pub(crate) fn empty_ok() -> Response {
    (StatusCode::OK, Body::empty()).into_response()
}
