//! What the two HTTP adapters share: the client, the deadline, retries with backoff, and the
//! mapping of HTTP failures to [`LlmErrorKind`]s.
//!
//! The retry loop lives inside the overall deadline so a caller waits at most `timeout_ms`
//! no matter how many retries the provider's status codes invite; a retry that could not
//! finish before the deadline is not started and the real cause is reported instead of a
//! timeout.

use std::time::Duration;

use bqai_core::Error;
use bqai_core::llm::{LlmError, LlmErrorKind};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::config::LlmConfig;
use crate::limiter::Limiter;

/// Bodies larger than this are not a completion we asked for.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Provider error bodies are logged up to this length.
const LOGGED_BODY_CHARS: usize = 1000;
/// First backoff step; doubled per retry up to [`BACKOFF_CAP`], then jittered down by up to
/// half so synchronized callers spread out.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// A credential header, marked sensitive so `Debug` of the header never shows it.
#[derive(Debug, Clone)]
pub(crate) struct AuthHeader {
    name: HeaderName,
    value: HeaderValue,
}

impl AuthHeader {
    pub(crate) fn api_key(name: &'static str, key: &SecretString) -> Result<Self, Error> {
        Self::new(
            HeaderName::from_static(name),
            key.expose_secret(),
            "api_key",
        )
    }

    pub(crate) fn bearer(token: &SecretString, setting: &str) -> Result<Self, Error> {
        Self::new(
            reqwest::header::AUTHORIZATION,
            &format!("Bearer {}", token.expose_secret()),
            setting,
        )
    }

    fn new(name: HeaderName, value: &str, setting: &str) -> Result<Self, Error> {
        let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
            Error::InvalidRequest(format!(
                "llm: {setting} contains characters not allowed in an HTTP header"
            ))
        })?;
        value.set_sensitive(true);
        Ok(Self { name, value })
    }

    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(self.name.clone(), self.value.clone());
    }
}

/// Client, slots, deadline and retry budget of one HTTP adapter.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    client: reqwest::Client,
    limiter: Limiter,
    timeout: Duration,
    max_retries: u32,
    /// Names the provider in logs (`anthropic`, `openai`).
    provider: &'static str,
}

impl HttpTransport {
    pub(crate) fn new(config: &LlmConfig, provider: &'static str) -> Result<Self, Error> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            // A redirect of a POST would silently turn into a GET elsewhere; a provider that
            // moved is a configuration problem to surface, not to follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("bqai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Unavailable {
                what: "the HTTP client for the language model".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(Self {
            client,
            limiter: Limiter::new(config.max_concurrency, config.max_queue),
            timeout,
            max_retries: config.max_retries,
            provider,
        })
    }

    /// Requests in progress and waiting for a slot.
    pub(crate) fn load(&self) -> bqai_core::llm::LlmLoad {
        self.limiter.load()
    }

