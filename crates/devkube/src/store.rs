//! The state of the stand-in API server: resource types (built-in and from CRDs), objects as
//! JSON, one resourceVersion counter, a bounded history of changes for watches, and the write
//! semantics kube-apiserver applies (status split, generation, no-op writes, optimistic
//! concurrency, finalizers, owner-reference garbage collection, custom-resource admission).
//!
//! Every operation takes one mutex for its whole duration, so writes are serialised exactly as
//! an etcd-backed server orders them and a watch never misses a change between its history
//! replay and its live subscription.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use regex::Regex;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::patch;
use crate::admission::{Admission, FieldError, FieldErrorKind, Rejection};

/// A printer column of `kubectl get`.
#[derive(Clone, Debug)]
pub struct Column {
    /// Header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `date`, ...
    pub type_: String,
    /// OpenAPI format, e.g. `name`.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: i32,
    /// The JSONPath the cell is read from.
    pub json_path: String,
}

/// A resource served at `/api/v1/...` or `/apis/<group>/<version>/...`.
#[derive(Debug)]
pub struct ResourceType {
    /// API group; empty for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural, the path segment.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Whether a `status` subresource splits status from the rest.
    pub status: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Admission of a custom resource, from its CRD.
    pub admission: Option<Arc<Admission>>,
    /// Printer columns after `Name`.
    pub columns: Vec<Column>,
    /// The CRD that defines the type, for custom resources.
    pub crd: Option<String>,
}

impl ResourceType {
    /// `group/version`, or `v1` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        short_names: &[&str],
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short_names.iter().map(|s| (*s).to_owned()).collect(),
            categories: Vec::new(),
            status,
            generation: kind == "CustomResourceDefinition",
            admission: None,
            columns: Vec::new(),
            crd: None,
        }
    }

    /// The types a CRD defines, one per served version.
    pub fn from_crd(crd: &CustomResourceDefinition) -> Result<Vec<Self>, ApiError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let spec = &crd.spec;
        let mut types = Vec::new();
        for (index, version) in spec.versions.iter().enumerate().filter(|(_, v)| v.served) {
            let admission = Admission::for_version(crd, &version.name).map_err(|e| {
                ApiError::invalid(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    &name,
                    &Rejection {
                        causes: vec![FieldError {
                            field: format!("spec.versions[{index}].schema.openAPIV3Schema"),
                            kind: FieldErrorKind::Invalid,
                            value: None,
                            detail: e.to_string(),
                        }],
                    },
                )
            })?;
            let columns = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| Column {
                    name: c.name.clone(),
                    type_: c.type_.clone(),
                    format: c.format.clone().unwrap_or_default(),
                    description: c.description.clone().unwrap_or_default(),
                    priority: c.priority.unwrap_or(0),
                    json_path: c.json_path.clone(),
                })
                .collect();
            types.push(Self {
                group: spec.group.clone(),
                version: version.name.clone(),
                kind: spec.names.kind.clone(),
                plural: spec.names.plural.clone(),
                singular: spec
                    .names
                    .singular
                    .clone()
                    .unwrap_or_else(|| spec.names.kind.to_lowercase()),
                namespaced: spec.scope == "Namespaced",
                short_names: spec.names.short_names.clone().unwrap_or_default(),
                categories: spec.names.categories.clone().unwrap_or_default(),
                status: version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                generation: true,
                admission: Some(Arc::new(admission)),
                columns,
                crd: Some(name.clone()),
            });
        }
        Ok(types)
    }
}

/// What a watch event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

/// One committed change, kept in the history for watches.
#[derive(Debug)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Group of the resource.
    pub group: String,
    /// Plural of the resource.
    pub plural: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for a delete, its last state).
    pub object: Value,
    /// The object before the change, for selectors that stop or start matching.
    pub old: Option<Value>,
}

/// How a write is attributed and checked.
#[derive(Clone, Debug, Default)]
pub struct WriteCtx {
    /// The field manager (`fieldManager` or a default).
    pub manager: String,
    /// Whether this is a write to the `status` subresource.
    pub status: bool,
    /// Whether the new object's managedFields are already computed (server-side apply).
    pub apply: bool,
    /// Reject unknown fields (kubectl's default `fieldValidation=Strict`).
    pub strict: bool,
    /// Validate and compute the result but do not store it.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    /// Precondition on the resourceVersion.
    pub resource_version: Option<String>,
    /// Precondition on the uid.
    pub uid: Option<String>,
    /// Leave dependents alone instead of collecting them.
    pub orphan: bool,
}

