//! `/mcp`, the streamable HTTP transport of the MCP server, spoken as raw JSON-RPC: what the
//! protocol exchange looks like on the wire (sessions, event streams, plain JSON without
//! sessions), and that MCP calls are authenticated, rate-limited, charged and audited like
//! REST calls. The official Python SDK drives both transports in scripts/mcp-clients.sh.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Keys, TestApp, spawn_auth_app};

/// A raw MCP client over HTTP.
struct Mcp<'a> {
    app: &'a TestApp,
    key: Option<String>,
    session: Option<String>,
    next_id: u64,
}

/// One answer: status, headers, and the JSON-RPC message (from a JSON body or the event
/// stream), if any.
struct Answer {
    status: u16,
    content_type: String,
    session: Option<String>,
    message: Value,
}

impl<'a> Mcp<'a> {
    fn new(app: &'a TestApp, key: Option<&str>) -> Self {
        Self {
            app,
            key: key.map(str::to_owned),
            session: None,
            next_id: 1,
        }
    }

    async fn post(&mut self, message: &Value) -> Answer {
        let mut req = self
            .app
            .client
            .post(format!("{}/mcp", self.app.address))
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(message);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let session = header("mcp-session-id");
        let text = resp.text().await.unwrap();
        let message = if content_type.starts_with("text/event-stream") {
            // The last data line that is a JSON-RPC response.
            text.lines()
                .rev()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|m| m.get("id").is_some())
                .unwrap_or(Value::Null)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Answer {
            status,
            content_type,
            session,
            message,
        }
    }

    async fn request(&mut self, method: &str, params: Value) -> Answer {
        let id = self.next_id;
        self.next_id += 1;
        self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    async fn initialize(&mut self) -> Answer {
        let answer = self.request("initialize", init_params()).await;
        assert_eq!(answer.status, 200, "{}", answer.message);
        self.session.clone_from(&answer.session);
        let note = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(note.status, 202);
        answer
    }

    /// `tools/call`: the tool result.
    async fn call(&mut self, tool: &str, args: Value) -> Value {
        let answer = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.message);
        answer.message["result"].clone()
    }
}

fn init_params() -> Value {
    json!({
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bqai-tests", "version": "1"},
    })
}

fn error_code(result: &Value) -> &str {
    assert_eq!(result["isError"], true, "{result}");
    result["structuredContent"]["error"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// The audit events whose route is `route`, once at least `n` are there (the log is written
/// in batches).
async fn audited(app: &TestApp, keys: &Keys, route: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let r = app
            .get_as(&keys.admin, "/api/v1/admin/audit?page_size=500")
            .await;
        let events: Vec<Value> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["route"] == route)
            .cloned()
            .collect();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} audit events for {route}");
}

