//! Request ids: every request gets one (a caller's well-formed `X-Request-Id` is kept, else a
//! new UUIDv7), it is echoed in the `X-Request-Id` response header, put in every error body,
//! and attached to the request's log line (with the history id of the query it ran, if any).
//! An ask's answer carries the same id as its `request_id`.
//!
//! The same middleware opens the request's span (the root of its trace, continuing a caller's
//! `traceparent`; see [`crate::trace_context`]) and writes the one log line per request:
//! request id, trace id, principal, route template, status and duration.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// The response (and accepted request) header.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The id of a request, stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The history id of the query a request ran, for its log line.
#[derive(Debug, Clone)]
struct QueryId(String);

/// Names the query `req` ran (its history id) in the request's log line.
pub fn note_query_id(req: &actix_web::HttpRequest, query_id: &str) {
    req.extensions_mut().insert(QueryId(query_id.to_owned()));
}

/// Paths of health probes and metric scrapes (untraced).
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/health/live" | "/health/ready" | "/metrics"
    )
}

fn accept_incoming(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    ok.then(|| s.to_string())
}

/// Middleware: assigns the id, runs the rest of the chain with it in scope (so errors built
/// anywhere below can include it), logs the request, and sets the response header.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(accept_incoming)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_string();
    let started = Instant::now();

    // Handlers and the middleware below turn their errors into responses inside this scope,
    // so error bodies carry the id. (Holding a clone of the request here is not an option:
    // actix needs the request uniquely owned while routing.)
    let caller = crate::trace_context::from_headers(req.headers());
    // Probes and scrapes open no span: every load balancer and Prometheus sends them every
    // few seconds, and a trace of one says nothing about anybody's request. A request that is
    // not sampled opens none either (nor do its stages: see `bqai_trace::root_span`).
    let span = if is_probe(&path) {
        tracing::Span::none()
    } else {
        crate::trace_context::root_span(&caller, || {
            tracing::info_span!(
            target: "bqai_http",
            "HTTP request",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            "http.request.method" = %method,
            "url.path" = %path,
            "http.route" = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
            "enduser.id" = tracing::field::Empty,
            "bqai.request_id" = %id,
            )
        })
    };
    // With traces off, or the request not sampled, the span is disabled: nothing to
    // continue, and the trace id is the caller's, if any.
    let traced = !span.is_disabled();
    if traced {
        crate::trace_context::continue_trace(&span, caller.clone());
    }
    let trace_id = crate::trace_context::trace_id(&span, &caller);
    let mut res = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    // What follows is for the span and the log line: skipped when neither wants it.
    let logged = tracing::enabled!(tracing::Level::INFO);
    if !traced && !logged {
        return Ok(res);
    }
    let query_id = res
        .request()
        .extensions()
        .get::<QueryId>()
        .map(|q| q.0.clone());
    let route = res.request().match_pattern();
    let principal = res
        .request()
        .extensions()
        .get::<bqai_core::model::Principal>()
        .and_then(|p| p.id.clone());
    let status = res.status().as_u16();
    if traced {
        let route = route.as_deref().unwrap_or("unmatched");
        crate::trace_context::rename(&span, format!("{method} {route}"));
        span.record("http.route", route);
        span.record("http.response.status_code", status);
        if let Some(p) = &principal {
            span.record("enduser.id", p.as_str());
        }
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    tracing::info!(
        request_id = %id,
        trace_id = trace_id.as_deref(),
        method = %method,
        path = %path,
        route = route.as_deref(),
        principal = principal.as_deref(),
        query_id = query_id.as_deref(),
        status,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(res)
}
