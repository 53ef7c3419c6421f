//! `PingOneIntegration`: the PingOne Worker Service integration across a promotion group.
//!
//! Choices made where the design leaves room:
//! - `credentialType` defaults to `WorkerApplication`, the mode every PingOne licence supports.
//! - In `WorkerApplication` mode each environment's worker is either managed by the operator
//!   (`workerApplication` set, no `credentialsSecretRef` on that environment) or an existing one
//!   whose client id and secret the user keeps in a Secret (`credentialsSecretRef` with keys
//!   `clientId` and `clientSecret`). At least one of the two must describe every environment.
//! - In `ProductConnection` mode every environment needs a `credentialsSecretRef` whose key
//!   `credential` holds the signed JWT: no public API creates a product connection.
//! - The secondary configuration is named `pingone-worker-aic` and its label identifier
//!   `pingoneworkeraic` by default, the names Ping's own examples use.
//! - `environments` is a list keyed by `name`, so an environment cannot be listed twice and
//!   server-side apply merges entries by name.
//! - `secretRotation.overlap` must be shorter than `interval`, or two rotations would overlap.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ApprovalPolicy, Condition, DURATION_PATTERN, ManagementPolicy, OBJECT_NAME_PATTERN,
    SecretReference,
};

/// Pattern of an ESV id as AIC accepts it (at most 124 characters, enforced separately).
pub const ESV_ID_PATTERN: &str = r"^esv-[a-z0-9_-]+$";

/// Longest ESV id AIC accepts.
pub const ESV_ID_MAX_LENGTH: u32 = 124;

/// Desired state of the PingOne Worker Service integration across a promotion group.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "pingone-aic.io",
    version = "v1alpha1",
    kind = "PingOneIntegration",
    namespaced,
    status = "PingOneIntegrationStatus",
    shortname = "p1i",
    category = "pingone-aic",
    doc = "The PingOne Worker Service integration across a promotion group of TenantEnvironments: the PingOne worker credentials, the ESVs that carry them, the AM worker service and its secret mapping, verified in every environment.",
    printcolumn(
        name = "Credential",
        type_ = "string",
        description = "Credential type",
        json_path = ".spec.credentialType"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "Status of the Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        description = "Reason of the Ready condition",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        description = "Management policy: Full, or Observe (report a plan, change nothing)",
        json_path = ".spec.managementPolicy"
    ),
    printcolumn(
        name = "Plan",
        type_ = "integer",
        description = "Number of changes an Observe pass planned",
        json_path = ".status.planSteps"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self.credentialType != 'ProductConnection' || self.environments.all(e, has(e.credentialsSecretRef))")
        .message("credentialType ProductConnection needs credentialsSecretRef on every environment: no public API creates a product connection, so put its signed JWT credential in a Secret under the key 'credential'")
        .field_path(".environments")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("self.credentialType != 'ProductConnection' || !has(self.workerApplication)")
        .message("workerApplication applies only to credentialType WorkerApplication")
        .field_path(".workerApplication")
        .reason(Reason::FieldValueForbidden),
    validation = Rule::new("self.credentialType != 'WorkerApplication' || has(self.workerApplication) || self.environments.all(e, has(e.credentialsSecretRef))")
        .message("credentialType WorkerApplication needs workerApplication (the operator manages the worker applications) or credentialsSecretRef on every environment (existing workers)")
        .field_path(".workerApplication")
        .reason(Reason::FieldValueRequired)
)]
#[serde(rename_all = "camelCase")]
pub struct PingOneIntegrationSpec {
    /// How AIC authenticates to PingOne: a worker application's client id and secret
    /// (`WorkerApplication`), or a product connection's signed JWT credential
    /// (`ProductConnection`, available on the rapid channel only).
    #[serde(default)]
    pub credential_type: CredentialType,

    /// The TenantEnvironments (same namespace) this integration is set up in: the members of a
    /// promotion group and any sandboxes.
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub environments: Vec<IntegrationEnvironment>,

    /// The PingOne worker applications the operator creates or adopts, one per mapped PingOne
    /// environment. Only for `WorkerApplication` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_application: Option<WorkerApplication>,

