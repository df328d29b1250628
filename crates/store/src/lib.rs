//! bqai-store: durable storage on diesel-async — query history, API keys, the audit log, daily
//! byte usage, conversations and export jobs.
//!
//! One [`Store`] implements four core ports, each also handed out as an `Arc<dyn …>`:
//! [`HistoryStore`] ([`Store::history`], table `query_history`), [`KeyStore`]
//! ([`Store::keys`], `api_keys`: hashes only, revoked keys kept), [`AuditLog`]
//! ([`Store::audit`], `audit_log`: append-only, and the migrations make the database refuse
//! `UPDATE`/`DELETE` on it) and [`UsageLedger`] ([`Store::usage`], `key_usage`: bytes per
//! principal per UTC day, charged with one atomic upsert). The fifth,
//! [`ConversationStore`](bqai_core::ports::ConversationStore), needs a time to live:
//! [`Store::conversations`] hands out a [`SqlConversationStore`] (tables `conversations` and
//! `conversation_turns`: each conversation lives its TTL after its last write, appends are
//! one transaction each so concurrent turns are never lost, and expired rows are purged a
//! bounded number per create and all at once by [`Store::purge_expired_conversations`]).
//!
//! Nothing grows without bound: [`Store::purge_before`] deletes history and audit events
//! older than a cutoff in short batches (the audit log's one, permitted, exception to
//! append-only), [`Store::reclaim_space`] gives SQLite's free pages back, and
//! [`Store::stats`] measures the store (see `retention`).
//!
//! [`Store::connect`] picks the backend from the URL: SQLite (`sqlite://PATH`,
//! `sqlite::memory:`, or a plain path) is the embedded default; PostgreSQL (`postgres://…` or
//! `postgresql://…`) is the production backend. Both share `schema`, the row conversions and
//! list queries (`history`, `keys`, `audit`, `usage`, `conversations`), value conversions
//! (`convert`), the page token (`page`), the error mapping (`error`), and the migration
//! version names (`migrations/sqlite` and `migrations/postgres`, embedded at compile time).
//!
//! Every statement (every transaction, for conversation writes) runs under a timeout
//! ([`StoreOptions::query_timeout`]); pool and diesel errors become [`bqai_core::Error`]s at
//! this boundary (`Unavailable` when the database is unreachable, busy or failing — naming the
//! port: "the key store is unavailable" —, `Timeout`, `Conflict` for a duplicate id, a live
//! conversation's included, `InvalidRequest` for a malformed URL or page token, `Internal` for
//! bugs). Messages never quote the store URL. Every list is newest first by
//! (time, id) with an opaque keyset page token.
//!
//! # PostgreSQL
//!
//! - Connections: diesel-async's `AsyncPgConnection` (tokio-postgres, no libpq) in a deadpool
//!   pool of [`StoreOptions::pool_size`]; a connection waits at most
//!   [`StoreOptions::pool_wait_timeout`] for a free slot and [`StoreOptions::connect_timeout`]
//!   to open or be re-checked (`SELECT 1` on checkout). No TLS yet: `sslmode=require` is
//!   refused, `prefer` connects in plain text.
//! - Lazy: [`Store::connect`] only parses the URL and builds the pool, so a server that is
//!   down at start does not stop the service; [`HistoryStore::health`] then says
//!   `down("postgres", "unreachable")` and statements fail fast with `Unavailable`.
//! - Timeouts: each statement runs in its own task under [`StoreOptions::query_timeout`]; one
//!   that overruns is cancelled on the server and its connection discarded, never returned to
//!   the pool mid-statement. Every connection also carries a `statement_timeout` (the query
//!   timeout plus a second), a server-side wall for anything the client stopped waiting for.
//! - Migrations: [`Store::migrate`] takes a PostgreSQL advisory lock on a dedicated connection
//!   and runs diesel's harness on a blocking thread, so concurrent starts apply each migration
//!   once and a current-thread runtime works.
//! - Types: `TIMESTAMP` without time zone holding UTC (as on SQLite), `DATE` for usage days
//!   (diesel's text `YYYY-MM-DD` on SQLite), `BIGINT` counters saturated at `i64::MAX`, lists
//!   as JSON text, ids in the `"C"` collation so pages order like SQLite's. `tests/schema.rs`
//!   checks `schema.rs` against both migrated databases.

