//! devkube: an in-process stand-in for the Kubernetes API server, for development and tests
//! only — never a production mode.
//!
//! A real kube-apiserver takes a Go build and an etcd; the playground and the fast tests need
//! controllers, watches, finalizers, events, status patches and leader election exercised end to
//! end in-process and in a second, by tests and by a newcomer with `kubectl`. devkube is a
//! stateful HTTP server speaking enough of the Kubernetes API for that (the e2e suite checks the
//! same behaviour against kube-apiserver):
//!
//! - discovery (`/api`, `/apis`, group versions, resource lists with verbs and short names,
//!   `/version`, an `/openapi/v3` with the custom resources' schemas and just enough else for
//!   kubectl's server-side field validation and `kubectl explain`);
//! - namespaces, Secrets, ConfigMaps, Events (core v1 and `events.k8s.io/v1`, one store seen
//!   through both APIs), Leases, CustomResourceDefinitions, and the custom resources of every CRD
//!   registered, at start or through the API;
//! - get, list (with `limit`/`continue`), create, replace, delete, delete-collection; merge,
//!   JSON, strategic-merge (as merge) and server-side-apply patches with field managers;
//! - the status subresource split, `generation` bumps on spec changes only, no-op writes that
//!   change nothing, optimistic concurrency, finalizers and `deletionTimestamp`, owner-reference
//!   garbage collection, namespace termination;
//! - label and field selectors; watches resumed from a resourceVersion, bookmarks, `410 Gone`
//!   for compacted history, `sendInitialEvents`;
//! - custom-resource admission through [`crate::admission`] (schema, CEL, defaults, pruning)
//!   with the API server's `Status` errors, and `Table` output for `kubectl get` columns.
//!
//! Use it in-process with [`DevKube::client`] (a `kube::Client` over a tower service, no socket)
//! or over TCP with [`DevKube::serve`], which binds 127.0.0.1 and writes a kubeconfig for
//! `kubectl` and the operator binary. There is no authentication or authorisation: every request
//! is allowed, which is one reason it must never face anything but the local machine.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use devkube::DevKube;
//!
//! let devkube = DevKube::new(); // built-in resources; `with_crds` registers CRDs too
//! let client = devkube.client(); // in-process kube::Client, namespace "default"
//! let server = devkube.serve(([127, 0, 0, 1], 0).into()).await?; // same state over TCP
//! server.write_kubeconfig(std::path::Path::new("devkube.kubeconfig"))?;
//! # drop((client, server));
//! # Ok(())
//! # }
//! ```
//!
//! Tests can also simulate what a real cluster does to clients: [`DevKube::drop_watches`] (a
//! dropped connection), [`DevKube::compact`] (etcd compaction, so resuming watches get 410 Gone),
//! [`DevKube::hold_watches`] (a client between two watches), and read [`DevKube::requests`].
//!
//! Left out on purpose, because nothing here needs it: protobuf (except the bodies of
//! `kubectl create namespace|secret|configmap`, see [`protobuf`]); authentication, RBAC and
//! admission webhooks; CRD conversion between versions (every served version stores the same
//! JSON); workloads (pods, deployments, services); strategic-merge list merge keys and
//! server-side-apply list ownership (lists are replaced and owned as a whole); foreground
//! deletion (collected like background deletion); label-value validation; `resourceVersion`
//! semantics on lists (a list is always the latest state).

pub mod admission;
mod api;
pub mod error;
pub mod events;
pub mod manifests;
pub mod patch;
pub mod protobuf;
pub mod select;
pub mod store;
pub mod table;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use tokio::sync::{oneshot, watch};

pub use error::ApiError;
use store::Store;

/// How a devkube instance behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Changes kept for watches to resume from; older resourceVersions get 410 Gone.
    pub history_limit: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// CRDs registered at start, as if created through the API before anything else.
    pub crds: Vec<CustomResourceDefinition>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(10),
            crds: Vec::new(),
        }
    }
}

pub(crate) struct Inner {
    store: Store,
    kill: watch::Sender<u64>,
    hold: watch::Sender<bool>,
    open_watches: AtomicUsize,
    bookmark_interval: Duration,
}

/// One stand-in API server. Clones share the same state.
#[derive(Clone)]
pub struct DevKube {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DevKube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKube").finish_non_exhaustive()
    }
}

impl Default for DevKube {
    fn default() -> Self {
        Self::new()
    }
}

impl DevKube {
    /// A server with the built-in resources only.
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    /// A server with the built-in resources and these CRDs.
    pub fn with_crds(crds: Vec<CustomResourceDefinition>) -> Self {
        Self::with_options(Options {
            crds,
            ..Options::default()
        })
    }

    /// A server with the given options.
    pub fn with_options(options: Options) -> Self {
        let (kill, _) = watch::channel(0);
        let (hold, _) = watch::channel(false);
        let devkube = Self {
            inner: Arc::new(Inner {
                store: Store::new(options.history_limit),
                kill,
                hold,
                open_watches: AtomicUsize::new(0),
                bookmark_interval: options.bookmark_interval,
            }),
        };
        for crd in &options.crds {
            if let Err(err) = devkube.add_crd(crd) {
                panic!("CRD {:?} is refused: {err:?}", crd.metadata.name);
            }
        }
        devkube
    }

