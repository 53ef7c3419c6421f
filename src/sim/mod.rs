//! Stateful stand-ins for the SaaS APIs the operator drives, for tests and the playground.

pub mod aic;
