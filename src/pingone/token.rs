//! Client credentials and the access-token cache. One entry per (token endpoint, client id);
//! each entry remembers a fingerprint of the credential it was issued for, so a rotated secret
//! or a changed auth method drops the old token instead of reusing it.
//!
//! A session can be built from a credential's [`CredentialIdentity`] alone (what is not secret,
//! and the fingerprint remembered from the last read): while a token for that fingerprint
//! lives, the secret is not needed, and a [`SecretReader`] reads it only to request a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::error::PingOneError;
use super::model::TokenAuthMethod;
use crate::secret::SecretString;

/// The credentials of a PingOne worker application. `Debug` never shows the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The environment the worker application lives in (its token endpoint's environment).
    pub environment_id: String,
    /// The application id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// How the secret is presented at the token endpoint.
    pub auth_method: TokenAuthMethod,
}

impl Credentials {
    /// A digest of everything that makes the credential, for cache invalidation. Holding it
    /// discloses nothing about the secret.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            self.environment_id.as_str(),
            self.client_id.as_str(),
            self.client_secret.expose(),
            self.auth_method.as_str(),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// What names this credential without its secret.
    pub fn identity(&self) -> CredentialIdentity {
        CredentialIdentity {
            environment_id: self.environment_id.clone(),
            client_id: self.client_id.clone(),
            auth_method: self.auth_method,
            fingerprint: self.fingerprint(),
        }
    }
}

/// A credential without its secret: the parts that are not secret and the fingerprint of the
/// whole (which discloses nothing about the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialIdentity {
    /// The environment the worker application lives in.
    pub environment_id: String,
    /// The application id.
    pub client_id: String,
    /// How the secret is presented at the token endpoint.
    pub auth_method: TokenAuthMethod,
    /// [`Credentials::fingerprint`] of the credential as last read.
    pub fingerprint: [u8; 32],
}

/// Reads a credential's client secret when a session built without it must request a token.
pub trait SecretReader: Send + Sync + std::fmt::Debug {
    /// Reads the client secret now.
    fn read(&self) -> BoxFuture<'_, Result<SecretString, PingOneError>>;
}

/// The token endpoint's success answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// The token endpoint's error answer.
#[derive(Default, Deserialize)]
pub(crate) struct TokenErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// A cached access token.
#[derive(Clone, Debug)]
pub(crate) struct CachedToken {
    pub fingerprint: [u8; 32],
    pub token: SecretString,
    pub refresh_at: jiff::Timestamp,
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Tokens by (token URL, client id). Each slot has its own async lock, so concurrent callers
/// with the same credential fetch one token between them.
#[derive(Default, Debug)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl TokenCache {
    pub(crate) fn slot(&self, token_url: &str, client_id: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry((token_url.to_owned(), client_id.to_owned()))
            .or_default()
            .clone()
    }
}

/// When to fetch a new token: a tenth of the lifetime early, at least 30 s and at most half
/// of it, so a token is never used in its last moments (clock skew, slow requests).
pub(crate) fn refresh_after(expires_in: Duration) -> Duration {
    let margin = (expires_in / 10)
        .max(Duration::from_secs(30))
        .min(expires_in / 2);
    expires_in - margin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(secret: &str) -> Credentials {
        Credentials {
            environment_id: "env".into(),
            client_id: "client".into(),
            client_secret: SecretString::new(secret),
            auth_method: TokenAuthMethod::ClientSecretBasic,
        }
    }

    #[test]
    fn fingerprint_changes_with_the_secret_and_method() {
        let a = creds("one");
        let mut b = creds("one");
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.auth_method = TokenAuthMethod::ClientSecretPost;
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), creds("two").fingerprint());
    }

    #[test]
    fn debug_of_credentials_hides_the_secret() {
        let printed = format!("{:?}", creds("super-secret-value"));
        assert!(!printed.contains("super-secret-value"), "{printed}");
        assert!(printed.contains("client"));
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3240)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(100)),
            Duration::from_secs(70)
        );
        // Very short lifetimes keep at least half of it.
        assert_eq!(
            refresh_after(Duration::from_secs(40)),
            Duration::from_secs(20)
        );
    }
}
