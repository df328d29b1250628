//! The adapter against the real BigQuery emulator (`bqemulator`), seeded with the embedded
//! engine's `shop` demo dataset: the same `Warehouse` contract suite as the embedded engine,
//! plus what only a real engine shows (values as BigQuery sends them, nested schemas, result
//! paging, the default dataset).
//!
//! The emulator must be running (`scripts/bqemulator.sh`; `scripts/test.sh` starts it); its
//! REST endpoint comes from `BQAI_BQ_EMULATOR` (default `http://127.0.0.1:9050`). The
//! adapter talks to it through the test-only shim of `bqai-testkit`, which corrects the
//! emulator's list paging and `tables.list` of a missing dataset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bqai_bigquery::{BigQueryConfig, BigQueryWarehouse, RetryConfig};
use bqai_core::Error;
use bqai_core::model::{FieldMode, FieldType, PageRequest, TableRef, Value};
use bqai_core::ports::Warehouse;
use bqai_local::{LocalConfig, LocalWarehouse};
use bqai_testkit::bigquery_seed::seed_from_warehouse;
use bqai_testkit::bigquery_shim::BigQueryShim;
use bqai_testkit::warehouse::{WarehouseFixture, job, warehouse_contract};
use serde_json::json;
use tokio::sync::OnceCell;

const PROJECT: &str = "test-project";

fn emulator_endpoint() -> String {
    std::env::var("BQAI_BQ_EMULATOR").unwrap_or_else(|_| "http://127.0.0.1:9050".to_owned())
}