#[tokio::test]
async fn a_call_without_a_credential_is_refused_and_audited() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let mut anonymous = Mcp::new(&app, None);
    let answer = anonymous.request("initialize", init_params()).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.message["error"]["code"], "UNAUTHENTICATED");
    let mut wrong = Mcp::new(&app, Some("bqai_nope_nothing"));
    assert_eq!(wrong.request("initialize", init_params()).await.status, 401);
    let denied = audited(&app, &keys, "POST /mcp", 1).await;
    assert!(
        denied.iter().all(|e| e["outcome"] == "denied"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn tools_run_the_guarded_pipeline_and_each_call_is_audited() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let mut mcp = Mcp::new(&app, Some(&keys.analyst));
    let init = mcp.initialize().await;
    assert!(init.session.is_some(), "sessions are on by default");
    assert_eq!(init.message["result"]["serverInfo"]["name"], "bqai");

    let tools = mcp.request("tools/list", json!({})).await;
    let names: Vec<&str> = tools.message["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_datasets",
            "list_tables",
            "describe_table",
            "preview_table",
            "run_query",
            "estimate_query",
            "ask",
            "get_history",
            "export"
        ]
    );

    let result = mcp
        .call(
            "run_query",
            json!({"sql": "SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status ORDER BY status"}),
        )
        .await;
    assert_eq!(result["isError"], false, "{result}");
    let rows = result["structuredContent"]["rows"].as_array().unwrap();
    assert!(rows.len() >= 3, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("| status | n |"), "{text}");
    let query_id = result["structuredContent"]["query_id"].as_str().unwrap();
    // The history has it, under the key, as a REST query would be.
    let entry = app
        .get_as(&keys.analyst, &format!("/api/v1/history/{query_id}"))
        .await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.body["status"], "succeeded");

    // The key reads `shop` only; `secret` exists but is not its.
    let denied = mcp
        .call("run_query", json!({"sql": "SELECT * FROM secret.salaries"}))
        .await;
    assert_eq!(error_code(&denied), "FORBIDDEN");
    let rejected = mcp
        .call(
            "run_query",
            json!({"sql": "DELETE FROM shop.orders WHERE TRUE"}),
        )
        .await;
    assert_eq!(error_code(&rejected), "SQL_REJECTED");
    let text = rejected["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("SQL_REJECTED: "), "{text}");
    // An unknown tool is a protocol error, not a tool result.
    let unknown = mcp
        .request("tools/call", json!({"name": "drop_table", "arguments": {}}))
        .await;
    assert_eq!(
        unknown.message["error"]["code"], -32602,
        "{}",
        unknown.message
    );

    let events = audited(&app, &keys, "MCP tools/call run_query", 3).await;
    let allowed: Vec<&Value> = events
        .iter()
        .filter(|e| e["outcome"] == "allowed")
        .collect();
    assert_eq!(allowed.len(), 1, "{events:?}");
    assert_eq!(allowed[0]["targets"], json!(["shop.orders"]));
    assert!(allowed[0]["sql_fingerprint"].is_string());
    assert_eq!(allowed[0]["action"], "query");
    let codes: Vec<&str> = events
        .iter()
        .filter_map(|e| e["error_code"].as_str())
        .collect();
    assert!(
        codes.contains(&"FORBIDDEN") && codes.contains(&"SQL_REJECTED"),
        "{codes:?}"
    );
    assert!(
        events
            .iter()
            .filter(|e| e["outcome"] != "allowed")
            .all(|e| e["outcome"] == "denied"),
        "{events:?}"
    );
    // The HTTP requests themselves are not audited a second time.
    let r = app
        .get_as(&keys.admin, "/api/v1/admin/audit?page_size=500")
        .await;
    assert!(
        !r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["route"] == "POST /mcp" && e["outcome"] == "allowed"),
        "{}",
        r.body
    );

    // Ending the session: a later request with its id is 404.
    let end = app
        .client
        .delete(format!("{}/mcp", app.address))
        .bearer_auth(&keys.analyst)
        .header("Mcp-Session-Id", mcp.session.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(end.status().as_u16(), 204);
    let after = mcp.request("tools/list", json!({})).await;
    assert_eq!(after.status, 404);
}