    /// Names of the ESVs that carry the credentials into AIC.
    #[serde(default)]
    pub esv: EsvNames,

    /// The AM PingOne Worker Service secondary configuration.
    #[serde(default)]
    pub service: WorkerServiceConfig,

    /// How configuration reaches the upper environments of the promotion group.
    #[serde(default)]
    pub promotion: PromotionSettings,

    /// What happens to the remote objects (PingOne worker applications, ESVs, the worker
    /// service and its mapping) when this resource is deleted. `Retain` leaves them in place.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// `Full` (the default) makes the remote state what this spec asks for; `Observe` only
    /// reads it and reports in `status.plan` what `Full` would change, in order (e.g. to adopt
    /// a tenant configured by hand: an empty plan means it already is as the spec asks).
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

/// How AIC authenticates to PingOne.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CredentialType {
    /// A PingOne worker application's client id and secret.
    #[default]
    WorkerApplication,
    /// A product connection's signed JWT credential.
    ProductConnection,
}

/// One TenantEnvironment the integration is set up in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationEnvironment {
    /// Name of the TenantEnvironment (same namespace).
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
    /// Secret with this environment's credentials: the signed JWT under the key `credential`
    /// (`ProductConnection`), or an existing worker's `clientId` and `clientSecret`
    /// (`WorkerApplication` with a worker the operator does not manage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
}

/// The PingOne worker applications the operator manages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerApplication {
    /// Name of the worker application in each PingOne environment.
    #[serde(default = "default_app_name")]
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Names of the PingOne roles granted to the application, each scoped to its environment.
    #[serde(default = "default_roles")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub roles: Vec<String>,
    /// Adopt an existing application of the same name instead of creating a new one. Two
    /// applications of that name are a conflict the operator reports and never guesses at.
    #[serde(default)]
    pub adopt_existing: bool,
    /// Rotate the application's client secret on a schedule; the previous secret stays valid
    /// until the new one is verified in AIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation: Option<SecretRotation>,
}

fn default_app_name() -> String {
    "PingOne Advanced Identity Cloud Worker".to_owned()
}

fn default_roles() -> Vec<String> {
    vec!["Identity Data Admin".to_owned()]
}

/// Operator-managed rotation of a worker application's client secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("duration(self.overlap) < duration(self.interval)")
    .message("secretRotation.overlap must be shorter than secretRotation.interval"))]
#[serde(rename_all = "camelCase")]
pub struct SecretRotation {
    /// Time between rotations (e.g. `720h` for 30 days).
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// How long the previous secret stays valid after a rotation. The operator raises it to at
    /// least the ESV store's cache time plus verification when it is shorter.
    #[serde(default = "default_overlap")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub overlap: String,
}

fn default_overlap() -> String {
    "1h".to_owned()
}

/// Names of the ESVs that carry the credentials into AIC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.environmentId != self.clientId && self.environmentId != self.clientSecret && self.environmentId != self.connectionJwt && self.clientId != self.clientSecret && self.clientId != self.connectionJwt && self.clientSecret != self.connectionJwt")
    .message("ESV names within one integration must be distinct"))]
#[x_kube(validation = Rule::new("self.apiUrl != self.authUrl && !(self.apiUrl in [self.environmentId, self.clientId, self.clientSecret, self.connectionJwt]) && !(self.authUrl in [self.environmentId, self.clientId, self.clientSecret, self.connectionJwt])")
    .message("ESV names within one integration must be distinct"))]
