//! `CachedWarehouse`: a decorator that puts any [`Cache`] in front of any [`Warehouse`].
//!
//! Catalog metadata (datasets, tables, schemas) is cached for `metadata_ttl` (default 1 hour);
//! query results for `result_ttl` (default 5 minutes) when they are no larger than
//! `max_result_bytes`. Entries are tagged `dataset:<id>` so an operator (or a schema change)
//! can drop everything derived from one dataset. Values are MessagePack (compact, and unlike
//! JSON it keeps NaN and infinities). A cache failure is never a query failure: it is logged
//! and treated as a miss.
//!
//! Identical queries are coalesced: while one is running, others with the same cache key
//! await its result instead of running again (per process; replicas sharing Redis still each
//! run once). The shared run is owned by whoever awaits it, so a caller that goes away does not
//! cancel it for the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, ResultPage,
    RowStream, SqlDialect, Table, TableRef, TableSummary,
};
use crate::ports::{Cache, Warehouse};

/// Namespace and version of every key bqai writes; bump the version when a cached type
/// changes shape so old entries are simply never read again.
pub const KEY_PREFIX: &str = "bqai:v1:";

/// TTLs and size limits of the cache decorator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// TTL of catalog metadata.
    pub metadata_ttl: Duration,
    /// TTL of query results.
    pub result_ttl: Duration,
    /// Result TTL per dataset (lowercase id), overriding `result_ttl`; a query reading
    /// several datasets keeps the shortest TTL among them.
    pub result_ttl_by_dataset: HashMap<String, Duration>,
    /// Results whose encoding is larger than this are not cached.
    pub max_result_bytes: usize,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            metadata_ttl: Duration::from_secs(3600),
            result_ttl: Duration::from_secs(300),
            result_ttl_by_dataset: HashMap::new(),
            max_result_bytes: 8 * 1024 * 1024,
        }
    }
}

impl CachePolicy {
    /// The result TTL of a query reading `tables`: the shortest per-dataset TTL among them,
    /// else the default.
    pub fn result_ttl_for(&self, tables: &[TableRef]) -> Duration {
        tables
            .iter()
            .filter_map(|t| {
                self.result_ttl_by_dataset
                    .get(&t.dataset.to_ascii_lowercase())
                    .copied()
            })
            .min()
            .unwrap_or(self.result_ttl)
    }
}

/// The cache tag of everything derived from a dataset.
pub fn dataset_tag(dataset: &str) -> String {
    format!("dataset:{}", dataset.to_ascii_lowercase())
}

/// Tag carried by every catalog listing (dataset lists change when any dataset does).
const CATALOG_TAG: &str = "catalog";

/// Which cache layer a key belongs to (`result`, `metadata`, `question`, `plan`), for spans: bounded, and
/// never the key itself (a key is a hash of SQL and scope).
pub fn layer_of(key: &str) -> &'static str {
    let rest = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    match rest.split(':').next() {
        Some("result") => "result",
        Some("catalog") => "metadata",
        Some("ask") => "question",
        Some("plan") => "plan",
        Some("pages") => "pages",
        _ => "other",
    }
}

/// Drops every entry of `cache` derived from `dataset` (its metadata, results and question
/// cache entries) and the catalog listings; returns how many entries were removed. Used by
/// the decorator and by `bqai cache clear`, which talks to a shared cache directly.
pub async fn invalidate_dataset(cache: &dyn Cache, dataset: &str) -> Result<u64> {
    let n = cache.invalidate_tag(&dataset_tag(dataset)).await?;
    let m = cache.invalidate_tag(CATALOG_TAG).await?;
    Ok(n + m)
}

/// The MessagePack value under `key` in `cache`; a cache failure or an undecodable entry is a
/// miss (logged): a cache is an optimisation, never a failure. Shared by every layer that
/// keeps values in the [`Cache`] port (results, metadata, plans).
#[tracing::instrument(name = "cache.get", skip_all, fields(bqai.cache.layer = layer_of(key), bqai.cache.hit = false))]
pub(crate) async fn read_entry<T: DeserializeOwned>(cache: &dyn Cache, key: &str) -> Option<T> {
    match cache.get(key).await {
        Ok(Some(bytes)) => match rmp_serde::from_slice(&bytes) {
            Ok(v) => {
                tracing::Span::current().record("bqai.cache.hit", true);
                Some(v)
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "undecodable cache entry ignored");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(key, error = %e, "cache read failed; treating as a miss");
            None
        }
    }
}