const REQUEST_LOG_LIMIT: usize = 50_000;

type TypeKey = (String, String);
type ObjKey = (String, String);

pub(crate) struct State {
    rv: u64,
    /// (group, version, plural) → type.
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
    /// (group, plural) → the storage type.
    kinds: HashMap<TypeKey, Arc<ResourceType>>,
    objects: HashMap<TypeKey, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    /// Watches from a resourceVersion below this get 410 Gone.
    floor: u64,
    history_limit: usize,
    requests: VecDeque<String>,
    /// Every request answered, including those the bounded log let go.
    requests_answered: u64,
}

/// The object store and change feed.
pub struct Store {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
}

/// What a watch starts with.
pub struct WatchStart {
    /// Changes after the requested resourceVersion, oldest first.
    pub replay: Vec<Arc<Change>>,
    /// Current objects, when initial events were requested.
    pub initial: Vec<Value>,
    /// The resourceVersion the start corresponds to.
    pub rv: u64,
    /// Live changes from here on.
    pub live: broadcast::Receiver<Arc<Change>>,
}

pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn new_uid() -> String {
    let n = fastrand::u128(..);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

fn meta_str<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get("metadata")?.get(key)?.as_str()
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn finalizers(object: &Value) -> BTreeSet<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The part of an object whose change bumps `generation`.
fn generation_part(rt: &ResourceType, object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if rt.status {
            map.remove("status");
        }
    }
    v
}

fn without_managed_fields(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

const RFC1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const RFC1123_SUBDOMAIN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{RFC1123_LABEL}$")).expect("a valid pattern"));
static SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{RFC1123_SUBDOMAIN}$")).expect("a valid pattern"));

/// Why a name is not a valid object name: an RFC 1123 label for namespaces, an RFC 1123
/// subdomain otherwise, worded as the API server words it.
fn invalid_name(name: &str, label: bool) -> Option<String> {
    let (regex, pattern, limit, what, example) = if label {
        (
            &LABEL,
            RFC1123_LABEL,
            63,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            "'my-name',  or '123-abc'",
        )
    } else {
        (
            &SUBDOMAIN,
            RFC1123_SUBDOMAIN,
            253,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "'example.com'",
        )
    };
    if name.len() > limit {
        return Some(format!("must be no more than {limit} characters"));
    }
    (!regex.is_match(name))
        .then(|| format!("{what} (e.g. {example}, regex used for validation is '{pattern}')"))
}

fn ownership(object: &Value) -> Vec<(String, String, String, BTreeSet<patch::FieldPath>)> {
    patch::read_managed(object)
        .into_iter()
        .map(|e| (e.manager, e.operation, e.subresource, e.fields))
        .collect()
}

fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "Namespace", "namespaces", false, &["ns"], true),
        ResourceType::builtin("", "v1", "Secret", "secrets", true, &[], false),
        ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
        ResourceType::builtin("", "v1", "Event", "events", true, &["ev"], false),
        ResourceType::builtin(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
        ),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

impl Store {
    /// An empty store with the built-in types and the namespaces every cluster has.
    pub fn new(history_limit: usize) -> Self {
        let (changes, _) = broadcast::channel(16_384);
        let store = Self {
            state: Mutex::new(State {
                rv: 0,
                types: BTreeMap::new(),
                kinds: HashMap::new(),
                objects: HashMap::new(),
                history: VecDeque::new(),
                floor: 0,
                history_limit,
                requests: VecDeque::new(),
                requests_answered: 0,
            }),
            changes,
        };
        {
            let mut state = store.lock();
            for rt in builtins() {
                state.register(Arc::new(rt));
            }
            let ns = state.kinds[&(String::new(), "namespaces".to_owned())].clone();
            for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let object = json!({"metadata": {"name": name}});
                let ctx = WriteCtx {
                    manager: "devkube".into(),
                    ..WriteCtx::default()
                };
                state
                    .create(&store.changes, &ns, "", object, &ctx)
                    .expect("built-in namespaces are valid");
            }
        }
        store
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the types of a CRD by creating the CRD object, as `kubectl apply` would.
    pub fn add_crd(&self, crd: &CustomResourceDefinition) -> Result<(), ApiError> {
        let object = serde_json::to_value(crd).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut state = self.lock();
        let rt = state.kinds[&(
            "apiextensions.k8s.io".to_owned(),
            "customresourcedefinitions".to_owned(),
        )]
            .clone();
        state.create(&self.changes, &rt, "", object, &WriteCtx::default())?;
        Ok(())
    }

