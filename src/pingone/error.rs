//! Errors of the PingOne client: the `P1Error` body PingOne returns, and one error enum that
//! knows whether a failure is worth retrying and carries a stable reason for conditions,
//! events and metrics.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// PingOne's error body (`P1Error` in the management spec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct P1Error {
    /// Correlation id PingOne logs; quote it in support requests.
    #[serde(default)]
    pub id: String,
    /// Stable error code, e.g. `INVALID_DATA`, `ACCESS_FAILED`, `NOT_FOUND`.
    #[serde(default)]
    pub code: String,
    /// English text meant for debugging.
    #[serde(default)]
    pub message: String,
    /// Field-level details, when any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<P1ErrorDetail>,
}

/// One entry of `P1Error.details`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct P1ErrorDetail {
    /// Detail code, e.g. `UNIQUENESS_VIOLATION`, `INVALID_TOKEN`.
    #[serde(default)]
    pub code: String,
    /// The field the detail is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// English text meant for debugging.
    #[serde(default)]
    pub message: String,
    /// Free-form extra data (`allowedValues`, `retryAfter`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner_error: Option<serde_json::Map<String, serde_json::Value>>,
}

impl P1Error {
    /// Whether any detail has this code.
    pub fn has_detail(&self, code: &str) -> bool {
        self.details.iter().any(|detail| detail.code == code)
    }

    /// Whether the message or any detail message starts with this text.
    pub fn mentions(&self, prefix: &str) -> bool {
        self.message.starts_with(prefix)
            || self
                .details
                .iter()
                .any(|detail| detail.message.starts_with(prefix))
    }
}

impl fmt::Display for P1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        for detail in &self.details {
            match &detail.target {
                Some(target) => write!(f, "; {} ({target}): {}", detail.code, detail.message)?,
                None => write!(f, "; {}: {}", detail.code, detail.message)?,
            }
        }
        if !self.id.is_empty() {
            write!(f, " [correlation id {}]", self.id)?;
        }
        Ok(())
    }
}

/// Text that PingOne uses when a role grant has not reached the actor yet (or never will).
pub const MUST_HAVE_ROLE: &str = "Must have role at the same or broader scope";

