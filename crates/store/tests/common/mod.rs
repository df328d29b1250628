//! Shared helpers of the store's tests: PostgreSQL test databases come from bqai-testkit.
// Each test file compiles its own copy and uses part of it.
#![allow(dead_code, unused_imports)]

pub use bqai_testkit::postgres::{TestDb, admin_url, database_name, with_database};

use bqai_core::history::{HistoryEntry, QueryKind, QueryStatus};
use chrono::{DateTime, Utc};

/// A succeeded SQL entry of `principal` at `created_at` (truncated to the microseconds both
/// databases keep).
pub fn entry(id: &str, principal: &str, created_at: DateTime<Utc>) -> HistoryEntry {
    HistoryEntry {
        id: id.into(),
        kind: QueryKind::Sql,
        question: None,
        sql_submitted: "SELECT 1".into(),
        sql_executed: Some("SELECT 1 LIMIT 1000".into()),
        status: QueryStatus::Succeeded,
        error_code: None,
        error_message: None,
        principal: Some(principal.into()),
        dataset: None,
        dry_run: false,
        bytes_processed: 1,
        bytes_billed: 2,
        duration_ms: 3,
        row_count: 4,
        cache_hit: false,
        created_at: DateTime::from_timestamp_micros(created_at.timestamp_micros()).unwrap(),
        ask: None,
    }
}

/// How many migrations `migrations/<backend>` holds (each is one directory).
pub fn migration_count(backend: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count()
}
