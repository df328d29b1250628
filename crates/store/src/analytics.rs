//! History analytics in the database: the SQL both backends run, the rows it returns, and their
//! conversion to `bqai_core::analytics` types. See that module for what the numbers mean.
//!
//! Each statement is written once, with `?` placeholders, and differs per backend only in the
//! few expressions SQL dialects spell differently ([`Dialect`]): the day and hour keys and
//! reading the JSON list of tables. Everything is aggregated by the database; the process
//! receives one row per group (or per ranked entry), never the history rows themselves.
//!
//! Percentiles are nearest-rank (`ceil(p × n / 100)` in integer arithmetic) from one window
//! pass: `ROW_NUMBER()` and `COUNT(*)` over each group's non-dry-run entries ordered by
//! duration, then the row at the rank picked by the same aggregation that sums the counters.

use bqai_core::analytics::{
    AnalyticsFilter, Bucket, DurationPercentiles, ErrorCount, GroupBy, PopularEntry, PopularKind,
    Stats, Summary, TableUsage,
};
use chrono::NaiveDateTime;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamp};

use crate::convert::{from_sql_count, to_sql_time};

/// What differs between the SQL of the two backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The expression that groups entries by `group_by`, and the expression (`{}` for the
    /// group's value) that writes it as the bucket key text. PostgreSQL groups days and hours by
    /// `date_trunc` and formats only the buckets: `to_char` on every row cost more than the
    /// grouping itself.
    fn key(self, group_by: GroupBy) -> (&'static str, &'static str) {
        match (group_by, self) {
            // SQLite keeps timestamps as `YYYY-MM-DD HH:MM:SS[.ffffff]` text.
            (GroupBy::Day, Dialect::Sqlite) => ("substr(created_at, 1, 10)", "{}"),
            (GroupBy::Day, Dialect::Postgres) => {
                ("date_trunc('day', created_at)", "to_char({}, 'YYYY-MM-DD')")
            }
            (GroupBy::Hour, Dialect::Sqlite) => (
                "substr(created_at, 1, 10) || 'T' || substr(created_at, 12, 2) || ':00:00Z'",
                "{}",
            ),
            (GroupBy::Hour, Dialect::Postgres) => (
                "date_trunc('hour', created_at)",
                "to_char({}, 'YYYY-MM-DD\"T\"HH24\":00:00Z\"')",
            ),
            (GroupBy::Principal, _) => ("principal", "{}"),
            (GroupBy::Dataset, _) => ("dataset", "{}"),
            (GroupBy::Kind, _) => ("kind", "{}"),
            (GroupBy::Status, _) => ("status", "{}"),
        }
    }

    /// `a` and `b` are equal or both NULL (a bucket key is NULL for entries without one).
    fn same_key(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{a} IS {b}"),
            Dialect::Postgres => format!("{a} IS NOT DISTINCT FROM {b}"),
        }
    }

    /// `FROM` items that give one row per (entry, table read), the table as `t.value`.
    fn tables_from(self) -> &'static str {
        match self {
            Dialect::Sqlite => "query_history h, json_each(h.tables_read) t",
            Dialect::Postgres => {
                "query_history h CROSS JOIN LATERAL \
                 jsonb_array_elements_text(h.tables_read::jsonb) AS t(value)"
            }
        }
    }

    /// `sql` with PostgreSQL's numbered placeholders instead of `?`.
    pub(crate) fn placeholders(self, sql: &str) -> String {
        match self {
            Dialect::Sqlite => sql.to_owned(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 8);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// A statement and the values of its placeholders, in order.
pub(crate) struct SqlStatement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// One placeholder value.
pub(crate) enum Bind {
    Time(NaiveDateTime),
    Text(String),
    Int(i64),
}

/// The `WHERE` conditions of `filter` (prefix `h.`-free columns), with their binds.
fn conditions(filter: &AnalyticsFilter, column_prefix: &str) -> (String, Vec<Bind>) {
    let mut sql = format!("{column_prefix}created_at >= ? AND {column_prefix}created_at < ?");
    let mut binds = vec![
        Bind::Time(to_sql_time(filter.from)),
        Bind::Time(to_sql_time(filter.to)),
    ];
    if let Some(p) = &filter.principal {
        sql.push_str(&format!(" AND {column_prefix}principal = ?"));
        binds.push(Bind::Text(p.clone()));
    }
    (sql, binds)
}

/// `summary`: one row per key and, first, the total (`is_total` = 1; none without entries), in
/// one statement that reads the range twice — once for the sums, once for the durations.
///
/// Percentiles are nearest-rank (the smallest duration whose cumulative count reaches
/// ⌈p·n/100⌉), computed from a histogram of the durations per key (`GROUP BY key,
/// duration_ms`) with running sums, not by numbering every row: the histogram is smaller than
/// the rows, and the total's percentiles are computed from the same histogram instead of a
/// second pass over the rows (docs/benchmarks.md, "History analytics").
pub(crate) fn summary_sql(
    dialect: Dialect,
    filter: &AnalyticsFilter,
    group_by: GroupBy,
) -> SqlStatement {
    let (key_sql, key_text) = dialect.key(group_by);
    let (cond, binds) = conditions(filter, "");
    let rank = |p: u32| format!("MIN(CASE WHEN cum >= ({p} * n + 99) / 100 THEN d END)");
    let percentiles = format!(
        "{} AS p50, {} AS p95, {} AS p99",
        rank(50),
        rank(95),
        rank(99)
    );
    let same_key = dialect.same_key("a.k", "pb.k");
    let bucket_key = format!("CAST({} AS TEXT)", key_text.replace("{}", "a.k"));
    let sql = format!(
        "WITH a AS (\
           SELECT {key_sql} AS k, \
             CAST(SUM(CASE WHEN NOT dry_run THEN 1 ELSE 0 END) AS BIGINT) AS queries, \
             CAST(SUM(CASE WHEN NOT dry_run AND status = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT) AS succeeded, \
             CAST(SUM(CASE WHEN NOT dry_run AND status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
             CAST(SUM(CASE WHEN NOT dry_run AND status = 'rejected' THEN 1 ELSE 0 END) AS BIGINT) AS rejected, \
             CAST(SUM(CASE WHEN dry_run THEN 1 ELSE 0 END) AS BIGINT) AS dry_runs, \
             CAST(SUM(CASE WHEN NOT dry_run AND cache_hit THEN 1 ELSE 0 END) AS BIGINT) AS cache_hits, \
             CAST(SUM(CASE WHEN NOT dry_run AND kind = 'ask' THEN 1 ELSE 0 END) AS BIGINT) AS asks, \
             CAST(SUM(CASE WHEN NOT dry_run THEN bytes_processed ELSE 0 END) AS BIGINT) AS bytes_processed, \
             CAST(SUM(CASE WHEN NOT dry_run THEN bytes_billed ELSE 0 END) AS BIGINT) AS bytes_billed, \
             CAST(MAX(CASE WHEN NOT dry_run THEN duration_ms END) AS BIGINT) AS max_duration, \
             CAST(SUM(CASE WHEN generator IS NOT NULL AND generator <> 'builtin' \
               THEN COALESCE(ask_attempts, 0) ELSE 0 END) AS BIGINT) AS llm_calls, \
             CAST(SUM(COALESCE(llm_input_tokens, 0)) AS BIGINT) AS input_tokens, \
             CAST(SUM(COALESCE(llm_output_tokens, 0)) AS BIGINT) AS output_tokens, \
             CAST(SUM(COALESCE(llm_cost_usd, 0.0)) AS DOUBLE PRECISION) AS llm_cost_usd \
           FROM query_history WHERE {cond} GROUP BY {key_sql}), \
         h AS (\
           SELECT {key_sql} AS k, duration_ms AS d, COUNT(*) AS c \
           FROM query_history WHERE {cond} AND NOT dry_run GROUP BY {key_sql}, duration_ms), \
         pb AS (\
           SELECT k, {percentiles} FROM (\
             SELECT k, d, \
               CAST(SUM(c) OVER (PARTITION BY k ORDER BY d ROWS UNBOUNDED PRECEDING) AS BIGINT) AS cum, \
               CAST(SUM(c) OVER (PARTITION BY k) AS BIGINT) AS n \
             FROM h) w GROUP BY k), \
         pt AS (\
           SELECT {percentiles} FROM (\
             SELECT d, CAST(SUM(c) OVER (ORDER BY d ROWS UNBOUNDED PRECEDING) AS BIGINT) AS cum, \
               CAST(SUM(c) OVER () AS BIGINT) AS n \
             FROM (SELECT d, SUM(c) AS c FROM h GROUP BY d) ht) wt) \
         SELECT * FROM (\
           SELECT CAST(1 AS BIGINT) AS is_total, CAST(NULL AS TEXT) AS k, \
             CAST(SUM(a.queries) AS BIGINT) AS queries, CAST(SUM(a.succeeded) AS BIGINT) AS succeeded, \
             CAST(SUM(a.failed) AS BIGINT) AS failed, CAST(SUM(a.rejected) AS BIGINT) AS rejected, \
             CAST(SUM(a.dry_runs) AS BIGINT) AS dry_runs, CAST(SUM(a.cache_hits) AS BIGINT) AS cache_hits, \
             CAST(SUM(a.asks) AS BIGINT) AS asks, \
             CAST(SUM(a.bytes_processed) AS BIGINT) AS bytes_processed, \
             CAST(SUM(a.bytes_billed) AS BIGINT) AS bytes_billed, \
             CAST(pt.p50 AS BIGINT) AS p50, CAST(pt.p95 AS BIGINT) AS p95, CAST(pt.p99 AS BIGINT) AS p99, \
             CAST(MAX(a.max_duration) AS BIGINT) AS max_duration, \
             CAST(SUM(a.llm_calls) AS BIGINT) AS llm_calls, \
             CAST(SUM(a.input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(a.output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(a.llm_cost_usd) AS DOUBLE PRECISION) AS llm_cost_usd \
           FROM a CROSS JOIN pt GROUP BY pt.p50, pt.p95, pt.p99 \
           UNION ALL \
           SELECT CAST(0 AS BIGINT), {bucket_key}, a.queries, a.succeeded, a.failed, a.rejected, a.dry_runs, \
             a.cache_hits, a.asks, a.bytes_processed, a.bytes_billed, \
             CAST(pb.p50 AS BIGINT), CAST(pb.p95 AS BIGINT), CAST(pb.p99 AS BIGINT), \
             a.max_duration, a.llm_calls, a.input_tokens, a.output_tokens, a.llm_cost_usd \
           FROM a LEFT JOIN pb ON {same_key}) s \
         ORDER BY is_total DESC, k"
    );
    let mut all = binds;
    let (_, again) = conditions(filter, "");
    all.extend(again);
    SqlStatement {
        sql: dialect.placeholders(&sql),
        binds: all,
    }
}

/// `popular`: shapes (or questions) by frequency.
pub(crate) fn popular_sql(
    dialect: Dialect,
    filter: &AnalyticsFilter,
    kind: PopularKind,
    limit: u32,
) -> SqlStatement {
    let (cond, mut binds) = conditions(filter, "");
    let (shape, kind_name) = match kind {
        PopularKind::Sql => ("sql_shape", "sql"),
        PopularKind::Ask => ("question_shape", "ask"),
    };
    let sql = format!(
        "SELECT {shape} AS fingerprint, MAX(id) AS example_id, CAST(COUNT(*) AS BIGINT) AS n, \
           CAST(COUNT(DISTINCT principal) AS BIGINT) AS principals, \
           MAX(created_at) AS last_seen, \
           CAST(SUM(duration_ms) AS BIGINT) AS total_duration_ms, \
           CAST(SUM(bytes_processed) AS BIGINT) AS bytes_processed, \
           CAST(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT) AS succeeded \
         FROM query_history \
         WHERE {cond} AND NOT dry_run AND kind = ? AND {shape} IS NOT NULL \
         GROUP BY {shape} ORDER BY n DESC, last_seen DESC, fingerprint LIMIT ?"
    );
    binds.push(Bind::Text(kind_name.into()));
    binds.push(Bind::Int(i64::from(limit)));
    SqlStatement {
        sql: dialect.placeholders(&sql),
        binds,
    }
}

/// `errors`: error codes by frequency.
pub(crate) fn errors_sql(dialect: Dialect, filter: &AnalyticsFilter, limit: u32) -> SqlStatement {
    let (cond, mut binds) = conditions(filter, "");
    let sql = format!(
        "SELECT error_code AS code, CAST(COUNT(*) AS BIGINT) AS n, \
           CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed, \
           CAST(SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS BIGINT) AS rejected, \
           MAX(created_at) AS last_seen, MAX(id) AS example_id \
         FROM query_history \
         WHERE {cond} AND NOT dry_run AND status <> 'succeeded' AND error_code IS NOT NULL \
         GROUP BY error_code ORDER BY n DESC, code LIMIT ?"
    );
    binds.push(Bind::Int(i64::from(limit)));
    SqlStatement {
        sql: dialect.placeholders(&sql),
        binds,
    }
}

/// `tables`: tables read by answered queries.
pub(crate) fn tables_sql(dialect: Dialect, filter: &AnalyticsFilter, limit: u32) -> SqlStatement {
    let (cond, mut binds) = conditions(filter, "h.");
    let sql = format!(
        "SELECT t.value AS name, CAST(COUNT(*) AS BIGINT) AS n, \
           CAST(COUNT(DISTINCT h.principal) AS BIGINT) AS principals, \
           CAST(SUM(h.bytes_processed) AS BIGINT) AS bytes_processed, \
           CAST(SUM(h.bytes_billed) AS BIGINT) AS bytes_billed, \
           MAX(h.created_at) AS last_seen \
         FROM {from} \
         WHERE {cond} AND NOT h.dry_run AND h.status = 'succeeded' \
           AND h.tables_read IS NOT NULL \
         GROUP BY t.value ORDER BY n DESC, name LIMIT ?",
        from = dialect.tables_from(),
    );
    binds.push(Bind::Int(i64::from(limit)));
    SqlStatement {
        sql: dialect.placeholders(&sql),
        binds,
    }
}

/// The texts of the example entries `ids` (their SQL and question).
pub(crate) fn examples_sql(dialect: Dialect, ids: &[String]) -> SqlStatement {
    let marks = vec!["?"; ids.len().max(1)].join(", ");
    let sql = format!(
        "SELECT id, sql_submitted, question, error_message FROM query_history WHERE id IN ({marks})"
    );
    let mut binds: Vec<Bind> = ids.iter().cloned().map(Bind::Text).collect();
    if binds.is_empty() {
        binds.push(Bind::Text(String::new()));
    }
    SqlStatement {
        sql: dialect.placeholders(&sql),
        binds,
    }
}

/// Binds every value of `stmt` to a boxed raw query of backend `$db` and loads rows of type
/// `$row`. A macro because the two backends' connections and boxed query types differ.
macro_rules! load_statement {
    ($db:ty, $conn:expr, $stmt:expr, $row:ty) => {{
        use diesel_async::RunQueryDsl as _;
        let stmt: crate::analytics::SqlStatement = $stmt;
        let mut q = diesel::sql_query(stmt.sql).into_boxed::<$db>();
        for b in stmt.binds {
            q = match b {
                crate::analytics::Bind::Time(t) => q.bind::<diesel::sql_types::Timestamp, _>(t),
                crate::analytics::Bind::Text(s) => q.bind::<diesel::sql_types::Text, _>(s),
                crate::analytics::Bind::Int(i) => q.bind::<diesel::sql_types::BigInt, _>(i),
            };
        }
        q.load::<$row>($conn).await
    }};
}
pub(crate) use load_statement;

#[derive(Debug, QueryableByName)]
pub(crate) struct StatsRow {
    #[diesel(sql_type = BigInt)]
    is_total: i64,
    #[diesel(sql_type = Nullable<Text>)]
    k: Option<String>,
    #[diesel(sql_type = BigInt)]
    queries: i64,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    rejected: i64,
    #[diesel(sql_type = BigInt)]
    dry_runs: i64,
    #[diesel(sql_type = BigInt)]
    cache_hits: i64,
    #[diesel(sql_type = BigInt)]
    asks: i64,
    #[diesel(sql_type = BigInt)]
    bytes_processed: i64,
    #[diesel(sql_type = BigInt)]
    bytes_billed: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    p50: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    p95: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    p99: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    max_duration: Option<i64>,
    #[diesel(sql_type = BigInt)]
    llm_calls: i64,
    #[diesel(sql_type = BigInt)]
    input_tokens: i64,
    #[diesel(sql_type = BigInt)]
    output_tokens: i64,
    #[diesel(sql_type = Double)]
    llm_cost_usd: f64,
}

impl StatsRow {
    fn into_bucket(self) -> Bucket {
        let count = |v: Option<i64>| v.map(from_sql_count).unwrap_or(0);
        Bucket {
            key: self.k,
            stats: Stats {
                queries: from_sql_count(self.queries),
                succeeded: from_sql_count(self.succeeded),
                failed: from_sql_count(self.failed),
                rejected: from_sql_count(self.rejected),
                dry_runs: from_sql_count(self.dry_runs),
                cache_hits: from_sql_count(self.cache_hits),
                asks: from_sql_count(self.asks),
                bytes_processed: from_sql_count(self.bytes_processed),
                bytes_billed: from_sql_count(self.bytes_billed),
                estimated_cost_usd: 0.0,
                duration_ms: DurationPercentiles {
                    p50: count(self.p50),
                    p95: count(self.p95),
                    p99: count(self.p99),
                    max: count(self.max_duration),
                },
                llm_calls: from_sql_count(self.llm_calls),
                input_tokens: from_sql_count(self.input_tokens),
                output_tokens: from_sql_count(self.output_tokens),
                llm_cost_usd: self.llm_cost_usd,
            },
        }
    }
}

/// The summary from `summary_sql`'s rows: the total (when there were entries), then the buckets.
pub(crate) fn summary(rows: Vec<StatsRow>) -> Summary {
    let mut total = Stats::default();
    let mut buckets = Vec::with_capacity(rows.len());
    for row in rows {
        if row.is_total == 1 {
            total = row.into_bucket().stats;
        } else {
            buckets.push(row.into_bucket());
        }
    }
    Summary { total, buckets }
}

#[derive(Debug, QueryableByName)]
pub(crate) struct PopularRow {
    #[diesel(sql_type = Text)]
    fingerprint: String,
    #[diesel(sql_type = Text)]
    pub(crate) example_id: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    principals: i64,
    #[diesel(sql_type = Timestamp)]
    last_seen: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    total_duration_ms: i64,
    #[diesel(sql_type = BigInt)]
    bytes_processed: i64,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct ErrorRow {
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    rejected: i64,
    #[diesel(sql_type = Timestamp)]
    last_seen: NaiveDateTime,
    #[diesel(sql_type = Text)]
    pub(crate) example_id: String,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct TableRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    principals: i64,
    #[diesel(sql_type = BigInt)]
    bytes_processed: i64,
    #[diesel(sql_type = BigInt)]
    bytes_billed: i64,
    #[diesel(sql_type = Timestamp)]
    last_seen: NaiveDateTime,
}

#[derive(Debug, QueryableByName)]
pub(crate) struct ExampleRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    sql_submitted: String,
    #[diesel(sql_type = Nullable<Text>)]
    question: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    error_message: Option<String>,
}

fn example<'a>(examples: &'a [ExampleRow], id: &str) -> Option<&'a ExampleRow> {
    examples.iter().find(|e| e.id == id)
}

pub(crate) fn popular(
    rows: Vec<PopularRow>,
    examples: &[ExampleRow],
    kind: PopularKind,
) -> Vec<PopularEntry> {
    rows.into_iter()
        .map(|r| {
            let text = example(examples, &r.example_id).map(|e| match kind {
                PopularKind::Sql => e.sql_submitted.clone(),
                PopularKind::Ask => e.question.clone().unwrap_or_default(),
            });
            let n = from_sql_count(r.n);
            PopularEntry {
                fingerprint: r.fingerprint,
                example: text.unwrap_or_default(),
                example_id: r.example_id,
                count: n,
                principals: from_sql_count(r.principals),
                last_seen: r.last_seen.and_utc(),
                avg_duration_ms: ratio(from_sql_count(r.total_duration_ms), n),
                bytes_processed: from_sql_count(r.bytes_processed),
                success_rate: ratio(from_sql_count(r.succeeded), n),
            }
        })
        .collect()
}

pub(crate) fn errors(rows: Vec<ErrorRow>, examples: &[ExampleRow]) -> Vec<ErrorCount> {
    rows.into_iter()
        .map(|r| ErrorCount {
            example_message: example(examples, &r.example_id)
                .and_then(|e| e.error_message.clone())
                .unwrap_or_default(),
            code: r.code,
            count: from_sql_count(r.n),
            failed: from_sql_count(r.failed),
            rejected: from_sql_count(r.rejected),
            last_seen: r.last_seen.and_utc(),
            example_id: r.example_id,
        })
        .collect()
}

pub(crate) fn tables(rows: Vec<TableRow>) -> Vec<TableUsage> {
    rows.into_iter()
        .map(|r| TableUsage {
            table: r.name,
            queries: from_sql_count(r.n),
            principals: from_sql_count(r.principals),
            bytes_processed: from_sql_count(r.bytes_processed),
            bytes_billed: from_sql_count(r.bytes_billed),
            estimated_cost_usd: 0.0,
            last_seen: r.last_seen.and_utc(),
        })
        .collect()
}

/// `part / whole`, rounded to 4 decimals so both backends (and hand computations) agree.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = part as f64 / whole as f64;
    (r * 10_000.0).round() / 10_000.0
}

