//! User data files: CSV, Parquet and NDJSON registered from directories, files and globs, and
//! clear errors for what cannot be read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::path::Path;
use std::sync::Arc;

use bqai_core::Error;
use bqai_core::model::{FieldMode, FieldType, PageRequest, TableRef, Value};
use bqai_core::ports::Warehouse;
use bqai_local::{LocalConfig, LocalWarehouse};
use common::{job, run, scalar};
use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int32Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

fn write_parquet(path: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("label", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1, 2, 3])),
        Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
        Arc::new(
            Decimal128Array::from(vec![Some(1050), Some(-3), None])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None, Some(0)])
                .with_timezone("UTC"),
        ),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn config(data: Vec<String>) -> LocalConfig {
    LocalConfig {
        demo: false,
        data,
        ..LocalConfig::default()
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_parquet_and_ndjson_become_tables() {
    let root = tempfile::tempdir().unwrap();
    let sales = root.path().join("Sales Data");
    std::fs::create_dir(&sales).unwrap();
    std::fs::write(
        sales.join("Orders.csv"),
        "id,amount,region,day\n1,10.5,EU,2024-01-01\n2,20.25,US,2024-01-02\n3,5,EU,2024-02-01\n",
    )
    .unwrap();
    std::fs::write(
        sales.join("events.ndjson"),
        "{\"id\":1,\"tags\":[\"a\",\"b\"],\"meta\":{\"k\":\"x\",\"n\":1}}\n\
         {\"id\":2,\"tags\":[],\"meta\":{\"k\":\"y\",\"n\":2}}\n",
    )
    .unwrap();
    write_parquet(&sales.join("metrics.parquet"));
    std::fs::write(sales.join("README.txt"), "not data").unwrap();
    let more = root.path().join("more-data");
    std::fs::create_dir(&more).unwrap();
    std::fs::write(
        more.join("clicks.jsonl"),
        "{\"user\":\"u1\",\"n\":3}\n{\"user\":\"u2\",\"n\":4}\n",
    )
    .unwrap();

    let wh = LocalWarehouse::new(config(vec![
        path_str(&sales),
        format!("{}/*.jsonl", path_str(&more)),
    ]))
    .await
    .unwrap();

    let datasets = wh.list_datasets(&PageRequest::first(10)).await.unwrap();
    let ids: Vec<&str> = datasets.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["more_data", "sales_data"],
        "no demo, folder names sanitized"
    );
    let tables = wh
        .list_tables("sales_data", &PageRequest::first(10))
        .await
        .unwrap();
    let names: Vec<&str> = tables
        .items
        .iter()
        .map(|t| t.table_ref.table.as_str())
        .collect();
    assert_eq!(
        names,
        ["events", "metrics", "orders"],
        "README.txt is skipped"
    );

    // CSV: inferred types, any-case lookups.
    let orders = wh
        .get_table(&TableRef::new("SALES_DATA", "Orders"))
        .await
        .unwrap();
    let types: Vec<(&str, FieldType)> = orders
        .schema
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    assert_eq!(
        types,
        [
            ("id", FieldType::Int64),
            ("amount", FieldType::Float64),
            ("region", FieldType::String),
            ("day", FieldType::Date),
        ]
    );
    assert_eq!(orders.num_rows, Some(3));
    assert!(orders.description.unwrap().contains("Orders.csv"));
    assert_eq!(
        scalar(
            &wh,
            "SELECT SUM(amount) FROM sales_data.orders WHERE region = 'EU'"
        )
        .await,
        Value::Float64(15.5)
    );

    // NDJSON: nested struct → RECORD, list → REPEATED.
    let events = wh
        .get_table(&TableRef::new("sales_data", "events"))
        .await
        .unwrap();
    let tags = events.schema.iter().find(|f| f.name == "tags").unwrap();
    assert_eq!(
        (tags.field_type, tags.mode),
        (FieldType::String, FieldMode::Repeated)
    );
    let meta = events.schema.iter().find(|f| f.name == "meta").unwrap();
    assert_eq!(meta.field_type, FieldType::Record);
    let sub: Vec<&str> = meta.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(sub, ["k", "n"]);
    let rows = run(&wh, "SELECT tags, meta FROM sales_data.events ORDER BY id").await;
    assert_eq!(
        rows.rows[0],
        vec![
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            Value::Struct(vec![
                ("k".into(), Value::String("x".into())),
                ("n".into(), Value::Int64(1)),
            ]),
        ]
    );

    // Parquet: decimals exact, timestamps with a zone as UTC instants, NULLs.
    let metrics = run(
        &wh,
        "SELECT id, label, price, at FROM sales_data.metrics ORDER BY id",
    )
    .await;
    assert_eq!(
        metrics.rows[0],
        vec![
            Value::Int64(1),
            Value::String("a".into()),
            Value::Numeric("10.50".into()),
            Value::Timestamp(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
        ]
    );
    assert_eq!(metrics.rows[1][1], Value::Null);
    assert_eq!(metrics.rows[1][2], Value::Numeric("-0.03".into()));
    let preview = wh
        .preview(&TableRef::new("sales_data", "metrics"), 10)
        .await
        .unwrap();
    assert_eq!(preview.rows, metrics.rows, "preview reads the same rows");
    assert!(!preview.truncated);

    // Glob entry.
    assert_eq!(
        scalar(&wh, "SELECT SUM(n) FROM more_data.clicks").await,
        Value::Int64(7)
    );

    // Default dataset for unqualified names.
    let mut unqualified = job("SELECT COUNT(*) FROM orders");
    unqualified.default_dataset = Some("Sales_Data".into());
    let result = wh.execute(&unqualified).await.unwrap();
    assert_eq!(result.rows[0][0], Value::Int64(3));
}

async fn load_error(data: Vec<String>) -> String {
    match LocalWarehouse::new(config(data)).await {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_data_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let missing = path_str(&root.path().join("nope.csv"));
    assert!(load_error(vec![missing.clone()]).await.contains(&missing));

    let corrupt = root.path().join("broken.parquet");
    std::fs::write(&corrupt, b"definitely not parquet").unwrap();
    let message = load_error(vec![path_str(&corrupt)]).await;
    assert!(
        message.contains("broken.parquet") && message.contains("Parquet"),
        "{message}"
    );

    let bad_json = root.path().join("bad.ndjson");
    std::fs::write(&bad_json, "{\"a\": 1}\n{not json\n").unwrap();
    let message = load_error(vec![path_str(&bad_json)]).await;
    assert!(message.contains("bad.ndjson"), "{message}");

    let text = root.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let message = load_error(vec![path_str(&text)]).await;
    assert!(
        message.contains("notes.txt") && message.contains("unsupported"),
        "{message}"
    );

    let message = load_error(vec![format!(
        "{}/*.parquet",
        path_str(&root.path().join("none"))
    )])
    .await;
    assert!(message.contains("no CSV"), "{message}");

    let dup = root.path().join("dup");
    std::fs::create_dir(&dup).unwrap();
    std::fs::write(dup.join("t.csv"), "a\n1\n").unwrap();
    std::fs::write(dup.join("t.jsonl"), "{\"a\":1}\n").unwrap();
    let message = load_error(vec![path_str(&dup)]).await;
    assert!(message.contains("dup.t"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_files_sit_next_to_the_demo() {
    let root = tempfile::tempdir().unwrap();
    let extra = root.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("targets.csv"),
        "country,target\nGermany,100\nJapan,50\n",
    )
    .unwrap();
    let wh = LocalWarehouse::new(LocalConfig {
        data: vec![path_str(&extra)],
        ..LocalConfig::default()
    })
    .await
    .unwrap();
    let sql = "SELECT t.country, COUNT(*) AS customers FROM extra.targets t \
               JOIN shop.customers c ON c.country = t.country GROUP BY t.country ORDER BY t.country";
    let result = run(&wh, sql).await;
    assert_eq!(result.rows.len(), 2);
    let report = wh.dry_run(&job(sql)).await.unwrap();
    assert_eq!(
        report.referenced_tables,
        [
            TableRef::new("extra", "targets"),
            TableRef::new("shop", "customers")
        ]
    );
}
