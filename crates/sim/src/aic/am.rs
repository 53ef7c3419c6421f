//! AM static configuration under `/am/json/realms/root/realms/{realm}/realm-config`: the
//! `pingOneWorkerService` realm service and its `workers`, the ESV secret store's mappings, the
//! immutability of upper tiers, and `testConnection`, which resolves placeholders against loaded
//! ESVs and the mapped secret, then calls PingOne's token endpoint over HTTP.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{any, get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::labels::{client_secret_label, credential_label, valid_labels};
use super::state::{Realm, VersionStatus, content_rev, resolve, string_value};
use super::{Ctx, Need, am_error, am_json, parse_body, unconfirmed};

type Q = Query<HashMap<String, String>>;

const REALM_CONFIG: &str = "/am/json/realms/root/realms/{realm}/realm-config";
const IMMUTABLE: &str = "This configuration is editable only in your development environment: this environment is immutable.";
const NOT_AVAILABLE: &str = "This operation is not available in PingOne Advanced Identity Cloud.";
const DEFAULT_API_URL: &str = "https://api.pingone.com/v1";
const DEFAULT_AUTH_URL: &str = "https://auth.pingone.com";
/// AM's rule for a label identifier (same source): letters, digits and dots only, and neither
/// the first nor the last character a dot.
fn is_label_identifier(identifier: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.';
    match (identifier.chars().next(), identifier.chars().last()) {
        (Some(first), Some(last)) => first != '.' && last != '.' && identifier.chars().all(allowed),
        _ => false,
    }
}

pub(super) fn routes() -> Router<Ctx> {
    let service = format!("{REALM_CONFIG}/services/pingOneWorkerService");
    Router::new()
        .route(&format!("{REALM_CONFIG}/services"), post(services_action))
        .route(
            &service,
            get(get_service)
                .put(put_service)
                .post(service_action)
                .delete(delete_service),
        )
        .route(
            &format!("{service}/workers"),
            get(query_workers).post(workers_action),
        )
        .route(
            &format!("{service}/workers/{{id}}"),
            get(get_worker)
                .put(put_worker)
                .post(worker_action)
                .delete(delete_worker),
        )
        .merge(store_routes())
        // AIC offers a realm's ESV store under its type path only: the store collection
        // (`?_action=nextdescendents`), the store types, and the root realm's and global
        // secrets answer 403 (reference §6, from a live tenant).
        .route(
            &format!("{REALM_CONFIG}/secrets/stores"),
            any(not_available),
        )
        .route(&format!("{REALM_CONFIG}/secrets/types"), any(not_available))
        .route(
            "/am/json/realms/root/realm-config/secrets/{*rest}",
            any(not_available),
        )
        .route("/am/json/global-config/secrets/{*rest}", any(not_available))
}

/// The ESV secret store of a realm and its mappings. They answer with `resource=2.0` where the
/// realm services answer with `resource=1.0` (frodo-lib's HAR captures of AIC tenants).
fn store_routes() -> Router<Ctx> {
    let store_type =
        format!("{REALM_CONFIG}/secrets/stores/GoogleSecretManagerSecretStoreProvider");
    let store = format!("{store_type}/ESV");
    let mappings = format!("{store}/mappings");
    Router::new()
        .route(&store_type, post(store_type_action))
        // AIC manages the store itself: it can be read, not removed (captures: DELETE 403).
        .route(&store, get(get_store).delete(not_available))
        .route(&mappings, get(query_mappings).post(mappings_action))
        .route(
            &format!("{mappings}/{{id}}"),
            get(get_mapping).put(put_mapping).delete(delete_mapping),
        )
        .layer(axum::middleware::map_response(store_api_version))
}

async fn store_api_version(mut response: Response) -> Response {
    if response.headers().contains_key("content-api-version") {
        response.headers_mut().insert(
            "content-api-version",
            HeaderValue::from_static("protocol=2.0,resource=2.0"),
        );
    }
    response
}

/// The realm's ESV store as AIC shows it (frodo-lib capture "Read ESV secret store").
async fn get_store(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    if with_realm(&ctx, &realm, |_| ()).is_none() {
        return not_found();
    }
    am_json(StatusCode::OK, esv_store())
}

