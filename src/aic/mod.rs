//! Client for the PingOne Advanced Identity Cloud APIs the operator needs: ESVs and restarts
//! (`/environment/*`), the AM PingOne Worker Service and ESV secret-store mappings
//! (`/am/json/**`), and self-service promotions (`/environment/promotion/**`).
//!
//! The reconcilers hold an [`AicClient`]. The multi-step procedures (ESV upsert, secret
//! rotation, restart polling, locking with eventual consistency) are free functions in the
//! submodules, generic over the API family they need ([`EsvApi`], [`RestartApi`], [`AmApi`],
//! [`PromotionApi`]), so they run the same against the client, against a read-through
//! [`snapshot`] view, and against the in-memory fakes of their unit tests.
//!
//! Behaviour worth knowing:
//! - A tenant is an origin: any path in the configured tenant URL is dropped.
//! - Every call carries the `Accept-API-Version` its family is known to work with (see
//!   [`api_version`]).
//! - At most one write (PUT/POST/DELETE) is in flight per tenant origin in this process, because
//!   AIC rate-limits unpublished and ESV writes race with restarts.
//! - Every call spends the tenant's request budget, shared by every client of the process
//!   ([`AicClient::with_budget`], see [`crate::budget`]); a 429 holds the whole tenant's budget
//!   off for its `Retry-After`, and a slow tenant delays only its own calls.
//! - Idempotent calls are retried on transient errors with [`crate::http::Backoff`], honouring
//!   `Retry-After`; POSTs are retried only on 429, which says the request was not processed.
//! - Tokens, private keys and secret values never reach logs or `Debug` output.

pub mod am;
pub mod auth;
pub mod error;
pub mod esv;
pub mod promotion;
pub mod snapshot;
pub mod startup;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

pub use am::{ConnectionTest, Mapping, Worker};
pub use auth::{KeySource, ServiceAccountKey, TokenCache};
pub use error::{AicError, ApiFamily};
pub use esv::{
    EsvCount, Secret, SecretCreate, SecretVersion, Variable, VariableWrite, VersionStatus,
};
pub use promotion::{
    LockResult, LockStart, LockState, PromotionProgress, PromotionReport, PromotionRequest,
    ReportMeta,
};
pub use snapshot::EsvSnapshots;
pub use startup::RestartStatus;

use crate::budget::{Budgets, RequestBudget};
use crate::http::Backoff;
use crate::metrics::ExternalCalls;
use crate::secret::SecretString;

/// `Accept-API-Version` values per endpoint family, as working clients send them.
pub mod api_version {
    /// `/environment/variables|secrets|startup` (v1: whole lists, values included).
    pub const ESV: &str = "protocol=1.0,resource=1.0";
    /// `/environment/count` only exists in resource 2.0.
    pub const ESV_COUNT: &str = "resource=2.0";
    /// `/environment/promotion/**`: the spec marks the header required with this value.
    pub const PROMOTION: &str = "protocol=1.0,resource=1.0";
    /// `/am/json/**/realm-config/services/**` (Frodo's value, which AIC accepts).
    pub const AM_SERVICES: &str = "protocol=2.0,resource=1.0";
    /// `/am/json/**/secrets/stores/**` (recorded against AIC by Frodo).
    pub const AM_SECRET_STORES: &str = "protocol=2.1,resource=2.0";
}

/// Scopes the operator asks for by default: AM configuration and ESVs. Promotion needs
/// `fr:idc:promotion:*` as well, added only for tenants that are promoted into.
pub const DEFAULT_SCOPES: [&str; 2] = ["fr:am:*", "fr:idc:esv:*"];
/// The promotion scope.
pub const PROMOTION_SCOPE: &str = "fr:idc:promotion:*";

