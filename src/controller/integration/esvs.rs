//! The ESVs of one environment: the variables (client id, URLs) and the secret that carries the
//! credential, written only when their digest changed or someone changed the active version;
//! an existing secret the status has no record of is adopted when `testConnection` passes.

use super::*;

/// What decides an environment's ESVs and whether they are loaded, as a digest: the values
/// (the URL variables' included), the secret version recorded, and the tenant environment's
/// restarts.
pub(super) fn esv_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    credential: &Credential,
    url_variables: &[(String, String)],
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
            &urls_digest(url_variables).unwrap_or_default(),
        ],
    )
}

/// What [`sync_esvs`] found.
pub(super) struct Esvs {
    /// Whether the ESVs are all loaded by the running services.
    pub(super) loaded: bool,
    /// The active version of an ESV secret the status has no record of pushing: whether it
    /// holds the credential is decided once the rest is in place ([`adopt_or_push_secret`]).
    pub(super) unknown_secret: Option<String>,
}

/// Writes the ESVs that differ (each write through `plan`; the URL variables among them when
/// the worker service carries placeholder URLs) and reports whether they are loaded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sync_esvs(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    tenant: &TenantEnvironment,
    credential: &mut Credential,
    url_variables: &[(String, String)],
    env: &mut EnvironmentStatus,
    plan: &mut Plan,
) -> Result<Esvs, ReconcileError> {
    let names = &integration.spec.esv;
    let environment_id = tenant.spec.ping_one.environment_id.as_str();
    let hash = credential.hash.clone();
    // A new value must not be one refused already (by PingOne, or by AIC's testConnection
    // after a push), and one from a Secret must be one PingOne accepts before any ESV changes:
    // the client id and its secret, or the connection JWT, go to AIC together or not at all.
    if !credential.planned && env.values_hash.as_deref() != Some(hash.as_str()) {
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
    // `None`: the value does not exist yet (an application an Observe pass plans to create).
    let mut variables = vec![(names.environment_id.as_str(), Some(environment_id))];
    if credential.planned {
        variables.push((names.client_id.as_str(), None));
    } else if let Some(client_id) = &credential.client_id {
        variables.push((names.client_id.as_str(), Some(client_id.as_str())));
    }
    variables.extend(
        url_variables
            .iter()
            .map(|(id, v)| (id.as_str(), Some(v.as_str()))),
    );
    // Reads come from the tenant's ESV snapshot: one list of variables and one of secrets per
    // tenant and resync, shared with the other integrations and the restart check.
    let view = aic.snapshot_view(ctx.observation_age());
    view.prefetch().await?;
    let mut loaded = true;
    // The variables a restart must load, in the order of the writes.
    let mut pending = Vec::new();
    for (id, value) in variables {
        let existing = view.get_variable(id).await?;
        let change = match value {
            Some(value) => {
                esv::variable_change(existing.as_ref(), id, value, ESV_DESCRIPTION, "string")?
            }
            None => Some(esv::VariableChange::Create),
        };
        let Some(change) = change else {
            let variable_loaded = existing.as_ref().is_some_and(|v| v.loaded);
            if !variable_loaded {
                pending.push(id.to_owned());
            }
            loaded &= variable_loaded;
            continue;
        };
        let step = match change {
            esv::VariableChange::Describe => Step::DescribeVariable { id },
            esv::VariableChange::Create | esv::VariableChange::Update => Step::WriteVariable { id },
        };
        loaded = false;
        if change != esv::VariableChange::Describe {
            pending.push(id.to_owned());
        }
        let (true, Some(value)) = (plan.act(step), value) else {
            continue;
        };
        // The same decision again, from the same snapshot: it costs no read.
        let outcome = esv::upsert_variable(&view, id, value, ESV_DESCRIPTION, "string").await?;
        if !matches!(outcome, VariableOutcome::Unchanged(_)) {
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
    env.urls_hash = urls_digest(url_variables);
    let secret_id = secret_esv(integration);
    let existing = view.get_secret(secret_id).await?;
    let mut unknown_secret = None;
    match &existing {
        Some(secret)
            if env.values_hash.as_deref() == Some(hash.as_str())
                && env.secret_version.as_deref() == Some(secret.active_version.as_str()) =>
        {
            loaded &= !secret.is_pending();
        }
        Some(secret) if env.values_hash.is_none() && !credential.planned => {
            unknown_secret = Some(secret.active_version.clone());
        }
        Some(_) => {
            if plan.act(Step::PushSecretVersion { id: secret_id }) {
                let secret = secret_value(integration, ctx, tenant, credential).await?;
                loaded &= push_credential(
                    integration,
                    ctx,
                    &view,
                    existing.as_ref(),
                    &secret,
                    env,
                    hash,
                )
                .await?;
            }
        }
        None => {
            if plan.act(Step::CreateSecret { id: secret_id }) {
                let secret = secret_value(integration, ctx, tenant, credential).await?;
                loaded &=
                    push_credential(integration, ctx, &view, None, &secret, env, hash).await?;
            }
        }
    }
    if !pending.is_empty() {
        // The TenantEnvironment's controller makes this restart; it is planned here so the
        // plan reads in the order things happen.
        plan.act(Step::Restart {
            tenant: &tenant.name_any(),
            pending: &pending,
        });
    }
    Ok(Esvs {
        loaded,
        unknown_secret,
    })
}

/// Pushes the credential as the ESV secret's new version (creating the secret if `existing`
/// is `None`) and records what was pushed; whether the running services use it.
async fn push_credential(
    integration: &PingOneIntegration,
    ctx: &Context,
    view: &crate::aic::snapshot::SnapshotView<'_>,
    existing: Option<&esv::Secret>,
    secret: &SecretString,
    env: &mut EnvironmentStatus,
    hash: String,
) -> Result<bool, ReconcileError> {
    let secret_id = secret_esv(integration);
    let mut loaded = true;
    // AM reads this secret through the secret-label mapping alone, which needs no restart;
    // created not usable in placeholders, its new versions leave nothing pending (AIC
    // "Use ESVs for signing and encryption keys"). The flag is fixed at creation: a secret
    // created usable in placeholders keeps it, and each new version waits for a restart.
    let push = esv::push_secret(
        view,
        secret_id,
        secret,
        ESV_DESCRIPTION,
        MAPPED_SECRET_IN_PLACEHOLDERS,
    )
    .await?;
    if push.new_version {
        // A secret read only through the mapping is in use at once; one usable in
        // placeholders waits for a restart.
        let in_placeholders =
            existing.map_or(MAPPED_SECRET_IN_PLACEHOLDERS, |s| s.use_in_placeholders);
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
    Ok(loaded)
}

/// Settles an ESV secret the status has no record of pushing (a tenant configured by hand):
/// when everything else is in place and `testConnection` passes with its `active` version, the
/// secret holds the credential and is adopted as it is; otherwise the credential is pushed.
/// AIC never shows a secret's value, so the test is the only read that can tell; a full pass
/// would run it after the push anyway.
#[allow(clippy::too_many_arguments)]
pub(super) async fn adopt_or_push_secret(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    tenant: &TenantEnvironment,
    credential: &mut Credential,
    pass: &mut EnvironmentPass<'_>,
    active: &str,
    now: &Time,
) -> Result<(), ReconcileError> {
    let secret_id = secret_esv(integration);
    let hash = credential.hash.clone();
    let (env, plan) = pass.entry_and_plan();
    let rest_in_place = plan.steps().is_empty() && env.service_configured && env.label_mapped;
    let holds = rest_in_place
        && matches!(
            aic.test_connection(&integration.spec.service.name).await?,
            am::ConnectionTest::Succeeded(_)
        );
    if holds {
        env.values_hash = Some(hash.clone());
        env.secret_version = Some(active.to_owned());
        env.connection_verified = true;
        env.verified_hash = Some(hash);
        env.verified_version = Some(active.to_owned());
        env.last_verified_time = Some(now.clone());
        if !plan.observing() {
            ctx.publish_in(
                integration,
                &env.name,
                Some(format!("{secret_id}@{active}")),
                EventType::Normal,
                "Adopt",
                "SecretAdopted",
                format!(
                    "{}: version {active} of ESV secret {secret_id} already holds the credential (testConnection passed); adopted it",
                    env.name
                ),
            )
            .await;
        }
        return Ok(());
    }
    if plan.act(Step::PushSecretVersion { id: secret_id }) {
        let view = aic.snapshot_view(ctx.observation_age());
        let existing = view.get_secret(secret_id).await?;
        let secret = secret_value(integration, ctx, tenant, credential).await?;
        push_credential(
            integration,
            ctx,
            &view,
            existing.as_ref(),
            &secret,
            env,
            hash,
        )
        .await?;
    }
    Ok(())
}
