//! The MCP tools: their input schemas (from the argument types, through schemars), what each
//! runs, and how a result or a refusal becomes a tool result.
//!
//! Each tool calls the use case its REST twin calls, with the same role check and the same
//! audit note; arguments are checked like a request body (unknown fields refused), so a
//! mistyped argument is an `INVALID_REQUEST` tool error the agent can read, not a silent
//! default.

use std::fmt::Write as _;
use std::time::Duration;

use bqai_core::ask::AskRequest;
use bqai_core::auth::Action;
use bqai_core::auth::audit::AuditAction;
use bqai_core::export::ExportStatus;
use bqai_core::model::{QueryParameters, QueryRequest, TableRef};
use bqai_core::query::RecordMeta;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, ToolAnnotations};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{McpCaller, render};
use crate::auth::{AuditNote, Caller, add_dataset_target, add_target};
use crate::dto::{
    DatasetDto, ExportBody, HistoryDto, ListResponse, QueryResponse, RowsDto, TableDto,
    TableSummaryDto,
};
use crate::error::ApiError;
use crate::routes::{ask::AskResponse, dataset_id, page_request, table_ref};
use crate::state::{AppState, HttpSettings};

/// Most items on one page of a listing tool.
const MAX_LIST_PAGE: u32 = 200;

/// How often the `export` tool looks at its job while it waits.
const EXPORT_POLL: Duration = Duration::from_millis(200);

/// A tool's answer: the structured content, its text rendering, and whether it reports a
/// failure (an export job that failed: the job's own record, with `isError`).
pub(crate) struct Output {
    value: Value,
    text: String,
    is_error: bool,
}

impl Output {
    fn ok(value: Value, text: String) -> Self {
        Self {
            value,
            text,
            is_error: false,
        }
    }
}

/// The tool result of an outcome: the structured value and its text, or the REST error
/// envelope (`{"error": {"code", "message", "retry_after_secs"?}}`) with `isError`.
pub(crate) fn result(outcome: Result<Output, ApiError>) -> CallToolResult {
    match outcome {
        Ok(out) => {
            let mut r = if out.is_error {
                CallToolResult::structured_error(out.value)
            } else {
                CallToolResult::structured(out.value)
            };
            r.content = vec![ContentBlock::text(out.text)];
            r
        }
        Err(e) => {
            let mut error = json!({"code": e.code(), "message": e.message()});
            if let Some(wait) = e.retry_after() {
                error["retry_after_secs"] = json!(wait.as_secs().max(1));
            }
            let mut r = CallToolResult::structured_error(json!({ "error": error }));
            r.content = vec![ContentBlock::text(format!("{}: {}", e.code(), e.message()))];
            r
        }
    }
}

/// The tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    ListDatasets,
    ListTables,
    DescribeTable,
    PreviewTable,
    RunQuery,
    EstimateQuery,
    Ask,
    GetHistory,
    Export,
}

