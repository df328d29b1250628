//! Query history endpoints.

use actix_web::{HttpResponse, get, web};
use bqai_core::auth::Action;
use bqai_core::history::{HistoryFilter, QueryKind, QueryStatus};

use super::page_request;
use crate::auth::Caller;
use crate::dto::{HistoryDto, HistoryQuery, ListResponse};
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
    let principal = if caller.sees_all() {
        q.principal.clone().filter(|p| !p.is_empty())
    } else if q
        .principal
        .as_ref()
        .is_some_and(|p| Some(p) != caller.principal().id.as_ref())
    {
        return Err(bqai_core::Error::Forbidden(
            "only admins may read other principals' history".into(),
        )
        .into());
    } else {
        caller.principal().id.clone()
    };
    let status = q
        .status
        .as_deref()
        .map(|s| {
            QueryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status must be one of succeeded, failed, rejected")
            })
        })
        .transpose()?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| QueryKind::parse(k).ok_or_else(|| ApiError::invalid("kind must be sql or ask")))
        .transpose()?;
    let page = page_request(&state.settings, q.page_size, q.page_token, MAX_HISTORY_PAGE)?;
    let filter = HistoryFilter {
        status,
        kind,
        principal,
    };
    let entries = state.history.list(&filter, &page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(entries, HistoryDto::from)))
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
    let id = path.into_inner();
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApiError::invalid("history id must be a query id (a UUID)"));
    }
    // Another principal's entry is "not found", not "forbidden": ids are not to be probed.
    match state.history.get(&id).await? {
        Some(entry) if caller.sees_all() || entry.principal == caller.principal().id => {
            Ok(HttpResponse::Ok().json(HistoryDto::from(entry)))
        }
        _ => Err(ApiError::not_found(format!("history entry {id} not found"))),
    }
}
