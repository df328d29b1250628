//! Domain types shared by every port and use case: references to datasets and tables, table
//! schemas, typed values, queries and their results, principals and pages.
//!
//! These are bqai's own types. Adapters translate their library's types into these at their
//! boundary, so nothing here mentions Arrow, BigQuery's API or a database driver.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::params::{QueryParam, QueryParameters};

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/// A fully resolved reference to a table: `[project.]dataset.table`.
///
/// `project` is `None` for the warehouse's home project (BigQuery) or catalog (DataFusion).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    /// The project (BigQuery) or catalog (DataFusion), when given explicitly.
    pub project: Option<String>,
    /// The dataset (BigQuery) or schema (DataFusion).
    pub dataset: String,
    /// The table or view name.
    pub table: String,
}

impl TableRef {
    /// A table in the home project.
    pub fn new(dataset: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            project: None,
            dataset: dataset.into(),
            table: table.into(),
        }
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.project {
            Some(p) => write!(f, "{p}.{}.{}", self.dataset, self.table),
            None => write!(f, "{}.{}", self.dataset, self.table),
        }
    }
}

/// Which datasets a principal (or the whole service) may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetScope {
    /// Every dataset of the home project.
    All,
    /// Only these datasets. An entry is `dataset` (home project) or `project.dataset`.
    Only(BTreeSet<String>),
}

impl DatasetScope {
    /// The configuration-list form: `["*"]` for all, else the entries in order.
    pub fn to_list(&self) -> Vec<String> {
        match self {
            DatasetScope::All => vec!["*".to_string()],
            DatasetScope::Only(set) => set.iter().cloned().collect(),
        }
    }

    /// Parses a configuration list: `["*"]` (or a list containing `*`) means all.
    pub fn from_list<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for item in items {
            let item = item.as_ref().trim();
            if item == "*" {
                return DatasetScope::All;
            }
            if !item.is_empty() {
                set.insert(item.to_ascii_lowercase());
            }
        }
        DatasetScope::Only(set)
    }

    /// Whether a dataset (optionally in another project) is inside the scope.
    ///
    /// Tables in another project are allowed only by an explicit `project.dataset` entry,
    /// never by `All`: a wildcard means "this warehouse's datasets", not "anything the
    /// credentials can reach".
    pub fn allows(&self, project: Option<&str>, dataset: &str) -> bool {
        let dataset = dataset.to_ascii_lowercase();
        match (self, project) {
            (DatasetScope::All, None) => true,
            (DatasetScope::All, Some(_)) => false,
            (DatasetScope::Only(set), None) => set.contains(&dataset),
            (DatasetScope::Only(set), Some(p)) => {
                set.contains(&format!("{}.{dataset}", p.to_ascii_lowercase()))
            }
        }
    }

    /// The intersection of two scopes (a key's grants inside the service's allow-list).
    pub fn intersect(&self, other: &DatasetScope) -> DatasetScope {
        match (self, other) {
            (DatasetScope::All, o) | (o, DatasetScope::All) => o.clone(),
            (DatasetScope::Only(a), DatasetScope::Only(b)) => {
                DatasetScope::Only(a.intersection(b).cloned().collect())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Catalog
// ---------------------------------------------------------------------------------------------

/// A dataset (BigQuery) or schema (DataFusion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Dataset id, unique within the project.
    pub id: String,
    /// The project (or catalog) the dataset lives in.
    pub project: Option<String>,
    /// Human description, if any.
    pub description: Option<String>,
    /// Location (BigQuery region), if known.
    pub location: Option<String>,
    /// Number of tables, when cheap to know.
    pub table_count: Option<u64>,
}

/// A table as listed (no schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSummary {
    /// Where the table is.
    pub table_ref: TableRef,
    /// `TABLE`, `VIEW`, `EXTERNAL`, …
    pub kind: TableKind,
    /// Row count, when known.
    pub num_rows: Option<u64>,
    /// Logical size in bytes, when known.
    pub num_bytes: Option<u64>,
}

/// What kind of relation a table is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TableKind {
    /// A base table.
    Table,
    /// A logical view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A table backed by external files.
    External,
}

