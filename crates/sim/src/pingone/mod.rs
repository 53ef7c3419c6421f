//! A stateful PingOne Platform simulator: organizations, environments with regions, the token
//! endpoint, applications, application secrets, built-in roles and application role
//! assignments, with PingOne's rules (client authentication methods, enabled flag, bearer
//! checks, the admin permission model, uniqueness of role assignments, secret rotation with an
//! overlap that expires by the clock, HAL pagination, `P1Error` bodies).
//!
//! Modelling decisions where PingOne's behaviour is not documented (see the reference's open
//! questions): every failed client authentication is `401 invalid_client`; "Must have role at
//! the same or broader scope" is a 403 `ACCESS_FAILED`; deleting a read-only role assignment is
//! a 400 `REQUEST_FAILED`; a second rotation keeps only one previous secret (the one replaced);
//! an `expiresAt` outside 1 minute..30 days is 400 `INVALID_DATA`/`OUT_OF_RANGE`; an
//! Environment Admin may grant Identity Data Admin without holding it, unless
//! `strictRoleHolding` is set. Deleting an application removes its secret and role
//! assignments and invalidates its tokens. `GET /environments/{id}` answers even while the
//! environment is young (as the SDK's 404 check relies on); its sub-resources do not.
//!
//! Build it with [`PingOneSim::new`], mount [`PingOneSim::router`] together with the shared
//! [`SimControl`] (see [`PingOneSim::app`]), and inspect it with [`PingOneSim::state`] or
//! `GET /_sim/pingone/state`. `PUT /_sim/pingone/applications/{id}/secret` with
//! `{"secret": "…"}` replaces an application's secret the way the console does when a product
//! connection's credential is regenerated (the old one stops working at once), so a test can
//! rotate a credential no public API issues; `POST` to the same path issues a new valid one
//! (a JWT-shaped credential for a product connection, a client secret otherwise) and answers
//! `{"secret": "…"}`, for trying a rotation by hand.
//!
//! Rate limits (off unless `rateLimit` is configured, or set with
//! [`PingOneSim::set_rate_limit`]): PingOne limits requests per licence, shared by every
//! environment on it (the reference, § 6.2). Each licence is a token bucket of
//! `requestsPerSecond` with room for `burst`; an API call over it is answered 429
//! `REQUEST_LIMITED` / `LIMIT_EXCEEDED` with `Retry-After` in whole seconds until the bucket
//! holds a request again. A call counts against the licence of the environment its bearer
//! token was issued in (the admin worker's); token requests are another rate group and are not
//! limited. An environment's licence is simulator configuration: `license` on its seed names
//! one (environments naming the same one share it); without it, one licence per organization.
//!
//! Regions: [`PingOneSim::app`] answers for every environment on one origin, a stand-in for all
//! regional hosts at once. [`PingOneSim::regional_app`] is one region's hosts
//! (`api.pingone.<tld>` and `auth.pingone.<tld>` on one origin): an environment exists in one
//! region only (the reference, § 1.1: an organization's environments are in one region, and the
//! region cannot be derived from the id), so a request naming an environment of another region
//! (`/{envId}/as/token`, `/v1/environments/{envId}/…`) is answered as for an unknown one, 404.
//! Collections that name no environment answer as on the all-regions origin.
// Handlers return their early answers as `Err(Response)`; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

mod application;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::control::{SimControl, empty, new_id, random_text};
use application::application_fields;

/// The built-in roles the simulator knows, with the scope types each can be assigned at.
const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("Organization Admin", &["ORGANIZATION"]),
    ("Environment Admin", &["ORGANIZATION", "ENVIRONMENT"]),
    ("Identity Data Admin", &["ENVIRONMENT", "POPULATION"]),
    ("Identity Data Read Only", &["ENVIRONMENT", "POPULATION"]),
    ("Help Desk Admin", &["ENVIRONMENT", "POPULATION"]),
    ("Client Application Developer", &["ENVIRONMENT"]),
    ("Application Owner", &["APPLICATION"]),
    ("Configuration Read Only", &["ENVIRONMENT"]),
    ("DaVinci Admin", &["ENVIRONMENT"]),
    ("DaVinci Admin Read Only", &["ENVIRONMENT"]),
];

/// Which roles a holder of a role may assign (PingOne "Built-in admin roles").
fn assignable_by(holder: &str, role: &str) -> bool {
    match holder {
        "Organization Admin" => role == "Environment Admin",
        "Environment Admin" => role != "Organization Admin",
        "Identity Data Admin" => matches!(
            role,
            "Identity Data Admin" | "Identity Data Read Only" | "Help Desk Admin"
        ),
        "DaVinci Admin" => role.starts_with("DaVinci Admin"),
        _ => false,
    }
}

const NOT_AUTHORIZED: &str = "The actor attempting to perform the request is not authorized.";

/// Seed and tunables of the PingOne simulator (the `pingone` section of the sim config).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingOneSimConfig {
    /// Items per page of every collection.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// `expires_in` of access tokens.
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_seconds: u64,
    /// For this long after a role assignment is made it does not count yet (propagation).
    #[serde(default)]
    pub grant_propagation_seconds: u64,
    /// For this long after an environment is created its sub-resources answer 404.
    #[serde(default)]
    pub young_environment_seconds: u64,
    /// Also require the granter to hold the role it grants ("can't assign what you don't hold").
    #[serde(default)]
    pub strict_role_holding: bool,
    /// Answer 429 above this rate per licence (none when absent; see the module doc).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Organizations with their environments.
    #[serde(default)]
    pub organizations: Vec<OrganizationSeed>,
    /// Worker applications that exist from the start, e.g. the operator's admin worker.
    #[serde(default)]
    pub workers: Vec<WorkerSeed>,
}

impl Default for PingOneSimConfig {
    fn default() -> Self {
        Self {
            page_size: default_page_size(),
            token_lifetime_seconds: default_token_lifetime(),
            grant_propagation_seconds: 0,
            young_environment_seconds: 0,
            strict_role_holding: false,
            rate_limit: None,
            organizations: Vec::new(),
            workers: Vec::new(),
        }
    }
}

fn default_page_size() -> usize {
    100
}

fn default_token_lifetime() -> u64 {
    3600
}

/// A licence's rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet period (default: one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimit {
    fn capacity(&self) -> f64 {
        self.burst
            .map_or(self.requests_per_second.ceil(), f64::from)
            .max(1.0)
    }
}

/// An organization to seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrganizationSeed {
    /// Id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Its environments.
    #[serde(default)]
    pub environments: Vec<EnvironmentSeed>,
}

/// An environment to seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSeed {
    /// Id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name, unique within the organization.
    pub name: String,
    /// Region code (`NA`, `CA`, `EU`, `AU`, `SG`, `AP`).
    #[serde(default = "default_region")]
    pub region: String,
    /// `PRODUCTION` or `SANDBOX`.
    #[serde(default = "default_environment_type", rename = "type")]
    pub kind: String,
    /// Name of the licence the environment is on; the organization's when absent.
    #[serde(default)]
    pub license: Option<String>,
}

