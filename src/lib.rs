//! pingone-aic-operator: a Kubernetes operator that carries out Ping Identity's procedure
//! "Set up PingOne OIDC clients and configure Advanced Identity Cloud services" declaratively.
//!
//! Three namespaced custom resources in `pingone-aic.io/v1alpha1` ([`crd`]) describe the desired
//! state; reconcilers read credentials from Kubernetes Secrets, drive the PingOne admin API and the
//! Advanced Identity Cloud APIs toward it and report status conditions.
//!
//! A reconcile reads the resource and its Secrets, observes PingOne and AIC, writes what differs
//! from the spec, and reports status; the status it wrote is also what the next pass resumes
//! from (a rotation's phase, a pending restart, a promotion's id), so a restarted operator
//! carries on where it stopped. [`status_tree`] is the `status` command (and the kubectl
//! plugin `kubectl pingone-aic`): each promotion group drawn from the Kubernetes API alone. The
//! development stand-ins (simulators, devkube, the playground)
//! are crates of their own in the workspace; nothing here depends on them.
#![forbid(unsafe_code)]

pub mod aic;
pub mod budget;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod http;
pub mod metrics;
pub mod pingone;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod status;
pub mod status_tree;
pub mod telemetry;
