//! The simulated tenants' state and the rules that act on it, free of HTTP so they are easy to
//! reason about: ESVs with `loaded`, restarts, AM static configuration, placeholders, locks and
//! promotions. Handlers translate requests into calls on these types.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Tier;
use super::{Fault, Timings};

/// A service account as the tenant knows it: public key and granted scopes.
pub(crate) struct Account {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

pub(crate) struct Variable {
    pub value_base64: String,
    pub description: String,
    pub expression_type: String,
    pub last_change_date: String,
    pub last_changed_by: String,
    /// The value the running services hold (set by a restart).
    pub loaded_value: Option<String>,
}

impl Variable {
    pub fn loaded(&self) -> bool {
        self.loaded_value.as_deref() == Some(self.value_base64.as_str())
    }

    pub fn to_json(&self, id: &str, with_value: bool) -> Value {
        let mut v = json!({
            "_id": id,
            "description": self.description,
            "expressionType": self.expression_type,
            "lastChangeDate": self.last_change_date,
            "lastChangedBy": self.last_changed_by,
            "loaded": self.loaded(),
        });
        if with_value {
            v["valueBase64"] = json!(self.value_base64);
        }
        v
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum VersionStatus {
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Enabled => "ENABLED",
            VersionStatus::Disabled => "DISABLED",
            VersionStatus::Destroyed => "DESTROYED",
        }
    }
}

pub(crate) struct SecretVersion {
    pub number: u32,
    pub status: VersionStatus,
    pub create_date: String,
    /// Kept only so testConnection can use it; no response ever carries it.
    pub value: String,
}

pub(crate) struct Secret {
    pub encoding: String,
    pub use_in_placeholders: bool,
    pub description: String,
    pub last_change_date: String,
    pub last_changed_by: String,
    /// Oldest first.
    pub versions: Vec<SecretVersion>,
    /// Version number the running services hold, 0 for none.
    pub loaded_version: u32,
}

impl Secret {
    /// Highest-numbered enabled version.
    pub fn active_version(&self) -> u32 {
        self.versions
            .iter()
            .filter(|v| v.status == VersionStatus::Enabled)
            .map(|v| v.number)
            .max()
            .unwrap_or(0)
    }

    /// Highest-numbered version that is not destroyed.
    pub fn latest(&self) -> Option<&SecretVersion> {
        self.versions
            .iter()
            .filter(|v| v.status != VersionStatus::Destroyed)
            .max_by_key(|v| v.number)
    }

    pub fn effective_loaded_version(&self) -> u32 {
        // Secrets not usable in placeholders are read through mappings, which need no restart.
        if self.use_in_placeholders {
            self.loaded_version
        } else {
            self.active_version()
        }
    }

    pub fn loaded(&self) -> bool {
        self.effective_loaded_version() == self.active_version()
    }

    pub fn is_pending(&self) -> bool {
        self.use_in_placeholders && !self.loaded()
    }

    pub fn to_json(&self, id: &str) -> Value {
        let loaded = self.effective_loaded_version();
        json!({
            "_id": id,
            "activeVersion": version_string(self.active_version()),
            "description": self.description,
            "encoding": self.encoding,
            "lastChangeDate": self.last_change_date,
            "lastChangedBy": self.last_changed_by,
            "loaded": self.loaded(),
            "loadedVersion": version_string(loaded),
            "useInPlaceholders": self.use_in_placeholders,
        })
    }