fn esv_store() -> Value {
    let mut store = json!({
        "_id": "ESV",
        "project": "&{google.project.id}",
        "expiryDurationSeconds": 600,
        "serviceAccount": "default",
        "secretFormat": "PEM",
        "_type": {
            "_id": "GoogleSecretManagerSecretStoreProvider",
            "name": "Google Secret Manager",
            "collection": true
        }
    });
    store["_rev"] = json!(content_rev(&store));
    store
}

/// `?_action=schema` (and the other type actions AM offers) on the store type.
async fn store_type_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    if with_realm(&ctx, &realm, |_| ()).is_none() {
        return not_found();
    }
    match q.get("_action").map(String::as_str) {
        Some("schema") => am_json(
            StatusCode::OK,
            json!({"type": "object", "properties": {
                "project": {"type": "string", "title": "Project"},
                "expiryDurationSeconds": {"type": "integer", "title": "Secret Cache Expiry (seconds)"},
                "serviceAccount": {"type": "string", "title": "GCP Service Account ID"},
                "secretFormat": {"type": "string", "title": "Secret Format", "enum": ["PEM", "BASE64", "PLAIN"]},
            }}),
        ),
        Some(_) | None => am_error(StatusCode::NOT_IMPLEMENTED, "Action not supported"),
    }
}

async fn not_available() -> Response {
    am_error(StatusCode::FORBIDDEN, NOT_AVAILABLE)
}

fn not_found() -> Response {
    am_error(StatusCode::NOT_FOUND, "Not Found")
}

fn bad(message: &str) -> Response {
    am_error(StatusCode::BAD_REQUEST, message)
}

/// Authorizes and, for writes, refuses static-config changes on upper tiers.
fn guard(ctx: &Ctx, headers: &HeaderMap, write: bool) -> Result<(), Response> {
    ctx.authorize(headers, Need::Am)?;
    if write && !ctx.state().tenants[&*ctx.tenant].tier.is_mutable() {
        return Err(am_error(StatusCode::FORBIDDEN, IMMUTABLE));
    }
    Ok(())
}

fn with_realm<T>(ctx: &Ctx, realm: &str, f: impl FnOnce(&mut Realm) -> T) -> Option<T> {
    let mut state = ctx.state();
    state
        .tenants
        .get_mut(&*ctx.tenant)?
        .realms
        .get_mut(realm)
        .map(f)
}

fn service_json(enabled: bool) -> Value {
    let mut body = json!({
        "_id": "",
        "enabled": enabled,
        "_type": {"_id": "pingOneWorkerService", "name": "PingOne Worker Service", "collection": false},
    });
    body["_rev"] = json!(content_rev(&json!({"enabled": enabled})));
    body
}

fn created(body: Value, location: &str) -> Response {
    let mut response = am_json(StatusCode::CREATED, body);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

// ----- the realm service -----

async fn get_service(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| r.service) {
        Some(Some(enabled)) => am_json(StatusCode::OK, service_json(enabled)),
        _ => not_found(),
    }
}

fn service_enabled(body: &Map<String, Value>) -> Result<bool, Response> {
    if body.keys().any(|k| !k.starts_with('_') && k != "enabled") {
        return Err(invalid_attribute(&["enabled"]));
    }
    Ok(body.get("enabled").and_then(Value::as_bool).unwrap_or(true))
}

/// AM's answer to an unknown attribute, which names the valid ones.
fn invalid_attribute(valid: &[&str]) -> Response {
    am_json(
        StatusCode::BAD_REQUEST,
        json!({"code": 400, "reason": "Bad Request", "message": "Invalid attribute specified.",
               "detail": {"validAttributes": valid}}),
    )
}

async fn put_service(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, true) {
        return r;
    }
    let enabled = match parse_body(&body)
        .map_err(|m| bad(&m))
        .and_then(|b| service_enabled(&b))
    {
        Ok(e) => e,
        Err(r) => return r,
    };
    match with_realm(&ctx, &realm, |r| r.service.replace(enabled)) {
        Some(None) => created(service_json(enabled), "pingOneWorkerService"),
        Some(Some(_)) => am_json(StatusCode::OK, service_json(enabled)),
        None => not_found(),
    }
}

