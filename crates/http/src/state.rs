//! `AppState`: the use cases and ports the handlers need, built once by the binary and shared
//! as `web::Data<AppState>`.

use std::sync::Arc;

use bqai_core::ask::AskService;
use bqai_core::auth::Authenticator;
use bqai_core::catalog::CatalogService;
use bqai_core::llm::Llm;
use bqai_core::model::Principal;
use bqai_core::ports::{AuditLog, Cache, HistoryStore, RateLimiter};
use bqai_core::query::QueryService;
use bqai_core::result_cache::CachedWarehouse;

/// Settings of the HTTP layer itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Default and maximum `page_size` of list endpoints.
    pub default_page_size: u32,
    /// Maximum `page_size`.
    pub max_page_size: u32,
    /// Default preview rows.
    pub default_preview_rows: u64,
    /// Requests per minute per client (0 disables rate limiting).
    pub requests_per_minute: u32,
    /// How many units a query costs against the rate limit (a catalog read costs 1).
    pub query_weight: u32,
    /// How many units an ask costs (generation, possibly an LLM call, and a query).
    pub ask_weight: u32,
    /// Failed authentications a client address may have per minute before its requests are
    /// refused (429) without looking at their credentials; 0 disables the throttle.
    pub auth_failures_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` is believed when identifying clients.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Origins allowed to call the API from a browser (CORS); empty: same origin only.
    /// `*` allows any origin (without credentials). WebSocket upgrades from a browser are
    /// accepted from these origins and the server's own.
    pub cors_origins: Vec<String>,
    /// Names (besides IP addresses, `localhost` and the bound host) requests may carry in
    /// `Host`; `*` allows any. Refusing other names defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Whether allowed reads (catalog, history, conversation reads) are audited; denials,
    /// failures, queries, asks, exports and admin calls always are.
    pub audit_reads: bool,
    /// Whether every audited call waits for its event to be stored (`auth.audit_wait`); else
    /// allowed data accesses are answered once their event is queued.
    pub audit_wait: bool,
    /// `store.history_retention_days` (0: kept forever), for analytics to say when a range
    /// reaches past what is kept.
    pub history_retention_days: f64,
    /// The WebSocket API.
    pub ws: WsSettings,
    /// Whether the API listener serves `GET /metrics` (off when `telemetry.metrics_addr`
    /// gives the metrics a listener of their own).
    pub metrics_on_api: bool,
    /// Exports (`[export]`).
    pub export: ExportSettings,
    /// The MCP server (`[mcp]`).
    pub mcp: crate::mcp::McpSettings,
}

/// Bounds of exports (`POST /api/v1/exports`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    /// Row cap of an export (`export.max_rows`), in place of `query.max_rows_limit`.
    pub max_rows: u64,
    /// An export whose LIMIT is at most this many rows is streamed inline.
    pub inline_max_rows: u64,
    /// An export whose dry run processes at most this many bytes is streamed inline.
    pub inline_max_bytes: u64,
    /// How long a download link stays valid (`export.link_ttl_secs`; never past the file).
    pub link_ttl: std::time::Duration,
    /// Jobs one key may have queued or running at once (`export.max_jobs_per_key`).
    pub max_jobs_per_key: u64,
    /// Bytes one key's jobs may write per UTC day (`export.max_bytes_per_day`).
    pub max_bytes_per_day: Option<u64>,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            max_rows: 10_000_000,
            inline_max_rows: 100_000,
            inline_max_bytes: 100 * 1024 * 1024,
            link_ttl: std::time::Duration::from_secs(3600),
            max_jobs_per_key: 3,
            max_bytes_per_day: Some(10 * 1024 * 1024 * 1024),
        }
    }
}

/// Limits and timers of the WebSocket API (`/api/v1/ws/agent`).
#[derive(Debug, Clone, PartialEq)]
pub struct WsSettings {
    /// Largest client message; a larger one is answered with an `error` (the connection
    /// stays open). Frames beyond [`WsSettings::max_frame_bytes`] end the connection.
    pub max_message_bytes: usize,
    /// Largest frame (or message assembled from continuations) read at all; beyond it the
    /// connection is closed with 1009 (message too big).
    pub max_frame_bytes: usize,
    /// How often the server pings.
    pub heartbeat_interval: std::time::Duration,
    /// A client silent this long (no frame at all, not even a pong) is disconnected.
    pub client_timeout: std::time::Duration,
    /// A connection with no client message and no ask in flight this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Events queued for one connection; a client that lets it fill is disconnected
    /// (1008) and its asks are cancelled.
    pub outbound_queue: usize,
    /// Longest wait for one event to be taken by the connection before it counts as stalled
    /// and is closed the same way.
    pub send_timeout: std::time::Duration,
    /// Asks in flight per connection; more are refused with `TOO_MANY_ASKS`.
    pub max_in_flight: usize,
    /// Open connections per server; an upgrade beyond it is refused with 503
    /// `TOO_MANY_CONNECTIONS` (each idle connection costs memory and a heartbeat timer).
    pub max_connections: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_frame_bytes: 1024 * 1024,
            heartbeat_interval: std::time::Duration::from_secs(15),
            client_timeout: std::time::Duration::from_secs(45),
            idle_timeout: std::time::Duration::from_secs(600),
            outbound_queue: 64,
            send_timeout: std::time::Duration::from_secs(10),
            max_in_flight: 3,
            max_connections: 10_000,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            default_page_size: 50,
            max_page_size: 1000,
            default_preview_rows: 10,
            requests_per_minute: 600,
            query_weight: 5,
            ask_weight: 10,
            auth_failures_per_minute: 30,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            audit_reads: true,
            audit_wait: false,
            history_retention_days: 90.0,
            ws: WsSettings::default(),
            metrics_on_api: true,
            export: ExportSettings::default(),
            mcp: crate::mcp::McpSettings::default(),
        }
    }
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// Catalog use case.
    pub catalog: CatalogService,
    /// Query use case.
    pub queries: QueryService,
    /// Ask use case.
    pub ask: Arc<AskService>,
    /// The language model behind the generator, if one is configured (for health).
    pub llm: Option<Arc<dyn Llm>>,
    /// History reads.
    pub history: Arc<dyn HistoryStore>,
    /// Analytics over the history, computed by the store.
    pub analytics: Arc<dyn bqai_core::analytics::HistoryAnalytics>,
    /// The cached warehouse (for health and cache invalidation).
    pub warehouse: Arc<CachedWarehouse>,
    /// The cache (for health).
    pub cache: Arc<dyn Cache>,
    /// Rate limiter for API calls.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Who callers are when authentication is off: one anonymous principal whose scope is
    /// the configured allow-list.
    pub anonymous: Principal,
    /// API keys, tokens and tickets; `None` when authentication is off.
    pub auth: Option<Authenticator>,
    /// Where every `/api/v1` call is recorded; `None` records nothing.
    pub audit: Option<Arc<dyn AuditLog>>,
    /// HTTP settings.
    pub settings: HttpSettings,
    /// Version string for `/health`.
    pub version: String,
    /// The WebSocket connections open on this server.
    pub ws_connections: WsConnections,
    /// Failed authentications per client: the throttle and the audit aggregation.
    pub auth_failures: crate::auth_failures::AuthFailures,
    /// The server's Prometheus metrics (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The dependency checks behind `/health` and `/health/ready`, shared for a moment.
    pub health: Arc<crate::health::HealthChecks>,
    /// The store's latest measurement by its periodic maintenance (for `/health`).
    pub store_stats: tokio::sync::watch::Receiver<Option<bqai_core::model::StoreStats>>,
    /// Export jobs: their store, the worker pool (woken on submission, told of
    /// cancellations) and the files' destination.
    pub exports: Arc<bqai_export::jobs::JobRunner>,
    /// Signs and checks export download links.
    pub links: bqai_core::export::LinkSigner,
    /// The MCP server's streamable HTTP transport (`/mcp`), shared by every worker.
    pub mcp: crate::mcp::McpTransport,
}

/// The open WebSocket connections, at most [`WsSettings::max_connections`]; clones share the
/// count. A connection holds a slot (a semaphore permit) for its whole life.
#[derive(Clone, Debug)]
pub struct WsConnections {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
    /// Asks running on all connections.
    asks: Arc<std::sync::atomic::AtomicUsize>,
}

/// One ask in flight on a WebSocket; counted until dropped (answered, failed or cancelled).
#[derive(Debug)]
pub(crate) struct AskInFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for AskInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl WsConnections {
    /// Room for `max` connections.
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            asks: Arc::default(),
        }
    }

    /// The most connections allowed.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The connections open now.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// The asks running now, on every connection.
    pub fn asks_in_flight(&self) -> usize {
        self.asks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts an ask until the returned guard is dropped.
    pub(crate) fn ask_started(&self) -> AskInFlight {
        self.asks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        AskInFlight(Arc::clone(&self.asks))
    }

    /// A slot for a new connection, unless all are taken; the slot frees itself on drop.
    pub(crate) fn try_open(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }
}