/// The entries `filter` covers that are not dry runs, ranked by `ranking`, at most `limit`:
/// the listing's boxed query for one backend (see `history::list_query`).
macro_rules! ranked_query {
    ($backend:ty, $filter:expr, $ranking:expr, $limit:expr) => {{
        use crate::schema::query_history::dsl as h;
        let filter: bqai_core::analytics::AnalyticsFilter = $filter;
        let mut q = h::query_history
            .select(crate::history::HistoryRow::as_select())
            .filter(h::created_at.ge(crate::convert::to_sql_time(filter.from)))
            .filter(h::created_at.lt(crate::convert::to_sql_time(filter.to)))
            .filter(h::dry_run.eq(false))
            .into_boxed::<$backend>();
        if let Some(principal) = filter.principal {
            q = q.filter(h::principal.eq(principal));
        }
        let q = match $ranking {
            bqai_core::analytics::Ranking::Slowest => {
                q.order((h::duration_ms.desc(), h::id.desc()))
            }
            bqai_core::analytics::Ranking::MostExpensive => q.order((
                h::bytes_billed.desc(),
                h::bytes_processed.desc(),
                h::id.desc(),
            )),
        };
        q.limit(i64::from($limit))
    }};
}
pub(crate) use ranked_query;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        assert_eq!(
            Dialect::Postgres.placeholders("a = ? AND b < ? LIMIT ?"),
            "a = $1 AND b < $2 LIMIT $3"
        );
        assert_eq!(Dialect::Sqlite.placeholders("a = ?"), "a = ?");
    }
}
