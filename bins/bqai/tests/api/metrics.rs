//! `GET /metrics`: the HTTP request and query families after a scripted workload, with bounded
//! labels.

use bqai_testkit::metric_value as value;

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
        // The guard's refusals, every reason listed.
        r#"bqai_guard_rejections_total{reason="DML"} 1"#,
        r#"bqai_guard_rejections_total{reason="DDL"} 0"#,
        r#"bqai_guard_rejections_total{reason="TOO_COMPLEX"} 0"#,
        // Decorated ports: nothing refused by a rate limit (off here), no conversation.
        r#"bqai_rate_limit_rejections_total{scope="ip"} 0"#,
        "bqai_quota_rejections_total 0",
        "bqai_conversations_started_total 0",
        "bqai_audit_queue_depth 0",
        "bqai_audit_records_failed_total 0",
        r#"bqai_cache_coalesced_total{layer="result"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // Two queries and an ask ran on the warehouse (the planner's value sampling may add
    // more); the refused DELETE reached it not even for a dry run.
    assert!(
        value(
            &text,
            r#"bqai_warehouse_calls_total{operation="execute",outcome="ok"}"#
        ) >= 3.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"bqai_warehouse_calls_total{operation="dry_run",outcome="ok"}"#
        ) >= 3.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"bqai_warehouse_call_duration_seconds_count{operation="execute"}"#
        ) >= 3.0,
        "{text}"
    );
    // Every query looked in the result cache first, and missed (all different).
    assert!(
        value(
            &text,
            r#"bqai_cache_lookups_total{layer="result",outcome="miss"}"#
        ) >= 3.0,
        "{text}"
    );
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
/// language model, an export, an open WebSocket), and the dashboard has a panel for every
/// family.
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
    let conversation = app
        .post_json("/api/v1/conversations", &serde_json::json!({}))
        .await;
    assert_eq!(conversation.status, 201, "{}", conversation.body);
    let ask = app
        .post_json(
            "/api/v1/ask",
            &serde_json::json!({
                "question": "customers per segment",
                "conversation_id": conversation.body["conversation_id"],
            }),
        )
        .await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    let export = app
        .export(
            "",
            None,
            &serde_json::json!({"sql": "SELECT 1 AS one", "format": "csv"}),
        )
        .await;
    assert_eq!(export.status, 200);
    let ws = connect(&app).await;
    let text = app.text("/metrics").await;
    drop(ws);
    for line in [
        r#"bqai_llm_requests_total{adapter="anthropic",outcome="ok"} 1"#,
        r#"bqai_llm_request_duration_seconds_count{adapter="anthropic"} 1"#,
        r#"bqai_llm_in_flight{adapter="anthropic"} 0"#,
        r#"bqai_llm_queued{adapter="anthropic"} 0"#,
        "bqai_conversations_started_total 1",
        "bqai_conversation_turns_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
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
        "bqai_llm_requests",
        "bqai_llm_request_duration_seconds",
        "bqai_llm_in_flight",
        "bqai_llm_queued",
        "bqai_guard_rejections",
        "bqai_cache_lookups",
        "bqai_cache_coalesced",
        "bqai_warehouse_calls",
        "bqai_warehouse_call_duration_seconds",
        "bqai_rate_limit_rejections",
        "bqai_quota_rejections",
        "bqai_conversations_started",
        "bqai_conversation_turns",
        "bqai_audit_queue_depth",
        "bqai_audit_records_failed",
        "bqai_dependency_healthy",
        "bqai_websocket_connections",
        "bqai_exports",
        "bqai_export_rows",
        "bqai_export_bytes",
        "bqai_export_jobs",
        "bqai_export_workers_busy",
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

/// With `telemetry.metrics_addr`, `/metrics` is served there alone: the API listener answers
/// it with 404, and the metrics listener serves nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_have_a_listener_of_their_own() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.telemetry.metrics_addr = Some("127.0.0.1:0".into());
    })
    .await;
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);
    app.get("/metrics").await.assert_error(404, "NOT_FOUND");
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    let scraped = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.lines().any(|l| l
            == r#"bqai_http_requests_total{method="POST",route="/api/v1/query",status="200"} 1"#),
        "the API listener's requests are counted in the same registry:\n{text}"
    );
    for path in ["/api/v1/datasets", "/health", "/"] {
        let other = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 404, "{path} on the metrics listener");
    }
}

/// Refusals by the rate limiter are counted by scope.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_refusals_are_counted_by_scope() {
    let app = crate::helpers::spawn_app_with(|s| s.server.requests_per_minute = 2).await;
    let mut refused = 0;
    for _ in 0..5 {
        if app.get("/api/v1/datasets").await.status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "{refused} of 5 refused");
    let text = app.text("/metrics").await;
    assert_eq!(
        value(&text, r#"bqai_rate_limit_rejections_total{scope="ip"}"#),
        f64::from(refused),
        "{text}"
    );
}
