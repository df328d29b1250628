//! The JSON shapes of the API: request bodies and query strings in, resources out.
//!
//! Domain types stay in bqai-core; these structs decide field names and formats on the wire
//! (BigQuery-style `dataset_id`/`table_id`, `type`/`mode` strings, rows as objects).

use bqai_core::history::HistoryEntry;
use bqai_core::model::{
    Dataset, Field, Page, QueryOutcome, QueryResult, QueryStats, Table, TableRef, TableSummary,
};
use bqai_core::paging::{PageCut, PagedOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/query` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// The SQL to run.
    #[schema(min_length = 1)]
    pub sql: String,
    /// Dataset for unqualified table names.
    #[schema(pattern = r"^[A-Za-z0-9_]{1,1024}$")]
    pub dataset_id: Option<String>,
    /// Only estimate.
    #[serde(default)]
    pub dry_run: bool,
    /// Row cap.
    #[schema(minimum = 1)]
    pub max_rows: Option<u64>,
    /// Timeout in milliseconds.
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Whether a cached result may answer (default true).
    pub use_cache: Option<bool>,
    /// Values for the SQL's placeholders: `{"name": value}` for `@name`, `[value, …]` for
    /// `?` (BigQuery; `$name` / `$1` on the embedded engine). A value is a JSON scalar or
    /// array, or `{"type": "DATE", "value": "2024-01-31"}` where JSON is ambiguous.
    #[serde(default)]
    pub parameters: Option<Json>,
    /// Page the result: answer with its first `page_size` rows and a `next_page_token` for
    /// `GET /api/v1/query/{query_id}/results` when more remain. `max_rows` then caps the
    /// whole result (default and most: `query.max_paged_rows`) and the result cache is not
    /// used.
    #[schema(minimum = 1)]
    pub page_size: Option<u64>,
}

/// `GET /api/v1/query/{query_id}/results` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    /// The `next_page_token` of the previous page.
    pub page_token: String,
    /// Rows in this page (default: the first page's `page_size`; at most
    /// `query.max_rows_limit`).
    pub page_size: Option<u64>,
}

/// `POST /api/v1/exports` body: exactly one of `sql`, `query_id` and `history_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    /// The SQL whose result to export.
    #[schema(min_length = 1)]
    pub sql: Option<String>,
    /// A query of yours (its history id) whose SQL to run again and export.
    pub query_id: Option<String>,
    /// The same as `query_id`.
    pub history_id: Option<String>,
    /// `csv`, `ndjson`, `json`, `xlsx` or `parquet`.
    #[schema(example = "csv")]
    pub format: String,
    /// Dataset for unqualified table names (with `sql` only).
    #[schema(pattern = r"^[A-Za-z0-9_]{1,1024}$")]
    pub dataset_id: Option<String>,
    /// Values for the SQL's placeholders, as in `POST /api/v1/query` (with `sql` only).
    #[serde(default)]
    pub parameters: Option<Json>,
    /// The file name (made safe; the format's extension is added).
    pub filename: Option<String>,
    /// CSV only: the field delimiter, one ASCII character (default `,`).
    pub delimiter: Option<String>,
    /// Row cap, at most `export.max_rows` (the default).
    #[schema(minimum = 1)]
    pub max_rows: Option<u64>,
    /// Timeout of the query in milliseconds (for each wait for the next rows, too).
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
}

/// `?mode=` on `POST /api/v1/exports`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportModeQuery {
    /// `auto` (the default: inline when the dry run says the result is small), `inline`
    /// (stream the file in the response whatever its size, up to `export.max_rows`) or `job`.
    pub mode: Option<String>,
}

/// `?page_size=&page_token=` on list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page.
    pub page_size: Option<u32>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// `GET /api/v1/history` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Items per page.
    pub page_size: Option<u32>,
    /// Token from the previous page.
    pub page_token: Option<String>,
    /// `succeeded`, `failed` or `rejected`.
    pub status: Option<String>,
    /// `sql`, `ask`, `system` (bqai's own queries) or `export`.
    pub kind: Option<String>,
    /// Only this principal's entries (admins only; others always see their own).
    pub principal: Option<String>,
}

/// `?limit=` on preview.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// Rows to return.
    pub limit: Option<u64>,
}

/// A list response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    /// The items.
    pub data: Vec<T>,
    /// Token for the next page, null on the last.
    pub next_page_token: Option<String>,
}

