//! Catalog endpoints and health.

use crate::helpers::{spawn_app, spawn_app_own_warehouse, spawn_app_with};

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_components() {
    let app = spawn_app().await;
    let r = app.get("/health").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "ok");
    assert!(r.body["version"].is_string());
    assert_eq!(r.body["components"]["warehouse"]["kind"], "datafusion");
    assert_eq!(r.body["components"]["history"]["kind"], "sqlite");
    assert_eq!(r.body["components"]["cache"]["status"], "ok");
    assert!(r.header("x-request-id").is_some());
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));

    let live = app.get("/health/live").await;
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(live.body, serde_json::json!({"status": "ok"}));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.body, serde_json::json!({"status": "ready"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_the_demo_dataset_and_its_tables() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/datasets").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dataset_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"shop"), "{ids:?}");
    assert!(r.body["next_page_token"].is_null());

    let r = app.get("/api/v1/datasets/shop").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["dataset_id"], "shop");

    let r = app.get("/api/v1/datasets/shop/tables").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut tables: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table_id"].as_str().unwrap())
        .collect();
    tables.sort_unstable();
    assert_eq!(tables, ["customers", "order_items", "orders", "products"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_pages_walk_every_table_once() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let path = match &token {
            Some(t) => format!("/api/v1/datasets/shop/tables?page_size=1&page_token={t}"),
            None => "/api/v1/datasets/shop/tables?page_size=1".to_string(),
        };
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.body["data"].as_array().unwrap();
        assert!(data.len() <= 1);
        seen.extend(
            data.iter()
                .map(|t| t["table_id"].as_str().unwrap().to_string()),
        );
        token = r.body["next_page_token"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert!(token.is_none(), "pagination did not end");
    seen.sort();
    assert_eq!(seen, ["customers", "order_items", "orders", "products"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_has_schema_and_sizes() {
    let app = spawn_app().await;
    let r = app.get("/api/v1/datasets/shop/tables/customers").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["num_rows"], 5000);
    assert!(r.body["num_bytes"].as_u64().unwrap() > 0);
    let schema = r.body["schema"].as_array().unwrap();
    let cols: Vec<(&str, &str)> = schema
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        cols,
        [
            ("customer_id", "INT64"),
            ("name", "STRING"),
            ("email", "STRING"),
            ("country", "STRING"),
            ("city", "STRING"),
            ("segment", "STRING"),
            ("signup_date", "DATE"),
        ]
    );
    assert!(schema.iter().all(|f| f["mode"].is_string()));

    let r = app.get("/api/v1/datasets/shop/tables/orders").await;
    assert_eq!(r.body["num_rows"], 100_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_returns_rows_as_objects() {
    let app = spawn_app().await;
    let r = app
        .get("/api/v1/datasets/shop/tables/products/preview?limit=3")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(r.body["row_count"], 3);
    assert!(rows[0]["product_id"].is_i64());
    assert!(rows[0]["unit_price"].is_f64() || rows[0]["unit_price"].is_i64());
    assert_eq!(r.body["columns"][0]["name"], "product_id");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_errors() {
    let app = spawn_app().await;
    app.get("/api/v1/datasets/nope")
        .await
        .assert_error(404, "NOT_FOUND");
    app.get("/api/v1/datasets/nope/tables")
        .await
        .assert_error(404, "NOT_FOUND");
    app.get("/api/v1/datasets/shop/tables/nope")
        .await
        .assert_error(404, "NOT_FOUND");
    app.get("/api/v1/datasets/bad-id!/tables")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets/shop/tables/products/preview?limit=0")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets/shop/tables/products/preview?limit=abc")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets/shop/tables/products/preview?limit=100000")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets?page_size=0")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets?page_size=100000")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/datasets?bogus=1")
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_outside_the_allow_list_are_hidden_and_forbidden() {
    let app = spawn_app_own_warehouse(|s, dir| {
        let secret = dir.join("secret");
        std::fs::create_dir_all(&secret).unwrap();
        std::fs::write(
            secret.join("salaries.csv"),
            "name,salary\nada,100\nbob,90\n",
        )
        .unwrap();
        s.warehouse =
            bqai::config::WarehouseSettings::local(false, vec![secret.display().to_string()]);
        s.query.allowed_datasets = vec!["shop".into()];
    })
    .await;
    let r = app.get("/api/v1/datasets").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0, "{}", r.body);
    app.get("/api/v1/datasets/secret")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/api/v1/datasets/secret/tables")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/api/v1/datasets/secret/tables/salaries")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/api/v1/datasets/secret/tables/salaries/preview")
        .await
        .assert_error(403, "FORBIDDEN");
    app.query("SELECT * FROM secret.salaries")
        .await
        .assert_error(403, "FORBIDDEN");
    app.query("SELECT * FROM shop.x JOIN secret.salaries ON true")
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_files_become_queryable_tables() {
    let app = spawn_app_own_warehouse(|s, dir| {
        let sales = dir.join("sales");
        std::fs::create_dir_all(&sales).unwrap();
        std::fs::write(
            sales.join("deals.csv"),
            "region,amount\neu,10\nus,32\neu,5\n",
        )
        .unwrap();
        s.warehouse =
            bqai::config::WarehouseSettings::local(false, vec![sales.display().to_string()]);
    })
    .await;
    let r = app.get("/api/v1/datasets/sales/tables/deals").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["num_rows"], 3);
    let r = app
        .query(
            "SELECT region, SUM(amount) AS total FROM sales.deals GROUP BY region ORDER BY region",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rows"][0]["region"], "eu");
    assert_eq!(r.body["rows"][0]["total"], 15);
    assert_eq!(r.body["rows"][1]["total"], 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_answers_429_with_headers() {
    let app = spawn_app_with(|s| s.server.requests_per_minute = 3).await;
    for i in 0..3 {
        let r = app.get("/api/v1/datasets").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    }
    let r = app.get("/api/v1/datasets").await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // /health is not limited.
    assert_eq!(app.get("/health").await.status, 200);
}
