//! [`LocalWarehouse`]: construction (demo data, user files, the DataFusion session) and the
//! [`Warehouse`] port implementation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::model::{
    ComponentHealth, Dataset, DryRunReport, Field, Page, PageRequest, QueryJob, QueryResult,
    QueryStats, RowBatch, RowStream, SqlDialect, Table, TableRef, TableSummary, row_json_len,
};
use bqai_core::ports::Warehouse;
use bqai_core::{Error, Result};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::tree_node::{Transformed, TreeNode as _};
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::SinkExt as _;
use futures::StreamExt as _;
use futures::channel::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::catalog::{Catalog, TableEntry, paginate};
use crate::convert::{batch_rows, fields_from_schema};
use crate::error::{NO_DEFAULT_DATASET, query_error};
use crate::estimate::{ScanEstimate, estimate};
use crate::{HOME_CATALOG, LocalConfig, demo, files};

/// Rows per record batch of the demo tables (DataFusion's default batch size).
const DEMO_BATCH_ROWS: usize = 8192;

/// The embedded warehouse. Cheap to clone: everything sits behind `Arc`s.
#[derive(Clone)]
pub struct LocalWarehouse {
    inner: Arc<Inner>,
    runtime: Arc<QueryRuntime>,
    /// Queries executing on the query runtime right now (see [`LocalWarehouse::running_queries`]).
    running: Arc<std::sync::atomic::AtomicUsize>,
}

/// The threads queries are planned and executed on, apart from the caller's runtime.
///
/// DataFusion operators can hold a thread for a long stretch of CPU work (building a hash
/// table, sorting), and planning is synchronous CPU work that no timer can interrupt. On their
/// own runtime they cannot starve the caller's tasks (the HTTP server, the timers that enforce
/// timeouts); the OS shares the cores between both. Planning recurses over the statement's
/// tree, so these threads get a large stack ([`QUERY_THREAD_STACK`]) on top of DataFusion's
/// own recursion protection and the guard's bounds on depth.
struct QueryRuntime(Option<tokio::runtime::Runtime>);

/// Stack of a query thread. Only the pages a plan touches are ever committed.
const QUERY_THREAD_STACK: usize = 64 * 1024 * 1024;

impl QueryRuntime {
    fn new(threads: usize) -> Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_stack_size(QUERY_THREAD_STACK)
            .thread_name("bqai-local-query")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|e| Error::internal("starting the local query runtime", e))
    }

    fn spawn<F>(&self, future: F) -> Result<tokio::task::JoinHandle<F::Output>>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0
            .as_ref()
            .map(|rt| rt.spawn(future))
            .ok_or_else(|| Error::internal_msg("the local query runtime is shut down"))
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // A plain drop blocks until tasks finish and panics inside async code; queries are
        // abandoned work at this point anyway.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

struct Inner {
    catalog: Catalog,
    /// The prototype session: catalog, functions, limits. Each query runs in a clone of it
    /// with its own default dataset, so queries never see each other's settings.
    state: SessionState,
    demo_generation: Option<Duration>,
}

