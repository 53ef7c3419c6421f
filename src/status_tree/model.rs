//! The status tree as data: a pure function from the listed TenantEnvironments,
//! PingOneIntegrations and Promotions to promotion groups, sandboxes and what fits neither.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::crd::common::{ApprovalPolicy, Condition, condition};
use crate::crd::pingone_integration::{CredentialType, EnvironmentStatus};
use crate::crd::promotion::{PromotionPhase, PromotionReport};
use crate::crd::tenant_environment::{RestartStatus, Tier};
use crate::crd::{PingOneIntegration, Promotion, TenantEnvironment};

/// The three kinds as listed, of one namespace or of all.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// TenantEnvironments.
    pub tenants: Vec<TenantEnvironment>,
    /// PingOneIntegrations.
    pub integrations: Vec<PingOneIntegration>,
    /// Promotions.
    pub promotions: Vec<Promotion>,
}

/// Every namespace that holds any of the three kinds, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusTree {
    /// Namespaces in name order.
    pub namespaces: Vec<NamespaceView>,
}

/// The sections of one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct NamespaceView {
    /// The namespace.
    pub name: String,
    /// Promotion groups (by the name of their development environment), then sandboxes, then
    /// what is in no group; empty sections are left out.
    pub sections: Vec<Section>,
}

/// A heading and the environments beneath it, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// What the environments have in common.
    pub heading: Heading,
    /// For a group, in promotion order (development first).
    pub environments: Vec<EnvironmentNode>,
}

/// What a section holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heading {
    /// The promotion group that starts at this development environment.
    Group(String),
    /// Sandboxes, each on its own.
    Sandboxes,
    /// Environments whose `promotesFrom` chain reaches no development environment, and
    /// environments named by an integration or a promotion that do not exist.
    Ungrouped,
}

/// The Ready condition of a resource, as `kubectl get` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadyView {
    /// `True`, `False`, `Unknown`; `None` before the operator wrote a status.
    pub status: Option<String>,
    /// CamelCase reason.
    pub reason: Option<String>,
    /// Human-readable detail.
    pub message: Option<String>,
}

impl ReadyView {
    fn of(conditions: &[Condition]) -> Self {
        conditions
            .iter()
            .find(|c| c.type_ == condition::READY)
            .map(|c| Self {
                status: Some(c.status.clone()),
                reason: Some(c.reason.clone()).filter(|r| !r.is_empty()),
                message: Some(c.message.clone()).filter(|m| !m.is_empty()),
            })
            .unwrap_or_default()
    }

    /// Whether the condition says `True`.
    pub fn is_ready(&self) -> bool {
        self.status.as_deref() == Some("True")
    }
}

/// One TenantEnvironment (or a name that should be one) and what hangs beneath it.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentNode {
    /// Name of the TenantEnvironment.
    pub name: String,
    /// Its tier; `None` when it does not exist.
    pub tier: Option<Tier>,
    /// `spec.promotesFrom`.
    pub promotes_from: Option<String>,
    /// Its Ready condition.
    pub ready: ReadyView,
    /// Its restart cycle, once the operator reported one.
    pub restart: Option<RestartStatus>,
    /// Whether restarts wait for approval (`restart.policy: Manual`).
    pub manual_restart: bool,
    /// Why it is not in a group, or that it does not exist.
    pub problem: Option<String>,
    /// Promotions into this environment: running ones and the latest finished, oldest first.
    pub promotions: Vec<PromotionNode>,
    /// Integrations set up in this environment, by name.
    pub integrations: Vec<IntegrationNode>,
}

/// A PingOneIntegration's progress in one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationNode {
    /// Name of the integration.
    pub name: String,
    /// How AIC authenticates to PingOne.
    pub credential_type: CredentialType,
    /// The integration's Ready condition (it covers all its environments).
    pub ready: ReadyView,
    /// Its status entry for this environment; `None` before the operator got to it.
    pub progress: Option<EnvironmentStatus>,
    /// What the integration says about this environment (its Ready message holds one note per
    /// environment); on the integration's first line only, its whole Ready message when it is
    /// not Ready and names no environment.
    pub note: Option<String>,
}

