//! Leader election with kube-lease-manager against devkube: server-side-apply conflicts between
//! field managers on one Lease decide the holder; when the holder stops renewing, the other
//! contender takes over.

use std::time::Duration;

use devkube::DevKube;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;
use tokio::sync::watch;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn apply_conflicts_between_field_managers_on_a_lease() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let leases: Api<Lease> = Api::namespaced(devkube.client(), "default");
    let apply = |holder: &str| {
        Patch::Apply(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5},
        }))
    };
    let a = PatchParams::apply("contender-a");
    let b = PatchParams::apply("contender-b");
    let created = leases.patch("leader", &a, &apply("a")).await.unwrap();
    assert_eq!(created.spec.unwrap().holder_identity.as_deref(), Some("a"));
    // The same values applied by another manager: shared ownership, no conflict.
    leases.patch("leader", &b, &apply("a")).await.unwrap();

    let conflict = leases.patch("leader", &b, &apply("b")).await.unwrap_err();
    match conflict {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(
                status.message.contains("conflict with \"contender-a\""),
                "{}",
                status.message
            );
            assert!(
                status.message.contains(".spec.holderIdentity"),
                "{}",
                status.message
            );
        }
        other => panic!("unexpected error {other}"),
    }
    let forced = leases
        .patch("leader", &b.clone().force(), &apply("b"))
        .await
        .unwrap();
    assert_eq!(forced.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // contender-a lost the field to the forced apply, so its own apply now conflicts.
    let lost = leases.patch("leader", &a, &apply("a")).await.unwrap_err();
    assert!(
        matches!(lost, kube::Error::Api(ref s) if s.code == 409),
        "{lost}"
    );
    let managers: Vec<String> = leases
        .get("leader")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"contender-b".to_owned()), "{managers:?}");
}

async fn until(rx: &mut watch::Receiver<bool>, value: bool) {
    tokio::time::timeout(PATIENCE, rx.wait_for(|v| *v == value))
        .await
        .expect("the leadership state did not change before the timeout")
        .expect("the lease manager stopped");
}

#[tokio::test]
async fn one_leader_at_a_time_and_takeover_when_it_stops_renewing() {
    let devkube = DevKube::with_crds(pingone_aic_operator::crd::all());
    let contender = |identity: &'static str| {
        let client = devkube.client();
        async move {
            LeaseManagerBuilder::new(client, "operator-leader")
                .with_namespace("default")
                .with_identity(identity)
                .with_duration(3)
                .with_grace(1)
                .build()
                .await
                .unwrap()
                .watch()
                .await
        }
    };
    let ((mut a, a_task), (mut b, b_task)) = tokio::join!(contender("a"), contender("b"));

    // Whoever wins, the other does not hold the lease.
    tokio::time::timeout(PATIENCE, async {
        loop {
            if *a.borrow() || *b.borrow() {
                break;
            }
            tokio::select! {
                _ = a.changed() => {}
                _ = b.changed() => {}
            }
        }
    })
    .await
    .expect("nobody became leader");
    let leases: Api<Lease> = Api::namespaced(devkube.client(), "default");
    let holder = leases
        .get("operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    let (leader, mut follower, follower_name, leader_task, follower_task) = if *a.borrow() {
        (a, b, "b", a_task, b_task)
    } else {
        (b, a, "a", b_task, a_task)
    };
    assert!(!*follower.borrow(), "two leaders");
    assert_ne!(holder.as_deref(), Some(follower_name));

    // The leader stops renewing without releasing (a crash): the follower takes over once the
    // lease expires.
    leader_task.abort();
    drop(leader);
    until(&mut follower, true).await;
    let holder = leases
        .get("operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some(follower_name));
    follower_task.abort();
}
