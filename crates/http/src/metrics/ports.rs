//! Port decorators that count what crosses them in [`Metrics`]: each wraps any adapter of its
//! port, so the adapters stay free of metrics code and every adapter is counted alike. The
//! wiring (`bins/bqai/src/startup.rs`) puts them around the real adapters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::conversation::{Conversation, Turn};
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::llm::{Llm, LlmError, LlmInfo, LlmLoad, LlmRequest, LlmResponse};
use bqai_core::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, ResultPage,
    RowStream, SqlDialect, Table, TableRef, TableSummary,
};
use bqai_core::ports::{
    Cache, ConversationStore, HistoryStore, RateDecision, RateLimiter, Warehouse,
};
use bqai_core::result_cache::layer_of;

use super::Metrics;

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

/// The [`Warehouse`] decorator that counts every call the warehouse answers (catalog reads,
/// previews, dry runs, jobs) by operation and outcome, and times it. It sits under the cache,
/// so it counts the port calls that reach the warehouse, not cache hits (on BigQuery an
/// `execute` is several API calls: the job's insert and its result pages).
pub struct MeteredWarehouse {
    inner: Arc<dyn Warehouse>,
    metrics: Arc<Metrics>,
}

impl MeteredWarehouse {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<dyn Warehouse>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn counted<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = bqai_core::Result<T>>,
    ) -> bqai_core::Result<T> {
        let started = Instant::now();
        let outcome = call.await;
        self.metrics.observe_warehouse_call(
            operation,
            outcome.as_ref().err().map(bqai_core::Error::code),
            started.elapsed(),
        );
        outcome
    }
}

#[async_trait]
impl Warehouse for MeteredWarehouse {
    fn dialect(&self) -> SqlDialect {
        self.inner.dialect()
    }

    fn home_project(&self) -> Option<String> {
        self.inner.home_project()
    }

    async fn list_datasets(&self, page: &PageRequest) -> bqai_core::Result<Page<Dataset>> {
        self.counted("list_datasets", self.inner.list_datasets(page))
            .await
    }

