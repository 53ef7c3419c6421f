//! devkube measured against kube-apiserver: one table of requests (CRUD, the status
//! subresource, merge / JSON / server-side-apply patches and their conflicts, finalizers and
//! deletion, label and field selectors, watches with bookmarks, resume and 410, tables for
//! kubectl, both views of Events) sent to each, the answers compared on status code, reason
//! and the fields a client reads. A difference is fixed in devkube or listed in [`KEPT`] with
//! why it is kept; a kept difference that went away fails too, so the list stays true.

use std::time::Duration;

use devkube::DevKube;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::cluster::{self, control_plane, install_crds};

/// Differences kept on purpose: (step, why).
const KEPT: &[(&str, &str)] = &[(
    "watch with initial events",
    "devkube serves streaming lists (sendInitialEvents), which kube-apiserver v1.33 refuses \
     (422) unless its WatchList feature gate, off by default, is on; the operator's watchers \
     list and then watch, and devkube's own tests cover streaming lists",
)];

/// What one request asks and what of the answer is compared.
struct Step {
    name: &'static str,
    method: Method,
    /// Path with `{ns}` for the namespace.
    path: &'static str,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Option<Value>,
    /// JSON pointers into the answer whose values are compared (besides code and reason).
    fields: &'static [&'static str],
    /// Read as a watch stream: the events' types and names (and bookmarks' annotation) until
    /// this many events or a short wait.
    watch_events: Option<usize>,
}

fn step(name: &'static str, method: Method, path: &'static str) -> Step {
    Step {
        name,
        method,
        path,
        content_type: None,
        accept: None,
        body: None,
        fields: &[],
        watch_events: None,
    }
}

impl Step {
    fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }
    fn json(self, body: Value) -> Self {
        self.body("application/json", body)
    }
    fn fields(mut self, fields: &'static [&'static str]) -> Self {
        self.fields = fields;
        self
    }
    fn accept(mut self, accept: &'static str) -> Self {
        self.accept = Some(accept);
        self
    }
    fn watch(mut self, events: usize) -> Self {
        self.watch_events = Some(events);
        self
    }
}

const CM: &str = "/api/v1/namespaces/{ns}/configmaps";
const CM_ONE: &str = "/api/v1/namespaces/{ns}/configmaps/settings";
const TENV: &str = "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments";
const TENV_ONE: &str = "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments/acme-dev";
const TENV_STATUS: &str =
    "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments/acme-dev/status";
const MERGE: &str = "application/merge-patch+json";
const JSON_PATCH: &str = "application/json-patch+json";
const APPLY: &str = "application/apply-patch+yaml";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

fn tenant(tier: &str) -> Value {
    json!({
        "apiVersion": "pingone-aic.io/v1alpha1",
        "kind": "TenantEnvironment",
        "metadata": {"name": "acme-dev", "labels": {"team": "identity"}},
        "spec": {
            "tenantUrl": "https://openam-acme-dev.id.forgerock.io",
            "tier": tier,
            "serviceAccount": {
                "id": "2f6c5a1e-0d1b-4c3a-9e8f-7a6b5c4d3e01",
                "privateKeySecretRef": {"name": "aic-acme-dev-service-account", "key": "jwk"}
            },
            "pingOne": {
                "environmentId": "11111111-1111-4111-8111-111111111111",
                "region": "EU",
                "adminCredentialsSecretRef": {"name": "pingone-admin-worker"}
            }
        }
    })
}

