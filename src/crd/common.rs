//! Types shared by the three resources: Secret references, durations, policies and condition
//! types.
//!
//! Secret references are same-namespace only, as Kubernetes itself does for Pods: a resource can
//! never make the operator read a Secret from a namespace its author cannot read.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Kubernetes condition type every resource carries; re-exported so callers need not know
/// where it lives in `k8s-openapi`.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Pattern of a Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Pattern of a Secret data key, as Kubernetes validates it.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Pattern of a duration: one or more `<number><unit>` groups with units `ms`, `s`, `m`, `h`
/// (a subset of Go's `time.ParseDuration` syntax, which CEL's `duration()` also reads).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// A Secret in the resource's own namespace whose keys follow a fixed convention documented on
/// the field that uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// One key of a Secret in the resource's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

/// When the operator may act on its own and when it waits for a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalPolicy {
    /// The operator acts as soon as the action is needed.
    #[default]
    Automatic,
    /// The operator reports that the action is needed and waits for a person to approve it.
    Manual,
}

/// Condition types shared by all resources.
pub mod condition {
    /// The resource has reached its desired state.
    pub const READY: &str = "Ready";
}