/// What went wrong talking to PingOne.
#[derive(Debug, thiserror::Error)]
pub enum PingOneError {
    /// The API answered with an error status.
    #[error("PingOne answered {status} on {operation}: {body}")]
    Api {
        /// What the client was doing, e.g. `create application`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The parsed error body (empty fields when the body was not a `P1Error`).
        body: Box<P1Error>,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused the client credentials or the grant.
    #[error("PingOne token endpoint answered {status}: {error} ({description})")]
    Token {
        /// HTTP status.
        status: u16,
        /// OAuth error code, e.g. `invalid_client`.
        error: String,
        /// The server's `error_description`.
        description: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, TLS failure.
    #[error("cannot reach PingOne for {operation}: {source}")]
    Transport {
        /// What the client was doing.
        operation: &'static str,
        /// The HTTP client's error (it names the URL, never a credential).
        #[source]
        source: reqwest::Error,
    },
    /// A success answer that the client cannot read.
    #[error("unexpected answer from PingOne for {operation}: {message}")]
    Decode {
        /// What the client was doing.
        operation: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// A configured base URL is unusable.
    #[error(transparent)]
    BaseUrl(#[from] crate::http::BaseUrlError),
    /// A built-in role with this name does not exist.
    #[error("PingOne has no role named {name:?}")]
    RoleNotFound {
        /// The role name looked up.
        name: String,
    },
    /// Credentials that cannot be used as given.
    #[error("invalid PingOne credentials: {0}")]
    InvalidCredentials(&'static str),
    /// The Secret holding the credential could not be read when a token had to be requested.
    #[error(transparent)]
    Credential(#[from] crate::credentials::CredentialError),
}

impl PingOneError {
    /// Whether retrying later, unchanged, can succeed (rate limits, server errors, network).
    pub fn is_transient(&self) -> bool {
        match self {
            PingOneError::Api { status, body, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
                    || body.code == "UNEXPECTED_ERROR"
            }
            PingOneError::Token { status, .. } => matches!(status, 408 | 429 | 500..=599),
            PingOneError::Transport { .. } => true,
            PingOneError::Credential(err) => err.is_transient(),
            PingOneError::Decode { .. }
            | PingOneError::BaseUrl(_)
            | PingOneError::RoleNotFound { .. }
            | PingOneError::InvalidCredentials(_) => false,
        }
    }

    /// A stable, CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            PingOneError::Api { status, body, .. } => match status {
                429 => "PingOneRateLimited",
                401 => "PingOneUnauthorized",
                403 => "PingOneForbidden",
                404 => "PingOneNotFound",
                409 => "PingOneConflict",
                400 if body.has_detail("UNIQUENESS_VIOLATION") => "PingOneDuplicate",
                400 => "PingOneInvalidRequest",
                500..=599 => "PingOneServerError",
                _ => "PingOneApiError",
            },
            PingOneError::Token { error, status, .. } => {
                if error == "invalid_client" {
                    "PingOneInvalidClient"
                } else if *status == 429 {
                    "PingOneRateLimited"
                } else if *status >= 500 {
                    "PingOneServerError"
                } else {
                    "PingOneTokenRefused"
                }
            }
            PingOneError::Transport { .. } => "PingOneUnreachable",
            PingOneError::Decode { .. } => "PingOneUnexpectedResponse",
            PingOneError::BaseUrl(_) => "PingOneInvalidUrl",
            PingOneError::RoleNotFound { .. } => "PingOneRoleNotFound",
            PingOneError::InvalidCredentials(_) => "PingOneInvalidCredentials",
            PingOneError::Credential(err) => err.reason(),
        }
    }

    /// The HTTP status of an API or token error.
    pub fn status(&self) -> Option<u16> {
        match self {
            PingOneError::Api { status, .. } | PingOneError::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's requested wait, if it sent `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PingOneError::Api { retry_after, .. } | PingOneError::Token { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Whether this is a 404 `NOT_FOUND`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PingOneError::Api { status: 404, .. })
    }

    /// Whether PingOne refused a role assignment because an equal or broader one exists.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, PingOneError::Api { status: 400, body, .. } if body.has_detail("UNIQUENESS_VIOLATION"))
    }

    /// Whether the bearer token was rejected (missing, expired, revoked).
    pub fn is_invalid_token(&self) -> bool {
        matches!(self, PingOneError::Api { status: 401, .. })
    }

    /// Whether this looks like a permission that has been granted but not yet propagated:
    /// "not authorized" 403s and "Must have role at the same or broader scope". Retried only
    /// within a bound, since it may just as well be a permission that is really missing.
    pub fn is_permission_propagation(&self) -> bool {
        match self {
            PingOneError::Api {
                status: 403, body, ..
            } => body.code == "ACCESS_FAILED" || body.code.is_empty(),
            PingOneError::Api {
                status: 400, body, ..
            } => {
                body.mentions(MUST_HAVE_ROLE)
                    || (body.message.starts_with("Role assignment")
                        && body
                            .message
                            .contains("cannot be deleted as it is read only"))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str, detail: Option<&str>) -> PingOneError {
        PingOneError::Api {
            operation: "test",
            status,
            body: Box::new(P1Error {
                id: "corr".into(),
                code: code.into(),
                message: "m".into(),
                details: detail
                    .map(|code| {
                        vec![P1ErrorDetail {
                            code: code.into(),
                            target: Some("role".into()),
                            message: "May not assign duplicate Role".into(),
                            inner_error: None,
                        }]
                    })
                    .unwrap_or_default(),
            }),
            retry_after: None,
        }
    }

    #[test]
    fn p1error_body_is_parsed_with_details_and_inner_error() {
        let body = r#"{"id":"f21b","code":"INVALID_DATA","message":"bad",
            "details":[{"code":"INVALID_VALUE","target":"grantTypes","message":"x",
            "innerError":{"allowedValues":["CLIENT_CREDENTIALS"]}}]}"#;
        let parsed: P1Error = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.code, "INVALID_DATA");
        assert_eq!(parsed.details[0].target.as_deref(), Some("grantTypes"));
        assert!(parsed.details[0].inner_error.as_ref().unwrap()["allowedValues"].is_array());
        assert!(parsed.to_string().contains("[correlation id f21b]"));
    }

    #[test]
    fn transient_and_permanent_are_told_apart() {
        assert!(api(429, "REQUEST_LIMITED", None).is_transient());
        assert!(api(503, "", None).is_transient());
        assert!(api(500, "UNEXPECTED_ERROR", None).is_transient());
        assert!(!api(400, "INVALID_DATA", None).is_transient());
        assert!(!api(403, "ACCESS_FAILED", None).is_transient());
        assert!(!api(404, "NOT_FOUND", None).is_transient());
        assert_eq!(
            api(400, "INVALID_DATA", Some("UNIQUENESS_VIOLATION")).reason(),
            "PingOneDuplicate"
        );
        assert!(api(400, "INVALID_DATA", Some("UNIQUENESS_VIOLATION")).is_duplicate());
        assert_eq!(
            api(429, "REQUEST_LIMITED", None).reason(),
            "PingOneRateLimited"
        );
        assert!(api(403, "ACCESS_FAILED", None).is_permission_propagation());
        assert!(!api(400, "INVALID_DATA", None).is_permission_propagation());
    }
}
