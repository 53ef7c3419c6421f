//! Service-account authentication: an RS256 JWT signed with the account's private JWK, exchanged
//! at `/am/oauth2/access_token` with the JWT-bearer grant, and a token cache per credential so a
//! reconcile loop does not mint a token per call.
//!
//! The cache is keyed by the credential's version (for a key kept in a Kubernetes Secret: the
//! Secret's uid and resourceVersion), not by the key itself, so a client can be built without
//! reading the key while a token for its version lives: a [`KeySource`] is read only when a
//! token must be minted, and the key is dropped once the assertion is signed.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use url::Url;

use super::error::{AicError, ApiFamily};
use crate::http::Backoff;
use crate::metrics::ExternalCalls;
use crate::secret::SecretString;

/// The fixed OAuth client id of every AIC service-account grant.
pub const CLIENT_ID: &str = "service-account";
/// The JWT-bearer grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Path of the token endpoint (root realm).
pub const TOKEN_PATH: &str = "/am/oauth2/access_token";
/// Lifetime of the signed assertion; docs and Frodo use 180 s, and it is used at once.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);
/// Renew cached tokens this long before they expire, so a token never dies mid-request.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// A service account's id and private key, ready to sign assertions. `Debug` shows the id only.
#[derive(Clone)]
pub struct ServiceAccountKey {
    id: String,
    key_pair: Arc<RsaKeyPair>,
    fingerprint: [u8; 32],
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("id", &self.id)
            .field("private_key", &crate::secret::REDACTED)
            .finish()
    }
}

#[derive(Deserialize)]
struct PrivateJwk {
    kty: String,
    n: String,
    e: String,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
}

fn b64url(field: &str, value: Option<&str>) -> Result<Vec<u8>, AicError> {
    let value = value.ok_or_else(|| {
        AicError::InvalidKey(format!(
            "the JWK has no {field:?}; the private key (not the public one) is needed"
        ))
    })?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| AicError::InvalidKey(format!("JWK member {field:?} is not base64url")))
}

impl ServiceAccountKey {
    /// Reads an RSA private JWK (JSON, as AIC lets you download it; a one-key JWKS `{"keys":[…]}`
    /// is accepted too).
    pub fn from_jwk(service_account_id: &str, jwk: &SecretString) -> Result<Self, AicError> {
        let mut value: serde_json::Value = serde_json::from_str(jwk.expose())
            .map_err(|_| AicError::InvalidKey("the private key is not JSON (a JWK)".into()))?;
        if let Some(keys) = value.get_mut("keys").and_then(|k| k.as_array_mut()) {
            if keys.len() != 1 {
                return Err(AicError::InvalidKey(
                    "a JWKS must hold exactly one key".into(),
                ));
            }
            value = keys.remove(0);
        }
        let jwk: PrivateJwk = serde_json::from_value(value)
            .map_err(|_| AicError::InvalidKey("the JWK lacks kty, n or e".into()))?;
        if jwk.kty != "RSA" {
            return Err(AicError::InvalidKey(format!(
                "the key type is {:?}; AIC service accounts use RSA",
                jwk.kty
            )));
        }
        let n = b64url("n", Some(&jwk.n))?;
        let e = b64url("e", Some(&jwk.e))?;
        let components = ring::rsa::KeyPairComponents {
            public_key: ring::rsa::PublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            },
            d: b64url("d", jwk.d.as_deref())?,
            p: b64url("p", jwk.p.as_deref())?,
            q: b64url("q", jwk.q.as_deref())?,
            dP: b64url("dp", jwk.dp.as_deref())?,
            dQ: b64url("dq", jwk.dq.as_deref())?,
            qInv: b64url("qi", jwk.qi.as_deref())?,
        };
        let key_pair = RsaKeyPair::from_components(&components)
            .map_err(|err| AicError::InvalidKey(format!("ring rejected the RSA key: {err}")))?;
        let fingerprint =
            ring::digest::digest(&ring::digest::SHA256, &jwk_fingerprint_input(&n, &e))
                .as_ref()
                .try_into()
                .map_err(|_| AicError::InvalidKey("digest length".into()))?;
        Ok(Self {
            id: service_account_id.to_owned(),
            key_pair: Arc::new(key_pair),
            fingerprint,
        })
    }

    /// The service account id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Signs the JWT-bearer assertion for `audience`, valid from `now` for `lifetime`.
    pub fn sign_assertion(
        &self,
        audience: &str,
        now: jiff::Timestamp,
        lifetime: Duration,
    ) -> Result<SecretString, AicError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": self.id,
            "sub": self.id,
            "aud": audience,
            "iat": now.as_second(),
            "exp": now.as_second() + i64::try_from(lifetime.as_secs()).unwrap_or(180),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| AicError::InvalidKey("RS256 signing failed".into()))?;
        Ok(SecretString::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    /// Names the key's material for token caches when no Secret version names it: a digest
    /// of its public part, which discloses nothing.
    pub fn fingerprint_id(&self) -> String {
        let hex: String = self
            .fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("jwk:{hex}")
    }
}

