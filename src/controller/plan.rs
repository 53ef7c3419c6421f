//! `managementPolicy: Observe`: the changes a pass would make, collected in the order it would
//! make them. Every write of a reconcile goes through [`Plan::act`], which records the change
//! and says whether to carry it out: the same decisions produce the plan and drive the writes,
//! so switching `Observe` → `Full` makes exactly the changes the plan listed.
//!
//! Decisions worth knowing:
//! - A step names what changes (an application, an ESV, a label), never a value: a secret is
//!   "pushed", never shown.
//! - Observe keeps the finalizer (a change to the Kubernetes object only, needed should the
//!   policy become `Full` with `deletionPolicy: Delete`), but deleting a resource in Observe
//!   deletes nothing remote.
//! - An Observe pass reads what a resync reads (no cached observation of a part is trusted, as
//!   at a resync, and none is recorded: they would describe writes that did not happen). The
//!   passes that events cause before the next resync reuse the plan in the status while
//!   nothing it depends on changed in Kubernetes. It runs no `testConnection` of its own
//!   except where a full pass runs it too: to adopt an ESV secret the operator has no record
//!   of (see the integration's ESVs).
//! - The plan is written only when it changes, and a step's text depends only on what was
//!   observed, so a resync of an unchanged tenant writes no status.

use std::fmt;

use crate::crd::common::ManagementPolicy;
use crate::status::ConditionStatus;

/// Reason of `Ready` while an Observe pass found changes to make.
pub const CHANGES_PLANNED: &str = "ChangesPlanned";
/// Reason of `Ready` while an Observe pass found nothing to change.
pub const NO_CHANGES: &str = "NoChangesPlanned";

/// The changes of one pass (or one environment of a pass), in order.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    observing: bool,
    steps: Vec<String>,
}

impl Plan {
    /// A plan for a pass under `policy`.
    pub(crate) fn new(policy: ManagementPolicy) -> Self {
        Plan {
            observing: policy == ManagementPolicy::Observe,
            steps: Vec::new(),
        }
    }

    /// Records `step`; whether to carry it out now (`Full`) rather than only report it
    /// (`Observe`).
    pub(crate) fn act(&mut self, step: Step<'_>) -> bool {
        self.steps.push(step.to_string());
        !self.observing
    }

    /// Whether this pass only observes.
    pub(crate) fn observing(&self) -> bool {
        self.observing
    }

    /// The changes recorded, in order.
    pub(crate) fn steps(&self) -> &[String] {
        &self.steps
    }

    /// The changes recorded, in order.
    pub(crate) fn into_steps(self) -> Vec<String> {
        self.steps
    }
}

/// One change a pass makes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step<'a> {
    CreateApplication {
        name: &'a str,
        environment_id: &'a str,
    },
    RepairApplication {
        name: &'a str,
    },
    GrantRole {
        role: &'a str,
        application: &'a str,
        environment_id: &'a str,
    },
    RotateSecret {
        application: &'a str,
    },
    DeletePreviousSecret {
        application: &'a str,
    },
    WriteVariable {
        id: &'a str,
    },
    DescribeVariable {
        id: &'a str,
    },
    CreateSecret {
        id: &'a str,
    },
    PushSecretVersion {
        id: &'a str,
    },
    Restart {
        tenant: &'a str,
        pending: &'a [String],
    },
    RestartTenant {
        tenant: &'a str,
        pending: i64,
    },
    CreateWorkerService,
    WriteWorker {
        name: &'a str,
    },
    MapLabel {
        label: &'a str,
        esv: &'a str,
    },
    Promote {
        to: &'a str,
        from: &'a str,
    },
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateApplication {
                name,
                environment_id,
            } => write!(
                f,
                "create worker application {name} in PingOne environment {environment_id}"
            ),
            Step::RepairApplication { name } => write!(
                f,
                "restore the settings of worker application {name} (enabled, client credentials)"
            ),
            Step::GrantRole {
                role,
                application,
                environment_id,
            } => write!(
                f,
                "grant role {role} on environment {environment_id} to worker application {application}"
            ),
            Step::RotateSecret { application } => {
                write!(
                    f,
                    "rotate the client secret of worker application {application}"
                )
            }
            Step::DeletePreviousSecret { application } => write!(
                f,
                "delete the previous client secret of worker application {application}"
            ),
            Step::WriteVariable { id } => write!(f, "write ESV {id}"),
            Step::DescribeVariable { id } => write!(f, "update the description of ESV {id}"),
            Step::CreateSecret { id } => write!(f, "create ESV secret {id}"),
            Step::PushSecretVersion { id } => write!(f, "push a new version of {id}"),
            Step::Restart { tenant, pending } => {
                write!(f, "restart {tenant} (pending: {})", pending.join(", "))
            }
            Step::RestartTenant { tenant, pending } => {
                write!(f, "restart {tenant} ({pending} ESV change(s) pending)")
            }
            Step::CreateWorkerService => write!(f, "create the PingOne Worker Service"),
            Step::WriteWorker { name } => {
                write!(f, "write worker configuration {name} with ESV placeholders")
            }
            Step::MapLabel { label, esv } => write!(f, "map label {label} to ESV {esv}"),
            Step::Promote { to, from } => write!(f, "promote {to} from {from}"),
        }
    }
}

