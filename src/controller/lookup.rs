//! Lookups in the controllers' caches that stay cheap with thousands of objects: by name
//! through the store's index, and scans that test each object in place (no copy of the whole
//! cache, no allocation per object) and copy out only what they return.

use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// The object `name` of `namespace` in `store`.
pub(crate) fn named<K>(store: &Store<K>, namespace: Option<&str>, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let reference = ObjectRef::new(name);
    store.get(&match namespace {
        Some(namespace) => reference.within(namespace),
        None => reference,
    })
}

/// Whether `object` is in `namespace`, without copying either name.
pub(crate) fn in_namespace<K: Resource>(object: &K, namespace: Option<&str>) -> bool {
    object.meta().namespace.as_deref() == namespace
}

/// Whether `object` is named `name`.
pub(crate) fn is_named<K: Resource>(object: &K, name: &str) -> bool {
    object.meta().name.as_deref() == Some(name)
}
