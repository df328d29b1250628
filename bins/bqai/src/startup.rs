//! Wiring: configuration → adapters → use cases → server.
//!
//! [`Services::build`] chooses and builds the adapters named by the settings (the embedded
//! ones — DataFusion, moka/governor, SQLite — or BigQuery, Redis, PostgreSQL) and composes
//! the use cases;
//! [`Application::build`] binds the listener (port 0 in tests) and creates the server.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bqai_bigquery::BigQueryWarehouse;
use bqai_core::ask::{AskService, LlmGenerator, SqlGenerator};
use bqai_core::auth::Authenticator;
use bqai_core::catalog::CatalogService;
use bqai_core::llm::Llm;
use bqai_core::model::Principal;
use bqai_core::plan_cache::PlanCache;
use bqai_core::ports::{
    AuditLog, Cache, ConversationStore, HistoryStore, KeyStore, NonceStore, RateLimiter, Warehouse,
};
use bqai_core::query::QueryService;
use bqai_core::resilience::{FallbackNonceStore, FallbackRateLimiter};
use bqai_core::result_cache::CachedWarehouse;
use bqai_core::semantic::SemanticModel;
use bqai_core::system::GuardedSystemQueries;
use bqai_http::AppState;
use bqai_http::metrics::{
    HistoryQueueStats, MeteredCache, MeteredConversations, MeteredHistory, MeteredLlm,
    MeteredRateLimiter, MeteredWarehouse, QueryQueueStats,
};
use bqai_local::LocalWarehouse;
use bqai_memory::{
    BufferedHistory, CachedKeyStore, CaughtUpAnalytics, MemoryCache, MemoryRateLimiter, QueryQueue,
    QueuedHistory, QueuedWarehouse,
};
use bqai_planner::Planner;
use bqai_redis::{
    KeyChange, RedisCache, RedisClient, RedisConversationStore, RedisKeyChanges, RedisNonceStore,
    RedisRateLimiter,
};
use bqai_store::{Store, StoreOptions};

use crate::auth::check_bind;
use crate::config::{Settings, WarehouseSettings};
use crate::maintenance::{Maintenance, Retention};
use bqai_export::jobs::JobRunner;

/// The composed use cases and the ports behind them.
#[derive(Clone)]
pub struct Services {
    /// Catalog use case.
    pub catalog: CatalogService,
    /// Query use case.
    pub queries: QueryService,
    /// The warehouse with the cache in front.
    pub warehouse: Arc<CachedWarehouse>,
    /// The query queue between the cache and the warehouse (`query.max_concurrent`).
    pub query_queue: Arc<QueryQueue>,
    /// The cache.
    pub cache: Arc<dyn Cache>,
    /// History.
    pub history: Arc<dyn HistoryStore>,
    /// Analytics over the history: the store itself, read once the writer queue caught up
    /// (the outage buffer in front only holds records the store could not take yet).
    pub analytics: Arc<dyn bqai_core::analytics::HistoryAnalytics>,
    /// Rate limiter.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// The principal of unauthenticated calls.
    pub anonymous: Principal,
    /// Ask use case.
    pub ask: Arc<AskService>,
    /// The language model behind the generator, when one is configured.
    pub llm: Option<Arc<dyn Llm>>,
    /// The writer queue history records go through (flushed at shutdown, first).
    pub history_queue: Arc<QueuedHistory>,
    /// The outage buffer in front of the store (flushed at shutdown).
    pub history_buffer: Arc<BufferedHistory>,
    /// The server's Prometheus metrics (queries are counted as history records them).
    pub metrics: Arc<bqai_http::Metrics>,
    /// API keys (and tokens); `None` when authentication is off.
    pub auth: Option<Authenticator>,
    /// The audit log's writer (group commit; allowed calls only queue their events, so it is
    /// flushed at shutdown); `None` when `auth.audit` is off.
    pub audit: Option<Arc<bqai_memory::BatchedAuditLog>>,
    /// The store's upkeep: retention purges and measurements (run by a serving
    /// [`Application`]).
    pub maintenance: Arc<Maintenance>,
    /// Export jobs: their store, worker pool and files (the pool is started by a serving
    /// [`Application`]).
    pub exports: Arc<JobRunner>,
}

