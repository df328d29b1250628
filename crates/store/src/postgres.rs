//! The PostgreSQL backend: a deadpool pool of diesel-async `AsyncPgConnection`s (tokio-postgres
//! underneath, no libpq), a server-side `statement_timeout` on every connection, and the
//! statements of every port (history, keys, audit, usage, conversations).
//!
//! Conversation writes are transactions: an append locks its conversation row
//! (`SELECT … FOR UPDATE`), so concurrent appends to one conversation queue up; purges skip
//! rows another transaction holds (`FOR UPDATE SKIP LOCKED`). Deleting a conversation deletes
//! its turns through the foreign key's `ON DELETE CASCADE`.
//!
//! The pool is lazy: building it opens nothing, so a store whose server is down at start still
//! constructs, answers health with `down`, and fails each statement with `Unavailable` within
//! the pool timeouts until the server is back.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bqai_core::analytics::{AnalyticsFilter, Ranking};
use bqai_core::auth::audit::{AuditEvent, AuditFilter};
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{Page, PageRequest};
use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use crate::StoreOptions;
use crate::analytics::{SqlStatement, load_statement, ranked_query};
use crate::audit::{AuditRow, list_events_query};
use crate::conversations::{
    Append, ConversationRow, Loaded, NewConversation, PURGE_ON_CREATE, load_query,
};
use crate::convert::{from_sql_count, to_sql_time};
use crate::error::{Port, insert_error, pool_error, query_error};
use crate::export_jobs::{Claim, JobRow, claimable, fail_exhausted};
use crate::history::{HistoryRow, list_query};
use crate::keys::{KeyChanges, KeyRow, list_keys_query, revoked_at_after};
use crate::page::{Cursor, fetch_limit, into_page};
use crate::retention::COUNTED_TABLES;
use crate::schema::{
    api_keys, audit_log, audit_purge_permit, conversation_turns, conversations, export_jobs,
    key_usage, query_history,
};
use crate::usage::{UsageRow, saturating_total};

type Conn = AsyncPgConnection;

/// A statement's future, borrowing the connection it runs on. Boxed because a closure cannot
/// otherwise name a future type that borrows its argument (and an `async` closure's future
/// cannot be required to be `Send` on stable).
type Statement<'c, R> = Pin<Box<dyn Future<Output = QueryResult<R>> + Send + 'c>>;

pub(crate) struct PgStore {
    /// The parsed URL plus our connection settings. Kept instead of the URL so the password
    /// lives in one place whose `Debug` redacts it.
    config: Arc<tokio_postgres::Config>,
    pool: Pool<Conn>,
    options: StoreOptions,
    /// Rows this store's purges deleted since it last vacuumed each table, for
    /// [`PgStore::vacuum_purged`].
    purged: PurgedSinceVacuum,
}

/// Rows deleted by this process's purges since their table's last vacuum here. A replica
/// counts its own purges; a restart starts from zero (a vacuum comes later, not never).
#[derive(Debug, Default)]
struct PurgedSinceVacuum {
    history: AtomicU64,
    audit: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        f.debug_struct("PgStore")
            .field("hosts", &hosts)
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Parses a `postgres://` URL into a connection config. Errors never quote the URL: it may
/// hold a password.
fn parse_config(url: &str, options: &StoreOptions) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url.trim()).map_err(|_| {
        Error::InvalidRequest("the store URL is not a valid PostgreSQL URL".to_owned())
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(Error::InvalidRequest(
            "the PostgreSQL store URL names no host".to_owned(),
        ));
    }
    // Connections are made without TLS (no TLS connector is built in yet): `prefer` falls back
    // to plain, `require` would fail on every connect, so refuse it here, where it is clear.
    if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
        return Err(Error::InvalidRequest(
            "TLS to PostgreSQL is not supported yet; use sslmode=disable or prefer".to_owned(),
        ));
    }
    config.connect_timeout(options.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("bqai");
    }
    Ok(config)
}