    pub fn version_json(&self, version: &SecretVersion) -> Value {
        json!({
            "createDate": version.create_date,
            "loaded": self.effective_loaded_version() == version.number,
            "status": version.status.as_str(),
            "version": version.number.to_string(),
        })
    }
}

fn version_string(number: u32) -> String {
    if number == 0 {
        String::new()
    } else {
        number.to_string()
    }
}

pub(crate) struct Restart {
    pub ends_at_ms: i64,
    pub poll_failures_left: u32,
}

/// AM static configuration of one realm.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Realm {
    /// `pingOneWorkerService`: `Some(enabled)` when present.
    pub service: Option<bool>,
    pub workers: BTreeMap<String, Map<String, Value>>,
    /// label → aliases.
    pub mappings: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LockPhase {
    Locking { until_ms: i64 },
    Locked,
    Unlocking { until_ms: i64 },
}

pub(crate) struct Lock {
    pub promotion_id: String,
    pub lower: String,
    pub upper: String,
    pub phase: LockPhase,
}

pub(crate) struct RunningPromotion {
    pub promotion_id: String,
    pub dry_run: bool,
    pub until_ms: i64,
    pub request: Value,
    pub unlock_after: bool,
    /// A rollback of the last promotion rather than a promotion.
    pub rollback: bool,
}

pub(crate) struct Tenant {
    pub tier: Tier,
    /// Port to bind on loopback (0: any).
    pub port: u16,
    /// Origin the tenant is known by (configured, or the loopback address it was bound to).
    pub origin: Option<url::Url>,
    pub accounts: Vec<Account>,
    pub variables: BTreeMap<String, Variable>,
    pub secrets: BTreeMap<String, Secret>,
    pub restart: Option<Restart>,
    pub realms: BTreeMap<String, Realm>,
    pub promotion: Option<RunningPromotion>,
    pub last_progress: Option<Value>,
    pub reports: Vec<Value>,
    /// The AM configuration the last promotion replaced: what a rollback restores.
    pub before_last_promotion: Option<BTreeMap<String, Realm>>,
    /// Configuration items holding a secret in the configuration itself rather than in an ESV,
    /// by name: what AIC's integrity check reports as `encryptedSecrets` and does not promote.
    pub embedded_secrets: std::collections::BTreeSet<String>,
}

impl Tenant {
    /// Completes a restart whose time is up: the running services take the current values.
    pub fn tick_restart(&mut self, now_ms: i64) {
        // While status polls still fail the services are still coming up.
        if let Some(restart) = &self.restart
            && restart.ends_at_ms <= now_ms
            && restart.poll_failures_left == 0
        {
            self.restart = None;
            for variable in self.variables.values_mut() {
                variable.loaded_value = Some(variable.value_base64.clone());
            }
            for secret in self.secrets.values_mut() {
                secret.loaded_version = secret.active_version();
            }
        }
    }

    /// Value a placeholder `&{name}` resolves to in the running services: the *loaded* value of
    /// the variable, or the loaded version of a placeholder-usable secret.
    pub fn loaded_esv_value(&self, placeholder_name: &str) -> Option<String> {
        let id = esv_id_for_placeholder(placeholder_name);
        if let Some(variable) = self.variables.get(&id) {
            let loaded = variable.loaded_value.as_deref()?;
            return decode_b64(loaded);
        }
        let secret = self.secrets.get(&id)?;
        if !secret.use_in_placeholders {
            return None;
        }
        let version = secret
            .versions
            .iter()
            .find(|v| v.number == secret.loaded_version && v.status != VersionStatus::Destroyed)?;
        decode_b64(version.value.as_str())
    }

    /// Whether AM configuration still uses the ESV: a placeholder in a worker, or a mapping
    /// alias.
    pub fn esv_in_use(&self, id: &str) -> bool {
        self.realms.values().any(|realm| {
            realm.mappings.values().flatten().any(|alias| alias == id)
                || realm.workers.values().any(|worker| {
                    let mut strings = Vec::new();
                    collect_strings(&Value::Object(worker.clone()), &mut strings);
                    strings.iter().any(|text| {
                        placeholders(text)
                            .iter()
                            .any(|(name, _)| esv_id_for_placeholder(name) == id)
                    })
                })
        })
    }

