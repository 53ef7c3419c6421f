//! End to end: the real controllers against devkube and both simulators, seeded from
//! `deploy/examples/`, carry every example resource to Ready.

use std::time::Duration;

use pingone_aic_operator::playground::{Playground, PlaygroundOptions, repository_examples};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_become_ready() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing::subscriber::set_global_default(
            pingone_aic_operator::telemetry::subscriber(
                pingone_aic_operator::telemetry::LogFormat::Human,
                &filter,
                std::io::stderr,
            )
            .unwrap(),
        );
    }
    let playground = Playground::start(PlaygroundOptions {
        examples: repository_examples(),
        ..Default::default()
    })
    .await
    .expect("the playground starts");
    let result = playground
        .wait_ready(Duration::from_secs(300), |progress| {
            for line in progress {
                eprintln!(
                    "{:<45} {:<6} {:<24} {}",
                    line.resource, line.ready, line.reason, line.message
                );
            }
            eprintln!("--");
        })
        .await;
    let summary = playground.summary().await;
    eprintln!("{summary:?}");
    playground.stop().await;
    let progress = result.unwrap_or_else(|last| panic!("not everything became Ready: {last:#?}"));
    assert!(progress.iter().all(|p| p.ready));
}
