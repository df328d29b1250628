//! Ports: one small trait per capability the use cases need from the outside world.
//!
//! Every port is `Send + Sync`, object safe and used as `Arc<dyn Port>`. Signatures use only
//! bqai-core types; adapters translate their library's types and errors at their boundary.
//! Each port has a contract suite in `bqai-testkit` that every adapter must pass.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::auth::audit::{AuditEvent, AuditFilter};
use crate::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use crate::conversation::{Conversation, Turn};
use crate::error::Result;
use crate::export::{ExportJob, ExportJobFilter, ExportUsage, JobEnd, JobProgress, QueueDepth};
use crate::history::{HistoryEntry, HistoryFilter};
use crate::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, ResultPage,
    RowStream, SqlDialect, Table, TableRef, TableSummary,
};

/// A data warehouse: catalog reads, dry runs and guarded query execution.
///
/// Adapters never see unguarded SQL: the query service only passes [`QueryJob`]s whose SQL
/// the guard accepted.
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// The dialect the guard must parse this warehouse's SQL with.
    fn dialect(&self) -> SqlDialect;

    /// The project (BigQuery) or catalog (DataFusion) unqualified dataset names refer to.
    fn home_project(&self) -> Option<String>;

    /// Lists datasets, one page at a time.
    async fn list_datasets(&self, page: &PageRequest) -> Result<Page<Dataset>>;

    /// One dataset; [`crate::Error::NotFound`] if it does not exist.
    async fn get_dataset(&self, dataset_id: &str) -> Result<Dataset>;

    /// Lists a dataset's tables, one page at a time; `NotFound` for an unknown dataset.
    async fn list_tables(&self, dataset_id: &str, page: &PageRequest)
    -> Result<Page<TableSummary>>;

    /// A table with schema and metadata; `NotFound` if it does not exist.
    async fn get_table(&self, table: &TableRef) -> Result<Table>;

    /// The first `limit` rows of a table, read as cheaply as the warehouse allows.
    async fn preview(&self, table: &TableRef, limit: u64) -> Result<QueryResult>;

    /// Plans the statement without running it: bytes estimate, statement type, tables.
    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport>;

    /// Runs the statement, honouring `job.timeout` (cancelling the work when it fires) and
    /// `job.max_rows`.
    async fn execute(&self, job: &QueryJob) -> Result<QueryResult>;

    /// Runs the statement and hands out its rows batch by batch, for results too large to
    /// hold (exports). `job.max_rows` caps the rows; `job.max_result_bytes` does not apply.
    /// `job.timeout` bounds the run up to the first batch, and then each wait for the next
    /// one, so a long download is not cut while a stalled one is. The default runs
    /// [`Warehouse::execute`] and hands out its result as one batch; adapters that can read
    /// a result piecewise override it.
    async fn execute_stream(&self, job: &QueryJob) -> Result<RowStream> {
        self.execute(job).await.map(RowStream::from_result)
    }

    /// Rows `offset..` of a finished result that [`Warehouse::execute_stream`] named with
    /// [`RowStream::result_handle`], read again without running anything: at most `max_rows`,
    /// and no further once their JSON passes `max_bytes`. [`crate::Error::NotFound`] when the
    /// warehouse no longer keeps the result; the default (a warehouse that never hands out a
    /// handle) always answers that.
    async fn read_result(
        &self,
        handle: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> Result<ResultPage> {
        let _ = (offset, max_rows, max_bytes);
        Err(crate::Error::NotFound(format!("the result {handle}")))
    }

    /// Whether the warehouse answers.
    async fn health(&self) -> ComponentHealth;
}

/// A byte cache with per-entry TTL and tag-based invalidation.
///
/// Values are opaque bytes (core encodes them). Tags group entries for invalidation (every
/// entry derived from dataset `shop` carries the tag `dataset:shop`). A cache is an
/// optimisation: callers treat its errors as misses.
#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Stores `value` under `key` for `ttl`, tagged with `tags`.
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration, tags: &[String]) -> Result<()>;

    /// Removes every entry carrying `tag`; returns how many were removed (when known).
    async fn invalidate_tag(&self, tag: &str) -> Result<u64>;

    /// Hit/miss counters and health.
    async fn health(&self) -> ComponentHealth;
}

