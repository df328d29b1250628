//! `GET /metrics`: the HTTP request and query families after a scripted workload, with bounded
//! labels.

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_by_route_template_and_status() {
    let app = spawn_app().await;
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);
    assert_eq!(app.query("SELECT 2 AS two").await.status, 200);
    app.query("DELETE FROM shop.orders")
        .await
        .assert_error(400, "SQL_REJECTED");
    let missing = "01a24d42-0000-7000-8000-000000000000";
    assert_eq!(
        app.get(&format!("/api/v1/history/{missing}")).await.status,
        404
    );
    assert_eq!(app.get("/health/live").await.status, 200);
    let ask = app
        .post_json(
            "/api/v1/ask",
            &serde_json::json!({"question": "number of customers by segment"}),
        )
        .await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    let nowhere = app
        .client
        .get(format!("{}/no/such/path", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);

    // One WebSocket connection open while /metrics is read.
    let (ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/api/v1/ws/agent",
        app.address.replacen("http://", "ws://", 1)
    ))
    .await
    .unwrap();

    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    drop(ws);
    for line in [
        "bqai_websocket_connections 1",
        "# TYPE bqai_history_queue_depth gauge",
        "bqai_history_records_dropped 0",
        "bqai_history_records_refused 0",
        "# TYPE bqai_http_requests counter",
        r#"bqai_http_requests_total{method="POST",route="/api/v1/query",status="200"} 2"#,
        r#"bqai_http_requests_total{method="POST",route="/api/v1/query",status="400"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="/api/v1/history/{id}",status="404"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="/health/live",status="200"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        "# TYPE bqai_http_request_duration_seconds histogram",
        r#"bqai_http_request_duration_seconds_count{method="POST",route="/api/v1/query"} 3"#,
        // Queries, as history records them.
        r#"bqai_queries_total{kind="sql",status="succeeded",dry_run="false"} 2"#,
        r#"bqai_queries_total{kind="sql",status="rejected",dry_run="false"} 1"#,
        r#"bqai_queries_total{kind="ask",status="succeeded",dry_run="false"} 1"#,
        r#"bqai_query_errors_total{status="rejected",code="SQL_REJECTED"} 1"#,
        r#"bqai_query_duration_seconds_count{kind="sql"} 3"#,
        "# TYPE bqai_warehouse_bytes_processed counter",
        "# TYPE bqai_warehouse_estimated_cost_usd counter",
        "# TYPE bqai_result_cache_hits counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // Templates, never paths: no id, no unknown path becomes a label.
    assert!(!text.contains(missing), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
    // The demo's queries read bytes; the built-in planner calls no model.
    let processed = text
        .lines()
        .find_map(|l| l.strip_prefix("bqai_warehouse_bytes_processed_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_default();
    assert!(processed > 0, "{text}");
    assert!(!text.contains("bqai_llm_calls_total{"), "{text}");
}
