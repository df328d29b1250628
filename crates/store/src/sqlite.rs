//! The SQLite backend: a deadpool pool of `SyncConnectionWrapper<SqliteConnection>` with
//! per-connection pragmas, and the statements of every port (history, keys, audit, usage,
//! conversations).
//!
//! Conversation writes read before they write, so each runs as one `BEGIN IMMEDIATE`
//! transaction on the plain connection, handed to a blocking thread (see [`blocking`]): it
//! takes the write lock first and waits for it up to `busy_timeout`, where a deferred
//! transaction upgrading from a read could fail at once with `SQLITE_BUSY`.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bqai_core::analytics::{AnalyticsFilter, Ranking};
use bqai_core::auth::audit::{AuditEvent, AuditFilter};
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{Page, PageRequest};
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::ConnectionError;
use diesel::sqlite::Sqlite;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::StoreOptions;
use crate::analytics::{SqlStatement, load_statement, ranked_query};
use crate::audit::{AuditRow, list_events_query};
use crate::conversations::{Append, Loaded, NewConversation, load_query};
use crate::convert::{from_sql_count, to_sql_time};
use crate::error::{Port, insert_error, pool_error, query_error};
use crate::export_jobs::{Claim, JobRow};
use crate::history::{HistoryRow, list_query};
use crate::keys::{KeyChanges, KeyRow, list_keys_query, revoked_at_after};
use crate::page::{Cursor, fetch_limit, into_page};
use crate::retention::VacuumStep;
use crate::schema::{api_keys, audit_log, key_usage, query_history};
use crate::usage::{UsageRow, saturating_total};

type Conn = SyncConnectionWrapper<SqliteConnection>;
type PooledConn = Object<Conn>;

/// Applied to every new connection. `busy_timeout` comes first so that switching to WAL waits
/// for a concurrent opener instead of failing.
/// (Not `auto_vacuum`: setting it writes the header, so a new connection would wait behind
/// another's write lock; [`SqliteStore::migrate`] sets it once.)
///
/// `journal_size_limit`: the write-ahead log is cut back to 64 MiB whenever it restarts, so a
/// burst (a purge, a vacuum) does not leave a large log behind when it cannot be truncated.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA journal_size_limit = 67108864;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;";

/// Which database a SQLite URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A private in-memory database; only one connection can see it, so the pool has one.
    Memory,
    /// A database file.
    File(PathBuf),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Memory => ":memory:".to_owned(),
            Target::File(path) => path.to_string_lossy().into_owned(),
        }
    }
}

