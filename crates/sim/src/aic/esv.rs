//! `/environment/variables`, `/environment/secrets`, `/environment/count` and
//! `/environment/startup`: ESVs whose changes become `loaded` only after a restart, secrets whose
//! values can never be read back, and the restart lifecycle.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::state::{Restart, Secret, SecretVersion, Variable, VersionStatus};
use super::{Ctx, Need, empty_ok, esv_error, json_response, parse_body, query, unconfirmed};

type Q = Query<HashMap<String, String>>;

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/environment/variables", get(list_variables))
        .route(
            "/environment/variables/{id}",
            get(get_variable)
                .put(put_variable)
                .delete(delete_variable)
                .post(variable_action),
        )
        .route("/environment/secrets", get(list_secrets))
        .route(
            "/environment/secrets/{id}",
            get(get_secret)
                .put(create_secret)
                .delete(delete_secret)
                .post(secret_action),
        )
        .route(
            "/environment/secrets/{id}/versions",
            get(list_versions).post(versions_action),
        )
        .route(
            "/environment/secrets/{id}/versions/{version}",
            get(get_version)
                .post(version_action)
                .delete(destroy_version),
        )
        .route("/environment/count", get(count))
        .route(
            "/environment/startup",
            get(startup_status).post(startup_action),
        )
}

const EXPRESSION_TYPES: [&str; 9] = [
    "string",
    "list",
    "array",
    "object",
    "bool",
    "int",
    "number",
    "base64encodedinlined",
    "keyvaluelist",
];
const ENCODINGS: [&str; 4] = ["generic", "pem", "base64hmac", "base64aes"];
const MAX_VALUE_BYTES: usize = 65_535;

fn bad(message: &str) -> Response {
    esv_error(StatusCode::BAD_REQUEST, message)
}

/// An ESV id: the spec's path pattern `^esv-[a-z0-9_-]{1,124}$`, and the docs' limit of 124
/// characters with the prefix ("Manage ESVs using the API"); both must hold.
fn valid_id(id: &str) -> bool {
    let Some(name) = id.strip_prefix("esv-") else {
        return false;
    };
    let name_char = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-');
    !name.is_empty() && id.chars().count() <= 124 && name.chars().all(name_char)
}

fn is_v2(headers: &HeaderMap) -> bool {
    headers
        .get("accept-api-version")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|v| v.contains("resource=2"))
}

/// `valueBase64`: required, standard base64 with padding, at most 64 KiB decoded.
fn value_base64(body: &serde_json::Map<String, Value>) -> Result<String, Response> {
    let Some(value) = body.get("valueBase64").and_then(Value::as_str) else {
        return Err(bad("valueBase64 in body is required"));
    };
    match STANDARD.decode(value) {
        Ok(bytes) if bytes.len() <= MAX_VALUE_BYTES => Ok(value.to_owned()),
        Ok(_) => Err(bad("valueBase64 in body is too long")),
        Err(_) => Err(bad("valueBase64 in body must be of type byte")),
    }
}

/// AIC checks request bodies against its OpenAPI schema before anything else (reference §
/// "What the captures corrected", 2): a value the schema does not allow is a 400 with the
/// validator's message. Neither field below is nullable in the spec.
fn schema_error(schema: &str, field: &str, reason: &str) -> Response {
    bad(&format!(
        "request body has an error: doesn't match schema #/components/schemas/{schema}: Error at \"/{field}\": {reason}"
    ))
}

fn description(
    body: &serde_json::Map<String, Value>,
    schema: &str,
) -> Result<Option<String>, Response> {
    match body.get("description") {
        None => Ok(None),
        Some(Value::Null) => Err(schema_error(schema, "description", "Value is not nullable")),
        Some(Value::String(d)) if d.chars().count() <= 1000 => Ok(Some(d.clone())),
        Some(Value::String(_)) => Err(bad("description in body should be at most 1000 chars long")),
        Some(_) => Err(bad("description in body must be of type string")),
    }
}