/// A table with its schema and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Where the table is.
    pub table_ref: TableRef,
    /// `TABLE`, `VIEW`, …
    pub kind: TableKind,
    /// Human description, if any.
    pub description: Option<String>,
    /// Top-level columns; nested fields hang below RECORD columns.
    pub schema: Vec<Field>,
    /// Row count, when known.
    pub num_rows: Option<u64>,
    /// Logical size in bytes, when known.
    pub num_bytes: Option<u64>,
    /// Partitioning column or description (`DAY(order_date)`), if any.
    pub partitioning: Option<String>,
    /// Clustering columns, if any.
    pub clustering: Vec<String>,
    /// Creation time, when known.
    pub created_at: Option<DateTime<Utc>>,
    /// Last modification time, when known.
    pub modified_at: Option<DateTime<Utc>>,
}

/// A column of a table schema or a query result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Type, in BigQuery's standard SQL vocabulary.
    pub field_type: FieldType,
    /// NULLABLE, REQUIRED or REPEATED.
    pub mode: FieldMode,
    /// Human description, if any.
    pub description: Option<String>,
    /// Sub-fields of a RECORD column (empty otherwise).
    pub fields: Vec<Field>,
}

impl Field {
    /// A nullable scalar column without description.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Self {
        Self {
            name: name.into(),
            field_type,
            mode: FieldMode::Nullable,
            description: None,
            fields: Vec::new(),
        }
    }

    /// Builder: set the mode.
    pub fn with_mode(mut self, mode: FieldMode) -> Self {
        self.mode = mode;
        self
    }

    /// Builder: set the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Column types, named as BigQuery standard SQL names them. Every engine maps onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FieldType {
    Int64,
    Float64,
    Numeric,
    Bignumeric,
    Bool,
    String,
    Bytes,
    Date,
    Time,
    Datetime,
    Timestamp,
    Geography,
    Json,
    Interval,
    Range,
    Record,
}

impl FieldType {
    /// The BigQuery spelling (`INT64`, `STRING`, `RECORD`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Int64 => "INT64",
            FieldType::Float64 => "FLOAT64",
            FieldType::Numeric => "NUMERIC",
            FieldType::Bignumeric => "BIGNUMERIC",
            FieldType::Bool => "BOOL",
            FieldType::String => "STRING",
            FieldType::Bytes => "BYTES",
            FieldType::Date => "DATE",
            FieldType::Time => "TIME",
            FieldType::Datetime => "DATETIME",
            FieldType::Timestamp => "TIMESTAMP",
            FieldType::Geography => "GEOGRAPHY",
            FieldType::Json => "JSON",
            FieldType::Interval => "INTERVAL",
            FieldType::Range => "RANGE",
            FieldType::Record => "RECORD",
        }
    }

    /// Parses standard and legacy BigQuery names (`INTEGER`, `FLOAT`, `BOOLEAN`, `STRUCT`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "INT64" | "INTEGER" | "INT" => FieldType::Int64,
            "FLOAT64" | "FLOAT" => FieldType::Float64,
            "NUMERIC" | "DECIMAL" => FieldType::Numeric,
            "BIGNUMERIC" | "BIGDECIMAL" => FieldType::Bignumeric,
            "BOOL" | "BOOLEAN" => FieldType::Bool,
            "STRING" => FieldType::String,
            "BYTES" => FieldType::Bytes,
            "DATE" => FieldType::Date,
            "TIME" => FieldType::Time,
            "DATETIME" => FieldType::Datetime,
            "TIMESTAMP" => FieldType::Timestamp,
            "GEOGRAPHY" => FieldType::Geography,
            "JSON" => FieldType::Json,
            "INTERVAL" => FieldType::Interval,
            "RANGE" => FieldType::Range,
            "RECORD" | "STRUCT" => FieldType::Record,
            _ => return None,
        })
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Column mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum FieldMode {
    Nullable,
    Required,
    Repeated,
}

