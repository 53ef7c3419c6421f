//! The status tree as text: one line per resource under tree glyphs, columns aligned, ages as
//! `kubectl get` prints them. Plain text, no colour, so it reads the same in a terminal, a pipe
//! and a CI log.

use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::model::{
    EnvironmentNode, Heading, IntegrationNode, PromotionNode, ReadyView, Section, StatusTree,
};
use crate::controller::tenant::APPROVE_RESTART_ANNOTATION;
use crate::crd::pingone_integration::CredentialType;
use crate::crd::promotion::PromotionPhase;
use crate::crd::tenant_environment::RestartState;

/// How the tree is drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct RenderOptions {
    /// Put each namespace's sections under a line naming it (all namespaces listed).
    pub show_namespaces: bool,
}

const HEADER: [&str; 5] = ["NAME", "TIER", "READY", "REASON", "STATUS"];

/// One drawn line before alignment: the tree prefix and name, then the other columns.
struct Row {
    name: String,
    tier: String,
    ready: String,
    reason: String,
    status: String,
}

/// A line of the tree and the lines beneath it.
struct Node {
    row: Row,
    children: Vec<Node>,
}

/// Renders `tree` as it stands at `now`; the text ends with a newline.
pub fn render(tree: &StatusTree, now: jiff::Timestamp, options: RenderOptions) -> String {
    let mut roots: Vec<Node> = Vec::new();
    for namespace in &tree.namespaces {
        let sections = namespace.sections.iter().map(|s| section(s, now));
        if options.show_namespaces {
            roots.push(Node {
                row: heading_row(format!("Namespace {}", namespace.name)),
                children: sections.collect(),
            });
        } else {
            roots.extend(sections);
        }
    }
    let mut rows = vec![Row {
        name: HEADER[0].to_owned(),
        tier: HEADER[1].to_owned(),
        ready: HEADER[2].to_owned(),
        reason: HEADER[3].to_owned(),
        status: HEADER[4].to_owned(),
    }];
    for root in roots {
        flatten(root, "", None, &mut rows);
    }
    align(&rows)
}

/// What is printed when nothing was found.
pub fn empty_message(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!(
            "No TenantEnvironments, PingOneIntegrations or Promotions in namespace {namespace}.\n"
        ),
        None => "No TenantEnvironments, PingOneIntegrations or Promotions in any namespace.\n"
            .to_owned(),
    }
}

fn flatten(node: Node, prefix: &str, last: Option<bool>, rows: &mut Vec<Row>) {
    let (own, below) = match last {
        None => (String::new(), String::new()),
        Some(false) => (format!("{prefix}├─ "), format!("{prefix}│  ")),
        Some(true) => (format!("{prefix}└─ "), format!("{prefix}   ")),
    };
    let mut row = node.row;
    row.name = format!("{own}{}", row.name);
    rows.push(row);
    let count = node.children.len();
    for (index, child) in node.children.into_iter().enumerate() {
        flatten(child, &below, Some(index + 1 == count), rows);
    }
}

