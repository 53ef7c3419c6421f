//! AM configuration: the realm service `pingOneWorkerService`, its `workers` secondary
//! configurations, the realm's ESV secret-store mappings and the worker's `testConnection`.

use std::collections::BTreeMap;

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::{AicClient, AicError, AmApi, ApiFamily, Call, api_version, encode_segment};

/// Service type id of the PingOne Worker Service.
pub const SERVICE: &str = "pingOneWorkerService";
/// Its secondary-configuration collection.
pub const WORKERS: &str = "workers";
/// The ESV secret store (type and id) inside each realm.
pub const ESV_STORE: &str = "secrets/stores/GoogleSecretManagerSecretStoreProvider/ESV";

/// The secret label AM uses for a worker's client secret.
pub fn client_secret_label(identifier: &str) -> String {
    format!("am.services.pingone.worker.{identifier}.clientsecret")
}

/// The secret label AM uses for a worker's JWT credential (product connection).
pub fn credential_label(identifier: &str) -> String {
    format!("am.services.pingone.worker.{identifier}.credential")
}

/// Whether `identifier` is a valid secret label identifier: `a-z A-Z 0-9 .`, not starting or
/// ending with a dot.
pub fn is_valid_label_identifier(identifier: &str) -> bool {
    !identifier.is_empty()
        && !identifier.starts_with('.')
        && !identifier.ends_with('.')
        && identifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// A PingOne worker (secondary configuration of the service).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    /// Id (name); set from the path, never sent in the body.
    #[serde(rename = "_id", default, skip_serializing)]
    pub id: String,
    /// Content-derived revision.
    #[serde(rename = "_rev", default, skip_serializing)]
    pub rev: Option<String>,
    /// Client id, or a placeholder.
    #[serde(default)]
    pub client_id: String,
    /// Client secret label identifier.
    #[serde(default)]
    pub client_secret_purpose: String,
    /// PingOne environment id, or a placeholder.
    #[serde(default)]
    pub environment_id: String,
    /// Regional API URL.
    #[serde(default)]
    pub api_url: String,
    /// Regional auth URL.
    #[serde(default)]
    pub auth_url: String,
    /// JWT-credential (product connection) mode.
    #[serde(default)]
    pub use_credential: bool,
    /// Other attributes, e.g. the credential label field whose name is discovered through the
    /// schema. Read-only `_`-prefixed members are dropped on read.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Worker {
    fn strip_read_only(mut self) -> Self {
        self.other.retain(|name, _| !name.starts_with('_'));
        self
    }

    /// Whether this (read) worker already has everything `desired` sets. Attributes `desired`
    /// leaves out are ignored: AM fills defaults for them.
    pub fn satisfies(&self, desired: &Worker) -> bool {
        self.client_id == desired.client_id
            && self.client_secret_purpose == desired.client_secret_purpose
            && self.environment_id == desired.environment_id
            && self.api_url == desired.api_url
            && self.auth_url == desired.auth_url
            && self.use_credential == desired.use_credential
            && desired
                .other
                .iter()
                .all(|(name, value)| self.other.get(name) == Some(value))
    }
}

/// An ESV secret-store mapping: a secret label → the ESV secret id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// The label (`_id` equals it).
    pub secret_id: String,
    /// Exactly one ESV secret id for the ESV store.
    pub aliases: Vec<String>,
    /// Revision.
    #[serde(rename = "_rev", default, skip_serializing)]
    pub rev: Option<String>,
}

/// Result of `testConnection`.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectionTest {
    /// AM obtained a PingOne token; the body describes the environment.
    Succeeded(serde_json::Value),
    /// AM could not connect; `message` is AM's explanation (never a secret).
    Failed {
        /// AM's message.
        message: String,
        /// AM's detail, when given.
        detail: Option<serde_json::Value>,
    },
}

impl ConnectionTest {
    /// Whether a failed test failed because PingOne could not answer (a 5xx or 429 from its
    /// token endpoint, which AM quotes as `[Status: 502 Bad Gateway]`), not because it refused
    /// the credential: worth testing again before concluding anything.
    pub fn pingone_unavailable(&self) -> bool {
        let ConnectionTest::Failed { message, .. } = self else {
            return false;
        };
        message
            .split("[Status: ")
            .skip(1)
            .filter_map(|rest| rest.get(..3)?.parse::<u16>().ok())
            .any(|status| status >= 500 || status == 429)
    }
}

/// Ensures the realm has the PingOne Worker Service; true when it had to be created.
pub async fn ensure_worker_service<A: AmApi>(api: &A) -> Result<bool, AicError> {
    if api.get_worker_service().await?.is_some() {
        return Ok(false);
    }
    api.create_worker_service().await?;
    Ok(true)
}

/// What [`upsert_worker`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerOutcome {
    /// Already as desired; nothing written.
    Unchanged(Worker),
    /// Written.
    Written(Worker),
}