/// One Promotion.
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionNode {
    /// Name of the Promotion.
    pub name: String,
    /// `spec.from`.
    pub from: String,
    /// `spec.to`.
    pub to: String,
    /// `spec.dryRunOnly`.
    pub dry_run_only: bool,
    /// Its phase (`Pending` before the operator wrote a status).
    pub phase: PromotionPhase,
    /// Its Ready condition.
    pub ready: ReadyView,
    /// When it was created.
    pub created: Option<Time>,
    /// When it started.
    pub started: Option<Time>,
    /// When it succeeded or failed.
    pub completed: Option<Time>,
    /// What the dry run or the promotion reported.
    pub report: Option<PromotionReport>,
}

/// Builds the tree from what was listed. Pure: the same lists give the same tree.
pub fn build(snapshot: &Snapshot) -> StatusTree {
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    namespaces.extend(snapshot.tenants.iter().map(namespace_of));
    namespaces.extend(snapshot.integrations.iter().map(namespace_of));
    namespaces.extend(snapshot.promotions.iter().map(namespace_of));
    StatusTree {
        namespaces: namespaces
            .into_iter()
            .map(|namespace| build_namespace(snapshot, namespace))
            .collect(),
    }
}

fn namespace_of<K: ResourceExt>(object: &K) -> String {
    object.namespace().unwrap_or_default()
}

fn build_namespace(snapshot: &Snapshot, namespace: String) -> NamespaceView {
    let in_namespace = |ns: String| ns == namespace;
    let tenants: BTreeMap<String, &TenantEnvironment> = snapshot
        .tenants
        .iter()
        .filter(|t| in_namespace(namespace_of(*t)))
        .map(|t| (t.name_any(), t))
        .collect();
    let integrations: Vec<&PingOneIntegration> = {
        let mut list: Vec<_> = snapshot
            .integrations
            .iter()
            .filter(|i| in_namespace(namespace_of(*i)))
            .collect();
        list.sort_by_key(|i| i.name_any());
        list
    };
    let promotions: Vec<&Promotion> = snapshot
        .promotions
        .iter()
        .filter(|p| in_namespace(namespace_of(*p)))
        .collect();

    // Integrations whose whole message is already on a line (nodes are made in drawing order).
    let mut told: BTreeSet<String> = BTreeSet::new();
    let mut node = |name: &str| -> EnvironmentNode {
        let mut node = match tenants.get(name) {
            Some(tenant) => environment_node(tenant),
            None => missing_node(name),
        };
        node.integrations = integrations
            .iter()
            .filter(|i| i.spec.environments.iter().any(|e| e.name == name))
            .map(|i| {
                let mut node = integration_node(i, name);
                let whole_message = node.note.is_none()
                    && !node.ready.is_ready()
                    && !has_environment_notes(i, node.ready.message.as_deref())
                    && told.insert(node.name.clone());
                if whole_message {
                    node.note = node.ready.message.clone();
                }
                node
            })
            .collect();
        node.promotions = promotions_into(&promotions, name);
        node
    };

    let mut sections = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    for (root, tenant) in &tenants {
        if tenant.spec.tier != Tier::Development {
            continue;
        }
        let order = chain_order(root, &tenants);
        placed.extend(order.iter().cloned());
        sections.push(Section {
            heading: Heading::Group(root.clone()),
            environments: order.iter().map(|name| node(name)).collect(),
        });
    }
    let sandboxes: Vec<EnvironmentNode> = tenants
        .iter()
        .filter(|(_, t)| t.spec.tier == Tier::Sandbox)
        .map(|(name, _)| {
            placed.insert(name.clone());
            node(name)
        })
        .collect();
    if !sandboxes.is_empty() {
        sections.push(Section {
            heading: Heading::Sandboxes,
            environments: sandboxes,
        });
    }
    let mut ungrouped: Vec<EnvironmentNode> = tenants
        .keys()
        .filter(|name| !placed.contains(*name))
        .map(|name| {
            let mut node = node(name);
            node.problem = Some(why_ungrouped(name, &tenants));
            node
        })
        .collect();
    let referenced: BTreeSet<&str> = integrations
        .iter()
        .flat_map(|i| i.spec.environments.iter().map(|e| e.name.as_str()))
        .chain(promotions.iter().map(|p| p.spec.to.as_str()))
        .collect();
    ungrouped.extend(
        referenced
            .into_iter()
            .filter(|name| !tenants.contains_key(*name))
            .map(&mut node),
    );
    if !ungrouped.is_empty() {
        sections.push(Section {
            heading: Heading::Ungrouped,
            environments: ungrouped,
        });
    }
    NamespaceView {
        name: namespace,
        sections,
    }
}

