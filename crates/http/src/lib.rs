//! bqai-http: the REST API on actix-web.
//!
//! Routes live in [`routes`], one module per resource; handlers only parse, call a bqai-core
//! use case and map the result. [`error::ApiError`] is the single error type and owns the JSON
//! error envelope. Middleware, outermost first: security headers, request id (and access
//! log), the envelope for plain-text errors of the middleware inside it
//! ([`error::envelope_middleware`]), CORS (so preflights never need a key and every answer,
//! errors included, carries the CORS headers), compression, then the Host and Origin checks
//! ([`origin`]), then on `/api/v1` authentication with the audit record ([`auth`]), then per-principal rate
//! limiting ([`rate_limit`]).

pub mod auth;
pub mod auth_failures;
pub mod dto;
pub mod error;
pub mod health;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod trace_context;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::middleware::{Compress, Condition, DefaultHeaders, from_fn};
use actix_web::{App, HttpRequest, HttpServer, web};

pub use error::ApiError;
pub use metrics::Metrics;
pub use state::{AppState, HttpSettings, WsConnections, WsSettings};

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
        .app_data(web::PathConfig::default().error_handler(path_error));
        routes_documented(&mut utoipa_actix_web::service_config::ServiceConfig::new(
            cfg,
        ));
        cfg.configure(routes::page::configure)
            .configure(openapi::configure_docs)
            .default_service(web::to(not_found));
    }
}

/// The API's routes: every one registered with `service(handler)` on utoipa's wrappers, which
/// only take handlers annotated with `#[utoipa::path]`, so each is in the OpenAPI spec
/// ([`openapi::spec`] collects them from here). Pages (`/`, `/assets/*`, `/docs/*`) are not
/// API and are registered in [`configure`].
pub fn routes_documented(cfg: &mut utoipa_actix_web::service_config::ServiceConfig<'_>) {
    cfg.service(routes::health::health)
        .service(routes::health::live)
        .service(routes::health::ready)
        .service(routes::metrics::prometheus)
        .service(openapi::openapi_json)
        .service(
            utoipa_actix_web::scope("/mcp")
                .wrap(from_fn(auth::middleware))
                .service(mcp::transport::message)
                .service(mcp::transport::stream)
                .service(mcp::transport::end),
        )
        .service(
            utoipa_actix_web::scope("/api/v1")
                .wrap(from_fn(rate_limit::middleware))
                .wrap(from_fn(auth::middleware))
                .service(routes::catalog::list_datasets)
                .service(routes::catalog::get_dataset)
                .service(routes::catalog::list_tables)
                .service(routes::catalog::get_table)
                .service(routes::catalog::preview)
                .service(routes::query::query)
                .service(routes::query::results)
                .service(routes::exports::create)
                .service(routes::export_jobs::list)
                .service(routes::export_jobs::get)
                .service(routes::export_jobs::remove)
                .service(routes::export_jobs::download)
                .service(routes::ask::ask)
                .service(routes::ask::query_agent)
                .service(routes::conversations::create)
                .service(routes::conversations::get)
                .service(routes::conversations::remove)
                .service(routes::admin::invalidate_cache)
                .service(routes::admin::create_key)
                .service(routes::admin::list_keys)
                .service(routes::admin::get_key)
                .service(routes::admin::update_key)
                .service(routes::admin::revoke_key)
                .service(routes::admin::list_audit)
                .service(routes::ticket::issue)
                .service(routes::ws::agent)
                .service(routes::history::list)
                .service(routes::history::get)
                .service(routes::history::rerun)
                .service(routes::analytics::summary)
                .service(routes::analytics::popular)
                .service(routes::analytics::slowest)
                .service(routes::analytics::expensive)
                .service(routes::analytics::errors)
                .service(routes::analytics::tables),
        );
}

/// No route matched: 405 with `Allow` when the path is an API route taking other methods
/// (HEAD of a GET route is answered by actix itself), else 404.
async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    if let Some(methods) = openapi::allowed_methods(req.path())
        && !methods.is_empty()
    {
        let allow = methods.join(", ");
        let mut resp = actix_web::ResponseError::error_response(&ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{} takes {allow}, not {}", req.path(), req.method()),
        ));
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
        }
        return Ok(resp);
    }
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

/// CORS for the configured origins. Preflights are answered here, before authentication;
/// with no origins configured no CORS headers are sent (browsers then allow same-origin
/// calls only).
pub fn cors(settings: &HttpSettings) -> Condition<actix_cors::Cors> {
    // A request from an origin not on the list is served without CORS headers (the browser
    // then withholds the answer from the page), not refused: same-origin pages such as the
    // chat page send an Origin header too.
    let mut cors = actix_cors::Cors::default().block_on_origin_mismatch(false);
    if settings.cors_origins.is_empty() {
        return Condition::new(false, cors);
    }
    if settings.cors_origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for origin in &settings.cors_origins {
            cors = cors.allowed_origin(origin);
        }
    }
    let cors = cors
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static("x-api-key"),
            request_id::HEADER,
        ])
        .expose_headers([
            request_id::HEADER,
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderName::from_static("x-ratelimit-limit"),
            actix_web::http::header::HeaderName::from_static("x-ratelimit-remaining"),
        ])
        .max_age(600);
    Condition::new(true, cors)
}

/// Builds the HTTP server on an already bound listener (port 0 in tests), with in-flight
/// requests given `shutdown_timeout` to finish on SIGTERM/SIGINT.
pub fn server(
    listener: TcpListener,
    state: web::Data<AppState>,
    shutdown_timeout: Duration,
) -> std::io::Result<Server> {
    let settings = state.settings.clone();
    if let Some(log) = &state.audit {
        auth_failures::spawn_sweeper(
            &state.auth_failures,
            Arc::clone(log),
            Duration::from_secs(5),
        );
    }
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(configure(&settings))
            .wrap(from_fn(origin::middleware))
            .wrap(Compress::default())
            .wrap(cors(&settings))
            .wrap(from_fn(error::envelope_middleware))
            .wrap(from_fn(request_id::middleware))
            .wrap(from_fn(metrics::middleware))
            .wrap(security_headers())
    })
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    // The WebSocket streams many small events; Nagle's algorithm would hold each behind the
    // client's delayed ACK (tens of milliseconds).
    .tcp_nodelay(true)
    .listen(listener)?
    .run();
    Ok(server)
}

/// A server of `GET /metrics` alone on `listener` (`telemetry.metrics_addr`), over the
/// state of the API server (the same registry): no API, no authentication, nothing else to
/// reach on that port.
pub fn metrics_server(
    listener: TcpListener,
    state: web::Data<AppState>,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(routes::metrics::MetricsListener))
            .service(routes::metrics::prometheus)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}
