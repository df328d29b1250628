//! [`ClaudeCli`]: the `Llm` port on the Claude Code CLI: `claude -p` in stream-json mode
//! ([`crate::session`]), one completion per turn — on a warm process when one with the same
//! system prompt waits ([`crate::warm`]: reused turn after turn, its conversation cleared in
//! between), else on a process started for the call.
//!
//! The CLI is treated as untrusted: it is spawned directly (never through a shell) with an
//! empty environment plus an allow-list, a private home, config and working directory, no
//! tools, and the conversation on stdin so nothing the user typed is ever parsed as an
//! argument. Each process leads its own process group; when the deadline passes or the caller
//! drops the future, the whole group is killed.
//!
//! Flags and environment were checked against Claude Code 2.1.332 (`scripts/claude-version`);
//! `--bare` keeps hooks, plugins, CLAUDE.md discovery and the environment section of the
//! default prompt out of the request.

use std::ffi::OsString;
use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::Error;
use bqai_core::llm::{
    Llm, LlmError, LlmErrorKind, LlmInfo, LlmMessage, LlmRequest, LlmResponse, LlmUsage,
};
use bqai_core::model::ComponentHealth;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::config::{LlmConfig, LlmKind};
use crate::http::{max_tokens, timeout_error, truncate};
use crate::limiter::Limiter;
use crate::session::{CliResult, Session, Turn, user_message};
use crate::warm::{Warm, WarmKey, WarmPool};

/// The CLI's only dependencies are in these; nothing from the service's own PATH is needed.
const CHILD_PATH: &str = "/usr/bin:/bin";
/// Linux refuses a single argument above 128 KiB (MAX_ARG_STRLEN); larger system prompts go
/// through `--system-prompt-file` in the private directory instead.
const SYSTEM_PROMPT_ARG_LIMIT: usize = 96 * 1024;
const LOGGED_CHARS: usize = 2000;
/// How long to wait for the killed process to be reaped before leaving it to tokio's reaper.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// The Claude Code CLI adapter.
#[derive(Debug)]
pub struct ClaudeCli {
    command: PathBuf,
    dirs: PrivateDirs,
    credential: Credential,
    base_url: Option<String>,
    model: Option<String>,
    timeout: Duration,
    max_retries: u32,
    default_max_tokens: u32,
    limiter: Limiter,
    /// Processes waiting for the next call with their prompt (`llm.warm_processes`).
    pool: WarmPool,
    /// Questions one process answers before it is replaced (`llm.warm_max_turns`).
    max_turns: u32,
}

#[derive(Debug)]
enum Credential {
    ApiKey(SecretString),
    AuthToken(SecretString),
}

/// The CLI's private tree, all 0700: `home/` (HOME), `home/config/` (CLAUDE_CONFIG_DIR),
/// `work/` (current directory), `tmp/` (TMPDIR) and `prompts/` (oversized system prompts).
#[derive(Debug, Clone)]
struct PrivateDirs {
    home: PathBuf,
    config: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
    prompts: PathBuf,
}

