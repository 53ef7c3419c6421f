//! API-server semantics of devkube that the operator and kubectl rely on, through the real
//! kube-rs client in-process: owner-reference garbage collection, namespace termination, label
//! and field selectors on list and watch, streaming lists (`sendInitialEvents`), bookmarks,
//! JSON patches, events through the operator's recorder (series by merge patch), admission of the project's resources and
//! `Status` error bodies.

use std::time::Duration;

use devkube::{DevKube, Options};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::events::EventType;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use pingone_aic_operator::controller::events::{EventNote, EventRecorder};
use pingone_aic_operator::crd::TenantEnvironment;
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(30);

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": {"k": "v"},
    }))
    .unwrap()
}

fn api_error(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn dependents_are_collected_with_their_owner() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let maps: Api<ConfigMap> = Api::namespaced(devkube.client(), "default");
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    for name in ["child", "orphan"] {
        let mut child = config_map(name, &[]);
        child.metadata.owner_references = Some(vec![reference.clone()]);
        maps.create(&PostParams::default(), &child).await.unwrap();
    }
    let mut grandchild = config_map("grandchild", &[]);
    let child = maps.get("child").await.unwrap();
    grandchild.metadata.owner_references = Some(vec![OwnerReference {
        name: "child".into(),
        uid: child.uid().unwrap(),
        ..reference.clone()
    }]);
    maps.create(&PostParams::default(), &grandchild)
        .await
        .unwrap();

    // Orphaning keeps the dependent and drops its reference.
    let second_owner = maps
        .create(&PostParams::default(), &config_map("second", &[]))
        .await
        .unwrap();
    let mut shared = config_map("shared", &[]);
    shared.metadata.owner_references = Some(vec![
        reference.clone(),
        OwnerReference {
            name: "second".into(),
            uid: second_owner.uid().unwrap(),
            ..reference.clone()
        },
    ]);
    maps.create(&PostParams::default(), &shared).await.unwrap();

    maps.delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    for gone in ["owner", "child", "orphan", "grandchild"] {
        assert!(
            maps.get_opt(gone).await.unwrap().is_none(),
            "{gone} was not collected"
        );
    }
    let shared = maps
        .get("shared")
        .await
        .expect("another owner is still there");
    assert_eq!(shared.owner_references().len(), 1);

    maps.delete(
        "second",
        &DeleteParams {
            propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let orphaned = maps.get("shared").await.expect("orphaned, not deleted");
    assert!(orphaned.owner_references().is_empty());
}

#[tokio::test]
async fn namespaces_gate_creation_and_take_their_contents_when_deleted() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let client = devkube.client();
    let missing: Api<Secret> = Api::namespaced(client.clone(), "team");
    let error = api_error(
        missing
            .create(&PostParams::default(), &Secret::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        error.code, 422,
        "a nameless object is invalid: {}",
        error.message
    );
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let error = api_error(
        missing
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (error.code, error.message.as_str()),
        (404, "namespaces \"team\" not found")
    );

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let stored = missing
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // stringData is folded into data, as the API server does.
    assert_eq!(stored.data.unwrap()["password"].0, b"hunter2");
    assert!(stored.string_data.is_none());

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert!(missing.get_opt("s").await.unwrap().is_none());
    assert!(namespaces.get_opt("team").await.unwrap().is_none());
}

#[tokio::test]
async fn selectors_filter_lists_and_watches() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let maps: Api<ConfigMap> = Api::namespaced(devkube.client(), "default");
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        maps.create(&PostParams::default(), &config_map(name, &[("tier", tier)]))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items.iter().map(|m| m.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            maps.list(&ListParams::default().labels("tier=web"))
                .await
                .unwrap()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().labels("tier in (db),!missing"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().fields("metadata.name!=a"))
                .await
                .unwrap()
        ),
        ["b", "c"]
    );
    let paged = maps.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(paged.clone()), ["a", "b"]);
    let token = paged.metadata.continue_.clone().unwrap();
    assert_eq!(
        names(
            maps.list(&ListParams::default().limit(2).continue_token(&token))
                .await
                .unwrap()
        ),
        ["c"]
    );

    // A watch on tier=web sees "b" arrive when it starts matching and leave when it stops.
    let rv = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = maps
        .watch(&WatchParams::default().labels("tier=web"), &rv)
        .await
        .unwrap()
        .boxed();
    let relabel = |tier: &str| Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}}));
    maps.patch("b", &PatchParams::default(), &relabel("web"))
        .await
        .unwrap();
    maps.patch("b", &PatchParams::default(), &relabel("db"))
        .await
        .unwrap();
    maps.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(PATIENCE, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match event {
            WatchEvent::Added(o) => format!("added {}", o.name_any()),
            WatchEvent::Modified(o) => format!("modified {}", o.name_any()),
            WatchEvent::Deleted(o) => format!("deleted {}", o.name_any()),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(seen, ["added b", "deleted b", "modified a"]);
}

#[tokio::test]
async fn streaming_lists_end_with_a_bookmark_and_bookmarks_keep_coming() {
    let devkube = DevKube::with_options(Options {
        bookmark_interval: Duration::from_millis(50),
        ..Options::default()
    });
    let maps: Api<ConfigMap> = Api::namespaced(devkube.client(), "default");
    maps.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();
    let mut stream =
        watcher::watcher(maps.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !seen.contains(&"init-done".to_owned()) {
            match stream.try_next().await.unwrap().unwrap() {
                Event::Init => seen.push("init".to_owned()),
                Event::InitApply(o) => seen.push(format!("init-apply {}", o.name_any())),
                Event::InitDone => seen.push("init-done".to_owned()),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(seen, ["init", "init-apply before", "init-done"]);
    assert!(
        devkube
            .requests()
            .iter()
            .any(|r| r.contains("sendInitialEvents=true"))
    );
    assert!(
        !devkube
            .requests()
            .iter()
            .any(|r| r.starts_with("GET") && r.contains("configmaps") && !r.contains("watch=true")),
        "no list call"
    );

    let rv = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut raw = maps
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            },
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let bookmark = tokio::time::timeout(PATIENCE, async {
        loop {
            if let WatchEvent::Bookmark(b) = raw.try_next().await.unwrap().unwrap() {
                return b;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        bookmark.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
    );
}

#[tokio::test]
async fn json_patches_and_events() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let client = devkube.client();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("p", &[]))
        .await
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        {"op": "replace", "path": "/data/k", "value": "w"}
    ]))
    .unwrap();
    let patched = maps
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .unwrap();
    assert_eq!(patched.finalizers(), ["x/y"]);
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "v"}
    ]))
    .unwrap();
    let error = api_error(
        maps.patch("p", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);

    // The operator's recorder: a repeat patches the first Event's series, another reason is
    // another Event.
    let recorder = EventRecorder::new(client.clone(), "test-controller", None);
    let event = |reason: &'static str, note: &str| EventNote {
        regarding: patched.object_ref(&()),
        related: None,
        type_: EventType::Normal,
        action: "Test",
        reason,
        note: note.to_owned(),
    };
    recorder.publish(event("Tested", "it works")).await.unwrap();
    recorder
        .publish(event("Tested", "it works again"))
        .await
        .unwrap();
    recorder.publish(event("Retested", "once")).await.unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let mut stored = events.list(&ListParams::default()).await.unwrap().items;
    stored.sort_by_key(|e| e.reason.clone());
    assert_eq!(
        stored.len(),
        2,
        "a repeated event is one event with a series"
    );
    assert_eq!(stored[1].reason.as_deref(), Some("Tested"));
    assert_eq!(stored[1].note.as_deref(), Some("it works"));
    assert_eq!(stored[1].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        stored[1].reporting_controller.as_deref(),
        Some("test-controller")
    );
    assert_eq!(stored[0].reason.as_deref(), Some("Retested"));
    assert_eq!(stored[0].series, None);
}

