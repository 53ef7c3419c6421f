//! The real kube-rs `Controller`, finalizer helper and `watcher` against devkube, in-process:
//! reconcile on create and on spec changes, no reconcile for status-only changes behind a
//! generation predicate, deletion blocked by a finalizer until cleanup, and watches that resume
//! after a dropped connection or relist after 410 Gone.

use std::sync::Arc;
use std::time::Duration;

use devkube::DevKube;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{
    Controller, WatchStreamExt, conditions, predicates, reflector, wait::await_condition,
};
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

/// A resource of the tests' own, so they do not depend on the project's schemas.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "test.devkube.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    size: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct WidgetStatus {
    #[serde(rename = "observedGeneration", skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

const PATIENCE: Duration = Duration::from_secs(30);

fn devkube() -> (DevKube, Api<Widget>) {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    devkube.add_crd(&Widget::crd()).unwrap();
    let api = Api::namespaced(devkube.client(), "default");
    (devkube, api)
}

fn widget(name: &str, size: i64) -> Widget {
    Widget::new(name, WidgetSpec { size })
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(PATIENCE, rx.recv())
        .await
        .expect("no reconcile before the timeout")
        .expect("the controller stopped")
}

struct Reconciled {
    api: Api<Widget>,
    seen: mpsc::UnboundedSender<(String, i64)>,
}

struct Cleanup {
    api: Api<Widget>,
    events: mpsc::UnboundedSender<&'static str>,
    allowed: tokio::sync::watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

#[tokio::test]
async fn controller_reconciles_each_generation_once_behind_a_generation_predicate() {
    let (_devkube, api) = devkube();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, i64)>();
    let (reader, writer) = reflector::store();
    let trigger = reflector::reflector(
        writer,
        watcher::watcher(api.clone(), watcher::Config::default()),
    )
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());
    let context = Arc::new(Reconciled {
        api: api.clone(),
        seen: tx,
    });
    let controller = tokio::spawn(
        Controller::for_stream(trigger, reader)
            .run(
                |obj: Arc<Widget>, ctx: Arc<Reconciled>| async move {
                    let generation = obj.metadata.generation.unwrap_or_default();
                    // The reconciler's own status write must not come back as a reconcile.
                    let status = json!({"status": {"observedGeneration": generation}});
                    ctx.api
                        .patch_status(
                            &obj.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(status),
                        )
                        .await
                        .map_err(|e| Failed(e.to_string()))?;
                    let _ = ctx.seen.send((obj.name_any(), generation));
                    Ok::<_, Failed>(Action::await_change())
                },
                |_, _, _| Action::requeue(Duration::from_millis(200)),
                context,
            )
            .for_each(|_| async {}),
    );

    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, ("w".to_owned(), 1));

    let spec = Patch::Merge(json!({"spec": {"size": 2}}));
    api.patch("w", &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, ("w".to_owned(), 2));

    // A status-only change and a label change leave the generation alone; the spec change after
    // them is the next thing reconciled.
    let note = Patch::Merge(json!({"status": {"note": "hello"}}));
    let noted = api
        .patch_status("w", &PatchParams::default(), &note)
        .await
        .unwrap();
    assert_eq!(noted.metadata.generation, Some(2));
    let label = Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}));
    api.patch("w", &PatchParams::default(), &label)
        .await
        .unwrap();
    let spec = Patch::Merge(json!({"spec": {"size": 3}}));
    api.patch("w", &PatchParams::default(), &spec)
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await, ("w".to_owned(), 3));

    let stored = api.get("w").await.unwrap();
    assert_eq!(stored.status.unwrap().observed_generation, Some(3));
    assert!(rx.try_recv().is_err(), "a generation was reconciled twice");
    controller.abort();
}

#[tokio::test]
async fn finalizer_blocks_deletion_until_cleanup_is_done() {
    let (_devkube, api) = devkube();
    let (events_tx, mut events) = mpsc::unbounded_channel::<&'static str>();
    let (allow_tx, allow) = tokio::sync::watch::channel(false);
    let context = Arc::new(Cleanup {
        api: api.clone(),
        events: events_tx,
        allowed: allow,
    });
    let controller = tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(
                |obj: Arc<Widget>, ctx: Arc<Cleanup>| async move {
                    let api = ctx.api.clone();
                    finalizer(&api, "test.devkube.dev/cleanup", obj, |event| async move {
                        match event {
                            Finalizer::Apply(_) => {
                                let _ = ctx.events.send("apply");
                                Ok(Action::await_change())
                            }
                            Finalizer::Cleanup(_) => {
                                let _ = ctx.events.send("cleanup");
                                if *ctx.allowed.borrow() {
                                    Ok(Action::await_change())
                                } else {
                                    Err(Failed("cleanup not allowed yet".into()))
                                }
                            }
                        }
                    })
                    .await
                    .map_err(|e| Failed(e.to_string()))
                },
                |_, _, _| Action::requeue(Duration::from_millis(100)),
                context,
            )
            .for_each(|_| async {}),
    );

    let created = api
        .create(&PostParams::default(), &widget("f", 1))
        .await
        .unwrap();
    while next(&mut events).await != "apply" {}
    let stored = api.get("f").await.unwrap();
    assert_eq!(stored.finalizers(), ["test.devkube.dev/cleanup"]);

    api.delete("f", &DeleteParams::default()).await.unwrap();
    while next(&mut events).await != "cleanup" {}
    let deleting = api
        .get("f")
        .await
        .expect("kept while its finalizer is there");
    assert!(deleting.metadata.deletion_timestamp.is_some());

    // No new finalizer while the object is being deleted.
    let add =
        Patch::Merge(json!({"metadata": {"finalizers": ["test.devkube.dev/cleanup", "other"]}}));
    let refused = api
        .patch("f", &PatchParams::default(), &add)
        .await
        .unwrap_err();
    match refused {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.contains("no new finalizers can be added"),
                "{}",
                status.message
            );
        }
        other => panic!("unexpected error {other}"),
    }

    allow_tx.send_replace(true);
    let uid = created.uid().unwrap();
    tokio::time::timeout(
        PATIENCE,
        await_condition(api.clone(), "f", conditions::is_deleted(&uid)),
    )
    .await
    .expect("deleted after cleanup")
    .unwrap();
    assert!(api.get_opt("f").await.unwrap().is_none());
    controller.abort();
}

