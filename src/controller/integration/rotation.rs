//! Operator-managed rotation of a worker's client secret: rotate in PingOne with an overlap,
//! push the new version, and delete the previous secret only once the new one is verified.
//!
//! A rotation is due when the secret in use is older than `secretRotation.interval`, or when
//! the integration's `pingone-aic.io/rotate-before` annotation names a time that has come and
//! the secret was issued before it: `kubectl annotate p1i NAME pingone-aic.io/rotate-before=…`
//! with the current time rotates every worker secret of the integration at once (after a leak,
//! say), a future time schedules that one rotation. An annotation, not a spec field, so that
//! asking for it changes no generation and leaves every other observation the integration
//! remembers valid. It works without `secretRotation` too (there is then no periodic
//! rotation). A secret the operator has no record of counts as issued before the requested
//! time, unless the operator created its application in the same pass.

use super::*;

/// How long PingOne must keep accepting the previous secret after a rotation at the least: AIC
/// caches ESV secrets for up to `expiryDurationSeconds` (600 s by default) after a new version,
/// and the new version still has to be verified with `testConnection` (after a restart, for a
/// secret created usable in placeholders).
pub const MIN_ROTATION_OVERLAP: Duration = Duration::from_secs(600 + 20 * 60);

/// The overlap a rotation grants the previous secret: the spec's, raised to the minimum above
/// and capped at the 30 days PingOne allows.
pub fn rotation_overlap(spec_overlap: Duration) -> Duration {
    spec_overlap
        .max(MIN_ROTATION_OVERLAP)
        .min(Duration::from_secs(30 * 24 * 3600))
}

/// The secret a rotation pass works on.
pub(super) struct RotationTarget<'a> {
    pub(super) environment_id: &'a str,
    pub(super) app_id: &'a str,
    /// PingOne's current secret of the application.
    pub(super) current: &'a SecretString,
    /// Whether PingOne keeps a previous secret too.
    pub(super) pingone_has_previous: bool,
    /// Whether the application (and so its secret) was created in this very pass.
    pub(super) issued_now: bool,
}

/// What a pass of the rotation state machine decided.
pub(super) struct RotationOutcome {
    /// The secret after a rotation made in this pass.
    pub(super) rotated: Option<pingone::ApplicationSecret>,
    /// When to look again.
    pub(super) requeue: Duration,
}

/// Asks for every worker secret issued before the time it names (RFC 3339) to be rotated.
pub const ROTATE_BEFORE_ANNOTATION: &str = "pingone-aic.io/rotate-before";

/// The time [`ROTATE_BEFORE_ANNOTATION`] names, if the integration carries it.
pub(super) fn requested_rotation(
    integration: &PingOneIntegration,
) -> Result<Option<jiff::Timestamp>, ReconcileError> {
    let Some(value) = integration
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATE_BEFORE_ANNOTATION))
    else {
        return Ok(None);
    };
    value.trim().parse::<jiff::Timestamp>().map(Some).map_err(|err| {
        ReconcileError::invalid(
            "InvalidRotateBefore",
            format!(
                "annotation {ROTATE_BEFORE_ANNOTATION}: {value:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z ({err})"
            ),
        )
    })
}

/// What the rotation of one environment sees now, besides its own record.
pub(super) struct RotationFacts {
    pub(super) now: jiff::Timestamp,
    /// How often to rotate (the spec's, at least a second; without `secretRotation`, never).
    pub(super) interval: Duration,
    /// Secrets issued before this time are to be rotated once it has come (the annotation).
    pub(super) rotate_before: Option<jiff::Timestamp>,
    /// Whether the application (and so its secret) was created in this very pass.
    pub(super) issued_now: bool,
    /// How long the previous secret stays valid (already raised to the minimum).
    pub(super) overlap: Duration,
    /// Whether `testConnection` passed with the credential now active.
    pub(super) connection_verified: bool,
    /// Whether PingOne shows a previous secret (it does once it has rotated).
    pub(super) pingone_has_previous: bool,
    /// Whether what passed `testConnection` is PingOne's current secret (not the previous
    /// one, pushed again after the new one failed).
    pub(super) new_secret_passed: bool,
    /// How soon to look again while something is under way.
    pub(super) soon: Duration,
}

