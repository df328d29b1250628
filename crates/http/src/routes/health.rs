//! `GET /health` (the state of each dependency), `GET /health/live` (the process answers) and
//! `GET /health/ready` (it can serve queries). The dependency checks are shared by every caller
//! for a moment (`crate::health`): no key is needed here, so the warehouse must not see one
//! call per request.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use bqai_core::model::{ComponentHealth, HealthStatus, StoreStats};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    status: HealthStatus,
    version: String,
    components: Components,
    /// The store's size and rows per table, as its periodic maintenance last measured them
    /// (`null` until the first measurement, a moment after start).
    store: Option<StoreStats>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Components {
    warehouse: ComponentHealth,
    cache: ComponentHealth,
    history: ComponentHealth,
    generator: GeneratorHealth,
}

#[derive(Serialize, utoipa::ToSchema)]
struct GeneratorHealth {
    #[serde(flatten)]
    health: ComponentHealth,
    model: Option<String>,
}

/// `/health/live` and `/health/ready` when they answer 200.
#[derive(Serialize, utoipa::ToSchema)]
struct Probe {
    /// `ok` (live) or `ready`.
    status: &'static str,
}

/// The service answers 200 while it can serve queries; `degraded` names what is not ok. The
/// checks behind it are at most a second old.
#[utoipa::path(tag = "service", responses((status = 200, description = "Up (`status` is `ok` or `degraded`, naming what is not ok)", body = Health)))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let snapshot = state.health.current(&state).await;
    let status = if snapshot.all_ok() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    HttpResponse::Ok().json(Health {
        status,
        version: state.version.clone(),
        components: Components {
            warehouse: snapshot.warehouse.clone(),
            cache: snapshot.cache.clone(),
            history: snapshot.history.clone(),
            generator: GeneratorHealth {
                health: snapshot.generator.clone(),
                model: state.ask.generator().model,
            },
        },
        store: state.store_stats.borrow().clone(),
    })
}

/// Liveness: the process answers (checks nothing else; for a restart decision).
#[utoipa::path(tag = "service", responses((status = 200, description = "The process answers", body = Probe)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Probe { status: "ok" })
}

/// Readiness: the warehouse answers, so queries can be served (a cache or history store that
/// is down degrades the service but does not stop it). 503 `NOT_READY` names what is wrong.
#[utoipa::path(tag = "service", responses((status = 200, description = "Ready to serve queries", body = Probe), (status = 503, description = "NOT_READY: the warehouse does not answer (the message says why)", body = crate::openapi::ErrorEnvelope)))]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let snapshot = state.health.current(&state).await;
    if snapshot.ready() {
        return Ok(HttpResponse::Ok().json(Probe { status: "ready" }));
    }
    let warehouse = &snapshot.warehouse;
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NOT_READY",
        format!(
            "the warehouse ({}) is down: {}",
            warehouse.kind,
            warehouse.detail.as_deref().unwrap_or("no detail")
        ),
    ))
}
