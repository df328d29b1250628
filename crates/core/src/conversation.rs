//! Conversations: the turns of a multi-turn exploration ("revenue by country in 2024" → "now
//! by month" → "only web orders"), kept by a [`crate::ports::ConversationStore`] with a TTL.
//!
//! A turn remembers what the next question may refer to: the question, the SQL, a short
//! summary of the result (columns, row count, a few rows), the entities in play (tables,
//! measures, dimensions, filters, time range and bucket, row limit) and an opaque
//! `generator_state` — the built-in planner stores its plan there and edits it on a
//! follow-up; an LLM generator gets the previous turns in its prompt instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::QueryResult;

/// Rows of a result kept in a turn's summary.
pub const SAMPLE_ROWS: usize = 5;

/// One conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id (a UUIDv7).
    pub id: String,
    /// Who owns it (the principal id; `None` when authentication is off). Only its owner (or
    /// an admin) may read or continue it.
    pub principal: Option<String>,
    /// The dataset it is about, once known.
    pub dataset: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Turns, oldest first.
    pub turns: Vec<Turn>,
}

impl Conversation {
    /// A new, empty conversation.
    pub fn new(principal: Option<String>, dataset: Option<String>) -> Self {
        let now = Utc::now();
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            principal,
            dataset,
            created_at: now,
            updated_at: now,
            turns: Vec::new(),
        }
    }
}

/// One question and what answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The ask's request id.
    pub request_id: String,
    /// The question, as asked.
    pub question: String,
    /// The SQL as run; `None` for schema answers and failures.
    pub sql: Option<String>,
    /// The explanation given.
    pub explanation: String,
    /// What came back.
    pub result: Option<ResultSummary>,
    /// What the question was about.
    #[serde(default)]
    pub entities: Entities,
    /// The generator's own memory of this turn (the planner's plan), opaque to everything
    /// else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_state: Option<serde_json::Value>,
    /// When it was answered.
    pub at: DateTime<Utc>,
}

/// A result, summarised for the next turn.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResultSummary {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows returned.
    pub row_count: u64,
    /// The first few rows, values in their JSON form.
    pub sample_rows: Vec<Vec<serde_json::Value>>,
}

impl ResultSummary {
    /// Summarises a result.
    pub fn of(result: &QueryResult) -> Self {
        Self {
            columns: result.columns.iter().map(|c| c.name.clone()).collect(),
            row_count: result.rows.len() as u64,
            sample_rows: result
                .rows
                .iter()
                .take(SAMPLE_ROWS)
                .map(|r| r.iter().map(crate::model::Value::to_json).collect())
                .collect(),
        }
    }
}

/// What a question was about, as far as the generator could tell.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Entities {
    /// Tables read (`dataset.table`).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Measures computed (`revenue`, `orders`).
    #[serde(default)]
    pub measures: Vec<String>,
    /// Dimensions grouped by (`country`).
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Filters, in words (`channel = web`).
    #[serde(default)]
    pub filters: Vec<String>,
    /// The time range, in words (`2024`).
    #[serde(default)]
    pub time_range: Option<String>,
    /// The time bucket (`month`).
    #[serde(default)]
    pub time_bucket: Option<String>,
    /// Top/bottom N.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A follow-up question offered with an answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The question to ask (as a person would type it).
    pub question: String,
    /// What kind of step it is.
    pub kind: SuggestionKind,
}

/// Kinds of follow-up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// Break the result down by another dimension.
    DrillDown,
    /// The same measure over time.
    Trend,
    /// The top N of a dimension.
    TopN,
    /// The same question for another period.
    ComparePeriods,
}

/// Whether `id` has the shape of a conversation id (a UUID).
pub fn is_conversation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Checks a caller-supplied conversation id.
pub fn validate_id(id: &str) -> Result<()> {
    if is_conversation_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(
            "`conversation_id` must be a conversation id (a UUID)".into(),
        ))
    }
}