pub(crate) struct SqliteStore {
    target: Target,
    pool: Pool<Conn>,
    options: StoreOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("target", &self.target)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

async fn establish(url: &str) -> ConnectionResult<Conn> {
    let mut conn = Conn::establish(url).await?;
    conn.batch_execute(PRAGMAS)
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl SqliteStore {
    /// Builds the pool and opens one connection, so a bad path fails here rather than on the
    /// first query.
    pub(crate) async fn open(target: Target, options: StoreOptions) -> Result<Self> {
        if let Target::File(path) = &target
            && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                Error::unavailable(format!("the store directory {}", dir.display()), e)
            })?;
        }
        let mut config = ManagerConfig::<Conn>::default();
        config.custom_setup = Box::new(|url| Box::pin(establish(url)));
        // Local SQLite connections do not go stale; a `SELECT 1` per checkout would only add
        // a blocking-thread round trip.
        config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(target.url(), config);
        let max_size = match target {
            Target::Memory => 1,
            Target::File(_) => options.pool_size.max(1),
        };
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::internal("building the store pool", e))?;
        let store = Self {
            target,
            pool,
            options,
        };
        store.ping().await?;
        Ok(store)
    }

    /// Runs `op` on a pooled connection within `timeout`.
    ///
    /// The operation runs in its own task, and a timeout abandons the task rather than
    /// cancelling it: dropping a `SyncConnectionWrapper` future mid-statement makes diesel-async
    /// wait for the blocking SQLite call with `block_in_place`, which stalls a worker thread and
    /// panics on a current-thread runtime. The abandoned statement finishes on its blocking
    /// thread (bounded by `busy_timeout`) and its connection goes back to the pool.
    ///
    /// The outer `Result` covers the pool, the timeout and the task; the inner one is the
    /// statement's own outcome, for the caller to interpret.
    async fn run<R, F, Fut>(&self, port: Port, timeout: Duration, op: F) -> Result<QueryResult<R>>
    where
        F: FnOnce(PooledConn) -> Fut + Send + 'static,
        Fut: Future<Output = QueryResult<R>> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let conn = pool.get().await.map_err(|e| pool_error(e, port))?;
            Ok(op(conn).await)
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(port.internal("task failed", join)),
            Err(_elapsed) => Err(Error::Timeout(timeout)),
        }
    }

    /// `run` with the query timeout, any statement error translated.
    pub(crate) async fn query<R, F, Fut>(&self, port: Port, op: F) -> Result<R>
    where
        F: FnOnce(PooledConn) -> Fut + Send + 'static,
        Fut: Future<Output = QueryResult<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.run(port, self.options.query_timeout, op)
            .await?
            .map_err(|e| query_error(e, port))
    }

    /// `run` with the query timeout for an insert of row `id`: a duplicate is `Conflict`.
    pub(crate) async fn insert<F, Fut>(&self, port: Port, id: &str, op: F) -> Result<()>
    where
        F: FnOnce(PooledConn) -> Fut + Send + 'static,
        Fut: Future<Output = QueryResult<usize>> + Send + 'static,
    {
        self.run(port, self.options.query_timeout, op)
            .await?
            .map(drop)
            .map_err(|e| insert_error(e, port, id))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.query(Port::History, |mut conn| async move {
            diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                .get_result::<i32>(&mut *conn)
                .await
                .map(drop)
        })
        .await
    }

    pub(crate) async fn migrate(&self) -> Result<usize> {
        self.run(
            Port::History,
            self.options.migration_timeout,
            |mut conn| async move {
                // The wrapper's `spawn_blocking` hands the plain sync connection to a blocking
                // thread: the same database as the pool (which matters for `:memory:`) without
                // diesel-async's `block_in_place` harness.
                conn.spawn_blocking(|conn| {
                    blocking::ensure_incremental_vacuum(conn)?;
                    crate::migrate::run_sqlite(conn)
                })
                .await
            },
        )
        .await?
        .map_err(|e| Error::internal("running store migrations", e))
    }

    pub(crate) async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        let row = HistoryRow::from_entry(entry);
        self.insert(Port::History, &entry.id, |mut conn| async move {
            diesel::insert_into(query_history::table)
                .values(&row)
                .execute(&mut *conn)
                .await
        })
        .await
    }

    /// Inserts `rows` in one statement (one commit for all of them).
    pub(crate) async fn record_batch(&self, rows: Vec<HistoryRow>) -> Result<()> {
        let first = <[HistoryRow]>::first(&rows)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        // diesel's SQLite batch insert lives on the synchronous connection.
        self.insert(Port::History, &first, |mut conn| async move {
            conn.spawn_blocking(move |conn| {
                diesel::RunQueryDsl::execute(
                    diesel::insert_into(query_history::table).values(&rows),
                    conn,
                )
            })
            .await
        })
        .await
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        let id = id.to_owned();
        let row = self
            .query(Port::History, |mut conn| async move {
                query_history::table
                    .find(id)
                    .select(HistoryRow::as_select())
                    .first(&mut *conn)
                    .await
                    .optional()
            })
            .await?;
        row.map(HistoryRow::into_entry).transpose()
    }

    pub(crate) async fn list(
        &self,
        filter: &HistoryFilter,
        page: &PageRequest,
    ) -> Result<Page<HistoryEntry>> {
        let cursor = page.page_token.as_deref().map(Cursor::decode).transpose()?;
        let filter = filter.clone();
        let limit = fetch_limit(page.page_size);
        let rows = self
            .query(Port::History, move |mut conn| async move {
                list_query!(Sqlite, filter, cursor, limit)
                    .load(&mut *conn)
                    .await
            })
            .await?;
        into_page(
            rows,
            page.page_size,
            HistoryRow::cursor,
            HistoryRow::into_entry,
        )
    }

    /// Runs one analytics statement (see [`crate::analytics`]).
    pub(crate) async fn load_raw<R>(&self, stmt: SqlStatement) -> Result<Vec<R>>
    where
        R: QueryableByName<Sqlite> + Send + 'static,
    {
        self.query(Port::History, move |mut conn| async move {
            load_statement!(Sqlite, &mut *conn, stmt, R)
        })
        .await
    }

    /// Entries ranked for analytics.
    pub(crate) async fn ranked(
        &self,
        filter: &AnalyticsFilter,
        ranking: Ranking,
        limit: u32,
    ) -> Result<Vec<HistoryRow>> {
        let filter = filter.clone();
        self.query(Port::History, move |mut conn| async move {
            ranked_query!(Sqlite, filter, ranking, limit)
                .load(&mut *conn)
                .await
        })
        .await
    }

    pub(crate) async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
        let row = KeyRow::from_record(key)?;
        self.insert(Port::Keys, &key.id, |mut conn| async move {
            diesel::insert_into(api_keys::table)
                .values(&row)
                .execute(&mut *conn)
                .await
        })
        .await
    }

    pub(crate) async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_owned();
        let row = self
            .query(Port::Keys, |mut conn| async move {
                api_keys::table
                    .find(id)
                    .select(KeyRow::as_select())
                    .first(&mut *conn)
                    .await
                    .optional()
            })
            .await?;
        row.map(KeyRow::into_record).transpose()
    }

    pub(crate) async fn list_keys(
        &self,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> Result<Page<KeyRecord>> {
        let cursor = page.page_token.as_deref().map(Cursor::decode).transpose()?;
        let filter = filter.clone();
        let limit = fetch_limit(page.page_size);
        let rows = self
            .query(Port::Keys, move |mut conn| async move {
                list_keys_query!(Sqlite, filter, cursor, limit)
                    .load(&mut *conn)
                    .await
            })
            .await?;
        into_page(rows, page.page_size, KeyRow::cursor, KeyRow::into_record)
    }

    pub(crate) async fn update_key(
        &self,
        id: &str,
        update: &KeyUpdate,
    ) -> Result<Option<KeyRecord>> {
        let Some(changes) = KeyChanges::from_update(update)? else {
            return self.get_key(id).await;
        };
        let id = id.to_owned();
        let row = self
            .query(Port::Keys, |mut conn| async move {
                diesel::update(api_keys::table.find(id))
                    .set(changes)
                    .returning(KeyRow::as_returning())
                    .get_result(&mut *conn)
                    .await
                    .optional()
            })
            .await?;
        row.map(KeyRow::into_record).transpose()
    }

    pub(crate) async fn revoke_key(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>> {
        let id = id.to_owned();
        let row = self
            .query(Port::Keys, move |mut conn| async move {
                diesel::update(api_keys::table.find(id))
                    .set(api_keys::revoked_at.eq(revoked_at_after(at)))
                    .returning(KeyRow::as_returning())
                    .get_result(&mut *conn)
                    .await
                    .optional()
            })
            .await?;
        row.map(KeyRow::into_record).transpose()
    }

    /// Moves `last_used_at` forward to `at` (never back: replicas touch with their own
    /// clocks); an unknown id changes nothing.
    pub(crate) async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let id = id.to_owned();
        let at = to_sql_time(at);
        self.query(Port::Keys, move |mut conn| async move {
            diesel::update(
                api_keys::table.find(id).filter(
                    api_keys::last_used_at
                        .is_null()
                        .or(api_keys::last_used_at.lt(at)),
                ),
            )
            .set(api_keys::last_used_at.eq(at))
            .execute(&mut *conn)
            .await
            .map(drop)
        })
        .await
    }

    pub(crate) async fn append_event(&self, event: &AuditEvent) -> Result<()> {
        let row = AuditRow::from_event(event)?;
        self.insert(Port::Audit, &event.id, |mut conn| async move {
            diesel::insert_into(audit_log::table)
                .values(&row)
                .execute(&mut *conn)
                .await
        })
        .await
    }

    /// Inserts `rows` in one statement (one commit, one sync to disk for all of them).
    pub(crate) async fn append_events(&self, rows: Vec<AuditRow>) -> Result<()> {
        let first = <[AuditRow]>::first(&rows)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        // One multi-row INSERT per batch (the audit writer's batches are at most 256 rows of
        // 14 values, far below SQLite's 32,766 bound variables): one statement to prepare and
        // step instead of one per event.
        // diesel's SQLite batch insert lives on the synchronous connection, hence
        // `spawn_blocking` (the wrapper runs every statement on a blocking thread anyway).
        self.insert(Port::Audit, &first, |mut conn| async move {
            conn.spawn_blocking(move |conn| {
                diesel::RunQueryDsl::execute(
                    diesel::insert_into(audit_log::table).values(&rows),
                    conn,
                )
            })
            .await
        })
        .await
    }

    pub(crate) async fn list_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let cursor = page.page_token.as_deref().map(Cursor::decode).transpose()?;
        let filter = filter.clone();
        let limit = fetch_limit(page.page_size);
        let rows = self
            .query(Port::Audit, move |mut conn| async move {
                list_events_query!(Sqlite, filter, cursor, limit)
                    .load(&mut *conn)
                    .await
            })
            .await?;
        into_page(rows, page.page_size, AuditRow::cursor, AuditRow::into_event)
    }

    pub(crate) async fn bytes_used(&self, principal: &str, day: NaiveDate) -> Result<u64> {
        let principal = principal.to_owned();
        let bytes = self
            .query(Port::Usage, move |mut conn| async move {
                key_usage::table
                    .find((principal, day))
                    .select(key_usage::bytes)
                    .first::<i64>(&mut *conn)
                    .await
                    .optional()
            })
            .await?;
        Ok(bytes.map_or(0, from_sql_count))
    }

    pub(crate) async fn charge_bytes(
        &self,
        principal: &str,
        day: NaiveDate,
        bytes: u64,
    ) -> Result<u64> {
        let row = UsageRow::new(principal, day, bytes);
        let total = self
            .query(Port::Usage, move |mut conn| async move {
                diesel::insert_into(key_usage::table)
                    .values(&row)
                    .on_conflict((key_usage::principal, key_usage::day))
                    .do_update()
                    .set(key_usage::bytes.eq(saturating_total()))
                    .returning(key_usage::bytes)
                    .get_result::<i64>(&mut *conn)
                    .await
            })
            .await?;
        Ok(from_sql_count(total))
    }

    /// Runs a conversation write on a blocking thread under the query timeout (see
    /// [`blocking`]); the statement's own error is left to the caller.
    async fn blocking<R, F>(&self, op: F) -> Result<QueryResult<R>>
    where
        F: FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.blocking_on(Port::Conversations, op).await
    }

    /// [`Self::blocking`] for `port`.
    async fn blocking_on<R, F>(&self, port: Port, op: F) -> Result<QueryResult<R>>
    where
        F: FnOnce(&mut SqliteConnection) -> QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.run(port, self.options.query_timeout, |mut conn| async move {
            conn.spawn_blocking(op).await
        })
        .await
    }

    /// Deletes up to `limit` history entries created before `cutoff`, oldest first.
    pub(crate) async fn purge_history(&self, cutoff: NaiveDateTime, limit: i64) -> Result<u64> {
        self.blocking_on(Port::History, move |conn| {
            blocking::purge_history(conn, cutoff, limit)
        })
        .await?
        .map(|n| n as u64)
        .map_err(|e| query_error(e, Port::History))
    }

    /// Deletes up to `limit` audit events recorded before `cutoff`, oldest first, under the
    /// purge permit (see [`crate::retention`]).
    pub(crate) async fn purge_audit(&self, cutoff: NaiveDateTime, limit: i64) -> Result<u64> {
        self.blocking_on(Port::Audit, move |conn| {
            blocking::purge_audit(conn, cutoff, limit)
        })
        .await?
        .map(|n| n as u64)
        .map_err(|e| query_error(e, Port::Audit))
    }

    /// Returns up to `pages` free pages to the file system.
    pub(crate) async fn incremental_vacuum(&self, pages: i64) -> Result<VacuumStep> {
        self.blocking_on(Port::History, move |conn| {
            blocking::incremental_vacuum(conn, pages)
        })
        .await?
        .map_err(|e| query_error(e, Port::History))
    }

    /// Copies the write-ahead log into the database and truncates it, best effort (see
    /// [`blocking::checkpoint`]).
    pub(crate) async fn checkpoint(&self) -> Result<()> {
        self.blocking_on(Port::History, blocking::checkpoint)
            .await?
            .map_err(|e| query_error(e, Port::History))
    }

    /// Bytes on disk (the file and its write-ahead log), bytes in free pages, and the rows of
    /// each of [`COUNTED_TABLES`].
    pub(crate) async fn stats(&self) -> Result<(u64, u64, Vec<u64>)> {
        let (page_bytes, free_bytes, rows) = self
            .blocking_on(Port::History, blocking::stats)
            .await?
            .map_err(|e| query_error(e, Port::History))?;
        let wal = match &self.target {
            Target::Memory => 0,
            Target::File(path) => {
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                tokio::fs::metadata(&wal).await.map_or(0, |m| m.len())
            }
        };
        Ok((page_bytes.saturating_add(wal), free_bytes, rows))
    }

    pub(crate) async fn create_conversation(&self, new: NewConversation) -> Result<()> {
        let id = new.row.id.clone();
        self.blocking(move |conn| blocking::create_conversation(conn, &new))
            .await?
            .map_err(|e| insert_error(e, Port::Conversations, &id))
    }

    pub(crate) async fn get_conversation(
        &self,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Loaded>> {
        let id = id.to_owned();
        let rows = self
            .query(Port::Conversations, move |mut conn| async move {
                load_query!(Sqlite, id, now).load(&mut *conn).await
            })
            .await?;
        Ok(Loaded::from_joined(rows))
    }

    pub(crate) async fn append_turn(&self, append: Append) -> Result<Option<Loaded>> {
        self.blocking(move |conn| blocking::append_turn(conn, &append))
            .await?
            .map_err(|e| query_error(e, Port::Conversations))
    }

    pub(crate) async fn delete_conversation(&self, id: &str, now: NaiveDateTime) -> Result<bool> {
        let id = id.to_owned();
        self.blocking(move |conn| blocking::delete_conversation(conn, &id, now))
            .await?
            .map_err(|e| query_error(e, Port::Conversations))
    }

    /// Claims the oldest claimable export job in one `BEGIN IMMEDIATE` transaction: the
    /// write lock is taken before the read, so two claimers never pick the same job.
    pub(crate) async fn claim_job(&self, claim: Claim) -> Result<Option<JobRow>> {
        self.blocking_on(Port::ExportJobs, move |conn| {
            blocking::claim_job(conn, &claim)
        })
        .await?
        .map_err(|e| query_error(e, Port::ExportJobs))
    }

    pub(crate) async fn purge_conversations(&self, now: NaiveDateTime, limit: i64) -> Result<u64> {
        self.blocking(move |conn| {
            conn.immediate_transaction(|conn| blocking::purge_conversations(conn, now, limit))
        })
        .await?
        .map(|n| n as u64)
        .map_err(|e| query_error(e, Port::Conversations))
    }
}

