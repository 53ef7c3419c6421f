//! `pingone-aic-sim`: the PingOne and AIC simulators as a standalone server for manual
//! experiments and for running them in a cluster. Prints the PingOne base URL on the first line
//! of stdout, so a parent process can read where it listens, then one line `aic <name> <url>`
//! per AIC tenant of the seed's `aic` section (each tenant listens on a loopback port of its
//! own, as AIC tenants have hosts of their own).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pingone_aic_sim::aic::AicSimulator;
use pingone_aic_sim::config::SimConfig;
use pingone_aic_sim::control::SimControl;
use pingone_aic_sim::pingone::PingOneSim;

/// Stateful simulators of the PingOne admin API and AIC tenants, with `/_sim/` control APIs.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed file (YAML or JSON) with a `pingone` section (organizations, environments, workers)
    /// and an optional `aic` section (tenants, promotion groups, timings).
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
    let aic = match config.aic.map(AicSimulator::new).transpose() {
        Ok(aic) => aic,
        Err(err) => {
            eprintln!("error: invalid aic seed: {err}");
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
    // The AIC tenants bind before anything is printed, so every printed URL already answers.
    let aic_servers = match &aic {
        Some(aic) => match aic.serve().await {
            Ok(servers) => Some(servers),
            Err(err) => {
                eprintln!("error: cannot serve the AIC tenants: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let mut lines = vec![format!("http://{address}")];
    for (name, url) in aic_servers.iter().flat_map(|s| s.urls()) {
        lines.push(format!("aic {name} {}", url.as_str().trim_end_matches('/')));
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", lines.join("\n"))
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
    if let Some(servers) = aic_servers {
        servers.stop().await;
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