#[tokio::test]
async fn project_resources_are_admitted_like_the_api_server_does() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let api: Api<TenantEnvironment> = Api::namespaced(devkube.client(), "default");
    let valid = json!({
        "apiVersion": "pingone-aic.io/v1alpha1",
        "kind": "TenantEnvironment",
        "metadata": {"name": "dev"},
        "spec": {
            "tenantUrl": "https://openam-acme-dev.id.forgerock.io",
            "tier": "development",
            "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "s", "key": "jwk"}},
            "pingOne": {"environmentId": "11111111-1111-4111-8111-111111111111", "region": "EU"},
        },
    });
    let object: TenantEnvironment = serde_json::from_value(valid.clone()).unwrap();
    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(created.spec.realm, "alpha", "defaults are applied");

    let mut production = valid.clone();
    production["metadata"]["name"] = json!("prod");
    production["spec"]["tier"] = json!("production");
    let object: TenantEnvironment = serde_json::from_value(production).unwrap();
    let error = api_error(
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_err(),
    );
    assert_eq!((error.code, error.reason.as_str()), (422, "Invalid"));
    assert!(error.message.starts_with("TenantEnvironment.pingone-aic.io \"prod\" is invalid: spec.promotesFrom: Required value"), "{}", error.message);

    let tier = Patch::Merge(json!({"spec": {"tier": "sandbox"}}));
    let error = api_error(
        api.patch("dev", &PatchParams::default(), &tier)
            .await
            .unwrap_err(),
    );
    assert!(
        error.message.contains("tier is immutable"),
        "{}",
        error.message
    );

    // Unknown fields: pruned by default, refused under strict field validation.
    let unknown = Patch::Merge(json!({"spec": {"colour": "blue"}}));
    let pruned = api
        .patch("dev", &PatchParams::default(), &unknown)
        .await
        .unwrap();
    assert_eq!(pruned.resource_version(), created.resource_version());
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..Default::default()
    };
    let error = api_error(api.patch("dev", &strict, &unknown).await.unwrap_err());
    assert_eq!(
        (error.code, error.message.as_str()),
        (400, "strict decoding error: unknown field \"spec.colour\"")
    );
}

