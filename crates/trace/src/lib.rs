//! W3C trace context, in one place for every adapter: the caller's `traceparent` continued
//! (the HTTP layer reads it from headers or a WebSocket message), and the current span's sent
//! on calls that leave the process (model APIs, the Claude CLI's environment, BigQuery's REST
//! call). Everything here is a no-op when traces are off: spans are then disabled and carry
//! no context.
//!
//! `bqai-core` knows nothing of OpenTelemetry; its spans are plain `tracing` spans, which the
//! binary's OpenTelemetry layer turns into OTLP spans.
//!
//! Head sampling happens here, before anything is built: [`root_span`] decides whether a
//! request is traced (the caller's sampled flag, else `telemetry.sampler_ratio`) and builds its
//! root span only then; the exporting layer's filter lets a span be built only as such a root
//! or inside one ([`building_root`]). An unsampled request thus creates no span at all — an
//! SDK sampler would drop it only after `tracing-opentelemetry` had built every span of it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Share of new traces kept (the bits of an `f64`); 1.0 until the exporter is set up.
static SAMPLING_RATIO: AtomicU64 = AtomicU64::new(0x3FF0_0000_0000_0000);

thread_local! {
    /// Set while [`root_span`] builds a sampled root.
    static BUILDING_ROOT: Cell<bool> = const { Cell::new(false) };
}

/// Sets the share of new traces (requests without a caller's context) that are traced,
/// clamped to 0.0–1.0.
pub fn set_sampling_ratio(ratio: f64) {
    let ratio = if ratio.is_nan() {
        1.0
    } else {
        ratio.clamp(0.0, 1.0)
    };
    SAMPLING_RATIO.store(ratio.to_bits(), Ordering::Relaxed);
}

/// Whether a request whose caller sent `caller` is traced: the caller's sampled flag when it
/// sent a valid context (parent-based), else a draw at the sampling ratio.
pub fn sampled(caller: &Context) -> bool {
    let span = caller.span();
    let sc = span.span_context();
    if sc.is_valid() {
        return sc.is_sampled();
    }
    let ratio = f64::from_bits(SAMPLING_RATIO.load(Ordering::Relaxed));
    ratio >= 1.0 || (ratio > 0.0 && fastrand::f64() < ratio)
}

/// A request's root span from `build`, when the request is traced ([`sampled`]); otherwise
/// `Span::none()`, and nothing of the request's trace is ever built.
pub fn root_span(caller: &Context, build: impl FnOnce() -> Span) -> Span {
    if !sampled(caller) {
        return Span::none();
    }
    BUILDING_ROOT.with(|b| b.set(true));
    let span = build();
    BUILDING_ROOT.with(|b| b.set(false));
    span
}

/// Whether [`root_span`] is building a sampled root on this thread: the exporting layer's
/// filter admits a span with no traced parent only then.
pub fn building_root() -> bool {
    BUILDING_ROOT.with(Cell::get)
}

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
    fn a_callers_flag_decides_and_new_traces_follow_the_ratio() {
        let sampled_parent = from_traceparent(PARENT, None);
        let unsampled_parent = from_traceparent(&PARENT.replace("-01", "-00"), None);
        set_sampling_ratio(0.0);
        assert!(
            sampled(&sampled_parent),
            "a caller's sampled trace is followed"
        );
        assert!(!sampled(&Context::new()));
        let mut built = false;
        let span = root_span(&Context::new(), || {
            built = true;
            Span::none()
        });
        assert!(!built && span.is_none(), "an unsampled root is never built");
        set_sampling_ratio(1.0);
        assert!(
            !sampled(&unsampled_parent),
            "a caller's unsampled trace is followed"
        );
        assert!(sampled(&Context::new()));
        let seen_building = root_span(&Context::new(), || {
            assert!(building_root());
            Span::none()
        });
        assert!(seen_building.is_none() && !building_root());
        set_sampling_ratio(0.25);
        let kept = (0..4000).filter(|_| sampled(&Context::new())).count();
        assert!((800..1200).contains(&kept), "{kept} of 4000 at 0.25");
        set_sampling_ratio(1.0);
    }

    #[test]
    fn nothing_is_sent_outside_a_trace() {
        assert_eq!(traceparent(), None);
    }
}