fn default_region() -> String {
    "NA".into()
}

fn default_environment_type() -> String {
    "SANDBOX".into()
}

/// A worker application to seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerSeed {
    /// Application (client) id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// Environment it lives in: id or name.
    pub environment: String,
    /// Client secret; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// `CLIENT_SECRET_BASIC` (default) or `CLIENT_SECRET_POST`.
    #[serde(default = "default_auth_method")]
    pub token_endpoint_auth_method: String,
    /// Whether it is enabled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its role assignments.
    #[serde(default)]
    pub roles: Vec<RoleSeed>,
}

fn default_auth_method() -> String {
    "CLIENT_SECRET_BASIC".into()
}

fn yes() -> bool {
    true
}

/// A role assignment to seed.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSeed {
    /// Built-in role name.
    pub role: String,
    /// `ENVIRONMENT` (default) or `ORGANIZATION`.
    #[serde(default = "default_scope_type")]
    pub scope_type: String,
    /// Environment (id or name) or organization (id or name); the worker's own environment
    /// (or its organization) when absent.
    #[serde(default)]
    pub scope: Option<String>,
}

fn default_scope_type() -> String {
    "ENVIRONMENT".into()
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Org {
    id: String,
    name: String,
}

/// What is left of a licence's rate at `at`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: jiff::Timestamp,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Env {
    id: String,
    name: String,
    organization_id: String,
    region: String,
    kind: String,
    license_id: String,
    created_at: jiff::Timestamp,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct App {
    id: String,
    environment_id: String,
    /// The client-writable fields as last written (PUT replaces them all).
    fields: Map<String, Value>,
    created_at: jiff::Timestamp,
    updated_at: jiff::Timestamp,
    secret: String,
    previous: Option<Previous>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Previous {
    secret: String,
    expires_at: jiff::Timestamp,
    last_used: Option<jiff::Timestamp>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    id: String,
    application_id: String,
    environment_id: String,
    role_id: String,
    scope_type: String,
    scope_id: String,
    created_at: jiff::Timestamp,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleDef {
    id: String,
    name: String,
    applicable_to: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    application_id: String,
    environment_id: String,
    expires_at: jiff::Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct World {
    #[serde(skip)]
    config: PingOneSimConfig,
    organizations: Vec<Org>,
    environments: Vec<Env>,
    roles: Vec<RoleDef>,
    applications: Vec<App>,
    role_assignments: Vec<Assignment>,
    /// Issued tokens by value; not part of the state dump.
    #[serde(skip)]
    tokens: HashMap<String, Issued>,
    /// Rate-limit buckets by licence id.
    #[serde(skip)]
    rate: HashMap<String, Bucket>,
}

/// The simulator: shared state plus the control it reads its clock from.
#[derive(Clone, Debug)]
pub struct PingOneSim {
    world: Arc<Mutex<World>>,
    control: SimControl,
}

/// The credentials of a seeded worker, for tests and the playground.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededWorker {
    /// Application (client) id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Environment id.
    pub environment_id: String,
    /// Client secret.
    pub secret: String,
    /// Token endpoint auth method.
    pub token_endpoint_auth_method: String,
}

impl PingOneSim {
    /// Builds the simulator from its seed. Errors name the first inconsistent seed entry.
    pub fn new(config: PingOneSimConfig, control: SimControl) -> Result<Self, String> {
        let now = control.now();
        let seeded_at = now - jiff::SignedDuration::from_hours(24);
        let roles = BUILTIN_ROLES
            .iter()
            .map(|(name, scopes)| RoleDef {
                id: new_id(),
                name: (*name).to_owned(),
                applicable_to: scopes.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect();
        let mut world = World {
            config: config.clone(),
            organizations: Vec::new(),
            environments: Vec::new(),
            roles,
            applications: Vec::new(),
            role_assignments: Vec::new(),
            tokens: HashMap::new(),
            rate: HashMap::new(),
        };
        let mut named_licenses: HashMap<String, String> = HashMap::new();
        for org in &config.organizations {
            let org_id = org.id.clone().unwrap_or_else(new_id);
            let org_license_id = new_id();
            world.organizations.push(Org {
                id: org_id.clone(),
                name: org.name.clone(),
            });
            for env in &org.environments {
                if !matches!(env.region.as_str(), "NA" | "CA" | "EU" | "AU" | "SG" | "AP") {
                    return Err(format!(
                        "environment {:?}: unknown region {:?}",
                        env.name, env.region
                    ));
                }
                let license_id = match &env.license {
                    Some(name) => named_licenses
                        .entry(name.clone())
                        .or_insert_with(new_id)
                        .clone(),
                    None => org_license_id.clone(),
                };
                world.environments.push(Env {
                    id: env.id.clone().unwrap_or_else(new_id),
                    name: env.name.clone(),
                    organization_id: org_id.clone(),
                    region: env.region.clone(),
                    kind: env.kind.clone(),
                    license_id,
                    created_at: seeded_at,
                });
            }
        }
        for worker in &config.workers {
            let env = world
                .find_env(&worker.environment)
                .ok_or_else(|| {
                    format!(
                        "worker {:?}: no environment {:?}",
                        worker.name, worker.environment
                    )
                })?
                .clone();
            let id = worker.id.clone().unwrap_or_else(new_id);
            let mut fields = Map::new();
            fields.insert("name".into(), json!(worker.name));
            fields.insert("enabled".into(), json!(worker.enabled));
            fields.insert("type".into(), json!("WORKER"));
            fields.insert("protocol".into(), json!("OPENID_CONNECT"));
            fields.insert("grantTypes".into(), json!(["CLIENT_CREDENTIALS"]));
            fields.insert(
                "tokenEndpointAuthMethod".into(),
                json!(worker.token_endpoint_auth_method),
            );
            world.applications.push(App {
                id: id.clone(),
                environment_id: env.id.clone(),
                fields,
                created_at: seeded_at,
                updated_at: seeded_at,
                secret: worker.secret.clone().unwrap_or_else(|| random_text(64)),
                previous: None,
            });
            for grant in &worker.roles {
                let role_id = world
                    .role_by_name(&grant.role)
                    .ok_or_else(|| format!("worker {:?}: no role {:?}", worker.name, grant.role))?
                    .id
                    .clone();
                let scope_id = match (grant.scope_type.as_str(), &grant.scope) {
                    ("ENVIRONMENT", None) => env.id.clone(),
                    ("ENVIRONMENT", Some(scope)) => world
                        .find_env(scope)
                        .ok_or_else(|| {
                            format!("worker {:?}: no environment {scope:?}", worker.name)
                        })?
                        .id
                        .clone(),
                    ("ORGANIZATION", None) => env.organization_id.clone(),
                    ("ORGANIZATION", Some(scope)) => world
                        .organizations
                        .iter()
                        .find(|org| &org.id == scope || &org.name == scope)
                        .ok_or_else(|| {
                            format!("worker {:?}: no organization {scope:?}", worker.name)
                        })?
                        .id
                        .clone(),
                    (other, _) => {
                        return Err(format!(
                            "worker {:?}: unsupported scope type {other:?}",
                            worker.name
                        ));
                    }
                };
                world.role_assignments.push(Assignment {
                    id: new_id(),
                    application_id: id.clone(),
                    environment_id: env.id.clone(),
                    role_id,
                    scope_type: grant.scope_type.clone(),
                    scope_id,
                    created_at: seeded_at,
                });
            }
        }
        Ok(Self {
            world: Arc::new(Mutex::new(world)),
            control,
        })
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The control (clock, call log, faults) this simulator uses.
    pub fn control(&self) -> &SimControl {
        &self.control
    }

    /// The simulator's routes: `/{envId}/as/token`, `/v1/…` and `/_sim/pingone/…`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{env}/as/token", post(token))
            .route("/v1/organizations", get(list_organizations))
            .route("/v1/environments", get(list_environments))
            .route("/v1/environments/{env}", get(read_environment))
            .route(
                "/v1/environments/{env}/applications",
                get(list_applications).post(create_application),
            )
            .route(
                "/v1/environments/{env}/applications/{app}",
                get(read_application)
                    .put(replace_application)
                    .delete(delete_application),
            )
            .route(
                "/v1/environments/{env}/applications/{app}/secret",
                get(read_secret).post(rotate_secret).delete(delete_previous),
            )
            .route(
                "/v1/environments/{env}/applications/{app}/roleAssignments",
                get(list_assignments).post(create_assignment),
            )
            .route(
                "/v1/environments/{env}/applications/{app}/roleAssignments/{ra}",
                get(read_assignment).delete(delete_assignment),
            )
            .route("/v1/roles", get(list_roles))
            .route("/v1/roles/{role}", get(read_role))
            .route("/_sim/pingone/state", get(dump_state))
            .route("/_sim/pingone/environments", post(add_environment_handler))
            .route(
                "/_sim/pingone/applications/{app}/secret",
                axum::routing::put(set_secret_handler).post(issue_secret_handler),
            )
            .fallback(|| async {
                p1(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource object cannot be found.",
                    vec![],
                )
            })
            // The spec declares every error, 405 included, with a P1Error body.
            .method_not_allowed_fallback(|| async {
                p1(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "INVALID_REQUEST",
                    "The request method is not supported by the requested resource.",
                    vec![],
                )
            })
            .with_state(self.clone())
    }

    /// This simulator and its control API behind the control's call log and faults: what the
    /// binary serves and what in-process tests mount with
    /// [`serve_loopback`](super::control::serve_loopback).
    pub fn app(&self) -> Router {
        self.control
            .layer(self.router().merge(self.control.router()))
    }

    /// As [`app`](Self::app), as the hosts of one region (`NA`, `EU`, …) answer: environments
    /// of other regions do not exist there (see the module doc).
    pub fn regional_app(&self, region: &str) -> Router {
        let sim = self.clone();
        let region = region.to_owned();
        let only_this_region = move |request: axum::extract::Request,
                                     next: axum::middleware::Next| {
            let foreign = environment_in_path(request.uri().path())
                .and_then(|id| sim.world().env(id).map(|env| env.region != region))
                .unwrap_or(false);
            async move {
                if foreign {
                    not_found()
                } else {
                    next.run(request).await
                }
            }
        };
        self.control.layer(
            self.router()
                .layer(axum::middleware::from_fn(only_this_region))
                .merge(self.control.router()),
        )
    }

    /// The seeded workers with their credentials.
    pub fn workers(&self) -> Vec<SeededWorker> {
        let world = self.world();
        world
            .config
            .workers
            .iter()
            .filter_map(|seed| {
                let app = world.applications.iter().find(|app| {
                    seed.id.as_ref().is_none_or(|id| id == &app.id)
                        && app.fields.get("name").and_then(Value::as_str) == Some(&seed.name)
                })?;
                Some(SeededWorker {
                    id: app.id.clone(),
                    name: seed.name.clone(),
                    environment_id: app.environment_id.clone(),
                    secret: app.secret.clone(),
                    token_endpoint_auth_method: seed.token_endpoint_auth_method.clone(),
                })
            })
            .collect()
    }

    /// An environment's id by id or name.
    pub fn environment_id(&self, name_or_id: &str) -> Option<String> {
        self.world().find_env(name_or_id).map(|env| env.id.clone())
    }

    /// Creates an environment now (it is "young" for `youngEnvironmentSeconds`).
    pub fn add_environment(
        &self,
        organization: &str,
        name: &str,
        region: &str,
    ) -> Result<String, String> {
        let now = self.control.now();
        let mut world = self.world();
        let org = world
            .organizations
            .iter()
            .find(|org| org.id == organization || org.name == organization)
            .ok_or_else(|| format!("no organization {organization:?}"))?
            .id
            .clone();
        let license_id = world
            .environments
            .iter()
            .find(|env| env.organization_id == org)
            .map_or_else(new_id, |env| env.license_id.clone());
        let id = new_id();
        world.environments.push(Env {
            id: id.clone(),
            name: name.to_owned(),
            organization_id: org,
            region: region.to_owned(),
            kind: "SANDBOX".into(),
            license_id,
            created_at: now,
        });
        Ok(id)
    }

    /// Turns the per-licence rate limit on (`Some`) or off, with full buckets.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut world = self.world();
        world.config.rate_limit = limit;
        world.rate.clear();
    }

    /// Changes the page size of collections.
    pub fn set_page_size(&self, size: usize) {
        self.world().config.page_size = size.max(1);
    }

    /// The whole state as JSON (secrets included: this is a test double).
    pub fn state(&self) -> Value {
        serde_json::to_value(&*self.world()).unwrap_or(Value::Null)
    }

    /// Every access token issued so far, for tests that check nothing leaks them.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.world()
            .tokens
            .keys()
            .map(|t| t.as_str().into())
            .collect()
    }

    /// Replaces an application's secret without keeping the previous one (a credential
    /// regenerated in the console). False when there is no such application.
    pub fn set_application_secret(&self, application_id: &str, secret: &str) -> bool {
        let mut world = self.world();
        match world
            .applications
            .iter_mut()
            .find(|app| app.id == application_id)
        {
            Some(app) => {
                app.secret = secret.to_owned();
                app.previous = None;
                true
            }
            None => false,
        }
    }

    /// Issues a new secret for an application, as regenerating it in the console does (the
    /// previous one stops working at once), and returns it: a signed-JWT-shaped credential for
    /// a product connection (issuer: its environment), a random client secret otherwise. For
    /// trying a rotation by hand; `None` when there is no such application.
    pub fn issue_application_secret(&self, application_id: &str) -> Option<String> {
        let mut world = self.world();
        let app = world
            .applications
            .iter_mut()
            .find(|app| app.id == application_id)?;
        let connection = app.fields.get("tokenEndpointAuthMethod")
            == Some(&Value::String("PRODUCT_CONNECTION".into()));
        let secret = if connection {
            let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
            let claims = json!({
                "iss": format!("https://auth.pingone.com/{}/as", app.environment_id),
                "sub": app.id,
                "jti": random_text(16),
                "iat": jiff::Timestamp::now().as_second(),
            });
            format!(
                "{}.{}.{}",
                encode(r#"{"alg":"RS256","typ":"JWT"}"#),
                encode(&claims.to_string()),
                encode(&random_text(32))
            )
        } else {
            random_text(64)
        };
        app.secret = secret.clone();
        app.previous = None;
        Some(secret)
    }

    /// An application's current secret, for tests.
    pub fn application_secret(&self, application_id: &str) -> Option<String> {
        self.world()
            .applications
            .iter()
            .find(|app| app.id == application_id)
            .map(|app| app.secret.clone())
    }
}

impl World {
    fn find_env(&self, name_or_id: &str) -> Option<&Env> {
        self.environments
            .iter()
            .find(|env| env.id == name_or_id)
            .or_else(|| self.environments.iter().find(|env| env.name == name_or_id))
    }

    fn env(&self, id: &str) -> Option<&Env> {
        self.environments.iter().find(|env| env.id == id)
    }

    fn role_by_name(&self, name: &str) -> Option<&RoleDef> {
        self.roles.iter().find(|role| role.name == name)
    }

    fn role(&self, id: &str) -> Option<&RoleDef> {
        self.roles.iter().find(|role| role.id == id)
    }

    fn app(&self, env: &str, id: &str) -> Option<&App> {
        self.applications
            .iter()
            .find(|app| app.id == id && app.environment_id == env)
    }

    fn app_mut(&mut self, env: &str, id: &str) -> Option<&mut App> {
        self.applications
            .iter_mut()
            .find(|app| app.id == id && app.environment_id == env)
    }

    /// The caller's assignments that have propagated.
    fn effective<'a>(
        &'a self,
        caller: &'a str,
        now: jiff::Timestamp,
    ) -> impl Iterator<Item = &'a Assignment> + 'a {
        let propagation =
            jiff::SignedDuration::from_secs(self.config.grant_propagation_seconds as i64);
        self.role_assignments
            .iter()
            .filter(move |a| a.application_id == caller && a.created_at + propagation <= now)
    }

    /// Whether an assignment's scope covers an environment.
    fn covers_env(&self, assignment: &Assignment, env_id: &str) -> bool {
        match assignment.scope_type.as_str() {
            "ENVIRONMENT" => assignment.scope_id == env_id,
            "ORGANIZATION" => self
                .env(env_id)
                .is_some_and(|env| env.organization_id == assignment.scope_id),
            _ => false,
        }
    }

    /// Whether the caller holds one of these roles at a scope covering the environment.
    fn holds(&self, caller: &str, roles: &[&str], env_id: &str, now: jiff::Timestamp) -> bool {
        self.effective(caller, now).any(|a| {
            self.role(&a.role_id)
                .is_some_and(|role| roles.contains(&role.name.as_str()))
                && self.covers_env(a, env_id)
        })
    }

    fn any_role_at(&self, caller: &str, env_id: &str, now: jiff::Timestamp) -> bool {
        self.effective(caller, now)
            .any(|a| self.covers_env(a, env_id))
    }

    /// Whether the caller may assign (or delete) `role_id` at a scope; `env_id` is the
    /// environment the scope belongs to (for population and application scopes, the path's).
    fn can_assign(
        &self,
        caller: &str,
        role_id: &str,
        scope_type: &str,
        scope_id: &str,
        env_id: &str,
        now: jiff::Timestamp,
    ) -> bool {
        let Some(role) = self.role(role_id) else {
            return false;
        };
        let covers = |a: &Assignment| match scope_type {
            "ORGANIZATION" => a.scope_type == "ORGANIZATION" && a.scope_id == scope_id,
            "ENVIRONMENT" => self.covers_env(a, scope_id),
            _ => self.covers_env(a, env_id),
        };
        let may_grant = self.effective(caller, now).any(|a| {
            covers(a)
                && self
                    .role(&a.role_id)
                    .is_some_and(|held| assignable_by(&held.name, &role.name))
        });
        let holds = !self.config.strict_role_holding
            || self
                .effective(caller, now)
                .any(|a| covers(a) && a.role_id == role.id);
        may_grant && holds
    }

    fn is_young(&self, env_id: &str, now: jiff::Timestamp) -> bool {
        let window = jiff::SignedDuration::from_secs(self.config.young_environment_seconds as i64);
        self.env(env_id)
            .is_some_and(|env| env.created_at + window > now)
    }
}

type Reply = Response;

fn p1(status: StatusCode, code: &str, message: &str, details: Vec<Value>) -> Reply {
    let mut body = json!({ "id": new_id(), "code": code, "message": message });
    if !details.is_empty() {
        body["details"] = Value::Array(details);
    }
    (status, axum::Json(body)).into_response()
}

fn detail(code: &str, target: &str, message: &str) -> Value {
    json!({ "code": code, "target": target, "message": message })
}

/// The environment a request path names: `/{envId}/as/token` or `/v1/environments/{envId}/…`.
fn environment_in_path(path: &str) -> Option<&str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [env, "as", "token"] => Some(env),
        ["v1", "environments", env, ..] => Some(env),
        _ => None,
    }
}

fn not_found() -> Reply {
    p1(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource object cannot be found.",
        vec![],
    )
}

fn forbidden() -> Reply {
    p1(
        StatusCode::FORBIDDEN,
        "ACCESS_FAILED",
        NOT_AUTHORIZED,
        vec![detail("INSUFFICIENT_PERMISSIONS", "", NOT_AUTHORIZED)],
    )
}

fn invalid(target: &str, code: &str, message: &str) -> Reply {
    p1(
        StatusCode::BAD_REQUEST,
        "INVALID_DATA",
        "The request could not be completed. One or more validation errors were in the request.",
        vec![detail(code, target, message)],
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    let body = json!({
        "error": error,
        "error_description": format!("{description} (Correlation ID: {})", new_id()),
    });
    (status, axum::Json(body)).into_response()
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn time(at: jiff::Timestamp) -> String {
    // PingOne's timestamps: UTC, milliseconds, `Z` (e.g. `createdAt` in the management API's
    // examples, "2024-01-31T09:15:02.123Z").
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn link(href: String) -> Value {
    json!({ "href": href })
}

/// A page of a collection with HAL links; `cursor` is the offset of the page.
fn page(
    headers: &HeaderMap,
    path: &str,
    collection: &str,
    items: Vec<Value>,
    cursor: usize,
    size: usize,
) -> Reply {
    let base = base_url(headers);
    let total = items.len();
    let slice: Vec<Value> = items.into_iter().skip(cursor).take(size).collect();
    let mut links = Map::new();
    let self_href = if cursor == 0 {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?cursor={cursor}")
    };
    links.insert("self".into(), link(self_href));
    if cursor + slice.len() < total {
        links.insert(
            "next".into(),
            link(format!("{base}{path}?cursor={}", cursor + slice.len())),
        );
    }
    let mut embedded = Map::new();
    let count = slice.len();
    embedded.insert(collection.into(), Value::Array(slice));
    axum::Json(json!({
        "_links": links,
        "_embedded": embedded,
        "count": total,
        "size": count,
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(default)]
    cursor: Option<usize>,
}

/// A malformed `cursor` is a P1Error like every other refusal (the spec's 400), not the
/// framework's plain-text rejection.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Paging {
    type Rejection = Reply;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<Paging>::from_request_parts(parts, state)
            .await
            .map(|Query(paging)| paging)
            .map_err(|_| {
                p1(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "The request could not be completed. One or more validation errors were in the request.",
                    vec![detail("INVALID_PARAMETER", "cursor", "cursor is not a valid page cursor")],
                )
            })
    }
}

/// The calling application, from a valid bearer token, or the 401 to answer. Also applies
/// the per-organization rate limit.
fn caller(sim: &PingOneSim, world: &mut World, headers: &HeaderMap) -> Result<String, Reply> {
    let now = sim.control.now();
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let invalid_token = || {
        p1(
            StatusCode::UNAUTHORIZED,
            "ACCESS_FAILED",
            "The request could not be completed. The access token is invalid or expired.",
            vec![detail(
                "INVALID_TOKEN",
                "",
                "The access token is invalid or expired.",
            )],
        )
    };
    let Some(issued) = token.and_then(|token| world.tokens.get(token)) else {
        return Err(invalid_token());
    };
    if issued.expires_at <= now
        || !world
            .applications
            .iter()
            .any(|app| app.id == issued.application_id)
    {
        return Err(invalid_token());
    }
    let caller = issued.application_id.clone();
    let caller_env = issued.environment_id.clone();
    if let Some(limit) = world.config.rate_limit
        && let Some(license) = world.env(&caller_env).map(|env| env.license_id.clone())
        && let Err(wait_seconds) = take_from_license(&mut world.rate, &license, limit, now)
    {
        let mut reply = p1(
            StatusCode::TOO_MANY_REQUESTS,
            "REQUEST_LIMITED",
            "The request could not be completed. Too many requests were sent.",
            vec![detail(
                "LIMIT_EXCEEDED",
                "",
                "The rate limit of the licence was exceeded.",
            )],
        );
        reply.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(wait_seconds),
        );
        return Err(reply);
    }
    Ok(caller)
}

/// Takes one request from the licence's bucket, or says in how many whole seconds (at least
/// one) it will hold one again.
fn take_from_license(
    buckets: &mut HashMap<String, Bucket>,
    license: &str,
    limit: RateLimit,
    now: jiff::Timestamp,
) -> Result<(), u64> {
    let rate = limit.requests_per_second.max(0.001);
    let capacity = limit.capacity();
    let bucket = buckets.entry(license.to_owned()).or_insert(Bucket {
        tokens: capacity,
        at: now,
    });
    let refill = now.duration_since(bucket.at).as_secs_f64().max(0.0) * rate;
    bucket.tokens = (bucket.tokens + refill).min(capacity);
    bucket.at = bucket.at.max(now);
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        // The float is small and positive: the cast keeps it.
        Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
    }
}

/// Checks the path's environment: exists, not young. Returns its id.
fn environment_ok(sim: &PingOneSim, world: &World, env: &str) -> Result<(), Reply> {
    if world.env(env).is_none() || world.is_young(env, sim.control.now()) {
        return Err(not_found());
    }
    Ok(())
}

async fn token(
    State(sim): State<PingOneSim>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let now = sim.control.now();
    let mut world = sim.world();
    if world.env(&env).is_none() {
        return not_found();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            Some((id.to_owned(), secret.to_owned()))
        });
    let posted = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
        _ => None,
    };
    // A product connection's signed JWT, presented as a client assertion. How PingOne validates
    // these credentials is not public; the simulator accepts the credential of an application
    // seeded with the `PRODUCT_CONNECTION` method verbatim.
    let assertion = (form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"))
    .then(|| form.get("client_assertion").cloned())
    .flatten();
    if let Some(assertion) = assertion {
        let connection = world.applications.iter().find(|app| {
            app.environment_id == env
                && app.secret == assertion
                && app
                    .fields
                    .get("tokenEndpointAuthMethod")
                    .and_then(Value::as_str)
                    == Some("PRODUCT_CONNECTION")
        });
        let Some(connection) = connection else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Request denied: Invalid client assertion",
            );
        };
        let id = connection.id.clone();
        return issue_token(&mut world, &env, &id, now);
    }
    let (method, client_id, secret) = match (basic, posted) {
        (Some(_), Some(_)) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Request denied: multiple client authentication methods",
            );
        }
        (Some((id, secret)), None) => ("CLIENT_SECRET_BASIC", id, secret),
        (None, Some((id, secret))) => ("CLIENT_SECRET_POST", id, secret),
        (None, None) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Request denied: Unsupported authentication method",
            );
        }
    };
    // Tokens are bound to the environment the application lives in.
    let Some(app) = world.app_mut(&env, &client_id) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Request denied: Invalid client credentials",
        );
    };
    let configured = app
        .fields
        .get("tokenEndpointAuthMethod")
        .and_then(Value::as_str)
        .unwrap_or("CLIENT_SECRET_BASIC");
    if configured != method {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Request denied: Unsupported authentication method",
        );
    }
    if let Some(previous) = &app.previous
        && previous.expires_at <= now
    {
        app.previous = None;
    }
    let current = app.secret == secret;
    let previous_ok = app.previous.as_ref().is_some_and(|p| p.secret == secret);
    if !current && !previous_ok {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Request denied: Invalid client credentials",
        );
    }
    if previous_ok && let Some(previous) = app.previous.as_mut() {
        previous.last_used = Some(now);
    }
    if app.fields.get("enabled").and_then(Value::as_bool) != Some(true) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Request denied: Application is disabled",
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Request denied: Unsupported grant type",
        );
    }
    let grants_cc = app
        .fields
        .get("grantTypes")
        .and_then(Value::as_array)
        .is_some_and(|grants| grants.iter().any(|g| g == "CLIENT_CREDENTIALS"));
    if !grants_cc {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "Request denied: Grant type not allowed for this application",
        );
    }
    let app_id = app.id.clone();
    issue_token(&mut world, &env, &app_id, now)
}

