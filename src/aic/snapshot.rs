//! One read of a tenant's ESVs serves every reconcile that looks at them for a while: the
//! variables and secrets are listed whole (the v1 list answers every item, values included, in
//! one page) and what is pending a restart is derived from the same lists, so a resync of a
//! tenant costs two ESV reads however many ESVs and integrations it has.
//!
//! Freshness: a snapshot is used only while it is younger than the age the caller accepts, and
//! every write this process makes to the tenant (and the end of a restart, which flips the
//! `loaded` flags) forgets it. A read that started before such a write is not kept, so a
//! snapshot never hides the operator's own changes; changes made outside the operator show
//! within the accepted age.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde::Deserialize;

use super::esv::{
    EsvCount, Secret, SecretCreate, SecretVersion, Variable, VariableWrite, VersionStatus,
};
use super::{AicClient, AicError, ApiFamily, Call, EsvApi, api_version};
use crate::secret::SecretString;

/// What was last read of one tenant.
#[derive(Debug, Default)]
pub(crate) struct TenantSnapshot {
    /// Bumped by every write; a read stored only if it is unchanged since the read began.
    epoch: u64,
    variables: Option<(Instant, Arc<Vec<Variable>>)>,
    secrets: Option<(Instant, Arc<Vec<Secret>>)>,
    /// `GET /environment/count?_onlyPending=true`, for tenants nothing lists.
    pending: Option<(Instant, EsvCount)>,
    /// Secrets seen with `useInPlaceholders: false` (immutable once created): their versions
    /// are read through secret mappings, and no restart waits for them.
    mapping_only: HashSet<String>,
    /// The write epoch when this process last requested a restart of the tenant.
    restart_epoch: Option<u64>,
    /// Held while a list is read, so reconciles that want it at the same moment share one read.
    reading: Arc<tokio::sync::Mutex<()>>,
}

/// The snapshots of every tenant the process talks to, keyed by tenant origin; cheap to clone.
/// `Debug` names the tenants only: variable values stay out of logs.
#[derive(Clone, Default)]
pub struct EsvSnapshots {
    tenants: Arc<Mutex<HashMap<String, TenantSnapshot>>>,
}

impl std::fmt::Debug for EsvSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("EsvSnapshots")
            .field("tenants", &tenants.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An ESV kind that is listed whole into a snapshot.
pub(crate) trait Listed: serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The list endpoint.
    const PATH: &'static str;
    /// Where a tenant's snapshot keeps the list.
    fn slot(tenant: &mut TenantSnapshot) -> &mut Option<(Instant, Arc<Vec<Self>>)>;
    /// Keeps what never changes of the items listed.
    fn learn(_tenant: &mut TenantSnapshot, _list: &[Self]) {}
}

impl Listed for Variable {
    const PATH: &'static str = "/environment/variables";
    fn slot(tenant: &mut TenantSnapshot) -> &mut Option<(Instant, Arc<Vec<Self>>)> {
        &mut tenant.variables
    }
}

impl Listed for Secret {
    const PATH: &'static str = "/environment/secrets";
    fn slot(tenant: &mut TenantSnapshot) -> &mut Option<(Instant, Arc<Vec<Self>>)> {
        &mut tenant.secrets
    }
    fn learn(tenant: &mut TenantSnapshot, list: &[Self]) {
        // What the list says replaces what was known: a secret deleted and created again
        // outside the operator may have changed.
        tenant.mapping_only = list
            .iter()
            .filter(|s| !s.use_in_placeholders)
            .map(|s| s.id.clone())
            .collect();
    }
}

/// The v1 list envelope (only `result` matters: v1 answers everything in one page).
#[derive(Deserialize)]
pub(crate) struct ListEnvelope<T> {
    pub result: Vec<T>,
}

impl EsvSnapshots {
    fn with<R>(&self, tenant: &str, f: impl FnOnce(&mut TenantSnapshot) -> R) -> R {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        f(tenants.entry(tenant.to_owned()).or_default())
    }

    /// Forgets what was read of `tenant`: its ESVs changed, or may have (a secret deleted and
    /// created again may be usable in placeholders now).
    pub fn forget(&self, tenant: &str) {
        self.with(tenant, |t| {
            t.epoch += 1;
            t.variables = None;
            t.secrets = None;
            t.pending = None;
            t.mapping_only.clear();
        });
    }