fn jwk_fingerprint_input(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(n.len() + e.len() + 1);
    input.extend_from_slice(n);
    input.push(0);
    input.extend_from_slice(e);
    input
}

/// The `aud` AIC documents: the token endpoint with the port spelled out
/// (`https://<host>:443/am/oauth2/access_token`).
pub fn audience(origin: &Url) -> String {
    let host = origin.host_str().unwrap_or_default();
    let port = origin.port_or_known_default().unwrap_or(443);
    format!("{}://{host}:{port}{TOKEN_PATH}", origin.scheme())
}

/// Where a service account's private JWK is read from when a token must be minted and the
/// client was built without it.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Reads the private JWK (JSON) now.
    fn load(&self) -> BoxFuture<'_, Result<SecretString, AicError>>;
}

/// The key a client signs assertions with: parsed already, or read when needed.
#[derive(Clone, Debug)]
pub(crate) enum SigningKey {
    /// Parsed when the client was built.
    Loaded(ServiceAccountKey),
    /// Read from its source only to mint a token, then dropped.
    Deferred(Arc<dyn KeySource>),
}

/// Sorts and deduplicates scopes: tokens are cached per scope set, whatever the order asked.
pub fn normalize_scopes(mut scopes: Vec<String>) -> Vec<String> {
    scopes.sort();
    scopes.dedup();
    scopes
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct TokenKey {
    origin: String,
    account: String,
    credential: String,
    scopes: String,
}

struct CachedToken {
    token: SecretString,
    renew_at: Instant,
}

/// Access tokens per (tenant, service account, key version, scopes). Cheap to clone; share one between
/// the clients of a process so re-created clients reuse tokens.
#[derive(Clone, Default)]
pub struct TokenCache {
    inner: Arc<Mutex<HashMap<TokenKey, CachedToken>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.inner.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("entries", &len).finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenCache {
    /// A token for these scopes, from the cache while the one minted for `credential` (the
    /// key's version) lives, else freshly minted; a deferred key is read only then.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        origin: &Url,
        account: &str,
        credential: &str,
        key: &SigningKey,
        scopes: &[String],
        backoff: Backoff,
        calls: &ExternalCalls,
    ) -> Result<SecretString, AicError> {
        let cache_key = TokenKey {
            origin: origin.as_str().to_owned(),
            account: account.to_owned(),
            credential: credential.to_owned(),
            scopes: scopes.join(" "),
        };
        if let Some(token) = self.lookup(&cache_key) {
            return Ok(token);
        }
        let read;
        let key = match key {
            SigningKey::Loaded(key) => key,
            SigningKey::Deferred(source) => {
                read = ServiceAccountKey::from_jwk(account, &source.load().await?)?;
                &read
            }
        };
        let (token, lifetime) =
            fetch_token(http, origin, key, &cache_key.scopes, backoff, calls).await?;
        let renew_at = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        if let Ok(mut map) = self.inner.lock() {
            map.insert(
                cache_key,
                CachedToken {
                    token: token.clone(),
                    renew_at,
                },
            );
        }
        Ok(token)
    }

    /// Whether a token minted for `credential` with these (normalized) scopes is cached and
    /// not due for renewal: then a client for that credential needs no key to work.
    pub fn is_live(
        &self,
        origin: &Url,
        account: &str,
        credential: &str,
        scopes: &[String],
    ) -> bool {
        self.lookup(&TokenKey {
            origin: origin.as_str().to_owned(),
            account: account.to_owned(),
            credential: credential.to_owned(),
            scopes: scopes.join(" "),
        })
        .is_some()
    }

    fn lookup(&self, key: &TokenKey) -> Option<SecretString> {
        let map = self.inner.lock().ok()?;
        map.get(key)
            .filter(|cached| Instant::now() < cached.renew_at)
            .map(|cached| cached.token.clone())
    }

    /// Forgets every token.
    pub fn clear(&self) {
        if let Ok(mut map) = self.inner.lock() {
            map.clear();
        }
    }

    /// Forgets the tokens of one service account credential at one tenant (after a 401: the
    /// token was revoked or the tenant restarted its token store).
    pub fn forget(&self, origin: &Url, account: &str, credential: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|k, _| {
                !(k.origin == origin.as_str() && k.account == account && k.credential == credential)
            });
        }
    }
}