/// Issues an access token for an application of `env`.
fn issue_token(world: &mut World, env: &str, application_id: &str, now: jiff::Timestamp) -> Reply {
    let lifetime = world.config.token_lifetime_seconds;
    let access_token = format!("sim.{}.{}", random_text(24), random_text(43));
    world.tokens.insert(
        access_token.clone(),
        Issued {
            application_id: application_id.to_owned(),
            environment_id: env.to_owned(),
            expires_at: now
                .checked_add(jiff::SignedDuration::from_secs(
                    lifetime.try_into().unwrap_or(i64::MAX),
                ))
                .unwrap_or(jiff::Timestamp::MAX),
        },
    );
    axum::Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    }))
    .into_response()
}

fn render_org(headers: &HeaderMap, org: &Org) -> Value {
    json!({
        "_links": { "self": link(format!("{}/v1/organizations/{}", base_url(headers), org.id)) },
        "id": org.id,
        "name": org.name,
        "type": "INTERNAL",
    })
}

fn render_env(headers: &HeaderMap, env: &Env) -> Value {
    json!({
        "_links": { "self": link(format!("{}/v1/environments/{}", base_url(headers), env.id)) },
        "id": env.id,
        "name": env.name,
        "organization": { "id": env.organization_id },
        "type": env.kind,
        "region": env.region,
        "license": { "id": env.license_id },
        "status": "ACTIVE",
        "createdAt": time(env.created_at),
        "updatedAt": time(env.created_at),
    })
}