impl FieldMode {
    /// The BigQuery spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldMode::Nullable => "NULLABLE",
            FieldMode::Required => "REQUIRED",
            FieldMode::Repeated => "REPEATED",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A typed cell value.
///
/// Exact types keep their exactness: NUMERIC/BIGNUMERIC are decimal strings, INT64 is an
/// `i64` (the JSON encoding turns values beyond ±2^53 into strings so no client loses digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// BOOL.
    Bool(bool),
    /// INT64.
    Int64(i64),
    /// FLOAT64 (NaN and infinities allowed).
    Float64(f64),
    /// NUMERIC / BIGNUMERIC as an exact decimal string.
    Numeric(String),
    /// STRING.
    String(String),
    /// BYTES.
    Bytes(Vec<u8>),
    /// DATE.
    Date(NaiveDate),
    /// TIME.
    Time(NaiveTime),
    /// DATETIME (civil time, no zone).
    Datetime(NaiveDateTime),
    /// TIMESTAMP (an instant, UTC).
    Timestamp(DateTime<Utc>),
    /// GEOGRAPHY as WKT.
    Geography(String),
    /// JSON, as its text.
    Json(String),
    /// INTERVAL, in BigQuery's canonical text form.
    Interval(String),
    /// RANGE, in BigQuery's text form (`[start, end)`).
    Range(String),
    /// ARRAY.
    Array(Vec<Value>),
    /// STRUCT: ordered named fields.
    Struct(Vec<(String, Value)>),
}

/// The largest integer a JSON client using IEEE doubles (JavaScript) holds exactly.
pub const MAX_SAFE_JSON_INTEGER: i64 = (1 << 53) - 1;