/// Everything the client needs to talk to one tenant environment.
#[derive(Clone, Debug)]
pub struct AicClientConfig {
    /// The tenant URL; only its origin is used.
    pub tenant_url: String,
    /// AM realm holding the worker service (`alpha` usually; `root` or `/` for the root realm).
    pub realm: String,
    /// Service account id.
    pub service_account_id: String,
    /// The service account's private JWK, or where to read it.
    pub private_key: PrivateKey,
    /// Scopes to request; ask for no more than the tasks need.
    pub scopes: Vec<String>,
    /// Retry schedule for transient failures.
    pub backoff: Backoff,
}

/// The service account's private key as a client is given it.
#[derive(Clone, Debug)]
pub enum PrivateKey {
    /// The JWK (JSON) itself, parsed when the client is built. Its tokens are cached under
    /// `version` (the Secret's uid and resourceVersion it was read at) or, without one, under
    /// a digest of the public key.
    Jwk {
        /// The private JWK.
        jwk: SecretString,
        /// What names this version of the key.
        version: Option<String>,
    },
    /// Not read yet: tokens are cached under `version`, and `source` is read only when one
    /// must be minted.
    Deferred {
        /// What names the key's current version.
        version: String,
        /// Where to read it.
        source: Arc<dyn KeySource>,
    },
}

impl From<SecretString> for PrivateKey {
    fn from(jwk: SecretString) -> Self {
        PrivateKey::Jwk { jwk, version: None }
    }
}

/// Every AIC operation the operator uses: the four family traits together. Implemented by
/// [`AicClient`]; a fake implements only the families the code under test needs and gets
/// `AicApi` when it implements all four.
///
/// Across the families, `get_*` return `Ok(None)` for 404 and `delete_*` return `Ok(false)`
/// when there was nothing to delete, so deletes are idempotent.
pub trait AicApi: EsvApi + RestartApi + AmApi + PromotionApi {}

impl<T: EsvApi + RestartApi + AmApi + PromotionApi> AicApi for T {}

