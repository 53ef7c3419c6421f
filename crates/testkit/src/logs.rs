//! Logs captured for one test while other tests of the same binary run beside it: the
//! subscriber is the default of every thread of the test's own runtime (not the process's
//! global default), so what it captures is what that test's code logged.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

/// A `MakeWriter` keeping everything written, for scanning.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
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
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Runs `test` on a multi-threaded runtime (two workers) whose every thread, and the calling
/// one, log to `dispatch`.
pub fn run_logging_to<F: Future>(dispatch: Dispatch, test: F) -> F::Output {
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The guard would restore the previous default when dropped; a runtime thread keeps
            // this one for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("a tokio runtime");
    tracing::dispatcher::with_default(&dispatch, || runtime.block_on(test))
}