impl Value {
    /// The JSON form bqai puts in API responses.
    ///
    /// - INT64 within ±(2^53−1) is a number, beyond it a string (no silent rounding).
    /// - FLOAT64 NaN/±Infinity are the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    /// - NUMERIC/BIGNUMERIC are strings; BYTES are standard base64.
    /// - DATE `YYYY-MM-DD`, TIME `HH:MM:SS[.ffffff]`, DATETIME `YYYY-MM-DDTHH:MM:SS[.ffffff]`,
    ///   TIMESTAMP RFC 3339 in UTC with a `Z`.
    /// - JSON values are embedded as JSON when they parse, else as their text.
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int64(i) => {
                if (-MAX_SAFE_JSON_INTEGER..=MAX_SAFE_JSON_INTEGER).contains(i) {
                    J::from(*i)
                } else {
                    J::String(i.to_string())
                }
            }
            Value::Float64(f) => {
                if f.is_nan() {
                    J::String("NaN".into())
                } else if f.is_infinite() {
                    J::String(if *f > 0.0 { "Infinity" } else { "-Infinity" }.into())
                } else {
                    serde_json::Number::from_f64(*f).map_or(J::Null, J::Number)
                }
            }
            Value::Numeric(s)
            | Value::String(s)
            | Value::Geography(s)
            | Value::Interval(s)
            | Value::Range(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
            Value::Time(t) => J::String(t.format("%H:%M:%S%.f").to_string()),
            Value::Datetime(dt) => J::String(dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Value::Timestamp(ts) => {
                J::String(ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            Value::Json(text) => {
                serde_json::from_str(text).unwrap_or_else(|_| J::String(text.clone()))
            }
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Struct(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// About how many bytes [`Value::to_json`] takes encoded: exact for strings without
    /// characters to escape, an upper bound for numbers and times. Cheap enough to run on
    /// every value of a result (nothing is encoded).
    pub fn json_len(&self) -> usize {
        fn quoted(s: &str) -> usize {
            // An escaped character takes up to six bytes (`\u001f`).
            2 + s.len()
                + s.bytes()
                    .filter(|b| *b < 0x20 || *b == b'"' || *b == b'\\')
                    .count()
                    * 5
        }
        match self {
            Value::Null => 4,
            Value::Bool(_) => 5,
            Value::Int64(_) | Value::Float64(_) => 24,
            Value::Numeric(s)
            | Value::String(s)
            | Value::Geography(s)
            | Value::Interval(s)
            | Value::Range(s) => quoted(s),
            Value::Json(text) => quoted(text),
            Value::Bytes(b) => 2 + b.len().div_ceil(3) * 4,
            Value::Date(_) => 16,
            Value::Time(_) => 17,
            Value::Datetime(_) => 32,
            Value::Timestamp(_) => 40,
            Value::Array(items) => 2 + items.iter().map(|v| v.json_len() + 1).sum::<usize>(),
            Value::Struct(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| quoted(k) + 2 + v.json_len())
                    .sum::<usize>()
            }
        }
    }

    /// Plain text for tables and CSV: like [`Value::to_json`] but strings unquoted and NULL
    /// empty.
    pub fn to_text(&self) -> String {
        match self.to_json() {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// The SQL dialect a warehouse speaks; the guard parses with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlDialect {
    /// GoogleSQL (BigQuery standard SQL).
    BigQuery,
    /// Apache DataFusion's SQL (parsed with sqlparser's generic dialect, as DataFusion does).
    DataFusion,
}

/// A query as a caller asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The SQL text as submitted.
    pub sql: String,
    /// Dataset for unqualified table names.
    pub default_dataset: Option<String>,
    /// Only estimate; run nothing.
    pub dry_run: bool,
    /// Row cap requested by the caller (bounded by configuration).
    pub max_rows: Option<u64>,
    /// Timeout requested by the caller (bounded by configuration).
    pub timeout: Option<Duration>,
    /// Whether a cached result may answer.
    pub use_cache: bool,
    /// Values for the statement's placeholders (`@name`/`?` on BigQuery).
    pub parameters: QueryParameters,
}

impl QueryRequest {
    /// A request with defaults for everything but the SQL.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            default_dataset: None,
            dry_run: false,
            max_rows: None,
            timeout: None,
            use_cache: true,
            parameters: QueryParameters::None,
        }
    }
}

/// A guarded statement ready for the warehouse: what the query service hands to
/// [`crate::ports::Warehouse::dry_run`] and [`crate::ports::Warehouse::execute`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueryJob {
    /// Id of this query (also the history id), for labels and logs.
    pub query_id: String,
    /// The SQL to run: already guarded, LIMIT applied.
    pub sql: String,
    /// Dataset for unqualified names.
    pub default_dataset: Option<String>,
    /// Upper bound on returned rows (the guard's LIMIT is the first wall; adapters stop
    /// reading at this many rows as the second).
    pub max_rows: u64,
    /// Hard timeout; adapters cancel the work when it fires.
    pub timeout: Duration,
    /// Maximum bytes billed, enforced by the warehouse where it can (BigQuery).
    pub max_bytes_billed: Option<u64>,
    /// Whether cached results (bqai's and the warehouse's own) may answer.
    pub use_cache: bool,
    /// Tables the guard resolved (for cache tags, labels and logs).
    pub referenced_tables: Vec<TableRef>,
    /// Labels to attach to the job (request id, principal), where the warehouse supports it.
    pub labels: Vec<(String, String)>,
    /// Values bound to the statement's placeholders (checked against them by the query
    /// service); the adapter sends them to the engine, never into the SQL text.
    pub parameters: QueryParameters,
    /// Rows are read until their JSON passes this many bytes (`query.max_response_bytes`),
    /// so a result's memory is bounded by the cap, not by what the query produces; the query
    /// service cuts the rows exactly.
    pub max_result_bytes: Option<u64>,
    /// Whom the job runs for (the principal's id; `None` when unauthenticated): the query
    /// queue shares the warehouse fairly among these.
    pub principal: Option<String>,
    /// Told the job's place in the query queue while it waits there (the WebSocket reports
    /// it); not part of the job's identity.
    pub queue_watch: Option<QueueWatch>,
    /// A paged query's first page: the reader takes this many rows from the stream and
    /// reads the rest, if any, through [`RowStream::result_handle`]. A warehouse that hands out
    /// a handle then fetches just these rows and ends the stream after them (no page is read
    /// ahead for nobody); one that does not ignores it. `None`: the whole result streams.
    pub first_batch_rows: Option<u64>,
}

/// A callback told a waiting job's position in the query queue (1 = next to run) each time
/// it changes, then 0 when the job leaves the queue to run. Equal to every other watch, so it
/// never makes two jobs differ.
#[derive(Clone)]
pub struct QueueWatch(std::sync::Arc<dyn Fn(u64) + Send + Sync>);

impl QueueWatch {
    /// A watch calling `f` with each new position.
    pub fn new(f: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(f))
    }

    /// Reports `position`.
    pub fn notify(&self, position: u64) {
        (self.0)(position);
    }
}

impl std::fmt::Debug for QueueWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueWatch")
    }
}