#[serde(rename_all = "camelCase")]
pub struct EsvNames {
    /// Variable (string) holding the PingOne environment id.
    #[serde(default = "default_esv_environment_id")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub environment_id: String,
    /// Variable (string) holding the worker application's client id.
    #[serde(default = "default_esv_client_id")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub client_id: String,
    /// Secret holding the worker application's client secret.
    #[serde(default = "default_esv_client_secret")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub client_secret: String,
    /// Secret holding the product connection's JWT credential.
    #[serde(default = "default_esv_connection_jwt")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub connection_jwt: String,
    /// Variable (string) holding the PingOne API base URL of the environment's region, written
    /// when the worker service carries placeholder URLs (see `service.regionalUrls`).
    #[serde(default = "default_esv_api_url")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub api_url: String,
    /// Variable (string) holding the PingOne authorization server URL of the environment's
    /// region, written when the worker service carries placeholder URLs.
    #[serde(default = "default_esv_auth_url")]
    #[schemars(length(min = 5, max = ESV_ID_MAX_LENGTH), regex(pattern = ESV_ID_PATTERN))]
    pub auth_url: String,
}

impl Default for EsvNames {
    fn default() -> Self {
        Self {
            environment_id: default_esv_environment_id(),
            client_id: default_esv_client_id(),
            client_secret: default_esv_client_secret(),
            connection_jwt: default_esv_connection_jwt(),
            api_url: default_esv_api_url(),
            auth_url: default_esv_auth_url(),
        }
    }
}

fn default_esv_environment_id() -> String {
    "esv-pingone-environment-id".to_owned()
}
fn default_esv_client_id() -> String {
    "esv-pingone-worker-client-id".to_owned()
}
fn default_esv_client_secret() -> String {
    "esv-pingone-worker-client-secret".to_owned()
}
fn default_esv_connection_jwt() -> String {
    "esv-pingone-connection-jwt".to_owned()
}
fn default_esv_api_url() -> String {
    "esv-pingone-api-url".to_owned()
}
fn default_esv_auth_url() -> String {
    "esv-pingone-auth-url".to_owned()
}

/// The AM PingOne Worker Service secondary configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerServiceConfig {
    /// Name (`_id`) of the secondary configuration under `pingOneWorkerService/workers`.
    #[serde(default = "default_service_name")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')")
        .message("service.name may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit"))]
    pub name: String,
    /// Secret label identifier: the client secret (or, for a product connection, the credential)
    /// reaches AM under the label `am.services.pingone.worker.<identifier>.clientsecret`
    /// (`.credential`), mapped to the ESV secret.
    #[serde(default = "default_secret_label_identifier")]
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9.]+$')")
        .message("service.secretLabelIdentifier may contain only letters, digits and '.'"))]
    #[x_kube(validation = Rule::new("!self.startsWith('.') && !self.endsWith('.')")
        .message("service.secretLabelIdentifier must not start or end with '.'"))]
    pub secret_label_identifier: String,
    /// Where the worker service's `apiUrl` and `authUrl` come from. `Auto` (the default):
    /// literal URLs when every environment of the promotion group reaches PingOne at the same
    /// URLs, ESV placeholders when they differ (PingOne environments in different regions).
    /// `Literal` refuses a group whose URLs differ; `Placeholders` always uses them.
    #[serde(default)]
    pub regional_urls: RegionalUrls,
}

impl Default for WorkerServiceConfig {
    fn default() -> Self {
        Self {
            name: default_service_name(),
            secret_label_identifier: default_secret_label_identifier(),
            regional_urls: RegionalUrls::default(),
        }
    }
}

/// Where the worker service's PingOne URLs come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RegionalUrls {
    /// Placeholders exactly when the promotion group's PingOne URLs differ.
    #[default]
    Auto,
    /// The development environment's URLs, written as they are; refused when the group's
    /// PingOne URLs differ, as a promotion would carry the wrong region upwards.
    Literal,
    /// ESV placeholders (`esv.apiUrl`, `esv.authUrl`), each environment holding its own URLs.
    Placeholders,
}

fn default_service_name() -> String {
    "pingone-worker-aic".to_owned()
}
fn default_secret_label_identifier() -> String {
    "pingoneworkeraic".to_owned()
}

/// How configuration reaches the upper environments of the promotion group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSettings {
    /// `Manual` (the default) reports `AwaitingPromotion` and says which Promotion to apply;
    /// `Automatic` creates the Promotions itself, one environment at a time, in order.
    #[serde(default = "default_promotion_policy")]
    pub policy: ApprovalPolicy,
    /// The Promotions this integration creates roll back when the worker service fails its
    /// verification in the upper environment (see Promotion `rollbackOnFailure`).
    #[serde(default)]
    pub rollback_on_failure: bool,
}

