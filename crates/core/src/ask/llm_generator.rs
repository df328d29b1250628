//! The LLM-backed generator: prompt templates → [`Llm`] → SQL extraction.

use std::sync::Arc;

use async_trait::async_trait;

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
        let response = self.llm.complete(&request).await?;
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
