//! History analytics: what people ask, what it costs, what is slow, what fails.
//!
//! The numbers are computed by the history store in its database ([`HistoryAnalytics`]
//! adapters never load history rows into the process); this module defines what they mean, so
//! every backend computes the same thing:
//!
//! - **Dry runs** are counted apart ([`Stats::dry_runs`]) and are left out of everything else
//!   that describes warehouse work: `queries`, statuses, cache hits, bytes, cost, durations,
//!   popular shapes, slowest, most expensive, errors and tables. LLM calls, tokens and LLM cost
//!   count every ask, dry run or not: the model was called either way.
//! - **Percentiles** are nearest-rank: the p-th percentile of n durations sorted ascending is
//!   the value at 1-based rank `ceil(p × n / 100)` (p50 of 1, 2, 3, 4 is 2; p99 of 10 values is
//!   the largest). Integer arithmetic, so SQLite and PostgreSQL agree exactly.
//! - **Cost**: bytes billed × `query.usd_per_tib` / 2^40 (BigQuery's on-demand price);
//!   LLM cost is what was recorded per ask (the CLI's reported cost or the configured price
//!   table's).
//! - **Shapes**: SQL is grouped by [`sql_shape`] (literals replaced, layout and keyword case
//!   normalised by sqlparser), questions by [`question_shape`]; both are computed once, when
//!   the entry is recorded, and stored with it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlparser::ast::{Expr, VisitMut, VisitorMut};
use std::ops::ControlFlow;

use crate::Result;
use crate::model::SqlDialect;

/// SQL longer than this is fingerprinted by its normalised text instead of its parse tree
/// (parsing is bounded work on the history path).
const MAX_SHAPE_PARSE_BYTES: usize = 64 * 1024;

/// Which entries an analytics call covers: `[from, to)`, optionally one principal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsFilter {
    /// First instant included.
    pub from: DateTime<Utc>,
    /// First instant excluded.
    pub to: DateTime<Utc>,
    /// Only this principal's entries (`None`: everyone's).
    pub principal: Option<String>,
}

/// How `summary` buckets entries.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// UTC day, `YYYY-MM-DD`.
    Day,
    /// UTC hour, `YYYY-MM-DDTHH:00:00Z`.
    Hour,
    /// Principal id (`null` for anonymous).
    Principal,
    /// Default dataset of the request (`null` when none).
    Dataset,
    /// `sql`, `ask` or `system`.
    Kind,
    /// `succeeded`, `failed` or `rejected`.
    Status,
}

impl GroupBy {
    /// Every grouping, for messages.
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Day,
        GroupBy::Hour,
        GroupBy::Principal,
        GroupBy::Dataset,
        GroupBy::Kind,
        GroupBy::Status,
    ];

    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
            GroupBy::Principal => "principal",
            GroupBy::Dataset => "dataset",
            GroupBy::Kind => "kind",
            GroupBy::Status => "status",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Nearest-rank duration percentiles, in milliseconds (0 when nothing ran).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationPercentiles {
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Longest.
    pub max: u64,
}

/// What a set of history entries did and cost.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Entries that were not dry runs.
    pub queries: u64,
    /// Of those, answered.
    pub succeeded: u64,
    /// Of those, failed in the warehouse.
    pub failed: u64,
    /// Of those, refused before anything ran.
    pub rejected: u64,
    /// Dry runs (counted apart; they cost nothing).
    pub dry_runs: u64,
    /// Answered from a cache.
    pub cache_hits: u64,
    /// Queries that came from a question.
    pub asks: u64,
    /// Bytes processed.
    pub bytes_processed: u64,
    /// Bytes billed.
    pub bytes_billed: u64,
    /// `bytes_billed` at `query.usd_per_tib`.
    pub estimated_cost_usd: f64,
    /// Duration percentiles of the queries.
    pub duration_ms: DurationPercentiles,
    /// LLM calls made for asks (generator attempts, the built-in planner's excluded).
    pub llm_calls: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// LLM cost recorded for the asks.
    pub llm_cost_usd: f64,
}

impl Stats {
    /// Fills [`Stats::estimated_cost_usd`] from the bytes billed.
    pub fn priced(mut self, usd_per_tib: f64) -> Self {
        self.estimated_cost_usd = usd_for_bytes(self.bytes_billed, usd_per_tib);
        self
    }
}

/// The on-demand price of `bytes` at `usd_per_tib`.
pub fn usd_for_bytes(bytes: u64, usd_per_tib: f64) -> f64 {
    crate::model::CostEstimate::from_bytes(bytes, usd_per_tib).usd
}

/// One `summary` bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The group's key (`None` for entries without one: anonymous, no dataset).
    pub key: Option<String>,
    /// Its numbers.
    pub stats: Stats,
}

