//! `GET /metrics`: the Prometheus text exposition of the server's
//! [`Metrics`](crate::metrics::Metrics).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, get, web};

use crate::state::AppState;

/// The content type of Prometheus' text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Marks the listener of `telemetry.metrics_addr`, the only one serving `/metrics` when set.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener;

/// Prometheus metrics of this server (no key needed, like `/health`). With
/// `telemetry.metrics_addr` set they are served there, and here the route is not found.
#[utoipa::path(
    tag = "service",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 404, description = "NOT_FOUND: `telemetry.metrics_addr` serves the metrics on a listener of their own", body = crate::openapi::ErrorEnvelope)
    )
)]
#[get("/metrics")]
pub async fn prometheus(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::error::ApiError> {
    if !state.settings.metrics_on_api && req.app_data::<web::Data<MetricsListener>>().is_none() {
        return Err(crate::error::ApiError::not_found(
            "no route for GET /metrics",
        ));
    }
    if let Some(stats) = state.store_stats.borrow().as_ref() {
        state.metrics.observe_store(stats);
    }
    // The same cached checks as /health (at most one round per second whoever asks).
    let health = state.health.current(&state).await;
    state.metrics.observe_health(&health);
    state.metrics.observe_websockets(
        state.ws_connections.open(),
        state.ws_connections.asks_in_flight(),
    );
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, TEXT_FORMAT))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(state.metrics.render()))
}
