//! Operator endpoints. `DELETE /api/v1/admin/cache?dataset_id=…` drops everything cached from
//! one dataset (its schemas, query results and question-cache SQL), e.g. after its tables
//! changed. Authentication and the admin role guard these once keys exist (see the auth issue);
//! until then the server only listens on loopback.

use actix_web::{HttpResponse, delete, web};
use serde::Deserialize;

use super::dataset_id;
use crate::error::ApiError;
use crate::state::AppState;

/// `?dataset_id=`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateQuery {
    /// The dataset whose entries to drop.
    pub dataset_id: String,
}

/// Drops the cache entries of one dataset.
#[delete("/admin/cache")]
pub async fn invalidate_cache(
    state: web::Data<AppState>,
    q: web::Query<InvalidateQuery>,
) -> Result<HttpResponse, ApiError> {
    let dataset = dataset_id(&q.dataset_id)?;
    let removed = state.warehouse.invalidate_dataset(&dataset).await?;
    tracing::info!(dataset = %dataset, removed, "cache invalidated by an operator");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "dataset_id": dataset,
        "removed": removed,
    })))
}
