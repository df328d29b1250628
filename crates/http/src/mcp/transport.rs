//! The streamable HTTP transport of MCP at `/mcp`, on the API's own actix listener.
//!
//! rmcp's server ([`StreamableHttpService`]) is a tower service over `http` 1 types, while
//! actix-web 4 speaks `http` 0.2; the handlers here translate at that boundary — method, URI,
//! headers and body in; status, headers and a streamed body (JSON, or server-sent events) out —
//! and attach the [`AppState`] and the authenticated [`McpCaller`] to the request, where the
//! handler ([`super::BqaiMcp`]) reads them. One service is shared by every actix worker, so a
//! session opened on one worker is found by the next request on any other.
//!
//! Authentication is the `/api/v1` middleware's (the route is wrapped in it): a request
//! without a valid credential never reaches rmcp. Host and Origin are checked by
//! [`crate::origin`] like every route, so rmcp's own loopback-only host check is turned off.
//! Sessions live in this replica's memory: behind a load balancer, either route a session's
//! requests to one replica or set `mcp.sessions = false` (every request stands alone).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_ENCODING;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, delete, get, post, web};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::{BqaiMcp, McpCaller};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::request_id::RequestId;
use crate::state::{AppState, HttpSettings};

/// The MCP service of one server, shared by its workers.
#[derive(Clone)]
pub struct McpTransport {
    service: Option<StreamableHttpService<BqaiMcp, LocalSessionManager>>,
}

impl McpTransport {
    /// The transport for `settings` (`None` inside when `mcp.enabled` is off: `/mcp` is 404).
    pub fn new(settings: &HttpSettings) -> Self {
        if !settings.mcp.enabled {
            return Self { service: None };
        }
        let mut config = StreamableHttpServerConfig::default().disable_allowed_hosts();
        config.legacy_session_mode = settings.mcp.sessions;
        // Without sessions a tool's answer is one JSON body: nothing to stream between calls.
        config.json_response = !settings.mcp.sessions;
        config.max_request_body_bytes = settings.body_limit;
        let service = StreamableHttpService::new(
            || Ok(BqaiMcp::per_request()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        Self {
            service: Some(service),
        }
    }

    /// Ends every session and its streams (at shutdown, so open event streams do not hold
    /// the server's graceful stop until its timeout).
    pub fn shutdown(&self) {
        if let Some(s) = &self.service {
            s.config.cancellation_token.cancel();
        }
    }
}

impl std::fmt::Debug for McpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTransport")
            .field("enabled", &self.service.is_some())
            .finish()
    }
}

/// A JSON-RPC message from an MCP client: a request (`initialize`, `tools/list`,
/// `tools/call`, …), a notification or a response.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct JsonRpcMessage {
    /// `2.0`.
    jsonrpc: String,
    /// The method of a request or notification.
    method: Option<String>,
    /// The request id (absent on notifications).
    id: Option<serde_json::Value>,
    /// The method's parameters.
    params: Option<serde_json::Value>,
}

/// Sends one JSON-RPC message to the MCP server (streamable HTTP transport). The answer is
/// one JSON-RPC response (`application/json`) or, with sessions on, a stream of messages
/// ending with it (`text/event-stream`); a notification or response is answered `202`.
/// `initialize` opens a session whose id comes back in `Mcp-Session-Id`; send it on every
/// later request. Authenticated like `/api/v1`; each tool call is charged against the key's
/// rate limit and audited like its REST twin.
#[utoipa::path(
    tag = "mcp",
    request_body(content = inline(JsonRpcMessage), content_type = "application/json"),
    params(
        ("Mcp-Session-Id" = Option<String>, Header, description = "The session, from the answer to `initialize`"),
        ("MCP-Protocol-Version" = Option<String>, Header, description = "The negotiated protocol version"),
    ),
    responses(
        (status = 200, description = "The JSON-RPC response, or a stream of messages ending with it", content(
            (serde_json::Value = "application/json"),
            (String = "text/event-stream"),
        ), headers(("Mcp-Session-Id" = String, description = "After `initialize`: the new session"))),
        (status = 202, description = "A notification or response was accepted"),
        (status = 404, description = "NOT_FOUND: the session ended or never existed (start again with `initialize`), or MCP is off (`mcp.enabled`)", body = crate::openapi::ErrorEnvelope),
        (status = 406, description = "INVALID_REQUEST: `Accept` must list application/json and text/event-stream", body = crate::openapi::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE: send the message as JSON", body = crate::openapi::ErrorEnvelope),
    )
)]
#[post("")]
pub async fn message(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    forward(&state, caller, &req, body).await
}