/// The next step of a rotation.
#[derive(Debug, PartialEq)]
pub(super) enum RotationStep {
    /// Nothing to do in PingOne before `requeue`.
    Wait { requeue: Duration },
    /// A rotation starts: the intent (phase `Rotating`, the previous secret's expiry) is
    /// recorded first, then PingOne rotates.
    Start,
    /// Rotate in PingOne: the intent is recorded and PingOne shows no previous secret yet.
    Rotate,
    /// PingOne has rotated (before a restart lost its answer); go on to verification.
    Rotated,
    /// The new secret is verified in AIC: delete the previous one in PingOne.
    DeletePrevious,
}

/// Decides the rotation's next step and keeps its record's bookkeeping (the first sighting, the
/// recorded intent). No I/O: what it decides follows from its arguments alone.
pub(super) fn decide_rotation(
    state: &mut SecretRotationStatus,
    facts: &RotationFacts,
) -> RotationStep {
    let now = facts.now;
    match state.phase {
        None => {
            // The status keeps times to the second: a secret issued in the requested second
            // reads back as issued at its start, so the request is taken to the second as
            // well, or the rotation it caused would count as issued before it.
            let requested = facts.rotate_before.map(to_the_second).filter(|t| *t <= now);
            let last = match state.last_rotation_time.clone() {
                Some(last) => last.0,
                None => {
                    // The secret in use counts as fresh from the moment the operator first
                    // sees it, unless a requested rotation covers it: when a secret the
                    // operator has no record of was issued is unknown, so it counts as
                    // issued before the requested time.
                    state.last_rotation_time = Some(Time(now));
                    if requested.is_none() || facts.issued_now {
                        return RotationStep::Wait {
                            requeue: next_look(facts, facts.interval),
                        };
                    }
                    jiff::Timestamp::MIN
                }
            };
            let age = elapsed(&last, &now);
            let requested_covers = requested.is_some_and(|t| last < t);
            if age < facts.interval && !requested_covers {
                return RotationStep::Wait {
                    requeue: next_look(facts, facts.interval.saturating_sub(age)),
                };
            }
            // A broken setup is never made worse by a rotation.
            if !facts.connection_verified {
                return RotationStep::Wait {
                    requeue: facts.soon,
                };
            }
            state.phase = Some(RotationPhase::Rotating);
            state.started_time = Some(Time(now));
            state.previous_expires_time = Some(Time(add(now, facts.overlap)));
            RotationStep::Start
        }
        Some(RotationPhase::Rotating) if facts.pingone_has_previous => RotationStep::Rotated,
        Some(RotationPhase::Rotating) => RotationStep::Rotate,
        Some(RotationPhase::Verifying) if facts.connection_verified && facts.new_secret_passed => {
            RotationStep::DeletePrevious
        }
        Some(RotationPhase::Verifying) => RotationStep::Wait {
            requeue: facts.soon,
        },
    }
}

/// `at` without its fraction of a second.
fn to_the_second(at: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at)
}

/// How long to wait before looking again when `until_due` is left of the interval: sooner when
/// a requested rotation comes first.
fn next_look(facts: &RotationFacts, until_due: Duration) -> Duration {
    match facts.rotate_before {
        Some(at) if at > facts.now => until_due.min(elapsed(&facts.now, &at)),
        _ => until_due,
    }
}