impl PrivateDirs {
    fn create(root: &Path) -> Result<Self, Error> {
        let home = root.join("home");
        let dirs = Self {
            config: home.join("config"),
            home,
            work: root.join("work"),
            tmp: root.join("tmp"),
            prompts: root.join("prompts"),
        };
        for dir in [
            root,
            &dirs.home,
            &dirs.config,
            &dirs.work,
            &dirs.tmp,
            &dirs.prompts,
        ] {
            create_private_dir(dir)?;
        }
        Ok(dirs)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let failed = |e: std::io::Error| {
        Error::InvalidRequest(format!(
            "llm: cannot create the private directory {} for the Claude Code CLI: {e}",
            dir.display()
        ))
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    // An existing directory keeps its mode on create; tighten it (the CLI writes its
    // credentials cache and transcripts under here).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)
}

impl ClaudeCli {
    /// An adapter for `config` (its `kind` is ignored): resolves `command` (default `claude`
    /// on `PATH`) to an absolute path and creates the private directories under `work_dir`
    /// (default `<data_dir>/claude-cli`).
    pub fn new(config: &LlmConfig, data_dir: &Path) -> Result<Self, Error> {
        let config = LlmConfig {
            kind: LlmKind::ClaudeCli,
            ..config.clone()
        };
        config.validate()?;
        let command = resolve_command(config.command.as_deref())?;
        let root = config
            .work_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("claude-cli"));
        let root = std::path::absolute(&root)
            .map_err(|e| Error::InvalidRequest(format!("llm: work_dir {}: {e}", root.display())))?;
        let credential = match (&config.api_key, &config.auth_token) {
            (Some(key), _) => Credential::ApiKey(key.clone()),
            (None, Some(token)) => Credential::AuthToken(token.clone()),
            (None, None) => {
                return Err(Error::InvalidRequest(
                    "llm: kind = \"claude-cli\" needs api_key or auth_token".into(),
                ));
            }
        };
        Ok(Self {
            command,
            dirs: PrivateDirs::create(&root)?,
            credential,
            base_url: config.base_url.clone(),
            model: config.model.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            max_retries: config.max_retries,
            default_max_tokens: config.max_tokens,
            limiter: Limiter::new(config.max_concurrency, config.max_queue),
            pool: WarmPool::new(config.warm_processes),
            max_turns: config.warm_max_turns,
        })
    }

    /// The absolute path of the `claude` executable in use.
    pub fn command(&self) -> &Path {
        &self.command
    }

    /// Calls that found a warm process, calls that did not, and processes waiting now.
    pub fn warm_counts(&self) -> (u64, u64, usize) {
        let (hits, misses) = self.pool.counts();
        (hits, misses, self.pool.idle())
    }

    /// Starts a CLI that reads user messages as stream-json on stdin and answers each on
    /// stdout. `traceparent`: the trace the call belongs to (none for a process started ahead).
    fn start(
        &self,
        key: WarmKey,
        max_tokens: u32,
        system: SystemPrompt,
        traceparent: Option<String>,
    ) -> Result<Warm, LlmError> {
        let unavailable = |e: std::io::Error| {
            tracing::warn!(command = %self.command.display(), error = %e, "cannot start the Claude Code CLI");
            LlmError::new(
                LlmErrorKind::Unavailable,
                "the Claude Code CLI could not be started",
            )
        };
        let traced = traceparent.is_some();
        let child = self
            .command_for(max_tokens, &system, traceparent)
            .spawn()
            .map_err(unavailable)?;
        // Armed before anything else can fail: from here on, dropping the `Warm` kills
        // whatever the CLI started.
        let group = ProcessGroup::new(child.id());
        let session = Session::new(child).map_err(unavailable)?;
        Ok(Warm {
            key,
            session,
            group,
            _system: system,
            traced,
            idle_since: Instant::now(),
        })
    }

    /// Starts a process for the next call with this system prompt and cap, and has it clear
    /// its (empty) conversation at once, which runs the CLI's turn code before a caller waits
    /// on it.
    async fn refill(&self, key: WarmKey, system_text: String, max_tokens: u32) {
        let Ok(system) = SystemPrompt::new(system_text, &self.dirs.prompts).await else {
            return; // logged; the next call starts its own
        };
        let Ok(mut warm) = self.start(key, max_tokens, system, None) else {
            return; // logged
        };
        match warm.session.clear().await {
            Ok(()) => self.pool.put(warm),
            Err(e) => tracing::warn!(error = %e, "the Claude Code CLI started ahead failed"),
        }
    }

    /// After an answered call: the process clears its conversation and waits for the next
    /// call with its prompt, unless it has answered `max_turns` questions or carries a
    /// call's trace context; then a fresh one is started in its place.
    async fn recycle(&self, mut warm: Warm, system_text: String, max_tokens: u32) {
        if self.pool.capacity() == 0 {
            retire(warm).await;
            return;
        }
        if !warm.traced && warm.session.turns < self.max_turns {
            match warm.session.clear().await {
                Ok(()) => {
                    warm.idle_since = Instant::now();
                    self.pool.put(warm);
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "the Claude Code CLI could not be reused"),
            }
        }
        let key = warm.key;
        retire(warm).await;
        self.refill(key, system_text, max_tokens).await;
    }

    fn command_for(
        &self,
        max_tokens: u32,
        system: &SystemPrompt,
        traceparent: Option<String>,
    ) -> Command {
        // The one subprocess bqai spawns: the configured executable by absolute path, with
        // arguments (no shell) and a scrubbed environment (below).
        #[allow(clippy::disallowed_methods)]
        let mut cmd = Command::new(&self.command);
        // stream-json in and out, so a process can be started before its message is known
        // (crate::warm); `--verbose` is required with stream-json output.
        cmd.args([
            "-p",
            "--bare",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--tools",
            "",
            "--no-session-persistence",
            "--max-turns",
            "1",
        ]);
        // `--flag=value` keeps a value that starts with a dash from ever reading as a flag.
        if let Some(model) = &self.model {
            cmd.arg(format!("--model={model}"));
        }
        match system {
            SystemPrompt::Arg(text) => cmd.arg(format!("--system-prompt={text}")),
            SystemPrompt::File(file) => {
                let mut arg = OsString::from("--system-prompt-file=");
                arg.push(&file.0);
                cmd.arg(arg)
            }
        };

        cmd.env_clear()
            .env("PATH", CHILD_PATH)
            .env("HOME", &self.dirs.home)
            .env("CLAUDE_CONFIG_DIR", &self.dirs.config)
            .env("TMPDIR", &self.dirs.tmp)
            // Without these each run also asks for a session title, checks for updates and
            // sends telemetry: extra latency, cost and traffic to third parties.
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("DISABLE_TELEMETRY", "1")
            .env("DISABLE_ERROR_REPORTING", "1")
            .env("DISABLE_NON_ESSENTIAL_MODEL_CALLS", "1")
            // The CLI's defaults (10 retries, 10 minutes per attempt) would outlive our own
            // deadline by far.
            .env("CLAUDE_CODE_MAX_RETRIES", self.max_retries.to_string())
            .env("API_TIMEOUT_MS", self.timeout.as_millis().to_string())
            .env("CLAUDE_CODE_MAX_OUTPUT_TOKENS", max_tokens.to_string())
            // By default the CLI asks for extended thinking with a budget (1024 tokens for
            // Sonnet 4.5) that may exceed a small max_tokens, which the API refuses; one SQL
            // statement does not need it, and it would multiply latency and cost.
            .env("MAX_THINKING_TOKENS", "0");
        match &self.credential {
            Credential::ApiKey(key) => cmd.env("ANTHROPIC_API_KEY", key.expose_secret()),
            Credential::AuthToken(token) => cmd.env("ANTHROPIC_AUTH_TOKEN", token.expose_secret()),
        };
        if let Some(url) = &self.base_url {
            cmd.env("ANTHROPIC_BASE_URL", url);
        }
        if let Some(model) = &self.model {
            cmd.env("ANTHROPIC_MODEL", model);
        }
        // The W3C trace context, as OpenTelemetry's environment carrier spells it, so the CLI
        // (or a wrapper around it) can join the ask's trace.
        if let Some(tp) = traceparent {
            cmd.env("TRACEPARENT", tp);
        }
        cmd.current_dir(&self.dirs.work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd
    }

    async fn run(
        &self,
        request: &LlmRequest,
        deadline: tokio::time::Instant,
    ) -> Result<LlmResponse, LlmError> {
        // Latency as the caller sees it, queueing included (as for the HTTP adapters).
        let started = Instant::now();
        let _slot = match tokio::time::timeout_at(deadline, self.limiter.acquire()).await {
            Ok(slot) => slot?,
            Err(_) => return Err(timeout_error(self.timeout)),
        };
        let system_text = request.system_text();
        let max_tokens = max_tokens(request.max_tokens, self.default_max_tokens);
        let key = WarmKey::new(&system_text, max_tokens);
        let message = user_message(&as_message(render_prompt(&request.messages)));
        let mut taken = self.pool.take(key);
        if let Some(warm) = &mut taken {
            // A warm process must first confirm the clear after its previous turn; one that
            // cannot is killed and the call starts its own.
            if let Err(e) = tokio::time::timeout_at(deadline, warm.session.settle())
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("timed out")))
            {
                tracing::warn!(error = %e, "a warm Claude Code CLI was not usable; starting another");
                taken = None;
            }
        }
        let was_warm = taken.is_some();
        let mut warm = match taken {
            Some(warm) => warm,
            None => {
                let system = SystemPrompt::new(system_text.clone(), &self.dirs.prompts).await?;
                self.start(key, max_tokens, system, bqai_trace::traceparent())?
            }
        };
        tracing::debug!(warm = was_warm, "Claude Code CLI call");

        let turn = match tokio::time::timeout_at(deadline, warm.session.turn(&message)).await {
            Ok(Ok(turn)) => turn,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "talking to the Claude Code CLI failed");
                retire(warm).await;
                return Err(LlmError::new(
                    LlmErrorKind::Unavailable,
                    "the Claude Code CLI failed",
                ));
            }
            Err(_) => {
                retire(warm).await;
                tracing::warn!(timeout = ?self.timeout, "the Claude Code CLI did not answer in time; killed it");
                return Err(timeout_error(self.timeout));
            }
        };
        let latency = started.elapsed();
        let answer = match turn {
            Turn::Result(result, stdout) => {
                let stderr = warm.session.take_stderr();
                self.interpret(None, Some(&result), &stdout, &stderr, latency)
            }
            Turn::Exited(status, stdout) => {
                // Give the stderr drain a moment to read what the exiting CLI said.
                tokio::task::yield_now().await;
                let stderr = warm.session.take_stderr();
                self.interpret(status, None, &stdout, &stderr, latency)
            }
        };
        if answer.is_ok() {
            // After the answer is read, so reusing or replacing the process does not slow this
            // call down much (a line written, or a process spawned); not after a failure, so a
            // CLI that cannot work is not started again and again.
            self.recycle(warm, system_text, max_tokens).await;
        } else {
            retire(warm).await;
        }
        answer
    }

    /// The answer of a turn: its result line, or, when the CLI exited before one, its exit
    /// status (`None` while it runs on).
    fn interpret(
        &self,
        status: Option<ExitStatus>,
        result: Option<&CliResult>,
        stdout: &[u8],
        stderr: &[u8],
        latency: Duration,
    ) -> Result<LlmResponse, LlmError> {
        let stderr_text = String::from_utf8_lossy(stderr);
        let status_text = status.map_or_else(|| "running".to_string(), |s| s.to_string());
        let exited_ok = status.is_none_or(|s| s.success());
        let Some(result) = result else {
            tracing::warn!(
                status = %status_text,
                stdout = %truncate(&String::from_utf8_lossy(stdout), LOGGED_CHARS),
                stderr = %truncate(&stderr_text, LOGGED_CHARS),
                "the Claude Code CLI gave no JSON result"
            );
            return Err(if exited_ok {
                // Seen when the CLI is interrupted (SIGINT): exit 0 and nothing on stdout.
                LlmError::new(
                    LlmErrorKind::BadResponse,
                    "the Claude Code CLI ended without an answer",
                )
            } else {
                LlmError::new(
                    LlmErrorKind::Unavailable,
                    format!(
                        "the Claude Code CLI failed ({})",
                        status.map_or_else(|| "no exit status".into(), describe)
                    ),
                )
            });
        };
        let text = result.result.clone().unwrap_or_default();
        if result.is_error || !exited_ok {
            let api_status = result.api_status();
            tracing::warn!(
                status = %status_text,
                api_status,
                subtype = ?result.subtype,
                result = %truncate(&text, LOGGED_CHARS),
                stderr = %truncate(&stderr_text, LOGGED_CHARS),
                "the Claude Code CLI reported an error"
            );
            return Err(api_error(api_status));
        }
        if !stderr.is_empty() {
            tracing::debug!(stderr = %truncate(&stderr_text, LOGGED_CHARS), "Claude Code CLI stderr");
        }
        if text.trim().is_empty() {
            return Err(LlmError::new(
                LlmErrorKind::BadResponse,
                "the language model answered with no text",
            ));
        }
        let usage = result.usage.as_ref();
        Ok(LlmResponse {
            text,
            model: result
                .model_usage
                .as_ref()
                .and_then(main_model)
                .or_else(|| self.model.clone())
                .unwrap_or_else(|| "claude".into()),
            usage: usage.map_or_else(LlmUsage::default, |u| LlmUsage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_tokens: u.cache_read_input_tokens,
                cache_creation_tokens: u.cache_creation_input_tokens,
            }),
            cost_usd: result.total_cost_usd,
            latency,
        })
    }
}

