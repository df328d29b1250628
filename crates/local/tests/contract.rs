//! The `Warehouse` contract suite from bqai-testkit, run against the demo dataset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

use std::sync::Arc;

use bqai_local::{LocalConfig, LocalWarehouse};
use bqai_testkit::warehouse::{WarehouseFixture, warehouse_contract};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_warehouse_passes_the_contract() {
    let wh = LocalWarehouse::new(LocalConfig::default()).await.unwrap();
    let fixture = WarehouseFixture {
        dataset: "shop".into(),
        table: "order_items".into(),
        columns: vec!["order_id".into(), "quantity".into(), "unit_price".into()],
        sql_table: "shop.order_items".into(),
        aggregate_sql: |t| format!("SELECT COUNT(*) AS n, SUM(quantity) AS units FROM {t}"),
        reports_bytes: true,
        reports_referenced_tables: true,
    };
    warehouse_contract(Arc::new(wh), &fixture).await;
}
