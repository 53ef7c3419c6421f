//! The operator binary as a process of its own ([`testkit::process::Process`]).

pub use testkit::process::Process as OperatorProcess;

/// Starts `pingone-aic-operator <args>` (a container's args, `run` first) with `env` added to
/// its environment; its logs must go to stderr as JSON.
pub fn start(args: &[String], env: &[(String, String)]) -> OperatorProcess {
    OperatorProcess::start(env!("CARGO_BIN_EXE_pingone-aic-operator"), args, env)
}
