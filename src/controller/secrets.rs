//! Kubernetes Secrets as credential sources, read only when what they hold may have changed.
//!
//! The controllers watch Secrets metadata-only to map a changed Secret to the resources that
//! reference it; every Secret that watch reports is marked *touched* here before the reconciles
//! it causes run. A Secret's version (uid and resourceVersion) is known without reading it once
//! a GET that started after its last touch has read it; until then — never read, touched since
//! (changed, re-created, deleted, or listed again by a restarted watch) — [`Secrets::version`]
//! says `None` and the caller reads it. So a resync without changes reads no Secret, and a
//! change is always read by the reconcile it triggers. Caches derived from a Secret key on its
//! version. Nothing here keeps Secret data: the readers hand a value to the one call that needs
//! it (minting or requesting a token).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;

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

/// What is known of one Secret.
#[derive(Debug, Default)]
struct Seen {
    /// How many times the watch reported it.
    touches: u64,
    /// The last read: the touch count when it started, and the version it found (`None`: the
    /// Secret did not exist).
    read: Option<(u64, Option<SecretVersion>)>,
}

/// What the watch and the reads tell of the Secrets' versions.
#[derive(Debug, Default)]
struct Versions {
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl Versions {
    fn with<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        f(seen
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default())
    }

    fn touch(&self, namespace: &str, name: &str) {
        self.with(namespace, name, |seen| seen.touches += 1);
    }

    fn touches(&self, namespace: &str, name: &str) -> u64 {
        self.with(namespace, name, |seen| seen.touches)
    }

    /// Records what a read that started at `touches` found.
    fn record(&self, namespace: &str, name: &str, touches: u64, version: Option<SecretVersion>) {
        self.with(namespace, name, |seen| seen.read = Some((touches, version)));
    }

    /// The version found by a read that started after the last touch.
    fn current(&self, namespace: &str, name: &str) -> Option<SecretVersion> {
        self.with(namespace, name, |seen| match &seen.read {
            Some((after, Some(version))) if *after == seen.touches => Some(version.clone()),
            _ => None,
        })
    }
}

/// The Secrets of one scope: what the watch and the reads tell of their versions, and the
/// client to read their data.
#[derive(Clone)]
pub struct Secrets {
    client: kube::Client,
    /// `None` when no watch reports changes: then every use reads.
    versions: Option<Arc<Versions>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("watched", &self.versions.is_some())
            .finish_non_exhaustive()
    }
}

impl Secrets {
    /// Secrets read with a GET on every use (no watch reports their changes): for tools and
    /// tests that build clients outside the controllers.
    pub fn unwatched(client: kube::Client) -> Self {
        Self {
            client,
            versions: None,
        }
    }

    /// Secrets whose changes a watch reports with [`Secrets::touched`].
    pub fn watched(client: kube::Client) -> Self {
        Self {
            client,
            versions: Some(Arc::default()),
        }
    }

    /// Notes that the watch reported `secret` (changed, created, deleted or listed): its
    /// version is unknown until it is read again.
    pub fn touched(&self, secret: &PartialObjectMeta<Secret>) {
        if let Some(versions) = &self.versions {
            versions.touch(&secret.namespace().unwrap_or_default(), &secret.name_any());
        }
    }

    /// The Secret's current version when a read since the watch last reported it found one;
    /// `None` when it must be read to be known (or does not exist).
    pub fn version(&self, namespace: &str, name: &str) -> Option<SecretVersion> {
        self.versions.as_ref()?.current(namespace, name)
    }

    /// Reads a Secret's data now, and remembers the version found.
    pub async fn read(&self, namespace: &str, name: &str) -> Result<SecretData, CredentialError> {
        let Some(versions) = &self.versions else {
            return SecretData::fetch(&self.client, namespace, name).await;
        };
        let touches = versions.touches(namespace, name);
        let result = SecretData::fetch(&self.client, namespace, name).await;
        match &result {
            Ok(data) => versions.record(namespace, name, touches, Some(SecretVersion::of(data))),
            Err(CredentialError::SecretNotFound { .. }) => {
                versions.record(namespace, name, touches, None)
            }
            Err(_) => {}
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;

    fn version(rv: &str) -> Option<SecretVersion> {
        Some(SecretVersion {
            uid: "uid-1".into(),
            resource_version: rv.into(),
        })
    }

    #[test]
    fn a_version_is_known_only_from_a_read_that_started_after_the_last_touch() {
        let versions = Versions::default();
        assert_eq!(versions.current("ns", "key"), None, "never read");
        let started = versions.touches("ns", "key");
        versions.record("ns", "key", started, version("1"));
        assert_eq!(versions.current("ns", "key"), version("1"));
        assert_eq!(versions.current("other", "key"), None);

        // The watch reports a change: the version read before no longer stands.
        versions.touch("ns", "key");
        assert_eq!(versions.current("ns", "key"), None);
        let started = versions.touches("ns", "key");
        versions.record("ns", "key", started, version("2"));
        assert_eq!(versions.current("ns", "key"), version("2"));

        // A read under way when the watch reported a change may have read the data before it.
        let started = versions.touches("ns", "key");
        versions.touch("ns", "key");
        versions.record("ns", "key", started, version("2"));
        assert_eq!(versions.current("ns", "key"), None);

        // A Secret found missing is read again next time.
        let started = versions.touches("ns", "key");
        versions.record("ns", "key", started, None);
        assert_eq!(versions.current("ns", "key"), None);
    }

    #[test]
    fn versions_name_the_uid_the_resource_version_and_the_key() {
        let v = version("7").unwrap();
        assert_eq!(v.id("jwk"), "secret:uid-1/7/jwk");
        assert_ne!(v.id("jwk"), version("8").unwrap().id("jwk"));
        assert_ne!(v.id("jwk"), v.id("other"));
    }
}