    /// Whether secret `id` of `tenant` is known not to be usable in placeholders.
    pub(crate) fn is_mapping_only(&self, tenant: &str, id: &str) -> bool {
        self.with(tenant, |t| t.mapping_only.contains(id))
    }

    /// Records a write to the versions of a secret only mappings use: the secrets list is
    /// stale, but the variables are not, and what waits for a restart is what it was (kept as
    /// counted from the lists, with their age, unless a newer count is held).
    pub(crate) fn secret_versions_written(&self, tenant: &str) {
        self.with(tenant, |t| {
            if let (Some((variables_at, variables)), Some((secrets_at, secrets))) =
                (&t.variables, &t.secrets)
            {
                let at = (*variables_at).min(*secrets_at);
                if t.pending.as_ref().is_none_or(|(counted, _)| *counted < at) {
                    t.pending = Some((
                        at,
                        EsvCount {
                            variables: variables.iter().filter(|v| !v.loaded).count() as u64,
                            secrets: secrets.iter().filter(|s| s.is_pending()).count() as u64,
                        },
                    ));
                }
            }
            // Reads under way may hold the secret as it was: none of them is kept.
            t.epoch += 1;
            t.secrets = None;
        });
    }

    /// Notes a write whose answer its caller applies next ([`Self::variable_written`],
    /// [`Self::secret_created`]): no read under way is kept, and what was counted pending no
    /// longer holds unless both lists say it again.
    pub(crate) fn written_through(&self, tenant: &str) {
        self.with(tenant, |t| {
            t.epoch += 1;
            t.pending = None;
        });
    }

    /// Applies a variable as a PUT answered it to the variables list held (AIC answers the
    /// item as its list shows it, value included). An answer without the value cannot stand
    /// for the item: the list is dropped then.
    pub(crate) fn variable_written(&self, tenant: &str, written: &Variable) {
        self.with(tenant, |t| {
            if written.value_base64.is_none() {
                t.variables = None;
                return;
            }
            if let Some((_, list)) = &mut t.variables {
                replace_item(Arc::make_mut(list), written.clone(), |v| v.id == written.id);
            }
        });
    }

    /// Applies a secret as its creation answered it to the secrets list held.
    pub(crate) fn secret_created(&self, tenant: &str, created: &Secret) {
        self.with(tenant, |t| {
            if let Some((_, list)) = &mut t.secrets {
                replace_item(Arc::make_mut(list), created.clone(), |s| s.id == created.id);
            }
            if !created.use_in_placeholders {
                t.mapping_only.insert(created.id.clone());
            }
        });
    }

    /// Notes that this process requests a restart of `tenant` now.
    pub(crate) fn restart_requested(&self, tenant: &str) {
        self.with(tenant, |t| t.restart_epoch = Some(t.epoch));
    }

