//! Catalog calls, bytes estimates, row caps and previews on the demo dataset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use bqai_core::Error;
use bqai_core::model::{FieldType, PageRequest, SqlDialect, TableRef, Value};
use bqai_core::ports::Warehouse;
use common::{demo, job, scalar};

async fn bytes(wh: &bqai_local::LocalWarehouse, sql: &str) -> u64 {
    wh.dry_run(&job(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .bytes_processed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_catalog() {
    let wh = demo().await;
    assert_eq!(wh.dialect(), SqlDialect::DataFusion);
    assert_eq!(wh.home_project().as_deref(), Some("datafusion"));
    assert_eq!(wh.health().await.kind, "datafusion");

    let datasets = wh.list_datasets(&PageRequest::default()).await.unwrap();
    assert_eq!(datasets.items.len(), 1);
    assert_eq!(datasets.items[0].id, "shop");
    assert_eq!(datasets.items[0].project.as_deref(), Some("datafusion"));
    assert_eq!(wh.get_dataset("SHOP").await.unwrap().id, "shop");

    // Pages of 3 over 4 tables: two pages, the token is opaque and resumable.
    let first = wh
        .list_tables("shop", &PageRequest::first(3))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.next_page_token.clone().unwrap();
    assert!(!token.contains("products"), "tokens are encoded");
    let second = wh
        .list_tables(
            "shop",
            &PageRequest {
                page_size: 3,
                page_token: Some(token),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].table_ref.table, "products");
    assert_eq!(second.next_page_token, None);
    let bad = PageRequest {
        page_size: 3,
        page_token: Some("***".into()),
    };
    assert!(matches!(
        wh.list_tables("shop", &bad).await,
        Err(Error::InvalidRequest(_))
    ));

    // Any case resolves; another project does not; messages name the thing.
    let t = wh
        .get_table(&TableRef::new("Shop", "ORDERS"))
        .await
        .unwrap();
    assert_eq!(t.table_ref, TableRef::new("shop", "orders"));
    let in_home = TableRef {
        project: Some("DataFusion".into()),
        ..TableRef::new("shop", "orders")
    };
    assert!(wh.get_table(&in_home).await.is_ok());
    let elsewhere = TableRef {
        project: Some("other".into()),
        ..TableRef::new("shop", "orders")
    };
    assert!(matches!(
        wh.get_table(&elsewhere).await,
        Err(Error::NotFound(_))
    ));
    match wh.get_table(&TableRef::new("shop", "nope")).await {
        Err(Error::NotFound(m)) => assert_eq!(m, "table shop.nope"),
        other => panic!("{other:?}"),
    }
    match wh.get_dataset("nope").await {
        Err(Error::NotFound(m)) => assert_eq!(m, "dataset nope"),
        other => panic!("{other:?}"),
    }
    // The table's logical size is the sum of its columns' (what SELECT * reads).
    assert_eq!(
        t.num_bytes,
        Some(bytes(&wh, "SELECT * FROM shop.orders").await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimates_count_the_columns_read() {
    let wh = demo().await;
    let country = bytes(&wh, "SELECT country FROM shop.customers").await;
    let all = bytes(&wh, "SELECT * FROM shop.customers").await;
    assert!(0 < country && country < all, "{country} vs {all}");
    // BigQuery sizes: STRING = 2 + UTF-8 bytes per value, INT64 and DATE = 8.
    let expected = scalar(
        &wh,
        "SELECT SUM(2 + OCTET_LENGTH(country)) FROM shop.customers",
    )
    .await;
    assert_eq!(Value::Int64(i64::try_from(country).unwrap()), expected);
    assert_eq!(
        bytes(&wh, "SELECT customer_id, signup_date FROM shop.customers").await,
        5_000 * 16
    );

    // LIMIT and WHERE do not reduce it, filter columns count, COUNT(*) alone reads nothing.
    assert_eq!(
        bytes(&wh, "SELECT country FROM shop.customers LIMIT 1").await,
        country
    );
    assert_eq!(
        bytes(
            &wh,
            "SELECT country FROM shop.customers WHERE customer_id = 7"
        )
        .await,
        country + 5_000 * 8
    );
    assert_eq!(bytes(&wh, "SELECT COUNT(*) FROM shop.orders").await, 0);

    // A table read twice counts once per column; subqueries count.
    assert_eq!(
        bytes(
            &wh,
            "SELECT a.order_id FROM shop.orders a JOIN shop.orders b ON a.order_id = b.order_id"
        )
        .await,
        100_000 * 8
    );
    let sql = "SELECT name FROM shop.products WHERE product_id IN \
               (SELECT product_id FROM shop.order_items WHERE quantity > 10)";
    let report = wh.dry_run(&job(sql)).await.unwrap();
    assert_eq!(
        report.referenced_tables,
        [
            TableRef::new("shop", "order_items"),
            TableRef::new("shop", "products")
        ]
    );
    assert_eq!(report.statement_type.as_deref(), Some("SELECT"));
    let names: Vec<&str> = report.schema.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["name"]);

    // Execution reports the same estimate and bills nothing.
    let result = wh.execute(&job(sql)).await.unwrap();
    assert_eq!(result.stats.bytes_processed, report.bytes_processed);
    assert_eq!(result.stats.bytes_billed, 0);
    assert!(!result.stats.cache_hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_caps_and_default_dataset() {
    let wh = demo().await;
    let mut capped = job("SELECT order_id FROM shop.orders ORDER BY order_id");
    capped.max_rows = 10_000;
    let result = wh.execute(&capped).await.unwrap();
    assert_eq!(result.rows.len(), 10_000);
    assert!(result.truncated);
    assert_eq!(result.rows[9_999], vec![Value::Int64(10_000)]);

    capped.max_rows = 0;
    let result = wh.execute(&capped).await.unwrap();
    assert!(result.rows.is_empty() && result.truncated);

    let mut small = job("SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status");
    small.max_rows = 6;
    let result = wh.execute(&small).await.unwrap();
    assert_eq!(result.rows.len(), 5);
    assert!(!result.truncated);
    let columns: Vec<(&str, FieldType)> = result
        .columns
        .iter()
        .map(|f| (f.name.as_str(), f.field_type))
        .collect();
    assert_eq!(
        columns,
        [("status", FieldType::String), ("n", FieldType::Int64)]
    );

    let mut unqualified =
        job("SELECT COUNT(*) FROM customers c JOIN orders o ON o.customer_id = c.customer_id");
    unqualified.default_dataset = Some("SHOP".into());
    assert_eq!(
        wh.execute(&unqualified).await.unwrap().rows[0][0],
        Value::Int64(100_000)
    );
    unqualified.default_dataset = Some("datafusion.shop".into());
    let report = wh.dry_run(&unqualified).await.unwrap();
    assert_eq!(
        report.referenced_tables,
        [
            TableRef::new("shop", "customers"),
            TableRef::new("shop", "orders")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_reads_the_first_rows() {
    let wh = demo().await;
    let preview = wh
        .preview(&TableRef::new("shop", "orders"), 3)
        .await
        .unwrap();
    assert_eq!(preview.rows.len(), 3);
    assert!(preview.truncated);
    assert_eq!(preview.stats.bytes_processed, 0);
    let ids: Vec<&Value> = preview.rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids, [&Value::Int64(1), &Value::Int64(2), &Value::Int64(3)]);
    assert!(preview.columns.iter().all(|c| c.description.is_some()));

    // Across batch boundaries, and all of a small table.
    let many = wh
        .preview(&TableRef::new("shop", "orders"), 10_000)
        .await
        .unwrap();
    assert_eq!(many.rows.len(), 10_000);
    assert_eq!(many.rows[9_999][0], Value::Int64(10_000));
    let all = wh
        .preview(&TableRef::new("shop", "products"), 1_000)
        .await
        .unwrap();
    assert_eq!(all.rows.len(), 300);
    assert!(!all.truncated);
}
