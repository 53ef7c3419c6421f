//! Stateful stand-ins for the SaaS APIs the operator drives, for tests and the playground.
//! Each models state and rules, not canned replies; [`control`] is the shared `/_sim/` API
//! (call log, fault injection, clock) that every simulator mounts.

pub mod aic;
pub mod config;
pub mod control;
pub mod pingone;