async fn delete_service(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, true) {
        return r;
    }
    let removed = with_realm(&ctx, &realm, |r| {
        let before = r.service.take();
        if before.is_some() {
            r.workers.clear();
        }
        before
    });
    match removed {
        Some(Some(enabled)) => am_json(StatusCode::OK, service_json(enabled)),
        _ => not_found(),
    }
}

/// `POST …/services?_action=nextdescendents`: the realm's services, each with its `_id` and
/// `_type` and without `_rev` (frodo-lib capture "Get List of Realm Services"). The simulator
/// models one realm service, so the list holds `pingOneWorkerService` when the realm has it.
async fn services_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
) -> Response {
    if q.get("_action").map(String::as_str) != Some("nextdescendents") {
        return bad("Action not supported");
    }
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| r.service) {
        Some(service) => {
            let items: Vec<Value> = service
                .map(|enabled| {
                    let mut item = service_json(enabled);
                    item["_id"] = json!("pingOneWorkerService");
                    item.as_object_mut().map(|o| o.remove("_rev"));
                    item
                })
                .into_iter()
                .collect();
            am_json(StatusCode::OK, json!({"result": items}))
        }
        None => not_found(),
    }
}

async fn service_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    match q.get("_action").map(String::as_str) {
        Some("nextdescendents") => {
            if let Err(r) = guard(&ctx, &headers, false) {
                return r;
            }
            let list = with_realm(&ctx, &realm, |r| {
                r.service.map(|_| {
                    r.workers
                        .iter()
                        .map(|(id, w)| {
                            let mut v = worker_json(id, w);
                            // nextdescendents items carry no _rev.
                            v.as_object_mut().map(|o| o.remove("_rev"));
                            v
                        })
                        .collect::<Vec<_>>()
                })
            });
            match list {
                Some(Some(items)) => am_json(StatusCode::OK, json!({"result": items})),
                _ => not_found(),
            }
        }
        Some("create") => {
            if let Err(r) = guard(&ctx, &headers, true) {
                return r;
            }
            let enabled = match parse_body(&body)
                .map_err(|m| bad(&m))
                .and_then(|b| service_enabled(&b))
            {
                Ok(e) => e,
                Err(r) => return r,
            };
            match with_realm(&ctx, &realm, |r| {
                if r.service.is_some() {
                    false
                } else {
                    r.service = Some(enabled);
                    true
                }
            }) {
                Some(true) => created(service_json(enabled), "pingOneWorkerService"),
                Some(false) => am_error(
                    StatusCode::CONFLICT,
                    "Unable to save config: Service already exists",
                ),
                None => not_found(),
            }
        }
        _ => bad("Action not supported"),
    }
}

// ----- workers -----

fn worker_attributes() -> [&'static str; 7] {
    [
        "clientId",
        "clientSecretPurpose",
        "environmentId",
        "apiUrl",
        "authUrl",
        "useCredential",
        unconfirmed::CREDENTIAL_FIELD,
    ]
}

fn worker_json(id: &str, attributes: &Map<String, Value>) -> Value {
    let mut body = Value::Object(attributes.clone());
    body["_id"] = json!(id);
    body["_rev"] = json!(content_rev(&Value::Object(attributes.clone())));
    body["_type"] = json!({"_id": "workers", "name": "PingOne Worker", "collection": true});
    body
}

