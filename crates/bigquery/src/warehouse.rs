//! [`BigQueryWarehouse`]: the `Warehouse` port on BigQuery — catalog through
//! `datasets.list/get` and `tables.list/get` (one call per page, never one per item),
//! previews through `tabledata.list` (free; views and other non-table kinds fall back to a
//! capped `SELECT * … LIMIT n`), dry runs and queries through [`crate::job`]. Every call
//! runs on the adapter's own threads ([`crate::runtime`]), never on the caller's.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use google_cloud_bigquery_v2::model::Dataset as BqDataset;

use bqai_core::Error;
use bqai_core::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, QueryStats,
    ResultPage, RowStream, SqlDialect, Table, TableKind, TableRef, TableSummary,
};
use bqai_core::ports::Warehouse;
use futures::channel::{mpsc, oneshot};

use crate::client::Clients;
use crate::config::BigQueryConfig;
use crate::error::{Failure, Op};
use crate::job::JobRunner;
use crate::retry::with_retry;
use crate::runtime::CallRuntime;
use crate::schema::{kind_from_bq, table_from_bq, table_ref_from_bq};
use crate::value::decode_row;

/// The `kind` reported by [`Warehouse::health`].
pub const HEALTH_KIND: &str = "bigquery";

/// A [`Warehouse`] on Google BigQuery: [`Calls`] run on the adapter's [`CallRuntime`].
#[derive(Clone, Debug)]
pub struct BigQueryWarehouse {
    calls: Calls,
    runtime: Arc<CallRuntime>,
}

/// Threads of the call runtime: calls mostly wait on the network.
const CALL_THREADS: usize = 2;

impl BigQueryWarehouse {
    /// Validates `config`, loads the credentials and builds the clients. Makes no request:
    /// a BigQuery that is down at start shows in [`Warehouse::health`], not here.
    pub async fn connect(config: BigQueryConfig) -> bqai_core::Result<Self> {
        config.validate()?;
        let config = Arc::new(config);
        let clients = Clients::build(&config).await?;
        Ok(Self {
            calls: Calls {
                jobs: JobRunner {
                    clients: clients.clone(),
                    config: Arc::clone(&config),
                },
                config,
                clients,
            },
            runtime: Arc::new(CallRuntime::new(CALL_THREADS)?),
        })
    }

    /// The configuration this adapter runs with.
    pub fn config(&self) -> &BigQueryConfig {
        &self.calls.config
    }

    /// Runs `call` with a clone of the calls (cheap: `Arc`s) on the call runtime.
    async fn on_runtime<T, F, Fut>(&self, call: F) -> bqai_core::Result<T>
    where
        F: FnOnce(Calls) -> Fut,
        Fut: Future<Output = bqai_core::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.run(call(self.calls.clone())).await
    }
}

#[async_trait]
impl Warehouse for BigQueryWarehouse {
    fn dialect(&self) -> SqlDialect {
        self.calls.dialect()
    }

    fn home_project(&self) -> Option<String> {
        self.calls.home_project()
    }

    async fn list_datasets(&self, page: &PageRequest) -> bqai_core::Result<Page<Dataset>> {
        let page = page.clone();
        self.on_runtime(|c| async move { c.list_datasets(&page).await })
            .await
    }

