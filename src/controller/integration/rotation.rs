//! Operator-managed rotation of a worker's client secret: rotate in PingOne with an overlap,
//! push the new version, and delete the previous secret only once the new one is verified.

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

/// What a pass of the rotation state machine decided.
pub(super) struct RotationOutcome {
    /// The secret after a rotation made in this pass.
    pub(super) rotated: Option<pingone::ApplicationSecret>,
    /// When to look again.
    pub(super) requeue: Duration,
}

/// What the rotation of one environment sees now, besides its own record.
pub(super) struct RotationFacts {
    pub(super) now: jiff::Timestamp,
    /// How often to rotate (the spec's, at least a second).
    pub(super) interval: Duration,
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
            let Some(last) = state.last_rotation_time.clone() else {
                // The secret in use counts as fresh from the moment the operator first sees it.
                state.last_rotation_time = Some(Time(now));
                return RotationStep::Wait {
                    requeue: facts.interval,
                };
            };
            let age = elapsed(&last.0, &now);
            if age < facts.interval {
                return RotationStep::Wait {
                    requeue: facts.interval.saturating_sub(age),
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
    environment_id: &str,
    app_id: &str,
    spec: &SecretRotation,
    pass: &mut EnvironmentPass<'_>,
    current: &pingone::ApplicationSecret,
) -> Result<RotationOutcome, ReconcileError> {
    let invalid = |field: &str, e: crate::crd::common::InvalidDuration| {
        ReconcileError::invalid(
            "InvalidDuration",
            format!("spec.workerApplication.secretRotation.{field}: {e}"),
        )
    };
    let interval = parse_duration(&spec.interval)
        .map_err(|e| invalid("interval", e))?
        .max(Duration::from_secs(1));
    let overlap = parse_duration(&spec.overlap).map_err(|e| invalid("overlap", e))?;
    let env = pass.entry();
    let env_name = env.name.clone();
    let facts = RotationFacts {
        now: jiff::Timestamp::now(),
        interval,
        overlap: rotation_overlap(overlap),
        connection_verified: env.connection_verified,
        pingone_has_previous: current.previous.is_some(),
        new_secret_passed: env.verified_hash.as_deref()
            == Some(values_digest(environment_id, Some(app_id), &current.secret).as_str()),
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
    Ok(outcome)
}

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