impl Tool {
    const ALL: [Tool; 9] = [
        Tool::ListDatasets,
        Tool::ListTables,
        Tool::DescribeTable,
        Tool::PreviewTable,
        Tool::RunQuery,
        Tool::EstimateQuery,
        Tool::Ask,
        Tool::GetHistory,
        Tool::Export,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::ListDatasets => "list_datasets",
            Tool::ListTables => "list_tables",
            Tool::DescribeTable => "describe_table",
            Tool::PreviewTable => "preview_table",
            Tool::RunQuery => "run_query",
            Tool::EstimateQuery => "estimate_query",
            Tool::Ask => "ask",
            Tool::GetHistory => "get_history",
            Tool::Export => "export",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the audit log calls a call of this tool.
    pub(crate) fn audit_action(self) -> AuditAction {
        match self {
            Tool::ListDatasets | Tool::ListTables | Tool::DescribeTable | Tool::PreviewTable => {
                AuditAction::CatalogRead
            }
            Tool::RunQuery | Tool::EstimateQuery => AuditAction::Query,
            Tool::Ask => AuditAction::Ask,
            Tool::GetHistory => AuditAction::HistoryRead,
            Tool::Export => AuditAction::Export,
        }
    }

    /// What a call costs against the rate limit: the weight of the REST twin.
    pub(crate) fn weight(self, settings: &HttpSettings) -> u32 {
        match self {
            Tool::RunQuery | Tool::EstimateQuery | Tool::Export => settings.query_weight.max(1),
            Tool::Ask => settings.ask_weight.max(1),
            _ => 1,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Tool::ListDatasets => "List the datasets you may query, with their descriptions.",
            Tool::ListTables => "List the tables of a dataset, with their row counts.",
            Tool::DescribeTable => {
                "A table's columns (name, type, description), size, partitioning, and what the \
                 dataset's semantic model says about it: synonyms, named measures, joins."
            }
            Tool::PreviewTable => {
                "The first rows of a table (at most 100); costs nothing on BigQuery."
            }
            Tool::RunQuery => {
                "Run one read-only SQL SELECT (BigQuery Standard SQL) and return its rows. The \
                 statement is checked first (read-only, only datasets you may read), dry-run, and \
                 refused before anything is billed when it would process more bytes than allowed \
                 (COST_LIMIT_EXCEEDED: add filters, select fewer columns). Rows are capped \
                 (max_rows). Put values in `parameters`, not in the SQL text: placeholders are @name \
                 on BigQuery, $name on the embedded engine."
            }
            Tool::EstimateQuery => {
                "Dry-run a SQL SELECT: the bytes it would process and the cost, without running \
                 it or billing anything. The same checks as run_query."
            }
            Tool::Ask => {
                "Answer a question in plain language: bqai writes the SQL (from the dataset's \
                 schema and semantic model), checks and runs it, and returns the SQL, an \
                 explanation and the rows. Pass the returned conversation_id to ask a follow-up."
            }
            Tool::GetHistory => {
                "Your recent queries and asks, newest first, with status, cost and row counts."
            }
            Tool::Export => {
                "Export a whole result (SQL, or a history entry's) as a file — csv, ndjson, json, \
                 xlsx or parquet — and return a signed download link that needs no API key. The \
                 same checks as run_query, with the export row cap."
            }
        }
    }

    fn schema(self) -> std::sync::Arc<JsonObject> {
        use rmcp::handler::server::common::schema_for_type as schema;
        match self {
            Tool::ListDatasets => schema::<ListDatasetsArgs>(),
            Tool::ListTables => schema::<ListTablesArgs>(),
            Tool::DescribeTable => schema::<TableArgs>(),
            Tool::PreviewTable => schema::<PreviewArgs>(),
            Tool::RunQuery => schema::<RunQueryArgs>(),
            Tool::EstimateQuery => schema::<EstimateArgs>(),
            Tool::Ask => schema::<AskArgs>(),
            Tool::GetHistory => schema::<HistoryArgs>(),
            Tool::Export => schema::<ExportArgs>(),
        }
    }

    /// Runs the tool for `caller` with `args`, noting what it touched in `note`.
    pub(crate) async fn run(
        self,
        state: &AppState,
        caller: &McpCaller,
        args: JsonObject,
        note: &mut AuditNote,
    ) -> Result<Output, ApiError> {
        let who = Caller(caller.principal.clone());
        match self {
            Tool::ListDatasets => list_datasets(state, &who, parse(args)?).await,
            Tool::ListTables => list_tables(state, &who, parse(args)?, note).await,
            Tool::DescribeTable => describe_table(state, &who, parse(args)?, note).await,
            Tool::PreviewTable => preview_table(state, &who, parse(args)?, note).await,
            Tool::RunQuery => {
                let request = parse::<RunQueryArgs>(args)?.request()?;
                run_query(state, &who, caller, request, note).await
            }
            Tool::EstimateQuery => {
                let request = RunQueryArgs::from(parse::<EstimateArgs>(args)?).request()?;
                run_query(state, &who, caller, request, note).await
            }
            Tool::Ask => ask(state, &who, caller, parse(args)?, note).await,
            Tool::GetHistory => get_history(state, &who, parse(args)?).await,
            Tool::Export => export(state, &who, caller, parse(args)?, note).await,
        }
    }
}

/// Every tool's definition, built once (`tools/list`, and rmcp's check of each call).
pub(crate) fn definitions() -> &'static [rmcp::model::Tool] {
    static DEFINITIONS: std::sync::LazyLock<Vec<rmcp::model::Tool>> =
        std::sync::LazyLock::new(build_definitions);
    &DEFINITIONS
}