async fn list_organizations(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    paging: Paging,
) -> Reply {
    let mut world = sim.world();
    let caller = match caller(&sim, &mut world, &headers) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let now = sim.control.now();
    let items = world
        .organizations
        .iter()
        .filter(|org| {
            world.effective(&caller, now).any(|a| {
                a.scope_id == org.id
                    || world
                        .env(&a.scope_id)
                        .is_some_and(|env| env.organization_id == org.id)
            })
        })
        .map(|org| render_org(&headers, org))
        .collect();
    page(
        &headers,
        "/v1/organizations",
        "organizations",
        items,
        paging.cursor.unwrap_or(0),
        world.config.page_size,
    )
}

async fn list_environments(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    paging: Paging,
) -> Reply {
    let mut world = sim.world();
    let caller = match caller(&sim, &mut world, &headers) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let now = sim.control.now();
    let items = world
        .environments
        .iter()
        .filter(|env| world.any_role_at(&caller, &env.id, now))
        .map(|env| render_env(&headers, env))
        .collect();
    page(
        &headers,
        "/v1/environments",
        "environments",
        items,
        paging.cursor.unwrap_or(0),
        world.config.page_size,
    )
}

async fn read_environment(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path(env): Path<String>,
) -> Reply {
    let mut world = sim.world();
    let caller = match caller(&sim, &mut world, &headers) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let Some(found) = world.env(&env) else {
        return not_found();
    };
    if !world.any_role_at(&caller, &env, sim.control.now()) {
        return forbidden();
    }
    axum::Json(render_env(&headers, found)).into_response()
}

