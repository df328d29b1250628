//! The ask use case: a question in plain language becomes guarded, dry-run, executed SQL.
//!
//! - [`SqlGenerator`] is the one abstraction over question → SQL; [`LlmGenerator`] is its
//!   LLM-backed implementation (the built-in planner lives in `bqai-planner`).
//! - [`AskService`] runs the pipeline around it (see `service.rs`).
//! - Prompts are versioned template files under `crates/core/prompts/` ([`prompt`]).

pub mod extract;
mod generator;
pub mod hints;
pub mod intent;
mod llm_generator;
pub mod prompt;
pub mod relevance;
mod service;
pub mod suggest;
mod text;

pub use generator::{
    FailedAttempt, Generation, GenerationContext, GenerationOutcome, GenerationUsage,
    GeneratorInfo, SqlGenerator,
};
pub use llm_generator::LlmGenerator;
pub use service::{
    AskAnswer, AskObserver, AskRequest, AskService, AskSettings, AskStage, AskUsage, CatalogAnswer,
    ConversationSettings,
};
pub use text::singular;
