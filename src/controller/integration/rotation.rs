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

/// Operator-managed rotation of a managed worker's secret: record → rotate in PingOne with the
/// previous secret kept valid → (the caller pushes the new ESV version; a restart loads it;
/// `testConnection` verifies it and disables the superseded versions) → drop the previous
/// secret in PingOne. Each step is recorded in the status before it is taken, so a restarted
/// operator resumes instead of rotating twice. A rotation starts only while the connection is
/// verified, so a broken setup is never made worse by one.
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
    let now = jiff::Timestamp::now();
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
    let env_name = pass.entry().name.clone();
    let soon = ctx.config.wait;
    let mut state = pass.entry().secret_rotation.clone().unwrap_or_default();
    let mut outcome = RotationOutcome {
        rotated: None,
        requeue: interval,
    };
    let rotate_now = match state.phase {
        None => {
            let Some(last) = state.last_rotation_time.clone() else {
                // The secret in use counts as fresh from the moment the operator first sees it.
                state.last_rotation_time = Some(Time(now));
                pass.entry_mut().secret_rotation = Some(state);
                return Ok(outcome);
            };
            let due = elapsed(&last.0, &now) >= interval;
            if !due {
                outcome.requeue = interval.saturating_sub(elapsed(&last.0, &now));
                return Ok(outcome);
            }
            if !pass.entry().connection_verified {
                outcome.requeue = soon;
                return Ok(outcome);
            }
            let overlap = rotation_overlap(overlap);
            state.phase = Some(RotationPhase::Rotating);
            state.started_time = Some(Time(now));
            state.previous_expires_time = Some(Time(add(now, overlap)));
            pass.entry_mut().secret_rotation = Some(state.clone());
            checkpoint(api, integration, pass.status, Checkpoint::RotationStarting).await?;
            true
        }
        // Recorded but perhaps not done: PingOne shows a previous secret once it rotated.
        Some(RotationPhase::Rotating) => current.previous.is_none(),
        Some(RotationPhase::Verifying) => false,
    };
    if state.phase == Some(RotationPhase::Rotating) {
        if rotate_now {
            outcome.rotated = Some(
                pingone_rotate(
                    integration,
                    ctx,
                    session,
                    environment_id,
                    app_id,
                    &env_name,
                    &state,
                )
                .await?,
            );
        }
        state.phase = Some(RotationPhase::Verifying);
        outcome.requeue = soon;
    } else if state.phase == Some(RotationPhase::Verifying) {
        // `connectionVerified` was cleared when the new version was pushed and is set again
        // only by a successful `testConnection` while it was active; the superseded ESV
        // versions were disabled right then. If the new secret failed and the previous one was
        // pushed again, what passed is the previous one: it must not be deleted.
        let env = pass.entry();
        let new_secret_passed = env.verified_hash.as_deref()
            == Some(values_digest(environment_id, Some(app_id), &current.secret).as_str());
        if env.connection_verified && new_secret_passed {
            session
                .delete_previous_secret(environment_id, app_id)
                .await?;
            state.phase = None;
            state.last_rotation_time = state.started_time.take().or(Some(Time(now)));
            state.previous_expires_time = None;
            state.rotations += 1;
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
        } else {
            outcome.requeue = soon;
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
