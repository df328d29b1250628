//! `POST /api/v1/exports`: whole results as files, streamed inline; the checks of the query
//! pipeline with the export row cap; history and metrics.

use std::io::Cursor;

use arrow_array::cast::AsArray as _;
use arrow_array::types::Int64Type;
use calamine::{Data, Reader as _, Xlsx, open_workbook_from_rs};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, spawn_auth_app};

const PRODUCTS: &str =
    "SELECT product_id, name, category, unit_price FROM shop.products ORDER BY product_id";

#[tokio::test(flavor = "multi_thread")]
async fn a_csv_export_is_the_whole_result_as_a_file() {
    let app = spawn_app().await;
    let file = app
        .export(
            "",
            None,
            &json!({"sql": PRODUCTS, "format": "csv", "filename": "products"}),
        )
        .await;
    assert_eq!(file.status, 200, "{}", file.text());
    assert_eq!(file.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"products.csv\"")
    );
    let query_id = file.header("x-query-id").unwrap().to_owned();
    let mut reader = csv::Reader::from_reader(file.bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["product_id", "name", "category", "unit_price"]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 300);

    // The same rows the query endpoint answers, as text.
    let q = app.query(&format!("{PRODUCTS} LIMIT 300")).await;
    let rows = q.body["rows"].as_array().unwrap();
    for (record, row) in records.iter().zip(rows) {
        assert_eq!(&record[0], row["product_id"].to_string());
        assert_eq!(&record[1], row["name"].as_str().unwrap());
        assert_eq!(&record[3], row["unit_price"].to_string());
    }

    // History has the export, with its rows, once the file is out.
    let entry = app.get(&format!("/api/v1/history/{query_id}")).await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.body["kind"], "export");
    assert_eq!(entry.body["status"], "succeeded");
    assert_eq!(entry.body["row_count"], 300);
    assert!(entry.body["bytes_processed"].as_u64().unwrap() > 0);

    let metrics = app.text("/metrics").await;
    assert_eq!(
        bqai_testkit::metric_value(
            &metrics,
            "bqai_exports_total{format=\"csv\",mode=\"inline\",outcome=\"ok\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        bqai_testkit::metric_value(&metrics, "bqai_export_rows_total{format=\"csv\"}"),
        300.0
    );
}

