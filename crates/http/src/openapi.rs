//! The OpenAPI 3.1 description of the API, generated from the code, and the docs page.
//!
//! - Every route is registered through [`crate::routes_documented`] with utoipa-actix-web's
//!   `service(...)`, which only takes handlers annotated with `#[utoipa::path]`: a route
//!   cannot exist without its operation, and the path and method come from the actix macro
//!   itself. Request and response shapes are the DTOs' own `ToSchema` derives (and those of the
//!   few core types sent as they are, behind bqai-core's `openapi` feature).
//! - What every `/api/v1` operation shares — the error envelope and the statuses any call can
//!   get (401, 403, 429, 500, 503), the request-id and rate-limit headers, the security
//!   schemes — is added once by [`Common`], not repeated on each handler.
//! - The WebSocket protocol of `/api/v1/ws/agent` is described in prose on its operation and
//!   as schemas (`WsClientMessage`, `WsServerEvent`).
//! - `GET /openapi.json` serves the spec; `GET /docs/` is Swagger UI, whose files are vendored
//!   in the binary (`utoipa-swagger-ui`'s `vendored` feature: nothing is fetched from a CDN,
//!   at build or at run time) and served under a strict Content-Security-Policy.

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
};
use actix_web::{HttpResponse, ResponseError, get, web};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Spec, Ref, RefOr, Response, ResponseBuilder,
};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_actix_web::AppExt;

/// The JSON error envelope every failure answers with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error inside the envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code; see the list in the API description.
    pub code: ErrorCode,
    /// A message for people; safe to show (never internal causes).
    pub message: String,
    /// The request id (also in `X-Request-Id`): the server log has the details under it.
    pub request_id: String,
}

/// Every error code a REST call can answer with.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ErrorCode {
    InvalidRequest,
    SqlRejected,
    InvalidQuery,
    CostLimitExceeded,
    HostNotAllowed,
    Unauthenticated,
    Forbidden,
    OriginNotAllowed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    AuthDisabled,
    AuditDisabled,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    QuotaExceeded,
    CannotAnswer,
    GenerationFailed,
    LlmBadResponse,
    LlmUnavailable,
    LlmOverloaded,
    LlmRateLimited,
    LlmAuthFailed,
    LlmBusy,
    LlmTimeout,
    Unavailable,
    QueueFull,
    NotReady,
    TooManyConnections,
    ExportLimitExceeded,
    Timeout,
    Internal,
}

const DESCRIPTION: &str = "\
Ask questions of a data warehouse in plain language, or run SQL, behind a read-only guard, \
byte caps checked before anything runs, API keys with roles, limits and quotas.

**Authentication**: `X-API-Key: bqai_<id>_<secret>` or `Authorization: Bearer <key or OIDC \
token>`. With `[auth] mode = \"off\"` (the default, loopback only) no credential is needed. \
Browsers open the WebSocket with `?ticket=` from `POST /api/v1/ws-ticket`.

**Errors** are always `{\"error\": {\"code\", \"message\", \"request_id\"}}` with one of the \
codes of the `ErrorCode` schema; a caller's mistake is a 4xx, never a 5xx. `Retry-After` \
comes with 429 and 503.

**Rate limits**: `/api/v1` answers carry `X-RateLimit-Limit` and `X-RateLimit-Remaining`; \
an ask weighs 10 requests, a query 5, everything else 1.

The human-readable reference is docs/API.md in the repository; this description is \
generated from the code and checked against the routes and real responses by the tests.";

