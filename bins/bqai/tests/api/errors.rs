//! The error contract: every failure is a JSON envelope with the right status, a stable
//! code, a safe message and the request id — never a 500 for a caller's mistake and never
//! internal text in a body.

use std::sync::Arc;

use async_trait::async_trait;
use bqai_core::model::*;
use bqai_core::ports::Warehouse;
use bqai_core::{Error, Result};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_over};

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_are_400() {
    let app = spawn_app().await;
    let cases: [(&str, &str); 6] = [
        ("{not json", "malformed"),
        ("{\"sql\": 42}", "wrong type"),
        ("{}", "missing sql"),
        (
            "{\"sql\": \"SELECT 1\", \"max_rows\": \"ten\"}",
            "wrong type",
        ),
        ("{\"sql\": \"SELECT 1\", \"sqll\": 1}", "unknown field"),
        ("[1,2,3]", "not an object"),
    ];
    for (body, what) in cases {
        let r = app
            .post_raw("/api/v1/query", "application/json", body)
            .await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        r.assert_error(400, "INVALID_REQUEST");
    }
    let r = app
        .post_raw("/api/v1/query", "application/json", "{\"sql\": 42}")
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_options_are_400() {
    let app = spawn_app().await;
    for body in [
        json!({"sql": ""}),
        json!({"sql": "   "}),
        json!({"sql": "SELECT 1", "max_rows": 0}),
        json!({"sql": "SELECT 1", "max_rows": 10_000_000}),
        json!({"sql": "SELECT 1", "timeout_ms": 0}),
        json!({"sql": "SELECT 1", "timeout_ms": 999_999_999}),
        json!({"sql": "SELECT 1", "dataset_id": "bad id!"}),
        json!({"sql": "SELECT 1", "max_rows": -1}),
    ] {
        app.post_json("/api/v1/query", &body)
            .await
            .assert_error(400, "INVALID_REQUEST");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let sql = format!("SELECT '{}'", "x".repeat(2 * 1024 * 1024));
    let r = app.post_json("/api/v1/query", &json!({ "sql": sql })).await;
    r.assert_error(413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let r = app
        .post_raw(
            "/api/v1/query",
            "application/x-www-form-urlencoded",
            "sql=SELECT+1",
        )
        .await;
    r.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let r = app
        .post_raw("/api/v1/query", "text/plain", "{\"sql\": \"SELECT 1\"}")
        .await;
    r.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_are_json_404() {
    let app = spawn_app().await;
    app.get("/api/v1/nope").await.assert_error(404, "NOT_FOUND");
    app.get("/nope").await.assert_error(404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callers_request_id_is_echoed() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(format!("{}/api/v1/datasets/nope", app.address))
        .header("X-Request-Id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-abc-123");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-abc-123");

    // A malformed one is replaced, not trusted.
    let resp = app
        .client
        .get(format!("{}/health", app.address))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-request-id"], "bad id with spaces");
}

/// A warehouse whose every call fails in a configurable way.
struct BrokenWarehouse {
    unavailable: bool,
}

impl BrokenWarehouse {
    fn fail(&self) -> Error {
        if self.unavailable {
            Error::unavailable(
                "the warehouse",
                std::io::Error::other("connection refused to 10.1.2.3:443"),
            )
        } else {
            Error::internal("decoding", std::io::Error::other("SECRET internal detail"))
        }
    }
}

#[async_trait]
impl Warehouse for BrokenWarehouse {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::DataFusion
    }
    fn home_project(&self) -> Option<String> {
        None
    }
    async fn list_datasets(&self, _: &PageRequest) -> Result<Page<Dataset>> {
        Err(self.fail())
    }
    async fn get_dataset(&self, _: &str) -> Result<Dataset> {
        Err(self.fail())
    }
    async fn list_tables(&self, _: &str, _: &PageRequest) -> Result<Page<TableSummary>> {
        Err(self.fail())
    }
    async fn get_table(&self, _: &TableRef) -> Result<Table> {
        Err(self.fail())
    }
    async fn preview(&self, _: &TableRef, _: u64) -> Result<QueryResult> {
        Err(self.fail())
    }
    async fn dry_run(&self, _: &QueryJob) -> Result<DryRunReport> {
        Err(self.fail())
    }
    async fn execute(&self, _: &QueryJob) -> Result<QueryResult> {
        Err(self.fail())
    }
    async fn health(&self) -> ComponentHealth {
        ComponentHealth::down("broken", "unreachable")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warehouse_down_is_503_and_health_degraded() {
    let app = spawn_app_over(Arc::new(BrokenWarehouse { unavailable: true })).await;
    let r = app.get("/api/v1/datasets").await;
    r.assert_error(503, "UNAVAILABLE");
    assert!(
        !r.body.to_string().contains("10.1.2.3"),
        "no internal detail: {}",
        r.body
    );
    app.query("SELECT 1 AS x")
        .await
        .assert_error(503, "UNAVAILABLE");
    let h = app.get("/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body["status"], "degraded");
    assert_eq!(h.body["components"]["warehouse"]["status"], "down");
    // Alive, but not ready: the probe says why, in the error envelope.
    assert_eq!(app.get("/health/live").await.status, 200);
    let ready = app.get("/health/ready").await;
    ready.assert_error(503, "NOT_READY");
    let message = ready.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("broken") && message.contains("unreachable"),
        "{message}"
    );
    // The failed query is in history as failed.
    let hist = app.get("/api/v1/history").await;
    assert_eq!(hist.body["data"][0]["status"], "failed");
    assert_eq!(hist.body["data"][0]["error_code"], "UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_errors_hide_their_cause() {
    let app = spawn_app_over(Arc::new(BrokenWarehouse { unavailable: false })).await;
    let r = app.get("/api/v1/datasets/shop").await;
    r.assert_error(500, "INTERNAL");
    assert!(!r.body.to_string().contains("SECRET"), "{}", r.body);
    let hist_query = app.query("SELECT 1 AS x").await;
    hist_query.assert_error(500, "INTERNAL");
    let hist = app.get("/api/v1/history").await;
    assert!(!hist.body.to_string().contains("SECRET"), "{}", hist.body);
}

/// A known path with a method it does not take is 405 with `Allow` (from the OpenAPI spec's
/// operations), not 404; an unknown path stays 404.
#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_with_allow() {
    let app = crate::helpers::spawn_app().await;
    let r = app
        .send(reqwest::Method::PUT, "/api/v1/query", None, None)
        .await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = app
        .send(reqwest::Method::POST, "/api/v1/datasets/shop", None, None)
        .await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/admin/keys/abcdefabcdef",
            None,
            None,
        )
        .await;
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    app.send(reqwest::Method::PUT, "/api/v1/nothing-here", None, None)
        .await
        .assert_error(404, "NOT_FOUND");
}

/// A CORS preflight to a server without `server.cors_origins` is routed like any request and
/// answered (no CORS permission), on every kind of route: it once panicked the worker, which
/// dropped the connection.
#[tokio::test]
async fn preflights_without_cors_are_answered_not_dropped() {
    let app = crate::helpers::spawn_app().await;
    for path in ["/api/v1/query", "/mcp", "/health", "/nowhere"] {
        let r = app
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.address))
            .header("Origin", "https://elsewhere.example")
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
}
