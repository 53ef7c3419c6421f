//! The HTTP implementation of [`PingOneApi`]: token handling, retries, propagation windows,
//! pagination and the request budget per licence ([`crate::budget`]), on the shared
//! connection pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::clock::{Clock, SystemClock, elapsed};
use super::endpoints::Endpoints;
use super::error::{P1Error, PingOneError};
use super::model::{
    self, Application, ApplicationSecret, AssignmentOutcome, Environment, Page, Role,
    RoleAssignment, Scope, WorkerApplication,
};
use super::token::{
    CachedToken, CredentialIdentity, Credentials, SecretReader, TokenCache, TokenErrorBody,
    TokenResponse,
};
use super::{PingOneApi, clock};
use crate::budget::{BudgetConfig, RequestBudget};
use crate::http::Backoff;
use crate::metrics::ExternalCalls;
use crate::secret::SecretString;

/// The `service` label of PingOne's calls in the metrics.
const SERVICE: &str = "pingone";

/// Tunables of the client.
#[derive(Clone, Debug)]
pub struct PingOneConfig {
    /// `User-Agent` header.
    pub user_agent: String,
    /// Backoff for transient failures (429, 5xx, network).
    pub backoff: Backoff,
    /// How long a 403 / "Must have role…" is retried as a grant still propagating.
    pub propagation_window: Duration,
    /// How long after an environment's creation its 404s are retried.
    pub young_environment_window: Duration,
    /// Request budget per PingOne licence (see [`crate::budget`]).
    pub budget: BudgetConfig,
    /// Where every HTTP answer is counted (the operator's metrics).
    pub calls: ExternalCalls,
}

impl Default for PingOneConfig {
    fn default() -> Self {
        Self {
            user_agent: concat!("pingone-aic-operator/", env!("CARGO_PKG_VERSION")).to_owned(),
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: Duration::from_secs(30),
                max_retries: 5,
            },
            // Terraform waits up to 10 minutes; a reconciler should rather requeue, so one
            // reconcile waits a short while and reports the error after that.
            propagation_window: Duration::from_secs(60),
            // PingOne documents about 17 s.
            young_environment_window: Duration::from_secs(30),
            budget: BudgetConfig::default(),
            calls: ExternalCalls::default(),
        }
    }
}

/// The process-wide PingOne client: connection pool, token cache, request budget, role ids.
#[derive(Clone)]
pub struct PingOne {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    config: PingOneConfig,
    tokens: TokenCache,
    budget: Arc<RequestBudget>,
    roles: Mutex<HashMap<(String, String), String>>,
}

impl std::fmt::Debug for PingOne {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingOne")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Counts one call in the metrics: `ok`, or the reason of the error it ended in.
    fn record_call(&self, operation: &str, error: Option<&PingOneError>) {
        let outcome = error.map_or("ok", PingOneError::reason);
        self.config.calls.record(SERVICE, operation, outcome);
    }
}

impl PingOne {
    /// The rate of each licence's budget.
    pub fn budget(&self) -> BudgetConfig {
        self.inner.budget.config()
    }

    /// The licences' budgets, for calls PingOne counts on a licence that others make for the
    /// operator (AM's in `testConnection`).
    pub fn license_budgets(&self) -> Arc<RequestBudget> {
        self.inner.budget.clone()
    }

    /// A client on the real clock.
    pub fn new(config: PingOneConfig) -> Result<Self, PingOneError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A client on the given clock (tests use a manual one).
    pub fn with_clock(config: PingOneConfig, clock: Arc<dyn Clock>) -> Result<Self, PingOneError> {
        let http =
            crate::http::client(&config.user_agent).map_err(|source| PingOneError::Transport {
                operation: "build HTTP client",
                source,
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                clock,
                budget: Arc::new(RequestBudget::new(config.budget)),
                config,
                tokens: TokenCache::default(),
                roles: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Asks PingOne's token endpoint of `environment_id` for a token with `assertion` as the
    /// client assertion (`client_credentials`, `jwt-bearer`), the way the worker service is
    /// taken to present a product-connection credential (not documented; see the reference
    /// notes), and drops the token: a credential PingOne refuses answers `Token` with 4xx.
    /// `license` is the environment's licence (rate group) when its TenantEnvironment names
    /// one.
    pub async fn verify_client_assertion(
        &self,
        endpoints: &Endpoints,
        license: Option<&str>,
        environment_id: &str,
        assertion: &SecretString,
    ) -> Result<(), PingOneError> {
        let inner = &self.inner;
        let budget_key = license_key(endpoints, license);
        inner.spend_budget(&budget_key).await;
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.expose()),
        ];
        let response = inner
            .http
            .post(endpoints.token_url(environment_id))
            .form(&form)
            .send()
            .await
            .map_err(|source| PingOneError::Transport {
                operation: "verify a credential",
                source,
            });
        let result = match response {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = crate::http::retry_after(response.headers(), inner.clock.now());
                inner.note_refusal(&budget_key, status, retry_after);
                let body = response.bytes().await.unwrap_or_default();
                Err(token_error(status, &body, retry_after))
            }
            Err(error) => Err(error),
        };
        inner.record_call("verify_client_assertion", result.as_ref().err());
        result
    }