/// The parts of the spec that are not derived from a handler.
#[derive(OpenApi)]
#[openapi(
    info(title = "bqai", description = DESCRIPTION, license(name = "Apache-2.0")),
    components(schemas(
        ErrorEnvelope,
        crate::routes::ws::WsClientMessage,
        crate::routes::ws::WsServerEvent
    )),
    modifiers(&Common),
    tags(
        (name = "service", description = "Health and this description"),
        (name = "catalog", description = "Datasets, tables, schemas and previews in the caller's scope"),
        (name = "query", description = "SQL behind the guard, the dry run and the caps"),
        (name = "exports", description = "Whole results as files (CSV, NDJSON, JSON, Excel, Parquet), streamed"),
        (name = "ask", description = "Questions in plain language: question → SQL → rows"),
        (name = "conversations", description = "Multi-turn conversations"),
        (name = "history", description = "Every query and ask, with its outcome"),
        (name = "analytics", description = "What people ask, what it costs, what is slow, what fails: computed from the history"),
        (name = "admin", description = "Keys, audit log and cache (admin role)"),
        (name = "websocket", description = "The streaming conversational API"),
        (name = "mcp", description = "The Model Context Protocol server (streamable HTTP): bqai's tools, resources and prompts for AI agents")
    )
)]
struct ApiDoc;

/// The statuses, headers and security every `/api/v1` operation shares.
struct Common;

fn error_response(description: &str, headers: &[(&str, &str)]) -> Response {
    let mut b = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
            .build(),
    );
    for (name, description) in headers {
        b = b.header(*name, header(description));
    }
    b.build()
}

fn header(description: &str) -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        ))
        .description(Some(description))
        .build()
}

const REQUEST_ID: (&str, &str) = (
    "X-Request-Id",
    "The request id (the caller's own if it sent a valid one); errors carry it too",
);
const RETRY_AFTER: (&str, &str) = ("Retry-After", "Seconds to wait before trying again");
const RATE_LIMIT: [(&str, &str); 2] = [
    (
        "X-RateLimit-Limit",
        "Requests the caller may make per minute",
    ),
    (
        "X-RateLimit-Remaining",
        "Requests left in the current window",
    ),
];

impl Common {
    fn decorate(path: &str, op: &mut Operation) {
        // `/mcp` is authenticated like `/api/v1` (its rate limit is charged per tool call, so
        // its answers carry no rate-limit headers).
        let mcp = path == "/mcp";
        let api = path.starts_with("/api/v1/") || mcp;
        // A signed export link is its own credential: no key, so no 401.
        let signed_link = api && path.ends_with("/download");
        let responses = &mut op.responses.responses;
        let mut add = |status: &str, response: Response| {
            responses
                .entry(status.to_owned())
                .or_insert(RefOr::T(response));
        };
        add(
            "400",
            error_response(
                "INVALID_REQUEST (bad body, query string, path or header) or HOST_NOT_ALLOWED",
                &[REQUEST_ID],
            ),
        );
        if api && !signed_link {
            add(
                "401",
                error_response(
                    "UNAUTHENTICATED: no credential, or an unknown, revoked or expired one",
                    &[REQUEST_ID, ("WWW-Authenticate", "`Bearer`")],
                ),
            );
            add(
                "403",
                error_response(
                    "FORBIDDEN: the role may not do this, or a dataset is outside the caller's scope",
                    &[REQUEST_ID],
                ),
            );
            add(
                "429",
                error_response(
                    "RATE_LIMITED (the key's rate limit, or too many failed authentications from \
                     this address) or QUOTA_EXCEEDED",
                    &[REQUEST_ID, RETRY_AFTER, RATE_LIMIT[0], RATE_LIMIT[1]],
                ),
            );
        }
        add(
            "500",
            error_response(
                "INTERNAL: a bug; the log has the cause under the request id",
                &[REQUEST_ID],
            ),
        );
        if api {
            add(
                "503",
                error_response(
                    "UNAVAILABLE: a dependency (warehouse, key store, language model) is down; \
                     QUEUE_FULL: the query queue has no room, or the query waited in it past \
                     `query.queue_timeout_ms` (nothing ran)",
                    &[REQUEST_ID, RETRY_AFTER],
                ),
            );
        }
        // Every answer carries its request id; /api/v1 answers the rate-limit headers too.
        for (status, response) in op.responses.responses.iter_mut() {
            if let RefOr::T(response) = response {
                response
                    .headers
                    .entry(REQUEST_ID.0.to_owned())
                    .or_insert_with(|| RefOr::T(header(REQUEST_ID.1)));
                if api && !mcp && status.starts_with('2') {
                    for (name, description) in RATE_LIMIT {
                        response
                            .headers
                            .entry(name.to_owned())
                            .or_insert_with(|| RefOr::T(header(description)));
                    }
                }
            }
        }
        if signed_link {
            op.security = Some(vec![
                utoipa::openapi::security::SecurityRequirement::default(),
            ]);
        } else if api {
            op.security = Some(vec![
                utoipa::openapi::security::SecurityRequirement::new(
                    "api_key",
                    Vec::<String>::new(),
                ),
                utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]);
        }
    }
}

