//! `ApiError`: the one HTTP error type. It maps core errors to a status code and the JSON
//! envelope `{"error": {"code", "message", "request_id"}}`.
//!
//! Only safe messages reach the body; the full cause chain of a server-side error is logged
//! (with the request id, so an operator can find it) and replaced by a generic message.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use bqai_core::Error as CoreError;
use serde::Serialize;

use crate::request_id;

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
    /// Kept for the log line only.
    cause: Option<String>,
}

impl ApiError {
    /// An error with an explicit status, code and safe message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    /// 400 `INVALID_REQUEST`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 429 `RATE_LIMITED` with a `Retry-After`.
    pub fn rate_limited(retry_after: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!(
                "too many requests: retry after {} s",
                retry_after.as_secs().max(1)
            ),
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// The same error, telling the client when to try again (`Retry-After`).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The safe message (what a client is told).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// When the client may try again, if the error says (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status this error answers with (the WebSocket API reports it in audit events).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Logs a server-side error with its cause (which never reaches the client), for calls
    /// answered outside an HTTP response of their own (a WebSocket ask, an MCP call).
    pub(crate) fn log_server_error(&self, what: &str) {
        if self.status.is_server_error() {
            tracing::error!(
                code = self.code,
                cause = self.cause.as_deref().unwrap_or(""),
                "{what}"
            );
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// Walks an error's `source()` chain into one line for the log.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

impl From<CoreError> for ApiError {
    fn from(err: CoreError) -> Self {
        let code = err.code();
        let (status, message) = match &err {
            CoreError::InvalidRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            CoreError::SqlRejected(r) => (StatusCode::BAD_REQUEST, r.message.clone()),
            CoreError::InvalidQuery(m) => (StatusCode::BAD_REQUEST, m.clone()),
            CoreError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m.clone()),
            CoreError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            CoreError::QuotaExceeded { resets_at, .. } => {
                let wait = (*resets_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::from_secs(1));
                return Self {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code,
                    message: err.to_string(),
                    retry_after: Some(wait),
                    cause: None,
                };
            }
            CoreError::NotFound(m) => (StatusCode::NOT_FOUND, format!("{m} not found")),
            CoreError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            CoreError::CostLimitExceeded { .. } => (StatusCode::BAD_REQUEST, err.to_string()),
            CoreError::RateLimited { retry_after } => return ApiError::rate_limited(*retry_after),
            CoreError::Timeout(d) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the query did not finish within {} ms and was cancelled",
                    d.as_millis()
                ),
            ),
            CoreError::QueueFull {
                message,
                retry_after,
            } => {
                return Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    message: message.clone(),
                    retry_after: Some(*retry_after),
                    cause: None,
                };
            }
            CoreError::Unavailable { what, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{what} is unavailable; try again later"),
            ),
            CoreError::Llm(e) => {
                use bqai_core::llm::LlmErrorKind as K;
                let status = match e.kind {
                    K::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    K::BadResponse => StatusCode::BAD_GATEWAY,
                    K::Auth | K::RateLimited | K::Overloaded | K::Unavailable | K::Busy => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                };
                let mut api = Self {
                    status,
                    code,
                    message: format!("the language model failed: {}", e.message),
                    retry_after: e.retry_after,
                    cause: Some(error_chain(&err)),
                };
                if api.retry_after.is_none() && status == StatusCode::SERVICE_UNAVAILABLE {
                    api.retry_after = Some(Duration::from_secs(5));
                }
                return api;
            }
            CoreError::GenerationFailed { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            CoreError::CannotAnswer(reason) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("this question cannot be answered with SQL over the data: {reason}"),
            ),
            CoreError::Internal { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; the request id identifies it in the server log".to_string(),
            ),
        };
        let cause = status.is_server_error().then(|| error_chain(&err));
        Self {
            status,
            code,
            message,
            retry_after: None,
            cause,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    request_id: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = request_id::current().unwrap_or_default();
        if self.status.is_server_error() {
            tracing::error!(
                request_id = %request_id,
                code = self.code,
                cause = self.cause.as_deref().unwrap_or(""),
                "request failed"
            );
        }
        let mut resp = HttpResponse::build(self.status);
        if let Some(ra) = self.retry_after {
            let secs = ra.as_secs() + u64::from(ra.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                resp.insert_header((header::RETRY_AFTER, v));
            }
        }
        resp.json(Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                request_id,
            },
        })
    }
}

/// Puts a plain-text error answered by a middleware outside the handlers (CORS refusing a
/// preflight: "Origin is not allowed to make this request") into the envelope, so every
/// error a client sees has the same shape, a request id and the security headers. Runs
/// inside the request id, just outside CORS. A 4xx keeps the middleware's text (written for
/// clients), a 5xx says nothing.
pub async fn envelope_middleware(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    // CORS answers a refused preflight with an error instead of a response, which would skip
    // every middleware on the way out. With CORS on, a preflight is never routed (CORS answers
    // it itself), so keeping a handle on the request to answer it here is safe. With CORS off
    // (no `server.cors_origins`) the preflight is routed like any request, and the router
    // needs the request unshared: a kept handle would make it panic.
    let cors_on = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .is_some_and(|s| !s.settings.cors_origins.is_empty());
    let preflight = cors_on
        && req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let kept = preflight.then(|| req.request().clone());
    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => {
            let Some(http) = kept else { return Err(e) };
            let plain = e.error_response();
            let status = plain.status();
            let text = plain_text(plain.into_body()).await;
            let wrapped = wrapped(status, &actix_web::http::header::HeaderMap::new(), text);
            return Ok(actix_web::dev::ServiceResponse::new(http, wrapped).map_into_right_body());
        }
    };
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return Ok(res.map_into_left_body());
    }
    let (req, res) = res.into_parts();
    let headers = res.headers().clone();
    let text = plain_text(res.into_body()).await;
    let wrapped = wrapped(status, &headers, text);
    Ok(actix_web::dev::ServiceResponse::new(req, wrapped).map_into_right_body())
}

/// The first KiB of an error body, as text.
async fn plain_text(body: impl actix_web::body::MessageBody) -> String {
    actix_web::body::to_bytes_limited(body, 1024)
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default()
}

/// The envelope for a plain error of `status` saying `text`, keeping the other `headers`.
fn wrapped(status: StatusCode, headers: &header::HeaderMap, text: String) -> HttpResponse {
    let message = if status.is_client_error() && !text.is_empty() {
        text
    } else {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned()
    };
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::CONFLICT => "CONFLICT",
        s if s.is_server_error() => "INTERNAL",
        _ => "INVALID_REQUEST",
    };
    let mut response = ApiError::new(status, code, message).error_response();
    // Keep what the middleware said besides its body (CORS's `Vary`, for one).
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}
