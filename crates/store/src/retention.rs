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
//! PostgreSQL it runs a paced `VACUUM` on the purged tables: the space of deleted rows is
//! reused in place, so the tables stop growing rather than shrink — also where autovacuum is
//! off or slow (measured: with it off, the purged tables kept growing at the insert rate).

use std::time::Duration;

use bqai_core::Result;
use bqai_core::model::StoreStats;
use chrono::{DateTime, Utc};

use crate::convert::to_sql_time;
use crate::{Backend, Store};

/// Rows deleted per transaction.
pub const PURGE_BATCH: i64 = 1000;

/// The pause between two batches: room for the requests' own writes.
const PURGE_PAUSE: Duration = Duration::from_millis(10);

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
    /// transaction with a short pause between transactions; returns how many went. A failure
    /// stops the purge with the rows of earlier batches gone (each batch is atomic), so the
    /// next purge carries on where this one stopped.
    pub async fn purge_before(&self, what: Purgeable, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = to_sql_time(cutoff);
        let mut total = 0_u64;
        loop {
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
            tokio::time::sleep(PURGE_PAUSE).await;
        }
    }

    /// Gives free space back after a purge: on SQLite, returns free pages to the file system
    /// in steps of [`VACUUM_STEP_PAGES`] (pausing between steps) and truncates the write-ahead
    /// log; returns the bytes returned. On PostgreSQL, vacuums the purged tables so the space
    /// of their deleted rows is reused (the files do not shrink): 0.
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
                // The permit table too: each audit batch leaves one dead row there, which the
                // trigger would otherwise scan for every event it deletes.
                s.vacuum(&["query_history", "audit_log", "audit_purge_permit"])
                    .await?;
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

/// One `incremental_vacuum` step's outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VacuumStep {
    /// Bytes returned to the file system by this step.
    pub returned_bytes: u64,
    /// Free pages remain.
    pub more: bool,
}
