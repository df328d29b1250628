//! `GET /metrics`: the Prometheus text exposition of the server's
//! [`Metrics`](crate::metrics::Metrics).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// The content type of Prometheus' text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics of this server (no key needed, like `/health`).
#[utoipa::path(
    tag = "service",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    if let Some(stats) = state.store_stats.borrow().as_ref() {
        state.metrics.observe_store(stats);
    }
    // The same cached checks as /health (at most one round per second whoever asks).
    let health = state.health.current(&state).await;
    state.metrics.observe_health(&health);
    state.metrics.observe_runtime(
        state.ws_connections.open(),
        state.ws_connections.asks_in_flight(),
        state.history_queue.as_ref().map(|probe| probe()),
    );
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, TEXT_FORMAT))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(state.metrics.render())
}