#[tokio::test]
async fn mcp_calls_share_the_keys_rate_limit_and_quota_with_rest() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let created = app
        .post_as(
            &keys.admin,
            "/api/v1/admin/keys",
            &json!({"name": "agent", "role": "analyst", "datasets": ["shop"], "rate_limit_per_minute": 12}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let mut mcp = Mcp::new(&app, Some(&key));
    mcp.initialize().await;
    // A query weighs 5: two fit in 12, the third does not.
    for _ in 0..2 {
        let r = mcp
            .call("run_query", json!({"sql": "SELECT 1 AS one"}))
            .await;
        assert_eq!(r["isError"], false, "{r}");
    }
    let limited = mcp
        .call("run_query", json!({"sql": "SELECT 1 AS one"}))
        .await;
    assert_eq!(error_code(&limited), "RATE_LIMITED");
    assert!(limited["structuredContent"]["error"]["retry_after_secs"].as_u64() >= Some(1));
    // The same budget as REST: a REST query is refused too.
    app.post_as(&key, "/api/v1/query", &json!({"sql": "SELECT 1"}))
        .await
        .assert_error(429, "RATE_LIMITED");

    // The daily byte quota is the key's across both.
    let created = app
        .post_as(
            &keys.admin,
            "/api/v1/admin/keys",
            &json!({"name": "frugal", "role": "analyst", "datasets": ["shop"], "daily_byte_quota": 1}),
        )
        .await;
    let frugal = created.body["key"].as_str().unwrap().to_owned();
    let mut mcp = Mcp::new(&app, Some(&frugal));
    mcp.initialize().await;
    let over = mcp
        .call("run_query", json!({"sql": "SELECT * FROM shop.orders"}))
        .await;
    assert_eq!(error_code(&over), "QUOTA_EXCEEDED", "{over}");
}

#[tokio::test]
async fn without_sessions_every_request_stands_alone_in_plain_json() {
    let (app, keys) = spawn_auth_app(|s| s.mcp.sessions = false).await;
    let mut mcp = Mcp::new(&app, Some(&keys.analyst));
    let init = mcp.request("initialize", init_params()).await;
    assert_eq!(init.status, 200);
    assert!(init.session.is_none(), "no session id");
    assert!(
        init.content_type.starts_with("application/json"),
        "{}",
        init.content_type
    );
    // No session to carry: a tool call on its own works.
    let r = mcp.call("list_tables", json!({"dataset_id": "shop"})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert!(r["content"][0]["text"].as_str().unwrap().contains("orders"));
}

#[tokio::test]
async fn mcp_can_be_turned_off() {
    let (app, keys) = spawn_auth_app(|s| s.mcp.enabled = false).await;
    let mut mcp = Mcp::new(&app, Some(&keys.analyst));
    let answer = mcp.request("initialize", init_params()).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.message["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn resources_and_the_prompt_stay_within_the_keys_scope() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let mut mcp = Mcp::new(&app, Some(&keys.analyst));
    mcp.initialize().await;
    let list = mcp.request("resources/list", json!({})).await;
    let uris: Vec<&str> = list.message["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(
        uris.contains(&"bqai://datasets/shop/tables/orders"),
        "{uris:?}"
    );
    assert!(
        uris.contains(&"bqai://datasets/shop/semantic-model"),
        "{uris:?}"
    );
    assert!(!uris.iter().any(|u| u.contains("secret")), "{uris:?}");
    let read = mcp
        .request(
            "resources/read",
            json!({"uri": "bqai://datasets/secret/tables/salaries"}),
        )
        .await;
    assert!(
        read.message["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("FORBIDDEN"),
        "{}",
        read.message
    );
    let prompt = mcp
        .request(
            "prompts/get",
            json!({"name": "explore_dataset", "arguments": {"dataset_id": "shop"}}),
        )
        .await;
    let text = prompt.message["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("- orders") && text.contains("revenue = "),
        "{text}"
    );
}

/// What a web page could send without a CORS preflight (a "simple" `text/plain` POST) or
/// through DNS rebinding (another `Host`) never reaches the MCP server, even with
/// authentication off.
#[tokio::test]
async fn cross_site_requests_never_reach_the_tools() {
    let app = crate::helpers::spawn_app().await;
    let post = |content_type: &'static str, host: &'static str| {
        app.client
            .post(format!("{}/mcp", app.address))
            .header("Content-Type", content_type)
            .header("Host", host)
            .header("Accept", "application/json, text/event-stream")
            .header("Origin", "https://evil.example")
            .body(init_params_request().to_string())
            .send()
    };
    let plain = post("text/plain", "127.0.0.1").await.unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    let rebound = post("application/json", "evil.example").await.unwrap();
    assert_eq!(rebound.status().as_u16(), 400);
    let body: Value = rebound.json().await.unwrap();
    assert_eq!(body["error"]["code"], "HOST_NOT_ALLOWED");
    // A preflight from a page of another origin gets no CORS permission.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/mcp", app.address))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

fn init_params_request() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init_params()})
}