impl<T> ListResponse<T> {
    /// Converts a core page.
    pub fn from_page<U>(page: Page<U>, f: impl Fn(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(f).collect(),
            next_page_token: page.next_page_token,
        }
    }
}

/// A dataset.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetDto {
    dataset_id: String,
    project: Option<String>,
    description: Option<String>,
    location: Option<String>,
    table_count: Option<u64>,
}

impl From<Dataset> for DatasetDto {
    fn from(d: Dataset) -> Self {
        Self {
            dataset_id: d.id,
            project: d.project,
            description: d.description,
            location: d.location,
            table_count: d.table_count,
        }
    }
}

/// A table as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableSummaryDto {
    dataset_id: String,
    table_id: String,
    #[serde(rename = "type")]
    kind: bqai_core::model::TableKind,
    num_rows: Option<u64>,
    num_bytes: Option<u64>,
}

impl From<TableSummary> for TableSummaryDto {
    fn from(t: TableSummary) -> Self {
        Self {
            dataset_id: t.table_ref.dataset,
            table_id: t.table_ref.table,
            kind: t.kind,
            num_rows: t.num_rows,
            num_bytes: t.num_bytes,
        }
    }
}

/// A schema field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDto {
    name: String,
    #[serde(rename = "type")]
    field_type: &'static str,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Nested fields of a RECORD.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    fields: Vec<FieldDto>,
}

impl From<Field> for FieldDto {
    fn from(f: Field) -> Self {
        Self {
            name: f.name,
            field_type: f.field_type.as_str(),
            mode: f.mode.as_str(),
            description: f.description,
            fields: f.fields.into_iter().map(FieldDto::from).collect(),
        }
    }
}

/// A table with schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableDto {
    dataset_id: String,
    table_id: String,
    #[serde(rename = "type")]
    kind: bqai_core::model::TableKind,
    description: Option<String>,
    schema: Vec<FieldDto>,
    num_rows: Option<u64>,
    num_bytes: Option<u64>,
    partitioning: Option<String>,
    clustering: Vec<String>,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    modified_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<Table> for TableDto {
    fn from(t: Table) -> Self {
        Self {
            dataset_id: t.table_ref.dataset,
            table_id: t.table_ref.table,
            kind: t.kind,
            description: t.description,
            schema: t.schema.into_iter().map(FieldDto::from).collect(),
            num_rows: t.num_rows,
            num_bytes: t.num_bytes,
            partitioning: t.partitioning,
            clustering: t.clustering,
            created_at: t.created_at,
            modified_at: t.modified_at,
        }
    }
}

/// A result column.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnDto {
    name: String,
    #[serde(rename = "type")]
    field_type: &'static str,
    mode: &'static str,
}

/// Statistics of a query.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsDto {
    bytes_processed: u64,
    bytes_billed: u64,
    estimated_cost_usd: f64,
    cache_hit: bool,
    duration_ms: u64,
}

impl From<QueryStats> for StatsDto {
    fn from(s: QueryStats) -> Self {
        Self {
            bytes_processed: s.bytes_processed,
            bytes_billed: s.bytes_billed,
            estimated_cost_usd: s.estimated_cost_usd,
            cache_hit: s.cache_hit,
            duration_ms: s.duration_ms,
        }
    }
}

/// Rows and columns (a preview, or the body of a query response).
#[derive(Debug, Serialize, ToSchema)]
pub struct RowsDto {
    columns: Vec<ColumnDto>,
    /// Each row is an object keyed by column name.
    rows: Vec<Map<String, Json>>,
    row_count: usize,
    truncated: bool,
    /// Why the rows are truncated: `max_rows` (the row cap), `max_response_bytes` (the
    /// response size cap) or, on the last page of a paged result, `spool_max_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated_reason: Option<&'static str>,
    /// What to do about a truncated result, when the size cap cut it.
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl RowsDto {
    /// A paged result's rows, with why the result stops early on its last page.
    fn cut_by(mut self, cut: Option<PageCut>) -> Self {
        if let Some(cut) = cut {
            self.truncated = true;
            self.truncated_reason = Some(cut.as_str());
            self.hint = (cut == PageCut::SpoolMaxBytes).then(|| {
                "the rest of the result was too large to keep for paging \
                 (query.spool_max_bytes): export the whole result instead"
                    .to_owned()
            });
        }
        self
    }

    /// Converts a core result; values use [`bqai_core::model::Value::to_json`].
    pub fn from_result(result: &QueryResult) -> Self {
        let rows = result.json_rows();
        Self {
            columns: result
                .columns
                .iter()
                .map(|c| ColumnDto {
                    name: c.name.clone(),
                    field_type: c.field_type.as_str(),
                    mode: c.mode.as_str(),
                })
                .collect(),
            row_count: rows.len(),
            rows,
            truncated: result.truncated,
            truncated_reason: match (result.truncated, result.truncated_at_bytes) {
                (false, _) => None,
                (true, Some(_)) => Some("max_response_bytes"),
                (true, None) => Some("max_rows"),
            },
            hint: result.truncated_at_bytes.map(|cap| {
                format!(
                    "the rows were cut at {cap} bytes of JSON (query.max_response_bytes): select \
                     fewer columns, aggregate, lower max_rows, or export the whole result"
                )
            }),
        }
    }
}

/// `POST /api/v1/query` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResponse {
    query_id: String,
    /// The SQL as run.
    sql: String,
    dry_run: bool,
    referenced_tables: Vec<String>,
    #[serde(flatten)]
    rows: RowsDto,
    stats: StatsDto,
    /// With `page_size`, while more rows remain: the token of the next page, for
    /// `GET /api/v1/query/{query_id}/results?page_token=`. Otherwise null.
    next_page_token: Option<String>,
    /// With `page_size`: the rows of the whole result (within the row cap), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_rows: Option<u64>,
}