#[async_trait]
impl Llm for ClaudeCli {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            kind: LlmKind::ClaudeCli.as_str().into(),
            model: self.model.clone(),
        }
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.run(request, deadline).await
    }

    /// `claude` processes running and callers waiting for one.
    fn load(&self) -> Option<bqai_core::llm::LlmLoad> {
        Some(self.limiter.load())
    }

    async fn health(&self) -> ComponentHealth {
        let kind = LlmKind::ClaudeCli.as_str();
        // `claude --version` would be cheap too, but a health check that spawns processes
        // can be turned into a fork bomb by whoever polls /health.
        if !is_executable(&self.command) {
            return ComponentHealth::down(
                kind,
                "the claude executable is missing or not executable",
            );
        }
        if !self.dirs.work.is_dir() || !self.dirs.config.is_dir() {
            return ComponentHealth::down(
                kind,
                "the Claude Code CLI's private directory is missing",
            );
        }
        ComponentHealth::ok(kind)
    }
}

/// Maps `api_error_status` of an `is_error` result. No status means the API was never
/// reached (connection refused, DNS) or the CLI itself failed.
fn api_error(status: Option<u16>) -> LlmError {
    match status {
        Some(401 | 403) => LlmError::new(
            LlmErrorKind::Auth,
            format!(
                "the language model provider refused our credentials (HTTP {})",
                status.unwrap_or_default()
            ),
        ),
        Some(429) => LlmError::new(
            LlmErrorKind::RateLimited,
            "the language model provider is rate-limiting us",
        ),
        Some(code @ (503 | 529)) => LlmError::new(
            LlmErrorKind::Overloaded,
            format!("the language model provider is overloaded (HTTP {code})"),
        ),
        Some(code) => LlmError::new(
            LlmErrorKind::Unavailable,
            format!("the language model provider failed (HTTP {code})"),
        ),
        None => LlmError::new(
            LlmErrorKind::Unavailable,
            "the Claude Code CLI could not get an answer from the language model",
        ),
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown exit status".into(),
    }
}