impl Services {
    /// Writes every history record made so far — the writer's queue, then what the outage
    /// buffer holds — waiting up to `deadline` for each; for commands that exit right after.
    pub async fn flush_history(&self, deadline: Duration) {
        self.history_queue.flush(deadline).await;
        self.history_buffer.flush(deadline).await;
    }

    /// Builds every adapter named by `settings` and the use cases over them.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        check_data_dir(&settings.data_dir)?;
        let warehouse = build_warehouse(settings).await?;
        Self::assemble(settings, warehouse).await
    }

    /// Builds the remaining adapters around an already built warehouse (tests share one
    /// read-only demo warehouse between many apps this way).
    pub async fn assemble(
        settings: &Settings,
        warehouse: Arc<dyn Warehouse>,
    ) -> anyhow::Result<Self> {
        let llm = bqai_llm::build(&settings.llm, &settings.data_dir)
            .map_err(|e| anyhow::anyhow!("could not set up the language model: {e}"))?;
        // The generator over `llm` is built by `compose`, around the metered model.
        Self::compose(settings, warehouse, None, llm).await
    }

    /// Like [`Services::assemble`] with a given SQL generator (tests script one).
    pub async fn assemble_with(
        settings: &Settings,
        warehouse: Arc<dyn Warehouse>,
        generator: Arc<dyn SqlGenerator>,
        llm: Option<Arc<dyn Llm>>,
    ) -> anyhow::Result<Self> {
        Self::compose(settings, warehouse, Some(generator), llm).await
    }

    /// Everything around `warehouse`; without a `generator`, one over `llm` if there is one,
    /// else the built-in planner, whose value sampling runs through the query service built
    /// here. Every port is wrapped in its metrics decorator on the way (`bqai_http::metrics`).
    async fn compose(
        settings: &Settings,
        warehouse: Arc<dyn Warehouse>,
        generator: Option<Arc<dyn SqlGenerator>>,
        llm: Option<Arc<dyn Llm>>,
    ) -> anyhow::Result<Self> {
        // One pool and one circuit breaker for everything kept in Redis.
        let redis = redis_client(settings)?;
        if let Some(client) = &redis
            && let Err(e) = client.ping().await
        {
            // Not fatal: the cache is bypassed while Redis is down (see build_cache), and
            // /health says so; but an operator starting the service should hear it now.
            tracing::warn!(
                redis = %client.options().redacted_url(),
                error = %e,
                "Redis does not answer at start: running without the shared cache until it does"
            );
        }
        let metrics = Arc::new(bqai_http::Metrics::new());
        let (cache, rate_limiter) = build_cache(settings, redis.as_ref());
        let cache: Arc<dyn Cache> = Arc::new(MeteredCache::new(cache, Arc::clone(&metrics)));
        let rate_limiter: Arc<dyn RateLimiter> =
            Arc::new(MeteredRateLimiter::new(rate_limiter, Arc::clone(&metrics)));
        // Metered under the queue and the cache, so only calls that reach the warehouse are
        // counted, and timed without their wait for a slot; the queue under the cache, so a
        // cache hit (or a query joining an identical one in progress) never waits.
        let cache_policy = settings.cache_policy();
        let query_queue = QueryQueue::new(settings.queue_limits());
        let warehouse = Arc::new(CachedWarehouse::new(
            Arc::new(QueuedWarehouse::new(
                Arc::new(MeteredWarehouse::new(warehouse, Arc::clone(&metrics))),
                Arc::clone(&query_queue),
            )),
            cache.clone(),
            cache_policy.clone(),
        ));
        let probed = Arc::downgrade(&query_queue);
        metrics.on_scrape(move |m| {
            if let Some(q) = probed.upgrade() {
                let s = q.stats();
                m.observe_query_queue(QueryQueueStats {
                    running: s.running,
                    waiting: s.waiting,
                    admitted: s.admitted,
                    waited: s.waited,
                    wait_seconds: s.wait_micros as f64 / 1e6,
                    refused_full: s.refused_full,
                    timed_out: s.timed_out,
                });
            }
        });
        // Probes hold weak references: the probed objects hold the metrics themselves.
        let coalescing = Arc::downgrade(&warehouse);
        metrics.on_scrape(move |m| {
            if let Some(w) = coalescing.upgrade() {
                m.observe_coalesced("result", w.coalesced());
            }
        });
        let llm =
            llm.map(|llm| Arc::new(MeteredLlm::new(llm, Arc::clone(&metrics))) as Arc<dyn Llm>);
        if let Some(llm) = &llm {
            let adapter = llm.info().kind;
            let probed = Arc::downgrade(llm);
            metrics.on_scrape(move |m| {
                if let Some(load) = probed.upgrade().and_then(|llm| llm.load()) {
                    m.observe_llm_load(&adapter, load);
                }
            });
        }

        let store = open_store(settings).await?;
        // While the store is down, records wait in memory and are written when it returns.
        let history_buffer = BufferedHistory::new(store.history(), settings.store.buffer_capacity);
        history_buffer.spawn_flusher(Duration::from_secs(1));
        // Off the request path: a query hands its record to one writer, which stores what
        // queued up meanwhile as one insert (group commit); flushed at shutdown.
        let history_queue = QueuedHistory::spawn(
            history_buffer.clone(),
            HISTORY_QUEUE,
            HISTORY_BATCH,
            Duration::from_millis(settings.store.history_linger_ms),
        );
        // Every recorded query is also counted for /metrics on its way to the queue.
        let history: Arc<dyn HistoryStore> = Arc::new(MeteredHistory::new(
            history_queue.clone(),
            Arc::clone(&metrics),
            settings.query.usd_per_tib,
        ));
        let buffer = history_buffer.clone();
        let queue = Arc::downgrade(&history_queue);
        metrics.on_scrape(move |m| {
            let waiting = queue.upgrade().map_or(0, |q| q.pending());
            m.observe_history_queue(HistoryQueueStats {
                queued: u64::try_from(buffer.queued() + waiting).unwrap_or(u64::MAX),
                dropped: buffer.dropped(),
                refused: buffer.refused(),
            });
        });

        let limits = settings.query_limits();
        let anonymous = Principal::anonymous(limits.allowed.clone());
        let catalog = CatalogService::new(
            warehouse.clone(),
            limits.allowed.clone(),
            settings.query.max_preview_rows,
        );
        // Verdicts (guard + dry run) share the cache, its invalidation and the metadata TTL.
        let plans = Arc::new(PlanCache::new(cache.clone(), cache_policy.metadata_ttl));
        let queries = QueryService::new(warehouse.clone(), history.clone(), limits)
            .with_plan_cache(plans)
            .with_usage_ledger(store.usage())
            .with_sql_in_traces(settings.telemetry.record_sql)
            .with_paging(bqai_core::paging::Paging {
                // Spooled pages share the cache (Redis when configured, so any replica
                // reads them) under their own key namespace.
                spool: cache.clone(),
                signer: crate::auth::page_signer(settings)?,
                policy: settings.paging_policy(),
            });
        let rejections = queries.rejections();
        metrics.on_scrape(move |m| m.observe_guard(&rejections));
        let auth = crate::auth::authenticator(
            settings,
            key_store(settings, store.keys(), redis.as_ref()),
            nonce_store(redis.as_ref()),
        )?;
        // Group commit: concurrent calls share one transaction; denials and failures wait for
        // their event, allowed calls only queue it (`auth.audit_wait`; docs/benchmarks.md).
        let audit = settings.auth.audit.then(|| {
            let log = bqai_memory::BatchedAuditLog::spawn(store.audit(), AUDIT_BATCH, AUDIT_QUEUE);
            let probed = Arc::downgrade(&log);
            metrics.on_scrape(move |m| {
                if let Some(log) = probed.upgrade() {
                    m.observe_audit(log.queued(), log.failed());
                }
            });
            log
        });
        let llm_generator = llm.as_ref().map(|llm| {
            Arc::new(LlmGenerator::new(llm.clone(), settings.llm.max_tokens))
                as Arc<dyn SqlGenerator>
        });
        let generator = generator.or(llm_generator).unwrap_or_else(|| {
            if settings.ask.sample_values {
                Arc::new(Planner::new(Arc::new(GuardedSystemQueries::new(
                    queries.clone(),
                    GuardedSystemQueries::PLANNER,
                    settings.sampling_limits(),
                ))))
            } else {
                Arc::new(Planner::without_sampling())
            }
        });
        let mut ask_settings = settings.ask_settings();
        if ask_settings.default_dataset.is_none() && settings.demo_only() {
            ask_settings.default_dataset = Some(bqai_local::demo::DEMO_DATASET.to_string());
        }
        let ask = Arc::new(
            AskService::new(
                catalog.clone(),
                queries.clone(),
                generator,
                history.clone(),
                Some(cache.clone()),
                semantic_models(settings)?,
                ask_settings,
            )
            .with_conversations(
                Arc::new(MeteredConversations::new(
                    build_conversations(settings, &store, redis.as_ref())?,
                    Arc::clone(&metrics),
                )),
                settings.conversation_settings(),
            ),
        );
        let exports = Arc::new(export_runner(settings, &store, &queries, &metrics)?);
        let probed = Arc::downgrade(&exports);
        metrics.on_scrape(move |m| {
            if let Some(runner) = probed.upgrade() {
                m.observe_export_queue(runner.queue_depth(), runner.busy_workers());
            }
        });
        Ok(Self {
            catalog,
            queries,
            warehouse,
            query_queue,
            cache,
            history,
            analytics: Arc::new(CaughtUpAnalytics::new(
                Arc::clone(&history_queue),
                store.analytics(),
            )),
            rate_limiter,
            anonymous,
            ask,
            llm,
            history_queue,
            history_buffer,
            metrics,
            auth,
            audit,
            maintenance: Arc::new(Maintenance::new(
                store.clone(),
                Retention::from_settings(settings),
            )),
            exports,
        })
    }
}

