//! One error type for every AIC call: the three error body shapes AIC returns (AM, ESV and OAuth)
//! map onto it, and each variant knows whether retrying can help and which stable reason string
//! to report in conditions, events and metrics.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

/// Which API family answered; they differ in error bodies and in what a status code means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFamily {
    /// `/environment/variables|secrets|startup|count`: `{code, message}`.
    Esv,
    /// `/environment/promotion/**`: `{code, message, status?}` or `{message}`.
    Promotion,
    /// `/am/json/**`: `{code, reason, message, detail?}`.
    Am,
    /// `/am/oauth2/access_token`: `{error, error_description}`.
    OAuth,
}

impl ApiFamily {
    fn as_str(self) -> &'static str {
        match self {
            ApiFamily::Esv => "ESV",
            ApiFamily::Promotion => "promotion",
            ApiFamily::Am => "AM",
            ApiFamily::OAuth => "OAuth",
        }
    }

    /// The `operation` label of the family's calls in the metrics.
    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            ApiFamily::Esv => "esv",
            ApiFamily::Promotion => "promotion",
            ApiFamily::Am => "am",
            ApiFamily::OAuth => "get_token",
        }
    }
}

/// The message AM gives for static configuration writes outside development and sandbox.
pub const IMMUTABLE_MESSAGE_FRAGMENT: &str = "this environment is immutable";

/// Errors from the AIC client.
#[derive(Debug, thiserror::Error)]
pub enum AicError {
    /// The request never got an HTTP answer (connection, TLS, timeout).
    #[error("AIC request failed: {0}")]
    Transport(#[source] reqwest::Error),

    /// The tenant answered with an error status and an AM, ESV or promotion error body.
    #[error("AIC {} API answered {status}: {message}", family.as_str())]
    Api {
        /// Which API family answered.
        family: ApiFamily,
        /// HTTP status.
        status: StatusCode,
        /// `code` from the body (may differ from the status, e.g. 422 with code 606).
        code: Option<i64>,
        /// AM's `reason`.
        reason: Option<String>,
        /// The body's message (or the status text when the body has none).
        message: String,
        /// AM's `detail`, e.g. `validAttributes` for an unknown attribute.
        detail: Option<serde_json::Value>,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },

    /// AM refused a static-configuration write because the tier is not development or sandbox.
    #[error(
        "AIC refused the change: AM configuration in this tenant environment is immutable and reaches it only by promotion ({message})"
    )]
    Immutable {
        /// AM's message.
        message: String,
    },

    /// The token endpoint refused one or more of the scopes asked for.
    #[error(
        "the AIC service account may not use scope(s) {}; grant them to the service account in the AIC admin console",
        scopes.join(", ")
    )]
    InvalidScope {
        /// The refused scopes.
        scopes: Vec<String>,
    },

    /// The token endpoint refused the grant (bad signature, wrong `aud`, expired `exp`, unknown
    /// service account) or answered with another OAuth error.
    #[error("AIC service-account authentication failed ({status}): {error}: {description}")]
    OAuth {
        /// HTTP status.
        status: StatusCode,
        /// OAuth `error`.
        error: String,
        /// OAuth `error_description`.
        description: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },

    /// The service account's private key cannot be used.
    #[error("the AIC service account private key is unusable: {0}")]
    InvalidKey(String),

    /// A variable exists with another `expressionType`; AIC never changes it in place.
    #[error(
        "ESV variable {id} exists with expressionType {existing:?}, not {wanted:?}; AIC cannot change a variable's type — delete the variable so it can be recreated"
    )]
    VariableTypeMismatch {
        /// Variable id.
        id: String,
        /// Type in AIC.
        existing: String,
        /// Type asked for.
        wanted: String,
    },

    /// A promotion's integrity check found problems; nothing was promoted.
    #[error(
        "promotion blocked: missing ESVs [{}], encrypted secrets [{}]",
        missing_esvs.join(", "),
        encrypted_secrets.join(", ")
    )]
    PromotionBlocked {
        /// ESVs referenced in the lower environment's configuration but absent from the upper.
        missing_esvs: Vec<String>,
        /// Secrets embedded in configuration.
        encrypted_secrets: Vec<String>,
    },

    /// A state the caller waits for did not arrive in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),

    /// The answer could not be understood.
    #[error("unexpected AIC response from {what}: {detail}")]
    Decode {
        /// Which call.
        what: String,
        /// What was wrong.
        detail: String,
    },

    /// The client's configuration is wrong (base URL, ids).
    #[error("invalid AIC client configuration: {0}")]
    Config(String),

    /// The Secret holding the private key could not be read when a token had to be minted.
    #[error(transparent)]
    Credential(#[from] crate::credentials::CredentialError),
}