/// Conversation writes on the plain (synchronous) connection, each one `BEGIN IMMEDIATE`
/// transaction, run by [`SqliteStore::blocking`] on a blocking thread.
///
/// Turns are deleted explicitly with their conversation: the `ON DELETE CASCADE` only acts on
/// connections with `PRAGMA foreign_keys = ON` (the pool's have it), and a conversation's turns
/// must go even when another tool deleted through a connection without it.
mod blocking {
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    use crate::conversations::{Append, ConversationRow, Loaded, NewConversation, PURGE_ON_CREATE};
    use crate::export_jobs::{Claim, JobRow, claimable, fail_exhausted};
    use crate::retention::COUNTED_TABLES;
    use crate::schema::{audit_purge_permit, conversation_turns, conversations, export_jobs};
    use chrono::NaiveDateTime;

    /// Purges up to [`PURGE_ON_CREATE`] expired conversations, replaces an expired one with
    /// the same id, and inserts the new one (a live duplicate is a unique violation).
    pub(super) fn create_conversation(
        conn: &mut SqliteConnection,
        new: &NewConversation,
    ) -> QueryResult<()> {
        conn.immediate_transaction(|conn| {
            purge_conversations(conn, new.now, PURGE_ON_CREATE)?;
            let expired = conversations::table
                .find(&new.row.id)
                .filter(conversations::expires_at.le(new.now))
                .select(conversations::id)
                .first::<String>(conn)
                .optional()?;
            if let Some(id) = expired {
                delete_with_turns(conn, &[id])?;
            }
            diesel::insert_into(conversations::table)
                .values(&new.row)
                .execute(conn)?;
            if !new.turns.is_empty() {
                diesel::insert_into(conversation_turns::table)
                    .values(&new.turns)
                    .execute(conn)?;
            }
            Ok(())
        })
    }

