//! Query history endpoints.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn every_query_is_recorded_newest_first() {
    let app = spawn_app().await;
    let ok = app
        .query("SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country")
        .await;
    assert_eq!(ok.status, 200);
    let cached = app
        .query("SELECT country, COUNT(*) AS n FROM shop.customers GROUP BY country")
        .await;
    assert_eq!(cached.body["stats"]["cache_hit"], true);
    app.query("DELETE FROM shop.orders")
        .await
        .assert_error(400, "SQL_REJECTED");
    app.query("SELECT nope FROM shop.orders")
        .await
        .assert_error(400, "INVALID_QUERY");

    let r = app.get("/api/v1/history").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "{}", r.body);
    assert_eq!(data[0]["sql"], "SELECT nope FROM shop.orders");
    assert_eq!(data[0]["status"], "rejected");
    assert_eq!(data[0]["error_code"], "INVALID_QUERY");
    assert_eq!(data[1]["sql"], "DELETE FROM shop.orders");
    assert_eq!(data[1]["status"], "rejected");
    assert_eq!(data[1]["error_code"], "SQL_REJECTED");
    assert!(data[1]["sql_executed"].is_null());
    assert_eq!(data[2]["status"], "succeeded");
    assert_eq!(data[2]["cache_hit"], true);
    assert_eq!(data[3]["status"], "succeeded");
    assert_eq!(data[3]["cache_hit"], false);
    assert_eq!(data[3]["id"], ok.body["query_id"]);
    assert_eq!(data[3]["kind"], "sql");
    assert!(data[3]["row_count"].as_u64().unwrap() > 0);
    assert!(data[3]["bytes_processed"].as_u64().unwrap() > 0);
    assert!(data[3]["sql_executed"].as_str().unwrap().contains("LIMIT"));
    assert!(data[3]["created_at"].is_string());

    let rejected = app.get("/api/v1/history?status=rejected").await;
    assert_eq!(rejected.body["data"].as_array().unwrap().len(), 2);
    let sql_kind = app.get("/api/v1/history?kind=sql&status=succeeded").await;
    assert_eq!(sql_kind.body["data"].as_array().unwrap().len(), 2);

    let id = ok.body["query_id"].as_str().unwrap();
    let one = app.get(&format!("/api/v1/history/{id}")).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["id"], id);
    assert_eq!(one.body["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_pages() {
    let app = spawn_app().await;
    for i in 0..5 {
        let r = app
            .post_json("/api/v1/query", &json!({"sql": format!("SELECT {i} AS i")}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/history?page_size=2".to_string();
    loop {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let data = r.body["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|h| h["sql"].as_str().unwrap().to_string()));
        match r.body["next_page_token"].as_str() {
            Some(t) => path = format!("/api/v1/history?page_size=2&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "SELECT 4 AS i",
            "SELECT 3 AS i",
            "SELECT 2 AS i",
            "SELECT 1 AS i",
            "SELECT 0 AS i"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn history_errors() {
    let app = spawn_app().await;
    app.get("/api/v1/history/0190b7c2-0000-7000-8000-000000000000")
        .await
        .assert_error(404, "NOT_FOUND");
    app.get("/api/v1/history/not-a-uuid!")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/history?status=bogus")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/history?kind=bogus")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/history?page_size=0")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/history?page_size=501")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get("/api/v1/history?page_token=garbage")
        .await
        .assert_error(400, "INVALID_REQUEST");
}
