//! Query history records: what the query service writes for every query, whatever its outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the query arrived.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// SQL submitted directly.
    #[default]
    Sql,
    /// SQL generated from a question.
    Ask,
    /// A query bqai runs for itself (the built-in planner's value sampling), through the same
    /// checks as every other.
    System,
    /// SQL whose whole result was exported as a file.
    Export,
}

impl QueryKind {
    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryKind::Sql => "sql",
            QueryKind::Ask => "ask",
            QueryKind::System => "system",
            QueryKind::Export => "export",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sql" => Some(QueryKind::Sql),
            "ask" => Some(QueryKind::Ask),
            "system" => Some(QueryKind::System),
            "export" => Some(QueryKind::Export),
            _ => None,
        }
    }
}

/// How a query ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    /// Ran (or dry-ran) and answered.
    Succeeded,
    /// Passed the guard but failed in the warehouse (error, timeout, unavailable).
    Failed,
    /// Refused before anything ran (guard, permissions, byte cap).
    Rejected,
}

impl QueryStatus {
    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryStatus::Succeeded => "succeeded",
            QueryStatus::Failed => "failed",
            QueryStatus::Rejected => "rejected",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeeded" => Some(QueryStatus::Succeeded),
            "failed" => Some(QueryStatus::Failed),
            "rejected" => Some(QueryStatus::Rejected),
            _ => None,
        }
    }
}

/// One query in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Query id (a UUIDv7, so ids sort by creation time).
    pub id: String,
    /// SQL or ask.
    pub kind: QueryKind,
    /// The question, for asks.
    pub question: Option<String>,
    /// The SQL as the caller (or the generator) submitted it.
    pub sql_submitted: String,
    /// The SQL as run, after the guard's rewrite; `None` when it never got that far.
    pub sql_executed: Option<String>,
    /// Outcome.
    pub status: QueryStatus,
    /// Error code (as in the API envelope) when not succeeded.
    pub error_code: Option<String>,
    /// Safe error message when not succeeded.
    pub error_message: Option<String>,
    /// Who asked, when known.
    pub principal: Option<String>,
    /// Default dataset of the request.
    pub dataset: Option<String>,
    /// Only a dry run.
    pub dry_run: bool,
    /// Bytes processed (estimate for dry runs).
    pub bytes_processed: u64,
    /// Bytes billed.
    pub bytes_billed: u64,
    /// Wall-clock duration in milliseconds.
    pub duration_ms: u64,
    /// Rows returned.
    pub row_count: u64,
    /// Answered from cache.
    pub cache_hit: bool,
    /// When the query was received.
    pub created_at: DateTime<Utc>,
    /// How the SQL was generated, for asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<AskRecord>,
    /// The id of the HTTP request (`X-Request-Id`) or WebSocket ask this query ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Fingerprint of the submitted SQL's shape ([`crate::analytics::sql_shape`]), for
    /// grouping; filled when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_shape: Option<String>,
    /// Fingerprint of the normalised question ([`crate::analytics::question_shape`]), asks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_shape: Option<String>,
    /// Tables the query read, as the guard and the warehouse resolved them (empty when it
    /// never got past the guard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// The entry this one ran again (`POST /api/v1/history/{id}/rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
}

impl HistoryEntry {
    /// Fills the shape fingerprints from the SQL (parsed in `dialect`, unless the SQL's shape
    /// is already known) and the question.
    #[must_use]
    pub fn shaped(mut self, dialect: crate::model::SqlDialect) -> Self {
        if self.sql_shape.is_none() && !self.sql_submitted.is_empty() {
            self.sql_shape = Some(crate::analytics::sql_shape(&self.sql_submitted, dialect));
        }
        self.question_shape = self
            .question
            .as_deref()
            .map(crate::analytics::question_shape);
        self
    }

    /// The request that runs this entry's SQL again, on its default dataset, with defaults for
    /// the rest (callers set theirs); `InvalidRequest` for an entry without SQL (an ask that
    /// ended before SQL was written). Parameter values are not kept in history.
    pub fn rerun_request(self) -> crate::Result<crate::model::QueryRequest> {
        if self.sql_submitted.trim().is_empty() {
            return Err(crate::Error::InvalidRequest(format!(
                "history entry {} has no SQL to run (its ask ended before SQL was written)",
                self.id
            )));
        }
        Ok(crate::model::QueryRequest {
            default_dataset: self.dataset,
            ..crate::model::QueryRequest::new(self.sql_submitted)
        })
    }
}

/// What the ask pipeline spent producing the SQL of an ask.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AskRecord {
    /// Generator attempts made (0 when the SQL came from the question cache).
    pub attempts: u32,
    /// `builtin`, `claude-cli`, `anthropic`, `openai`.
    pub generator: String,
    /// The model, for LLM generators.
    pub model: Option<String>,
    /// Time spent waiting for the LLM over all attempts, in milliseconds.
    pub llm_latency_ms: u64,
    /// Prompt tokens over all attempts (cache reads and writes included).
    pub input_tokens: u64,
    /// Generated tokens over all attempts.
    pub output_tokens: u64,
    /// LLM cost in USD over all attempts, when reported.
    pub cost_usd: Option<f64>,
    /// The SQL came from the question cache (no generator call).
    pub from_cache: bool,
    /// The question continued a conversation: its SQL was written with the earlier turns as
    /// context ("now per quarter"), so it is no example of what the bare words mean.
    #[serde(default)]
    pub follow_up: bool,
}

/// Which history entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// Only this status.
    pub status: Option<QueryStatus>,
    /// Only this kind.
    pub kind: Option<QueryKind>,
    /// Only this principal.
    pub principal: Option<String>,
}
