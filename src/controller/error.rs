//! The one error type of the reconcilers. Each error knows whether it is transient (retry with
//! backoff, honouring the server's `Retry-After`) or permanent (report it in a condition and
//! wait for the spec or a Secret to change), and carries a stable reason for conditions,
//! events and metrics. Messages never hold secret values: the errors they wrap do not either.

use std::time::Duration;

use crate::aic::AicError;
use crate::credentials::CredentialError;
use crate::pingone::PingOneError;

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A referenced Secret is missing or malformed.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The PingOne API failed.
    #[error("PingOne: {0}")]
    PingOne(#[from] PingOneError),
    /// An Advanced Identity Cloud API failed.
    #[error("Advanced Identity Cloud: {0}")]
    Aic(#[from] AicError),
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {}", describe_kube(.0))]
    Kube(#[from] kube::Error),
    /// A write that needed the object as it was read found it changed (a conflict, or the
    /// finalizer helper's JSON-patch test against a cache that lagged behind). Expected now and
    /// then; the next pass reads the object again.
    #[error("{action}: the object changed since it was read (HTTP {code}); retrying")]
    ObjectChanged {
        /// What could not be written, e.g. "adding the finalizer".
        action: &'static str,
        /// The API server's answer: 409 or 422.
        code: u16,
    },
    /// The spec, or an object it references, cannot be acted on as it is.
    #[error("{message}")]
    Invalid {
        /// Stable reason, e.g. `TenantEnvironmentNotFound`.
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Another object already owns what this one asks for.
    #[error("{message}")]
    Conflict {
        /// Stable reason, e.g. `DuplicateApplications`.
        reason: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A step that must finish before the reconcile can (e.g. releasing a promotion lock before
    /// a deletion) is under way remotely. Not a failure: it is polled at a fixed interval, not
    /// backed off, because the finalizer can only wait by returning an error.
    #[error("{message}")]
    InProgress {
        /// What is under way.
        message: String,
        /// When to look again.
        poll: Duration,
    },
}

impl From<kube::runtime::finalizer::Error<ReconcileError>> for ReconcileError {
    /// The reconcile's own error when it failed inside the finalizer helper; the helper's
    /// errors (adding or removing the finalizer) otherwise.
    fn from(err: kube::runtime::finalizer::Error<ReconcileError>) -> Self {
        use kube::runtime::finalizer::Error as FinalizerError;
        let (action, kube_error) = match err {
            FinalizerError::ApplyFailed(err) | FinalizerError::CleanupFailed(err) => return err,
            FinalizerError::AddFinalizer(err) => ("adding the finalizer", err),
            FinalizerError::RemoveFinalizer(err) => ("removing the finalizer", err),
            other => return ReconcileError::Finalizer(other.to_string()),
        };
        match &kube_error {
            kube::Error::Api(status) if matches!(status.code, 409 | 422) => {
                ReconcileError::ObjectChanged {
                    action,
                    code: status.code,
                }
            }
            _ => ReconcileError::Finalizer(format!("{action}: {}", describe_kube(&kube_error))),
        }
    }
}

impl ReconcileError {
    /// An invalid spec or reference.
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError::Invalid {
            reason,
            message: message.into(),
        }
    }

    /// A conflict with another object.
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError::Conflict {
            reason,
            message: message.into(),
        }
    }

    /// Stable reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Credentials(err) => err.reason(),
            ReconcileError::PingOne(err) => err.reason(),
            ReconcileError::Aic(err) => err.reason(),
            ReconcileError::Kube(_) => "KubernetesApiError",
            ReconcileError::Invalid { reason, .. } | ReconcileError::Conflict { reason, .. } => {
                reason
            }
            ReconcileError::Finalizer(_) => "FinalizerError",
            ReconcileError::ObjectChanged { .. } => "ObjectChanged",
            ReconcileError::InProgress { .. } => "InProgress",
        }
    }

    /// Whether retrying may help without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Credentials(err) => err.is_transient(),
            ReconcileError::PingOne(err) => err.is_transient(),
            ReconcileError::Aic(err) => err.is_transient(),
            ReconcileError::Kube(err) => kube_error_is_transient(err),
            ReconcileError::Invalid { .. } | ReconcileError::Conflict { .. } => false,
            ReconcileError::Finalizer(_)
            | ReconcileError::ObjectChanged { .. }
            | ReconcileError::InProgress { .. } => true,
        }
    }

    /// Whether this failure is part of normal operation (another writer got there first), so
    /// it is logged at debug level and not as a warning.
    pub fn is_expected(&self) -> bool {
        match self {
            ReconcileError::ObjectChanged { .. } => true,
            ReconcileError::Kube(kube::Error::Api(status)) => status.code == 409,
            _ => false,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ReconcileError::PingOne(err) => err.retry_after(),
            ReconcileError::Aic(err) => err.retry_after(),
            _ => None,
        }
    }
}