fn build_definitions() -> Vec<rmcp::model::Tool> {
    Tool::ALL
        .into_iter()
        .map(|t| {
            let mut annotations = ToolAnnotations::new()
                .read_only(true)
                .destructive(false)
                // They reach only the warehouse bqai fronts, never the open web.
                .open_world(false);
            if t == Tool::Export {
                // It writes a file (bqai's, not the caller's data).
                annotations = annotations.read_only(false);
            }
            rmcp::model::Tool::new(t.name(), t.description(), t.schema()).annotate(annotations)
        })
        .collect()
}

fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(args))
        .map_err(|e| ApiError::invalid(format!("invalid arguments: {e}")))
}

fn to_value(v: impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| {
        ApiError::from(bqai_core::Error::internal(
            "a tool result did not serialize",
            e,
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// `list_datasets`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListDatasetsArgs {
    /// Items per page (1–200, default 100).
    page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// `list_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListTablesArgs {
    /// The dataset.
    dataset_id: String,
    /// Items per page (1–200, default 100).
    page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// `describe_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TableArgs {
    /// The dataset.
    dataset_id: String,
    /// The table (its name within the dataset).
    table_id: String,
}

/// `preview_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PreviewArgs {
    /// The dataset.
    dataset_id: String,
    /// The table (its name within the dataset).
    table_id: String,
    /// How many rows (default 10).
    rows: Option<u64>,
}

/// `run_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunQueryArgs {
    /// One SQL SELECT statement.
    sql: String,
    /// The dataset unqualified table names are in.
    dataset_id: Option<String>,
    /// Values of the statement's named parameters: `{"country": "Germany", "n": 5}`.
    parameters: Option<Value>,
    /// Only check and estimate, as `estimate_query` does.
    dry_run: Option<bool>,
    /// Most rows to return (the server's cap applies).
    max_rows: Option<u64>,
    /// Give up after this many milliseconds.
    timeout_ms: Option<u64>,
}

/// `estimate_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EstimateArgs {
    /// One SQL SELECT statement.
    sql: String,
    /// The dataset unqualified table names are in.
    dataset_id: Option<String>,
    /// Values of the statement's named parameters: `{"country": "Germany", "n": 5}`.
    parameters: Option<Value>,
}

impl From<EstimateArgs> for RunQueryArgs {
    fn from(a: EstimateArgs) -> Self {
        Self {
            sql: a.sql,
            dataset_id: a.dataset_id,
            parameters: a.parameters,
            dry_run: Some(true),
            max_rows: None,
            timeout_ms: None,
        }
    }
}

impl RunQueryArgs {
    fn request(self) -> Result<QueryRequest, ApiError> {
        let parameters = match &self.parameters {
            Some(json) => QueryParameters::from_json(json)
                .map_err(|e| ApiError::from(bqai_core::Error::InvalidRequest(e)))?,
            None => QueryParameters::None,
        };
        Ok(QueryRequest {
            sql: self.sql,
            default_dataset: self.dataset_id.filter(|d| !d.is_empty()),
            dry_run: self.dry_run.unwrap_or(false),
            max_rows: self.max_rows,
            timeout: self.timeout_ms.map(Duration::from_millis),
            use_cache: true,
            parameters,
        })
    }
}