/// Fails (never skips) when the emulator is not there, saying how to start it.
async fn require_emulator() -> String {
    let endpoint = emulator_endpoint();
    let health = reqwest::Client::new()
        .get(format!("{endpoint}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match health {
        Ok(answer) if answer.status().is_success() => endpoint,
        other => panic!(
            "the BigQuery emulator does not answer at {endpoint}/healthz ({other:?}). \
             Start it with scripts/bqemulator.sh (scripts/test.sh does), or point \
             BQAI_BQ_EMULATOR at a running one."
        ),
    }
}

/// Seeds `shop` once per test binary (and is a no-op when the emulator already has it).
async fn seeded() -> String {
    static SEEDED: OnceCell<String> = OnceCell::const_new();
    SEEDED
        .get_or_init(|| async {
            let endpoint = require_emulator().await;
            let source = LocalWarehouse::new(LocalConfig::default()).await.unwrap();
            let started = std::time::Instant::now();
            let report = seed_from_warehouse(&source, "shop", &endpoint, PROJECT).await;
            eprintln!(
                "seeded shop in {:?}: loaded {:?}, kept {:?}",
                started.elapsed(),
                report.loaded,
                report.kept
            );
            endpoint
        })
        .await
        .clone()
}

async fn warehouse() -> (BigQueryWarehouse, BigQueryShim) {
    let endpoint = seeded().await;
    let shim = BigQueryShim::start(&endpoint).await;
    let mut config = BigQueryConfig::emulator(PROJECT, shim.endpoint());
    config.request_timeout_ms = 20_000;
    config.retry = RetryConfig {
        max_attempts: 2,
        initial_backoff_ms: 10,
        max_backoff_ms: 50,
    };
    (BigQueryWarehouse::connect(config).await.unwrap(), shim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bigquery_warehouse_passes_the_contract_on_the_emulator() {
    let (wh, _shim) = warehouse().await;
    let fixture = WarehouseFixture {
        dataset: "shop".into(),
        table: "order_items".into(),
        columns: vec!["order_id".into(), "quantity".into(), "unit_price".into()],
        sql_table: "shop.order_items".into(),
        aggregate_sql: |t| format!("SELECT COUNT(*) AS n, SUM(quantity) AS units FROM {t}"),
        // The emulator's dry runs report 0 bytes and no tables; the shim's stand-in estimate
        // is per table, not per column, so the contract's byte checks stay off (the
        // fake-server tests cover bytes and referenced tables).
        reports_bytes: false,
        reports_referenced_tables: false,
    };
    warehouse_contract(Arc::new(wh), &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_serves_the_same_rows_as_the_embedded_engine() {
    let (wh, _shim) = warehouse().await;
    let local = LocalWarehouse::new(LocalConfig::default()).await.unwrap();
    let sql = "SELECT COUNT(*) AS n, SUM(quantity) AS units, MIN(order_id) AS first_order, \
               MAX(order_id) AS last_order FROM shop.order_items";
    let there = wh.execute(&job(sql)).await.unwrap();
    let here = local.execute(&job(sql)).await.unwrap();
    assert_eq!(there.json_rows(), here.json_rows());

    for table in ["customers", "products", "orders", "order_items"] {
        let meta = wh.get_table(&TableRef::new("shop", table)).await.unwrap();
        let local_meta = local
            .get_table(&TableRef::new("shop", table))
            .await
            .unwrap();
        let names = |s: &[bqai_core::model::Field]| -> Vec<(String, FieldType)> {
            s.iter().map(|f| (f.name.clone(), f.field_type)).collect()
        };
        assert_eq!(names(&meta.schema), names(&local_meta.schema), "{table}");
        assert_eq!(meta.description, local_meta.description, "{table}");
        assert!(meta.num_rows.unwrap_or_default() > 0, "{table}: {meta:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dataset_resolves_unqualified_names() {
    let (wh, _shim) = warehouse().await;
    let mut unqualified = job("SELECT COUNT(*) AS n FROM products");
    unqualified.default_dataset = Some("shop".into());
    let result = wh.execute(&unqualified).await.unwrap();
    let n = result.rows[0][0].clone();
    assert!(matches!(n, Value::Int64(k) if k > 0), "{n:?}");
    let report = wh.dry_run(&unqualified).await.unwrap();
    assert_eq!(report.statement_type.as_deref(), Some("SELECT"));
    assert_eq!(report.schema[0].name, "n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_page_through_get_query_results() {
    let (wh, _shim) = warehouse().await;
    // Small pages: 25 rows in pages of 10, capped at 25.
    let mut config = wh.config().clone();
    config.page_size = 10;
    let small_pages = BigQueryWarehouse::connect(config).await.unwrap();
    let mut capped = job("SELECT order_id FROM shop.orders ORDER BY order_id");
    capped.max_rows = 25;
    let result = small_pages.execute(&capped).await.unwrap();
    let ids: Vec<serde_json::Value> = result
        .json_rows()
        .iter()
        .map(|r| r["order_id"].clone())
        .collect();
    assert_eq!(ids.len(), 25);
    assert_eq!(ids[0], json!(1));
    assert_eq!(ids[24], json!(25));
    assert!(result.truncated);

    let preview = small_pages
        .preview(&TableRef::new("shop", "customers"), 23)
        .await
        .unwrap();
    assert_eq!(preview.rows.len(), 23);
    assert!(preview.truncated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_arrive_typed_from_the_emulator() {
    let (wh, _shim) = warehouse().await;
    let sql = "SELECT 9007199254740993 AS big, CAST(1.5 AS FLOAT64) AS f, \
        NUMERIC '10.25' AS num, TRUE AS b, 'x' AS s, FROM_BASE64('AAE=') AS by, \
        DATE '2024-02-29' AS d, TIMESTAMP '2024-01-01 00:00:00.123456+00' AS ts, \
        DATETIME '2024-01-01 10:00:00' AS dt, TIME '10:00:00.5' AS t, \
        JSON '{\"a\": [1, 2]}' AS j, INTERVAL 1 DAY AS iv, CAST('NaN' AS FLOAT64) AS nan, \
        [1, 2, 3] AS arr, STRUCT(1 AS a, 'z' AS z) AS st, CAST(NULL AS STRING) AS nul";
    let result = wh.execute(&job(sql)).await.unwrap();
    let row = serde_json::Value::Object(result.json_rows()[0].clone());
    assert_eq!(row["big"], json!("9007199254740993"));
    assert_eq!(row["f"], json!(1.5));
    assert_eq!(
        row["num"].as_str().map(|s| s.trim_end_matches('0')),
        Some("10.25")
    );
    assert_eq!(row["b"], json!(true));
    assert_eq!(row["s"], json!("x"));
    assert_eq!(row["by"], json!("AAE="));
    assert_eq!(row["d"], json!("2024-02-29"));
    assert_eq!(row["ts"], json!("2024-01-01T00:00:00.123456Z"));
    assert_eq!(row["dt"], json!("2024-01-01T10:00:00"));
    assert_eq!(row["t"], json!("10:00:00.500"));
    assert_eq!(row["j"], json!({"a": [1, 2]}));
    assert_eq!(row["iv"], json!("0-0 1 0:0:0"));
    assert_eq!(row["nan"], json!("NaN"));
    assert_eq!(row["arr"], json!([1, 2, 3]));
    assert_eq!(row["st"], json!({"a": 1, "z": "z"}));
    assert_eq!(row["nul"], json!(null));
    let arr = result.columns.iter().find(|c| c.name == "arr").unwrap();
    assert_eq!(arr.mode, FieldMode::Repeated);
    let st = result.columns.iter().find(|c| c.name == "st").unwrap();
    assert_eq!(st.field_type, FieldType::Record);
    assert_eq!(st.fields.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_pages_and_errors_on_the_emulator() {
    let (wh, _shim) = warehouse().await;
    let first = wh
        .list_tables("shop", &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.next_page_token.clone().expect("a second page");
    let second = wh
        .list_tables(
            "shop",
            &PageRequest {
                page_size: 2,
                page_token: Some(token),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert_eq!(second.next_page_token, None);

    let err = wh.execute(&job("SELEC 1")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err:?}");
    assert_eq!(wh.health().await.status, bqai_core::model::HealthStatus::Ok);
}

/// An export reads a job's result page by page: with a page of 100 rows, a 1,000-row result
/// arrives as 10 batches, each a `getQueryResults` call with the previous page's token, and
/// the rows are the ones the in-memory path returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_result_arrives_page_by_page() {
    let endpoint = seeded().await;
    let shim = BigQueryShim::start(&endpoint).await;
    let mut config = BigQueryConfig::emulator(PROJECT, shim.endpoint());
    config.request_timeout_ms = 20_000;
    config.page_size = 100;
    let wh = BigQueryWarehouse::connect(config).await.unwrap();
    let sql = "SELECT order_id, quantity FROM shop.order_items ORDER BY order_id, quantity";
    let mut capped = job(sql);
    capped.max_rows = 1_000;
    let whole = wh.execute(&capped).await.unwrap();
    assert_eq!(whole.rows.len(), 1_000);

    let before = shim.calls().len();
    let stream = wh.execute_stream(&capped).await.unwrap();
    let batches: Vec<_> = futures::StreamExt::collect::<Vec<_>>(stream.batches).await;
    let batches: Vec<Vec<Vec<Value>>> = batches.into_iter().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 10, "one batch per page");
    assert!(batches.iter().all(|b| b.len() == 100));
    assert_eq!(batches.concat(), whole.rows);
    let calls = shim.calls()[before..].to_vec();
    let pages = calls.iter().filter(|c| c.contains("/queries/")).count();
    assert_eq!(pages, 10, "{calls:?}");
}

/// Dropping a stream before its end stops reading: no page is fetched after the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_reads_no_further_page() {
    let endpoint = seeded().await;
    let shim = BigQueryShim::start(&endpoint).await;
    let mut config = BigQueryConfig::emulator(PROJECT, shim.endpoint());
    config.request_timeout_ms = 20_000;
    config.page_size = 10;
    let wh = BigQueryWarehouse::connect(config).await.unwrap();
    let mut capped = job("SELECT order_id FROM shop.order_items ORDER BY order_id");
    capped.max_rows = 10_000;
    let mut stream = wh.execute_stream(&capped).await.unwrap();
    let first = futures::StreamExt::next(&mut stream.batches)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.len(), 10);
    drop(stream);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pages = |calls: &[String]| calls.iter().filter(|c| c.contains("/queries/")).count();
    let after_drop = pages(&shim.calls());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        pages(&shim.calls()),
        after_drop,
        "pages read after the drop"
    );
    // With a channel of one page, at most the pages in flight were read: far fewer than the
    // 1,000 a full read takes.
    assert!(after_drop <= 4, "{:?}", shim.calls());
}
