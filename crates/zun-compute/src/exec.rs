//! `execute` with `run=true`: a command run to completion in a container,
//! its output kept in bounded memory.

use std::time::Duration;

use futures_util::StreamExt;
pub use zun_types::host::ExecOutput;

use crate::runtime::{ContainerIo, RuntimeError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecRun {
    Finished(ExecOutput),
    /// The command was still running at the deadline; it is left running.
    TimedOut,
}

/// How long to wait for the engine to report the exit code once the output
/// stream has closed (the two are not ordered inside the engine).
const EXIT_CODE_WAIT: Duration = Duration::from_secs(5);
const EXIT_CODE_POLL: Duration = Duration::from_millis(20);

/// Runs `command` in the container `name` and collects at most
/// `max_output` bytes of its output (the end of it: a failing command says
/// why last), within `timeout`.
pub async fn run_to_completion(
    io: &dyn ContainerIo,
    name: &str,
    command: &[String],
    max_output: usize,
    timeout: Duration,
) -> Result<ExecRun, RuntimeError> {
    let run = async {
        let exec_id = io.exec_create(name, command, false).await?;
        let mut session = io.exec_start(&exec_id, false).await?;
        let mut output = TailBuffer::new(max_output);
        while let Some(chunk) = session.output.next().await {
            output.push(&chunk?);
        }
        drop(session);
        let exit_code = wait_for_exit_code(io, &exec_id).await?;
        Ok(ExecRun::Finished(ExecOutput {
            output: output.into_text(),
            exit_code,
        }))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Ok(ExecRun::TimedOut),
    }
}

async fn wait_for_exit_code(io: &dyn ContainerIo, exec_id: &str) -> Result<i64, RuntimeError> {
    let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
    loop {
        if let Some(code) = io.exec_exit_code(exec_id).await? {
            return Ok(code);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RuntimeError::Unavailable(format!(
                "the engine did not report the exit code of exec {exec_id}"
            )));
        }
        tokio::time::sleep(EXIT_CODE_POLL).await;
    }
}

/// The last `max` bytes of a stream, with a count of what was dropped.
/// Holds at most twice `max` at any time.
#[derive(Debug)]
pub(crate) struct TailBuffer {
    bytes: Vec<u8>,
    max: usize,
    dropped: u64,
}

impl TailBuffer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            bytes: Vec::new(),
            max,
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        // A chunk larger than the whole budget only contributes its end.
        let keep_from = chunk.len().saturating_sub(self.max);
        self.dropped += keep_from as u64;
        self.bytes.extend_from_slice(&chunk[keep_from..]);
        if self.bytes.len() > self.max.saturating_mul(2) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let excess = self.bytes.len().saturating_sub(self.max);
        self.bytes.drain(..excess);
        self.dropped += excess as u64;
    }

    pub(crate) fn into_text(mut self) -> String {
        self.trim();
        let text = String::from_utf8_lossy(&self.bytes);
        if self.dropped == 0 {
            text.into_owned()
        } else {
            format!("[{} bytes of earlier output omitted]\n{text}", self.dropped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut buffer = TailBuffer::new(10);
        buffer.push(b"hello ");
        buffer.push(b"you");
        assert_eq!(buffer.into_text(), "hello you");
    }

    #[test]
    fn large_output_keeps_its_end_and_says_how_much_was_dropped() {
        let mut buffer = TailBuffer::new(4);
        for chunk in [&b"abc"[..], b"defgh", b"ij", b"klmnopqrstuvwxyz"] {
            buffer.push(chunk);
            assert!(buffer.bytes.len() <= 8, "never holds more than twice max");
        }
        assert_eq!(
            buffer.into_text(),
            "[22 bytes of earlier output omitted]\nwxyz"
        );
    }

    #[test]
    fn zero_budget_keeps_nothing_but_counts() {
        let mut buffer = TailBuffer::new(0);
        buffer.push(b"abc");
        assert_eq!(buffer.into_text(), "[3 bytes of earlier output omitted]\n");
    }
}