/// Validates a worker body and fills defaults, as AM stores a full secondary configuration.
fn worker_from_body(body: &Map<String, Value>) -> Result<Map<String, Value>, Response> {
    let valid = worker_attributes();
    if body
        .keys()
        .any(|k| !k.starts_with('_') && !valid.contains(&k.as_str()))
    {
        return Err(invalid_attribute(&valid));
    }
    let mut worker = Map::new();
    for name in valid {
        let value = body.get(name);
        // No capture of a worker carries the credential field when it is not set (frodo-lib
        // HAR captures of `nextdescendents` and worker PUTs): AM leaves it out.
        if name == unconfirmed::CREDENTIAL_FIELD && value.is_none_or(Value::is_null) {
            continue;
        }
        let normalised = if name == "useCredential" {
            match value {
                None | Some(Value::Null) => json!(false),
                Some(Value::Bool(b)) => json!(b),
                Some(Value::Object(o)) if o.contains_key("$bool") => Value::Object(o.clone()),
                Some(_) => return Err(bad("Invalid value for attribute useCredential")),
            }
        } else {
            match value {
                None | Some(Value::Null) => json!(match name {
                    "apiUrl" => DEFAULT_API_URL,
                    "authUrl" => DEFAULT_AUTH_URL,
                    _ => "",
                }),
                Some(Value::String(s)) => json!(s),
                Some(Value::Object(o)) if o.contains_key("$string") => Value::Object(o.clone()),
                Some(_) => return Err(bad(&format!("Invalid value for attribute {name}"))),
            }
        };
        worker.insert(name.to_owned(), normalised);
    }
    for name in ["clientSecretPurpose", unconfirmed::CREDENTIAL_FIELD] {
        let identifier = string_value(worker.get(name));
        if !identifier.is_empty() && !is_label_identifier(&identifier) {
            return Err(bad(&format!(
                "Invalid value for attribute {name}: use only a-z, A-Z, 0-9 and '.', not starting or ending with '.'"
            )));
        }
    }
    Ok(worker)
}

async fn get_worker(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| {
        r.service
            .and(r.workers.get(&id).map(|w| worker_json(&id, w)))
    }) {
        Some(Some(body)) => am_json(StatusCode::OK, body),
        _ => not_found(),
    }
}

fn store_worker(ctx: &Ctx, realm: &str, id: &str, body: &[u8], create_only: bool) -> Response {
    let worker = match parse_body(body)
        .map_err(|m| bad(&m))
        .and_then(|b| worker_from_body(&b))
    {
        Ok(w) => w,
        Err(r) => return r,
    };
    let outcome = with_realm(ctx, realm, |r| {
        r.service?;
        let existed = r.workers.contains_key(id);
        if existed && create_only {
            return Some(Err(()));
        }
        r.workers.insert(id.to_owned(), worker.clone());
        Some(Ok(existed))
    });
    let body = worker_json(id, &worker);
    match outcome {
        Some(Some(Ok(true))) => am_json(StatusCode::OK, body),
        Some(Some(Ok(false))) => created(body, &super::path_segment(id)),
        Some(Some(Err(()))) => am_error(
            StatusCode::CONFLICT,
            "Unable to save config: Service already exists",
        ),
        _ => not_found(),
    }
}

async fn put_worker(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, true) {
        return r;
    }
    store_worker(&ctx, &realm, &id, &body, false)
}

async fn delete_worker(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, true) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| r.workers.remove(&id)) {
        Some(Some(worker)) => am_json(StatusCode::OK, worker_json(&id, &worker)),
        _ => not_found(),
    }
}

async fn query_workers(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    if !q.contains_key("_queryFilter") {
        return bad("Query filter is required");
    }
    match with_realm(&ctx, &realm, |r| {
        r.service.map(|_| {
            r.workers
                .iter()
                .map(|(id, w)| worker_json(id, w))
                .collect::<Vec<_>>()
        })
    }) {
        Some(Some(items)) => am_json(StatusCode::OK, query_envelope(items)),
        _ => not_found(),
    }
}

fn query_envelope(items: Vec<Value>) -> Value {
    json!({"result": items.clone(), "resultCount": items.len(), "pagedResultsCookie": null,
           "totalPagedResultsPolicy": "NONE", "totalPagedResults": -1, "remainingPagedResults": -1})
}

fn worker_schema() -> Value {
    let string = |title: &str| json!({"type": "string", "title": title});
    json!({
        "type": "object",
        "properties": {
            "clientId": string("Client ID"),
            "clientSecretPurpose": string("Client Secret Label Identifier"),
            "environmentId": string("Environment ID"),
            "apiUrl": string("PingOne API Server URL"),
            "authUrl": string("PingOne Authorization Server URL"),
            "useCredential": {"type": "boolean", "title": "Enable Connection via Credential"},
            unconfirmed::CREDENTIAL_FIELD: string("Credential Secret Label Identifier"),
        }
    })
}