/// The environments of the group that starts at `root`, in promotion order: a depth-first walk
/// up the `promotesFrom` edges, lower tiers first where a group branches. An environment is
/// visited once, so no shape of edges can make the walk loop.
fn chain_order(root: &str, tenants: &BTreeMap<String, &TenantEnvironment>) -> Vec<String> {
    let mut uppers: BTreeMap<&str, Vec<&TenantEnvironment>> = BTreeMap::new();
    for tenant in tenants.values() {
        let promotable = !matches!(tenant.spec.tier, Tier::Development | Tier::Sandbox);
        if let (true, Some(lower)) = (promotable, tenant.spec.promotes_from.as_deref()) {
            uppers.entry(lower).or_default().push(tenant);
        }
    }
    for list in uppers.values_mut() {
        list.sort_by_key(|t| (t.spec.tier.rank(), t.name_any()));
    }
    let mut order = Vec::new();
    let mut visited = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(name) = stack.pop() {
        if !visited.insert(name.clone()) {
            continue;
        }
        if let Some(next) = uppers.get(name.as_str()) {
            stack.extend(next.iter().rev().map(|t| t.name_any()));
        }
        order.push(name);
    }
    order
}

/// Why an environment that is neither a sandbox nor reached from a development environment
/// is in no group: where its `promotesFrom` chain ends.
fn why_ungrouped(name: &str, tenants: &BTreeMap<String, &TenantEnvironment>) -> String {
    let mut path = vec![name.to_owned()];
    let mut current = name.to_owned();
    loop {
        let Some(tenant) = tenants.get(&current) else {
            return format!("promotesFrom names {current}, which does not exist");
        };
        if tenant.spec.tier == Tier::Sandbox {
            return format!("promotes from {current}, a sandbox, which is in no promotion group");
        }
        let Some(lower) = tenant.spec.promotes_from.clone() else {
            return format!("{current} has no promotesFrom");
        };
        if path.contains(&lower) {
            path.push(lower);
            return format!("promotesFrom forms a cycle: {}", path.join(" → "));
        }
        path.push(lower.clone());
        current = lower;
    }
}

fn environment_node(tenant: &TenantEnvironment) -> EnvironmentNode {
    let status = tenant.status.as_ref();
    EnvironmentNode {
        name: tenant.name_any(),
        tier: Some(tenant.spec.tier),
        promotes_from: tenant.spec.promotes_from.clone(),
        ready: ReadyView::of(status.map_or(&[][..], |s| &s.conditions)),
        restart: status.and_then(|s| s.restart.clone()),
        manual_restart: tenant.spec.restart.policy == ApprovalPolicy::Manual,
        problem: None,
        promotions: Vec::new(),
        integrations: Vec::new(),
    }
}

