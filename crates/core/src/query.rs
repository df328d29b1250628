//! The query use case: guard → dry run → byte cap → (cache) → run → history.
//!
//! Nothing reaches [`Warehouse::execute`] unless the guard accepted it, the dry run planned
//! it, the tables the warehouse resolved are inside the caller's scope, and the estimate is
//! under the byte cap. Every query, whatever its outcome, leaves one history record.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::Instrument;

use crate::auth::quota;
use crate::error::{Error, Result};
use crate::guard::{self, GuardPolicy, RejectReason, Rejection};
use crate::history::{AskRecord, HistoryEntry, QueryKind, QueryStatus};
use crate::model::{
    CostEstimate, DatasetScope, DryRunReport, Principal, QueryJob, QueryOutcome, QueryRequest,
    QueryResult, QueryStats, QueueWatch, Role, make_names_unique,
};
use crate::plan_cache::{PlanCache, Verdict};
use crate::ports::{HistoryStore, UsageLedger, Warehouse};

/// Bounds the query service applies to every request.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryLimits {
    /// Datasets anyone may read (a principal's own scope is intersected with this).
    pub allowed: DatasetScope,
    /// Row cap when the request gives none.
    pub default_max_rows: u64,
    /// Largest row cap a request may ask for.
    pub max_rows_limit: u64,
    /// Timeout when the request gives none.
    pub default_timeout: Duration,
    /// Largest timeout a request may ask for.
    pub max_timeout: Duration,
    /// Byte cap per query (checked on the dry-run estimate, and set as maximum bytes billed).
    pub max_bytes_billed: Option<u64>,
    /// On-demand price per TiB processed, for cost estimates.
    pub usd_per_tib: f64,
    /// Longest SQL text accepted, in bytes.
    pub max_sql_bytes: usize,
    /// Largest result a response carries, as JSON bytes of its rows: beyond it the rows are
    /// cut and the result says `truncated` (export the whole result instead). `None`: no cap.
    pub max_response_bytes: Option<u64>,
}

/// The default of [`QueryLimits::max_response_bytes`]: 10 MiB of rows.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            allowed: DatasetScope::All,
            default_max_rows: 1000,
            max_rows_limit: 10_000,
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            max_bytes_billed: Some(10 * 1024 * 1024 * 1024),
            usd_per_tib: 6.25,
            max_sql_bytes: 100 * 1024,
            max_response_bytes: Some(DEFAULT_MAX_RESPONSE_BYTES),
        }
    }
}

/// How many statements the guard refused, per reason, since start: kept by the query service
/// (the guard is a pure function, so there is no port to count around) and read by whoever
/// reports them (the server's `/metrics`).
#[derive(Debug, Default)]
pub struct RejectionCounts([AtomicU64; RejectReason::ALL.len()]);

impl RejectionCounts {
    /// Counts one refusal.
    pub fn record(&self, reason: RejectReason) {
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every reason with its count (zeros included).
    pub fn snapshot(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .iter()
            .zip(&self.0)
            .map(|(r, n)| (*r, n.load(Ordering::Relaxed)))
    }
}

/// Runs guarded queries and records them.
#[derive(Clone)]
pub struct QueryService {
    warehouse: Arc<dyn Warehouse>,
    history: Arc<dyn HistoryStore>,
    limits: QueryLimits,
    usage: Option<Arc<dyn UsageLedger>>,
    /// Whether spans may carry the SQL text.
    sql_in_traces: bool,
    /// The guard's refusals, per reason (shared by the clones of this service).
    rejections: Arc<RejectionCounts>,
    /// Verdicts of statements already planned ([`QueryService::with_plan_cache`]).
    plans: Option<Arc<PlanCache>>,
    /// Where paged results are kept ([`QueryService::with_paging`]).
    paging: Option<Arc<crate::paging::Paging>>,
}

/// What the pipeline knew when it stopped, for the history record of a failure.
#[derive(Default)]
struct Progress {
    sql_executed: Option<String>,
    bytes_processed: u64,
    /// Tables the statement reads, once the guard (then the dry run) resolved them.
    tables: Vec<String>,
    /// The warehouse was asked to run the statement (so a failure is not a rejection).
    executing: bool,
    /// Rows handed out by a streamed query (its result holds none).
    rows_streamed: Option<u64>,
    /// The submitted SQL's shape, once a verdict knows it (history's fingerprint).
    sql_shape: Option<String>,
}

/// The bounds a request is checked against: a query's response, or an export's file.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Largest row cap the request may ask for.
    max_rows_limit: u64,
    /// Cap on the rows' JSON in memory ([`QueryJob::max_result_bytes`]).
    max_result_bytes: Option<u64>,
}

/// A statement that passed every check, ready to run.
struct Checked {
    query_id: String,
    sql: String,
    limit: u64,
    user_limit: Option<u64>,
    dry_run: bool,
    job: QueryJob,
    report: DryRunReport,
    referenced_tables: Vec<crate::model::TableRef>,
    /// The submitted SQL's shape, for history.
    sql_shape: Option<String>,
}