/// How much later than the client's deadline the server's `statement_timeout` fires. The
/// client must win the race, so a caller hears `Timeout` rather than the server's cancellation
/// (which diesel reports as a generic database error); the server's wall is for statements no
/// client waits for any more.
const SERVER_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// `config` with the server-side `statement_timeout` set to `timeout` plus
/// [`SERVER_TIMEOUT_MARGIN`], keeping any options the URL carries.
fn with_statement_timeout(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> tokio_postgres::Config {
    // PostgreSQL takes whole milliseconds up to i32::MAX.
    let millis = timeout
        .saturating_add(SERVER_TIMEOUT_MARGIN)
        .as_millis()
        .min(i32::MAX as u128);
    let setting = format!("-c statement_timeout={millis}");
    // JIT compilation off unless the URL's options turn it on: bqai's statements are short,
    // and the analytics aggregates' row estimates are far too high (millions of groups where
    // there are 31 days), so PostgreSQL compiled them at a cost of ~450 ms per statement —
    // 40% of a 30-day summary on 1M rows (docs/benchmarks.md, "History analytics").
    let mut config = config.clone();
    let options = match config.get_options() {
        Some(existing) if !existing.trim().is_empty() => {
            format!("-c jit=off {existing} {setting}")
        }
        _ => format!("-c jit=off {setting}"),
    };
    config.options(options);
    config
}

/// What a failed connection says: the server's own message (tokio-postgres shows only "db
/// error" for it), and for a database that does not exist, which one and how to create it.
fn connect_error(config: &tokio_postgres::Config, e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        return e.to_string();
    };
    if db.code() == &tokio_postgres::error::SqlState::INVALID_CATALOG_NAME {
        let name = config.get_dbname().unwrap_or("(the user's name)");
        return format!(
            "{}: the PostgreSQL database {name:?} does not exist; create it with \
             `createdb {name}` or `CREATE DATABASE \"{name}\";`, or name another one in \
             store.url",
            db.message()
        );
    }
    format!("{}: {}", db.severity(), db.message())
}

async fn establish(config: &tokio_postgres::Config) -> ConnectionResult<Conn> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        // tokio-postgres errors name the failure (refused, auth failed), not the URL.
        .map_err(|e| ConnectionError::BadConnection(connect_error(config, &e)))?;
    Conn::try_from_client_and_connection(client, connection).await
}

impl PgStore {
    /// Builds the pool without connecting (see the module docs); only a malformed URL fails.
    pub(crate) fn open(url: &str, options: StoreOptions) -> Result<Self> {
        let config = Arc::new(parse_config(url, &options)?);
        let pooled = Arc::new(with_statement_timeout(&config, options.query_timeout));
        let mut manager_config = ManagerConfig::<Conn>::default();
        manager_config.custom_setup = Box::new(move |_url| {
            let pooled = Arc::clone(&pooled);
            Box::pin(async move { establish(&pooled).await })
        });
        // A `SELECT 1` per checkout: a server restart or a dropped TCP connection is found
        // before a statement is sent, and a fresh connection takes its place.
        manager_config.recycling_method = RecyclingMethod::Verified;
        // The URL given to the manager is never used (`custom_setup` ignores it); passing a
        // placeholder keeps the password out of the pool.
        let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(
            "postgres://redacted",
            manager_config,
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::internal("building the store pool", e))?;
        Ok(Self {
            config,
            pool,
            options,
            purged: PurgedSinceVacuum::default(),
        })
    }

    /// Runs `op` on a pooled connection within the query timeout (waiting for the connection
    /// included).
    ///
    /// In its own task, so a caller that gives up (a dropped request) cannot drop the statement
    /// halfway and hand a connection in an unknown state back to the pool. If the deadline
    /// passes mid-statement, the task drops the statement, asks the server to cancel it, and
    /// discards the connection instead of returning it.
    ///
    /// The outer `Result` covers the pool, the timeout and the task; the inner one is the
    /// statement's own outcome, for the caller to interpret.
    async fn run<R, F>(&self, port: Port, op: F) -> Result<QueryResult<R>>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Statement<'c, R> + Send + 'static,
    {
        self.run_within(port, self.options.query_timeout, op).await
    }

