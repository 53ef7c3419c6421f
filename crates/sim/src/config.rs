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