/// The table: each step runs on both servers, in order, in a fresh namespace of the same name.
fn steps() -> Vec<Step> {
    use Method as M;
    let object_fields: &[&str] = &[
        "/kind",
        "/metadata/name",
        "/metadata/labels",
        "/data",
        "/metadata/finalizers",
    ];
    vec![
        step("create a ConfigMap", M::POST, CM)
            .json(json!({"metadata": {"name": "settings", "labels": {"app": "a"}}, "data": {"k": "v"}}))
            .fields(object_fields),
        step("create it again", M::POST, CM)
            .json(json!({"metadata": {"name": "settings"}, "data": {"k": "v"}}))
            .fields(&["/details/name", "/details/kind"]),
        step("get it", M::GET, CM_ONE).fields(object_fields),
        step("get a missing one", M::GET, "/api/v1/namespaces/{ns}/configmaps/missing")
            .fields(&["/details/name", "/details/kind"]),
        step("replace with a stale resourceVersion", M::PUT, CM_ONE)
            .json(json!({"metadata": {"name": "settings", "resourceVersion": "1"}, "data": {"k": "stale"}})),
        step("replace without a resourceVersion", M::PUT, CM_ONE)
            .json(json!({"metadata": {"name": "settings", "labels": {"app": "a"}}, "data": {"k": "v", "r": "replaced"}}))
            .fields(object_fields),
        step("replace with another name", M::PUT, CM_ONE)
            .json(json!({"metadata": {"name": "other"}, "data": {}})),
        step("merge patch", M::PATCH, CM_ONE)
            .body(MERGE, json!({"data": {"k2": "v2", "r": null}}))
            .fields(object_fields),
        step("JSON patch", M::PATCH, CM_ONE)
            .body(JSON_PATCH, json!([{"op": "add", "path": "/data/k3", "value": "v3"}]))
            .fields(object_fields),
        step("JSON patch whose test fails", M::PATCH, CM_ONE)
            .body(JSON_PATCH, json!([{"op": "test", "path": "/data/k", "value": "nope"}])),
        step("JSON patch of a missing path", M::PATCH, CM_ONE)
            .body(JSON_PATCH, json!([{"op": "replace", "path": "/data/absent", "value": "x"}])),
        step("apply by a second manager, conflicting", M::PATCH, "/api/v1/namespaces/{ns}/configmaps/settings?fieldManager=second")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "second"}})),
        step("apply by a second manager, forced", M::PATCH, "/api/v1/namespaces/{ns}/configmaps/settings?fieldManager=second&force=true")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "second"}}))
            .fields(object_fields),
        step("apply without a field manager", M::PATCH, CM_ONE)
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}})),
        step("apply creates", M::PATCH, "/api/v1/namespaces/{ns}/configmaps/applied?fieldManager=first")
            .body(APPLY, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "labels": {"app": "b"}}, "data": {"a": "1"}}))
            .fields(object_fields),
        step("list by label", M::GET, "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Da")
            .fields(&["/kind", "/items/0/metadata/name", "/items/1"]),
        step("list by set-based label", M::GET, "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%20in%20(a,b),app!%3Dc")
            .fields(&["/items/0/metadata/name", "/items/1/metadata/name", "/items/2"]),
        step("list by field", M::GET, "/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Dapplied")
            .fields(&["/items/0/metadata/name", "/items/1"]),
        step("list by an unsupported field", M::GET, "/api/v1/namespaces/{ns}/configmaps?fieldSelector=data.k%3Dv"),
        step("list with a bad label selector", M::GET, "/api/v1/namespaces/{ns}/configmaps?labelSelector=a%3D%3D%3Db"),
        step("list as a Table", M::GET, "/api/v1/namespaces/{ns}/configmaps?labelSelector=app%3Da")
            .accept(TABLE)
            .fields(&["/kind", "/apiVersion", "/columnDefinitions/0/name", "/columnDefinitions/1/name", "/columnDefinitions/2/name", "/rows/0/cells/0", "/rows/0/cells/1", "/rows/1"]),
        step("list limited", M::GET, "/api/v1/namespaces/{ns}/configmaps?limit=1")
            .fields(&["/items/0/metadata/name", "/items/1"]),
        step("delete it", M::DELETE, CM_ONE).fields(&["/kind", "/metadata/name", "/status"]),
        step("get it deleted", M::GET, CM_ONE),
        step("delete it again", M::DELETE, CM_ONE).fields(&["/details/name"]),
        // A custom resource with a status subresource, CEL rules and defaults.
        step("create a TenantEnvironment", M::POST, TENV)
            .json(tenant("development"))
            .fields(&["/metadata/generation", "/spec/realm", "/spec/restart", "/status"]),
        step("create one the schema refuses", M::POST, TENV)
            .json({ let mut t = tenant("galactic"); t["metadata"]["name"] = json!("refused"); t })
            .fields(&["/details/name", "/details/kind", "/details/group", "/details/causes/0/field", "/details/causes/0/reason"]),
        step("create one with an unknown field, strictly", M::POST, "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments?fieldValidation=Strict")
            .json({ let mut t = tenant("development"); t["metadata"]["name"] = json!("strict"); t["spec"]["colour"] = json!("blue"); t }),
        step("create one with an unknown field", M::POST, TENV)
            .json({ let mut t = tenant("development"); t["metadata"]["name"] = json!("pruned"); t["spec"]["colour"] = json!("blue"); t })
            .fields(&["/spec/colour", "/spec/tier"]),
        step("change a spec field", M::PATCH, TENV_ONE)
            .body(MERGE, json!({"spec": {"realm": "bravo"}}))
            .fields(&["/metadata/generation", "/spec/realm"]),
        step("change an immutable field", M::PATCH, TENV_ONE)
            .body(MERGE, json!({"spec": {"tier": "uat", "promotesFrom": "acme-sbx"}}))
            .fields(&["/details/causes/0/field", "/details/causes/0/message"]),
        step("status through the main resource is ignored", M::PATCH, TENV_ONE)
            .body(MERGE, json!({"status": {"observedGeneration": 7}}))
            .fields(&["/metadata/generation", "/status"]),
        step("patch the status subresource", M::PATCH, TENV_STATUS)
            .body(MERGE, json!({"status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False", "reason": "Waiting", "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}))
            .fields(&["/metadata/generation", "/status/observedGeneration", "/status/conditions/0/reason", "/spec/realm"]),
        step("spec through the status subresource is ignored", M::PATCH, TENV_STATUS)
            .body(MERGE, json!({"spec": {"realm": "charlie"}}))
            .fields(&["/metadata/generation", "/spec/realm"]),
        step("apply the status as a controller", M::PATCH, "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments/acme-dev/status?fieldManager=controller&force=true")
            .body(APPLY, json!({"apiVersion": "pingone-aic.io/v1alpha1", "kind": "TenantEnvironment", "metadata": {"name": "acme-dev"}, "status": {"observedGeneration": 4}}))
            .fields(&["/status/observedGeneration", "/status/conditions/0/reason"]),
        step("apply a status field the schema does not declare", M::PATCH, "/apis/pingone-aic.io/v1alpha1/namespaces/{ns}/tenantenvironments/acme-dev/status?fieldManager=controller&force=true")
            .body(APPLY, json!({"apiVersion": "pingone-aic.io/v1alpha1", "kind": "TenantEnvironment", "metadata": {"name": "acme-dev"}, "status": {"restartCount": 4}})),
        step("list as a Table with the printer columns", M::GET, TENV)
            .accept(TABLE)
            .fields(&["/columnDefinitions/0/name", "/columnDefinitions/1/name", "/columnDefinitions/2/name", "/columnDefinitions/3/name", "/columnDefinitions/4/name", "/rows/0/cells/0", "/rows/0/cells/1", "/rows/0/cells/2", "/rows/0/cells/3"]),
        step("add a finalizer", M::PATCH, TENV_ONE)
            .body(MERGE, json!({"metadata": {"finalizers": ["pingone-aic.io/test"]}}))
            .fields(&["/metadata/finalizers"]),
        step("delete it with a finalizer", M::DELETE, TENV_ONE)
            .fields(&["/kind", "/metadata/finalizers"]),
        step("get it while it is deleted", M::GET, TENV_ONE)
            .fields(&["/metadata/finalizers", "/spec/realm"]),
        step("a new finalizer while it is deleted", M::PATCH, TENV_ONE)
            .body(MERGE, json!({"metadata": {"finalizers": ["pingone-aic.io/test", "pingone-aic.io/late"]}})),
        step("remove the finalizer", M::PATCH, TENV_ONE)
            .body(JSON_PATCH, json!([{"op": "remove", "path": "/metadata/finalizers"}]))
            .fields(&["/kind", "/metadata/name"]),
        step("get it after the finalizer", M::GET, TENV_ONE),
        // Watches: the initial state with its bookmark, resuming, and 410 for a forgotten version.
        step("watch with initial events", M::GET, "/api/v1/namespaces/{ns}/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5")
            .watch(2),
        step("watch from a forgotten resourceVersion", M::GET, "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=1&timeoutSeconds=5")
            .watch(1),
        step("list from a forgotten resourceVersion, exactly", M::GET, "/api/v1/namespaces/{ns}/configmaps?resourceVersion=1&resourceVersionMatch=Exact"),
        // Events: one store, two APIs.
        step("record an events.k8s.io Event", M::POST, "/apis/events.k8s.io/v1/namespaces/{ns}/events")
            .json(json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "acme-dev.1"},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "reportingController": "pingone-aic.io/operator", "reportingInstance": "operator-0",
                "action": "Reconcile", "reason": "Restarted", "note": "AIC restarted", "type": "Normal",
                "regarding": {"apiVersion": "pingone-aic.io/v1alpha1", "kind": "TenantEnvironment", "name": "acme-dev", "namespace": "x"}
            }))
            .fields(&["/kind", "/apiVersion", "/note", "/reason", "/regarding/kind", "/reportingController"]),
        step("read it as a core Event", M::GET, "/api/v1/namespaces/{ns}/events")
            .fields(&["/kind", "/items/0/message", "/items/0/reason", "/items/0/involvedObject/kind", "/items/0/reportingComponent", "/items/0/type"]),
        step("read it as an events.k8s.io Event", M::GET, "/apis/events.k8s.io/v1/namespaces/{ns}/events/acme-dev.1")
            .fields(&["/kind", "/apiVersion", "/note", "/regarding/name"]),
    ]
}