    pub(super) fn append_turn(
        conn: &mut SqliteConnection,
        append: &Append,
    ) -> QueryResult<Option<Loaded>> {
        conn.immediate_transaction(|conn| {
            let Some(mut row) = conversations::table
                .find(&append.id)
                .filter(conversations::expires_at.gt(append.now))
                .select(ConversationRow::as_select())
                .first(conn)
                .optional()?
            else {
                return Ok(None);
            };
            let mut turns: Vec<(i64, String)> = conversation_turns::table
                .filter(conversation_turns::conversation_id.eq(&append.id))
                .order(conversation_turns::seq.asc())
                .select((conversation_turns::seq, conversation_turns::turn))
                .load(conn)?;
            let (new, drop_through) = append.apply(&mut row, &mut turns);
            diesel::insert_into(conversation_turns::table)
                .values(&new)
                .execute(conn)?;
            if let Some(last) = drop_through {
                diesel::delete(
                    conversation_turns::table
                        .filter(conversation_turns::conversation_id.eq(&append.id))
                        .filter(conversation_turns::seq.le(last)),
                )
                .execute(conn)?;
            }
            diesel::update(conversations::table.find(&append.id))
                .set((
                    conversations::dataset.eq(&row.dataset),
                    conversations::updated_at.eq(row.updated_at),
                    conversations::expires_at.eq(row.expires_at),
                ))
                .execute(conn)?;
            Ok(Some(Loaded {
                row,
                turns: turns.into_iter().map(|(_, t)| t).collect(),
            }))
        })
    }