fn missing_node(name: &str) -> EnvironmentNode {
    EnvironmentNode {
        name: name.to_owned(),
        tier: None,
        promotes_from: None,
        ready: ReadyView::default(),
        restart: None,
        manual_restart: false,
        problem: Some("no such TenantEnvironment".to_owned()),
        promotions: Vec::new(),
        integrations: Vec::new(),
    }
}

fn integration_node(integration: &PingOneIntegration, environment: &str) -> IntegrationNode {
    let status = integration.status.as_ref();
    let ready = ReadyView::of(status.map_or(&[][..], |s| &s.conditions));
    let names = environment_names(integration);
    IntegrationNode {
        name: integration.name_any(),
        credential_type: integration.spec.credential_type,
        note: ready
            .message
            .as_deref()
            .and_then(|m| environment_note(m, environment, &names)),
        ready,
        progress: status
            .and_then(|s| s.environments.iter().find(|e| e.name == environment))
            .cloned(),
    }
}

fn environment_names(integration: &PingOneIntegration) -> Vec<&str> {
    integration
        .spec
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect()
}

fn has_environment_notes(integration: &PingOneIntegration, message: Option<&str>) -> bool {
    message.is_some_and(|m| !note_starts(m, &environment_names(integration)).is_empty())
}

/// Where each environment's note starts in an integration's Ready message, in order: the
/// controller ends the message with the notes in parentheses, each `<environment>: <text>`,
/// joined with `; `.
fn note_starts<'a>(message: &str, environments: &[&'a str]) -> Vec<(usize, &'a str)> {
    let mut starts: Vec<(usize, &str)> = environments
        .iter()
        .flat_map(|name| {
            let label = format!("{name}: ");
            message
                .match_indices(&label)
                .map(|(at, _)| at)
                .filter(|&at| message[..at].ends_with('(') || message[..at].ends_with("; "))
                .map(move |at| (at, *name))
                .collect::<Vec<_>>()
        })
        .collect();
    starts.sort();
    starts
}

/// The note about `environment` in an integration's Ready message, without its label.
pub fn environment_note(message: &str, environment: &str, environments: &[&str]) -> Option<String> {
    let starts = note_starts(message, environments);
    let index = starts.iter().position(|(_, name)| *name == environment)?;
    let from = starts[index].0 + environment.len() + 2;
    let text = match starts.get(index + 1) {
        Some((next, _)) => message[from..*next]
            .strip_suffix("; ")
            .unwrap_or(&message[from..*next]),
        None => message[from..]
            .strip_suffix(')')
            .unwrap_or(&message[from..]),
    };
    Some(text.to_owned()).filter(|t| !t.is_empty())
}

/// The Promotions into `environment` worth showing: every one still running, and the one that
/// finished last (a finished Promotion is a record; older records are history).
fn promotions_into(promotions: &[&Promotion], environment: &str) -> Vec<PromotionNode> {
    let mut nodes: Vec<PromotionNode> = promotions
        .iter()
        .filter(|p| p.spec.to == environment)
        .map(|p| promotion_node(p))
        .collect();
    let latest_final = nodes
        .iter()
        .filter(|p| p.phase.is_final())
        .max_by_key(|p| finished_key(p))
        .map(|p| p.name.clone());
    nodes.retain(|p| !p.phase.is_final() || Some(&p.name) == latest_final.as_ref());
    nodes.sort_by_key(|p| (p.created.as_ref().map(|t| t.0), p.name.clone()));
    nodes
}

fn finished_key(promotion: &PromotionNode) -> (Option<jiff::Timestamp>, String) {
    let when = promotion
        .completed
        .as_ref()
        .or(promotion.created.as_ref())
        .map(|t| t.0);
    (when, promotion.name.clone())
}