    pub fn has_esv(&self, id: &str) -> bool {
        self.variables.contains_key(id) || self.secrets.contains_key(id)
    }
}

pub(crate) fn decode_b64(value: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `esv.a.b` → `esv-a-b`: placeholders replace every hyphen of the id with a dot.
pub(crate) fn esv_id_for_placeholder(name: &str) -> String {
    name.replace('.', "-")
}

/// Placeholders in a string: `(name, default)`.
pub(crate) fn placeholders(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("&{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        let (name, default) = match inner.split_once('|') {
            Some((name, default)) => (name, Some(default.to_owned())),
            None => (inner, None),
        };
        found.push((name.to_owned(), default));
        rest = &after[end + 1..];
    }
    found
}

/// Resolves every placeholder in `text` with `lookup`; the first unresolvable one is the error.
pub(crate) fn resolve(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("&{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once('|') {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        match lookup(name).or_else(|| default.map(str::to_owned)) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("&{{{inner}}}")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Strings of a worker attribute, accepting `{"$string": "…"}` as AIC configuration does.
pub(crate) fn string_value(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("$string")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// A call-log entry.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Tenant name.
    pub tenant: String,
    /// HTTP method.
    pub method: String,
    /// Path (no query).
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// The `Accept-API-Version` header sent, if any.
    pub accept_api_version: Option<String>,
    /// Response status.
    pub status: u16,
}

pub(crate) struct TokenRecord {
    pub tenant: String,
    pub account: String,
    pub scopes: Vec<String>,
    pub expires_at_ms: i64,
}

pub(crate) struct State {
    pub tenants: BTreeMap<String, Tenant>,
    pub groups: Vec<Vec<String>>,
    pub tokens: HashMap<String, TokenRecord>,
    pub locks: Vec<Lock>,
    pub calls: Vec<CallRecord>,
    pub faults: Vec<Fault>,
    /// Faults answered with a raw body: (fault, content type, body).
    pub raw_faults: Vec<(Fault, String, String)>,
    pub clock_offset_ms: i64,
    pub timings: Timings,
    /// Writes being served per tenant, and the most seen at once.
    pub writes_in_flight: HashMap<String, (u32, u32)>,
    /// Each tenant's rate limit, when on.
    pub rate_limit: Option<super::RateLimit>,
    /// Per tenant, the requests left in its bucket and when that was counted (simulator ms).
    pub rate: HashMap<String, (f64, i64)>,
}

impl State {
    /// Takes one request from the tenant's rate-limit bucket, or says in how many whole
    /// seconds (at least one) it holds one again. Always succeeds while no limit is set.
    pub fn take_rate(&mut self, tenant: &str) -> Result<(), u64> {
        let Some(limit) = self.rate_limit else {
            return Ok(());
        };
        let now = self.now_ms();
        let rate = limit.requests_per_second.max(0.001);
        let capacity = limit.burst.map_or(rate.ceil(), f64::from).max(1.0);
        let (tokens, at) = self
            .rate
            .entry(tenant.to_owned())
            .or_insert((capacity, now));
        // Milliseconds as f64: exact far beyond any simulator's lifetime.
        let refill = (now - *at).max(0) as f64 / 1000.0 * rate;
        *tokens = (*tokens + refill).min(capacity);
        *at = (*at).max(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            // Small and positive: the cast keeps it.
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    pub fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond() + self.clock_offset_ms
    }

    pub fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.now_ms()).unwrap_or_else(|_| jiff::Timestamp::now())
    }

    pub fn now_text(&self) -> String {
        self.now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn after(&self, duration: Duration) -> i64 {
        self.now_ms() + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// The tenant promoted from `name` and the one `name` is promoted from.
    pub fn lower_of(&self, name: &str) -> Option<String> {
        self.groups.iter().find_map(|group| {
            let index = group.iter().position(|t| t == name)?;
            index.checked_sub(1).map(|i| group[i].clone())
        })
    }

    pub fn upper_of(&self, name: &str) -> Option<String> {
        self.groups.iter().find_map(|group| {
            let index = group.iter().position(|t| t == name)?;
            group.get(index + 1).cloned()
        })
    }

    pub fn lock_index(&self, tenant: &str) -> Option<usize> {
        self.locks
            .iter()
            .position(|lock| lock.lower == tenant || lock.upper == tenant)
    }

    /// Whether ESV writes are refused in `tenant` (a promotion lock covers both sides).
    pub fn is_locked(&self, tenant: &str) -> bool {
        self.lock_index(tenant).is_some()
    }

    /// Applies lock transitions whose time is up. Real AIC only brings the lock state up to date
    /// when it is read, so only the lock-state endpoint calls this.
    pub fn tick_lock(&mut self, tenant: &str) {
        let now = self.now_ms();
        if let Some(index) = self.lock_index(tenant) {
            match self.locks[index].phase {
                LockPhase::Locking { until_ms } if until_ms <= now => {
                    self.locks[index].phase = LockPhase::Locked;
                }
                LockPhase::Unlocking { until_ms } if until_ms <= now => {
                    self.locks.remove(index);
                }
                _ => {}
            }
        }
    }

    /// ESVs the lower environment's AM configuration references (placeholders without a
    /// default, and mapping aliases) that the upper environment lacks.
    pub fn missing_esvs(&self, lower: &str, upper: &str) -> Vec<String> {
        let (Some(lower), Some(upper)) = (self.tenants.get(lower), self.tenants.get(upper)) else {
            return Vec::new();
        };
        let mut needed = BTreeSet::new();
        for realm in lower.realms.values() {
            for worker in realm.workers.values() {
                let mut strings = Vec::new();
                collect_strings(&Value::Object(worker.clone()), &mut strings);
                for text in strings {
                    for (name, default) in placeholders(&text) {
                        if default.is_none() && name.starts_with("esv.") {
                            needed.insert(esv_id_for_placeholder(&name));
                        }
                    }
                }
            }
            for aliases in realm.mappings.values() {
                needed.extend(aliases.iter().filter(|a| a.starts_with("esv-")).cloned());
            }
        }
        needed.into_iter().filter(|id| !upper.has_esv(id)).collect()
    }

    /// The report's `AMConfig` list for promoting `lower` onto `upper`.
    pub fn am_changes(&self, lower: &str, upper: &str) -> Value {
        let empty = BTreeMap::new();
        let lower_realms = self.tenants.get(lower).map_or(&empty, |t| &t.realms);
        let upper_realms = self.tenants.get(upper).map_or(&empty, |t| &t.realms);
        realm_changes(lower_realms, upper_realms)
    }

    /// A real promotion: AM static configuration of the worker service (workers and ESV
    /// mappings) is copied from the lower environment to the upper one, keeping what it
    /// replaces for a rollback.
    pub fn copy_am_config(&mut self, lower: &str, upper: &str) {
        let Some(realms) = self.tenants.get(lower).map(|t| t.realms.clone()) else {
            return;
        };
        if let Some(upper) = self.tenants.get_mut(upper) {
            upper.before_last_promotion = Some(upper.realms.clone());
            for (name, realm) in realms {
                upper.realms.insert(name, realm);
            }
        }
    }
}

/// What making `upper_realms` equal `lower_realms` changes, as a promotion report's
/// `AMConfig` lists it.
pub fn realm_changes(
    lower_realms: &BTreeMap<String, Realm>,
    upper_realms: &BTreeMap<String, Realm>,
) -> Value {
    let realms: BTreeSet<&String> = lower_realms.keys().chain(upper_realms.keys()).collect();
    let mut workers = (Vec::new(), Vec::new(), Vec::new());
    let mut mappings = (Vec::new(), Vec::new(), Vec::new());
    let default = Realm::default();
    for realm in realms {
        let from = lower_realms.get(realm).unwrap_or(&default);
        let to = upper_realms.get(realm).unwrap_or(&default);
        let item = |name: &str, kind: &str| {
            json!({
                "name": name,
                "realm": format!("/{realm}"),
                "uid": format!("ou={name},ou={kind},ou=default,ou=OrganizationConfig,ou=1.0,ou=pingOneWorkerService,ou=services,o={realm},ou=services,ou=am-config"),
            })
        };
        diff(&from.workers, &to.workers, &mut workers, |n| {
            item(n, "workers")
        });
        diff(&from.mappings, &to.mappings, &mut mappings, |n| {
            item(n, "mappings")
        });
    }
    let entry = |config_item: &str,
                 (added, modified, deleted): (Vec<Value>, Vec<Value>, Vec<Value>)| {
        json!({"configItem": config_item,
               "configChange": {"added": added, "modified": modified, "deleted": deleted}})
    };
    json!([
        entry("Services > PingOne Worker Service", workers),
        entry("Secret Stores > ESV > Mappings", mappings),
    ])
}

type Changes = (Vec<Value>, Vec<Value>, Vec<Value>);

fn diff<T: PartialEq>(
    from: &BTreeMap<String, T>,
    to: &BTreeMap<String, T>,
    out: &mut Changes,
    item: impl Fn(&str) -> Value,
) {
    for (name, value) in from {
        match to.get(name) {
            None => out.0.push(item(name)),
            Some(current) if current != value => out.1.push(item(name)),
            Some(_) => {}
        }
    }
    for name in to.keys().filter(|n| !from.contains_key(*n)) {
        out.2.push(item(name));
    }
}

/// `_rev` derived from content, as AM does: an identical write keeps the revision.
pub(crate) fn content_rev(value: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.to_string().as_bytes());
    let bytes: [u8; 4] = digest.as_ref()[..4].try_into().unwrap_or_default();
    i32::from_be_bytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_resolve_with_defaults_and_mixed_text() {
        assert_eq!(
            placeholders("&{esv.a.b}x&{esv.c|1}"),
            vec![("esv.a.b".into(), None), ("esv.c".into(), Some("1".into()))]
        );
        let lookup = |name: &str| (name == "esv.a").then(|| "A".to_owned());
        assert_eq!(
            resolve("&{esv.a}.example.com", lookup).unwrap(),
            "A.example.com"
        );
        assert_eq!(resolve("&{esv.b|dflt}", lookup).unwrap(), "dflt");
        assert_eq!(resolve("&{esv.b}", lookup).unwrap_err(), "&{esv.b}");
        assert_eq!(
            esv_id_for_placeholder("esv.pingone.worker_x"),
            "esv-pingone-worker_x"
        );
    }

    #[test]
    fn rev_is_content_derived() {
        let a = json!({"x": 1});
        assert_eq!(content_rev(&a), content_rev(&json!({"x": 1})));
        assert_ne!(content_rev(&a), content_rev(&json!({"x": 2})));
    }
}
