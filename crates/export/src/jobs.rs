//! Export jobs: the worker pool that runs queued exports into files.
//!
//! Each of `export.workers` workers claims the oldest waiting job from the store
//! ([`ExportJobStore::claim_job`]), runs it through the query pipeline's export path (the
//! same [`QueryService::plan_export`] and [`QueryService::stream_planned`] as an inline
//! export, so the guard, scope, dry run, byte cap, quota and timeout apply again when it
//! runs) and encodes the rows into a file of the [`Destination`]. While it runs, a heartbeat
//! every `heartbeat_interval` records progress; a heartbeat the store refuses means the job
//! is no longer this worker's (its owner cancelled it), and the run stops — dropping the row
//! stream, which stops the warehouse's work.
//!
//! Nothing is lost on a restart: a graceful stop puts running jobs back in the queue, and a
//! crash leaves them `running` with a heartbeat that goes stale after `stale_after`, when any
//! worker (of any replica) claims them again. A run always starts from zero.
//!
//! A separate loop expires finished files after `export.file_ttl_hours`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bqai_core::Error;
use bqai_core::export::{ExportJob, JobEnd, JobError, JobProgress, MAX_ATTEMPTS, QueueDepth};
use bqai_core::history::QueryKind;
use bqai_core::model::{QueryParameters, QueryRequest};
use bqai_core::ports::ExportJobStore;
use bqai_core::query::{QueryService, RecordMeta};
use chrono::{TimeDelta, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Destination, Format, Options, encode_stream};

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs run at once by this process (0: none; the jobs wait for another replica).
    pub workers: usize,
    /// Row cap of an export (`export.max_rows`).
    pub max_rows: u64,
    /// How long a finished file is kept.
    pub file_ttl: Duration,
    /// How often an idle worker looks for a job (submissions also wake one at once).
    pub poll_interval: Duration,
    /// How often a running job reports progress and proves its worker alive.
    pub heartbeat_interval: Duration,
    /// A running job whose heartbeat is older than this is claimed again.
    pub stale_after: Duration,
    /// How often expired files are deleted.
    pub expiry_interval: Duration,
    /// Bytes one owner's jobs may write per UTC day.
    pub max_bytes_per_day: Option<u64>,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            max_rows: 10_000_000,
            file_ttl: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(2),
            heartbeat_interval: Duration::from_secs(5),
            stale_after: Duration::from_secs(60),
            expiry_interval: Duration::from_secs(60),
            max_bytes_per_day: None,
        }
    }
}

/// Told how each run ended: the job, and the error code when it failed (`None`: succeeded).
pub type JobObserver = Arc<dyn Fn(&ExportJob, Option<&str>) + Send + Sync>;

/// The worker pool and the file expiry of export jobs.
pub struct JobRunner {
    queries: QueryService,
    store: Arc<dyn ExportJobStore>,
    destination: Destination,
    settings: JobSettings,
    /// This process's name in the store's `worker` column (plus the worker's number).
    process: String,
    /// Jobs running here, so a cancellation stops them at once rather than at the next
    /// heartbeat.
    running: Mutex<HashMap<String, CancellationToken>>,
    wake: Notify,
    observer: Option<JobObserver>,
    /// The store's queue at the last count (every heartbeat interval), for `/metrics`.
    depth: Mutex<Option<QueueDepth>>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("process", &self.process)
            .field("destination", &self.destination)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a run ended, before it is written down.
enum Ended {
    /// Succeeded or failed: the job's end.
    End(JobEnd),
    /// Stopped from outside (cancelled, taken over, or the process stopping).
    Stopped,
}

impl JobRunner {
    /// A runner of the jobs in `store`, running them through `queries` into `destination`.
    pub fn new(
        queries: QueryService,
        store: Arc<dyn ExportJobStore>,
        destination: Destination,
        settings: JobSettings,
    ) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Self {
            queries,
            store,
            destination,
            settings,
            process: format!("{}-{}", std::process::id(), &id[id.len() - 8..]),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            observer: None,
            depth: Mutex::new(None),
        }
    }