/// Writes the worker only when its configuration differs (steady state costs no write).
pub async fn upsert_worker<A: AmApi>(
    api: &A,
    id: &str,
    desired: &Worker,
) -> Result<WorkerOutcome, AicError> {
    if let Some(current) = api.get_worker(id).await?
        && current.satisfies(desired)
    {
        return Ok(WorkerOutcome::Unchanged(current));
    }
    Ok(WorkerOutcome::Written(api.put_worker(id, desired).await?))
}

/// Whether `current` maps its label to the ESV secret `alias` alone; no I/O.
pub fn maps_to(current: Option<&Mapping>, alias: &str) -> bool {
    current.is_some_and(|current| current.aliases == [alias])
}

/// Writes the mapping only when it differs.
pub async fn upsert_mapping<A: AmApi>(api: &A, label: &str, alias: &str) -> Result<bool, AicError> {
    if maps_to(api.get_mapping(label).await?.as_ref(), alias) {
        return Ok(false);
    }
    api.put_mapping(&Mapping {
        secret_id: label.to_owned(),
        aliases: vec![alias.to_owned()],
        rev: None,
    })
    .await?;
    Ok(true)
}

/// Finds the JWT-mode credential label field in the workers schema. Its name is not confirmed
/// by any source (probably `credentialPurpose`), so it is discovered: a string property, other
/// than `clientSecretPurpose`, whose name or title mentions "credential".
pub fn credential_field(schema: &serde_json::Value) -> Option<String> {
    let properties = schema.get("properties")?.as_object()?;
    let mut candidates: Vec<&String> = properties
        .iter()
        .filter(|(name, property)| {
            let title = property
                .get("title")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let is_string = property.get("type").and_then(|t| t.as_str()) == Some("string");
            name.as_str() != "clientSecretPurpose"
                && is_string
                && (name.to_ascii_lowercase().contains("credential")
                    || title.contains("credential"))
        })
        .map(|(name, _)| name)
        .collect();
    // Prefer a label-identifier-like name when several match.
    candidates.sort_by_key(|name| (!name.ends_with("Purpose"), name.len()));
    candidates.first().map(|name| (*name).clone())
}

/// Asks the tenant for the name of the JWT credential label field (see [`credential_field`]).
pub async fn discover_credential_field<A: AmApi>(api: &A) -> Result<Option<String>, AicError> {
    Ok(credential_field(&api.worker_schema().await?))
}

fn service_path(client: &AicClient) -> String {
    format!("{}/realm-config/services/{SERVICE}", client.realm_path())
}

fn worker_path(client: &AicClient, id: &str) -> String {
    format!("{}/{WORKERS}/{}", service_path(client), encode_segment(id))
}

fn mapping_path(client: &AicClient, label: &str) -> String {
    format!(
        "{}/realm-config/{ESV_STORE}/mappings/{}",
        client.realm_path(),
        encode_segment(label)
    )
}

fn am(method: Method, path: String) -> Call {
    Call::new(method, ApiFamily::Am, api_version::AM_SERVICES, path)
}

fn store(method: Method, path: String) -> Call {
    Call::new(method, ApiFamily::Am, api_version::AM_SECRET_STORES, path)
}

#[derive(Deserialize)]
struct ResultList<T> {
    result: Vec<T>,
}

impl AicClient {
    pub(crate) async fn am_get_service(&self) -> Result<Option<serde_json::Value>, AicError> {
        self.json_opt(am(Method::GET, service_path(self))).await
    }

    pub(crate) async fn am_create_service(&self) -> Result<serde_json::Value, AicError> {
        self.json(am(Method::PUT, service_path(self)).body(serde_json::json!({"enabled": true})))
            .await
    }

    pub(crate) async fn am_get_worker(&self, id: &str) -> Result<Option<Worker>, AicError> {
        let worker: Option<Worker> = self
            .json_opt(am(Method::GET, worker_path(self, id)))
            .await?;
        Ok(worker.map(Worker::strip_read_only))
    }

    pub(crate) async fn am_put_worker(
        &self,
        id: &str,
        worker: &Worker,
    ) -> Result<Worker, AicError> {
        let body = serde_json::to_value(worker).map_err(|err| AicError::Config(err.to_string()))?;
        let worker: Worker = self
            .json(am(Method::PUT, worker_path(self, id)).body(body))
            .await?;
        Ok(worker.strip_read_only())
    }

    pub(crate) async fn am_delete_worker(&self, id: &str) -> Result<bool, AicError> {
        self.delete(am(Method::DELETE, worker_path(self, id))).await
    }

    pub(crate) async fn am_list_workers(&self) -> Result<Vec<Worker>, AicError> {
        let call = am(Method::POST, service_path(self)).query("_action", "nextdescendents");
        let list: ResultList<Worker> = self.json(call).await?;
        Ok(list
            .result
            .into_iter()
            .map(Worker::strip_read_only)
            .collect())
    }

    pub(crate) async fn am_worker_schema(&self) -> Result<serde_json::Value, AicError> {
        let call = am(Method::POST, format!("{}/{WORKERS}", service_path(self)))
            .query("_action", "schema");
        self.json(call).await
    }

