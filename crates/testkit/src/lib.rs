//! What the workspace's integration tests share: whether a tool or input a test needs is there
//! (never a silent skip under `CI=true`), logs captured per test, binaries run as processes,
//! and fake credentials shaped like PingOne's.

pub mod logs;
pub mod process;

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`; panics naming `what` after `timeout` (a hang guard,
/// not a timing claim).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`eventually`] for a test without an async runtime: polls `check` on this thread.
pub fn eventually_blocking<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Whether a test may go on without something it needs (a tool on PATH, `../shared/specs`):
/// outside CI it skips with `why`; under `CI=true` a missing input is a failure, never a skip.
pub fn skip_unless_ci(why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}: CI must provide it (.ci/run installs every tool the tests use)");
    }
    eprintln!("{why}; skipping outside CI");
}

/// Whether `tool` runs (`tool --help`-like `args`); when not, [`skip_unless_ci`] decides.
pub fn tool_available(tool: &str, args: &[&str]) -> bool {
    let found = std::process::Command::new(tool)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_unless_ci(&format!("{tool} is not on PATH"));
    }
    found
}

/// Whether kubectl is on PATH; see [`tool_available`].
pub fn kubectl_available() -> bool {
    tool_available("kubectl", &["version", "--client"])
}

/// A product-connection credential shaped like the signed JWT PingOne issues (header, payload
/// with `jti`, signature), fake: the simulators check its shape, not a signature.
pub fn fake_connection_credential(jti: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"jti":"{jti}","iat":1700000000}}"#));
    let signature = URL_SAFE_NO_PAD.encode(format!("fake-signature-of-{jti}-for-tests-only"));
    format!("{header}.{payload}.{signature}")
}
