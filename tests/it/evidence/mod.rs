//! Helpers shared by the evidence tests (fault campaign, security scans, bad input): example
//! folders in a temporary directory, log capture, and the list of every secret a run knows.
#![allow(dead_code)]

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use pingone_aic_playground::Playground;
use serde_json::Value;

/// The repository's example folder.
pub fn repository_examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/examples")
}

/// Writes the repository's examples (Secrets, TenantEnvironments, PingOneIntegrations; not the
/// hand-written Promotion) into `dir` with every `Manual` policy turned `Automatic`, so the
/// operator alone carries everything to Ready: no person (and no playground helper) acts.
pub fn write_automatic_examples(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(repository_examples())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".yaml") || name.contains("promotion.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(
            dir.join(&name),
            text.replace("policy: Manual", "policy: Automatic"),
        )?;
    }
    Ok(())
}

pub use testkit::logs::Capture;

/// Private members of a JWK.
pub const PRIVATE_JWK_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// Secret keys whose whole value is secret (client ids and environment ids are not).
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "jwt", "credential", "password", "token"]
        .iter()
        .any(|k| key.contains(k))
}

/// Adds the secret parts of one Secret value under `key`.
pub fn secrets_of_value(key: &str, value: &str, out: &mut Vec<String>) {
    if let Ok(Value::Object(jwk)) = serde_json::from_str::<Value>(value) {
        for member in PRIVATE_JWK_MEMBERS {
            if let Some(text) = jwk.get(member).and_then(Value::as_str) {
                out.push(text.to_owned());
            }
        }
        if PRIVATE_JWK_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            out.push(value.to_owned());
        }
    } else if secret_key(key) {
        out.push(value.to_owned());
    }
}

/// Every string found under a key named `secret` anywhere in `value`.
fn strings_under_secret(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "secret"
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_owned());
                }
                strings_under_secret(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under_secret(v, out)),
        _ => {}
    }
}

/// Every secret the run knows: the Secrets' secret values and private JWK members, the
/// PingOne applications' current and previous secrets, every token either simulator issued.
/// Each also in standard base64, as it would travel in an ESV body.
pub async fn known_secrets(playground: &Playground) -> Vec<String> {
    let mut found = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(playground.client.clone(), &playground.namespace);
    for secret in secrets
        .list(&Default::default())
        .await
        .expect("list Secrets")
    {
        for (key, value) in secret.data.unwrap_or_default() {
            if let Ok(text) = String::from_utf8(value.0) {
                secrets_of_value(&key, &text, &mut found);
            }
        }
        for (key, value) in secret.string_data.unwrap_or_default() {
            secrets_of_value(&key, &value, &mut found);
        }
    }
    strings_under_secret(&playground.pingone.state(), &mut found);
    found.extend(playground.pingone.issued_tokens());
    found.extend(playground.aic.issued_tokens());
    let encoded: Vec<String> = found
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        .collect();
    found.extend(encoded);
    found.retain(|s| s.len() >= 12);
    found.sort();
    found.dedup();
    found
}

/// One Kubernetes API request of devkube's log, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiAccess {
    /// API group (`""` for core).
    pub group: String,
    /// Resource, with `/subresource` when one is addressed.
    pub resource: String,
    /// RBAC verb.
    pub verb: String,
}

/// The RBAC view of a `METHOD path?query` line of devkube's request log; `None` for
/// discovery and other non-resource URLs.
pub fn access_of(line: &str) -> Option<ApiAccess> {
    let (method, target) = line.split_once(' ')?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some(ApiAccess {
        group: group.to_owned(),
        resource: match sub {
            Some(sub) => format!("{resource}/{sub}"),
            None => resource.to_owned(),
        },
        verb: verb.to_owned(),
    })
}
