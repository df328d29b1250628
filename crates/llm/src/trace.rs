//! The W3C `traceparent` of the current span, for calls that leave the process (HTTP headers
//! to model APIs, the Claude CLI's environment). `None` when traces are off or the span is
//! not sampled into a trace: nothing is sent then.

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `00-{trace id}-{span id}-{flags}` of the current span, if it belongs to a trace.
pub(crate) fn traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
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

#[cfg(test)]
mod tests {
    #[test]
    fn nothing_is_sent_outside_a_trace() {
        assert_eq!(super::traceparent(), None);
    }
}