impl PartialEq for QueueWatch {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What a dry run learned about a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunReport {
    /// Bytes the statement would process.
    pub bytes_processed: u64,
    /// The statement type as the warehouse sees it (`SELECT`), if it says.
    pub statement_type: Option<String>,
    /// Tables the warehouse resolved, views expanded where it can.
    pub referenced_tables: Vec<TableRef>,
    /// Result columns, if the dry run knows them.
    pub schema: Vec<Field>,
}

/// Cost of a query in bytes and dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Bytes processed (estimated or actual).
    pub bytes: u64,
    /// The on-demand price of those bytes.
    pub usd: f64,
}

impl CostEstimate {
    /// Bytes priced at `usd_per_tib` (BigQuery on-demand pricing is per TiB).
    pub fn from_bytes(bytes: u64, usd_per_tib: f64) -> Self {
        const TIB: f64 = 1024.0 * 1024.0 * 1024.0 * 1024.0;
        #[allow(clippy::cast_precision_loss)]
        let usd = bytes as f64 / TIB * usd_per_tib;
        Self { bytes, usd }
    }
}

/// Execution statistics of a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryStats {
    /// Bytes the warehouse processed (the estimate for a dry run).
    pub bytes_processed: u64,
    /// Bytes the warehouse billed (0 for dry runs and cache hits).
    pub bytes_billed: u64,
    /// Price of `bytes_processed` at the configured rate.
    pub estimated_cost_usd: f64,
    /// Answered from a cache (bqai's or the warehouse's own).
    pub cache_hit: bool,
    /// Wall-clock time spent answering, in milliseconds.
    pub duration_ms: u64,
}

impl QueryStats {
    /// What an executed query cost, for quotas and the audit log: bytes billed, or bytes
    /// processed where the warehouse does not bill (the embedded engine); nothing for a
    /// cache hit.
    pub fn charged_bytes(&self) -> u64 {
        if self.cache_hit {
            0
        } else if self.bytes_billed > 0 {
            self.bytes_billed
        } else {
            self.bytes_processed
        }
    }
}

/// Rows and metadata returned by a warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Result columns.
    pub columns: Vec<Field>,
    /// Rows, each with one value per column.
    pub rows: Vec<Vec<Value>>,
    /// True when the row cap was reached (more rows may exist), or the rows were cut at the
    /// response byte cap.
    pub truncated: bool,
    /// The byte cap the rows were cut at (`query.max_response_bytes`), when that is why
    /// they are truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at_bytes: Option<u64>,
    /// Statistics.
    pub stats: QueryStats,
}

/// About how many bytes one row takes as a JSON object keyed by the column names.
pub fn row_json_len(columns: &[Field], row: &[Value]) -> usize {
    2 + columns
        .iter()
        .zip(row)
        .map(|(c, v)| c.name.len() + 4 + v.json_len())
        .sum::<usize>()
}

