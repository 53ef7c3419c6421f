//! The SaaS clients reconcilers use, built from a TenantEnvironment and the Secrets it
//! references. The connection pool and the token caches live for the whole process; a client
//! is cheap to build per reconcile and reuses tokens until the credential behind them changes.
//!
//! Tokens are cached per Secret version (uid and resourceVersion, from the metadata watch): a
//! client whose credential's current version has a live token is built without reading the
//! Secret, and reads it only if it must renew the token. Otherwise the Secret is read once
//! to build the client. What is remembered of an admin worker's Secret between reads is its
//! identity (client id, environment, fingerprint), never the secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::aic::{self, AicClient, AicClientConfig, PrivateKey};
use crate::budget::{BudgetConfig, Budgets, RequestBudget};
use crate::crd::TenantEnvironment;
use crate::credentials::ClientCredentials;
use crate::http::Backoff;
use crate::metrics::ExternalCalls;
use crate::pingone::{
    self, CredentialIdentity, Endpoints, PingOne, PingOneSession, TokenAuthMethod,
};

use super::ReconcileError;
use super::secrets::{SecretVersion, Secrets};

/// Admin workers' identities by (namespace, Secret name, fallback environment id): the Secret
/// version they were read from and what was read.
type AdminIdentities = Mutex<HashMap<(String, String, String), (String, CredentialIdentity)>>;

/// The process's SaaS clients.
#[derive(Clone, Debug)]
pub struct Clients {
    /// PingOne: pool, token cache, request budgets, role ids.
    pub pingone: PingOne,
    aic_http: reqwest::Client,
    aic_tokens: aic::TokenCache,
    aic_snapshots: aic::EsvSnapshots,
    aic_backoff: Backoff,
    /// One request budget per AIC tenant, shared by every reconcile.
    aic_budget: Arc<RequestBudget>,
    calls: ExternalCalls,
    admin_identities: Arc<AdminIdentities>,
}

impl Clients {
    /// Builds the clients with production settings.
    pub fn new() -> Result<Self, ReconcileError> {
        Self::with(pingone::PingOneConfig::default(), Backoff::default())
    }

    /// Builds the clients with production settings and these rate budgets.
    pub fn with_budgets(budgets: Budgets) -> Result<Self, ReconcileError> {
        let pingone_config = pingone::PingOneConfig {
            budget: budgets.pingone(),
            ..Default::default()
        };
        Ok(Self::with(pingone_config, Backoff::default())?.with_aic_budget(budgets.aic()))
    }

    /// The rate of each PingOne licence's budget.
    pub fn pingone_budget(&self) -> BudgetConfig {
        self.pingone.budget()
    }

    /// The rate of each AIC tenant's budget.
    pub fn aic_budget(&self) -> BudgetConfig {
        self.aic_budget.config()
    }

    /// Replaces the per-tenant AIC budget's rate.
    pub fn with_aic_budget(mut self, config: BudgetConfig) -> Self {
        self.aic_budget = Arc::new(RequestBudget::new(config));
        self
    }

    /// Builds the clients with the given PingOne settings and AIC backoff (tests shorten them).
    pub fn with(
        pingone_config: pingone::PingOneConfig,
        aic_backoff: Backoff,
    ) -> Result<Self, ReconcileError> {
        let aic_http =
            crate::http::tenant_client(concat!("pingone-aic-operator/", env!("CARGO_PKG_VERSION")))
                .map_err(|err| ReconcileError::invalid("HttpClient", err.to_string()))?;
        let calls = pingone_config.calls.clone();
        Ok(Self {
            pingone: PingOne::new(pingone_config)?,
            aic_http,
            aic_tokens: aic::TokenCache::default(),
            aic_snapshots: aic::EsvSnapshots::default(),
            aic_backoff,
            aic_budget: Arc::new(RequestBudget::new(Budgets::default().aic())),
            calls,
            admin_identities: Arc::default(),
        })
    }

    /// Where both clients count their HTTP calls (the PingOne settings' counter), for the
    /// metrics registry to expose.
    pub fn external_calls(&self) -> ExternalCalls {
        self.calls.clone()
    }

