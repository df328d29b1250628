//! The server's Prometheus metrics, served by `GET /metrics` ([`crate::routes::metrics`]): a
//! registry this server owns (prometheus-client:
//! no process-global recorder, so every server — and every test app in one process — has its
//! own numbers, and the registry is passed explicitly like every other dependency).
//!
//! It holds the HTTP request families (requests by method, route template and status; latency
//! histograms by method and route template), counted by [`middleware`] around every request,
//! and the store's gauges (size, free bytes, rows per table), refreshed from the maintenance
//! round's latest [`StoreStats`] at each scrape; and the query families (outcomes, error
//! codes, durations, warehouse bytes and cost, result-cache hits, LLM calls, tokens and cost),
//! counted by [`MeteredHistory`] from the one history record every query leaves. Labels are bounded: routes are templates (`/api/v1/history/{id}`), never
//! paths, and requests that match no route share `route="unmatched"`; no principal or SQL.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use async_trait::async_trait;
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{ComponentHealth, Page, PageRequest, StoreStats};
use bqai_core::ports::HistoryStore;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

type Labels = Vec<(&'static str, String)>;

/// The history queue in front of the store, as `/metrics` reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQueueStats {
    /// Records waiting for the store.
    pub queued: u64,
    /// Records dropped because the queue was full (since start).
    pub dropped: u64,
    /// Records the store refused for good (since start).
    pub refused: u64,
}

/// Reads the history queue (a closure, so this crate needs no dependency on the queue's).
pub type HistoryQueueProbe = std::sync::Arc<dyn Fn() -> HistoryQueueStats + Send + Sync>;

