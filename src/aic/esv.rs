//! ESV variables and secrets (`/environment/variables`, `/environment/secrets`) and the
//! procedures built on them: a variable upsert that never changes `expressionType`, and a secret
//! push that creates once and then only adds versions, detecting "same value, no new version".

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use serde::{Deserialize, Serialize};

use super::{AicClient, AicError, ApiFamily, Call, EsvApi, api_version, encode_segment};
use crate::secret::SecretString;

/// An ESV variable as AIC returns it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// The ESV id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Type, fixed at creation (`""` on legacy variables).
    #[serde(default)]
    pub expression_type: String,
    /// The value, base64 (v1 reads include it).
    #[serde(default)]
    pub value_base64: Option<String>,
    /// Whether the running services use this value (false until a restart).
    #[serde(default)]
    pub loaded: bool,
    /// When it last changed.
    #[serde(default)]
    pub last_change_date: Option<String>,
    /// Who changed it last.
    #[serde(default)]
    pub last_changed_by: Option<String>,
}

/// Body of a variable PUT.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariableWrite {
    /// Standard base64 with padding.
    pub value_base64: String,
    /// Description (≤ 1000 characters).
    pub description: String,
    /// Type; AIC requires it on creation and refuses to change it later.
    pub expression_type: String,
}

/// ESV secret metadata. AIC never returns the value.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// The ESV id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Highest-numbered enabled version.
    #[serde(default)]
    pub active_version: String,
    /// Version the running services hold (`""` if none).
    #[serde(default)]
    pub loaded_version: String,
    /// Whether the active version is loaded.
    #[serde(default)]
    pub loaded: bool,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `generic | pem | base64hmac | base64aes`.
    #[serde(default)]
    pub encoding: String,
    /// Whether `&{esv…}` placeholders may reference it.
    #[serde(default)]
    pub use_in_placeholders: bool,
    /// When it last changed.
    #[serde(default)]
    pub last_change_date: Option<String>,
    /// Who changed it last.
    #[serde(default)]
    pub last_changed_by: Option<String>,
}

impl Secret {
    /// Whether a restart is needed for the running services to see the active version.
    pub fn is_pending(&self) -> bool {
        self.use_in_placeholders && self.active_version != self.loaded_version
    }
}

/// What a secret is created with. `Debug` hides the value.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretCreate {
    /// Standard base64 of the value.
    pub value_base64: SecretString,
    /// `generic` for client secrets and JWTs.
    pub encoding: String,
    /// Whether placeholders may reference it.
    pub use_in_placeholders: bool,
    /// Description.
    pub description: String,
}

/// One version of a secret.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    /// Version number as a string.
    pub version: String,
    /// `ENABLED`, `DISABLED` or `DESTROYED`.
    pub status: String,
    /// Whether this is the version the running services hold.
    #[serde(default)]
    pub loaded: bool,
    /// Creation time.
    #[serde(default)]
    pub create_date: Option<String>,
}

/// Status a version can be changed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionStatus {
    /// Usable through mappings and (if latest) placeholders.
    Enabled,
    /// Kept but unused.
    Disabled,
}

impl VersionStatus {
    fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Enabled => "ENABLED",
            VersionStatus::Disabled => "DISABLED",
        }
    }
}

/// `GET /environment/count` answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EsvCount {
    /// Secrets (pending ones, with `_onlyPending`).
    pub secrets: u64,
    /// Variables (pending ones, with `_onlyPending`).
    pub variables: u64,
}

impl EsvCount {
    /// Whether anything waits for a restart.
    pub fn any(&self) -> bool {
        self.secrets > 0 || self.variables > 0
    }
}

/// Standard base64 with padding, as the ESV API wants values.
pub fn encode_value(value: &str) -> String {
    STANDARD.encode(value.as_bytes())
}

/// The placeholder AM configuration uses for an ESV: `esv-a-b` → `&{esv.a.b}`.
pub fn placeholder(esv_id: &str) -> String {
    format!("&{{{}}}", esv_id.replace('-', "."))
}

