//! W3C trace context at the HTTP boundary: a caller's `traceparent` (a header, or a field of
//! a WebSocket message) becomes the parent of the spans a request makes, and the trace id
//! goes into the request's log line.
//!
//! With traces off no layer wants spans, so the request span is disabled and costs nothing;
//! the log line still names the caller's trace id when it sent one, so logs can be joined
//! with the caller's trace.

use actix_web::http::header::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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

struct One<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The caller's trace context from `traceparent`/`tracestate` headers (empty when absent or
/// malformed: a bad header starts a new trace, it never fails the request).
pub fn from_headers(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// The caller's trace context from a `traceparent` value (a WebSocket message carries one).
pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Context {
    TraceContextPropagator::new().extract(&One {
        traceparent,
        tracestate,
    })
}

/// Makes `parent` the parent of `span` when the caller sent a valid context.
pub fn continue_trace(span: &Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled (traces off): nothing to continue then.
        let _ = span.set_parent(parent);
    }
}

/// Renames `span` once what names it is known (a request's route is known after routing).
/// Through the OpenTelemetry span itself: `otel.name` is read only while a span is built, and
/// continuing a caller's trace builds it.
pub fn rename(span: &Span, name: String) {
    span.context().span().update_name(name);
}

/// The trace id of `span` (traces on), else of the caller's context (traces off), as 32 hex
/// digits.
pub fn trace_id(span: &Span, caller: &Context) -> Option<String> {
    let valid = |cx: &Context| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    };
    // A disabled span has no context worth building.
    if span.is_disabled() {
        return valid(caller);
    }
    valid(&span.context()).or_else(|| valid(caller))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_callers_traceparent_names_the_trace() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("traceparent"),
            HeaderValue::from_static(PARENT),
        );
        let cx = from_headers(&headers);
        assert_eq!(
            trace_id(&Span::none(), &cx).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let cx = from_traceparent(PARENT, None);
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
    }

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let cx = from_traceparent(bad, None);
            assert_eq!(trace_id(&Span::none(), &cx), None, "{bad}");
        }
    }
}