/// What a server answered, reduced to what is compared.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u16,
    reason: Option<String>,
    fields: Vec<(String, Value)>,
    events: Vec<String>,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.reason.as_deref().unwrap_or("-"))?;
        for (pointer, value) in &self.fields {
            write!(f, " {pointer}={value}")?;
        }
        if !self.events.is_empty() {
            write!(f, " events={:?}", self.events)?;
        }
        Ok(())
    }
}

async fn send(client: &kube::Client, namespace: &str, step: &Step) -> Answer {
    let path = step.path.replace("{ns}", namespace);
    let mut request = Request::builder().method(step.method.clone()).uri(path);
    if let Some(content_type) = step.content_type {
        request = request.header("content-type", content_type);
    }
    request = request.header("accept", step.accept.unwrap_or("application/json"));
    let body = step
        .body
        .as_ref()
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let request = request.body(kube::client::Body::from(body)).unwrap();
    let response = client.send(request).await.expect("the server answers");
    let code = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut events = Vec::new();
    if let Some(wanted) = step.watch_events.filter(|_| code == 200) {
        // A watch: read events until enough arrived or the stream pauses.
        while events.len() < wanted {
            let Ok(Some(Ok(frame))) =
                tokio::time::timeout(Duration::from_secs(6), body.frame()).await
            else {
                break;
            };
            if let Ok(data) = frame.into_data() {
                bytes.extend_from_slice(&data);
            }
            while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = bytes.drain(..=end).collect();
                if let Ok(event) = serde_json::from_slice::<Value>(&line) {
                    events.push(describe_event(&event));
                }
            }
        }
        return Answer {
            code,
            reason: None,
            fields: Vec::new(),
            events,
        };
    }
    let collected = body.collect().await.expect("a body").to_bytes();
    let value: Value = serde_json::from_slice(&collected).unwrap_or(Value::Null);
    let reason = (value["kind"] == "Status" && code >= 300)
        .then(|| value["reason"].as_str().unwrap_or_default().to_owned());
    let fields = step
        .fields
        .iter()
        .map(|pointer| {
            let found = value.pointer(pointer).cloned().unwrap_or(Value::Null);
            ((*pointer).to_owned(), found)
        })
        .collect();
    Answer {
        code,
        reason,
        fields,
        events,
    }
}