/// Renames result columns so that every name is unique and not empty, the way BigQuery names
/// the columns of a query result: a repeated name gets `_1`, `_2`, … (compared without case,
/// as BigQuery compares column names, and never taking a name another column already has),
/// and an empty name becomes `f{index}_`. Rows keyed by column name (JSON objects, exports)
/// would otherwise lose every value but one of a repeated name.
pub fn make_names_unique(columns: &mut [Field]) {
    let mut taken: std::collections::HashSet<String> =
        columns.iter().map(|c| c.name.to_lowercase()).collect();
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (index, column) in columns.iter_mut().enumerate() {
        let key = column.name.to_lowercase();
        if !column.name.is_empty() && used.insert(key) {
            continue;
        }
        let base = if column.name.is_empty() {
            format!("f{index}_")
        } else {
            column.name.clone()
        };
        let mut name = base.clone();
        let mut n = 0u32;
        // An empty name's `f{index}_` is itself tried first; a repeated name starts at `_1`.
        if !column.name.is_empty() || taken.contains(&name.to_lowercase()) {
            loop {
                n += 1;
                name = format!("{base}_{n}");
                if !taken.contains(&name.to_lowercase()) {
                    break;
                }
            }
        }
        taken.insert(name.to_lowercase());
        used.insert(name.to_lowercase());
        column.name = name;
    }
}

impl QueryResult {
    /// See [`make_names_unique`].
    pub fn make_column_names_unique(&mut self) {
        make_names_unique(&mut self.columns);
    }

    /// Keeps the longest prefix of rows whose JSON stays within `max_bytes` (at least none);
    /// marks the result truncated at that cap when rows had to go. Returns whether any did.
    pub fn cap_json_bytes(&mut self, max_bytes: u64) -> bool {
        let budget = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let mut used = 0usize;
        let keep = self
            .rows
            .iter()
            .take_while(|row| {
                used = used.saturating_add(row_json_len(&self.columns, row) + 1);
                used <= budget
            })
            .count();
        if keep == self.rows.len() {
            return false;
        }
        self.rows.truncate(keep);
        self.truncated = true;
        self.truncated_at_bytes = Some(max_bytes);
        true
    }

    /// The rows as JSON objects keyed by column name, values in their API form
    /// ([`Value::to_json`]).
    pub fn json_rows(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| (c.name.clone(), v.to_json()))
                    .collect()
            })
            .collect()
    }
}

/// Rows of a result, one batch of a [`RowStream`].
pub type RowBatch = Vec<Vec<Value>>;

/// A result handed out batch by batch (exports): memory is bounded by a batch (a DataFusion
/// record batch, a BigQuery result page), never by the result.
///
/// The warehouse has run the statement when it hands one out (on BigQuery the job is done;
/// the embedded engine executes as the batches are read), so `stats` hold what is known
/// then. Dropping the stream stops the work behind it.
pub struct RowStream {
    /// Result columns.
    pub columns: Vec<Field>,
    /// Bytes processed and billed, cache hit; `duration_ms` is the time to the first batch.
    pub stats: QueryStats,
    /// The rows; an error ends the stream.
    pub batches: futures::stream::BoxStream<'static, crate::Result<RowBatch>>,
    /// How many rows the result holds, when the warehouse says so before they are read
    /// (BigQuery does, once the job is done); export jobs show progress against it.
    pub total_rows: Option<u64>,
    /// Where the finished result can be read again, by offset, without running anything
    /// ([`crate::ports::Warehouse::read_result`]): BigQuery keeps a job's result for a day.
    /// `None` when the warehouse keeps no result (the embedded engine computes rows as they
    /// are read).
    pub result_handle: Option<String>,
}

/// Rows of a finished result read again by offset ([`crate::ports::Warehouse::read_result`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ResultPage {
    /// Result columns.
    pub columns: Vec<Field>,
    /// The rows from the offset asked for on.
    pub rows: Vec<Vec<Value>>,
    /// How many rows the whole result holds, when the warehouse says.
    pub total_rows: Option<u64>,
}

impl RowStream {
    /// A stream of the rows of a result already in memory (one batch).
    pub fn from_result(result: QueryResult) -> Self {
        let QueryResult {
            columns,
            rows,
            stats,
            ..
        } = result;
        let batches = if rows.is_empty() {
            Vec::new()
        } else {
            vec![Ok(rows)]
        };
        let total_rows = batches
            .first()
            .map_or(Some(0), |b| b.as_ref().ok().map(|rows| rows.len() as u64));
        Self {
            columns,
            stats,
            batches: Box::pin(futures::stream::iter(batches)),
            total_rows,
            result_handle: None,
        }
    }