/// A query that passed the guard, the dry run, the scope check and the byte cap
/// ([`QueryService::plan`]); nothing has run and nothing is recorded yet.
pub struct PlannedQuery {
    query_id: String,
    request: QueryRequest,
    started: Instant,
    created_at: chrono::DateTime<Utc>,
    checked: Checked,
}

impl PlannedQuery {
    /// The SQL that will run (after the guard's rewrite).
    pub fn sql(&self) -> &str {
        &self.checked.sql
    }

    /// The dry run's byte estimate.
    pub fn bytes_processed(&self) -> u64 {
        self.checked.report.bytes_processed
    }

    /// Tables the statement reads (the guard's and the warehouse's view, merged).
    pub fn referenced_tables(&self) -> &[crate::model::TableRef] {
        &self.checked.referenced_tables
    }

    /// The query id history will use.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// The SQL as submitted (before the guard's rewrite).
    pub fn submitted_sql(&self) -> &str {
        &self.request.sql
    }

    /// Whether only a dry run was asked for.
    pub fn is_dry_run(&self) -> bool {
        self.request.dry_run
    }

    /// The row cap the statement runs under (its outermost LIMIT after the guard).
    pub fn row_limit(&self) -> u64 {
        self.checked.limit
    }

    /// The LIMIT the caller wrote, if any.
    pub fn user_limit(&self) -> Option<u64> {
        self.checked.user_limit
    }

    /// Reports the query's position to `watch` while it waits in the query queue.
    pub fn watch_queue(&mut self, watch: QueueWatch) {
        self.checked.job.queue_watch = Some(watch);
    }

    /// Tells the warehouse the reader needs `rows` rows first (a paged query's first page).
    pub fn first_batch_rows(&mut self, rows: u64) {
        self.checked.job.first_batch_rows = Some(rows);
    }

    /// What history records of this query if running it fails (`executing`: the warehouse
    /// is asked to run it, so a failure is not a refusal).
    fn progress(&self, executing: bool) -> Progress {
        Progress {
            sql_executed: Some(self.checked.sql.clone()),
            bytes_processed: self.checked.report.bytes_processed,
            tables: table_names(&self.checked.referenced_tables),
            executing,
            rows_streamed: None,
            sql_shape: self.checked.sql_shape.clone(),
        }
    }
}

/// A query whose rows are being handed out batch by batch ([`QueryService::stream_planned`]).
/// Read `rows`, then give `record` to [`QueryService::finish_stream`]: the history entry is
/// written then, with the rows that went out.
#[derive(Debug)]
pub struct StreamedQuery {
    /// History id of this query.
    pub query_id: String,
    /// The SQL as run (after the guard's rewrite).
    pub sql: String,
    /// Tables the query reads.
    pub referenced_tables: Vec<crate::model::TableRef>,
    /// The rows.
    pub rows: crate::model::RowStream,
    /// What history needs once the rows are read.
    pub record: StreamRecord,
}

/// The pending history record of a [`StreamedQuery`].
pub struct StreamRecord {
    query_id: String,
    request: QueryRequest,
    principal: Principal,
    meta: RecordMeta,
    started: Instant,
    created_at: chrono::DateTime<Utc>,
    progress: Progress,
    stats: QueryStats,
}

impl StreamRecord {
    /// The history id the record will have.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }
}

impl std::fmt::Debug for StreamRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRecord")
            .field("query_id", &self.query_id)
            .finish_non_exhaustive()
    }
}

/// How a query is recorded in history.
#[derive(Debug, Clone, Default)]
pub struct RecordMeta {
    /// SQL or ask.
    pub kind: QueryKind,
    /// The question, for asks.
    pub question: Option<String>,
    /// Generation details, for asks.
    pub ask: Option<AskRecord>,
    /// The request the query ran for (see [`HistoryEntry::request_id`]).
    pub request_id: Option<String>,
    /// The history entry this query runs again (see [`HistoryEntry::rerun_of`]).
    pub rerun_of: Option<String>,
}

impl RecordMeta {
    /// Plain SQL.
    pub fn sql() -> Self {
        Self::default()
    }
}

impl QueryService {
    /// A query service over `warehouse` (usually a cached one) recording into `history`.
    pub fn new(
        warehouse: Arc<dyn Warehouse>,
        history: Arc<dyn HistoryStore>,
        limits: QueryLimits,
    ) -> Self {
        Self {
            warehouse,
            history,
            limits,
            usage: None,
            sql_in_traces: false,
            rejections: Arc::default(),
            plans: None,
            paging: None,
        }
    }

    /// Lets queries be paged ([`QueryService::run_paged`]), their spooled rows kept in
    /// `paging.spool`.
    #[must_use]
    pub fn with_paging(mut self, paging: crate::paging::Paging) -> Self {
        self.paging = Some(Arc::new(paging));
        self
    }

    pub(crate) fn paging(&self) -> Result<&crate::paging::Paging> {
        self.paging.as_deref().ok_or_else(|| {
            Error::InvalidRequest("this server does not page results: leave out `page_size`".into())
        })
    }

