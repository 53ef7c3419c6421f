//! The frame every reconcile runs in, the same for the three resources: the finalizer (for the
//! resources that own remote state), the latest copy of the object, the persistent-failure
//! report and the reconcile metrics. Inside it runs the resource's own pass, which observes,
//! decides, acts and writes its status once at the end (with named checkpoints where a
//! mid-flight write is what makes a crash safe).

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::admission::Spends;
use super::{Context, ReconcileError};

/// A resource the operator reconciles.
pub(crate) trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name in metrics.
    const CONTROLLER: &'static str;
    /// The finalizer that holds a deletion until the cleanup has run; `None` for a resource
    /// that owns nothing remote (its deletion needs no work).
    const FINALIZER: Option<&'static str>;

    /// The licences and tenants a reconcile of this object spends budget on, as far as the
    /// caches tell; what cannot be worked out (a malformed URL) is left out, and the pass
    /// reports it.
    fn spends(&self, ctx: &Context) -> BTreeSet<Spends>;
}

/// Runs one reconcile of `object` once admitted ([`super::admission`]): `apply` on the latest
/// copy while it exists, `cleanup` once it is being deleted (resources with a finalizer only).
pub(crate) async fn reconcile<K, A, FA, C, FC>(
    object: Arc<K>,
    ctx: &Context,
    apply: A,
    cleanup: C,
) -> Result<Action, ReconcileError>
where
    K: Reconciled,
    A: FnOnce(Arc<K>) -> FA,
    FA: Future<Output = Result<Action, ReconcileError>>,
    C: FnOnce(Arc<K>) -> FC,
    FC: Future<Output = Result<Action, ReconcileError>>,
{
    let _admitted = ctx.admission.admit(K::CONTROLLER, object.spends(ctx)).await;
    // Boxed: a reconcile waiting for admission holds only this small frame, not the state of
    // the whole pass, so a fleet queued on its licences costs little memory.
    Box::pin(run(object, ctx, apply, cleanup)).await
}

async fn run<K, A, FA, C, FC>(
    object: Arc<K>,
    ctx: &Context,
    apply: A,
    cleanup: C,
) -> Result<Action, ReconcileError>
where
    K: Reconciled,
    A: FnOnce(Arc<K>) -> FA,
    FA: Future<Output = Result<Action, ReconcileError>>,
    C: FnOnce(Arc<K>) -> FC,
    FC: Future<Output = Result<Action, ReconcileError>>,
{
    let started = Instant::now();
    let key = super::failure_key(object.as_ref());
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let result = match K::FINALIZER {
        Some(name) => finalizer(&api, name, object.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(cached) => apply(latest(&api, cached).await?).await,
                FinalizerEvent::Cleanup(cached) => cleanup(cached).await,
            }
        })
        .await
        .map_err(ReconcileError::from),
        None if object.meta().deletion_timestamp.is_some() => Ok(Action::await_change()),
        None => match latest(&api, object.clone()).await {
            Ok(latest) => apply(latest).await,
            Err(err) => Err(err),
        },
    };
    if let Err(err) = &result {
        super::report_persistent_failure(ctx, object.as_ref(), err).await;
    }
    super::finish(ctx, K::CONTROLLER, &key, started, result)
}

/// The object as the API server holds it now, when the cache is behind: another resource's
/// event can wake a reconcile before the cache holds the status the previous pass wrote, and
/// acting on the older status would redo what that status records as done.
async fn latest<K: Reconciled>(api: &Api<K>, cached: Arc<K>) -> Result<Arc<K>, ReconcileError> {
    let name = cached.name_any();
    let current = api.get_opt(&name).await?;
    Ok(
        match current.filter(|c| c.meta().resource_version != cached.meta().resource_version) {
            Some(newer) => Arc::new(newer),
            None => cached,
        },
    )
}
