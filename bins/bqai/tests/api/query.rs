//! `POST /api/v1/query`: results, cache, caps, and the guard as the API applies it.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

const BY_COUNTRY: &str =
    "SELECT country, COUNT(*) AS customers FROM shop.customers GROUP BY country";

#[tokio::test(flavor = "multi_thread")]
async fn runs_a_query_and_answers_the_second_time_from_cache() {
    let app = spawn_app().await;
    let r = app.query(BY_COUNTRY).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["rows"].as_array().unwrap();
    assert!(
        (5..=15).contains(&rows.len()),
        "about 10 countries: {}",
        rows.len()
    );
    let total: i64 = rows.iter().map(|r| r["customers"].as_i64().unwrap()).sum();
    assert_eq!(total, 5000);
    assert_eq!(r.body["row_count"], rows.len());
    assert_eq!(r.body["truncated"], false);
    assert_eq!(r.body["columns"][0]["name"], "country");
    assert_eq!(r.body["columns"][0]["type"], "STRING");
    assert!(r.body["columns"][0]["mode"].is_string());
    assert_eq!(r.body["columns"][1]["type"], "INT64");
    assert!(
        r.body["sql"].as_str().unwrap().contains("LIMIT 1000"),
        "{}",
        r.body["sql"]
    );
    assert!(r.body["query_id"].is_string());
    assert_eq!(r.body["referenced_tables"], json!(["shop.customers"]));
    let stats = &r.body["stats"];
    assert_eq!(stats["cache_hit"], false);
    assert!(stats["bytes_processed"].as_u64().unwrap() > 0);
    assert!(stats["estimated_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(stats["duration_ms"].is_u64());

    let again = app.query(BY_COUNTRY).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["stats"]["cache_hit"], true);
    assert_eq!(again.body["rows"], r.body["rows"]);
    assert_ne!(again.body["query_id"], r.body["query_id"]);

    let no_cache = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": BY_COUNTRY, "use_cache": false}),
        )
        .await;
    assert_eq!(no_cache.body["stats"]["cache_hit"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_estimates_without_rows() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT * FROM shop.orders", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["dry_run"], true);
    assert_eq!(r.body["rows"], json!([]));
    assert_eq!(r.body["row_count"], 0);
    let all = r.body["stats"]["bytes_processed"].as_u64().unwrap();
    assert!(all > 0);
    assert_eq!(r.body["stats"]["bytes_billed"], 0);
    let one_col = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT order_id FROM shop.orders", "dry_run": true}),
        )
        .await;
    let narrow = one_col.body["stats"]["bytes_processed"].as_u64().unwrap();
    assert!(
        narrow < all,
        "a narrower projection scans less: {narrow} vs {all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn row_cap_truncates_and_rewrites_limit() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT order_id FROM shop.orders", "max_rows": 10}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["row_count"], 10);
    assert_eq!(r.body["truncated"], true);
    assert!(
        r.body["sql"].as_str().unwrap().ends_with("LIMIT 10"),
        "{}",
        r.body["sql"]
    );

    // The caller's own smaller LIMIT is kept and is not "truncated".
    let r = app
        .query("SELECT order_id FROM shop.orders ORDER BY order_id LIMIT 3")
        .await;
    assert_eq!(r.body["row_count"], 3);
    assert_eq!(r.body["truncated"], false);
    assert_eq!(r.body["rows"][0]["order_id"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unqualified_tables_use_the_dataset_id() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT COUNT(*) AS n FROM orders", "dataset_id": "shop"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["n"], 100_000);
    assert!(r.body["sql"].as_str().unwrap().contains("shop.orders"));
    app.query("SELECT COUNT(*) FROM orders")
        .await
        .assert_error(400, "SQL_REJECTED");
}

#[tokio::test(flavor = "multi_thread")]
async fn dangerous_statements_are_rejected_and_have_no_effect() {
    let app = spawn_app().await;
    let marker = app.dir.path().join("copied.csv");
    let statements = [
        "DELETE FROM shop.orders".to_string(),
        "DROP TABLE shop.orders".to_string(),
        "CREATE TABLE shop.evil AS SELECT * FROM shop.orders".to_string(),
        "INSERT INTO shop.orders VALUES (1, 1, '2024-01-01', 'x', 'y')".to_string(),
        "UPDATE shop.orders SET status = 'x'".to_string(),
        format!("COPY (SELECT * FROM shop.orders) TO '{}'", marker.display()),
        format!("COPY shop.orders TO '{}'", marker.display()),
        "SELECT * FROM read_csv('/etc/passwd')".to_string(),
        "SELECT * FROM shop.orders o JOIN read_csv('/etc/passwd') p ON true".to_string(),
        "SELECT * FROM '/etc/passwd'".to_string(),
        "CREATE EXTERNAL TABLE pw STORED AS CSV LOCATION '/etc/passwd'".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "SELECT 1; DROP TABLE shop.orders".to_string(),
        "SELECT 1 -- harmless\n; DELETE FROM shop.orders".to_string(),
    ];
    for sql in &statements {
        let r = app.query(sql).await;
        r.assert_error(400, "SQL_REJECTED");
        assert!(
            !r.body["error"]["message"].as_str().unwrap().is_empty(),
            "{sql}: a reason is given"
        );
    }
    assert!(!marker.exists(), "COPY wrote a file");
    let count = app.query("SELECT COUNT(*) AS n FROM shop.orders").await;
    assert_eq!(count.body["rows"][0]["n"], 100_000, "orders untouched");
    let tables = app.get("/api/v1/datasets/shop/tables").await;
    assert_eq!(
        tables.body["data"].as_array().unwrap().len(),
        4,
        "no table created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn byte_cap_rejects_before_running() {
    let app = spawn_app_with(|s| s.query.max_bytes_billed = 1000).await;
    let r = app.query("SELECT * FROM shop.orders").await;
    r.assert_error(400, "COST_LIMIT_EXCEEDED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_queries_time_out() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({
                "sql": "SELECT SUM(a.quantity * b.quantity) AS s FROM shop.order_items a CROSS JOIN shop.order_items b",
                "timeout_ms": 50,
                "use_cache": false
            }),
        )
        .await;
    r.assert_error(504, "TIMEOUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_errors_are_client_errors() {
    let app = spawn_app().await;
    app.query("SELECT no_such_column FROM shop.orders")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.query("SELECT * FROM shop.no_such_table")
        .await
        .assert_error(404, "NOT_FOUND");
    app.query("SELEC nonsense")
        .await
        .assert_error(400, "SQL_REJECTED");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_are_typed_in_json() {
    let app = spawn_app().await;
    let r = app
        .query(
            "SELECT CAST(9007199254740993 AS BIGINT) AS big, 42 AS small, 1.5 AS f, \
             DATE '2024-02-29' AS d, TRUE AS b, NULL AS n, 'x' AS s",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = &r.body["rows"][0];
    assert_eq!(
        row["big"], "9007199254740993",
        "INT64 beyond 2^53 is a string"
    );
    assert_eq!(row["small"], 42);
    assert_eq!(row["f"], 1.5);
    assert_eq!(row["d"], "2024-02-29");
    assert_eq!(row["b"], true);
    assert!(row["n"].is_null());
    assert_eq!(row["s"], "x");
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_bind_on_the_embedded_engine() {
    let app = spawn_app().await;
    let gold = app
        .query("SELECT COUNT(*) AS n FROM shop.customers WHERE country = 'Germany'")
        .await;
    let n = gold.body["rows"][0]["n"].as_i64().unwrap();
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({
                "sql": "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $1 AND signup_date >= $2",
                "parameters": ["Germany", {"type": "DATE", "value": "2000-01-01"}],
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["n"], n);
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({
                "sql": "SELECT COUNT(*) AS n FROM shop.customers WHERE country = $country",
                "parameters": {"country": "Germany"},
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["n"], n);

    // BigQuery's placeholder styles get a 400 that names the engine's own.
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({
                "sql": "SELECT COUNT(*) AS n FROM shop.customers WHERE country = @country",
                "parameters": {"country": "Germany"},
            }),
        )
        .await;
    r.assert_error(400, "INVALID_REQUEST");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("$country"),
        "{}",
        r.body
    );
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT $1 AS a, $2 AS b", "parameters": [1]}),
        )
        .await;
    r.assert_error(400, "INVALID_REQUEST");
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT 1 AS a", "parameters": "nope"}),
        )
        .await;
    r.assert_error(400, "INVALID_REQUEST");
}

/// Every column reaches the client, in SELECT order: repeated names get BigQuery's `_1`
/// suffixes (compared without case), empty names become `f{index}_`, in `columns` and rows.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_column_names_keep_every_value_in_select_order() {
    let app = spawn_app().await;
    let r = app
        .query(
            "SELECT o.customer_id, c.customer_id, c.country, o.order_id AS \"ID\", \
             o.order_id + 1 AS id, 7 AS \"\" FROM shop.orders o \
             JOIN shop.customers c ON o.customer_id = c.customer_id \
             ORDER BY o.order_id LIMIT 2",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "customer_id_1",
            "country",
            "ID",
            "id_1",
            "f5_"
        ]
    );
    for row in r.body["rows"].as_array().unwrap() {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, names, "keys in SELECT order: {row}");
        assert_eq!(row["customer_id"], row["customer_id_1"], "{row}");
        assert_eq!(
            row["id_1"].as_i64().unwrap(),
            row["ID"].as_i64().unwrap() + 1
        );
        assert_eq!(row["f5_"], 7);
    }
    // The same names for a dry run's columns.
    let dry = app
        .post_json(
            "/api/v1/query",
            &json!({
                "sql": "SELECT o.customer_id, c.customer_id FROM shop.orders o \
                        JOIN shop.customers c ON o.customer_id = c.customer_id",
                "dry_run": true,
            }),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(
        dry.body["columns"][1]["name"], "customer_id_1",
        "{}",
        dry.body
    );
}

/// One id names a request everywhere: the `X-Request-Id` header, the history entry of its
/// query, and (for asks) the answer's `request_id`.
#[tokio::test(flavor = "multi_thread")]
async fn one_request_id_in_header_body_and_history() {
    let app = spawn_app().await;
    let r = app.query(BY_COUNTRY).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.header("x-request-id").unwrap().to_owned();
    let entry = app
        .get(&format!(
            "/api/v1/history/{}",
            r.body["query_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.body["request_id"], id.as_str());

    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "revenue by country in 2024"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.header("x-request-id").unwrap();
    assert_eq!(r.body["request_id"], id, "{}", r.body);
    let query_id = r.body["result"]["query_id"].as_str().unwrap();
    let entry = app.get(&format!("/api/v1/history/{query_id}")).await;
    assert_eq!(entry.body["request_id"], id, "{}", entry.body);
    assert_eq!(entry.body["kind"], "ask");

    // A caller's own well-formed id is kept, in the answer as well.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/ask", app.address))
        .header("X-Request-Id", "trace-42.a")
        .json(&json!({"question": "number of customers by segment"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42.a");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-42.a", "{body}");
}
