//! `AnthropicApi` against the stand-in's `/v1/messages`.

use std::time::{Duration, Instant};

use bqai_core::llm::{Llm, LlmErrorKind};
use bqai_llm::{AnthropicApi, LlmConfig, LlmKind};
use bqai_testkit::llm_server::{LlmStandIn, RETRY_AFTER_SECS, Reply};
use secrecy::SecretString;

use crate::common::{SCHEMA, assert_prompt, config, request, stand_in_usage};

async fn setup() -> (LlmStandIn, LlmConfig) {
    let server = LlmStandIn::start().await;
    server.require_api_key("sk-ant-test");
    let config = config(LlmKind::Anthropic, server.base_url(), "sk-ant-test");
    (server, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn success_sends_cached_system_blocks_and_reads_usage() {
    let (server, config) = setup().await;
    server.push_reply(Reply::Text("SELECT SUM(amount) FROM shop.orders".into()));
    let llm = AnthropicApi::new(&config).unwrap();

    let response = llm.complete(&request("total sales?")).await.unwrap();
    assert_eq!(response.text, "SELECT SUM(amount) FROM shop.orders");
    assert_eq!(response.model, "stand-in-model");
    assert_eq!(response.usage, stand_in_usage());
    assert_eq!(response.cost_usd, None);

    let sent = server.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.body["model"], "stand-in-model");
    assert_eq!(sent.body["max_tokens"], 300);
    assert!(sent.body.get("stream").is_none());
    let system = sent.body["system"].as_array().unwrap();
    assert_eq!(system.len(), 3);
    assert_eq!(system[1]["text"], SCHEMA);
    assert_eq!(system[1]["cache_control"]["type"], "ephemeral");
    assert!(system[0].get("cache_control").is_none());
    assert!(system[2].get("cache_control").is_none());
    assert_eq!(sent.last_user_text().as_deref(), Some("total sales?"));
    assert_eq!(
        llm.info().model.as_deref(),
        Some("stand-in-model"),
        "info reports the configured model"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_token_is_sent_as_bearer() {
    let (server, mut config) = setup().await;
    config.api_key = None;
    config.auth_token = Some(SecretString::from("sk-ant-test"));
    let llm = AnthropicApi::new(&config).unwrap();
    llm.complete(&request("q")).await.unwrap();
    let sent = server.last_request().unwrap();
    assert_eq!(sent.header("authorization"), Some("Bearer sk-ant-test"));
    assert_eq!(sent.header("x-api-key"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_is_auth_and_not_retried() {
    let (server, mut config) = setup().await;
    config.api_key = Some(SecretString::from("sk-ant-wrong"));
    config.max_retries = 2;
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Auth);
    assert!(!err.message.contains("sk-ant"), "{}", err.message);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_reports_retry_after() {
    let (server, config) = setup().await;
    server.push_reply(Reply::Status(429));
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(RETRY_AFTER_SECS)));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_retry_waits_for_retry_after_then_succeeds() {
    let (server, mut config) = setup().await;
    config.max_retries = 1;
    server.push_reply(Reply::Status(429));
    server.push_reply(Reply::Text("SELECT 2".into()));
    let started = Instant::now();
    let response = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap();
    assert_eq!(response.text, "SELECT 2");
    assert!(started.elapsed() >= Duration::from_secs(RETRY_AFTER_SECS));
    assert_eq!(server.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_that_would_outlive_the_deadline_is_not_attempted() {
    let (server, mut config) = setup().await;
    config.max_retries = 3;
    config.timeout_ms = 500;
    server.set_default_reply(Reply::Status(429));
    let started = Instant::now();
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind,
        LlmErrorKind::RateLimited,
        "the cause, not a timeout"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_unavailable() {
    let (server, mut config) = setup().await;
    config.max_retries = 2;
    server.set_default_reply(Reply::Status(500));
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Unavailable);
    assert_eq!(server.request_count(), 1 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn overloaded_is_overloaded() {
    let (server, config) = setup().await;
    for code in [529, 503] {
        server.push_reply(Reply::Status(code));
        let err = AnthropicApi::new(&config)
            .unwrap()
            .complete(&request("q"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Overloaded, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_server_times_out_on_time() {
    let (server, mut config) = setup().await;
    config.timeout_ms = 700;
    config.max_retries = 2;
    server.set_default_reply(Reply::Hang);
    let started = Instant::now();
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Timeout);
    assert_prompt(started.elapsed(), Duration::from_millis(700));
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_unavailable() {
    let url = {
        let server = LlmStandIn::start().await;
        server.base_url()
    };
    // Give the dropped stand-in's listener a moment to close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut config = config(LlmKind::Anthropic, url, "k");
    config.max_retries = 1;
    let err = AnthropicApi::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Unavailable);
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_beyond_the_queue_are_busy() {
    let (server, mut config) = setup().await;
    config.max_concurrency = 1;
    config.max_queue = 0;
    server.set_default_reply(Reply::delayed_text(Duration::from_millis(400), "SELECT 1"));
    let llm = AnthropicApi::new(&config).unwrap();
    let req = request("q");
    let (a, b) = tokio::join!(llm.complete(&req), llm.complete(&req));
    let busy = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind == LlmErrorKind::Busy))
        .count();
    assert_eq!(busy, 1, "{a:?} {b:?}");
    assert!(a.is_ok() || b.is_ok());
    assert_eq!(server.max_in_flight(), 1);
}