    async fn get_dataset(&self, dataset_id: &str) -> bqai_core::Result<Dataset> {
        let dataset_id = dataset_id.to_owned();
        self.on_runtime(|c| async move { c.get_dataset(&dataset_id).await })
            .await
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> bqai_core::Result<Page<TableSummary>> {
        let (dataset_id, page) = (dataset_id.to_owned(), page.clone());
        self.on_runtime(|c| async move { c.list_tables(&dataset_id, &page).await })
            .await
    }

    async fn get_table(&self, table: &TableRef) -> bqai_core::Result<Table> {
        let table = table.clone();
        self.on_runtime(|c| async move { c.get_table(&table).await })
            .await
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> bqai_core::Result<QueryResult> {
        let table = table.clone();
        self.on_runtime(move |c| async move { c.preview(&table, limit).await })
            .await
    }

    async fn dry_run(&self, job: &QueryJob) -> bqai_core::Result<DryRunReport> {
        let job = job.clone();
        self.on_runtime(|c| async move { c.dry_run(&job).await })
            .await
    }

    async fn execute(&self, job: &QueryJob) -> bqai_core::Result<QueryResult> {
        let job = job.clone();
        self.on_runtime(|c| async move { c.execute(&job).await })
            .await
    }

    /// The job runs and its pages are read on the call runtime; a channel of one page
    /// between it and the reader keeps memory at about two pages (`warehouse.page_size`
    /// rows, at most BigQuery's ~10 MB per page). Dropping the stream aborts the reading
    /// task, which cancels a job still running.
    async fn execute_stream(&self, job: &QueryJob) -> bqai_core::Result<RowStream> {
        let (header_tx, header_rx) = oneshot::channel();
        let (batch_tx, batch_rx) = mpsc::channel(1);
        let (calls, job) = (self.calls.clone(), job.clone());
        let task = self
            .runtime
            .spawn(async move { calls.jobs.stream(&job, header_tx, batch_tx).await })?;
        let (columns, stats, total_rows, job_id) = header_rx
            .await
            .map_err(|_| Error::internal_msg("the BigQuery job task ended before its result"))??;
        Ok(RowStream::from_channel(columns, stats, batch_rx, task)
            .with_total_rows(total_rows)
            .with_result_handle(Some(job_id)))
    }

    /// `handle` is the job id a stream named; the job ran in the configured project and
    /// location.
    async fn read_result(
        &self,
        handle: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> bqai_core::Result<ResultPage> {
        if handle.is_empty()
            || handle.len() > 1024
            || !handle
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Error::NotFound(format!("the result {handle}")));
        }
        let handle = handle.to_owned();
        self.on_runtime(|c| async move {
            c.jobs
                .read_result(&handle, offset, max_rows, max_bytes)
                .await
        })
        .await
    }

    async fn health(&self) -> ComponentHealth {
        self.on_runtime(|c| async move { Ok(c.health().await) })
            .await
            .unwrap_or_else(|_| ComponentHealth::down(HEALTH_KIND, "BigQuery calls cannot run"))
    }
}

/// The calls themselves, on whichever thread polls them.
#[derive(Clone, Debug)]
struct Calls {
    config: Arc<BigQueryConfig>,
    clients: Clients,
    jobs: JobRunner,
}

impl Calls {
    fn project_of<'a>(&'a self, table: &'a TableRef) -> &'a str {
        table.project.as_deref().unwrap_or(&self.config.project)
    }

    async fn call<T, F, Fut>(&self, op: &Op, call: F) -> bqai_core::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        with_retry(&self.config.retry, self.config.request_timeout(), call)
            .await
            .map_err(|f| f.into_core(op))
    }