/// Whether `id` is a valid ESV id: `esv-[a-z0-9_-]+`, at most 124 characters in total.
pub fn is_valid_id(id: &str) -> bool {
    id.len() <= 124
        && id.strip_prefix("esv-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// What [`upsert_variable`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum VariableOutcome {
    /// Value and description already matched; nothing was written.
    Unchanged(Variable),
    /// The variable was created.
    Created(Variable),
    /// The variable was updated.
    Updated(Variable),
}

impl VariableOutcome {
    /// The variable as AIC now has it.
    pub fn variable(&self) -> &Variable {
        match self {
            VariableOutcome::Unchanged(v)
            | VariableOutcome::Created(v)
            | VariableOutcome::Updated(v) => v,
        }
    }
}

/// The write a variable needs to hold a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VariableChange {
    /// The variable does not exist: create it.
    Create,
    /// The value differs: write it (the services load it at the next restart).
    Update,
    /// Only the description differs: set it alone, which leaves the value loaded.
    Describe,
}

/// Which write, if any, makes `existing` hold `value` with `description`; no I/O. An existing
/// variable of another type is an error rather than a silent recreate, because deleting it
/// would break placeholders until a restart.
pub fn variable_change(
    existing: Option<&Variable>,
    id: &str,
    value: &str,
    description: &str,
    expression_type: &str,
) -> Result<Option<VariableChange>, AicError> {
    let Some(existing) = existing else {
        return Ok(Some(VariableChange::Create));
    };
    if !existing.expression_type.is_empty() && existing.expression_type != expression_type {
        return Err(AicError::VariableTypeMismatch {
            id: id.to_owned(),
            existing: existing.expression_type.clone(),
            wanted: expression_type.to_owned(),
        });
    }
    if existing.value_base64.as_deref() != Some(encode_value(value).as_str()) {
        return Ok(Some(VariableChange::Update));
    }
    Ok((existing.description != description).then_some(VariableChange::Describe))
}

/// Makes a variable hold `value`, writing only when it differs ([`variable_change`] decides).
/// `expression_type` is set at creation.
pub async fn upsert_variable<A: EsvApi>(
    api: &A,
    id: &str,
    value: &str,
    description: &str,
    expression_type: &str,
) -> Result<VariableOutcome, AicError> {
    let existing = api.get_variable(id).await?;
    let change = variable_change(existing.as_ref(), id, value, description, expression_type)?;
    match (change, existing) {
        (None, Some(existing)) => Ok(VariableOutcome::Unchanged(existing)),
        // A PUT would count as an update of the value ("loaded: false after any update"),
        // costing a restart for a description.
        (Some(VariableChange::Describe), Some(existing)) => {
            api.set_variable_description(id, description).await?;
            Ok(VariableOutcome::Updated(Variable {
                description: description.to_owned(),
                ..existing
            }))
        }
        (_, existing) => {
            let written = api
                .put_variable(
                    id,
                    &VariableWrite {
                        value_base64: encode_value(value),
                        description: description.to_owned(),
                        expression_type: expression_type.to_owned(),
                    },
                )
                .await?;
            Ok(if existing.is_some() {
                VariableOutcome::Updated(written)
            } else {
                VariableOutcome::Created(written)
            })
        }
    }
}

/// What [`push_secret`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretPush {
    /// The secret did not exist and was created.
    pub created: bool,
    /// A new version was added (false when AIC deduplicated an identical value).
    pub new_version: bool,
    /// The version that now holds the value.
    pub version: String,
}

/// Stores `value` in a secret: creates it if absent (PUT is create-only), otherwise adds a
/// version. AIC answers an identical value with the existing latest version, so "unchanged" is
/// read from the returned version number, not from `loaded`.
pub async fn push_secret<A: EsvApi>(
    api: &A,
    id: &str,
    value: &SecretString,
    description: &str,
    use_in_placeholders: bool,
) -> Result<SecretPush, AicError> {
    let value_base64 = SecretString::new(encode_value(value.expose()));
    match api.get_secret(id).await? {
        None => {
            let secret = api
                .create_secret(
                    id,
                    &SecretCreate {
                        value_base64,
                        encoding: "generic".into(),
                        use_in_placeholders,
                        description: description.to_owned(),
                    },
                )
                .await?;
            Ok(SecretPush {
                created: true,
                new_version: true,
                version: secret.active_version,
            })
        }
        Some(existing) => {
            let version = api.create_secret_version(id, &value_base64).await?;
            Ok(SecretPush {
                created: false,
                new_version: version.version != existing.active_version,
                version: version.version,
            })
        }
    }
}

