//! pingone-aic-operator: a Kubernetes operator that carries out Ping Identity's procedure
//! "Set up PingOne OIDC clients and configure Advanced Identity Cloud services" declaratively.
//!
//! Three namespaced custom resources in `pingone-aic.io/v1alpha1` ([`crd`]) describe the desired
//! state; reconcilers read credentials from Kubernetes Secrets, drive the PingOne admin API and the
//! Advanced Identity Cloud APIs toward it and report status conditions.
//!
//! Data flows one way: Kubernetes objects → validated desired state → observed remote state →
//! actions → status.
#![forbid(unsafe_code)]

pub mod admission;
pub mod aic;
pub mod controller;
pub mod crd;
pub mod credentials;
#[cfg(feature = "dev-tools")]
pub mod devkube;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod pingone;
#[cfg(feature = "dev-tools")]
pub mod playground;
pub mod runtime;
pub mod secret;
pub mod server;
#[cfg(feature = "dev-tools")]
pub mod sim;
pub mod status;
pub mod telemetry;