async fn workers_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    match q.get("_action").map(String::as_str) {
        Some("schema") => {
            if let Err(r) = guard(&ctx, &headers, false) {
                return r;
            }
            am_json(StatusCode::OK, worker_schema())
        }
        Some("create") => {
            if let Err(r) = guard(&ctx, &headers, true) {
                return r;
            }
            let id = parse_body(&body)
                .ok()
                .and_then(|b| b.get("_id").and_then(Value::as_str).map(str::to_owned));
            match id {
                Some(id) if !id.is_empty() => store_worker(&ctx, &realm, &id, &body, true),
                _ => bad("_id is required"),
            }
        }
        _ => bad("Action not supported"),
    }
}

async fn worker_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, id)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    if q.get("_action").map(String::as_str) != Some("testConnection") {
        return bad("Action not supported");
    }
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    let plan = match connection_plan(&ctx, &realm, &id) {
        Ok(plan) => plan,
        Err(r) => return r,
    };
    test_connection(&ctx, plan).await
}

// ----- testConnection -----

struct Plan {
    client_id: String,
    environment_id: String,
    api_url: String,
    auth_url: String,
    use_credential: bool,
    /// The active version of the mapped secret: the highest-numbered enabled one.
    active: String,
}

fn token_failure(message: &str) -> Response {
    bad(&format!(
        "Failed to retrieve PingOne Worker access token. {message}"
    ))
}

/// Resolves what AM would use: placeholders against *loaded* ESVs (they change only on restart),
/// the secret through the label mapping (no restart). AM presents the latest (active) version
/// of a mapped secret; older versions that are still enabled serve only to validate what was
/// signed before a rotation (AIC docs, "Use ESVs for signing and encryption keys"), so an
/// outbound credential is the active version alone and an older enabled one never rescues it.
fn connection_plan(ctx: &Ctx, realm: &str, id: &str) -> Result<Plan, Response> {
    let state = ctx.state();
    let tenant = &state.tenants[&*ctx.tenant];
    let realm_config = tenant.realms.get(realm).ok_or_else(not_found)?;
    if realm_config.service.is_none() {
        return Err(not_found());
    }
    let worker = realm_config.workers.get(id).ok_or_else(not_found)?;
    let resolve_field = |name: &str| {
        resolve(&string_value(worker.get(name)), |placeholder| {
            tenant.loaded_esv_value(placeholder)
        })
        .map_err(|unresolved| {
            token_failure(&format!(
                "Unable to resolve configuration placeholder {unresolved}"
            ))
        })
    };
    let use_credential = match worker.get("useCredential") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(o)) => o
            .get("$bool")
            .and_then(Value::as_str)
            .map(|text| resolve(text, |p| tenant.loaded_esv_value(p)).unwrap_or_default() == "true")
            .unwrap_or(false),
        _ => false,
    };
    let label = if use_credential {
        credential_label(&string_value(worker.get(unconfirmed::CREDENTIAL_FIELD)))
    } else {
        client_secret_label(&string_value(worker.get("clientSecretPurpose")))
    };
    let secret_id = realm_config
        .mappings
        .get(&label)
        .and_then(|aliases| aliases.first())
        .ok_or_else(|| token_failure(&format!("No secret is mapped to the label {label}")))?;
    let secret = tenant
        .secrets
        .get(secret_id)
        .ok_or_else(|| token_failure(&format!("The secret mapped to {label} does not exist")))?;
    let active = secret
        .versions
        .iter()
        .filter(|v| v.status == VersionStatus::Enabled)
        .max_by_key(|v| v.number)
        .and_then(|v| super::state::decode_b64(v.value.as_str()))
        .ok_or_else(|| {
            token_failure(&format!(
                "The secret mapped to {label} has no enabled version"
            ))
        })?;
    Ok(Plan {
        client_id: resolve_field("clientId")?,
        environment_id: resolve_field("environmentId")?,
        api_url: resolve_field("apiUrl")?,
        auth_url: resolve_field("authUrl")?,
        use_credential,
        active,
    })
}

