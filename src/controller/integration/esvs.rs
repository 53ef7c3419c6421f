//! The ESVs of one environment: the variables (client id, URLs) and the secret that carries the
//! credential, written only when their digest changed or someone changed the active version.

use super::*;

/// What decides an environment's ESVs and whether they are loaded, as a digest: the values,
/// the secret version recorded, and the tenant environment's restarts.
pub(super) fn esv_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    credential: &Credential,
    env: &EnvironmentStatus,
) -> String {
    let restart = tenant
        .status
        .as_ref()
        .and_then(|s| s.restart.as_ref())
        // A finished restart is what loads written ESVs; the states in between change nothing.
        .map(|r| {
            format!(
                "{}/{:?}",
                r.restart_count,
                r.last_restart_time.as_ref().map(|t| t.0)
            )
        })
        .unwrap_or_default();
    environment_digest(
        integration,
        tenant,
        &[
            &restart,
            credential.client_id.as_deref().unwrap_or_default(),
            &credential.hash,
            env.secret_version.as_deref().unwrap_or_default(),
            env.values_hash.as_deref().unwrap_or_default(),
        ],
    )
}

/// Writes the ESVs that differ; returns whether they are all loaded by the running services.
pub(super) async fn sync_esvs(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    tenant: &TenantEnvironment,
    credential: &mut Credential,
    env: &mut EnvironmentStatus,
) -> Result<bool, ReconcileError> {
    let names = &integration.spec.esv;
    let environment_id = tenant.spec.ping_one.environment_id.as_str();
    let hash = credential.hash.clone();
    // A new value must not be one refused already (by PingOne, or by AIC's testConnection
    // after a push), and one from a Secret must be one PingOne accepts before any ESV changes:
    // the client id and its secret, or the connection JWT, go to AIC together or not at all.
    if env.values_hash.as_deref() != Some(hash.as_str()) {
        let secret = secret_value(integration, ctx, tenant, credential).await?;
        check_before_push(
            integration,
            ctx,
            tenant,
            credential,
            &secret,
            &hash,
            &env.name,
        )
        .await?;
    }
    let mut variables = vec![(names.environment_id.as_str(), environment_id)];
    if let Some(client_id) = &credential.client_id {
        variables.push((names.client_id.as_str(), client_id.as_str()));
    }
    // Reads come from the tenant's ESV snapshot: one list of variables and one of secrets per
    // tenant and resync, shared with the other integrations and the restart check.
    let view = aic.snapshot_view(ctx.observation_age());
    view.prefetch().await?;
    let mut loaded = true;
    for (id, value) in variables {
        let outcome = esv::upsert_variable(&view, id, value, ESV_DESCRIPTION, "string").await?;
        match &outcome {
            VariableOutcome::Unchanged(variable) => loaded &= variable.loaded,
            VariableOutcome::Created(_) | VariableOutcome::Updated(_) => {
                loaded = false;
                env.connection_verified = false;
                ctx.publish_in(
                    integration,
                    &env.name,
                    None,
                    EventType::Normal,
                    "WriteESV",
                    "VariableWritten",
                    format!("{}: wrote ESV {id}", env.name),
                )
                .await;
            }
        }
    }
    let secret_id = secret_esv(integration);
    let existing = view.get_secret(secret_id).await?;
    let unchanged = existing.as_ref().is_some_and(|secret| {
        env.values_hash.as_deref() == Some(hash.as_str())
            && env.secret_version.as_deref() == Some(secret.active_version.as_str())
    });
    if unchanged {
        loaded &= existing.as_ref().is_some_and(|s| !s.is_pending());
    } else {
        // AM reads this secret through the secret-label mapping alone, which needs no restart;
        // created not usable in placeholders, its new versions leave nothing pending (AIC
        // "Use ESVs for signing and encryption keys"). The flag is fixed at creation: a secret
        // created usable in placeholders keeps it, and each new version waits for a restart.
        let secret = secret_value(integration, ctx, tenant, credential).await?;
        let push = esv::push_secret(
            &view,
            secret_id,
            &secret,
            ESV_DESCRIPTION,
            MAPPED_SECRET_IN_PLACEHOLDERS,
        )
        .await?;
        if push.new_version {
            // A secret read only through the mapping is in use at once; one usable in
            // placeholders waits for a restart.
            let in_placeholders = existing
                .as_ref()
                .map_or(MAPPED_SECRET_IN_PLACEHOLDERS, |s| s.use_in_placeholders);
            if in_placeholders {
                loaded = false;
            }
            env.connection_verified = false;
            ctx.publish_in(
                integration,
                &env.name,
                Some(format!("{secret_id}@{}", push.version)),
                EventType::Normal,
                "WriteESV",
                "SecretVersionPushed",
                format!(
                    "{}: pushed version {} of ESV secret {secret_id}",
                    env.name, push.version
                ),
            )
            .await;
        } else {
            loaded &= view
                .get_secret(secret_id)
                .await?
                .is_some_and(|s| !s.is_pending());
        }
        env.secret_version = Some(push.version);
        env.values_hash = Some(hash);
    }
    Ok(loaded)
}