fn promotion_node(promotion: &Promotion) -> PromotionNode {
    let status = promotion.status.as_ref();
    PromotionNode {
        name: promotion.name_any(),
        from: promotion.spec.from.clone(),
        to: promotion.spec.to.clone(),
        dry_run_only: promotion.spec.dry_run_only,
        phase: status.map(|s| s.phase).unwrap_or_default(),
        ready: ReadyView::of(status.map_or(&[][..], |s| &s.conditions)),
        created: promotion.metadata.creation_timestamp.clone(),
        started: status.and_then(|s| s.start_time.clone()),
        completed: status.and_then(|s| s.completion_time.clone()),
        report: status.and_then(|s| s.report.clone()),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Resources as the operator would have left them, built from JSON like a manifest.

    use super::*;
    use serde_json::{Value, json};

    pub fn time(second: i64) -> Value {
        json!(
            jiff::Timestamp::from_second(1_800_000_000 + second)
                .unwrap()
                .to_string()
        )
    }

    pub fn ready(status: &str, reason: &str) -> Value {
        ready_saying(status, reason, &format!("{reason} message"))
    }

    pub fn ready_saying(status: &str, reason: &str, message: &str) -> Value {
        json!([{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": time(0)
        }])
    }

    pub fn tenant(name: &str, tier: &str, from: Option<&str>, status: Value) -> TenantEnvironment {
        let mut spec = json!({
            "tenantUrl": format!("https://{name}.example.com"),
            "tier": tier,
            "serviceAccount": {"id": "sa", "privateKeySecretRef": {"name": "sa", "key": "jwk"}},
            "pingOne": {"environmentId": "00000000-0000-0000-0000-000000000001", "region": "EU"},
        });
        if let Some(from) = from {
            spec["promotesFrom"] = json!(from);
        }
        serde_json::from_value(json!({
            "apiVersion": "pingone-aic.io/v1alpha1", "kind": "TenantEnvironment",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": time(0)},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    pub fn idle_tenant(name: &str, tier: &str, from: Option<&str>) -> TenantEnvironment {
        tenant(
            name,
            tier,
            from,
            json!({"conditions": ready("True", "Ready"), "restart": {"state": "Idle", "lastRestartTime": time(100)}}),
        )
    }

    pub fn integration(
        name: &str,
        envs: &[&str],
        credential: &str,
        status: Value,
    ) -> PingOneIntegration {
        let environments: Vec<Value> = envs.iter().map(|e| json!({"name": e})).collect();
        let mut spec = json!({"credentialType": credential, "environments": environments});
        if credential == "WorkerApplication" {
            spec["workerApplication"] = json!({});
        }
        serde_json::from_value(json!({
            "apiVersion": "pingone-aic.io/v1alpha1", "kind": "PingOneIntegration",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    pub fn promotion(name: &str, from: &str, to: &str, created: i64, status: Value) -> Promotion {
        serde_json::from_value(json!({
            "apiVersion": "pingone-aic.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": time(created)},
            "spec": {"from": from, "to": to}, "status": status,
        }))
        .unwrap()
    }

    /// The group of the examples, listed out of order, a sandbox, two integrations and a
    /// finished and a running promotion.
    pub fn acme() -> Snapshot {
        Snapshot {
            tenants: vec![
                idle_tenant("acme-prod", "production", Some("acme-staging")),
                idle_tenant("acme-sandbox", "sandbox", None),
                tenant(
                    "acme-uat",
                    "uat",
                    Some("acme-dev"),
                    json!({"conditions": ready("False", "RestartPending"),
                           "restart": {"state": "Pending", "pendingSince": time(200), "pendingEsvs": 2}}),
                ),
                idle_tenant("acme-dev", "development", None),
                tenant(
                    "acme-staging",
                    "staging",
                    Some("acme-uat"),
                    json!({"restart": {"state": "Restarting", "restartingSince": time(250)}}),
                ),
            ],
            integrations: vec![
                integration(
                    "acme-worker",
                    &["acme-dev", "acme-uat", "acme-staging", "acme-prod"],
                    "WorkerApplication",
                    json!({
                        "conditions": ready_saying("False", "AwaitingPromotion", "not yet in acme-prod, acme-staging (acme-uat: Promotion acme-dev-to-uat-2 is in progress; acme-staging: waits until acme-uat is configured and verified (and promoted); acme-prod: waits until acme-staging is configured)"),
                        "environments": [
                            {"name": "acme-dev", "clientId": "c1", "secretVersion": "2", "valuesHash": "h",
                             "serviceConfigured": true, "labelMapped": true, "connectionVerified": true,
                             "lastVerifiedTime": time(240)},
                            {"name": "acme-uat", "clientId": "c2", "valuesHash": "h", "serviceConfigured": false,
                             "labelMapped": false, "connectionVerified": false, "promoted": false},
                        ]
                    }),
                ),
                integration("acme-audit", &["acme-dev"], "WorkerApplication", json!({})),
                integration(
                    "acme-sandbox-connection",
                    &["acme-sandbox"],
                    "ProductConnection",
                    json!({
                        "conditions": ready("True", "Ready"),
                        "environments": [{"name": "acme-sandbox", "secretVersion": "1", "valuesHash": "h",
                            "serviceConfigured": true, "labelMapped": true, "connectionVerified": true}]
                    }),
                ),
            ],
            promotions: vec![
                promotion(
                    "acme-dev-to-uat-2",
                    "acme-dev",
                    "acme-uat",
                    230,
                    json!({"phase": "Promoting", "startTime": time(235)}),
                ),
                promotion(
                    "acme-dev-to-uat-1",
                    "acme-dev",
                    "acme-uat",
                    150,
                    json!({"phase": "Succeeded", "completionTime": time(180),
                           "conditions": ready("True", "Succeeded"), "report": {"changedItems": 3}}),
                ),
                promotion(
                    "acme-dev-to-uat-0",
                    "acme-dev",
                    "acme-uat",
                    50,
                    json!({"phase": "Failed", "completionTime": time(60)}),
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    fn names(section: &Section) -> Vec<&str> {
        section
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect()
    }

    fn only_namespace(tree: &StatusTree) -> &NamespaceView {
        assert_eq!(tree.namespaces.len(), 1, "{tree:#?}");
        &tree.namespaces[0]
    }

    #[test]
    fn a_group_lists_its_environments_in_promotion_order() {
        let tree = build(&acme());
        let namespace = only_namespace(&tree);
        assert_eq!(namespace.name, "default");
        let headings: Vec<&Heading> = namespace.sections.iter().map(|s| &s.heading).collect();
        assert_eq!(
            headings,
            [&Heading::Group("acme-dev".into()), &Heading::Sandboxes]
        );
        assert_eq!(
            names(&namespace.sections[0]),
            ["acme-dev", "acme-uat", "acme-staging", "acme-prod"]
        );
        let staging = &namespace.sections[0].environments[2];
        assert_eq!(staging.tier, Some(Tier::Staging));
        assert_eq!(
            staging.ready,
            ReadyView::default(),
            "no Ready condition yet"
        );
        assert_eq!(
            staging.restart.as_ref().map(|r| r.state),
            Some(crate::crd::tenant_environment::RestartState::Restarting)
        );
    }

    #[test]
    fn a_sandbox_is_its_own_section_with_its_integration() {
        let tree = build(&acme());
        let sandboxes = &only_namespace(&tree).sections[1];
        assert_eq!(names(sandboxes), ["acme-sandbox"]);
        let integrations = &sandboxes.environments[0].integrations;
        assert_eq!(integrations.len(), 1);
        assert_eq!(integrations[0].name, "acme-sandbox-connection");
        assert_eq!(
            integrations[0].credential_type,
            CredentialType::ProductConnection
        );
        assert!(
            integrations[0]
                .progress
                .as_ref()
                .unwrap()
                .connection_verified
        );
    }

    #[test]
    fn an_environment_in_two_integrations_shows_each_with_its_own_progress() {
        let tree = build(&acme());
        let dev = &only_namespace(&tree).sections[0].environments[0];
        let integrations: Vec<(&str, bool)> = dev
            .integrations
            .iter()
            .map(|i| (i.name.as_str(), i.progress.is_some()))
            .collect();
        assert_eq!(integrations, [("acme-audit", false), ("acme-worker", true)]);
        let worker = &dev.integrations[1];
        assert_eq!(worker.ready.reason.as_deref(), Some("AwaitingPromotion"));
        assert_eq!(
            worker.progress.as_ref().unwrap().secret_version.as_deref(),
            Some("2")
        );
        // In uat the same integration has its uat entry, not dev's.
        let uat = &only_namespace(&tree).sections[0].environments[1];
        let progress = uat.integrations[0].progress.as_ref().unwrap();
        assert_eq!(progress.name, "acme-uat");
        assert_eq!(progress.promoted, Some(false));
    }

    #[test]
    fn running_promotions_and_the_latest_finished_hang_under_the_upper_environment() {
        let tree = build(&acme());
        let group = &only_namespace(&tree).sections[0];
        assert!(group.environments[0].promotions.is_empty());
        let uat: Vec<(&str, PromotionPhase)> = group.environments[1]
            .promotions
            .iter()
            .map(|p| (p.name.as_str(), p.phase))
            .collect();
        assert_eq!(
            uat,
            [
                ("acme-dev-to-uat-1", PromotionPhase::Succeeded),
                ("acme-dev-to-uat-2", PromotionPhase::Promoting),
            ],
            "the older failed one is history"
        );
        assert_eq!(
            group.environments[1].promotions[0]
                .report
                .as_ref()
                .map(|r| r.changed_items),
            Some(3)
        );
    }

    #[test]
    fn a_missing_lower_environment_puts_the_chain_outside_any_group() {
        let snapshot = Snapshot {
            tenants: vec![
                idle_tenant("dev", "development", None),
                idle_tenant("staging", "staging", Some("uat")),
                idle_tenant("prod", "production", Some("staging")),
            ],
            integrations: vec![integration(
                "worker",
                &["dev", "ghost"],
                "WorkerApplication",
                json!({}),
            )],
            promotions: vec![promotion("to-nowhere", "dev", "nowhere", 1, json!({}))],
        };
        let tree = build(&snapshot);
        let sections = &only_namespace(&tree).sections;
        assert_eq!(sections.len(), 2, "{sections:#?}");
        assert_eq!(names(&sections[0]), ["dev"]);
        assert_eq!(sections[1].heading, Heading::Ungrouped);
        let problems: Vec<(&str, Option<&str>)> = sections[1]
            .environments
            .iter()
            .map(|e| (e.name.as_str(), e.problem.as_deref()))
            .collect();
        assert_eq!(
            problems,
            [
                ("prod", Some("promotesFrom names uat, which does not exist")),
                (
                    "staging",
                    Some("promotesFrom names uat, which does not exist")
                ),
                ("ghost", Some("no such TenantEnvironment")),
                ("nowhere", Some("no such TenantEnvironment")),
            ]
        );
        assert_eq!(sections[1].environments[2].integrations[0].name, "worker");
        assert_eq!(sections[1].environments[3].promotions[0].name, "to-nowhere");
    }

    #[test]
    fn a_cycle_of_promotes_from_ends_and_is_named() {
        let snapshot = Snapshot {
            tenants: vec![
                idle_tenant("a", "uat", Some("c")),
                idle_tenant("b", "staging", Some("a")),
                idle_tenant("c", "production", Some("b")),
                idle_tenant("dev", "development", None),
                idle_tenant("self", "uat", Some("self")),
            ],
            ..Default::default()
        };
        let tree = build(&snapshot);
        let sections = &only_namespace(&tree).sections;
        assert_eq!(names(&sections[0]), ["dev"]);
        let problems: Vec<(&str, Option<&str>)> = sections[1]
            .environments
            .iter()
            .map(|e| (e.name.as_str(), e.problem.as_deref()))
            .collect();
        assert_eq!(
            problems,
            [
                ("a", Some("promotesFrom forms a cycle: a → c → b → a")),
                ("b", Some("promotesFrom forms a cycle: b → a → c → b")),
                ("c", Some("promotesFrom forms a cycle: c → b → a → c")),
                ("self", Some("promotesFrom forms a cycle: self → self")),
            ]
        );
    }

    #[test]
    fn a_branching_group_walks_each_branch_in_tier_order_and_a_sandbox_lower_is_no_root() {
        let snapshot = Snapshot {
            tenants: vec![
                idle_tenant("dev", "development", None),
                idle_tenant("prod-b", "production", Some("uat")),
                idle_tenant("prod-a", "production", Some("staging")),
                idle_tenant("staging", "staging", Some("uat")),
                idle_tenant("uat", "uat", Some("dev")),
                idle_tenant("box", "sandbox", None),
                idle_tenant("from-box", "uat", Some("box")),
            ],
            ..Default::default()
        };
        let tree = build(&snapshot);
        let sections = &only_namespace(&tree).sections;
        assert_eq!(
            names(&sections[0]),
            ["dev", "uat", "staging", "prod-a", "prod-b"]
        );
        assert_eq!(names(&sections[1]), ["box"]);
        assert_eq!(
            sections[2].environments[0].problem.as_deref(),
            Some("promotes from box, a sandbox, which is in no promotion group")
        );
    }

    #[test]
    fn each_environment_gets_its_own_note_from_the_integration_message() {
        let tree = build(&acme());
        let group = &only_namespace(&tree).sections[0];
        let notes: Vec<Option<&str>> = group
            .environments
            .iter()
            .map(|e| {
                e.integrations
                    .iter()
                    .find(|i| i.name == "acme-worker")
                    .unwrap()
            })
            .map(|i| i.note.as_deref())
            .collect();
        assert_eq!(
            notes,
            [
                None,
                Some("Promotion acme-dev-to-uat-2 is in progress"),
                Some("waits until acme-uat is configured and verified (and promoted)"),
                Some("waits until acme-staging is configured"),
            ]
        );
        let envs = ["a", "a-b"];
        assert_eq!(
            environment_note("x (a-b: one; a: two)", "a", &envs).as_deref(),
            Some("two")
        );
        assert_eq!(environment_note("x (a-b: one)", "a", &envs), None);
        assert_eq!(environment_note("a: not a note", "a", &envs), None);
    }

    #[test]
    fn a_message_naming_no_environment_is_told_once() {
        let snapshot = Snapshot {
            tenants: vec![
                idle_tenant("dev", "development", None),
                idle_tenant("uat", "uat", Some("dev")),
            ],
            integrations: vec![integration(
                "worker",
                &["dev", "uat"],
                "WorkerApplication",
                json!({"conditions": ready_saying("False", "CredentialsMissing", "no worker")}),
            )],
            ..Default::default()
        };
        let tree = build(&snapshot);
        let group = &only_namespace(&tree).sections[0];
        let notes: Vec<Option<&str>> = group
            .environments
            .iter()
            .map(|e| e.integrations[0].note.as_deref())
            .collect();
        assert_eq!(notes, [Some("no worker"), None]);
    }

    #[test]
    fn namespaces_are_kept_apart() {
        let mut other = idle_tenant("acme-dev", "development", None);
        other.metadata.namespace = Some("team-b".into());
        let mut snapshot = acme();
        snapshot.tenants.push(other);
        let tree = build(&snapshot);
        let names: Vec<&str> = tree.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["default", "team-b"]);
        let team_b = &tree.namespaces[1];
        assert_eq!(team_b.sections.len(), 1);
        assert!(team_b.sections[0].environments[0].integrations.is_empty());
    }
}
