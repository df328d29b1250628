//! Catalog endpoints: datasets, tables, schemas, previews.

use actix_web::{HttpRequest, HttpResponse, get, web};
use bqai_core::auth::Action;

use super::{dataset_id, page_request, table_ref};
use crate::auth::{Caller, add_target, note};
use crate::dto::{
    DatasetDto, ListResponse, PageQuery, PreviewQuery, RowsDto, TableDto, TableSummaryDto,
};
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/v1/datasets`
#[utoipa::path(tag = "catalog", params(crate::dto::PageQuery), responses((status = 200, description = "The datasets in the caller's scope", body = crate::dto::ListResponse<crate::dto::DatasetDto>)))]
#[get("/datasets")]
pub async fn list_datasets(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::CatalogRead)?;
    let q = q.into_inner();
    let page = page_request(
        &state.settings,
        q.page_size,
        q.page_token,
        state.settings.max_page_size,
    )?;
    let datasets = state
        .catalog
        .list_datasets(caller.principal(), &page)
        .await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(datasets, DatasetDto::from)))
}

/// `GET /api/v1/datasets/{dataset_id}`
#[utoipa::path(tag = "catalog", params(("dataset_id" = String, Path, pattern = r"^[A-Za-z0-9_]{1,1024}$", description = "A dataset id (letters, digits, underscores)")), responses((status = 200, description = "The dataset", body = crate::dto::DatasetDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope)))]
#[get("/datasets/{dataset_id}")]
pub async fn get_dataset(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::CatalogRead)?;
    let ds = dataset_id(&path)?;
    note(&req, |n| add_target(n, &ds));
    let dataset = state.catalog.get_dataset(caller.principal(), &ds).await?;
    Ok(HttpResponse::Ok().json(DatasetDto::from(dataset)))
}

/// `GET /api/v1/datasets/{dataset_id}/tables`
#[utoipa::path(tag = "catalog", params(("dataset_id" = String, Path, pattern = r"^[A-Za-z0-9_]{1,1024}$", description = "A dataset id (letters, digits, underscores)"), crate::dto::PageQuery), responses((status = 200, description = "Its tables", body = crate::dto::ListResponse<crate::dto::TableSummaryDto>), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope)))]
#[get("/datasets/{dataset_id}/tables")]
pub async fn list_tables(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::CatalogRead)?;
    let ds = dataset_id(&path)?;
    note(&req, |n| add_target(n, &ds));
    let q = q.into_inner();
    let page = page_request(
        &state.settings,
        q.page_size,
        q.page_token,
        state.settings.max_page_size,
    )?;
    let tables = state
        .catalog
        .list_tables(caller.principal(), &ds, &page)
        .await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(tables, TableSummaryDto::from)))
}

/// `GET /api/v1/datasets/{dataset_id}/tables/{table_id}`
#[utoipa::path(tag = "catalog", params(("dataset_id" = String, Path, pattern = r"^[A-Za-z0-9_]{1,1024}$", description = "A dataset id (letters, digits, underscores)"), ("table_id" = String, Path, description = "A table id")), responses((status = 200, description = "The table with its schema", body = crate::dto::TableDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope)))]
#[get("/datasets/{dataset_id}/tables/{table_id}")]
pub async fn get_table(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::CatalogRead)?;
    let (ds, table) = path.into_inner();
    let table = table_ref(&ds, &table)?;
    note(&req, |n| add_target(n, table.to_string()));
    let table = state.catalog.get_table(caller.principal(), &table).await?;
    Ok(HttpResponse::Ok().json(TableDto::from(table)))
}

/// `GET /api/v1/datasets/{dataset_id}/tables/{table_id}/preview?limit=N`
#[utoipa::path(tag = "catalog", params(("dataset_id" = String, Path, pattern = r"^[A-Za-z0-9_]{1,1024}$", description = "A dataset id (letters, digits, underscores)"), ("table_id" = String, Path, description = "A table id"), crate::dto::PreviewQuery), responses((status = 200, description = "The first rows (nothing billed where the warehouse allows)", body = crate::dto::RowsDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 504, description = "TIMEOUT", body = crate::openapi::ErrorEnvelope)))]
#[get("/datasets/{dataset_id}/tables/{table_id}/preview")]
pub async fn preview(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<PreviewQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::CatalogRead)?;
    let (ds, table) = path.into_inner();
    let table = table_ref(&ds, &table)?;
    note(&req, |n| add_target(n, table.to_string()));
    let limit = q.limit.unwrap_or(state.settings.default_preview_rows);
    let result = state
        .catalog
        .preview(caller.principal(), &table, limit)
        .await?;
    Ok(HttpResponse::Ok().json(RowsDto::from_result(&result)))
}
