//! Logging and tracing setup: a tracing subscriber writing text or JSON lines to stderr and,
//! when an OTLP endpoint is configured (`telemetry.otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`), an OpenTelemetry layer exporting spans over OTLP
//! (HTTP/protobuf or gRPC).
//!
//! Spans cost nothing when traces are off: the log layer only takes events, so no layer is
//! interested in a span and `tracing` skips creating it.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogSettings, TelemetrySettings};

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent (with a
/// deadline) and stops the exporter.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn traces_on(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("bqai: flushing traces at shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber (once per process; later calls are ignored so tests may
/// call it freely). `level` overrides `log.level` (the CLI's one-shot commands log warnings
/// only unless `-v` is given); `RUST_LOG` overrides both. `traces` says whether this command
/// exports spans (the server does; one-shot commands do not).
pub fn init(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    level: Option<&str>,
    traces: bool,
) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or(&log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Events only: spans are for the trace exporter, and a span no layer wants is never built.
    // Decided per callsite (not per call), so a disabled event or span costs what it did
    // with a plain global filter.
    let events = filter.and(EventsOnly);
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if log.format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(events)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(events)
            .boxed()
    };
    let endpoint = traces
        .then(|| telemetry.endpoint(|k| std::env::var(k).ok()))
        .flatten();
    let provider = match &endpoint {
        Some(endpoint) => Some(tracer_provider(telemetry, endpoint)?),
        None => None,
    };
    let logs = tracing_subscriber::registry().with(fmt);
    // No `Option` layer when traces are off: a `None` layer says "always" to every callsite,
    // which would make every disabled `trace!` of every dependency a dynamic check.
    let _ = match &provider {
        Some(provider) => logs
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("bqai"))
                    .with_location(false)
                    .with_threads(false)
                    .with_target(false)
                    .with_tracked_inactivity(false)
                    .with_filter(exported()),
            )
            .try_init(),
        None => logs.try_init(),
    };
    if let Some(endpoint) = provider.as_ref().and(endpoint.as_ref()) {
        tracing::info!(
            endpoint = %endpoint.url,
            protocol = endpoint.protocol.as_str(),
            "exporting traces over OTLP"
        );
    }
    Ok(TelemetryGuard { provider })
}

/// The log layer's second filter: events pass, spans never (per callsite, so `tracing`
/// caches the answer).
struct EventsOnly;

impl<S> tracing_subscriber::layer::Filter<S> for EventsOnly {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        meta.is_event()
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if meta.is_event() {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
}

/// The exporting layer's second filter: a span is built only as the root of a sampled
/// request (`bqai_trace::root_span` is building it) or inside a span that was built; events
/// only inside one. So nothing of an unsampled request — nor of work outside any request — is
/// ever built. Asked per call (the answer depends on the current span), which costs a look
/// at the thread's span stack.
struct InSampledTrace;

impl<S> tracing_subscriber::layer::Filter<S> for InSampledTrace
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        (meta.is_span() && bqai_trace::building_root()) || cx.lookup_current().is_some()
    }

    fn callsite_enabled(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    /// No level restriction of its own. Saying so (rather than `None`, "unknown") keeps the
    /// targets' `INFO` as the global maximum level: with `None`, every `trace!` of every
    /// dependency would get past `tracing`'s first, global check (measured: a cached catalog
    /// read lost ~15% of its throughput with traces on at 1%).
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
}

/// Where spans go and how.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpEndpoint {
    /// The collector's base URL (`/v1/traces` is appended for HTTP).
    pub url: String,
    /// `http/protobuf` or `grpc`.
    pub protocol: OtlpProtocol,
}

/// The OTLP transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
}

impl OtlpProtocol {
    /// The name OpenTelemetry's variables use.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }

    /// Parses `http/protobuf` or `grpc`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            "grpc" => Some(OtlpProtocol::Grpc),
            _ => None,
        }
    }
}

