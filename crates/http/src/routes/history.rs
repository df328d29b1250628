//! Query history endpoints.

use actix_web::{HttpResponse, get, web};
use bqai_core::history::{HistoryFilter, QueryKind, QueryStatus};

use super::page_request;
use crate::dto::{HistoryDto, HistoryQuery, ListResponse};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest history page.
const MAX_HISTORY_PAGE: u32 = 500;

/// `GET /api/v1/history?status=&kind=&page_size=&page_token=`, newest first.
#[get("/history")]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
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
        principal: state.anonymous.id.clone(),
    };
    let entries = state.history.list(&filter, &page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(entries, HistoryDto::from)))
}

/// `GET /api/v1/history/{id}`
#[get("/history/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApiError::invalid("history id must be a query id (a UUID)"));
    }
    match state.history.get(&id).await? {
        Some(entry) => Ok(HttpResponse::Ok().json(HistoryDto::from(entry))),
        None => Err(ApiError::not_found(format!("history entry {id} not found"))),
    }
}
