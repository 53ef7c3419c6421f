//! The worker credential of one environment: the application the operator creates or adopts
//! (its roles and enabled flag), or the credentials the user keeps in a Secret, each checked
//! with PingOne before it is pushed.

use super::*;

/// Reads or establishes the worker credential of one environment.
pub(super) async fn credential(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    pass: &mut EnvironmentPass<'_>,
) -> Result<Credential, ReconcileError> {
    if let Some(secret_ref) = &target.spec.credentials_secret_ref {
        return from_secret(integration, ctx, target, pass, &secret_ref.name).await;
    }
    let Some(app_spec) = &integration.spec.worker_application else {
        return Err(ReconcileError::invalid(
            "CredentialsMissing",
            format!(
                "{} has no credentialsSecretRef and the integration manages no worker application",
                target.spec.name
            ),
        ));
    };
    let tenant = &target.tenant;
    let session = ctx.clients.pingone_admin(&ctx.secrets, tenant).await?.ok_or_else(|| {
        ReconcileError::invalid(
            "AdminCredentialsMissing",
            format!("TenantEnvironment {} has no pingOne.adminCredentialsSecretRef; the operator needs it to manage worker applications", target.spec.name),
        )
    })?;
    // Between resyncs the worker application, its roles and its secret are taken as last seen
    // unless something that decides them changed. A rotation goes on from the secret
    // remembered, and every step it takes is written through to the memory; only a rotation
    // whose PingOne step may or may not have happened (a failed call, a restart) looks again.
    let key = memo_key(integration, &target.spec.name);
    let unresolved = pass
        .entry()
        .secret_rotation
        .as_ref()
        .is_some_and(|r| r.phase == Some(RotationPhase::Rotating));
    let inputs = credential_inputs(integration, tenant, &session, pass.entry());
    // An Observe pass trusts no cached observation and records none (see `super::plan`).
    let observing = pass.observing();
    if !unresolved
        && !observing
        && let Some(seen) = ctx
            .memos
            .credentials
            .fresh(&key, &inputs, ctx.observation_age())
    {
        let mut credential = seen.credential;
        rotate_remembered(
            integration,
            ctx,
            api,
            target,
            pass,
            &session,
            app_spec,
            &mut credential,
        )
        .await?;
        return Ok(credential);
    }
    let credential =
        observe_worker_credential(integration, ctx, api, target, pass, &session, app_spec).await?;
    if !observing {
        remember_credential(
            ctx,
            integration,
            target,
            pass,
            &session,
            &credential,
            Seen::Now,
        );
    }
    Ok(credential)
}

/// How a credential to remember came about.
enum Seen {
    /// Observed in PingOne in this pass.
    Now,
    /// Taken from the memory and changed by this pass's own rotation steps.
    Amended,
}

/// Remembers a managed worker's credential under what decides it now: a fresh observation, or
/// this pass's own changes written through to an older one (which keeps its age, so the
/// resync still looks at PingOne).
fn remember_credential(
    ctx: &Context,
    integration: &PingOneIntegration,
    target: &Target<'_>,
    pass: &EnvironmentPass<'_>,
    session: &pingone::PingOneSession,
    credential: &Credential,
    seen: Seen,
) {
    let key = memo_key(integration, &target.spec.name);
    let inputs = credential_inputs(integration, &target.tenant, session, pass.entry());
    let value = SeenCredential {
        credential: credential.clone(),
    };
    match seen {
        Seen::Now => ctx.memos.credentials.record(&key, inputs, value),
        Seen::Amended => ctx.memos.credentials.amend(&key, inputs, value),
    }
}