mod analytics;
mod audit;
mod conversations;
mod convert;
mod error;
mod export_jobs;
mod history;
mod keys;
mod migrate;
mod page;
mod postgres;
mod retention;
mod schema;
mod sqlite;
mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::analytics::{
    AnalyticsFilter, ErrorCount, GroupBy, HistoryAnalytics, PopularEntry, PopularKind, Ranking,
    Summary, TableUsage,
};
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{ComponentHealth, Page, PageRequest};
use bqai_core::ports::{AuditLog, HistoryStore, KeyStore, UsageLedger};
use bqai_core::{Error, Result};

pub use crate::conversations::SqlConversationStore;
use crate::postgres::PgStore;
pub use crate::retention::{PURGE_BATCH, Purgeable};
use crate::sqlite::{SqliteStore, Target};

/// Pool and timeout settings, shared by both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections open at once (an in-memory SQLite database always uses one).
    pub pool_size: usize,
    /// How long a statement waits for a free connection before `Unavailable`.
    pub pool_wait_timeout: Duration,
    /// How long opening (or recycling) a connection may take before `Unavailable`. On
    /// PostgreSQL it bounds the TCP connect, the whole handshake and the checkout `SELECT 1`.
    pub connect_timeout: Duration,
    /// How long one statement may take, waiting for a connection included, before `Timeout`.
    /// On PostgreSQL, plus a second, it is also every connection's `statement_timeout`.
    pub query_timeout: Duration,
    /// How long [`Store::migrate`] may take, waiting for another process's migration included
    /// (on PostgreSQL also the migration connection's `statement_timeout`).
    pub migration_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pool_size: 4,
            pool_wait_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            query_timeout: Duration::from_secs(5),
            migration_timeout: Duration::from_secs(60),
        }
    }
}

/// A connected store. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// What a store URL names.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Sqlite(Target),
    Postgres,
}

fn parse_url(url: &str) -> Result<Location> {
    let url = url.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres);
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(Error::InvalidRequest(
            "the store URL names no database; use sqlite://PATH or sqlite::memory:".into(),
        ));
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(Error::InvalidRequest(format!(
            "unsupported store URL scheme {scheme:?}; use sqlite://PATH"
        )));
    }
    Ok(Location::Sqlite(match path {
        ":memory:" => Target::Memory,
        _ => Target::File(PathBuf::from(path)),
    }))
}

impl Store {
    /// Connects to the store named by `url`:
    ///
    /// - `sqlite://PATH`, `sqlite:PATH` or a plain `PATH`: a SQLite file, created with its
    ///   parent directories if missing (`sqlite:///abs/path` for an absolute path);
    /// - `sqlite::memory:` or `:memory:`: a private in-memory database (tests);
    /// - `postgres://…` or `postgresql://…`: a PostgreSQL database (libpq URL syntax, e.g.
    ///   `postgres://user:password@host:5432/dbname?application_name=x`).
    ///
    /// SQLite opens one connection before returning, so a bad location fails here. PostgreSQL
    /// connects lazily: only a malformed URL fails here (`InvalidRequest`), an unreachable
    /// server shows in health and in each statement's `Unavailable`. Does not migrate: call
    /// [`Store::migrate`].
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self> {
        let backend = match parse_url(url)? {
            Location::Sqlite(target) => Backend::Sqlite(SqliteStore::open(target, options).await?),
            Location::Postgres => Backend::Postgres(PgStore::open(url, options)?),
        };
        Ok(Self {
            backend: Arc::new(backend),
        })
    }