#[tokio::test]
async fn metadata_only_reads_leave_secret_data_out() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let client = devkube.client();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "key", "labels": {"a": "b"}}, "stringData": {"jwk": "very-secret"}})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let listed = secrets.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].labels()["a"], "b");
    let request = http::Request::get("/api/v1/namespaces/default/secrets")
        .header(
            "Accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )
        .body(Vec::new())
        .unwrap();
    let body = client.request_text(request).await.unwrap();
    assert!(
        body.contains("PartialObjectMetadataList") && !body.contains("dmVyeS1zZWNyZXQ"),
        "{body}"
    );

    let rv = listed.metadata.resource_version.unwrap();
    let mut stream = secrets
        .watch_metadata(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    secrets
        .patch(
            "key",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "c"}}})),
        )
        .await
        .unwrap();
    let event = tokio::time::timeout(PATIENCE, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Modified(meta) => assert_eq!(meta.labels()["a"], "c"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn crds_registered_and_removed_through_the_api() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

    let devkube = DevKube::with_options(Options {
        ..Options::default()
    });
    let client = devkube.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = |schema: serde_json::Value| -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": "gadgets.example.dev"},
            "spec": {
                "group": "example.dev",
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}],
            },
        }))
        .unwrap()
    };
    let not_structural =
        json!({"type": "object", "properties": {"spec": {"description": "no type"}}});
    let error = api_error(
        crds.create(&PostParams::default(), &crd(not_structural))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422, "{}", error.message);
    assert!(
        error
            .message
            .contains("spec.versions[0].schema.openAPIV3Schema"),
        "{}",
        error.message
    );

    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}}});
    let created = crds
        .create(&PostParams::default(), &crd(schema))
        .await
        .unwrap();
    let established = created.status.unwrap().conditions.unwrap();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.dev", "v1", "Gadget"));
    let gadgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let gadget = |size: i64| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": size}})).unwrap()
    };
    let error = api_error(
        gadgets
            .create(&PostParams::default(), &gadget(0))
            .await
            .unwrap_err(),
    );
    assert!(
        error.message.contains(
            "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
        ),
        "{}",
        error.message
    );
    gadgets
        .create(&PostParams::default(), &gadget(2))
        .await
        .unwrap();

    let rv = gadgets
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watch = gadgets
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    crds.delete("gadgets.example.dev", &DeleteParams::default())
        .await
        .unwrap();
    let error = api_error(gadgets.get("g").await.unwrap_err());
    assert_eq!(error.code, 404);
    // Its objects are deleted, then the watch ends.
    let mut events = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(event) = watch.try_next().await.unwrap() {
            events.push(event);
        }
    })
    .await
    .expect("the watch ended");
    assert!(
        matches!(events.as_slice(), [WatchEvent::Deleted(g)] if g.name_any() == "g"),
        "{events:?}"
    );

    let namespaces: Api<Namespace> = Api::all(client);
    let error = api_error(
        namespaces
            .delete("default", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 403);
}