impl QueryResponse {
    /// The first page of a paged query.
    pub fn paged(paged: PagedOutcome) -> Self {
        let mut response = Self::from(paged.outcome);
        response.rows = response.rows.cut_by(paged.cut);
        response.next_page_token = paged.next_page_token;
        response.total_rows = paged.total_rows;
        response
    }
}

/// `GET /api/v1/query/{query_id}/results` response: one more page of a paged query.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultPageResponse {
    query_id: String,
    /// The page's first row's position in the result (0-based).
    offset: u64,
    #[serde(flatten)]
    rows: RowsDto,
    /// The next page's token; null on the last page.
    next_page_token: Option<String>,
    /// The rows of the whole result (within the row cap), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_rows: Option<u64>,
}

impl From<PagedOutcome> for ResultPageResponse {
    fn from(p: PagedOutcome) -> Self {
        Self {
            query_id: p.outcome.query_id.clone(),
            offset: p.offset,
            rows: RowsDto::from_result(&p.outcome.result).cut_by(p.cut),
            next_page_token: p.next_page_token,
            total_rows: p.total_rows,
        }
    }
}

impl From<QueryOutcome> for QueryResponse {
    fn from(o: QueryOutcome) -> Self {
        let rows = RowsDto::from_result(&o.result);
        Self {
            next_page_token: None,
            total_rows: None,
            query_id: o.query_id,
            sql: o.sql,
            dry_run: o.dry_run,
            referenced_tables: o
                .referenced_tables
                .iter()
                .map(TableRef::to_string)
                .collect(),
            rows,
            stats: o.result.stats.into(),
        }
    }
}

/// A history entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    id: String,
    kind: bqai_core::history::QueryKind,
    question: Option<String>,
    sql: String,
    sql_executed: Option<String>,
    status: bqai_core::history::QueryStatus,
    error_code: Option<String>,
    error_message: Option<String>,
    principal: Option<String>,
    dataset_id: Option<String>,
    dry_run: bool,
    bytes_processed: u64,
    bytes_billed: u64,
    duration_ms: u64,
    row_count: u64,
    cache_hit: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    /// How the SQL of an ask was generated (attempts, generator, LLM latency, tokens, cost).
    #[serde(skip_serializing_if = "Option::is_none")]
    ask: Option<bqai_core::history::AskRecord>,
    /// The `X-Request-Id` of the request (or the WebSocket ask's `request_id`) the query ran
    /// for; null for queries bqai ran for itself and for entries older than this field.
    request_id: Option<String>,
    /// Tables the query read (empty when it never got past the guard).
    tables: Vec<String>,
    /// Fingerprint of the SQL's shape (literals replaced), as `analytics/popular` groups it.
    sql_shape: Option<String>,
    /// The entry this one ran again (`POST /api/v1/history/{id}/rerun`).
    rerun_of: Option<String>,
}

