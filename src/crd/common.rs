//! Types shared by the three resources: Secret references, durations, policies and condition
//! types.
//!
//! Secret references are same-namespace only, as Kubernetes itself does for Pods: a resource can
//! never make the operator read a Secret from a namespace its author cannot read.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Kubernetes condition type every resource carries; re-exported so callers need not know
/// where it lives in `k8s-openapi`.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// Pattern of a Kubernetes object name (DNS-1123 subdomain).
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Pattern of a Secret data key, as Kubernetes validates it.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";

/// Pattern of a duration: one or more `<number><unit>` groups with units `ms`, `s`, `m`, `h`
/// (a subset of Go's `time.ParseDuration` syntax, which CEL's `duration()` also reads).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// A text that is not a duration of [`DURATION_PATTERN`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 30s, 10m, 1h30m or 500ms")]
pub struct InvalidDuration(pub String);

/// Reads a duration of [`DURATION_PATTERN`] (`90s`, `5m`, `1h30m`, `500ms`), the grammar the
/// CRDs admit and CEL's `duration()` reads. Anything else is an error, never a zero.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_owned());
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit_ms, unit_len): (u64, usize) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else {
            return Err(invalid());
        };
        rest = &rest[unit_len..];
        let millis = value.checked_mul(unit_ms).ok_or_else(invalid)?;
        total = total
            .checked_add(std::time::Duration::from_millis(millis))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A Secret in the resource's own namespace whose keys follow a fixed convention documented on
/// the field that uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// One key of a Secret in the resource's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253), regex(pattern = OBJECT_NAME_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY_PATTERN))]
    pub key: String,
}

/// When the operator may act on its own and when it waits for a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApprovalPolicy {
    /// The operator acts as soon as the action is needed.
    #[default]
    Automatic,
    /// The operator reports that the action is needed and waits for a person to approve it.
    Manual,
}

/// Whether the operator changes remote state or only reports what it would change (the model
/// is Crossplane's management policies and Terraform's plan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Observe, then make the remote state what the spec asks for.
    #[default]
    Full,
    /// Observe only: read everything a full pass reads, write nothing in PingOne or AIC, and
    /// report in `status.plan` the changes a full pass would make, in order. Deleting the
    /// resource deletes nothing remote.
    Observe,
}

/// Condition types shared by all resources.
pub mod condition {
    /// The resource has reached its desired state.
    pub const READY: &str = "Ready";
}

/// A command-line flag's duration: the same grammar, and longer than zero.
pub fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    match parse_duration(text) {
        Ok(parsed) if parsed.is_zero() => Err(format!("{text:?} must be longer than zero")),
        Ok(parsed) => Ok(parsed),
        Err(err) => Err(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_duration_is_longer_than_zero() {
        assert_eq!(
            parse_duration_flag("2s"),
            Ok(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            parse_duration_flag("0s").unwrap_err(),
            "\"0s\" must be longer than zero"
        );
        assert!(
            parse_duration_flag("1d")
                .unwrap_err()
                .contains("is not a duration")
        );
    }

    #[test]
    fn durations_read_as_the_crd_pattern_admits() {
        use std::time::Duration;
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3600)));
        let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
        for bad in ["", "10", "s", "1d", "1.5h", "-1s", "10 s", "1hh", "m5"] {
            assert!(!pattern.is_match(bad), "{bad:?} is not admitted");
            assert_eq!(parse_duration(bad), Err(InvalidDuration(bad.to_owned())));
        }
        assert!(
            parse_duration("99999999999999999999h").is_err(),
            "an overflow is an error"
        );
        assert_eq!(
            parse_duration("1d").unwrap_err().to_string(),
            "\"1d\" is not a duration such as 30s, 10m, 1h30m or 500ms"
        );
    }
}
