//! Helpers shared by the integration tests: the repository's folders and admission of the
//! project's own resources.
#![allow(dead_code)]

pub mod openapi;
pub mod operator_process;

use std::path::PathBuf;

use devkube::admission::Admission;
use pingone_aic_operator::crd;

pub use testkit::{kubectl_available, skip_unless_ci};

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

pub use testkit::fake_connection_credential;

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
