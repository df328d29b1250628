//! `OpenAiCompatible` against the stand-in's `/v1/chat/completions`.

use std::time::{Duration, Instant};

use bqai_core::llm::{Llm, LlmErrorKind, LlmUsage};
use bqai_llm::{LlmConfig, LlmKind, OpenAiCompatible};
use bqai_testkit::llm_server::{LlmStandIn, RETRY_AFTER_SECS, Reply, usage};
use secrecy::SecretString;

use crate::common::{INSTRUCTIONS, SCHEMA, assert_prompt, config, request};

async fn setup() -> (LlmStandIn, LlmConfig) {
    let server = LlmStandIn::start().await;
    server.require_api_key("sk-proj-test");
    let config = config(
        LlmKind::Openai,
        format!("{}/v1", server.base_url()),
        "sk-proj-test",
    );
    (server, config)
}

async fn fail(config: &LlmConfig) -> bqai_core::llm::LlmError {
    OpenAiCompatible::new(config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn success_sends_bearer_and_system_message_and_reads_usage() {
    let (server, config) = setup().await;
    server.push_reply(Reply::Text("SELECT COUNT(*) FROM shop.orders".into()));
    let llm = OpenAiCompatible::new(&config).unwrap();

    let response = llm.complete(&request("how many orders?")).await.unwrap();
    assert_eq!(response.text, "SELECT COUNT(*) FROM shop.orders");
    assert_eq!(response.model, "stand-in-model");
    assert_eq!(
        response.usage,
        LlmUsage {
            input_tokens: usage::INPUT,
            output_tokens: usage::OUTPUT,
            cache_read_tokens: usage::CACHE_READ,
            cache_creation_tokens: 0,
        }
    );

    let sent = server.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-proj-test"));
    assert_eq!(sent.header("x-api-key"), None);
    assert_eq!(sent.body["model"], "stand-in-model");
    assert_eq!(sent.body["max_tokens"], 300);
    assert_eq!(sent.body["temperature"], 0);
    assert_eq!(sent.body["messages"][0]["role"], "system");
    let system = sent.system_text();
    assert!(
        system.starts_with(INSTRUCTIONS) && system.contains(SCHEMA),
        "{system}"
    );
    assert_eq!(sent.last_user_text().as_deref(), Some("how many orders?"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_server_needs_no_key() {
    let server = LlmStandIn::start().await;
    let mut config = config(LlmKind::Openai, format!("{}/v1/", server.base_url()), "x");
    config.api_key = None;
    let response = OpenAiCompatible::new(&config)
        .unwrap()
        .complete(&request("q"))
        .await
        .unwrap();
    assert_eq!(response.text, "SELECT 1");
    assert_eq!(server.last_request().unwrap().header("authorization"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_is_auth() {
    let (server, mut config) = setup().await;
    config.api_key = Some(SecretString::from("sk-proj-wrong"));
    config.max_retries = 2;
    assert_eq!(fail(&config).await.kind, LlmErrorKind::Auth);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_reports_retry_after() {
    let (server, config) = setup().await;
    server.push_reply(Reply::Status(429));
    let err = fail(&config).await;
    assert_eq!(err.kind, LlmErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(RETRY_AFTER_SECS)));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_unavailable() {
    let (server, mut config) = setup().await;
    config.max_retries = 2;
    server.set_default_reply(Reply::Status(500));
    assert_eq!(fail(&config).await.kind, LlmErrorKind::Unavailable);
    assert_eq!(server.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_server_times_out_on_time() {
    let (server, mut config) = setup().await;
    config.timeout_ms = 700;
    server.set_default_reply(Reply::Hang);
    let started = Instant::now();
    assert_eq!(fail(&config).await.kind, LlmErrorKind::Timeout);
    assert_prompt(started.elapsed(), Duration::from_millis(700));
    assert_eq!(server.request_count(), 1);
}
