//! The `pingone-aic-operator` command line: a thin layer over the library.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pingone_aic_operator::crd;

/// Kubernetes operator for PingOne and PingOne Advanced Identity Cloud.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions of all resources as multi-document YAML.
    Crdgen {
        /// Write one file per CRD (`<plural>.<group>.yaml`) into this folder instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => match crdgen(out_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

fn crdgen(out_dir: Option<PathBuf>) -> Result<(), String> {
    let Some(dir) = out_dir else {
        let yaml = crd::crds_yaml().map_err(|e| format!("cannot render the CRDs: {e}"))?;
        print!("{yaml}");
        return Ok(());
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for definition in crd::all() {
        let path = dir.join(crd::file_name(&definition));
        let yaml = crd::to_yaml(&definition).map_err(|e| format!("cannot render a CRD: {e}"))?;
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