/// Takes the operator-managed rotation of a managed worker's secret one step further from
/// `credential` (PingOne's current secret, and the previous one while PingOne keeps it): a
/// rotation replaces the secret and keeps the previous one; a finished one drops it.
#[allow(clippy::too_many_arguments)]
async fn drive_rotation(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    pass: &mut EnvironmentPass<'_>,
    session: &pingone::PingOneSession,
    app_spec: &WorkerApplicationSpec,
    credential: &mut Credential,
    issued_now: bool,
) -> Result<(), ReconcileError> {
    let rotate_before = requested_rotation(integration)?;
    let (Some(app_id), Some(current)) = (credential.client_id.clone(), credential.secret.clone())
    else {
        return Ok(());
    };
    if app_spec.secret_rotation.is_none() && rotate_before.is_none() {
        credential.requeue = None;
        return Ok(());
    }
    let environment_id = target.tenant.spec.ping_one.environment_id.as_str();
    let outcome = rotate(
        integration,
        ctx,
        api,
        session,
        RotationTarget {
            environment_id,
            app_id: &app_id,
            current: &current,
            pingone_has_previous: credential.previous.is_some(),
            issued_now,
        },
        app_spec.secret_rotation.as_ref(),
        pass,
        rotate_before,
    )
    .await?;
    credential.requeue = Some(outcome.requeue);
    if let Some(rotated) = outcome.rotated {
        *credential = managed_credential(environment_id, app_id, rotated, credential.requeue);
    } else if pass
        .entry()
        .secret_rotation
        .as_ref()
        .is_some_and(|r| r.phase.is_none())
    {
        // Done (or never started): PingOne keeps no previous secret the operator knows of.
        credential.previous = None;
    }
    Ok(())
}

/// Ends a rotation in the pass that verified its new secret, instead of the next one: deletes
/// the previous secret in PingOne once `testConnection` passed with the new one.
pub(super) async fn conclude_rotation(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    pass: &mut EnvironmentPass<'_>,
    credential: &mut Credential,
) -> Result<(), ReconcileError> {
    let verifying = pass
        .entry()
        .secret_rotation
        .as_ref()
        .is_some_and(|r| r.phase == Some(RotationPhase::Verifying));
    let Some(app_spec) = integration.spec.worker_application.as_ref() else {
        return Ok(());
    };
    if !verifying || credential.source.is_some() {
        return Ok(());
    }
    let Some(session) = ctx
        .clients
        .pingone_admin(&ctx.secrets, &target.tenant)
        .await?
    else {
        return Ok(());
    };
    rotate_remembered(
        integration,
        ctx,
        api,
        target,
        pass,
        &session,
        app_spec,
        credential,
    )
    .await
}

/// Takes the rotation one step further from the credential remembered, and writes what it
/// changed through to that memory.
#[allow(clippy::too_many_arguments)]
async fn rotate_remembered(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    pass: &mut EnvironmentPass<'_>,
    session: &pingone::PingOneSession,
    app_spec: &WorkerApplicationSpec,
    credential: &mut Credential,
) -> Result<(), ReconcileError> {
    drive_rotation(
        integration,
        ctx,
        api,
        target,
        pass,
        session,
        app_spec,
        credential,
        false,
    )
    .await?;
    remember_credential(
        ctx,
        integration,
        target,
        pass,
        session,
        credential,
        Seen::Amended,
    );
    Ok(())
}

/// The credential of a managed worker application with PingOne's secret.
fn managed_credential(
    environment_id: &str,
    app_id: String,
    secret: pingone::ApplicationSecret,
    requeue: Option<Duration>,
) -> Credential {
    Credential {
        hash: values_digest(environment_id, Some(&app_id), &secret.secret),
        client_id: Some(app_id),
        secret: Some(secret.secret),
        requeue,
        source: None,
        previous: secret.previous.and_then(|p| p.secret),
        planned: false,
    }
}

