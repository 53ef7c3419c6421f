//! `Promotion`: one promotion of configuration from a lower to an upper TenantEnvironment.
//!
//! Like a Job, a Promotion is a record of one run: its spec is immutable and a new run is a new
//! object. That `to` really is the environment promoted from `from` (its `promotesFrom`) is a
//! cross-object rule the controller checks, reporting `InvalidTarget`; admission can only check
//! what one object holds.
//!
//! `status.promotionId` is written before any step that needs it, so an operator restarted in the
//! middle of a promotion can always find and release the lock.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, OBJECT_NAME_PATTERN};

/// Desired promotion from a lower to an upper TenantEnvironment.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "pingone-aic.io",
    version = "v1alpha1",
    kind = "Promotion",
    namespaced,
    status = "PromotionStatus",
    shortname = "promo",
    category = "pingone-aic",
    doc = "One promotion of configuration from a lower to an upper TenantEnvironment of a promotion group: lock, dry run, promote, report, unlock. Immutable, like a Job: create a new Promotion to run again.",
    printcolumn(
        name = "From",
        type_ = "string",
        description = "Lower environment",
        json_path = ".spec.from"
    ),
    printcolumn(
        name = "To",
        type_ = "string",
        description = "Upper environment",
        json_path = ".spec.to"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Phase of the promotion",
        json_path = ".status.phase"
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = Rule::new("self == oldSelf")
        .message("Promotion spec is immutable: create a new Promotion to promote again"),
    validation = Rule::new("self.from != self.to")
        .message("from and to must name different TenantEnvironments")
        .field_path(".to")
)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSpec {
    /// Name of the lower TenantEnvironment (same namespace) whose configuration is promoted.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub from: String,
    /// Name of the upper TenantEnvironment (same namespace) that receives it; its
    /// `promotesFrom` must be `from`.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub to: String,
    /// Stop after the dry run and its report; nothing is promoted.
    #[serde(default)]
    pub dry_run_only: bool,
    /// Free text recorded with the promotion in AIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// When the worker services fail their verification in the upper environment after the
    /// promotion, roll the promotion back with AIC's rollback, check the environment is back to
    /// what it was before, and end `RolledBack`. Without it the Promotion ends `Failed` and the
    /// upper environment keeps the promoted configuration.
    #[serde(default)]
    pub rollback_on_failure: bool,
}

/// Observed state of a Promotion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the promotion stands.
    #[serde(default)]
    pub phase: PromotionPhase,
    /// Id of the promotion in AIC, recorded before any step that needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_id: Option<String>,
    /// Whether this operator holds the promotion lock of the environments.
    #[serde(default)]
    pub lock_held: bool,
    /// When the promotion started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the promotion succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// What the dry run or the promotion reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<PromotionReport>,
    /// The worker services of the upper environment as they were before the promotion:
    /// what a rollback must bring back. Recorded before the promotion starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub before_promotion: Option<Vec<WorkerBaseline>>,
    /// What AIC's provisional rollback report said the rollback would change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_report: Option<PromotionReport>,
    /// Since when the connection tests of this phase have met a PingOne that could not answer
    /// (5xx, 429): they are repeated for a while before a failure is concluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pingone_unavailable_since: Option<Time>,
    /// `Ready` (the promotion succeeded), plus `Failed` with the reason when it did not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Phases of a promotion, in order; `Succeeded` and `Failed` are final.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PromotionPhase {
    /// Accepted, not started.
    #[default]
    Pending,
    /// Checking that the upper environment has every ESV the configuration needs.
    Prechecking,
    /// Taking the promotion lock.
    Locking,
    /// Running the dry run.
    DryRun,
    /// Promoting.
    Promoting,
    /// Checking the promoted worker services in the upper environment (still locked).
    Verifying,
    /// Rolling the promotion back (`rollbackOnFailure`), then checking the upper environment
    /// is back to what it was before.
    RollingBack,
    /// Releasing the promotion lock.
    Unlocking,
    /// The promotion (or the dry run, with `dryRunOnly`) succeeded.
    Succeeded,
    /// The promotion failed; the lock has been released.
    Failed,
    /// The promoted configuration failed its verification and was rolled back; the upper
    /// environment is as it was before, and the lock has been released.
    RolledBack,
}

impl PromotionPhase {
    /// Whether the promotion has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PromotionPhase::Succeeded | PromotionPhase::Failed | PromotionPhase::RolledBack
        )
    }
}

/// What the upper environment held of one integration's worker service before a promotion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerBaseline {
    /// The PingOneIntegration.
    pub integration: String,
    /// The worker service's secondary configuration.
    pub worker: String,
    /// What a rollback must find again.
    pub state: WorkerState,
}

/// A worker service's state in the upper environment, as far as a rollback has to restore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WorkerState {
    /// There was no such worker service.
    Absent,
    /// It existed; its connection was not known to work.
    Present,
    /// It existed and its connection test had passed.
    Verified,
}

/// Summary of a promotion report. Configuration item names only, never values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReport {
    /// Number of configuration items added, changed or removed.
    #[serde(default)]
    pub changed_items: i64,
    /// The first changed items, as AIC names them (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub items: Vec<String>,
    /// ESVs the configuration references that the upper environment lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_esvs: Vec<String>,
    /// Secrets embedded in the configuration (names only) that AIC will not promote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted_secrets: Vec<String>,
}