    /// Binds the client to one credential and one pair of base URLs, spending the budget of
    /// the licence assumed for those URLs (one per regional API host; see [`crate::budget`]).
    pub fn session(&self, endpoints: Endpoints, credentials: Credentials) -> PingOneSession {
        PingOneSession {
            client: self.clone(),
            budget_key: license_key(&endpoints, None),
            endpoints,
            identity: credentials.identity(),
            secret: SessionSecret::Known(credentials.client_secret),
        }
    }

    /// Binds the client to a credential known by its identity only: its secret is read from
    /// `reader` when, and only when, a token must be requested.
    pub fn deferred_session(
        &self,
        endpoints: Endpoints,
        identity: CredentialIdentity,
        reader: Arc<dyn SecretReader>,
    ) -> PingOneSession {
        PingOneSession {
            client: self.clone(),
            budget_key: license_key(&endpoints, None),
            endpoints,
            identity,
            secret: SessionSecret::Deferred(reader),
        }
    }

    /// Whether a token issued for `identity` at `endpoints` is cached and fresh, so a session
    /// for it works without its secret until the token is due.
    pub fn has_live_token(&self, endpoints: &Endpoints, identity: &CredentialIdentity) -> bool {
        let token_url = endpoints.token_url(&identity.environment_id);
        let slot = self
            .inner
            .tokens
            .slot(token_url.as_str(), &identity.client_id);
        let now = self.inner.clock.now();
        // A slot someone holds is being renewed: not live.
        slot.try_lock().is_ok_and(|cached| {
            cached
                .as_ref()
                .is_some_and(|t| t.fingerprint == identity.fingerprint && now < t.refresh_at)
        })
    }
}

/// The client secret of a session: given, or read when a token must be requested.
#[derive(Clone, Debug)]
enum SessionSecret {
    Known(SecretString),
    Deferred(Arc<dyn SecretReader>),
}

/// The key of the budget a call spends: the named licence, or else the regional API host
/// (one licence per region is assumed when none is named).
pub fn license_key(endpoints: &Endpoints, license: Option<&str>) -> String {
    match license {
        Some(name) => format!("license:{name}"),
        None => format!("api:{}", endpoints.api),
    }
}

impl Inner {
    /// Waits for a slot of the budget `key`.
    async fn spend_budget(&self, key: &str) {
        self.budget
            .spend(key, || self.clock.now(), |wait| self.clock.sleep(wait))
            .await;
    }

    /// A 429 slows everyone on the licence, not only this call: its `Retry-After` (1 s when
    /// absent) holds off the whole budget.
    fn note_refusal(&self, key: &str, status: u16, retry_after: Option<Duration>) {
        if status == 429 {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            tracing::debug!(
                ?wait,
                "PingOne refused a call for its rate limit; slowing the licence's budget"
            );
            self.budget.hold_off(key, self.clock.now(), wait);
        }
    }
}

/// The client bound to one credential; implements [`PingOneApi`].
#[derive(Clone)]
pub struct PingOneSession {
    client: PingOne,
    /// Which budget the session's calls spend ([`license_key`]).
    budget_key: String,
    endpoints: Endpoints,
    identity: CredentialIdentity,
    secret: SessionSecret,
}

impl PingOneSession {
    /// Spends the budget of the named licence (`spec.pingOne.license`) instead of the one
    /// assumed for the region; `None` keeps the regional one.
    pub fn on_license(mut self, license: Option<&str>) -> Self {
        self.budget_key = license_key(&self.endpoints, license);
        self
    }

