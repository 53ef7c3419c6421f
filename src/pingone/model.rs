//! The PingOne resources the operator reads and writes, as the client sees them: lenient on
//! input (unknown fields ignored, polymorphic applications read into one struct with optional
//! fields) and exact on output (request bodies built by the functions at the end, which the
//! contract tests check against the vendor's schemas).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::secret::SecretString;

/// A reference to another resource by id (`{"id": "…"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    /// The referenced resource's id.
    #[serde(default)]
    pub id: String,
}

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenAuthMethod {
    /// HTTP Basic authentication with client id and secret.
    #[default]
    ClientSecretBasic,
    /// Client id and secret as form fields.
    ClientSecretPost,
}

impl TokenAuthMethod {
    /// The spec's enum value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "CLIENT_SECRET_BASIC",
            TokenAuthMethod::ClientSecretPost => "CLIENT_SECRET_POST",
        }
    }
}

/// An application as read from PingOne. Only the fields the operator uses are typed; the rest
/// of the body is kept so a full replace (PUT) can send it back unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Application id, which is also the OAuth client id.
    #[serde(default)]
    pub id: String,
    /// Display name; not unique.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether tokens may be issued to it.
    #[serde(default)]
    pub enabled: bool,
    /// `WORKER`, `WEB_APP`, …
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `OPENID_CONNECT`, `SAML`, …
    #[serde(default)]
    pub protocol: String,
    /// OAuth grant types.
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Token endpoint authentication method, as PingOne spells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The environment the application lives in.
    #[serde(default)]
    pub environment: IdRef,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Last update time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// The desired state of a worker application the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerApplication {
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Whether tokens may be issued to it.
    pub enabled: bool,
    /// Token endpoint authentication method.
    pub token_endpoint_auth_method: TokenAuthMethod,
}

impl WorkerApplication {
    /// Whether an application read from PingOne already matches this desired state.
    pub fn matches(&self, app: &Application) -> bool {
        app.name == self.name
            && app.description == self.description
            && app.enabled == self.enabled
            && app.kind == "WORKER"
            && app.protocol == "OPENID_CONNECT"
            && app.grant_types == ["CLIENT_CREDENTIALS"]
            && app.token_endpoint_auth_method.as_deref()
                == Some(self.token_endpoint_auth_method.as_str())
    }
}

/// An application's current secret and, during an overlap, the previous one.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ApplicationSecret {
    /// The current secret.
    pub secret: SecretString,
    /// The previous secret while it is still valid.
    #[serde(default)]
    pub previous: Option<PreviousSecret>,
}

/// The previous secret of an application after a rotation with overlap.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousSecret {
    /// The previous secret, returned only while it has not expired.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// When it stops working (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// When it was last used (RFC 3339).
    #[serde(default)]
    pub last_used: Option<String>,
}

/// A built-in or custom admin role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    /// Role id.
    pub id: String,
    /// Role name, e.g. `Identity Data Admin`.
    #[serde(default)]
    pub name: String,
    /// Scope types the role can be assigned at.
    #[serde(default)]
    pub applicable_to: Vec<String>,
}

/// Scope type of a role assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScopeType {
    /// The whole organization.
    Organization,
    /// One environment.
    Environment,
    /// One population.
    Population,
    /// One application.
    Application,
}

/// Where a role assignment applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// Id of the organization, environment, population or application.
    pub id: String,
    /// What `id` names.
    #[serde(rename = "type")]
    pub kind: ScopeType,
}

impl Scope {
    /// An environment scope.
    pub fn environment(id: impl Into<String>) -> Self {
        Scope {
            id: id.into(),
            kind: ScopeType::Environment,
        }
    }
}

/// A role assignment of an application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    /// Assignment id.
    pub id: String,
    /// The role.
    pub role: IdRef,
    /// Where it applies.
    pub scope: Scope,
    /// Whether the current actor may not delete it.
    #[serde(default)]
    pub read_only: bool,
}

