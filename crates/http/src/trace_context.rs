//! W3C trace context at the HTTP boundary: a caller's `traceparent` (a header, or a field of
//! a WebSocket message) becomes the parent of the spans a request makes, and the trace id
//! goes into the request's log line. The context logic is `bqai-trace`'s; this module reads
//! actix's headers for it.
//!
//! With traces off no layer wants spans, so the request span is disabled and costs nothing;
//! the log line still names the caller's trace id when it sent one, so logs can be joined
//! with the caller's trace.

use actix_web::http::header::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::Extractor;

pub use bqai_trace::{continue_trace, from_traceparent, rename, root_span, trace_id};

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(actix_web::http::header::HeaderName::as_str)
            .collect()
    }
}

/// The caller's trace context from `traceparent`/`tracestate` headers (empty when absent or
/// malformed: a bad header starts a new trace, it never fails the request).
pub fn from_headers(headers: &HeaderMap) -> Context {
    // Only parsed when sent: most requests carry no trace context.
    if !headers.contains_key("traceparent") {
        return Context::new();
    }
    bqai_trace::extract(&Headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    #[test]
    fn a_callers_traceparent_header_names_the_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let cx = from_headers(&headers);
        assert_eq!(
            trace_id(&tracing::Span::none(), &cx).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
