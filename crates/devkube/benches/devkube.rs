//! devkube throughput: creates 1,000 TenantEnvironments (each through full admission) while a
//! kube-rs watcher follows them, in-process and over TCP, and prints requests per second and the
//! process's peak memory. A report, not a pass/fail test: `cargo bench -p devkube --bench devkube`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use devkube::DevKube;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use pingone_aic_operator::crd::TenantEnvironment;
use serde_json::json;

const OBJECTS: usize = 1_000;
const CONCURRENCY: usize = 16;

fn tenant(index: usize) -> TenantEnvironment {
    serde_json::from_value(json!({
        "apiVersion": "pingone-aic.io/v1alpha1",
        "kind": "TenantEnvironment",
        "metadata": {"name": format!("tenant-{index:04}"), "namespace": "default"},
        "spec": {
            "tenantUrl": format!("https://openam-acme-{index}.id.forgerock.io"),
            "tier": "sandbox",
            "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "s", "key": "jwk"}},
            "pingOne": {"environmentId": "11111111-1111-4111-8111-111111111111", "region": "EU"},
        },
    }))
    .expect("a valid TenantEnvironment")
}

/// Peak resident set size of this process, from `/proc/self/status` (`VmHWM`).
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn run(label: &str, client: kube::Client) {
    let api: Api<TenantEnvironment> = Api::namespaced(client, "default");
    let watch = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut applied = 0usize;
            let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
            while applied < OBJECTS {
                match stream.try_next().await {
                    Ok(Some(Event::Apply(_) | Event::InitApply(_))) => applied += 1,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => eprintln!("watch error: {e}"),
                }
            }
            (applied, Instant::now())
        })
    };
    let start = Instant::now();
    futures::stream::iter(0..OBJECTS)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &tenant(i)).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("every create succeeds");
    let created = start.elapsed();
    let (seen, last_event) = watch.await.expect("the watcher finished");
    let watched = last_event.duration_since(start);
    println!(
        "{label}: {OBJECTS} creates in {:.3}s = {:.0} requests/s ({CONCURRENCY} concurrent); \
         watcher saw {seen} objects after {:.3}s; peak memory (VmHWM) {}",
        created.as_secs_f64(),
        OBJECTS as f64 / created.as_secs_f64(),
        watched.as_secs_f64(),
        peak_memory()
    );
}

#[tokio::main]
async fn main() {
    println!("peak memory before: {}", peak_memory());
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    run("in-process", devkube.client()).await;

    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let server = devkube
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("bind 127.0.0.1");
    run("tcp", server.client().expect("a client")).await;
    server.shutdown().await;
}