/// The response row cap (`query.max_rows_limit`, 10,000) does not bound an export:
/// `export.max_rows` does.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_is_capped_by_export_max_rows_not_the_response_cap() {
    let app = spawn_app_with(|s| s.export.max_rows = 60_000).await;
    let file = app
        .export(
            "",
            None,
            &json!({"sql": "SELECT order_id, status FROM shop.orders", "format": "ndjson"}),
        )
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = file
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        60_000,
        "100,000 orders, capped at export.max_rows"
    );
    assert!(lines[0]["order_id"].is_i64());

    let over = app
        .export(
            "",
            None,
            &json!({"sql": "SELECT order_id FROM shop.orders", "format": "csv", "max_rows": 60_001}),
        )
        .await;
    assert_eq!(over.status, 400);
    assert_eq!(over.json()["error"]["code"], "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_xlsx_and_parquet_exports_read_back_with_their_types() {
    let app = spawn_app().await;
    let sql = "SELECT product_id, name, unit_price, product_id > 150 AS late FROM shop.products ORDER BY product_id";

    let json_file = app
        .export("", None, &json!({"sql": sql, "format": "json"}))
        .await;
    assert_eq!(json_file.status, 200);
    let rows = json_file.json();
    assert_eq!(rows.as_array().unwrap().len(), 300);
    assert_eq!(rows[0]["product_id"], 1);
    assert_eq!(rows[299]["late"], true);

    let xlsx = app
        .export("", None, &json!({"sql": sql, "format": "xlsx"}))
        .await;
    assert_eq!(xlsx.status, 200);
    assert_eq!(
        xlsx.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(xlsx.bytes.clone())).unwrap();
    let range = book.worksheet_range("Sheet1").unwrap();
    assert_eq!(range.height(), 301);
    assert_eq!(range.get((1, 0)), Some(&Data::Float(1.0)));
    assert!(matches!(range.get((1, 1)), Some(Data::String(_))));
    assert_eq!(range.get((300, 3)), Some(&Data::Bool(true)));

    let parquet = app
        .export("", None, &json!({"sql": sql, "format": "parquet"}))
        .await;
    assert_eq!(parquet.status, 200);
    assert_eq!(
        parquet.header("content-type"),
        Some("application/vnd.apache.parquet")
    );
    // Compressed already: never gzipped again.
    assert_eq!(parquet.header("content-encoding"), Some("identity"));
    let batches: Vec<_> =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet.bytes.clone()))
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 300);
    let ids = batches[0].column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.value(0), 1);
    let schema = batches[0].schema();
    let types: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect();
    assert_eq!(types, ["Int64", "Utf8", "Float64", "Boolean"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_from_history_exports_again_and_is_recorded_as_its_rerun() {
    let app = spawn_app().await;
    let q = app
        .query(
            "SELECT category, COUNT(*) AS n FROM shop.products GROUP BY category ORDER BY category",
        )
        .await;
    assert_eq!(q.status, 200);
    let id = q.body["query_id"].as_str().unwrap();
    for field in ["query_id", "history_id"] {
        let mut body = json!({"format": "csv", "delimiter": ";"});
        body[field] = json!(id);
        let file = app.export("", None, &body).await;
        assert_eq!(file.status, 200, "{}", file.text());
        let text = file.text();
        assert!(text.starts_with("category;n\r\n"), "{text}");
        assert_eq!(
            text.lines().count(),
            1 + q.body["row_count"].as_u64().unwrap() as usize
        );
        let export_id = file.header("x-query-id").unwrap();
        let entry = app.get(&format!("/api/v1/history/{export_id}")).await;
        assert_eq!(entry.body["rerun_of"], id, "{}", entry.body);
        assert_eq!(entry.body["kind"], "export");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_exports_are_refused_with_the_envelope_and_recorded() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"sql": "DELETE FROM shop.orders", "format": "csv"}),
            400,
            "SQL_REJECTED",
        ),
        (
            json!({"sql": PRODUCTS, "format": "xls"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"sql": PRODUCTS, "query_id": "0190", "format": "csv"}),
            400,
            "INVALID_REQUEST",
        ),
        (json!({"format": "csv"}), 400, "INVALID_REQUEST"),
        (
            json!({"sql": PRODUCTS, "format": "parquet", "delimiter": ";"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"sql": PRODUCTS, "format": "csv", "delimiter": "\""}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"query_id": "00000000-0000-0000-0000-000000000000", "format": "csv"}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"sql": "SELECT * FROM shop.nope", "format": "csv"}),
            404,
            "NOT_FOUND",
        ),
        (
            json!({"sql": PRODUCTS, "format": "csv", "bogus": 1}),
            400,
            "INVALID_REQUEST",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.export("", None, &body).await;
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
    }
    let r = app
        .export(
            "?mode=later",
            None,
            &json!({"sql": PRODUCTS, "format": "csv"}),
        )
        .await;
    assert_eq!(r.status, 400);

    // A refused export is in history as one.
    let history = app.get("/api/v1/history?status=rejected").await;
    let kinds: Vec<&str> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"export"), "{}", history.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_take_the_export_role_and_the_callers_datasets() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let body = json!({"sql": PRODUCTS, "format": "csv"});
    assert_eq!(app.export("", Some(&keys.analyst), &body).await.status, 200);
    let viewer = app.export("", Some(&keys.viewer), &body).await;
    assert_eq!(viewer.status, 403);
    assert_eq!(viewer.json()["error"]["code"], "FORBIDDEN");
    let none = app.export("", None, &body).await;
    assert_eq!(none.status, 401);
    let secret = app
        .export(
            "",
            Some(&keys.analyst),
            &json!({"sql": "SELECT * FROM secret.salaries", "format": "csv"}),
        )
        .await;
    assert_eq!(secret.status, 403, "{}", secret.text());
}

/// The byte cap and the timeout of the query pipeline hold for exports.
#[tokio::test(flavor = "multi_thread")]
async fn the_byte_cap_applies_before_anything_runs() {
    let app = spawn_app_with(|s| s.query.max_bytes_billed = 1024).await;
    let r = app
        .export(
            "",
            None,
            &json!({"sql": "SELECT * FROM shop.orders", "format": "csv"}),
        )
        .await;
    assert_eq!(r.json()["error"]["code"], "COST_LIMIT_EXCEEDED");
}