/// Writes are refused while a promotion lock holds this tenant.
fn refuse_if_locked(ctx: &Ctx) -> Result<(), Response> {
    if ctx.state().is_locked(&ctx.tenant) {
        let status =
            StatusCode::from_u16(unconfirmed::ESV_LOCKED_STATUS).unwrap_or(StatusCode::CONFLICT);
        return Err(esv_error(status, unconfirmed::ESV_LOCKED_MESSAGE));
    }
    Ok(())
}

fn envelope(result: Vec<Value>, total: usize) -> Value {
    json!({
        "pagedResultsCookie": null,
        "remainingPagedResults": -1,
        "result": result,
        "resultCount": total,
        "totalPagedResults": -1,
        "totalPagedResultsPolicy": "NONE",
    })
}

fn page(mut items: Vec<Value>, query: &HashMap<String, String>, v2: bool) -> Value {
    if !v2 {
        let n = items.len();
        return envelope(items, n);
    }
    let total = items.len();
    let size: usize = query
        .get("_pageSize")
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let offset: usize = query
        .get("_pagedResultsOffset")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rest: Vec<Value> = items.drain(..).skip(offset).collect();
    let remaining = rest.len().saturating_sub(size);
    let page: Vec<Value> = rest.into_iter().take(size).collect();
    json!({
        "pagedResultsCookie": if remaining > 0 { json!((offset + size).to_string()) } else { Value::Null },
        "remainingPagedResults": remaining,
        "resultCount": page.len(),
        "result": page,
        "totalPagedResults": total,
        "totalPagedResultsPolicy": "EXACT",
    })
}

// ----- variables -----

async fn list_variables(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    if let Err(message) = query::check(&q, &query::ESV_LISTING) {
        return bad(&message);
    }
    let v2 = is_v2(&headers);
    let only_pending = q.get("_onlyPending").is_some_and(|v| v == "true");
    let state = ctx.state();
    let tenant = &state.tenants[&*ctx.tenant];
    let items = tenant
        .variables
        .iter()
        .filter(|(_, v)| !only_pending || !v.loaded())
        .map(|(id, v)| v.to_json(id, !v2))
        .collect();
    json_response(StatusCode::OK, page(items, &q, v2))
}

async fn get_variable(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    let state = ctx.state();
    match state.tenants[&*ctx.tenant].variables.get(&id) {
        Some(v) => json_response(StatusCode::OK, v.to_json(&id, true)),
        None => esv_error(StatusCode::NOT_FOUND, "The variable does not exist"),
    }
}