    /// Deletes the conversation (expired or not) with its turns; whether it was live.
    pub(super) fn delete_conversation(
        conn: &mut SqliteConnection,
        id: &str,
        now: NaiveDateTime,
    ) -> QueryResult<bool> {
        conn.immediate_transaction(|conn| {
            let expires_at = conversations::table
                .find(id)
                .select(conversations::expires_at)
                .first::<NaiveDateTime>(conn)
                .optional()?;
            let Some(expires_at) = expires_at else {
                return Ok(false);
            };
            delete_with_turns(conn, &[id.to_owned()])?;
            Ok(expires_at > now)
        })
    }

    /// See [`super::SqliteStore::claim_job`].
    pub(super) fn claim_job(
        conn: &mut SqliteConnection,
        claim: &Claim,
    ) -> QueryResult<Option<JobRow>> {
        conn.immediate_transaction(|conn| {
            fail_exhausted!(claim.stale_before, claim.max_attempts, claim.now).execute(conn)?;
            let Some(id) = claimable!(claim.stale_before)
                .first::<String>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            diesel::update(export_jobs::table.find(&id))
                .set((
                    &claim.changes,
                    export_jobs::attempts.eq(export_jobs::attempts + 1),
                ))
                .execute(conn)?;
            export_jobs::table
                .find(&id)
                .select(JobRow::as_select())
                .first(conn)
                .optional()
        })
    }

