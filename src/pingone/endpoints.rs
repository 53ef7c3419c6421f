//! Where a PingOne environment is reached: the regional API and auth base URLs, or overrides
//! for custom domains and simulators.

use url::Url;

use crate::crd::tenant_environment::Region;
use crate::http::{BaseUrlError, parse_base_url};

/// The two base URLs of one PingOne region (or of a stand-in for it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Management API base, including `/v1`.
    pub api: Url,
    /// Authorization server base; the token endpoint is `{auth}/{envId}/as/token`.
    pub auth: Url,
}

impl Endpoints {
    /// The region's public hosts, each replaceable by an override (custom domain, simulator).
    /// Plain http is refused except for loopback addresses.
    pub fn new(
        region: Region,
        api_override: Option<&str>,
        auth_override: Option<&str>,
    ) -> Result<Self, BaseUrlError> {
        let api = parse_base_url(api_override.unwrap_or(&region.api_url()))?;
        let auth = parse_base_url(auth_override.unwrap_or(&region.auth_url()))?;
        Ok(Self { api, auth })
    }

    /// The endpoints of a TenantEnvironment's PingOne environment.
    pub fn for_environment(
        environment: &crate::crd::tenant_environment::PingOneEnvironment,
    ) -> Result<Self, BaseUrlError> {
        Self::new(
            environment.region,
            environment.api_url.as_deref(),
            environment.auth_url.as_deref(),
        )
    }

    /// Both bases given explicitly, e.g. a simulator's `http://127.0.0.1:PORT/v1` and
    /// `http://127.0.0.1:PORT`.
    pub fn custom(api: &str, auth: &str) -> Result<Self, BaseUrlError> {
        Ok(Self {
            api: parse_base_url(api)?,
            auth: parse_base_url(auth)?,
        })
    }

    /// The token endpoint of the environment the credential's application lives in.
    pub fn token_url(&self, environment_id: &str) -> Url {
        let mut url = self.auth.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([environment_id, "as", "token"]);
        }
        url
    }

    /// An API URL from path segments (each is percent-encoded here).
    pub fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_has_its_hosts() {
        let cases = [
            (Region::NA, "com"),
            (Region::CA, "ca"),
            (Region::EU, "eu"),
            (Region::AU, "com.au"),
            (Region::SG, "sg"),
            (Region::AP, "asia"),
        ];
        for (region, tld) in cases {
            let endpoints = Endpoints::new(region, None, None).unwrap();
            assert_eq!(
                endpoints.api_url(&["environments", "e1"]).as_str(),
                format!("https://api.pingone.{tld}/v1/environments/e1")
            );
            assert_eq!(
                endpoints.token_url("e1").as_str(),
                format!("https://auth.pingone.{tld}/e1/as/token")
            );
        }
    }

    #[test]
    fn overrides_win_and_plain_http_is_loopback_only() {
        let endpoints = Endpoints::new(
            Region::EU,
            Some("https://p1.example.com/v1/"),
            Some("http://127.0.0.1:9000"),
        )
        .unwrap();
        assert_eq!(endpoints.api.as_str(), "https://p1.example.com/v1");
        assert_eq!(
            endpoints.token_url("e 1").as_str(),
            "http://127.0.0.1:9000/e%201/as/token"
        );
        assert!(Endpoints::new(Region::EU, Some("http://p1.example.com/v1"), None).is_err());
    }

    #[test]
    fn a_tenant_environment_spec_selects_its_endpoints() {
        let spec: crate::crd::tenant_environment::PingOneEnvironment =
            serde_json::from_value(serde_json::json!({
                "environmentId": "5c2a0c83-6d9f-4b6e-9d0e-6a4f1f3b2e10",
                "region": "AU",
                "authUrl": "https://login.example.com"
            }))
            .unwrap();
        let endpoints = Endpoints::for_environment(&spec).unwrap();
        assert_eq!(endpoints.api.as_str(), "https://api.pingone.com.au/v1");
        assert_eq!(endpoints.auth.as_str(), "https://login.example.com/");
    }

    #[test]
    fn path_segments_are_encoded() {
        let endpoints = Endpoints::custom("http://127.0.0.1:1/v1", "http://127.0.0.1:1").unwrap();
        assert_eq!(
            endpoints.api_url(&["environments", "a/b"]).as_str(),
            "http://127.0.0.1:1/v1/environments/a%2Fb"
        );
    }
}