fn render_app(headers: &HeaderMap, app: &App) -> Value {
    let base = format!(
        "{}/v1/environments/{}",
        base_url(headers),
        app.environment_id
    );
    let mut body = app.fields.clone();
    body.insert(
        "_links".into(),
        json!({
            "self": link(format!("{base}/applications/{}", app.id)),
            "environment": link(base.clone()),
            "secret": link(format!("{base}/applications/{}/secret", app.id)),
        }),
    );
    body.insert("id".into(), json!(app.id));
    body.insert("environment".into(), json!({ "id": app.environment_id }));
    body.insert("createdAt".into(), json!(time(app.created_at)));
    body.insert("updatedAt".into(), json!(time(app.updated_at)));
    Value::Object(body)
}

/// Common prologue of calls under `/environments/{env}`: token, environment, permission.
fn admit(
    sim: &PingOneSim,
    world: &mut MutexGuard<'_, World>,
    headers: &HeaderMap,
    env: &str,
    roles: &[&str],
) -> Result<String, Reply> {
    let caller = caller(sim, world, headers)?;
    environment_ok(sim, world, env)?;
    if !world.holds(&caller, roles, env, sim.control.now()) {
        return Err(forbidden());
    }
    Ok(caller)
}

const APP_ROLES: &[&str] = &["Environment Admin", "Client Application Developer"];

