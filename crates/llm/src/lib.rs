//! bqai-llm: adapters of the core [`Llm`] port — the Claude Code CLI ([`ClaudeCli`]), the
//! Anthropic Messages API ([`AnthropicApi`]) and OpenAI-compatible Chat Completions servers
//! ([`OpenAiCompatible`]) — and [`build`], which picks one from the `[llm]` configuration.
//!
//! Every adapter bounds its concurrency (callers beyond the wait queue get `Busy` at once),
//! enforces one overall deadline per completion (retries included), abandons the call when
//! the future is dropped, and reports failures as [`bqai_core::llm::LlmError`]s whose
//! messages are safe for clients; provider bodies and CLI stderr go to the logs only.

mod anthropic;
mod claude_cli;
mod config;
mod http;
mod limiter;
mod openai;
mod session;
mod warm;

use std::path::Path;
use std::sync::Arc;

use bqai_core::Error;
use bqai_core::llm::Llm;

pub use anthropic::AnthropicApi;
pub use claude_cli::ClaudeCli;
pub use config::{
    ANTHROPIC_DEFAULT_BASE_URL, ANTHROPIC_DEFAULT_MODEL, LlmConfig, LlmKind,
    OPENAI_DEFAULT_BASE_URL,
};
pub use openai::OpenAiCompatible;

/// The adapter `config` asks for, or `None` for [`LlmKind::Builtin`] (no language model).
///
/// `data_dir` is where the CLI's private directory goes unless `work_dir` is set. Invalid or
/// incomplete configuration (no `claude` found, no key for a public API, …) is an
/// [`Error::InvalidRequest`] naming the setting to fix.
pub fn build(config: &LlmConfig, data_dir: &Path) -> Result<Option<Arc<dyn Llm>>, Error> {
    config.validate()?;
    let llm: Arc<dyn Llm> = match config.kind {
        LlmKind::Builtin => return Ok(None),
        LlmKind::ClaudeCli => Arc::new(ClaudeCli::new(config, data_dir)?),
        LlmKind::Anthropic => Arc::new(AnthropicApi::new(config)?),
        LlmKind::Openai => Arc::new(OpenAiCompatible::new(config)?),
    };
    Ok(Some(if config.prices.is_empty() {
        llm
    } else {
        Arc::new(bqai_core::llm::PricedLlm::new(
            llm,
            bqai_core::llm::LlmPrices(config.prices.clone()),
        ))
    }))
}