/// The active version among `versions`: the highest-numbered enabled one, which is what AM
/// presents through a mapping.
pub fn active_version(versions: &[SecretVersion]) -> Option<&str> {
    versions
        .iter()
        .filter(|v| v.status == "ENABLED")
        .max_by_key(|v| v.version.parse::<u64>().unwrap_or_default())
        .map(|v| v.version.as_str())
}

/// Disables every enabled version among `versions` (the secret's listing) other than `keep`,
/// once `keep` is verified. AM presents only the active (latest enabled) version of a mapped
/// secret; older enabled versions still validate what was signed with them, so a superseded
/// credential is retired here rather than left usable.
pub async fn disable_other_versions<A: EsvApi>(
    api: &A,
    id: &str,
    versions: &[SecretVersion],
    keep: &str,
) -> Result<Vec<String>, AicError> {
    let mut disabled = Vec::new();
    for version in versions {
        if version.version != keep && version.status == "ENABLED" {
            api.set_secret_version_status(id, &version.version, VersionStatus::Disabled)
                .await?;
            disabled.push(version.version.clone());
        }
    }
    Ok(disabled)
}

fn variable_path(id: &str) -> String {
    format!("/environment/variables/{}", encode_segment(id))
}

fn secret_path(id: &str) -> String {
    format!("/environment/secrets/{}", encode_segment(id))
}

fn esv(method: Method, path: String) -> Call {
    Call::new(method, ApiFamily::Esv, api_version::ESV, path)
}

impl AicClient {
    pub(crate) async fn esv_get_variable(&self, id: &str) -> Result<Option<Variable>, AicError> {
        self.json_opt(esv(Method::GET, variable_path(id))).await
    }

    pub(crate) async fn esv_put_variable(
        &self,
        id: &str,
        write: &VariableWrite,
    ) -> Result<Variable, AicError> {
        let body = serde_json::to_value(write).map_err(|err| AicError::Config(err.to_string()))?;
        let written: Variable = self
            .json(
                esv(Method::PUT, variable_path(id))
                    .body(body)
                    .written_through(),
            )
            .await?;
        self.snapshots()
            .variable_written(self.origin().as_str(), &written);
        Ok(written)
    }

    pub(crate) async fn esv_set_variable_description(
        &self,
        id: &str,
        description: &str,
    ) -> Result<(), AicError> {
        let call = esv(Method::POST, variable_path(id))
            .query("_action", "setDescription")
            .body(serde_json::json!({ "description": description }));
        self.send(&call).await.map(|_| ())
    }

    pub(crate) async fn esv_delete_variable(&self, id: &str) -> Result<bool, AicError> {
        self.delete(esv(Method::DELETE, variable_path(id))).await
    }

    pub(crate) async fn esv_get_secret(&self, id: &str) -> Result<Option<Secret>, AicError> {
        self.json_opt(esv(Method::GET, secret_path(id))).await
    }

    pub(crate) async fn esv_create_secret(
        &self,
        id: &str,
        create: &SecretCreate,
    ) -> Result<Secret, AicError> {
        let body = serde_json::json!({
            "valueBase64": create.value_base64.expose(),
            "encoding": create.encoding,
            "useInPlaceholders": create.use_in_placeholders,
            "description": create.description,
        });
        let created: Secret = self
            .json(
                esv(Method::PUT, secret_path(id))
                    .body(body)
                    .written_through(),
            )
            .await?;
        self.snapshots()
            .secret_created(self.origin().as_str(), &created);
        Ok(created)
    }

