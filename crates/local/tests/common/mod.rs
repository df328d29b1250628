//! Helpers shared by the bqai-local integration tests.
#![allow(dead_code)]

use bqai_core::model::{QueryResult, Value};
use bqai_core::ports::Warehouse;
use bqai_local::{LocalConfig, LocalWarehouse};
pub use bqai_testkit::warehouse::job;

/// A warehouse with only the demo dataset.
pub async fn demo() -> LocalWarehouse {
    LocalWarehouse::new(LocalConfig::default()).await.unwrap()
}

/// Runs `sql` (no guard) and returns the result, panicking on error.
pub async fn run(wh: &LocalWarehouse, sql: &str) -> QueryResult {
    wh.execute(&job(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
}

/// The single value of a one-row, one-column query.
pub async fn scalar(wh: &LocalWarehouse, sql: &str) -> Value {
    let result = run(wh, sql).await;
    assert_eq!(result.rows.len(), 1, "{sql}: {:?}", result.rows);
    assert_eq!(result.rows[0].len(), 1, "{sql}: {:?}", result.rows);
    result.rows[0][0].clone()
}