impl TelemetrySettings {
    /// The OTLP endpoint in force, if traces are on: `telemetry.otlp_endpoint`, else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (a full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (a base URL); none, or `OTEL_SDK_DISABLED=true`: off. `env` reads a variable.
    pub fn endpoint(&self, env: impl Fn(&str) -> Option<String>) -> Option<OtlpEndpoint> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let protocol = self
            .otlp_protocol
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .and_then(|p| OtlpProtocol::parse(&p))
            .unwrap_or(OtlpProtocol::HttpProtobuf);
        let url = self
            .otlp_endpoint
            .clone()
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").map(|full| {
                    // The signal-specific variable is the full URL; keep one form here.
                    full.strip_suffix("/v1/traces")
                        .map_or(full.clone(), str::to_string)
                })
            })
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|u| !u.trim().is_empty())?;
        Some(OtlpEndpoint {
            url: url.trim_end_matches('/').to_string(),
            protocol,
        })
    }

    /// The share of new traces kept: `telemetry.sampler_ratio`, else what
    /// `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`, `traceidratio`, and their
    /// `parentbased_` forms) and `OTEL_TRACES_SAMPLER_ARG` say, else all. It is applied at the
    /// request's root, before any span is built (`bqai_trace::root_span`); a caller's
    /// `traceparent` decides for its request (parent-based) whatever the ratio.
    pub fn sampling_ratio(&self, env: impl Fn(&str) -> Option<String>) -> f64 {
        if let Some(ratio) = self.sampler_ratio {
            return ratio.clamp(0.0, 1.0);
        }
        let arg = || {
            env("OTEL_TRACES_SAMPLER_ARG")
                .and_then(|a| a.trim().parse::<f64>().ok())
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(1.0)
        };
        match env("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
            Some("always_off" | "parentbased_always_off") => 0.0,
            Some("traceidratio" | "parentbased_traceidratio") => arg(),
            _ => 1.0,
        }
    }
}

fn tracer_provider(
    settings: &TelemetrySettings,
    endpoint: &OtlpEndpoint,
) -> anyhow::Result<SdkTracerProvider> {
    let timeout = Duration::from_secs(5);
    let exporter = match endpoint.protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.url))
            .with_timeout(timeout)
            .build(),
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_protocol(Protocol::Grpc)
            .with_endpoint(endpoint.url.clone())
            .with_timeout(timeout)
            .build(),
    }
    .context("building the OTLP trace exporter")?;
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    // OTEL_SERVICE_NAME is read by the resource builder; the setting wins over it.
    if let Some(name) = &settings.service_name {
        resource = resource.with_service_name(name.clone());
    } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("bqai");
    }
    // The ratio is applied before spans are built (`bqai_trace::root_span`): every span that
    // reaches the SDK belongs to a sampled trace, so the SDK keeps them all.
    bqai_trace::set_sampling_ratio(settings.sampling_ratio(|k| std::env::var(k).ok()));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .build())
}

/// The exporting layer's filter: our targets, and only inside a sampled request.
fn exported<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    span_targets().and(InSampledTrace)
}

/// Spans exported: bqai's own and the Google SDK's, at info and above. The transports'
/// (hyper, h2, tonic, reqwest) stay out, or exporting spans would make spans.
fn span_targets() -> Targets {
    Targets::new()
        .with_target("bqai", Level::INFO)
        .with_target("bqai_core", Level::INFO)
        .with_target("bqai_http", Level::INFO)
        .with_target("bqai_llm", Level::INFO)
        .with_target("bqai_bigquery", Level::INFO)
        .with_target("bqai_local", Level::INFO)
        .with_target("bqai_redis", Level::INFO)
        .with_target("bqai_store", Level::INFO)
        .with_target("bqai_memory", Level::INFO)
        .with_target("google_cloud", Level::INFO)
}

