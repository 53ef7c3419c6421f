//! What a reconcile last observed of one part of the remote state, remembered with a digest of
//! the inputs that decided it, so the reconciles that events cause between two resyncs (a
//! TenantEnvironment's restart finishing, a Promotion changing phase, the resource's own status
//! patch) skip the parts whose inputs did not change instead of reading SaaS APIs again.
//!
//! An entry stands for the remote state only while it is younger than the observation age
//! ([`super::Context::observation_age`]), so drift made outside the operator is still found on
//! every resync. Entries live in memory only: a restarted operator observes everything once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One remembered observation.
#[derive(Debug)]
struct Entry<T> {
    inputs: String,
    at: Instant,
    value: T,
}

/// Observations of one kind, keyed by the object and part they describe.
#[derive(Debug)]
pub struct Memo<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Memo<T> {
    /// The value observed under `key` when it was observed with the same `inputs` less than
    /// `max_age` ago.
    pub fn fresh(&self, key: &str, inputs: &str, max_age: Duration) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|e| e.inputs == inputs && e.at.elapsed() < max_age)
            .map(|e| e.value.clone())
    }

    /// Remembers what was observed under `key` with `inputs`.
    pub fn record(&self, key: &str, inputs: String, value: T) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            key.to_owned(),
            Entry {
                inputs,
                at: Instant::now(),
                value,
            },
        );
    }

    /// Writes what the reconcile itself changed through to the entry under `key`, with the
    /// inputs that decide it now, keeping the time of the observation it amends: the rest of
    /// what was observed is no younger for it. Without an entry, nothing is remembered.
    pub fn amend(&self, key: &str, inputs: String, value: T) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(key) {
            entry.inputs = inputs;
            entry.value = value;
        }
    }

    /// Forgets every entry whose key starts with `prefix` (an object that went away).
    pub fn forget_prefix(&self, prefix: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|key, _| !key.starts_with(prefix));
    }
}

/// A digest of the inputs of an observation: SHA-256 over the length-prefixed parts, so
/// secret material can be among them without being kept.
pub fn digest(parts: &[&str]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let bytes = context.finish();
    let hex: String = bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_stands_only_for_the_same_inputs_and_while_young() {
        let memo = Memo::default();
        memo.record("ns/a/dev/esvs", digest(&["v1"]), true);
        let hour = Duration::from_secs(3600);
        assert_eq!(
            memo.fresh("ns/a/dev/esvs", &digest(&["v1"]), hour),
            Some(true)
        );
        assert_eq!(memo.fresh("ns/a/dev/esvs", &digest(&["v2"]), hour), None);
        assert_eq!(
            memo.fresh("ns/a/dev/esvs", &digest(&["v1"]), Duration::ZERO),
            None
        );
        assert_eq!(memo.fresh("ns/a/uat/esvs", &digest(&["v1"]), hour), None);
        memo.forget_prefix("ns/a/");
        assert_eq!(memo.fresh("ns/a/dev/esvs", &digest(&["v1"]), hour), None);
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&["a", "b"]), digest(&["a", "b"]));
    }
}
