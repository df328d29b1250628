//! The export job queue ([`ExportJobStore`], table `export_jobs`), on both backends.
//!
//! Every change a worker makes is one conditional `UPDATE` naming the job, the worker and
//! `status = 'running'`, so a worker that lost its job (cancelled, or claimed again after its
//! heartbeat went stale) changes nothing and learns so from the row count. Those statements
//! are backend-neutral and written once ([`on_backend!`]); only the claim differs:
//!
//! - PostgreSQL picks the oldest claimable job with `FOR UPDATE SKIP LOCKED` in a
//!   transaction, so replicas claiming at once take different jobs without waiting on each
//!   other;
//! - SQLite has one writer at a time: the claim is one `BEGIN IMMEDIATE` transaction (taking
//!   the write lock before it reads), so two claimers run one after the other.
//!
//! The principal and the spec are stored as JSON text, like a conversation's turns.

use async_trait::async_trait;
use bqai_core::export::{
    ExportJob, ExportJobFilter, ExportSpec, ExportStatus, ExportUsage, JobEnd, JobError,
    JobProgress, QueueDepth,
};
use bqai_core::model::{Page, PageRequest, Principal};
use bqai_core::ports::ExportJobStore;
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::convert::{from_sql_count, to_sql_count, to_sql_text, to_sql_time};
use crate::error::Port;
use crate::page::{Cursor, fetch_limit, into_page};
use crate::schema::export_jobs;
use crate::{Backend, Store};

/// One `export_jobs` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = export_jobs)]
pub(crate) struct JobRow {
    pub id: String,
    pub owner: Option<String>,
    pub principal: String,
    pub format: String,
    pub file_name: String,
    pub spec: String,
    pub status: String,
    pub rows_written: i64,
    pub bytes_written: i64,
    pub total_rows: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub query_id: Option<String>,
    pub location: Option<String>,
    pub worker: Option<String>,
    pub attempts: i64,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

fn encode<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value)
        .map(|s| to_sql_text(&s))
        .map_err(|e| Error::internal(format!("encoding an export job's {what}"), e))
}

impl JobRow {
    pub(crate) fn from_job(job: &ExportJob) -> Result<Self> {
        let (error_code, error_message) = job
            .error
            .as_ref()
            .map(|e| (to_sql_text(&e.code), to_sql_text(&e.message)))
            .unzip();
        Ok(Self {
            id: job.id.clone(),
            owner: job.owner.clone(),
            principal: encode(&job.principal, "principal")?,
            format: job.format.clone(),
            file_name: to_sql_text(&job.file_name),
            spec: encode(&job.spec, "spec")?,
            status: job.status.as_str().to_owned(),
            rows_written: to_sql_count(job.rows),
            bytes_written: to_sql_count(job.bytes),
            total_rows: job.total_rows.map(to_sql_count),
            error_code,
            error_message,
            query_id: job.query_id.clone(),
            location: job.location.clone(),
            worker: job.worker.clone(),
            attempts: i64::from(job.attempts),
            created_at: to_sql_time(job.created_at),
            started_at: job.started_at.map(to_sql_time),
            heartbeat_at: job.heartbeat_at.map(to_sql_time),
            finished_at: job.finished_at.map(to_sql_time),
            expires_at: job.expires_at.map(to_sql_time),
        })
    }

    pub(crate) fn into_job(self) -> Result<ExportJob> {
        let malformed = |what: &str, e: serde_json::Error| {
            Error::internal(format!("export job {} has a malformed {what}", self.id), e)
        };
        let principal: Principal =
            serde_json::from_str(&self.principal).map_err(|e| malformed("principal", e))?;
        let spec: ExportSpec =
            serde_json::from_str(&self.spec).map_err(|e| malformed("spec", e))?;
        let status = ExportStatus::parse(&self.status).ok_or_else(|| {
            Error::internal(
                format!("export job {} has an unknown status", self.id),
                self.status.clone(),
            )
        })?;
        let error = match (self.error_code, self.error_message) {
            (Some(code), message) => Some(JobError {
                code,
                message: message.unwrap_or_default(),
            }),
            (None, _) => None,
        };
        Ok(ExportJob {
            id: self.id,
            owner: self.owner,
            principal,
            format: self.format,
            file_name: self.file_name,
            spec,
            status,
            rows: from_sql_count(self.rows_written),
            bytes: from_sql_count(self.bytes_written),
            total_rows: self.total_rows.map(from_sql_count),
            error,
            query_id: self.query_id,
            location: self.location,
            worker: self.worker,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            created_at: self.created_at.and_utc(),
            started_at: self.started_at.map(|t| t.and_utc()),
            heartbeat_at: self.heartbeat_at.map(|t| t.and_utc()),
            finished_at: self.finished_at.map(|t| t.and_utc()),
            expires_at: self.expires_at.map(|t| t.and_utc()),
        })
    }
}