    /// Records a finished restart: it loaded everything that was pending, so the lists held
    /// (their age unchanged) now say every ESV is loaded and nothing is pending. That holds
    /// only when this process requested the restart and wrote no ESV since; otherwise what
    /// was read is forgotten.
    pub fn restarted(&self, tenant: &str) {
        self.with(tenant, |t| {
            if t.restart_epoch.take() != Some(t.epoch) {
                t.epoch += 1;
                t.variables = None;
                t.secrets = None;
                t.pending = None;
                return;
            }
            if let Some((at, variables)) = &t.variables {
                let loaded = variables
                    .iter()
                    .map(|v| Variable {
                        loaded: true,
                        ..v.clone()
                    })
                    .collect();
                t.variables = Some((*at, Arc::new(loaded)));
            }
            if let Some((at, secrets)) = &t.secrets {
                let loaded = secrets
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        if s.use_in_placeholders {
                            s.loaded_version = s.active_version.clone();
                            s.loaded = true;
                        }
                        s
                    })
                    .collect();
                t.secrets = Some((*at, Arc::new(loaded)));
            }
            t.pending = Some((Instant::now(), EsvCount::default()));
        });
    }

    /// Whether `tenant`'s lists were forgotten because of a write (rather than never read or
    /// grown old): whoever wrote has just seen them, so what is pending is better counted.
    pub(crate) fn written_since_read(&self, tenant: &str) -> bool {
        self.with(tenant, |t| {
            t.epoch > 0 && t.variables.is_none() && t.secrets.is_none()
        })
    }

    /// The lock readers of `tenant`'s lists take, so concurrent readers make one call.
    pub(crate) fn read_lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.with(tenant, |t| t.reading.clone())
    }

    /// The write epoch of `tenant`, taken before a read that may be stored.
    pub(crate) fn epoch(&self, tenant: &str) -> u64 {
        self.with(tenant, |t| t.epoch)
    }

    /// The list of `T` read less than `max_age` ago.
    pub(crate) fn list<T: Listed>(&self, tenant: &str, max_age: Duration) -> Option<Arc<Vec<T>>> {
        self.with(tenant, |t| fresh(T::slot(t), max_age))
    }

    /// Keeps a list of `T` read at write `epoch`, unless a write came since.
    pub(crate) fn store<T: Listed>(&self, tenant: &str, epoch: u64, list: Arc<Vec<T>>) {
        self.with(tenant, |t| {
            T::learn(t, &list);
            if t.epoch == epoch {
                *T::slot(t) = Some((Instant::now(), list));
            }
        });
    }

    pub(crate) fn store_pending(&self, tenant: &str, epoch: u64, count: EsvCount) {
        self.with(tenant, |t| {
            if t.epoch == epoch {
                t.pending = Some((Instant::now(), count));
            }
        });
    }

    /// What waits for a restart, from reads younger than `max_age`: the pending count, or the
    /// two lists (every variable `loaded`, every placeholder secret's active version loaded
    /// means nothing is pending).
    pub fn pending(&self, tenant: &str, max_age: Duration) -> Option<EsvCount> {
        self.with(tenant, |t| {
            if let (Some(variables), Some(secrets)) =
                (fresh(&t.variables, max_age), fresh(&t.secrets, max_age))
            {
                return Some(EsvCount {
                    variables: variables.iter().filter(|v| !v.loaded).count() as u64,
                    secrets: secrets.iter().filter(|s| s.is_pending()).count() as u64,
                });
            }
            t.pending
                .as_ref()
                .filter(|(at, _)| at.elapsed() < max_age)
                .map(|(_, count)| *count)
        })
    }
}

/// Puts `item` in place of the one `same` finds in `list`, or at its end.
fn replace_item<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
    match list.iter_mut().find(|existing| same(existing)) {
        Some(existing) => *existing = item,
        None => list.push(item),
    }
}

impl AicClient {
    /// Every variable of the tenant (one v1 list call, values included), from a snapshot younger
    /// than `max_age` when there is one.
    pub async fn variables_snapshot(
        &self,
        max_age: Duration,
    ) -> Result<Arc<Vec<Variable>>, AicError> {
        self.list_snapshot(max_age).await
    }

    /// Every secret of the tenant (metadata, one v1 list call), from a snapshot younger than
    /// `max_age` when there is one.
    pub async fn secrets_snapshot(&self, max_age: Duration) -> Result<Arc<Vec<Secret>>, AicError> {
        self.list_snapshot(max_age).await
    }

    async fn list_snapshot<T: Listed>(&self, max_age: Duration) -> Result<Arc<Vec<T>>, AicError> {
        let tenant = self.origin().as_str();
        if let Some(list) = self.snapshots.list(tenant, max_age) {
            return Ok(list);
        }
        // Whoever waited here while another reconcile read the list finds it fresh.
        let lock = self.snapshots.read_lock(tenant);
        let _reading = lock.lock().await;
        if let Some(list) = self.snapshots.list(tenant, max_age) {
            return Ok(list);
        }
        let epoch = self.snapshots.epoch(tenant);
        let call = Call::new(
            Method::GET,
            ApiFamily::Esv,
            api_version::ESV,
            T::PATH.into(),
        );
        let list = Arc::new(self.json::<ListEnvelope<T>>(call).await?.result);
        self.snapshots.store(tenant, epoch, list.clone());
        Ok(list)
    }

