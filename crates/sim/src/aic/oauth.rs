//! `POST /am/oauth2/access_token`: the service-account JWT-bearer grant. The assertion is
//! verified like AIC does: RS256 signature by the account's key, `iss == sub ==` a known
//! account, `aud` the tenant's token endpoint (with or without the default port), `exp` in the
//! future, and every requested scope granted to the account.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;

use super::state::TokenRecord;
use super::{Ctx, covers, json_response};
use crate::control::new_id;

// The service-account grant (AIC docs, "Authenticate to REST API with access token"; frodo-lib
// `ServiceAccount` login): a JWT bearer assertion posted to the root realm's token endpoint
// under the fixed client id `service-account`.
const TOKEN_PATH: &str = "/am/oauth2/access_token";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ID: &str = "service-account";

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn decode_part(part: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Token endpoints the tenant answers to: its origin with the port spelled out and without a
/// default port, for the configured origin and the `Host` the request came in on.
fn accepted_audiences(origin: Option<&url::Url>, host: Option<&str>) -> Vec<String> {
    let mut auds = Vec::new();
    if let Some(origin) = origin {
        let host_name = origin.host_str().unwrap_or_default();
        let port = origin.port_or_known_default().unwrap_or(443);
        auds.push(format!(
            "{}://{host_name}:{port}{TOKEN_PATH}",
            origin.scheme()
        ));
        if origin.port().is_none() {
            auds.push(format!("{}://{host_name}{TOKEN_PATH}", origin.scheme()));
        }
    }
    if let Some(host) = host {
        for scheme in ["http", "https"] {
            auds.push(format!("{scheme}://{host}{TOKEN_PATH}"));
            if !host.contains(':') {
                let port = if scheme == "http" { 80 } else { 443 };
                auds.push(format!("{scheme}://{host}:{port}{TOKEN_PATH}"));
            }
        }
        // Clients that know only the host name build the documented `https://<host>:443/…`
        // even when the simulator listens elsewhere.
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        auds.push(format!("https://{name}:443{TOKEN_PATH}"));
    }
    auds
}

pub(super) async fn token(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != GRANT_TYPE {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Grant type is not supported",
        );
    }
    if field("client_id") != CLIENT_ID {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Invalid client_id",
        );
    }
    let assertion = field("assertion");
    let parts: Vec<&str> = assertion.split('.').collect();
    let invalid_grant =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    if parts.len() != 3 {
        return invalid_grant("JWT is malformed");
    }
    let (Some(jwt_header), Some(claims)) = (decode_part(parts[0]), decode_part(parts[1])) else {
        return invalid_grant("JWT is malformed");
    };
    if jwt_header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return invalid_grant("JWT signing algorithm is not supported");
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let mut state = ctx.state();
    let now_ms = state.now_ms();
    let lifetime_ms = i64::try_from(state.timings.token_lifetime_s).unwrap_or(899) * 1000;
    let Some(tenant) = state.tenants.get(&*ctx.tenant) else {
        return invalid_grant("unknown tenant");
    };
    let Some(account) = tenant.accounts.iter().find(|a| a.id == iss) else {
        return invalid_grant("JWT issuer is not a known service account");
    };
    if sub != iss {
        return invalid_grant("JWT subject must equal its issuer");
    }
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    let public = ring::signature::RsaPublicKeyComponents {
        n: account.n.as_slice(),
        e: account.e.as_slice(),
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    if public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .is_err()
    {
        return invalid_grant("JWT signature is invalid");
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted_audiences(tenant.origin.as_ref(), host).contains(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(|aud| {
            accepted_audiences(tenant.origin.as_ref(), host)
                .iter()
                .any(|a| a == aud)
        }),
        _ => false,
    };
    if !aud_ok {
        return invalid_grant("JWT audience is not this token endpoint");
    }
    // The assertion was signed with the caller's wall clock, so `exp` is checked against the
    // wall clock; the simulator's (advanceable) clock governs only what it issues.
    let wall_ms = jiff::Timestamp::now().as_millisecond();
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp * 1000 > wall_ms => {}
        Some(_) => return invalid_grant("JWT has expired"),
        None => return invalid_grant("JWT has no exp claim"),
    }
    let requested: Vec<String> = field("scope")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let refused: Vec<&str> = requested
        .iter()
        .filter(|scope| !account.scopes.iter().any(|granted| covers(granted, scope)))
        .map(String::as_str)
        .collect();
    if !refused.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!(
                "Unsupported scope for service account: {}",
                refused.join(",")
            ),
        );
    }
    let account_id = account.id.clone();
    let token = format!("sim-{}", new_id());
    state.tokens.insert(
        token.clone(),
        TokenRecord {
            tenant: ctx.tenant.to_string(),
            account: account_id,
            scopes: requested.clone(),
            expires_at_ms: now_ms + lifetime_ms,
        },
    );
    let lifetime_s = state.timings.token_lifetime_s;
    drop(state);
    let mut response = json_response(
        StatusCode::OK,
        json!({"access_token": token, "scope": requested.join(" "), "token_type": "Bearer", "expires_in": lifetime_s}),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
