//! A stand-in language-model API for tests: the Anthropic Messages route (JSON and SSE, as the
//! Claude Code CLI uses it) and the OpenAI Chat Completions route, answering from a script.
//!
//! Tests script replies ([`Reply`]) in order, then inspect what arrived
//! ([`LlmStandIn::requests`]): bodies, headers, and how many calls overlapped. Nothing here
//! talks to a real provider, so the adapters' tests cost nothing and run offline.
//!
//! ```no_run
//! # async fn demo() {
//! use bqai_testkit::llm_server::{LlmStandIn, Reply};
//! let server = LlmStandIn::start().await;
//! server.push_reply(Reply::Status(429));
//! server.push_reply(Reply::Text("SELECT 1".into()));
//! // point an adapter at server.base_url() ...
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Token counts every successful reply reports, so adapters' usage parsing can be checked.
pub mod usage {
    /// Prompt tokens at the full rate.
    pub const INPUT: u64 = 21;
    /// Generated tokens.
    pub const OUTPUT: u64 = 13;
    /// Prompt tokens read from the cache.
    pub const CACHE_READ: u64 = 34;
    /// Prompt tokens written to the cache.
    pub const CACHE_CREATION: u64 = 55;
}

/// The `retry-after` (seconds) sent with every 429.
pub const RETRY_AFTER_SECS: u64 = 1;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A successful completion with this text: SSE when the request asks for `stream: true`,
    /// plain JSON otherwise.
    Text(String),
    /// An error status with the provider's error body (and `retry-after` for 429).
    Status(u16),
    /// Read the request and never answer (until the client gives up or the stand-in drops).
    Hang,
    /// Wait, then answer as the inner reply.
    Delay(Duration, Box<Reply>),
    /// The model calls a tool (Anthropic route only: `tool_use` content, `stop_reason:
    /// "tool_use"`); the client is expected to run it and send a `tool_result` back.
    ToolUse {
        /// The tool's name as the client listed it (`mcp__bqai__run_query`).
        name: String,
        /// Its input.
        input: Value,
    },
}

impl Reply {
    /// `Delay(after, Text(text))`.
    pub fn delayed_text(after: Duration, text: impl Into<String>) -> Self {
        Reply::Delay(after, Box::new(Reply::Text(text.into())))
    }
}

/// A request that reached a model route.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `/v1/messages` or `/v1/chat/completions` (the query string is in `query`).
    pub path: String,
    /// The query string, if any (the CLI adds `beta=true`).
    pub query: Option<String>,
    /// Every header, names lowercased (repeated headers joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
}

impl RecordedRequest {
    /// A header by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The system prompt as one string: Anthropic's `system` (string or text blocks, joined
    /// with blank lines) or OpenAI's system messages.
    pub fn system_text(&self) -> String {
        match self.body.get("system") {
            Some(system) => content_text(system),
            None => self
                .messages()
                .iter()
                .filter(|m| m["role"] == "system")
                .map(|m| content_text(&m["content"]))
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }

    /// The text of the last user message (string content or text blocks).
    pub fn last_user_text(&self) -> Option<String> {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
    }

    /// The `messages` array (empty if absent).
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
        _ => String::new(),
    }
}

#[derive(Debug)]
struct State {
    script: VecDeque<Reply>,
    default_reply: Reply,
    requests: Vec<RecordedRequest>,
    probes: usize,
    api_key: Option<String>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running stand-in; stops (and drops hanging requests) when dropped.
#[derive(Debug)]
pub struct LlmStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl LlmStandIn {
    /// Starts on `127.0.0.1`, on a free port. The default reply is `Text("SELECT 1")`.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the LLM stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                script: VecDeque::new(),
                default_reply: Reply::Text("SELECT 1".into()),
                requests: Vec::new(),
                probes: 0,
                api_key: None,
            }),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let (shutdown, stop) = watch::channel(false);
        let state = Arc::clone(&shared);
        tokio::spawn(crate::serve::serve(
            listener,
            move |req| handle(Arc::clone(&state), req),
            stop,
        ));
        Self {
            addr,
            shared,
            shutdown,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Appends a reply to the script; replies are used in order, one per model request.
    pub fn push_reply(&self, reply: Reply) {
        self.shared.state().script.push_back(reply);
    }

    /// The reply used once the script is exhausted.
    pub fn set_default_reply(&self, reply: Reply) {
        self.shared.state().default_reply = reply;
    }

    /// Answers 401 (before consuming the script) unless the request carries `key` as
    /// `x-api-key` or `Authorization: Bearer`.
    pub fn require_api_key(&self, key: impl Into<String>) {
        self.shared.state().api_key = Some(key.into());
    }

    /// Every model request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.clone()
    }

    /// The most recent model request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.state().requests.last().cloned()
    }

    /// How many model requests arrived.
    pub fn request_count(&self) -> usize {
        self.shared.state().requests.len()
    }

    /// How many `HEAD /` or `GET /` probes arrived (the CLI may check connectivity).
    pub fn probe_count(&self) -> usize {
        self.shared.state().probes
    }

    /// The most model requests ever being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Model requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for LlmStandIn {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Which API shape a model route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Anthropic,
    OpenAi,
}