impl AicError {
    /// Whether a later retry of the same call can succeed without a configuration change.
    pub fn is_transient(&self) -> bool {
        match self {
            AicError::Transport(_) | AicError::Timeout(_) => true,
            AicError::Api { status, family, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
                    // ESV writes answer 409 while a promotion holds the lock; lock/unlock answer
                    // 409 while the lock is changing state. Both clear by themselves.
                    || (*status == StatusCode::CONFLICT
                        && matches!(family, ApiFamily::Esv | ApiFamily::Promotion))
            }
            AicError::OAuth { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            AicError::Credential(err) => err.is_transient(),
            AicError::Immutable { .. }
            | AicError::InvalidScope { .. }
            | AicError::InvalidKey(_)
            | AicError::VariableTypeMismatch { .. }
            | AicError::PromotionBlocked { .. }
            | AicError::Decode { .. }
            | AicError::Config(_) => false,
        }
    }

    /// A stable CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AicError::Transport(_) => "AICUnreachable",
            AicError::Api { status, .. } => match *status {
                StatusCode::UNAUTHORIZED => "AICUnauthorized",
                StatusCode::FORBIDDEN => "AICForbidden",
                StatusCode::NOT_FOUND => "AICNotFound",
                StatusCode::CONFLICT => "AICConflict",
                StatusCode::TOO_MANY_REQUESTS => "AICRateLimited",
                s if s.is_server_error() => "AICServerError",
                _ => "AICRequestRejected",
            },
            AicError::Immutable { .. } => "AICEnvironmentImmutable",
            AicError::InvalidScope { .. } => "AICScopeNotGranted",
            // A refusal to say who we are is no verdict on the key: it says "later".
            AicError::OAuth { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "AICRateLimited"
            }
            AicError::OAuth { .. } => "AICAuthenticationFailed",
            AicError::InvalidKey(_) => "AICInvalidPrivateKey",
            AicError::VariableTypeMismatch { .. } => "ESVTypeMismatch",
            AicError::PromotionBlocked { .. } => "PromotionBlocked",
            AicError::Timeout(_) => "AICTimeout",
            AicError::Decode { .. } => "AICUnexpectedResponse",
            AicError::Config(_) => "AICInvalidConfiguration",
            AicError::Credential(err) => err.reason(),
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AicError::Api { retry_after, .. } | AicError::OAuth { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            AicError::Api { status, .. } | AicError::OAuth { status, .. } => Some(*status),
            AicError::Immutable { .. } => Some(StatusCode::FORBIDDEN),
            _ => None,
        }
    }

