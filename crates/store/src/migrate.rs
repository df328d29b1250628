//! Embedded migrations, one folder per backend with the same version names, applied with a
//! synchronous connection on a blocking thread.
//!
//! diesel-async's `AsyncMigrationHarness` calls `block_in_place`, which panics on a
//! current-thread runtime (actix-web workers, default `#[tokio::test]`); running diesel's sync
//! harness inside `spawn_blocking` works on any runtime.

use diesel::pg::Pg;
use diesel::sql_types::BigInt;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// The advisory lock serialising migrations of one PostgreSQL database ("bqaimigr" in ASCII).
/// Advisory locks are per database, so stores on other databases never wait for each other.
const POSTGRES_LOCK_KEY: i64 = 0x6271_6169_6d69_6772;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Applies pending SQLite migrations; returns how many ran.
///
/// Inside one `BEGIN IMMEDIATE` transaction: it takes the write lock before reading which
/// migrations are pending, so two processes starting together apply each migration once (the
/// second waits up to `busy_timeout`, then finds nothing to do) instead of both trying to create
/// the same tables.
pub(crate) fn run_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<usize> {
    conn.immediate_transaction::<_, BoxError, _>(|conn| {
        conn.run_pending_migrations(SQLITE)
            .map(|applied| applied.len())
    })
    // Boxed into a diesel error so it travels through the connection wrapper like any query
    // failure.
    .map_err(diesel::result::Error::QueryBuilderError)
}

/// Applies pending PostgreSQL migrations; returns how many ran.
///
/// Under a session-level advisory lock taken before the harness looks at anything: even its
/// first step (`CREATE TABLE IF NOT EXISTS __diesel_schema_migrations`) races between two
/// sessions in PostgreSQL, and a second process must see the first one's migrations as applied
/// rather than apply them again. The wait is bounded by the connection's `statement_timeout`.
/// Each migration still runs in its own transaction (the harness's doing), so a failed one
/// leaves the earlier ones applied.
pub(crate) fn run_postgres<C>(conn: &mut C) -> Result<usize, BoxError>
where
    C: Connection<Backend = Pg> + MigrationHarness<Pg>,
{
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(POSTGRES_LOCK_KEY)
        .execute(conn)?;
    let applied = conn
        .run_pending_migrations(POSTGRES)
        .map(|applied| applied.len());
    // Best effort: the caller closes this connection next, which releases the lock anyway, and
    // the migrations' outcome is what the caller needs to hear about.
    let _ = diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(POSTGRES_LOCK_KEY)
        .execute(conn);
    applied
}