    pub(crate) async fn am_get_mapping(&self, label: &str) -> Result<Option<Mapping>, AicError> {
        self.json_opt(store(Method::GET, mapping_path(self, label)))
            .await
    }

    pub(crate) async fn am_put_mapping(&self, mapping: &Mapping) -> Result<Mapping, AicError> {
        let body =
            serde_json::to_value(mapping).map_err(|err| AicError::Config(err.to_string()))?;
        self.json(store(Method::PUT, mapping_path(self, &mapping.secret_id)).body(body))
            .await
    }

    pub(crate) async fn am_delete_mapping(&self, label: &str) -> Result<bool, AicError> {
        self.delete(store(Method::DELETE, mapping_path(self, label)))
            .await
    }

    pub(crate) async fn am_test_connection(&self, id: &str) -> Result<ConnectionTest, AicError> {
        let call = Call::new(
            Method::POST,
            ApiFamily::Am,
            "resource=1.0",
            worker_path(self, id),
        )
        .query("_action", "testConnection");
        match self.send(&call).await {
            Ok(answer) => Ok(ConnectionTest::Succeeded(super::decode(
                &call,
                &answer.body,
            )?)),
            Err(AicError::Api {
                status: StatusCode::BAD_REQUEST,
                message,
                detail,
                ..
            }) => Ok(ConnectionTest::Failed { message, detail }),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pingone_that_cannot_answer_is_told_from_one_that_refuses() {
        let failed = |message: &str| ConnectionTest::Failed {
            message: message.to_owned(),
            detail: None,
        };
        let prefix = "Failed to retrieve PingOne Worker access token.";
        assert!(failed(&format!("{prefix}[Status: 502 Bad Gateway]-{{}}")).pingone_unavailable());
        assert!(
            failed(&format!("{prefix}[Status: 429 Too Many Requests]-{{}}")).pingone_unavailable()
        );
        assert!(
            !failed(&format!(
                "{prefix}[Status: 401 Unauthorized]-{{\"error\":\"invalid_client\"}}"
            ))
            .pingone_unavailable()
        );
        assert!(!failed("Invalid attribute specified.").pingone_unavailable());
        assert!(!ConnectionTest::Succeeded(serde_json::json!({})).pingone_unavailable());
    }

    #[test]
    fn a_mapping_holds_when_it_names_the_secret_alone() {
        let mapping = |aliases: &[&str]| Mapping {
            secret_id: "label".into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            rev: None,
        };
        assert!(maps_to(Some(&mapping(&["esv-s"])), "esv-s"));
        assert!(!maps_to(Some(&mapping(&["esv-other"])), "esv-s"));
        assert!(!maps_to(Some(&mapping(&["esv-s", "esv-other"])), "esv-s"));
        assert!(!maps_to(None, "esv-s"));
    }

    #[test]
    fn labels_and_identifiers() {
        assert_eq!(
            client_secret_label("pingoneworkeraic"),
            "am.services.pingone.worker.pingoneworkeraic.clientsecret"
        );
        assert_eq!(
            credential_label("x.y"),
            "am.services.pingone.worker.x.y.credential"
        );
        assert!(is_valid_label_identifier("a.B9"));
        assert!(!is_valid_label_identifier(".a"));
        assert!(!is_valid_label_identifier("a."));
        assert!(!is_valid_label_identifier("a-b"));
        assert!(!is_valid_label_identifier(""));
    }

    #[test]
    fn credential_field_is_discovered_from_the_schema() {
        let schema = serde_json::json!({"type":"object","properties":{
            "clientSecretPurpose":{"type":"string","title":"Client Secret Label Identifier"},
            "useCredential":{"type":"boolean","title":"Enable Connection via Credential"},
            "credentialPurpose":{"type":"string","title":"Credential Secret Label Identifier"},
            "clientId":{"type":"string"}}});
        assert_eq!(
            credential_field(&schema).as_deref(),
            Some("credentialPurpose")
        );
        let other = serde_json::json!({"properties":{
            "jwtLabel":{"type":"string","title":"Credential Secret Label Identifier"}}});
        assert_eq!(credential_field(&other).as_deref(), Some("jwtLabel"));
        assert_eq!(
            credential_field(&serde_json::json!({"properties":{}})),
            None
        );
    }

    #[test]
    fn worker_round_trip_drops_read_only_members() {
        let worker: Worker = serde_json::from_value(serde_json::json!({
            "_id":"w","_rev":"1","_type":{"_id":"workers"},"clientId":"c","credentialPurpose":"p"}))
        .unwrap();
        let worker = worker.strip_read_only();
        assert_eq!(worker.id, "w");
        let body = serde_json::to_value(&worker).unwrap();
        assert!(
            body.get("_id").is_none() && body.get("_rev").is_none() && body.get("_type").is_none()
        );
        assert_eq!(body["credentialPurpose"], "p");
    }
}
