//! Requests and configuration shared by the adapter tests.

use std::time::Duration;

use bqai_core::llm::{LlmMessage, LlmRequest, LlmUsage, PromptBlock};
use bqai_llm::{LlmConfig, LlmKind};
use bqai_testkit::llm_server::usage;
use secrecy::SecretString;

pub const INSTRUCTIONS: &str = "You write BigQuery SQL. Answer with one SELECT statement.";
pub const SCHEMA: &str = "Table shop.orders(id INT64, amount NUMERIC, created DATE)";
pub const TODAY: &str = "Today is 2026-11-25.";

/// Instructions and schema cacheable, a volatile last block that is not.
pub fn request(question: &str) -> LlmRequest {
    LlmRequest {
        system: vec![
            PromptBlock {
                text: INSTRUCTIONS.into(),
                cache: true,
            },
            PromptBlock {
                text: SCHEMA.into(),
                cache: true,
            },
            PromptBlock {
                text: TODAY.into(),
                cache: false,
            },
        ],
        messages: vec![LlmMessage::user(question)],
        max_tokens: 300,
    }
}

pub fn config(kind: LlmKind, base_url: String, key: &str) -> LlmConfig {
    LlmConfig {
        kind,
        base_url: Some(base_url),
        api_key: Some(SecretString::from(key)),
        model: Some("stand-in-model".into()),
        timeout_ms: 10_000,
        max_retries: 0,
        ..LlmConfig::default()
    }
}

/// What the stand-in's replies report, as the port counts it.
pub fn stand_in_usage() -> LlmUsage {
    LlmUsage {
        input_tokens: usage::INPUT,
        output_tokens: usage::OUTPUT,
        cache_read_tokens: usage::CACHE_READ,
        cache_creation_tokens: usage::CACHE_CREATION,
    }
}

/// Asserts `elapsed` is at most `limit` plus scheduling slack.
pub fn assert_prompt(elapsed: Duration, limit: Duration) {
    let slack = Duration::from_millis(1500);
    assert!(
        elapsed <= limit + slack,
        "took {elapsed:?}, limit {limit:?} + {slack:?}"
    );
}
