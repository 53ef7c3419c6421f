//! Kubernetes Secrets as credential sources. Their versions (uid and resourceVersion) come from
//! a metadata-only watch, so a reconcile knows whether a Secret changed without reading it;
//! their data is read with a GET only when a token must be minted or requested, when the
//! version changed, or when the watch does not know the Secret (yet). Nothing here keeps Secret
//! data: the readers hand a value to the one call that needs it.

use std::fmt;
use std::future::Future;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::aic::{self, AicError};
use crate::credentials::{ClientCredentials, CredentialError, SecretData};
use crate::pingone::{self, PingOneError};
use crate::secret::SecretString;

/// The identity of one version of a Secret: a new uid (re-created) or resourceVersion (changed)
/// means its data may differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    /// The Secret's uid.
    pub uid: String,
    /// The Secret's resourceVersion.
    pub resource_version: String,
}

impl SecretVersion {
    /// The version of Secret data read with a GET.
    pub fn of(data: &SecretData) -> Self {
        Self {
            uid: data.uid.clone(),
            resource_version: data.resource_version.clone(),
        }
    }

    /// Names what is derived from `key` of this version, for caches.
    pub fn id(&self, key: &str) -> String {
        format!("secret:{}/{}/{key}", self.uid, self.resource_version)
    }
}

/// The Secrets of one scope: their metadata as the watch last saw it, and the client to read
/// their data.
#[derive(Clone)]
pub struct Secrets {
    client: kube::Client,
    versions: Option<Store<PartialObjectMeta<Secret>>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("watched", &self.versions.is_some())
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Secrets read with a GET on every use (no watch): for tools and tests that build clients
    /// outside the controllers.
    pub fn unwatched(client: kube::Client) -> Self {
        Self {
            client,
            versions: None,
        }
    }

    /// Secrets whose versions a metadata-only watch of `api` keeps; the watch runs while the
    /// returned future is polled.
    pub fn watched(
        client: kube::Client,
        api: kube::Api<PartialObjectMeta<Secret>>,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let watch = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|event| async move {
                if let Err(err) = event {
                    tracing::debug!(error = %err, "Secret metadata watch");
                }
            });
        (
            Self {
                client,
                versions: Some(store),
            },
            watch,
        )
    }

    /// The Kubernetes client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The version of a Secret as the watch last saw it; `None` when the watch does not know it
    /// (not synced yet, or no such Secret): the caller reads it instead.
    pub fn version(&self, namespace: &str, name: &str) -> Option<SecretVersion> {
        let secret = self
            .versions
            .as_ref()?
            .get(&ObjectRef::new(name).within(namespace))?;
        Some(SecretVersion {
            uid: secret.metadata.uid.clone()?,
            resource_version: secret.metadata.resource_version.clone()?,
        })
    }

    /// Reads a Secret's data now.
    pub async fn read(&self, namespace: &str, name: &str) -> Result<SecretData, CredentialError> {
        SecretData::fetch(&self.client, namespace, name).await
    }

    /// Reads `key` of a Secret (a service account's private JWK) when a token must be minted.
    pub fn private_key_reader(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> std::sync::Arc<dyn aic::KeySource> {
        std::sync::Arc::new(KeyReader {
            secrets: self.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Reads the `clientSecret` of a Secret when a PingOne token must be requested.
    pub fn client_secret_reader(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::sync::Arc<dyn pingone::SecretReader> {
        std::sync::Arc::new(KeyReader {
            secrets: self.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: "clientSecret".to_owned(),
        })
    }
}

/// One key of one Secret, read on demand.
#[derive(Debug)]
struct KeyReader {
    secrets: Secrets,
    namespace: String,
    name: String,
    key: String,
}

impl KeyReader {
    async fn value(&self) -> Result<SecretString, CredentialError> {
        tracing::debug!(secret = %self.name, key = %self.key, "reading a credential to renew a token");
        let data = self.secrets.read(&self.namespace, &self.name).await?;
        if self.key == "clientSecret" {
            return Ok(ClientCredentials::from_secret(&data)?.client_secret);
        }
        data.required(&self.key)
    }
}

impl aic::KeySource for KeyReader {
    fn load(&self) -> BoxFuture<'_, Result<SecretString, AicError>> {
        Box::pin(async move { Ok(self.value().await?) })
    }
}

impl pingone::SecretReader for KeyReader {
    fn read(&self) -> BoxFuture<'_, Result<SecretString, PingOneError>> {
        Box::pin(async move { Ok(self.value().await?) })
    }
}