    /// Whether the tenant answered 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// Builds the error for a non-success answer from its status, headers and body.
    pub(crate) fn from_response(
        family: ApiFamily,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Self {
        #[derive(Deserialize, Default)]
        struct AnyBody {
            code: Option<serde_json::Value>,
            reason: Option<String>,
            message: Option<String>,
            detail: Option<serde_json::Value>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let parsed: AnyBody = serde_json::from_slice(body).unwrap_or_default();
        if let Some(error) = parsed.error.clone() {
            let description = parsed.error_description.clone().unwrap_or_default();
            if error == "invalid_scope" {
                return AicError::InvalidScope {
                    scopes: parse_unsupported_scopes(&description),
                };
            }
            return AicError::OAuth {
                status,
                error,
                description,
                retry_after,
            };
        }
        let message = parsed.message.unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unknown error")
                .to_owned()
        });
        if status == StatusCode::FORBIDDEN && message.contains(IMMUTABLE_MESSAGE_FRAGMENT) {
            return AicError::Immutable { message };
        }
        let code = parsed.code.and_then(|code| match code {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        AicError::Api {
            family,
            status,
            code,
            reason: parsed.reason,
            message,
            detail: parsed.detail,
            retry_after,
        }
    }
}

/// Reads the scopes out of `"Unsupported scope for service account: fr:iga:*,fr:idc:foo"`.
fn parse_unsupported_scopes(description: &str) -> Vec<String> {
    let list = description
        .split_once(':')
        .filter(|(prefix, _)| prefix.to_ascii_lowercase().contains("scope"))
        .map_or(description, |(_, rest)| rest);
    let scopes: Vec<String> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        vec![description.to_owned()]
    } else {
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_body_shapes_map_to_variants() {
        let am = AicError::from_response(
            ApiFamily::Am,
            StatusCode::BAD_REQUEST,
            None,
            br#"{"code":400,"reason":"Bad Request","message":"Invalid attribute specified.","detail":{"validAttributes":["clientId"]}}"#,
        );
        match &am {
            AicError::Api {
                reason,
                detail,
                message,
                ..
            } => {
                assert_eq!(reason.as_deref(), Some("Bad Request"));
                assert_eq!(message, "Invalid attribute specified.");
                assert_eq!(detail.as_ref().unwrap()["validAttributes"][0], "clientId");
            }
            other => panic!("{other:?}"),
        }
        assert!(!am.is_transient());
        assert_eq!(am.reason(), "AICRequestRejected");

        let esv = AicError::from_response(
            ApiFamily::Esv,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            br#"{"code":606,"message":"encoding in body should be one of [generic pem base64hmac]"}"#,
        );
        assert!(matches!(
            esv,
            AicError::Api {
                code: Some(606),
                ..
            }
        ));

        let oauth = AicError::from_response(
            ApiFamily::OAuth,
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"invalid_grant","error_description":"audience mismatch"}"#,
        );
        assert!(matches!(&oauth, AicError::OAuth { error, .. } if error == "invalid_grant"));
        assert!(!oauth.is_transient());
    }

    #[test]
    fn invalid_scope_names_the_scopes() {
        let err = AicError::from_response(
            ApiFamily::OAuth,
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"invalid_scope","error_description":"Unsupported scope for service account: fr:iga:*,fr:idc:foo"}"#,
        );
        match &err {
            AicError::InvalidScope { scopes } => assert_eq!(scopes, &["fr:iga:*", "fr:idc:foo"]),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("fr:idc:foo"));
        assert_eq!(err.reason(), "AICScopeNotGranted");
    }

    #[test]
    fn immutable_403_is_its_own_permanent_variant() {
        let err = AicError::from_response(
            ApiFamily::Am,
            StatusCode::FORBIDDEN,
            None,
            br#"{"code":403,"reason":"Forbidden","message":"This configuration is editable only in your development environment: this environment is immutable."}"#,
        );
        assert!(matches!(err, AicError::Immutable { .. }));
        assert!(!err.is_transient());
    }

    #[test]
    fn a_token_endpoint_429_is_a_rate_limit_not_an_authentication_failure() {
        let err = AicError::from_response(
            ApiFamily::OAuth,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            br#"{"error":"temporarily_unavailable","error_description":"slow down"}"#,
        );
        assert!(matches!(err, AicError::OAuth { .. }), "{err:?}");
        assert_eq!(err.reason(), "AICRateLimited");
        let refused = AicError::from_response(
            ApiFamily::OAuth,
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"invalid_client","error_description":"no"}"#,
        );
        assert_eq!(refused.reason(), "AICAuthenticationFailed");
    }

    #[test]
    fn transient_statuses_and_retry_after() {
        let wait = Some(Duration::from_secs(3));
        let err = AicError::from_response(ApiFamily::Esv, StatusCode::TOO_MANY_REQUESTS, wait, b"");
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), wait);
        assert_eq!(err.reason(), "AICRateLimited");
        let err = AicError::from_response(
            ApiFamily::Esv,
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            b"not json",
        );
        assert!(err.is_transient());
        assert!(err.to_string().contains("Internal Server Error"));
        let err = AicError::from_response(ApiFamily::Am, StatusCode::CONFLICT, None, b"{}");
        assert!(!err.is_transient());
        let err = AicError::from_response(ApiFamily::Esv, StatusCode::NOT_FOUND, None, b"{}");
        assert!(err.is_not_found());
    }
}
