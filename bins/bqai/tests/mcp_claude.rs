//! The real Claude Code CLI using bqai as an MCP server: `claude -p` with `--mcp-config`
//! pointing at `bqai mcp` (stdio), the model played by the stand-in API, scripted to call
//! `run_query` twice — a DELETE, then a count — and then answer. What reached the model is
//! read in the stand-in's request log: bqai's tools were offered, the DELETE came back as a
//! tool error naming `SQL_REJECTED`, the count came back as rows; bqai's history recorded both.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Spawning the binaries under test is the point of this test.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

use bqai_testkit::llm_server::{LlmStandIn, Reply, claude_bin};
use serde_json::{Value, json};

/// Every `tool_result` block of a request's messages, in order (the CLI sends the
/// conversation so far with each request).
fn tool_results(request: &Value) -> Vec<Value> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .cloned()
        .collect()
}

/// A tool result's text, whether its content is a string or text blocks.
fn text_of(result: &Value) -> String {
    match &result["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_calls_bqai_over_mcp_and_the_guard_answers_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bqai = env!("CARGO_BIN_EXE_bqai");
    let keys = Command::new(bqai)
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["keys", "create", "--name", "agent", "--role", "analyst"])
        .args(["--datasets", "shop"])
        .env("BQAI__AUTH__MODE", "api_key")
        .env("BQAI__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    let key = String::from_utf8_lossy(&keys.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("bqai_"))
        .unwrap()
        .to_string();

    let config = dir.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"bqai": {
            "command": bqai,
            "args": ["--data-dir", data.to_str().unwrap(), "mcp"],
            "env": {
                "BQAI_API_KEY": key,
                "BQAI__AUTH__MODE": "api_key",
                "BQAI__LOG__LEVEL": "warn",
            },
        }}})
        .to_string(),
    )
    .unwrap();

    let model = LlmStandIn::start().await;
    model.push_reply(Reply::ToolUse {
        name: "mcp__bqai__run_query".into(),
        input: json!({"sql": "DELETE FROM shop.orders WHERE TRUE"}),
    });
    model.push_reply(Reply::ToolUse {
        name: "mcp__bqai__run_query".into(),
        input: json!({"sql": "SELECT COUNT(*) AS orders FROM shop.orders"}),
    });
    model.push_reply(Reply::Text("The shop has 100000 orders.".into()));

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = tokio::process::Command::new(claude_bin())
        .args([
            "-p",
            "How many orders does the shop have? Then delete them.",
        ])
        .args(["--output-format", "json", "--max-turns", "5"])
        .args([
            "--mcp-config",
            config.to_str().unwrap(),
            "--strict-mcp-config",
        ])
        .args(["--allowedTools", "mcp__bqai__run_query"])
        .arg("--no-session-persistence")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("ANTHROPIC_BASE_URL", model.base_url())
        .env("ANTHROPIC_API_KEY", "sk-stand-in")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("API_TIMEOUT_MS", "30000")
        .env("MCP_TIMEOUT", "30000")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let requests = model.requests();
    assert!(
        out.status.success(),
        "claude failed: {stdout}\n{}\nrequests: {}",
        String::from_utf8_lossy(&out.stderr),
        requests.len()
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["result"], "The shop has 100000 orders.");

    let model_calls: Vec<&Value> = requests
        .iter()
        .filter(|r| r.path == "/v1/messages")
        .map(|r| &r.body)
        .collect();
    assert_eq!(model_calls.len(), 3, "{model_calls:#?}");
    // bqai's tools were offered to the model (this CLI lists MCP tools by name and loads
    // their schemas on demand).
    let first = model_calls[0].to_string();
    for tool in [
        "mcp__bqai__run_query",
        "mcp__bqai__ask",
        "mcp__bqai__describe_table",
    ] {
        assert!(first.contains(tool), "{tool} not offered: {first}");
    }

    // The DELETE reached bqai and was refused by the guard; the model read why.
    let after_first = tool_results(model_calls[1]);
    assert_eq!(after_first.len(), 1, "{:#}", model_calls[1]);
    assert_eq!(after_first[0]["is_error"], true, "{}", after_first[0]);
    assert!(
        text_of(&after_first[0]).starts_with("SQL_REJECTED: DELETE"),
        "{}",
        after_first[0]
    );

    // The count ran and its rows went back to the model.
    let after_second = tool_results(model_calls[2]);
    assert_eq!(after_second.len(), 2, "{:#}", model_calls[2]);
    assert_ne!(after_second[1]["is_error"], true, "{}", after_second[1]);
    let text = text_of(&after_second[1]);
    assert!(text.contains(r#""rows":[{"orders":100000}]"#), "{text}");

    // bqai's history recorded both, under the agent's key.
    let history = Command::new(bqai)
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["history", "list", "--format", "json"])
        .env("BQAI__LOG__LEVEL", "warn")
        .output()
        .unwrap();
    let entries: Value = serde_json::from_slice(&history.stdout).unwrap();
    let statuses: Vec<(&str, &str, &str)> = entries["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["sql"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
                e["principal"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let agent = keys_id(&key);
    assert!(
        statuses.contains(&(
            "SELECT COUNT(*) AS orders FROM shop.orders",
            "succeeded",
            agent.as_str()
        )),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(
            "DELETE FROM shop.orders WHERE TRUE",
            "rejected",
            agent.as_str()
        )),
        "{statuses:?}"
    );
}

/// A key's id: `bqai_<id>_<secret>`.
fn keys_id(key: &str) -> String {
    key.split('_').nth(1).unwrap().to_string()
}
