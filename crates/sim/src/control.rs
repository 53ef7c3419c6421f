//! The `/_sim/` control API every simulator shares: a per-route call log with counters, fault
//! injection for the next N calls matching a method and path pattern (status, body,
//! `Retry-After`, added latency) and a clock that tests can move forward.
//!
//! One [`SimControl`] is meant to serve every simulator mounted on the same listener, so a
//! test sees all calls in one log. Mount [`SimControl::router`] once and wrap the combined
//! router with [`SimControl::layer`].
//!
//! Endpoints: `GET|DELETE /_sim/calls` (log and per-route counts; clear),
//! `POST|DELETE /_sim/faults` (add one [`FaultSpec`]; clear all), `GET /_sim/clock`,
//! `POST /_sim/clock/advance` with `{"seconds": n}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One call the simulator answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The route template it matched, e.g. `/v1/environments/{env}/applications`.
    pub route: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Whether an injected fault produced the answer.
    pub faulted: bool,
    /// When, on the simulator's clock (RFC 3339).
    pub at: String,
}

/// A fault to inject into the next `times` calls matching `method` and `path`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// HTTP method to match; any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Path pattern: `/`-separated segments, `*` matches one segment, a final `**` any rest.
    pub path: String,
    /// How many matching calls get the fault.
    #[serde(default = "one")]
    pub times: u32,
    /// Status to answer instead of calling the simulator; with none, only latency is added.
    #[serde(default)]
    pub status: Option<u16>,
    /// Body to answer; a `P1Error`-shaped body for the status when absent.
    #[serde(default)]
    pub body: Option<Value>,
    /// `Retry-After` header value to send.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Delay added before answering, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Delay added after the simulator handled the call, before the answer goes out, in
    /// milliseconds: the work is done and its answer late, or lost if the client goes away.
    #[serde(default)]
    pub answer_delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// Shared state of the control API; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SimControl {
    inner: Arc<ControlState>,
}

#[derive(Debug, Default)]
struct ControlState {
    calls: Mutex<Vec<CallRecord>>,
    faults: Mutex<Vec<FaultSpec>>,
    /// Faults answered with a raw body (`content type`, `body`), for malformed responses.
    raw_faults: Mutex<Vec<(FaultSpec, String, String)>>,
    offset: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimControl {
    /// A control with an empty log, no faults and the clock at real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The simulators' time: real time plus everything [`SimControl::advance`]d.
    pub fn now(&self) -> jiff::Timestamp {
        let offset = jiff::SignedDuration::try_from(*lock(&self.inner.offset))
            .unwrap_or(jiff::SignedDuration::MAX);
        jiff::Timestamp::now()
            .checked_add(offset)
            .unwrap_or(jiff::Timestamp::MAX)
    }

    /// Moves the simulators' clock forward (token and secret expiry, young environments).
    pub fn advance(&self, by: Duration) {
        *lock(&self.inner.offset) += by;
    }

    /// Adds a fault.
    pub fn inject(&self, fault: FaultSpec) {
        lock(&self.inner.faults).push(fault);
    }

    /// Adds a fault answering `fault.status` (200 when absent) with `body` as is, under
    /// `content_type` — truncated JSON, an HTML error page — where [`FaultSpec::body`] is JSON.
    pub fn inject_raw(&self, fault: FaultSpec, content_type: &str, body: &str) {
        lock(&self.inner.raw_faults).push((fault, content_type.to_owned(), body.to_owned()));
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
        lock(&self.inner.raw_faults).clear();
    }

    /// Takes one use of the first raw-body fault matching the call.
    fn take_raw_fault(&self, method: &str, path: &str) -> Option<(StatusCode, String, String)> {
        let mut faults = lock(&self.inner.raw_faults);
        let index = faults.iter().position(|(fault, _, _)| {
            fault
                .method
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
                && path_matches(&fault.path, path)
        })?;
        let (fault, content_type, body) = faults[index].clone();
        if fault.times <= 1 {
            faults.remove(index);
        } else {
            faults[index].0.times -= 1;
        }
        let status = fault
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        Some((status, content_type, body))
    }

    /// The call log, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.inner.calls).clone()
    }

