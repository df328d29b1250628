//! The ask pipeline through real LLM adapters, configured the way an operator configures them
//! (`[llm]` settings), against the stand-in Anthropic/OpenAI server: the Claude Code CLI,
//! the Anthropic Messages API and an OpenAI-compatible server.

use bqai_llm::LlmKind;
use bqai_testkit::llm_server::{LlmStandIn, Reply, claude_bin};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

const KEY: &str = "sk-test-ask";

const REVENUE_SQL: &str = "Here is the query:\n\n```sql\nSELECT c.country AS country, \
SUM(i.quantity * i.unit_price * (1 - i.discount)) AS revenue\nFROM shop.order_items AS i\n\
JOIN shop.orders AS o ON i.order_id = o.order_id\nJOIN shop.customers AS c ON o.customer_id = \
c.customer_id\nWHERE EXTRACT(YEAR FROM o.order_date) = 2024\nGROUP BY c.country\n\
ORDER BY revenue DESC\n```\nExplanation: Revenue after discounts per customer country for 2024 orders.";

async fn app_with(kind: LlmKind, stand_in: &LlmStandIn, timeout_ms: u64) -> TestApp {
    let base = match kind {
        LlmKind::Openai => format!("{}/v1", stand_in.base_url()),
        _ => stand_in.base_url(),
    };
    spawn_app_with(move |s| {
        s.llm.kind = kind;
        s.llm.base_url = Some(base);
        s.llm.api_key = Some(SecretString::from(KEY));
        s.llm.model = Some("stand-in-model".into());
        s.llm.timeout_ms = timeout_ms;
        s.llm.max_retries = 0;
        if kind == LlmKind::ClaudeCli {
            s.llm.command = Some(claude_bin());
        }
    })
    .await
}

