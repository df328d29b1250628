//! Embedded migrations, applied with a plain synchronous connection on a blocking thread.
//!
//! diesel-async's `AsyncMigrationHarness` calls `block_in_place`, which panics on a
//! current-thread runtime (actix-web workers, default `#[tokio::test]`); running diesel's sync
//! harness inside `spawn_blocking` works on any runtime.

use diesel::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Applies pending SQLite migrations; returns how many ran.
///
/// Inside one `BEGIN IMMEDIATE` transaction: it takes the write lock before reading which
/// migrations are pending, so two processes starting together apply each migration once (the
/// second waits up to `busy_timeout`, then finds nothing to do) instead of both trying to create
/// the same tables.
pub(crate) fn run_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<usize> {
    conn.immediate_transaction::<_, Box<dyn std::error::Error + Send + Sync>, _>(|conn| {
        conn.run_pending_migrations(SQLITE)
            .map(|applied| applied.len())
    })
    // Boxed into a diesel error so it travels through the connection wrapper like any query
    // failure.
    .map_err(diesel::result::Error::QueryBuilderError)
}
