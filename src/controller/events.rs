//! Kubernetes Events (`events.k8s.io/v1`) about the resources the operator manages, with
//! repeats folded into a series as client-go's recorder does: the same action and reason about
//! the same objects within six minutes patches the first Event's `series` (count, last time)
//! instead of creating another.
//!
//! Why not kube's `Recorder`: it keeps a whole copy of every Event it sent in the last six
//! minutes and sweeps that cache on every publish. With thousands of resources converging that
//! cache was the largest thing in the operator's memory, and the sweep an O(n) cost per Event.
//! This one keeps, per series, a 64-bit hash of its identity, the Event's name, the count and
//! the last time (about a hundred bytes), and sweeps at most once a minute.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;

/// How long a series stays open for repeats: client-go's and kube's six minutes.
const SERIES_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(6);
/// How often closed series are dropped from memory.
const SWEEP_EVERY: jiff::SignedDuration = jiff::SignedDuration::from_mins(1);
/// The API server refuses a note longer than this.
const MAX_NOTE_BYTES: usize = 1024;

/// Publishes Events as one controller instance.
pub struct EventRecorder {
    client: kube::Client,
    controller: String,
    instance: String,
    series: Mutex<SeriesCache>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// One Event to publish.
pub struct EventNote<'a> {
    /// The object it is about.
    pub regarding: ObjectReference,
    /// A second object it concerns, if any (e.g. the TenantEnvironment of an integration).
    pub related: Option<ObjectReference>,
    /// Normal or Warning.
    pub type_: EventType,
    /// What was done or tried (e.g. `Rotate`).
    pub action: &'a str,
    /// Why, as a stable word (e.g. `PreviousSecretDeleted`).
    pub reason: &'a str,
    /// For people.
    pub note: String,
}

/// An open series: the Event that was created for it and how often it happened.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: Box<str>,
    count: i32,
    last: jiff::Timestamp,
}

/// Open series by the hash of their identity.
#[derive(Debug)]
struct SeriesCache {
    open: HashMap<u64, Series>,
    swept: jiff::Timestamp,
}

/// What to send for an Event.
#[derive(Debug, PartialEq)]
enum Send {
    /// A new Event with this name.
    Create(String),
    /// The `count`th occurrence of the series whose Event is `name`.
    Repeat { name: String, count: i32 },
}

impl SeriesCache {
    fn new(now: jiff::Timestamp) -> Self {
        Self {
            open: HashMap::new(),
            swept: now,
        }
    }

    /// Decides what an occurrence of series `key` at `now` sends, and records it.
    fn occur(&mut self, key: u64, now: jiff::Timestamp, new_name: impl FnOnce() -> String) -> Send {
        if now.duration_since(self.swept) >= SWEEP_EVERY {
            self.open
                .retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            self.swept = now;
        }
        match self.open.get_mut(&key) {
            Some(series) if now.duration_since(series.last) < SERIES_WINDOW => {
                series.count += 1;
                series.last = now;
                Send::Repeat {
                    name: series.name.to_string(),
                    count: series.count,
                }
            }
            _ => {
                let name = new_name();
                self.open.insert(
                    key,
                    Series {
                        name: name.clone().into_boxed_str(),
                        count: 1,
                        last: now,
                    },
                );
                Send::Create(name)
            }
        }
    }

    /// Forgets a series whose Event is gone from the API server.
    fn forget(&mut self, key: u64) {
        self.open.remove(&key);
    }
}

/// The identity of a series: everything but the note and the time (as client-go keys it).
fn series_key(controller: &str, instance: &str, event: &EventNote<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    let reference = |r: &ObjectReference, h: &mut DefaultHasher| {
        (
            &r.api_version,
            &r.kind,
            &r.namespace,
            &r.name,
            &r.uid,
            &r.field_path,
        )
            .hash(h);
    };
    (
        controller,
        instance,
        event_type(event.type_),
        event.action,
        event.reason,
    )
        .hash(&mut hasher);
    reference(&event.regarding, &mut hasher);
    if let Some(related) = &event.related {
        reference(related, &mut hasher);
    }
    hasher.finish()
}