async fn fetch_token(
    http: &reqwest::Client,
    origin: &Url,
    key: &ServiceAccountKey,
    scopes: &str,
    backoff: Backoff,
    calls: &ExternalCalls,
) -> Result<(SecretString, Duration), AicError> {
    let url = crate::http::join(origin, TOKEN_PATH);
    let mut attempt = 0;
    loop {
        // A fresh assertion per attempt: each carries a new jti and a fresh exp.
        let assertion = key.sign_assertion(
            &audience(origin),
            jiff::Timestamp::now(),
            ASSERTION_LIFETIME,
        )?;
        let form = [
            ("client_id", CLIENT_ID),
            ("grant_type", GRANT_TYPE),
            ("assertion", assertion.expose()),
            ("scope", scopes),
        ];
        let err = match http.post(url.clone()).form(&form).send().await {
            Err(err) => AicError::Transport(err),
            Ok(response) => {
                let status = response.status();
                let wait = crate::http::retry_after(response.headers(), jiff::Timestamp::now());
                let body = response.bytes().await.map_err(AicError::Transport)?;
                if status.is_success() {
                    calls.record(super::SERVICE, "get_token", "ok");
                    let parsed: TokenResponse =
                        serde_json::from_slice(&body).map_err(|_| AicError::Decode {
                            what: "token endpoint".into(),
                            detail: "no access_token in the answer".into(),
                        })?;
                    return Ok((
                        SecretString::new(parsed.access_token),
                        Duration::from_secs(parsed.expires_in.unwrap_or(899)),
                    ));
                }
                AicError::from_response(ApiFamily::OAuth, status, wait, &body)
            }
        };
        calls.record(super::SERVICE, "get_token", err.reason());
        match backoff.delay(attempt, err.retry_after()) {
            Some(delay) if err.is_transient() => {
                tracing::debug!(error = %err, ?delay, "retrying the AIC token request");
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWK: &str = include_str!("../../tests/fixtures/test-service-account.jwk.json");

    #[test]
    fn signs_a_verifiable_rs256_assertion_with_the_documented_claims() {
        let key = ServiceAccountKey::from_jwk("sa-1", &SecretString::new(JWK)).unwrap();
        let origin = Url::parse("https://tenant.example.com").unwrap();
        let aud = audience(&origin);
        assert_eq!(aud, "https://tenant.example.com:443/am/oauth2/access_token");
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let jwt = key.sign_assertion(&aud, now, ASSERTION_LIFETIME).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "sa-1");
        assert_eq!(claims["sub"], "sa-1");
        assert_eq!(claims["aud"], aud.as_str());
        assert_eq!(claims["exp"], 1_700_000_180);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);

        let jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
        let public = ring::signature::RsaPublicKeyComponents {
            n: URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
            e: URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap(),
        };
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &signature,
            )
            .unwrap();
        let tampered = format!("{}.{}x", parts[0], parts[1]);
        assert!(
            public
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    tampered.as_bytes(),
                    &signature
                )
                .is_err()
        );
        let other = key.sign_assertion(&aud, now, ASSERTION_LIFETIME).unwrap();
        assert_ne!(
            other.expose(),
            jwt.expose(),
            "every assertion has a fresh jti"
        );
    }

    #[test]
    fn public_only_or_garbage_keys_are_refused_without_echoing_them() {
        let mut public: serde_json::Value = serde_json::from_str(JWK).unwrap();
        public
            .as_object_mut()
            .unwrap()
            .retain(|k, _| ["kty", "n", "e"].contains(&k.as_str()));
        let err =
            ServiceAccountKey::from_jwk("sa", &SecretString::new(public.to_string())).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        let err =
            ServiceAccountKey::from_jwk("sa", &SecretString::new("topsecretgarbage")).unwrap_err();
        assert!(!err.to_string().contains("topsecretgarbage"));
        assert_eq!(err.reason(), "AICInvalidPrivateKey");
    }

    /// A key source that counts its reads.
    #[derive(Debug, Default)]
    struct CountingSource {
        loads: std::sync::atomic::AtomicUsize,
    }

    impl KeySource for CountingSource {
        fn load(&self) -> BoxFuture<'_, Result<SecretString, AicError>> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(SecretString::new(JWK)) })
        }
    }

    /// A token endpoint on loopback that mints `token-<n>` living `lifetime` seconds; returns
    /// its origin and how many tokens it minted.
    async fn token_endpoint(
        lifetime: Arc<std::sync::atomic::AtomicU64>,
    ) -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::Ordering;
        let minted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = minted.clone();
        let app = axum::Router::new().route(
            TOKEN_PATH,
            axum::routing::post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                let lifetime = lifetime.load(Ordering::SeqCst);
                async move {
                    axum::Json(serde_json::json!({
                        "access_token": format!("token-{n}"),
                        "expires_in": lifetime,
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Url::parse(&format!("http://{addr}")).unwrap(), minted)
    }

    #[tokio::test]
    async fn a_deferred_key_is_read_once_per_token_and_tokens_key_on_the_version() {
        use std::sync::atomic::Ordering;
        let lifetime = Arc::new(std::sync::atomic::AtomicU64::new(900));
        let (origin, minted) = token_endpoint(lifetime.clone()).await;
        let http = crate::http::client("test").unwrap();
        let source = Arc::new(CountingSource::default());
        let key = SigningKey::Deferred(source.clone());
        let scopes = normalize_scopes(vec!["fr:idc:esv:*".into(), "fr:am:*".into()]);
        let cache = TokenCache::default();
        let calls = crate::metrics::ExternalCalls::default();
        let token = |version: &'static str| {
            let (cache, http, origin, key, scopes, calls) =
                (&cache, &http, &origin, &key, &scopes, &calls);
            async move {
                cache
                    .token(
                        http,
                        origin,
                        "sa",
                        version,
                        key,
                        scopes,
                        Backoff::default(),
                        calls,
                    )
                    .await
                    .unwrap()
                    .expose()
                    .to_owned()
            }
        };
        let reads = || source.loads.load(Ordering::SeqCst);
        let mints = || minted.load(Ordering::SeqCst);

        assert!(!cache.is_live(&origin, "sa", "secret:u/1/jwk", &scopes));
        assert_eq!(token("secret:u/1/jwk").await, "token-1");
        assert_eq!((reads(), mints()), (1, 1));
        // A live token for the same version: neither the key nor the endpoint is asked.
        assert_eq!(token("secret:u/1/jwk").await, "token-1");
        assert_eq!((reads(), mints()), (1, 1));
        assert!(cache.is_live(&origin, "sa", "secret:u/1/jwk", &scopes));

        // A new resourceVersion is a new credential: the key is read again.
        assert!(!cache.is_live(&origin, "sa", "secret:u/2/jwk", &scopes));
        assert_eq!(token("secret:u/2/jwk").await, "token-2");
        assert_eq!((reads(), mints()), (2, 2));

        // A token revoked (401) and forgotten: renewing it reads the key once.
        cache.forget(&origin, "sa", "secret:u/2/jwk");
        assert!(!cache.is_live(&origin, "sa", "secret:u/2/jwk", &scopes));
        assert!(cache.is_live(&origin, "sa", "secret:u/1/jwk", &scopes));
        assert_eq!(token("secret:u/2/jwk").await, "token-3");
        assert_eq!((reads(), mints()), (3, 3));

        // Tokens that are due at once (shorter than the renewal margin): every renewal reads
        // the key exactly once.
        lifetime.store(30, Ordering::SeqCst);
        cache.clear();
        assert_eq!(token("secret:u/2/jwk").await, "token-4");
        assert_eq!((reads(), mints()), (4, 4));
        assert!(!cache.is_live(&origin, "sa", "secret:u/2/jwk", &scopes));
        assert_eq!(token("secret:u/2/jwk").await, "token-5");
        assert_eq!((reads(), mints()), (5, 5));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let key = ServiceAccountKey::from_jwk("sa-1", &SecretString::new(JWK)).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(JWK).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("sa-1"));
        for member in ["d", "p", "q", "n"] {
            let value = jwk[member].as_str().unwrap();
            assert!(!debug.contains(&value[..16]), "{member} leaked");
        }
    }
}