impl From<HistoryEntry> for HistoryDto {
    fn from(h: HistoryEntry) -> Self {
        Self {
            id: h.id,
            kind: h.kind,
            question: h.question,
            sql: h.sql_submitted,
            sql_executed: h.sql_executed,
            status: h.status,
            error_code: h.error_code,
            error_message: h.error_message,
            principal: h.principal,
            dataset_id: h.dataset,
            dry_run: h.dry_run,
            bytes_processed: h.bytes_processed,
            bytes_billed: h.bytes_billed,
            duration_ms: h.duration_ms,
            row_count: h.row_count,
            cache_hit: h.cache_hit,
            created_at: h.created_at,
            ask: h.ask,
            request_id: h.request_id,
            tables: h.tables,
            sql_shape: h.sql_shape,
            rerun_of: h.rerun_of,
        }
    }
}

/// The query string every `GET /api/v1/analytics/*` takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    /// Start of the range (included): RFC 3339, or a date (its first instant, UTC). Default:
    /// 7 days before `to`.
    pub from: Option<String>,
    /// End of the range (excluded): RFC 3339, or a date (included whole, UTC). Default: now.
    pub to: Option<String>,
    /// Only this principal's entries (admins only; others always see their own).
    pub principal: Option<String>,
    /// `summary`: `day`, `hour`, `principal`, `dataset`, `kind` or `status` (default `day`).
    pub group_by: Option<String>,
    /// `popular`: `sql` (shapes) or `ask` (questions); default `sql`.
    pub kind: Option<String>,
    /// Rows to return, 1–100 (default 10).
    pub limit: Option<u32>,
}

/// The range an analytics answer covers.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsRange {
    /// First instant included.
    pub from: chrono::DateTime<chrono::Utc>,
    /// First instant excluded.
    pub to: chrono::DateTime<chrono::Utc>,
    /// The principal the numbers are narrowed to (always the caller for non-admins).
    pub principal: Option<String>,
    /// Set when the range starts before what history retention keeps
    /// (`store.history_retention_days`): entries before then were purged and are not counted.
    pub retention_notice: Option<String>,
}

/// `GET /api/v1/analytics/summary` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryResponse {
    #[serde(flatten)]
    pub range: AnalyticsRange,
    /// How the buckets are keyed.
    pub group_by: bqai_core::analytics::GroupBy,
    /// Over the whole range.
    pub total: bqai_core::analytics::Stats,
    /// One per key with entries, in key order (null first).
    pub buckets: Vec<BucketDto>,
}

impl SummaryResponse {
    /// The response for `summary` over `range` (its costs are filled in by the caller).
    pub fn new(
        range: AnalyticsRange,
        group_by: bqai_core::analytics::GroupBy,
        summary: bqai_core::analytics::Summary,
    ) -> Self {
        Self {
            range,
            group_by,
            total: summary.total,
            buckets: summary
                .buckets
                .into_iter()
                .map(|b| BucketDto {
                    key: b.key,
                    stats: b.stats,
                })
                .collect(),
        }
    }
}

/// A summary bucket: its key and numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketDto {
    /// `YYYY-MM-DD`, `YYYY-MM-DDTHH:00:00Z`, a principal, dataset, kind or status; null for
    /// entries without one (anonymous, no dataset).
    pub key: Option<String>,
    #[serde(flatten)]
    pub stats: bqai_core::analytics::Stats,
}

/// `GET /api/v1/analytics/popular` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct PopularResponse {
    #[serde(flatten)]
    pub range: AnalyticsRange,
    /// `sql` or `ask`.
    pub kind: bqai_core::analytics::PopularKind,
    /// Most frequent first.
    pub data: Vec<bqai_core::analytics::PopularEntry>,
}

/// `GET /api/v1/analytics/slowest` and `/expensive` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankedResponse {
    #[serde(flatten)]
    pub range: AnalyticsRange,
    /// History entries, ranked.
    pub data: Vec<HistoryDto>,
}

/// `GET /api/v1/analytics/errors` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorsResponse {
    #[serde(flatten)]
    pub range: AnalyticsRange,
    /// Most frequent first.
    pub data: Vec<bqai_core::analytics::ErrorCount>,
}

/// `GET /api/v1/analytics/tables` response.
#[derive(Debug, Serialize, ToSchema)]
pub struct TablesResponse {
    #[serde(flatten)]
    pub range: AnalyticsRange,
    /// Most read first.
    pub data: Vec<bqai_core::analytics::TableUsage>,
}

/// `POST /api/v1/history/{id}/rerun` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunBody {
    /// Only estimate.
    #[serde(default)]
    pub dry_run: bool,
    /// Row cap.
    #[schema(minimum = 1)]
    pub max_rows: Option<u64>,
    /// Timeout in milliseconds.
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Whether a cached result may answer (default true).
    pub use_cache: Option<bool>,
}