/// `ask`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AskArgs {
    /// The question, in plain language.
    question: String,
    /// The dataset it is about (the server's default otherwise).
    dataset_id: Option<String>,
    /// The conversation a follow-up question continues (from a previous answer).
    conversation_id: Option<String>,
    /// Run the SQL (default true); false only writes, checks and estimates it.
    execute: Option<bool>,
    /// Most rows to return.
    max_rows: Option<u64>,
}

/// `get_history`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HistoryArgs {
    /// Only entries with this status: succeeded, failed or rejected.
    status: Option<String>,
    /// Only entries of this kind: sql, ask, system or export.
    kind: Option<String>,
    /// Items per page (1–200, default 20).
    page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    page_token: Option<String>,
}

/// `export`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExportArgs {
    /// The SQL whose result to export (or `history_id`).
    sql: Option<String>,
    /// One of your history entries (a `query_id`) whose SQL to run again and export.
    history_id: Option<String>,
    /// csv (default), ndjson, json, xlsx or parquet.
    format: Option<String>,
    /// The dataset unqualified table names are in (with `sql`).
    dataset_id: Option<String>,
    /// Values of the statement's named parameters (with `sql`).
    parameters: Option<Value>,
    /// Most rows (the server's export cap applies).
    max_rows: Option<u64>,
    /// The file's name (its extension is added).
    filename: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The tools
// ---------------------------------------------------------------------------------------------

async fn list_datasets(
    state: &AppState,
    caller: &Caller,
    a: ListDatasetsArgs,
) -> Result<Output, ApiError> {
    caller.require(Action::CatalogRead)?;
    let page = list_page(state, a.page_size, 100, a.page_token)?;
    let page = state
        .catalog
        .list_datasets(caller.principal(), &page)
        .await?;
    let value = to_value(ListResponse::from_page(page, DatasetDto::from))?;
    let text = render::list(&value, "datasets", |d| {
        described(d["dataset_id"].as_str(), d["description"].as_str())
    });
    Ok(Output::ok(value, text))
}

/// The page a listing tool asked for: `size` items (`default` when not given, at most
/// [`MAX_LIST_PAGE`]) after `token`.
fn list_page(
    state: &AppState,
    size: Option<u32>,
    default: u32,
    token: Option<String>,
) -> Result<bqai_core::model::PageRequest, ApiError> {
    page_request(
        &state.settings,
        Some(size.unwrap_or(default)),
        token,
        MAX_LIST_PAGE,
    )
}

fn described(name: Option<&str>, description: Option<&str>) -> String {
    match description.filter(|d| !d.is_empty()) {
        Some(d) => format!("{} — {d}", name.unwrap_or("")),
        None => name.unwrap_or("").to_string(),
    }
}

async fn list_tables(
    state: &AppState,
    caller: &Caller,
    a: ListTablesArgs,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    caller.require(Action::CatalogRead)?;
    let ds = dataset_id(&a.dataset_id)?;
    add_target(note, &ds);
    let page = list_page(state, a.page_size, 100, a.page_token)?;
    let page = state
        .catalog
        .list_tables(caller.principal(), &ds, &page)
        .await?;
    let value = to_value(ListResponse::from_page(page, TableSummaryDto::from))?;
    let text = render::list(&value, &format!("tables in {ds}"), |t| {
        let rows = t["num_rows"]
            .as_u64()
            .map(|n| format!(" ({n} rows)"))
            .unwrap_or_default();
        format!("{}{rows}", t["table_id"].as_str().unwrap_or(""))
    });
    Ok(Output::ok(value, text))
}

fn table_of(caller: &Caller, dataset: &str, table: &str) -> Result<TableRef, ApiError> {
    caller.require(Action::CatalogRead)?;
    table_ref(dataset, table)
}

