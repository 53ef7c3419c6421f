//! Helpers shared by the integration tests: the repository's folders and admission of the
//! project's own resources.
#![allow(dead_code)]

pub mod openapi;

use std::path::PathBuf;

use pingone_aic_operator::admission::Admission;
use pingone_aic_operator::crd;

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