/// A credential the user keeps in a Secret. While the Secret is at a version whose values the
/// status records as pushed and verified, the value is not read: what the pass needs of it (the
/// client id, the digest of the values) is remembered per Secret version, and the value is read
/// only if something must be written or verified ([`secret_value`]).
async fn from_secret(
    integration: &PingOneIntegration,
    ctx: &Context,
    target: &Target<'_>,
    pass: &EnvironmentPass<'_>,
    secret: &str,
) -> Result<Credential, ReconcileError> {
    let namespace = namespace_of(integration);
    let key = memo_key(integration, &target.spec.name);
    let environment_id = target.tenant.spec.ping_one.environment_id.as_str();
    let inputs = |version: &SecretVersion| {
        digest(&[
            secret,
            &version.id(""),
            &format!("{:?}", integration.spec.credential_type),
            environment_id,
        ])
    };
    let env = pass.entry();
    if env.connection_verified
        && let Some(version) = ctx.secrets.version(&namespace, secret)
        && let Some(seen) = ctx
            .memos
            .sourced
            .fresh(&key, &inputs(&version), Duration::MAX)
        && env.values_hash.as_deref() == Some(seen.hash.as_str())
    {
        return Ok(Credential {
            client_id: seen.client_id,
            secret: None,
            hash: seen.hash,
            requeue: None,
            source: Some(secret_source(integration, secret)),
            previous: None,
            planned: false,
        });
    }
    let data = ctx.secrets.read(&namespace, secret).await?;
    let credential = read_credential(integration, &data, environment_id)?;
    ctx.memos.sourced.record(
        &key,
        inputs(&SecretVersion::of(&data)),
        SourcedValues {
            client_id: credential.client_id.clone(),
            hash: credential.hash.clone(),
        },
    );
    Ok(credential)
}

/// The Secret and key a credential of the integration's type is read from.
fn secret_source(integration: &PingOneIntegration, secret: &str) -> SecretSource {
    SecretSource {
        secret: secret.to_owned(),
        key: match integration.spec.credential_type {
            CredentialType::ProductConnection => "credential",
            CredentialType::WorkerApplication => "clientSecret",
        },
    }
}

/// The credential of the integration's type in a Secret's data.
fn read_credential(
    integration: &PingOneIntegration,
    data: &SecretData,
    environment_id: &str,
) -> Result<Credential, ReconcileError> {
    let (client_id, secret) = match integration.spec.credential_type {
        CredentialType::ProductConnection => (None, ConnectionCredential::from_secret(data)?.0),
        CredentialType::WorkerApplication => {
            let credentials = ClientCredentials::from_secret(data)?;
            (Some(credentials.client_id), credentials.client_secret)
        }
    };
    Ok(Credential {
        hash: values_digest(environment_id, client_id.as_deref(), &secret),
        client_id,
        secret: Some(secret),
        requeue: None,
        source: Some(secret_source(integration, data.name())),
        previous: None,
        planned: false,
    })
}

/// The credential's secret value, read from its Secret again when the pass has not read it.
/// A Secret that holds other values by now ends the pass: the next one takes the new values
/// from the start, with the checks a new value gets.
pub(super) async fn secret_value(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    credential: &mut Credential,
) -> Result<SecretString, ReconcileError> {
    if credential.secret.is_none()
        && let Some(source) = &credential.source
    {
        let data = ctx
            .secrets
            .read(&namespace_of(integration), &source.secret)
            .await?;
        let fresh = read_credential(integration, &data, &tenant.spec.ping_one.environment_id)?;
        if fresh.hash != credential.hash {
            return Err(ReconcileError::ObjectChanged {
                action: "reading the credential Secret again",
                code: 409,
            });
        }
        credential.secret = fresh.secret;
    }
    credential.secret.clone().ok_or_else(|| {
        ReconcileError::invalid(
            "CredentialsMissing",
            "the credential's value is not known and it comes from no Secret",
        )
    })
}

/// What decides an environment's worker application and roles, as a digest. The rotation is
/// not part of it: each pass drives the rotation from the secret remembered and writes what it
/// changed through ([`remember_credential`]).
pub(super) fn credential_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    session: &pingone::PingOneSession,
    env: &EnvironmentStatus,
) -> String {
    environment_digest(
        integration,
        tenant,
        &[
            &session.credential_digest(),
            env.worker_app_id.as_deref().unwrap_or_default(),
            &format!("{:?}", env.worker_app_created),
        ],
    )
}

