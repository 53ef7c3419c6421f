//! Status conditions: set one without churn. `lastTransitionTime` moves only when the status
//! flips, and a condition that already says the same thing is left untouched, so a resync with
//! no drift patches nothing and GitOps tools see no diff.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

impl ConditionStatus {
    /// The value Kubernetes stores.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// What a condition should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition<'a> {
    /// Condition type, e.g. `Ready`.
    pub type_: &'a str,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// CamelCase reason, stable across releases (it feeds alerts and dashboards).
    pub reason: &'a str,
    /// Human-readable detail. Never a secret value.
    pub message: &'a str,
}

/// Sets a condition in `conditions`; returns whether anything changed. `now` becomes the
/// `lastTransitionTime` only when the condition is new or its status changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    desired: DesiredCondition<'_>,
    observed_generation: Option<i64>,
    now: &Time,
) -> bool {
    let status = desired.status.as_str();
    let message = stable_message(desired.message);
    let desired = DesiredCondition {
        message: &message,
        ..desired
    };
    match conditions.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(existing) => {
            let unchanged = existing.status == status
                && existing.reason == desired.reason
                && existing.message == desired.message
                && existing.observed_generation == observed_generation;
            if unchanged {
                return false;
            }
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_owned();
            existing.reason = desired.reason.to_owned();
            existing.message = desired.message.to_owned();
            existing.observed_generation = observed_generation;
            true
        }
        None => {
            conditions.push(Condition {
                type_: desired.type_.to_owned(),
                status: status.to_owned(),
                reason: desired.reason.to_owned(),
                message: desired.message.to_owned(),
                observed_generation,
                last_transition_time: now.clone(),
            });
            true
        }
    }
}

/// A message fit for a condition: per-request identifiers (correlation ids and the like) that
/// remote services put in their error texts are removed, or every retry would rewrite the
/// status and wake every watcher.
pub fn stable_message(message: &str) -> String {
    static VOLATILE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?i)\s*\(?\b(correlation|request|transaction|trace)[ _-]?id\s*[:=]\s*[A-Za-z0-9-]+\)?")
            .expect("a valid pattern")
    });
    VOLATILE.replace_all(message, "").into_owned()
}

/// The condition of the given type, if set.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of the given type is set and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Time {
        Time(text.parse().unwrap())
    }

    fn ready(status: ConditionStatus, reason: &'static str) -> DesiredCondition<'static> {
        DesiredCondition {
            type_: "Ready",
            status,
            reason,
            message: "detail",
        }
    }

    #[test]
    fn a_new_condition_is_added_with_the_current_time() {
        let mut conditions = Vec::new();
        let now = time("2026-01-01T00:00:00Z");
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Pending"),
            Some(1),
            &now
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, now);
        assert_eq!(conditions[0].observed_generation, Some(1));
    }

    #[test]
    fn the_same_condition_again_changes_nothing() {
        let mut conditions = Vec::new();
        let first = time("2026-01-01T00:00:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Ready"),
            Some(1),
            &first,
        );
        let before = conditions.clone();
        let later = time("2026-01-01T01:00:00Z");
        assert!(!set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Ready"),
            Some(1),
            &later
        ));
        assert_eq!(conditions, before);
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut conditions = Vec::new();
        let first = time("2026-01-01T00:00:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Waiting"),
            Some(1),
            &first,
        );
        let second = time("2026-01-01T00:05:00Z");
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Restarting"),
            Some(2),
            &second
        ));
        assert_eq!(conditions[0].reason, "Restarting");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, first);
        let third = time("2026-01-01T00:10:00Z");
        assert!(set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Ready"),
            Some(2),
            &third
        ));
        assert_eq!(conditions[0].last_transition_time, third);
        assert!(is_true(&conditions, "Ready"));
        assert!(!is_true(&conditions, "Other"));
    }

    #[test]
    fn volatile_identifiers_are_left_out_of_messages() {
        let first = r#"token: 401 {"error":"invalid_client","error_description":"denied (Correlation ID: 64831f44-c025)"}"#;
        let second = r#"token: 401 {"error":"invalid_client","error_description":"denied (Correlation ID: 0dc3ef11-746a)"}"#;
        assert_eq!(stable_message(first), stable_message(second));
        assert!(stable_message(first).contains("denied"));
        let mut conditions = Vec::new();
        let now = time("2026-01-01T00:00:00Z");
        let condition = |message| DesiredCondition {
            type_: "ConnectionVerified",
            status: ConditionStatus::False,
            reason: "ConnectionFailed",
            message,
        };
        assert!(set_condition(&mut conditions, condition(first), None, &now));
        assert!(!set_condition(
            &mut conditions,
            condition(second),
            None,
            &now
        ));
    }

    #[test]
    fn conditions_of_other_types_are_kept() {
        let mut conditions = Vec::new();
        let now = time("2026-01-01T00:00:00Z");
        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "Ready"),
            None,
            &now,
        );
        let other = DesiredCondition {
            type_: "ESVsSynced",
            status: ConditionStatus::Unknown,
            reason: "NotChecked",
            message: "",
        };
        set_condition(&mut conditions, other, None, &now);
        assert_eq!(conditions.len(), 2);
        assert_eq!(find(&conditions, "ESVsSynced").unwrap().status, "Unknown");
    }
}