#[tokio::test]
async fn a_watch_ends_when_its_client_goes_away() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let maps: Api<ConfigMap> = Api::namespaced(devkube.client(), "default");
    let rv = maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let stream = maps.watch(&WatchParams::default(), &rv).await.unwrap();
    assert_eq!(devkube.open_watches(), 1);
    drop(stream);
    tokio::time::timeout(PATIENCE, async {
        while devkube.open_watches() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the watch task ended without any further change");
}

#[tokio::test]
async fn object_names_are_validated() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let maps: Api<ConfigMap> = Api::namespaced(devkube.client(), "default");
    let error = api_error(
        maps.create(&PostParams::default(), &config_map("Not_Valid", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(error.code, 422);
    assert!(
        error.message.starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"),
        "{}",
        error.message
    );
    maps.create(&PostParams::default(), &config_map("fine.name-1", &[]))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(devkube.client());
    let dotted: Namespace = serde_json::from_value(json!({"metadata": {"name": "a.b"}})).unwrap();
    let error = api_error(
        namespaces
            .create(&PostParams::default(), &dotted)
            .await
            .unwrap_err(),
    );
    assert!(
        error.message.contains("RFC 1123 label"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn manifests_are_applied_without_kubectl() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let applied = devkube.apply_dir(&examples).unwrap();
    assert!(applied.len() >= 5);
    let again = devkube.apply_dir(&examples).unwrap();
    let versions = |objects: &[serde_json::Value]| -> Vec<serde_json::Value> {
        objects
            .iter()
            .map(|o| o["metadata"]["resourceVersion"].clone())
            .collect()
    };
    assert_eq!(
        versions(&applied),
        versions(&again),
        "applying the same manifests changes nothing"
    );
    let tenants: Api<TenantEnvironment> = Api::namespaced(devkube.client(), "default");
    let dev = tenants.get("acme-dev").await.unwrap();
    assert_eq!(dev.spec.realm, "alpha");
    assert!(
        dev.metadata
            .managed_fields
            .unwrap()
            .iter()
            .any(|m| m.manager.as_deref() == Some("devkube"))
    );
}

#[tokio::test]
async fn crds_load_from_the_committed_files() {
    let devkube = DevKube::with_options(Options {
        ..Options::default()
    });
    let tenants: Api<TenantEnvironment> = Api::namespaced(devkube.client(), "default");
    assert_eq!(
        api_error(tenants.list(&ListParams::default()).await.unwrap_err()).code,
        404
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    assert_eq!(
        devkube.load_crds(&dir).unwrap(),
        pingone_aic_operator::crd::all().len()
    );
    assert!(
        tenants
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