async fn put_variable(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let account = match ctx.authorize(&headers, Need::EsvUpdate) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !valid_id(&id) {
        return bad("variableId in path should match '^esv-[a-z0-9_-]{1,124}$'");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    let value = match value_base64(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let description = match description(&body, "esvVariableCreateUpdateRequest") {
        Ok(d) => d,
        Err(r) => return r,
    };
    let expression_type = match body.get("expressionType") {
        None => None,
        Some(Value::Null) => {
            return schema_error(
                "esvVariableCreateUpdateRequest",
                "expressionType",
                "Value is not nullable",
            );
        }
        Some(Value::String(t)) if EXPRESSION_TYPES.contains(&t.as_str()) => Some(t.clone()),
        Some(_) => {
            return schema_error(
                "esvVariableCreateUpdateRequest",
                "expressionType",
                &format!(
                    "value is not one of the allowed values [{}]",
                    EXPRESSION_TYPES.join(" ")
                ),
            );
        }
    };
    let mut state = ctx.state();
    let now = state.now_text();
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant exists");
    match tenant.variables.get_mut(&id) {
        Some(existing) => {
            if let Some(t) = &expression_type
                && !existing.expression_type.is_empty()
                && *t != existing.expression_type
            {
                return bad("Changing the type of an existing variable is not permitted");
            }
            existing.value_base64 = value;
            if let Some(d) = description {
                existing.description = d;
            }
            existing.last_change_date = now;
            existing.last_changed_by = account;
            json_response(StatusCode::OK, existing.to_json(&id, true))
        }
        None => {
            let Some(expression_type) = expression_type else {
                return bad(
                    "Variable type required; expressionType cannot be empty when creating new variables",
                );
            };
            let variable = Variable {
                value_base64: value,
                description: description.unwrap_or_default(),
                expression_type,
                last_change_date: now,
                last_changed_by: account,
                loaded_value: None,
            };
            let response = json_response(StatusCode::OK, variable.to_json(&id, true));
            tenant.variables.insert(id, variable);
            response
        }
    }
}

async fn delete_variable(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let mut state = ctx.state();
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant");
    if tenant.variables.contains_key(&id) && tenant.esv_in_use(&id) {
        return bad(unconfirmed::ESV_IN_USE_MESSAGE);
    }
    match tenant.variables.remove(&id) {
        Some(v) => json_response(StatusCode::OK, v.to_json(&id, true)),
        None => esv_error(StatusCode::NOT_FOUND, "The variable does not exist"),
    }
}

async fn variable_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if q.get("_action").map(String::as_str) != Some("setDescription") {
        return bad("Unsupported action");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    let Ok(Some(description)) = description(&body, "esvSetDescriptionRequest") else {
        return bad("description in body is required");
    };
    let mut state = ctx.state();
    match state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .variables
        .get_mut(&id)
    {
        Some(v) => {
            v.description = description;
            empty_ok()
        }
        None => esv_error(StatusCode::NOT_FOUND, "The variable does not exist"),
    }
}

// ----- secrets -----

async fn list_secrets(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    if let Err(message) = query::check(&q, &query::ESV_LISTING) {
        return bad(&message);
    }
    let only_pending = q.get("_onlyPending").is_some_and(|v| v == "true");
    let state = ctx.state();
    let items = state.tenants[&*ctx.tenant]
        .secrets
        .iter()
        .filter(|(_, s)| !only_pending || s.is_pending())
        .map(|(id, s)| s.to_json(id))
        .collect();
    json_response(StatusCode::OK, page(items, &q, is_v2(&headers)))
}

async fn get_secret(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    let state = ctx.state();
    match state.tenants[&*ctx.tenant].secrets.get(&id) {
        Some(s) => json_response(StatusCode::OK, s.to_json(&id)),
        None => esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        ),
    }
}

async fn create_secret(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let account = match ctx.authorize(&headers, Need::EsvUpdate) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !valid_id(&id) {
        return bad("secretId in path should match '^esv-[a-z0-9_-]{1,124}$'");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    if ctx.state().tenants[&*ctx.tenant].secrets.contains_key(&id) {
        return bad("Failed to create secret, the secret already exists");
    }
    let value = match value_base64(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let description = match description(&body, "esvSecretCreateRequest") {
        Ok(d) => d.unwrap_or_default(),
        Err(r) => return r,
    };
    let Some(encoding) = body.get("encoding").and_then(Value::as_str) else {
        return bad("encoding in body is required");
    };
    if !ENCODINGS.contains(&encoding) {
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 606, "message": "encoding in body should be one of [generic pem base64hmac]"}),
        );
    }
    let Some(use_in_placeholders) = body.get("useInPlaceholders").and_then(Value::as_bool) else {
        return bad("useInPlaceholders in body is required");
    };
    if encoding == "pem" {
        let decoded = STANDARD.decode(&value).unwrap_or_default();
        if !String::from_utf8_lossy(&decoded)
            .trim_start()
            .starts_with("-----BEGIN")
        {
            return esv_error(StatusCode::INTERNAL_SERVER_ERROR, "Failed to create secret");
        }
    }
    let mut state = ctx.state();
    let now = state.now_text();
    let secret = Secret {
        encoding: encoding.to_owned(),
        use_in_placeholders,
        description,
        last_change_date: now.clone(),
        last_changed_by: account,
        versions: vec![SecretVersion {
            number: 1,
            status: VersionStatus::Enabled,
            create_date: now,
            value: value.to_owned(),
        }],
        loaded_version: 0,
    };
    let response = json_response(StatusCode::OK, secret.to_json(&id));
    state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .secrets
        .insert(id, secret);
    response
}

