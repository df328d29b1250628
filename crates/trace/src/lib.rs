//! W3C trace context, in one place for every adapter: the caller's `traceparent` continued
//! (the HTTP layer reads it from headers or a WebSocket message), and the current span's sent
//! on calls that leave the process (model APIs, the Claude CLI's environment, BigQuery's REST
//! call). Everything here is a no-op when traces are off: spans are then disabled and carry
//! no context.
//!
//! `bqai-core` knows nothing of OpenTelemetry; its spans are plain `tracing` spans, which the
//! binary's OpenTelemetry layer turns into OTLP spans.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The caller's trace context from any carrier (headers of any HTTP stack): empty when absent
/// or malformed — a bad header starts a new trace, it never fails the request.
pub fn extract(carrier: &dyn Extractor) -> Context {
    TraceContextPropagator::new().extract(carrier)
}

/// `00-{trace id}-{span id}-{flags}` of the current span, if it belongs to a trace (traces on
/// and the span recorded): what outgoing calls send as `traceparent`.
pub fn traceparent() -> Option<String> {
    let cx = Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
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

/// The caller's trace context from a `traceparent` value (a WebSocket message carries one).
pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Context {
    extract(&One {
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

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_callers_traceparent_names_the_trace() {
        let cx = from_traceparent(PARENT, None);
        assert_eq!(
            trace_id(&Span::none(), &cx).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
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

    #[test]
    fn nothing_is_sent_outside_a_trace() {
        assert_eq!(traceparent(), None);
    }
}