/// Operator-managed rotation of a managed worker's secret: record → rotate in PingOne with the
/// previous secret kept valid → (the caller pushes the new ESV version; `testConnection`
/// verifies it and disables the superseded versions) → drop the previous secret in PingOne.
/// Each step is recorded in the status before it is taken, so a restarted operator resumes
/// instead of rotating twice. [`decide_rotation`] decides; this carries the step out.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rotate(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    session: &impl PingOneApi,
    target: RotationTarget<'_>,
    spec: Option<&SecretRotation>,
    pass: &mut EnvironmentPass<'_>,
    rotate_before: Option<jiff::Timestamp>,
) -> Result<RotationOutcome, ReconcileError> {
    let RotationTarget {
        environment_id,
        app_id,
        current,
        pingone_has_previous,
        issued_now,
    } = target;
    let invalid = |field: &str, e: crate::crd::common::InvalidDuration| {
        ReconcileError::invalid(
            "InvalidDuration",
            format!("spec.workerApplication.secretRotation.{field}: {e}"),
        )
    };
    // Without `secretRotation` only a requested rotation happens, with the default overlap.
    let (interval, overlap) = match spec {
        Some(spec) => (
            parse_duration(&spec.interval)
                .map_err(|e| invalid("interval", e))?
                .max(Duration::from_secs(1)),
            parse_duration(&spec.overlap).map_err(|e| invalid("overlap", e))?,
        ),
        None => (Duration::MAX, Duration::ZERO),
    };
    let env = pass.entry();
    let env_name = env.name.clone();
    let facts = RotationFacts {
        now: jiff::Timestamp::now(),
        interval,
        rotate_before,
        issued_now,
        overlap: rotation_overlap(overlap),
        connection_verified: env.connection_verified,
        pingone_has_previous,
        new_secret_passed: env.verified_hash.as_deref()
            == Some(values_digest(environment_id, Some(app_id), current).as_str()),
        soon: ctx.config.wait,
    };
    let mut state = env.secret_rotation.clone().unwrap_or_default();
    let mut outcome = RotationOutcome {
        rotated: None,
        requeue: facts.soon,
    };
    match decide_rotation(&mut state, &facts) {
        RotationStep::Wait { requeue } => outcome.requeue = requeue,
        step @ (RotationStep::Start | RotationStep::Rotate | RotationStep::Rotated) => {
            if step != RotationStep::Rotated
                && !pass.plan.act(Step::RotateSecret {
                    application: app_id,
                })
            {
                return Ok(outcome);
            }
            if step == RotationStep::Start {
                pass.entry_mut().secret_rotation = Some(state.clone());
                checkpoint(api, integration, pass.status, Checkpoint::RotationStarting).await?;
            }
            if step != RotationStep::Rotated {
                let rotated = pingone_rotate(
                    integration,
                    ctx,
                    session,
                    environment_id,
                    app_id,
                    &env_name,
                    &state,
                )
                .await?;
                outcome.rotated = Some(rotated);
            }
            state.phase = Some(RotationPhase::Verifying);
        }
        RotationStep::DeletePrevious => {
            if !pass.plan.act(Step::DeletePreviousSecret {
                application: app_id,
            }) {
                return Ok(outcome);
            }
            checkpoint(api, integration, pass.status, Checkpoint::RotationVerified).await?;
            session
                .delete_previous_secret(environment_id, app_id)
                .await?;
            state.phase = None;
            state.last_rotation_time = state.started_time.take().or(Some(Time(facts.now)));
            state.previous_expires_time = None;
            state.rotations += 1;
            outcome.requeue = interval;
            ctx.publish_in(
                integration,
                &env_name,
                None,
                EventType::Normal,
                "Rotate",
                "PreviousSecretDeleted",
                format!(
                    "{env_name}: the new worker secret is verified in AIC; deleted the previous one in PingOne"
                ),
            )
            .await;
        }
    }
    pass.entry_mut().secret_rotation = Some(state);
    // Rotations months away (or never, without `secretRotation`) need no timer: every resync
    // decides again.
    outcome.requeue = outcome.requeue.min(LONGEST_WAIT);
    Ok(outcome)
}

/// The longest a rotation asks to be looked at again after.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn pingone_rotate(
    integration: &PingOneIntegration,
    ctx: &Context,
    session: &impl PingOneApi,
    environment_id: &str,
    app_id: &str,
    env_name: &str,
    state: &SecretRotationStatus,
) -> Result<pingone::ApplicationSecret, ReconcileError> {
    let expires = state
        .previous_expires_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or_else(|| add(jiff::Timestamp::now(), MIN_ROTATION_OVERLAP));
    let secret = session
        .rotate_application_secret(environment_id, app_id, Some(expires))
        .await?;
    ctx.publish_in(
        integration,
        env_name,
        None,
        EventType::Normal,
        "Rotate",
        "SecretRotated",
        format!(
            "{env_name}: rotated the worker secret in PingOne; the previous one stays valid until {expires}"
        ),
    )
    .await;
    Ok(secret)
}

pub(super) fn elapsed(since: &jiff::Timestamp, now: &jiff::Timestamp) -> Duration {
    Duration::try_from(now.duration_since(*since)).unwrap_or(Duration::ZERO)
}

