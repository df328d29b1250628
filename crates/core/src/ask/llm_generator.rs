//! The LLM-backed generator: prompt templates → [`Llm`] → SQL extraction.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument;

use crate::error::Result;
use crate::llm::Llm;

use super::extract::{Extracted, extract};
use super::generator::{
    Generation, GenerationContext, GenerationOutcome, GenerationUsage, GeneratorInfo, SqlGenerator,
};
use super::prompt::build_request;

/// Generates SQL with a language model.
pub struct LlmGenerator {
    llm: Arc<dyn Llm>,
    max_tokens: u32,
}

impl LlmGenerator {
    /// A generator over `llm`, allowing `max_tokens` per answer.
    pub fn new(llm: Arc<dyn Llm>, max_tokens: u32) -> Self {
        Self { llm, max_tokens }
    }
}

#[async_trait]
impl SqlGenerator for LlmGenerator {
    fn info(&self) -> GeneratorInfo {
        let info = self.llm.info();
        GeneratorInfo {
            kind: info.kind,
            model: info.model,
        }
    }

    async fn generate(&self, ctx: &GenerationContext) -> Result<Generation> {
        let request = build_request(ctx, self.max_tokens);
        let info = self.llm.info();
        // OpenTelemetry's GenAI conventions; never the prompt or the answer.
        let span = tracing::info_span!(
            "llm",
            otel.name = %format!("chat {}", info.model.as_deref().unwrap_or(&info.kind)),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            "gen_ai.operation.name" = "chat",
            "gen_ai.system" = %info.kind,
            "gen_ai.request.model" = info.model.as_deref(),
            "gen_ai.request.max_tokens" = request.max_tokens,
            "gen_ai.response.model" = tracing::field::Empty,
            "gen_ai.usage.input_tokens" = tracing::field::Empty,
            "gen_ai.usage.output_tokens" = tracing::field::Empty,
            "bqai.llm.cost_usd" = tracing::field::Empty,
            "bqai.attempt" = ctx.failed_attempts.len() + 1,
            "error.type" = tracing::field::Empty,
        );
        let response = match self.llm.complete(&request).instrument(span.clone()).await {
            Ok(response) => response,
            Err(e) => {
                span.record("error.type", tracing::field::debug(e.kind));
                span.record("otel.status_code", "ERROR");
                return Err(e.into());
            }
        };
        span.record("gen_ai.response.model", response.model.as_str());
        span.record(
            "gen_ai.usage.input_tokens",
            response.usage.input_tokens
                + response.usage.cache_read_tokens
                + response.usage.cache_creation_tokens,
        );
        span.record("gen_ai.usage.output_tokens", response.usage.output_tokens);
        if let Some(cost) = response.cost_usd {
            span.record("bqai.llm.cost_usd", cost);
        }
        let usage = Some(GenerationUsage {
            tokens: response.usage,
            cost_usd: response.cost_usd,
            latency_ms: u64::try_from(response.latency.as_millis()).unwrap_or(u64::MAX),
        });
        let outcome = match extract(&response.text) {
            Extracted::Sql { sql, explanation } => GenerationOutcome::Sql { sql, explanation },
            Extracted::CannotAnswer(reason) => GenerationOutcome::CannotAnswer { reason },
            // No SQL: an empty statement the pipeline reports back as "no SQL found".
            Extracted::Nothing => GenerationOutcome::Sql {
                sql: String::new(),
                explanation: String::new(),
            },
        };
        Ok(Generation::new(outcome, usage))
    }
}