/// The export job runner over the store's job queue, counting each run's end in `metrics`.
fn export_runner(
    settings: &Settings,
    store: &Store,
    queries: &QueryService,
    metrics: &Arc<bqai_http::Metrics>,
) -> anyhow::Result<JobRunner> {
    let destination = settings
        .export
        .destination(&settings.data_dir)
        .map_err(anyhow::Error::msg)?;
    let metrics = Arc::clone(metrics);
    Ok(JobRunner::new(
        queries.clone(),
        store.export_jobs(),
        destination,
        settings.export.jobs(),
    )
    .with_observer(Arc::new(move |job, code| {
        let format = bqai_export::Format::parse(&job.format).map_or("unknown", |f| f.as_str());
        let (rows, bytes) = if code.is_none() {
            (job.rows, job.bytes)
        } else {
            (0, 0)
        };
        metrics.observe_export(format, "job", code, rows, bytes);
    })))
}

/// The store of `store.url`, migrated unless `store.migrate_on_start` is off (the server and
/// the CLI commands that write to the store open it alike).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.store_url(), StoreOptions::default())
        .await
        .with_context(|| {
            format!(
                "could not open the store at {}",
                redact(&settings.store_url())
            )
        })?;
    if settings.store.migrate_on_start {
        store
            .migrate()
            .await
            .context("could not migrate the store")?;
    }
    Ok(store)
}

