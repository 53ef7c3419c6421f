//! The AM PingOne Worker Service of one environment and its promotion: the desired worker, the
//! service written in development and sandboxes, and the Promotions upper environments wait for.

use super::*;

/// The worker service configuration as the development environment of the group holds it
/// (an environment's own when it is mutable): its URLs literal or placeholders as decided for
/// the group.
pub(super) async fn desired_worker(
    integration: &PingOneIntegration,
    ctx: &Context,
    target: &Target<'_>,
    targets: &[Target<'_>],
    aic: &AicClient,
) -> Result<Worker, ReconcileError> {
    let tenant = &target.tenant;
    let source = if tenant.spec.tier.is_mutable() {
        (**tenant).clone()
    } else {
        group_root(ctx, tenant, targets)
    };
    let names = &integration.spec.esv;
    let (api_url, auth_url) = match target.urls {
        WorkerUrls::Literal => own_urls(&source)?,
        WorkerUrls::Placeholders => (
            esv::placeholder(&names.api_url),
            esv::placeholder(&names.auth_url),
        ),
    };
    let label = &integration.spec.service.secret_label_identifier;
    let mut worker = Worker {
        id: String::new(),
        rev: None,
        client_id: esv::placeholder(&names.client_id),
        client_secret_purpose: label.clone(),
        environment_id: esv::placeholder(&names.environment_id),
        api_url,
        auth_url,
        use_credential: false,
        other: BTreeMap::new(),
    };
    if integration.spec.credential_type == CredentialType::ProductConnection {
        worker.use_credential = true;
        worker.client_id = String::new();
        let key = format!("{}#{}", tenant.spec.tenant_url, tenant.spec.realm);
        let field = match ctx.credential_field(&key) {
            Some(field) => field,
            None => {
                let schema = aic.worker_schema().await?;
                let field = am::credential_field(&schema).ok_or_else(|| {
                    ReconcileError::invalid("CredentialFieldUnknown", "the worker service schema names no credential label field; this AIC release may not support product connections")
                })?;
                ctx.remember_credential_field(&key, &field);
                field
            }
        };
        worker
            .other
            .insert(field, serde_json::Value::String(label.clone()));
    }
    Ok(worker)
}

/// The development environment at the bottom of `tenant`'s promotion group.
pub(super) fn group_root(
    ctx: &Context,
    tenant: &TenantEnvironment,
    targets: &[Target<'_>],
) -> TenantEnvironment {
    let mut current = tenant.clone();
    for _ in 0..8 {
        let Some(lower) = &current.spec.promotes_from else {
            break;
        };
        let found = targets
            .iter()
            .map(|t| t.tenant.clone())
            .find(|t| lookup::is_named(t.as_ref(), lower))
            .or_else(|| lookup::named(&ctx.tenants, tenant.meta().namespace.as_deref(), lower));
        match found {
            Some(next) => current = (*next).clone(),
            None => break,
        }
    }
    current
}

/// Writes the worker service, the configuration and the secret mapping where they differ (each
/// write through `plan`).
pub(super) async fn configure_service(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    desired: &Worker,
    env: &mut EnvironmentStatus,
    plan: &mut Plan,
) -> Result<(), ReconcileError> {
    let service = &integration.spec.service;
    let current = aic.get_worker(&service.name).await?;
    // A worker configuration lives inside the service, so finding it proves the service
    // exists: the service is read only when the worker is missing (one read less per resync).
    if current.is_none()
        && aic.get_worker_service().await?.is_none()
        && plan.act(Step::CreateWorkerService)
    {
        aic.create_worker_service().await?;
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "WorkerServiceCreated",
            format!("{}: created the PingOne Worker Service", env.name),
        )
        .await;
    }
    let unchanged = current.as_ref().is_some_and(|c| c.satisfies(desired));
    if !unchanged
        && plan.act(Step::WriteWorker {
            name: &service.name,
        })
    {
        aic.put_worker(&service.name, desired).await?;
        env.connection_verified = false;
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "WorkerConfigured",
            format!(
                "{}: wrote worker configuration {:?} with ESV placeholders",
                env.name, service.name
            ),
        )
        .await;
    }
    // What an Observe pass records is what it saw: a write it only planned configures nothing.
    env.service_configured = unchanged || !plan.observing();
    let label = match integration.spec.credential_type {
        CredentialType::WorkerApplication => {
            am::client_secret_label(&service.secret_label_identifier)
        }
        CredentialType::ProductConnection => am::credential_label(&service.secret_label_identifier),
    };
    let alias = secret_esv(integration);
    let mapped = am::maps_to(aic.get_mapping(&label).await?.as_ref(), alias);
    if !mapped
        && plan.act(Step::MapLabel {
            label: &label,
            esv: alias,
        })
    {
        aic.put_mapping(&am::Mapping {
            secret_id: label.clone(),
            aliases: vec![alias.to_owned()],
            rev: None,
        })
        .await?;
        env.connection_verified = false;
        ctx.publish_in(
            integration,
            &env.name,
            None,
            EventType::Normal,
            "Configure",
            "LabelMapped",
            format!(
                "{}: mapped {label} to ESV {}",
                env.name,
                secret_esv(integration)
            ),
        )
        .await;
    }
    env.label_mapped = mapped || !plan.observing();
    Ok(())
}

