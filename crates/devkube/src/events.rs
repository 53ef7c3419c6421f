//! One store for both Event APIs, as kube-apiserver has: `events.k8s.io/v1` Events (what kube's
//! `Recorder` writes) are stored as core `v1` Events (what `kubectl get events` and
//! `kubectl describe` read), converted field by field on the way in and out.

use serde_json::{Map, Value, json};

/// `(events.k8s.io/v1 name, core v1 name)` of the fields that differ.
const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// How a resource's objects are seen through the API that was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// As stored.
    Stored,
    /// Core Events seen as `events.k8s.io/v1` Events.
    EventsV1,
}

impl View {
    /// A stored object as this API shows it.
    pub fn output(self, object: Value) -> Value {
        match self {
            View::Stored => object,
            View::EventsV1 => rename(object, |(new, old)| (old, new), "events.k8s.io/v1"),
        }
    }

    /// The apiVersion of the API, given the stored type's.
    pub fn api_version(self, stored: String) -> String {
        match self {
            View::Stored => stored,
            View::EventsV1 => "events.k8s.io/v1".to_owned(),
        }
    }

    /// An object written through this API, in its stored shape.
    pub fn input(self, object: Value) -> Value {
        match self {
            View::Stored => object,
            View::EventsV1 => rename(object, |(new, old)| (new, old), "v1"),
        }
    }
}

fn rename(
    object: Value,
    direction: fn((&'static str, &'static str)) -> (&'static str, &'static str),
    api_version: &str,
) -> Value {
    let Value::Object(map) = object else {
        return object;
    };
    let mut out = Map::new();
    for (key, value) in map {
        let renamed = RENAMED
            .iter()
            .map(|pair| direction(*pair))
            .find(|(from, _)| *from == key)
            .map(|(_, to)| to.to_owned())
            .unwrap_or(key);
        out.insert(renamed, value);
    }
    if out.contains_key("apiVersion") {
        out.insert("apiVersion".into(), json!(api_version));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "n", "regarding": {"name": "x"}, "reason": "R"});
        let core = View::EventsV1.input(v1.clone());
        assert_eq!(core["message"], "n");
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(View::EventsV1.output(core), v1);
    }
}