    fn dataset_from_bq(&self, d: &BqDataset, fallback_id: &str) -> Dataset {
        let (project, id) = d.dataset_reference.as_ref().map_or_else(
            || (self.config.project.clone(), fallback_id.to_owned()),
            |r| (r.project_id.clone(), r.dataset_id.clone()),
        );
        Dataset {
            id,
            project: Some(project),
            description: d
                .description
                .as_ref()
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty()),
            location: Some(d.location.clone()).filter(|l| !l.is_empty()),
            table_count: None,
        }
    }

    /// Reads up to `limit` rows with `tabledata.list`, page by page.
    async fn preview_table_data(
        &self,
        table: &TableRef,
        meta: Table,
        limit: u64,
    ) -> bqai_core::Result<QueryResult> {
        let started = std::time::Instant::now();
        let op = Op::Catalog {
            what: format!("table {table}"),
        };
        let project = self.project_of(table).to_owned();
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        let mut total: Option<u64> = None;
        while (rows.len() as u64) < limit {
            let want = (limit - rows.len() as u64).min(u64::from(self.config.page_size));
            let want = u32::try_from(want).unwrap_or(u32::MAX);
            let page = self
                .call(&op, || {
                    self.clients.rest.list_table_data(
                        &project,
                        &table.dataset,
                        &table.table,
                        want,
                        token.as_deref(),
                    )
                })
                .await?;
            total = total.or_else(|| page["totalRows"].as_str().and_then(|t| t.parse().ok()));
            let page_rows = page["rows"].as_array().cloned().unwrap_or_default();
            if page_rows.is_empty() {
                break;
            }
            for raw in page_rows.iter().filter_map(serde_json::Value::as_object) {
                if rows.len() as u64 >= limit {
                    break;
                }
                rows.push(
                    decode_row(&meta.schema, raw)
                        .map_err(|e| Error::internal("decoding BigQuery rows", e))?,
                );
            }
            token = page["pageToken"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let truncated = total.map_or(token.is_some(), |t| t > rows.len() as u64);
        Ok(QueryResult {
            columns: meta.schema,
            rows,
            truncated,
            truncated_at_bytes: None,
            stats: QueryStats {
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                ..QueryStats::default()
            },
        })
    }
}

#[async_trait]
impl Warehouse for Calls {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::BigQuery
    }

    fn home_project(&self) -> Option<String> {
        Some(self.config.project.clone())
    }

    async fn list_datasets(&self, page: &PageRequest) -> bqai_core::Result<Page<Dataset>> {
        let op = Op::Catalog {
            what: format!("project {}", self.config.project),
        };
        let list = self
            .call(&op, || {
                let mut request = self
                    .clients
                    .datasets
                    .list_datasets()
                    .set_project_id(self.config.project.clone());
                if page.page_size > 0 {
                    request = request.set_max_results(page.page_size);
                }
                if let Some(token) = &page.page_token {
                    request = request.set_page_token(token.clone());
                }
                async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
            })
            .await?;
        let items = list
            .datasets
            .iter()
            .map(|d| {
                let (project, id) = d.dataset_reference.as_ref().map_or_else(
                    || (self.config.project.clone(), d.id.clone()),
                    |r| (r.project_id.clone(), r.dataset_id.clone()),
                );
                Dataset {
                    id,
                    project: Some(project),
                    description: None,
                    location: Some(d.location.clone()).filter(|l| !l.is_empty()),
                    table_count: None,
                }
            })
            .collect();
        Ok(Page {
            items,
            next_page_token: Some(list.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    async fn get_dataset(&self, dataset_id: &str) -> bqai_core::Result<Dataset> {
        let op = Op::Catalog {
            what: format!("dataset {dataset_id}"),
        };
        let dataset = self
            .call(&op, || {
                let request = self
                    .clients
                    .datasets
                    .get_dataset()
                    .set_project_id(self.config.project.clone())
                    .set_dataset_id(dataset_id);
                async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
            })
            .await?;
        Ok(self.dataset_from_bq(&dataset, dataset_id))
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> bqai_core::Result<Page<TableSummary>> {
        let op = Op::Catalog {
            what: format!("dataset {dataset_id}"),
        };
        let list = self
            .call(&op, || {
                let mut request = self
                    .clients
                    .tables
                    .list_tables()
                    .set_project_id(self.config.project.clone())
                    .set_dataset_id(dataset_id);
                if page.page_size > 0 {
                    request = request.set_max_results(page.page_size);
                }
                if let Some(token) = &page.page_token {
                    request = request.set_page_token(token.clone());
                }
                async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
            })
            .await?;
        let items = list
            .tables
            .iter()
            .filter_map(|t| {
                let reference = t.table_reference.as_ref()?;
                Some(TableSummary {
                    table_ref: table_ref_from_bq(reference, &self.config.project),
                    kind: kind_from_bq(&t.r#type),
                    // tables.list does not report sizes; asking per table would be N+1.
                    num_rows: None,
                    num_bytes: None,
                })
            })
            .collect();
        Ok(Page {
            items,
            next_page_token: Some(list.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    async fn get_table(&self, table: &TableRef) -> bqai_core::Result<Table> {
        let op = Op::Catalog {
            what: format!("table {table}"),
        };
        let project = self.project_of(table).to_owned();
        let answer = self
            .call(&op, || {
                let request = self
                    .clients
                    .tables
                    .get_table()
                    .set_project_id(project.clone())
                    .set_dataset_id(table.dataset.clone())
                    .set_table_id(table.table.clone());
                async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
            })
            .await?;
        Ok(table_from_bq(&answer, table, &self.config.project))
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> bqai_core::Result<QueryResult> {
        let meta = self.get_table(table).await?;
        if meta.kind == TableKind::Table {
            return self.preview_table_data(table, meta, limit).await;
        }
        // Views and external tables have no stored rows to list: a capped query.
        let sql = format!(
            "SELECT * FROM `{}.{}.{}` LIMIT {limit}",
            self.project_of(table),
            table.dataset,
            table.table
        );
        let job = QueryJob {
            query_id: "preview".to_owned(),
            sql,
            default_dataset: None,
            max_rows: limit,
            timeout: self.config.request_timeout(),
            max_bytes_billed: self.config.max_bytes_billed,
            use_cache: true,
            referenced_tables: vec![table.clone()],
            labels: Vec::new(),
            parameters: bqai_core::model::QueryParameters::None,
            max_result_bytes: None,
            principal: None,
            queue_watch: None,
            first_batch_rows: None,
        };
        self.jobs.execute(&job).await
    }

    async fn dry_run(&self, job: &QueryJob) -> bqai_core::Result<DryRunReport> {
        self.jobs.dry_run(job).await
    }

    async fn execute(&self, job: &QueryJob) -> bqai_core::Result<QueryResult> {
        self.jobs.execute(job).await
    }

    async fn health(&self) -> ComponentHealth {
        let request = self
            .clients
            .datasets
            .list_datasets()
            .set_project_id(self.config.project.clone())
            .set_max_results(1_u32);
        match tokio::time::timeout(self.config.request_timeout(), request.send()).await {
            Ok(Ok(_)) => ComponentHealth::ok(HEALTH_KIND),
            Ok(Err(e)) => {
                let failure = Failure::from_gax(&e);
                tracing::warn!(%failure, "BigQuery health check failed");
                ComponentHealth::down(HEALTH_KIND, failure.health_detail(&self.config.project))
            }
            Err(_) => ComponentHealth::down(
                HEALTH_KIND,
                format!(
                    "BigQuery did not answer within {} ms",
                    self.config.request_timeout().as_millis()
                ),
            ),
        }
    }
}