/// What ending a run writes (every column, `NULL`s included).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = export_jobs, treat_none_as_null = true)]
pub(crate) struct EndChanges {
    pub status: String,
    pub rows_written: i64,
    pub bytes_written: i64,
    pub total_rows: Option<i64>,
    pub location: Option<String>,
    pub expires_at: Option<NaiveDateTime>,
    pub query_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub finished_at: Option<NaiveDateTime>,
}

impl EndChanges {
    fn new(end: &JobEnd, now: DateTime<Utc>) -> Self {
        let (status, progress, location, expires_at, query_id, error) = match end {
            JobEnd::Succeeded {
                progress,
                location,
                expires_at,
                query_id,
            } => (
                ExportStatus::Succeeded,
                progress,
                Some(location.clone()),
                Some(to_sql_time(*expires_at)),
                query_id,
                None,
            ),
            JobEnd::Failed {
                progress,
                error,
                query_id,
            } => (
                ExportStatus::Failed,
                progress,
                None,
                None,
                query_id,
                Some(error),
            ),
        };
        Self {
            status: status.as_str().to_owned(),
            rows_written: to_sql_count(progress.rows),
            bytes_written: to_sql_count(progress.bytes),
            total_rows: progress.total_rows.map(to_sql_count),
            location,
            expires_at,
            query_id: query_id.clone(),
            error_code: error.map(|e| to_sql_text(&e.code)),
            error_message: error.map(|e| to_sql_text(&e.message)),
            finished_at: Some(to_sql_time(now)),
        }
    }
}

/// What a claim writes: the job is the worker's, from zero.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = export_jobs, treat_none_as_null = true)]
pub(crate) struct ClaimChanges {
    pub status: String,
    pub worker: Option<String>,
    pub started_at: Option<NaiveDateTime>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub rows_written: i64,
    pub bytes_written: i64,
    pub total_rows: Option<i64>,
    pub location: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// A claim prepared before its transaction.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub changes: ClaimChanges,
    pub now: NaiveDateTime,
    pub stale_before: NaiveDateTime,
    pub max_attempts: i64,
}

impl Claim {
    fn new(
        worker: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Self {
        let now = to_sql_time(now);
        Self {
            changes: ClaimChanges {
                status: ExportStatus::Running.as_str().to_owned(),
                worker: Some(worker.to_owned()),
                started_at: Some(now),
                heartbeat_at: Some(now),
                rows_written: 0,
                bytes_written: 0,
                total_rows: None,
                location: None,
                error_code: None,
                error_message: None,
            },
            now,
            stale_before: to_sql_time(stale_before),
            max_attempts: i64::from(max_attempts),
        }
    }
}

/// The message of a job that was interrupted too often.
pub(crate) const INTERRUPTED: &str = "INTERRUPTED";

/// Fails the running jobs whose heartbeat is older than `$stale` and that used `$max`
/// attempts (a statement, not run).
macro_rules! fail_exhausted {
    ($stale:expr, $max:expr, $now:expr) => {{
        use crate::schema::export_jobs::dsl as j;
        let max: i64 = $max;
        diesel::update(
            j::export_jobs
                .filter(j::status.eq("running"))
                .filter(j::heartbeat_at.lt($stale))
                .filter(j::attempts.ge(max)),
        )
        .set((
            j::status.eq("failed"),
            j::error_code.eq(crate::export_jobs::INTERRUPTED),
            j::error_message.eq(format!(
                "the export was interrupted {max} times (its server stopped while it ran)"
            )),
            j::finished_at.eq($now),
        ))
    }};
}
pub(crate) use fail_exhausted;

/// The claimable jobs, oldest first: queued, or running with a stale heartbeat (a query, not
/// run; the backend adds its locking).
macro_rules! claimable {
    ($stale:expr) => {{
        use crate::schema::export_jobs::dsl as j;
        j::export_jobs
            .filter(
                j::status
                    .eq("queued")
                    .or(j::status.eq("running").and(j::heartbeat_at.lt($stale))),
            )
            .order((j::created_at.asc(), j::id.asc()))
            .select(j::id)
            .limit(1)
    }};
}
pub(crate) use claimable;

/// Runs `$body` (an expression over `$conn`, a connection of either backend, awaiting one
/// statement) as a statement of the export job port under the store's timeout, with its
/// error translated. Written once, compiled for each backend.
macro_rules! on_backend {
    ($store:expr, |$conn:ident| $body:expr) => {
        match $store.backend.as_ref() {
            Backend::Sqlite(s) => {
                s.query(Port::ExportJobs, move |mut pooled| async move {
                    let $conn = &mut *pooled;
                    $body
                })
                .await
            }
            Backend::Postgres(s) => {
                s.query(Port::ExportJobs, move |$conn| {
                    Box::pin(async move { $body })
                })
                .await
            }
        }
    };
}

impl Store {
    /// The store as the core's export job port. Needs the migrations.
    pub fn export_jobs(&self) -> std::sync::Arc<dyn ExportJobStore> {
        std::sync::Arc::new(self.clone())
    }

