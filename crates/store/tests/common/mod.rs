//! Shared helpers of the store's tests: PostgreSQL test databases come from bqai-testkit.
// Each test file compiles its own copy and uses part of it.
#![allow(dead_code, unused_imports)]

pub use bqai_testkit::postgres::{TestDb, admin_url, database_name, with_database};

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
