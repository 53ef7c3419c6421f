//! Kubernetes Secret data → typed credentials. Secrets are read with a GET when a reconcile
//! needs their data (the operator keeps no cache of Secret data; when is decided in
//! [`crate::controller::secrets`]); what comes out wraps every secret value in
//! [`SecretString`], so `Debug` never prints one, and errors name Secrets and keys, never
//! values.
//!
//! Key conventions (documented on the CRD fields that reference the Secrets):
//! - PingOne admin worker and existing workers: `clientId`, `clientSecret`, optional
//!   `environmentId`.
//! - Product connection: `credential`, a signed JWT.
//! - AIC service account: the key named by `privateKeySecretRef.key`, a private JWK.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::secret::SecretString;

/// Why credentials could not be read from a Secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The Secret does not exist.
    #[error("Secret {name:?} does not exist in namespace {namespace:?}")]
    SecretNotFound {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },
    /// The Secret lacks a key.
    #[error("Secret {name:?} has no key {key:?}")]
    KeyMissing {
        /// Name of the Secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// The key holds an empty value, or only whitespace.
    #[error("Secret {name:?} key {key:?} is empty")]
    EmptyValue {
        /// Name of the Secret.
        name: String,
        /// The key concerned.
        key: String,
    },
    /// The key's value is not UTF-8 text.
    #[error("Secret {name:?} key {key:?} is not UTF-8 text")]
    NotText {
        /// Name of the Secret.
        name: String,
        /// The key concerned.
        key: String,
    },
    /// The value does not have the expected form (the reason never quotes the value).
    #[error("Secret {name:?} key {key:?} is not a valid {expected}: {reason}")]
    Malformed {
        /// Name of the Secret.
        name: String,
        /// The key concerned.
        key: String,
        /// What the value should be, e.g. "JWT".
        expected: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The Kubernetes API could not be read.
    #[error("cannot read Secret {name:?}: {source}")]
    Kube {
        /// Name of the Secret.
        name: String,
        /// The client error.
        source: kube::Error,
    },
}

impl CredentialError {
    /// Stable reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::SecretNotFound { .. } => "SecretNotFound",
            CredentialError::KeyMissing { .. } => "SecretKeyMissing",
            CredentialError::EmptyValue { .. } | CredentialError::NotText { .. } => {
                "SecretValueInvalid"
            }
            CredentialError::Malformed { .. } => "CredentialMalformed",
            CredentialError::Kube { .. } => "KubernetesApiError",
        }
    }

    /// Whether retrying may help without anyone changing the Secret.
    pub fn is_transient(&self) -> bool {
        matches!(self, CredentialError::Kube { .. })
    }
}

/// The data of one Secret, with the identity that says when it changed.
#[derive(Clone, Debug)]
pub struct SecretData {
    name: String,
    /// The Secret's uid; with `resource_version`, keys caches of derived tokens.
    pub uid: String,
    /// The Secret's resourceVersion.
    pub resource_version: String,
    values: BTreeMap<String, SecretString>,
    undecodable: Vec<String>,
}

impl SecretData {
    /// Reads a Secret's data, `stringData` already folded in by the API server.
    pub fn from_secret(secret: &Secret) -> Self {
        let mut values = BTreeMap::new();
        let mut undecodable = Vec::new();
        for (key, bytes) in secret.data.iter().flatten() {
            match String::from_utf8(bytes.0.clone()) {
                Ok(text) => {
                    values.insert(key.clone(), SecretString::new(text));
                }
                Err(_) => undecodable.push(key.clone()),
            }
        }
        // A Secret built in memory (tests, the playground) may still carry stringData.
        for (key, text) in secret.string_data.iter().flatten() {
            values.insert(key.clone(), SecretString::new(text.clone()));
        }
        Self {
            name: secret.metadata.name.clone().unwrap_or_default(),
            uid: secret.metadata.uid.clone().unwrap_or_default(),
            resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
            values,
            undecodable,
        }
    }

    /// Fetches a Secret of `namespace` and reads its data.
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, CredentialError> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(Some(secret)) => Ok(Self::from_secret(&secret)),
            Ok(None) => Err(CredentialError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            Err(source) => Err(CredentialError::Kube {
                name: name.to_owned(),
                source,
            }),
        }
    }

    /// Name of the Secret.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A value that must be present and non-blank; surrounding whitespace (a trailing newline
    /// from `kubectl create secret --from-file`) is trimmed.
    pub fn required(&self, key: &str) -> Result<SecretString, CredentialError> {
        self.optional(key)?
            .ok_or_else(|| CredentialError::KeyMissing {
                name: self.name.clone(),
                key: key.to_owned(),
            })
    }

    /// A value that may be absent; present but blank is an error.
    pub fn optional(&self, key: &str) -> Result<Option<SecretString>, CredentialError> {
        if self.undecodable.iter().any(|k| k == key) {
            return Err(CredentialError::NotText {
                name: self.name.clone(),
                key: key.to_owned(),
            });
        }
        match self.values.get(key) {
            None => Ok(None),
            Some(value) if value.expose().trim().is_empty() => Err(CredentialError::EmptyValue {
                name: self.name.clone(),
                key: key.to_owned(),
            }),
            Some(value) => Ok(Some(SecretString::new(value.expose().trim()))),
        }
    }
}