// Written out rather than derived: a derived default would take `ApprovalPolicy`'s
// (`Automatic`) when `promotion` is left out, not the documented `Manual`.
impl Default for PromotionSettings {
    fn default() -> Self {
        Self {
            policy: default_promotion_policy(),
            rollback_on_failure: false,
        }
    }
}

fn default_promotion_policy() -> ApprovalPolicy {
    ApprovalPolicy::Manual
}

/// What happens to remote objects when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave every remote object in place.
    #[default]
    Retain,
    /// Delete what the operator created: worker applications it created (not adopted ones), the
    /// ESVs, the worker service configuration and its mapping in mutable environments.
    Delete,
}

/// Observed state of a PingOneIntegration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingOneIntegrationStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `PingOneClientReady`, `ESVsSynced`, `ServiceConfigured`, `ConnectionVerified`
    /// and `Promoted`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Progress in each environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub environments: Vec<EnvironmentStatus>,
    /// `managementPolicy: Observe` only: the changes a `Full` pass would make, per environment
    /// in the order it would make them. Never holds a secret value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["environment"]))]
    pub plan: Vec<EnvironmentPlan>,
    /// `managementPolicy: Observe` only: how many changes `plan` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_steps: Option<i64>,
}

/// The changes a `Full` pass would make in one environment, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentPlan {
    /// Name of the TenantEnvironment.
    pub environment: String,
    /// One line per change, e.g. `write ESV esv-pingone-worker-client-id`.
    pub steps: Vec<String>,
}

/// Progress of the integration in one environment. Never holds a secret value: pushed values
/// are recorded as a hash only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// Name of the TenantEnvironment.
    pub name: String,
    /// Id of the PingOne worker application (managed workers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_app_id: Option<String>,
    /// Whether the operator created the worker application (as opposed to adopting it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_app_created: Option<bool>,
    /// Client id AIC uses to reach PingOne.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Version of the ESV secret last pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    /// SHA-256 of the values last pushed to the ESVs, to detect changes without storing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_hash: Option<String>,
    /// SHA-256 of the PingOne URLs last written to the URL ESVs; absent while the worker
    /// service carries literal URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls_hash: Option<String>,
    /// The worker service configuration and placeholders are in place (by write or promotion).
    #[serde(default)]
    pub service_configured: bool,
    /// The secret label is mapped to the ESV secret in the realm's ESV store.
    #[serde(default)]
    pub label_mapped: bool,
    /// The last `testConnection` from AIC to PingOne succeeded.
    #[serde(default)]
    pub connection_verified: bool,
    /// When the connection was last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_time: Option<Time>,
    /// Version of the ESV secret that last passed `testConnection` while it was the active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_version: Option<String>,
    /// SHA-256 of the values that last passed `testConnection`: what a failed new version is
    /// rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_hash: Option<String>,
    /// The configuration reached this environment by promotion (upper environments only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<bool>,
    /// Operator-managed secret rotation (`workerApplication.secretRotation`) in this
    /// environment. Times only, never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation: Option<SecretRotationStatus>,
}

/// Where operator-managed rotation of a worker application's secret stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationStatus {
    /// When the secret in use was rotated (or first taken into use); the next rotation is due
    /// `interval` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// The rotation under way, absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RotationPhase>,
    /// When the rotation under way started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_time: Option<Time>,
    /// Until when PingOne keeps accepting the previous secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_time: Option<Time>,
    /// Rotations completed.
    #[serde(default)]
    pub rotations: i64,
}

/// The steps of a rotation, recorded before each is taken so a restarted operator resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RotationPhase {
    /// Decided and recorded; PingOne may or may not have rotated yet.
    Rotating,
    /// PingOne holds the new secret and keeps the previous one valid; the new one is pushed to
    /// the ESV and waits for a restart and `testConnection`.
    Verifying,
}