async fn list_applications(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path(env): Path<String>,
    paging: Paging,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = admit(&sim, &mut world, &headers, &env, APP_ROLES) {
        return reply;
    }
    let items = world
        .applications
        .iter()
        .filter(|app| app.environment_id == env)
        .map(|app| render_app(&headers, app))
        .collect();
    let path = format!("/v1/environments/{env}/applications");
    page(
        &headers,
        &path,
        "applications",
        items,
        paging.cursor.unwrap_or(0),
        world.config.page_size,
    )
}

/// PingOne's refusal of a role grant the caller may not make: the caller must hold the role at
/// the same or a broader scope (PingOne API docs, "Role assignments"; the Terraform provider
/// retries on this text while a grant propagates).
const ROLE_SCOPE_REFUSED: &str = "Must have role at the same or broader scope";

async fn create_application(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path(env): Path<String>,
    body: Bytes,
) -> Reply {
    let now = sim.control.now();
    let mut world = sim.world();
    let caller = match admit(&sim, &mut world, &headers, &env, APP_ROLES) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let (fields, assign_actor_roles) = match application_fields(&body, true) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    let app = App {
        id: new_id(),
        environment_id: env.clone(),
        fields,
        created_at: now,
        updated_at: now,
        secret: random_text(64),
        previous: None,
    };
    // Without `assignActorRoles: false` the new application inherits the caller's roles.
    if assign_actor_roles != Some(false) {
        let inherited: Vec<Assignment> = world
            .role_assignments
            .iter()
            .filter(|a| a.application_id == caller)
            .map(|a| Assignment {
                id: new_id(),
                application_id: app.id.clone(),
                environment_id: env.clone(),
                created_at: now,
                ..a.clone()
            })
            .collect();
        world.role_assignments.extend(inherited);
    }
    let rendered = render_app(&headers, &app);
    world.applications.push(app);
    (StatusCode::CREATED, axum::Json(rendered)).into_response()
}

async fn read_application(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app)): Path<(String, String)>,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = admit(&sim, &mut world, &headers, &env, APP_ROLES) {
        return reply;
    }
    match world.app(&env, &app) {
        Some(app) => axum::Json(render_app(&headers, app)).into_response(),
        None => not_found(),
    }
}

async fn replace_application(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let now = sim.control.now();
    let mut world = sim.world();
    if let Err(reply) = admit(&sim, &mut world, &headers, &env, APP_ROLES) {
        return reply;
    }
    let (fields, _) = match application_fields(&body, false) {
        Ok(parsed) => parsed,
        Err(reply) => return reply,
    };
    let Some(app) = world.app_mut(&env, &app_id) else {
        return not_found();
    };
    if app.fields.get("type") != fields.get("type") {
        return invalid(
            "type",
            "INVALID_VALUE",
            "The application type cannot be changed",
        );
    }
    app.fields = fields;
    app.updated_at = now;
    let rendered = render_app(&headers, app);
    axum::Json(rendered).into_response()
}