impl Modify for Common {
    fn modify(&self, spec: &mut Spec) {
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key, `bqai_<id>_<secret>` (`bqai keys create` or POST /api/v1/admin/keys)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, or with `auth.mode = \"api_key+oidc\"` a JWT of the \
                         configured OIDC issuer",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds what [`Common`] knows to every operation of a spec whose paths are collected.
fn finish(mut spec: Spec) -> Spec {
    for (path, item) in spec.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            Common::decorate(path, op);
        }
    }
    spec
}

/// The API description: the paths of every documented route plus [`ApiDoc`].
pub fn spec() -> &'static Spec {
    static SPEC: LazyLock<Spec> = LazyLock::new(|| {
        let (_, paths) = actix_web::App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(crate::routes_documented)
            .split_for_parts();
        let mut spec = finish(paths);
        spec.info.version = env!("CARGO_PKG_VERSION").to_owned();
        spec
    });
    &SPEC
}

/// The methods the spec documents for the route `path` falls under (`None`: no such route).
/// Lets a known path answer a wrong method with 405 and `Allow` instead of 404.
pub fn allowed_methods(path: &str) -> Option<Vec<&'static str>> {
    let segments: Vec<&str> = path.split('/').collect();
    spec().paths.paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') {
                    !s.is_empty()
                } else {
                    t == s
                }
            });
        matches.then(|| {
            [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(m, on)| on.then_some(m))
            .collect()
        })
    })
}

/// The spec as served, serialized once.
fn spec_json() -> &'static str {
    static JSON: LazyLock<String> =
        LazyLock::new(|| serde_json::to_string(spec()).unwrap_or_else(|_| "{}".to_owned()));
    &JSON
}

/// The OpenAPI description of this API (no key needed).
#[utoipa::path(
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        // Changes only with the binary.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .body(spec_json())
}

/// The policy of the docs page: Swagger UI's own files only, calls back to this origin only,
/// no inline script. Swagger UI's bundle applies one inline style, allowed by its hash alone
/// (not `'unsafe-inline'`); a new vendored version with another one fails the browser test
/// (tests/e2e/docs.test.mjs) instead of silently loosening the policy.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
     'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; img-src 'self' data:; \
     font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

static SWAGGER_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new(["/openapi.json"])
            // The default validator is a public web service: never called from here.
            .validator_url("none")
            .try_it_out_enabled(true)
            .persist_authorization(false)
            .display_request_duration(true),
    )
});

/// Registers `/docs` (a redirect) and `/docs/{file}`.
pub fn configure_docs(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/docs",
        web::get().to(|| async {
            HttpResponse::MovedPermanently()
                .insert_header((LOCATION, "/docs/"))
                .finish()
        }),
    )
    .route("/docs/{file:.*}", web::get().to(docs_file));
}

async fn docs_file(file: web::Path<String>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&file, Arc::clone(&SWAGGER_CONFIG)) {
        Ok(Some(f)) => {
            let mut resp = HttpResponse::Ok();
            resp.insert_header((CONTENT_TYPE, f.content_type))
                .insert_header((CONTENT_SECURITY_POLICY, DOCS_CSP))
                .insert_header((CACHE_CONTROL, "no-cache"));
            if f.gzpipped {
                resp.insert_header((CONTENT_ENCODING, "gzip"));
            }
            resp.body(f.bytes.into_owned())
        }
        Ok(None) => {
            crate::error::ApiError::not_found(format!("no docs file {file:?}")).error_response()
        }
        Err(_) => crate::error::ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the docs page could not be built",
        )
        .error_response(),
    }
}
