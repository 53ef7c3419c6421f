//! Logging: JSON lines for clusters (one object per event, easy to ship and query) or
//! human-readable lines for a terminal, filtered by `tracing` directives such as
//! `info,pingone_aic_operator=debug`.

use std::io;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Human,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directives do not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The directives as given.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// A global subscriber is already installed.
    #[error("logging is already initialised")]
    AlreadyInitialised,
}

/// Builds a subscriber writing to `writer`; used by [`init`] and by tests that capture logs.
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).map_err(|err| TelemetryError::InvalidFilter {
        filter: filter.to_owned(),
        reason: err.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    Ok(match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        ),
        LogFormat::Human => Box::new(builder.with_ansi(false).finish()),
    })
}

/// Installs the global subscriber, writing to standard error.
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let subscriber = subscriber(format, filter, io::stderr)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInitialised)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn json_lines_carry_fields_and_respect_the_filter() {
        let capture = Capture::default();
        let subscriber = subscriber(LogFormat::Json, "info", capture.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(resource = "acme-dev", "reconciled");
            tracing::debug!("filtered out");
        });
        let lines: Vec<serde_json::Value> = capture
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["message"], "reconciled");
        assert_eq!(lines[0]["resource"], "acme-dev");
        assert_eq!(lines[0]["level"], "INFO");
    }

    #[test]
    fn human_lines_are_plain_text() {
        let capture = Capture::default();
        let subscriber = subscriber(LogFormat::Human, "debug", capture.clone()).unwrap();
        tracing::subscriber::with_default(subscriber, || tracing::debug!("hello"));
        let text = capture.text();
        assert!(text.contains("DEBUG") && text.contains("hello"), "{text}");
        assert!(!text.contains('\u{1b}'), "no colour codes in log files");
    }

    #[test]
    fn a_bad_filter_is_a_clear_error() {
        let Err(err) = subscriber(LogFormat::Json, "info,[", io::sink) else {
            panic!("a bad filter was accepted");
        };
        assert!(err.to_string().contains("invalid log filter"), "{err}");
    }
}