/// The Redis client of `cache.url`, if one is set (nothing connects yet).
pub fn redis_client(settings: &Settings) -> anyhow::Result<Option<RedisClient>> {
    if settings.cache.url.is_empty() {
        return Ok(None);
    }
    let client = RedisClient::new(settings.redis_options())
        .map_err(|e| anyhow::anyhow!("cache.url: {e}"))?;
    Ok(Some(client))
}

/// The cache and rate limiter: in-process, or shared through `redis` (the client of
/// `cache.url`) when there is one (the limiter then falls back to the in-process one while
/// Redis is down; the cache is bypassed, since `CachedWarehouse` treats its errors as misses).
pub fn build_cache(
    settings: &Settings,
    redis: Option<&RedisClient>,
) -> (Arc<dyn Cache>, Arc<dyn RateLimiter>) {
    let Some(client) = redis else {
        return (
            Arc::new(MemoryCache::new(settings.cache.max_bytes)),
            Arc::new(MemoryRateLimiter::new()),
        );
    };
    tracing::info!(redis = %client.options().redacted_url(), "cache and rate limits are shared through Redis");
    let limiter = FallbackRateLimiter::new(
        Arc::new(RedisRateLimiter::from_client(client.clone())),
        Arc::new(MemoryRateLimiter::new()),
    );
    (
        Arc::new(RedisCache::from_client(client.clone())),
        Arc::new(limiter),
    )
}

