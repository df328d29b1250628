//! One `claude` process in stream-json mode (`--input-format stream-json`), spoken to a turn
//! at a time: a user message is one JSON line on stdin, and the turn ends at the `result` line
//! on stdout; the process then waits for the next line.
//!
//! Between two turns the conversation is cleared with the CLI's own `/clear` ([`Session::clear`],
//! a local command: no API call). The clear is written at once and checked lazily: the next
//! turn first reads the clear's result line ([`Session::settle`]) and refuses the process unless
//! it says the clear happened, so a process that kept a conversation never answers another
//! question. With the pinned CLI (2.1.332) the request after a clear carries only the CLI's
//! note that a local command ran and the new question (tested with the stand-in).
//!
//! Stdout is read line by line with a cap per turn; stderr is drained all the time by a task
//! (a full pipe would block the CLI) and keeps its last [`STDERR_LIMIT`] bytes for the logs.

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// One turn's output is the answer and a few status lines; anything bigger is not an answer
/// to a question.
const STDOUT_LIMIT: usize = 8 * 1024 * 1024;
/// Stderr is only logged; the rest is read and dropped so the CLI never blocks.
const STDERR_LIMIT: usize = 64 * 1024;
/// How long to wait for a process that closed its stdout to exit.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// The CLI's local command that starts a new conversation.
const CLEAR: &str = "/clear";

/// How a turn ended.
pub(crate) enum Turn {
    /// The turn's result line, and every line the turn printed (for the logs). The process
    /// lives on, waiting for the next line.
    Result(Box<CliResult>, Vec<u8>),
    /// The process closed its output before a result line: its exit status (none if it did
    /// not exit within a grace period) and what it printed.
    Exited(Option<ExitStatus>, Vec<u8>),
}

fn not_cleared() -> std::io::Error {
    std::io::Error::other("the Claude Code CLI did not confirm clearing its conversation")
}

fn too_much_output() -> std::io::Error {
    std::io::Error::other(format!(
        "the Claude Code CLI printed more than {STDOUT_LIMIT} bytes in one turn"
    ))
}

/// A running CLI and its pipes; see the module docs.
pub(crate) struct Session {
    pub(crate) child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// `/clear` lines written whose result line has not been read yet.
    pending_clears: u32,
    /// Questions this process has answered.
    pub(crate) turns: u32,
}

impl Session {
    /// Takes the pipes of `child` (spawned with all three piped) and starts draining stderr.
    pub(crate) fn new(mut child: Child) -> std::io::Result<Self> {
        let missing = || std::io::Error::other("a pipe of the Claude Code CLI is missing");
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let kept = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(drain(stderr, Arc::clone(&kept)));
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr: kept,
            pending_clears: 0,
            turns: 0,
        })
    }

    /// Whether the process still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Writes `/clear` (checked by the next [`Session::settle`]). Also the first line of a
    /// process started ahead: it loads the CLI's code for a turn before a caller waits on it.
    pub(crate) async fn clear(&mut self) -> std::io::Result<()> {
        self.write_line(&user_message(CLEAR)).await?;
        self.pending_clears += 1;
        Ok(())
    }

    /// Reads the result of every clear written since the last turn; fails unless each says
    /// the conversation was cleared.
    pub(crate) async fn settle(&mut self) -> std::io::Result<()> {
        while self.pending_clears > 0 {
            match self.read_turn().await? {
                Turn::Result(result, _) if result.is_clear() => self.pending_clears -= 1,
                _ => return Err(not_cleared()),
            }
        }
        Ok(())
    }

    /// Sends one user message (a stream-json line) and reads until its result line.
    pub(crate) async fn turn(&mut self, line: &str) -> std::io::Result<Turn> {
        self.settle().await?;
        // A CLI that exits early (bad flag, no credentials) closes the pipe first; its exit
        // status and output tell the real story.
        if let Err(e) = self.write_line(line).await {
            tracing::debug!(error = %e, "writing the prompt to the Claude Code CLI failed");
        }
        let turn = self.read_turn().await?;
        if matches!(turn, Turn::Result(..)) {
            self.turns += 1;
        }
        Ok(turn)
    }

    /// What the CLI wrote on stderr since the last call (at most [`STDERR_LIMIT`] bytes).
    pub(crate) fn take_stderr(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.stderr))
    }

    async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await
    }

    async fn read_turn(&mut self) -> std::io::Result<Turn> {
        let mut seen = Vec::new();
        loop {
            let room = STDOUT_LIMIT.saturating_sub(seen.len());
            if room == 0 {
                return Err(too_much_output());
            }
            let mut line = Vec::new();
            let n = (&mut self.stdout)
                .take(room as u64)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                let status = tokio::time::timeout(EXIT_GRACE, self.child.wait())
                    .await
                    .ok()
                    .transpose()?;
                return Ok(Turn::Exited(status, seen));
            }
            let result = parse_result_line(&line);
            seen.extend_from_slice(&line);
            if let Some(result) = result {
                return Ok(Turn::Result(Box::new(result), seen));
            }
        }
    }
}