impl std::fmt::Debug for LocalWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWarehouse")
            .field(
                "datasets",
                &self.inner.catalog.datasets.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The second wall: only read-only queries plan, whatever reached the warehouse.
fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl LocalWarehouse {
    /// Generates the demo dataset (when enabled), reads the configured data files into memory
    /// and prepares the DataFusion session.
    ///
    /// Unreadable or unsupported data paths are `InvalidRequest` errors naming the path.
    pub async fn new(config: LocalConfig) -> Result<Self> {
        let partitions = match config.target_partitions {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let mut catalog = Catalog::default();

        let mut demo_generation = None;
        if config.demo {
            let started = Instant::now();
            let tables = demo::generate();
            let elapsed = started.elapsed();
            demo_generation = Some(elapsed);
            tracing::info!(
                elapsed_ms = elapsed.as_millis() as u64,
                "demo dataset generated"
            );
            for t in tables {
                let rows = t.batch.num_rows();
                let batches = (0..rows)
                    .step_by(DEMO_BATCH_ROWS)
                    .map(|offset| t.batch.slice(offset, DEMO_BATCH_ROWS.min(rows - offset)))
                    .collect();
                let entry = TableEntry::new(
                    demo::DEMO_DATASET,
                    t.name,
                    Some(t.description.to_owned()),
                    t.batch.schema(),
                    t.column_descriptions
                        .iter()
                        .map(|d| Some((*d).to_owned()))
                        .collect(),
                    batches,
                    partitions,
                )?;
                catalog.add(
                    Some(demo::DEMO_DESCRIPTION.to_owned()),
                    entry,
                    "demo dataset",
                )?;
            }
        }

        let data_files = files::discover(&config.data)?;
        if !data_files.is_empty() {
            let loader = SessionContext::new();
            for file in data_files {
                let started = Instant::now();
                let loaded = files::load(&loader, &file).await?;
                let file_name = file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let columns = loaded.schema.fields().len();
                let entry = TableEntry::new(
                    &file.dataset,
                    &file.table,
                    Some(format!(
                        "Loaded from {} file {file_name}",
                        file.format.label()
                    )),
                    loaded.schema,
                    vec![None; columns],
                    loaded.batches,
                    partitions,
                )?;
                tracing::info!(
                    table = %format!("{}.{}", file.dataset, file.table),
                    rows = entry.num_rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "data file loaded"
                );
                let folder = file
                    .path
                    .parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                catalog.add(
                    Some(format!("Local data files from {folder}")),
                    entry,
                    &file.path.display().to_string(),
                )?;
            }
        }

        let state = session_state(&catalog, partitions, config.memory_limit_mb)?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog,
                state,
                demo_generation,
            }),
            runtime: Arc::new(QueryRuntime::new(partitions)?),
            running: Arc::default(),
        })
    }

    /// How many queries are executing on the query runtime at this moment. A query stops
    /// counting when it finishes, times out, or its caller stops waiting (the task is
    /// aborted and its DataFusion stream dropped): cancellation can be observed here.
    pub fn running_queries(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `work` (planning, and executing if it does) for `job` on the query runtime under
    /// the job's deadline. The caller gets `Timeout` at the deadline even while DataFusion is
    /// busy planning on its thread — planning is synchronous and cannot be interrupted, but
    /// it no longer holds the caller's thread — and the task is aborted on the way out, which
    /// drops (and so cancels) an execution stream.
    async fn on_query_runtime<T, F>(&self, job: &QueryJob, work: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let running = RunningQuery::start(&self.running);
        let task = self.runtime.spawn(async move {
            // Dropped with the task: when it completes or when it is aborted.
            let _running = running;
            work.await
        })?;
        // Aborted when the timeout drops it, or when the caller stops waiting.
        let task = AbortOnDropHandle::new(task);
        match tokio::time::timeout(job.timeout, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(Error::internal("running a query on DataFusion", join)),
            Err(_) => {
                tracing::debug!(query_id = %job.query_id, "query timed out, cancelled");
                Err(Error::Timeout(job.timeout))
            }
        }
    }

    /// How long generating the demo dataset took at start (`None` without the demo).
    pub fn demo_generation_time(&self) -> Option<Duration> {
        self.inner.demo_generation
    }
}

