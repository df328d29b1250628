//! The SQLite backend: a deadpool pool of `SyncConnectionWrapper<SqliteConnection>` with
//! per-connection pragmas, and the history queries.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{Page, PageRequest};
use bqai_core::{Error, Result};
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
use crate::error::{pool_error, query_error, record_error};
use crate::history::{Cursor, HistoryRow, fetch_limit, into_page, list_query};
use crate::schema::query_history;

type Conn = SyncConnectionWrapper<SqliteConnection>;
type PooledConn = Object<Conn>;

/// Applied to every new connection. `busy_timeout` comes first so that switching to WAL waits
/// for a concurrent opener instead of failing.
const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
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
                Error::unavailable(format!("the history store directory {}", dir.display()), e)
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
            .map_err(|e| Error::internal("building the history store pool", e))?;
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
    async fn run<R, F, Fut>(&self, timeout: Duration, op: F) -> Result<QueryResult<R>>
    where
        F: FnOnce(PooledConn) -> Fut + Send + 'static,
        Fut: Future<Output = QueryResult<R>> + Send + 'static,
        R: Send + 'static,
    {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let conn = pool.get().await.map_err(pool_error)?;
            Ok(op(conn).await)
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(join)) => Err(Error::internal("history store task failed", join)),
            Err(_elapsed) => Err(Error::Timeout(timeout)),
        }
    }

    /// `run` with the query timeout, any statement error translated.
    async fn query<R, F, Fut>(&self, op: F) -> Result<R>
    where
        F: FnOnce(PooledConn) -> Fut + Send + 'static,
        Fut: Future<Output = QueryResult<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.run(self.options.query_timeout, op)
            .await?
            .map_err(query_error)
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.query(|mut conn| async move {
            diesel::select(1_i32.into_sql::<diesel::sql_types::Integer>())
                .get_result::<i32>(&mut *conn)
                .await
                .map(drop)
        })
        .await
    }

    pub(crate) async fn migrate(&self) -> Result<usize> {
        self.run(self.options.migration_timeout, |mut conn| async move {
            // The wrapper's `spawn_blocking` hands the plain sync connection to a blocking
            // thread: the same database as the pool (which matters for `:memory:`) without
            // diesel-async's `block_in_place` harness.
            conn.spawn_blocking(crate::migrate::run_sqlite).await
        })
        .await?
        .map_err(|e| Error::internal("running history store migrations", e))
    }

    pub(crate) async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        let row = HistoryRow::from_entry(entry);
        let outcome = self
            .run(self.options.query_timeout, |mut conn| async move {
                diesel::insert_into(query_history::table)
                    .values(&row)
                    .execute(&mut *conn)
                    .await
            })
            .await?;
        outcome.map(drop).map_err(|e| record_error(e, &entry.id))
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        let id = id.to_owned();
        let row = self
            .query(|mut conn| async move {
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
            .query(move |mut conn| async move {
                list_query!(Sqlite, filter, cursor, limit)
                    .load(&mut *conn)
                    .await
            })
            .await?;
        into_page(rows, page.page_size)
    }
}