    /// A digest of the session's endpoints and credential (the secret included): equal digests
    /// mean the same admin worker at the same PingOne environment. Discloses nothing.
    pub fn credential_digest(&self) -> String {
        let hex: String = self
            .identity
            .fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}|{}|{hex}", self.endpoints.api, self.endpoints.auth)
    }
}

impl std::fmt::Debug for PingOneSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingOneSession")
            .field("endpoints", &self.endpoints)
            .field("budget", &self.budget_key)
            .field("environment_id", &self.identity.environment_id)
            .field("client_id", &self.identity.client_id)
            .field("auth_method", &self.identity.auth_method)
            .field("secret", &crate::secret::REDACTED)
            .finish()
    }
}

/// A token endpoint's refusal, from its OAuth error body.
fn token_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> PingOneError {
    let parsed: TokenErrorBody = serde_json::from_slice(body).unwrap_or_default();
    PingOneError::Token {
        status,
        error: parsed.error,
        description: parsed.error_description,
        retry_after,
    }
}

/// A successful answer: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// How a call may be repeated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotency {
    /// Safe to repeat after any transient failure.
    Idempotent,
    /// Repeat only when the server certainly did nothing (429).
    OnlyWhenRefused,
}

struct Call<'a> {
    operation: &'static str,
    method: Method,
    url: Url,
    body: Option<&'a Value>,
    /// The environment the call is about (for the young-environment check).
    environment_id: &'a str,
    idempotency: Idempotency,
}

impl PingOneSession {
    fn inner(&self) -> &Inner {
        &self.client.inner
    }

    /// A fresh token for the session's credential, from the cache while it is fresh.
    async fn token(&self, force_new: bool) -> Result<SecretString, PingOneError> {
        let token_url = self.endpoints.token_url(&self.identity.environment_id);
        let slot = self
            .inner()
            .tokens
            .slot(token_url.as_str(), &self.identity.client_id);
        let mut cached = slot.lock().await;
        let fingerprint = self.identity.fingerprint;
        let now = self.inner().clock.now();
        if !force_new
            && let Some(token) = cached.as_ref()
            && token.fingerprint == fingerprint
            && now < token.refresh_at
        {
            return Ok(token.token.clone());
        }
        // A changed credential or an expiring token: forget the old one before asking, so a
        // failure does not leave a token of the old credential behind.
        *cached = None;
        let (token, expires_in) = self.fetch_token(&token_url).await?;
        *cached = Some(CachedToken {
            fingerprint,
            token: token.clone(),
            refresh_at: clock::add(now, super::token::refresh_after(expires_in)),
        });
        Ok(token)
    }

