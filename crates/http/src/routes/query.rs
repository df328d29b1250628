//! `POST /api/v1/query`: run (or dry-run) guarded SQL.

use std::time::Duration;

use actix_web::{HttpResponse, post, web};
use bqai_core::model::QueryRequest;

use crate::dto::{QueryBody, QueryResponse};
use crate::error::ApiError;
use crate::state::AppState;

/// Runs the query pipeline for the body's SQL.
#[post("/query")]
pub async fn query(
    state: web::Data<AppState>,
    body: web::Json<QueryBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = QueryRequest {
        sql: body.sql,
        default_dataset: body.dataset_id.filter(|d| !d.is_empty()),
        dry_run: body.dry_run,
        max_rows: body.max_rows,
        timeout: body.timeout_ms.map(Duration::from_millis),
        use_cache: body.use_cache.unwrap_or(true),
    };
    let outcome = state.queries.run(request, &state.anonymous).await?;
    Ok(HttpResponse::Ok().json(QueryResponse::from(outcome)))
}