    /// The type served at a group, version and plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock()
            .types
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// Every type, ordered by group, version and plural.
    pub fn types(&self) -> Vec<Arc<ResourceType>> {
        self.lock().types.values().cloned().collect()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Records a request line for tests that check what a client asked for.
    pub fn log_request(&self, line: String) {
        let mut state = self.lock();
        // The newest requests are the interesting ones; a long-running playground must not grow.
        if state.requests.len() >= REQUEST_LOG_LIMIT {
            state.requests.pop_front();
        }
        state.requests.push_back(line);
        state.requests_answered += 1;
    }

    /// How many requests were answered in all.
    pub fn requests_answered(&self) -> u64 {
        self.lock().requests_answered
    }

    /// The latest requests answered (up to 50,000), as `METHOD path?query -> status`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.iter().cloned().collect()
    }

    /// Drops the whole change history: watches from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.floor = state.rv;
    }

    /// Objects of a type, optionally in one namespace, matching `filter`, sorted by key, and the
    /// resourceVersion of the snapshot.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        filter: impl Fn(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let state = self.lock();
        let items = state
            .objects
            .get(&(rt.group.clone(), rt.plural.clone()))
            .into_iter()
            .flat_map(|objects| objects.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
            .map(|(_, o)| o)
            .filter(|o| filter(o))
            .cloned()
            .collect();
        (items, state.rv)
    }

    /// One object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.lock().get(rt, namespace, name).cloned()
    }

    /// Creates an object.
    pub fn create(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        object: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        self.lock()
            .create(&self.changes, rt, namespace, object, ctx)
    }

    /// Updates an object with `change`, which computes the new object from the stored one.
    /// Returns the stored result (unchanged and not re-versioned when nothing changed).
    pub fn update(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        ctx: &WriteCtx,
        change: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let old = state.get(rt, namespace, name)?.clone();
        let new = change(&old)?;
        state.update(&self.changes, rt, namespace, &old, new, ctx)
    }

    /// Server-side apply: `apply` computes the new object from the stored one, if any; a
    /// missing object is created.
    pub fn apply(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        ctx: &WriteCtx,
        apply: impl FnOnce(Option<&Value>) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let old = state.get(rt, namespace, name).ok().cloned();
        let new = apply(old.as_ref())?;
        match old {
            Some(old) => state.update(&self.changes, rt, namespace, &old, new, ctx),
            None => state.create(&self.changes, rt, namespace, new, ctx),
        }
    }

    /// Deletes an object: marks it when finalizers remain, removes it otherwise.
    pub fn delete(
        &self,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        self.lock().delete(&self.changes, rt, namespace, name, opts)
    }

    /// Starts a watch of a type: the replay after `from` (410 Gone when it was compacted away),
    /// optionally the current objects, and the live feed, taken atomically.
    pub fn watch(
        &self,
        rt: &ResourceType,
        from: Option<u64>,
        initial: bool,
    ) -> Result<WatchStart, ApiError> {
        let state = self.lock();
        let live = self.changes.subscribe();
        let replay = match from {
            Some(rv) if rv > 0 => {
                if rv < state.floor {
                    return Err(ApiError::expired(rv, state.floor));
                }
                state
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && c.group == rt.group && c.plural == rt.plural)
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        let initial = if initial {
            state
                .objects
                .get(&(rt.group.clone(), rt.plural.clone()))
                .map(|o| o.values().cloned().collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(WatchStart {
            replay,
            initial,
            rv: state.rv,
            live,
        })
    }
}

impl State {
    fn register(&mut self, rt: Arc<ResourceType>) {
        self.kinds
            .insert((rt.group.clone(), rt.plural.clone()), rt.clone());
        self.types.insert(
            (rt.group.clone(), rt.version.clone(), rt.plural.clone()),
            rt,
        );
    }

    fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<&Value, ApiError> {
        self.objects
            .get(&(rt.group.clone(), rt.plural.clone()))
            .and_then(|o| o.get(&(namespace.to_owned(), name.to_owned())))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    fn commit(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        rt: &ResourceType,
        kind: ChangeKind,
        mut object: Value,
        old: Option<Value>,
    ) -> Value {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let ns = meta_str(&object, "namespace")
            .unwrap_or_default()
            .to_owned();
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let objects = self
            .objects
            .entry((rt.group.clone(), rt.plural.clone()))
            .or_default();
        if kind == ChangeKind::Deleted {
            objects.remove(&(ns, name));
        } else {
            objects.insert((ns, name), object.clone());
        }
        let change = Arc::new(Change {
            rv: self.rv,
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            kind,
            object: object.clone(),
            old,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.floor = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = changes.send(change);
        object
    }

    fn create(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        rt: &Arc<ResourceType>,
        namespace: &str,
        mut object: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        let meta = meta_mut(&mut object);
        let body_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        let name = match meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(name) => name.to_owned(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => format!("{prefix}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        "",
                        &Rejection {
                            causes: vec![FieldError {
                                field: "metadata.name".into(),
                                kind: FieldErrorKind::Required,
                                value: None,
                                detail: "name or generateName is required".into(),
                            }],
                        },
                    ));
                }
            },
        };
        meta.insert("name".into(), json!(name));
        if let Some(detail) = invalid_name(&name, rt.group.is_empty() && rt.plural == "namespaces")
        {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                &Rejection {
                    causes: vec![FieldError {
                        field: "metadata.name".into(),
                        kind: FieldErrorKind::Invalid,
                        value: Some(format!("{name:?}")),
                        detail,
                    }],
                },
            ));
        }
        for server_owned in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            meta.remove(server_owned);
        }
        if !ctx.apply {
            meta.remove("managedFields");
        }
        if rt.namespaced {
            let ns_type = self.kinds[&(String::new(), "namespaces".to_owned())].clone();
            match self.get(&ns_type, "", namespace) {
                Err(_) => return Err(ApiError::not_found("", "namespaces", namespace)),
                Ok(ns) if is_deleting(ns) => {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "{} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                            super::error::qualified(&rt.group, &rt.plural)
                        ),
                        details: None,
                    });
                }
                Ok(_) => {}
            }
        }
        let key_ns = if rt.namespaced { namespace } else { "" };
        if self.get(rt, key_ns, &name).is_ok() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.status
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        let mut object = self.admit(rt, object, None, ctx)?;
        let meta = meta_mut(&mut object);
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        }
        let crd = self.builtin_effects(rt, &mut object)?;
        if !ctx.apply {
            patch::record_update(
                None,
                &mut object,
                &ctx.manager,
                "",
                &rt.api_version(),
                &now(),
            );
        }
        if ctx.dry_run {
            return Ok(object);
        }
        if let Some(crd) = crd {
            self.register_crd(&crd)?;
        }
        Ok(self.commit(changes, rt, ChangeKind::Added, object, None))
    }

    /// Admission: schema, CEL and pruning for custom resources; strict unknown-field checks.
    fn admit(
        &self,
        rt: &ResourceType,
        object: Value,
        old: Option<&Value>,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        let Some(admission) = &rt.admission else {
            return Ok(object);
        };
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        match admission.admit(&object, old) {
            Ok(admitted) => {
                // Server-side apply builds a typed object from the schema first: a field the
                // schema does not declare fails the request (kube-apiserver answers 500).
                if ctx.apply && !admitted.unknown_fields.is_empty() {
                    return Err(ApiError {
                        code: 500,
                        reason: "",
                        message: format!(
                            "failed to create typed patch object (/{name}; {}, Kind={}): .{}: field not declared in schema",
                            rt.api_version(),
                            rt.kind,
                            admitted.unknown_fields[0]
                        ),
                        details: None,
                    });
                }
                if ctx.strict && !admitted.unknown_fields.is_empty() {
                    let fields: Vec<String> = admitted
                        .unknown_fields
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        fields.join(", ")
                    )));
                }
                Ok(admitted.object)
            }
            Err(rejection) => Err(ApiError::invalid(&rt.group, &rt.kind, &name, &rejection)),
        }
    }

    /// What the built-in controllers and registries of kube-apiserver do on a write: Secret
    /// `stringData`, Namespace phase, CRD validation and status. Returns a CRD to register.
    fn builtin_effects(
        &self,
        rt: &ResourceType,
        object: &mut Value,
    ) -> Result<Option<CustomResourceDefinition>, ApiError> {
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "secrets") => {
                if let Some(Value::Object(string_data)) =
                    object.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    use base64::Engine as _;
                    let data = object
                        .as_object_mut()
                        .expect("an object")
                        .entry("data")
                        .or_insert_with(|| json!({}));
                    for (k, v) in string_data {
                        let text = v.as_str().unwrap_or_default();
                        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
                if object
                    .get("type")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    object["type"] = json!("Opaque");
                }
                Ok(None)
            }
            ("", "namespaces") => {
                let phase = if is_deleting(object) {
                    "Terminating"
                } else {
                    "Active"
                };
                object["status"] = json!({"phase": phase});
                Ok(None)
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let crd: CustomResourceDefinition = serde_json::from_value(object.clone())
                    .map_err(|e| {
                        ApiError::bad_request(format!("invalid CustomResourceDefinition: {e}"))
                    })?;
                let name = crd.metadata.name.clone().unwrap_or_default();
                let expected = format!("{}.{}", crd.spec.names.plural, crd.spec.group);
                if name != expected {
                    return Err(ApiError::invalid(
                        &rt.group,
                        &rt.kind,
                        &name,
                        &Rejection {
                            causes: vec![FieldError {
                                field: "metadata.name".into(),
                                kind: FieldErrorKind::Invalid,
                                value: Some(format!("\"{name}\"")),
                                detail: "must be spec.names.plural+\".\"+spec.group".into(),
                            }],
                        },
                    ));
                }
                // Validates every served version's schema.
                ResourceType::from_crd(&crd)?;
                let storage: Vec<&str> = crd
                    .spec
                    .versions
                    .iter()
                    .filter(|v| v.storage)
                    .map(|v| v.name.as_str())
                    .collect();
                let mut names = serde_json::to_value(&crd.spec.names).unwrap_or_default();
                if names.get("singular").is_none() {
                    names["singular"] = json!(crd.spec.names.kind.to_lowercase());
                }
                let time = object
                    .pointer("/metadata/creationTimestamp")
                    .cloned()
                    .unwrap_or_else(|| json!(now()));
                object["status"] = json!({
                    "acceptedNames": names,
                    "storedVersions": storage,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": time},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": time},
                    ],
                });
                Ok(Some(crd))
            }
            _ => Ok(None),
        }
    }

    fn register_crd(&mut self, crd: &CustomResourceDefinition) -> Result<(), ApiError> {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let types = ResourceType::from_crd(crd)?;
        let (group, plural) = (crd.spec.group.clone(), crd.spec.names.plural.clone());
        let defined_before: Vec<_> = self
            .types
            .iter()
            .filter(|(_, t)| t.crd.as_deref() == Some(name.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        for key in defined_before {
            self.types.remove(&key);
        }
        let storage = crd
            .spec
            .versions
            .iter()
            .find(|v| v.storage)
            .map(|v| v.name.clone());
        let mut storage_type = None;
        for rt in types {
            let rt = Arc::new(rt);
            if Some(&rt.version) == storage.as_ref() || storage_type.is_none() {
                storage_type = Some(rt.clone());
            }
            self.types.insert(
                (rt.group.clone(), rt.version.clone(), rt.plural.clone()),
                rt,
            );
        }
        if let Some(rt) = storage_type {
            self.kinds.insert((group, plural), rt);
        }
        Ok(())
    }

    fn update(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        rt: &Arc<ResourceType>,
        namespace: &str,
        old: &Value,
        mut new: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        let name = meta_str(old, "name").unwrap_or_default().to_owned();
        if !new.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, &name));
        }
        if let Some(body_name) = meta_str(&new, "name").filter(|n| !n.is_empty())
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        if rt.status {
            if ctx.status {
                let status = new.get("status").cloned();
                let managed = new.pointer("/metadata/managedFields").cloned();
                new = old.clone();
                match status {
                    Some(status) => new["status"] = status,
                    None => {
                        new.as_object_mut().expect("an object").remove("status");
                    }
                }
                if let Some(managed) = managed {
                    meta_mut(&mut new).insert("managedFields".into(), managed);
                }
            } else {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        new.as_object_mut().expect("an object").remove("status");
                    }
                }
            }
        }
        let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
        let meta = meta_mut(&mut new);
        for immutable in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
            "selfLink",
        ] {
            match old_meta.get(immutable) {
                Some(v) => {
                    meta.insert(immutable.into(), v.clone());
                }
                None => {
                    meta.remove(immutable);
                }
            }
        }
        if !ctx.apply {
            match old_meta.get("managedFields") {
                Some(v) => {
                    meta.insert("managedFields".into(), v.clone());
                }
                None => {
                    meta.remove("managedFields");
                }
            }
        }
        if is_deleting(old) {
            let added: Vec<String> = finalizers(&new)
                .difference(&finalizers(old))
                .cloned()
                .collect();
            if !added.is_empty() {
                let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(ApiError::forbidden_field(
                    &rt.group,
                    &rt.kind,
                    &name,
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                ));
            }
        }
        let mut new = self.admit(rt, new, Some(old), ctx)?;
        let crd = self.builtin_effects(rt, &mut new)?;
        if rt.generation && generation_part(rt, &new) != generation_part(rt, old) {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
        }
        // Server-side apply may change only who owns what, which is a change; the time stamps of
        // managedFields entries alone are not.
        if without_managed_fields(&new) == without_managed_fields(old)
            && (!ctx.apply || ownership(&new) == ownership(old))
        {
            return Ok(old.clone());
        }
        if !ctx.apply {
            let sub = if ctx.status { "status" } else { "" };
            patch::record_update(
                Some(old),
                &mut new,
                &ctx.manager,
                sub,
                &rt.api_version(),
                &now(),
            );
        }
        if ctx.dry_run {
            return Ok(new);
        }
        if let Some(crd) = crd {
            self.register_crd(&crd)?;
        }
        if is_deleting(&new) && finalizers(&new).is_empty() {
            return Ok(self.remove(changes, rt, namespace, &name, new, false));
        }
        Ok(self.commit(changes, rt, ChangeKind::Modified, new, Some(old.clone())))
    }

    fn delete(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let object = self.get(rt, namespace, name)?.clone();
        if let Some(rv) = &opts.resource_version
            && Some(rv.as_str()) != meta_str(&object, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&object, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        if let Some(uid) = &opts.uid
            && Some(uid.as_str()) != meta_str(&object, "uid")
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&object, "uid").unwrap_or_default()
                ),
            ));
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        if is_namespace && matches!(name, "default" | "kube-system" | "kube-public") {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                ),
                details: None,
            });
        }
        if !finalizers(&object).is_empty() || is_namespace {
            if is_deleting(&object) {
                return Ok(object);
            }
            let mut marked = object.clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if is_namespace {
                marked["status"] = json!({"phase": "Terminating"});
            }
            let marked = self.commit(changes, rt, ChangeKind::Modified, marked, Some(object));
            if is_namespace {
                self.empty_namespace(changes, name);
                if let Ok(ns) = self.get(rt, "", name).cloned() {
                    return Ok(ns);
                }
            }
            return Ok(marked);
        }
        Ok(self.remove(changes, rt, namespace, name, object, opts.orphan))
    }

    fn empty_namespace(&mut self, changes: &broadcast::Sender<Arc<Change>>, namespace: &str) {
        let mut contents = Vec::new();
        for ((group, plural), objects) in &self.objects {
            for (ns, name) in objects.keys() {
                if ns == namespace {
                    contents.push((group.clone(), plural.clone(), name.clone()));
                }
            }
        }
        for (group, plural, name) in contents {
            if let Some(rt) = self.kinds.get(&(group, plural)).cloned() {
                let _ = self.delete(changes, &rt, namespace, &name, &DeleteOpts::default());
            }
        }
        self.finish_namespace(changes, namespace);
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finish_namespace(&mut self, changes: &broadcast::Sender<Arc<Change>>, namespace: &str) {
        let ns_type = self.kinds[&(String::new(), "namespaces".to_owned())].clone();
        let Ok(ns) = self.get(&ns_type, "", namespace).cloned() else {
            return;
        };
        if !is_deleting(&ns) {
            return;
        }
        let empty = self
            .objects
            .values()
            .all(|objects| objects.keys().all(|(ns, _)| ns != namespace));
        if empty {
            self.remove(changes, &ns_type, "", namespace, ns, false);
        }
    }

    fn remove(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        rt: &Arc<ResourceType>,
        namespace: &str,
        name: &str,
        object: Value,
        orphan: bool,
    ) -> Value {
        // A CRD's objects go before the CRD itself, as its cleanup finalizer orders it.
        if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
            self.unregister_crd(changes, name);
        }
        let previous = self.get(rt, namespace, name).ok().cloned();
        let removed = self.commit(changes, rt, ChangeKind::Deleted, object, previous);
        if let Some(uid) = meta_str(&removed, "uid") {
            self.collect_dependents(changes, uid, orphan);
        }
        if rt.namespaced {
            self.finish_namespace(changes, namespace);
        }
        removed
    }

    fn unregister_crd(&mut self, changes: &broadcast::Sender<Arc<Change>>, name: &str) {
        let types: Vec<_> = self
            .types
            .iter()
            .filter(|(_, t)| t.crd.as_deref() == Some(name))
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        for (key, rt) in types {
            self.types.remove(&key);
            let objects = self
                .objects
                .remove(&(rt.group.clone(), rt.plural.clone()))
                .unwrap_or_default();
            for (_, object) in objects {
                self.commit(changes, &rt, ChangeKind::Deleted, object, None);
            }
            self.objects.remove(&(rt.group.clone(), rt.plural.clone()));
            self.kinds.remove(&(rt.group.clone(), rt.plural.clone()));
        }
    }

    /// Garbage collection of objects owned by `uid`: an object whose owners are all gone is
    /// deleted (honouring its finalizers); a reference to a gone owner is otherwise dropped.
    fn collect_dependents(
        &mut self,
        changes: &broadcast::Sender<Arc<Change>>,
        uid: &str,
        orphan: bool,
    ) {
        let mut dependents = Vec::new();
        let mut live_uids = BTreeSet::new();
        for ((group, plural), objects) in &self.objects {
            for ((ns, name), object) in objects {
                if let Some(u) = meta_str(object, "uid") {
                    live_uids.insert(u.to_owned());
                }
                let owned = object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    });
                if owned {
                    dependents.push((
                        group.clone(),
                        plural.clone(),
                        ns.clone(),
                        name.clone(),
                        object.clone(),
                    ));
                }
            }
        }
        for (group, plural, ns, name, object) in dependents {
            let Some(rt) = self.kinds.get(&(group, plural)).cloned() else {
                continue;
            };
            let refs: Vec<Value> = object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let remaining: Vec<Value> = refs
                .into_iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid))
                .collect();
            let owners_left = remaining.iter().any(|r| {
                r.get("uid")
                    .and_then(Value::as_str)
                    .is_some_and(|u| live_uids.contains(u))
            });
            if orphan || owners_left {
                let mut updated = object.clone();
                if remaining.is_empty() {
                    meta_mut(&mut updated).remove("ownerReferences");
                } else {
                    meta_mut(&mut updated)
                        .insert("ownerReferences".into(), Value::Array(remaining));
                }
                let ctx = WriteCtx {
                    manager: "generic-garbage-collector".into(),
                    ..WriteCtx::default()
                };
                let _ = self.update(changes, &rt, &ns, &object, updated, &ctx);
            } else {
                let _ = self.delete(changes, &rt, &ns, &name, &DeleteOpts::default());
            }
        }
    }
}