/// The conversation as one prompt. A single message goes verbatim; earlier turns become a
/// tagged transcript before the current message, since print mode takes one user turn.
fn render_prompt(messages: &[LlmMessage]) -> String {
    let Some((last, earlier)) = messages.split_last() else {
        return String::new();
    };
    if earlier.is_empty() {
        return last.content.clone();
    }
    let mut prompt = String::from("<conversation_so_far>\n");
    for message in earlier {
        let tag = message.role.as_str();
        prompt.push_str(&format!("<{tag}>\n{}\n</{tag}>\n", message.content));
    }
    prompt.push_str("</conversation_so_far>\n\n<current_message>\n");
    prompt.push_str(&last.content);
    prompt.push_str("\n</current_message>");
    prompt
}

/// The prompt as the text of a user turn. The CLI reads a turn that starts with `/` as one
/// of its commands (`/model`, `/clear`, skills): a leading space keeps it a message.
fn as_message(prompt: String) -> String {
    if prompt.starts_with('/') {
        format!(" {prompt}")
    } else {
        prompt
    }
}

/// The system prompt as an argument, or as a private file when it is too long for one.
pub(crate) enum SystemPrompt {
    Arg(String),
    File(PromptFile),
}

impl SystemPrompt {
    async fn new(text: String, dir: &Path) -> Result<Self, LlmError> {
        if text.len() <= SYSTEM_PROMPT_ARG_LIMIT {
            return Ok(SystemPrompt::Arg(text));
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "system-{}-{}.txt",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = PromptFile(path);
        let written = async {
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file.0)
                .await?;
            f.write_all(text.as_bytes()).await?;
            f.flush().await
        };
        written.await.map_err(|e| {
            tracing::warn!(path = %file.0.display(), error = %e, "cannot write the system prompt file");
            LlmError::new(
                LlmErrorKind::Unavailable,
                "the Claude Code CLI's prompt could not be prepared",
            )
        })?;
        Ok(SystemPrompt::File(file))
    }
}