async fn describe_table(
    state: &AppState,
    caller: &Caller,
    a: TableArgs,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    let table = table_of(caller, &a.dataset_id, &a.table_id)?;
    add_target(note, table.to_string());
    let found = state.catalog.get_table(caller.principal(), &table).await?;
    let semantic = state.ask.semantic_model(&table.dataset).map(|model| {
        let name = table.table.as_str();
        json!({
            "table": model.table(name),
            "measures": model.measures.iter().filter(|m| m.table == name).collect::<Vec<_>>(),
            "relationships": model.relationships_of(name).collect::<Vec<_>>(),
        })
    });
    let value = json!({"table": to_value(TableDto::from(found))?, "semantic": semantic});
    let text = describe_text(&value);
    Ok(Output::ok(value, text))
}

fn describe_text(v: &Value) -> String {
    let t = &v["table"];
    let mut out = format!(
        "{}.{} ({}",
        t["dataset_id"].as_str().unwrap_or(""),
        t["table_id"].as_str().unwrap_or(""),
        t["type"].as_str().unwrap_or("TABLE")
    );
    if let Some(n) = t["num_rows"].as_u64() {
        let _ = write!(out, ", {n} rows");
    }
    out.push(')');
    if let Some(d) = t["description"].as_str() {
        let _ = write!(out, ": {d}");
    }
    out.push_str("\nColumns:");
    for c in t["schema"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = write!(
            out,
            "\n- {} {}",
            c["name"].as_str().unwrap_or(""),
            c["type"].as_str().unwrap_or("")
        );
        if let Some(d) = c["description"].as_str() {
            let _ = write!(out, " — {d}");
        }
    }
    let s = &v["semantic"];
    if let Some(syn) = s["table"]["synonyms"].as_array().filter(|a| !a.is_empty()) {
        let words: Vec<&str> = syn.iter().filter_map(Value::as_str).collect();
        let _ = write!(out, "\nAlso called: {}", words.join(", "));
    }
    section(
        &mut out,
        "Measures (use the expression as written)",
        &s["measures"],
        |m| {
            let mut line = format!(
                "{} = {}",
                m["name"].as_str().unwrap_or(""),
                m["sql"].as_str().unwrap_or("")
            );
            if let Some(d) = m["description"].as_str() {
                let _ = write!(line, " — {d}");
            }
            line
        },
    );
    section(&mut out, "Joins", &s["relationships"], |j| {
        format!(
            "{} = {}",
            j["from"].as_str().unwrap_or(""),
            j["to"].as_str().unwrap_or("")
        )
    });
    out
}

/// A titled list of `items` (a JSON array), one line each, when there are any.
fn section(out: &mut String, title: &str, items: &Value, line: impl Fn(&Value) -> String) {
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    if !items.is_empty() {
        let _ = write!(out, "\n{title}:");
        for item in items {
            let _ = write!(out, "\n- {}", line(item));
        }
    }
}

async fn preview_table(
    state: &AppState,
    caller: &Caller,
    a: PreviewArgs,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    let table = table_of(caller, &a.dataset_id, &a.table_id)?;
    add_target(note, table.to_string());
    let limit = a.rows.unwrap_or(state.settings.default_preview_rows);
    let result = state
        .catalog
        .preview(caller.principal(), &table, limit)
        .await?;
    let value = to_value(RowsDto::from_result(&result))?;
    let text = render::rows(&value);
    Ok(Output::ok(value, text))
}

async fn run_query(
    state: &AppState,
    caller: &Caller,
    mcp: &McpCaller,
    request: QueryRequest,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    caller.require(if request.dry_run {
        Action::DryRun
    } else {
        Action::Query
    })?;
    crate::routes::query::note_query(note, &request);
    let meta = RecordMeta {
        request_id: mcp.request_id.clone(),
        ..RecordMeta::sql()
    };
    let outcome = state
        .queries
        .run_recorded(request, caller.principal(), meta)
        .await?;
    crate::routes::query::note_outcome(note, &outcome);
    let value = to_value(QueryResponse::from(outcome))?;
    let text = render::query(&value);
    Ok(Output::ok(value, text))
}