#[tokio::test]
async fn stale_writes_conflict_and_status_is_split_from_spec() {
    let (_devkube, api) = devkube();
    let created = api
        .create(&PostParams::default(), &widget("c", 1))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let again = api
        .create(&PostParams::default(), &widget("c", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(again, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{again}"
    );

    let mut first = created.clone();
    first.spec.size = 2;
    let replaced = api
        .replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.generation, Some(2));
    let mut stale = created.clone();
    stale.spec.size = 3;
    let conflict = api
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected error {other}"),
    }

    // Status through the main resource is ignored; spec through status is ignored.
    let mut with_status = replaced.clone();
    with_status.status = Some(WidgetStatus {
        observed_generation: Some(9),
        note: None,
    });
    let main = api
        .replace("c", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(main.status, None);
    assert_eq!(
        main.resource_version(),
        replaced.resource_version(),
        "a write that changes nothing"
    );
    let both = Patch::Merge(json!({"spec": {"size": 7}, "status": {"note": "n"}}));
    let status = api
        .patch_status("c", &PatchParams::default(), &both)
        .await
        .unwrap();
    assert_eq!(status.spec.size, 2);
    assert_eq!(status.status.unwrap().note.as_deref(), Some("n"));

    // A no-op patch keeps the resourceVersion.
    let current = api.get("c").await.unwrap();
    let same = Patch::Merge(json!({"spec": {"size": 2}}));
    let unchanged = api
        .patch("c", &PatchParams::default(), &same)
        .await
        .unwrap();
    assert_eq!(unchanged.resource_version(), current.resource_version());
}

/// Collects watcher events until `done` says so.
async fn collect_until<S>(stream: &mut S, seen: &mut Vec<String>, done: impl Fn(&[String]) -> bool)
where
    S: futures::Stream<Item = Result<Event<Widget>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(PATIENCE, async {
        while !done(seen) {
            match stream.try_next().await {
                Ok(Some(event)) => seen.push(match event {
                    Event::Init => "init".to_owned(),
                    Event::InitApply(o) => format!("init-apply {}", o.name_any()),
                    Event::InitDone => "init-done".to_owned(),
                    Event::Apply(o) => format!("apply {}", o.name_any()),
                    Event::Delete(o) => format!("delete {}", o.name_any()),
                }),
                Ok(None) => panic!("the watcher ended"),
                // 410 Gone surfaces once as an error, then the watcher lists again.
                Err(e) => seen.push(format!("error {e}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; seen so far: {seen:?}"));
}

#[tokio::test]
async fn watch_resumes_from_its_resource_version_after_the_connection_drops() {
    let (devkube, api) = devkube();
    api.create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    collect_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_owned())
    })
    .await;
    api.create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    collect_until(&mut stream, &mut seen, |s| {
        s.contains(&"apply b".to_owned())
    })
    .await;
    let lists_before = count(&devkube, |r| !r.contains("watch=true"));

    devkube.hold_watches(true);
    devkube.drop_watches();
    api.create(&PostParams::default(), &widget("c", 1))
        .await
        .unwrap();
    devkube.hold_watches(false);
    collect_until(&mut stream, &mut seen, |s| {
        s.contains(&"apply c".to_owned())
    })
    .await;

    assert_eq!(seen.iter().filter(|s| *s == "init").count(), 1, "{seen:?}");
    assert_eq!(
        count(&devkube, |r| !r.contains("watch=true")),
        lists_before,
        "no relist"
    );
    assert!(
        count(&devkube, |r| r.contains("watch=true")) >= 2,
        "{:?}",
        devkube.requests()
    );
}

#[tokio::test]
async fn watch_lists_again_after_410_gone() {
    let (devkube, api) = devkube();
    api.create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    collect_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-done".to_owned())
    })
    .await;

    devkube.hold_watches(true);
    devkube.drop_watches();
    api.create(&PostParams::default(), &widget("b", 1))
        .await
        .unwrap();
    devkube.compact();
    devkube.hold_watches(false);
    collect_until(&mut stream, &mut seen, |s| {
        s.contains(&"init-apply b".to_owned())
    })
    .await;

    assert!(
        seen.iter()
            .any(|s| s.starts_with("error") && s.contains("too old resource version")),
        "{seen:?}"
    );
    assert_eq!(seen.iter().filter(|s| *s == "init").count(), 2, "{seen:?}");
    assert!(
        devkube
            .requests()
            .iter()
            .any(|r| r.contains("watch=true") && !r.contains("resourceVersion=0")),
        "the watcher resumed from a resourceVersion first"
    );
}

fn count(devkube: &DevKube, filter: impl Fn(&str) -> bool) -> usize {
    devkube
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/test.devkube.dev/v1/namespaces/default/widgets"))
        .filter(|r| filter(r))
        .count()
}