    async fn fetch_token(&self, token_url: &Url) -> Result<(SecretString, Duration), PingOneError> {
        let client_secret = match &self.secret {
            SessionSecret::Known(secret) => secret.clone(),
            SessionSecret::Deferred(reader) => reader.read().await?,
        };
        if self.identity.client_id.is_empty() || client_secret.is_empty() {
            return Err(PingOneError::InvalidCredentials(
                "client id and client secret must not be empty",
            ));
        }
        let inner = self.inner();
        let mut attempt = 0;
        loop {
            inner.spend_budget(&self.budget_key).await;
            let mut form = vec![("grant_type", "client_credentials")];
            let mut request = inner.http.post(token_url.clone());
            match self.identity.auth_method {
                model::TokenAuthMethod::ClientSecretBasic => {
                    request =
                        request.basic_auth(&self.identity.client_id, Some(client_secret.expose()));
                }
                model::TokenAuthMethod::ClientSecretPost => {
                    form.push(("client_id", &self.identity.client_id));
                    form.push(("client_secret", client_secret.expose()));
                }
            }
            let result = request.form(&form).send().await;
            let error = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after =
                        crate::http::retry_after(response.headers(), inner.clock.now());
                    inner.note_refusal(&self.budget_key, status, retry_after);
                    let body =
                        response
                            .bytes()
                            .await
                            .map_err(|source| PingOneError::Transport {
                                operation: "get token",
                                source,
                            })?;
                    tracing::debug!(status, client_id = %self.identity.client_id, "PingOne token request");
                    if (200..300).contains(&status) {
                        inner.record_call("get_token", None);
                        let parsed: TokenResponse =
                            serde_json::from_slice(&body).map_err(|err| PingOneError::Decode {
                                operation: "get token",
                                message: err.to_string(),
                            })?;
                        let expires_in = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
                        return Ok((parsed.access_token, expires_in));
                    }
                    token_error(status, &body, retry_after)
                }
                Err(source) => PingOneError::Transport {
                    operation: "get token",
                    source,
                },
            };
            inner.record_call("get_token", Some(&error));
            match self.transient_delay(&error, attempt) {
                Some(delay) => {
                    inner.clock.sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(error),
            }
        }
    }

    /// The wait before retrying a transient error, or `None` to give up now.
    fn transient_delay(&self, error: &PingOneError, attempt: u32) -> Option<Duration> {
        if !error.is_transient() {
            return None;
        }
        let backoff = self.inner().config.backoff;
        let server = error.retry_after();
        if server.is_some_and(|wait| wait > backoff.cap) {
            return None;
        }
        backoff.delay(attempt, server)
    }

    /// Sends one API call with budget, token, retries and the propagation windows.
    async fn send(&self, call: Call<'_>) -> Result<Answer, PingOneError> {
        let inner = self.inner();
        let started = inner.clock.now();
        let mut transient_attempt = 0;
        let mut window_attempt = 0;
        let mut renewed_token = false;
        loop {
            inner.spend_budget(&self.budget_key).await;
            let token = self.token(false).await?;
            let mut request = inner
                .http
                .request(call.method.clone(), call.url.clone())
                .bearer_auth(token.expose());
            if let Some(body) = call.body {
                request = request.json(body);
            }
            let error = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers: HeaderMap = response.headers().clone();
                    let body = response
                        .bytes()
                        .await
                        .map_err(|source| PingOneError::Transport {
                            operation: call.operation,
                            source,
                        })?
                        .to_vec();
                    tracing::debug!(
                        operation = call.operation,
                        method = %call.method,
                        path = call.url.path(),
                        status,
                        "PingOne API call"
                    );
                    if (200..300).contains(&status) {
                        inner.record_call(call.operation, None);
                        return Ok(Answer { status, body });
                    }
                    let retry_after = crate::http::retry_after(&headers, inner.clock.now());
                    inner.note_refusal(&self.budget_key, status, retry_after);
                    PingOneError::Api {
                        operation: call.operation,
                        status,
                        body: Box::new(
                            serde_json::from_slice::<P1Error>(&body).unwrap_or_default(),
                        ),
                        retry_after,
                    }
                }
                Err(source) => PingOneError::Transport {
                    operation: call.operation,
                    source,
                },
            };
            inner.record_call(call.operation, Some(&error));
            if error.is_invalid_token() && !renewed_token {
                renewed_token = true;
                self.token(true).await?;
                continue;
            }
            let refused = matches!(error.status(), Some(429));
            if error.is_transient() && (call.idempotency == Idempotency::Idempotent || refused) {
                match self.transient_delay(&error, transient_attempt) {
                    Some(delay) => {
                        tracing::debug!(
                            operation = call.operation,
                            reason = error.reason(),
                            ?delay,
                            "retrying PingOne call"
                        );
                        inner.clock.sleep(delay).await;
                        transient_attempt += 1;
                        continue;
                    }
                    None => return Err(error),
                }
            }
            let window = if error.is_permission_propagation() {
                Some(inner.config.propagation_window)
            } else if error.is_not_found() && self.environment_is_young(&call).await {
                Some(inner.config.young_environment_window)
            } else {
                None
            };
            if let Some(window) = window
                && elapsed(started, inner.clock.now()) < window
            {
                let unbounded = Backoff {
                    max_retries: u32::MAX,
                    ..inner.config.backoff
                };
                let delay = unbounded.delay(window_attempt, None).unwrap_or_default();
                // Never less than a base step: a zero jitter must not spin.
                let delay = delay.max(inner.config.backoff.base / 2);
                tracing::debug!(
                    operation = call.operation,
                    reason = error.reason(),
                    ?delay,
                    "waiting for PingOne to catch up"
                );
                inner.clock.sleep(delay).await;
                window_attempt += 1;
                continue;
            }
            return Err(error);
        }
    }

    /// Whether the call's environment was created so recently that its 404s may be spurious.
    async fn environment_is_young(&self, call: &Call<'_>) -> bool {
        if call.operation == "read environment" {
            return false;
        }
        let window = self.inner().config.young_environment_window;
        if window.is_zero() {
            return false;
        }
        let url = self
            .endpoints
            .api_url(&["environments", call.environment_id]);
        self.inner().spend_budget(&self.budget_key).await;
        let Ok(token) = self.token(false).await else {
            return false;
        };
        let Ok(response) = self
            .inner()
            .http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
        else {
            return false;
        };
        if !response.status().is_success() {
            return false;
        }
        let Ok(environment) = response.json::<Environment>().await else {
            return false;
        };
        environment
            .created_at
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .is_some_and(|created| elapsed(created, self.inner().clock.now()) < window)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        url: Url,
        environment_id: &str,
    ) -> Result<T, PingOneError> {
        let answer = self
            .send(Call {
                operation,
                method: Method::GET,
                url,
                body: None,
                environment_id,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        decode(operation, &answer.body)
    }

    /// Every item of a HAL collection, following `_links.next` on the API's own origin.
    async fn list_all<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        mut url: Url,
        collection: &str,
        environment_id: &str,
    ) -> Result<Vec<T>, PingOneError> {
        let mut items = Vec::new();
        // Bounded so a server that links a page to itself cannot keep us here.
        for _ in 0..1000 {
            let page: Page = self
                .get_json(operation, url.clone(), environment_id)
                .await?;
            if let Some(Value::Array(found)) = page.embedded.get(collection) {
                for item in found {
                    items.push(decode_value(operation, item.clone())?);
                }
            }
            let Some(next) = page.next_href() else {
                return Ok(items);
            };
            let next = url.join(next).map_err(|err| PingOneError::Decode {
                operation,
                message: format!("bad _links.next: {err}"),
            })?;
            if next.origin() != self.endpoints.api.origin() {
                return Err(PingOneError::Decode {
                    operation,
                    message: format!("_links.next points away from the API host: {next}"),
                });
            }
            url = next;
        }
        Err(PingOneError::Decode {
            operation,
            message: "more than 1000 pages".into(),
        })
    }

    fn app_url(&self, environment_id: &str, application_id: &str, rest: &[&str]) -> Url {
        let mut segments = vec![
            "environments",
            environment_id,
            "applications",
            application_id,
        ];
        segments.extend_from_slice(rest);
        self.endpoints.api_url(&segments)
    }
}

