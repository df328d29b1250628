//! bqai-planner: the built-in question → SQL generator. Offline, deterministic (the same
//! question over the same schema gives the same SQL) and honest: a question it does not fully
//! understand gets a plain [`GenerationOutcome::CannotAnswer`] saying what it understood and
//! what it did not, never made-up SQL.
//!
//! It maps words to tables, columns, named measures and categorical values (sampled from the
//! data and cached), using the dataset's semantic model when there is one and column names
//! and types when there is not. It handles counts, sums, averages, minimums and maximums,
//! distinct counts, grouping by one or more dimensions, time buckets (day to year), date
//! ranges (also relative to the day asked: "last month", "the past 30 days", "Q3 last
//! year"), equality filters on values, numeric comparisons (also on totals: "customers with
//! more than 20 orders", and counted: "how many customers have more than 20 orders"), shares
//! and percentages ("share of revenue by channel", "% of orders cancelled by month"), two
//! periods side by side ("2024 vs 2023 revenue by country"), growth over the bucket before
//! ("revenue growth by month", "month over month"), rows another table has none for
//! ("customers who never ordered"), counts per entity ("average number of orders per
//! customer"), first and last ("the first order from each country", "which agent was hired
//! first"), one row per group ("the cheapest product in each category"), top/bottom N,
//! listings, and joins along foreign keys.
//!
//! The stages, one module each: `lexicon` (tokens and function words) → `dates` (date
//! expressions) → `understand` (mentions → intent) → `plan` (tables, joins, expressions) →
//! `render` (SQL per dialect); `schema` is the dataset as the planner sees it and `sampler`
//! the cached categorical values. It only ever renders a SELECT, and the guard still checks
//! every statement.

mod dates;
pub mod draft;
mod followup;
mod lexicon;
mod plan;
mod render;
mod sampler;
mod schema;
mod state;
mod understand;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ask::{
    Generation, GenerationContext, GenerationOutcome, GeneratorInfo, SqlGenerator,
};
use bqai_core::model::{SqlDialect, Table};
use bqai_core::semantic::{Example, SemanticModel};
use bqai_core::system::SystemQueries;

use crate::sampler::ValueCache;
use crate::schema::{Catalog, Samples};
use crate::state::PlanState;

/// The built-in planner. Cheap to share: one per service, its value cache inside.
pub struct Planner {
    sampling: Option<Arc<dyn SystemQueries>>,
    values: ValueCache,
}

impl Planner {
    /// A planner that samples categorical values through `sampling` (`SELECT DISTINCT` of a
    /// column, cached, guarded and recorded like any query); it runs nothing else.
    pub fn new(sampling: Arc<dyn SystemQueries>) -> Self {
        Self {
            sampling: Some(sampling),
            values: ValueCache::default(),
        }
    }

    /// A planner that runs no query at all (`ask.sample_values = false`): a value named in a
    /// question ("Germany") is then not matched to the column that holds it.
    pub fn without_sampling() -> Self {
        Self {
            sampling: None,
            values: ValueCache::default(),
        }
    }
}

#[async_trait]
impl SqlGenerator for Planner {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            kind: "builtin".to_owned(),
            model: None,
        }
    }

    async fn generate(&self, ctx: &GenerationContext) -> Result<Generation> {
        let semantic = ctx.semantic.as_deref();
        let targets = schema::sample_targets(&ctx.tables, semantic);
        let samples = match &self.sampling {
            Some(queries) => {
                self.values
                    .samples(queries.as_ref(), ctx.dialect, &targets)
                    .await
            }
            None => Samples::new(),
        };
        let previous = ctx
            .conversation
            .iter()
            .rev()
            .find_map(|t| t.generator_state.as_ref())
            .and_then(PlanState::from_json);
        let verified = if previous.is_some() && followup::looks_like_followup(&ctx.question) {
            None
        } else {
            verified_example(&ctx.question, &ctx.examples)
        };
        let answer = generate(
            &ctx.question,
            &ctx.tables,
            semantic,
            &samples,
            ctx.dialect,
            previous.as_ref(),
            Some(ctx.today),
        );
        let mut outcome = match verified {
            Some(example) => GenerationOutcome::Sql {
                sql: example.sql.clone(),
                explanation: format!(
                    "Reuses the verified query for \"{}\".",
                    example.question.trim()
                ),
            },
            None => answer.outcome,
        };
        // Deterministic: the same question gives the same SQL, so a retry after that SQL
        // failed can only report the failure.
        if let GenerationOutcome::Sql { sql, .. } = &outcome
            && let Some(failed) = ctx
                .failed_attempts
                .iter()
                .rev()
                .find(|f| f.sql.as_deref() == Some(sql.as_str()))
        {
            outcome = GenerationOutcome::CannotAnswer {
                reason: format!(
                    "The built-in planner's query for this question did not work ({}); \
                     rephrasing the question may help.",
                    failed.error
                ),
            };
        }
        let mut generation = Generation::new(outcome, None);
        generation.entities = answer.entities;
        generation.state = answer.state;
        Ok(generation)
    }
}