async fn delete_application(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = admit(&sim, &mut world, &headers, &env, APP_ROLES) {
        return reply;
    }
    if world.app(&env, &app_id).is_none() {
        return not_found();
    }
    world.applications.retain(|app| app.id != app_id);
    world
        .role_assignments
        .retain(|a| a.application_id != app_id);
    world
        .tokens
        .retain(|_, issued| issued.application_id != app_id);
    empty(StatusCode::NO_CONTENT)
}

/// Who may see or change an application's secret: an Environment Admin that is not the
/// application itself and sees none of its role assignments as read-only (so nobody obtains
/// the secret of an application more powerful than themselves).
fn secret_access(
    sim: &PingOneSim,
    world: &mut MutexGuard<'_, World>,
    headers: &HeaderMap,
    env: &str,
    app_id: &str,
) -> Result<(), Reply> {
    let caller = admit(sim, world, headers, env, &["Environment Admin"])?;
    if world.app(env, app_id).is_none() {
        return Err(not_found());
    }
    let now = sim.control.now();
    let read_only = world
        .role_assignments
        .iter()
        .filter(|a| a.application_id == app_id)
        .any(|a| !world.can_assign(&caller, &a.role_id, &a.scope_type, &a.scope_id, env, now));
    if caller == app_id || read_only {
        return Err(forbidden());
    }
    Ok(())
}

fn render_secret(headers: &HeaderMap, app: &App, now: jiff::Timestamp) -> Value {
    let mut body = json!({
        "_links": { "self": link(format!("{}/v1/environments/{}/applications/{}/secret", base_url(headers), app.environment_id, app.id)) },
        "environment": { "id": app.environment_id },
        "secret": app.secret,
    });
    if let Some(previous) = app.previous.as_ref().filter(|p| p.expires_at > now) {
        let mut rendered =
            json!({ "secret": previous.secret, "expiresAt": time(previous.expires_at) });
        if let Some(last_used) = previous.last_used {
            rendered["lastUsed"] = json!(time(last_used));
        }
        body["previous"] = rendered;
    }
    body
}

async fn read_secret(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = secret_access(&sim, &mut world, &headers, &env, &app_id) {
        return reply;
    }
    let now = sim.control.now();
    let Some(app) = world.app_mut(&env, &app_id) else {
        return not_found();
    };
    if app.previous.as_ref().is_some_and(|p| p.expires_at <= now) {
        app.previous = None;
    }
    axum::Json(render_secret(&headers, app, now)).into_response()
}

async fn rotate_secret(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = secret_access(&sim, &mut world, &headers, &env, &app_id) {
        return reply;
    }
    let now = sim.control.now();
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return p1(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "The request could not be completed. The request body is not a JSON object.",
                    vec![],
                );
            }
        }
    };
    let expires_at = match request.get("previous") {
        None => None,
        // The spec's `previous` is an object (not nullable) that requires `expiresAt`.
        Some(previous) if !previous.is_object() => {
            return invalid("previous", "INVALID_VALUE", "previous must be an object");
        }
        Some(previous) => {
            let Some(at) = previous
                .get("expiresAt")
                .and_then(Value::as_str)
                .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            else {
                return invalid(
                    "previous.expiresAt",
                    "INVALID_VALUE",
                    "previous.expiresAt must be an RFC 3339 date-time",
                );
            };
            let earliest = now + jiff::SignedDuration::from_mins(1);
            let latest = now + jiff::SignedDuration::from_hours(24 * 30);
            if at < earliest || at > latest {
                return invalid(
                    "previous.expiresAt",
                    "OUT_OF_RANGE",
                    "previous.expiresAt must be between 1 minute and 30 days from now",
                );
            }
            Some(at)
        }
    };
    let Some(app) = world.app_mut(&env, &app_id) else {
        return not_found();
    };
    let old = std::mem::replace(&mut app.secret, random_text(64));
    app.previous = expires_at.map(|expires_at| Previous {
        secret: old,
        expires_at,
        last_used: None,
    });
    app.updated_at = now;
    axum::Json(render_secret(&headers, app, now)).into_response()
}

async fn delete_previous(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = secret_access(&sim, &mut world, &headers, &env, &app_id) {
        return reply;
    }
    if let Some(app) = world.app_mut(&env, &app_id) {
        app.previous = None;
    }
    empty(StatusCode::NO_CONTENT)
}

fn render_assignment(
    headers: &HeaderMap,
    world: &World,
    a: &Assignment,
    caller: &str,
    now: jiff::Timestamp,
) -> Value {
    let read_only = !world.can_assign(
        caller,
        &a.role_id,
        &a.scope_type,
        &a.scope_id,
        &a.environment_id,
        now,
    );
    json!({
        "_links": { "self": link(format!("{}/v1/environments/{}/applications/{}/roleAssignments/{}", base_url(headers), a.environment_id, a.application_id, a.id)) },
        "id": a.id,
        "application": { "id": a.application_id },
        "environment": { "id": a.environment_id },
        "role": { "id": a.role_id },
        "scope": { "id": a.scope_id, "type": a.scope_type },
        "readOnly": read_only,
    })
}

const ASSIGNMENT_READERS: &[&str] = &[
    "Environment Admin",
    "Identity Data Admin",
    "Organization Admin",
    "Client Application Developer",
];

async fn list_assignments(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
    paging: Paging,
) -> Reply {
    let mut world = sim.world();
    let caller = match admit(&sim, &mut world, &headers, &env, ASSIGNMENT_READERS) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    if world.app(&env, &app_id).is_none() {
        return not_found();
    }
    let now = sim.control.now();
    let items = world
        .role_assignments
        .iter()
        .filter(|a| a.application_id == app_id)
        .map(|a| render_assignment(&headers, &world, a, &caller, now))
        .collect();
    let path = format!("/v1/environments/{env}/applications/{app_id}/roleAssignments");
    page(
        &headers,
        &path,
        "roleAssignments",
        items,
        paging.cursor.unwrap_or(0),
        world.config.page_size,
    )
}

async fn read_assignment(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id, ra)): Path<(String, String, String)>,
) -> Reply {
    let mut world = sim.world();
    let caller = match admit(&sim, &mut world, &headers, &env, ASSIGNMENT_READERS) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    let now = sim.control.now();
    match world
        .role_assignments
        .iter()
        .find(|a| a.id == ra && a.application_id == app_id && a.environment_id == env)
    {
        Some(a) => axum::Json(render_assignment(&headers, &world, a, &caller, now)).into_response(),
        None => not_found(),
    }
}