    /// A stream of the batches a producer sends on `batches`, which keeps `producer` (the
    /// handle of the task sending them) alive: dropping the stream drops the handle, so an
    /// adapter whose handle aborts its task on drop stops the warehouse's work with it.
    pub fn from_channel<P: Send + 'static>(
        columns: Vec<Field>,
        stats: QueryStats,
        batches: futures::channel::mpsc::Receiver<crate::Result<RowBatch>>,
        producer: P,
    ) -> Self {
        use futures::StreamExt as _;
        let batches = batches.map(move |batch| {
            let _owned = &producer;
            batch
        });
        Self {
            columns,
            stats,
            batches: Box::pin(batches),
            total_rows: None,
            result_handle: None,
        }
    }

    /// The stream, saying how many rows it holds.
    pub fn with_total_rows(mut self, total_rows: Option<u64>) -> Self {
        self.total_rows = total_rows;
        self
    }

    /// The stream, saying where its result can be read again.
    pub fn with_result_handle(mut self, handle: Option<String>) -> Self {
        self.result_handle = handle;
        self
    }
}

impl fmt::Debug for RowStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowStream")
            .field("columns", &self.columns)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// What the query service answers.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutcome {
    /// History id of this query.
    pub query_id: String,
    /// The SQL as run (after the guard's rewrite).
    pub sql: String,
    /// Whether it was only a dry run.
    pub dry_run: bool,
    /// Tables the query reads.
    pub referenced_tables: Vec<TableRef>,
    /// The result (no rows for a dry run).
    pub result: QueryResult,
}

// ---------------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------------

/// What a principal may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including administration.
    Admin,
    /// Ask, query, export, own history.
    Analyst,
    /// Catalog and dry runs only.
    Viewer,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable id of the caller (API key id, token subject); `None` when unauthenticated.
    pub id: Option<String>,
    /// Role.
    pub role: Role,
    /// Datasets this principal may read (intersected with the service allow-list).
    pub datasets: DatasetScope,
    /// Requests per minute; `None` uses the server's default.
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// Bytes billed per UTC day; `None` means no quota.
    #[serde(default)]
    pub daily_byte_quota: Option<u64>,
}