/// Counts a model request as in flight until its response is produced or it is dropped.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let flavor = match (req.method(), path.as_str()) {
        (&Method::HEAD | &Method::GET, "/") => {
            shared.state().probes += 1;
            return Ok(plain(StatusCode::OK, "text/plain", Bytes::new()));
        }
        (&Method::POST, "/v1/messages") => Flavor::Anthropic,
        (&Method::POST, "/v1/chat/completions") => Flavor::OpenAi,
        _ => {
            return Ok(plain(
                StatusCode::NOT_FOUND,
                "text/plain",
                "no such route".into(),
            ));
        }
    };
    let mut headers = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "unreadable body".into(),
            ));
        }
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = body["stream"] == true;
    let model = body["model"]
        .as_str()
        .unwrap_or("stand-in-model")
        .to_string();
    let recorded = RecordedRequest {
        path,
        query,
        headers,
        body,
    };

    let _in_flight = InFlight::enter(&shared);
    let reply = {
        let mut state = shared.state();
        let authorized = match &state.api_key {
            None => true,
            Some(key) => {
                recorded.header("x-api-key") == Some(key.as_str())
                    || recorded.header("authorization") == Some(format!("Bearer {key}").as_str())
            }
        };
        state.requests.push(recorded);
        if authorized {
            let default = state.default_reply.clone();
            state.script.pop_front().unwrap_or(default)
        } else {
            Reply::Status(401)
        }
    };
    Ok(respond(reply, flavor, stream, &model).await)
}

async fn respond(
    mut reply: Reply,
    flavor: Flavor,
    stream: bool,
    model: &str,
) -> Response<Full<Bytes>> {
    loop {
        match reply {
            Reply::Delay(after, inner) => {
                tokio::time::sleep(after).await;
                reply = *inner;
            }
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Status(code) => return error_response(code, flavor),
            Reply::ToolUse { name, input } => {
                let id = format!(
                    "toolu_standin_{}",
                    TOOL_USE_IDS.fetch_add(1, Ordering::Relaxed)
                );
                return match (flavor, stream) {
                    (Flavor::Anthropic, false) => {
                        json_response(anthropic_tool_use(&id, &name, &input, model))
                    }
                    (Flavor::Anthropic, true) => {
                        sse(anthropic_tool_use_events(&id, &name, &input, model))
                    }
                    (Flavor::OpenAi, _) => error_response(400, flavor),
                };
            }
            Reply::Text(text) => {
                return match (flavor, stream) {
                    (Flavor::Anthropic, false) => json_response(anthropic_message(&text, model)),
                    (Flavor::Anthropic, true) => sse(anthropic_events(&text, model)),
                    (Flavor::OpenAi, false) => json_response(openai_completion(&text, model)),
                    (Flavor::OpenAi, true) => sse(openai_chunks(&text, model)),
                };
            }
        }
    }
}

fn plain(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
}

fn json_response(body: Value) -> Response<Full<Bytes>> {
    plain(StatusCode::OK, "application/json", body.to_string().into())
}