/// The `Ready` condition of an Observe pass that planned `steps` changes.
pub(crate) fn observed_readiness(steps: usize) -> (ConditionStatus, &'static str, String) {
    match steps {
        0 => (
            ConditionStatus::True,
            NO_CHANGES,
            "managementPolicy is Observe: the remote state is what the spec asks for; nothing to change"
                .to_owned(),
        ),
        n => (
            ConditionStatus::False,
            CHANGES_PLANNED,
            format!(
                "managementPolicy is Observe: {n} change(s) planned (status.plan); set managementPolicy to Full to make them"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_plan_acts_and_an_observe_plan_only_records() {
        let step = Step::WriteVariable {
            id: "esv-pingone-worker-client-id",
        };
        let mut full = Plan::new(ManagementPolicy::Full);
        assert!(full.act(step.clone()));
        let mut observe = Plan::new(ManagementPolicy::Observe);
        assert!(!observe.act(step));
        assert!(observe.observing() && !full.observing());
        // Both record the same step: the plan is what a full pass does.
        assert_eq!(full.steps(), observe.steps());
        assert_eq!(
            observe.into_steps(),
            ["write ESV esv-pingone-worker-client-id"]
        );
    }

    #[test]
    fn steps_name_what_changes_in_order() {
        let pending = ["esv-a".to_owned(), "esv-b".to_owned()];
        let mut plan = Plan::new(ManagementPolicy::Observe);
        for step in [
            Step::CreateApplication {
                name: "aic-worker",
                environment_id: "env-1",
            },
            Step::GrantRole {
                role: "Identity Data Admin",
                application: "aic-worker",
                environment_id: "env-1",
            },
            Step::PushSecretVersion {
                id: "esv-pingone-worker-client-secret",
            },
            Step::Restart {
                tenant: "acme-dev",
                pending: &pending,
            },
            Step::Promote {
                to: "acme-uat",
                from: "acme-dev",
            },
        ] {
            plan.act(step);
        }
        assert_eq!(
            plan.steps(),
            [
                "create worker application aic-worker in PingOne environment env-1",
                "grant role Identity Data Admin on environment env-1 to worker application aic-worker",
                "push a new version of esv-pingone-worker-client-secret",
                "restart acme-dev (pending: esv-a, esv-b)",
                "promote acme-uat from acme-dev",
            ]
        );
    }

    #[test]
    fn readiness_says_whether_anything_is_planned() {
        let (status, reason, message) = observed_readiness(0);
        assert_eq!((status, reason), (ConditionStatus::True, NO_CHANGES));
        assert!(message.contains("nothing to change"), "{message}");
        let (status, reason, message) = observed_readiness(3);
        assert_eq!((status, reason), (ConditionStatus::False, CHANGES_PLANNED));
        assert!(message.contains("3 change(s) planned"), "{message}");
    }
}