    pub(crate) fn warehouse(&self) -> &Arc<dyn Warehouse> {
        &self.warehouse
    }

    /// Keeps each statement's verdict (guard and dry run) in `plans`, so that a repeat skips
    /// parsing and the dry run; see [`crate::plan_cache`] for what is still checked.
    #[must_use]
    pub fn with_plan_cache(mut self, plans: Arc<PlanCache>) -> Self {
        self.plans = Some(plans);
        self
    }

    /// The guard's refusals so far, per reason.
    pub fn rejections(&self) -> Arc<RejectionCounts> {
        Arc::clone(&self.rejections)
    }

    /// Counts `r` and turns it into the caller's error.
    fn refused(&self, r: Rejection) -> Error {
        self.rejections.record(r.reason);
        rejection_to_error(r)
    }

    /// Puts the SQL text in the spans of its guard, dry run and execution (`db.query.text`).
    /// Off by default: SQL can name customers and amounts.
    #[must_use]
    pub fn with_sql_in_traces(mut self, on: bool) -> Self {
        self.sql_in_traces = on;
        self
    }

    /// `db.system` of the warehouse, for spans.
    fn db_system(&self) -> &'static str {
        match self.dialect() {
            crate::model::SqlDialect::BigQuery => "bigquery",
            crate::model::SqlDialect::DataFusion => "datafusion",
        }
    }

    /// A span for a warehouse call: `db.*` attributes (the SQL text only when allowed), and
    /// empty slots for what the call reports.
    fn warehouse_span(
        &self,
        name: &'static str,
        operation: &'static str,
        sql: &str,
    ) -> tracing::Span {
        let span = tracing::info_span!(
            "warehouse",
            otel.name = name,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            "db.system" = self.db_system(),
            "db.operation" = operation,
            "db.query.text" = tracing::field::Empty,
            "bqai.bytes_processed" = tracing::field::Empty,
            "bqai.bytes_billed" = tracing::field::Empty,
            "bqai.cache_hit" = tracing::field::Empty,
            "bqai.rows" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        if self.sql_in_traces {
            span.record("db.query.text", sql);
        }
        span
    }

    /// Enforces principals' daily byte quotas with `ledger`: checked against the dry run's
    /// estimate before a query runs, charged with the bytes billed after it ran.
    #[must_use]
    pub fn with_usage_ledger(mut self, ledger: Arc<dyn UsageLedger>) -> Self {
        self.usage = Some(ledger);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// The dialect of the warehouse behind this service.
    pub fn dialect(&self) -> crate::model::SqlDialect {
        self.warehouse.dialect()
    }

    /// Runs (or dry-runs) one query for `principal`, recording it in history.
    pub async fn run(&self, request: QueryRequest, principal: &Principal) -> Result<QueryOutcome> {
        self.run_recorded(request, principal, RecordMeta::sql())
            .await
    }

    /// Like [`QueryService::run`], recording the query with `meta` (the ask pipeline records
    /// generated SQL as an ask, with its question and generation costs).
    #[tracing::instrument(
        name = "query",
        skip_all,
        fields(bqai.kind = ?meta.kind, bqai.dry_run = request.dry_run)
    )]
    pub async fn run_recorded(
        &self,
        request: QueryRequest,
        principal: &Principal,
        meta: RecordMeta,
    ) -> Result<QueryOutcome> {
        let started = Instant::now();
        let created_at = Utc::now();
        let query_id = uuid::Uuid::now_v7().to_string();
        let mut progress = Progress::default();
        let outcome = match self
            .plan_inner(&query_id, &request, principal, self.bounds(), &mut progress)
            .await
        {
            Ok(planned) => self.finish(planned, &mut progress).await,
            Err(e) => Err(e),
        };
        self.record(
            &query_id, &request, principal, meta, started, created_at, &progress, outcome,
        )
        .await
    }

    /// Checks a query without running it or recording anything: validation, guard, dry run,
    /// the warehouse's tables against the caller's scope, statement type and byte cap. The
    /// ask pipeline plans each generated statement and feeds failures back to the generator;
    /// [`QueryService::run_planned`] then runs (and records) the one that passed.
    pub async fn plan(&self, request: QueryRequest, principal: &Principal) -> Result<PlannedQuery> {
        let started = Instant::now();
        let created_at = Utc::now();
        let query_id = uuid::Uuid::now_v7().to_string();
        let mut progress = Progress::default();
        let checked = self
            .plan_inner(&query_id, &request, principal, self.bounds(), &mut progress)
            .await?;
        Ok(PlannedQuery {
            query_id,
            request,
            started,
            created_at,
            checked,
        })
    }

    /// Checks a query whose whole result is to leave as a file: every check of
    /// [`QueryService::plan`], with `max_rows` (`export.max_rows`) in place of the response
    /// row cap and no response byte cap. A refusal is recorded in history with `meta`.
    pub async fn plan_export(
        &self,
        mut request: QueryRequest,
        principal: &Principal,
        max_rows: u64,
        meta: RecordMeta,
    ) -> Result<PlannedQuery> {
        // The whole result unless the request asks for fewer rows.
        request.max_rows = Some(request.max_rows.unwrap_or(max_rows));
        self.plan_bounded(request, principal, max_rows, meta).await
    }

    /// Every check of [`QueryService::plan`], with `max_rows_limit` in place of the response
    /// row cap and no response byte cap (the rows are read as a stream). A refusal is
    /// recorded in history with `meta`.
    pub(crate) async fn plan_bounded(
        &self,
        request: QueryRequest,
        principal: &Principal,
        max_rows_limit: u64,
        meta: RecordMeta,
    ) -> Result<PlannedQuery> {
        let started = Instant::now();
        let created_at = Utc::now();
        let query_id = uuid::Uuid::now_v7().to_string();
        let mut progress = Progress::default();
        let bounds = Bounds {
            max_rows_limit,
            max_result_bytes: None,
        };
        match self
            .plan_inner(&query_id, &request, principal, bounds, &mut progress)
            .await
        {
            Ok(checked) => Ok(PlannedQuery {
                query_id,
                request,
                started,
                created_at,
                checked,
            }),
            Err(e) => Err(failure(
                self.record(
                    &query_id,
                    &request,
                    principal,
                    meta,
                    started,
                    created_at,
                    &progress,
                    Err(e),
                )
                .await,
            )),
        }
    }

    /// Runs a query planned by [`QueryService::plan_export`] and hands out its rows as the
    /// warehouse produces them. A failure to start is recorded in history here; once the
    /// rows flow, [`QueryService::finish_stream`] records the outcome.
    pub async fn stream_planned(
        &self,
        planned: PlannedQuery,
        principal: &Principal,
        meta: RecordMeta,
    ) -> Result<StreamedQuery> {
        let mut progress = planned.progress(true);
        let PlannedQuery {
            query_id,
            request,
            started,
            created_at,
            checked,
        } = planned;
        let span = self.warehouse_span("warehouse.execute_stream", "execute", &checked.job.sql);
        let opened = self
            .warehouse
            .execute_stream(&checked.job)
            .instrument(span.clone())
            .await
            .inspect_err(|e| failed_span(&span, e));
        let mut rows = match opened {
            Ok(rows) => rows,
            Err(e) => {
                return Err(failure(
                    self.record(
                        &query_id,
                        &request,
                        principal,
                        meta,
                        started,
                        created_at,
                        &progress,
                        Err(e),
                    )
                    .await,
                ));
            }
        };
        span.record("bqai.bytes_processed", rows.stats.bytes_processed);
        span.record("bqai.bytes_billed", rows.stats.bytes_billed);
        make_names_unique(&mut rows.columns);
        self.settle_stats(&mut rows.stats, &checked.report);
        progress.bytes_processed = rows.stats.bytes_processed;
        let record = StreamRecord {
            query_id: query_id.clone(),
            request,
            principal: principal.clone(),
            meta,
            started,
            created_at,
            progress,
            stats: rows.stats.clone(),
        };
        Ok(StreamedQuery {
            query_id,
            sql: checked.sql,
            referenced_tables: checked.referenced_tables,
            rows,
            record,
        })
    }

    /// Records a streamed query once its rows were read: `rows` went out, and `error` ended
    /// the stream early if one did. The warehouse ran the statement either way, so what it
    /// billed is charged to the caller's quota either way.
    pub async fn finish_stream(&self, record: StreamRecord, rows: u64, error: Option<Error>) {
        let StreamRecord {
            query_id,
            request,
            principal,
            meta,
            started,
            created_at,
            mut progress,
            stats,
        } = record;
        progress.rows_streamed = Some(rows);
        // `record` reads the outcome's statistics (the SQL and tables are in `progress`);
        // the rows went to the caller as the stream.
        let outcome = match error {
            None => Ok(QueryOutcome {
                query_id: query_id.clone(),
                sql: progress.sql_executed.clone().unwrap_or_default(),
                dry_run: false,
                referenced_tables: Vec::new(),
                result: QueryResult {
                    columns: Vec::new(),
                    rows: Vec::new(),
                    truncated: false,
                    truncated_at_bytes: None,
                    stats,
                },
            }),
            Some(e) => {
                self.charge_quota(&principal, stats.charged_bytes()).await;
                Err(e)
            }
        };
        // The outcome went to the caller as the stream; only its record remains.
        let _ = self
            .record(
                &query_id, &request, &principal, meta, started, created_at, &progress, outcome,
            )
            .await;
    }

    /// An executed query's statistics as reported: the dry run's estimate where the warehouse
    /// reports no bytes (and did not answer from its cache), and the cost of those bytes.
    fn settle_stats(&self, stats: &mut QueryStats, report: &DryRunReport) {
        if stats.bytes_processed == 0 && !stats.cache_hit {
            stats.bytes_processed = report.bytes_processed;
        }
        stats.estimated_cost_usd =
            CostEstimate::from_bytes(stats.bytes_processed, self.limits.usd_per_tib).usd;
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            max_rows_limit: self.limits.max_rows_limit,
            max_result_bytes: self.limits.max_response_bytes,
        }
    }

    /// Runs (or, for a dry-run request, answers from the plan) a query planned by
    /// [`QueryService::plan`] for the same principal, and records it in history with `meta`.
    pub async fn run_planned(
        &self,
        planned: PlannedQuery,
        principal: &Principal,
        meta: RecordMeta,
    ) -> Result<QueryOutcome> {
        let mut progress = planned.progress(false);
        let PlannedQuery {
            query_id,
            request,
            started,
            created_at,
            checked,
        } = planned;
        let outcome = self.finish(checked, &mut progress).await;
        self.record(
            &query_id, &request, principal, meta, started, created_at, &progress, outcome,
        )
        .await
    }

    /// Records `outcome` in history (a history failure is logged, never returned) and
    /// passes it on with the total duration filled in.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        query_id: &str,
        request: &QueryRequest,
        principal: &Principal,
        meta: RecordMeta,
        started: Instant,
        created_at: chrono::DateTime<Utc>,
        progress: &Progress,
        outcome: Result<QueryOutcome>,
    ) -> Result<QueryOutcome> {
        let duration_ms = elapsed_ms(started);
        let mut entry = HistoryEntry {
            id: query_id.to_string(),
            kind: meta.kind,
            question: meta.question,
            sql_submitted: request.sql.clone(),
            sql_executed: progress.sql_executed.clone(),
            status: QueryStatus::Succeeded,
            error_code: None,
            error_message: None,
            principal: principal.id.clone(),
            dataset: request.default_dataset.clone(),
            dry_run: request.dry_run,
            bytes_processed: progress.bytes_processed,
            bytes_billed: 0,
            duration_ms,
            row_count: 0,
            cache_hit: false,
            created_at,
            ask: meta.ask,
            request_id: meta.request_id,
            sql_shape: progress.sql_shape.clone(),
            question_shape: None,
            tables: progress.tables.clone(),
            rerun_of: meta.rerun_of,
        }
        .shaped(self.dialect());
        let outcome = match outcome {
            Ok(mut outcome) => {
                if !outcome.dry_run {
                    self.charge_quota(principal, outcome.result.stats.charged_bytes())
                        .await;
                }
                outcome.result.stats.duration_ms = duration_ms;
                let stats = &outcome.result.stats;
                entry.bytes_processed = stats.bytes_processed;
                entry.bytes_billed = stats.bytes_billed;
                entry.cache_hit = stats.cache_hit;
                entry.row_count = progress
                    .rows_streamed
                    .unwrap_or(outcome.result.rows.len() as u64);
                Ok(outcome)
            }
            Err(err) => {
                // Client errors found before the warehouse ran anything are rejections;
                // anything that went wrong while running is a failure.
                entry.status = if err.is_client_error() && !progress.executing {
                    QueryStatus::Rejected
                } else {
                    QueryStatus::Failed
                };
                entry.error_code = Some(err.code().to_string());
                entry.error_message = Some(safe_message(&err));
                Err(err)
            }
        };
        self.record_entry(&entry).await;
        outcome
    }

    /// Writes one history entry; a failure is logged, never returned, because history must
    /// never turn an answered query into a failed one.
    #[tracing::instrument(
        name = "history.write",
        skip_all,
        fields(bqai.query_id = %entry.id, bqai.status = ?entry.status)
    )]
    pub async fn record_entry(&self, entry: &HistoryEntry) {
        if let Err(e) = self.history.record(entry).await {
            tracing::error!(query_id = %entry.id, error = %e, "failed to record query history");
        }
    }

    /// Checks everything about a request but its SQL: row cap, timeout, the caller's role and
    /// the default dataset's scope; returns the timeout and the guard policy for the caller.
    fn validate(
        &self,
        request: &QueryRequest,
        principal: &Principal,
        max_rows_limit: u64,
    ) -> Result<(std::time::Duration, GuardPolicy)> {
        let limits = &self.limits;
        let max_rows = request.max_rows.unwrap_or(limits.default_max_rows);
        if max_rows == 0 || max_rows > max_rows_limit {
            return Err(Error::InvalidRequest(format!(
                "`max_rows` must be between 1 and {max_rows_limit}"
            )));
        }
        let timeout = request.timeout.unwrap_or(limits.default_timeout);
        if timeout.is_zero() || timeout > limits.max_timeout {
            return Err(Error::InvalidRequest(format!(
                "`timeout_ms` must be between 1 and {}",
                limits.max_timeout.as_millis()
            )));
        }
        if !request.dry_run && principal.role == Role::Viewer {
            return Err(Error::Forbidden(
                "the viewer role may only dry-run queries".into(),
            ));
        }
        if let Some(ds) = &request.default_dataset {
            if !is_valid_dataset_id(ds) {
                return Err(Error::InvalidRequest(format!(
                    "`dataset_id` {ds:?} is not a valid dataset id"
                )));
            }
            if !self.scope(principal).allows(None, ds) {
                return Err(Error::Forbidden(format!(
                    "dataset `{ds}` is not in the datasets you may read"
                )));
            }
        }
        let policy = self.guard_policy(principal, request.default_dataset.clone(), max_rows);
        Ok((timeout, policy))
    }

    /// The datasets `principal` may read: its own grants within the service's allow-list.
    pub fn scope(&self, principal: &Principal) -> DatasetScope {
        self.limits.allowed.intersect(&principal.datasets)
    }

    fn guard_policy(
        &self,
        principal: &Principal,
        default_dataset: Option<String>,
        max_rows: u64,
    ) -> GuardPolicy {
        GuardPolicy {
            dialect: self.warehouse.dialect(),
            home_project: self.warehouse.home_project(),
            allowed: self.scope(principal),
            default_dataset,
            max_rows,
        }
    }

    /// Whether the guard would let `principal` run `sql` (with `default_dataset` for bare
    /// names): every table it reads is in the caller's scope and nothing in it is refused.
    /// Used to keep other principals' SQL (from history) out of what a caller is shown.
    pub fn may_run(&self, principal: &Principal, default_dataset: &str, sql: &str) -> bool {
        let policy = self.guard_policy(
            principal,
            Some(default_dataset.to_owned()),
            self.limits.default_max_rows,
        );
        guard::check(sql, &policy).is_ok()
    }

    /// Everything [`QueryService::plan`] would refuse about `request` before looking at its
    /// SQL — row cap, timeout, role, dataset scope, an exhausted daily quota — so a caller
    /// that has to pay for the SQL first (an LLM) can stop before it does.
    pub async fn precheck(&self, request: &QueryRequest, principal: &Principal) -> Result<()> {
        self.validate(request, principal, self.limits.max_rows_limit)?;
        if !request.dry_run {
            self.check_quota(principal, 0).await?;
        }
        Ok(())
    }

    async fn plan_inner(
        &self,
        query_id: &str,
        request: &QueryRequest,
        principal: &Principal,
        bounds: Bounds,
        progress: &mut Progress,
    ) -> Result<Checked> {
        let limits = &self.limits;
        if request.sql.trim().is_empty() {
            return Err(Error::InvalidRequest("`sql` must not be empty".into()));
        }
        if request.sql.contains('\0') {
            // Nothing reads it, and a history store (PostgreSQL) cannot keep it.
            return Err(Error::InvalidRequest(
                "`sql` contains a NUL character".into(),
            ));
        }
        if request.sql.len() > limits.max_sql_bytes {
            return Err(Error::InvalidRequest(format!(
                "`sql` is longer than {} bytes",
                limits.max_sql_bytes
            )));
        }
        let (timeout, policy) = self.validate(request, principal, bounds.max_rows_limit)?;
        let plans = self.plans.as_ref().map(|plans| {
            let key = PlanCache::key(&policy, &request.sql, &request.parameters.cache_key_text());
            (plans, key)
        });
        let cached = match &plans {
            // `use_cache: false` asks for fresh answers: a fresh plan too.
            Some((plans, key)) if request.use_cache => plans.get(key).await,
            _ => None,
        };
        let verdict = match cached {
            Some(verdict) => {
                progress.sql_executed = Some(verdict.sql.clone());
                progress.tables = table_names(&verdict.tables);
                // The scope is part of the key; checked again anyway, as it needs no parsing.
                guard::check_tables(&verdict.tables, &policy)
                    .and_then(|()| guard::check_tables(&verdict.report.referenced_tables, &policy))
                    .map_err(|r| self.refused(r))?;
                verdict
            }
            None => {
                let verdict = self
                    .verdict(
                        query_id, request, principal, &policy, timeout, bounds, progress,
                    )
                    .await?;
                if let Some((plans, key)) = &plans {
                    plans
                        .put(key, &verdict, request.default_dataset.as_deref())
                        .await;
                }
                verdict
            }
        };
        let Verdict {
            sql,
            tables,
            limit,
            user_limit,
            report,
            shape,
        } = verdict;
        progress.sql_shape.clone_from(&shape);
        progress.bytes_processed = report.bytes_processed;
        if let Some(cap) = limits
            .max_bytes_billed
            .filter(|cap| report.bytes_processed > *cap)
        {
            return Err(Error::CostLimitExceeded {
                estimated_bytes: report.bytes_processed,
                limit_bytes: cap,
            });
        }
        if !request.dry_run {
            self.check_quota(principal, report.bytes_processed).await?;
        }
        let job = self.job(
            query_id, request, principal, &sql, limit, &tables, timeout, bounds,
        );
        let mut referenced_tables = tables;
        for t in &report.referenced_tables {
            if !referenced_tables.contains(t) {
                referenced_tables.push(t.clone());
            }
        }
        referenced_tables.sort();
        progress.tables = table_names(&referenced_tables);
        Ok(Checked {
            query_id: query_id.to_string(),
            sql,
            limit,
            user_limit,
            dry_run: request.dry_run,
            job,
            report,
            referenced_tables,
            sql_shape: shape,
        })
    }

    /// The job that runs (or dry-runs) `sql` for `request`.
    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        query_id: &str,
        request: &QueryRequest,
        principal: &Principal,
        sql: &str,
        limit: u64,
        tables: &[crate::model::TableRef],
        timeout: Duration,
        bounds: Bounds,
    ) -> QueryJob {
        QueryJob {
            query_id: query_id.to_string(),
            sql: sql.to_owned(),
            default_dataset: request.default_dataset.clone(),
            max_rows: limit,
            timeout,
            max_bytes_billed: self.limits.max_bytes_billed,
            use_cache: request.use_cache,
            referenced_tables: tables.to_vec(),
            labels: job_labels(query_id, principal),
            parameters: request.parameters.clone(),
            max_result_bytes: bounds.max_result_bytes,
            principal: principal.id.clone(),
            queue_watch: None,
            first_batch_rows: None,
        }
    }

    /// A statement's verdict, worked out: the guard, the placeholders against the request's
    /// parameters, the dry run, the warehouse's tables against the scope, the statement type.
    #[allow(clippy::too_many_arguments)]
    async fn verdict(
        &self,
        query_id: &str,
        request: &QueryRequest,
        principal: &Principal,
        policy: &GuardPolicy,
        timeout: Duration,
        bounds: Bounds,
        progress: &mut Progress,
    ) -> Result<Verdict> {
        let guarded = {
            let span = tracing::info_span!(
                "guard",
                "db.query.text" = tracing::field::Empty,
                "bqai.reject_reason" = tracing::field::Empty,
            );
            let _entered = span.enter();
            if self.sql_in_traces {
                span.record("db.query.text", request.sql.as_str());
            }
            guard::check(&request.sql, policy).map_err(|r| {
                span.record("bqai.reject_reason", r.reason.as_str());
                self.refused(r)
            })?
        };
        progress.sql_executed = Some(guarded.sql.clone());
        progress.tables = table_names(&guarded.referenced_tables);
        crate::params::check_placeholders(
            policy.dialect,
            &guarded.placeholders,
            &request.parameters,
        )
        .map_err(Error::InvalidRequest)?;

        let job = self.job(
            query_id,
            request,
            principal,
            &guarded.sql,
            guarded.limit,
            &guarded.referenced_tables,
            timeout,
            bounds,
        );
        let span = self.warehouse_span("warehouse.dry_run", "dry_run", &job.sql);
        let report = self
            .warehouse
            .dry_run(&job)
            .instrument(span.clone())
            .await
            .inspect_err(|e| failed_span(&span, e))?;
        span.record("bqai.bytes_processed", report.bytes_processed);
        progress.bytes_processed = report.bytes_processed;
        // The warehouse's own view (views expanded, wildcards resolved) must pass too.
        guard::check_tables(&report.referenced_tables, policy).map_err(|r| self.refused(r))?;
        if let Some(kind) = report
            .statement_type
            .as_deref()
            .filter(|k| !k.eq_ignore_ascii_case("SELECT"))
        {
            return Err(self.refused(Rejection::new(
                RejectReason::NotAQuery,
                format!("the warehouse classified this statement as {kind}, not SELECT"),
            )));
        }
        Ok(Verdict {
            sql: guarded.sql,
            tables: guarded.referenced_tables,
            limit: guarded.limit,
            user_limit: guarded.user_limit,
            report,
            shape: Some(crate::analytics::sql_shape(&request.sql, self.dialect())),
        })
    }

    /// Refuses a query whose estimate would take `principal` past its daily byte quota.
    /// A ledger that cannot answer refuses too: quotas guard money, so they fail closed.
    async fn check_quota(&self, principal: &Principal, estimate: u64) -> Result<()> {
        let (Some(ledger), Some(limit), Some(id)) = (
            &self.usage,
            principal.daily_byte_quota,
            principal.id.as_deref(),
        ) else {
            return Ok(());
        };
        let now = Utc::now();
        let used = ledger.bytes_used(id, quota::utc_day(now)).await?;
        if used >= limit || estimate > limit - used {
            return Err(Error::QuotaExceeded {
                limit_bytes: limit,
                used_bytes: used,
                requested_bytes: estimate,
                resets_at: quota::next_reset(now),
            });
        }
        Ok(())
    }

    /// Charges what an executed query cost to its principal's quota: bytes billed, or bytes
    /// processed where the warehouse does not bill; nothing for a cache hit. A failure is
    /// logged: the query already ran and its answer must not be lost.
    async fn charge_quota(&self, principal: &Principal, bytes: u64) {
        let (Some(ledger), Some(id)) = (&self.usage, principal.id.as_deref()) else {
            return;
        };
        if principal.daily_byte_quota.is_none() {
            return;
        }
        if bytes == 0 {
            return;
        }
        if let Err(e) = ledger
            .charge_bytes(id, quota::utc_day(Utc::now()), bytes)
            .await
        {
            tracing::error!(principal = %id, bytes, error = %e, "failed to charge the byte quota");
        }
    }

    /// Second half of the pipeline: answer a dry run from its report, or execute.
    async fn finish(&self, checked: Checked, progress: &mut Progress) -> Result<QueryOutcome> {
        let limits = &self.limits;
        let Checked {
            query_id,
            sql,
            limit,
            user_limit,
            dry_run,
            job,
            report,
            referenced_tables,
            sql_shape: _,
        } = checked;
        if dry_run {
            let cost = CostEstimate::from_bytes(report.bytes_processed, limits.usd_per_tib);
            let mut columns = report.schema;
            make_names_unique(&mut columns);
            return Ok(QueryOutcome {
                query_id,
                sql,
                dry_run: true,
                referenced_tables,
                result: QueryResult {
                    columns,
                    rows: Vec::new(),
                    truncated: false,
                    truncated_at_bytes: None,
                    stats: QueryStats {
                        bytes_processed: report.bytes_processed,
                        bytes_billed: 0,
                        estimated_cost_usd: cost.usd,
                        cache_hit: false,
                        duration_ms: 0,
                    },
                },
            });
        }

        progress.executing = true;
        let span = self.warehouse_span("warehouse.execute", "execute", &job.sql);
        let mut result = self
            .warehouse
            .execute(&job)
            .instrument(span.clone())
            .await
            .inspect_err(|e| failed_span(&span, e))?;
        span.record("bqai.bytes_processed", result.stats.bytes_processed);
        span.record("bqai.bytes_billed", result.stats.bytes_billed);
        span.record("bqai.cache_hit", result.stats.cache_hit);
        span.record("bqai.rows", result.rows.len());
        result.make_column_names_unique();
        if result.rows.len() as u64 > limit {
            // Second wall: an adapter that ignored max_rows still cannot return more.
            result
                .rows
                .truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        // The cap is "reached" only if the caller did not ask for at most that many rows.
        result.truncated =
            result.rows.len() as u64 >= limit && user_limit.is_none_or(|u| u > limit);
        result.truncated_at_bytes = None;
        if let Some(cap) = limits.max_response_bytes {
            // Second wall behind the adapter, which stops reading near the cap.
            result.cap_json_bytes(cap);
        }
        self.settle_stats(&mut result.stats, &report);
        Ok(QueryOutcome {
            query_id,
            sql,
            dry_run: false,
            referenced_tables,
            result,
        })
    }
}