/// Opens the session's stream of server-initiated messages (server-sent events).
#[utoipa::path(
    tag = "mcp",
    params(("Mcp-Session-Id" = String, Header, description = "The session, from the answer to `initialize`")),
    responses(
        (status = 200, description = "Server-sent events, until the session ends", content_type = "text/event-stream", body = String),
        (status = 400, description = "INVALID_REQUEST: no `Mcp-Session-Id`", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: the session ended or never existed, or MCP is off", body = crate::openapi::ErrorEnvelope),
        (status = 405, description = "METHOD_NOT_ALLOWED: sessions are off (`mcp.sessions = false`)", body = crate::openapi::ErrorEnvelope),
        (status = 406, description = "INVALID_REQUEST: `Accept` must list text/event-stream", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "CONFLICT: the session's stream is already open", body = crate::openapi::ErrorEnvelope),
    )
)]
#[get("")]
pub async fn stream(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    forward(&state, caller, &req, web::Bytes::new()).await
}

/// Ends a session.
#[utoipa::path(
    tag = "mcp",
    params(("Mcp-Session-Id" = String, Header, description = "The session to end")),
    responses(
        (status = 204, description = "The session is over"),
        (status = 400, description = "INVALID_REQUEST: no `Mcp-Session-Id`", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: the session ended or never existed, or MCP is off", body = crate::openapi::ErrorEnvelope),
        (status = 405, description = "METHOD_NOT_ALLOWED: sessions are off (`mcp.sessions = false`)", body = crate::openapi::ErrorEnvelope),
    )
)]
#[delete("")]
pub async fn end(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    forward(&state, caller, &req, web::Bytes::new()).await
}

/// Hands the request to rmcp and its answer back to actix.
async fn forward(
    state: &web::Data<AppState>,
    caller: Caller,
    req: &HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(service) = &state.mcp.service else {
        return Err(ApiError::not_found(
            "MCP is off on this server (mcp.enabled = false)",
        ));
    };
    let mut request = http::Request::builder()
        .method(req.method().as_str())
        .uri(req.uri().to_string());
    for (name, value) in req.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    let mut request = request
        .body(http_body_util::Full::new(body))
        .map_err(|e| ApiError::invalid(format!("the request could not be read: {e}")))?;
    let info = req.connection_info().clone();
    request.extensions_mut().insert(state.clone());
    request.extensions_mut().insert(McpCaller {
        principal: caller.0,
        client: crate::rate_limit::client_ip_of(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            &state.settings.trusted_proxies,
        ),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        base_url: format!("{}://{}", info.scheme(), info.host()),
    });

    let (parts, body) = service.handle(request).await.into_parts();
    let mut status =
        StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // rmcp answers an ended session 202; the session is closed by then, and clients (the
    // Python SDK) take only 200 or 204 as success, so it is said as 204.
    if req.method() == actix_web::http::Method::DELETE && status == StatusCode::ACCEPTED {
        status = StatusCode::NO_CONTENT;
    }
    let mut response = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        response.append_header((name.as_str(), value.as_bytes()));
    }
    // Compression would hold server-sent events back until a compressor block fills.
    response.insert_header((CONTENT_ENCODING, "identity"));
    Ok(response.streaming(http_body_util::BodyDataStream::new(body)))
}
