//! The SaaS clients reconcilers use, built from a TenantEnvironment and the Secrets it
//! references. The connection pool and the token caches live for the whole process; a client
//! is cheap to build per reconcile and reuses tokens until the credential behind them changes.

use std::sync::Arc;

use crate::aic::{self, AicClient, AicClientConfig};
use crate::budget::{BudgetConfig, Budgets, RequestBudget};
use crate::crd::TenantEnvironment;
use crate::credentials::{ClientCredentials, SecretData};
use crate::http::Backoff;
use crate::metrics::ExternalCalls;
use crate::pingone::{self, Endpoints, PingOne, PingOneSession, TokenAuthMethod};

use super::ReconcileError;

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
            crate::http::client(concat!("pingone-aic-operator/", env!("CARGO_PKG_VERSION")))
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
        })
    }

    /// Where both clients count their HTTP calls (the PingOne settings' counter), for the
    /// metrics registry to expose.
    pub fn external_calls(&self) -> ExternalCalls {
        self.calls.clone()
    }

    /// A client for the tenant environment, signed in as its service account, asking for the
    /// default scopes plus `extra_scopes`.
    pub async fn aic(
        &self,
        kube: &kube::Client,
        tenant: &TenantEnvironment,
        extra_scopes: &[&str],
    ) -> Result<AicClient, ReconcileError> {
        let namespace = namespace_of(tenant);
        let key_ref = &tenant.spec.service_account.private_key_secret_ref;
        let data = SecretData::fetch(kube, &namespace, &key_ref.name).await?;
        let private_key = data.required(&key_ref.key)?;
        let scopes = aic::DEFAULT_SCOPES
            .iter()
            .chain(extra_scopes)
            .map(|s| (*s).to_owned())
            .collect();
        let config = AicClientConfig {
            tenant_url: tenant.spec.tenant_url.clone(),
            realm: tenant.spec.realm.clone(),
            service_account_id: tenant.spec.service_account.id.clone(),
            private_key,
            scopes,
            backoff: self.aic_backoff,
        };
        Ok(
            AicClient::new(config, self.aic_http.clone(), self.aic_tokens.clone())?
                .with_snapshots(self.aic_snapshots.clone())
                .with_budget(self.aic_budget.clone())
                .with_calls(self.calls.clone()),
        )
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
    /// when the environment has no admin credentials.
    pub async fn pingone_admin(
        &self,
        kube: &kube::Client,
        tenant: &TenantEnvironment,
    ) -> Result<Option<PingOneSession>, ReconcileError> {
        let Some(secret_ref) = &tenant.spec.ping_one.admin_credentials_secret_ref else {
            return Ok(None);
        };
        let data = SecretData::fetch(kube, &namespace_of(tenant), &secret_ref.name).await?;
        let credentials = ClientCredentials::from_secret(&data)?;
        let environment_id = credentials
            .environment_id
            .clone()
            .unwrap_or_else(|| tenant.spec.ping_one.environment_id.clone());
        Ok(Some(
            self.pingone
                .session(
                    Self::pingone_endpoints(tenant)?,
                    pingone::Credentials {
                        environment_id,
                        client_id: credentials.client_id,
                        client_secret: credentials.client_secret,
                        auth_method: TokenAuthMethod::ClientSecretBasic,
                    },
                )
                .on_license(tenant.spec.ping_one.license.as_deref()),
        ))
    }
}

/// Namespace of a namespaced resource (empty only for objects built in memory).
pub fn namespace_of<K: kube::Resource>(object: &K) -> String {
    object.meta().namespace.clone().unwrap_or_default()
}
