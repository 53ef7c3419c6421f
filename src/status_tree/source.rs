//! Where the status tree's data comes from: list calls on the three kinds (or watches with
//! `--watch`), and the loop that prints a frame each time something changed.
//!
//! With `--watch` the three watches feed reflector stores; a burst of changes (one reconcile
//! writes several statuses) is drawn once, after it settles. A terminal gets each frame in place
//! of the last (clear-screen escape), and its ages refresh every few seconds; a pipe or file
//! gets successive frames separated by a blank line, and only frames that differ.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

use super::model::{self, Snapshot};
use super::render::{self, RenderOptions};
use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};
use crate::runtime::{self, RuntimeError};

/// Which namespaces to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// The kubeconfig context's namespace (`default` when it names none).
    ContextNamespace,
    /// Every namespace.
    All,
}

/// What `status` was asked for.
#[derive(Clone, Debug)]
pub struct StatusOptions {
    /// Kubeconfig file; `KUBECONFIG` or `~/.kube/config` (or in-cluster) when absent.
    pub kubeconfig: Option<PathBuf>,
    /// Which namespaces.
    pub scope: Scope,
    /// Keep drawing as things change, until Ctrl-C.
    pub watch: bool,
}

/// Why the status could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No Kubernetes client.
    #[error(transparent)]
    Config(#[from] RuntimeError),
    /// A list call failed.
    #[error("cannot list {kind}: {}", describe(.source))]
    List {
        /// The plural kind.
        kind: &'static str,
        /// What the API said.
        source: kube::Error,
    },
    /// stdout could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// A list error in the user's terms: a missing CRD or a missing permission says so.
fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => format!(
            "the API server does not know the resource ({}); are the pingone-aic.io CRDs installed?",
            status.message
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "permission denied ({}); listing needs get/list (and watch, for --watch) on the pingone-aic.io resources",
            status.message
        ),
        other => other.to_string(),
    }
}

/// How long the watch waits for a burst of changes to settle before it draws.
const SETTLE: Duration = Duration::from_millis(250);

/// How long the watch sleeps when nothing is due; any change wakes it sooner.
const IDLE: Duration = Duration::from_secs(3600);

/// How often a terminal's frame is drawn again, so that its ages stay true.
const REFRESH: Duration = Duration::from_secs(5);