    async fn job_row(&self, id: &str) -> Result<Option<JobRow>> {
        let id = id.to_owned();
        on_backend!(self, |conn| export_jobs::table
            .find(id)
            .select(JobRow::as_select())
            .first(conn)
            .await
            .optional())
    }
}

#[async_trait]
impl ExportJobStore for Store {
    async fn create_job(&self, job: &ExportJob) -> Result<()> {
        let row = JobRow::from_job(job)?;
        let id = job.id.clone();
        match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                s.insert(Port::ExportJobs, &id, move |mut conn| async move {
                    diesel::insert_into(export_jobs::table)
                        .values(&row)
                        .execute(&mut *conn)
                        .await
                })
                .await
            }
            Backend::Postgres(s) => {
                s.insert(Port::ExportJobs, &id, move |conn| {
                    Box::pin(async move {
                        diesel::insert_into(export_jobs::table)
                            .values(&row)
                            .execute(conn)
                            .await
                    })
                })
                .await
            }
        }
    }

    async fn get_job(&self, id: &str) -> Result<Option<ExportJob>> {
        self.job_row(id).await?.map(JobRow::into_job).transpose()
    }

    async fn list_jobs(
        &self,
        filter: &ExportJobFilter,
        page: &PageRequest,
    ) -> Result<Page<ExportJob>> {
        let cursor = page.page_token.as_deref().map(Cursor::decode).transpose()?;
        let limit = fetch_limit(page.page_size);
        let owner = filter.owner.clone();
        let status = filter.status.map(|s| s.as_str().to_owned());
        let rows: Vec<JobRow> = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            let mut q = j::export_jobs.select(JobRow::as_select()).into_boxed();
            if let Some(owner) = owner {
                q = q.filter(j::owner.eq(owner));
            }
            if let Some(status) = status {
                q = q.filter(j::status.eq(status));
            }
            if let Some(Cursor { at, id }) = cursor {
                q = q.filter(
                    j::created_at
                        .lt(at)
                        .or(j::created_at.eq(at).and(j::id.lt(id))),
                );
            }
            q.order((j::created_at.desc(), j::id.desc()))
                .limit(limit)
                .load(conn)
                .await
        })?;
        into_page(
            rows,
            page.page_size,
            |r| Cursor {
                at: r.created_at,
                id: r.id.clone(),
            },
            JobRow::into_job,
        )
    }

    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
        max_attempts: u32,
    ) -> Result<Option<ExportJob>> {
        let claim = Claim::new(worker, now, stale_before, max_attempts);
        let row = match self.backend.as_ref() {
            Backend::Sqlite(s) => s.claim_job(claim).await?,
            Backend::Postgres(s) => s.claim_job(claim).await?,
        };
        row.map(JobRow::into_job).transpose()
    }

    async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        progress: &JobProgress,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (id, worker, p, now) = (
            id.to_owned(),
            worker.to_owned(),
            *progress,
            to_sql_time(now),
        );
        let affected = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            diesel::update(
                j::export_jobs
                    .find(id)
                    .filter(j::worker.eq(worker))
                    .filter(j::status.eq("running")),
            )
            .set((
                j::rows_written.eq(to_sql_count(p.rows)),
                j::bytes_written.eq(to_sql_count(p.bytes)),
                j::total_rows.eq(p.total_rows.map(to_sql_count)),
                j::heartbeat_at.eq(now),
            ))
            .execute(conn)
            .await
        });
        Ok(affected? > 0)
    }

    async fn finish_job(
        &self,
        id: &str,
        worker: &str,
        end: &JobEnd,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (id, worker, changes) = (id.to_owned(), worker.to_owned(), EndChanges::new(end, now));
        let affected = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            diesel::update(
                j::export_jobs
                    .find(id)
                    .filter(j::worker.eq(worker))
                    .filter(j::status.eq("running")),
            )
            .set(changes)
            .execute(conn)
            .await
        });
        Ok(affected? > 0)
    }

    async fn release_job(&self, id: &str, worker: &str) -> Result<bool> {
        let (id, worker) = (id.to_owned(), worker.to_owned());
        let affected = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            diesel::update(
                j::export_jobs
                    .find(id)
                    .filter(j::worker.eq(worker))
                    .filter(j::status.eq("running")),
            )
            .set((
                j::status.eq("queued"),
                j::worker.eq(None::<String>),
                j::heartbeat_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .await
        });
        Ok(affected? > 0)
    }

    async fn cancel_job(&self, id: &str, now: DateTime<Utc>) -> Result<Option<ExportJob>> {
        let now = to_sql_time(now);
        let owned = id.to_owned();
        on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            diesel::update(
                j::export_jobs
                    .find(owned)
                    .filter(j::status.eq_any(["queued", "running"])),
            )
            .set((j::status.eq("cancelled"), j::finished_at.eq(now)))
            .execute(conn)
            .await
        })?;
        let owned = id.to_owned();
        on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            diesel::update(j::export_jobs.find(owned).filter(j::status.eq("succeeded")))
                .set((j::status.eq("expired"), j::expires_at.eq(now)))
                .execute(conn)
                .await
        })?;
        self.get_job(id).await
    }

    async fn expire_jobs(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<ExportJob>> {
        let now = to_sql_time(now);
        let rows: Vec<JobRow> = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            j::export_jobs
                .filter(j::status.eq("succeeded"))
                .filter(j::expires_at.le(now))
                .order(j::expires_at.asc())
                .limit(i64::from(limit))
                .select(JobRow::as_select())
                .load(conn)
                .await
        })?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id.clone();
            // Conditional: a job cancelled meanwhile is not reported twice.
            let affected = on_backend!(self, |conn| {
                use crate::schema::export_jobs::dsl as j;
                diesel::update(j::export_jobs.find(id).filter(j::status.eq("succeeded")))
                    .set(j::status.eq("expired"))
                    .execute(conn)
                    .await
            })?;
            if affected > 0 {
                let mut job = row.into_job()?;
                job.status = ExportStatus::Expired;
                expired.push(job);
            }
        }
        Ok(expired)
    }

    async fn usage(&self, owner: &str, since: DateTime<Utc>) -> Result<ExportUsage> {
        let since = to_sql_time(since);
        let owned = owner.to_owned();
        let active: i64 = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            j::export_jobs
                .filter(j::owner.eq(owned))
                .filter(j::status.eq_any(["queued", "running"]))
                .count()
                .get_result(conn)
                .await
        })?;
        let owned = owner.to_owned();
        // Summed here: a day holds few jobs per owner, and SUM(BIGINT) is NUMERIC on
        // PostgreSQL.
        let bytes: Vec<i64> = on_backend!(self, |conn| {
            use crate::schema::export_jobs::dsl as j;
            j::export_jobs
                .filter(j::owner.eq(owned))
                .filter(j::created_at.ge(since))
                .select(j::bytes_written)
                .load(conn)
                .await
        })?;
        Ok(ExportUsage {
            active: from_sql_count(active),
            bytes: bytes
                .into_iter()
                .map(from_sql_count)
                .fold(0, u64::saturating_add),
        })
    }

    async fn queue_depth(&self) -> Result<QueueDepth> {
        let mut counts = [0_u64; 2];
        for (count, status) in counts.iter_mut().zip(["queued", "running"]) {
            let n: i64 = on_backend!(self, |conn| {
                use crate::schema::export_jobs::dsl as j;
                j::export_jobs
                    .filter(j::status.eq(status))
                    .count()
                    .get_result(conn)
                    .await
            })?;
            *count = from_sql_count(n);
        }
        let [queued, running] = counts;
        Ok(QueueDepth { queued, running })
    }
}
