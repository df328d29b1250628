//! `POST /api/v1/ask` (question → SQL → rows) and `POST /api/v1/query-agent`, the same
//! pipeline under the request shape of the earlier Python service.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, post, web};
use bqai_core::ask::{AskAnswer, AskRequest, CatalogAnswer, GeneratorInfo};
use bqai_core::auth::Action;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuditNote, Caller, add_dataset_target, add_target, note};
use crate::dto::{QueryResponse, TableDto, TableSummaryDto};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/ask` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    /// The question (1–4,000 characters).
    #[schema(min_length = 1)]
    pub question: String,
    /// The dataset it is about.
    #[schema(pattern = r"^[A-Za-z0-9_]{1,1024}$")]
    pub dataset_id: Option<String>,
    /// Run the SQL (default true); false generates, checks and dry-runs only.
    pub execute: Option<bool>,
    /// Row cap.
    #[schema(minimum = 1)]
    pub max_rows: Option<u64>,
    /// Query timeout in milliseconds.
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Whether cached SQL and results may answer (default true).
    pub use_cache: Option<bool>,
    /// The conversation this question continues.
    pub conversation_id: Option<String>,
}

/// `POST /api/v1/query-agent` body (the earlier service's shape).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryAgentBody {
    /// The question.
    #[schema(min_length = 1)]
    pub prompt: String,
    /// The dataset it is about.
    pub dataset_id: Option<String>,
    /// Only generate and estimate.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskResponse {
    request_id: String,
    question: String,
    dataset_id: String,
    /// The SQL as run; null for questions about the schema.
    sql: Option<String>,
    explanation: String,
    attempts: u32,
    generator: GeneratorInfo,
    /// The `/api/v1/query` response for the SQL; null for questions about the schema.
    result: Option<QueryResponse>,
    /// The answer to a question about the schema.
    catalog: Option<CatalogDto>,
    hints: Vec<String>,
    from_cache: bool,
    usage: UsageDto,
    /// The conversation the question was asked in, if any.
    conversation_id: Option<String>,
    /// Follow-up questions (2–4, or none).
    suggestions: Vec<bqai_core::conversation::Suggestion>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CatalogDto {
    Tables {
        dataset_id: String,
        tables: Vec<TableSummaryDto>,
    },
    Table {
        table: Box<TableDto>,
    },
}

#[derive(Debug, Serialize, ToSchema)]
struct UsageDto {
    llm_latency_ms: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: Option<f64>,
}

impl From<AskAnswer> for AskResponse {
    fn from(a: AskAnswer) -> Self {
        Self {
            request_id: a.request_id,
            question: a.question,
            dataset_id: a.dataset,
            sql: a.sql,
            explanation: a.explanation,
            attempts: a.attempts,
            generator: a.generator,
            result: a.result.map(QueryResponse::from),
            catalog: a.catalog.map(|c| match c {
                CatalogAnswer::Tables { dataset, tables } => CatalogDto::Tables {
                    dataset_id: dataset,
                    tables: tables.into_iter().map(TableSummaryDto::from).collect(),
                },
                CatalogAnswer::Table { table } => CatalogDto::Table {
                    table: Box::new(TableDto::from(*table)),
                },
            }),
            hints: a.hints,
            conversation_id: a.conversation_id,
            suggestions: a.suggestions,
            from_cache: a.from_cache,
            usage: UsageDto {
                llm_latency_ms: a.usage.llm_latency_ms,
                input_tokens: a.usage.input_tokens,
                output_tokens: a.usage.output_tokens,
                cost_usd: a.usage.cost_usd,
            },
        }
    }
}

/// Answers a question in plain language.
#[utoipa::path(tag = "ask", request_body = AskBody, responses((status = 200, description = "The SQL, its explanation and the rows", body = AskResponse), (status = 404, description = "NOT_FOUND: dataset or conversation", body = crate::openapi::ErrorEnvelope), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope), (status = 422, description = "CANNOT_ANSWER or GENERATION_FAILED", body = crate::openapi::ErrorEnvelope), (status = 502, description = "LLM_BAD_RESPONSE", body = crate::openapi::ErrorEnvelope), (status = 504, description = "TIMEOUT or LLM_TIMEOUT", body = crate::openapi::ErrorEnvelope)))]
#[post("/ask")]
pub async fn ask(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<AskBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = AskRequest {
        question: body.question,
        dataset_id: body.dataset_id.filter(|d| !d.is_empty()),
        execute: body.execute.unwrap_or(true),
        max_rows: body.max_rows,
        timeout: body.timeout_ms.map(Duration::from_millis),
        use_cache: body.use_cache.unwrap_or(true),
        conversation_id: body.conversation_id.filter(|c| !c.is_empty()),
        request_id: crate::request_id::current(),
    };
    run_ask(&state, &caller, &req, request).await
}

/// The earlier service's endpoint: `{"prompt", "dataset_id"?, "dry_run"?}`.
#[utoipa::path(tag = "ask", request_body = QueryAgentBody, responses((status = 200, description = "The answer, as for /api/v1/ask", body = AskResponse), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope), (status = 422, description = "CANNOT_ANSWER or GENERATION_FAILED", body = crate::openapi::ErrorEnvelope), (status = 502, description = "LLM_BAD_RESPONSE", body = crate::openapi::ErrorEnvelope), (status = 504, description = "TIMEOUT or LLM_TIMEOUT", body = crate::openapi::ErrorEnvelope)))]
#[post("/query-agent")]
pub async fn query_agent(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<QueryAgentBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = AskRequest {
        dataset_id: body.dataset_id.filter(|d| !d.is_empty()),
        execute: !body.dry_run,
        request_id: crate::request_id::current(),
        ..AskRequest::new(body.prompt)
    };
    run_ask(&state, &caller, &req, request).await
}

/// Records the dataset, the SQL, the tables and the cost of an answer in an audit note (REST
/// and MCP).
pub(crate) fn note_answer(n: &mut AuditNote, answer: &AskAnswer) {
    add_target(n, &answer.dataset);
    n.sql.clone_from(&answer.sql);
    if let Some(outcome) = &answer.result {
        super::query::note_outcome(n, outcome);
    }
}

/// Checks the role (executing needs `query`, generating and estimating only `dry_run`), runs
/// the pipeline, and notes what it touched for the audit record.
async fn run_ask(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    request: AskRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require(if request.execute {
        Action::Query
    } else {
        Action::DryRun
    })?;
    if let Some(ds) = &request.dataset_id {
        note(req, |n| add_dataset_target(n, ds));
    }
    let answer = state.ask.ask(request, caller.principal()).await?;
    note(req, |n| note_answer(n, &answer));
    if let Some(outcome) = &answer.result {
        crate::request_id::note_query_id(req, &outcome.query_id);
    }
    Ok(HttpResponse::Ok().json(AskResponse::from(answer)))
}
