//! The integration's conditions, from what each environment contributed.

use super::*;

pub(super) fn set(
    status: &mut PingOneIntegrationStatus,
    generation: Option<i64>,
    type_: &str,
    value: ConditionStatus,
    reason: &str,
    message: &str,
    now: &Time,
) -> bool {
    set_condition(
        &mut status.conditions,
        DesiredCondition {
            type_,
            status: value,
            reason,
            message,
        },
        generation,
        now,
    )
}

/// A condition type, the per-environment fact it reflects, and its reasons when true / false.
pub(super) type ConditionCheck = (&'static str, fn(&Facts) -> bool, &'static str, &'static str);

pub(super) fn set_conditions(
    status: &mut PingOneIntegrationStatus,
    generation: Option<i64>,
    facts: &BTreeMap<String, Facts>,
    now: &Time,
) {
    let failing = |pick: fn(&Facts) -> bool| -> Vec<&str> {
        facts
            .iter()
            .filter(|(_, f)| !pick(f))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let notes: Vec<&str> = facts.values().filter_map(|f| f.note.as_deref()).collect();
    let detail = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    let mut all = true;
    let checks: [ConditionCheck; 5] = [
        (
            PINGONE_CLIENT_READY,
            |f| f.client_ready,
            "ClientReady",
            "CredentialsUnavailable",
        ),
        (ESVS_SYNCED, |f| f.esvs_synced, "Synced", "Pending"),
        (
            SERVICE_CONFIGURED,
            |f| f.service_configured,
            "Configured",
            "NotConfigured",
        ),
        (
            CONNECTION_VERIFIED,
            |f| f.verified,
            "Verified",
            "NotVerified",
        ),
        (
            PROMOTED,
            |f| f.promoted != Some(false),
            "Promoted",
            "AwaitingPromotion",
        ),
    ];
    let mut first_failure = None;
    for (type_, pick, ok_reason, bad_reason) in checks {
        let bad = failing(pick);
        if bad.is_empty() {
            set(
                status,
                generation,
                type_,
                ConditionStatus::True,
                ok_reason,
                "every environment",
                now,
            );
        } else {
            all = false;
            first_failure.get_or_insert(bad_reason);
            let message = format!("not yet in {}{detail}", bad.join(", "));
            set(
                status,
                generation,
                type_,
                ConditionStatus::False,
                bad_reason,
                &message,
                now,
            );
        }
    }
    // A refused credential leaves the tenant working with an earlier one, which is not what
    // the spec asks for.
    all &= !facts.values().any(|f| f.rejected);
    // A conflict is what a person must resolve, so it is what Ready reports first.
    if facts.values().any(|f| f.conflict) {
        first_failure = Some("Conflict");
    } else if facts.values().any(|f| f.rejected) {
        first_failure = Some(credential_check::REJECTED);
    }
    if all {
        set(
            status,
            generation,
            condition::READY,
            ConditionStatus::True,
            "Ready",
            "the PingOne Worker Service works in every environment",
            now,
        );
    } else {
        let message = format!("in progress{detail}");
        set(
            status,
            generation,
            condition::READY,
            ConditionStatus::False,
            first_failure.unwrap_or("Progressing"),
            &message,
            now,
        );
    }
}
