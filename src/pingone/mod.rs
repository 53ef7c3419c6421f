//! PingOne Platform (admin) API client for Task 1 of the procedure: worker applications, their
//! secret, role assignments, roles and environments.
//!
//! Decisions worth knowing:
//! - One [`PingOne`] per process holds the connection pool, the token cache, the per-licence
//!   request budget ([`crate::budget`]) and the role-id cache; a [`PingOneSession`] binds it to one credential and
//!   one pair of base URLs and implements [`PingOneApi`], the trait the reconcilers' PingOne
//!   steps take (`&impl PingOneApi`); the tests drive it against the PingOne simulator.
//! - Retries: 408/429/5xx and network errors back off with jitter and honour `Retry-After`; a
//!   `Retry-After` longer than the backoff cap is not slept on but returned as a transient error,
//!   so the reconciler requeues instead of holding a worker. Non-idempotent POSTs (create
//!   application, rotate secret) are retried only on 429, which PingOne sends before doing
//!   anything, so a lost answer never creates a duplicate application or a second rotation.
//! - Propagation windows: a 403 (or "Must have role at the same or broader scope") is retried
//!   until `propagation_window` has passed since the first attempt, then returned as the
//!   permanent error it then probably is; a 404 is retried while the environment is younger than
//!   `young_environment_window`.
//! - A 401 on the API drops the cached token and retries once with a new one.
//! - `_links.next` is followed only when it points at the API's own origin, so the bearer
//!   token never goes elsewhere.

pub mod client;
pub mod clock;
pub mod endpoints;
pub mod error;
pub mod model;
pub mod token;

use std::future::Future;

pub use client::{PingOne, PingOneConfig, PingOneSession};
pub use endpoints::Endpoints;
pub use error::{P1Error, PingOneError};
pub use model::{
    Application, ApplicationSecret, AssignmentOutcome, Environment, Role, RoleAssignment, Scope,
    ScopeType, TokenAuthMethod, WorkerApplication,
};
pub use token::{CredentialIdentity, Credentials, SecretReader};

/// The built-in role a worker needs for the AIC PingOne Worker Service.
pub const IDENTITY_DATA_ADMIN: &str = "Identity Data Admin";

/// What the operator does in PingOne, with one credential. Observing calls never mutate;
/// creating an existing role assignment and deleting a missing resource both succeed.
pub trait PingOneApi: Send + Sync {
    /// Gets a token for the session's credential (from the cache when still fresh); proves the
    /// client id, secret, auth method and enabled flag, not the roles.
    fn verify_credentials(&self) -> impl Future<Output = Result<(), PingOneError>> + Send;

    /// Reads an environment, e.g. to confirm its region.
    fn environment(
        &self,
        environment_id: &str,
    ) -> impl Future<Output = Result<Environment, PingOneError>> + Send;

    /// Every application of the environment, following `_links.next`.
    fn list_applications(
        &self,
        environment_id: &str,
    ) -> impl Future<Output = Result<Vec<Application>, PingOneError>> + Send;

    /// Applications whose name matches case-insensitively (names are not unique).
    fn find_applications_by_name(
        &self,
        environment_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<Application>, PingOneError>> + Send {
        async move {
            let apps = self.list_applications(environment_id).await?;
            Ok(apps
                .into_iter()
                .filter(|app| app.name.to_lowercase() == name.to_lowercase())
                .collect())
        }
    }

    /// One application, `None` when it does not exist.
    fn application(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> impl Future<Output = Result<Option<Application>, PingOneError>> + Send;

    /// Creates a worker application without inheriting the caller's roles.
    fn create_worker_application(
        &self,
        environment_id: &str,
        app: &WorkerApplication,
    ) -> impl Future<Output = Result<Application, PingOneError>> + Send;

    /// Replaces a worker application (full replace).
    fn replace_worker_application(
        &self,
        environment_id: &str,
        application_id: &str,
        app: &WorkerApplication,
    ) -> impl Future<Output = Result<Application, PingOneError>> + Send;

    /// Deletes an application; `false` when it was already gone.
    fn delete_application(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> impl Future<Output = Result<bool, PingOneError>> + Send;

    /// Reads an application's secret (and the previous one during an overlap).
    fn application_secret(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> impl Future<Output = Result<ApplicationSecret, PingOneError>> + Send;

    /// Rotates the secret; with `previous_expires_at` the old one keeps working until then
    /// (PingOne allows 1 minute to 30 days), without it the old one stops at once.
    fn rotate_application_secret(
        &self,
        environment_id: &str,
        application_id: &str,
        previous_expires_at: Option<jiff::Timestamp>,
    ) -> impl Future<Output = Result<ApplicationSecret, PingOneError>> + Send;

    /// Ends the overlap: the previous secret stops working.
    fn delete_previous_secret(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> impl Future<Output = Result<(), PingOneError>> + Send;

    /// The id of a built-in role, by exact name (cached).
    fn role_id(&self, name: &str) -> impl Future<Output = Result<String, PingOneError>> + Send;

    /// An application's role assignments.
    fn list_role_assignments(
        &self,
        environment_id: &str,
        application_id: &str,
    ) -> impl Future<Output = Result<Vec<RoleAssignment>, PingOneError>> + Send;

    /// Assigns a role; an identical (or overlapping) assignment already present is success.
    fn create_role_assignment(
        &self,
        environment_id: &str,
        application_id: &str,
        role_id: &str,
        scope: &Scope,
    ) -> impl Future<Output = Result<AssignmentOutcome, PingOneError>> + Send;

    /// Removes a role assignment; `false` when it was already gone.
    fn delete_role_assignment(
        &self,
        environment_id: &str,
        application_id: &str,
        assignment_id: &str,
    ) -> impl Future<Output = Result<bool, PingOneError>> + Send;
}
