//! What a client reads around its login, besides the token endpoint: AM's server information
//! (cookie name, version), read without a session, the IDM object of a service account, and the
//! environment's own description. Shapes from frodo-lib's HAR captures of AIC tenants
//! (`src/test/mock-recordings`, the `exportAmConfigEntities` Cloud tests and `ServiceAccountOps`);
//! `/environment/info` from frodo-lib's `EnvInfoInterface` (no capture holds it).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::state::content_rev;
use super::{Ctx, Need, am_error, json_response};

/// The AM build AIC tenants report (capture of November 2024).
const AM_VERSION: &str = "7.6.0-SNAPSHOT";
const AM_REVISION: &str = "7cab9c08465b06ed66fff4b458eef61d6b6825da";
const AM_BUILD_DATE: &str = "2024-November-15 10:51";

pub(super) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/am/json/serverinfo/version", get(version))
        .route("/am/json/serverinfo/{id}", get(server_info))
        .route("/openidm/managed/svcacct/{id}", get(service_account))
        .route("/environment/info", get(environment_info))
}

/// An AM answer with the `Content-API-Version` the capture shows for it.
fn am_info(body: Value, resource: &'static str) -> Response {
    let mut response = json_response(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert("content-api-version", HeaderValue::from_static(resource));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

/// `GET /am/json/serverinfo/*`: answered without a session; clients read `cookieName`.
async fn server_info(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if id != "*" {
        return am_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
        .unwrap_or_else(|| ctx.tenant.to_string());
    let mut body = json!({
        "_id": "*",
        "domains": [host],
        "protectedUserAttributes": ["telephoneNumber", "mail"],
        "cookieName": cookie_name(&ctx.tenant),
        "secureCookie": true,
        "forgotPassword": "false",
        "forgotUsername": "false",
        "kbaEnabled": "false",
        "selfRegistration": "false",
        "lang": "en-US",
        "successfulUserRegistrationDestination": "default",
        "socialImplementations": [],
        "referralsEnabled": "false",
        "zeroPageLogin": {"enabled": false, "refererWhitelist": [], "allowedWithoutReferer": true},
        "realm": "/",
        "xuiUserSessionValidationEnabled": true,
        "fileBasedConfiguration": true,
        "userIdAttributes": ["fr-idm-uuid"]
    });
    body["_rev"] = json!(content_rev(&body));
    am_info(body, "resource=2.0")
}

/// AIC names each tenant's session cookie with a tenant-specific hex string.
fn cookie_name(tenant: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, tenant.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..15]
        .to_owned()
}

/// `GET /am/json/serverinfo/version`.
async fn version() -> Response {
    let mut body = json!({
        "_id": "version",
        "version": AM_VERSION,
        "fullVersion": format!("ForgeRock Access Management {AM_VERSION} Build {AM_REVISION} ({AM_BUILD_DATE})"),
        "revision": AM_REVISION,
        "date": AM_BUILD_DATE
    });
    body["_rev"] = json!(content_rev(&body));
    am_info(body, "resource=1.0")
}

/// `GET /openidm/managed/svcacct/{id}`: the service account's IDM object, its public key as a
/// JWKS string; needs `fr:idm:*`.
async fn service_account(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = ctx.authorize(&headers, Need::Idm) {
        return response;
    }
    let state = ctx.state();
    let Some(account) = state.tenants[&*ctx.tenant]
        .accounts
        .iter()
        .find(|a| a.id == id)
    else {
        return idm_like_error(
            StatusCode::NOT_FOUND,
            &format!("Object {id} not found in managed/svcacct"),
        );
    };
    let jwks = json!({"keys": [{
        "kty": "RSA",
        "alg": "RS256",
        "e": URL_SAFE_NO_PAD.encode(&account.e),
        "n": URL_SAFE_NO_PAD.encode(&account.n),
    }]});
    let mut body = json!({
        "_id": account.id,
        "accountStatus": "Active",
        "name": account.name,
        "description": account.name,
        "scopes": account.scopes,
        "jwks": jwks.to_string(),
    });
    body["_rev"] = json!(content_rev(&body));
    idm_json(StatusCode::OK, body)
}

/// `GET /environment/info`: the tier, whether configuration is written only by promotion
/// (`immutable`) and whether a promotion lock covers the tenant. The fields are those frodo-lib
/// reads (`EnvInfoInterface`); the console's banner fields are empty, and `region` is left out
/// because the simulator has none to report. Any ESV-reading token may read it (assumed).
async fn environment_info(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if let Err(response) = ctx.authorize(&headers, Need::EsvRead) {
        return response;
    }
    let state = ctx.state();
    let tenant = &state.tenants[&*ctx.tenant];
    let body = json!({
        "immutable": !tenant.tier.is_mutable(),
        "locked": state.is_locked(&ctx.tenant),
        "tier": tenant.tier,
        "config_promotion_done": !tenant.reports.is_empty(),
        "placeholder_management": "CUSTOMER",
        "warning_message_html": "",
        "message_box_title": "",
        "message_box_html": "",
        "message_variant": "",
    });
    json_response(StatusCode::OK, body)
}

/// IDM's error shape, `{code, reason, message}`.
fn idm_like_error(status: StatusCode, message: &str) -> Response {
    idm_json(
        status,
        json!({"code": status.as_u16(), "reason": status.canonical_reason().unwrap_or(""), "message": message}),
    )
}

/// An IDM answer: its `Content-Type` has a lower-case charset (`ServiceAccountOps` captures).
fn idm_json(status: StatusCode, body: Value) -> Response {
    let mut response = json_response(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}