/// Totals and buckets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Over the whole filter.
    pub total: Stats,
    /// Per group, in key order (null first).
    pub buckets: Vec<Bucket>,
}

impl Summary {
    /// Fills the estimated cost of the total and of every bucket from their bytes billed.
    pub fn priced(self, usd_per_tib: f64) -> Self {
        Self {
            total: self.total.priced(usd_per_tib),
            buckets: self
                .buckets
                .into_iter()
                .map(|b| Bucket {
                    key: b.key,
                    stats: b.stats.priced(usd_per_tib),
                })
                .collect(),
        }
    }
}

/// Which entries `popular` groups.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PopularKind {
    /// SQL sent as SQL, grouped by shape.
    #[default]
    Sql,
    /// Questions, grouped by normalised question.
    Ask,
}

/// A query shape or question and how it fared.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopularEntry {
    /// The shape's (or question's) fingerprint.
    pub fingerprint: String,
    /// The latest entry's SQL (or question) as it was sent.
    pub example: String,
    /// That entry's history id.
    pub example_id: String,
    /// Entries with this shape.
    pub count: u64,
    /// Distinct principals who sent it.
    pub principals: u64,
    /// When it was last sent.
    pub last_seen: DateTime<Utc>,
    /// Mean duration.
    pub avg_duration_ms: f64,
    /// Bytes processed over all its entries.
    pub bytes_processed: u64,
    /// Share of its entries that succeeded (0–1).
    pub success_rate: f64,
}

/// An error code and how often it came back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The API error code (`SQL_REJECTED`, `TIMEOUT`, …).
    pub code: String,
    /// Entries that ended with it.
    pub count: u64,
    /// Of those, failed in the warehouse.
    pub failed: u64,
    /// Of those, refused before running.
    pub rejected: u64,
    /// Latest occurrence.
    pub last_seen: DateTime<Utc>,
    /// The latest occurrence's message.
    pub example_message: String,
    /// The latest occurrence's history id.
    pub example_id: String,
}

/// A table and the queries that read it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableUsage {
    /// `project.dataset.table` or `dataset.table`, as the guard and the warehouse resolved it.
    pub table: String,
    /// Answered queries that read it.
    pub queries: u64,
    /// Distinct principals among them.
    pub principals: u64,
    /// Bytes processed by those queries (a query reading two tables counts for both).
    pub bytes_processed: u64,
    /// Bytes billed by those queries (same rule).
    pub bytes_billed: u64,
    /// `bytes_billed` at `query.usd_per_tib`.
    pub estimated_cost_usd: f64,
    /// Latest read.
    pub last_seen: DateTime<Utc>,
}

/// Single entries ranked by one measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Longest duration first.
    Slowest,
    /// Most bytes billed first (then bytes processed).
    MostExpensive,
}

/// Analytics over the history, computed by the store.
#[async_trait]
pub trait HistoryAnalytics: Send + Sync {
    /// Totals and per-group numbers.
    async fn summary(&self, filter: &AnalyticsFilter, group_by: GroupBy) -> Result<Summary>;

    /// The most frequent shapes (or questions), most frequent first.
    async fn popular(
        &self,
        filter: &AnalyticsFilter,
        kind: PopularKind,
        limit: u32,
    ) -> Result<Vec<PopularEntry>>;

    /// Single entries (not dry runs) ranked by `ranking`.
    async fn ranked(
        &self,
        filter: &AnalyticsFilter,
        ranking: Ranking,
        limit: u32,
    ) -> Result<Vec<crate::history::HistoryEntry>>;

