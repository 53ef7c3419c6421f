//! The end-to-end suite: the operator against a real kube-apiserver and etcd, built from Go
//! modules at pinned versions and started on loopback for the run (`tests/e2e/control-plane/`).
//! What no stand-in can prove is proven here: the API server admits the CRDs and the examples and
//! refuses the invalid ones with their documented messages; the Helm chart installs for real; the
//! operator, holding only its chart ServiceAccount's token, carries the examples to Ready under
//! RBAC as the API server enforces it; a quiet resync writes nothing (the audit log says so);
//! Secrets, deletion policies and pause work; a Lease fails over; the operator rides out an
//! API-server restart. A differential suite sends the same requests to devkube and to the real
//! API server and compares the answers.
//!
//! The target is not part of `cargo test`; run it with its control plane:
//!
//! ```sh
//! bash .ci/e2e                 # builds (or reuses) the control plane, runs the suite, stops it
//! bash .ci/e2e differential    # a filter, as for any test binary
//! ```

#[path = "../it/support/mod.rs"]
mod support;

#[path = "../it/scenario_support/mod.rs"]
mod scenario_support;

mod admission;
mod cluster;
mod differential;
mod operator;