/// Stores `value` (MessagePack) under `key` in `cache` for `ttl` with `tags`, unless its
/// encoding is larger than `max_bytes`; a failure is logged, never returned.
#[tracing::instrument(name = "cache.set", skip_all, fields(bqai.cache.layer = layer_of(key)))]
pub(crate) async fn write_entry<T: Serialize>(
    cache: &dyn Cache,
    key: &str,
    value: &T,
    ttl: Duration,
    tags: &[String],
    max_bytes: usize,
) {
    let bytes = match rmp_serde::to_vec_named(value) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(key, error = %e, "value not cacheable");
            return;
        }
    };
    if bytes.len() > max_bytes {
        tracing::debug!(key, size = bytes.len(), "value too large to cache");
        return;
    }
    if let Err(e) = cache.set(key, bytes, ttl, tags).await {
        tracing::warn!(key, error = %e, "cache write failed");
    }
}

type SharedRun = Shared<BoxFuture<'static, std::result::Result<Arc<QueryResult>, Arc<Error>>>>;

/// A [`Warehouse`] that answers from a [`Cache`] when it can.
pub struct CachedWarehouse {
    inner: Arc<dyn Warehouse>,
    cache: Arc<dyn Cache>,
    policy: CachePolicy,
    /// Runs in progress, by result key.
    in_flight: Arc<Mutex<HashMap<String, SharedRun>>>,
    /// Callers that joined a run in progress instead of starting their own (since start).
    coalesced: AtomicU64,
}

/// Removes a finished (or abandoned) run from the in-flight map when its creator is done.
struct InFlightEntry {
    map: Arc<Mutex<HashMap<String, SharedRun>>>,
    key: String,
}

impl Drop for InFlightEntry {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&self.key);
        }
    }
}

impl CachedWarehouse {
    /// Wraps `inner` with `cache`.
    pub fn new(inner: Arc<dyn Warehouse>, cache: Arc<dyn Cache>, policy: CachePolicy) -> Self {
        Self {
            inner,
            cache,
            policy,
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            coalesced: AtomicU64::new(0),
        }
    }

    /// How many queries joined an identical run in progress instead of running (since start).
    pub fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    /// Runs `job`, or joins an identical run already in progress.
    async fn run_coalesced(&self, key: &str, job: &QueryJob) -> Result<QueryResult> {
        let (run, entry) = {
            let mut map = self
                .in_flight
                .lock()
                .map_err(|_| Error::internal_msg("in-flight query map poisoned"))?;
            match map.get(key) {
                Some(run) => (run.clone(), None),
                None => {
                    let inner = self.inner.clone();
                    let job = job.clone();
                    let run =
                        async move { inner.execute(&job).await.map(Arc::new).map_err(Arc::new) }
                            .boxed()
                            .shared();
                    map.insert(key.to_string(), run.clone());
                    let entry = InFlightEntry {
                        map: self.in_flight.clone(),
                        key: key.to_string(),
                    };
                    (run, Some(entry))
                }
            }
        };
        let joined = entry.is_none();
        let outcome = run.await;
        if joined {
            self.coalesced.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(key, "joined an identical query in progress");
        }
        drop(entry);
        match outcome {
            Ok(result) => Ok(Arc::unwrap_or_clone(result)),
            Err(e) => Err(e.duplicate()),
        }
    }

    /// Drops every cached entry derived from `dataset` (metadata and results). Returns how
    /// many entries were removed.
    pub async fn invalidate_dataset(&self, dataset: &str) -> Result<u64> {
        invalidate_dataset(self.cache.as_ref(), dataset).await
    }

