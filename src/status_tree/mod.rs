//! `pingone-aic-operator status` (and the kubectl plugin `kubectl pingone-aic`): each promotion
//! group of a namespace as a tree, as `crossplane beta trace` shows its resources.
//!
//! It reads the Kubernetes API only — list calls, and watches with `--watch` — never PingOne or
//! AIC: what it shows is what the operator last wrote into the resources' status. The parts:
//! [`source`] reads the three kinds, [`model`] turns them into groups (a pure function),
//! [`render`] draws the groups as aligned text.
//!
//! Choices made where the issue leaves room:
//! - A promotion group is the chain of `promotesFrom` up from a development environment; a
//!   group that branches (two environments promoted from one) is walked depth-first, lower
//!   tiers first. Sandboxes come under a heading of their own; environments whose chain reaches no
//!   development environment (a missing name, a cycle, a sandbox) come under "Not in a
//!   promotion group", each saying why.
//! - A Promotion is drawn under the environment it promotes into: those still running, and the
//!   latest one that finished.
//! - READY and REASON are always the resource's own `Ready` condition, as `kubectl get` shows
//!   it; STATUS is what the line adds (restart state, the integration's progress in that
//!   environment, a promotion's phase).

pub mod model;
pub mod render;
pub mod source;

pub use model::{Snapshot, StatusTree};
pub use source::{Scope, StatusError, StatusOptions, run};
