//! `GET /health`: liveness plus the state of each dependency.

use actix_web::{HttpResponse, get, web};
use bqai_core::model::{ComponentHealth, HealthStatus, StoreStats};
use bqai_core::ports::Warehouse;
use serde::Serialize;

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

/// The service answers 200 while it can serve queries; `degraded` names what is not ok.
#[utoipa::path(tag = "service", responses((status = 200, description = "Up (`status` is `ok` or `degraded`, naming what is not ok)", body = Health)))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let generator_health = async {
        match &state.llm {
            Some(llm) => llm.health().await,
            None => ComponentHealth::ok(state.ask.generator().kind),
        }
    };
    let (warehouse, cache, history, generator) = futures::join!(
        state.warehouse.health(),
        state.cache.health(),
        state.history.health(),
        generator_health
    );
    let all_ok = [&warehouse, &cache, &history, &generator]
        .iter()
        .all(|c| c.status == HealthStatus::Ok);
    let status = if all_ok {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    HttpResponse::Ok().json(Health {
        status,
        version: state.version.clone(),
        components: Components {
            warehouse,
            cache,
            history,
            generator: GeneratorHealth {
                health: generator,
                model: state.ask.generator().model,
            },
        },
        store: state.store_stats.borrow().clone(),
    })
}
