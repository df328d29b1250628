//! bqai-http: the REST API on actix-web.
//!
//! Routes live in [`routes`], one module per resource; handlers only parse, call a bqai-core
//! use case and map the result. [`error::ApiError`] is the single error type and owns the JSON
//! error envelope. Middleware, outermost first: request id (and access log), security
//! headers, compression, then per-client rate limiting on `/api/v1`.

pub mod dto;
pub mod error;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod state;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::middleware::{Compress, DefaultHeaders, from_fn};
use actix_web::{App, HttpRequest, HttpServer, web};

pub use error::ApiError;
pub use state::{AppState, HttpSettings};

/// Registers every route and the extractor configurations on an actix `App` (or a test
/// service). The caller provides `web::Data<AppState>`.
pub fn configure(settings: &HttpSettings) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let body_limit = settings.body_limit;
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(routes::health::health)
        .service(
            web::scope("/api/v1")
                .wrap(from_fn(rate_limit::middleware))
                .service(routes::catalog::list_datasets)
                .service(routes::catalog::get_dataset)
                .service(routes::catalog::list_tables)
                .service(routes::catalog::get_table)
                .service(routes::catalog::preview)
                .service(routes::query::query)
                .service(routes::ask::ask)
                .service(routes::ask::query_agent)
                .service(routes::admin::invalidate_cache)
                .service(routes::history::list)
                .service(routes::history::get),
        )
        .default_service(web::to(not_found));
    }
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body is larger than {limit} bytes"),
        ),
        // A JSON content type is required: it keeps browsers from sending cross-site "simple"
        // (form or text/plain) requests that would run queries with a visitor's access.
        JsonPayloadError::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(e) => ApiError::invalid(format!("invalid JSON body: {e}")),
        _ => ApiError::invalid("could not read the request body"),
    };
    api.into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let msg = match &err {
        QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
        _ => "invalid query string".to_string(),
    };
    ApiError::invalid(msg).into()
}

fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let msg = match &err {
        PathError::Deserialize(e) => format!("invalid path: {e}"),
        _ => "invalid path".to_string(),
    };
    ApiError::invalid(msg).into()
}

/// Security headers on every response (errors included).
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}

/// Builds the HTTP server on an already bound listener (port 0 in tests), with in-flight
/// requests given `shutdown_timeout` to finish on SIGTERM/SIGINT.
pub fn server(
    listener: TcpListener,
    state: AppState,
    shutdown_timeout: Duration,
) -> std::io::Result<Server> {
    let settings = state.settings.clone();
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .configure(configure(&settings))
            .wrap(Compress::default())
            .wrap(security_headers())
            .wrap(from_fn(request_id::middleware))
    })
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    .listen(listener)?
    .run();
    Ok(server)
}