fn session_state(
    catalog: &Catalog,
    partitions: usize,
    memory_limit_mb: u64,
) -> Result<SessionState> {
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(false)
        .with_default_catalog_and_schema(HOME_CATALOG, NO_DEFAULT_DATASET);
    let memory =
        usize::try_from(memory_limit_mb.max(1).saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(memory, 1.0)
        // Memory tables never need spill files, and queries must not write to disk.
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(|e| Error::internal("configuring the DataFusion runtime", e))?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        // No CREATE EXTERNAL TABLE or COPY targets even if a plan slipped past the options.
        .with_table_factories(HashMap::new())
        .with_file_formats(Vec::new())
        .build();

    let home = MemoryCatalogProvider::new();
    for (name, dataset) in &catalog.datasets {
        let schema = MemorySchemaProvider::new();
        for (table, entry) in &dataset.tables {
            let provider: Arc<dyn TableProvider> = entry.provider.clone();
            schema
                .register_table(table.clone(), provider)
                .map_err(|e| Error::internal(format!("registering table {name}.{table}"), e))?;
        }
        home.register_schema(name, Arc::new(schema))
            .map_err(|e| Error::internal(format!("registering dataset {name}"), e))?;
    }
    state
        .catalog_list()
        .register_catalog(HOME_CATALOG.to_owned(), Arc::new(home));
    Ok(state)
}

/// A planned query: its session, optimized plan and what it reads.
struct Planned {
    state: SessionState,
    plan: datafusion::logical_expr::LogicalPlan,
    scan: ScanEstimate,
}

impl Inner {
    /// A fresh session for one query, with `default_dataset` for unqualified names.
    fn session(&self, default_dataset: Option<&str>) -> SessionContext {
        let mut state = self.state.clone();
        let schema = default_dataset
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                // Accept `datafusion.shop` as well as `shop`.
                let d = d.to_ascii_lowercase();
                d.strip_prefix(&format!("{HOME_CATALOG}."))
                    .map(str::to_owned)
                    .unwrap_or(d)
            })
            .unwrap_or_else(|| NO_DEFAULT_DATASET.to_owned());
        state.config_mut().options_mut().catalog.default_schema = schema;
        SessionContext::new_with_state(state)
    }

    /// Parses, checks (second wall) and optimizes `job.sql`; `fetch` caps the rows produced.
    async fn plan(&self, job: &QueryJob, fetch: Option<usize>) -> Result<Planned> {
        let ctx = self.session(job.default_dataset.as_deref());
        let mut frame = ctx
            .sql_with_options(&job.sql, sql_options())
            .await
            .map_err(query_error)?;
        if let Some(values) = crate::params::param_values(&job.parameters)? {
            frame = frame.with_param_values(values).map_err(query_error)?;
        }
        if let Some(fetch) = fetch {
            // DataFusion reads a LIMIT as an i64.
            let fetch = fetch.min(usize::try_from(i64::MAX).unwrap_or(usize::MAX));
            frame = frame.limit(0, Some(fetch)).map_err(query_error)?;
        }
        let (state, plan) = frame.into_parts();
        let plan = state.optimize(&plan).map_err(query_error)?;
        let default_schema = state.config().options().catalog.default_schema.clone();
        let scan = estimate(&plan, &self.catalog, &default_schema).map_err(query_error)?;
        Ok(Planned { state, plan, scan })
    }

    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport> {
        let planned = self.plan(job, None).await?;
        Ok(DryRunReport {
            bytes_processed: planned.scan.bytes,
            statement_type: Some("SELECT".to_owned()),
            referenced_tables: planned.scan.tables,
            schema: fields_from_schema(planned.plan.schema().as_arrow()),
        })
    }

    /// Plans `job` (its rows capped at `fetch`) and starts executing it: the batches come
    /// as the stream is polled.
    async fn open(
        &self,
        job: &QueryJob,
        fetch: usize,
    ) -> Result<(SendableRecordBatchStream, ScanEstimate)> {
        let planned = self.plan(job, Some(fetch)).await?;
        let physical = planned
            .state
            .query_planner()
            .create_physical_plan(&planned.plan, &planned.state)
            .await
            .map_err(query_error)?;
        let physical = cooperative(physical).map_err(query_error)?;
        let stream = execute_stream(physical, planned.state.task_ctx()).map_err(query_error)?;
        Ok((stream, planned.scan))
    }

    async fn execute(&self, job: &QueryJob) -> Result<QueryResult> {
        let started = Instant::now();
        let max_rows = usize::try_from(job.max_rows).unwrap_or(usize::MAX);
        // One row is enough to tell whether a 0-row cap cut anything.
        let (mut stream, scan) = self.open(job, max_rows.max(1)).await?;
        let columns = fields_from_schema(stream.schema().as_ref());

        let mut rows = Vec::new();
        let mut produced = 0usize;
        // Memory follows the response cap, not the result: reading stops once the rows'
        // JSON passes it (the query service cuts them exactly).
        let byte_cap = job
            .max_result_bytes
            .map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let mut json_bytes = 0usize;
        while produced < max_rows.max(1) && json_bytes <= byte_cap {
            let Some(batch) = stream.next().await else {
                break;
            };
            let batch = batch.map_err(query_error)?;
            produced += batch.num_rows();
            let room = max_rows - rows.len();
            for row in batch_rows(&batch, room) {
                json_bytes = json_bytes.saturating_add(row_json_len(&columns, &row));
                rows.push(row);
                if json_bytes > byte_cap {
                    break;
                }
            }
        }
        // Dropping the stream stops (and cancels) whatever DataFusion still had in flight.
        drop(stream);

        Ok(QueryResult {
            columns,
            rows,
            truncated: produced > 0 && produced >= max_rows,
            truncated_at_bytes: None,
            stats: QueryStats {
                bytes_processed: scan.bytes,
                // Nothing is billed locally; the processed estimate still feeds cost reports.
                bytes_billed: 0,
                estimated_cost_usd: 0.0,
                cache_hit: false,
                duration_ms: duration_ms(started.elapsed()),
            },
        })
    }
}