/// The key store the authenticator reads: `keys`, with verified keys' records kept for
/// `auth.key_cache_ttl_secs` (0: read every time). With Redis, every change made through it is
/// announced to the other replicas, and theirs are heard here (a listener task on its own
/// connection), so a revocation applies everywhere at once.
fn key_store(
    settings: &Settings,
    keys: Arc<dyn KeyStore>,
    redis: Option<&RedisClient>,
) -> Arc<dyn KeyStore> {
    let ttl = settings.auth.key_cache_ttl_secs;
    if ttl == 0 || settings.auth.mode == crate::config::AuthMode::Off {
        return keys;
    }
    let cached = CachedKeyStore::new(keys, Duration::from_secs(ttl));
    let Some(client) = redis else {
        return Arc::new(cached);
    };
    let changes = RedisKeyChanges::from_client(client.clone());
    let cached = Arc::new(cached.with_notifier(Arc::new(changes.clone())));
    // Weak: the listener must not keep the store alive; it idles once the server is gone.
    let heard = Arc::downgrade(&cached);
    changes.listen(move |change| {
        if let Some(keys) = heard.upgrade() {
            match change {
                KeyChange::Key(id) => keys.invalidate(&id),
                KeyChange::All => keys.invalidate_all(),
            }
        }
    });
    cached
}

/// Where used WebSocket tickets are remembered: Redis when there is one (falling back to the
/// process while it is down), else the process.
fn nonce_store(redis: Option<&RedisClient>) -> Arc<dyn NonceStore> {
    let local: Arc<dyn NonceStore> = Arc::new(bqai_memory::MemoryNonceStore::default());
    match redis {
        Some(client) => Arc::new(FallbackNonceStore::new(
            Arc::new(RedisNonceStore::from_client(client.clone())),
            local,
        )),
        None => local,
    }
}

/// The conversation store `conversations.store` names.
fn build_conversations(
    settings: &Settings,
    store: &Store,
    redis: Option<&RedisClient>,
) -> anyhow::Result<Arc<dyn ConversationStore>> {
    let ttl = Duration::from_secs(settings.conversations.ttl_secs);
    Ok(match settings.conversations.store.as_str() {
        "redis" => {
            // The settings check refuses `redis` without `cache.url`.
            let client = redis.context("conversations.store = \"redis\" needs cache.url")?;
            tracing::info!(redis = %client.options().redacted_url(), "conversations are kept in Redis");
            Arc::new(RedisConversationStore::from_client(client.clone(), ttl))
        }
        "sql" => {
            tracing::info!("conversations are kept in the SQL store");
            spawn_conversation_purge(store.clone(), PURGE_INTERVAL);
            store.conversations(ttl)
        }
        _ => Arc::new(bqai_memory::MemoryConversationStore::new(
            ttl,
            settings.conversations.max_conversations,
        )),
    })
}

/// Most audit events written in one transaction.
const AUDIT_BATCH: usize = 256;
/// Audit events waiting for the writer before callers wait for room.
const AUDIT_QUEUE: usize = 4096;

/// History records waiting for the writer before callers wait for room (the most a crash can
/// lose), and most records per insert (far below SQLite's and PostgreSQL's parameter limits).
const HISTORY_QUEUE: usize = 4096;
const HISTORY_BATCH: usize = 256;

/// How often expired conversations are deleted from the SQL store (creates purge a few too).
const PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// Deletes expired conversations from the SQL store every `interval`, so a store that stops
/// getting new conversations does not keep old ones forever. Failures are logged and retried
/// at the next tick.
fn spawn_conversation_purge(store: Store, interval: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match store.purge_expired_conversations().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired conversations deleted"),
                Err(e) => tracing::warn!(error = %e, "could not purge expired conversations"),
            }
        }
    });
}

