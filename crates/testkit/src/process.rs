//! A binary under test running as its own process, its stderr lines (JSON logs) collected;
//! killed when dropped, so no test leaves one behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// A child process whose stderr is collected line by line.
pub struct Process {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `program <args>` with `env` added to its environment; stdout is dropped, stderr
    /// collected (the helpers below read it as JSON log lines).
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        program: impl AsRef<std::path::Path>,
        args: &[S],
        env: &[(String, String)],
    ) -> Self {
        let program = program.as_ref();
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", program.display()));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, logs }
    }

    /// Whether a log line's message starts with `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.count_logged(message) > 0
    }

    /// How many log lines' messages start with `message`.
    pub fn count_logged(&self, message: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/fields/message")
                            .or_else(|| v.get("message"))
                            .and_then(|m| m.as_str().map(str::to_owned))
                    })
                    .is_some_and(|m| m.starts_with(message))
            })
            .count()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line logged so far, for a failure message.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Asks the process to stop (SIGTERM, as the kubelet does) and waits up to `timeout` for it
    /// to exit; whether it exited successfully.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> bool {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "SIGTERM could not be sent");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not stop on SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Kills the process without letting it shut down, as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
