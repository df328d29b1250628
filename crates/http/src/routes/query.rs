//! `POST /api/v1/query`: run (or dry-run) guarded SQL.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, post, web};
use bqai_core::auth::Action;
use bqai_core::model::{QueryOutcome, QueryParameters, QueryRequest};
use bqai_core::query::RecordMeta;

use crate::auth::{AuditNote, Caller, add_dataset_target, add_target, note};
use crate::dto::{QueryBody, QueryResponse};
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
    run(&state, &caller, &req, request, meta).await
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
    note(req, |n| {
        n.sql = Some(request.sql.clone());
        if let Some(ds) = &request.default_dataset {
            add_dataset_target(n, ds);
        }
    });
    let outcome = state
        .queries
        .run_recorded(request, caller.principal(), meta)
        .await?;
    note(req, |n| note_outcome(n, &outcome));
    crate::request_id::note_query_id(req, &outcome.query_id);
    Ok(HttpResponse::Ok().json(QueryResponse::from(outcome)))
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
