//! What the Claude Code CLI adds to a completion, cold (a process started for the call) and
//! warm (`llm.warm_processes`: the process that answered the previous call, its conversation
//! cleared), against the stand-in API, which answers at once — so the time is the CLI's, not
//! a model's.
//!
//! `cargo run --profile release -p bqai-llm --example cli_latency` (the pinned CLI from
//! `scripts/install-claude.sh`, or `BQAI_CLAUDE_BIN`). `CALLS=20` per mode; `PAUSE_MS=1500`
//! between calls, a user's think time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use bqai_core::llm::{Llm, LlmMessage, LlmRequest, PromptBlock};
use bqai_llm::{ClaudeCli, LlmConfig, LlmKind};
use bqai_testkit::llm_server::{LlmStandIn, claude_bin};
use secrecy::SecretString;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(question: &str) -> LlmRequest {
    LlmRequest {
        system: vec![PromptBlock {
            text: "You write one BigQuery SQL statement.\n\nCREATE TABLE shop.orders (id INT64, amount NUMERIC, created DATE)".into(),
            cache: true,
        }],
        messages: vec![LlmMessage::user(question)],
        max_tokens: 300,
    }
}

fn summary(label: &str, mut took: Vec<Duration>) {
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {} calls, min {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        took.len(),
        ms(took[0]),
        ms(took[took.len() / 2]),
        ms(took[took.len() * 9 / 10]),
        ms(took[took.len() - 1]),
    );
}

#[tokio::main]
async fn main() {
    let calls = env_or("CALLS", 20) as usize;
    let pause = Duration::from_millis(env_or("PAUSE_MS", 1500));
    let server = LlmStandIn::start().await;
    let work = tempfile::tempdir().unwrap();
    for (label, warm) in [("cold", 0), ("warm", 1)] {
        let config = LlmConfig {
            kind: LlmKind::ClaudeCli,
            command: Some(claude_bin()),
            base_url: Some(server.base_url()),
            api_key: Some(SecretString::from("sk-ant-latency")),
            model: Some("claude-latency".into()),
            max_retries: 0,
            work_dir: Some(work.path().join(label)),
            warm_processes: warm,
            ..LlmConfig::default()
        };
        let llm = ClaudeCli::new(&config, work.path()).unwrap();
        // The first call of each mode is cold either way (and warms the second mode up).
        llm.complete(&request("q0")).await.unwrap();
        let mut took = Vec::new();
        for i in 1..=calls {
            tokio::time::sleep(pause).await;
            let started = Instant::now();
            llm.complete(&request(&format!("q{i}"))).await.unwrap();
            took.push(started.elapsed());
        }
        summary(label, took);
        let (hits, misses, _) = llm.warm_counts();
        println!("  warm processes used: {hits}, calls that started their own: {misses}");
    }
    // The stand-in's own latency, for reference: one POST straight to it.
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "m", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "q"}]});
    let mut took = Vec::new();
    for _ in 0..calls {
        let started = Instant::now();
        client
            .post(format!("{}/v1/messages", server.base_url()))
            .header("x-api-key", "sk-ant-latency")
            .json(&body)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        took.push(started.elapsed());
    }
    summary("stand-in API alone", took);
}