fn lock(kept: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    // Only appends and takes happen under the lock: a poisoned buffer is still bytes.
    kept.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads stderr until the process closes it, keeping the last [`STDERR_LIMIT`] bytes.
async fn drain(mut pipe: tokio::process::ChildStderr, kept: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let mut kept = lock(&kept);
        kept.extend_from_slice(&buf[..n]);
        let over = kept.len().saturating_sub(STDERR_LIMIT);
        kept.drain(..over);
    }
}

/// The one line of stream-json input: a user turn (JSON, so its text is data, never flags or
/// shell syntax).
pub(crate) fn user_message(prompt: &str) -> String {
    let mut line = serde_json::json!({
        "type": "user",
        "message": {"role": "user", "content": prompt},
    })
    .to_string();
    line.push('\n');
    line
}

/// The result line of `--output-format stream-json` (after the `system` and `assistant`
/// lines of a turn): the same object `--output-format json` prints.
#[derive(Debug, Deserialize)]
pub(crate) struct CliResult {
    #[serde(rename = "type")]
    kind: String,
    pub(crate) subtype: Option<String>,
    #[serde(default)]
    pub(crate) is_error: bool,
    api_error_status: Option<serde_json::Value>,
    pub(crate) result: Option<String>,
    pub(crate) total_cost_usd: Option<f64>,
    pub(crate) usage: Option<CliUsage>,
    #[serde(rename = "modelUsage")]
    pub(crate) model_usage: Option<serde_json::Map<String, serde_json::Value>>,
    /// The local command the line answers (`"clear"`), absent for a model's turn.
    local_command: Option<String>,
}

impl CliResult {
    pub(crate) fn api_status(&self) -> Option<u16> {
        self.api_error_status
            .as_ref()
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .and_then(|v| u16::try_from(v).ok())
    }

    /// The result of a `/clear` that happened.
    fn is_clear(&self) -> bool {
        !self.is_error
            && self.subtype.as_deref() == Some("success")
            && self.local_command.as_deref() == Some("clear")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CliUsage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cache_read_input_tokens: u64,
    pub(crate) cache_creation_input_tokens: u64,
}

/// `line` as a result line, if it is one.
pub(crate) fn parse_result_line(line: &[u8]) -> Option<CliResult> {
    let text = std::str::from_utf8(line).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str::<CliResult>(text)
        .ok()
        .filter(|r| r.kind == "result")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_found_and_clears_recognised() {
        assert!(parse_result_line(b"not json\n").is_none());
        assert!(parse_result_line(br#"{"type":"system","subtype":"init"}"#).is_none());
        let answer = parse_result_line(
            br#"{"type":"result","subtype":"success","is_error":false,"result":"SELECT 1"}"#,
        )
        .unwrap();
        assert_eq!(answer.result.as_deref(), Some("SELECT 1"));
        assert!(!answer.is_clear());
        let clear = parse_result_line(
            br#"{"type":"result","subtype":"success","is_error":false,"result":"","local_command":"clear"}"#,
        )
        .unwrap();
        assert!(clear.is_clear());
        let failed = parse_result_line(
            br#"{"type":"result","subtype":"error_during_execution","is_error":true,"local_command":"clear"}"#,
        )
        .unwrap();
        assert!(!failed.is_clear());
    }

    #[test]
    fn a_message_is_one_json_line() {
        let line = user_message("a \"quoted\"\nquestion");
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["message"]["content"], "a \"quoted\"\nquestion");
    }
}
