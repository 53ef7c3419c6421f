//! The seed file of the `pingone-aic-sim` binary (YAML or JSON): one section per simulator,
//! `pingone` and `aic`.

use serde::Deserialize;

use super::aic::AicSimConfig;
use super::pingone::PingOneSimConfig;

/// Everything the simulators start with.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimConfig {
    /// Organizations, environments and admin workers of the PingOne simulator.
    #[serde(default)]
    pub pingone: PingOneSimConfig,
    /// Tenant environments, promotion groups and timings of the AIC simulator; without it the
    /// binary serves PingOne only.
    #[serde(default)]
    pub aic: Option<AicSimConfig>,
}

impl SimConfig {
    /// Reads YAML (JSON is YAML too, but is parsed as JSON when it looks like it, for clearer
    /// errors).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|err| err.to_string())
        } else {
            serde_saphyr::from_str(text).map_err(|err| err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SimControl;
    use crate::pingone::{PingOneSim, RateLimit};

    #[test]
    fn rate_limits_and_licences_come_from_the_config_file() {
        let config = SimConfig::parse(
            r#"
pingone:
  rateLimit: { requestsPerSecond: 2.5, burst: 5 }
  organizations:
    - name: One
      environments:
        - { name: a, license: shared }
        - { name: b }
    - name: Two
      environments:
        - { name: c, license: shared }
        - { name: d }
aic:
  tenants: []
  rateLimit: { requestsPerSecond: 4 }
"#,
        )
        .unwrap();
        assert_eq!(
            config.pingone.rate_limit,
            Some(RateLimit {
                requests_per_second: 2.5,
                burst: Some(5)
            })
        );
        let aic = config.aic.clone().unwrap().rate_limit.unwrap();
        assert_eq!(aic.requests_per_second, 4.0);
        assert_eq!(aic.burst, None);
        let sim = PingOneSim::new(config.pingone, SimControl::new()).unwrap();
        let state = sim.state();
        let licence = |name: &str| {
            state["environments"]
                .as_array()
                .unwrap()
                .iter()
                .find(|env| env["name"] == name)
                .unwrap()["licenseId"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        // Named licences are shared across organizations; otherwise one per organization.
        assert_eq!(licence("a"), licence("c"));
        assert_ne!(licence("a"), licence("b"));
        assert_ne!(licence("b"), licence("d"));
        assert!(
            SimConfig::parse("pingone: { rateLimit: { requestsPerSecond: 1, bursts: 2 } }")
                .is_err()
        );
    }
}