/// The outcome of asking for a role assignment.
#[derive(Clone, Debug, PartialEq)]
pub enum AssignmentOutcome {
    /// A new assignment was made.
    Created(RoleAssignment),
    /// An identical assignment exists (returned), or PingOne reports an overlapping one
    /// (e.g. the same role at a broader scope) that the caller cannot see as identical.
    AlreadyPresent(Option<RoleAssignment>),
}

/// A PingOne environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Environment id.
    pub id: String,
    /// Name, unique within the organization.
    #[serde(default)]
    pub name: String,
    /// Region code (`NA`, `EU`, …), kept as text because the spec allows other strings.
    #[serde(default)]
    pub region: String,
    /// `PRODUCTION` or `SANDBOX`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `ACTIVE` or `DELETE_PENDING`.
    #[serde(default)]
    pub status: Option<String>,
    /// The organization it belongs to.
    #[serde(default)]
    pub organization: Option<IdRef>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A HAL collection page (`EntityArray`).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Page {
    #[serde(default, rename = "_embedded")]
    pub embedded: serde_json::Map<String, Value>,
    #[serde(default, rename = "_links")]
    pub links: serde_json::Map<String, Value>,
}

impl Page {
    pub(crate) fn next_href(&self) -> Option<&str> {
        self.links.get("next")?.get("href")?.as_str()
    }
}

/// The body that creates a worker application: `assignActorRoles: false`, so the new worker
/// does not inherit the operator's own (possibly organization-wide) roles.
pub fn create_application_body(app: &WorkerApplication) -> Value {
    let mut body = replace_application_body(app);
    body["assignActorRoles"] = Value::Bool(false);
    body
}

/// The body that replaces a worker application (PUT is a full replace, so every field we
/// want to keep is sent).
pub fn replace_application_body(app: &WorkerApplication) -> Value {
    let mut body = json!({
        "name": app.name,
        "enabled": app.enabled,
        "type": "WORKER",
        "protocol": "OPENID_CONNECT",
        "grantTypes": ["CLIENT_CREDENTIALS"],
        "tokenEndpointAuthMethod": app.token_endpoint_auth_method.as_str(),
    });
    if let Some(description) = &app.description {
        body["description"] = Value::String(description.clone());
    }
    body
}

/// The body that rotates a secret; with `previous_expires_at` the old secret stays valid
/// until then.
pub fn rotate_secret_body(previous_expires_at: Option<jiff::Timestamp>) -> Value {
    match previous_expires_at {
        Some(at) => json!({ "previous": { "expiresAt": format_time(at) } }),
        None => json!({}),
    }
}

/// The body that creates a role assignment.
pub fn role_assignment_body(role_id: &str, scope: &Scope) -> Value {
    json!({ "role": { "id": role_id }, "scope": scope })
}

/// RFC 3339 with milliseconds and `Z`, as PingOne writes times.
pub fn format_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_turns_off_actor_roles_and_replace_body_omits_it() {
        let app = WorkerApplication {
            name: "aic-worker".into(),
            description: None,
            enabled: true,
            token_endpoint_auth_method: TokenAuthMethod::ClientSecretPost,
        };
        let create = create_application_body(&app);
        assert_eq!(create["assignActorRoles"], false);
        assert_eq!(create["tokenEndpointAuthMethod"], "CLIENT_SECRET_POST");
        assert!(
            replace_application_body(&app)
                .get("assignActorRoles")
                .is_none()
        );
    }

    #[test]
    fn an_application_read_back_matches_its_desired_state() {
        let app = WorkerApplication {
            name: "w".into(),
            description: Some("d".into()),
            enabled: true,
            token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
        };
        let mut read: Application =
            serde_json::from_value(replace_application_body(&app)).unwrap_or_default();
        read.id = "x".into();
        assert!(app.matches(&read));
        read.enabled = false;
        assert!(!app.matches(&read));
    }

    #[test]
    fn times_are_written_like_pingone_does() {
        let at: jiff::Timestamp = "2026-05-08T10:00:00Z".parse().unwrap();
        assert_eq!(format_time(at), "2026-05-08T10:00:00.000Z");
        assert_eq!(
            rotate_secret_body(Some(at))["previous"]["expiresAt"],
            "2026-05-08T10:00:00.000Z"
        );
    }
}
