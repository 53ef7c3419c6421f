//! `TenantEnvironment`: one Advanced Identity Cloud tenant environment and the PingOne
//! environment mapped to it.
//!
//! Choices made where the design leaves room:
//! - `tier` is immutable: an AIC tenant environment's tier is fixed when Ping provisions it, so a
//!   changed tier is a mistake (usually a copy-paste of another manifest), not an intent.
//! - `tenantUrl` must be `https://`; plain `http://` is accepted only for loopback addresses,
//!   which is where the simulators of the playground and the tests listen.
//! - The AIC service account's private key is a JWK held under one key of a Secret; the PingOne
//!   admin credentials Secret uses the fixed keys `clientId`, `clientSecret` and, optionally,
//!   `environmentId` (the environment the admin worker lives in, when it is not the mapped one).
//! - `restart.debounce` defaults to one minute: long enough to batch the ESV writes of one
//!   reconcile pass across integrations, short against AIC's restart of several minutes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    ApprovalPolicy, Condition, DURATION_PATTERN, ManagementPolicy, OBJECT_NAME_PATTERN,
    SecretKeyReference, SecretReference,
};

/// Pattern of a PingOne resource id (a UUID).
pub const UUID_PATTERN: &str =
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// Shape of a base URL: scheme, host, optional port and path, nothing else.
pub const BASE_URL_PATTERN: &str = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$";

/// CEL: an `https://` URL, or `http://` on a loopback address.
const HTTPS_OR_LOOPBACK_RULE: &str = r"self.startsWith('https://') || self.matches('^http://(127\\.[0-9]+\\.[0-9]+\\.[0-9]+|localhost|\\[::1\\])(:[0-9]+)?(/.*)?$')";

/// Desired state of one AIC tenant environment and its mapped PingOne environment.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "pingone-aic.io",
    version = "v1alpha1",
    kind = "TenantEnvironment",
    namespaced,
    status = "TenantEnvironmentStatus",
    shortname = "tenv",
    category = "pingone-aic",
    doc = "An Advanced Identity Cloud tenant environment and the PingOne environment mapped to it. Its controller checks both sets of admin credentials and owns the environment's restarts.",
    printcolumn(
        name = "Tier",
        type_ = "string",
        description = "Tier of the tenant environment",
        json_path = ".spec.tier"
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
        name = "Restart",
        type_ = "string",
        description = "Restart state",
        json_path = ".status.restart.state",
        priority = "1"
    ),
    printcolumn(
        name = "Tenant",
        type_ = "string",
        description = "Tenant URL",
        json_path = ".spec.tenantUrl",
        priority = "1"
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
    validation = Rule::new("!(self.tier in ['uat', 'staging', 'production']) || has(self.promotesFrom)")
        .message("promotesFrom is required for the uat, staging and production tiers: name the lower TenantEnvironment of the promotion group that this one is promoted from")
        .field_path(".promotesFrom")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!(self.tier in ['development', 'sandbox']) || !has(self.promotesFrom)")
        .message("promotesFrom is forbidden for the development and sandbox tiers: configuration is authored there, not promoted into them")
        .field_path(".promotesFrom")
        .reason(Reason::FieldValueForbidden)
)]
#[serde(rename_all = "camelCase")]
pub struct TenantEnvironmentSpec {
    /// Base URL of the tenant environment, e.g. `https://openam-acme-euw2-dev.id.forgerock.io`
    /// (the tenant FQDN or a custom domain). Must be `https://`; plain `http://` is accepted only
    /// for loopback addresses.
    #[schemars(length(min = 1, max = 2048), regex(pattern = BASE_URL_PATTERN))]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK_RULE).message("tenantUrl must be an https:// URL (plain http:// is accepted only for loopback addresses, where the simulators listen)"))]
    pub tenant_url: String,

    /// Tier of the tenant environment. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("tier is immutable: a tenant environment's tier is fixed by Ping; create a new TenantEnvironment instead"))]
    pub tier: Tier,

    /// Name of the TenantEnvironment (same namespace) that this one is promoted from: the next
    /// lower environment of the promotion group. Required for uat, staging and production;
    /// forbidden for development and sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub promotes_from: Option<String>,

