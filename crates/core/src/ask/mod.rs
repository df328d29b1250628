//! The ask use case: a question in plain language becomes guarded, dry-run, executed SQL.

mod generator;

pub use generator::{
    FailedAttempt, GenerationContext, GenerationOutcome, GenerationUsage, Generation,
    GeneratorInfo, SqlGenerator,
};
