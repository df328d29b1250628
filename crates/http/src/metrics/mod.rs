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
//! counted by [`MeteredHistory`] from the one history record every query leaves; and what the
//! port decorators of [`ports`] count around the adapters (warehouse calls, cache lookups per
//! layer, LLM requests, rate-limit refusals, conversations). Values kept elsewhere (the
//! guard's refusals, coalesced queries, queue depths, LLM slots) are read by probes registered
//! with [`Metrics::on_scrape`] when `/metrics` is scraped. Labels are bounded: routes are
//! templates (`/api/v1/history/{id}`), never paths, and requests that match no route share
//! `route="unmatched"`; no principal or SQL.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use bqai_core::export::QueueDepth;
use bqai_core::history::HistoryEntry;
use bqai_core::llm::LlmLoad;
use bqai_core::model::StoreStats;
use bqai_core::query::RejectionCounts;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

mod ports;
pub use ports::{
    MeteredCache, MeteredConversations, MeteredHistory, MeteredLlm, MeteredRateLimiter,
    MeteredWarehouse,
};

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

/// The query queue in front of the warehouse, as `/metrics` reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryQueueStats {
    /// Statements running now.
    pub running: u64,
    /// Statements waiting for a slot now.
    pub waiting: u64,
    /// Statements admitted since start (at once or after waiting).
    pub admitted: u64,
    /// Statements admitted after waiting, since start.
    pub waited: u64,
    /// What those waited, in total.
    pub wait_seconds: f64,
    /// Refused because the queue was full, since start.
    pub refused_full: u64,
    /// Refused because they waited past the deadline, since start.
    pub timed_out: u64,
}

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
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct LayerLabels {
    layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct LookupLabels {
    layer: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct CallLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct AdapterLabels {
    adapter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct AdapterOutcomeLabels {
    adapter: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ExportLabels {
    format: &'static str,
    mode: &'static str,
    /// `ok`, or the error code (jobs read theirs back from the store, as text).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct FormatLabels {
    format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// Reads a value kept elsewhere into [`Metrics`] when `/metrics` is scraped.
pub type Probe = Box<dyn Fn(&Metrics) + Send + Sync>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    ws_connections: Gauge,
    ws_asks: Gauge,
    history_queued: Gauge,
    history_dropped: Gauge,
    history_refused: Gauge,
    queue_running: Gauge,
    queue_waiting: Gauge,
    queue_admitted: Counter,
    queue_waited: Counter,
    queue_wait_seconds: Counter<f64, AtomicU64>,
    queue_refused: Family<ReasonLabels, Counter>,
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
    guard_rejections: Family<ReasonLabels, Counter>,
    cache_lookups: Family<LookupLabels, Counter>,
    cache_coalesced: Family<LayerLabels, Counter>,
    warehouse_calls: Family<CallLabels, Counter>,
    warehouse_call_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    llm_requests: Family<AdapterOutcomeLabels, Counter>,
    llm_request_duration: Family<AdapterLabels, Histogram, fn() -> Histogram>,
    llm_in_flight: Family<AdapterLabels, Gauge>,
    llm_queued: Family<AdapterLabels, Gauge>,
    rate_limited: Family<ScopeLabels, Counter>,
    quota_rejections: Counter,
    conversations_started: Counter,
    conversation_turns: Counter,
    audit_queued: Gauge,
    audit_failed: Counter,
    exports: Family<ExportLabels, Counter>,
    export_rows: Family<FormatLabels, Counter>,
    export_bytes: Family<FormatLabels, Counter>,
    export_jobs: Family<StatusLabels, Gauge>,
    export_workers_busy: Gauge,
    probes: Mutex<Vec<Probe>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
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
        let dependency_healthy = register(
            &mut registry,
            "dependency_healthy",
            "Whether a dependency (warehouse, cache, history, generator) was ok at the last health check (1), or degraded or down (0)",
            Family::<ComponentLabels, Gauge>::default(),
        );
        let ws_connections = register(
            &mut registry,
            "websocket_connections",
            "WebSocket connections open",
            Gauge::default(),
        );
        let ws_asks = register(
            &mut registry,
            "websocket_asks_in_flight",
            "Asks running on WebSocket connections",
            Gauge::default(),
        );
        let history_queued = register(
            &mut registry,
            "history_queue_depth",
            "History records waiting in memory for the store",
            Gauge::default(),
        );
        let history_dropped = register(
            &mut registry,
            "history_records_dropped",
            "History records dropped since start because the queue was full",
            Gauge::default(),
        );
        let history_refused = register(
            &mut registry,
            "history_records_refused",
            "History records the store refused for good since start",
            Gauge::default(),
        );
        let queue_running = register(
            &mut registry,
            "query_queue_running",
            "Statements running on the warehouse (slots of the query queue taken)",
            Gauge::default(),
        );
        let queue_waiting = register(
            &mut registry,
            "query_queue_waiting",
            "Statements waiting in the query queue for a slot",
            Gauge::default(),
        );
        let queue_admitted = register(
            &mut registry,
            "query_queue_admitted",
            "Statements the query queue let run, at once or after waiting",
            Counter::default(),
        );
        let queue_waited = register(
            &mut registry,
            "query_queue_waited",
            "Statements that ran after waiting in the query queue",
            Counter::default(),
        );
        let queue_wait_seconds = register(
            &mut registry,
            "query_queue_wait_seconds",
            "Time statements waited in the query queue before running (divide by query_queue_waited for the mean)",
            Counter::<f64, AtomicU64>::default(),
        );
        let queue_refused = register(
            &mut registry,
            "query_queue_refused",
            "Statements refused 503 QUEUE_FULL, by reason: full (no room to wait) or timeout (waited past query.queue_timeout_ms)",
            Family::<ReasonLabels, Counter>::default(),
        );
        let queries = register(
            &mut registry,
            "queries",
            "Queries and asks as recorded in history, by kind (sql, ask, system), outcome and dry run",
            Family::<QueryLabels, Counter>::default(),
        );
        let query_errors = register(
            &mut registry,
            "query_errors",
            "Failed and rejected queries by outcome and error code (SQL_REJECTED, COST_LIMIT_EXCEEDED, QUERY_TIMEOUT, ...)",
            Family::<ErrorLabels, Counter>::default(),
        );
        let query_duration: Family<KindLabels, Histogram, fn() -> Histogram> = register(
            &mut registry,
            "query_duration_seconds",
            "Time of a query or ask, guard to answer, by kind (dry runs excluded)",
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16))),
        );
        let bytes_processed = register(
            &mut registry,
            "warehouse_bytes_processed",
            "Bytes the warehouse processed for queries (dry runs excluded)",
            Counter::default(),
        );
        let bytes_billed = register(
            &mut registry,
            "warehouse_bytes_billed",
            "Bytes the warehouse billed for queries",
            Counter::default(),
        );
        let cost_usd = register(
            &mut registry,
            "warehouse_estimated_cost_usd",
            "Bytes billed priced at query.usd_per_tib",
            Counter::<f64, AtomicU64>::default(),
        );
        let cache_hits = register(
            &mut registry,
            "result_cache_hits",
            "Queries answered from the result cache",
            Counter::default(),
        );
        let llm_calls = register(
            &mut registry,
            "llm_calls",
            "Generation attempts by a language model, by generator",
            Family::<GeneratorLabels, Counter>::default(),
        );
        let llm_tokens = register(
            &mut registry,
            "llm_tokens",
            "Tokens sent to (input) and received from (output) language models, by generator",
            Family::<TokenLabels, Counter>::default(),
        );
        let llm_cost_usd = register(
            &mut registry,
            "llm_cost_usd",
            "What language models cost, reported or priced by [llm.prices], by generator",
            Family::<GeneratorLabels, Counter<f64, AtomicU64>>::default(),
        );
        let http_requests = register(
            &mut registry,
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            Family::<RequestLabels, Counter>::default(),
        );
        let http_duration: Family<RouteLabels, Histogram, fn() -> Histogram> = register(
            &mut registry,
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), by method and route template",
            Family::new_with_constructor(|| {
                // 0.5 ms to ~16 s: a cached read to a long query.
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        );
        let store_size = register(
            &mut registry,
            "store_size_bytes",
            "Bytes of the durable store on disk (SQLite file and WAL, or PostgreSQL tables)",
            Family::<Labels, Gauge>::default(),
        );
        let store_free = register(
            &mut registry,
            "store_free_bytes",
            "Bytes of free pages in the store not yet given back (SQLite)",
            Family::<Labels, Gauge>::default(),
        );
        let store_rows = register(
            &mut registry,
            "store_rows",
            "Rows per table of the durable store",
            Family::<Labels, Gauge>::default(),
        );
        let store_measured = register(
            &mut registry,
            "store_measured_timestamp_seconds",
            "When the store was last measured (Unix time)",
            Family::<Labels, Gauge>::default(),
        );
        let guard_rejections = register(
            &mut registry,
            "guard_rejections",
            "Statements the SQL guard refused, by reason (DML, DDL, DATASET_NOT_ALLOWED, ...); LLM attempts included",
            Family::<ReasonLabels, Counter>::default(),
        );
        let cache_lookups = register(
            &mut registry,
            "cache_lookups",
            "Cache lookups by layer (result, metadata, question) and outcome (hit, miss, error)",
            Family::<LookupLabels, Counter>::default(),
        );
        let cache_coalesced = register(
            &mut registry,
            "cache_coalesced",
            "Queries that joined an identical query in progress instead of running, by layer",
            Family::<LayerLabels, Counter>::default(),
        );
        let warehouse_calls = register(
            &mut registry,
            "warehouse_calls",
            "Calls that reached the warehouse (cache hits excluded), by operation (dry_run, execute, get_table, ...) and outcome (ok or an error code)",
            Family::<CallLabels, Counter>::default(),
        );
        let warehouse_call_duration: Family<OperationLabels, Histogram, fn() -> Histogram> =
            register(
                &mut registry,
                "warehouse_call_duration_seconds",
                "Time of a warehouse call, by operation",
                Family::new_with_constructor(|| {
                    Histogram::new(exponential_buckets(0.001, 2.0, 16))
                }),
            );
        let llm_requests = register(
            &mut registry,
            "llm_requests",
            "Completions asked of a language model, by adapter (claude-cli, anthropic, openai) and outcome (ok or LLM_TIMEOUT, LLM_BUSY, ...)",
            Family::<AdapterOutcomeLabels, Counter>::default(),
        );
        let llm_request_duration: Family<AdapterLabels, Histogram, fn() -> Histogram> = register(
            &mut registry,
            "llm_request_duration_seconds",
            "Time of a completion as the caller sees it (waiting for a slot included), by adapter",
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.05, 2.0, 14))),
        );
        let llm_in_flight = register(
            &mut registry,
            "llm_in_flight",
            "Completions running (claude processes, open API requests), by adapter",
            Family::<AdapterLabels, Gauge>::default(),
        );
        let llm_queued = register(
            &mut registry,
            "llm_queued",
            "Callers waiting for a free language-model slot, by adapter",
            Family::<AdapterLabels, Gauge>::default(),
        );
        let rate_limited = register(
            &mut registry,
            "rate_limit_rejections",
            "Requests refused by a rate limit, by scope (key, ip, authfail)",
            Family::<ScopeLabels, Counter>::default(),
        );
        // Every scope listed from the start, so a rate of zero is a series, not a gap.
        for scope in ["key", "ip", "authfail"] {
            let _ = rate_limited.get_or_create(&ScopeLabels { scope });
        }
        let quota_rejections = register(
            &mut registry,
            "quota_rejections",
            "Queries refused because the caller's daily byte quota was spent",
            Counter::default(),
        );
        let conversations_started = register(
            &mut registry,
            "conversations_started",
            "Conversations started",
            Counter::default(),
        );
        let conversation_turns = register(
            &mut registry,
            "conversation_turns",
            "Turns added to conversations",
            Counter::default(),
        );
        let audit_queued = register(
            &mut registry,
            "audit_queue_depth",
            "Audit events waiting for the writer",
            Gauge::default(),
        );
        let audit_failed = register(
            &mut registry,
            "audit_records_failed",
            "Audit events the store refused (their requests failed; none is dropped silently)",
            Counter::default(),
        );
        let exports = register(
            &mut registry,
            "exports",
            "Exports ended, by format, mode (inline or job) and outcome (ok or the error code)",
            Family::<ExportLabels, Counter>::default(),
        );
        let export_rows = register(
            &mut registry,
            "export_rows",
            "Rows written into export files, by format",
            Family::<FormatLabels, Counter>::default(),
        );
        let export_bytes = register(
            &mut registry,
            "export_bytes",
            "Bytes of export files written, by format",
            Family::<FormatLabels, Counter>::default(),
        );
        let export_jobs = register(
            &mut registry,
            "export_jobs",
            "Export jobs in the store's queue (every replica's), by status: queued or running; counted every export.heartbeat_secs",
            Family::<StatusLabels, Gauge>::default(),
        );
        let export_workers_busy = register(
            &mut registry,
            "export_workers_busy",
            "Export workers of this server running a job now (of export.workers)",
            Gauge::default(),
        );
        Self {
            exports,
            export_rows,
            export_bytes,
            export_jobs,
            export_workers_busy,
            guard_rejections,
            cache_lookups,
            cache_coalesced,
            warehouse_calls,
            warehouse_call_duration,
            llm_requests,
            llm_request_duration,
            llm_in_flight,
            llm_queued,
            rate_limited,
            quota_rejections,
            conversations_started,
            conversation_turns,
            audit_queued,
            audit_failed,
            probes: Mutex::new(Vec::new()),
            registry,
            ws_connections,
            ws_asks,
            history_queued,
            history_dropped,
            history_refused,
            queue_running,
            queue_waiting,
            queue_admitted,
            queue_waited,
            queue_wait_seconds,
            queue_refused,
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
        if entry.error_code.as_deref() == Some("QUOTA_EXCEEDED") {
            self.quota_rejections.inc();
        }
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

    /// Sets the WebSocket gauges: connections open and asks running on them.
    pub fn observe_websockets(&self, ws_connections: usize, ws_asks: usize) {
        self.ws_connections.set(gauge_value(ws_connections));
        self.ws_asks.set(gauge_value(ws_asks));
    }

    /// Sets the history queue's gauges.
    pub fn observe_history_queue(&self, history: HistoryQueueStats) {
        self.history_queued.set(gauge_value(history.queued));
        self.history_dropped.set(gauge_value(history.dropped));
        self.history_refused.set(gauge_value(history.refused));
    }

    /// Sets the query queue's gauges and counters.
    pub fn observe_query_queue(&self, queue: QueryQueueStats) {
        self.queue_running.set(gauge_value(queue.running));
        self.queue_waiting.set(gauge_value(queue.waiting));
        set_counter(&self.queue_admitted, queue.admitted);
        set_counter(&self.queue_waited, queue.waited);
        // An f64 counter keeps its value's bits.
        self.queue_wait_seconds
            .inner()
            .store(queue.wait_seconds.to_bits(), Ordering::Relaxed);
        for (reason, n) in [("full", queue.refused_full), ("timeout", queue.timed_out)] {
            set_counter(
                &self.queue_refused.get_or_create(&ReasonLabels { reason }),
                n,
            );
        }
    }

    /// Sets the store's gauges from a measurement.
    pub fn observe_store(&self, stats: &StoreStats) {
        let backend: Labels = vec![("backend", stats.backend.clone())];
        self.store_size
            .get_or_create(&backend)
            .set(gauge_value(stats.size_bytes));
        self.store_free
            .get_or_create(&backend)
            .set(gauge_value(stats.free_bytes));
        self.store_measured
            .get_or_create(&backend)
            .set(stats.measured_at.timestamp());
        for (table, rows) in &stats.rows {
            self.store_rows
                .get_or_create(&vec![
                    ("backend", stats.backend.clone()),
                    ("table", table.clone()),
                ])
                .set(gauge_value(*rows));
        }
    }

    /// Registers `probe`, run at each scrape before the text is rendered.
    pub fn on_scrape(&self, probe: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(probe));
    }

    /// Sets the guard's refusal counters (every reason, zeros included).
    pub fn observe_guard(&self, counts: &RejectionCounts) {
        for (reason, n) in counts.snapshot() {
            set_counter(
                &self.guard_rejections.get_or_create(&ReasonLabels {
                    reason: reason.as_str(),
                }),
                n,
            );
        }
    }

    /// Sets how many queries of `layer` joined a run in progress.
    pub fn observe_coalesced(&self, layer: &'static str, joined: u64) {
        set_counter(
            &self.cache_coalesced.get_or_create(&LayerLabels { layer }),
            joined,
        );
    }

    /// Counts one cache lookup.
    pub fn observe_cache_lookup(&self, layer: &'static str, outcome: &'static str) {
        self.cache_lookups
            .get_or_create(&LookupLabels { layer, outcome })
            .inc();
    }

    /// Counts one warehouse call (`error`: its code, `None` when it succeeded).
    pub fn observe_warehouse_call(
        &self,
        operation: &'static str,
        error: Option<&'static str>,
        took: Duration,
    ) {
        self.warehouse_calls
            .get_or_create(&CallLabels {
                operation,
                outcome: error.unwrap_or("ok"),
            })
            .inc();
        self.warehouse_call_duration
            .get_or_create(&OperationLabels { operation })
            .observe(took.as_secs_f64());
    }

    /// Counts one completion of `adapter` (`error`: its code, `None` when it succeeded).
    pub fn observe_llm_request(&self, adapter: &str, error: Option<&'static str>, took: Duration) {
        self.llm_requests
            .get_or_create(&AdapterOutcomeLabels {
                adapter: adapter.to_owned(),
                outcome: error.unwrap_or("ok"),
            })
            .inc();
        self.llm_request_duration
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Sets how busy `adapter` is.
    pub fn observe_llm_load(&self, adapter: &str, load: LlmLoad) {
        let labels = AdapterLabels {
            adapter: adapter.to_owned(),
        };
        self.llm_in_flight
            .get_or_create(&labels)
            .set(gauge_value(load.in_flight));
        self.llm_queued
            .get_or_create(&labels)
            .set(gauge_value(load.queued));
    }

    /// Counts one request refused by the rate limit of `scope`.
    pub fn observe_rate_limited(&self, scope: &'static str) {
        self.rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }

    /// Counts one export that ended (`error`: its code, `None` when the file is complete) and
    /// the rows and bytes it wrote.
    pub fn observe_export(
        &self,
        format: &'static str,
        mode: &'static str,
        error: Option<&str>,
        rows: u64,
        bytes: u64,
    ) {
        self.exports
            .get_or_create(&ExportLabels {
                format,
                mode,
                outcome: error.unwrap_or("ok").to_owned(),
            })
            .inc();
        let labels = FormatLabels { format };
        self.export_rows.get_or_create(&labels).inc_by(rows);
        self.export_bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// Counts a conversation started.
    pub fn observe_conversation_started(&self) {
        self.conversations_started.inc();
    }

    /// Counts a turn added to a conversation.
    pub fn observe_conversation_turn(&self) {
        self.conversation_turns.inc();
    }

    /// Sets the export queue (when it was counted) and this server's busy workers.
    pub fn observe_export_queue(&self, depth: Option<QueueDepth>, busy: usize) {
        if let Some(depth) = depth {
            for (status, n) in [("queued", depth.queued), ("running", depth.running)] {
                self.export_jobs
                    .get_or_create(&StatusLabels { status })
                    .set(gauge_value(n));
            }
        }
        self.export_workers_busy.set(gauge_value(busy));
    }

    /// Sets the audit writer's queue depth and refused events.
    pub fn observe_audit(&self, queued: usize, failed: u64) {
        self.audit_queued.set(gauge_value(queued));
        set_counter(&self.audit_failed, failed);
    }

    /// The text exposition (probes run first).
    pub fn render(&self) -> String {
        for probe in self
            .probes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            probe(self);
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        text
    }
}

/// Registers `metric` under `name` and hands it back (the registry keeps a clone sharing its
/// values).
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

/// A count as a gauge's value (gauges are `i64`; a count beyond it reads as the maximum).
fn gauge_value(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// Sets a counter kept elsewhere (a monotonic count read at scrape time).
fn set_counter(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
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