/// Makes every operator's output stream yield to tokio when the task's budget runs out.
///
/// DataFusion only makes leaf scans cooperative. An operator that multiplies rows (a cross
/// join emits many batches per input batch) can then keep its consumer busy in one poll for
/// minutes: the task never yields, so neither the timeout nor the abort that follows it can
/// take effect, and the workers' timers stall. Wrapping each operator costs one budget check
/// per batch.
fn cooperative(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
    plan.transform_up(|node| {
        if node.children().is_empty() || node.is::<CooperativeExec>() {
            Ok(Transformed::no(node))
        } else {
            Ok(Transformed::yes(Arc::new(CooperativeExec::new(node))))
        }
    })
    .map(|t| t.data)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Counts a query as running from its creation until it is dropped.
struct RunningQuery(Arc<std::sync::atomic::AtomicUsize>);

impl RunningQuery {
    fn start(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for RunningQuery {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Warehouse for LocalWarehouse {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::DataFusion
    }

    fn home_project(&self) -> Option<String> {
        Some(HOME_CATALOG.to_owned())
    }

    async fn list_datasets(&self, page: &PageRequest) -> Result<Page<Dataset>> {
        paginate(
            self.inner
                .catalog
                .datasets
                .iter()
                .map(|(name, d)| (name, d.dataset())),
            page,
        )
    }

    async fn get_dataset(&self, dataset_id: &str) -> Result<Dataset> {
        Ok(self.inner.catalog.dataset(dataset_id)?.dataset())
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TableSummary>> {
        let dataset = self.inner.catalog.dataset(dataset_id)?;
        paginate(
            dataset.tables.iter().map(|(name, t)| (name, t.summary())),
            page,
        )
    }

    async fn get_table(&self, table: &TableRef) -> Result<Table> {
        Ok(self.inner.catalog.table(table)?.table())
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> Result<QueryResult> {
        let started = Instant::now();
        let entry = self.inner.catalog.table(table)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut rows = Vec::with_capacity(limit.min(1024));
        for batch in &entry.batches {
            if rows.len() >= limit {
                break;
            }
            rows.extend(batch_rows(batch, limit - rows.len()));
        }
        Ok(QueryResult {
            columns: entry.fields(),
            truncated: entry.num_rows > rows.len() as u64,
            truncated_at_bytes: None,
            rows,
            stats: QueryStats {
                duration_ms: duration_ms(started.elapsed()),
                ..QueryStats::default()
            },
        })
    }

    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport> {
        let inner = Arc::clone(&self.inner);
        let owned = job.clone();
        self.on_query_runtime(job, async move { inner.dry_run(&owned).await })
            .await
    }

    async fn execute(&self, job: &QueryJob) -> Result<QueryResult> {
        let started = Instant::now();
        let inner = Arc::clone(&self.inner);
        let owned = job.clone();
        let mut result = self
            .on_query_runtime(job, async move { inner.execute(&owned).await })
            .await?;
        result.stats.duration_ms = duration_ms(started.elapsed());
        Ok(result)
    }

    /// Executes on the query runtime, converting one record batch at a time: the task
    /// waits until the reader has taken the previous batch (a channel of one), so memory
    /// holds a couple of batches whatever the result's size. Dropping the stream aborts the
    /// task, which drops DataFusion's stream and so cancels the execution.
    async fn execute_stream(&self, job: &QueryJob) -> Result<RowStream> {
        let started = Instant::now();
        let running = RunningQuery::start(&self.running);
        let (header_tx, header_rx) = oneshot::channel::<Result<(Vec<Field>, u64)>>();
        let (mut batch_tx, batch_rx) = mpsc::channel::<Result<RowBatch>>(1);
        let inner = Arc::clone(&self.inner);
        let owned = job.clone();
        let task = self.runtime.spawn(async move {
            let _running = running;
            let max_rows = usize::try_from(owned.max_rows).unwrap_or(usize::MAX);
            let (mut stream, scan) = match inner.open(&owned, max_rows.max(1)).await {
                Ok(opened) => opened,
                Err(e) => {
                    let _ = header_tx.send(Err(e));
                    return;
                }
            };
            let columns = fields_from_schema(stream.schema().as_ref());
            if header_tx.send(Ok((columns, scan.bytes))).is_err() {
                return;
            }
            let mut left = max_rows;
            while left > 0 {
                // Each batch within the job's timeout: a stalled execution ends the export,
                // a long one does not.
                let next = match tokio::time::timeout(owned.timeout, stream.next()).await {
                    Err(_) => Some(Err(Error::Timeout(owned.timeout))),
                    Ok(None) => None,
                    Ok(Some(batch)) => Some(batch.map_err(query_error).map(|batch| {
                        let rows = batch_rows(&batch, left);
                        left -= rows.len();
                        rows
                    })),
                };
                let Some(next) = next else { break };
                let failed = next.is_err();
                if batch_tx.send(next).await.is_err() || failed {
                    break;
                }
            }
        })?;
        // Aborted when the reader drops the stream (or stops waiting for the header).
        let task = AbortOnDropHandle::new(task);
        let (columns, bytes) = match tokio::time::timeout(job.timeout, header_rx).await {
            Ok(Ok(header)) => header?,
            Ok(Err(_)) => {
                return Err(Error::internal_msg(
                    "the local query task ended before its first batch",
                ));
            }
            Err(_) => return Err(Error::Timeout(job.timeout)),
        };
        let stats = QueryStats {
            bytes_processed: bytes,
            duration_ms: duration_ms(started.elapsed()),
            ..QueryStats::default()
        };
        Ok(RowStream::from_channel(columns, stats, batch_rx, task))
    }

    async fn health(&self) -> ComponentHealth {
        ComponentHealth::ok("datafusion")
    }
}
