//! Query jobs: the `jobs.insert` request bqai sends (standard SQL, default dataset, location,
//! `maximumBytesBilled`, `jobTimeoutMs`, `useQueryCache`, labels), dry runs, and running a
//! job to its rows — long-polling `getQueryResults`, reading pages by page token up to the
//! row cap, and **cancelling the job in BigQuery** when the timeout fires or the caller
//! drops the future.
//!
//! The adapter picks the job id itself (`bqai_<query id>_<random>`) instead of letting the
//! SDK's high-level `Query` builder generate one: with the id known before the request
//! leaves, a future dropped mid-`jobs.insert` can still cancel the job, and a retried insert
//! that meets `duplicate` adopts the job its first attempt created instead of starting a
//! second one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use google_cloud_bigquery_v2::client::JobService;
use google_cloud_bigquery_v2::model::{
    DataFormatOptions, DatasetReference, GetQueryResultsResponse, Job, JobConfiguration,
    JobConfigurationQuery, JobReference, JobStatistics2, QueryParameter, QueryParameterType,
    QueryParameterValue,
};

use bqai_core::Error;
use bqai_core::model::{
    DryRunReport, Field, QueryJob, QueryParam, QueryParameters, QueryResult, QueryStats,
    ResultPage, Value, row_json_len,
};
use futures::SinkExt as _;
use futures::channel::{mpsc, oneshot};

use crate::client::Clients;
use crate::config::BigQueryConfig;
use crate::error::{Failure, Op};
use crate::retry::{jitter, with_retry};
use crate::schema::{fields_from_bq, table_ref_from_bq};
use crate::value::decode_row;

/// BigQuery allows 64 labels per job; keys and values are at most 63 characters.
const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 63;

/// The label carrying bqai's query (history) id on every job.
pub const QUERY_ID_LABEL: &str = "bqai_query_id";

fn label_chars(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_LABEL_LEN)
        .collect()
}

/// A valid BigQuery label key for `s`: lowercase letters, digits, `_` and `-`, starting
/// with a letter, at most 63 characters.
pub fn label_key(s: &str) -> String {
    let key = label_chars(s);
    if key.starts_with(|c: char| c.is_ascii_lowercase()) {
        key
    } else {
        label_chars(&format!("l_{key}"))
    }
}

/// A valid BigQuery label value for `s` (may be empty).
pub fn label_value(s: &str) -> String {
    label_chars(s)
}

/// The labels of a job: the configured ones, the job's own (request id, principal) and
/// [`QUERY_ID_LABEL`], each made valid for BigQuery; at most 64.
pub fn job_labels(config: &BigQueryConfig, job: &QueryJob) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let own = job
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once((QUERY_ID_LABEL, job.query_id.as_str())));
    for (key, value) in config
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(own)
    {
        if labels.len() >= MAX_LABELS && !labels.contains_key(&label_key(key)) {
            continue;
        }
        labels.insert(label_key(key), label_value(value));
    }
    labels
}

/// A fresh job id for a query: readable in the console, unique per attempt.
pub fn job_id_for(query_id: &str) -> String {
    let readable: String = query_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("bqai_{readable}_{:016x}", fastrand::u64(..))
}

/// `dataset` or `project.dataset` (the project may itself contain `.` and `:`, a dataset
/// never does) → a dataset reference.
pub fn dataset_reference(default_dataset: &str, home_project: &str) -> DatasetReference {
    let (project, dataset) = match default_dataset.rsplit_once('.') {
        Some((project, dataset)) => (project, dataset),
        None => (home_project, default_dataset),
    };
    DatasetReference::new()
        .set_project_id(project)
        .set_dataset_id(dataset)
}