fn sse(events: Vec<(Option<&'static str>, String)>) -> Response<Full<Bytes>> {
    let mut text = String::new();
    for (event, data) in events {
        if let Some(event) = event {
            text.push_str(&format!("event: {event}\n"));
        }
        text.push_str(&format!("data: {data}\n\n"));
    }
    let mut response = plain(StatusCode::OK, "text/event-stream", text.into());
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

fn error_response(code: u16, flavor: Flavor) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (anthropic_type, openai_type) = match code {
        400 => ("invalid_request_error", "invalid_request_error"),
        401 => ("authentication_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("not_found_error", "not_found"),
        413 => ("request_too_large", "invalid_request_error"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        529 | 503 => ("overloaded_error", "server_overloaded"),
        _ => ("api_error", "server_error"),
    };
    let message = format!("stand-in error {code}");
    let body = match flavor {
        Flavor::Anthropic => json!({
            "type": "error",
            "error": {"type": anthropic_type, "message": message},
        }),
        Flavor::OpenAi => json!({
            "error": {"message": message, "type": openai_type, "param": null, "code": openai_type},
        }),
    };
    let mut response = plain(status, "application/json", body.to_string().into());
    if code == 429 {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(RETRY_AFTER_SECS));
    }
    response
}

fn anthropic_usage() -> Value {
    json!({
        "input_tokens": usage::INPUT,
        "output_tokens": usage::OUTPUT,
        "cache_read_input_tokens": usage::CACHE_READ,
        "cache_creation_input_tokens": usage::CACHE_CREATION,
    })
}

fn anthropic_message(text: &str, model: &str) -> Value {
    anthropic_body(json!([{"type": "text", "text": text}]), "end_turn", model)
}

/// A whole (not streamed) message with this content.
fn anthropic_body(content: Value, stop_reason: &str, model: &str) -> Value {
    json!({
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": anthropic_usage(),
    })
}

/// Ids of scripted tool calls, unique within the process.
static TOOL_USE_IDS: AtomicUsize = AtomicUsize::new(1);

fn anthropic_tool_use(id: &str, name: &str, input: &Value, model: &str) -> Value {
    anthropic_body(
        json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
        "tool_use",
        model,
    )
}

fn anthropic_tool_use_events(
    id: &str,
    name: &str,
    input: &Value,
    model: &str,
) -> Vec<(Option<&'static str>, String)> {
    anthropic_stream(
        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        chunks(&input.to_string())
            .into_iter()
            .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
            .collect(),
        "tool_use",
        model,
    )
}

/// Splits text into a few deltas (on character boundaries) so clients must concatenate.
fn chunks(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(3).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

fn anthropic_events(text: &str, model: &str) -> Vec<(Option<&'static str>, String)> {
    anthropic_stream(
        json!({"type": "text", "text": ""}),
        chunks(text)
            .into_iter()
            .map(|piece| json!({"type": "text_delta", "text": piece}))
            .collect(),
        "end_turn",
        model,
    )
}

/// The events of a streamed message with one content block: its start, its deltas, its stop.
fn anthropic_stream(
    block: Value,
    deltas: Vec<Value>,
    stop_reason: &str,
    model: &str,
) -> Vec<(Option<&'static str>, String)> {
    let mut start_usage = anthropic_usage();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_standin", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage,
            }}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": block}),
        ),
    ];
    for delta in deltas {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ));
    }
    events.extend([
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": usage::OUTPUT}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]);
    events
        .into_iter()
        .map(|(event, data)| (Some(event), data.to_string()))
        .collect()
}

fn openai_usage() -> Value {
    // OpenAI counts cached tokens inside prompt_tokens.
    json!({
        "prompt_tokens": usage::INPUT + usage::CACHE_READ,
        "completion_tokens": usage::OUTPUT,
        "total_tokens": usage::INPUT + usage::CACHE_READ + usage::OUTPUT,
        "prompt_tokens_details": {"cached_tokens": usage::CACHE_READ},
    })
}

fn openai_completion(text: &str, model: &str) -> Value {
    json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": openai_usage(),
    })
}

fn openai_chunks(text: &str, model: &str) -> Vec<(Option<&'static str>, String)> {
    let chunk = |delta: Value, finish: Value, usage: Value| {
        json!({
            "id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "usage": usage,
        })
        .to_string()
    };
    let mut out = vec![(
        None,
        chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
            Value::Null,
        ),
    )];
    for piece in chunks(text) {
        out.push((
            None,
            chunk(json!({"content": piece}), Value::Null, Value::Null),
        ));
    }
    out.push((None, chunk(json!({}), json!("stop"), openai_usage())));
    out.push((None, "[DONE]".to_string()));
    out
}

/// The pinned Claude Code CLI version (`scripts/claude-version`, which
/// `scripts/install-claude.sh` installs).
pub const CLAUDE_VERSION: &str = include_str!("../../../scripts/claude-version");

/// The `claude` binary tests drive: `BQAI_CLAUDE_BIN`, else where `scripts/install-claude.sh`
/// puts the pinned version. Panics (the test fails) with what to run when it is missing:
/// these tests are the only proof that flags, environment and output parsing match the CLI.
pub fn claude_bin() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(bin) = std::env::var_os("BQAI_CLAUDE_BIN") {
        return bin.into();
    }
    let version = CLAUDE_VERSION.trim();
    let tools = std::env::var_os("BQAI_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/bqai/tools")
        });
    let bin = tools.join(format!("claude-code-{version}/node_modules/.bin/claude"));
    assert!(
        bin.is_file(),
        "the Claude Code CLI {version} is not installed at {}: run scripts/install-claude.sh \
         (or point BQAI_CLAUDE_BIN at a claude binary)",
        bin.display()
    );
    bin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_on_char_boundaries_and_rejoin() {
        for text in ["", "a", "SELECT 1", "héllo wörld ✓"] {
            assert_eq!(chunks(text).concat(), text);
        }
        assert_eq!(chunks("abcdef").len(), 3);
    }

    #[test]
    fn recorded_requests_expose_system_and_user_text_of_both_shapes() {
        let anthropic = RecordedRequest {
            path: "/v1/messages".into(),
            query: None,
            headers: BTreeMap::new(),
            body: json!({
                "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
            }),
        };
        assert_eq!(anthropic.system_text(), "a\n\nb");
        assert_eq!(anthropic.last_user_text().as_deref(), Some("q"));
        let openai = RecordedRequest {
            body: json!({"messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q1"},
                {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"},
            ]}),
            ..anthropic
        };
        assert_eq!(openai.system_text(), "s");
        assert_eq!(openai.last_user_text().as_deref(), Some("q2"));
    }
}
