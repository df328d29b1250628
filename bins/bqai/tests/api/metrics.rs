//! `GET /metrics`: the HTTP request families after a scripted workload, with bounded labels.

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
    let nowhere = app
        .client
        .get(format!("{}/no/such/path", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(nowhere.status(), 404);

    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "# TYPE bqai_http_requests counter",
        r#"bqai_http_requests_total{method="POST",route="/api/v1/query",status="200"} 2"#,
        r#"bqai_http_requests_total{method="POST",route="/api/v1/query",status="400"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="/api/v1/history/{id}",status="404"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="/health/live",status="200"} 1"#,
        r#"bqai_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        "# TYPE bqai_http_request_duration_seconds histogram",
        r#"bqai_http_request_duration_seconds_count{method="POST",route="/api/v1/query"} 3"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // Templates, never paths: no id, no unknown path becomes a label.
    assert!(!text.contains(missing), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
}
