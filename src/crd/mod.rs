//! The three custom resources of API group `pingone-aic.io`, version `v1alpha1`, and the
//! generation of their CustomResourceDefinitions.
//!
//! The Rust types are the single source of the CRDs: `pingone-aic-operator crdgen` renders them
//! and `crds/` holds the committed output, which a test keeps in sync.

pub mod common;
// Clippy reads the repeated `type_ = "string"` of several `printcolumn(...)` derive arguments
// as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
pub mod pingone_integration;
#[allow(clippy::duplicated_attributes)]
pub mod promotion;
#[allow(clippy::duplicated_attributes)]
pub mod tenant_environment;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use pingone_integration::{
    PingOneIntegration, PingOneIntegrationSpec, PingOneIntegrationStatus,
};
pub use promotion::{Promotion, PromotionSpec, PromotionStatus};
pub use tenant_environment::{TenantEnvironment, TenantEnvironmentSpec, TenantEnvironmentStatus};

/// API group of every resource.
pub const GROUP: &str = "pingone-aic.io";

/// The CustomResourceDefinitions of all resources, in the order of their file names under
/// `crds/`, so that `crdgen`'s output equals the files concatenated.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        PingOneIntegration::crd(),
        Promotion::crd(),
        TenantEnvironment::crd(),
    ]
}

/// Name of the file under `crds/` that holds a CRD: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}

/// Renders one CRD as a YAML document, starting with `---` so that documents concatenate.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("---\n{}", serde_saphyr::to_string(crd)?))
}

/// Renders all CRDs as one multi-document YAML stream, as `crdgen` prints it.
pub fn crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    all().iter().map(to_yaml).collect()
}
