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
    // Between resyncs the worker application, its role and its secret are taken as last seen
    // unless something that decides them changed; a rotation in progress is always driven.
    let key = memo_key(integration, &target.spec.name);
    let rotating = pass
        .entry()
        .secret_rotation
        .as_ref()
        .is_some_and(|r| r.phase.is_some());
    let inputs = credential_inputs(integration, tenant, &session, pass.entry());
    // An Observe pass trusts no cached observation and records none (see `super::plan`).
    let observing = pass.observing();
    if !rotating
        && !observing
        && let Some(seen) = ctx
            .memos
            .credentials
            .fresh(&key, &inputs, ctx.observation_age())
    {
        let now = Instant::now();
        if seen.due.is_none_or(|due| due > now) {
            return Ok(Credential {
                requeue: seen.due.map(|due| due - now),
                ..seen.credential
            });
        }
    }
    let credential =
        observe_worker_credential(integration, ctx, api, target, pass, &session, app_spec).await?;
    if observing {
        return Ok(credential);
    }
    let inputs = credential_inputs(integration, tenant, &session, pass.entry());
    ctx.memos.credentials.record(
        &key,
        inputs,
        SeenCredential {
            credential: credential.clone(),
            due: credential.requeue.map(|after| Instant::now() + after),
        },
    );
    Ok(credential)
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

/// What decides an environment's worker credential, as a digest.
pub(super) fn credential_inputs(
    integration: &PingOneIntegration,
    tenant: &TenantEnvironment,
    session: &pingone::PingOneSession,
    env: &EnvironmentStatus,
) -> String {
    let rotation = serde_json::to_string(&env.secret_rotation).unwrap_or_default();
    // A requested rotation is an annotation, which changes no generation.
    let requested = integration
        .annotations()
        .get(ROTATE_BEFORE_ANNOTATION)
        .map_or("", String::as_str);
    environment_digest(
        integration,
        tenant,
        &[
            &session.credential_digest(),
            env.worker_app_id.as_deref().unwrap_or_default(),
            &format!("{:?}", env.worker_app_created),
            &rotation,
            requested,
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
    let mut secret = session.application_secret(&environment_id, &app.id).await?;
    let mut requeue = None;
    let rotate_before = requested_rotation(integration)?;
    if app_spec.secret_rotation.is_some() || rotate_before.is_some() {
        let outcome = rotate(
            integration,
            ctx,
            api,
            session,
            &environment_id,
            &app.id,
            app_spec.secret_rotation.as_ref(),
            pass,
            &secret,
            created_now,
            rotate_before,
        )
        .await?;
        requeue = Some(outcome.requeue);
        if let Some(rotated) = outcome.rotated {
            secret = rotated;
        }
    }
    Ok(Credential {
        hash: values_digest(&environment_id, Some(&app.id), &secret.secret),
        client_id: Some(app.id),
        secret: Some(secret.secret),
        requeue,
        source: None,
        previous: secret.previous.and_then(|p| p.secret),
        planned: false,
    })
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
