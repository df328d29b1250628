//! The question → SQL abstraction: one trait, two families of implementations (the
//! LLM-backed [`super::LlmGenerator`] here, the built-in planner in `bqai-planner`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::conversation::{Entities, Turn};
use crate::error::Result;
use crate::llm::LlmUsage;
use crate::model::{SqlDialect, Table};
use crate::semantic::{Example, SemanticModel};

/// Which generator answered, as reported in responses, `/health` and history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorInfo {
    /// `builtin`, `claude-cli`, `anthropic`, `openai` (or `scripted` in tests).
    pub kind: String,
    /// The model, for LLM generators.
    pub model: Option<String>,
}

/// An earlier attempt that failed, fed back so the generator can correct itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedAttempt {
    /// The SQL it produced, if it produced any.
    pub sql: Option<String>,
    /// Why it failed (guard rejection, engine error, no SQL found), in words fit for a prompt.
    pub error: String,
}

/// Everything a generator may use to turn a question into SQL.
#[derive(Debug, Clone)]
pub struct GenerationContext {
    /// The question, as asked.
    pub question: String,
    /// The SQL dialect the warehouse speaks.
    pub dialect: SqlDialect,
    /// The dataset the question is about, when known (unqualified names resolve here).
    pub dataset: Option<String>,
    /// The tables that matter for the question, with full schemas (large datasets are
    /// narrowed to these within a token budget).
    pub tables: Vec<Table>,
    /// The dataset's semantic model, if one is configured.
    pub semantic: Option<Arc<SemanticModel>>,
    /// Verified and previously successful examples, most similar to the question first.
    pub examples: Vec<Example>,
    /// The failed attempts so far, oldest first (empty on the first attempt).
    pub failed_attempts: Vec<FailedAttempt>,
    /// The row cap that will be applied (generators need not add a LIMIT themselves).
    pub max_rows: u64,
    /// Earlier turns of the conversation, oldest first (empty for a first question). A
    /// follow-up ("now by month") is read against them; the planner edits the plan in the
    /// last turn's `generator_state`.
    pub conversation: Vec<Turn>,
    /// The day the question is asked (UTC, or `ask.today`): "last month" and "this year" are
    /// read against it.
    pub today: chrono::NaiveDate,
}

/// What a generator made of a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GenerationOutcome {
    /// SQL that should answer the question, with a short explanation of what it computes.
    Sql {
        /// The SQL (one statement).
        sql: String,
        /// One or two sentences for the person who asked.
        explanation: String,
    },
    /// The question cannot be answered with SQL over these tables; `reason` says why.
    CannotAnswer {
        /// Why, in words for the person who asked.
        reason: String,
    },
}

/// One call's cost, for LLM generators.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationUsage {
    /// Tokens.
    pub tokens: LlmUsage,
    /// USD, when reported.
    pub cost_usd: Option<f64>,
    /// Time spent waiting for the model, in milliseconds.
    pub latency_ms: u64,
}

/// A generator's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// SQL or a refusal.
    pub outcome: GenerationOutcome,
    /// Cost of producing it (`None` for the planner).
    pub usage: Option<GenerationUsage>,
    /// What the question was about, when the generator can tell.
    #[serde(default)]
    pub entities: Option<Entities>,
    /// The generator's memory of this answer, stored with the conversation turn and handed
    /// back on the next one (the planner's plan).
    #[serde(default)]
    pub state: Option<serde_json::Value>,
}

impl Generation {
    /// An answer with nothing but its outcome and usage.
    pub fn new(outcome: GenerationOutcome, usage: Option<GenerationUsage>) -> Self {
        Self {
            outcome,
            usage,
            entities: None,
            state: None,
        }
    }
}

/// Turns a question into SQL.
///
/// A generator returns `Err` only when it could not work at all (the LLM is down, timed out);
/// a question it does not understand is `Ok(CannotAnswer)`, and SQL that turns out to be
/// wrong is caught by the pipeline and fed back through [`GenerationContext::failed_attempts`].
#[async_trait]
pub trait SqlGenerator: Send + Sync {
    /// Which generator this is.
    fn info(&self) -> GeneratorInfo;

    /// One attempt.
    async fn generate(&self, ctx: &GenerationContext) -> Result<Generation>;
}