    /// [`Self::run`] with another deadline.
    async fn run_within<R, F>(&self, port: Port, timeout: Duration, op: F) -> Result<QueryResult<R>>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Statement<'c, R> + Send + 'static,
    {
        let connect_timeout = self.options.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let mut conn = match tokio::time::timeout_at(deadline, pool.get()).await {
                Ok(got) => got.map_err(|e| pool_error(e, port))?,
                Err(_elapsed) => return Err(Error::Timeout(timeout)),
            };
            match tokio::time::timeout_at(deadline, op(&mut conn)).await {
                Ok(outcome) => Ok(outcome),
                Err(_elapsed) => {
                    let cancel = conn.cancel_token();
                    drop(Object::take(conn));
                    tokio::spawn(async move {
                        // Best effort: without it the server runs on until statement_timeout.
                        let _ =
                            tokio::time::timeout(connect_timeout, cancel.cancel_query(NoTls)).await;
                    });
                    Err(Error::Timeout(timeout))
                }
            }
        });
        task.await
            .map_err(|join| port.internal("task failed", join))?
    }

    /// `run` with any statement error translated.
    pub(crate) async fn query<R, F>(&self, port: Port, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> Statement<'c, R> + Send + 'static,
    {
        self.run(port, op).await?.map_err(|e| query_error(e, port))
    }

    /// `run` for an insert of row `id`: a duplicate is `Conflict`.
    pub(crate) async fn insert<F>(&self, port: Port, id: &str, op: F) -> Result<()>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> Statement<'c, usize> + Send + 'static,
    {
        self.run(port, op)
            .await?
            .map(drop)
            .map_err(|e| insert_error(e, port, id))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.query(Port::History, |conn| {
            Box::pin(async move {
                diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                    .get_result::<i32>(conn)
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// Applies pending migrations on a dedicated connection (its `statement_timeout` is the
    /// migration timeout, which also bounds the wait for another process's migration lock),
    /// driven by diesel's sync harness on a blocking thread: see [`crate::migrate`].
    pub(crate) async fn migrate(&self) -> Result<usize> {
        let timeout = self.options.migration_timeout;
        let connect_timeout = self.options.connect_timeout;
        let config = with_statement_timeout(&self.config, timeout);
        let work = async move {
            let conn = match tokio::time::timeout(connect_timeout, establish(&config)).await {
                Ok(conn) => conn.map_err(|e| Error::unavailable(Port::History.what(), e))?,
                Err(elapsed) => return Err(Error::unavailable(Port::History.what(), elapsed)),
            };
            // The wrapper blocks on the caller's runtime handle; the connection's I/O task runs
            // on that runtime meanwhile, which works on a current-thread runtime too because
            // its thread is free, awaiting this blocking task.
            tokio::task::spawn_blocking(move || {
                let mut conn = AsyncConnectionWrapper::<Conn>::from(conn);
                crate::migrate::run_postgres(&mut conn)
            })
            .await
            .map_err(|join| Error::internal("store migration task failed", join))?
            .map_err(|e| Error::internal("running store migrations", e))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_elapsed| Error::Timeout(timeout))?
    }

    pub(crate) async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        let row = HistoryRow::from_entry(entry);
        self.insert(Port::History, &entry.id, move |conn| {
            Box::pin(async move {
                diesel::insert_into(query_history::table)
                    .values(&row)
                    .execute(conn)
                    .await
            })
        })
        .await
    }

    /// Inserts `rows` in one statement (one commit for all of them).
    pub(crate) async fn record_batch(&self, rows: Vec<HistoryRow>) -> Result<()> {
        let first = <[HistoryRow]>::first(&rows)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        self.insert(Port::History, &first, move |conn| {
            Box::pin(async move {
                diesel::insert_into(query_history::table)
                    .values(&rows)
                    .execute(conn)
                    .await
            })
        })
        .await
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        let id = id.to_owned();
        let row = self
            .query(Port::History, move |conn| {
                Box::pin(async move {
                    query_history::table
                        .find(id)
                        .select(HistoryRow::as_select())
                        .first(conn)
                        .await
                        .optional()
                })
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
            .query(Port::History, move |conn| {
                Box::pin(async move {
                    list_query!(Pg, filter, cursor, limit)
                        .load::<HistoryRow>(conn)
                        .await
                })
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
        R: QueryableByName<Pg> + Send + 'static,
    {
        self.query(Port::History, move |conn| {
            Box::pin(async move { load_statement!(Pg, conn, stmt, R) })
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
        self.query(Port::History, move |conn| {
            Box::pin(async move {
                ranked_query!(Pg, filter, ranking, limit)
                    .load::<HistoryRow>(conn)
                    .await
            })
        })
        .await
    }

    pub(crate) async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
        let row = KeyRow::from_record(key)?;
        self.insert(Port::Keys, &key.id, move |conn| {
            Box::pin(async move {
                diesel::insert_into(api_keys::table)
                    .values(&row)
                    .execute(conn)
                    .await
            })
        })
        .await
    }

    pub(crate) async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_owned();
        let row = self
            .query(Port::Keys, move |conn| {
                Box::pin(async move {
                    api_keys::table
                        .find(id)
                        .select(KeyRow::as_select())
                        .first(conn)
                        .await
                        .optional()
                })
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
            .query(Port::Keys, move |conn| {
                Box::pin(async move {
                    list_keys_query!(Pg, filter, cursor, limit)
                        .load::<KeyRow>(conn)
                        .await
                })
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
            .query(Port::Keys, move |conn| {
                Box::pin(async move {
                    diesel::update(api_keys::table.find(id))
                        .set(changes)
                        .returning(KeyRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()
                })
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
            .query(Port::Keys, move |conn| {
                Box::pin(async move {
                    diesel::update(api_keys::table.find(id))
                        .set(api_keys::revoked_at.eq(revoked_at_after(at)))
                        .returning(KeyRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        row.map(KeyRow::into_record).transpose()
    }

    /// Moves `last_used_at` forward to `at` (never back: replicas touch with their own
    /// clocks); an unknown id changes nothing.
    pub(crate) async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let id = id.to_owned();
        let at = to_sql_time(at);
        self.query(Port::Keys, move |conn| {
            Box::pin(async move {
                diesel::update(
                    api_keys::table.find(id).filter(
                        api_keys::last_used_at
                            .is_null()
                            .or(api_keys::last_used_at.lt(at)),
                    ),
                )
                .set(api_keys::last_used_at.eq(at))
                .execute(conn)
                .await
                .map(drop)
            })
        })
        .await
    }

    pub(crate) async fn append_event(&self, event: &AuditEvent) -> Result<()> {
        let row = AuditRow::from_event(event)?;
        self.insert(Port::Audit, &event.id, move |conn| {
            Box::pin(async move {
                diesel::insert_into(audit_log::table)
                    .values(&row)
                    .execute(conn)
                    .await
            })
        })
        .await
    }

    /// Inserts `rows` in one statement (one commit for all of them).
    pub(crate) async fn append_events(&self, rows: Vec<AuditRow>) -> Result<()> {
        let first = <[AuditRow]>::first(&rows)
            .map(|r| r.id.clone())
            .unwrap_or_default();
        self.insert(Port::Audit, &first, move |conn| {
            Box::pin(async move {
                diesel::insert_into(audit_log::table)
                    .values(&rows)
                    .execute(conn)
                    .await
            })
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
            .query(Port::Audit, move |conn| {
                Box::pin(async move {
                    list_events_query!(Pg, filter, cursor, limit)
                        .load::<AuditRow>(conn)
                        .await
                })
            })
            .await?;
        into_page(rows, page.page_size, AuditRow::cursor, AuditRow::into_event)
    }

    pub(crate) async fn bytes_used(&self, principal: &str, day: NaiveDate) -> Result<u64> {
        let principal = principal.to_owned();
        let bytes = self
            .query(Port::Usage, move |conn| {
                Box::pin(async move {
                    key_usage::table
                        .find((principal, day))
                        .select(key_usage::bytes)
                        .first::<i64>(conn)
                        .await
                        .optional()
                })
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
            .query(Port::Usage, move |conn| {
                Box::pin(async move {
                    diesel::insert_into(key_usage::table)
                        .values(&row)
                        .on_conflict((key_usage::principal, key_usage::day))
                        .do_update()
                        .set(key_usage::bytes.eq(saturating_total()))
                        .returning(key_usage::bytes)
                        .get_result::<i64>(conn)
                        .await
                })
            })
            .await?;
        Ok(from_sql_count(total))
    }

    pub(crate) async fn create_conversation(&self, new: NewConversation) -> Result<()> {
        let id = new.row.id.clone();
        self.insert(Port::Conversations, &id, move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    purge_conversations(conn, new.now, PURGE_ON_CREATE).await?;
                    // An expired conversation with this id is absent: replace it.
                    diesel::delete(
                        conversations::table
                            .find(&new.row.id)
                            .filter(conversations::expires_at.le(new.now)),
                    )
                    .execute(conn)
                    .await?;
                    let mut inserted = diesel::insert_into(conversations::table)
                        .values(&new.row)
                        .execute(conn)
                        .await?;
                    if !new.turns.is_empty() {
                        inserted += diesel::insert_into(conversation_turns::table)
                            .values(&new.turns)
                            .execute(conn)
                            .await?;
                    }
                    Ok(inserted)
                })
                .await
            })
        })
        .await
    }

    pub(crate) async fn get_conversation(
        &self,
        id: &str,
        now: NaiveDateTime,
    ) -> Result<Option<Loaded>> {
        let id = id.to_owned();
        let rows = self
            .query(Port::Conversations, move |conn| {
                Box::pin(async move { load_query!(Pg, id, now).load(conn).await })
            })
            .await?;
        Ok(Loaded::from_joined(rows))
    }

    pub(crate) async fn append_turn(&self, append: Append) -> Result<Option<Loaded>> {
        self.query(Port::Conversations, move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    let Some(mut row) = conversations::table
                        .find(&append.id)
                        .filter(conversations::expires_at.gt(append.now))
                        .select(ConversationRow::as_select())
                        .for_update()
                        .first(conn)
                        .await
                        .optional()?
                    else {
                        return Ok(None);
                    };
                    let mut turns: Vec<(i64, String)> = conversation_turns::table
                        .filter(conversation_turns::conversation_id.eq(&append.id))
                        .order(conversation_turns::seq.asc())
                        .select((conversation_turns::seq, conversation_turns::turn))
                        .load(conn)
                        .await?;
                    let (new, drop_through) = append.apply(&mut row, &mut turns);
                    diesel::insert_into(conversation_turns::table)
                        .values(&new)
                        .execute(conn)
                        .await?;
                    if let Some(last) = drop_through {
                        diesel::delete(
                            conversation_turns::table
                                .filter(conversation_turns::conversation_id.eq(&append.id))
                                .filter(conversation_turns::seq.le(last)),
                        )
                        .execute(conn)
                        .await?;
                    }
                    diesel::update(conversations::table.find(&append.id))
                        .set((
                            conversations::dataset.eq(&row.dataset),
                            conversations::updated_at.eq(row.updated_at),
                            conversations::expires_at.eq(row.expires_at),
                        ))
                        .execute(conn)
                        .await?;
                    Ok(Some(Loaded {
                        row,
                        turns: turns.into_iter().map(|(_, t)| t).collect(),
                    }))
                })
                .await
            })
        })
        .await
    }

    /// Deletes the conversation (expired or not; its turns go by cascade); whether it was
    /// live.
    pub(crate) async fn delete_conversation(&self, id: &str, now: NaiveDateTime) -> Result<bool> {
        let id = id.to_owned();
        let expires_at = self
            .query(Port::Conversations, move |conn| {
                Box::pin(async move {
                    diesel::delete(conversations::table.find(id))
                        .returning(conversations::expires_at)
                        .get_result::<NaiveDateTime>(conn)
                        .await
                        .optional()
                })
            })
            .await?;
        Ok(expires_at.is_some_and(|t| t > now))
    }

    /// Claims the oldest claimable export job: the candidate row is locked with
    /// `FOR UPDATE SKIP LOCKED`, so replicas claiming at once take different jobs and never
    /// wait on each other's.
    pub(crate) async fn claim_job(&self, claim: Claim) -> Result<Option<JobRow>> {
        self.query(Port::ExportJobs, move |conn| {
            Box::pin(async move {
                conn.transaction(async move |conn| {
                    fail_exhausted!(claim.stale_before, claim.max_attempts, claim.now)
                        .execute(conn)
                        .await?;
                    let Some(id) = claimable!(claim.stale_before)
                        .for_update()
                        .skip_locked()
                        .first::<String>(conn)
                        .await
                        .optional()?
                    else {
                        return Ok(None);
                    };
                    diesel::update(export_jobs::table.find(&id))
                        .set((
                            &claim.changes,
                            export_jobs::attempts.eq(export_jobs::attempts + 1),
                        ))
                        .returning(JobRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()
                })
                .await
            })
        })
        .await
    }

    pub(crate) async fn purge_conversations(&self, now: NaiveDateTime, limit: i64) -> Result<u64> {
        let purged = self
            .query(Port::Conversations, move |conn| {
                Box::pin(async move { purge_conversations(conn, now, limit).await })
            })
            .await?;
        Ok(purged as u64)
    }
}

/// Rows a purge must delete, beyond [`VACUUM_SCALE_FACTOR`] of those left, before the table
/// is vacuumed: autovacuum's default `autovacuum_vacuum_threshold`.
const VACUUM_THRESHOLD: u64 = 50;

/// The share of a table's rows a purge must delete before it is vacuumed: autovacuum's
/// default `autovacuum_vacuum_scale_factor`.
const VACUUM_SCALE_FACTOR: f64 = 0.2;

/// The purge's vacuum sleeps this long per 200 cost units: a fifth of today's autovacuum
/// pace (2 ms), half of autovacuum's before PostgreSQL 12 (20 ms), because it runs while the
/// server answers requests on the same cores (measured: at 2 ms a round's vacuum raised p99,
/// see docs/benchmarks.md). That still reads ~20,000 pages a second from shared buffers, or
/// dirties ~1,000.
const VACUUM_COST_DELAY_MS: u32 = 10;

/// How long the purge's vacuum may run: paced, a vacuum of a large table (every index is
/// scanned whole) takes minutes, and one cancelled by a deadline reclaims nothing — so far
/// longer than a statement's timeout. It blocks no reads or writes meanwhile; it holds one
/// pooled connection.
const VACUUM_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The advisory lock serialising audit purges of one database across replicas ("bqaiprg" in
/// ASCII).
const AUDIT_PURGE_LOCK_KEY: i64 = 0x0062_7161_6970_7267;

impl PgStore {
    /// Deletes up to `limit` history entries created before `cutoff`, oldest first, skipping
    /// rows another purge holds.
    pub(crate) async fn purge_history(&self, cutoff: NaiveDateTime, limit: i64) -> Result<u64> {
        let deleted = self
            .query(Port::History, move |conn| {
                Box::pin(async move {
                    diesel::sql_query(
                        "DELETE FROM query_history WHERE id IN (SELECT id FROM query_history \
                         WHERE created_at < $1 ORDER BY created_at LIMIT $2 \
                         FOR UPDATE SKIP LOCKED)",
                    )
                    .bind::<diesel::sql_types::Timestamp, _>(cutoff)
                    .bind::<diesel::sql_types::BigInt, _>(limit)
                    .execute(conn)
                    .await
                })
            })
            .await?;
        self.purged
            .history
            .fetch_add(deleted as u64, Ordering::Relaxed);
        Ok(deleted as u64)
    }

    /// Deletes up to `limit` audit events recorded before `cutoff`, oldest first: one
    /// transaction that holds the purge permit only while it deletes (see
    /// [`crate::retention`]), one purge at a time per database.
    pub(crate) async fn purge_audit(&self, cutoff: NaiveDateTime, limit: i64) -> Result<u64> {
        let deleted = self
            .query(Port::Audit, move |conn| {
                Box::pin(async move {
                    conn.transaction(async move |conn| {
                        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                            .bind::<diesel::sql_types::BigInt, _>(AUDIT_PURGE_LOCK_KEY)
                            .execute(conn)
                            .await?;
                        diesel::insert_into(audit_purge_permit::table)
                            .values(audit_purge_permit::cutoff.eq(cutoff))
                            .execute(conn)
                            .await?;
                        let deleted = diesel::sql_query(
                            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
                             WHERE at < $1 ORDER BY at LIMIT $2)",
                        )
                        .bind::<diesel::sql_types::Timestamp, _>(cutoff)
                        .bind::<diesel::sql_types::BigInt, _>(limit)
                        .execute(conn)
                        .await?;
                        diesel::delete(audit_purge_permit::table)
                            .execute(conn)
                            .await?;
                        Ok(deleted)
                    })
                    .await
                })
            })
            .await?;
        self.purged
            .audit
            .fetch_add(deleted as u64, Ordering::Relaxed);
        Ok(deleted as u64)
    }

    /// `VACUUM` of the tables this store's purges deleted a sizeable share of since their last
    /// vacuum here — more than [`VACUUM_THRESHOLD`] rows plus [`VACUUM_SCALE_FACTOR`] of the
    /// rows left, autovacuum's own default rule — and of `audit_purge_permit` with
    /// `audit_log` (each audit batch leaves one dead row there, which the trigger scans for
    /// every event it deletes). Returns the tables vacuumed.
    ///
    /// Why the threshold: a vacuum scans every index of its table whole, whatever it deletes;
    /// with the default retention (90 days, a round every 5 minutes) a round deletes a few
    /// thousandths of a percent of the table, and vacuuming after each would rescan gigabytes
    /// of index to reclaim kilobytes. Below the threshold the deleted rows wait for a later
    /// round (or for autovacuum, where it runs).
    pub(crate) async fn vacuum_purged(&self) -> Result<Vec<&'static str>> {
        // Spelled out: diesel's `RunQueryDsl::load` would shadow the atomic's `load` here.
        let history = AtomicU64::load(&self.purged.history, Ordering::Relaxed);
        let audit = AtomicU64::load(&self.purged.audit, Ordering::Relaxed);
        if history == 0 && audit == 0 {
            return Ok(Vec::new());
        }
        let live = self.live_rows().await?;
        let due = |deleted: u64, table: &str| {
            let left = live.get(table).copied().unwrap_or(0);
            deleted > VACUUM_THRESHOLD + (left as f64 * VACUUM_SCALE_FACTOR) as u64
        };
        let (history_due, audit_due) = (due(history, "query_history"), due(audit, "audit_log"));
        let mut tables = Vec::new();
        if history_due {
            tables.push("query_history");
        }
        if audit_due {
            tables.extend(["audit_log", "audit_purge_permit"]);
        }
        if tables.is_empty() {
            return Ok(tables);
        }
        self.vacuum(&tables).await?;
        // What was deleted before the vacuum began is reclaimed; deletes since count on.
        if history_due {
            self.purged.history.fetch_sub(history, Ordering::Relaxed);
        }
        if audit_due {
            self.purged.audit.fetch_sub(audit, Ordering::Relaxed);
        }
        Ok(tables)
    }

    /// PostgreSQL's estimate of the live rows of the purged tables (`n_live_tup`; its
    /// statistics lag by up to seconds, which a threshold does not mind).
    async fn live_rows(&self) -> Result<std::collections::HashMap<String, u64>> {
        #[derive(QueryableByName)]
        struct Live {
            #[diesel(sql_type = diesel::sql_types::Text)]
            relname: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n_live_tup: i64,
        }
        let rows: Vec<Live> = self
            .query(Port::History, |conn| {
                Box::pin(async move {
                    diesel::sql_query(
                        "SELECT relname::TEXT AS relname, n_live_tup FROM pg_stat_user_tables \
                         WHERE schemaname = current_schema() \
                         AND relname IN ('query_history', 'audit_log')",
                    )
                    .load(conn)
                    .await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.relname, u64::try_from(r.n_live_tup).unwrap_or(0)))
            .collect())
    }

    /// `VACUUM` of `tables`, so their dead rows' space is reused now rather than whenever
    /// autovacuum gets there (or never, where it is off). A plain `VACUUM` takes no lock that
    /// blocks reads or writes, and the visibility map lets it skip the pages untouched since
    /// the last one. A manual `VACUUM` is unthrottled by default; this one is paced
    /// (`vacuum_cost_delay` [`VACUUM_COST_DELAY_MS`] per `vacuum_cost_limit` 200), so it does
    /// not starve the requests' own statements. It runs under [`VACUUM_TIMEOUT`] (its session's
    /// `statement_timeout` raised to match).
    async fn vacuum(&self, tables: &[&'static str]) -> Result<()> {
        let tables = tables.to_vec();
        let timeout = VACUUM_TIMEOUT;
        let millis = timeout.as_millis().min(i32::MAX as u128);
        self.run_within(Port::History, timeout, move |conn| {
            Box::pin(async move {
                // One statement per call: VACUUM cannot run inside a multi-statement string.
                conn.batch_execute(&format!(
                    "SET statement_timeout = {millis}; \
                     SET vacuum_cost_delay = {VACUUM_COST_DELAY_MS}; SET vacuum_cost_limit = 200"
                ))
                .await?;
                for table in tables {
                    conn.batch_execute(&format!("VACUUM {table}")).await?;
                }
                conn.batch_execute(
                    "RESET statement_timeout; RESET vacuum_cost_delay; RESET vacuum_cost_limit",
                )
                .await
            })
        })
        .await?
        .map_err(|e| query_error(e, Port::History))
    }

    /// Bytes of bqai's tables (with indexes and TOAST), 0 free bytes (autovacuum reuses them
    /// in place), and the rows of each of [`COUNTED_TABLES`].
    pub(crate) async fn stats(&self) -> Result<(u64, u64, Vec<u64>)> {
        let (size, rows) = self
            .query(Port::History, |conn| {
                Box::pin(async move {
                    // The names are this crate's constants, never input.
                    let names = COUNTED_TABLES.map(|t| format!("'{t}'")).join(", ");
                    let size: i64 =
                        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
                            "(SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT \
                             FROM pg_class c WHERE c.relkind = 'r' \
                             AND pg_table_is_visible(c.oid) AND c.relname IN ({names}))"
                        )))
                        .get_result(conn)
                        .await?;
                    let mut rows = Vec::with_capacity(COUNTED_TABLES.len());
                    for table in COUNTED_TABLES {
                        let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                            &format!("(SELECT COUNT(*) FROM {table})"),
                        ))
                        .get_result(conn)
                        .await?;
                        rows.push(u64::try_from(n).unwrap_or(0));
                    }
                    Ok((u64::try_from(size).unwrap_or(0), rows))
                })
            })
            .await?;
        Ok((size, 0, rows))
    }
}

/// Deletes up to `limit` conversations expired by `now` (oldest first, skipping rows another
/// transaction holds), their turns by cascade; how many.
async fn purge_conversations(
    conn: &mut Conn,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM conversations WHERE id IN (\
         SELECT id FROM conversations WHERE expires_at <= $1 \
         ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind::<diesel::sql_types::Timestamp, _>(now)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .execute(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_without_echoing_them() {
        let options = StoreOptions::default();
        let config = parse_config("postgres://u:s3cr3t@db.example:6543/bqai", &options).unwrap();
        assert_eq!(config.get_dbname(), Some("bqai"));
        assert_eq!(config.get_ports(), &[6543]);
        assert_eq!(config.get_application_name(), Some("bqai"));
        assert_eq!(config.get_connect_timeout(), Some(&options.connect_timeout));
        for bad in [
            "postgres://u:s3cr3t@db.example:notaport/bqai",
            "postgres://u:s3cr3t@db.example/bqai?sslmode=require",
            "postgres://u:s3cr3t@db.example/bqai?bogus=1",
        ] {
            match parse_config(bad, &options) {
                Err(Error::InvalidRequest(m)) => assert!(!m.contains("s3cr3t"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn statement_timeout_and_jit_off_join_the_url_options() {
        let base = parse_config(
            "postgres://h/db?options=-c%20search_path%3Dx",
            &StoreOptions::default(),
        )
        .unwrap();
        let config = with_statement_timeout(&base, Duration::from_millis(1500));
        assert_eq!(
            config.get_options(),
            Some("-c jit=off -c search_path=x -c statement_timeout=2500")
        );
        let plain = parse_config("postgres://h/db", &StoreOptions::default()).unwrap();
        let config = with_statement_timeout(&plain, Duration::MAX);
        assert_eq!(
            config.get_options(),
            Some("-c jit=off -c statement_timeout=2147483647")
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let store = PgStore::open("postgres://u:s3cr3t@h/db", StoreOptions::default());
        // Building the pool needs no runtime and no server.
        let text = format!("{:?}", store.unwrap());
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("db"), "{text}");
    }
}