/// The `jobs.insert` body for `job`.
pub fn build_job(config: &BigQueryConfig, job: &QueryJob, job_id: &str, dry_run: bool) -> Job {
    let mut query = JobConfigurationQuery::new()
        .set_query(job.sql.clone())
        .set_use_legacy_sql(false)
        .set_use_query_cache(job.use_cache);
    if let Some(dataset) = &job.default_dataset {
        query = query.set_default_dataset(dataset_reference(dataset, &config.project));
    }
    if let Some(cap) = job.max_bytes_billed.or(config.max_bytes_billed) {
        query = query.set_maximum_bytes_billed(i64::try_from(cap).unwrap_or(i64::MAX));
    }
    match &job.parameters {
        QueryParameters::None => {}
        QueryParameters::Positional(values) => {
            query = query
                .set_parameter_mode("POSITIONAL")
                .set_query_parameters(values.iter().map(|p| query_parameter(None, p)));
        }
        QueryParameters::Named(values) => {
            query = query.set_parameter_mode("NAMED").set_query_parameters(
                values
                    .iter()
                    .map(|(name, p)| query_parameter(Some(name), p)),
            );
        }
    }
    let mut configuration = JobConfiguration::new()
        .set_query(query)
        .set_labels(job_labels(config, job));
    if dry_run {
        configuration = configuration.set_dry_run(true);
    } else {
        // BigQuery's own deadline: the job stops even if bqai is gone before it can cancel.
        let millis = i64::try_from(job.timeout.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        configuration = configuration.set_job_timeout_ms(millis);
    }
    let mut reference = JobReference::new()
        .set_project_id(config.project.clone())
        .set_job_id(job_id);
    if let Some(location) = &config.location {
        reference = reference.set_location(location.clone());
    }
    Job::new()
        .set_job_reference(reference)
        .set_configuration(configuration)
}

/// One `queryParameters` entry: name (NAMED mode), `parameterType` (`ARRAY` with an
/// `arrayType` for arrays) and `parameterValue` (the value's text; no `value` at all for NULL,
/// as BigQuery documents).
pub fn query_parameter(name: Option<&str>, param: &QueryParam) -> QueryParameter {
    let scalar_type = QueryParameterType::new().set_type(param.field_type.as_str());
    let (parameter_type, value) = if param.array {
        let value = match &param.value {
            Value::Array(items) => QueryParameterValue::new()
                .set_array_values(items.iter().map(scalar_parameter_value)),
            _ => QueryParameterValue::new(),
        };
        (
            QueryParameterType::new()
                .set_type("ARRAY")
                .set_array_type(scalar_type),
            value,
        )
    } else {
        (scalar_type, scalar_parameter_value(&param.value))
    };
    let mut out = QueryParameter::new()
        .set_parameter_type(parameter_type)
        .set_parameter_value(value);
    if let Some(name) = name {
        out = out.set_name(name);
    }
    out
}

fn scalar_parameter_value(value: &Value) -> QueryParameterValue {
    match QueryParam::scalar_text(value) {
        Some(text) => QueryParameterValue::new().set_value(text),
        None => QueryParameterValue::new(),
    }
}

/// How one run of a job ended, before mapping to core errors.
enum RunError {
    /// The job finished with an error (it is no longer running).
    JobFailed(Failure),
    /// BigQuery refused to create the job (a 4xx answer to `jobs.insert`): nothing runs.
    Refused(Failure),
    /// A call failed; the job may still be running.
    Call(Failure),
}

/// Runs query jobs for one adapter.
#[derive(Clone, Debug)]
pub(crate) struct JobRunner {
    pub clients: Clients,
    pub config: std::sync::Arc<BigQueryConfig>,
}

/// What a stream tells before its rows: the columns, the job's statistics, its row count
/// within the cap and the job whose result holds the rows.
pub type StreamHeader = (Vec<Field>, QueryStats, Option<u64>, String);

/// How many rows a stream of `job` reads: its row cap, or only the first page of a paged
/// query (the rest is read later through the job's id).
fn rows_to_stream(job: &QueryJob) -> u64 {
    job.first_batch_rows
        .map_or(job.max_rows, |n| n.min(job.max_rows))
}

impl JobRunner {
    /// `maxResults` of a `getQueryResults` call that wants `rows` more rows: at least one,
    /// at most `warehouse.page_size`.
    fn page_of(&self, rows: u64) -> u32 {
        u32::try_from(rows.clamp(1, u64::from(self.config.page_size))).unwrap_or(u32::MAX)
    }

    fn query_op(job: &QueryJob, config: &BigQueryConfig) -> Op {
        Op::Query {
            max_bytes_billed: job.max_bytes_billed.or(config.max_bytes_billed),
            timeout: job.timeout,
        }
    }

    async fn insert(&self, body: Job) -> Result<Job, Failure> {
        let jobs = &self.clients.jobs;
        with_retry(&self.config.retry, self.config.request_timeout(), || {
            let request = jobs
                .insert_job()
                .set_project_id(self.config.project.clone())
                .set_job(body.clone());
            async move {
                match request.send().await {
                    Ok(job) => Ok(job),
                    Err(e) => Err(Failure::from_gax(&e)),
                }
            }
        })
        .await
    }

    async fn get_job(&self, job_id: &str) -> Result<Job, Failure> {
        let jobs = &self.clients.jobs;
        with_retry(&self.config.retry, self.config.request_timeout(), || {
            let mut request = jobs
                .get_job()
                .set_project_id(self.config.project.clone())
                .set_job_id(job_id);
            if let Some(location) = &self.config.location {
                request = request.set_location(location.clone());
            }
            async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
        })
        .await
    }

    async fn results_page(
        &self,
        job_id: &str,
        max_results: u32,
        from: ReadFrom<'_>,
        wait: Duration,
    ) -> Result<GetQueryResultsResponse, Failure> {
        let jobs = &self.clients.jobs;
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        // The long-poll wait plus the usual deadline for the answer itself.
        let attempt_timeout = wait + self.config.request_timeout();
        with_retry(&self.config.retry, attempt_timeout, || {
            let mut request = jobs
                .get_query_results()
                .set_project_id(self.config.project.clone())
                .set_job_id(job_id)
                .set_max_results(max_results)
                .set_timeout_ms(wait_ms)
                .set_format_options(DataFormatOptions::new().set_use_int64_timestamp(true));
            match from {
                ReadFrom::Start => {}
                ReadFrom::Token(token) => request = request.set_page_token(token),
                ReadFrom::Row(index) => request = request.set_start_index(index),
            }
            if let Some(location) = &self.config.location {
                request = request.set_location(location.clone());
            }
            async move { request.send().await.map_err(|e| Failure::from_gax(&e)) }
        })
        .await
    }

    /// Plans `job` with a dry run: bytes, statement type, referenced tables, result schema.
    #[tracing::instrument(name = "bigquery.dry_run", skip_all, fields(gcp.project_id = %self.config.project))]
    pub async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport, Error> {
        let op = Self::query_op(job, &self.config);
        let body = build_job(&self.config, job, &job_id_for(&job.query_id), true);
        let answer = self.insert(body).await.map_err(|f| f.into_core(&op))?;
        if let Some(failure) = job_failure(&answer) {
            return Err(failure.into_core(&op));
        }
        let stats = query_statistics(&answer);
        Ok(DryRunReport {
            bytes_processed: stats
                .and_then(|s| s.total_bytes_processed)
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or_default(),
            statement_type: stats
                .map(|s| s.statement_type.clone())
                .filter(|s| !s.is_empty()),
            referenced_tables: stats
                .map(|s| {
                    s.referenced_tables
                        .iter()
                        .map(|t| table_ref_from_bq(t, &self.config.project))
                        .collect()
                })
                .unwrap_or_default(),
            schema: stats
                .and_then(|s| s.schema.as_ref())
                .map(|s| fields_from_bq(&s.fields))
                .unwrap_or_default(),
        })
    }

    /// Runs `job` to its rows within `job.timeout`; cancels the BigQuery job when the
    /// timeout fires, when a call fails while it may still run, and when this future is
    /// dropped. Jobs that fail with a transient reason are re-run under a new id while
    /// attempts and time remain.
    pub async fn execute(&self, job: &QueryJob) -> Result<QueryResult, Error> {
        let started = Instant::now();
        self.with_job(job, |job_id| async move {
            let first = self.wait_for_completion(job, &job_id).await?;
            self.read_rows(job, &job_id, first, started).await
        })
        .await
    }

    /// Runs `job` until BigQuery has its result, then hands the result out page by page
    /// into `batches`, each page within `job.timeout` of asking for it (a long download is
    /// not cut, a stalled one is). The header (columns, the job's statistics and its row
    /// count within the cap) goes to `header` first, or the error that stopped the job. Ends
    /// when the rows, the row cap, or the reader (a dropped receiver) do.
    pub async fn stream(
        &self,
        job: &QueryJob,
        header: oneshot::Sender<Result<StreamHeader, Error>>,
        mut batches: mpsc::Sender<Result<Vec<Vec<Value>>, Error>>,
    ) {
        let started = Instant::now();
        let op = Self::query_op(job, &self.config);
        let done = self
            .with_job(job, |job_id| async move {
                let first = self.wait_for_completion(job, &job_id).await?;
                Ok((job_id, first))
            })
            .await;
        let (job_id, first) = match done {
            Ok(done) => done,
            Err(e) => {
                let _ = header.send(Err(e));
                return;
            }
        };
        let fields = first
            .schema
            .as_ref()
            .map(|s| fields_from_bq(&s.fields))
            .unwrap_or_default();
        let mut stats = self.final_stats(&job_id, &first).await;
        stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let total_rows = first.total_rows.map(|t| t.min(job.max_rows));
        if header
            .send(Ok((fields.clone(), stats, total_rows, job_id.clone())))
            .is_err()
        {
            return;
        }
        let mut sent = 0u64;
        let mut page = first;
        loop {
            let room = rows_to_stream(job).saturating_sub(sent);
            let rows: Result<Vec<_>, Error> = page
                .rows
                .iter()
                .take(usize::try_from(room).unwrap_or(usize::MAX))
                .map(|raw| {
                    decode_row(&fields, raw)
                        .map_err(|e| Error::internal("decoding BigQuery rows", e))
                })
                .collect();
            let failed = rows.is_err();
            let count = rows.as_ref().map_or(0, Vec::len) as u64;
            if count > 0 || failed {
                // An error is handed on, then ends the stream; so does a reader gone.
                let delivered = batches.send(rows).await.is_ok();
                if !delivered || failed {
                    return;
                }
            }
            sent += count;
            let token = std::mem::take(&mut page.page_token);
            // A paged reader reads the rest through the job's id: no page ahead for nobody.
            if token.is_empty() || sent >= rows_to_stream(job) {
                return;
            }
            let next = tokio::time::timeout(
                job.timeout,
                self.results_page(
                    &job_id,
                    self.page_of(rows_to_stream(job) - sent),
                    ReadFrom::Token(&token),
                    Duration::ZERO,
                ),
            )
            .await;
            page = match next {
                Ok(Ok(page)) => page,
                Ok(Err(failure)) => {
                    let _ = batches.send(Err(failure.into_core(&op))).await;
                    return;
                }
                Err(_) => {
                    let _ = batches.send(Err(Error::Timeout(job.timeout))).await;
                    return;
                }
            };
        }
    }

    /// Rows `offset..` of job `job_id`'s result, read again (`getQueryResults` from row
    /// `offset`, then by page token): at most `max_rows`, and no further page once their JSON
    /// passes `max_bytes`. Nothing runs and nothing is billed; BigQuery keeps a query's
    /// result for about a day, and answers `notFound` after.
    pub async fn read_result(
        &self,
        job_id: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> Result<ResultPage, Error> {
        let op = Op::Catalog {
            what: format!("the result of job {job_id}"),
        };
        let size = self.page_of(max_rows);
        let first = self
            .results_page(job_id, size, ReadFrom::Row(offset), Duration::ZERO)
            .await
            .map_err(|f| f.into_core(&op))?;
        let total_rows = first.total_rows;
        let read = self
            .collect_pages(job_id, first, max_rows, max_bytes)
            .await
            .map_err(|f| f.into_core(&op))?;
        Ok(ResultPage {
            columns: read.fields,
            rows: read.rows,
            total_rows,
        })
    }

    /// Runs `attempt` with a fresh job id until it succeeds, within `job.timeout`: a job
    /// that failed transiently is re-run while attempts and time remain, and the BigQuery
    /// job is cancelled when the timeout fires, when a call fails while it may still run,
    /// and when this future is dropped.
    async fn with_job<T, F, Fut>(&self, job: &QueryJob, mut attempt_with: F) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, RunError>>,
    {
        let deadline = tokio::time::Instant::now() + job.timeout;
        let op = Self::query_op(job, &self.config);
        let mut attempt = 1;
        loop {
            let job_id = job_id_for(&job.query_id);
            let guard = CancelGuard::new(&self.clients.jobs, &self.config, &job_id);
            let run = tokio::time::timeout_at(deadline, attempt_with(job_id));
            match run.await {
                Err(_elapsed) => {
                    guard.cancel_now().await;
                    return Err(Error::Timeout(job.timeout));
                }
                Ok(Ok(done)) => {
                    guard.disarm();
                    return Ok(done);
                }
                Ok(Err(RunError::JobFailed(failure))) => {
                    guard.disarm();
                    let wait = jitter(self.config.retry.ceiling(attempt));
                    let time_left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if failure.is_transient()
                        && attempt < self.config.retry.max_attempts
                        && time_left > wait
                    {
                        tracing::debug!(%failure, attempt, "BigQuery job failed transiently; re-running");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(failure.into_core(&op));
                }
                Ok(Err(RunError::Refused(failure))) => {
                    guard.disarm();
                    return Err(failure.into_core(&op));
                }
                Ok(Err(RunError::Call(failure))) => {
                    guard.cancel_now().await;
                    return Err(failure.into_core(&op));
                }
            }
        }
    }

    /// Inserts the job and long-polls `getQueryResults` until it is complete; the answer
    /// that says so carries the first page.
    #[tracing::instrument(name = "bigquery.job", skip_all, fields(bigquery.job_id = job_id, gcp.project_id = %self.config.project))]
    async fn wait_for_completion(
        &self,
        job: &QueryJob,
        job_id: &str,
    ) -> Result<GetQueryResultsResponse, RunError> {
        let body = build_job(&self.config, job, job_id, false);
        match self.insert(body).await {
            Ok(inserted) => {
                if let Some(failure) = job_failure(&inserted) {
                    return Err(RunError::JobFailed(failure));
                }
            }
            // An earlier attempt of this insert reached BigQuery: the job exists, follow it.
            Err(failure) if failure.reason() == Some("duplicate") => {}
            Err(failure) if failure.status.is_some_and(|s| (400..500).contains(&s)) => {
                return Err(RunError::Refused(failure));
            }
            // No answer, or a 5xx: the job may exist; the guard cancels it.
            Err(failure) => return Err(RunError::Call(failure)),
        }
        // A paged query needs its first page only: the rest is read later, by offset.
        let first_page = self.page_of(rows_to_stream(job));
        let poll_wait = Duration::from_millis(u64::from(self.config.poll_wait_ms));
        loop {
            let page = match self
                .results_page(job_id, first_page, ReadFrom::Start, poll_wait)
                .await
            {
                Ok(page) => page,
                Err(failure) => return Err(self.explain(job_id, failure).await),
            };
            if page.job_complete.unwrap_or(false) {
                return Ok(page);
            }
        }
    }

    /// The statistics of a completed job: bytes processed and billed and whether BigQuery's
    /// cache answered live on the job (the results page only has a first view of them).
    async fn final_stats(&self, job_id: &str, first: &GetQueryResultsResponse) -> QueryStats {
        let (mut cache_hit, mut bytes_processed) = first_view(first);
        let mut bytes_billed = if cache_hit { 0 } else { bytes_processed };
        if let Ok(done) = self.get_job(job_id).await
            && let Some(stats) = query_statistics(&done)
        {
            if let Some(b) = stats
                .total_bytes_processed
                .and_then(|b| u64::try_from(b).ok())
            {
                bytes_processed = b;
            }
            cache_hit = stats.cache_hit.unwrap_or(cache_hit);
            bytes_billed = stats
                .total_bytes_billed
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(if cache_hit { 0 } else { bytes_processed });
        }
        QueryStats {
            bytes_processed,
            bytes_billed,
            estimated_cost_usd: 0.0,
            cache_hit,
            duration_ms: 0,
        }
    }

    /// Reads a completed job's rows into memory from its first page on, up to the row cap
    /// and the response byte cap.
    async fn read_rows(
        &self,
        job: &QueryJob,
        job_id: &str,
        first: GetQueryResultsResponse,
        started: Instant,
    ) -> Result<QueryResult, RunError> {
        let max_rows = job.max_rows;
        let total_rows = first.total_rows;
        let (first_cache_hit, first_bytes) = first_view(&first);
        // Pages stop being read once the rows' JSON passes the response cap: memory follows
        // the cap, and no page is fetched (or paid for in time) that could not be sent.
        let read = self
            .collect_pages(job_id, first, max_rows, job.max_result_bytes)
            .await
            .map_err(RunError::Call)?;
        let Collected {
            fields,
            rows,
            more_pages,
            mut last,
        } = read;
        let truncated = total_rows.map_or(more_pages, |t| t > rows.len() as u64)
            && rows.len() as u64 >= max_rows;
        last.cache_hit = Some(first_cache_hit);
        last.total_bytes_processed = i64::try_from(first_bytes).ok();
        let mut stats = self.final_stats(job_id, &last).await;
        stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(QueryResult {
            columns: fields,
            rows,
            truncated,
            truncated_at_bytes: None,
            stats,
        })
    }

    /// Decodes the rows of `page` and of the pages after it until there are `max_rows` of
    /// them, their JSON passes `max_bytes`, or the result ends.
    async fn collect_pages(
        &self,
        job_id: &str,
        mut page: GetQueryResultsResponse,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> Result<Collected, Failure> {
        let fields = page
            .schema
            .as_ref()
            .map(|s| fields_from_bq(&s.fields))
            .unwrap_or_default();
        let byte_cap = max_bytes.map_or(usize::MAX, |b| usize::try_from(b).unwrap_or(usize::MAX));
        let mut rows: Vec<Vec<Value>> = Vec::new();
        let mut json_bytes = 0usize;
        loop {
            for raw in &page.rows {
                if rows.len() as u64 >= max_rows || json_bytes > byte_cap {
                    break;
                }
                let row = decode_row(&fields, raw).map_err(|e| {
                    Failure::transport(crate::error::Transport::Protocol, e.to_string())
                })?;
                json_bytes = json_bytes.saturating_add(row_json_len(&fields, &row));
                rows.push(row);
            }
            let token = std::mem::take(&mut page.page_token);
            if token.is_empty() || rows.len() as u64 >= max_rows || json_bytes > byte_cap {
                return Ok(Collected {
                    fields,
                    rows,
                    more_pages: !token.is_empty(),
                    last: page,
                });
            }
            let size = self.page_of(max_rows.saturating_sub(rows.len() as u64));
            page = self
                .results_page(job_id, size, ReadFrom::Token(&token), Duration::ZERO)
                .await?;
        }
    }

    /// A failed call about a job that may have failed itself: BigQuery answers
    /// `getQueryResults` of a failed job with the job's error; asking the job tells which.
    async fn explain(&self, job_id: &str, failure: Failure) -> RunError {
        if failure.status.is_none() {
            return RunError::Call(failure);
        }
        match self.get_job(job_id).await {
            Ok(job) => match job_failure(&job) {
                Some(job_failure) => RunError::JobFailed(job_failure),
                None => RunError::Call(failure),
            },
            Err(_) => RunError::Call(failure),
        }
    }
}

/// Rows read from a job's result pages ([`JobRunner::collect_pages`]).
struct Collected {
    fields: Vec<Field>,
    rows: Vec<Vec<Value>>,
    /// A page was left unread.
    more_pages: bool,
    /// The last page read (its rows taken).
    last: GetQueryResultsResponse,
}

/// Where a `getQueryResults` call starts reading.
#[derive(Debug, Clone, Copy)]
enum ReadFrom<'a> {
    /// The first row.
    Start,
    /// The page a previous answer's token names.
    Token(&'a str),
    /// This row (zero-based).
    Row(u64),
}

/// Whether BigQuery's cache answered and the bytes processed, as a job's first results page
/// says (later pages may not repeat them).
fn first_view(first: &GetQueryResultsResponse) -> (bool, u64) {
    (
        first.cache_hit.unwrap_or(false),
        first
            .total_bytes_processed
            .and_then(|b| u64::try_from(b).ok())
            .unwrap_or_default(),
    )
}

fn query_statistics(job: &Job) -> Option<&JobStatistics2> {
    job.statistics.as_ref().and_then(|s| s.query.as_ref())
}

/// The failure of a job that is DONE with an `errorResult`.
fn job_failure(job: &Job) -> Option<Failure> {
    let status = job.status.as_ref()?;
    if status.state == "DONE" && status.error_result.is_some() {
        Some(Failure::from_job_errors(
            status.error_result.as_ref(),
            &status.errors,
        ))
    } else {
        None
    }
}

/// Cancels a BigQuery job unless disarmed: awaited on timeout, spawned on drop.
struct CancelGuard {
    jobs: JobService,
    project: String,
    location: Option<String>,
    job_id: String,
    deadline: Duration,
    armed: bool,
}

impl CancelGuard {
    fn new(jobs: &JobService, config: &BigQueryConfig, job_id: &str) -> Self {
        Self {
            jobs: jobs.clone(),
            project: config.project.clone(),
            location: config.location.clone(),
            job_id: job_id.to_owned(),
            deadline: config.request_timeout().min(Duration::from_secs(10)),
            armed: true,
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }

    async fn cancel_now(mut self) {
        self.armed = false;
        cancel(
            self.jobs.clone(),
            self.project.clone(),
            self.location.clone(),
            self.job_id.clone(),
            self.deadline,
        )
        .await;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cancel(
                self.jobs.clone(),
                self.project.clone(),
                self.location.clone(),
                self.job_id.clone(),
                self.deadline,
            ));
        }
    }
}

async fn cancel(
    jobs: JobService,
    project: String,
    location: Option<String>,
    job_id: String,
    deadline: Duration,
) {
    let mut request = jobs
        .cancel_job()
        .set_project_id(project)
        .set_job_id(job_id.clone());
    if let Some(location) = location {
        request = request.set_location(location);
    }
    match tokio::time::timeout(deadline, request.send()).await {
        Ok(Ok(_)) => tracing::debug!(job_id, "cancelled BigQuery job"),
        Ok(Err(e)) => tracing::warn!(job_id, error = %e, "cancelling BigQuery job failed"),
        Err(_) => tracing::warn!(job_id, "cancelling BigQuery job timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_job() -> QueryJob {
        QueryJob {
            query_id: "01JABC/xyz".into(),
            sql: "SELECT 1".into(),
            default_dataset: Some("shop".into()),
            max_rows: 10,
            timeout: Duration::from_secs(30),
            max_bytes_billed: Some(1_000_000),
            use_cache: true,
            referenced_tables: Vec::new(),
            labels: vec![
                ("request_id".into(), "Req-42".into()),
                ("Principal".into(), "key:Alice@example.com".into()),
            ],
            parameters: bqai_core::model::QueryParameters::None,
            max_result_bytes: None,
            principal: None,
            queue_watch: None,
            first_batch_rows: None,
        }
    }

    #[test]
    fn labels_are_made_valid() {
        assert_eq!(label_key("Request ID"), "request_id");
        assert_eq!(label_key("1st"), "l_1st");
        assert_eq!(label_value("Alice@Example.com"), "alice_example_com");
        assert_eq!(label_value(&"x".repeat(100)).len(), 63);
        let labels = job_labels(&BigQueryConfig::new("p"), &query_job());
        assert_eq!(labels.get("request_id").map(String::as_str), Some("req-42"));
        assert_eq!(
            labels.get("principal").map(String::as_str),
            Some("key_alice_example_com")
        );
        assert_eq!(
            labels.get(QUERY_ID_LABEL).map(String::as_str),
            Some("01jabc_xyz")
        );
    }

    #[test]
    fn job_ids_are_valid_and_unique() {
        let a = job_id_for("01JABC/xyz");
        let b = job_id_for("01JABC/xyz");
        assert_ne!(a, b);
        assert!(a.starts_with("bqai_01JABC_xyz_"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
    }

    #[test]
    fn default_dataset_may_name_a_project() {
        let r = dataset_reference("shop", "home");
        assert_eq!(
            (r.project_id.as_str(), r.dataset_id.as_str()),
            ("home", "shop")
        );
        let r = dataset_reference("example.com:proj.shop", "home");
        assert_eq!(
            (r.project_id.as_str(), r.dataset_id.as_str()),
            ("example.com:proj", "shop")
        );
    }

    #[test]
    fn the_job_body_carries_every_control() {
        let mut config = BigQueryConfig::new("proj");
        config.location = Some("EU".into());
        let body = build_job(&config, &query_job(), "bqai_x", false);
        let json = serde_json::to_value(&body).unwrap_or_default();
        let configuration = &json["configuration"];
        assert_eq!(json["jobReference"]["jobId"], "bqai_x");
        assert_eq!(json["jobReference"]["location"], "EU");
        assert_eq!(configuration["query"]["useLegacySql"], false);
        assert_eq!(configuration["query"]["useQueryCache"], true);
        assert_eq!(configuration["query"]["maximumBytesBilled"], "1000000");
        assert_eq!(
            configuration["query"]["defaultDataset"]["datasetId"],
            "shop"
        );
        assert_eq!(configuration["jobTimeoutMs"], "30000");
        assert_eq!(configuration["labels"]["request_id"], "req-42");
        assert!(configuration.get("dryRun").is_none());

        let dry = serde_json::to_value(build_job(&config, &query_job(), "bqai_y", true))
            .unwrap_or_default();
        assert_eq!(dry["configuration"]["dryRun"], true);
        assert!(dry["configuration"].get("jobTimeoutMs").is_none());
    }

    #[test]
    fn parameters_are_sent_typed() {
        let config = BigQueryConfig::new("proj");
        let mut job = query_job();
        job.parameters = QueryParameters::from_json(&serde_json::json!({
            "country": "DE",
            "min": 2,
            "since": {"type": "DATE", "value": "2024-01-31"},
            "ids": [1, 2],
            "none": {"type": "NUMERIC", "value": null},
        }))
        .unwrap_or_default();
        let json = serde_json::to_value(build_job(&config, &job, "j", false)).unwrap_or_default();
        let query = &json["configuration"]["query"];
        assert_eq!(query["parameterMode"], "NAMED");
        let params = query["queryParameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let by_name = |n: &str| {
            params
                .iter()
                .find(|p| p["name"] == n)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(by_name("country")["parameterType"]["type"], "STRING");
        assert_eq!(by_name("country")["parameterValue"]["value"], "DE");
        assert_eq!(by_name("min")["parameterType"]["type"], "INT64");
        assert_eq!(by_name("min")["parameterValue"]["value"], "2");
        assert_eq!(by_name("since")["parameterType"]["type"], "DATE");
        assert_eq!(by_name("since")["parameterValue"]["value"], "2024-01-31");
        assert_eq!(by_name("ids")["parameterType"]["type"], "ARRAY");
        assert_eq!(
            by_name("ids")["parameterType"]["arrayType"]["type"],
            "INT64"
        );
        assert_eq!(
            by_name("ids")["parameterValue"]["arrayValues"],
            serde_json::json!([{"value": "1"}, {"value": "2"}])
        );
        // NULL is a value with no `value` (never an explicit null).
        assert_eq!(by_name("none")["parameterValue"], serde_json::json!({}));

        job.parameters =
            QueryParameters::from_json(&serde_json::json!([true, 1.5])).unwrap_or_default();
        let json = serde_json::to_value(build_job(&config, &job, "j", true)).unwrap_or_default();
        let query = &json["configuration"]["query"];
        assert_eq!(query["parameterMode"], "POSITIONAL");
        assert_eq!(query["queryParameters"][0]["parameterType"]["type"], "BOOL");
        assert_eq!(
            query["queryParameters"][0]["parameterValue"]["value"],
            "true"
        );
        assert!(query["queryParameters"][0].get("name").is_none());
        assert_eq!(
            query["queryParameters"][1]["parameterType"]["type"],
            "FLOAT64"
        );

        job.parameters = QueryParameters::None;
        let json = serde_json::to_value(build_job(&config, &job, "j", false)).unwrap_or_default();
        assert!(
            json["configuration"]["query"]
                .get("parameterMode")
                .is_none()
        );
        assert!(
            json["configuration"]["query"]
                .get("queryParameters")
                .is_none()
        );
    }

    #[test]
    fn the_configured_cap_applies_when_the_job_has_none() {
        let mut config = BigQueryConfig::new("proj");
        config.max_bytes_billed = Some(42);
        let mut job = query_job();
        job.max_bytes_billed = None;
        let json = serde_json::to_value(build_job(&config, &job, "j", false)).unwrap_or_default();
        assert_eq!(json["configuration"]["query"]["maximumBytesBilled"], "42");
    }
}