/// The semantic models: the demo's when the demo dataset is on, then the configured files.
fn semantic_models(settings: &Settings) -> anyhow::Result<Vec<SemanticModel>> {
    let mut models = Vec::new();
    if settings.demo_enabled() {
        models.push(
            SemanticModel::from_toml(bqai_local::DEMO_SEMANTIC_MODEL)
                .map_err(|e| anyhow::anyhow!("the demo semantic model is invalid: {e}"))?,
        );
    }
    for path in &settings.ask.semantic_models {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read semantic model {}", path.display()))?;
        let model = SemanticModel::from_toml(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        models.retain(|m| m.dataset != model.dataset);
        models.push(model);
    }
    Ok(models)
}

/// Builds the warehouse adapter chosen by `[warehouse] kind`.
pub async fn build_warehouse(settings: &Settings) -> anyhow::Result<Arc<dyn Warehouse>> {
    Ok(match &settings.warehouse {
        WarehouseSettings::Local(config) => Arc::new(
            LocalWarehouse::new(config.clone())
                .await
                .context("could not start the embedded warehouse")?,
        ),
        WarehouseSettings::Bigquery(config) => {
            let warehouse = BigQueryWarehouse::connect(config.clone())
                .await
                .map_err(|e| anyhow::anyhow!("could not set up BigQuery: {e}"))?;
            tracing::info!(
                project = %config.project,
                location = config.location.as_deref().unwrap_or("-"),
                endpoint = %config.api_root(),
                "queries run on BigQuery"
            );
            Arc::new(warehouse)
        }
    })
}

/// A data directory that exists must be a directory: said plainly, rather than as the
/// "File exists (os error 17)" of the first `create_dir_all` under it.
fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "the data directory {} is a file, not a directory: point --data-dir (or data_dir, \
             BQAI__DATA_DIR) at a directory",
            dir.display()
        ),
        _ => Ok(()),
    }
}

/// Hides credentials in a URL before it is logged or shown.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The handlers' state over built services, with the background work it started (the store's
/// upkeep, the export workers) and what must be written before the process exits. `bqai
/// serve` runs an HTTP server over it, `bqai mcp` the MCP server on stdio.
pub struct Runtime {
    /// What every handler reads.
    pub state: actix_web::web::Data<AppState>,
    history_queue: Arc<QueuedHistory>,
    history_buffer: Arc<BufferedHistory>,
    shutdown_timeout: Duration,
    /// Failed-authentication counts not yet written (to the audit log, at shutdown).
    auth_failures: bqai_http::auth_failures::AuthFailures,
    /// The audit writer: the failed-authentication counts and what allowed calls queued are
    /// stored before the process exits.
    audit: Option<Arc<bqai_memory::BatchedAuditLog>>,
    /// The export workers: stopped (their jobs put back in the queue) after the server.
    export_workers: (
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<()>,
    ),
}

impl Runtime {
    /// Builds the state over `services` and starts their background work.
    pub fn start(settings: &Settings, services: Services) -> anyhow::Result<Self> {
        let history_queue = services.history_queue.clone();
        let history_buffer = services.history_buffer.clone();
        let auth_failures = bqai_http::auth_failures::AuthFailures::default();
        let audit = services.audit.clone();
        let store_stats = services.maintenance.stats();
        services.maintenance.clone().spawn(Duration::from_secs(
            settings.store.maintenance_interval_secs,
        ));
        let stop_exports = tokio_util::sync::CancellationToken::new();
        let export_workers = Arc::clone(&services.exports).spawn(stop_exports.clone());
        let links = crate::auth::link_signer(settings)?;
        let http_settings = settings.http();
        let state = AppState {
            mcp: bqai_http::mcp::McpTransport::new(&http_settings),
            exports: services.exports,
            links,
            catalog: services.catalog,
            queries: services.queries,
            history: services.history,
            analytics: services.analytics,
            warehouse: services.warehouse,
            cache: services.cache,
            rate_limiter: services.rate_limiter,
            anonymous: services.anonymous,
            auth: services.auth,
            audit: services.audit.map(|log| log as Arc<dyn AuditLog>),
            ask: services.ask,
            llm: services.llm,
            ws_connections: bqai_http::WsConnections::new(settings.ws.max_connections),
            auth_failures: auth_failures.clone(),
            settings: http_settings,
            version: env!("CARGO_PKG_VERSION").to_string(),
            store_stats,
            metrics: services.metrics,
            health: Arc::new(bqai_http::health::HealthChecks::new(
                bqai_http::health::CHECK_TTL,
                bqai_http::health::CHECK_DEADLINE,
            )),
        };
        Ok(Self {
            state: actix_web::web::Data::new(state),
            history_queue,
            history_buffer,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
            auth_failures,
            audit,
            export_workers: (stop_exports, export_workers),
        })
    }