    /// Registers a CRD, as creating it through the API would.
    pub fn add_crd(&self, crd: &CustomResourceDefinition) -> Result<(), ApiError> {
        self.inner.store.add_crd(crd)
    }

    /// Registers every CRD in the YAML files (one or more documents each) of a directory.
    pub fn load_crds(&self, dir: &Path) -> io::Result<usize> {
        let mut count = 0;
        let mut paths: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)?;
            let docs: Vec<CustomResourceDefinition> =
                serde_saphyr::from_multiple(&text).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?;
            for crd in docs {
                self.add_crd(&crd)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message))?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Applies one object as `kubectl apply --server-side --force-conflicts` would, with field
    /// manager `devkube`: created when missing, otherwise its applied fields are updated. Namespaced
    /// objects without a namespace go to `default`.
    pub fn apply(&self, object: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        let field = |k: &str| {
            object
                .get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        let rt = self
            .inner
            .store
            .types()
            .into_iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no matches for kind \"{kind}\" in version \"{api_version}\""
                ))
            })?;
        let name = object
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let namespace = if rt.namespaced {
            object
                .pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let ctx = store::WriteCtx {
            manager: "devkube".into(),
            apply: true,
            ..store::WriteCtx::default()
        };
        let (group, plural) = (rt.group.clone(), rt.plural.clone());
        self.inner
            .store
            .apply(&rt, &namespace, &name, &ctx, |current| {
                patch::apply(
                    current,
                    object,
                    "devkube",
                    true,
                    "",
                    &rt.api_version(),
                    &store::now(),
                )
                .map_err(|conflicts| ApiError::apply_conflicts(&group, &plural, &name, &conflicts))
            })
    }

    /// Applies every document of the manifest files in a folder (as `kubectl apply -f DIR`),
    /// in file-name order; stops at the first object refused.
    pub fn apply_dir(&self, dir: &Path) -> Result<Vec<serde_json::Value>, ApiError> {
        let documents =
            crate::manifests::read_dir(dir).map_err(|e| ApiError::bad_request(e.to_string()))?;
        documents.iter().map(|d| self.apply(d)).collect()
    }

    /// The HTTP service, for embedding.
    pub fn router(&self) -> axum::Router {
        api::router(self.inner.clone())
    }

    /// A client talking to this server in-process, with `default` as its namespace. Needs a
    /// Tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// Ends every open watch, as a dropped connection would; clients resume from their last
    /// resourceVersion.
    pub fn drop_watches(&self) {
        self.inner.kill.send_modify(|n| *n += 1);
    }

    /// While `true`, new watch requests wait before they start (lists and writes go on), so a
    /// test can make changes, or compact, while a client is between two watches.
    pub fn hold_watches(&self, hold: bool) {
        self.inner.hold.send_replace(hold);
    }

    /// Forgets the change history, as etcd compaction does: watches resuming from any earlier
    /// resourceVersion get 410 Gone and must list again.
    pub fn compact(&self) {
        self.inner.store.compact();
    }

    /// Watches being served now; a watch ends when its client goes away, its timeout passes or
    /// [`DevKube::drop_watches`] is called.
    pub fn open_watches(&self) -> usize {
        self.inner.open_watches.load(Ordering::SeqCst)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.resource_version()
    }

    /// The latest requests answered (up to 50,000), as `METHOD path?query -> status`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.store.requests()
    }

    /// How many requests were answered in all (the log above keeps the latest only).
    pub fn requests_answered(&self) -> u64 {
        self.inner.store.requests_answered()
    }

    /// Serves over HTTP on `addr` (use `127.0.0.1:0` for a free port) until the returned
    /// [`Server`] is dropped.
    pub async fn serve(&self, addr: SocketAddr) -> io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Server {
            addr,
            devkube: self.clone(),
            stop: Some(stop),
            task,
        })
    }
}

/// A devkube instance served over TCP; dropping it stops the server and ends its watches.
pub struct Server {
    addr: SocketAddr,
    devkube: DevKube,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig document pointing at this server, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(&self.url(), "default")
    }

    /// Writes [`Server::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// A `kube::Client` for this server over TCP.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        let url = self.url().parse().expect("a valid URL");
        let mut config = kube::Config::new(url);
        config.default_namespace = "default".into();
        kube::Client::try_from(config)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        self.stop_now();
        let _ = (&mut self.task).await;
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            // Open watches would keep the graceful shutdown waiting for ever.
            self.devkube.drop_watches();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A kubeconfig for a devkube server: plain HTTP to the loopback address, a placeholder token
/// (devkube checks none; kubectl and kube-rs are content with it).
pub fn kubeconfig(server: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: devkube
  cluster:
    server: {server}
users:
- name: devkube
  user:
    token: devkube
contexts:
- name: devkube
  context:
    cluster: devkube
    user: devkube
    namespace: {namespace}
current-context: devkube
preferences: {{}}
"
    )
}