/// The answer of a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit in force (requests per period).
    pub limit: u32,
    /// Requests left right now.
    pub remaining: u32,
    /// When denied, how long until the request would be allowed.
    pub retry_after: Option<Duration>,
}

/// A keyed rate limiter (GCRA / token bucket semantics).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Takes `cost` units for `key`; `limit_per_minute` is the key's limit (its bucket
    /// refills at that rate, with a burst of the same size).
    async fn check(&self, key: &str, cost: u32, limit_per_minute: u32) -> Result<RateDecision>;
}

/// Remembers one-time tokens (the nonces of WebSocket tickets) until they expire, so each is
/// accepted once — across every replica when the adapter is shared.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Claims `nonce` for `ttl`: `true` the first time, `false` when it was claimed before.
    async fn claim(&self, nonce: &str, ttl: Duration) -> Result<bool>;
}

/// Durable query history.
#[async_trait]
pub trait HistoryStore: Send + Sync {
    /// Records one entry (ids are unique; recording the same id twice is a `Conflict`-like
    /// error the caller may ignore).
    async fn record(&self, entry: &HistoryEntry) -> Result<()>;

    /// Records `entries` in order; stores override it with one multi-row write (one commit).
    /// The default records them one by one, stopping at the first error.
    async fn record_batch(&self, entries: &[HistoryEntry]) -> Result<()> {
        for entry in entries {
            self.record(entry).await?;
        }
        Ok(())
    }

    /// One entry by id.
    async fn get(&self, id: &str) -> Result<Option<HistoryEntry>>;

    /// Entries matching `filter`, newest first.
    async fn list(&self, filter: &HistoryFilter, page: &PageRequest) -> Result<Page<HistoryEntry>>;

    /// Whether the store answers.
    async fn health(&self) -> ComponentHealth;
}

/// Durable API keys (only their hashes; see [`crate::auth::keys`]).
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; `Conflict` if the id exists.
    async fn insert_key(&self, key: &KeyRecord) -> Result<()>;

    /// One key by public id, revoked and expired ones included.
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>>;

    /// Keys matching `filter`, newest first.
    async fn list_keys(&self, filter: &KeyFilter, page: &PageRequest) -> Result<Page<KeyRecord>>;

    /// Applies `update` and returns the changed key; `None` if there is no such key.
    async fn update_key(&self, id: &str, update: &KeyUpdate) -> Result<Option<KeyRecord>>;

    /// Marks the key revoked at `at` (a second revocation keeps the first time) and returns
    /// it; `None` if there is no such key.
    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>>;

    /// Records a successful use at `at`.
    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()>;
}

/// Announces that an API key changed (created, updated, revoked) to every replica, so that
/// their caches of verified keys drop it at once instead of when it expires.
#[async_trait]
pub trait KeyChangeNotifier: Send + Sync {
    /// Tells every replica that `key_id` changed.
    async fn key_changed(&self, key_id: &str) -> Result<()>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one event; returns once it is stored.
    async fn append(&self, event: &AuditEvent) -> Result<()>;

    /// Hands one event on to be stored without waiting for the store, where the log has a
    /// writer that does that (a queued writer, which then reports failures itself and makes
    /// listings wait for what was handed on before them). The default is [`AuditLog::append`].
    async fn append_queued(&self, event: &AuditEvent) -> Result<()> {
        self.append(event).await
    }

    /// Appends several events, all or none (a durable store commits them together, which
    /// is what makes group commit cheap). The default appends them one by one.
    async fn append_batch(&self, events: &[AuditEvent]) -> Result<()> {
        for event in events {
            self.append(event).await?;
        }
        Ok(())
    }

    /// Events matching `filter`, newest first.
    async fn list_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>>;
}