    /// How many calls had this method and matched this path pattern (same syntax as faults).
    pub fn count(&self, method: &str, pattern: &str) -> usize {
        lock(&self.inner.calls)
            .iter()
            .filter(|call| {
                call.method.eq_ignore_ascii_case(method) && path_matches(pattern, &call.path)
            })
            .count()
    }

    /// Empties the call log.
    pub fn clear_calls(&self) {
        lock(&self.inner.calls).clear();
    }

    /// Takes one use of the first fault matching the call.
    fn take_fault(&self, method: &str, path: &str) -> Option<FaultSpec> {
        let mut faults = lock(&self.inner.faults);
        let index = faults.iter().position(|fault| {
            fault
                .method
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
                && path_matches(&fault.path, path)
        })?;
        let fault = faults[index].clone();
        if faults[index].times <= 1 {
            faults.remove(index);
        } else {
            faults[index].times -= 1;
        }
        Some(fault)
    }

    /// The `/_sim/` routes (calls, faults, clock).
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/_sim/calls",
                get(calls_handler).delete(clear_calls_handler),
            )
            .route(
                "/_sim/faults",
                post(add_fault_handler).delete(clear_faults_handler),
            )
            .route("/_sim/clock", get(clock_handler))
            .route("/_sim/clock/advance", post(advance_handler))
            .with_state(self.clone())
    }

    /// Wraps a router so every call outside `/_sim/` is logged and faults are applied.
    pub fn layer(&self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            intercept,
        ))
    }
}

