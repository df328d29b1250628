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

/// How busy an adapter is right now: calls holding one of its slots (a running `claude`
/// process, an open API request) and callers waiting for one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmLoad {
    /// Calls in progress.
    pub in_flight: usize,
    /// Callers waiting for a slot.
    pub queued: usize,
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

    /// How busy the adapter is, when it bounds its concurrency (decorators pass it on).
    fn load(&self) -> Option<LlmLoad> {
        None
    }
}

/// Prices of one model in USD per million tokens (`[llm.prices."MODEL"]`), for adapters whose
/// provider reports no cost (the HTTP APIs; the Claude Code CLI reports its own).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Prompt tokens billed at the full rate.
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Prompt tokens read from the prompt cache (default: `input`).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Prompt tokens written to the prompt cache (default: `input`).
    #[serde(default)]
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    /// The cost of `usage` in USD.
    pub fn cost(&self, usage: &LlmUsage) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let per = |tokens: u64, usd_per_million: f64| tokens as f64 * usd_per_million / 1e6;
        per(usage.input_tokens, self.input)
            + per(usage.output_tokens, self.output)
            + per(
                usage.cache_read_tokens,
                self.cache_read.unwrap_or(self.input),
            )
            + per(
                usage.cache_creation_tokens,
                self.cache_write.unwrap_or(self.input),
            )
    }

    /// Every price is a finite number ≥ 0.
    pub fn is_valid(&self) -> bool {
        [
            Some(self.input),
            Some(self.output),
            self.cache_read,
            self.cache_write,
        ]
        .into_iter()
        .flatten()
        .all(|p| p.is_finite() && p >= 0.0)
    }
}

/// The price table: model name → prices. A model answering as `claude-sonnet-4-5-20250929`
/// is priced by that exact entry, else by the longest entry it starts with
/// (`claude-sonnet-4-5`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmPrices(pub std::collections::BTreeMap<String, ModelPrice>);

impl LlmPrices {
    /// The prices of `model`, if the table has them.
    pub fn for_model(&self, model: &str) -> Option<&ModelPrice> {
        self.0.get(model).or_else(|| {
            self.0
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, price)| price)
        })
    }
}

/// An [`Llm`] decorator that fills in [`LlmResponse::cost_usd`] from a price table when the
/// provider reported none (a reported cost is kept as is).
pub struct PricedLlm {
    inner: std::sync::Arc<dyn Llm>,
    prices: LlmPrices,
}

impl PricedLlm {
    /// Prices `inner`'s completions with `prices`.
    pub fn new(inner: std::sync::Arc<dyn Llm>, prices: LlmPrices) -> Self {
        Self { inner, prices }
    }
}

#[async_trait]
impl Llm for PricedLlm {
    fn info(&self) -> LlmInfo {
        self.inner.info()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let mut response = self.inner.complete(request).await?;
        if response.cost_usd.is_none() {
            response.cost_usd = self
                .prices
                .for_model(&response.model)
                .map(|p| p.cost(&response.usage));
        }
        Ok(response)
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }

    fn load(&self) -> Option<LlmLoad> {
        self.inner.load()
    }
}

#[cfg(test)]
mod price_tests {
    use super::*;

    fn price(input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cache_read: Some(0.3),
            cache_write: None,
        }
    }

    #[test]
    fn models_are_priced_by_exact_name_or_longest_prefix() {
        let prices = LlmPrices(
            [
                ("claude".to_string(), price(1.0, 1.0)),
                ("claude-sonnet-4-5".to_string(), price(3.0, 15.0)),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            prices
                .for_model("claude-sonnet-4-5-20250929")
                .unwrap()
                .input,
            3.0
        );
        assert_eq!(prices.for_model("claude-haiku").unwrap().input, 1.0);
        assert!(prices.for_model("gpt-4o").is_none());
        let usage = LlmUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 1_000_000,
            cache_creation_tokens: 1_000_000,
        };
        // 3 + 1.5 + 0.3 + 3 (cache writes at the input price).
        let cost = prices.for_model("claude-sonnet-4-5").unwrap().cost(&usage);
        assert!((cost - 7.8).abs() < 1e-9, "{cost}");
        assert!(
            !ModelPrice {
                input: -1.0,
                ..price(0.0, 0.0)
            }
            .is_valid()
        );
        assert!(
            !ModelPrice {
                output: f64::NAN,
                ..price(0.0, 0.0)
            }
            .is_valid()
        );
    }
}