/// Bytes charged per principal per UTC day (daily byte quotas).
#[async_trait]
pub trait UsageLedger: Send + Sync {
    /// Bytes charged to `principal` on `day` so far (0 if nothing).
    async fn bytes_used(&self, principal: &str, day: NaiveDate) -> Result<u64>;

    /// Adds `bytes` to `principal`'s total for `day` atomically and returns the new total.
    async fn charge_bytes(&self, principal: &str, day: NaiveDate, bytes: u64) -> Result<u64>;
}

/// Conversations with a time to live: every change extends it (an idle conversation expires
/// `ttl` after its last turn).
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Stores a new conversation; `Conflict` if the id exists.
    async fn create_conversation(&self, conversation: &Conversation) -> Result<()>;

    /// A conversation, unless it does not exist or has expired.
    async fn get_conversation(&self, id: &str) -> Result<Option<Conversation>>;

    /// Appends a turn (keeping at most `max_turns`, dropping the oldest) and sets the
    /// conversation's dataset when it has none; returns the updated conversation, `None` if
    /// it does not exist or has expired.
    async fn append_turn(
        &self,
        id: &str,
        turn: &Turn,
        dataset: Option<&str>,
        max_turns: usize,
    ) -> Result<Option<Conversation>>;

    /// Deletes a conversation; whether it existed.
    async fn delete_conversation(&self, id: &str) -> Result<bool>;
}

/// Durable export jobs, shared by every replica: the queue the workers claim from, and the
/// record their owners read.
///
/// A claim is exclusive: two workers (of one process or of replicas sharing the database)
/// never hold one job at once. Every change a worker makes names the worker, and is refused
/// (`false`) once the job is no longer its own (cancelled, or claimed again after its
/// heartbeat went stale), which is how a worker learns to stop.
#[async_trait]
pub trait ExportJobStore: Send + Sync {
    /// Stores a new job; `Conflict` if the id exists.
    async fn create_job(&self, job: &ExportJob) -> Result<()>;

    /// One job by id.
    async fn get_job(&self, id: &str) -> Result<Option<ExportJob>>;

    /// Jobs matching `filter`, newest first.
    async fn list_jobs(
        &self,
        filter: &ExportJobFilter,
        page: &PageRequest,
    ) -> Result<Page<ExportJob>>;

    /// Claims the oldest job that is queued, or running with a heartbeat older than
    /// `stale_before` (its worker died): it becomes `running` under `worker`, its attempts
    /// go up by one, its progress starts again from zero. A stale job that has used
    /// `max_attempts` fails (`INTERRUPTED`) instead. `None` when nothing is waiting.
    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<Option<ExportJob>>;

    /// Records progress and a heartbeat of a job `worker` runs; `false` if it no longer
    /// holds it.
    async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        progress: &JobProgress,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Ends a job `worker` runs; `false` if it no longer holds it (nothing changes then).
    async fn finish_job(
        &self,
        id: &str,
        worker: &str,
        end: &JobEnd,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Puts a job `worker` runs back in the queue (a graceful stop), keeping its attempts;
    /// `false` if it no longer holds it.
    async fn release_job(&self, id: &str, worker: &str) -> Result<bool>;

    /// Cancels a queued or running job (`cancelled`), or retires a succeeded one
    /// (`expired`: the caller deletes its file). Other jobs are left as they are. The job
    /// after the change; `None` if there is no such job.
    async fn cancel_job(&self, id: &str, now: DateTime<Utc>) -> Result<Option<ExportJob>>;

    /// Marks up to `limit` succeeded jobs whose file expired by `now` as `expired` and
    /// returns them (for the caller to delete their files).
    async fn expire_jobs(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ExportJob>>;

    /// `owner`'s active jobs, and the bytes its jobs created since `since` wrote.
    async fn usage(&self, owner: &str, since: DateTime<Utc>) -> Result<ExportUsage>;

    /// Jobs queued and running, over every owner (a count each, on the status index).
    async fn queue_depth(&self) -> Result<QueueDepth>;
}
