//! `pingone-aic-sim`: the PingOne simulator (and, later, the AIC simulator) as a standalone
//! server for the playground and manual experiments. Prints its base URL on the first line of
//! stdout, so a parent process can read where it listens.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pingone_aic_operator::sim::config::SimConfig;
use pingone_aic_operator::sim::control::SimControl;
use pingone_aic_operator::sim::pingone::PingOneSim;

/// Stateful simulators of the PingOne admin API, with a `/_sim/` control API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed file (YAML or JSON) with a `pingone` section: organizations, environments, workers.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|err| err.to_string())
            .and_then(|text| SimConfig::parse(&text))
        {
            Ok(config) => config,
            Err(err) => {
                eprintln!("error: cannot read {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => SimConfig::default(),
    };
    let control = SimControl::new();
    let pingone = match PingOneSim::new(config.pingone, control.clone()) {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("error: invalid pingone seed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "http://{address}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    for worker in pingone.workers() {
        eprintln!(
            "seeded worker {:?}: client id {} in environment {}",
            worker.name, worker.id, worker.environment_id
        );
    }
    let served = axum::serve(listener, pingone.app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