    /// AM realm that holds the PingOne Worker Service.
    #[serde(default = "default_realm")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    )]
    pub realm: String,

    /// The AIC service account the operator authenticates as.
    pub service_account: ServiceAccount,

    /// The PingOne environment mapped to this tenant environment.
    pub ping_one: PingOneEnvironment,

    /// How AIC restarts, needed for ESV changes to take effect, are carried out.
    #[serde(default)]
    pub restart: RestartSpec,

    /// `Full` (the default) restarts the environment when ESV changes wait; `Observe` only
    /// reads and reports in `status.plan` the restart `Full` would make.
    #[serde(default)]
    pub management_policy: ManagementPolicy,
}

fn default_realm() -> String {
    "alpha".to_owned()
}

/// Tier of an AIC tenant environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Where configuration is authored; AM configuration is writable.
    Development,
    /// User acceptance testing; configuration arrives by promotion only.
    Uat,
    /// Staging; configuration arrives by promotion only.
    Staging,
    /// Production; configuration arrives by promotion only.
    Production,
    /// An environment outside the promotion group; AM configuration is writable.
    Sandbox,
}

impl Tier {
    /// Position in a promotion group (development first); `None` for a sandbox, which is in
    /// no group.
    pub fn rank(self) -> Option<u8> {
        match self {
            Tier::Development => Some(0),
            Tier::Uat => Some(1),
            Tier::Staging => Some(2),
            Tier::Production => Some(3),
            Tier::Sandbox => None,
        }
    }

    /// Whether AM configuration can be written directly (development and sandbox), rather than
    /// only reaching the environment by promotion.
    pub fn is_mutable(self) -> bool {
        matches!(self, Tier::Development | Tier::Sandbox)
    }
}

/// An AIC service account and where its private key is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    /// Id of the service account (shown in the AIC admin console under Service Accounts).
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    )]
    pub id: String,
    /// Secret key holding the service account's private key as a JWK (JSON), as downloaded when
    /// the service account was created.
    pub private_key_secret_ref: SecretKeyReference,
}

/// A PingOne environment and how to reach it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingOneEnvironment {
    /// Id of the PingOne environment (a UUID).
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub environment_id: String,
    /// Region the environment lives in; selects the API and auth base URLs.
    pub region: Region,
    /// Overrides the regional API base URL (including `/v1`), e.g. for a custom domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = BASE_URL_PATTERN))]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK_RULE).message("apiUrl must be an https:// URL (plain http:// is accepted only for loopback addresses)"))]
    pub api_url: Option<String>,
    /// Overrides the regional auth base URL, e.g. for a custom domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = BASE_URL_PATTERN))]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK_RULE).message("authUrl must be an https:// URL (plain http:// is accepted only for loopback addresses)"))]
    pub auth_url: Option<String>,
    /// Secret with the credentials of the operator's own PingOne worker application, which needs
    /// the Environment Admin role on this environment. Keys: `clientId`, `clientSecret` and,
    /// optionally, `environmentId` (where that worker lives, when not this environment). Needed
    /// only when the operator manages worker applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_credentials_secret_ref: Option<SecretReference>,
    /// The PingOne licence (rate group) the environment is on. PingOne's rate limits are per
    /// licence, and the operator keeps one request budget per licence: environments naming the
    /// same licence share it. Without it, every environment behind the same regional API URL
    /// is taken to share one licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    )]
    pub license: Option<String>,
}

/// PingOne region, which fixes the top-level domain of the API and auth hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Region {
    /// North America: `pingone.com`.
    NA,
    /// Canada: `pingone.ca`.
    CA,
    /// Europe: `pingone.eu`.
    EU,
    /// Australia: `pingone.com.au`.
    AU,
    /// Singapore: `pingone.sg`.
    SG,
    /// Asia-Pacific (legacy): `pingone.asia`.
    AP,
}

impl Region {
    /// Top-level domain of the region's PingOne hosts.
    pub fn tld(self) -> &'static str {
        match self {
            Region::NA => "com",
            Region::CA => "ca",
            Region::EU => "eu",
            Region::AU => "com.au",
            Region::SG => "sg",
            Region::AP => "asia",
        }
    }

    /// The region's management API base URL, including the `/v1` version prefix.
    pub fn api_url(self) -> String {
        format!("https://api.pingone.{}/v1", self.tld())
    }

    /// The region's authorization server base URL.
    pub fn auth_url(self) -> String {
        format!("https://auth.pingone.{}", self.tld())
    }
}