pub(super) fn add(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// An hourly rotation, seen at `now` with the connection verified and nothing rotated yet.
    fn facts(now: i64) -> RotationFacts {
        RotationFacts {
            now: at(now),
            interval: Duration::from_secs(3600),
            rotate_before: None,
            issued_now: false,
            overlap: MIN_ROTATION_OVERLAP,
            connection_verified: true,
            pingone_has_previous: false,
            new_secret_passed: false,
            soon: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_first_sighting_is_recorded_and_the_rotation_waits_a_full_interval() {
        let mut state = SecretRotationStatus::default();
        let step = decide_rotation(&mut state, &facts(0));
        assert_eq!(
            step,
            RotationStep::Wait {
                requeue: Duration::from_secs(3600)
            }
        );
        assert_eq!(state.last_rotation_time, Some(Time(at(0))));
        let step = decide_rotation(&mut state, &facts(1000));
        assert_eq!(
            step,
            RotationStep::Wait {
                requeue: Duration::from_secs(2600)
            }
        );
        assert_eq!(state.phase, None);
    }

    #[test]
    fn a_due_rotation_records_its_intent_and_starts_only_while_verified() {
        let mut state = SecretRotationStatus {
            last_rotation_time: Some(Time(at(0))),
            ..Default::default()
        };
        let unverified = RotationFacts {
            connection_verified: false,
            ..facts(3600)
        };
        assert_eq!(
            decide_rotation(&mut state, &unverified),
            RotationStep::Wait {
                requeue: Duration::from_secs(30)
            }
        );
        assert_eq!(state.phase, None, "a broken setup is not rotated");
        assert_eq!(
            decide_rotation(&mut state, &facts(3600)),
            RotationStep::Start
        );
        assert_eq!(state.phase, Some(RotationPhase::Rotating));
        assert_eq!(state.started_time, Some(Time(at(3600))));
        assert_eq!(
            state.previous_expires_time,
            Some(Time(add(at(3600), MIN_ROTATION_OVERLAP)))
        );
    }

    #[test]
    fn a_requested_rotation_covers_secrets_issued_before_its_time_once() {
        // Rotated at 0 with an hourly interval; at 100 a rotation of everything issued before
        // 50 is requested.
        let mut state = SecretRotationStatus {
            last_rotation_time: Some(Time(at(0))),
            ..Default::default()
        };
        let requested = RotationFacts {
            rotate_before: Some(at(50)),
            ..facts(100)
        };
        assert_eq!(decide_rotation(&mut state, &requested), RotationStep::Start);
        assert_eq!(state.started_time, Some(Time(at(100))));
        // Once done, the new secret was issued after the requested time: no second rotation,
        // and the interval counts from the rotation.
        state.phase = None;
        state.last_rotation_time = state.started_time.take();
        assert_eq!(
            decide_rotation(&mut state, &RotationFacts { ..requested }),
            RotationStep::Wait {
                requeue: Duration::from_secs(3600)
            }
        );
    }

    #[test]
    fn a_rotation_within_the_requested_second_is_not_repeated() {
        // Requested at 100.4 s; the rotation it caused finished within the same second and
        // the status kept its time as 100 s.
        let requested_at = at(100) + jiff::SignedDuration::from_millis(400);
        let mut state = SecretRotationStatus {
            last_rotation_time: Some(Time(at(100))),
            rotations: 1,
            ..Default::default()
        };
        let facts = RotationFacts {
            rotate_before: Some(requested_at),
            ..facts(101)
        };
        assert!(matches!(
            decide_rotation(&mut state, &facts),
            RotationStep::Wait { .. }
        ));
        // A secret issued in the second before is still covered.
        state.last_rotation_time = Some(Time(at(99)));
        assert_eq!(decide_rotation(&mut state, &facts), RotationStep::Start);
    }

    #[test]
    fn a_requested_rotation_in_the_future_waits_for_its_time() {
        let mut state = SecretRotationStatus {
            last_rotation_time: Some(Time(at(0))),
            ..Default::default()
        };
        let scheduled = RotationFacts {
            rotate_before: Some(at(400)),
            ..facts(100)
        };
        assert_eq!(
            decide_rotation(&mut state, &scheduled),
            RotationStep::Wait {
                requeue: Duration::from_secs(300)
            },
            "it looks again when the requested time comes, before the interval is up"
        );
        assert_eq!(
            decide_rotation(
                &mut state,
                &RotationFacts {
                    rotate_before: Some(at(400)),
                    ..facts(400)
                }
            ),
            RotationStep::Start
        );
    }

    #[test]
    fn a_secret_without_a_record_counts_as_issued_before_a_requested_time() {
        let requested = RotationFacts {
            rotate_before: Some(at(50)),
            ..facts(100)
        };
        let mut unknown = SecretRotationStatus::default();
        assert_eq!(
            decide_rotation(&mut unknown, &requested),
            RotationStep::Start
        );
        // ... unless its application was created in this pass.
        let mut fresh = SecretRotationStatus::default();
        let created = RotationFacts {
            issued_now: true,
            ..requested
        };
        assert_eq!(
            decide_rotation(&mut fresh, &created),
            RotationStep::Wait {
                requeue: Duration::from_secs(3600)
            }
        );
        assert_eq!(fresh.last_rotation_time, Some(Time(at(100))));
        // A requested rotation without `secretRotation` (no periodic one) is due all the same,
        // and nothing else ever is.
        let mut once = SecretRotationStatus {
            last_rotation_time: Some(Time(at(0))),
            ..Default::default()
        };
        let no_interval = RotationFacts {
            interval: Duration::MAX,
            ..facts(1_000_000)
        };
        assert!(matches!(
            decide_rotation(&mut once, &no_interval),
            RotationStep::Wait { .. }
        ));
        assert_eq!(
            decide_rotation(
                &mut once,
                &RotationFacts {
                    rotate_before: Some(at(10)),
                    ..no_interval
                }
            ),
            RotationStep::Start
        );
    }

    #[test]
    fn the_rotate_before_annotation_is_an_rfc_3339_time() {
        let with = |value: Option<&str>| -> PingOneIntegration {
            let mut object = serde_json::json!({
                "apiVersion": "pingone-aic.io/v1alpha1", "kind": "PingOneIntegration",
                "metadata": {"name": "worker", "namespace": "default"},
                "spec": {"credentialType": "WorkerApplication", "environments": [{"name": "dev"}]},
            });
            if let Some(value) = value {
                object["metadata"]["annotations"] =
                    serde_json::json!({ROTATE_BEFORE_ANNOTATION: value});
            }
            serde_json::from_value(object).expect("an integration")
        };
        assert_eq!(requested_rotation(&with(None)).unwrap(), None);
        assert_eq!(
            requested_rotation(&with(Some("2026-12-08T09:00:00Z"))).unwrap(),
            Some("2026-12-08T09:00:00Z".parse().unwrap())
        );
        let err = requested_rotation(&with(Some("yesterday"))).unwrap_err();
        assert_eq!(err.reason(), "InvalidRotateBefore");
        assert!(
            err.to_string()
                .contains("\"yesterday\" is not an RFC 3339 time")
        );
    }

    #[test]
    fn a_recorded_rotation_resumes_without_rotating_twice() {
        let mut state = SecretRotationStatus {
            phase: Some(RotationPhase::Rotating),
            ..Default::default()
        };
        assert_eq!(
            decide_rotation(&mut state, &facts(10)),
            RotationStep::Rotate
        );
        let rotated = RotationFacts {
            pingone_has_previous: true,
            ..facts(10)
        };
        assert_eq!(decide_rotation(&mut state, &rotated), RotationStep::Rotated);
    }

    #[test]
    fn the_previous_secret_goes_only_once_the_new_one_passed() {
        let mut state = SecretRotationStatus {
            phase: Some(RotationPhase::Verifying),
            ..Default::default()
        };
        let wait = RotationStep::Wait {
            requeue: Duration::from_secs(30),
        };
        let untested = RotationFacts {
            connection_verified: false,
            ..facts(10)
        };
        assert_eq!(
            decide_rotation(&mut state, &untested),
            wait,
            "nothing passed yet"
        );
        assert_eq!(
            decide_rotation(&mut state, &facts(10)),
            wait,
            "what passed is the previous secret, pushed again after the new one failed"
        );
        let passed = RotationFacts {
            new_secret_passed: true,
            ..facts(10)
        };
        assert_eq!(
            decide_rotation(&mut state, &passed),
            RotationStep::DeletePrevious
        );
        let unverified = RotationFacts {
            connection_verified: false,
            ..passed
        };
        assert_eq!(decide_rotation(&mut state, &unverified), wait);
    }
}