async fn delete_secret(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let mut state = ctx.state();
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant");
    if tenant.secrets.contains_key(&id) && tenant.esv_in_use(&id) {
        return bad(unconfirmed::ESV_IN_USE_MESSAGE);
    }
    match tenant.secrets.remove(&id) {
        Some(s) => json_response(StatusCode::OK, s.to_json(&id)),
        None => esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        ),
    }
}

async fn secret_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if q.get("_action").map(String::as_str) != Some("setDescription") {
        return bad("Unsupported action");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    let Ok(Some(description)) = description(&body, "esvSetDescriptionRequest") else {
        return bad("description in body is required");
    };
    let mut state = ctx.state();
    match state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .secrets
        .get_mut(&id)
    {
        Some(s) => {
            s.description = description;
            empty_ok()
        }
        None => esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        ),
    }
}

async fn list_versions(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    let state = ctx.state();
    match state.tenants[&*ctx.tenant].secrets.get(&id) {
        Some(s) => {
            let versions: Vec<Value> = s.versions.iter().rev().map(|v| s.version_json(v)).collect();
            json_response(StatusCode::OK, Value::Array(versions))
        }
        None => esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        ),
    }
}

async fn versions_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    let account = match ctx.authorize(&headers, Need::EsvUpdate) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if q.get("_action").map(String::as_str) != Some("create") {
        return bad("Unsupported action");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    let value = match value_base64(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut state = ctx.state();
    let now = state.now_text();
    let Some(secret) = state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .secrets
        .get_mut(&id)
    else {
        return esv_error(StatusCode::NOT_FOUND, "Failed to create secret version");
    };
    // Same value as the latest version: no new version, the latest is returned.
    if let Some(latest) = secret.latest()
        && latest.value.as_str() == value
    {
        return json_response(StatusCode::OK, secret.version_json(latest));
    }
    let number = secret.versions.iter().map(|v| v.number).max().unwrap_or(0) + 1;
    secret.versions.push(SecretVersion {
        number,
        status: VersionStatus::Enabled,
        create_date: now.clone(),
        value: value.to_owned(),
    });
    secret.last_change_date = now;
    secret.last_changed_by = account;
    let version = secret.versions.last().expect("just pushed");
    json_response(StatusCode::OK, secret.version_json(version))
}

fn find_version<'a>(secret: &'a Secret, version: &str) -> Option<&'a SecretVersion> {
    if version == "latest" {
        return secret.latest();
    }
    let number: u32 = version.parse().ok()?;
    secret.versions.iter().find(|v| v.number == number)
}

async fn get_version(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    let state = ctx.state();
    let found = state.tenants[&*ctx.tenant]
        .secrets
        .get(&id)
        .and_then(|s| find_version(s, &version).map(|v| s.version_json(v)));
    match found {
        Some(v) => json_response(StatusCode::OK, v),
        None => esv_error(StatusCode::NOT_FOUND, "Failed to get secret version"),
    }
}

async fn version_action(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
    Query(q): Q,
    body: Bytes,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if q.get("_action").map(String::as_str) != Some("changestatus") {
        return bad("Unsupported action");
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(m) => return bad(&m),
    };
    let status = match body.get("status").and_then(Value::as_str) {
        Some("ENABLED") => VersionStatus::Enabled,
        Some("DISABLED") => VersionStatus::Disabled,
        _ => return bad("status in body should be one of [DISABLED ENABLED]"),
    };
    let mut state = ctx.state();
    let Some(secret) = state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .secrets
        .get_mut(&id)
    else {
        return esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        );
    };
    let Some(number) = find_version(secret, &version).map(|v| v.number) else {
        return esv_error(StatusCode::NOT_FOUND, "Failed to get secret version");
    };
    let latest = secret.latest().map(|v| v.number);
    let target = secret
        .versions
        .iter_mut()
        .find(|v| v.number == number)
        .expect("found above");
    if target.status == VersionStatus::Destroyed {
        return bad("Cannot change the status of a destroyed secret version");
    }
    if status == VersionStatus::Disabled && latest == Some(number) {
        return bad("Cannot disable latest secret version");
    }
    target.status = status;
    let target = secret
        .versions
        .iter()
        .find(|v| v.number == number)
        .expect("found above");
    json_response(StatusCode::OK, secret.version_json(target))
}

