//! Query parameters on the embedded engine: `$1 …` and `$name` placeholders bound to typed
//! values, for dry runs and runs alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bqai_core::model::{QueryParameters, Value};
use bqai_core::ports::Warehouse;
use bqai_local::{LocalConfig, LocalWarehouse};
use bqai_testkit::warehouse::job;
use serde_json::json;

fn with(sql: &str, params: serde_json::Value) -> bqai_core::model::QueryJob {
    let mut j = job(sql);
    j.parameters = QueryParameters::from_json(&params).unwrap();
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_are_bound() {
    let wh = LocalWarehouse::new(LocalConfig::default()).await.unwrap();
    let count = |rows: &[Vec<Value>]| match rows[0][0] {
        Value::Int64(n) => n,
        ref other => panic!("count expected, got {other:?}"),
    };
    let gold = wh
        .execute(&job(
            "SELECT COUNT(*) AS n FROM shop.customers WHERE country = 'Germany' AND customer_id > 10",
        ))
        .await
        .unwrap();
    let de = count(&gold.rows);
    assert!(de > 0);

    let positional = with(
        "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $1 AND customer_id > $2",
        json!(["Germany", 10]),
    );
    wh.dry_run(&positional).await.unwrap();
    assert_eq!(count(&wh.execute(&positional).await.unwrap().rows), de);

    let named = with(
        "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $country \
         AND customer_id > $min AND signup_date >= $since",
        json!({"country": "Germany", "min": 10, "since": {"type": "DATE", "value": "2000-01-01"}}),
    );
    assert_eq!(count(&wh.execute(&named).await.unwrap().rows), de);

    let other = with(
        "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $1 AND customer_id > $2",
        json!(["France", 10]),
    );
    assert_ne!(count(&wh.execute(&other).await.unwrap().rows), de);

    // A value is a value, never SQL.
    let injection = with(
        "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $1",
        json!(["Germany' OR '1'='1"]),
    );
    assert_eq!(count(&wh.execute(&injection).await.unwrap().rows), 0);

    // Typed values come back as themselves.
    let echo = with(
        "SELECT $1 AS d, $2 AS n, $3 AS t, $4 AS b",
        json!([
            {"type": "DATE", "value": "2024-02-29"},
            {"type": "NUMERIC", "value": "12.50"},
            {"type": "TIMESTAMP", "value": "2024-01-31T10:00:00Z"},
            true,
        ]),
    );
    let row = &wh.execute(&echo).await.unwrap().rows[0];
    assert_eq!(row[0].to_json(), json!("2024-02-29"));
    assert_eq!(row[1].to_json(), json!("12.50"));
    assert_eq!(row[2].to_json(), json!("2024-01-31T10:00:00Z"));
    assert_eq!(row[3], Value::Bool(true));
}