/// An example asking exactly this question (ignoring case, punctuation, plurals and filler
/// words): its SQL was verified, so it beats anything the planner would write.
fn verified_example<'a>(question: &str, examples: &'a [Example]) -> Option<&'a Example> {
    let key = |q: &str| {
        lexicon::tokenize(q)
            .into_iter()
            .filter(|t| t.text != "," && !(t.is_word() && lexicon::is_filler(&t.text)))
            .map(|t| t.stem)
            .collect::<Vec<_>>()
    };
    let wanted = key(question);
    if wanted.is_empty() {
        return None;
    }
    examples
        .iter()
        .find(|e| !e.sql.trim().is_empty() && key(&e.question) == wanted)
}

/// The whole planner without IO: question, tables, model and sampled values → outcome.
#[cfg(test)]
pub(crate) fn generate_sql(
    question: &str,
    tables: &[Table],
    semantic: Option<&SemanticModel>,
    samples: &Samples,
    dialect: SqlDialect,
) -> GenerationOutcome {
    generate(question, tables, semantic, samples, dialect, None, None).outcome
}

/// An outcome with what it was about and the plan to remember.
struct Answer {
    outcome: GenerationOutcome,
    entities: Option<bqai_core::conversation::Entities>,
    state: Option<serde_json::Value>,
}

/// The whole planner without IO: question (a follow-up of `previous` when it reads as one),
/// tables, model, sampled values and the day it is asked → outcome, entities and plan.
fn generate(
    question: &str,
    tables: &[Table],
    semantic: Option<&SemanticModel>,
    samples: &Samples,
    dialect: SqlDialect,
    previous: Option<&PlanState>,
    today: Option<chrono::NaiveDate>,
) -> Answer {
    if tables.is_empty() {
        return Answer {
            outcome: GenerationOutcome::CannotAnswer {
                reason: "There are no tables to answer from.".to_owned(),
            },
            entities: None,
            state: None,
        };
    }
    let catalog = Catalog::new(tables, semantic, samples);
    let fresh = || {
        understand::understand(question, &catalog, today)
            .and_then(|intent| plan::plan(&intent, &catalog, dialect).map(|p| (p, intent)))
    };
    let edited = || -> Option<Result<(plan::Planned, understand::Intent), String>> {
        let prev = previous?.intent(&catalog)?;
        let intent = followup::edit(question, &prev, &catalog)?;
        Some(plan::plan(&intent, &catalog, dialect).map(|p| (p, intent)))
    };
    let planned = if previous.is_some() && followup::looks_like_followup(question) {
        match edited() {
            Some(Ok(done)) => Ok(done),
            Some(Err(reason)) => fresh().map_err(|_| reason),
            None => fresh(),
        }
    } else {
        match fresh() {
            Ok(done) => Ok(done),
            Err(reason) => match edited() {
                Some(Ok(done)) => Ok(done),
                _ => Err(reason),
            },
        }
    };
    match planned {
        Ok((p, intent)) => Answer {
            outcome: GenerationOutcome::Sql {
                sql: p.sql,
                explanation: p.explanation,
            },
            entities: Some(state::entities(&intent, &catalog)),
            state: PlanState::of(&intent, &catalog).to_json(),
        },
        Err(reason) => Answer {
            outcome: GenerationOutcome::CannotAnswer { reason },
            entities: None,
            state: None,
        },
    }
}