async fn destroy_version(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path((id, version)): Path<(String, String)>,
) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvUpdate) {
        return r;
    }
    if let Err(r) = refuse_if_locked(&ctx) {
        return r;
    }
    let mut state = ctx.state();
    let Some(secret) = state
        .tenants
        .get_mut(&*ctx.tenant)
        .expect("tenant")
        .secrets
        .get_mut(&id)
    else {
        return esv_error(
            StatusCode::NOT_FOUND,
            "The secret does not exist or does not have a version",
        );
    };
    let Some(number) = find_version(secret, &version).map(|v| v.number) else {
        return esv_error(StatusCode::NOT_FOUND, "Failed to get secret version");
    };
    if secret.latest().map(|v| v.number) == Some(number) {
        let status = StatusCode::from_u16(unconfirmed::DESTROY_LATEST_STATUS)
            .unwrap_or(StatusCode::FORBIDDEN);
        return esv_error(status, "Cannot destroy latest secret version");
    }
    let target = secret
        .versions
        .iter_mut()
        .find(|v| v.number == number)
        .expect("found above");
    target.status = VersionStatus::Destroyed;
    // The value is gone for good.
    target.value = String::new();
    let target = secret
        .versions
        .iter()
        .find(|v| v.number == number)
        .expect("found above");
    json_response(StatusCode::OK, secret.version_json(target))
}

// ----- count and startup -----

async fn count(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    if let Err(message) = query::check(
        &q,
        &[("_onlyPending", query::Param::Boolean { allow_empty: false })],
    ) {
        return bad(&message);
    }
    let only_pending = q.get("_onlyPending").is_some_and(|v| v == "true");
    let state = ctx.state();
    let tenant = &state.tenants[&*ctx.tenant];
    let variables = tenant
        .variables
        .values()
        .filter(|v| !only_pending || !v.loaded())
        .count();
    let secrets = tenant
        .secrets
        .values()
        .filter(|s| !only_pending || s.is_pending())
        .count();
    json_response(
        StatusCode::OK,
        json!({"secrets": secrets, "variables": variables}),
    )
}

async fn startup_status(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRead) {
        return r;
    }
    let mut state = ctx.state();
    let now = state.now_ms();
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant");
    if let Some(restart) = &mut tenant.restart
        && restart.poll_failures_left > 0
    {
        restart.poll_failures_left -= 1;
        return esv_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    tenant.tick_restart(now);
    let status = if tenant.restart.is_some() {
        "restarting"
    } else {
        "ready"
    };
    json_response(StatusCode::OK, json!({"restartStatus": status}))
}

async fn startup_action(State(ctx): State<Ctx>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Err(r) = ctx.authorize(&headers, Need::EsvRestart) {
        return r;
    }
    if q.get("_action").map(String::as_str) != Some("restart") {
        return bad("Unsupported action");
    }
    let mut state = ctx.state();
    let ends_at_ms = state.after(std::time::Duration::from_millis(state.timings.restart_ms));
    let poll_failures_left = state.timings.restart_poll_failures;
    let now = state.now_ms();
    let tenant = state.tenants.get_mut(&*ctx.tenant).expect("tenant");
    tenant.tick_restart(now);
    if tenant.restart.is_none() || !unconfirmed::RESTART_WHILE_RESTARTING_IS_NOOP {
        tenant.restart = Some(Restart {
            ends_at_ms,
            poll_failures_left,
        });
    }
    json_response(StatusCode::OK, json!({"restartStatus": "restarting"}))
}