/// `mode=auto` streams what the dry run calls small (a LIMIT within export.inline_max_rows,
/// or at most export.inline_max_bytes processed) and queues anything else as a job;
/// `mode=inline` streams whatever the size, `mode=job` always queues.
#[tokio::test(flavor = "multi_thread")]
async fn auto_mode_streams_only_what_the_dry_run_calls_small() {
    let app = spawn_app_with(|s| {
        s.export.inline_max_bytes = 1024;
        s.export.inline_max_rows = 50;
    })
    .await;
    let big = json!({"sql": "SELECT * FROM shop.orders", "format": "csv"});
    let queued = app.export("", None, &big).await;
    assert_eq!(queued.status, 202, "{}", queued.text());
    assert!(queued.json()["export_id"].is_string());
    let forced = app.export("?mode=inline", None, &big).await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.text().lines().count(), 100_001);
    let limited = app
        .export(
            "",
            None,
            &json!({"sql": "SELECT * FROM shop.orders LIMIT 50", "format": "csv"}),
        )
        .await;
    assert_eq!(limited.status, 200);
    let small_job = app
        .export(
            "?mode=job",
            None,
            &json!({"sql": "SELECT * FROM shop.orders LIMIT 50", "format": "csv"}),
        )
        .await;
    assert_eq!(small_job.status, 202);
    let bad = app.export("?mode=later", None, &big).await;
    assert_eq!(bad.json()["error"]["code"], "INVALID_REQUEST");
}

/// The demo warehouse whose streams fail after their first batch (a warehouse that dies
/// mid-result).
struct FailingMidStream(std::sync::Arc<dyn bqai_core::ports::Warehouse>);

#[async_trait::async_trait]
impl bqai_core::ports::Warehouse for FailingMidStream {
    fn dialect(&self) -> bqai_core::model::SqlDialect {
        self.0.dialect()
    }
    fn home_project(&self) -> Option<String> {
        self.0.home_project()
    }
    async fn list_datasets(
        &self,
        page: &bqai_core::model::PageRequest,
    ) -> bqai_core::Result<bqai_core::model::Page<bqai_core::model::Dataset>> {
        self.0.list_datasets(page).await
    }
    async fn get_dataset(&self, id: &str) -> bqai_core::Result<bqai_core::model::Dataset> {
        self.0.get_dataset(id).await
    }
    async fn list_tables(
        &self,
        id: &str,
        page: &bqai_core::model::PageRequest,
    ) -> bqai_core::Result<bqai_core::model::Page<bqai_core::model::TableSummary>> {
        self.0.list_tables(id, page).await
    }
    async fn get_table(
        &self,
        table: &bqai_core::model::TableRef,
    ) -> bqai_core::Result<bqai_core::model::Table> {
        self.0.get_table(table).await
    }
    async fn preview(
        &self,
        table: &bqai_core::model::TableRef,
        limit: u64,
    ) -> bqai_core::Result<bqai_core::model::QueryResult> {
        self.0.preview(table, limit).await
    }
    async fn dry_run(
        &self,
        job: &bqai_core::model::QueryJob,
    ) -> bqai_core::Result<bqai_core::model::DryRunReport> {
        self.0.dry_run(job).await
    }
    async fn execute(
        &self,
        job: &bqai_core::model::QueryJob,
    ) -> bqai_core::Result<bqai_core::model::QueryResult> {
        self.0.execute(job).await
    }
    async fn execute_stream(
        &self,
        job: &bqai_core::model::QueryJob,
    ) -> bqai_core::Result<bqai_core::model::RowStream> {
        use futures::StreamExt as _;
        let mut stream = self.0.execute_stream(job).await?;
        let first = stream.batches.next().await;
        let failure = bqai_core::Error::unavailable(
            "the warehouse",
            std::io::Error::other("connection reset by 10.9.8.7"),
        );
        stream.batches = Box::pin(futures::stream::iter(
            first.into_iter().chain(std::iter::once(Err(failure))),
        ));
        Ok(stream)
    }
    async fn health(&self) -> bqai_core::model::ComponentHealth {
        self.0.health().await
    }
}

/// A warehouse failing after the first rows went out: the transfer breaks (no final chunk),
/// so no client takes the cut file for a whole one, and history records the failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_mid_stream_breaks_the_transfer_and_is_recorded() {
    let warehouse = crate::helpers::demo_warehouse().await;
    let app =
        crate::helpers::spawn_app_over(std::sync::Arc::new(FailingMidStream(warehouse))).await;
    let resp = app
        .client
        .post(format!("{}/api/v1/exports?mode=inline", app.address))
        .json(&json!({"sql": "SELECT order_id FROM shop.orders", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the first rows went out");
    let id = resp.headers()["x-query-id"].to_str().unwrap().to_owned();
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "the body must not end cleanly: {:?}",
        body.map(|b| b.len())
    );
    // History is written when the export ends, a moment after the transfer broke.
    let mut entry = app.get(&format!("/api/v1/history/{id}")).await;
    for _ in 0..50 {
        if entry.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        entry = app.get(&format!("/api/v1/history/{id}")).await;
    }
    assert_eq!(entry.body["status"], "failed", "{}", entry.body);
    assert_eq!(entry.body["error_code"], "UNAVAILABLE");
    assert!(
        !entry.body.to_string().contains("10.9.8.7"),
        "{}",
        entry.body
    );
}