    /// Deletes up to `limit` conversations expired by `now` (oldest first) with their turns;
    /// how many. Runs inside the caller's transaction.
    pub(super) fn purge_conversations(
        conn: &mut SqliteConnection,
        now: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<usize> {
        let ids: Vec<String> = conversations::table
            .filter(conversations::expires_at.le(now))
            .order(conversations::expires_at.asc())
            .limit(limit)
            .select(conversations::id)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        delete_with_turns(conn, &ids)
    }

    /// Deletes up to `limit` history entries created before `cutoff`, oldest first.
    pub(super) fn purge_history(
        conn: &mut SqliteConnection,
        cutoff: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<usize> {
        diesel::sql_query(
            "DELETE FROM query_history WHERE id IN (SELECT id FROM query_history \
             WHERE created_at < ? ORDER BY created_at LIMIT ?)",
        )
        .bind::<diesel::sql_types::Timestamp, _>(cutoff)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .execute(conn)
    }

    /// Deletes up to `limit` audit events recorded before `cutoff`, oldest first: one
    /// `BEGIN IMMEDIATE` transaction that holds the purge permit only while it deletes.
    pub(super) fn purge_audit(
        conn: &mut SqliteConnection,
        cutoff: NaiveDateTime,
        limit: i64,
    ) -> QueryResult<usize> {
        conn.immediate_transaction(|conn| {
            diesel::insert_into(audit_purge_permit::table)
                .values(audit_purge_permit::cutoff.eq(cutoff))
                .execute(conn)?;
            let deleted = diesel::sql_query(
                "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
                 WHERE at < ? ORDER BY at LIMIT ?)",
            )
            .bind::<diesel::sql_types::Timestamp, _>(cutoff)
            .bind::<diesel::sql_types::BigInt, _>(limit)
            .execute(conn)?;
            diesel::delete(audit_purge_permit::table).execute(conn)?;
            Ok(deleted)
        })
    }

    /// A numeric pragma's value, read through its table-valued function.
    fn pragma(conn: &mut SqliteConnection, name: &str) -> QueryResult<i64> {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT * FROM pragma_{name}())"
        )))
        .get_result(conn)
    }

    /// One `incremental_vacuum` step of at most `pages` pages.
    pub(super) fn incremental_vacuum(
        conn: &mut SqliteConnection,
        pages: i64,
    ) -> QueryResult<crate::retention::VacuumStep> {
        use diesel::connection::SimpleConnection as _;
        let page_size = pragma(conn, "page_size")?;
        let before = pragma(conn, "page_count")?;
        conn.batch_execute(&format!("PRAGMA incremental_vacuum({pages})"))?;
        let after = pragma(conn, "page_count")?;
        let free = pragma(conn, "freelist_count")?;
        let returned = before.saturating_sub(after).max(0);
        Ok(crate::retention::VacuumStep {
            returned_bytes: u64::try_from(returned.saturating_mul(page_size)).unwrap_or(0),
            // Only while a step makes progress: a file without auto_vacuum frees nothing.
            more: free > 0 && returned > 0,
        })
    }

    /// Copies the write-ahead log into the database (a `PASSIVE` checkpoint: it waits for no
    /// one), then truncates the log if it can within 100 ms. A `TRUNCATE` checkpoint holds off
    /// new writers while it waits for readers, so it gets a short busy timeout instead of the
    /// usual 5 s: under load it gives up, and `journal_size_limit` bounds the log meanwhile.
    pub(super) fn checkpoint(conn: &mut SqliteConnection) -> QueryResult<()> {
        use diesel::connection::SimpleConnection as _;
        let outcome = conn.batch_execute(
            "PRAGMA wal_checkpoint(PASSIVE); PRAGMA busy_timeout = 100; \
             PRAGMA wal_checkpoint(TRUNCATE);",
        );
        // Back to the 5 s of PRAGMAS.
        conn.batch_execute("PRAGMA busy_timeout = 5000")?;
        outcome
    }

    /// Bytes in pages, bytes in free pages, and rows per counted table.
    pub(super) fn stats(conn: &mut SqliteConnection) -> QueryResult<(u64, u64, Vec<u64>)> {
        let page_size = pragma(conn, "page_size")?;
        let pages = pragma(conn, "page_count")?;
        let free = pragma(conn, "freelist_count")?;
        let mut rows = Vec::with_capacity(COUNTED_TABLES.len());
        for table in COUNTED_TABLES {
            let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                "(SELECT COUNT(*) FROM {table})"
            )))
            .get_result(conn)?;
            rows.push(u64::try_from(n).unwrap_or(0));
        }
        let bytes = |n: i64| u64::try_from(n.saturating_mul(page_size)).unwrap_or(0);
        Ok((bytes(pages), bytes(free), rows))
    }

    /// Makes the database use incremental auto-vacuum, so purged space can be given back.
    /// The setting takes effect through a `VACUUM`: instant on a new, empty database; a file
    /// made before this was the default is rewritten once (holding the write lock meanwhile,
    /// at start, before the service answers).
    pub(super) fn ensure_incremental_vacuum(conn: &mut SqliteConnection) -> QueryResult<()> {
        use diesel::connection::SimpleConnection as _;
        const INCREMENTAL: i64 = 2;
        if pragma(conn, "auto_vacuum")? == INCREMENTAL {
            return Ok(());
        }
        let tables: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table')",
        ))
        .get_result(conn)?;
        if tables > 0 {
            let bytes = pragma(conn, "page_count")?.saturating_mul(pragma(conn, "page_size")?);
            tracing::info!(
                bytes,
                "converting the SQLite store to incremental auto-vacuum (one full VACUUM)"
            );
        }
        conn.batch_execute("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
    }

    fn delete_with_turns(conn: &mut SqliteConnection, ids: &[String]) -> QueryResult<usize> {
        diesel::delete(
            conversation_turns::table.filter(conversation_turns::conversation_id.eq_any(ids)),
        )
        .execute(conn)?;
        diesel::delete(conversations::table.filter(conversations::id.eq_any(ids))).execute(conn)
    }
}