/// What an upper environment waits for; creates the Promotion under the `Automatic` policy.
pub(super) async fn promotion_note(
    integration: &PingOneIntegration,
    ctx: &Context,
    tenant: &TenantEnvironment,
    targets: &[Target<'_>],
    status: &PingOneIntegrationStatus,
    plan: &mut Plan,
) -> Result<String, ReconcileError> {
    let name = tenant.name_any();
    let Some(lower) = tenant.spec.promotes_from.clone() else {
        return Ok(format!("{name}: not promoted"));
    };
    // An Observe pass plans the promotion a full pass makes once the lower environment is
    // configured and verified.
    let lower_done = plan.observing()
        || status
            .environments
            .iter()
            .find(|e| e.name == lower)
            .is_some_and(|e| e.connection_verified && e.service_configured);
    if !targets.iter().any(|t| t.spec.name == lower) {
        return Ok(format!(
            "{name}: the integration does not include {lower}, which it is promoted from"
        ));
    }
    if !lower_done {
        return Ok(format!(
            "{name}: waits until {lower} is configured and verified, then for a promotion from it"
        ));
    }
    let namespace = integration.meta().namespace.as_deref();
    let ours: Vec<Arc<Promotion>> = ctx.promotions.state_filter(|p| {
        lookup::in_namespace(p, namespace) && p.spec.to == name && p.spec.from == lower
    });
    if let Some(running) = ours
        .iter()
        .find(|p| !p.status.as_ref().is_some_and(|s| s.phase.is_final()))
    {
        return Ok(format!(
            "{name}: Promotion {} is in progress",
            running.name_any()
        ));
    }
    match integration.spec.promotion.policy {
        ApprovalPolicy::Manual => Ok(format!(
            "{name}: AwaitingPromotion — apply a Promotion with from: {lower} and to: {name}"
        )),
        ApprovalPolicy::Automatic => {
            let mine: Vec<&Arc<Promotion>> = ours
                .iter()
                .filter(|p| p.labels().get(INTEGRATION_LABEL) == Some(&integration.name_any()))
                .collect();
            if let Some((failed, phase)) = mine.iter().find_map(|p| {
                let phase = p.status.as_ref()?.phase;
                matches!(phase, PromotionPhase::Failed | PromotionPhase::RolledBack)
                    .then_some((p, phase))
            }) {
                let what = if phase == PromotionPhase::RolledBack {
                    "was rolled back"
                } else {
                    "failed"
                };
                return Ok(format!(
                    "{name}: Promotion {} {what}; delete it to try again",
                    failed.name_any()
                ));
            }
            if !plan.act(Step::Promote {
                to: &name,
                from: &lower,
            }) {
                return Ok(format!("{name}: would be promoted from {lower}"));
            }
            let promotion_name = format!("{}-to-{name}-{}", integration.name_any(), mine.len() + 1);
            create_promotion(integration, ctx, &promotion_name, &lower, &name).await?;
            Ok(format!("{name}: created Promotion {promotion_name}"))
        }
    }
}

pub(super) async fn create_promotion(
    integration: &PingOneIntegration,
    ctx: &Context,
    name: &str,
    from: &str,
    to: &str,
) -> Result<(), ReconcileError> {
    let namespace = namespace_of(integration);
    let mut promotion = Promotion::new(
        name,
        PromotionSpec {
            from: from.to_owned(),
            to: to.to_owned(),
            dry_run_only: false,
            rollback_on_failure: integration.spec.promotion.rollback_on_failure,
            description: Some(format!(
                "PingOne Worker Service ({})",
                integration.name_any()
            )),
        },
    );
    promotion.metadata.namespace = Some(namespace.clone());
    promotion.metadata.labels =
        Some([(INTEGRATION_LABEL.to_owned(), integration.name_any())].into());
    promotion.metadata.owner_references = Some(vec![OwnerReference {
        api_version: PingOneIntegration::api_version(&()).into_owned(),
        kind: PingOneIntegration::kind(&()).into_owned(),
        name: integration.name_any(),
        uid: integration.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    let api: Api<Promotion> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.create(&PostParams::default(), &promotion).await {
        Ok(_) => {
            ctx.publish(
                integration,
                EventType::Normal,
                "Promote",
                "PromotionCreated",
                format!("created Promotion {name} from {from} to {to}"),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err.into()),
    }
}
