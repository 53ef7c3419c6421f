//! A credential taken from a Kubernetes Secret is checked before the operator pushes it to AIC:
//! a client secret with a token request at the environment's PingOne, a product-connection JWT
//! offline (a JSON payload, not expired) and then at PingOne's token endpoint. A value PingOne
//! refuses never reaches AIC, so the credential AIC presents stays the active one. Which claims
//! a real connection credential carries beyond `exp` is not documented, so nothing else is
//! judged offline: PingOne's answer is the check.

use super::clients::Clients;
use super::error::ReconcileError;
use crate::crd::TenantEnvironment;
use crate::pingone::{self, PingOneApi, PingOneError, TokenAuthMethod};
use crate::secret::SecretString;

/// The reason of conditions and Events when a credential is refused.
pub const REJECTED: &str = "CredentialRejected";

/// The Secret and key a credential was read from, to name them (never the value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSource {
    /// The Secret's name.
    pub secret: String,
    /// The key within it.
    pub key: &'static str,
}

/// A credential about to be pushed.
pub enum Candidate<'a> {
    /// An existing worker application's client secret.
    ClientSecret {
        /// The application (client) id.
        client_id: &'a str,
        /// Its secret.
        secret: &'a SecretString,
    },
    /// A product connection's signed JWT.
    Connection(&'a SecretString),
}

/// Whether PingOne accepts `candidate` for `tenant`'s environment. A refusal is a permanent
/// [`REJECTED`] error naming `environment` and `source`; not reaching PingOne is transient.
pub async fn check(
    clients: &Clients,
    tenant: &TenantEnvironment,
    environment: &str,
    source: &SecretSource,
    candidate: Candidate<'_>,
    now: jiff::Timestamp,
) -> Result<(), ReconcileError> {
    let environment_id = tenant.spec.ping_one.environment_id.as_str();
    let endpoints = Clients::pingone_endpoints(tenant)?;
    let rejected = |why: String| {
        ReconcileError::invalid(
            REJECTED,
            format!(
                "{environment}: the credential in Secret {}, key {}, is not pushed to AIC: {why}; \
                 the credential AIC has stays active",
                source.secret, source.key
            ),
        )
    };
    let answer = match candidate {
        Candidate::ClientSecret { client_id, secret } => {
            let session = clients
                .pingone
                .session(
                    endpoints,
                    pingone::Credentials {
                        environment_id: environment_id.to_owned(),
                        client_id: client_id.to_owned(),
                        client_secret: secret.clone(),
                        auth_method: TokenAuthMethod::ClientSecretBasic,
                    },
                )
                .on_license(tenant.spec.ping_one.license.as_deref());
            session.verify_credentials().await
        }
        Candidate::Connection(jwt) => {
            offline(jwt, now).map_err(&rejected)?;
            clients
                .pingone
                .verify_client_assertion(
                    &endpoints,
                    tenant.spec.ping_one.license.as_deref(),
                    environment_id,
                    jwt,
                )
                .await
        }
    };
    match answer {
        Ok(()) => Ok(()),
        Err(err @ PingOneError::Token { .. }) if !err.is_transient() => {
            Err(rejected(format!("PingOne refuses it ({err})")))
        }
        Err(PingOneError::InvalidCredentials(why)) => Err(rejected(why.to_owned())),
        Err(err) => Err(err.into()),
    }
}

/// What can be told of a JWT without PingOne: its payload is JSON and, when it says when it
/// expires, it has not.
fn offline(jwt: &SecretString, now: jiff::Timestamp) -> Result<(), String> {
    use base64::Engine;
    let claims = jwt
        .expose()
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| "its payload is not a JSON object".to_owned())?;
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64)
        && exp <= now.as_second()
    {
        let at = jiff::Timestamp::from_second(exp)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| exp.to_string());
        return Err(format!("it expired at {at}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: serde_json::Value) -> SecretString {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        SecretString::new(format!("{header}.{payload}.c2ln"))
    }

    #[test]
    fn expired_jwts_and_payloads_that_are_not_json_are_refused_offline() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let valid =
            jwt(serde_json::json!({"iss": "https://auth.pingone.eu/x/as", "exp": 1_900_000_000}));
        assert_eq!(offline(&valid, now), Ok(()));
        assert_eq!(offline(&jwt(serde_json::json!({"jti": "x"})), now), Ok(()));
        let expired = offline(&jwt(serde_json::json!({"exp": 1_700_000_000})), now);
        assert!(expired.unwrap_err().contains("expired at 2023-11-14"));
        assert!(offline(&jwt(serde_json::json!("text")), now).is_err());
        assert!(offline(&SecretString::new("a.b.c".to_owned()), now).is_err());
    }
}