/// `method`, `route` (and `status`) of a request: a struct rather than a list of pairs, so
/// counting a request allocates only the route template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct QueryLabels {
    kind: &'static str,
    status: &'static str,
    dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ErrorLabels {
    status: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ComponentLabels {
    component: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct GeneratorLabels {
    generator: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TokenLabels {
    generator: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ws_connections: Gauge,
    ws_asks: Gauge,
    history_queued: Gauge,
    history_dropped: Gauge,
    history_refused: Gauge,
    queries: Family<QueryLabels, Counter>,
    query_errors: Family<ErrorLabels, Counter>,
    query_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    bytes_processed: Counter,
    bytes_billed: Counter,
    cost_usd: Counter<f64, AtomicU64>,
    cache_hits: Counter,
    llm_calls: Family<GeneratorLabels, Counter>,
    llm_tokens: Family<TokenLabels, Counter>,
    llm_cost_usd: Family<GeneratorLabels, Counter<f64, AtomicU64>>,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    store_size: Family<Labels, Gauge>,
    store_free: Family<Labels, Gauge>,
    store_rows: Family<Labels, Gauge>,
    store_measured: Family<Labels, Gauge>,
    dependency_healthy: Family<ComponentLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bqai");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| {
                // 0.5 ms to ~16 s: a cached read to a long query.
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            });
        let queries = Family::<QueryLabels, Counter>::default();
        let query_errors = Family::<ErrorLabels, Counter>::default();
        let query_duration: Family<KindLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let bytes_processed = Counter::default();
        let bytes_billed = Counter::default();
        let cost_usd = Counter::<f64, AtomicU64>::default();
        let cache_hits = Counter::default();
        let llm_calls = Family::<GeneratorLabels, Counter>::default();
        let llm_tokens = Family::<TokenLabels, Counter>::default();
        let llm_cost_usd = Family::<GeneratorLabels, Counter<f64, AtomicU64>>::default();
        let ws_connections = Gauge::default();
        let history_queued = Gauge::default();
        let history_dropped = Gauge::default();
        let history_refused = Gauge::default();
        let dependency_healthy = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "dependency_healthy",
            "Whether a dependency (warehouse, cache, history, generator) was ok at the last health check (1), or degraded or down (0)",
            dependency_healthy.clone(),
        );
        registry.register(
            "websocket_connections",
            "WebSocket connections open",
            ws_connections.clone(),
        );
        let ws_asks = Gauge::default();
        registry.register(
            "websocket_asks_in_flight",
            "Asks running on WebSocket connections",
            ws_asks.clone(),
        );
        registry.register(
            "history_queue_depth",
            "History records waiting in memory for the store",
            history_queued.clone(),
        );
        registry.register(
            "history_records_dropped",
            "History records dropped since start because the queue was full",
            history_dropped.clone(),
        );
        registry.register(
            "history_records_refused",
            "History records the store refused for good since start",
            history_refused.clone(),
        );
        registry.register(
            "queries",
            "Queries and asks as recorded in history, by kind (sql, ask, system), outcome and dry run",
            queries.clone(),
        );
        registry.register(
            "query_errors",
            "Failed and rejected queries by outcome and error code (SQL_REJECTED, COST_LIMIT_EXCEEDED, QUERY_TIMEOUT, ...)",
            query_errors.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Time of a query or ask, guard to answer, by kind (dry runs excluded)",
            query_duration.clone(),
        );
        registry.register(
            "warehouse_bytes_processed",
            "Bytes the warehouse processed for queries (dry runs excluded)",
            bytes_processed.clone(),
        );
        registry.register(
            "warehouse_bytes_billed",
            "Bytes the warehouse billed for queries",
            bytes_billed.clone(),
        );
        registry.register(
            "warehouse_estimated_cost_usd",
            "Bytes billed priced at query.usd_per_tib",
            cost_usd.clone(),
        );
        registry.register(
            "result_cache_hits",
            "Queries answered from the result cache",
            cache_hits.clone(),
        );
        registry.register(
            "llm_calls",
            "Generation attempts by a language model, by generator",
            llm_calls.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens sent to (input) and received from (output) language models, by generator",
            llm_tokens.clone(),
        );
        registry.register(
            "llm_cost_usd",
            "What language models cost, reported or priced by [llm.prices], by generator",
            llm_cost_usd.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), by method and route template",
            http_duration.clone(),
        );
        let store_size = Family::<Labels, Gauge>::default();
        let store_free = Family::<Labels, Gauge>::default();
        let store_rows = Family::<Labels, Gauge>::default();
        let store_measured = Family::<Labels, Gauge>::default();
        registry.register(
            "store_size_bytes",
            "Bytes of the durable store on disk (SQLite file and WAL, or PostgreSQL tables)",
            store_size.clone(),
        );
        registry.register(
            "store_free_bytes",
            "Bytes of free pages in the store not yet given back (SQLite)",
            store_free.clone(),
        );
        registry.register(
            "store_rows",
            "Rows per table of the durable store",
            store_rows.clone(),
        );
        registry.register(
            "store_measured_timestamp_seconds",
            "When the store was last measured (Unix time)",
            store_measured.clone(),
        );
        Self {
            registry,
            ws_connections,
            ws_asks,
            history_queued,
            history_dropped,
            history_refused,
            queries,
            query_errors,
            query_duration,
            bytes_processed,
            bytes_billed,
            cost_usd,
            cache_hits,
            llm_calls,
            llm_tokens,
            llm_cost_usd,
            http_requests,
            http_duration,
            store_size,
            store_free,
            store_rows,
            store_measured,
            dependency_healthy,
        }
    }

    /// Sets the dependency gauges from a health snapshot (the shared, cached checks).
    pub fn observe_health(&self, snapshot: &crate::health::Snapshot) {
        for (component, health) in [
            ("warehouse", &snapshot.warehouse),
            ("cache", &snapshot.cache),
            ("history", &snapshot.history),
            ("generator", &snapshot.generator),
        ] {
            self.dependency_healthy
                .get_or_create(&ComponentLabels { component })
                .set(i64::from(
                    health.status == bqai_core::model::HealthStatus::Ok,
                ));
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, method: &'static str, route: String, status: u16, seconds: f64) {
        let labels = RequestLabels {
            method,
            route,
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        let RequestLabels { method, route, .. } = labels;
        self.http_duration
            .get_or_create(&RouteLabels { method, route })
            .observe(seconds);
    }

    /// Counts one query or ask from its history record (the one record every query leaves):
    /// outcome, error code, duration, bytes, cost and the LLM's share. Dry runs are counted as
    /// queries but add no bytes, cost or duration, as in the analytics.
    pub fn observe_entry(&self, entry: &HistoryEntry, usd_per_tib: f64) {
        let kind = entry.kind.as_str();
        let status = entry.status.as_str();
        self.queries
            .get_or_create(&QueryLabels {
                kind,
                status,
                dry_run: entry.dry_run,
            })
            .inc();
        if let Some(code) = &entry.error_code {
            self.query_errors
                .get_or_create(&ErrorLabels {
                    status,
                    code: code.clone(),
                })
                .inc();
        }
        if !entry.dry_run {
            #[allow(clippy::cast_precision_loss)]
            self.query_duration
                .get_or_create(&KindLabels { kind })
                .observe(entry.duration_ms as f64 / 1000.0);
            self.bytes_processed.inc_by(entry.bytes_processed);
            self.bytes_billed.inc_by(entry.bytes_billed);
            self.cost_usd.inc_by(bqai_core::analytics::usd_for_bytes(
                entry.bytes_billed,
                usd_per_tib,
            ));
            if entry.cache_hit {
                self.cache_hits.inc();
            }
        }
        if let Some(ask) = &entry.ask
            && ask.attempts > 0
            && ask.generator != "builtin"
        {
            let generator = GeneratorLabels {
                generator: ask.generator.clone(),
            };
            self.llm_calls
                .get_or_create(&generator)
                .inc_by(u64::from(ask.attempts));
            for (direction, tokens) in [("input", ask.input_tokens), ("output", ask.output_tokens)]
            {
                self.llm_tokens
                    .get_or_create(&TokenLabels {
                        generator: ask.generator.clone(),
                        direction,
                    })
                    .inc_by(tokens);
            }
            if let Some(cost) = ask.cost_usd {
                self.llm_cost_usd.get_or_create(&generator).inc_by(cost);
            }
        }
    }

    /// Sets the gauges read at scrape time: open WebSocket connections and the history queue.
    pub fn observe_runtime(
        &self,
        ws_connections: usize,
        ws_asks: usize,
        history: Option<HistoryQueueStats>,
    ) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.ws_connections
            .set(gauge(u64::try_from(ws_connections).unwrap_or(u64::MAX)));
        self.ws_asks
            .set(gauge(u64::try_from(ws_asks).unwrap_or(u64::MAX)));
        let history = history.unwrap_or_default();
        self.history_queued.set(gauge(history.queued));
        self.history_dropped.set(gauge(history.dropped));
        self.history_refused.set(gauge(history.refused));
    }

    /// Sets the store's gauges from a measurement.
    pub fn observe_store(&self, stats: &StoreStats) {
        let backend: Labels = vec![("backend", stats.backend.clone())];
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.store_size
            .get_or_create(&backend)
            .set(gauge(stats.size_bytes));
        self.store_free
            .get_or_create(&backend)
            .set(gauge(stats.free_bytes));
        self.store_measured
            .get_or_create(&backend)
            .set(stats.measured_at.timestamp());
        for (table, rows) in &stats.rows {
            self.store_rows
                .get_or_create(&vec![
                    ("backend", stats.backend.clone()),
                    ("table", table.clone()),
                ])
                .set(gauge(*rows));
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }
}

/// The `HistoryStore` decorator that counts each recorded query in [`Metrics`] before handing
/// the record on: the query and ask use cases write exactly one record per query, whatever
/// the outcome, so counting there misses nothing and needs no code in the use cases.
pub struct MeteredHistory {
    inner: Arc<dyn HistoryStore>,
    metrics: Arc<Metrics>,
    usd_per_tib: f64,
}

impl MeteredHistory {
    /// `inner`, counted in `metrics` (costs at `usd_per_tib`).
    pub fn new(inner: Arc<dyn HistoryStore>, metrics: Arc<Metrics>, usd_per_tib: f64) -> Self {
        Self {
            inner,
            metrics,
            usd_per_tib,
        }
    }
}

#[async_trait]
impl HistoryStore for MeteredHistory {
    async fn record(&self, entry: &HistoryEntry) -> bqai_core::Result<()> {
        self.metrics.observe_entry(entry, self.usd_per_tib);
        self.inner.record(entry).await
    }

    async fn get(&self, id: &str) -> bqai_core::Result<Option<HistoryEntry>> {
        self.inner.get(id).await
    }

    async fn list(
        &self,
        filter: &HistoryFilter,
        page: &PageRequest,
    ) -> bqai_core::Result<Page<HistoryEntry>> {
        self.inner.list(filter, page).await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

/// Counts every request in the server's [`Metrics`]: method, route template, status and time
/// to the response head (a streamed body's own time is not included). Outermost but for the
/// security headers, so refusals by the host check, CORS, auth and the rate limiter are counted
/// with their statuses.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| std::sync::Arc::clone(&s.metrics));
    let method = method_label(req.method());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &result {
            Ok(res) => (res.request().match_pattern(), res.status().as_u16()),
            Err(e) => (None, e.as_response_error().status_code().as_u16()),
        };
        metrics.observe_request(
            method,
            route.unwrap_or_else(|| "unmatched".to_owned()),
            status,
            started.elapsed().as_secs_f64(),
        );
    }
    result
}

/// The method as a label: the standard ones, anything else `other` (bounded cardinality).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_gauges_are_exposed_per_table() {
        let m = Metrics::new();
        m.observe_store(&StoreStats {
            backend: "sqlite".into(),
            size_bytes: 4096,
            free_bytes: 0,
            rows: [
                ("audit_log".to_owned(), 12),
                ("query_history".to_owned(), 3),
            ]
            .into(),
            measured_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        });
        let text = m.render();
        for line in [
            "# TYPE bqai_store_size_bytes gauge",
            "bqai_store_size_bytes{backend=\"sqlite\"} 4096",
            "bqai_store_rows{backend=\"sqlite\",table=\"audit_log\"} 12",
            "bqai_store_rows{backend=\"sqlite\",table=\"query_history\"} 3",
            "bqai_store_measured_timestamp_seconds{backend=\"sqlite\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