/// Removes its file when the call ends, however it ends.
pub(crate) struct PromptFile(PathBuf);

impl Drop for PromptFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "cannot remove the system prompt file");
        }
    }
}

/// Kills the CLI's process group when dropped: on success (stragglers), on error, on timeout
/// and when the caller drops the `complete` future.
///
/// The group id is the CLI's pid (`process_group(0)`). Linux does not hand out a pid that is
/// still some group's id, so while any member lives the id cannot name a stranger; once all
/// are gone the kill fails harmlessly with ESRCH.
pub(crate) struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn new(pid: Option<u32>) -> Self {
        Self(
            pid.and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    fn kill(&self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Ends a process that is done with: killed with its group and reaped, so it is gone when the
/// call returns.
async fn retire(mut warm: Warm) {
    warm.group.kill();
    reap(&mut warm.session.child).await;
}

async fn reap(child: &mut Child) {
    if tokio::time::timeout(REAP_GRACE, child.wait())
        .await
        .is_err()
    {
        // Still not gone after SIGKILL (stuck in the kernel); kill_on_drop and tokio's
        // orphan reaper take over when `child` is dropped.
        tracing::warn!("the killed Claude Code CLI has not exited yet");
    }
}

/// The model that wrote most of the answer (the CLI may use a small model on the side).
fn main_model(usage: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    usage
        .iter()
        .max_by_key(|(_, u)| u.get("outputTokens").and_then(|t| t.as_u64()).unwrap_or(0))
        .map(|(name, _)| name.clone())
}

/// `name` as given when it has a directory part, else the first executable `name` on PATH.
/// Resolved once at startup so a later change of PATH cannot swap the binary.
fn resolve_command(command: Option<&Path>) -> Result<PathBuf, Error> {
    let command = command.unwrap_or(Path::new("claude"));
    if command.components().count() > 1 {
        let path = std::path::absolute(command).map_err(|e| {
            Error::InvalidRequest(format!("llm: command {}: {e}", command.display()))
        })?;
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(Error::InvalidRequest(format!(
                "llm: command {} is not an executable file; install the Claude Code CLI \
                 (scripts/install-claude.sh) or fix llm.command",
                path.display()
            )))
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(command))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "llm: kind = \"claude-cli\" but no `{}` executable was found on PATH; install \
                 the Claude Code CLI (scripts/install-claude.sh) or set llm.command to its path",
                command.display()
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_goes_verbatim_and_turns_become_a_transcript() {
        assert_eq!(render_prompt(&[]), "");
        assert_eq!(
            render_prompt(&[LlmMessage::user("just $(this)")]),
            "just $(this)"
        );
        let prompt = render_prompt(&[
            LlmMessage::user("first question"),
            LlmMessage::assistant("SELECT 1"),
            LlmMessage::user("and by month?"),
        ]);
        assert_eq!(
            prompt,
            "<conversation_so_far>\n<user>\nfirst question\n</user>\n<assistant>\nSELECT 1\n\
             </assistant>\n</conversation_so_far>\n\n<current_message>\nand by month?\n\
             </current_message>"
        );
    }

    #[test]
    fn api_statuses_map_to_kinds() {
        assert_eq!(api_error(Some(401)).kind, LlmErrorKind::Auth);
        assert_eq!(api_error(Some(403)).kind, LlmErrorKind::Auth);
        assert_eq!(api_error(Some(429)).kind, LlmErrorKind::RateLimited);
        assert_eq!(api_error(Some(529)).kind, LlmErrorKind::Overloaded);
        assert_eq!(api_error(Some(503)).kind, LlmErrorKind::Overloaded);
        assert_eq!(api_error(Some(500)).kind, LlmErrorKind::Unavailable);
        assert_eq!(api_error(Some(400)).kind, LlmErrorKind::Unavailable);
        assert_eq!(api_error(None).kind, LlmErrorKind::Unavailable);
    }

    #[test]
    fn an_error_result_carries_the_api_status() {
        let line = br#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error"}"#;
        let r = crate::session::parse_result_line(line).unwrap();
        assert!(r.is_error);
        assert_eq!(r.api_status(), Some(429));
        let line = br#"{"type":"result","is_error":true,"api_error_status":"529"}"#;
        let r = crate::session::parse_result_line(line).unwrap();
        assert_eq!(r.api_status(), Some(529));
    }

    #[test]
    fn a_prompt_is_never_read_as_a_cli_command() {
        assert_eq!(as_message("/clear".into()), " /clear");
        assert_eq!(as_message("/model opus".into()), " /model opus");
        assert_eq!(as_message("total revenue".into()), "total revenue");
    }

    #[test]
    fn the_main_model_is_the_one_with_most_output() {
        let usage: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"small":{"outputTokens":3},"big":{"outputTokens":300}}"#)
                .unwrap();
        assert_eq!(main_model(&usage).as_deref(), Some("big"));
    }

    #[test]
    fn commands_resolve_to_absolute_executables() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("claude");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = resolve_command(Some(&exe)).unwrap_err().to_string();
        assert!(err.contains("not an executable"), "{err}");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(resolve_command(Some(&exe)).unwrap(), exe);
        let err = resolve_command(Some(Path::new("bqai-no-such-claude")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("install-claude.sh"), "{err}");
        // `sh` is on every PATH the tests run with.
        assert!(
            resolve_command(Some(Path::new("sh")))
                .unwrap()
                .is_absolute()
        );
    }

    #[test]
    fn debug_never_shows_the_key_and_dirs_are_private() {
        let data = tempfile::tempdir().unwrap();
        let cli = ClaudeCli::new(
            &LlmConfig {
                command: Some("sh".into()),
                api_key: Some(SecretString::from("sk-ant-do-not-print")),
                ..LlmConfig::default()
            },
            data.path(),
        )
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("do-not-print"), "{debug}");
        let root = data.path().join("claude-cli");
        for dir in [&root, &root.join("home/config"), &root.join("work")] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
    }
}