fn decode<T: DeserializeOwned>(operation: &'static str, body: &[u8]) -> Result<T, PingOneError> {
    serde_json::from_slice(body).map_err(|err| PingOneError::Decode {
        operation,
        message: err.to_string(),
    })
}

fn decode_value<T: DeserializeOwned>(
    operation: &'static str,
    value: Value,
) -> Result<T, PingOneError> {
    serde_json::from_value(value).map_err(|err| PingOneError::Decode {
        operation,
        message: err.to_string(),
    })
}

impl PingOneApi for PingOneSession {
    async fn verify_credentials(&self) -> Result<(), PingOneError> {
        self.token(false).await.map(drop)
    }

    async fn environment(&self, environment_id: &str) -> Result<Environment, PingOneError> {
        let url = self.endpoints.api_url(&["environments", environment_id]);
        self.get_json("read environment", url, environment_id).await
    }

    async fn list_applications(
        &self,
        environment_id: &str,
    ) -> Result<Vec<Application>, PingOneError> {
        let url = self
            .endpoints
            .api_url(&["environments", environment_id, "applications"]);
        self.list_all("list applications", url, "applications", environment_id)
            .await
    }

    async fn application(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> Result<Option<Application>, PingOneError> {
        let url = self.app_url(environment_id, application_id, &[]);
        match self.get_json("read application", url, environment_id).await {
            Ok(app) => Ok(Some(app)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn create_worker_application(
        &self,
        environment_id: &str,
        app: &WorkerApplication,
    ) -> Result<Application, PingOneError> {
        let body = model::create_application_body(app);
        let url = self
            .endpoints
            .api_url(&["environments", environment_id, "applications"]);
        let answer = self
            .send(Call {
                operation: "create application",
                method: Method::POST,
                url,
                body: Some(&body),
                environment_id,
                idempotency: Idempotency::OnlyWhenRefused,
            })
            .await?;
        decode("create application", &answer.body)
    }

    async fn replace_worker_application(
        &self,
        environment_id: &str,
        application_id: &str,
        app: &WorkerApplication,
    ) -> Result<Application, PingOneError> {
        let body = model::replace_application_body(app);
        let url = self.app_url(environment_id, application_id, &[]);
        let answer = self
            .send(Call {
                operation: "replace application",
                method: Method::PUT,
                url,
                body: Some(&body),
                environment_id,
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        decode("replace application", &answer.body)
    }

    async fn delete_application(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> Result<bool, PingOneError> {
        let url = self.app_url(environment_id, application_id, &[]);
        let result = self
            .send(Call {
                operation: "delete application",
                method: Method::DELETE,
                url,
                body: None,
                environment_id,
                idempotency: Idempotency::Idempotent,
            })
            .await;
        gone_is_done(result)
    }

    async fn application_secret(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> Result<ApplicationSecret, PingOneError> {
        let url = self.app_url(environment_id, application_id, &["secret"]);
        self.get_json("read application secret", url, environment_id)
            .await
    }

    async fn rotate_application_secret(
        &self,
        environment_id: &str,
        application_id: &str,
        previous_expires_at: Option<jiff::Timestamp>,
    ) -> Result<ApplicationSecret, PingOneError> {
        let body = model::rotate_secret_body(previous_expires_at);
        let url = self.app_url(environment_id, application_id, &["secret"]);
        let answer = self
            .send(Call {
                operation: "rotate application secret",
                method: Method::POST,
                url,
                body: Some(&body),
                environment_id,
                idempotency: Idempotency::OnlyWhenRefused,
            })
            .await?;
        decode("rotate application secret", &answer.body)
    }

    async fn delete_previous_secret(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> Result<(), PingOneError> {
        let url = self.app_url(environment_id, application_id, &["secret"]);
        self.send(Call {
            operation: "delete previous application secret",
            method: Method::DELETE,
            url,
            body: None,
            environment_id,
            idempotency: Idempotency::Idempotent,
        })
        .await
        .map(drop)
    }

    async fn role_id(&self, name: &str) -> Result<String, PingOneError> {
        let key = (self.endpoints.api.to_string(), name.to_owned());
        if let Some(id) = self
            .inner()
            .roles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(id.clone());
        }
        let url = self.endpoints.api_url(&["roles"]);
        let roles: Vec<Role> = self
            .list_all("list roles", url, "roles", &self.identity.environment_id)
            .await?;
        let mut cache = self.inner().roles.lock().unwrap_or_else(|e| e.into_inner());
        for role in &roles {
            cache
                .entry((key.0.clone(), role.name.clone()))
                .or_insert_with(|| role.id.clone());
        }
        cache
            .get(&key)
            .cloned()
            .ok_or_else(|| PingOneError::RoleNotFound {
                name: name.to_owned(),
            })
    }

    async fn list_role_assignments(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> Result<Vec<RoleAssignment>, PingOneError> {
        let url = self.app_url(environment_id, application_id, &["roleAssignments"]);
        self.list_all(
            "list role assignments",
            url,
            "roleAssignments",
            environment_id,
        )
        .await
    }

    async fn create_role_assignment(
        &self,
        environment_id: &str,
        application_id: &str,
        role_id: &str,
        scope: &Scope,
    ) -> Result<AssignmentOutcome, PingOneError> {
        let body = model::role_assignment_body(role_id, scope);
        let url = self.app_url(environment_id, application_id, &["roleAssignments"]);
        let result = self
            .send(Call {
                operation: "create role assignment",
                method: Method::POST,
                url,
                body: Some(&body),
                environment_id,
                // A repeat of a create that went through is answered as a duplicate, which
                // is success below.
                idempotency: Idempotency::Idempotent,
            })
            .await;
        match result {
            Ok(answer) => Ok(AssignmentOutcome::Created(decode(
                "create role assignment",
                &answer.body,
            )?)),
            Err(err) if err.is_duplicate() => {
                let existing = self
                    .list_role_assignments(environment_id, application_id)
                    .await?
                    .into_iter()
                    .find(|found| found.role.id == role_id && found.scope == *scope);
                Ok(AssignmentOutcome::AlreadyPresent(existing))
            }
            Err(err) => Err(err),
        }
    }

    async fn delete_role_assignment(
        &self,
        environment_id: &str,
        application_id: &str,
        assignment_id: &str,
    ) -> Result<bool, PingOneError> {
        let url = self.app_url(
            environment_id,
            application_id,
            &["roleAssignments", assignment_id],
        );
        let result = self
            .send(Call {
                operation: "delete role assignment",
                method: Method::DELETE,
                url,
                body: None,
                environment_id,
                idempotency: Idempotency::Idempotent,
            })
            .await;
        gone_is_done(result)
    }
}

fn gone_is_done(result: Result<Answer, PingOneError>) -> Result<bool, PingOneError> {
    match result {
        Ok(answer) => {
            debug_assert!(answer.status < 300);
            Ok(true)
        }
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}
