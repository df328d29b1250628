//! Backend-neutral parts of the history store: the row type, its conversion to and from
//! [`HistoryEntry`] (see [`crate::convert`] for counters and times), and the listing query both
//! backends run.

use bqai_core::history::{AskRecord, HistoryEntry, QueryKind, QueryStatus};
use bqai_core::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::convert::{from_sql_count, to_sql_count, to_sql_text, to_sql_text_opt, to_sql_time};
use crate::page::Cursor;
use crate::schema::query_history;

/// One `query_history` row. `None` is written as `NULL` (not `DEFAULT`), so SQLite can insert a
/// batch as one multi-row `INSERT`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = query_history, treat_none_as_default_value = false)]
pub(crate) struct HistoryRow {
    pub id: String,
    pub kind: String,
    pub question: Option<String>,
    pub sql_submitted: String,
    pub sql_executed: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub principal: Option<String>,
    pub dataset: Option<String>,
    pub dry_run: bool,
    pub bytes_processed: i64,
    pub bytes_billed: i64,
    pub duration_ms: i64,
    pub row_count: i64,
    pub cache_hit: bool,
    pub created_at: NaiveDateTime,
    pub ask_attempts: Option<i64>,
    pub generator: Option<String>,
    pub llm_model: Option<String>,
    pub llm_latency_ms: Option<i64>,
    pub llm_input_tokens: Option<i64>,
    pub llm_output_tokens: Option<i64>,
    pub llm_cost_usd: Option<f64>,
    pub question_cache_hit: Option<bool>,
    pub request_id: Option<String>,
    pub ask_follow_up: Option<bool>,
    pub sql_shape: Option<String>,
    pub question_shape: Option<String>,
    /// JSON array of table names (the store's convention for lists); `NULL` when empty.
    pub tables_read: Option<String>,
    pub rerun_of: Option<String>,
}

impl HistoryRow {
    pub(crate) fn from_entry(e: &HistoryEntry) -> Self {
        Self {
            id: e.id.clone(),
            kind: e.kind.as_str().to_owned(),
            question: to_sql_text_opt(&e.question),
            sql_submitted: to_sql_text(&e.sql_submitted),
            sql_executed: to_sql_text_opt(&e.sql_executed),
            status: e.status.as_str().to_owned(),
            error_code: to_sql_text_opt(&e.error_code),
            error_message: to_sql_text_opt(&e.error_message),
            principal: to_sql_text_opt(&e.principal),
            dataset: to_sql_text_opt(&e.dataset),
            dry_run: e.dry_run,
            bytes_processed: to_sql_count(e.bytes_processed),
            bytes_billed: to_sql_count(e.bytes_billed),
            duration_ms: to_sql_count(e.duration_ms),
            row_count: to_sql_count(e.row_count),
            cache_hit: e.cache_hit,
            created_at: to_sql_time(e.created_at),
            ask_attempts: e.ask.as_ref().map(|a| i64::from(a.attempts)),
            generator: e.ask.as_ref().map(|a| a.generator.clone()),
            llm_model: e.ask.as_ref().and_then(|a| a.model.clone()),
            llm_latency_ms: e.ask.as_ref().map(|a| to_sql_count(a.llm_latency_ms)),
            llm_input_tokens: e.ask.as_ref().map(|a| to_sql_count(a.input_tokens)),
            llm_output_tokens: e.ask.as_ref().map(|a| to_sql_count(a.output_tokens)),
            llm_cost_usd: e.ask.as_ref().and_then(|a| a.cost_usd),
            question_cache_hit: e.ask.as_ref().map(|a| a.from_cache),
            request_id: to_sql_text_opt(&e.request_id),
            ask_follow_up: e.ask.as_ref().map(|a| a.follow_up),
            sql_shape: e.sql_shape.clone(),
            question_shape: e.question_shape.clone(),
            tables_read: (!e.tables.is_empty())
                .then(|| serde_json::to_string(&e.tables).unwrap_or_default()),
            rerun_of: e.rerun_of.clone(),
        }
    }

    pub(crate) fn into_entry(self) -> Result<HistoryEntry> {
        let kind = QueryKind::parse(&self.kind).ok_or_else(|| {
            Error::internal_msg(format!(
                "history entry {} has unknown kind {:?}",
                self.id, self.kind
            ))
        })?;
        let status = QueryStatus::parse(&self.status).ok_or_else(|| {
            Error::internal_msg(format!(
                "history entry {} has unknown status {:?}",
                self.id, self.status
            ))
        })?;
        let tables = match self.tables_read.as_deref() {
            None | Some("") => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Error::internal(format!("history entry {} tables_read", self.id), e)
            })?,
        };
        Ok(HistoryEntry {
            id: self.id,
            kind,
            question: self.question,
            sql_submitted: self.sql_submitted,
            sql_executed: self.sql_executed,
            status,
            error_code: self.error_code,
            error_message: self.error_message,
            principal: self.principal,
            dataset: self.dataset,
            dry_run: self.dry_run,
            bytes_processed: from_sql_count(self.bytes_processed),
            bytes_billed: from_sql_count(self.bytes_billed),
            duration_ms: from_sql_count(self.duration_ms),
            row_count: from_sql_count(self.row_count),
            cache_hit: self.cache_hit,
            created_at: self.created_at.and_utc(),
            ask: self.generator.map(|generator| AskRecord {
                attempts: u32::try_from(self.ask_attempts.unwrap_or(0)).unwrap_or(0),
                generator,
                model: self.llm_model,
                llm_latency_ms: self.llm_latency_ms.map(from_sql_count).unwrap_or(0),
                input_tokens: self.llm_input_tokens.map(from_sql_count).unwrap_or(0),
                output_tokens: self.llm_output_tokens.map(from_sql_count).unwrap_or(0),
                cost_usd: self.llm_cost_usd,
                from_cache: self.question_cache_hit.unwrap_or(false),
                follow_up: self.ask_follow_up.unwrap_or(false),
            }),
            request_id: self.request_id,
            sql_shape: self.sql_shape,
            question_shape: self.question_shape,
            tables,
            rerun_of: self.rerun_of,
        })
    }

    /// The cursor pointing just after this row.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// The listing query for one backend: `filter`, then rows after `cursor`, newest first, at
/// most `limit`. A macro rather than a function because diesel types boxed queries by backend,
/// and the bounds a backend-generic function needs would outgrow the query; this way both
/// backends run the very same query.
macro_rules! list_query {
    ($backend:ty, $filter:expr, $cursor:expr, $limit:expr) => {{
        use crate::schema::query_history::dsl as h;
        let filter: bqai_core::history::HistoryFilter = $filter;
        let cursor: Option<crate::page::Cursor> = $cursor;
        let mut q = h::query_history
            .select(crate::history::HistoryRow::as_select())
            .into_boxed::<$backend>();
        if let Some(status) = filter.status {
            q = q.filter(h::status.eq(status.as_str()));
        }
        if let Some(kind) = filter.kind {
            q = q.filter(h::kind.eq(kind.as_str()));
        }
        if let Some(principal) = filter.principal {
            q = q.filter(h::principal.eq(principal));
        }
        if let Some(crate::page::Cursor { at, id }) = cursor {
            q = q.filter(
                h::created_at
                    .lt(at)
                    .or(h::created_at.eq(at).and(h::id.lt(id))),
            );
        }
        q.order((h::created_at.desc(), h::id.desc())).limit($limit)
    }};
}
pub(crate) use list_query;