fn region_name(code: &str, api_url: &str) -> &'static str {
    let code = if code.is_empty() {
        match api_url
            .split("api.pingone.")
            .nth(1)
            .map(|rest| rest.split('/').next().unwrap_or_default())
        {
            Some("eu") => "EU",
            Some("ca") => "CA",
            Some("asia") => "AP",
            Some("com.au") => "AU",
            Some("sg") => "SG",
            _ => "NA",
        }
    } else {
        code
    };
    match code {
        "EU" => "Europe",
        "CA" => "Canada",
        "AP" | "ASIA" => "Asia Pacific",
        "AU" => "Australia",
        "SG" => "Singapore",
        _ => "North America",
    }
}

fn jwt_claims(jwt: &str) -> Value {
    jwt.split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

async fn test_connection(ctx: &Ctx, plan: Plan) -> Response {
    let http = ctx.shared.http.clone();
    let token_url = format!(
        "{}/{}/as/token",
        plan.auth_url.trim_end_matches('/'),
        plan.environment_id
    );
    let candidate = &plan.active;
    let last_failure = 'attempt: {
        let request = if plan.use_credential {
            // How AM presents a product-connection credential is not documented; it is sent as
            // a client assertion.
            http.post(&token_url).form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", candidate.as_str()),
            ])
        } else {
            http.post(&token_url)
                .basic_auth(&plan.client_id, Some(candidate.as_str()))
                .form(&[("grant_type", "client_credentials")])
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) => {
                break 'attempt format!("Unable to reach {token_url}: {}", err.without_url());
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            break 'attempt format!(
                "[Status: {} {}]-{text}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
        }
        let access_token = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("access_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let environment = http
            .get(format!(
                "{}/environments/{}",
                plan.api_url.trim_end_matches('/'),
                plan.environment_id
            ))
            .bearer_auth(&access_token)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let environment: Value = match environment {
            Some(r) => r.json().await.unwrap_or(Value::Null),
            None => Value::Null,
        };
        let mut body = json!({
            "environmentId": plan.environment_id,
            "apiServerUrl": plan.api_url,
            "authServerUrl": plan.auth_url,
            "region": region_name(environment.get("region").and_then(Value::as_str).unwrap_or_default(), &plan.api_url),
        });
        if let Some(name) = environment.get("name").and_then(Value::as_str) {
            body["environmentName"] = json!(name);
        }
        if let Some(org) = environment
            .pointer("/organization/id")
            .and_then(Value::as_str)
        {
            body["organizationId"] = json!(org);
        }
        if plan.use_credential {
            let claims = jwt_claims(candidate.as_str());
            if let Some(jti) = claims.get("jti") {
                body["credentialId"] = jti.clone();
            }
            if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
                && let Ok(ts) = jiff::Timestamp::from_second(iat)
            {
                body["createdAt"] = json!(ts.to_string());
            }
        }
        return am_json(StatusCode::OK, body);
    };
    am_json(
        StatusCode::BAD_REQUEST,
        json!({
            "code": 400, "reason": "Bad Request",
            "message": format!("Failed to retrieve PingOne Worker access token.{last_failure}"),
            "detail": {"environmentId": plan.environment_id, "apiServerUrl": plan.api_url, "authServerUrl": plan.auth_url},
        }),
    )
}

// ----- ESV secret store mappings -----

fn mapping_json(label: &str, aliases: &[String]) -> Value {
    let content = json!({"secretId": label, "aliases": aliases});
    json!({
        "_id": label,
        "_rev": content_rev(&content),
        "secretId": label,
        "aliases": aliases,
        "_type": {"_id": "mappings", "name": "Mappings", "collection": true},
    })
}

fn guard_mapping_write(ctx: &Ctx, headers: &HeaderMap) -> Result<(), Response> {
    guard(ctx, headers, unconfirmed::MAPPINGS_IMMUTABLE_ON_UPPER_TIERS)
}