/// How restarts of the tenant environment are carried out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartSpec {
    /// `Automatic` restarts once the debounce has passed. `Manual` reports `RestartPending` and
    /// waits for approval: set the annotation `pingone-aic.io/approve-restart` on this resource to
    /// a new value (e.g. the current time); each new value approves one restart.
    #[serde(default)]
    pub policy: ApprovalPolicy,
    /// How long to wait after the newest pending ESV change before restarting, so that a batch
    /// of changes costs one restart (e.g. `60s`, `5m`).
    #[serde(default = "default_debounce")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION_PATTERN))]
    pub debounce: String,
}

impl Default for RestartSpec {
    fn default() -> Self {
        Self {
            policy: ApprovalPolicy::default(),
            debounce: default_debounce(),
        }
    }
}

fn default_debounce() -> String {
    "60s".to_owned()
}

/// Observed state of a TenantEnvironment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantEnvironmentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `AICAuthenticated`, `PingOneAuthenticated` and `RestartPending`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the environment's restart cycle stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartStatus>,
    /// `managementPolicy: Observe` only: the changes a `Full` pass would make, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    /// `managementPolicy: Observe` only: how many changes `plan` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_steps: Option<i64>,
}

/// Where an environment's restart cycle stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    /// `Idle`, `Pending` (changes wait for a restart) or `Restarting`.
    pub state: RestartState,
    /// When the operator first saw the pending changes of the current batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Time>,
    /// ESVs waiting for a restart, as AIC last counted them.
    #[serde(default)]
    pub pending_esvs: i64,
    /// When the operator last saw the pending ESVs change; the debounce runs from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_seen: Option<Time>,
    /// When the current restart was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting_since: Option<Time>,
    /// When the last restart completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_time: Option<Time>,
    /// Value of the `pingone-aic.io/approve-restart` annotation last acted on (`Manual` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_approval: Option<String>,
    /// Number of restarts this operator has carried out on the environment.
    #[serde(default)]
    pub restart_count: i64,
}

/// State of an environment's restart cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RestartState {
    /// Nothing waits for a restart.
    #[default]
    Idle,
    /// ESV changes wait for a restart (debounce running, or awaiting approval).
    Pending,
    /// A restart is in progress.
    Restarting,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_documented_hosts() {
        let expected = [
            (
                Region::NA,
                "https://api.pingone.com/v1",
                "https://auth.pingone.com",
            ),
            (
                Region::CA,
                "https://api.pingone.ca/v1",
                "https://auth.pingone.ca",
            ),
            (
                Region::EU,
                "https://api.pingone.eu/v1",
                "https://auth.pingone.eu",
            ),
            (
                Region::AU,
                "https://api.pingone.com.au/v1",
                "https://auth.pingone.com.au",
            ),
            (
                Region::SG,
                "https://api.pingone.sg/v1",
                "https://auth.pingone.sg",
            ),
            (
                Region::AP,
                "https://api.pingone.asia/v1",
                "https://auth.pingone.asia",
            ),
        ];
        for (region, api, auth) in expected {
            assert_eq!(region.api_url(), api);
            assert_eq!(region.auth_url(), auth);
        }
    }

    #[test]
    fn only_development_and_sandbox_are_mutable() {
        let mutable: Vec<Tier> = [
            Tier::Development,
            Tier::Uat,
            Tier::Staging,
            Tier::Production,
            Tier::Sandbox,
        ]
        .into_iter()
        .filter(|t| t.is_mutable())
        .collect();
        assert_eq!(mutable, [Tier::Development, Tier::Sandbox]);
    }

    #[test]
    fn tiers_rank_in_promotion_order() {
        let ranks: Vec<Option<u8>> = [
            Tier::Development,
            Tier::Uat,
            Tier::Staging,
            Tier::Production,
            Tier::Sandbox,
        ]
        .into_iter()
        .map(Tier::rank)
        .collect();
        assert_eq!(ranks, [Some(0), Some(1), Some(2), Some(3), None]);
    }
}
