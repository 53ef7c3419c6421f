//! Verifying an environment's credential in AIC: `testConnection` counts only while the version
//! the operator pushed is the active one; superseded versions are retired once it passed; a
//! failed test after a new version brings the tenant back to the last credential that passed, by
//! pushing that value again as a new version.
//!
//! Where the last verified value comes from: for an operator-managed worker in rotation, PingOne
//! still holds it as the previous secret; a value that came from a Kubernetes Secret is kept,
//! once verified, in a Secret the operator owns beside the integration
//! (`<integration>-verified`, one key per environment, deleted with the integration). Neither is
//! ever written to status, logs or Events.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::clients::namespace_of;
use super::integration::{ESV_DESCRIPTION, MAPPED_SECRET_IN_PLACEHOLDERS, memo_key, secret_esv};
use super::memo::digest;
use super::{Context, ReconcileError};
use crate::aic::am::ConnectionTest;
use crate::aic::esv;
use crate::aic::{AicClient, AmApi, EsvApi};
use crate::crd::PingOneIntegration;
use crate::crd::pingone_integration::EnvironmentStatus;
use crate::credentials::SecretData;
use crate::secret::SecretString;

/// Label on the Secrets the operator writes.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "pingone-aic-operator");

/// The digest of the values an environment's ESVs carry, as `values_hash` and `verified_hash`
/// record them: SHA-256, so changes are detected without storing the values.
pub fn values_digest(
    environment_id: &str,
    client_id: Option<&str>,
    secret: &SecretString,
) -> String {
    digest(&[
        environment_id,
        client_id.unwrap_or_default(),
        secret.expose(),
    ])
}

/// The credential now in the environment's ESVs and where an earlier one can be found.
pub struct Pushed<'a> {
    /// The PingOne environment id.
    pub environment_id: &'a str,
    /// The client id beside the secret (worker applications).
    pub client_id: Option<&'a str>,
    /// The value pushed.
    pub secret: &'a SecretString,
    /// PingOne's previous secret of a managed worker, while it is valid.
    pub previous: Option<&'a SecretString>,
    /// The value came from a Kubernetes Secret: keep it once verified.
    pub from_secret: bool,
}

/// What a verification found.
pub enum Verification {
    /// The pushed version passed while active.
    Verified,
    /// Not verified yet; the note says why.
    Pending(String),
    /// The pushed value failed; the message says what was done about it, and the
    /// environment's `connection_verified` whether the restored credential passed.
    Rejected(String),
}

/// Runs `testConnection` for the environment and acts on the result (see the module doc).
pub async fn verify(
    integration: &PingOneIntegration,
    ctx: &Context,
    aic: &AicClient,
    env: &mut EnvironmentStatus,
    pushed: &Pushed<'_>,
    now: &Time,
) -> Result<Verification, ReconcileError> {
    let service = integration.spec.service.name.as_str();
    let secret_id = secret_esv(integration);
    let mut restored: Option<String> = None;
    // At most two tests: the pushed version, then the restored one.
    loop {
        let ours = env.secret_version.clone().unwrap_or_default();
        match aic.test_connection(service).await? {
            ConnectionTest::Succeeded(_) => {
                let versions = aic.list_secret_versions(secret_id).await?;
                let active = esv::active_version(&versions)
                    .unwrap_or_default()
                    .to_owned();
                if active != ours {
                    // The test may have presented another value than ours: it proves nothing
                    // about ours. Forgetting the version makes the next pass push ours again.
                    env.secret_version = None;
                    return Ok(Verification::Pending(format!(
                        "{}: version {active} of ESV secret {secret_id} became active during \
                         testConnection, not version {ours}",
                        env.name
                    )));
                }
                env.connection_verified = true;
                env.last_verified_time = Some(now.clone());
                env.verified_version = Some(ours.clone());
                let newly_verified = env.verified_hash != env.values_hash;
                env.verified_hash = env.values_hash.clone();
                ctx.publish_in(
                    integration,
                    &env.name,
                    Some(format!("{secret_id}@{ours}")),
                    EventType::Normal,
                    "TestConnection",
                    "ConnectionVerified",
                    format!(
                        "{}: AIC reaches PingOne with version {ours} of ESV secret {secret_id}",
                        env.name
                    ),
                )
                .await;
                if pushed.from_secret && newly_verified && restored.is_none() {
                    keep_last_verified(ctx, integration, &env.name, pushed.secret).await?;
                }
                let disabled =
                    esv::disable_other_versions(aic, secret_id, &versions, &ours).await?;
                if !disabled.is_empty() {
                    ctx.publish_in(
                        integration,
                        &env.name,
                        Some(format!("{secret_id}@{}", disabled.join(","))),
                        EventType::Normal,
                        "Rotate",
                        "SupersededVersionsDisabled",
                        format!(
                            "{}: version {ours} of ESV secret {secret_id} passed; disabled the \
                             superseded version(s) {}",
                            env.name,
                            disabled.join(", ")
                        ),
                    )
                    .await;
                }
                return Ok(match restored {
                    Some(message) => Verification::Rejected(message),
                    None => Verification::Verified,
                });
            }
            ConnectionTest::Failed { message, .. } => {
                env.connection_verified = false;
                ctx.publish_in(
                    integration,
                    &env.name,
                    Some(format!("{secret_id}@{ours}")),
                    EventType::Warning,
                    "TestConnection",
                    "ConnectionFailed",
                    format!(
                        "{}: testConnection failed with version {ours} of ESV secret \
                         {secret_id}: {message}",
                        env.name
                    ),
                )
                .await;
                if let Some(first) = restored {
                    return Ok(Verification::Rejected(format!(
                        "{first}; the restored version {ours} failed too: {message}"
                    )));
                }
                let failed = format!(
                    "{}: testConnection failed with version {ours} of ESV secret {secret_id}: \
                     {message}",
                    env.name
                );
                let Some(value) = last_verified_value(ctx, integration, env, pushed).await? else {
                    return Ok(Verification::Pending(failed));
                };
                let push = esv::push_secret(
                    &aic.snapshot_view(ctx.observation_age()),
                    secret_id,
                    &value,
                    ESV_DESCRIPTION,
                    MAPPED_SECRET_IN_PLACEHOLDERS,
                )
                .await?;
                let message = format!(
                    "{failed}; version {} holds the last verified credential again \
                     (verified as version {})",
                    push.version,
                    env.verified_version.as_deref().unwrap_or_default()
                );
                ctx.publish_in(
                    integration,
                    &env.name,
                    Some(format!("{secret_id}@{}", push.version)),
                    EventType::Warning,
                    "Rotate",
                    "CredentialRestored",
                    format!(
                        "{}: pushed the last verified credential again as version {} of ESV \
                         secret {secret_id}, replacing the failed version {ours}",
                        env.name, push.version
                    ),
                )
                .await;
                // The failed value is not pushed again while this observation is fresh.
                if let Some(failed_hash) = env.values_hash.clone() {
                    ctx.memos.rejected.record(
                        &memo_key(integration, &env.name),
                        failed_hash,
                        message.clone(),
                    );
                }
                env.secret_version = Some(push.version);
                env.values_hash = env.verified_hash.clone();
                let pending = aic
                    .get_secret(secret_id)
                    .await?
                    .is_none_or(|secret| secret.is_pending());
                if pending {
                    return Ok(Verification::Rejected(format!(
                        "{message}; it waits for a restart to be tested"
                    )));
                }
                restored = Some(message);
            }
        }
    }
}

