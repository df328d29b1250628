//! `GET /metrics`: the HTTP request and query families after a scripted workload, with bounded
//! labels.

use crate::helpers::{spawn_app, stand_in_price};
use crate::ws::connect;

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
    let ws = connect(&app).await;

    let text = app.text("/metrics").await;
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

/// Metric names a PromQL text or a rules file mentions (`bqai_…` tokens).
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("bqai_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn deploy_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The Grafana dashboard and the alert rules (deploy/) read only metrics a running server
/// exposes after a scripted workload (queries, a rejection, a cache hit, an ask answered by a
/// language model, an open WebSocket), and the dashboard has a panel for every family.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_the_alert_rules_read_only_metrics_the_server_exposes() {
    use bqai_testkit::llm_server::{LlmStandIn, Reply};
    let llm = LlmStandIn::start().await;
    llm.push_reply(Reply::Text(
        "```sql\nSELECT segment, COUNT(*) AS n FROM shop.customers GROUP BY segment\n```".into(),
    ));
    let base = llm.base_url();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.llm.kind = bqai_llm::LlmKind::Anthropic;
        s.llm.base_url = Some(base);
        s.llm.api_key = Some(secrecy::SecretString::from("sk-test-dashboard"));
        s.llm.model = Some("stand-in-model".into());
        s.llm.max_retries = 0;
        // Priced, so the LLM cost family has a sample.
        s.llm.prices.insert("stand-in".into(), stand_in_price());
    })
    .await;
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);
    app.query("DELETE FROM shop.orders")
        .await
        .assert_error(400, "SQL_REJECTED");
    let ask = app
        .post_json(
            "/api/v1/ask",
            &serde_json::json!({"question": "customers per segment"}),
        )
        .await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    let ws = connect(&app).await;
    let text = app.text("/metrics").await;
    drop(ws);
    let exposed: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let families: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    for family in [
        "bqai_llm_calls",
        "bqai_llm_tokens",
        "bqai_dependency_healthy",
        "bqai_websocket_connections",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family} missing in\n{text}"
        );
    }

    let dashboard: serde_json::Value =
        serde_json::from_str(&deploy_file("grafana/dashboards/bqai.json")).unwrap();
    let mut queries = String::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            queries.push_str(target["expr"].as_str().unwrap());
            queries.push('\n');
        }
    }
    let used = metric_names(&queries);
    for name in &used {
        assert!(
            exposed.contains(name),
            "the dashboard reads {name}, which /metrics does not expose:\n{text}"
        );
    }
    for family in &families {
        assert!(
            used.iter().any(|u| u == family
                || u.strip_prefix(family.as_str())
                    .is_some_and(|s| { matches!(s, "_total" | "_bucket" | "_sum" | "_count") })),
            "no dashboard panel reads the family {family}"
        );
    }

    let rules = deploy_file("prometheus/alerts.yml");
    let alerted = metric_names(&rules);
    assert!(alerted.len() >= 6, "{alerted:?}");
    for name in &alerted {
        assert!(
            exposed.contains(name),
            "an alert rule reads {name}, which /metrics does not expose:\n{text}"
        );
    }
}