    /// Calls `observer` at the end of every run (metrics).
    pub fn with_observer(mut self, observer: JobObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Where the files are.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The settings.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// The store of the jobs.
    pub fn store(&self) -> &Arc<dyn ExportJobStore> {
        &self.store
    }

    /// Wakes an idle worker (a job was just submitted).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops job `id` at once if it runs in this process (the store already says cancelled).
    pub fn stop_local(&self, id: &str) {
        if let Some(token) = self.lock_running().get(id) {
            token.cancel();
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the workers and the expiry loop; they stop when `shutdown` is cancelled, each
    /// putting its running job back in the queue. The handle ends when all have.
    pub fn spawn(self: Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..self.settings.workers {
            tasks.spawn(Arc::clone(&self).work(n, shutdown.clone()));
        }
        tasks.spawn(Arc::clone(&self).count_loop(shutdown.clone()));
        tasks.spawn(Arc::clone(&self).expire_loop(shutdown));
        tokio::spawn(async move { while tasks.join_next().await.is_some() {} })
    }

    async fn work(self: Arc<Self>, n: usize, shutdown: CancellationToken) {
        let worker = format!("{}-{n}", self.process);
        while !shutdown.is_cancelled() {
            let now = Utc::now();
            let stale_before = now - delta(self.settings.stale_after);
            match self
                .store
                .claim_job(&worker, now, stale_before, MAX_ATTEMPTS)
                .await
            {
                Ok(Some(job)) => {
                    self.run(job, &worker, &shutdown).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, worker, "could not claim an export job"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
    }

    /// Runs one claimed job and writes down how it ended.
    async fn run(&self, job: ExportJob, worker: &str, shutdown: &CancellationToken) {
        let stop = shutdown.child_token();
        self.lock_running().insert(job.id.clone(), stop.clone());
        tracing::info!(export_id = %job.id, worker, attempt = job.attempts, format = %job.format, "export job started");
        let ended = self.execute(&job, worker, &stop).await;
        self.lock_running().remove(&job.id);
        match ended {
            Ended::End(end) => {
                let code = match &end {
                    JobEnd::Succeeded { .. } => None,
                    JobEnd::Failed { error, .. } => Some(error.code.clone()),
                };
                match self
                    .store
                    .finish_job(&job.id, worker, &end, Utc::now())
                    .await
                {
                    Ok(true) => {
                        tracing::info!(export_id = %job.id, outcome = code.as_deref().unwrap_or("succeeded"), "export job ended");
                    }
                    Ok(false) => {
                        // Cancelled while its last bytes were written: the file goes too.
                        tracing::info!(export_id = %job.id, "export job was cancelled at its end");
                        self.discard(&end).await;
                    }
                    Err(e) => {
                        // Left running: its heartbeat goes stale and it runs again.
                        tracing::error!(export_id = %job.id, error = %e, "could not record the end of an export job");
                        self.discard(&end).await;
                    }
                }
                if let Some(observe) = &self.observer {
                    observe(&job, code.as_deref());
                }
            }
            Ended::Stopped if shutdown.is_cancelled() => {
                match self.store.release_job(&job.id, worker).await {
                    Ok(_) => {
                        tracing::info!(export_id = %job.id, "export job put back in the queue (stopping)")
                    }
                    Err(e) => {
                        tracing::warn!(export_id = %job.id, error = %e, "could not put an export job back; it runs again once its heartbeat is stale")
                    }
                }
            }
            Ended::Stopped => {
                tracing::info!(export_id = %job.id, "export job stopped (cancelled)");
                if let Some(observe) = &self.observer {
                    observe(&job, Some("CANCELLED"));
                }
            }
        }
    }

    async fn discard(&self, end: &JobEnd) {
        if let JobEnd::Succeeded { location, .. } = end
            && let Err(e) = self.destination.delete(location).await
        {
            tracing::warn!(location, error = %e, "could not delete an export file");
        }
    }

    /// Plans, streams and encodes the job's rows into a file.
    async fn execute(&self, job: &ExportJob, worker: &str, stop: &CancellationToken) -> Ended {
        let failed = |e: &Error, query_id: Option<String>, p: JobProgress| {
            Ended::End(JobEnd::Failed {
                progress: p,
                error: JobError::from_error(e),
                query_id,
            })
        };
        let (format, options, request) = match job_input(job) {
            Ok(input) => input,
            Err(e) => return failed(&e, None, JobProgress::default()),
        };
        let meta = RecordMeta {
            kind: QueryKind::Export,
            request_id: job.spec.request_id.clone(),
            rerun_of: job.spec.rerun_of.clone(),
            ..RecordMeta::default()
        };
        let principal = &job.principal;
        let planned = match self
            .queries
            .plan_export(request, principal, self.settings.max_rows, meta.clone())
            .await
        {
            Ok(planned) => planned,
            Err(e) => return failed(&e, None, JobProgress::default()),
        };
        let query_id = Some(planned.query_id().to_owned());
        let streamed = match self.queries.stream_planned(planned, principal, meta).await {
            Ok(streamed) => streamed,
            Err(e) => return failed(&e, query_id, JobProgress::default()),
        };
        let total_rows = streamed.rows.total_rows;
        let budget = self.byte_budget(job).await;
        let mut pending = match self.destination.create(&job.id, format.extension()).await {
            Ok(p) => p,
            Err(io) => {
                let e = Error::unavailable("the export destination", io);
                self.queries
                    .finish_stream(streamed.record, 0, Some(e.duplicate()))
                    .await;
                return failed(&e, query_id, JobProgress::default());
            }
        };
        let writer = match pending.writer() {
            Ok(w) => w,
            Err(io) => {
                let e = Error::internal("the export file", io);
                pending.discard().await;
                self.queries
                    .finish_stream(streamed.record, 0, Some(e.duplicate()))
                    .await;
                return failed(&e, query_id, JobProgress::default());
            }
        };

        let counters = Arc::new(Counters::default());
        let over_budget = stop.child_token();
        let seen = Arc::clone(&counters);
        let trip = over_budget.clone();
        // Boxed, so dropping it (a cancellation) drops the row stream at once.
        let mut encode = Box::pin(encode_stream(
            streamed.rows,
            format,
            options,
            writer,
            move |rows, bytes| {
                seen.rows.store(rows, Ordering::Relaxed);
                seen.bytes.store(bytes, Ordering::Relaxed);
                if budget.is_some_and(|b| bytes > b) {
                    seen.over.store(true, Ordering::Relaxed);
                    trip.cancel();
                }
            },
        ));
        let mut beat = tokio::time::interval(self.settings.heartbeat_interval);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                done = &mut encode => break Some(done),
                () = over_budget.cancelled() => break None,
                _ = beat.tick() => {
                    let p = counters.progress(total_rows);
                    match self.store.heartbeat(&job.id, worker, &p, Utc::now()).await {
                        Ok(true) => {}
                        Ok(false) => break None,
                        Err(e) => tracing::warn!(export_id = %job.id, error = %e, "could not record an export job's heartbeat"),
                    }
                }
            }
        };
        let progress = counters.progress(total_rows);
        match outcome {
            Some(Ok(written)) => match self
                .destination
                .commit(
                    pending,
                    crate::FileLabels {
                        content_type: format.content_type(),
                        file_name: &job.file_name,
                    },
                )
                .await
            {
                Ok(location) => {
                    self.queries
                        .finish_stream(streamed.record, written.rows, None)
                        .await;
                    Ended::End(JobEnd::Succeeded {
                        progress: JobProgress {
                            rows: written.rows,
                            bytes: written.bytes,
                            total_rows: Some(written.rows),
                        },
                        location,
                        expires_at: Utc::now() + delta(self.settings.file_ttl),
                        query_id,
                    })
                }
                Err(io) => {
                    let e = Error::unavailable("the export destination", io);
                    self.queries
                        .finish_stream(streamed.record, written.rows, Some(e.duplicate()))
                        .await;
                    failed(&e, query_id, progress)
                }
            },
            Some(Err(failure)) => {
                pending.discard().await;
                let e = failure.into_core();
                self.queries
                    .finish_stream(streamed.record, progress.rows, Some(e.duplicate()))
                    .await;
                failed(&e, query_id, progress)
            }
            None if counters.over.load(Ordering::Relaxed) => {
                drop(encode);
                pending.discard().await;
                let e = Error::QuotaExceeded {
                    limit_bytes: self.settings.max_bytes_per_day.unwrap_or(0),
                    used_bytes: progress.bytes,
                    requested_bytes: 0,
                    resets_at: next_midnight(),
                };
                let error = JobError {
                    code: "EXPORT_LIMIT_EXCEEDED".into(),
                    message: format!(
                        "the export passed the bytes its owner may still export today \
                         (export.max_bytes_per_day; {} bytes were left)",
                        budget.unwrap_or(0)
                    ),
                };
                self.queries
                    .finish_stream(streamed.record, progress.rows, Some(e))
                    .await;
                Ended::End(JobEnd::Failed {
                    progress,
                    error,
                    query_id,
                })
            }
            None => {
                drop(encode);
                pending.discard().await;
                let e = Error::Conflict(format!(
                    "export {} was stopped before its end (cancelled, or its server stopped)",
                    job.id
                ));
                self.queries
                    .finish_stream(streamed.record, progress.rows, Some(e))
                    .await;
                Ended::Stopped
            }
        }
    }

    /// Bytes the job's owner may still write today (`None`: no limit).
    async fn byte_budget(&self, job: &ExportJob) -> Option<u64> {
        let limit = self.settings.max_bytes_per_day?;
        let owner = job.owner.as_deref()?;
        match self.store.usage(owner, today_start()).await {
            Ok(usage) => Some(limit.saturating_sub(usage.bytes)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read export usage; the job runs under the whole daily limit");
                Some(limit)
            }
        }
    }

    /// Jobs queued and running in the store (every replica's) at the last count; `None`
    /// before the first count or while the store does not answer.
    pub fn queue_depth(&self) -> Option<QueueDepth> {
        *self
            .depth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Jobs running on this process's workers now.
    pub fn busy_workers(&self) -> usize {
        self.lock_running().len()
    }

    /// Counts the store's queue every heartbeat interval: two indexed counts, so a scrape of
    /// `/metrics` never waits for the store.
    async fn count_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let depth = match self.store.queue_depth().await {
                Ok(depth) => Some(depth),
                Err(e) => {
                    tracing::debug!(error = %e, "could not count the export queue");
                    None
                }
            };
            *self
                .depth
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = depth;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.heartbeat_interval) => {}
            }
        }
    }

    /// Deletes the files whose time is up, until none is left.
    async fn expire_loop(self: Arc<Self>, shutdown: CancellationToken) {
        const BATCH: u32 = 100;
        loop {
            loop {
                match self.store.expire_jobs(Utc::now(), BATCH).await {
                    Ok(expired) => {
                        for job in &expired {
                            if let Some(location) = &job.location
                                && let Err(e) = self.destination.delete(location).await
                            {
                                tracing::warn!(export_id = %job.id, error = %e, "could not delete an expired export file");
                            }
                        }
                        if expired.len() < BATCH as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not expire export files");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.expiry_interval) => {}
            }
        }
    }
}

/// Rows and bytes written so far, shared between the encoder's thread and the heartbeat.
#[derive(Default)]
struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
    over: AtomicBool,
}

impl Counters {
    fn progress(&self, total_rows: Option<u64>) -> JobProgress {
        JobProgress {
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            total_rows,
        }
    }
}

/// The format, encoder options and query of a job's spec.
fn job_input(job: &ExportJob) -> bqai_core::Result<(Format, Options, QueryRequest)> {
    let format = Format::parse(&job.format)
        .ok_or_else(|| Error::InvalidRequest(format!("unknown export format {:?}", job.format)))?;
    let mut options = Options::default();
    if let Some(d) = &job.spec.delimiter {
        options = options.with_delimiter(d).map_err(Error::InvalidRequest)?;
    }
    let parameters = match &job.spec.parameters {
        Some(json) => QueryParameters::from_json(json).map_err(Error::InvalidRequest)?,
        None => QueryParameters::None,
    };
    let request = QueryRequest {
        sql: job.spec.sql.clone(),
        default_dataset: job.spec.default_dataset.clone(),
        dry_run: false,
        max_rows: job.spec.max_rows,
        timeout: job.spec.timeout_ms.map(Duration::from_millis),
        use_cache: true,
        parameters,
    };
    Ok((format, options, request))
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The start of today (UTC): per-day limits count from it.
pub fn today_start() -> chrono::DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map_or_else(Utc::now, |t| t.and_utc())
}

fn next_midnight() -> chrono::DateTime<Utc> {
    today_start() + TimeDelta::days(1)
}