    /// POSTs `body` as JSON to `url` with `headers` (retried and bounded like [`Self::call`])
    /// and decodes the answer; an answer of another shape is `BadResponse`.
    pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        headers: &reqwest::header::HeaderMap,
        body: &serde_json::Value,
    ) -> Result<T, LlmError> {
        let answer = self
            .call(|| self.client.post(url).headers(headers.clone()).json(body))
            .await?;
        serde_json::from_value(answer).map_err(|e| {
            tracing::warn!(provider = self.provider, error = %e, "language model answer has an unexpected shape");
            LlmError::new(
                LlmErrorKind::BadResponse,
                "the language model's answer had an unexpected shape",
            )
        })
    }

    /// Sends the request built by `make` (once per attempt) and returns the JSON body of the
    /// first successful answer.
    pub(crate) async fn call(
        &self,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<serde_json::Value, LlmError> {
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout_at(deadline, self.call_with_retries(&make, deadline)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(provider = self.provider, timeout = ?self.timeout, "language model call timed out");
                Err(timeout_error(self.timeout))
            }
        }
    }

    async fn call_with_retries(
        &self,
        make: &impl Fn() -> RequestBuilder,
        deadline: Instant,
    ) -> Result<serde_json::Value, LlmError> {
        let _slot = self.limiter.acquire().await?;
        let mut attempt = 0;
        loop {
            let failure = match self.attempt(make).await {
                Ok(body) => return Ok(body),
                Err(failure) => failure,
            };
            if !failure.retryable || attempt >= self.max_retries {
                return Err(failure.error);
            }
            let delay = failure
                .error
                .retry_after
                .unwrap_or_else(|| backoff(attempt));
            if Instant::now() + delay >= deadline {
                tracing::warn!(
                    provider = self.provider,
                    ?delay,
                    "not retrying: the retry would end after the deadline"
                );
                return Err(failure.error);
            }
            tracing::info!(
                provider = self.provider,
                attempt = attempt + 1,
                ?delay,
                kind = ?failure.error.kind,
                "retrying language model call"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        make: &impl Fn() -> RequestBuilder,
    ) -> Result<serde_json::Value, Failure> {
        let mut request = make();
        // The model call joins the caller's trace (W3C trace context), when there is one.
        if let Some(tp) = bqai_trace::traceparent() {
            request = request.header("traceparent", tp);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(provider = self.provider, error = %e, "language model request failed");
                return Err(Failure {
                    // Only a malformed request is our own doing; a refused, reset or
                    // interrupted connection may well work on the next attempt.
                    retryable: !e.is_builder(),
                    error: LlmError::new(
                        LlmErrorKind::Unavailable,
                        "the language model could not be reached",
                    ),
                });
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_body(response).await;
        if status.is_success() {
            let body = body.map_err(|e| {
                tracing::warn!(provider = self.provider, error = %e, "reading the language model's answer failed");
                Failure {
                    retryable: true,
                    error: LlmError::new(
                        LlmErrorKind::Unavailable,
                        "the language model's answer was interrupted",
                    ),
                }
            })?;
            return serde_json::from_slice(&body).map_err(|e| {
                tracing::warn!(provider = self.provider, error = %e, body = %truncate(&String::from_utf8_lossy(&body), LOGGED_BODY_CHARS), "language model answer is not JSON");
                Failure {
                    retryable: false,
                    error: LlmError::new(
                        LlmErrorKind::BadResponse,
                        "the language model's answer was not valid JSON",
                    ),
                }
            });
        }
        let body_text = body
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        tracing::warn!(
            provider = self.provider,
            status = status.as_u16(),
            ?retry_after,
            body = %truncate(&body_text, LOGGED_BODY_CHARS),
            "language model returned an error status"
        );
        Err(status_failure(status, retry_after))
    }
}

/// One failed attempt and whether another attempt may succeed.
struct Failure {
    error: LlmError,
    retryable: bool,
}

/// Maps an error status: credentials are an operator's problem (no retry), 429/529/503/5xx
/// are the provider's and usually pass.
///
/// 503 counts as [`LlmErrorKind::Overloaded`] (as the core port documents), like Anthropic's
/// 529: both say "come back later" rather than "broken".
fn status_failure(status: StatusCode, retry_after: Option<Duration>) -> Failure {
    let code = status.as_u16();
    let (kind, retryable, message) = match code {
        401 | 403 => (
            LlmErrorKind::Auth,
            false,
            format!("the language model provider refused our credentials (HTTP {code})"),
        ),
        429 => (
            LlmErrorKind::RateLimited,
            true,
            "the language model provider is rate-limiting us".to_string(),
        ),
        503 | 529 => (
            LlmErrorKind::Overloaded,
            true,
            format!("the language model provider is overloaded (HTTP {code})"),
        ),
        408 | 500..=599 => (
            LlmErrorKind::Unavailable,
            true,
            format!("the language model provider failed (HTTP {code})"),
        ),
        _ => (
            LlmErrorKind::Unavailable,
            false,
            format!("the language model provider rejected the request (HTTP {code})"),
        ),
    };
    let mut error = LlmError::new(kind, message);
    error.retry_after = retry_after;
    Failure { error, retryable }
}

/// `retry-after-ms` (Anthropic and OpenAI send it) or `retry-after` in seconds. The HTTP-date
/// form is ignored: providers send seconds, and backoff covers the rest.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_CAP);
    step.mul_f64(0.5 + fastrand::f64() * 0.5)
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("body larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn timeout_error(timeout: Duration) -> LlmError {
    LlmError::new(
        LlmErrorKind::Timeout,
        format!(
            "the language model did not answer within {:.1} s",
            timeout.as_secs_f64()
        ),
    )
}

/// At most `max` characters, cut on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The request's token limit, or the configured default when the request leaves it at 0.
pub(crate) fn max_tokens(requested: u32, default: u32) -> u32 {
    if requested == 0 { default } else { requested }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds_and_retryability() {
        let f = |code| {
            let f = status_failure(StatusCode::from_u16(code).unwrap(), None);
            (f.error.kind, f.retryable)
        };
        assert_eq!(f(401), (LlmErrorKind::Auth, false));
        assert_eq!(f(403), (LlmErrorKind::Auth, false));
        assert_eq!(f(429), (LlmErrorKind::RateLimited, true));
        assert_eq!(f(529), (LlmErrorKind::Overloaded, true));
        assert_eq!(f(503), (LlmErrorKind::Overloaded, true));
        assert_eq!(f(500), (LlmErrorKind::Unavailable, true));
        assert_eq!(f(502), (LlmErrorKind::Unavailable, true));
        assert_eq!(f(400), (LlmErrorKind::Unavailable, false));
        assert_eq!(f(404), (LlmErrorKind::Unavailable, false));
    }

    #[test]
    fn retry_after_reads_milliseconds_then_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            let step = BACKOFF_BASE
                .saturating_mul(2u32.saturating_pow(attempt))
                .min(BACKOFF_CAP);
            assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 5), "hé");
    }

    #[test]
    fn auth_headers_are_sensitive() {
        let h = AuthHeader::bearer(&SecretString::from("tok-secret"), "api_key").unwrap();
        assert!(h.value.is_sensitive());
        assert!(!format!("{h:?}").contains("tok-secret"));
        assert!(AuthHeader::api_key("x-api-key", &SecretString::from("bad\nkey")).is_err());
    }
}
