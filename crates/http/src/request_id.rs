//! Request ids: every request gets one (a caller's well-formed `X-Request-Id` is kept, else a
//! new UUIDv7), it is echoed in the `X-Request-Id` response header, put in every error body,
//! and attached to the request's log line (with the history id of the query it ran, if any).
//! An ask's answer carries the same id as its `request_id`.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;

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
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, v);
    }
    let query_id = res
        .request()
        .extensions()
        .get::<QueryId>()
        .map(|q| q.0.clone());
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        query_id = query_id.as_deref(),
        status = res.status().as_u16(),
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(res)
}