/// The error of a failed outcome [`QueryService::record`] handed back (it hands back what it
/// was given, so a failure stays one).
fn failure<T>(recorded: Result<T>) -> Error {
    recorded
        .err()
        .unwrap_or_else(|| Error::internal_msg("a failed query was recorded as answered"))
}

/// Marks `span` failed with the error's code (its message may hold SQL: it stays out).
fn failed_span(span: &tracing::Span, e: &Error) {
    span.record("error.type", e.code());
    if !e.is_client_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Dataset-not-allowed is a permission problem (403), everything else a rejected statement.
fn rejection_to_error(r: Rejection) -> Error {
    if r.reason == RejectReason::DatasetNotAllowed {
        Error::Forbidden(r.message)
    } else {
        Error::SqlRejected(r)
    }
}

/// Labels for warehouse jobs, so the warehouse's own job log can be joined with history.
/// BigQuery label values: lowercase letters, digits, `-` and `_`, at most 63 characters.
fn job_labels(query_id: &str, principal: &Principal) -> Vec<(String, String)> {
    let mut labels = vec![("bqai_query_id".to_string(), label_value(query_id))];
    if let Some(p) = &principal.id {
        labels.push(("bqai_principal".to_string(), label_value(p)));
    }
    labels
}

fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

/// Dataset ids: letters, digits and underscores (BigQuery's rule), at most 1024 characters.
pub fn is_valid_dataset_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 1024 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Table names as history keeps them.
fn table_names(tables: &[crate::model::TableRef]) -> Vec<String> {
    tables.iter().map(ToString::to_string).collect()
}

/// The message recorded in history and shown to clients: never the internal cause.
pub(crate) fn safe_message(err: &Error) -> String {
    err.safe_message()
}

pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod rejection_count_tests {
    use super::*;

    #[test]
    fn every_reason_is_counted_under_its_serialized_name() {
        let counts = RejectionCounts::default();
        counts.record(RejectReason::Dml);
        counts.record(RejectReason::Dml);
        counts.record(RejectReason::TooComplex);
        let snapshot: Vec<(RejectReason, u64)> = counts.snapshot().collect();
        assert_eq!(snapshot.len(), RejectReason::ALL.len());
        for (reason, n) in snapshot {
            let serialized = serde_json::to_value(reason).unwrap();
            assert_eq!(serialized, reason.as_str(), "{reason:?}");
            let expected = match reason {
                RejectReason::Dml => 2,
                RejectReason::TooComplex => 1,
                _ => 0,
            };
            assert_eq!(n, expected, "{reason:?}");
        }
        let mut names: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            RejectReason::ALL.len(),
            "a reason is listed twice"
        );
    }
}