/// ESV variables and secrets.
pub trait EsvApi: Send + Sync {
    /// `GET /environment/variables/{id}`.
    fn get_variable(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Variable>, AicError>> + Send;
    /// `PUT /environment/variables/{id}` (create or update).
    fn put_variable(
        &self,
        id: &str,
        write: &VariableWrite,
    ) -> impl Future<Output = Result<Variable, AicError>> + Send;
    /// `POST /environment/variables/{id}?_action=setDescription`: changes the description
    /// without touching the value (so nothing becomes pending).
    fn set_variable_description(
        &self,
        id: &str,
        description: &str,
    ) -> impl Future<Output = Result<(), AicError>> + Send;
    /// `DELETE /environment/variables/{id}`.
    fn delete_variable(&self, id: &str) -> impl Future<Output = Result<bool, AicError>> + Send;
    /// `GET /environment/secrets/{id}` (metadata; values are never readable).
    fn get_secret(&self, id: &str)
    -> impl Future<Output = Result<Option<Secret>, AicError>> + Send;
    /// `PUT /environment/secrets/{id}`: create only; AIC refuses it for an existing secret.
    fn create_secret(
        &self,
        id: &str,
        create: &SecretCreate,
    ) -> impl Future<Output = Result<Secret, AicError>> + Send;
    /// `POST /environment/secrets/{id}/versions?_action=create`. AIC answers with the existing
    /// latest version when the value equals it.
    fn create_secret_version(
        &self,
        id: &str,
        value_base64: &SecretString,
    ) -> impl Future<Output = Result<SecretVersion, AicError>> + Send;
    /// `GET /environment/secrets/{id}/versions`, newest first.
    fn list_secret_versions(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Vec<SecretVersion>, AicError>> + Send;
    /// `POST /environment/secrets/{id}/versions/{v}?_action=changestatus`.
    fn set_secret_version_status(
        &self,
        id: &str,
        version: &str,
        status: VersionStatus,
    ) -> impl Future<Output = Result<SecretVersion, AicError>> + Send;
    /// `DELETE /environment/secrets/{id}/versions/{v}`: the version stays listed as DESTROYED.
    fn destroy_secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> impl Future<Output = Result<SecretVersion, AicError>> + Send;
    /// `DELETE /environment/secrets/{id}` (all versions).
    fn delete_secret(&self, id: &str) -> impl Future<Output = Result<bool, AicError>> + Send;
}

/// What restarts need: pending changes, status, restart.
pub trait RestartApi: Send + Sync {
    /// `GET /environment/count?_onlyPending=true`: ESVs changed since the last restart.
    fn pending_count(&self) -> impl Future<Output = Result<EsvCount, AicError>> + Send;
    /// `GET /environment/startup`.
    fn restart_status(&self) -> impl Future<Output = Result<RestartStatus, AicError>> + Send;
    /// `POST /environment/startup?_action=restart`.
    fn restart(&self) -> impl Future<Output = Result<RestartStatus, AicError>> + Send;
}

/// AM: the PingOne Worker Service, its workers, ESV store mappings, testConnection.
pub trait AmApi: Send + Sync {
    /// `GET …/realm-config/services/pingOneWorkerService`.
    fn get_worker_service(
        &self,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, AicError>> + Send;
    /// `PUT …/realm-config/services/pingOneWorkerService` with `{"enabled":true}`.
    fn create_worker_service(
        &self,
    ) -> impl Future<Output = Result<serde_json::Value, AicError>> + Send;
    /// `GET …/pingOneWorkerService/workers/{id}`.
    fn get_worker(&self, id: &str)
    -> impl Future<Output = Result<Option<Worker>, AicError>> + Send;
    /// `PUT …/pingOneWorkerService/workers/{id}` (create or update).
    fn put_worker(
        &self,
        id: &str,
        worker: &Worker,
    ) -> impl Future<Output = Result<Worker, AicError>> + Send;
    /// `DELETE …/pingOneWorkerService/workers/{id}`.
    fn delete_worker(&self, id: &str) -> impl Future<Output = Result<bool, AicError>> + Send;
    /// `POST …/pingOneWorkerService?_action=nextdescendents`.
    fn list_workers(&self) -> impl Future<Output = Result<Vec<Worker>, AicError>> + Send;
    /// `POST …/pingOneWorkerService/workers?_action=schema`.
    fn worker_schema(&self) -> impl Future<Output = Result<serde_json::Value, AicError>> + Send;
    /// `GET …/GoogleSecretManagerSecretStoreProvider/ESV/mappings/{label}`.
    fn get_mapping(
        &self,
        label: &str,
    ) -> impl Future<Output = Result<Option<Mapping>, AicError>> + Send;
    /// `PUT …/ESV/mappings/{label}` (create or update).
    fn put_mapping(
        &self,
        mapping: &Mapping,
    ) -> impl Future<Output = Result<Mapping, AicError>> + Send;
    /// `DELETE …/ESV/mappings/{label}`.
    fn delete_mapping(&self, label: &str) -> impl Future<Output = Result<bool, AicError>> + Send;
    /// `POST …/workers/{id}?_action=testConnection`; a failed test is `Ok(Failed)`.
    fn test_connection(
        &self,
        worker_id: &str,
    ) -> impl Future<Output = Result<ConnectionTest, AicError>> + Send;
}

/// Self-service promotions.
pub trait PromotionApi: Send + Sync {
    /// `POST /environment/promotion/lock` (on the upper environment).
    fn lock(&self) -> impl Future<Output = Result<LockStart, AicError>> + Send;
    /// `GET /environment/promotion/lock/state`.
    fn lock_state(&self) -> impl Future<Output = Result<LockState, AicError>> + Send;
    /// `DELETE /environment/promotion/lock/{promotionId}`; 404 reads as unlocked.
    fn unlock(
        &self,
        promotion_id: &str,
    ) -> impl Future<Output = Result<LockResult, AicError>> + Send;
    /// `POST /environment/promotion/promote`.
    fn promote(
        &self,
        request: &PromotionRequest,
    ) -> impl Future<Output = Result<(), AicError>> + Send;
    /// `GET /environment/promotion/promote`.
    fn promotion_progress(
        &self,
    ) -> impl Future<Output = Result<PromotionProgress, AicError>> + Send;
    /// `GET /environment/promotion/report` or `…/report/{id}`.
    fn promotion_report(
        &self,
        report_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<PromotionReport>, AicError>> + Send;
    /// `GET /environment/promotion/report/provisional` (on the lower environment).
    fn provisional_report(&self) -> impl Future<Output = Result<PromotionReport, AicError>> + Send;
    /// `POST /environment/promotion/rollback`: undoes the last promotion into this (locked)
    /// upper environment.
    fn rollback(
        &self,
        request: &promotion::RollbackRequest,
    ) -> impl Future<Output = Result<(), AicError>> + Send;
    /// `GET /environment/promotion/report/provisional-rollback`: what a rollback would change.
    fn provisional_rollback_report(
        &self,
    ) -> impl Future<Output = Result<PromotionReport, AicError>> + Send;
    /// `GET /environment/promotion/reports`.
    fn list_promotion_reports(
        &self,
    ) -> impl Future<Output = Result<Vec<ReportMeta>, AicError>> + Send;
}

/// HTTP implementation of [`AicApi`] for one tenant environment.
#[derive(Clone)]
pub struct AicClient {
    http: reqwest::Client,
    origin: Url,
    realm: String,
    account: String,
    /// Names the key's version in the token cache.
    credential: String,
    key: auth::SigningKey,
    scopes: Vec<String>,
    tokens: TokenCache,
    backoff: Backoff,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    snapshots: EsvSnapshots,
    calls: ExternalCalls,
    budget: Arc<RequestBudget>,
    /// The PingOne licence budget (and its key) that AM's own PingOne calls in a
    /// `testConnection` land on.
    connection_test_budget: Option<(Arc<RequestBudget>, String)>,
}

/// The `service` label of AIC's calls in the metrics.
const SERVICE: &str = "aic";

impl fmt::Debug for AicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AicClient")
            .field("origin", &self.origin.as_str())
            .field("realm", &self.realm)
            .field("service_account", &self.account)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// One write lock per tenant origin in the process, so clients re-created per reconcile still
/// serialise their writes.
fn write_lock_for(origin: &Url) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(origin.as_str().to_owned())
        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone()
}

/// The origin a tenant URL stands for (any path dropped): what tokens and write locks are
/// kept per.
pub fn tenant_origin(tenant_url: &str) -> Result<Url, AicError> {
    let mut origin =
        crate::http::parse_base_url(tenant_url).map_err(|err| AicError::Config(err.to_string()))?;
    origin.set_path("");
    Ok(origin)
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters), so worker
/// ids with spaces or slashes stay one segment; dots stay as they are, as AM expects in labels.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The realm's AM config base path.
pub(crate) fn realm_path(realm: &str) -> String {
    let realm = realm.trim_matches('/');
    if realm.is_empty() || realm == "root" {
        "/am/json/realms/root".to_owned()
    } else {
        format!("/am/json/realms/root/realms/{}", encode_segment(realm))
    }
}

/// One HTTP call.
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub family: ApiFamily,
    pub api_version: &'static str,
    pub body: Option<serde_json::Value>,
    /// A status poll: a server error is not retried at once, the caller's next poll is the
    /// retry (a 429 still waits out its `Retry-After` and goes again).
    pub poll: bool,
    /// The caller applies the answer to the ESV snapshots itself ([`snapshot`]).
    pub written_through: bool,
}

impl Call {
    pub fn new(method: Method, family: ApiFamily, api_version: &'static str, path: String) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            family,
            api_version,
            body: None,
            poll: false,
            written_through: false,
        }
    }

    /// Marks an ESV write whose answer the caller applies to the snapshots.
    pub(crate) fn written_through(mut self) -> Self {
        self.written_through = true;
        self
    }

    /// Marks the call a status poll (see [`Call::poll`]).
    pub fn polled(mut self) -> Self {
        self.poll = true;
        self
    }
    pub fn query(mut self, name: &'static str, value: &str) -> Self {
        self.query.push((name, value.to_owned()));
        self
    }
    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
    /// Whether the call may change what the ESV snapshots hold: writes to variables and
    /// secrets. AM and promotion calls leave ESVs alone, and a restart changes `loaded` only
    /// when it ends, which its observer records ([`AicClient::record_restart`]).
    pub fn changes_esvs(&self) -> bool {
        self.method != Method::GET
            && ["/environment/variables", "/environment/secrets"]
                .iter()
                .any(|prefix| self.path.starts_with(prefix))
    }

    /// The secret whose versions the call writes (adds one, changes one's status, deletes one),
    /// when that is all it writes: `/environment/secrets/{id}/versions…`.
    pub fn secret_versions_written(&self) -> Option<&str> {
        if self.method == Method::GET {
            return None;
        }
        let rest = self.path.strip_prefix("/environment/secrets/")?;
        let (id, versions) = rest.split_once('/')?;
        (versions == "versions" || versions.starts_with("versions/")).then_some(id)
    }
}

/// A successful answer.
pub(crate) struct Answer {
    pub body: Vec<u8>,
}

impl AicClient {
    /// Builds a client for one tenant. `http` is the process's shared client
    /// ([`crate::http::client`]); `tokens` is shared too so tokens survive client re-creation.
    pub fn new(
        config: AicClientConfig,
        http: reqwest::Client,
        tokens: TokenCache,
    ) -> Result<Self, AicError> {
        let origin = tenant_origin(&config.tenant_url)?;
        let (credential, key) = match config.private_key {
            PrivateKey::Jwk { jwk, version } => {
                let key = ServiceAccountKey::from_jwk(&config.service_account_id, &jwk)?;
                (
                    version.unwrap_or_else(|| key.fingerprint_id()),
                    auth::SigningKey::Loaded(key),
                )
            }
            PrivateKey::Deferred { version, source } => {
                (version, auth::SigningKey::Deferred(source))
            }
        };
        let scopes = auth::normalize_scopes(config.scopes);
        Ok(Self {
            write_lock: write_lock_for(&origin),
            http,
            origin,
            realm: config.realm,
            account: config.service_account_id,
            credential,
            key,
            scopes,
            tokens,
            backoff: config.backoff,
            snapshots: EsvSnapshots::default(),
            calls: ExternalCalls::default(),
            budget: Arc::new(RequestBudget::new(Budgets::default().aic())),
            connection_test_budget: None,
        })
    }