/// `TYPE name` of a watch event; a bookmark says whether it ends the initial events; an error
/// says its code and reason.
fn describe_event(event: &Value) -> String {
    let kind = event["type"].as_str().unwrap_or_default();
    let object = &event["object"];
    match kind {
        "BOOKMARK" => format!(
            "BOOKMARK initial-events-end={}",
            object["metadata"]["annotations"]["k8s.io/initial-events-end"]
        ),
        "ERROR" => format!("ERROR {} {}", object["code"], object["reason"]),
        _ => format!(
            "{kind} {}",
            object["metadata"]["name"].as_str().unwrap_or("?")
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devkube_answers_as_kube_apiserver_does() {
    let _api_server = cluster::API_SERVER.read().await;
    install_crds();
    let real = control_plane().admin().await;
    let namespace = cluster::namespace(&real, "differential").await;
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let stand_in = devkube.client();
    let create_namespace = step("namespace", Method::POST, "/api/v1/namespaces")
        .json(json!({"metadata": {"name": namespace}}));
    assert_eq!(send(&stand_in, "", &create_namespace).await.code, 201);

    let mut differences = Vec::new();
    let mut report = Vec::new();
    for step in steps() {
        if step.name == "watch from a forgotten resourceVersion" {
            // kube-apiserver's watch cache starts after the first revisions; devkube forgets
            // its history only when compacted.
            devkube.compact();
        }
        let from_real = send(&real, &namespace, &step).await;
        let from_devkube = send(&stand_in, &namespace, &step).await;
        report.push(format!("{}: {from_real}", step.name));
        if from_real != from_devkube {
            differences.push((
                step.name,
                format!(
                    "{}:\n  kube-apiserver: {from_real}\n  devkube:        {from_devkube}",
                    step.name
                ),
            ));
        }
    }
    eprintln!("kube-apiserver's answers:\n{}", report.join("\n"));
    let unexpected: Vec<&str> = differences
        .iter()
        .filter(|(name, _)| !KEPT.iter().any(|(kept, _)| kept == name))
        .map(|(_, text)| text.as_str())
        .collect();
    let gone: Vec<&str> = KEPT
        .iter()
        .filter(|(kept, _)| !differences.iter().any(|(name, _)| name == kept))
        .map(|(kept, _)| *kept)
        .collect();
    assert!(
        unexpected.is_empty() && gone.is_empty(),
        "devkube answers differently:\n{}\nkept differences that are gone: {gone:?}",
        unexpected.join("\n")
    );
}