/// Colour codes only on a terminal, and never with `NO_COLOR` set to anything but empty
/// (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{OtlpProtocol, colour, exported};
    use crate::config::TelemetrySettings;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    fn endpoint_with(
        settings: &TelemetrySettings,
        vars: &[(&str, &str)],
    ) -> Option<(String, OtlpProtocol)> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        settings
            .endpoint(|k| vars.get(k).cloned())
            .map(|e| (e.url, e.protocol))
    }

    #[test]
    fn traces_are_off_without_an_endpoint_and_follow_the_standard_variables() {
        let none = TelemetrySettings::default();
        assert_eq!(endpoint_with(&none, &[]), None);
        assert_eq!(
            endpoint_with(&none, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
            Some(("http://c:4318".into(), OtlpProtocol::HttpProtobuf))
        );
        assert_eq!(
            endpoint_with(
                &none,
                &[
                    (
                        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                        "http://t:4318/v1/traces"
                    ),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ]
            ),
            Some(("http://t:4318".into(), OtlpProtocol::HttpProtobuf))
        );
        assert_eq!(
            endpoint_with(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ]
            ),
            Some(("http://c:4317".into(), OtlpProtocol::Grpc))
        );
        assert_eq!(
            endpoint_with(
                &none,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true"),
                ]
            ),
            None
        );
    }

    /// Counts the spans a layer was given (built), behind the exporting layer's filter.
    struct Built(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Built {
        fn on_new_span(
            &self,
            _: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn the_exporting_filter_keeps_info_as_the_maximum_level() {
        use tracing_subscriber::layer::Filter;
        let filter = exported();
        assert_eq!(
            <_ as Filter<tracing_subscriber::Registry>>::max_level_hint(&filter),
            Some(tracing::level_filters::LevelFilter::INFO)
        );
    }

    #[test]
    fn spans_are_built_only_under_a_sampled_root() {
        let built = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let subscriber =
            tracing_subscriber::registry().with(Built(built.clone()).with_filter(exported()));
        let count = || built.load(std::sync::atomic::Ordering::SeqCst);
        tracing::subscriber::with_default(subscriber, || {
            // Work outside any request, and a stage of an unsampled request: nothing built.
            let _stage = tracing::info_span!(target: "bqai_core", "guard").entered();
            assert_eq!(count(), 0);
            let caller = bqai_trace::from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                None,
            );
            let root = bqai_trace::root_span(
                &caller,
                || tracing::info_span!(target: "bqai_http", "HTTP request"),
            );
            assert!(root.is_none(), "the caller sampled it out");
            let _in_unsampled = root.entered();
            let _child = tracing::info_span!(target: "bqai_core", "query").entered();
            assert_eq!(count(), 0);
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(Built(built.clone()).with_filter(exported())),
            || {
                let caller = bqai_trace::from_traceparent(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    None,
                );
                let root = bqai_trace::root_span(
                    &caller,
                    || tracing::info_span!(target: "bqai_http", "HTTP request"),
                );
                let _root = root.entered();
                let _child = tracing::info_span!(target: "bqai_core", "query").entered();
                let _grandchild = tracing::info_span!(target: "bqai_core", "guard").entered();
                // Not a span of ours: never exported, even inside a trace.
                let _other = tracing::info_span!(target: "hyper", "connect").entered();
                assert_eq!(count(), 3, "the root and its two stages");
            },
        );
    }

    #[test]
    fn the_sampling_ratio_comes_from_the_setting_else_the_standard_variables() {
        let unset = TelemetrySettings::default();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(unset.sampling_ratio(env(&[])), 1.0);
        assert_eq!(
            unset.sampling_ratio(env(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.05"),
            ])),
            0.05
        );
        assert_eq!(
            unset.sampling_ratio(env(&[("OTEL_TRACES_SAMPLER", "traceidratio")])),
            1.0,
            "no argument: all"
        );
        assert_eq!(
            unset.sampling_ratio(env(&[("OTEL_TRACES_SAMPLER", "always_off")])),
            0.0
        );
        let set = TelemetrySettings {
            sampler_ratio: Some(0.01),
            ..TelemetrySettings::default()
        };
        assert_eq!(
            set.sampling_ratio(env(&[("OTEL_TRACES_SAMPLER", "always_off")])),
            0.01
        );
    }

    #[test]
    fn the_setting_wins_over_the_variables() {
        let set = TelemetrySettings {
            otlp_endpoint: Some("http://mine:4317".into()),
            otlp_protocol: Some("grpc".into()),
            ..TelemetrySettings::default()
        };
        assert_eq!(
            endpoint_with(
                &set,
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ]
            ),
            Some(("http://mine:4317".into(), OtlpProtocol::Grpc))
        );
    }
}