async fn create_assignment(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let now = sim.control.now();
    let mut world = sim.world();
    let caller = match caller(&sim, &mut world, &headers) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    if let Err(reply) = environment_ok(&sim, &world, &env) {
        return reply;
    }
    let Some(app) = world.app(&env, &app_id) else {
        return not_found();
    };
    let is_worker = app.fields.get("type").and_then(Value::as_str) == Some("WORKER");
    // Only administrator-defined OIDC and SAML applications can hold admin roles.
    let protocol = app.fields.get("protocol").and_then(Value::as_str);
    if !matches!(protocol, Some("OPENID_CONNECT" | "SAML")) {
        return invalid(
            "application",
            "INVALID_VALUE",
            "Role assignments can only be made on OIDC or SAML applications",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return p1(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "The request could not be completed. The request body is not valid JSON.",
            vec![],
        );
    };
    let role_id = request
        .pointer("/role/id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let scope_id = request
        .pointer("/scope/id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let scope_type = request
        .pointer("/scope/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(role) = world.role(role_id).cloned() else {
        return invalid("role", "INVALID_VALUE", "The role does not exist");
    };
    let incompatible = || {
        invalid(
            "scope",
            "INVALID_VALUE",
            "Incompatible role and scope combination",
        )
    };
    if !role.applicable_to.iter().any(|t| t == scope_type) {
        return incompatible();
    }
    let env_org = world
        .env(&env)
        .map(|e| e.organization_id.clone())
        .unwrap_or_default();
    let scope_exists = match scope_type {
        "ENVIRONMENT" => world
            .env(scope_id)
            .is_some_and(|e| e.organization_id == env_org),
        "ORGANIZATION" => scope_id == env_org,
        "APPLICATION" => world.applications.iter().any(|a| a.id == scope_id),
        _ => !scope_id.is_empty(),
    };
    if !scope_exists {
        return incompatible();
    }
    if is_worker && role.name.starts_with("DaVinci") {
        return invalid(
            "role",
            "INVALID_VALUE",
            "DaVinci admin roles cannot be assigned to worker applications",
        );
    }
    if !world.can_assign(&caller, role_id, scope_type, scope_id, &env, now) {
        return p1(
            StatusCode::FORBIDDEN,
            "ACCESS_FAILED",
            ROLE_SCOPE_REFUSED,
            vec![detail(
                "INSUFFICIENT_PERMISSIONS",
                "role",
                ROLE_SCOPE_REFUSED,
            )],
        );
    }
    // Same role at the same or an overlapping scope (organization covers its environments).
    let duplicate = world.role_assignments.iter().any(|a| {
        a.application_id == app_id
            && a.role_id == role_id
            && ((a.scope_type == scope_type && a.scope_id == scope_id)
                || (a.scope_type == "ORGANIZATION"
                    && scope_type == "ENVIRONMENT"
                    && world
                        .env(scope_id)
                        .is_some_and(|e| e.organization_id == a.scope_id))
                || (scope_type == "ORGANIZATION"
                    && a.scope_type == "ENVIRONMENT"
                    && world
                        .env(&a.scope_id)
                        .is_some_and(|e| e.organization_id == scope_id)))
    });
    if duplicate {
        return invalid(
            "role",
            "UNIQUENESS_VIOLATION",
            "May not assign duplicate Role",
        );
    }
    let assignment = Assignment {
        id: new_id(),
        application_id: app_id,
        environment_id: env,
        role_id: role_id.to_owned(),
        scope_type: scope_type.to_owned(),
        scope_id: scope_id.to_owned(),
        created_at: now,
    };
    let rendered = render_assignment(&headers, &world, &assignment, &caller, now);
    world.role_assignments.push(assignment);
    (StatusCode::CREATED, axum::Json(rendered)).into_response()
}

async fn delete_assignment(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path((env, app_id, ra)): Path<(String, String, String)>,
) -> Reply {
    let now = sim.control.now();
    let mut world = sim.world();
    let caller = match caller(&sim, &mut world, &headers) {
        Ok(caller) => caller,
        Err(reply) => return reply,
    };
    if let Err(reply) = environment_ok(&sim, &world, &env) {
        return reply;
    }
    let Some(found) = world
        .role_assignments
        .iter()
        .find(|a| a.id == ra && a.application_id == app_id && a.environment_id == env)
        .cloned()
    else {
        return not_found();
    };
    if !world.can_assign(
        &caller,
        &found.role_id,
        &found.scope_type,
        &found.scope_id,
        &env,
        now,
    ) {
        return p1(
            StatusCode::BAD_REQUEST,
            "REQUEST_FAILED",
            &format!("Role assignment {ra} cannot be deleted as it is read only"),
            vec![],
        );
    }
    world.role_assignments.retain(|a| a.id != ra);
    empty(StatusCode::NO_CONTENT)
}

fn render_role(headers: &HeaderMap, role: &RoleDef) -> Value {
    json!({
        "_links": { "self": link(format!("{}/v1/roles/{}", base_url(headers), role.id)) },
        "id": role.id,
        "name": role.name,
        "description": format!("Built-in role {}", role.name),
        "applicableTo": role.applicable_to,
        "permissions": [],
    })
}

async fn list_roles(State(sim): State<PingOneSim>, headers: HeaderMap, paging: Paging) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = caller(&sim, &mut world, &headers) {
        return reply;
    }
    let items = world
        .roles
        .iter()
        .map(|role| render_role(&headers, role))
        .collect();
    page(
        &headers,
        "/v1/roles",
        "roles",
        items,
        paging.cursor.unwrap_or(0),
        world.config.page_size,
    )
}

async fn read_role(
    State(sim): State<PingOneSim>,
    headers: HeaderMap,
    Path(role): Path<String>,
) -> Reply {
    let mut world = sim.world();
    if let Err(reply) = caller(&sim, &mut world, &headers) {
        return reply;
    }
    match world.role(&role) {
        Some(role) => axum::Json(render_role(&headers, role)).into_response(),
        None => not_found(),
    }
}

async fn dump_state(State(sim): State<PingOneSim>) -> Reply {
    axum::Json(sim.state()).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewEnvironment {
    organization: String,
    name: String,
    #[serde(default = "default_region")]
    region: String,
}

#[derive(Deserialize)]
struct NewSecret {
    secret: String,
}

async fn set_secret_handler(
    State(sim): State<PingOneSim>,
    Path(app): Path<String>,
    body: Bytes,
) -> Reply {
    let request = match serde_json::from_slice::<NewSecret>(&body) {
        Ok(request) if !request.secret.is_empty() => request,
        Ok(_) => return (StatusCode::BAD_REQUEST, "the secret is empty").into_response(),
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    if sim.set_application_secret(&app, &request.secret) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found()
    }
}

async fn issue_secret_handler(State(sim): State<PingOneSim>, Path(app): Path<String>) -> Reply {
    match sim.issue_application_secret(&app) {
        Some(secret) => {
            (StatusCode::CREATED, axum::Json(json!({ "secret": secret }))).into_response()
        }
        None => not_found(),
    }
}

async fn add_environment_handler(State(sim): State<PingOneSim>, body: Bytes) -> Reply {
    let request = match serde_json::from_slice::<NewEnvironment>(&body) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    match sim.add_environment(&request.organization, &request.name, &request.region) {
        Ok(id) => (StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err).into_response(),
    }
}