fn align(rows: &[Row]) -> String {
    let width = |column: fn(&Row) -> &str| {
        rows.iter()
            .map(|r| column(r).chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [
        width(|r| &r.name),
        width(|r| &r.tier),
        width(|r| &r.ready),
        width(|r| &r.reason),
    ];
    let mut out = String::new();
    for row in rows {
        let cells = [&row.name, &row.tier, &row.ready, &row.reason];
        let mut line = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            let _ = write!(
                line,
                "{cell}{}   ",
                " ".repeat(width - cell.chars().count())
            );
        }
        line.push_str(&row.status);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn heading_row(name: String) -> Row {
    Row {
        name,
        tier: String::new(),
        ready: String::new(),
        reason: String::new(),
        status: String::new(),
    }
}

fn section(section: &Section, now: jiff::Timestamp) -> Node {
    let name = match &section.heading {
        Heading::Group(root) => format!("Promotion group {root}"),
        Heading::Sandboxes => "Sandboxes".to_owned(),
        Heading::Ungrouped => "Not in a promotion group".to_owned(),
    };
    Node {
        row: heading_row(name),
        children: section
            .environments
            .iter()
            .map(|e| environment(e, now))
            .collect(),
    }
}

fn ready_cells(ready: &ReadyView) -> (String, String) {
    (
        ready.status.clone().unwrap_or_else(|| "-".to_owned()),
        ready.reason.clone().unwrap_or_else(|| "-".to_owned()),
    )
}

/// The Ready condition's message, for a resource that is not Ready: what to do next.
fn with_message(status: String, ready: &ReadyView) -> String {
    match (&ready.message, ready.is_ready()) {
        (Some(message), false) if status.is_empty() => message.clone(),
        (Some(message), false) => format!("{status}; {message}"),
        _ => status,
    }
}

fn environment(env: &EnvironmentNode, now: jiff::Timestamp) -> Node {
    let (ready, reason) = ready_cells(&env.ready);
    let status = match &env.problem {
        Some(problem) => problem.clone(),
        None => with_message(restart(env, now), &env.ready),
    };
    let children = env
        .promotions
        .iter()
        .map(|p| promotion(p, now))
        .chain(env.integrations.iter().map(|i| integration(i, now)))
        .collect();
    Node {
        row: Row {
            name: format!("TenantEnvironment/{}", env.name),
            tier: env
                .tier
                .map_or("-".to_owned(), |t| format!("{t:?}").to_lowercase()),
            ready,
            reason,
            status,
        },
        children,
    }
}

fn restart(env: &EnvironmentNode, now: jiff::Timestamp) -> String {
    let Some(restart) = &env.restart else {
        return if env.tier.is_some() && env.ready.status.is_none() {
            "not reconciled yet".to_owned()
        } else {
            String::new()
        };
    };
    let last = restart
        .last_restart_time
        .as_ref()
        .map(|t| format!(", last restart {} ago", age(t, now)));
    match restart.state {
        RestartState::Idle => format!("restart idle{}", last.unwrap_or_default()),
        RestartState::Pending => {
            let mut text = "restart pending".to_owned();
            if let Some(since) = &restart.pending_since {
                let _ = write!(text, " for {}", age(since, now));
            }
            if restart.pending_esvs > 0 {
                let _ = write!(text, " ({} ESVs)", restart.pending_esvs);
            }
            if env.manual_restart {
                let _ = write!(
                    text,
                    ", awaiting approval: set annotation {APPROVE_RESTART_ANNOTATION} to a new value"
                );
            }
            text
        }
        RestartState::Restarting => match &restart.restarting_since {
            Some(since) => format!("restarting for {}", age(since, now)),
            None => "restarting".to_owned(),
        },
    }
}

fn mark(done: bool) -> &'static str {
    if done { "✓" } else { "✗" }
}

fn integration(node: &IntegrationNode, now: jiff::Timestamp) -> Node {
    let (ready, reason) = ready_cells(&node.ready);
    let status = match &node.progress {
        None => "not started in this environment".to_owned(),
        Some(progress) => {
            let mut steps = Vec::new();
            match node.credential_type {
                CredentialType::WorkerApplication => {
                    steps.push(format!("client {}", mark(progress.client_id.is_some())));
                }
                CredentialType::ProductConnection => {
                    steps.push(format!(
                        "credential {}",
                        mark(progress.values_hash.is_some())
                    ));
                }
            }
            let mut esvs = format!("ESVs {}", mark(progress.values_hash.is_some()));
            if let Some(version) = &progress.secret_version {
                let _ = write!(esvs, " v{version}");
            }
            steps.push(esvs);
            steps.push(format!("service {}", mark(progress.service_configured)));
            steps.push(format!("label {}", mark(progress.label_mapped)));
            let mut connection = format!("connection {}", mark(progress.connection_verified));
            if let (true, Some(when)) = (progress.connection_verified, &progress.last_verified_time)
            {
                let _ = write!(connection, " {} ago", age(when, now));
            }
            steps.push(connection);
            if let Some(promoted) = progress.promoted {
                steps.push(format!("promoted {}", mark(promoted)));
            }
            if let Some(phase) = progress.secret_rotation.as_ref().and_then(|r| r.phase) {
                steps.push(format!("rotation {phase:?}"));
            }
            steps.join("  ")
        }
    };
    Node {
        row: Row {
            name: format!("PingOneIntegration/{}", node.name),
            tier: String::new(),
            ready,
            reason,
            status: match &node.note {
                Some(note) => format!("{status}; {note}"),
                None => status,
            },
        },
        children: Vec::new(),
    }
}

fn promotion(node: &PromotionNode, now: jiff::Timestamp) -> Node {
    let (ready, reason) = ready_cells(&node.ready);
    let mut status = format!("{:?}", node.phase);
    if node.dry_run_only {
        status.push_str(" (dry run only)");
    }
    let when = if node.phase.is_final() {
        node.completed
            .as_ref()
            .map(|t| format!(" {} ago", age(t, now)))
    } else if node.phase == PromotionPhase::Pending {
        node.created
            .as_ref()
            .map(|t| format!(" for {}", age(t, now)))
    } else {
        node.started
            .as_ref()
            .map(|t| format!(" for {}", age(t, now)))
    };
    status.push_str(&when.unwrap_or_default());
    let _ = write!(status, ": {} → {}", node.from, node.to);
    if let Some(report) = &node.report {
        if report.changed_items > 0 {
            let _ = write!(status, ", {} items changed", report.changed_items);
        }
        if !report.missing_esvs.is_empty() {
            let _ = write!(status, ", missing ESVs {}", report.missing_esvs.join(", "));
        }
        if !report.encrypted_secrets.is_empty() {
            let _ = write!(
                status,
                ", encrypted secrets {}",
                report.encrypted_secrets.join(", ")
            );
        }
    }
    let status = if node.phase == PromotionPhase::Succeeded {
        status
    } else {
        with_message(status, &node.ready)
    };
    Node {
        row: Row {
            name: format!("Promotion/{}", node.name),
            tier: String::new(),
            ready,
            reason,
            status,
        },
        children: Vec::new(),
    }
}

/// How long ago `time` was, as `kubectl get` prints an age (`45s`, `5m10s`, `3h`, `2d`).
pub fn age(time: &Time, now: jiff::Timestamp) -> String {
    human_duration(now.duration_since(time.0).as_secs().max(0))
}

/// kubectl's `HumanDuration`: two units while the larger is small, one after.
fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    let years = days / 365;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        let rest = seconds % 60;
        if rest == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{rest}s")
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        let rest = minutes % 60;
        if rest == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{rest}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let rest = hours % 24;
        if rest == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{rest}h")
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if years < 8 {
        let rest = days % 365;
        if rest == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{rest}d")
        }
    } else {
        format!("{years}y")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_tree::model::{build, fixtures};

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + 300).unwrap()
    }

    fn rendered() -> String {
        render(&build(&fixtures::acme()), now(), RenderOptions::default())
    }

    fn line<'a>(text: &'a str, starting: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(starting))
            .unwrap_or_else(|| panic!("no line starting with {starting:?} in\n{text}"))
    }

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().collect()
    }

    #[test]
    fn the_tree_draws_the_group_in_order_with_glyphs() {
        let text = rendered();
        let name_width = text.lines().next().unwrap().find("TIER").unwrap();
        let names: Vec<String> = text
            .lines()
            .map(|l| {
                l.chars()
                    .take(name_width)
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            names,
            [
                "NAME",
                "Promotion group acme-dev",
                "├─ TenantEnvironment/acme-dev",
                "│  ├─ PingOneIntegration/acme-audit",
                "│  └─ PingOneIntegration/acme-worker",
                "├─ TenantEnvironment/acme-uat",
                "│  ├─ Promotion/acme-dev-to-uat-1",
                "│  ├─ Promotion/acme-dev-to-uat-2",
                "│  └─ PingOneIntegration/acme-worker",
                "├─ TenantEnvironment/acme-staging",
                "│  └─ PingOneIntegration/acme-worker",
                "└─ TenantEnvironment/acme-prod",
                "   └─ PingOneIntegration/acme-worker",
                "Sandboxes",
                "└─ TenantEnvironment/acme-sandbox",
                "   └─ PingOneIntegration/acme-sandbox-connection",
            ],
            "\n{text}"
        );
    }

    #[test]
    fn columns_line_up_under_the_header() {
        let text = rendered();
        let header = text.lines().next().unwrap();
        for column in ["TIER", "READY", "REASON", "STATUS"] {
            let at = header.find(column).unwrap();
            let dev = line(&text, "├─ TenantEnvironment/acme-dev");
            // Character positions, as the glyphs are several bytes each.
            let dev_chars: Vec<char> = dev.chars().collect();
            let header_at = header[..at].chars().count();
            assert!(
                dev_chars[header_at - 1] == ' ' && dev_chars[header_at] != ' ',
                "{column} is not aligned:\n{text}"
            );
        }
    }

    #[test]
    fn lines_say_restart_state_progress_and_phase() {
        let text = rendered();
        assert_eq!(
            words(line(&text, "├─ TenantEnvironment/acme-dev")),
            [
                "├─",
                "TenantEnvironment/acme-dev",
                "development",
                "True",
                "Ready",
                "restart",
                "idle,",
                "last",
                "restart",
                "3m20s",
                "ago"
            ]
        );
        let uat = line(&text, "├─ TenantEnvironment/acme-uat");
        assert!(
            uat.ends_with("restart pending for 100s (2 ESVs); RestartPending message"),
            "{uat}"
        );
        let staging = line(&text, "├─ TenantEnvironment/acme-staging");
        assert_eq!(
            words(staging)[2..],
            ["staging", "-", "-", "restarting", "for", "50s"]
        );
        let worker = line(&text, "│  └─ PingOneIntegration/acme-worker");
        assert!(
            worker.ends_with("False   AwaitingPromotion   client ✓  ESVs ✓ v2  service ✓  label ✓  connection ✓ 60s ago"),
            "{worker}"
        );
        let audit = line(&text, "│  ├─ PingOneIntegration/acme-audit");
        assert_eq!(
            words(audit)[2..],
            [
                "PingOneIntegration/acme-audit",
                "-",
                "-",
                "not",
                "started",
                "in",
                "this",
                "environment"
            ]
        );
        let uat_worker = text
            .lines()
            .filter(|l| l.contains("PingOneIntegration/acme-worker"))
            .nth(1)
            .unwrap();
        assert!(
            uat_worker.ends_with(
                "client ✓  ESVs ✓  service ✗  label ✗  connection ✗  promoted ✗; Promotion acme-dev-to-uat-2 is in progress"
            ),
            "{uat_worker}"
        );
        let finished = line(&text, "│  ├─ Promotion/acme-dev-to-uat-1");
        assert_eq!(
            words(finished)[2..],
            [
                "Promotion/acme-dev-to-uat-1",
                "True",
                "Succeeded",
                "Succeeded",
                "2m",
                "ago:",
                "acme-dev",
                "→",
                "acme-uat,",
                "3",
                "items",
                "changed"
            ]
        );
        let running = line(&text, "│  ├─ Promotion/acme-dev-to-uat-2");
        assert!(
            running.ends_with("Promoting for 65s: acme-dev → acme-uat"),
            "{running}"
        );
        let sandbox = line(&text, "   └─ PingOneIntegration/acme-sandbox-connection");
        assert!(
            sandbox.contains("credential ✓  ESVs ✓ v1  service ✓  label ✓  connection ✓"),
            "{sandbox}"
        );
        assert!(!sandbox.contains("promoted"), "{sandbox}");
    }

    #[test]
    fn all_namespaces_nest_the_sections_under_their_namespace() {
        let text = render(
            &build(&fixtures::acme()),
            now(),
            RenderOptions {
                show_namespaces: true,
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("Namespace default"), "{text}");
        assert!(
            lines[2].starts_with("├─ Promotion group acme-dev"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("│  ├─ TenantEnvironment/acme-dev"),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with("└─ Sandboxes")),
            "{text}"
        );
    }

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (310, "5m10s"),
            (900, "15m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}s");
        }
        let future = Time(now() + jiff::SignedDuration::from_secs(30));
        assert_eq!(age(&future, now()), "0s", "a clock skew is no negative age");
    }
}
