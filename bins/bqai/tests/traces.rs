//! Traces, end to end: the real binary, configured with an OTLP endpoint, exports the spans of
//! an ask over the WebSocket to a stand-in collector (OTLP/HTTP protobuf). The caller's
//! `traceparent` is continued, every stage of the pipeline is a span under the ask, the
//! guard, dry run, execution and the language-model call are under their stages, and the
//! model API receives the trace context.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Spawning the binary under test is the point of this test.
#![allow(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use bqai_testkit::llm_server::{LlmStandIn, Reply};
use bqai_testkit::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const HTTP_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const HTTP_CALLER_SPAN: &str = "b7ad6b7169203331";

const SQL_REPLY: &str = "```sql\nSELECT country, COUNT(*) AS customers FROM shop.customers \
GROUP BY country ORDER BY customers DESC\n```\nExplanation: Customers per country.";

/// Kills the server when the test ends, whatever happens.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bqai serve` exporting traces to `collector`, with `env` on top; its base URL once it
/// answers.
async fn serve_traced(
    dir: &std::path::Path,
    collector: &OtlpReceiver,
    env: &[(&str, String)],
) -> (Server, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bqai"));
    cmd.args(["serve", "--port", &port.to_string()])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("BQAI__LOG__LEVEL", "warn")
        .env("BQAI__TELEMETRY__OTLP_ENDPOINT", collector.endpoint())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    wait_up(&base).await;
    (server, base)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn wait_up(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..150 {
        if client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not start");
}

/// The chain of span names from `span` up to the root of what was received.
fn ancestry(span: &ReceivedSpan, by_id: &HashMap<String, ReceivedSpan>) -> Vec<String> {
    let mut names = vec![span.name.clone()];
    let mut parent = span.parent_span_id.clone();
    while let Some(p) = by_id.get(&parent) {
        names.push(p.name.clone());
        parent = p.parent_span_id.clone();
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_ask_is_one_trace_from_the_callers_span_down_to_the_warehouse_and_the_model() {
    let collector = OtlpReceiver::start().await;
    let llm = LlmStandIn::start().await;
    llm.push_reply(Reply::Text(SQL_REPLY.into()));
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve_traced(
        dir.path(),
        &collector,
        &[
            (
                "BQAI__TELEMETRY__SERVICE_NAME",
                "bqai-under-test".to_string(),
            ),
            ("BQAI__LLM__KIND", "anthropic".to_string()),
            ("BQAI__LLM__BASE_URL", llm.base_url()),
            ("BQAI__LLM__API_KEY", "sk-test-traces".to_string()),
            ("BQAI__LLM__MODEL", "stand-in-model".to_string()),
            ("BQAI__LLM__MAX_RETRIES", "0".to_string()),
        ],
    )
    .await;

    // An HTTP query continuing the caller's trace.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/query"))
        .header(
            "traceparent",
            format!("00-{HTTP_TRACE_ID}-{HTTP_CALLER_SPAN}-01"),
        )
        .json(&json!({"sql": "SELECT COUNT(*) AS n FROM shop.orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // An ask over the WebSocket, its message carrying the caller's traceparent.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/api/v1/ws/agent",
        base.replacen("http://", "ws://", 1)
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        json!({
            "type": "ask",
            "question": "how many customers per country",
            "request_id": "traced-1",
            "traceparent": format!("00-{TRACE_ID}-{CALLER_SPAN}-01"),
        })
        .to_string()
        .into(),
    ))
    .await
    .unwrap();
    let mut kinds = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("an event within a minute")
            .expect("the connection stays open")
            .unwrap();
        let Message::Text(text) = msg else { continue };
        let ev: Value = serde_json::from_str(&text).unwrap();
        let kind = ev["type"].as_str().unwrap_or_default().to_string();
        kinds.push(kind.clone());
        if kind == "done" || kind == "error" {
            assert_eq!(kind, "done", "{kinds:?} {ev}");
            break;
        }
    }
    assert!(kinds.contains(&"result".to_string()), "{kinds:?}");

    let wanted = [
        "WS ask",
        "ask",
        "ask.understand",
        "ask.relevant_tables",
        "ask.question_cache",
        "ask.examples",
        "ask.generate",
        "chat stand-in-model",
        "ask.plan",
        "guard",
        "warehouse.dry_run",
        "ask.run",
        "warehouse.execute",
        "history.write",
        "ask.suggest",
    ];
    let spans = collector
        .wait_for(
            |spans| {
                wanted
                    .iter()
                    .all(|w| spans.iter().any(|s| s.name == *w && s.trace_id == TRACE_ID))
                    && spans
                        .iter()
                        .any(|s| s.trace_id == HTTP_TRACE_ID && s.name == "warehouse.execute")
            },
            Duration::from_secs(20),
        )
        .await;
    let ask_trace: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let by_id: HashMap<String, ReceivedSpan> = ask_trace
        .iter()
        .map(|s| (s.span_id.clone(), (*s).clone()))
        .collect();
    let names: Vec<&str> = ask_trace.iter().map(|s| s.name.as_str()).collect();
    for w in wanted {
        assert!(
            names.contains(&w),
            "no {w:?} span in the ask's trace: {names:?}"
        );
    }

    // The ask's root continues the caller's span; everything else hangs under it.
    let root = ask_trace.iter().find(|s| s.name == "WS ask").unwrap();
    assert_eq!(root.parent_span_id, CALLER_SPAN);
    assert_eq!(root.kind, 2, "a server span");
    assert_eq!(root.attr("bqai.request_id"), Some("traced-1"));
    assert_eq!(root.service_name.as_deref(), Some("bqai-under-test"));
    for s in &ask_trace {
        let chain = ancestry(s, &by_id);
        assert_eq!(
            chain.last().map(String::as_str),
            Some("WS ask"),
            "{} does not lead to the ask's root: {chain:?}",
            s.name
        );
    }
    let chain_of =
        |name: &str| ancestry(ask_trace.iter().find(|s| s.name == name).unwrap(), &by_id);
    // Stages are children of the use case; checks and calls are under their stage.
    assert_eq!(chain_of("ask.understand")[1], "ask");
    assert_eq!(chain_of("ask.generate")[1], "ask");
    assert_eq!(chain_of("chat stand-in-model")[1], "ask.generate");
    assert_eq!(chain_of("guard")[1], "ask.plan");
    assert_eq!(chain_of("warehouse.dry_run")[1], "ask.plan");
    assert_eq!(chain_of("warehouse.execute")[1], "ask.run");
    assert_eq!(chain_of("ask.suggest")[1], "ask.run");

    // Attributes follow the semantic conventions; no SQL unless record_sql is on.
    let llm_span = ask_trace
        .iter()
        .find(|s| s.name == "chat stand-in-model")
        .unwrap();
    assert_eq!(llm_span.attr("gen_ai.system"), Some("anthropic"));
    assert_eq!(
        llm_span.attr("gen_ai.request.model"),
        Some("stand-in-model")
    );
    assert!(
        llm_span.attr("gen_ai.usage.output_tokens").is_some(),
        "{llm_span:?}"
    );
    assert_eq!(llm_span.kind, 3, "a client span");
    let execute = ask_trace
        .iter()
        .find(|s| s.name == "warehouse.execute")
        .unwrap();
    assert_eq!(execute.attr("db.system"), Some("datafusion"));
    assert_eq!(execute.attr("db.operation"), Some("execute"));
    assert!(execute.attr("bqai.rows").is_some(), "{execute:?}");
    for s in &spans {
        assert!(
            s.attr("db.query.text").is_none()
                && !s.attributes.values().any(|v| v.contains("FROM shop")),
            "SQL text in a span with record_sql off: {s:?}"
        );
    }

    // The HTTP request's span continues its caller, with the route template.
    let http_root = spans
        .iter()
        .find(|s| s.trace_id == HTTP_TRACE_ID && s.parent_span_id == HTTP_CALLER_SPAN)
        .expect("the HTTP request's span continues the caller's");
    assert_eq!(http_root.name, "POST /api/v1/query");
    assert_eq!(http_root.attr("http.route"), Some("/api/v1/query"));
    assert_eq!(http_root.attr("http.response.status_code"), Some("200"));

    // The model API was called inside the trace: its traceparent names the ask's trace.
    let sent = llm.requests();
    let traceparent = sent
        .iter()
        .find_map(|r| r.headers.get("traceparent"))
        .expect("the model call carries traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "{traceparent}"
    );
}

/// The production path: the binary on BigQuery (the emulator, behind the shim that records
/// each call and its headers). A traced query's dry run and job are spans with the job id,
/// and every BigQuery call the query makes carries the query's trace context — sent by the
/// Google SDK from our spans. Also counts the BigQuery calls of one query.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_on_bigquery_carries_its_trace_to_every_bigquery_call() {
    use bqai_testkit::bigquery_shim::BigQueryShim;

    let emulator =
        std::env::var("BQAI_BQ_EMULATOR").unwrap_or_else(|_| "http://127.0.0.1:9050".to_string());
    let source = bqai_local::LocalWarehouse::new(bqai_local::LocalConfig::default())
        .await
        .unwrap();
    bqai_testkit::bigquery_seed::seed_from_warehouse(&source, "shop", &emulator, "test-project")
        .await;
    let shim = BigQueryShim::start(&emulator).await;
    let collector = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve_traced(
        dir.path(),
        &collector,
        &[
            ("BQAI__WAREHOUSE__KIND", "bigquery".to_string()),
            ("BQAI__WAREHOUSE__PROJECT", "test-project".to_string()),
            ("BQAI__WAREHOUSE__ENDPOINT", shim.endpoint()),
            ("BQAI__WAREHOUSE__CREDENTIALS__TYPE", "none".to_string()),
            ("BQAI__WAREHOUSE__REQUEST_TIMEOUT_MS", "20000".to_string()),
            ("BQAI__QUERY__ALLOWED_DATASETS", "[\"shop\"]".to_string()),
        ],
    )
    .await;

    let before = shim.calls().len();
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/query"))
        .header(
            "traceparent",
            format!("00-{HTTP_TRACE_ID}-{HTTP_CALLER_SPAN}-01"),
        )
        .json(&json!({"sql": "SELECT COUNT(*) AS n FROM shop.orders", "use_cache": false}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");

    let calls: Vec<(String, Option<String>)> = shim.calls_with_traceparent()[before..].to_vec();
    assert!(!calls.is_empty());
    for (call, traceparent) in &calls {
        let tp = traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("{call} went to BigQuery without traceparent"));
        assert!(
            tp.starts_with(&format!("00-{HTTP_TRACE_ID}-")),
            "{call}: {tp}"
        );
    }
    let inserts = calls
        .iter()
        .filter(|(c, _)| c.starts_with("POST ") && c.ends_with("/jobs"))
        .count();
    assert_eq!(inserts, 2, "one dry run and one job: {calls:?}");

    let spans = collector
        .wait_for(
            |spans| spans.iter().any(|s| s.name == "bigquery.job"),
            Duration::from_secs(20),
        )
        .await;
    let traced: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == HTTP_TRACE_ID)
        .collect();
    let job = traced
        .iter()
        .find(|s| s.name == "bigquery.job")
        .unwrap_or_else(|| panic!("no bigquery.job span: {traced:?}"));
    assert!(
        job.attr("bigquery.job_id").is_some_and(|id| !id.is_empty()),
        "{job:?}"
    );
    let execute = traced
        .iter()
        .find(|s| s.name == "warehouse.execute")
        .unwrap();
    assert_eq!(job.parent_span_id, execute.span_id);
    assert_eq!(execute.attr("db.system"), Some("bigquery"));
    assert!(traced.iter().any(|s| s.name == "bigquery.dry_run"));
    eprintln!(
        "BigQuery calls of one uncached query: {}",
        calls
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// Head sampling: with `sampler_ratio = 0`, a request that brings no trace context leaves no
/// span at all (its stages included: they are never built), while a caller's sampled
/// `traceparent` is still followed down to the warehouse.
#[tokio::test(flavor = "multi_thread")]
async fn unsampled_requests_leave_no_span_and_a_callers_sampled_trace_is_followed() {
    let collector = OtlpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve_traced(
        dir.path(),
        &collector,
        &[("BQAI__TELEMETRY__SAMPLER_RATIO", "0".to_string())],
    )
    .await;
    let client = reqwest::Client::new();
    // `fresh`: `use_cache: false`, so the statement is planned (guard, dry run) and run again
    // rather than answered from the plan and result caches.
    let query = |traceparent: Option<String>, fresh: bool| {
        let mut request = client
            .post(format!("{base}/api/v1/query"))
            .json(&json!({"sql": "SELECT COUNT(*) AS n FROM shop.orders", "use_cache": !fresh}));
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        request.send()
    };
    for _ in 0..5 {
        assert_eq!(query(None, false).await.unwrap().status(), 200);
    }
    assert_eq!(
        client
            .get(format!("{base}/api/v1/datasets"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A caller that sampled its trace out is followed too.
    let unsampled = format!("00-{TRACE_ID}-{CALLER_SPAN}-00");
    assert_eq!(query(Some(unsampled), false).await.unwrap().status(), 200);
    let sampled = format!("00-{HTTP_TRACE_ID}-{HTTP_CALLER_SPAN}-01");
    assert_eq!(query(Some(sampled), true).await.unwrap().status(), 200);

    collector
        .wait_for(
            |spans| {
                spans
                    .iter()
                    .any(|s| s.trace_id == HTTP_TRACE_ID && s.name == "warehouse.execute")
            },
            Duration::from_secs(20),
        )
        .await;
    // The batch exporter sends what ended before; give a straggler time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spans = collector.spans();
    let others: Vec<(&str, &str)> = spans
        .iter()
        .filter(|s| s.trace_id != HTTP_TRACE_ID)
        .map(|s| (s.trace_id.as_str(), s.name.as_str()))
        .collect();
    assert!(others.is_empty(), "spans of unsampled requests: {others:?}");
    for name in ["query", "guard", "warehouse.dry_run", "warehouse.execute"] {
        assert!(
            spans.iter().any(|s| s.name == name),
            "no {name:?} span in the sampled trace"
        );
    }
}