async fn ask(
    state: &AppState,
    caller: &Caller,
    mcp: &McpCaller,
    a: AskArgs,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    let execute = a.execute.unwrap_or(true);
    caller.require(if execute {
        Action::Query
    } else {
        Action::DryRun
    })?;
    let dataset = a.dataset_id.filter(|d| !d.is_empty());
    if let Some(ds) = &dataset {
        add_dataset_target(note, ds);
    }
    let request = AskRequest {
        dataset_id: dataset,
        execute,
        max_rows: a.max_rows,
        conversation_id: a.conversation_id.filter(|c| !c.is_empty()),
        request_id: mcp.request_id.clone(),
        ..AskRequest::new(a.question)
    };
    let answer = state.ask.ask(request, caller.principal()).await?;
    crate::routes::ask::note_answer(note, &answer);
    let value = to_value(AskResponse::from(answer))?;
    let text = ask_text(&value);
    Ok(Output::ok(value, text))
}

fn ask_text(v: &Value) -> String {
    let mut out = String::new();
    if let Some(sql) = v["sql"].as_str() {
        out.push_str(&format!("SQL:\n{sql}\n"));
    }
    if let Some(e) = v["explanation"].as_str().filter(|e| !e.is_empty()) {
        out.push_str(&format!("{e}\n"));
    }
    if v["result"].is_object() {
        out.push_str(&render::query(&v["result"]));
    } else if v["catalog"].is_object() {
        out.push_str(&v["catalog"].to_string());
    }
    if let Some(c) = v["conversation_id"].as_str() {
        out.push_str(&format!(
            "\nconversation_id {c} (pass it to ask a follow-up)."
        ));
    }
    out
}

async fn get_history(
    state: &AppState,
    caller: &Caller,
    a: HistoryArgs,
) -> Result<Output, ApiError> {
    caller.require(Action::HistoryRead)?;
    let filter =
        crate::routes::history::filter(caller, None, a.status.as_deref(), a.kind.as_deref())?;
    let page = list_page(state, a.page_size, 20, a.page_token)?;
    let entries = state.history.list(&filter, &page).await?;
    let value = to_value(ListResponse::from_page(entries, HistoryDto::from))?;
    let text = render::list(&value, "history entries", |h| {
        format!(
            "{} {} [{} {}] {} — {} rows, {}",
            h["created_at"].as_str().unwrap_or(""),
            h["id"].as_str().unwrap_or(""),
            h["kind"].as_str().unwrap_or(""),
            h["status"].as_str().unwrap_or(""),
            h["question"]
                .as_str()
                .unwrap_or_else(|| h["sql"].as_str().unwrap_or("")),
            h["row_count"].as_u64().unwrap_or(0),
            render::bytes_text(h["bytes_processed"].as_u64().unwrap_or(0)),
        )
    });
    Ok(Output::ok(value, text))
}

