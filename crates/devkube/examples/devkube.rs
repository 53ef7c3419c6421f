//! Runs devkube, the development stand-in for the Kubernetes API, on 127.0.0.1 and writes a
//! kubeconfig for kubectl: `cargo run -p devkube --example devkube -- [--empty] [KUBECONFIG_PATH] [PORT]`.
//! A development tool only; it has no authentication.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use devkube::{DevKube, Options};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let path = PathBuf::from(args.next().unwrap_or_else(|| "devkube.kubeconfig".into()));
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    // `--empty`: only built-in resources, so CRDs can be applied as on a fresh cluster.
    let empty = std::env::args().any(|a| a == "--empty");
    let devkube = DevKube::with_options(Options {
        crds: if empty {
            Vec::new()
        } else {
            pingone_aic_operator::crd::all()
        },
        ..Options::default()
    });
    let server = devkube
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    server.write_kubeconfig(&path)?;
    println!(
        "devkube listening on {}; use KUBECONFIG={}",
        server.url(),
        path.display()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
