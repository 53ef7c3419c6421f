//! Helpers shared by the integration tests: the repository's folders and admission of the
//! project's own resources.
#![allow(dead_code)]

pub mod openapi;
pub mod operator_process;

use std::path::PathBuf;

use pingone_aic_operator::admission::Admission;
use pingone_aic_operator::crd;

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

/// A folder of the repository, by its path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Admission for a kind of this project (`TenantEnvironment`, ...), from the generated CRDs.
pub fn admission_for(kind: &str) -> Admission {
    let definition = crd::all()
        .into_iter()
        .find(|d| d.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for kind {kind}"));
    Admission::for_crd(&definition).expect("the generated CRDs are structural")
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

/// The mistakes in `deploy/examples/invalid/`, sorted.
pub fn invalid_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("deploy/examples/invalid"))
        .expect("deploy/examples/invalid")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The `# expected-error:` line of an invalid example: what the API server answers.
pub fn expected_error(file: &std::path::Path) -> String {
    std::fs::read_to_string(file)
        .expect("a readable example")
        .lines()
        .find_map(|line| line.strip_prefix("# expected-error:"))
        .unwrap_or_else(|| panic!("{} documents no expected error", file.display()))
        .trim()
        .to_owned()
}
