//! Query history endpoints.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bqai_core::auth::Action;
use bqai_core::auth::audit::AuditAction;
use bqai_core::history::{HistoryEntry, HistoryFilter, QueryKind, QueryStatus};
use bqai_core::model::QueryRequest;
use bqai_core::query::RecordMeta;

use super::page_request;
use crate::auth::{Caller, note};
use crate::dto::{HistoryDto, HistoryQuery, ListResponse, RerunBody};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest history page.
const MAX_HISTORY_PAGE: u32 = 500;

/// `GET /api/v1/history?status=&kind=&principal=&page_size=&page_token=`, newest first.
/// Callers see their own entries; admins see everyone's (or one principal's with
/// `principal=`).
#[utoipa::path(operation_id = "list_history", tag = "history", params(crate::dto::HistoryQuery), responses((status = 200, description = "History entries, newest first (non-admins: their own)", body = crate::dto::ListResponse<crate::dto::HistoryDto>)))]
#[get("/history")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::HistoryRead)?;
    let q = q.into_inner();
    let filter = filter(
        &caller,
        q.principal.as_deref(),
        q.status.as_deref(),
        q.kind.as_deref(),
    )?;
    let page = page_request(&state.settings, q.page_size, q.page_token, MAX_HISTORY_PAGE)?;
    let entries = state.history.list(&filter, &page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(entries, HistoryDto::from)))
}

/// The history filter of a listing: whose entries the caller may read (see
/// [`scoped_principal`]), and the status and kind asked for, checked.
pub(crate) fn filter(
    caller: &Caller,
    principal: Option<&str>,
    status: Option<&str>,
    kind: Option<&str>,
) -> Result<HistoryFilter, ApiError> {
    let status = status
        .map(|s| {
            QueryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status must be one of succeeded, failed, rejected")
            })
        })
        .transpose()?;
    let kind = kind
        .map(|k| {
            QueryKind::parse(k)
                .ok_or_else(|| ApiError::invalid("kind must be one of sql, ask, system, export"))
        })
        .transpose()?;
    Ok(HistoryFilter {
        status,
        kind,
        principal: scoped_principal(caller, principal)?,
    })
}

/// Whose history a caller reads: admins everyone's (or `requested`'s), everyone else only
/// their own (asking for another principal's is `FORBIDDEN`).
pub(crate) fn scoped_principal(
    caller: &Caller,
    requested: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if caller.sees_all() {
        Ok(requested.filter(|p| !p.is_empty()).map(str::to_owned))
    } else if requested.is_some_and(|p| Some(p) != caller.principal().id.as_deref()) {
        Err(
            bqai_core::Error::Forbidden("only admins may read other principals' history".into())
                .into(),
        )
    } else {
        Ok(caller.principal().id.clone())
    }
}

/// The entry `id` if the caller may see it: another principal's entry is "not found", not
/// "forbidden", so ids cannot be probed.
pub(crate) async fn visible_entry(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<HistoryEntry, ApiError> {
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApiError::invalid("history id must be a query id (a UUID)"));
    }
    match state.history.get(id).await? {
        Some(entry) if caller.sees_all() || entry.principal == caller.principal().id => Ok(entry),
        _ => Err(ApiError::not_found(format!("history entry {id} not found"))),
    }
}

/// `GET /api/v1/history/{id}`
#[utoipa::path(operation_id = "get_history_entry", tag = "history", params(("id" = String, Path, description = "The history entry id")), responses((status = 200, description = "The entry", body = crate::dto::HistoryDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope)))]
#[get("/history/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::HistoryRead)?;
    let entry = visible_entry(&state, &caller, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(HistoryDto::from(entry)))
}

/// `POST /api/v1/history/{id}/rerun`: runs the entry's SQL again for the caller, through the
/// whole pipeline (guard, scope, dry run, caps, quota), recorded as a new entry whose
/// `rerun_of` is `id`. The body is optional. Parameter values are not kept in history, so
/// SQL with placeholders cannot be rerun (`INVALID_REQUEST`).
#[utoipa::path(operation_id = "rerun_history_entry", tag = "history", params(("id" = String, Path, description = "The history entry id")), request_body(content = Option<crate::dto::RerunBody>, description = "Optional: dry_run, max_rows, timeout_ms, use_cache"), responses((status = 200, description = "The new run's rows (or estimate)", body = crate::dto::QueryResponse), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope), (status = 504, description = "TIMEOUT", body = crate::openapi::ErrorEnvelope)))]
#[post("/history/{id}/rerun")]
pub async fn rerun(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: RerunBody = if body.iter().all(u8::is_ascii_whitespace) {
        RerunBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the body is not a rerun request: {e}")))?
    };
    caller.require(if body.dry_run {
        Action::DryRun
    } else {
        Action::Query
    })?;
    let id = path.into_inner();
    let entry = visible_entry(&state, &caller, &id).await?;
    let request = QueryRequest {
        dry_run: body.dry_run,
        max_rows: body.max_rows,
        timeout: body.timeout_ms.map(Duration::from_millis),
        use_cache: body.use_cache.unwrap_or(true),
        ..entry.rerun_request()?
    };
    note(&req, |n| {
        n.action = Some(AuditAction::Query);
        n.detail = Some(format!("rerun of {id}"));
    });
    let meta = RecordMeta {
        request_id: crate::request_id::current(),
        rerun_of: Some(id),
        ..RecordMeta::sql()
    };
    super::query::run(&state, &caller, &req, request, meta).await
}
