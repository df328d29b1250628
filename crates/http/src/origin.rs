//! Host and Origin checks: a page on another site, in a browser on the same machine (or
//! network), must not reach the API through that browser — whatever the auth mode, and above
//! all with authentication off.
//!
//! - **Host** (DNS rebinding): a hostile page can make its own name resolve to this server's
//!   address; the browser then sends that name in `Host`. Requests are served only when `Host`
//!   is an IP address (a page cannot rebind one), `localhost`, the configured `server.host`, or
//!   one of `server.allowed_hosts` (`"*"` allows any); anything else is 400
//!   `HOST_NOT_ALLOWED`. `/health`, `/health/live`, `/health/ready` and `/metrics` are exempt (load balancers and scrapers reach
//!   them by whatever name).
//! - **Origin** on WebSocket upgrades: browsers send `Origin` but no CORS applies to
//!   WebSockets, so a page on another origin could open `ws://127.0.0.1:8080/api/v1/ws/agent`
//!   and read rows. An upgrade whose `Origin` is neither the server's own (`http(s)://` + the
//!   request's `Host`) nor one of `server.cors_origins` is 403 `ORIGIN_NOT_ALLOWED`. Clients
//!   that send no `Origin` (not browsers) are not affected.

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

use crate::error::ApiError;
use crate::state::{AppState, HttpSettings};

/// The middleware (see the module docs).
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
    let settings = &state.settings;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let refusal = if matches!(
        req.path(),
        "/health" | "/health/live" | "/health/ready" | "/metrics"
    ) {
        None
    } else if let Some(host) = host.as_deref().filter(|h| !host_allowed(h, settings)) {
        Some(ApiError::new(
            StatusCode::BAD_REQUEST,
            "HOST_NOT_ALLOWED",
            format!(
                "this server does not answer to the name {:?}: add it to server.allowed_hosts",
                truncate(host, 100)
            ),
        ))
    } else if is_upgrade(&req)
        && let Some(origin) = req.headers().get(header::ORIGIN)
        && !origin_allowed(origin.to_str().unwrap_or(""), host.as_deref(), settings)
    {
        Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "ORIGIN_NOT_ALLOWED",
            "WebSocket connections from this page's origin are not allowed: add the origin to \
             server.cors_origins",
        ))
    } else {
        None
    };
    match refusal {
        Some(e) => {
            let resp = e.error_response();
            Ok(req.into_response(resp).map_into_right_body())
        }
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

fn is_upgrade(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The name part of a `Host` value (`name:port`, `[v6]:port`, `v4:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a request naming `host` is for this server (see the module docs).
pub fn host_allowed(host: &str, settings: &HttpSettings) -> bool {
    let name = host_name(host.trim()).trim_end_matches('.');
    if name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    settings
        .allowed_hosts
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(name))
}

/// Whether a WebSocket upgrade from `origin` may proceed.
pub fn origin_allowed(origin: &str, host: Option<&str>, settings: &HttpSettings) -> bool {
    let origin = origin.trim().trim_end_matches('/');
    if let Some(host) = host {
        let host = host.trim();
        if ["http://", "https://"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")))
        {
            return true;
        }
    }
    settings
        .cors_origins
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(hosts: &[&str], origins: &[&str]) -> HttpSettings {
        HttpSettings {
            allowed_hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
            cors_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            ..HttpSettings::default()
        }
    }

    #[test]
    fn hosts() {
        let s = settings(&["bqai.internal"], &[]);
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "10.1.2.3",
            "localhost:8080",
            "LOCALHOST",
            "bqai.internal:443",
            "bqai.internal.",
        ] {
            assert!(host_allowed(ok, &s), "{ok}");
        }
        for bad in [
            "evil.test:8080",
            "127.0.0.1.evil.test",
            "bqai.internal.evil",
            "",
        ] {
            assert!(!host_allowed(bad, &s), "{bad}");
        }
        assert!(host_allowed("anything.example", &settings(&["*"], &[])));
    }

    #[test]
    fn origins() {
        let s = settings(&[], &["https://app.example.com"]);
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed("http://127.0.0.1:8080", host, &s));
        assert!(origin_allowed("https://app.example.com/", host, &s));
        assert!(!origin_allowed("http://127.0.0.1:9999", host, &s));
        assert!(!origin_allowed("http://evil.test", host, &s));
        assert!(!origin_allowed("null", host, &s));
        assert!(origin_allowed(
            "http://evil.test",
            host,
            &settings(&[], &["*"])
        ));
    }
}