/// Observes (and where needed creates, repairs or rotates) the managed worker application of
/// one environment and returns its credential.
#[allow(clippy::too_many_arguments)]
pub(super) async fn observe_worker_credential(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    target: &Target<'_>,
    pass: &mut EnvironmentPass<'_>,
    session: &pingone::PingOneSession,
    app_spec: &WorkerApplicationSpec,
) -> Result<Credential, ReconcileError> {
    let tenant = &target.tenant;
    let environment_id = tenant.spec.ping_one.environment_id.clone();
    let desired = pingone::WorkerApplication {
        name: app_spec.name.clone(),
        description: Some(format!(
            "PingOne Worker Service of Advanced Identity Cloud; managed by pingone-aic-operator ({})",
            integration.name_any()
        )),
        enabled: true,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
    };
    let recorded = pass.entry().worker_app_id.clone();
    let app = match recorded.clone() {
        Some(id) => match session.application(&environment_id, &id).await? {
            Some(app) => app,
            None => {
                if !pass.observing() {
                    ctx.publish_in(integration, &target.spec.name, None, EventType::Warning, "Drift", "WorkerApplicationMissing", format!("{}: worker application {id} was deleted outside the operator; creating it again", target.spec.name)).await;
                }
                match create_application(
                    integration,
                    ctx,
                    api,
                    session,
                    &environment_id,
                    &desired,
                    pass,
                )
                .await?
                {
                    Some(app) => app,
                    None => return Ok(planned_credential(app_spec, &environment_id, pass)),
                }
            }
        },
        None => {
            let existing = session
                .find_applications_by_name(&environment_id, &app_spec.name)
                .await?;
            match existing.as_slice() {
                [] => {
                    match create_application(
                        integration,
                        ctx,
                        api,
                        session,
                        &environment_id,
                        &desired,
                        pass,
                    )
                    .await?
                    {
                        Some(app) => app,
                        None => return Ok(planned_credential(app_spec, &environment_id, pass)),
                    }
                }
                [one] if app_spec.adopt_existing => {
                    let env = pass.entry_mut();
                    env.worker_app_id = Some(one.id.clone());
                    env.worker_app_created = Some(false);
                    // Adopting changes nothing remote: Observe adopts on its copy of the
                    // status and plans no step for it.
                    if !pass.observing() {
                        checkpoint(
                            api,
                            integration,
                            pass.status,
                            Checkpoint::ApplicationAdopted,
                        )
                        .await?;
                    }
                    if !pass.observing() {
                        ctx.publish_in(
                            integration,
                            &target.spec.name,
                            None,
                            EventType::Normal,
                            "Adopt",
                            "WorkerApplicationAdopted",
                            format!(
                                "{}: adopted the existing application {:?} ({})",
                                target.spec.name, one.name, one.id
                            ),
                        )
                        .await;
                    }
                    one.clone()
                }
                [one] => {
                    return Err(ReconcileError::conflict(
                        "ApplicationExists",
                        format!(
                            "{}: an application named {:?} already exists ({}); set workerApplication.adoptExisting to adopt it or choose another name",
                            target.spec.name, one.name, one.id
                        ),
                    ));
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(|a| a.id.as_str()).collect();
                    return Err(ReconcileError::conflict(
                        "DuplicateApplications",
                        format!(
                            "{}: {} applications are named {:?} ({}); the operator will not guess which one to use",
                            target.spec.name,
                            many.len(),
                            app_spec.name,
                            ids.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    if !desired.matches(&app) {
        let created_by_us = pass.entry().worker_app_created == Some(true);
        if (created_by_us || !app.enabled)
            && pass.plan.act(Step::RepairApplication {
                name: &app_spec.name,
            })
        {
            session
                .replace_worker_application(&environment_id, &app.id, &desired)
                .await?;
            ctx.publish_in(
                integration,
                &target.spec.name,
                None,
                EventType::Normal,
                "Drift",
                "WorkerApplicationRepaired",
                format!(
                    "{}: restored the worker application's settings (enabled, client credentials)",
                    target.spec.name
                ),
            )
            .await;
        }
    }
    // An application created in this pass has no role assignments to look at.
    let env = pass.entry();
    let created_now = env.worker_app_created == Some(true) && env.worker_app_id != recorded;
    let assignments = if created_now || app_spec.roles.is_empty() {
        Vec::new()
    } else {
        session
            .list_role_assignments(&environment_id, &app.id)
            .await?
    };
    for role in &app_spec.roles {
        let role_id = session.role_id(role).await?;
        let scope = Scope::environment(environment_id.clone());
        let present = assignments
            .iter()
            .any(|a| a.role.id == role_id && a.scope.id == scope.id);
        if !present
            && pass.plan.act(Step::GrantRole {
                role,
                application: &app_spec.name,
                environment_id: &environment_id,
            })
        {
            session
                .create_role_assignment(&environment_id, &app.id, &role_id, &scope)
                .await?;
            ctx.publish_in(
                integration,
                &target.spec.name,
                None,
                EventType::Normal,
                "Grant",
                "RoleGranted",
                format!(
                    "{}: granted {role} on environment {environment_id}",
                    target.spec.name
                ),
            )
            .await;
        }
    }
    let secret = session.application_secret(&environment_id, &app.id).await?;
    let mut credential = managed_credential(&environment_id, app.id, secret, None);
    drive_rotation(
        integration,
        ctx,
        api,
        target,
        pass,
        session,
        app_spec,
        &mut credential,
        created_now,
    )
    .await?;
    Ok(credential)
}

/// The credential of a worker application an Observe pass plans to create: the role grants a
/// full pass makes right after the creation are planned with it; its client id and secret do
/// not exist yet.
fn planned_credential(
    app_spec: &WorkerApplicationSpec,
    environment_id: &str,
    pass: &mut EnvironmentPass<'_>,
) -> Credential {
    for role in &app_spec.roles {
        pass.plan.act(Step::GrantRole {
            role,
            application: &app_spec.name,
            environment_id,
        });
    }
    Credential {
        client_id: None,
        secret: None,
        // Nothing to compare: no value exists yet.
        hash: String::new(),
        requeue: None,
        source: None,
        previous: None,
        planned: true,
    }
}

/// Creates the worker application and records its id in the status at once; `None` when the
/// pass only observes (the creation is planned).
#[allow(clippy::too_many_arguments)]
pub(super) async fn create_application(
    integration: &PingOneIntegration,
    ctx: &Context,
    api: &Api<PingOneIntegration>,
    session: &impl PingOneApi,
    environment_id: &str,
    desired: &pingone::WorkerApplication,
    pass: &mut EnvironmentPass<'_>,
) -> Result<Option<pingone::Application>, ReconcileError> {
    if !pass.plan.act(Step::CreateApplication {
        name: &desired.name,
        environment_id,
    }) {
        return Ok(None);
    }
    let app = session
        .create_worker_application(environment_id, desired)
        .await?;
    let env = pass.entry_mut();
    env.worker_app_id = Some(app.id.clone());
    env.worker_app_created = Some(true);
    env.connection_verified = false;
    let env_name = env.name.clone();
    checkpoint(
        api,
        integration,
        pass.status,
        Checkpoint::ApplicationCreated,
    )
    .await?;
    ctx.publish_in(
        integration,
        &env_name,
        None,
        EventType::Normal,
        "Create",
        "WorkerApplicationCreated",
        format!(
            "{env_name}: created worker application {:?} ({})",
            desired.name, app.id
        ),
    )
    .await;
    Ok(Some(app))
}

/// Checks a new credential: a value refused once (by PingOne, or by AIC after a push) is
/// refused again without asking while the observation is fresh; one from a Secret is checked
/// with PingOne ([`credential_check::check`]).
pub(super) async fn check_before_push(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    credential: &Credential,
    secret: &SecretString,
    hash: &str,
    environment: &str,
) -> Result<(), ReconcileError> {
    let key = memo_key(integration, environment);
    if let Some(message) = ctx.memos.rejected.fresh(&key, hash, ctx.observation_age()) {
        return Err(ReconcileError::invalid(credential_check::REJECTED, message));
    }
    let Some(source) = &credential.source else {
        return Ok(());
    };
    let candidate = match &credential.client_id {
        Some(client_id) => Candidate::ClientSecret { client_id, secret },
        None => Candidate::Connection(secret),
    };
    let checked = credential_check::check(
        &ctx.clients,
        tenant,
        environment,
        source,
        candidate,
        jiff::Timestamp::now(),
    )
    .await;
    if let Err(err @ ReconcileError::Invalid { .. }) = &checked {
        ctx.memos
            .rejected
            .record(&key, hash.to_owned(), err.to_string());
    }
    checked
}