async fn revenue_question_goes_through(kind: LlmKind, expected_kind: &str) {
    let stand_in = LlmStandIn::start().await;
    stand_in.require_api_key(KEY);
    stand_in.push_reply(Reply::Text(REVENUE_SQL.into()));
    let app = app_with(kind, &stand_in, 60_000).await;

    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "total revenue by country in 2024"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["generator"]["kind"], expected_kind);
    assert_eq!(r.body["generator"]["model"], "stand-in-model");
    assert_eq!(r.body["attempts"], 1);
    assert_eq!(r.body["result"]["row_count"], 10);
    assert!(
        r.body["explanation"]
            .as_str()
            .unwrap()
            .contains("Revenue after discounts")
    );
    assert!(
        r.body["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{}",
        r.body["usage"]
    );

    // The model saw our rules and the schema, and the question as data.
    let req = stand_in.last_request().expect("the stand-in was called");
    let system = req.system_text();
    assert!(system.contains("Table shop.orders"), "{system}");
    assert!(
        system.contains("revenue"),
        "the semantic model's measures: {system}"
    );
    assert!(system.contains("CANNOT_ANSWER"), "{system}");
    let user = req.last_user_text().unwrap();
    assert!(user.contains("total revenue by country in 2024"), "{user}");

    let h = app.get("/health").await;
    assert_eq!(h.body["components"]["generator"]["kind"], expected_kind);
    let hist = app.get("/api/v1/history?kind=ask").await;
    assert_eq!(hist.body["data"][0]["ask"]["generator"], expected_kind);
    assert!(
        hist.body["data"][0]["ask"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_claude_cli_answers_through_the_pipeline() {
    revenue_question_goes_through(LlmKind::ClaudeCli, "claude-cli").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_api_answers_through_the_pipeline() {
    revenue_question_goes_through(LlmKind::Anthropic, "anthropic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_compatible_server_answers_through_the_pipeline() {
    revenue_question_goes_through(LlmKind::Openai, "openai").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_is_told_what_was_wrong_and_corrects_itself() {
    let stand_in = LlmStandIn::start().await;
    stand_in.push_reply(Reply::Text(
        "```sql\nSELECT revenue FROM shop.orders\n```".into(),
    ));
    stand_in.push_reply(Reply::Text(
        "Sure.\n```SQL\r\nDELETE FROM shop.orders\r\n```".into(),
    ));
    stand_in.push_reply(Reply::Text(
        "SELECT COUNT(*) AS orders FROM shop.orders WHERE status = 'cancelled'".into(),
    ));
    let app = app_with(LlmKind::Anthropic, &stand_in, 60_000).await;
    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "how many orders were cancelled?"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["attempts"], 3);
    assert!(r.body["result"]["rows"][0]["orders"].as_u64().unwrap() > 0);

    let requests = stand_in.requests();
    assert_eq!(requests.len(), 3);
    let second = requests[1].messages();
    assert_eq!(
        second.len(),
        3,
        "question, the failed SQL, the error: {second:?}"
    );
    let correction = second[2].to_string();
    assert!(
        correction.contains("revenue"),
        "the engine's complaint is fed back: {correction}"
    );
    let third = requests[2].messages().last().unwrap().to_string();
    assert!(
        third.contains("DELETE"),
        "the guard's refusal is fed back: {third}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_is_down_or_slow_is_503_or_504() {
    let stand_in = LlmStandIn::start().await;
    stand_in.push_reply(Reply::Status(500));
    let app = app_with(LlmKind::Anthropic, &stand_in, 60_000).await;
    let r = app
        .post_json("/api/v1/ask", &json!({"question": "how many orders?"}))
        .await;
    r.assert_error(503, "LLM_UNAVAILABLE");

    stand_in.push_reply(Reply::Hang);
    let app = app_with(LlmKind::Anthropic, &stand_in, 500).await;
    let started = std::time::Instant::now();
    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "how many orders in 2024?"}),
        )
        .await;
    r.assert_error(504, "LLM_TIMEOUT");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    let refused = LlmStandIn::start().await;
    refused.require_api_key("another-key");
    let app = app_with(LlmKind::Anthropic, &refused, 60_000).await;
    let r = app
        .post_json("/api/v1/ask", &json!({"question": "how many orders?"}))
        .await;
    r.assert_error(503, "LLM_AUTH_FAILED");
    assert!(
        !r.body.to_string().contains(KEY),
        "the key never reaches a response"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_price_table_gives_http_adapters_a_cost_that_adds_up_in_analytics() {
    let stand_in = LlmStandIn::start().await;
    stand_in.require_api_key(KEY);
    stand_in.push_reply(Reply::Text(REVENUE_SQL.into()));
    let base = stand_in.base_url();
    let app = spawn_app_with(move |s| {
        s.llm.kind = LlmKind::Anthropic;
        s.llm.base_url = Some(base);
        s.llm.api_key = Some(SecretString::from(KEY));
        s.llm.model = Some("stand-in-model".into());
        s.llm.max_retries = 0;
        // Priced by prefix: the model answers as "stand-in-model".
        s.llm
            .prices
            .insert("stand-in".into(), crate::helpers::stand_in_price());
    })
    .await;
    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "total revenue by country in 2024"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let hist = app.get("/api/v1/history?kind=ask").await;
    let ask = &hist.body["data"][0]["ask"];
    let tokens = |f: &str| ask[f].as_u64().unwrap() as f64;
    let expected = tokens("input_tokens") * 3.0 / 1e6 + tokens("output_tokens") * 15.0 / 1e6;
    assert!(expected > 0.0);
    let cost = ask["cost_usd"]
        .as_f64()
        .expect("a cost from the price table");
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");

    let summary = app.get("/api/v1/analytics/summary").await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(summary.body["total"]["llm_calls"], 1);
    assert_eq!(summary.body["total"]["asks"], 1);
    let total = summary.body["total"]["llm_cost_usd"].as_f64().unwrap();
    assert!((total - expected).abs() < 1e-12, "{total} vs {expected}");

    // The same numbers for Prometheus, by generator.
    let text = app.text("/metrics").await;
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
    };
    let generator = ask["generator"].as_str().unwrap();
    assert_eq!(
        value(&format!(
            "bqai_llm_calls_total{{generator=\"{generator}\"}}"
        )),
        1.0
    );
    assert_eq!(
        value(&format!(
            "bqai_llm_tokens_total{{generator=\"{generator}\",direction=\"input\"}}"
        )),
        tokens("input_tokens")
    );
    let priced = value(&format!(
        "bqai_llm_cost_usd_total{{generator=\"{generator}\"}}"
    ));
    assert!((priced - expected).abs() < 1e-12, "{priced} vs {expected}");
}