    /// What waits for a restart: from the snapshots when they are younger than `max_age`;
    /// otherwise from the two lists when `list` (others will want them: integrations read the
    /// same lists) unless they were just forgotten by a write (its writer has seen them);
    /// otherwise one `GET /environment/count?_onlyPending=true`.
    pub async fn pending_within(
        &self,
        max_age: Duration,
        list: bool,
    ) -> Result<EsvCount, AicError> {
        let tenant = self.origin().as_str();
        if let Some(count) = self.snapshots.pending(tenant, max_age) {
            return Ok(count);
        }
        if list && !self.snapshots.written_since_read(tenant) {
            let variables = self.variables_snapshot(max_age).await?;
            let secrets = self.secrets_snapshot(max_age).await?;
            return Ok(EsvCount {
                variables: variables.iter().filter(|v| !v.loaded).count() as u64,
                secrets: secrets.iter().filter(|s| s.is_pending()).count() as u64,
            });
        }
        let epoch = self.snapshots.epoch(tenant);
        let count = self.esv_pending_count().await?;
        self.snapshots.store_pending(tenant, epoch, count);
        Ok(count)
    }

    /// This client with single ESV reads answered from snapshots younger than `max_age`.
    pub fn snapshot_view(&self, max_age: Duration) -> SnapshotView<'_> {
        SnapshotView {
            client: self,
            max_age,
            variables: tokio::sync::OnceCell::new(),
            secrets: tokio::sync::OnceCell::new(),
        }
    }
}

/// An [`EsvApi`] whose `get_variable` and `get_secret` look into the tenant's snapshots, so the
/// ESV procedures ([`super::esv::upsert_variable`], [`super::esv::push_secret`]) cost no read
/// per ESV; everything else goes to the client, whose writes forget the shared snapshots.
///
/// A view is meant for one pass over a set of distinct ESVs: it keeps the lists it read, so
/// writing one ESV does not make it list again for the next. Reading an ESV again after
/// writing it through the same view answers what it was before the write.
pub struct SnapshotView<'a> {
    client: &'a AicClient,
    max_age: Duration,
    variables: tokio::sync::OnceCell<Arc<Vec<Variable>>>,
    secrets: tokio::sync::OnceCell<Arc<Vec<Secret>>>,
}

impl std::fmt::Debug for SnapshotView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("client", self.client)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl SnapshotView<'_> {
    /// Reads both lists now, before this pass writes anything: a write forgets the shared
    /// snapshots, and a list read after it would be a second read of the same state.
    pub async fn prefetch(&self) -> Result<(), AicError> {
        self.variables
            .get_or_try_init(|| self.client.variables_snapshot(self.max_age))
            .await?;
        self.secrets
            .get_or_try_init(|| self.client.secrets_snapshot(self.max_age))
            .await?;
        Ok(())
    }
}

impl EsvApi for SnapshotView<'_> {
    async fn get_variable(&self, id: &str) -> Result<Option<Variable>, AicError> {
        let list = self
            .variables
            .get_or_try_init(|| self.client.variables_snapshot(self.max_age))
            .await?;
        Ok(list.iter().find(|v| v.id == id).cloned())
    }
    async fn put_variable(&self, id: &str, write: &VariableWrite) -> Result<Variable, AicError> {
        self.client.put_variable(id, write).await
    }
    async fn set_variable_description(&self, id: &str, description: &str) -> Result<(), AicError> {
        self.client.set_variable_description(id, description).await
    }
    async fn delete_variable(&self, id: &str) -> Result<bool, AicError> {
        self.client.delete_variable(id).await
    }
    async fn get_secret(&self, id: &str) -> Result<Option<Secret>, AicError> {
        let list = self
            .secrets
            .get_or_try_init(|| self.client.secrets_snapshot(self.max_age))
            .await?;
        Ok(list.iter().find(|s| s.id == id).cloned())
    }
    async fn create_secret(&self, id: &str, create: &SecretCreate) -> Result<Secret, AicError> {
        self.client.create_secret(id, create).await
    }
    async fn create_secret_version(
        &self,
        id: &str,
        value_base64: &SecretString,
    ) -> Result<SecretVersion, AicError> {
        self.client.create_secret_version(id, value_base64).await
    }
    async fn list_secret_versions(&self, id: &str) -> Result<Vec<SecretVersion>, AicError> {
        self.client.list_secret_versions(id).await
    }
    async fn set_secret_version_status(
        &self,
        id: &str,
        version: &str,
        status: VersionStatus,
    ) -> Result<SecretVersion, AicError> {
        self.client
            .set_secret_version_status(id, version, status)
            .await
    }
    async fn destroy_secret_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<SecretVersion, AicError> {
        self.client.destroy_secret_version(id, version).await
    }
    async fn delete_secret(&self, id: &str) -> Result<bool, AicError> {
        self.client.delete_secret(id).await
    }
}