    /// Applies pending migrations; returns how many ran (0 when up to date). Safe to call on
    /// every start, from several processes at once (they take turns: a SQLite write lock, a
    /// PostgreSQL advisory lock), and from a current-thread runtime.
    pub async fn migrate(&self) -> Result<usize> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.migrate().await,
            Backend::Postgres(s) => s.migrate().await,
        }
    }

    /// The store as the core's history port.
    pub fn history(&self) -> Arc<dyn HistoryStore> {
        Arc::new(self.clone())
    }

    /// The store as the core's history analytics port.
    pub fn analytics(&self) -> Arc<dyn HistoryAnalytics> {
        Arc::new(self.clone())
    }

    /// The store as the core's API key port.
    pub fn keys(&self) -> Arc<dyn KeyStore> {
        Arc::new(self.clone())
    }

    /// The store as the core's audit log port.
    pub fn audit(&self) -> Arc<dyn AuditLog> {
        Arc::new(self.clone())
    }

    /// The store as the core's daily byte usage port.
    pub fn usage(&self) -> Arc<dyn UsageLedger> {
        Arc::new(self.clone())
    }

    /// The backend's name, as reported in health (`sqlite` or `postgres`).
    /// `db.system` of the backend, as OpenTelemetry names it (for spans).
    pub fn db_system(&self) -> &'static str {
        match self.backend.as_ref() {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgresql",
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend.as_ref() {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

#[async_trait]
impl HistoryStore for Store {
    #[tracing::instrument(name = "history INSERT", skip_all, fields(db.system = self.db_system(), db.operation = "INSERT", otel.kind = "client"))]
    async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.record(entry).await,
            Backend::Postgres(s) => s.record(entry).await,
        }
    }

    #[tracing::instrument(name = "history INSERT", skip_all, fields(db.system = self.db_system(), db.operation = "INSERT", otel.kind = "client", bqai.rows = entries.len()))]
    async fn record_batch(&self, entries: &[HistoryEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let rows: Vec<history::HistoryRow> = entries
            .iter()
            .map(history::HistoryRow::from_entry)
            .collect();
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.record_batch(rows).await,
            Backend::Postgres(s) => s.record_batch(rows).await,
        }
    }

    #[tracing::instrument(name = "history SELECT", skip_all, fields(db.system = self.db_system(), db.operation = "SELECT", otel.kind = "client"))]
    async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.get(id).await,
            Backend::Postgres(s) => s.get(id).await,
        }
    }

    #[tracing::instrument(name = "history SELECT", skip_all, fields(db.system = self.db_system(), db.operation = "SELECT", otel.kind = "client"))]
    async fn list(&self, filter: &HistoryFilter, page: &PageRequest) -> Result<Page<HistoryEntry>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.list(filter, page).await,
            Backend::Postgres(s) => s.list(filter, page).await,
        }
    }

    async fn health(&self) -> ComponentHealth {
        let outcome = match self.backend.as_ref() {
            Backend::Sqlite(s) => s.ping().await,
            Backend::Postgres(s) => s.ping().await,
        };
        match outcome {
            Ok(()) => ComponentHealth::ok(self.backend_name()),
            // Core error messages are safe for clients by construction; the cause goes to logs.
            Err(e) => {
                tracing::warn!(error = ?e, "history store health check failed");
                let detail = match (self.backend.as_ref(), &e) {
                    // A server the service reaches over the network: say what an operator
                    // checks first.
                    (Backend::Postgres(_), Error::Unavailable { .. }) => "unreachable".to_owned(),
                    _ => e.to_string(),
                };
                ComponentHealth::down(self.backend_name(), detail)
            }
        }
    }
}

impl Store {
    fn sql_dialect(&self) -> analytics::Dialect {
        match self.backend.as_ref() {
            Backend::Sqlite(_) => analytics::Dialect::Sqlite,
            Backend::Postgres(_) => analytics::Dialect::Postgres,
        }
    }

