//! devkube over TCP for kube-rs clients: the kubeconfig it writes is what the operator binary
//! reads (`KUBECONFIG`), and a watch without a resourceVersion starts with the current state.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use devkube::DevKube;
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

#[tokio::test]
async fn the_written_kubeconfig_is_usable_by_kube_rs() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let server = devkube
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    assert!(server.addr().ip().is_loopback());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).unwrap();

    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(names.contains(&"default".to_owned()), "{names:?}");
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");

    // A watch from "0" replays what exists, then follows changes.
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let map = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    maps.create(&PostParams::default(), &map("first"))
        .await
        .unwrap();
    let mut stream = Box::pin(maps.watch(&WatchParams::default(), "0").await.unwrap());
    maps.create(&PostParams::default(), &map("second"))
        .await
        .unwrap();
    let mut added = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while added.len() < 2 {
            if let WatchEvent::Added(m) = stream.try_next().await.unwrap().unwrap() {
                added.push(m.name_any());
            }
        }
    })
    .await
    .expect("both objects arrive");
    assert_eq!(added, ["first", "second"]);
    drop(stream);
    server.shutdown().await;
}