/// The value that last passed in this environment, if it is at hand and is not the one that
/// failed: it must hash, with the client id now in use, to `verified_hash`.
async fn last_verified_value(
    ctx: &Context,
    integration: &PingOneIntegration,
    env: &EnvironmentStatus,
    pushed: &Pushed<'_>,
) -> Result<Option<SecretString>, ReconcileError> {
    let Some(verified) = env.verified_hash.as_deref() else {
        return Ok(None);
    };
    if env.values_hash.as_deref() == Some(verified) {
        // The value that failed is the verified one: nothing better is known.
        return Ok(None);
    }
    let matches = |value: &SecretString| {
        values_digest(pushed.environment_id, pushed.client_id, value) == verified
    };
    if let Some(previous) = pushed.previous.filter(|p| matches(p)) {
        return Ok(Some(previous.clone()));
    }
    if !pushed.from_secret {
        return Ok(None);
    }
    let namespace = namespace_of(integration);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = api.get_opt(&kept_secret_name(integration)).await? else {
        return Ok(None);
    };
    let data = SecretData::from_secret(&secret);
    Ok(data
        .optional(&env.name)
        .ok()
        .flatten()
        .filter(|v| matches(v)))
}

/// The name of the Secret that keeps an integration's last verified values: the integration's
/// name with `-verified`, shortened to fit a Secret's name.
pub fn kept_secret_name(integration: &PingOneIntegration) -> String {
    const SUFFIX: &str = "-verified";
    let name = integration.name_any();
    let room = 253 - SUFFIX.len();
    let stem = if name.len() > room {
        name[..room].trim_end_matches(['-', '.'])
    } else {
        name.as_str()
    };
    format!("{stem}{SUFFIX}")
}

/// Keeps `value` as the environment's last verified value in the integration's own Secret.
async fn keep_last_verified(
    ctx: &Context,
    integration: &PingOneIntegration,
    environment: &str,
    value: &SecretString,
) -> Result<(), ReconcileError> {
    let namespace = namespace_of(integration);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = kept_secret_name(integration);
    let owner = integration.controller_owner_ref(&()).map(|mut owner| {
        // The integration's deletion must not wait for this Secret.
        owner.block_owner_deletion = Some(false);
        owner
    });
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                MANAGED_BY.0: MANAGED_BY.1,
                super::integration::INTEGRATION_LABEL: integration.name_any(),
            },
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "type": "Opaque",
        "data": { environment: STANDARD.encode(value.expose()) },
    });
    // A merge patch keeps the other environments' keys; the first one creates the Secret.
    let patched = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
        .await;
    match patched {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(err)) if err.code == 404 => {
            let secret: Secret = serde_json::from_value(body)
                .map_err(|err| ReconcileError::invalid("InternalError", err.to_string()))?;
            api.create(&Default::default(), &secret).await?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(name: &str) -> PingOneIntegration {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "pingone-aic.io/v1alpha1",
            "kind": "PingOneIntegration",
            "metadata": { "name": name, "namespace": "default" },
            "spec": { "credentialType": "WorkerApplication", "environments": [{ "name": "dev" }] },
        }))
        .expect("an integration")
    }

    #[test]
    fn the_kept_secret_is_named_after_the_integration_and_fits_a_name() {
        assert_eq!(kept_secret_name(&integration("acme")), "acme-verified");
        let long = format!("{}-x", "a".repeat(250));
        let name = kept_secret_name(&integration(&long));
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with("a-verified"), "{name}");
    }

    #[test]
    fn the_digest_changes_with_each_value_and_hides_them() {
        let secret = SecretString::new("s3cret-value");
        let a = values_digest("env", Some("client"), &secret);
        assert_ne!(a, values_digest("env", Some("other"), &secret));
        assert_ne!(a, values_digest("env2", Some("client"), &secret));
        assert_ne!(
            a,
            values_digest("env", Some("client"), &SecretString::new("x"))
        );
        assert!(!a.contains("s3cret"));
    }
}