    /// Runs one analytics statement on whichever backend this is.
    async fn load_raw<R>(&self, stmt: analytics::SqlStatement) -> Result<Vec<R>>
    where
        R: diesel::QueryableByName<diesel::sqlite::Sqlite>
            + diesel::QueryableByName<diesel::pg::Pg>
            + Send
            + 'static,
    {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.load_raw(stmt).await,
            Backend::Postgres(s) => s.load_raw(stmt).await,
        }
    }

    /// The texts of the entries `ids` (examples quoted by `popular` and `errors`).
    async fn examples(&self, ids: Vec<String>) -> Result<Vec<analytics::ExampleRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.load_raw(analytics::examples_sql(self.sql_dialect(), &ids))
            .await
    }
}

#[async_trait]
impl HistoryAnalytics for Store {
    async fn summary(&self, filter: &AnalyticsFilter, group_by: GroupBy) -> Result<Summary> {
        let dialect = self.sql_dialect();
        let rows = self
            .load_raw(analytics::summary_sql(dialect, filter, group_by))
            .await?;
        Ok(analytics::summary(rows))
    }

    async fn popular(
        &self,
        filter: &AnalyticsFilter,
        kind: PopularKind,
        limit: u32,
    ) -> Result<Vec<PopularEntry>> {
        let rows: Vec<analytics::PopularRow> = self
            .load_raw(analytics::popular_sql(
                self.sql_dialect(),
                filter,
                kind,
                limit,
            ))
            .await?;
        let examples = self
            .examples(rows.iter().map(|r| r.example_id.clone()).collect())
            .await?;
        Ok(analytics::popular(rows, &examples, kind))
    }

    async fn ranked(
        &self,
        filter: &AnalyticsFilter,
        ranking: Ranking,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>> {
        let rows = match self.backend.as_ref() {
            Backend::Sqlite(s) => s.ranked(filter, ranking, limit).await?,
            Backend::Postgres(s) => s.ranked(filter, ranking, limit).await?,
        };
        rows.into_iter()
            .map(history::HistoryRow::into_entry)
            .collect()
    }

    async fn errors(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<ErrorCount>> {
        let rows: Vec<analytics::ErrorRow> = self
            .load_raw(analytics::errors_sql(self.sql_dialect(), filter, limit))
            .await?;
        let examples = self
            .examples(rows.iter().map(|r| r.example_id.clone()).collect())
            .await?;
        Ok(analytics::errors(rows, &examples))
    }

    async fn tables(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<TableUsage>> {
        let rows = self
            .load_raw(analytics::tables_sql(self.sql_dialect(), filter, limit))
            .await?;
        Ok(analytics::tables(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_select_the_backend() {
        let file = |p: &str| Location::Sqlite(Target::File(PathBuf::from(p)));
        assert_eq!(
            parse_url("sqlite://data/bqai.db").unwrap(),
            file("data/bqai.db")
        );
        assert_eq!(
            parse_url("sqlite:///var/lib/bqai.db").unwrap(),
            file("/var/lib/bqai.db")
        );
        assert_eq!(parse_url("sqlite:bqai.db").unwrap(), file("bqai.db"));
        assert_eq!(parse_url("./bqai.db").unwrap(), file("./bqai.db"));
        assert_eq!(
            parse_url("sqlite::memory:").unwrap(),
            Location::Sqlite(Target::Memory)
        );
        assert_eq!(
            parse_url(":memory:").unwrap(),
            Location::Sqlite(Target::Memory)
        );
        assert_eq!(
            parse_url("postgres://u:p@h/db").unwrap(),
            Location::Postgres
        );
        assert_eq!(parse_url("postgresql://h/db").unwrap(), Location::Postgres);
        assert!(matches!(
            parse_url("mysql://h/db"),
            Err(Error::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_url("sqlite://"),
            Err(Error::InvalidRequest(_))
        ));
    }
}
