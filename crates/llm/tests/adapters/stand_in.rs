//! The stand-in itself, on the parts no adapter exercises: probes, SSE shapes, error bodies.

use bqai_testkit::llm_server::{LlmStandIn, Reply};
use serde_json::{Value, json};

async fn post(url: String, body: Value, key: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

/// `event:` names and `data:` payloads of an SSE body, in order.
fn events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut event = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_are_answered_and_counted_apart_from_model_requests() {
    let server = LlmStandIn::start().await;
    let client = reqwest::Client::new();
    let head = client.head(server.base_url()).send().await.unwrap();
    assert!(head.status().is_success());
    let get = client
        .get(format!("{}/", server.base_url()))
        .send()
        .await
        .unwrap();
    assert!(get.status().is_success());
    let other = client
        .get(format!("{}/v1/models", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(server.probe_count(), 2);
    assert_eq!(server.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_streaming_reply_is_sse_with_event_lines() {
    let server = LlmStandIn::start().await;
    server.push_reply(Reply::Text("SELECT 42".into()));
    let response = post(
        format!("{}/v1/messages?beta=true", server.base_url()),
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "q"}]}),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let events = events(&response.text().await.unwrap());
    let names: Vec<_> = events.iter().map(|(e, _)| e.clone().unwrap()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    for name in ["content_block_start", "content_block_stop", "message_delta"] {
        assert!(names.iter().any(|n| n == name), "{names:?}");
    }
    let text: String = events
        .iter()
        .filter(|(e, _)| e.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "SELECT 42");
    let sent = server.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.query.as_deref(), Some("beta=true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_streaming_reply_ends_with_done() {
    let server = LlmStandIn::start().await;
    server.push_reply(Reply::Text("SELECT 42".into()));
    let response = post(
        format!("{}/v1/chat/completions", server.base_url()),
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "q"}]}),
        None,
    )
    .await;
    let events = events(&response.text().await.unwrap());
    assert_eq!(events.last().map(|(_, d)| d.as_str()), Some("[DONE]"));
    assert!(events.iter().all(|(e, _)| e.is_none()));
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "SELECT 42");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_the_provider_shape_and_a_missing_key_is_refused_first() {
    let server = LlmStandIn::start().await;
    server.require_api_key("k");
    server.push_reply(Reply::Status(429));

    let refused = post(
        format!("{}/v1/chat/completions", server.base_url()),
        json!({"model": "m"}),
        None,
    )
    .await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_api_key");

    let limited = post(
        format!("{}/v1/messages", server.base_url()),
        json!({"model": "m"}),
        Some("k"),
    )
    .await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"].to_str().unwrap(), "1");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(server.request_count(), 2);
}