    /// Spends one request of PingOne licence `key` of `budget` before each `testConnection`:
    /// AM reads the PingOne environment with the worker's credential, and PingOne counts that
    /// read on the licence the operator's own calls share.
    pub fn with_connection_test_budget(mut self, budget: Arc<RequestBudget>, key: String) -> Self {
        self.connection_test_budget = Some((budget, key));
        self
    }

    /// Spends the process's per-tenant request budget rather than one of its own.
    pub fn with_budget(mut self, budget: Arc<RequestBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Counts this client's HTTP calls in the process's metrics.
    pub fn with_calls(mut self, calls: ExternalCalls) -> Self {
        self.calls = calls;
        self
    }

    /// Shares ESV snapshots with the other clients of the process (see [`snapshot`]).
    pub fn with_snapshots(mut self, snapshots: EsvSnapshots) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// Records in this tenant's ESV snapshots that a restart finished and loaded them.
    pub fn record_restart(&self) {
        self.snapshots.restarted(self.origin.as_str());
    }

    /// Notes in this tenant's ESV snapshots that a restart is requested now.
    pub(crate) fn note_restart_requested(&self) {
        self.snapshots.restart_requested(self.origin.as_str());
    }

    /// The tenant origin.
    pub(crate) fn snapshots(&self) -> &EsvSnapshots {
        &self.snapshots
    }

    /// The tenant's origin.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// Makes sure the service account signs in: free while a token for the same key version is
    /// cached, one token request when the key changed or the token expired.
    pub async fn sign_in(&self) -> Result<(), AicError> {
        self.token().await.map(drop)
    }

    async fn token(&self) -> Result<SecretString, AicError> {
        self.tokens
            .token(
                &self.http,
                &self.origin,
                &self.account,
                &self.credential,
                &self.key,
                &self.scopes,
                self.backoff,
                &self.calls,
            )
            .await
    }

    /// Sends a call with retries, the write lock for writes, and error mapping.
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, AicError> {
        let _write_guard = if call.method == Method::GET {
            None
        } else {
            Some(self.write_lock.lock().await)
        };
        let result = self.send_with_retries(call).await;
        if call.changes_esvs() {
            // Whatever the outcome, the ESVs may have changed: reads taken before are stale.
            // A version of a secret only mappings use changes nothing a restart waits for,
            // nor any variable: only the secrets list is stale then.
            // A write whose answer is the item as the lists show it is written through by its
            // caller once answered; until then no read under way is kept.
            let tenant = self.origin.as_str();
            match call.secret_versions_written() {
                Some(id) if self.snapshots.is_mapping_only(tenant, id) => {
                    self.snapshots.secret_versions_written(tenant);
                }
                _ if call.written_through && result.is_ok() => {
                    self.snapshots.written_through(tenant);
                }
                _ => self.snapshots.forget(tenant),
            }
        }
        result
    }

    async fn send_with_retries(&self, call: &Call) -> Result<Answer, AicError> {
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            let result = self.send_once(call).await;
            let err = match result {
                Ok(answer) => return Ok(answer),
                Err(err) => err,
            };
            if err.status() == Some(StatusCode::UNAUTHORIZED) && !reauthenticated {
                // A cached token can be revoked early; mint a new one once.
                self.tokens
                    .forget(&self.origin, &self.account, &self.credential);
                reauthenticated = true;
                continue;
            }
            let refused = err.status() == Some(StatusCode::TOO_MANY_REQUESTS);
            let retryable = err.is_transient()
                && (call.method != Method::POST || refused)
                && (!call.poll || refused);
            match self.backoff.delay(attempt, err.retry_after()) {
                Some(delay) if retryable => {
                    tracing::debug!(method = %call.method, path = %call.path, error = %err, ?delay, "retrying AIC call");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }

    async fn send_once(&self, call: &Call) -> Result<Answer, AicError> {
        let token = self.token().await?;
        let mut url = crate::http::join(&self.origin, &call.path);
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(token.expose())
            .header("Accept-API-Version", call.api_version)
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let budget_key = self.origin.as_str();
        self.budget
            .spend(budget_key, jiff::Timestamp::now, tokio::time::sleep)
            .await;
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let wait = crate::http::retry_after(response.headers(), jiff::Timestamp::now());
                if status == StatusCode::TOO_MANY_REQUESTS {
                    let hold = wait.unwrap_or(std::time::Duration::from_secs(1));
                    tracing::debug!(
                        tenant = budget_key,
                        ?hold,
                        "AIC refused a call for its rate limit; slowing the tenant's budget"
                    );
                    self.budget
                        .hold_off(budget_key, jiff::Timestamp::now(), hold);
                }
                let body = response.bytes().await.map_err(AicError::Transport)?;
                tracing::debug!(method = %call.method, path = %call.path, %status, "AIC call");
                if status.is_success() {
                    Ok(Answer {
                        body: body.to_vec(),
                    })
                } else {
                    Err(AicError::from_response(call.family, status, wait, &body))
                }
            }
            Err(err) => Err(AicError::Transport(err)),
        };
        let outcome = result.as_ref().map_or_else(AicError::reason, |_| "ok");
        self.calls
            .record(SERVICE, call.family.metric_label(), outcome);
        result
    }

    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, AicError> {
        let answer = self.send(&call).await?;
        decode(&call, &answer.body)
    }

    pub(crate) async fn json_opt<T: DeserializeOwned>(
        &self,
        call: Call,
    ) -> Result<Option<T>, AicError> {
        match self.send(&call).await {
            Ok(answer) => decode(&call, &answer.body).map(Some),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn delete(&self, call: Call) -> Result<bool, AicError> {
        match self.send(&call).await {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    pub(crate) fn realm_path(&self) -> String {
        realm_path(&self.realm)
    }
}

pub(crate) fn decode<T: DeserializeOwned>(call: &Call, body: &[u8]) -> Result<T, AicError> {
    serde_json::from_slice(body).map_err(|err| AicError::Decode {
        what: format!("{} {}", call.method, call.path),
        detail: err.to_string(),
    })
}

impl EsvApi for AicClient {
    async fn get_variable(&self, id: &str) -> Result<Option<Variable>, AicError> {
        self.esv_get_variable(id).await
    }
    async fn put_variable(&self, id: &str, write: &VariableWrite) -> Result<Variable, AicError> {
        self.esv_put_variable(id, write).await
    }
    async fn set_variable_description(&self, id: &str, description: &str) -> Result<(), AicError> {
        self.esv_set_variable_description(id, description).await
    }
    async fn delete_variable(&self, id: &str) -> Result<bool, AicError> {
        self.esv_delete_variable(id).await
    }
    async fn get_secret(&self, id: &str) -> Result<Option<Secret>, AicError> {
        self.esv_get_secret(id).await
    }
    async fn create_secret(&self, id: &str, create: &SecretCreate) -> Result<Secret, AicError> {
        self.esv_create_secret(id, create).await
    }
    async fn create_secret_version(
        &self,
        id: &str,
        value_base64: &SecretString,
    ) -> Result<SecretVersion, AicError> {
        self.esv_create_version(id, value_base64).await
    }
    async fn list_secret_versions(&self, id: &str) -> Result<Vec<SecretVersion>, AicError> {
        self.esv_list_versions(id).await
    }
    async fn set_secret_version_status(
        &self,
        id: &str,
        version: &str,
        status: VersionStatus,
    ) -> Result<SecretVersion, AicError> {
        self.esv_set_version_status(id, version, status).await
    }
    async fn destroy_secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<SecretVersion, AicError> {
        self.esv_destroy_version(id, version).await
    }
    async fn delete_secret(&self, id: &str) -> Result<bool, AicError> {
        self.esv_delete_secret(id).await
    }
}

impl RestartApi for AicClient {
    async fn pending_count(&self) -> Result<EsvCount, AicError> {
        self.esv_pending_count().await
    }
    async fn restart_status(&self) -> Result<RestartStatus, AicError> {
        self.startup_status().await
    }
    async fn restart(&self) -> Result<RestartStatus, AicError> {
        self.startup_restart().await
    }
}

impl AmApi for AicClient {
    async fn get_worker_service(&self) -> Result<Option<serde_json::Value>, AicError> {
        self.am_get_service().await
    }
    async fn create_worker_service(&self) -> Result<serde_json::Value, AicError> {
        self.am_create_service().await
    }
    async fn get_worker(&self, id: &str) -> Result<Option<Worker>, AicError> {
        self.am_get_worker(id).await
    }
    async fn put_worker(&self, id: &str, worker: &Worker) -> Result<Worker, AicError> {
        self.am_put_worker(id, worker).await
    }
    async fn delete_worker(&self, id: &str) -> Result<bool, AicError> {
        self.am_delete_worker(id).await
    }
    async fn list_workers(&self) -> Result<Vec<Worker>, AicError> {
        self.am_list_workers().await
    }
    async fn worker_schema(&self) -> Result<serde_json::Value, AicError> {
        self.am_worker_schema().await
    }
    async fn get_mapping(&self, label: &str) -> Result<Option<Mapping>, AicError> {
        self.am_get_mapping(label).await
    }
    async fn put_mapping(&self, mapping: &Mapping) -> Result<Mapping, AicError> {
        self.am_put_mapping(mapping).await
    }
    async fn delete_mapping(&self, label: &str) -> Result<bool, AicError> {
        self.am_delete_mapping(label).await
    }
    async fn test_connection(&self, worker_id: &str) -> Result<ConnectionTest, AicError> {
        if let Some((budget, key)) = &self.connection_test_budget {
            budget
                .spend(key, jiff::Timestamp::now, tokio::time::sleep)
                .await;
        }
        self.am_test_connection(worker_id).await
    }
}

impl PromotionApi for AicClient {
    async fn lock(&self) -> Result<LockStart, AicError> {
        self.promo_lock().await
    }
    async fn lock_state(&self) -> Result<LockState, AicError> {
        self.promo_lock_state().await
    }
    async fn unlock(&self, promotion_id: &str) -> Result<LockResult, AicError> {
        self.promo_unlock(promotion_id).await
    }
    async fn promote(&self, request: &PromotionRequest) -> Result<(), AicError> {
        self.promo_promote(request).await
    }
    async fn promotion_progress(&self) -> Result<PromotionProgress, AicError> {
        self.promo_progress().await
    }
    async fn promotion_report(
        &self,
        report_id: Option<&str>,
    ) -> Result<Option<PromotionReport>, AicError> {
        self.promo_report(report_id).await
    }
    async fn provisional_report(&self) -> Result<PromotionReport, AicError> {
        self.promo_provisional().await
    }
    async fn rollback(&self, request: &promotion::RollbackRequest) -> Result<(), AicError> {
        self.promo_rollback(request).await
    }
    async fn provisional_rollback_report(&self) -> Result<PromotionReport, AicError> {
        self.promo_provisional_rollback().await
    }
    async fn list_promotion_reports(&self) -> Result<Vec<ReportMeta>, AicError> {
        self.promo_reports().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_to_a_secret_s_versions_are_told_apart_from_other_esv_writes() {
        let call = |method: Method, path: &str| {
            Call::new(method, ApiFamily::Esv, api_version::ESV, path.to_owned())
        };
        let versions = |c: &Call| c.secret_versions_written().map(str::to_owned);
        assert_eq!(
            versions(&call(Method::POST, "/environment/secrets/esv-s/versions")),
            Some("esv-s".into())
        );
        assert_eq!(
            versions(&call(Method::POST, "/environment/secrets/esv-s/versions/3")),
            Some("esv-s".into())
        );
        assert_eq!(
            versions(&call(Method::GET, "/environment/secrets/esv-s/versions")),
            None
        );
        assert_eq!(
            versions(&call(Method::PUT, "/environment/secrets/esv-s")),
            None
        );
        assert_eq!(
            versions(&call(Method::DELETE, "/environment/secrets/esv-s")),
            None
        );
        assert_eq!(
            versions(&call(Method::PUT, "/environment/variables/esv-v")),
            None
        );
    }

    #[test]
    fn segments_are_encoded_and_dots_kept() {
        assert_eq!(
            encode_segment("PingOne Worker/AIC"),
            "PingOne%20Worker%2FAIC"
        );
        assert_eq!(
            encode_segment("am.services.pingone.worker.x.clientsecret"),
            "am.services.pingone.worker.x.clientsecret"
        );
        assert_eq!(realm_path("alpha"), "/am/json/realms/root/realms/alpha");
        assert_eq!(realm_path("/"), "/am/json/realms/root");
    }

    #[test]
    fn debug_shows_no_key_or_token() {
        let client = AicClient::new(
            AicClientConfig {
                tenant_url: "https://tenant.example.com/some/path".into(),
                realm: "alpha".into(),
                service_account_id: "sa-1".into(),
                private_key: SecretString::new(include_str!(
                    "../../tests/fixtures/test-service-account.jwk.json"
                ))
                .into(),
                scopes: vec!["fr:am:*".into()],
                backoff: Backoff::default(),
            },
            crate::http::client("test").unwrap(),
            TokenCache::default(),
        )
        .unwrap();
        assert_eq!(client.origin().as_str(), "https://tenant.example.com/");
        let debug = format!("{client:?}");
        assert!(debug.contains("sa-1"));
        assert!(!debug.contains("\"d\""));
        assert!(!debug.to_lowercase().contains("bearer"));
    }
}