    async fn lookup<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        read_entry(self.cache.as_ref(), key).await
    }

    async fn store<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
        tags: &[String],
        max_bytes: usize,
    ) {
        write_entry(self.cache.as_ref(), key, value, ttl, tags, max_bytes).await;
    }

    async fn metadata<T, F>(&self, key: String, tags: Vec<String>, load: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send,
        F: std::future::Future<Output = Result<T>> + Send,
    {
        if let Some(hit) = self.lookup(&key).await {
            return Ok(hit);
        }
        let value = load.await?;
        self.store(&key, &value, self.policy.metadata_ttl, &tags, usize::MAX)
            .await;
        Ok(value)
    }

    /// The result-cache key of a job: a hash of everything that changes the answer.
    fn result_key(&self, job: &QueryJob) -> String {
        let mut h = Sha256::new();
        h.update(format!("{:?}", self.inner.dialect()).as_bytes());
        h.update([0]);
        h.update(job.default_dataset.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
        h.update(job.max_rows.to_le_bytes());
        h.update(job.sql.as_bytes());
        // The same SQL with other parameter values is another query.
        let params = job.parameters.cache_key_text();
        if !params.is_empty() {
            h.update([0]);
            h.update(params.as_bytes());
        }
        format!("{KEY_PREFIX}result:{}", hex::encode(&h.finalize()[..16]))
    }
}

fn page_key(page: &PageRequest) -> String {
    format!(
        "{}:{}",
        page.page_size,
        page.page_token.as_deref().unwrap_or("")
    )
}

#[async_trait]
impl Warehouse for CachedWarehouse {
    fn dialect(&self) -> SqlDialect {
        self.inner.dialect()
    }

    fn home_project(&self) -> Option<String> {
        self.inner.home_project()
    }

    async fn list_datasets(&self, page: &PageRequest) -> Result<Page<Dataset>> {
        let key = format!("{KEY_PREFIX}catalog:datasets:{}", page_key(page));
        self.metadata(
            key,
            vec![CATALOG_TAG.into()],
            self.inner.list_datasets(page),
        )
        .await
    }

    async fn get_dataset(&self, dataset_id: &str) -> Result<Dataset> {
        let ds = dataset_id.to_ascii_lowercase();
        let key = format!("{KEY_PREFIX}catalog:dataset:{ds}");
        self.metadata(
            key,
            vec![dataset_tag(&ds)],
            self.inner.get_dataset(dataset_id),
        )
        .await
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TableSummary>> {
        let ds = dataset_id.to_ascii_lowercase();
        let key = format!("{KEY_PREFIX}catalog:tables:{ds}:{}", page_key(page));
        self.metadata(
            key,
            vec![dataset_tag(&ds)],
            self.inner.list_tables(dataset_id, page),
        )
        .await
    }

    async fn get_table(&self, table: &TableRef) -> Result<Table> {
        let key = format!(
            "{KEY_PREFIX}catalog:table:{}",
            table.to_string().to_ascii_lowercase()
        );
        self.metadata(
            key,
            vec![dataset_tag(&table.dataset)],
            self.inner.get_table(table),
        )
        .await
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> Result<QueryResult> {
        // Previews are cheap reads of the first rows; caching them would only risk staleness.
        self.inner.preview(table, limit).await
    }

    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport> {
        self.inner.dry_run(job).await
    }

    async fn execute(&self, job: &QueryJob) -> Result<QueryResult> {
        if !job.use_cache {
            return self.inner.execute(job).await;
        }
        let key = self.result_key(job);
        if let Some(mut hit) = self.lookup::<QueryResult>(&key).await {
            hit.stats.cache_hit = true;
            // Nothing was processed or billed to answer this time.
            hit.stats.bytes_billed = 0;
            return Ok(hit);
        }
        let result = self.run_coalesced(&key, job).await?;
        let mut tags: Vec<String> = job
            .referenced_tables
            .iter()
            .map(|t| dataset_tag(&t.dataset))
            .collect();
        tags.sort();
        tags.dedup();
        let ttl = self.policy.result_ttl_for(&job.referenced_tables);
        self.store(&key, &result, ttl, &tags, self.policy.max_result_bytes)
            .await;
        Ok(result)
    }

    /// Streamed results (exports) are never cached: they are as large as the result.
    async fn execute_stream(&self, job: &QueryJob) -> Result<RowStream> {
        self.inner.execute_stream(job).await
    }

    /// Pages are read from where the warehouse keeps the result; nothing to cache.
    async fn read_result(
        &self,
        handle: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> Result<ResultPage> {
        self.inner
            .read_result(handle, offset, max_rows, max_bytes)
            .await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}