async fn export(
    state: &AppState,
    caller: &Caller,
    mcp: &McpCaller,
    a: ExportArgs,
    note: &mut AuditNote,
) -> Result<Output, ApiError> {
    caller.require(Action::Export)?;
    let body = ExportBody {
        sql: a.sql,
        query_id: None,
        history_id: a.history_id,
        format: a.format.unwrap_or_else(|| "csv".into()),
        dataset_id: a.dataset_id,
        parameters: a.parameters,
        filename: a.filename,
        delimiter: None,
        max_rows: a.max_rows,
        timeout_ms: None,
    };
    let mut prepared = crate::routes::exports::prepare(state, caller, &body).await?;
    prepared.meta.request_id.clone_from(&mcp.request_id);
    prepared.spec.request_id.clone_from(&mcp.request_id);
    crate::routes::exports::note_export(note, &prepared.request, prepared.format);
    // Every check runs now (the guard, the scope, the dry run, the byte cap, the quota), so a
    // job that cannot run is refused here; the worker checks again when it runs.
    let planned = state
        .queries
        .plan_export(
            prepared.request,
            caller.principal(),
            state.settings.export.max_rows,
            prepared.meta,
        )
        .await?;
    for t in planned.referenced_tables() {
        add_target(note, t.to_string());
    }
    let file_name = crate::routes::exports::file_name(&body, planned.query_id(), prepared.format);
    drop(planned);
    let job = crate::routes::export_jobs::submit(
        state,
        caller.principal(),
        prepared.format,
        &file_name,
        prepared.spec,
    )
    .await?;
    let id = job.id.clone();
    let deadline = tokio::time::Instant::now() + state.settings.mcp.export_wait;
    let mut job = job;
    while matches!(job.status, ExportStatus::Queued | ExportStatus::Running)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(EXPORT_POLL).await;
        if let Some(j) = state.exports.store().get_job(&id).await? {
            job = j;
        }
    }
    let link = (job.status == ExportStatus::Succeeded)
        .then(|| crate::routes::export_jobs::signed_link_at(state, &mcp.base_url, &job))
        .flatten();
    let failed = job
        .error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message));
    let status = job.status;
    let dto = crate::routes::export_jobs::ExportJobDto::new(job, link);
    let mut value = to_value(&dto)?;
    value["status_url"] = json!(crate::routes::export_jobs::status_url(&id));
    let text = match (status, &dto.download_url, failed) {
        (ExportStatus::Succeeded, Some(url), _) => format!(
            "Export ready: {} rows, {}. Download (no API key needed) until {}: {url}",
            dto.rows,
            render::bytes_text(dto.bytes),
            dto.link_expires_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ),
        (_, _, Some(error)) => format!("The export failed: {error}"),
        (status, _, None) => format!(
            "Export {id} is {} ({} rows so far); its status is at GET {} on the bqai API.",
            status.as_str(),
            dto.rows,
            crate::routes::export_jobs::status_url(&id)
        ),
    };
    Ok(Output {
        is_error: matches!(status, ExportStatus::Failed | ExportStatus::Cancelled),
        value,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_and_parses_back() {
        let defs = definitions();
        assert_eq!(defs.len(), Tool::ALL.len());
        for (t, d) in Tool::ALL.into_iter().zip(defs) {
            assert_eq!(Tool::parse(&d.name), Some(t));
            assert_eq!(
                d.input_schema.get("type"),
                Some(&json!("object")),
                "{}",
                d.name
            );
        }
        let run = &defs[4];
        let props = run.input_schema["properties"].as_object().unwrap();
        for field in ["sql", "dataset_id", "parameters", "dry_run", "max_rows"] {
            assert!(
                props.contains_key(field),
                "run_query lacks {field}: {props:?}"
            );
        }
        assert_eq!(run.input_schema["required"], json!(["sql"]));
    }

    #[test]
    fn unknown_arguments_are_refused_by_name() {
        let mut args = JsonObject::new();
        args.insert("sql".into(), json!("SELECT 1"));
        args.insert("dryrun".into(), json!(true));
        let e = parse::<RunQueryArgs>(args).unwrap_err();
        assert_eq!(e.code(), "INVALID_REQUEST");
        assert!(e.message().contains("dryrun"), "{}", e.message());
    }

    #[test]
    fn refusals_carry_the_envelope_code() {
        let r = result(Err(ApiError::rate_limited(Duration::from_millis(1500))));
        assert_eq!(r.is_error, Some(true));
        let s = r.structured_content.unwrap();
        assert_eq!(s["error"]["code"], "RATE_LIMITED");
        assert_eq!(s["error"]["retry_after_secs"], 1);
    }
}