impl Principal {
    /// The principal of an unauthenticated deployment: full role, scope from configuration.
    pub fn anonymous(datasets: DatasetScope) -> Self {
        Self {
            id: None,
            role: Role::Admin,
            datasets,
            rate_limit_per_minute: None,
            daily_byte_quota: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

/// A request for one page of a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PageRequest {
    /// Maximum items in the page (already bounded by the caller).
    pub page_size: u32,
    /// Opaque token from a previous page.
    pub page_token: Option<String>,
}

impl PageRequest {
    /// First page of `page_size` items.
    pub fn first(page_size: u32) -> Self {
        Self {
            page_size,
            page_token: None,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token for the next page, `None` on the last page.
    pub next_page_token: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// Health of one component.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// `ok` or `degraded` or `down`.
    pub status: HealthStatus,
    /// Which implementation (`datafusion`, `memory`, `sqlite`, …).
    pub kind: String,
    /// A short, safe detail when not ok.
    pub detail: Option<String>,
}

impl ComponentHealth {
    /// A healthy component.
    pub fn ok(kind: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Ok,
            kind: kind.into(),
            detail: None,
        }
    }

    /// An unhealthy component.
    pub fn down(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Down,
            kind: kind.into(),
            detail: Some(detail.into()),
        }
    }
}

/// How big the durable store is, measured by its periodic maintenance (not per request:
/// counting rows is too slow for a health check).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Bytes on disk: the SQLite file and its write-ahead log, or the PostgreSQL tables with
    /// their indexes and TOAST.
    pub size_bytes: u64,
    /// Of those, bytes in free pages waiting to be reused or returned (SQLite; 0 on
    /// PostgreSQL, whose free space is reused in place by autovacuum).
    pub free_bytes: u64,
    /// Rows per table (`query_history`, `audit_log`, `api_keys`, `key_usage`,
    /// `conversations`, `conversation_turns`).
    pub rows: std::collections::BTreeMap<String, u64>,
    /// When these numbers were read.
    pub measured_at: DateTime<Utc>,
}

/// Health status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum HealthStatus {
    Ok,
    Degraded,
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renamed(names: &[&str]) -> Vec<String> {
        let mut columns: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, FieldType::Int64))
            .collect();
        make_names_unique(&mut columns);
        columns.into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn repeated_column_names_get_suffixes_like_bigquery() {
        assert_eq!(
            renamed(&["customer_id", "customer_id", "country"]),
            ["customer_id", "customer_id_1", "country"]
        );
        assert_eq!(renamed(&["a", "a", "a"]), ["a", "a_1", "a_2"]);
        // Case-insensitive, as BigQuery compares column names.
        assert_eq!(
            renamed(&["Name", "name", "NAME"]),
            ["Name", "name_1", "NAME_2"]
        );
        // A suffix never takes a name that a later column has.
        assert_eq!(renamed(&["a", "a", "a_1"]), ["a", "a_2", "a_1"]);
        assert_eq!(renamed(&["", "x", ""]), ["f0_", "x", "f2_"]);
        assert_eq!(renamed(&["f1_", ""]), ["f1_", "f1__1"]);
        assert_eq!(renamed(&["n", "m"]), ["n", "m"]);
    }

    #[test]
    fn json_rows_keep_select_order_and_every_value() {
        let mut result = QueryResult {
            columns: ["z", "a", "z", ""]
                .iter()
                .map(|n| Field::new(*n, FieldType::Int64))
                .collect(),
            rows: vec![vec![
                Value::Int64(1),
                Value::Int64(2),
                Value::Int64(3),
                Value::Int64(4),
            ]],
            truncated: false,
            truncated_at_bytes: None,
            stats: QueryStats::default(),
        };
        result.make_column_names_unique();
        let row = &result.json_rows()[0];
        let keys: Vec<&str> = row.keys().map(String::as_str).collect();
        assert_eq!(keys, ["z", "a", "z_1", "f3_"]);
        assert_eq!(
            serde_json::to_string(row).unwrap(),
            r#"{"z":1,"a":2,"z_1":3,"f3_":4}"#
        );
    }

    fn values() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Int64(i64::MIN),
            Value::Float64(-1.234_567_890_123_456_7e-300),
            Value::Numeric("12345678901234567890.123456789".into()),
            Value::String("plain".into()),
            Value::String("quo\"te\\ and\nline\u{1}".into()),
            Value::Bytes(vec![0, 1, 2, 3, 4]),
            Value::Date(NaiveDate::MIN),
            Value::Timestamp(Utc::now()),
            Value::Array(vec![Value::Int64(1), Value::String("é".into())]),
            Value::Struct(vec![
                ("k\"".into(), Value::Null),
                ("b".into(), Value::Bool(false)),
            ]),
        ]
    }

    /// The estimate never undercounts what the encoder writes, and stays close to it.
    #[test]
    fn json_len_bounds_the_encoding() {
        for v in values() {
            let actual = v.to_json().to_string().len();
            assert!(v.json_len() >= actual, "{v:?}: {} < {actual}", v.json_len());
            assert!(
                v.json_len() <= actual + 32,
                "{v:?}: {} vs {actual}",
                v.json_len()
            );
        }
    }

    #[test]
    fn results_are_cut_at_the_byte_cap() {
        let mut r = QueryResult {
            columns: vec![Field::new("s", FieldType::String)],
            rows: (0..10)
                .map(|_| vec![Value::String("x".repeat(100))])
                .collect(),
            truncated: false,
            truncated_at_bytes: None,
            stats: QueryStats::default(),
        };
        assert!(!r.clone().cap_json_bytes(1_000_000));
        let whole = serde_json::to_string(&r.json_rows())
            .unwrap_or_default()
            .len();
        assert!(r.cap_json_bytes(500));
        assert_eq!(r.rows.len(), 4);
        assert!(r.truncated);
        assert_eq!(r.truncated_at_bytes, Some(500));
        let cut = serde_json::to_string(&r.json_rows())
            .unwrap_or_default()
            .len();
        assert!(cut <= 500 && cut < whole, "{cut}");
    }
}