/// Whether `path` matches the pattern (`*` one segment, final `**` the rest).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut wanted = pattern.trim_matches('/').split('/');
    let mut actual = path.trim_matches('/').split('/');
    loop {
        match (wanted.next(), actual.next()) {
            (Some("**"), _) => return true,
            (Some(w), Some(a)) if w == "*" || w == a => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

async fn intercept(State(control): State<SimControl>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim/") {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    if let Some((status, content_type, body)) = control.take_raw_fault(&method, &path) {
        lock(&control.inner.calls).push(CallRecord {
            method,
            path,
            route,
            status: status.as_u16(),
            faulted: true,
            at: control.now().to_string(),
        });
        return (status, [(http::header::CONTENT_TYPE, content_type)], body).into_response();
    }
    let fault = control.take_fault(&method, &path);
    if let Some(latency) = fault.as_ref().and_then(|fault| fault.latency_ms) {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (response, faulted) = match &fault {
        Some(fault) if fault.status.is_some() => (fault_response(fault), true),
        _ => (next.run(request).await, false),
    };
    if let Some(delay) = fault.as_ref().and_then(|fault| fault.answer_delay_ms) {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    lock(&control.inner.calls).push(CallRecord {
        method,
        path,
        route,
        status: response.status().as_u16(),
        faulted,
        at: control.now().to_string(),
    });
    response
}

fn fault_response(fault: &FaultSpec) -> Response {
    let status = fault
        .status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = fault
        .body
        .clone()
        .unwrap_or_else(|| default_error_body(status.as_u16()));
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(retry_after) = &fault.retry_after
        && let Ok(value) = http::HeaderValue::from_str(retry_after)
    {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

/// A `P1Error`-shaped body for a status, used when a fault names no body.
pub fn default_error_body(status: u16) -> Value {
    let (code, message) = match status {
        400 => (
            "INVALID_DATA",
            "The request could not be completed. One or more validation errors were in the request.",
        ),
        401 => (
            "ACCESS_FAILED",
            "The request could not be completed. The access token is invalid.",
        ),
        403 => (
            "ACCESS_FAILED",
            "The actor attempting to perform the request is not authorized.",
        ),
        404 => (
            "NOT_FOUND",
            "The requested resource object cannot be found.",
        ),
        429 => (
            "REQUEST_LIMITED",
            "The request could not be completed. Too many requests were sent.",
        ),
        500 => (
            "UNEXPECTED_ERROR",
            "There was an unexpected error with the service. Please try again later.",
        ),
        _ => ("REQUEST_FAILED", "The request could not be completed."),
    };
    json!({ "id": new_id(), "code": code, "message": message })
}

/// A random UUID (version 4), for ids the simulators make up.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `len` random characters from `[A-Za-z0-9]`, for secrets and tokens.
pub fn random_text(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| {
            let byte = random_bytes::<1>()[0];
            // 62 * 4 = 248: reject the top 8 values so every character is equally likely.
            let mut value = byte;
            while value >= 248 {
                value = random_bytes::<1>()[0];
            }
            ALPHABET[usize::from(value) % ALPHABET.len()] as char
        })
        .collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    // SystemRandom fails only when the OS has no randomness source at all.
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system provides randomness");
    out
}

async fn calls_handler(State(control): State<SimControl>) -> Response {
    let calls = control.calls();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for call in &calls {
        let route = call.route.as_deref().unwrap_or(&call.path);
        *counts
            .entry(format!("{} {route}", call.method))
            .or_default() += 1;
    }
    axum::Json(json!({ "calls": calls, "counts": counts })).into_response()
}

async fn clear_calls_handler(State(control): State<SimControl>) -> StatusCode {
    control.clear_calls();
    StatusCode::NO_CONTENT
}

async fn add_fault_handler(State(control): State<SimControl>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<FaultSpec>(&body) {
        Ok(fault) => {
            control.inject(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

async fn clear_faults_handler(State(control): State<SimControl>) -> StatusCode {
    control.clear_faults();
    StatusCode::NO_CONTENT
}

async fn clock_handler(State(control): State<SimControl>) -> Response {
    axum::Json(json!({ "now": control.now().to_string() })).into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: u64,
}

async fn advance_handler(State(control): State<SimControl>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(advance) => {
            control.advance(Duration::from_secs(advance.seconds));
            axum::Json(json!({ "now": control.now().to_string() })).into_response()
        }
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

/// Serves a router on `127.0.0.1:0` in the background; the server stops when the returned
/// guard is dropped.
pub async fn serve_loopback(router: Router) -> std::io::Result<ServerGuard> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(ServerGuard {
        base_url: format!("http://{address}"),
        stop: Some(stop),
        task,
    })
}

/// A running in-process server; dropping it stops the server.
#[derive(Debug)]
pub struct ServerGuard {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open keep-alive connections would hold a graceful shutdown; the test is over.
        self.task.abort();
    }
}

/// Builds an empty response with a status, for handlers.
pub fn empty(status: StatusCode) -> Response {
    Response::builder()
        .status(status)
        .body(Body::empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        assert!(path_matches(
            "/v1/environments/*/applications",
            "/v1/environments/e1/applications"
        ));
        assert!(!path_matches(
            "/v1/environments/*/applications",
            "/v1/environments/e1/applications/a"
        ));
        assert!(path_matches("/v1/**", "/v1/environments/e1/applications/a"));
        assert!(!path_matches("/v1/roles", "/v1/environments"));
    }

    #[test]
    fn faults_are_used_up() {
        let control = SimControl::new();
        control.inject(FaultSpec {
            method: Some("GET".into()),
            path: "/v1/roles".into(),
            times: 2,
            status: Some(429),
            ..FaultSpec::default()
        });
        assert!(control.take_fault("POST", "/v1/roles").is_none());
        assert!(control.take_fault("get", "/v1/roles").is_some());
        assert!(control.take_fault("GET", "/v1/roles").is_some());
        assert!(control.take_fault("GET", "/v1/roles").is_none());
    }

    #[test]
    fn ids_and_secrets_look_right() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let text = random_text(64);
        assert_eq!(text.len(), 64);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(random_text(64), text);
    }
}