    /// Stops the background work and writes what is pending: running export jobs go back
    /// to the queue, the failed-authentication counts and the history records are written.
    pub async fn stop(self) {
        // Running export jobs go back to the queue (another replica, or this server's next
        // start, runs them again); their history records join the queue flushed below.
        let (stop_exports, export_workers) = self.export_workers;
        stop_exports.cancel();
        if tokio::time::timeout(self.shutdown_timeout, export_workers)
            .await
            .is_err()
        {
            tracing::warn!(
                "export workers did not stop in time; their jobs run again once their heartbeat is stale"
            );
        }
        // The counts of failed authentications not yet summarised in the audit log.
        // In-flight requests are done: the audit writer stores what they queued.
        if let Some(log) = &self.audit {
            let events = self.auth_failures.drain();
            if !events.is_empty()
                && let Err(e) = log.append_batch(&events).await
            {
                tracing::error!(error = %e, events = ?events, "failed to append to the audit log");
            }
            log.flush(self.shutdown_timeout).await;
        }
        // In-flight requests are done: the writer hands on what they recorded, then what the
        // store could not take while it was down is written.
        self.history_queue.flush(self.shutdown_timeout).await;
        let queued = self.history_buffer.queued();
        if queued > 0 {
            tracing::info!(queued, "writing queued history records before exiting");
            self.history_buffer.flush(self.shutdown_timeout).await;
        }
    }
}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    generator: bqai_core::ask::GeneratorInfo,
    auth_on: bool,
    host: String,
    server: actix_web::dev::Server,
    /// `GET /metrics` alone, on `telemetry.metrics_addr` (stopped with the API server).
    metrics_server: Option<actix_web::dev::Server>,
    metrics_port: Option<u16>,
    runtime: Runtime,
}

impl Application {
    /// Builds the services and binds `settings.server.host:port`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let services = Services::build(settings).await?;
        Self::with_services(settings, services)
    }

    /// Binds and creates the server over already built services.
    pub fn with_services(settings: &Settings, services: Services) -> anyhow::Result<Self> {
        check_bind(settings)?;
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
            .with_context(|| {
                format!(
                    "could not bind {}:{}",
                    settings.server.host, settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let generator = services.ask.generator();
        let auth_on = services.auth.is_some();
        let runtime = Runtime::start(settings, services)?;
        let state = runtime.state.clone();
        let (metrics_server, metrics_port) = match &settings.telemetry.metrics_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr.as_str())
                    .with_context(|| format!("could not bind telemetry.metrics_addr {addr}"))?;
                let port = listener.local_addr()?.port();
                tracing::info!(%addr, port, "GET /metrics is served on its own listener");
                (
                    Some(bqai_http::metrics_server(listener, state.clone())?),
                    Some(port),
                )
            }
            None => (None, None),
        };
        let server = bqai_http::server(
            listener,
            state,
            Duration::from_secs(settings.server.shutdown_timeout_secs),
        )?;
        Ok(Self {
            port,
            generator,
            auth_on,
            host: settings.server.host.clone(),
            server,
            metrics_server,
            metrics_port,
            runtime,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `telemetry.metrics_addr`, when `/metrics` has a listener of its own.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Runs until SIGINT/SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let base = format!("http://{}:{}", self.host, self.port);
        tracing::info!(
            generator = %self.generator.kind,
            model = self.generator.model.as_deref().unwrap_or("-"),
            "questions (POST /api/v1/ask) are answered by the {} generator",
            self.generator.kind
        );
        let key = if self.auth_on {
            // Double quotes: the shell must expand $KEY when the line is pasted.
            " -H \"Authorization: Bearer $KEY\""
        } else {
            ""
        };
        tracing::info!(
            "bqai listening on {base} — try: curl -s{key} {base}/api/v1/datasets/shop/tables  |  \
             curl -s -X POST {base}/api/v1/query{key} -H 'Content-Type: application/json' \
             -d '{{\"sql\": \"SELECT country, COUNT(*) AS customers FROM shop.customers GROUP BY country\"}}'"
        );
        if self.auth_on {
            tracing::info!(
                "API keys are required; make one with: bqai keys create --name NAME --role admin|analyst|viewer"
            );
        }
        let metrics_server = self.metrics_server.map(|server| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        // The server's own signal handling stops it; MCP event streams would hold that stop
        // until its timeout, so they end on the same signal.
        let mcp = self.runtime.state.mcp.clone();
        let mcp_stop = tokio::spawn(async move {
            shutdown_signal().await;
            mcp.shutdown();
        });
        let served = self.server.await;
        mcp_stop.abort();
        if let Some(handle) = metrics_server {
            handle.stop(true).await;
        }
        self.runtime.stop().await;
        served
    }
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