    async fn get_dataset(&self, dataset_id: &str) -> bqai_core::Result<Dataset> {
        self.counted("get_dataset", self.inner.get_dataset(dataset_id))
            .await
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> bqai_core::Result<Page<TableSummary>> {
        self.counted("list_tables", self.inner.list_tables(dataset_id, page))
            .await
    }

    async fn get_table(&self, table: &TableRef) -> bqai_core::Result<Table> {
        self.counted("get_table", self.inner.get_table(table)).await
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> bqai_core::Result<QueryResult> {
        self.counted("preview", self.inner.preview(table, limit))
            .await
    }

    async fn dry_run(&self, job: &QueryJob) -> bqai_core::Result<DryRunReport> {
        self.counted("dry_run", self.inner.dry_run(job)).await
    }

    async fn execute(&self, job: &QueryJob) -> bqai_core::Result<QueryResult> {
        self.counted("execute", self.inner.execute(job)).await
    }

    /// Counts the start of a streamed result (on BigQuery: the job, up to its first page);
    /// the pages read after it are the export's own work.
    async fn execute_stream(&self, job: &QueryJob) -> bqai_core::Result<RowStream> {
        self.counted("execute_stream", self.inner.execute_stream(job))
            .await
    }

    /// Counts a page of a kept result (on BigQuery: `getQueryResults` calls, nothing billed).
    async fn read_result(
        &self,
        handle: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> bqai_core::Result<ResultPage> {
        self.counted(
            "read_result",
            self.inner.read_result(handle, offset, max_rows, max_bytes),
        )
        .await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

/// The [`Cache`] decorator that counts lookups per layer (result, metadata, question) as
/// hits, misses or errors. Layers come from the key's namespace, never the key itself.
pub struct MeteredCache {
    inner: Arc<dyn Cache>,
    metrics: Arc<Metrics>,
}

impl MeteredCache {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<dyn Cache>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Cache for MeteredCache {
    async fn get(&self, key: &str) -> bqai_core::Result<Option<Vec<u8>>> {
        let outcome = self.inner.get(key).await;
        let label = match &outcome {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(_) => "error",
        };
        self.metrics.observe_cache_lookup(layer_of(key), label);
        outcome
    }

    async fn set(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        tags: &[String],
    ) -> bqai_core::Result<()> {
        self.inner.set(key, value, ttl, tags).await
    }

    async fn invalidate_tag(&self, tag: &str) -> bqai_core::Result<u64> {
        self.inner.invalidate_tag(tag).await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

/// The [`Llm`] decorator that counts every completion by adapter and outcome (`ok` or the
/// error code: `LLM_TIMEOUT`, `LLM_BUSY`, ...) and times it, queueing included.
pub struct MeteredLlm {
    inner: Arc<dyn Llm>,
    metrics: Arc<Metrics>,
    adapter: String,
}

impl MeteredLlm {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<dyn Llm>, metrics: Arc<Metrics>) -> Self {
        let adapter = inner.info().kind;
        Self {
            inner,
            metrics,
            adapter,
        }
    }
}

#[async_trait]
impl Llm for MeteredLlm {
    fn info(&self) -> LlmInfo {
        self.inner.info()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let outcome = self.inner.complete(request).await;
        self.metrics.observe_llm_request(
            &self.adapter,
            outcome.as_ref().err().map(|e| e.kind.code()),
            started.elapsed(),
        );
        outcome
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }

    fn load(&self) -> Option<LlmLoad> {
        self.inner.load()
    }
}

/// The [`RateLimiter`] decorator that counts refusals by scope: `key` (an API key's budget),
/// `ip` (an unauthenticated client's), `authfail` (failed authentications of a client).
pub struct MeteredRateLimiter {
    inner: Arc<dyn RateLimiter>,
    metrics: Arc<Metrics>,
}

impl MeteredRateLimiter {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<dyn RateLimiter>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl RateLimiter for MeteredRateLimiter {
    async fn check(
        &self,
        key: &str,
        cost: u32,
        limit_per_minute: u32,
    ) -> bqai_core::Result<RateDecision> {
        let decision = self.inner.check(key, cost, limit_per_minute).await?;
        if !decision.allowed {
            self.metrics.observe_rate_limited(scope_of(key));
        }
        Ok(decision)
    }
}

/// The bounded scope of a limiter key (`key:…`, `ip:…`, `authfail:…`).
fn scope_of(key: &str) -> &'static str {
    match key.split(':').next() {
        Some("key") => "key",
        Some("ip") => "ip",
        Some("authfail") => "authfail",
        _ => "other",
    }
}

/// The [`ConversationStore`] decorator that counts conversations started and turns added.
pub struct MeteredConversations {
    inner: Arc<dyn ConversationStore>,
    metrics: Arc<Metrics>,
}

impl MeteredConversations {
    /// `inner`, counted in `metrics`.
    pub fn new(inner: Arc<dyn ConversationStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl ConversationStore for MeteredConversations {
    async fn create_conversation(&self, conversation: &Conversation) -> bqai_core::Result<()> {
        self.inner.create_conversation(conversation).await?;
        self.metrics.observe_conversation_started();
        Ok(())
    }

    async fn get_conversation(&self, id: &str) -> bqai_core::Result<Option<Conversation>> {
        self.inner.get_conversation(id).await
    }

    async fn append_turn(
        &self,
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
    ) -> bqai_core::Result<Option<Conversation>> {
        let updated = self.inner.append_turn(id, turn, dataset, max_turns).await?;
        if updated.is_some() {
            self.metrics.observe_conversation_turn();
        }
        Ok(updated)
    }

    async fn delete_conversation(&self, id: &str) -> bqai_core::Result<bool> {
        self.inner.delete_conversation(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bqai_core::llm::LlmErrorKind;

    /// A model that is always busy, with two calls running and one waiting.
    struct BusyLlm;

    #[async_trait]
    impl Llm for BusyLlm {
        fn info(&self) -> LlmInfo {
            LlmInfo {
                kind: "claude-cli".into(),
                model: None,
            }
        }

        async fn complete(&self, _: &LlmRequest) -> Result<LlmResponse, LlmError> {
            Err(LlmError::new(LlmErrorKind::Busy, "busy"))
        }

        async fn health(&self) -> ComponentHealth {
            ComponentHealth::ok("claude-cli")
        }

        fn load(&self) -> Option<LlmLoad> {
            Some(LlmLoad {
                in_flight: 2,
                queued: 1,
            })
        }
    }

    #[tokio::test]
    async fn llm_failures_are_counted_by_code_and_the_load_passes_through() {
        let metrics = Arc::new(Metrics::new());
        let llm = MeteredLlm::new(Arc::new(BusyLlm), Arc::clone(&metrics));
        let request = LlmRequest {
            system: Vec::new(),
            messages: Vec::new(),
            max_tokens: 10,
        };
        assert!(llm.complete(&request).await.is_err());
        metrics.observe_llm_load("claude-cli", llm.load().unwrap_or_default());
        let text = metrics.render();
        for line in [
            r#"bqai_llm_requests_total{adapter="claude-cli",outcome="LLM_BUSY"} 1"#,
            r#"bqai_llm_request_duration_seconds_count{adapter="claude-cli"} 1"#,
            r#"bqai_llm_in_flight{adapter="claude-cli"} 2"#,
            r#"bqai_llm_queued{adapter="claude-cli"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn limiter_keys_map_to_bounded_scopes() {
        assert_eq!(scope_of("key:k_123"), "key");
        assert_eq!(scope_of("ip:10.0.0.1"), "ip");
        assert_eq!(scope_of("authfail:10.0.0.1"), "authfail");
        assert_eq!(scope_of("anything else"), "other");
    }
}