/// Shows the status tree once, or until Ctrl-C with `watch`.
pub async fn run(options: StatusOptions) -> Result<(), StatusError> {
    let client = runtime::kube_client(options.kubeconfig.as_ref()).await?;
    let namespace = match &options.scope {
        Scope::Namespace(namespace) => Some(namespace.clone()),
        Scope::ContextNamespace => Some(client.default_namespace().to_owned()),
        Scope::All => None,
    };
    let view = View {
        namespace,
        terminal: std::io::stdout().is_terminal(),
    };
    // One listing first, also with --watch: a missing CRD or permission is then one clear
    // error rather than a watch retrying for ever.
    let snapshot = list(&client, view.namespace.as_deref()).await?;
    let shown = if options.watch {
        watch(client, view).await
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(view.frame(&snapshot).as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(StatusError::from)
    };
    match shown {
        // The reader went away (`| head`): nothing left to show, as with kubectl.
        Err(StatusError::Output(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Where the output goes and what it covers.
struct View {
    namespace: Option<String>,
    terminal: bool,
}

impl View {
    fn frame(&self, snapshot: &Snapshot) -> String {
        let tree = model::build(snapshot);
        if tree.namespaces.is_empty() {
            return render::empty_message(self.namespace.as_deref());
        }
        let options = RenderOptions {
            show_namespaces: self.namespace.is_none(),
        };
        render::render(&tree, jiff::Timestamp::now(), options)
    }

    fn api<K>(&self, client: &kube::Client) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(client.clone(), namespace),
            None => Api::all(client.clone()),
        }
    }
}

/// The three kinds, listed.
pub async fn list(client: &kube::Client, namespace: Option<&str>) -> Result<Snapshot, StatusError> {
    let view = View {
        namespace: namespace.map(str::to_owned),
        terminal: false,
    };
    let params = ListParams::default();
    let (tenants, integrations, promotions) = (
        view.api::<TenantEnvironment>(client),
        view.api::<PingOneIntegration>(client),
        view.api::<Promotion>(client),
    );
    let (tenants, integrations, promotions) = tokio::join!(
        tenants.list(&params),
        integrations.list(&params),
        promotions.list(&params)
    );
    let failed = |kind| move |source| StatusError::List { kind, source };
    Ok(Snapshot {
        tenants: tenants.map_err(failed("tenantenvironments"))?.items,
        integrations: integrations.map_err(failed("pingoneintegrations"))?.items,
        promotions: promotions.map_err(failed("promotions"))?.items,
    })
}

/// What one of the three watches reported.
enum Change {
    /// Its first listing is complete.
    Listed(&'static str),
    /// Something changed after that.
    Changed,
    /// The watch failed; it retries with a backoff.
    Failed(&'static str, watcher::Error),
}

fn changes<K>(
    kind: &'static str,
    api: Api<K>,
) -> (reflector::Store<K>, impl Stream<Item = Change> + Send)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default()).default_backoff(),
    )
    .map(move |event| match event {
        Ok(watcher::Event::InitDone) => Change::Listed(kind),
        Ok(_) => Change::Changed,
        Err(error) => Change::Failed(kind, error),
    });
    (store, stream)
}

async fn watch(client: kube::Client, view: View) -> Result<(), StatusError> {
    let (tenants, tenant_changes) =
        changes("tenantenvironments", view.api::<TenantEnvironment>(&client));
    let (integrations, integration_changes) = changes(
        "pingoneintegrations",
        view.api::<PingOneIntegration>(&client),
    );
    let (promotions, promotion_changes) = changes("promotions", view.api::<Promotion>(&client));
    let mut events = futures::stream::select_all([
        tenant_changes.boxed(),
        integration_changes.boxed(),
        promotion_changes.boxed(),
    ]);
    let snapshot = || Snapshot {
        tenants: tenants.state().iter().map(|t| (**t).clone()).collect(),
        integrations: integrations.state().iter().map(|i| (**i).clone()).collect(),
        promotions: promotions.state().iter().map(|p| (**p).clone()).collect(),
    };
    let mut listed: Vec<&'static str> = Vec::new();
    let mut last_frame: Option<String> = None;
    // When the next frame is due: SETTLE after the first change of a burst (not reset by the
    // burst's later changes, so a busy group still gets drawn), or the terminal's refresh.
    let mut due: Option<tokio::time::Instant> = None;
    let shutdown = runtime::termination_signal();
    tokio::pin!(shutdown);
    loop {
        let wake = due.unwrap_or_else(|| tokio::time::Instant::now() + IDLE);
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = events.next() => {
                match event {
                    Some(Change::Listed(kind)) if !listed.contains(&kind) => listed.push(kind),
                    Some(Change::Listed(_) | Change::Changed) => {}
                    Some(Change::Failed(kind, error)) => {
                        eprintln!("watching {kind}: {error}; retrying");
                        continue;
                    }
                    None => return Ok(()),
                }
                let settle = tokio::time::Instant::now() + SETTLE;
                due = Some(due.map_or(settle, |d| d.min(settle)));
            },
            () = tokio::time::sleep_until(wake) => {
                due = None;
                // Draw only once every kind has been listed: a partial first frame would show
                // integrations without their environments.
                if listed.len() == 3 {
                    let frame = view.frame(&snapshot());
                    if last_frame.as_ref() != Some(&frame) {
                        draw(&view, &frame, last_frame.is_none())?;
                        last_frame = Some(frame);
                    }
                    if view.terminal {
                        due = Some(tokio::time::Instant::now() + REFRESH);
                    }
                }
            }
        }
    }
}

fn draw(view: &View, frame: &str, first: bool) -> Result<(), StatusError> {
    let mut stdout = std::io::stdout().lock();
    if view.terminal {
        // Cursor home and clear screen: the new frame replaces the old.
        stdout.write_all(b"\x1b[H\x1b[2J")?;
    } else if !first {
        stdout.write_all(b"\n")?;
    }
    stdout.write_all(frame.as_bytes())?;
    Ok(stdout.flush()?)
}