    /// A client for the tenant environment, signed in as its service account, asking for the
    /// default scopes plus `extra_scopes`. Reads the private key Secret only when no token for
    /// its current version lives.
    pub async fn aic(
        &self,
        secrets: &Secrets,
        tenant: &TenantEnvironment,
        extra_scopes: &[&str],
    ) -> Result<AicClient, ReconcileError> {
        let namespace = namespace_of(tenant);
        let key_ref = &tenant.spec.service_account.private_key_secret_ref;
        let account = &tenant.spec.service_account.id;
        let scopes = aic::auth::normalize_scopes(
            aic::DEFAULT_SCOPES
                .iter()
                .chain(extra_scopes)
                .map(|s| (*s).to_owned())
                .collect(),
        );
        let live = secrets
            .version(&namespace, &key_ref.name)
            .map(|version| version.id(&key_ref.key))
            .filter(|version| {
                aic::tenant_origin(&tenant.spec.tenant_url)
                    .is_ok_and(|origin| self.aic_tokens.is_live(&origin, account, version, &scopes))
            });
        let private_key = match live {
            Some(version) => PrivateKey::Deferred {
                version,
                source: secrets.private_key_reader(&namespace, &key_ref.name, &key_ref.key),
            },
            None => {
                let data = secrets.read(&namespace, &key_ref.name).await?;
                PrivateKey::Jwk {
                    jwk: data.required(&key_ref.key)?,
                    version: Some(SecretVersion::of(&data).id(&key_ref.key)),
                }
            }
        };
        let config = AicClientConfig {
            tenant_url: tenant.spec.tenant_url.clone(),
            realm: tenant.spec.realm.clone(),
            service_account_id: account.clone(),
            private_key,
            scopes,
            backoff: self.aic_backoff,
        };
        let mut client = AicClient::new(config, self.aic_http.clone(), self.aic_tokens.clone())?
            .with_snapshots(self.aic_snapshots.clone())
            .with_budget(self.aic_budget.clone())
            .with_calls(self.calls.clone());
        if let Ok(endpoints) = Self::pingone_endpoints(tenant) {
            let license = tenant.spec.ping_one.license.as_deref();
            client = client.with_connection_test_budget(
                self.pingone.license_budgets(),
                pingone::client::license_key(&endpoints, license),
            );
        }
        Ok(client)
    }

    /// The PingOne base URLs of the tenant environment's mapped PingOne environment.
    pub fn pingone_endpoints(tenant: &TenantEnvironment) -> Result<Endpoints, ReconcileError> {
        let ping_one = &tenant.spec.ping_one;
        Endpoints::new(
            ping_one.region,
            ping_one.api_url.as_deref(),
            ping_one.auth_url.as_deref(),
        )
        .map_err(|err| ReconcileError::invalid("InvalidPingOneUrl", err.to_string()))
    }

    /// A PingOne session with the operator's admin worker of the tenant environment, `None`
    /// when the environment has no admin credentials. Reads the admin Secret only when no
    /// token for its current version lives.
    pub async fn pingone_admin(
        &self,
        secrets: &Secrets,
        tenant: &TenantEnvironment,
    ) -> Result<Option<PingOneSession>, ReconcileError> {
        let Some(secret_ref) = &tenant.spec.ping_one.admin_credentials_secret_ref else {
            return Ok(None);
        };
        let namespace = namespace_of(tenant);
        let fallback_environment = &tenant.spec.ping_one.environment_id;
        let memo_key = (
            namespace.clone(),
            secret_ref.name.clone(),
            fallback_environment.clone(),
        );
        if let Some(version) = secrets.version(&namespace, &secret_ref.name)
            && let Some(identity) = self.admin_identity(&memo_key, &version.id(""))
        {
            let endpoints = Self::pingone_endpoints(tenant)?;
            if self.pingone.has_live_token(&endpoints, &identity) {
                let reader = secrets.client_secret_reader(&namespace, &secret_ref.name);
                return Ok(Some(
                    self.pingone
                        .deferred_session(endpoints, identity, reader)
                        .on_license(tenant.spec.ping_one.license.as_deref()),
                ));
            }
        }
        let data = secrets.read(&namespace, &secret_ref.name).await?;
        let credentials = ClientCredentials::from_secret(&data)?;
        let environment_id = credentials
            .environment_id
            .clone()
            .unwrap_or_else(|| fallback_environment.clone());
        let credentials = pingone::Credentials {
            environment_id,
            client_id: credentials.client_id,
            client_secret: credentials.client_secret,
            auth_method: TokenAuthMethod::ClientSecretBasic,
        };
        self.admin_identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                memo_key,
                (SecretVersion::of(&data).id(""), credentials.identity()),
            );
        Ok(Some(
            self.pingone
                .session(Self::pingone_endpoints(tenant)?, credentials)
                .on_license(tenant.spec.ping_one.license.as_deref()),
        ))
    }

    /// The identity read from an admin Secret at `version`, if that is the version last read.
    fn admin_identity(
        &self,
        key: &(String, String, String),
        version: &str,
    ) -> Option<CredentialIdentity> {
        self.admin_identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|(read, _)| read == version)
            .map(|(_, identity)| identity.clone())
    }
}

/// Namespace of a namespaced resource (empty only for objects built in memory).
pub fn namespace_of<K: kube::Resource>(object: &K) -> String {
    object.meta().namespace.clone().unwrap_or_default()
}