    pub(crate) async fn esv_create_version(
        &self,
        id: &str,
        value_base64: &SecretString,
    ) -> Result<SecretVersion, AicError> {
        let body = serde_json::json!({ "valueBase64": value_base64.expose() });
        let call = esv(Method::POST, format!("{}/versions", secret_path(id)))
            .query("_action", "create")
            .body(body);
        self.json(call).await
    }

    pub(crate) async fn esv_list_versions(&self, id: &str) -> Result<Vec<SecretVersion>, AicError> {
        self.json(esv(Method::GET, format!("{}/versions", secret_path(id))))
            .await
    }

    pub(crate) async fn esv_set_version_status(
        &self,
        id: &str,
        version: &str,
        status: VersionStatus,
    ) -> Result<SecretVersion, AicError> {
        let call = esv(
            Method::POST,
            format!("{}/versions/{}", secret_path(id), encode_segment(version)),
        )
        .query("_action", "changestatus")
        .body(serde_json::json!({ "status": status.as_str() }));
        self.json(call).await
    }

    pub(crate) async fn esv_destroy_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<SecretVersion, AicError> {
        let call = esv(
            Method::DELETE,
            format!("{}/versions/{}", secret_path(id), encode_segment(version)),
        );
        self.json(call).await
    }

    pub(crate) async fn esv_delete_secret(&self, id: &str) -> Result<bool, AicError> {
        self.delete(esv(Method::DELETE, secret_path(id))).await
    }

    pub(crate) async fn esv_pending_count(&self) -> Result<EsvCount, AicError> {
        let call = Call::new(
            Method::GET,
            ApiFamily::Esv,
            api_version::ESV_COUNT,
            "/environment/count".into(),
        )
        .query("_onlyPending", "true");
        self.json(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_a_variable_needs_follows_from_what_aic_holds() {
        let held = Variable {
            id: "esv-a".into(),
            description: "d".into(),
            expression_type: "string".into(),
            value_base64: Some(encode_value("v")),
            loaded: true,
            last_change_date: None,
            last_changed_by: None,
        };
        let change = |existing: Option<&Variable>, value, description| {
            variable_change(existing, "esv-a", value, description, "string").unwrap()
        };
        assert_eq!(change(None, "v", "d"), Some(VariableChange::Create));
        assert_eq!(change(Some(&held), "v", "d"), None);
        assert_eq!(change(Some(&held), "w", "d"), Some(VariableChange::Update));
        assert_eq!(
            change(Some(&held), "v", "other"),
            Some(VariableChange::Describe)
        );
        let err = variable_change(Some(&held), "esv-a", "v", "d", "int").unwrap_err();
        assert!(
            matches!(err, AicError::VariableTypeMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn ids_placeholders_and_values() {
        assert!(is_valid_id("esv-pingone-worker-client-id"));
        assert!(is_valid_id("esv-a_b"));
        assert!(!is_valid_id("esv-"));
        assert!(!is_valid_id("esv-Upper"));
        assert!(!is_valid_id("var-x"));
        assert!(!is_valid_id(&format!("esv-{}", "a".repeat(121))));
        assert!(is_valid_id(&format!("esv-{}", "a".repeat(120))));
        assert_eq!(
            placeholder("esv-pingone-worker-client-id"),
            "&{esv.pingone.worker.client.id}"
        );
        assert_eq!(encode_value("ab"), "YWI=");
    }

    #[test]
    fn secret_create_debug_hides_the_value() {
        let create = SecretCreate {
            value_base64: SecretString::new("c3VwZXJzZWNyZXQ="),
            encoding: "generic".into(),
            use_in_placeholders: true,
            description: "d".into(),
        };
        assert!(!format!("{create:?}").contains("c3VwZXJzZWNyZXQ="));
    }

    #[test]
    fn pending_means_placeholder_usable_and_not_loaded() {
        let mut secret: Secret = serde_json::from_value(serde_json::json!({
            "_id": "esv-x", "activeVersion": "2", "loadedVersion": "1", "useInPlaceholders": true,
            "description": "", "encoding": "generic", "loaded": false
        }))
        .unwrap();
        assert!(secret.is_pending());
        secret.use_in_placeholders = false;
        assert!(!secret.is_pending());
    }
}