    /// Error codes, most frequent first.
    async fn errors(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<ErrorCount>>;

    /// Tables read by answered queries, most read first.
    async fn tables(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<TableUsage>>;
}

/// Fingerprint (16 hex digits) of a statement's shape: the statement parsed in `dialect`,
/// every literal replaced by `?` and every list of literals (`IN (1, 2, 3)`) by one `?`, then
/// printed by sqlparser (so layout and keyword case no longer matter). Text that does not
/// parse is fingerprinted by its whitespace-collapsed, lower-cased text.
pub fn sql_shape(sql: &str, dialect: SqlDialect) -> String {
    fingerprint(&normalised_sql(sql, dialect))
}

/// The text [`sql_shape`] fingerprints.
pub fn normalised_sql(sql: &str, dialect: SqlDialect) -> String {
    // Under the guard's bounds: this runs on every submitted text, refused ones included, and
    // sqlparser alone takes exponential time on some short inputs.
    let parsed = (sql.len() <= MAX_SHAPE_PARSE_BYTES)
        .then(|| crate::guard::parse_bounded(sql, dialect))
        .flatten()
        .filter(|s| !s.is_empty());
    match parsed {
        Some(mut statements) => {
            let _ = statements.visit(&mut Literals);
            statements
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }
        None => sql
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

/// Fingerprint (16 hex digits) of a question, normalised: lower case, words only (punctuation
/// and layout dropped), so "Top 5 products?" and "top 5 products" are one question.
pub fn question_shape(question: &str) -> String {
    fingerprint(&normalised_question(question))
}

/// The text [`question_shape`] fingerprints.
pub fn normalised_question(question: &str) -> String {
    question
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '%' || c == '$' || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn fingerprint(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Replaces literals by placeholders and spells unquoted function names in upper case
/// (`count(*)` and `COUNT(*)` are one shape, like keywords).
struct Literals;

impl VisitorMut for Literals {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let placeholder = || Expr::value(sqlparser::ast::Value::Placeholder("?".into()));
        match expr {
            Expr::Value(_) => *expr = placeholder(),
            Expr::InList { list, .. } if list.iter().all(is_placeholder) => {
                *list = vec![placeholder()];
            }
            Expr::Function(f) => {
                for part in &mut f.name.0 {
                    if let sqlparser::ast::ObjectNamePart::Identifier(id) = part
                        && id.quote_style.is_none()
                    {
                        id.value = id.value.to_uppercase();
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_placeholder(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Placeholder(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_layout_and_keyword_case_do_not_change_a_shape() {
        for d in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
            let a = sql_shape("SELECT name FROM shop.orders WHERE id = 1", d);
            assert_eq!(
                a,
                sql_shape("select name\n  from shop.orders where id=2", d)
            );
            assert_eq!(
                a,
                sql_shape("SELECT name FROM shop.orders WHERE id = 'x'", d)
            );
            assert_ne!(a, sql_shape("SELECT name FROM shop.orders WHERE id > 1", d));
            assert_ne!(a, sql_shape("SELECT city FROM shop.orders WHERE id = 1", d));
            assert_eq!(a.len(), 16);
            assert_eq!(
                sql_shape("SELECT COUNT(*) AS n FROM t WHERE x > 5", d),
                sql_shape("select count(*) as n from t where x>7", d)
            );
        }
    }

    #[test]
    fn sql_sqlparser_parses_in_exponential_time_is_shaped_by_its_text_at_once() {
        // Shapes are computed for every submitted text, refused ones included: the guard's
        // bounds apply, or these would hold a thread for hours (the security suite's shapes).
        for sql in [
            format!("SELECT {}c", "case - ".repeat(30)),
            format!("SELECT {}1 +{}", "CAST(".repeat(30), " AS INT)".repeat(30)),
            format!(
                "SELECT CAST(NULL AS {}INT{})",
                "STRUCT<a ".repeat(1_000),
                ">".repeat(1_000)
            ),
        ] {
            for dialect in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
                let started = std::time::Instant::now();
                let text = normalised_sql(&sql, dialect);
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(2),
                    "{:?} for {}…",
                    started.elapsed(),
                    &sql[..40]
                );
                assert_eq!(text, sql.to_lowercase(), "by its text");
            }
        }
    }

    #[test]
    fn in_lists_of_any_length_are_one_shape() {
        let d = SqlDialect::BigQuery;
        assert_eq!(
            normalised_sql("SELECT a FROM t WHERE b IN (1, 2, 3) LIMIT 10", d),
            "SELECT a FROM t WHERE b IN (?) LIMIT ?"
        );
        assert_eq!(
            sql_shape("SELECT a FROM t WHERE b IN (1)", d),
            sql_shape("select a from t where b in (4, 5)", d)
        );
        // A list with a column in it is a different statement.
        assert_ne!(
            sql_shape("SELECT a FROM t WHERE b IN (1, c)", d),
            sql_shape("SELECT a FROM t WHERE b IN (1)", d)
        );
    }

    #[test]
    fn text_that_does_not_parse_is_normalised_text() {
        let d = SqlDialect::DataFusion;
        assert_eq!(normalised_sql("SELEC  x\nFROM", d), "selec x from");
        assert_eq!(sql_shape("SELEC x FROM", d), sql_shape("selec   X from", d));
    }

    #[test]
    fn questions_ignore_case_punctuation_and_layout() {
        assert_eq!(normalised_question("  Top 5 products?  "), "top 5 products");
        assert_eq!(
            question_shape("Revenue by month, in 2024!"),
            question_shape("revenue by month in 2024")
        );
        assert_eq!(
            normalised_question("orders over $100.50"),
            "orders over $100.50"
        );
        assert_ne!(
            question_shape("top 5 products"),
            question_shape("top 3 products")
        );
    }

    #[test]
    fn group_by_names_round_trip() {
        for g in GroupBy::ALL {
            assert_eq!(GroupBy::parse(g.as_str()), Some(g));
        }
        assert_eq!(GroupBy::parse("week"), None);
    }
}
