//! Retention and size: deleting history and audit events older than a cutoff, giving SQLite's
//! freed pages back to the file system, and measuring the store ([`StoreStats`]).
//!
//! A purge deletes in batches of [`PURGE_BATCH`] rows, each its own short transaction, with a
//! pause between batches, so it never holds the write lock long enough to stall requests
//! (SQLite has one writer at a time; history inserts and audit appends queue behind it).
//!
//! The audit log is append-only (triggers refuse `UPDATE`, `DELETE` and `TRUNCATE`); the
//! purge is its one exception. Each audit batch inserts its cutoff into
//! `audit_purge_permit`, deletes events older than the cutoff, and deletes the permit, all in
//! one transaction; the trigger lets a `DELETE` through only for an event older than a permit
//! it can see, and no other transaction ever sees one (see the `2026-12-06…_retention`
//! migrations). On PostgreSQL the batches also take a transaction-scoped advisory lock, so two
//! replicas purging at once take turns. Recording that a purge happened (in the audit log
//! itself) is the caller's job: it knows who asked.
//!
//! Space: SQLite databases are created with `auto_vacuum = INCREMENTAL` (older files are
//! converted once by [`Store::migrate`]), so [`Store::reclaim_space`] can return free pages
//! with `PRAGMA incremental_vacuum` in bounded steps and truncate the write-ahead log. On
//! PostgreSQL it runs a paced `VACUUM` on a purged table once purges deleted a fifth of it
//! (autovacuum's own rule): the space of deleted rows is reused in place, so the tables stop
//! growing rather than shrink — also where autovacuum is off or slow (measured: with it off,
//! the purged tables kept growing at the insert rate).

use std::time::Duration;

use bqai_core::Result;
use bqai_core::model::StoreStats;
use chrono::{DateTime, Utc};

use crate::convert::to_sql_time;
use crate::{Backend, Store};

/// Rows deleted per transaction.
pub const PURGE_BATCH: i64 = 1000;

/// The shortest pause between two batches: room for the requests' own writes.
const PURGE_PAUSE: Duration = Duration::from_millis(10);

/// After each batch the purge pauses this many times as long as the batch took (at least
/// [`PURGE_PAUSE`]), so it has the store at most a quarter of the time however loaded the
/// machine is: on a busy database a batch takes longer and the purge backs off with it, its
/// work spread over the round instead of arriving as one burst (measured on PostgreSQL, where
/// a burst of batches raised the requests' p99; see docs/benchmarks.md).
const PURGE_YIELD: u32 = 3;

/// Free pages SQLite returns per `incremental_vacuum` step (4096 pages = 16 MiB at 4 KiB).
pub(crate) const VACUUM_STEP_PAGES: i64 = 4096;

/// The tables [`Store::stats`] counts.
pub(crate) const COUNTED_TABLES: [&str; 6] = [
    "query_history",
    "audit_log",
    "api_keys",
    "key_usage",
    "conversations",
    "conversation_turns",
];

/// What a retention purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purgeable {
    /// `query_history` entries, by `created_at`.
    History,
    /// `audit_log` events, by `at` (through the purge permit).
    Audit,
}

impl Purgeable {
    /// The table the rows go from.
    pub fn table(self) -> &'static str {
        match self {
            Purgeable::History => "query_history",
            Purgeable::Audit => "audit_log",
        }
    }
}

impl Store {
    /// Deletes every `what` row recorded before `cutoff`, oldest first, [`PURGE_BATCH`] per
    /// transaction with a pause between transactions ([`PURGE_YIELD`]); returns how many went. A failure
    /// stops the purge with the rows of earlier batches gone (each batch is atomic), so the
    /// next purge carries on where this one stopped.
    pub async fn purge_before(&self, what: Purgeable, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = to_sql_time(cutoff);
        let mut total = 0_u64;
        loop {
            let started = std::time::Instant::now();
            let deleted = match (self.backend.as_ref(), what) {
                (Backend::Sqlite(s), Purgeable::History) => {
                    s.purge_history(cutoff, PURGE_BATCH).await?
                }
                (Backend::Sqlite(s), Purgeable::Audit) => {
                    s.purge_audit(cutoff, PURGE_BATCH).await?
                }
                (Backend::Postgres(s), Purgeable::History) => {
                    s.purge_history(cutoff, PURGE_BATCH).await?
                }
                (Backend::Postgres(s), Purgeable::Audit) => {
                    s.purge_audit(cutoff, PURGE_BATCH).await?
                }
            };
            total = total.saturating_add(deleted);
            if deleted < PURGE_BATCH.unsigned_abs() {
                return Ok(total);
            }
            tokio::time::sleep(batch_pause(started.elapsed())).await;
        }
    }

    /// Gives free space back after a purge: on SQLite, returns free pages to the file system
    /// in steps of [`VACUUM_STEP_PAGES`] (pausing between steps) and truncates the write-ahead
    /// log; returns the bytes returned. On PostgreSQL, vacuums the tables purges deleted a
    /// sizeable share of, so the space of their deleted rows is reused (the files do not
    /// shrink): 0.
    pub async fn reclaim_space(&self) -> Result<u64> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => {
                let mut returned = 0_u64;
                loop {
                    let step = s.incremental_vacuum(VACUUM_STEP_PAGES).await?;
                    returned = returned.saturating_add(step.returned_bytes);
                    if !step.more {
                        break;
                    }
                    tokio::time::sleep(PURGE_PAUSE).await;
                }
                s.checkpoint().await?;
                Ok(returned)
            }
            Backend::Postgres(s) => {
                let started = std::time::Instant::now();
                let tables = s.vacuum_purged().await?;
                if !tables.is_empty() {
                    tracing::info!(
                        ?tables,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "vacuumed after a purge"
                    );
                }
                Ok(0)
            }
        }
    }

    /// Measures the store: bytes on disk and rows per table. Counts every row, so it is meant
    /// for a periodic job, not for each health check.
    pub async fn stats(&self) -> Result<StoreStats> {
        let (size_bytes, free_bytes, rows) = match self.backend.as_ref() {
            Backend::Sqlite(s) => s.stats().await?,
            Backend::Postgres(s) => s.stats().await?,
        };
        Ok(StoreStats {
            backend: self.backend_name().to_owned(),
            size_bytes,
            free_bytes,
            rows: COUNTED_TABLES
                .iter()
                .map(|t| (*t).to_owned())
                .zip(rows)
                .collect(),
            measured_at: Utc::now(),
        })
    }
}

/// The pause after a batch that took `took`.
fn batch_pause(took: Duration) -> Duration {
    took.saturating_mul(PURGE_YIELD).max(PURGE_PAUSE)
}

/// One `incremental_vacuum` step's outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VacuumStep {
    /// Bytes returned to the file system by this step.
    pub returned_bytes: u64,
    /// Free pages remain.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_pauses_longer_after_a_slower_batch() {
        assert_eq!(batch_pause(Duration::ZERO), PURGE_PAUSE);
        assert_eq!(batch_pause(Duration::from_millis(2)), PURGE_PAUSE);
        assert_eq!(
            batch_pause(Duration::from_millis(40)),
            Duration::from_millis(120)
        );
    }
}
