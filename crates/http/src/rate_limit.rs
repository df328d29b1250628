//! Per-client rate limiting of `/api/v1/*` through the [`bqai_core::ports::RateLimiter`] port.
//!
//! An authenticated caller is limited per principal (`key:<id>`), at its own
//! `rate_limit_per_minute` or the server default, so two keys never share a budget. An
//! anonymous caller (authentication off) is identified by its IP address: the peer address,
//! or — only when the peer is one of the configured trusted proxies — the right-most address
//! in `X-Forwarded-For` that is not itself a trusted proxy (so a client cannot pick its own
//! identity by sending the header). Asks weigh more than
//! queries, queries more than catalog reads. Every limited response
//! carries `X-RateLimit-Limit` and `X-RateLimit-Remaining`; a refusal is 429 `RATE_LIMITED`
//! with `Retry-After`. If the limiter itself fails, the request is let through and the
//! failure logged: limits protect the service, they must not take it down.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use bqai_core::model::Principal;

use crate::error::ApiError;
use crate::state::AppState;

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

fn weight(req: &ServiceRequest, state: &AppState) -> u32 {
    let path = crate::auth::routed_path(req);
    if req.method() != Method::POST {
        1
    } else if path.ends_with("/ask") || path.ends_with("/query-agent") {
        state.settings.ask_weight.max(1)
    } else if path.ends_with("/query") || path.ends_with("/rerun") || path.ends_with("/exports") {
        state.settings.query_weight.max(1)
    } else {
        1
    }
}

/// The client's IP address as described in the module docs.
pub(crate) fn client_ip(req: &ServiceRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    client_ip_of(req.peer_addr().map(|a| a.ip()), req.headers(), trusted)
}

/// [`client_ip`] from the parts a handler has (a WebSocket keeps it for its asks).
pub(crate) fn client_ip_of(
    peer: Option<IpAddr>,
    headers: &actix_web::http::header::HeaderMap,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    // Right to left: each hop appends the address it saw; the first one not ours is the client.
    Some(
        forwarded
            .iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .copied()
            .unwrap_or(peer),
    )
}

/// The limiter key and the per-minute limit of a caller: its principal (`key:<id>`, at its
/// own limit or the server's) or, anonymous, its client address (`ip:<addr>`).
pub(crate) fn budget(
    principal: Option<&Principal>,
    client: Option<IpAddr>,
    settings: &crate::state::HttpSettings,
) -> (String, u32) {
    match principal.and_then(|p| p.id.as_ref().map(|id| (id, p.rate_limit_per_minute))) {
        Some((id, own)) => (
            format!("key:{id}"),
            own.unwrap_or(settings.requests_per_minute),
        ),
        None => {
            let client = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
            (format!("ip:{client}"), settings.requests_per_minute)
        }
    }
}

/// Charges `weight` units of one call made outside an HTTP request of its own (a WebSocket
/// ask, an MCP call) against the caller's budget: `RATE_LIMITED` when it is spent. Fails open
/// like the middleware when the limiter itself fails.
pub(crate) async fn charge(
    state: &AppState,
    principal: &Principal,
    client: Option<IpAddr>,
    weight: u32,
) -> Result<(), ApiError> {
    let (key, limit) = budget(Some(principal), client, &state.settings);
    if limit == 0 {
        return Ok(());
    }
    match state.rate_limiter.check(&key, weight.max(1), limit).await {
        Ok(d) if !d.allowed => Err(ApiError::rate_limited(
            d.retry_after.unwrap_or(Duration::from_secs(1)),
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter failed; call allowed");
            Ok(())
        }
    }
}

/// The middleware.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let (key, limit) = budget(
        req.extensions().get::<Principal>(),
        client_ip(&req, &state.settings.trusted_proxies),
        &state.settings,
    );
    if limit == 0 {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let decision = match state
        .rate_limiter
        .check(&key, weight(&req, &state), limit)
        .await
    {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter failed; request allowed");
            None
        }
    };
    let mut res = match decision {
        Some(d) if !d.allowed => {
            let retry = d.retry_after.unwrap_or(Duration::from_secs(1));
            let resp = ApiError::rate_limited(retry).error_response();
            req.into_response(resp).map_into_right_body()
        }
        _ => next.call(req).await?.map_into_left_body(),
    };
    if let Some(d) = decision {
        let headers = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&d.limit.to_string()) {
            headers.insert(LIMIT, v);
        }
        if let Ok(v) = HeaderValue::from_str(&d.remaining.to_string()) {
            headers.insert(REMAINING, v);
        }
    }
    Ok(res)
}
