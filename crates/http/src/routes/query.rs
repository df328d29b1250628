//! `POST /api/v1/query`: run (or dry-run) guarded SQL; `GET /api/v1/query/{query_id}/results`:
//! the next pages of a paged one.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bqai_core::auth::Action;
use bqai_core::model::{QueryOutcome, QueryParameters, QueryRequest};
use bqai_core::query::RecordMeta;

use crate::auth::{AuditNote, Caller, add_dataset_target, add_target, note};
use crate::dto::{QueryBody, QueryResponse, ResultPageResponse, ResultsQuery};
use crate::error::ApiError;
use crate::state::AppState;

/// Runs the query pipeline for the body's SQL.
#[utoipa::path(tag = "query", request_body = crate::dto::QueryBody, responses((status = 200, description = "The rows (or, for a dry run, the estimate)", body = crate::dto::QueryResponse), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope), (status = 404, description = "NOT_FOUND: a table or dataset that does not exist", body = crate::openapi::ErrorEnvelope), (status = 504, description = "TIMEOUT", body = crate::openapi::ErrorEnvelope)))]
#[post("/query")]
pub async fn query(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<QueryBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    caller.require(if body.dry_run {
        Action::DryRun
    } else {
        Action::Query
    })?;
    let parameters = match &body.parameters {
        Some(json) => QueryParameters::from_json(json)
            .map_err(|e| ApiError::from(bqai_core::Error::InvalidRequest(e)))?,
        None => QueryParameters::None,
    };
    let request = QueryRequest {
        sql: body.sql,
        default_dataset: body.dataset_id.filter(|d| !d.is_empty()),
        dry_run: body.dry_run,
        max_rows: body.max_rows,
        timeout: body.timeout_ms.map(Duration::from_millis),
        use_cache: body.use_cache.unwrap_or(true),
        parameters,
    };
    let meta = RecordMeta {
        request_id: crate::request_id::current(),
        ..RecordMeta::sql()
    };
    match body.page_size {
        Some(page_size) => run_paged(&state, &caller, &req, request, meta, page_size).await,
        None => run(&state, &caller, &req, request, meta).await,
    }
}

/// The first page of a paged query (`page_size` in the body).
async fn run_paged(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    request: QueryRequest,
    meta: RecordMeta,
    page_size: u64,
) -> Result<HttpResponse, ApiError> {
    note_request(req, &request);
    let paged = state
        .queries
        .run_paged(request, caller.principal(), meta, page_size)
        .await?;
    note(req, |n| note_outcome(n, &paged.outcome));
    crate::request_id::note_query_id(req, &paged.outcome.query_id);
    Ok(HttpResponse::Ok().json(QueryResponse::paged(paged)))
}

/// The next page of a paged query: read from where the warehouse keeps the result (BigQuery)
/// or from the spool (the embedded engine); nothing runs again and nothing is billed. The
/// token is bound to the caller who ran the query.
#[utoipa::path(tag = "query", params(("query_id" = String, Path, description = "The `query_id` of the paged query"), crate::dto::ResultsQuery), responses((status = 200, description = "The page's rows, and the next page's token", body = crate::dto::ResultPageResponse), (status = 400, description = "INVALID_REQUEST: a page_token this server did not issue, or page_size out of range", body = crate::openapi::ErrorEnvelope), (status = 403, description = "FORBIDDEN: the query read a dataset the caller may no longer read", body = crate::openapi::ErrorEnvelope), (status = 404, description = "NOT_FOUND: the pages expired (query.page_ttl_secs), or the token is another caller's or another query's", body = crate::openapi::ErrorEnvelope)))]
#[get("/query/{query_id}/results")]
pub async fn results(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ResultsQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Query)?;
    let query_id = path.into_inner();
    let q = q.into_inner();
    if query_id.len() > 128 || q.page_token.len() > 4096 {
        return Err(ApiError::invalid("query_id or page_token is too long"));
    }
    note(&req, |n| add_target(n, format!("query:{query_id}")));
    let page = state
        .queries
        .read_page(&query_id, &q.page_token, q.page_size, caller.principal())
        .await?;
    Ok(HttpResponse::Ok().json(ResultPageResponse::from(page)))
}

/// Runs `request` for the caller through the query pipeline and answers with its rows,
/// noting the SQL, datasets, tables and cost for the audit log (`POST /query` and a rerun).
pub(crate) async fn run(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    request: QueryRequest,
    meta: RecordMeta,
) -> Result<HttpResponse, ApiError> {
    note_request(req, &request);
    let outcome = state
        .queries
        .run_recorded(request, caller.principal(), meta)
        .await?;
    note(req, |n| note_outcome(n, &outcome));
    crate::request_id::note_query_id(req, &outcome.query_id);
    Ok(HttpResponse::Ok().json(QueryResponse::from(outcome)))
}

/// Records the SQL and the default dataset of a query in the audit note.
fn note_request(req: &HttpRequest, request: &QueryRequest) {
    note(req, |n| note_query(n, request));
}

/// Records the SQL and the default dataset of a query in an audit note (REST and MCP).
pub(crate) fn note_query(n: &mut AuditNote, request: &QueryRequest) {
    n.sql = Some(request.sql.clone());
    if let Some(ds) = &request.default_dataset {
        add_dataset_target(n, ds);
    }
}

/// Records the tables a query read and what it cost in the audit note.
pub(crate) fn note_outcome(n: &mut AuditNote, outcome: &QueryOutcome) {
    for t in &outcome.referenced_tables {
        add_target(n, t.to_string());
    }
    n.bytes = if outcome.dry_run {
        0
    } else {
        outcome.result.stats.charged_bytes()
    };
}