fn fresh<T>(entry: &Option<(Instant, Arc<T>)>, max_age: Duration) -> Option<Arc<T>> {
    entry
        .as_ref()
        .filter(|(at, _)| at.elapsed() < max_age)
        .map(|(_, list)| list.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(id: &str, loaded: bool) -> Variable {
        Variable {
            id: id.to_owned(),
            description: String::new(),
            expression_type: "string".to_owned(),
            value_base64: None,
            loaded,
            last_change_date: None,
            last_changed_by: None,
        }
    }

    fn secret(id: &str, active: &str, loaded: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "_id": id, "activeVersion": active, "loadedVersion": loaded, "useInPlaceholders": true
        }))
        .expect("a secret")
    }

    #[test]
    fn writes_answered_with_the_item_are_applied_to_the_lists_held() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let epoch = snapshots.epoch(tenant);
        let with_value = |id: &str, value: &str, loaded: bool| Variable {
            value_base64: Some(value.to_owned()),
            ..variable(id, loaded)
        };
        snapshots.store(
            tenant,
            epoch,
            Arc::new(vec![with_value("esv-a", "YQ==", true)]),
        );
        snapshots.store(tenant, epoch, Arc::new(vec![secret("esv-s", "1", "1")]));
        assert_eq!(
            snapshots.pending(tenant, Duration::from_secs(60)),
            Some(EsvCount::default())
        );
        // A read that began before the write is not kept.
        let before = snapshots.epoch(tenant);
        snapshots.written_through(tenant);
        snapshots.variable_written(tenant, &with_value("esv-a", "Yg==", false));
        snapshots.written_through(tenant);
        snapshots.variable_written(tenant, &with_value("esv-b", "Yw==", false));
        let mut mapped = secret("esv-mapped", "1", "");
        mapped.use_in_placeholders = false;
        snapshots.written_through(tenant);
        snapshots.secret_created(tenant, &mapped);
        snapshots.store(tenant, before, Arc::new(vec![variable("esv-old", true)]));
        let variables = snapshots
            .list::<Variable>(tenant, Duration::from_secs(60))
            .expect("still held");
        let values: Vec<(&str, Option<&str>)> = variables
            .iter()
            .map(|v| (v.id.as_str(), v.value_base64.as_deref()))
            .collect();
        assert_eq!(values, [("esv-a", Some("Yg==")), ("esv-b", Some("Yw=="))]);
        // What is pending follows from the lists as written: both variables wait for a
        // restart; the mapping-only secret never does.
        assert_eq!(
            snapshots.pending(tenant, Duration::from_secs(60)),
            Some(EsvCount {
                secrets: 0,
                variables: 2
            })
        );
        assert!(snapshots.is_mapping_only(tenant, "esv-mapped"));
        // An answer without the value cannot stand for the item.
        snapshots.written_through(tenant);
        snapshots.variable_written(tenant, &variable("esv-c", false));
        assert!(
            snapshots
                .list::<Variable>(tenant, Duration::from_secs(60))
                .is_none()
        );
    }

    #[test]
    fn a_version_of_a_mapping_only_secret_keeps_what_is_pending_and_the_variables() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let epoch = snapshots.epoch(tenant);
        let mut mapped = secret("esv-mapped", "1", "1");
        mapped.use_in_placeholders = false;
        snapshots.store(
            tenant,
            epoch,
            Arc::new(vec![mapped, secret("esv-placeholder", "2", "1")]),
        );
        snapshots.store(tenant, epoch, Arc::new(vec![variable("esv-a", false)]));
        assert!(snapshots.is_mapping_only(tenant, "esv-mapped"));
        assert!(!snapshots.is_mapping_only(tenant, "esv-placeholder"));
        let before = snapshots.pending(tenant, Duration::from_secs(60));
        assert_eq!(
            before,
            Some(EsvCount {
                secrets: 1,
                variables: 1
            })
        );
        snapshots.secret_versions_written(tenant);
        // The secrets list is stale; the count it gave, and the variables, are not.
        assert!(
            snapshots
                .list::<Secret>(tenant, Duration::from_secs(60))
                .is_none()
        );
        assert!(
            snapshots
                .list::<Variable>(tenant, Duration::from_secs(60))
                .is_some()
        );
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), before);
        // Any other write forgets everything, what is known of the secrets' kinds included.
        snapshots.forget(tenant);
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), None);
        assert!(!snapshots.is_mapping_only(tenant, "esv-mapped"));
    }

    #[test]
    fn pending_is_derived_from_both_lists_and_forgotten_on_a_write() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let epoch = snapshots.epoch(tenant);
        snapshots.store(
            tenant,
            epoch,
            Arc::new(vec![variable("esv-a", true), variable("esv-b", false)]),
        );
        // One list is not enough to know what is pending.
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), None);
        snapshots.store(
            tenant,
            epoch,
            Arc::new(vec![secret("esv-s", "2", "1"), secret("esv-t", "1", "1")]),
        );
        assert_eq!(
            snapshots.pending(tenant, Duration::from_secs(60)),
            Some(EsvCount {
                secrets: 1,
                variables: 1
            })
        );
        assert_eq!(snapshots.pending(tenant, Duration::ZERO), None);
        assert!(!snapshots.written_since_read(tenant));
        snapshots.restart_requested(tenant);
        snapshots.restarted(tenant);
        assert_eq!(
            snapshots.pending(tenant, Duration::from_secs(60)),
            Some(EsvCount::default())
        );
        let secrets = snapshots
            .list::<Secret>(tenant, Duration::from_secs(60))
            .expect("kept");
        assert!(secrets.iter().all(|s| !s.is_pending()));
        snapshots.forget(tenant);
        assert!(snapshots.written_since_read(tenant));
        assert!(
            snapshots
                .list::<Variable>(tenant, Duration::from_secs(60))
                .is_none()
        );
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), None);
    }

    #[test]
    fn a_restart_marks_the_lists_loaded_only_without_writes_since_it_was_requested() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let epoch = snapshots.epoch(tenant);
        snapshots.store(tenant, epoch, Arc::new(vec![secret("esv-s", "2", "1")]));
        snapshots.store(tenant, epoch, Arc::new(vec![variable("esv-a", false)]));
        snapshots.restart_requested(tenant);
        snapshots.forget(tenant);
        snapshots.restarted(tenant);
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), None);
        // A restart this process did not request (or requested in an earlier life) is not
        // assumed to have loaded anything either.
        let epoch = snapshots.epoch(tenant);
        snapshots.store(tenant, epoch, Arc::new(vec![variable("esv-a", false)]));
        snapshots.restarted(tenant);
        assert!(
            snapshots
                .list::<Variable>(tenant, Duration::from_secs(60))
                .is_none()
        );
    }

    #[test]
    fn debug_output_holds_no_variable_value() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let mut value = variable("esv-a", true);
        value.value_base64 = Some("c2VjcmV0LWlzaC12YWx1ZQ==".to_owned());
        snapshots.store(tenant, snapshots.epoch(tenant), Arc::new(vec![value]));
        let debug = format!("{snapshots:?}");
        assert!(debug.contains("t.example"), "{debug}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
    }

    #[test]
    fn a_read_that_began_before_a_write_is_not_kept() {
        let snapshots = EsvSnapshots::default();
        let tenant = "https://t.example";
        let before = snapshots.epoch(tenant);
        snapshots.forget(tenant);
        snapshots.store(tenant, before, Arc::new(vec![secret("esv-s", "1", "1")]));
        snapshots.store_pending(tenant, before, EsvCount::default());
        assert!(
            snapshots
                .list::<Secret>(tenant, Duration::from_secs(60))
                .is_none()
        );
        assert_eq!(snapshots.pending(tenant, Duration::from_secs(60)), None);
        let after = snapshots.epoch(tenant);
        snapshots.store_pending(tenant, after, EsvCount::default());
        assert_eq!(
            snapshots.pending(tenant, Duration::from_secs(60)),
            Some(EsvCount::default())
        );
    }
}