fn event_type(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// `note` cut to what the API server accepts, at a character boundary.
fn bounded(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

impl EventRecorder {
    /// A recorder reporting as `controller` (and `instance`, the pod, when known).
    pub fn new(client: kube::Client, controller: &str, instance: Option<&str>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or(controller).to_owned(),
            series: Mutex::new(SeriesCache::new(jiff::Timestamp::now())),
        }
    }

    /// Creates the Event, or counts one more of its series.
    pub async fn publish(&self, event: EventNote<'_>) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = series_key(&self.controller, &self.instance, &event);
        let regarding_name = event
            .regarding
            .name
            .clone()
            .unwrap_or_else(|| self.controller.clone());
        let send = self
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .occur(key, now, || {
                format!("{regarding_name}.{:x}", now.as_nanosecond())
            });
        let namespace = event
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Send::Repeat { name, count } = &send {
            let patch = serde_json::json!({
                "series": EventSeries { count: *count, last_observed_time: MicroTime(now) },
            });
            match events
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // The API server dropped the Event (its own TTL): start a new series.
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.series
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .forget(key);
                }
                Err(err) => return Err(err),
            }
        }
        let name = match send {
            Send::Create(name) => name,
            Send::Repeat { .. } => format!("{regarding_name}.{:x}", now.as_nanosecond()),
        };
        let object = Event {
            action: Some(event.action.to_owned()),
            reason: Some(event.reason.to_owned()),
            event_time: Some(MicroTime(now)),
            note: Some(bounded(event.note)),
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(event_type(event.type_).to_owned()),
            regarding: Some(event.regarding),
            related: event.related,
            ..Default::default()
        };
        events.create(&PostParams::default(), &object).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn named(name: &str) -> impl FnOnce() -> String + '_ {
        move || name.to_owned()
    }

    #[test]
    fn repeats_within_six_minutes_are_one_series() {
        let mut cache = SeriesCache::new(at(0));
        assert_eq!(cache.occur(1, at(0), named("a")), Send::Create("a".into()));
        assert_eq!(
            cache.occur(1, at(100), named("b")),
            Send::Repeat {
                name: "a".into(),
                count: 2
            }
        );
        // Another identity is another series.
        assert_eq!(
            cache.occur(2, at(100), named("c")),
            Send::Create("c".into())
        );
        // Six minutes after the last occurrence the series is closed: a new Event.
        assert_eq!(
            cache.occur(1, at(100 + 360), named("d")),
            Send::Create("d".into())
        );
        assert_eq!(
            cache.occur(1, at(500), named("e")),
            Send::Repeat {
                name: "d".into(),
                count: 2
            }
        );
    }

    #[test]
    fn closed_series_leave_memory_at_the_next_sweep() {
        let mut cache = SeriesCache::new(at(0));
        for key in 0..1000 {
            cache.occur(key, at(0), || format!("e{key}"));
        }
        assert_eq!(cache.open.len(), 1000);
        // A sweep at 100 s finds nothing closed; at seven minutes the thousand are closed,
        // the one of 100 s is not.
        cache.occur(5000, at(100), named("x"));
        assert_eq!(cache.open.len(), 1001);
        cache.occur(5001, at(420), named("y"));
        assert_eq!(cache.open.len(), 2, "only the series still open are kept");
    }

    #[test]
    fn the_series_identity_is_everything_but_the_note() {
        let reference = |name: &str| ObjectReference {
            kind: Some("PingOneIntegration".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        let event =
            |regarding: &str, reason: &'static str, note: &str, part: Option<&str>| EventNote {
                regarding: reference(regarding),
                related: part.map(|p| ObjectReference {
                    field_path: Some(p.into()),
                    ..reference("acme-dev")
                }),
                type_: EventType::Normal,
                action: "Sync",
                reason,
                note: note.into(),
            };
        let key = |e: &EventNote<'_>| series_key("operator", "pod-1", e);
        let first = key(&event("worker", "Pushed", "one", None));
        assert_eq!(first, key(&event("worker", "Pushed", "another note", None)));
        assert_ne!(first, key(&event("other", "Pushed", "one", None)));
        assert_ne!(first, key(&event("worker", "Verified", "one", None)));
        assert_ne!(first, key(&event("worker", "Pushed", "one", Some("v2"))));
        assert_ne!(
            first,
            series_key("operator", "pod-2", &event("worker", "Pushed", "one", None))
        );
    }

    #[test]
    fn a_long_note_is_cut_to_what_the_api_accepts() {
        assert_eq!(bounded("short".into()), "short");
        let long = bounded("é".repeat(1000));
        assert!(long.len() <= MAX_NOTE_BYTES, "{}", long.len());
        assert!(long.ends_with('…'));
    }
}