/// A Kubernetes API error as one line: the answer's code, reason and message for a refusal
/// (kube's own `Display` appends a `Debug` dump of the whole `Status`), the error otherwise.
pub(crate) fn describe_kube(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            format!("{} {}: {}", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    }
}

fn kube_error_is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 409 || status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// When to look again after a failed reconcile: transient errors back off exponentially per
/// object (honouring `Retry-After`); permanent ones wait for a change, with a slow safety-net
/// retry in case what was wrong outside Kubernetes is fixed there.
pub fn retry_delay(error: &ReconcileError, consecutive_failures: u32) -> Duration {
    if let ReconcileError::InProgress { poll, .. } = error {
        return *poll;
    }
    if !error.is_transient() {
        return Duration::from_secs(300);
    }
    let exponent = consecutive_failures.min(8);
    let backoff = Duration::from_secs(2) * 2u32.pow(exponent);
    let backoff = backoff.min(Duration::from_secs(300));
    let jittered = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
    error
        .retry_after()
        .map_or(jittered, |server| server.max(jittered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_errors_wait_for_a_change() {
        let error = ReconcileError::invalid("TenantEnvironmentNotFound", "no such environment");
        assert!(!error.is_transient());
        assert_eq!(error.reason(), "TenantEnvironmentNotFound");
        assert_eq!(retry_delay(&error, 0), Duration::from_secs(300));
    }

    #[test]
    fn transient_errors_back_off_and_are_capped() {
        let error = ReconcileError::Finalizer("busy".into());
        let first = retry_delay(&error, 0);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
        let later = retry_delay(&error, 30);
        assert!(later <= Duration::from_secs(300) && later >= Duration::from_secs(150));
    }

    #[test]
    fn kubernetes_conflicts_and_server_errors_are_transient() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert!(ReconcileError::Kube(status(409)).is_transient());
        assert!(ReconcileError::Kube(status(409)).is_expected());
        assert!(!ReconcileError::Kube(status(503)).is_expected());
        assert!(ReconcileError::Kube(status(503)).is_transient());
        assert!(!ReconcileError::Kube(status(403)).is_transient());
    }

    #[test]
    fn a_finalizer_patch_on_a_stale_object_is_one_short_expected_line() {
        let refused = kube::Error::Api(Box::new(kube::core::Status {
            code: 422,
            reason: "Invalid".into(),
            message: "the server rejected our request due to an error in our request".into(),
            ..Default::default()
        }));
        let error = ReconcileError::from(
            kube::runtime::finalizer::Error::<ReconcileError>::AddFinalizer(refused),
        );
        assert!(error.is_expected() && error.is_transient());
        assert_eq!(
            error.to_string(),
            "adding the finalizer: the object changed since it was read (HTTP 422); retrying"
        );
    }

    #[test]
    fn a_kubernetes_refusal_reads_without_a_debug_dump() {
        let error = ReconcileError::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "secrets is forbidden".into(),
            ..Default::default()
        })));
        let text = error.to_string();
        assert_eq!(text, "Kubernetes API: 403 Forbidden: secrets is forbidden");
        assert!(!error.is_expected());
    }
}
