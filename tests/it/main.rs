//! The operator's integration tests, one binary: its clients against the simulators, its
//! controllers against devkube, the playground's scenarios, the fault campaign and the security
//! scans. Modules ending in `support`, `aic_common` and `evidence` are shared helpers.

mod aic_common;
mod evidence;
mod pingone_support;
mod scenario_support;
mod support;

mod aic_contract;
mod aic_pingone;
mod aic_sim;
mod bad_input;
mod crds;
mod devkube_controller;
mod devkube_kubectl;
mod devkube_lease;
mod devkube_semantics;
mod devkube_tcp;
mod examples;
mod fault_campaign;
mod kubectl_reads_manifests;
mod operator_failover;
mod pingone_contract;
mod pingone_logs;
mod pingone_sim;
mod rate_limits;
mod scenario_automatic_promotion;
mod scenario_call_budget;
mod scenario_drift;
mod scenario_examples;
mod scenario_lifecycle;
mod scenario_observe;
mod scenario_outage;
mod scenario_promotion;
mod scenario_quiet_resync;
mod scenario_rate_budgets;
mod scenario_regions;
mod scenario_rejected_credentials;
mod scenario_rollback;
mod scenario_rotation;
mod scenario_steady_state;
mod security_inputs;
mod security_scan;
mod status_command;