async fn query_mappings(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| {
        r.mappings
            .iter()
            .map(|(l, a)| mapping_json(l, a))
            .collect::<Vec<_>>()
    }) {
        Some(items) => am_json(StatusCode::OK, query_envelope(items)),
        None => not_found(),
    }
}

async fn get_mapping(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, label)): Path<(String, String)>,
) -> Response {
    if let Err(r) = guard(&ctx, &headers, false) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| {
        r.mappings.get(&label).map(|a| mapping_json(&label, a))
    }) {
        Some(Some(body)) => am_json(StatusCode::OK, body),
        _ => not_found(),
    }
}

/// Validates a mapping body; returns (label, aliases).
fn mapping_from_body(
    body: &Map<String, Value>,
    path_label: Option<&str>,
) -> Result<(String, Vec<String>), Response> {
    let Some(label) = body.get("secretId").and_then(Value::as_str) else {
        return Err(bad("Invalid config: Secret value is missing"));
    };
    if path_label.is_some_and(|p| p != label) {
        return Err(bad("Invalid config: secretId must equal the mapping id"));
    }
    let aliases: Vec<String> = match body.get("aliases") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if aliases.len() > 1 {
        return Err(bad(
            "Invalid config: Only a single alias per mapping is allowed for this secret store type",
        ));
    }
    if aliases.is_empty() {
        return Err(bad("Invalid config: aliases must not be empty"));
    }
    Ok((label.to_owned(), aliases))
}

async fn put_mapping(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, label)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard_mapping_write(&ctx, &headers) {
        return r;
    }
    let (label, aliases) = match parse_body(&body)
        .map_err(|m| bad(&m))
        .and_then(|b| mapping_from_body(&b, Some(&label)))
    {
        Ok(m) => m,
        Err(r) => return r,
    };
    store_mapping(&ctx, &realm, label, aliases, false)
}

fn store_mapping(
    ctx: &Ctx,
    realm: &str,
    label: String,
    aliases: Vec<String>,
    create_only: bool,
) -> Response {
    let outcome = with_realm(ctx, realm, |r| {
        if !valid_labels(r).contains(&label) {
            return Err(bad(unconfirmed::UNKNOWN_LABEL_MESSAGE));
        }
        let existed = r.mappings.contains_key(&label);
        if existed && create_only {
            return Err(am_error(
                StatusCode::CONFLICT,
                "Unable to save config: Service already exists",
            ));
        }
        r.mappings.insert(label.clone(), aliases.clone());
        Ok(existed)
    });
    let body = mapping_json(&label, &aliases);
    match outcome {
        Some(Ok(true)) => am_json(StatusCode::OK, body),
        Some(Ok(false)) => created(body, &label),
        Some(Err(r)) => r,
        None => not_found(),
    }
}

async fn delete_mapping(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((realm, label)): Path<(String, String)>,
) -> Response {
    if let Err(r) = guard_mapping_write(&ctx, &headers) {
        return r;
    }
    match with_realm(&ctx, &realm, |r| r.mappings.remove(&label)) {
        Some(Some(aliases)) => am_json(StatusCode::OK, mapping_json(&label, &aliases)),
        _ => not_found(),
    }
}

async fn mappings_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(realm): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    match q.get("_action").map(String::as_str) {
        Some("schema") => {
            if let Err(r) = guard(&ctx, &headers, false) {
                return r;
            }
            match with_realm(&ctx, &realm, |r| valid_labels(r)) {
                Some(labels) => am_json(
                    StatusCode::OK,
                    json!({"type": "object", "properties": {
                        "secretId": {"type": "string", "title": "Secret Label", "enum": labels},
                        "aliases": {"type": "array", "title": "Aliases", "items": {"type": "string"}},
                    }}),
                ),
                None => not_found(),
            }
        }
        Some("create") => {
            if let Err(r) = guard_mapping_write(&ctx, &headers) {
                return r;
            }
            match parse_body(&body)
                .map_err(|m| bad(&m))
                .and_then(|b| mapping_from_body(&b, None))
            {
                Ok((label, aliases)) => store_mapping(&ctx, &realm, label, aliases, true),
                Err(r) => r,
            }
        }
        _ => bad("Action not supported"),
    }
}
