//! Backend-neutral parts of the history store: the row type, its conversion to and from
//! [`HistoryEntry`], the listing query both backends run, and the keyset page token.
//!
//! Conversions: counters are `u64` in the domain and `BIGINT` (i64) in SQL; values above
//! `i64::MAX` are stored as `i64::MAX` (saturated, not wrapped), and a negative stored value
//! (never written by this crate) reads as 0. Timestamps are stored in UTC with microsecond
//! precision, the finest PostgreSQL keeps; sub-microsecond digits are dropped on write.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bqai_core::history::{AskRecord, HistoryEntry, QueryKind, QueryStatus};
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::schema::query_history;

/// The largest page served, whatever the caller asks for.
pub(crate) const MAX_PAGE_SIZE: u32 = 1000;

/// One `query_history` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = query_history)]
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
}

impl HistoryRow {
    pub(crate) fn from_entry(e: &HistoryEntry) -> Self {
        Self {
            id: e.id.clone(),
            kind: e.kind.as_str().to_owned(),
            question: e.question.clone(),
            sql_submitted: e.sql_submitted.clone(),
            sql_executed: e.sql_executed.clone(),
            status: e.status.as_str().to_owned(),
            error_code: e.error_code.clone(),
            error_message: e.error_message.clone(),
            principal: e.principal.clone(),
            dataset: e.dataset.clone(),
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
            }),
        })
    }

    /// The cursor pointing just after this row.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            created_at: self.created_at,
            id: self.id.clone(),
        }
    }
}

/// Saturates instead of wrapping: a huge count stays huge rather than turning negative.
pub(crate) fn to_sql_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql_count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_sql_time(t: DateTime<Utc>) -> NaiveDateTime {
    DateTime::from_timestamp_micros(t.timestamp_micros())
        .unwrap_or(t)
        .naive_utc()
}

/// Where the previous page ended: the (created_at, id) of its last row. The next page holds
/// rows strictly after it in (created_at DESC, id DESC) order, so rows recorded meanwhile
/// neither repeat nor shift the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub created_at: NaiveDateTime,
    pub id: String,
}

impl Cursor {
    /// The opaque page token: URL-safe base64 of `"<created_at micros>:<id>"`.
    pub(crate) fn encode(&self) -> String {
        let micros = self.created_at.and_utc().timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{micros}:{}", self.id))
    }

    /// Parses a token made by [`Cursor::encode`]; anything else is the caller's mistake.
    pub(crate) fn decode(token: &str) -> Result<Self> {
        let invalid = || Error::InvalidRequest("invalid page_token".to_owned());
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            created_at: created_at.naive_utc(),
            id: id.to_owned(),
        })
    }
}

/// How many rows to fetch for a page: one more than served, to learn whether another page
/// follows without a second query (so the last page says so instead of an empty extra page).
pub(crate) fn fetch_limit(page_size: u32) -> i64 {
    i64::from(page_size.clamp(1, MAX_PAGE_SIZE)) + 1
}

/// The listing query for one backend: `filter`, then rows after `cursor`, newest first, at
/// most `limit`. A macro rather than a function because diesel types boxed queries by backend,
/// and the bounds a backend-generic function needs would outgrow the query; this way both
/// backends run the very same query.
macro_rules! list_query {
    ($backend:ty, $filter:expr, $cursor:expr, $limit:expr) => {{
        use crate::schema::query_history::dsl as h;
        let filter: bqai_core::history::HistoryFilter = $filter;
        let cursor: Option<crate::history::Cursor> = $cursor;
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
        if let Some(crate::history::Cursor { created_at, id }) = cursor {
            q = q.filter(
                h::created_at
                    .lt(created_at)
                    .or(h::created_at.eq(created_at).and(h::id.lt(id))),
            );
        }
        q.order((h::created_at.desc(), h::id.desc())).limit($limit)
    }};
}
pub(crate) use list_query;

/// Splits the fetched rows into the page and the token for the next one.
pub(crate) fn into_page(
    mut rows: Vec<HistoryRow>,
    page_size: u32,
) -> Result<bqai_core::model::Page<HistoryEntry>> {
    let served = page_size.clamp(1, MAX_PAGE_SIZE) as usize;
    let next_page_token = if rows.len() > served {
        rows.truncate(served);
        rows.last().map(|r| r.cursor().encode())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(HistoryRow::into_entry)
        .collect::<Result<Vec<_>>>()?;
    Ok(bqai_core::model::Page {
        items,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        let c = Cursor {
            created_at: t,
            id: "0190-abc:with:colons".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn malformed_tokens_are_invalid_requests() {
        let garbage = [
            "",
            "%%%",
            "aGVsbG8",                                           // "hello": no separator
            &URL_SAFE_NO_PAD.encode("x:id"),                     // not a number
            &URL_SAFE_NO_PAD.encode("123:"),                     // no id
            &URL_SAFE_NO_PAD.encode(format!("{}:id", i64::MAX)), // out of chrono's range
        ];
        for token in garbage {
            match Cursor::decode(token) {
                Err(Error::InvalidRequest(m)) => assert_eq!(m, "invalid page_token"),
                other => panic!("{token:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn counts_saturate() {
        assert_eq!(to_sql_count(u64::MAX), i64::MAX);
        assert_eq!(to_sql_count(42), 42);
        assert_eq!(from_sql_count(-1), 0);
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            to_sql_time(t).and_utc().timestamp_subsec_nanos(),
            123_456_000
        );
    }
}
