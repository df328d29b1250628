//! The `Llm` port: a language model that turns a system prompt and messages into text.
//!
//! Adapters (Claude Code CLI, Anthropic Messages API, OpenAI-compatible chat completions) live
//! in `bqai-llm`. They translate their transport's failures into [`LlmError`]s with a
//! [`LlmErrorKind`] the HTTP layer maps to a status code, so a caller can tell "the model is
//! down" from "the model timed out" from "our key was refused".

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::ComponentHealth;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmRole {
    /// The person (or bqai on their behalf).
    User,
    /// The model.
    Assistant,
}

impl LlmRole {
    /// The role's name as the provider APIs spell it (`user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            LlmRole::User => "user",
            LlmRole::Assistant => "assistant",
        }
    }
}

/// One conversation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmMessage {
    /// Who said it.
    pub role: LlmRole,
    /// What was said.
    pub content: String,
}

impl LlmMessage {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: LlmRole::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: LlmRole::Assistant,
            content: content.into(),
        }
    }
}

/// A block of the system prompt. Blocks marked `cache` are stable across requests (the
/// instructions and the schema) so adapters that support prompt caching mark them cacheable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptBlock {
    /// The text.
    pub text: String,
    /// Whether the block (and everything before it) is worth caching on the provider side.
    pub cache: bool,
}

/// A completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// System prompt, in blocks (joined with blank lines by adapters without block support).
    pub system: Vec<PromptBlock>,
    /// The conversation; the last message is the user's.
    pub messages: Vec<LlmMessage>,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
}

impl LlmRequest {
    /// The system prompt as one string.
    pub fn system_text(&self) -> String {
        self.system
            .iter()
            .map(|b| b.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsage {
    /// Prompt tokens billed at the full rate.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the provider's prompt cache.
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_creation_tokens: u64,
}

impl LlmUsage {
    /// Adds another completion's counts.
    pub fn add(&mut self, other: &LlmUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
    }
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// The generated text.
    pub text: String,
    /// The model that answered (as the provider reports it).
    pub model: String,
    /// Token counts.
    pub usage: LlmUsage,
    /// Cost in USD when the provider (or the CLI) reports it.
    pub cost_usd: Option<f64>,
    /// Wall-clock time of the call.
    pub latency: Duration,
}

/// Which adapter and model answer, for `/health`, responses and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmInfo {
    /// `claude-cli`, `anthropic` or `openai`.
    pub kind: String,
    /// The configured model, if any (the provider's default otherwise).
    pub model: Option<String>,
}

/// Why a completion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmErrorKind {
    /// The provider refused our credentials (401/403): an operator must fix the config.
    Auth,
    /// The provider rate-limited us (429).
    RateLimited,
    /// The provider is overloaded (529, 503).
    Overloaded,
    /// No answer within the configured timeout (the call was abandoned and killed).
    Timeout,
    /// The provider or the CLI could not be reached or failed (5xx, connection refused,
    /// process crashed, non-zero exit).
    Unavailable,
    /// Every slot is busy and the wait queue is full.
    Busy,
    /// An answer came back but it was not usable (no JSON result, empty text).
    BadResponse,
}

impl LlmErrorKind {
    /// The stable error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            LlmErrorKind::Auth => "LLM_AUTH_FAILED",
            LlmErrorKind::RateLimited => "LLM_RATE_LIMITED",
            LlmErrorKind::Overloaded => "LLM_OVERLOADED",
            LlmErrorKind::Timeout => "LLM_TIMEOUT",
            LlmErrorKind::Unavailable => "LLM_UNAVAILABLE",
            LlmErrorKind::Busy => "LLM_BUSY",
            LlmErrorKind::BadResponse => "LLM_BAD_RESPONSE",
        }
    }
}

/// A failed completion. `message` is safe to show to callers (no keys, no raw provider
/// bodies); the detail for operators goes to the logs where the adapter fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct LlmError {
    /// The kind of failure.
    pub kind: LlmErrorKind,
    /// What happened, in words safe for clients.
    pub message: String,
    /// When the provider said when to retry.
    pub retry_after: Option<Duration>,
}

impl LlmError {
    /// An error of `kind`.
    pub fn new(kind: LlmErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A language model.
///
/// Dropping the future of [`Llm::complete`] must abandon the call (close the connection, kill
/// the subprocess): that is how timeouts and client cancellation reach the model.
#[async_trait]
pub trait Llm: Send + Sync {
    /// Which adapter and model.
    fn info(&self) -> LlmInfo;

    /// One completion.
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError>;

    /// Whether the model is usable (cheap: configuration and binary checks, not a paid call).
    async fn health(&self) -> ComponentHealth;
}