/// A PingOne worker's client credentials: the operator's admin worker, or an existing worker
/// the operator does not manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The worker's client id (its application id).
    pub client_id: String,
    /// The worker's client secret.
    pub client_secret: SecretString,
    /// The environment the worker lives in, when the Secret says.
    pub environment_id: Option<String>,
}

impl ClientCredentials {
    /// Reads `clientId`, `clientSecret` and the optional `environmentId`.
    pub fn from_secret(data: &SecretData) -> Result<Self, CredentialError> {
        Ok(Self {
            client_id: data.required("clientId")?.expose().to_owned(),
            client_secret: data.required("clientSecret")?,
            environment_id: data
                .optional("environmentId")?
                .map(|v| v.expose().to_owned()),
        })
    }
}

/// A product connection's signed JWT credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionCredential(pub SecretString);

impl ConnectionCredential {
    /// Reads the `credential` key and checks that it is shaped like a signed JWT: three
    /// base64url parts whose header is JSON naming an algorithm.
    pub fn from_secret(data: &SecretData) -> Result<Self, CredentialError> {
        let key = "credential";
        let value = data.required(key)?;
        let malformed = |reason: &str| CredentialError::Malformed {
            name: data.name().to_owned(),
            key: key.to_owned(),
            expected: "JWT",
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = value.expose().split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed(
                "a JWT has three non-empty parts separated by '.'",
            ));
        }
        let header = URL_SAFE_NO_PAD
            .decode(parts[0])
            .map_err(|_| malformed("the header is not base64url"))?;
        let header: serde_json::Value =
            serde_json::from_slice(&header).map_err(|_| malformed("the header is not JSON"))?;
        if header.get("alg").and_then(|a| a.as_str()).is_none() {
            return Err(malformed("the header names no algorithm"));
        }
        if URL_SAFE_NO_PAD.decode(parts[1]).is_err() {
            return Err(malformed("the payload is not base64url"));
        }
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(entries: &[(&str, &[u8])]) -> SecretData {
        let mut secret = Secret::default();
        secret.metadata.name = Some("creds".into());
        secret.metadata.uid = Some("uid-1".into());
        secret.metadata.resource_version = Some("7".into());
        secret.data = Some(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
                .collect(),
        );
        SecretData::from_secret(&secret)
    }

    #[test]
    fn client_credentials_read_their_keys_and_trim_newlines() {
        let data = secret(&[("clientId", b"app-1\n"), ("clientSecret", b"very-secret\n")]);
        let credentials = ClientCredentials::from_secret(&data).unwrap();
        assert_eq!(credentials.client_id, "app-1");
        assert_eq!(credentials.client_secret.expose(), "very-secret");
        assert_eq!(credentials.environment_id, None);
        assert!(!format!("{credentials:?}").contains("very-secret"));
        assert_eq!(data.uid, "uid-1");
        assert_eq!(data.resource_version, "7");
    }

    #[test]
    fn missing_empty_and_binary_values_are_specific_errors() {
        type Entries<'a> = &'a [(&'a str, &'a [u8])];
        let cases: [(Entries, &str, &str); 3] = [
            (
                &[("clientId", b"app")],
                "SecretKeyMissing",
                r#"Secret "creds" has no key "clientSecret""#,
            ),
            (
                &[("clientId", b"app"), ("clientSecret", b"  \n")],
                "SecretValueInvalid",
                r#"Secret "creds" key "clientSecret" is empty"#,
            ),
            (
                &[("clientId", b"app"), ("clientSecret", &[0xff, 0xfe])],
                "SecretValueInvalid",
                r#"Secret "creds" key "clientSecret" is not UTF-8 text"#,
            ),
        ];
        for (entries, reason, message) in cases {
            let err = ClientCredentials::from_secret(&secret(entries)).unwrap_err();
            assert_eq!(err.reason(), reason);
            assert_eq!(err.to_string(), message);
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn connection_credentials_must_be_jwt_shaped() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let good = format!("{header}.{payload}.c2ln");
        let credential =
            ConnectionCredential::from_secret(&secret(&[("credential", good.as_bytes())])).unwrap();
        assert_eq!(credential.0.expose(), good);
        assert!(!format!("{credential:?}").contains(&payload));

        let no_alg = format!("{}.{payload}.c2ln", URL_SAFE_NO_PAD.encode(b"{}"));
        for (bad, reason) in [
            ("not-a-jwt", "three non-empty parts"),
            ("a..c", "three non-empty parts"),
            ("%%%.e30.c2ln", "header is not base64url"),
            ("bm90IGpzb24.e30.c2ln", "header is not JSON"),
            (no_alg.as_str(), "names no algorithm"),
        ] {
            let err = ConnectionCredential::from_secret(&secret(&[("credential", bad.as_bytes())]))
                .unwrap_err();
            assert_eq!(err.reason(), "CredentialMalformed");
            let message = err.to_string();
            assert!(message.contains(reason), "{bad}: {message}");
            assert!(
                !message.contains(bad) || bad.len() < 4,
                "the value leaked: {message}"
            );
        }
    }
}
