//! `GET /api/v1/ws/agent`: the conversational WebSocket API (actix-ws).
//!
//! One connection is one conversation: `configure` picks (or creates) it, each `ask` streams
//! the pipeline's stages as they happen, the SQL and its estimate once they passed every
//! check (before the query runs), then the rows and follow-up suggestions, and ends with
//! `done` or `error`. The protocol is documented in docs/API.md.
//!
//! How a connection is run:
//! - **Authentication** is the `/api/v1` middleware's (a key, or `?ticket=` on the upgrade);
//!   before each `ask` an API key's principal is read again from the key store, so grants
//!   changed since the upgrade apply to the next ask, and a revoked or expired key ends the
//!   connection (an `error` `UNAUTHENTICATED`, then close 1008). Each `ask` is role-checked (a
//!   `viewer` may only ask with `execute: false`), charged `ask_weight` against the caller's
//!   rate limit like `POST /api/v1/ask`, and leaves its own audit event.
//! - **Reading**: text frames only, one JSON object with a `type` per message. A message over
//!   `max_message_bytes` (64 KiB), malformed JSON, an unknown `type` or a binary frame is
//!   answered with an `error` and the connection stays open. Frames over `max_frame_bytes`
//!   (1 MiB) are not even buffered: the connection is closed with 1009.
//! - **Writing**: every event goes through a bounded queue (`outbound_queue`) drained by one
//!   writer task. A client that stops reading fills the socket, then the queue: the server
//!   then cancels the connection's asks and closes it with 1008 (policy violation) — it never
//!   buffers without bound, and never blocks other connections. One event waiting longer
//!   than `send_timeout` counts the same.
//! - **Asks** run as tasks of the connection, at most `max_in_flight` at once. `cancel`
//!   aborts the task: its future is dropped, which kills an LLM subprocess (the Claude CLI
//!   adapter kills its process group on drop) and a warehouse query (the embedded engine
//!   aborts the query's task; BigQuery jobs are cancelled on drop), then `error` with
//!   `CANCELLED` is sent. Closing the connection cancels everything it started.
//! - **Heartbeats**: the server pings every `heartbeat_interval`; a client silent for
//!   `client_timeout` (not even a pong) is disconnected (1001), and a connection with no
//!   message and nothing in flight for `idle_timeout` is closed (1000).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError, Session};
use bqai_core::ask::{AskAnswer, AskObserver, AskRequest, AskStage, CatalogAnswer};
use bqai_core::auth::Action;
use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditOutcome, sql_fingerprint};
use bqai_core::conversation::Suggestion;
use bqai_core::model::{Principal, QueueWatch};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::{Notify, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use crate::auth::Caller;
use crate::dto::{RowsDto, StatsDto};
use crate::error::ApiError;
use crate::rate_limit::client_ip_of;
use crate::request_id::RequestId;
use crate::state::{AppState, WsSettings};

/// The route pattern, as the audit log shows it.
const ROUTE: &str = "WS /api/v1/ws/agent";

/// `?ticket=` on the upgrade.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TicketParam {
    /// A single-use ticket from `POST /api/v1/ws-ticket`, for browsers, which cannot send
    /// headers on an upgrade.
    ticket: Option<String>,
}

/// Upgrades to the WebSocket protocol and runs the connection.
#[utoipa::path(operation_id = "ws_agent", 
    tag = "websocket",
    description = WS_DESCRIPTION,
    params(TicketParam),
    responses(
        (status = 101, description = "Switching Protocols: the connection now speaks the protocol above (messages: `WsClientMessage` in, `WsServerEvent` out)"),
        (status = 403, description = "FORBIDDEN, or ORIGIN_NOT_ALLOWED: an Origin that is neither this server's nor one of server.cors_origins", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "TOO_MANY_CONNECTIONS (with Retry-After), or a dependency is down", body = crate::openapi::ErrorEnvelope)
    )
)]
#[get("/ws/agent")]
pub async fn agent(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(slot) = state.ws_connections.try_open() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "TOO_MANY_CONNECTIONS",
            format!(
                "this server has the most WebSocket connections it accepts ({}); retry later",
                state.ws_connections.max()
            ),
        )
        .with_retry_after(Duration::from_secs(5)));
    };
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|_| {
        ApiError::invalid(
            "this endpoint speaks WebSocket: send an upgrade request (GET with Upgrade: websocket)",
        )
    })?;
    let settings = state.settings.ws.clone();
    let stream = stream
        .max_frame_size(settings.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(settings.max_frame_bytes);
    let client = client_ip_of(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &state.settings.trusted_proxies,
    );
    let upgrade_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let mut connection = Connection::new(state.clone(), caller.0, client, upgrade_id, settings);
    // A client that sent `traceparent` with the upgrade gets its asks in that trace (an ask
    // message may name another one).
    connection.trace = crate::trace_context::from_headers(req.headers());
    actix_web::rt::spawn(async move {
        connection.run(session, stream).await;
        drop(slot);
    });
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// The protocol in prose, for the OpenAPI operation (docs/API.md has the full reference).
const WS_DESCRIPTION: &str = "\
The conversational API: one connection is one conversation, and every ask streams its stages \
as they happen — the SQL and its estimate as soon as they passed the guard, the dry run and \
the caps, before the query runs — then the rows and follow-up suggestions.

Authenticate the upgrade like any `/api/v1` call, or with `?ticket=` (single-use, from \
`POST /api/v1/ws-ticket`). Every message is a JSON text frame with a `type`: the client sends \
`WsClientMessage`s (`configure`, `ask`/`prompt`, `cancel`, `ping`), the server answers \
`WsServerEvent`s (`configured`, `status`, `sql`, `estimate`, `result`, `catalog`, \
`suggestions`, `done`, `error`, `pong`). Every ask ends with exactly one `done` or `error`.

Every ask re-reads the key: narrowed grants apply to the next ask; a revoked or expired key \
gets an `UNAUTHENTICATED` error and close code 1008. Frames over `ws.max_frame_bytes` close \
with 1009; a client that does not read its events closes with 1008; a silent client with \
1001; an idle connection with 1000.";

/// A message from the client (documentation of the protocol; each kind is parsed on its own).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
pub enum WsClientMessage {
    /// Continue a conversation of yours, or start one on a dataset → `configured`.
    Configure(ConfigureMsg),
    /// Ask in the conversation.
    Ask(AskMsg),
    /// The earlier service's name for `ask` (with `prompt` for `question`).
    Prompt(AskMsg),
    /// Stop that ask → `error` `CANCELLED`.
    Cancel(CancelMsg),
    /// → `pong`.
    Ping,
}

/// A server event (documentation of the protocol).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
pub enum WsServerEvent {
    /// After `configure`.
    Configured {
        /// The conversation (null: no conversation store).
        conversation_id: Option<String>,
        /// Its dataset (null: chosen by the first ask).
        dataset_id: Option<String>,
    },
    /// A pipeline stage starts.
    Status {
        /// The ask.
        request_id: String,
        /// The stage.
        stage: AskStage,
        /// The attempt (generating, validating, correcting).
        attempt: Option<u32>,
        /// With `queued`: the query's place in the query queue (1 = next to run).
        position: Option<u64>,
    },
    /// The SQL that will run, before it runs.
    Sql {
        /// The ask.
        request_id: String,
        /// Null for a question about the schema.
        sql: Option<String>,
        /// What it does.
        explanation: String,
    },
    /// The dry run's estimate, before it runs.
    Estimate {
        /// The ask.
        request_id: String,
        /// Bytes the query scans.
        bytes: u64,
        /// Their price.
        cost_usd: f64,
    },
    /// The rows, in the shape of `POST /api/v1/query`.
    Result {
        /// The ask.
        request_id: String,
        /// The query's history id: `POST /api/v1/exports {"query_id"}` exports its whole
        /// result.
        query_id: String,
        /// The rows.
        #[serde(flatten)]
        rows: RowsDto,
        /// Its statistics.
        stats: StatsDto,
    },
    /// The answer to a question about the schema.
    Catalog {
        /// The ask.
        request_id: String,
        /// Column names.
        columns: Vec<String>,
        /// Rows as arrays.
        rows: Vec<Vec<Json>>,
    },
    /// 2–4 follow-up questions (or none).
    Suggestions {
        /// The ask.
        request_id: String,
        /// The suggestions.
        items: Vec<Suggestion>,
    },
    /// The ask is over.
    Done {
        /// The ask.
        request_id: String,
    },
    /// An ask failed, or a message could not be used (no `request_id`).
    Error {
        /// The ask, if the error belongs to one.
        request_id: Option<String>,
        /// A REST error code or one of the protocol's (`INVALID_MESSAGE`, `UNKNOWN_TYPE`,
        /// `MESSAGE_TOO_LARGE`, `UNSUPPORTED_MESSAGE`, `TOO_MANY_ASKS`, `CANCELLED`,
        /// `NOT_FOUND`).
        code: String,
        /// A message for people.
        message: String,
    },
    /// Answer to `ping`.
    Pong,
}

/// `configure`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigureMsg {
    dataset_id: Option<String>,
    conversation_id: Option<String>,
}

/// `ask` (and `prompt`, the earlier service's name, with `prompt` for `question`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskMsg {
    #[serde(alias = "prompt")]
    question: String,
    execute: Option<bool>,
    max_rows: Option<u64>,
    /// The client's own id for the ask (else the server makes one).
    request_id: Option<String>,
    /// W3C `traceparent` of the client's trace: the ask's spans join it (else the one sent
    /// with the upgrade request, else a new trace).
    traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent`.
    tracestate: Option<String>,
}

/// `cancel`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelMsg {
    request_id: String,
}

/// `ping`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingMsg {}

/// Server → client events.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    Configured {
        conversation_id: Option<&'a str>,
        dataset_id: Option<&'a str>,
    },
    Status {
        request_id: &'a str,
        stage: AskStage,
        #[serde(skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<u64>,
    },
    Sql {
        request_id: &'a str,
        sql: Option<&'a str>,
        explanation: &'a str,
    },
    Estimate {
        request_id: &'a str,
        bytes: u64,
        cost_usd: f64,
    },
    Result {
        request_id: &'a str,
        query_id: &'a str,
        #[serde(flatten)]
        rows: RowsDto,
        stats: StatsDto,
    },
    /// The answer to a question about the schema (no SQL ran).
    Catalog {
        request_id: &'a str,
        #[serde(flatten)]
        rows: CatalogRows,
    },
    Suggestions {
        request_id: &'a str,
        items: &'a [Suggestion],
    },
    Done {
        request_id: &'a str,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a str>,
        code: &'a str,
        message: &'a str,
    },
    Pong,
}

/// A schema answer as a small table.
#[derive(Debug, Serialize)]
struct CatalogRows {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Json>>,
}

impl CatalogRows {
    fn of(answer: &CatalogAnswer) -> Self {
        match answer {
            CatalogAnswer::Tables { tables, .. } => Self {
                columns: vec!["table", "type", "num_rows"],
                rows: tables
                    .iter()
                    .map(|t| {
                        vec![
                            Json::from(t.table_ref.table.clone()),
                            serde_json::to_value(t.kind).unwrap_or(Json::Null),
                            t.num_rows.map_or(Json::Null, Json::from),
                        ]
                    })
                    .collect(),
            },
            CatalogAnswer::Table { table } => Self {
                columns: vec!["column", "type", "mode"],
                rows: table
                    .schema
                    .iter()
                    .map(|f| {
                        vec![
                            Json::from(f.name.clone()),
                            Json::from(f.field_type.as_str()),
                            Json::from(f.mode.as_str()),
                        ]
                    })
                    .collect(),
            },
        }
    }
}

/// Errors of the protocol itself (the pipeline's use the REST codes).
mod codes {
    pub const INVALID_MESSAGE: &str = "INVALID_MESSAGE";
    pub const UNKNOWN_TYPE: &str = "UNKNOWN_TYPE";
    pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
    pub const UNSUPPORTED_MESSAGE: &str = "UNSUPPORTED_MESSAGE";
    pub const TOO_MANY_ASKS: &str = "TOO_MANY_ASKS";
    pub const CANCELLED: &str = "CANCELLED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
}

/// What a client message turned out to be.
enum Parsed {
    Configure(ConfigureMsg),
    Ask(AskMsg),
    Cancel(CancelMsg),
    Ping,
}

/// A client message failed to parse: the error code and a message about the client's input.
type ParseError = (&'static str, String);

fn parse(text: &str) -> Result<Parsed, ParseError> {
    let value: Json = serde_json::from_str(text).map_err(|e| {
        (
            codes::INVALID_MESSAGE,
            format!("the message is not JSON: {e}"),
        )
    })?;
    let Json::Object(mut object) = value else {
        return Err((
            codes::INVALID_MESSAGE,
            "a message is a JSON object with a \"type\"".into(),
        ));
    };
    let kind = match object.remove("type") {
        Some(Json::String(kind)) => kind,
        _ => {
            return Err((
                codes::INVALID_MESSAGE,
                "a message needs a string \"type\": configure, ask, prompt, cancel or ping".into(),
            ));
        }
    };
    let rest = Json::Object(object);
    fn fields<T: serde::de::DeserializeOwned>(kind: &str, rest: Json) -> Result<T, ParseError> {
        serde_json::from_value(rest).map_err(|e| {
            (
                codes::INVALID_MESSAGE,
                format!("invalid `{kind}` message: {e}"),
            )
        })
    }
    match kind.as_str() {
        "configure" => fields(&kind, rest).map(Parsed::Configure),
        "ask" => fields(&kind, rest).map(Parsed::Ask),
        "prompt" => {
            // The earlier service's shape: `{"type": "prompt", "prompt": "…"}`.
            if rest.get("question").is_some() {
                return Err((
                    codes::INVALID_MESSAGE,
                    "invalid `prompt` message: use `prompt` for the question".into(),
                ));
            }
            if rest.get("prompt").is_none() {
                return Err((
                    codes::INVALID_MESSAGE,
                    "invalid `prompt` message: missing field `prompt`".into(),
                ));
            }
            fields(&kind, rest).map(Parsed::Ask)
        }
        "cancel" => fields(&kind, rest).map(Parsed::Cancel),
        "ping" => fields::<PingMsg>(&kind, rest).map(|_| Parsed::Ping),
        other => Err((
            codes::UNKNOWN_TYPE,
            format!(
                "unknown message type {:?}: use configure, ask, prompt, cancel or ping",
                truncate(other, 40)
            ),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// What [`valid_request_id`] accepts, for error messages.
const REQUEST_ID_RULE: &str = "`request_id` must be 1–64 letters, digits, '-', '_', '.' or ':'";

/// A client-chosen request id: short and plain, so it can be echoed safely.
fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

// ---------------------------------------------------------------------------------------------
// The outbound queue
// ---------------------------------------------------------------------------------------------

enum Frame {
    Text(String),
    Ping,
    Pong(actix_web::web::Bytes),
}

/// Set when the client stopped taking events (queue full or a send timed out).
#[derive(Default)]
struct Stall {
    tripped: AtomicBool,
    notify: Notify,
}

impl Stall {
    fn trip(&self) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }
}

/// The sending half of a connection's bounded event queue. Never waits: a full queue means
/// the client is not reading, and trips [`Stall`].
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Frame>,
    stall: Arc<Stall>,
}

impl Outbox {
    fn send(&self, event: &Event<'_>) {
        match serde_json::to_string(event) {
            Ok(text) => self.push(Frame::Text(text)),
            Err(e) => tracing::error!(error = %e, "could not serialize a WebSocket event"),
        }
    }

    fn push(&self, frame: Frame) {
        match self.tx.try_send(frame) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.stall.trip(),
        }
    }

    fn error(&self, request_id: Option<&str>, code: &str, message: &str) {
        self.send(&Event::Error {
            request_id,
            code,
            message,
        });
    }
}

/// Drains the queue into the socket, one frame at a time.
async fn write(
    mut session: Session,
    mut rx: mpsc::Receiver<Frame>,
    stall: Arc<Stall>,
    send_timeout: Duration,
) {
    while let Some(frame) = rx.recv().await {
        let sent = match frame {
            Frame::Text(text) => tokio::time::timeout(send_timeout, session.text(text)).await,
            Frame::Ping => tokio::time::timeout(send_timeout, session.ping(b"")).await,
            Frame::Pong(bytes) => tokio::time::timeout(send_timeout, session.pong(&bytes)).await,
        };
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_closed)) => return,
            Err(_elapsed) => {
                stall.trip();
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------------

/// Why a connection ends.
enum Ending {
    ClientClosed,
    Gone,
    Stalled,
    TooBig,
    Protocol,
    Silent,
    Idle,
    Revoked,
}

impl Ending {
    fn reason(&self) -> Option<CloseReason> {
        let (code, text) = match self {
            Ending::ClientClosed | Ending::Gone => return None,
            Ending::Stalled => (
                CloseCode::Policy,
                "the client is not reading its events fast enough",
            ),
            Ending::TooBig => (CloseCode::Size, "frame larger than the server accepts"),
            Ending::Protocol => (CloseCode::Protocol, "WebSocket protocol error"),
            Ending::Silent => (CloseCode::Away, "no answer to heartbeats"),
            Ending::Idle => (CloseCode::Normal, "idle timeout"),
            Ending::Revoked => (
                CloseCode::Policy,
                "the credentials of this connection were revoked or expired",
            ),
        };
        Some(CloseReason {
            code,
            description: Some(text.to_string()),
        })
    }
}

struct Connection {
    state: web::Data<AppState>,
    principal: Principal,
    client: Option<IpAddr>,
    upgrade_id: Option<String>,
    settings: WsSettings,
    out: Outbox,
    rx: Option<mpsc::Receiver<Frame>>,
    configured: bool,
    conversation_id: Option<String>,
    dataset_id: Option<String>,
    asks: JoinSet<()>,
    by_task: HashMap<tokio::task::Id, String>,
    by_request: HashMap<String, AbortHandle>,
    last_heard: Instant,
    last_message: Instant,
    /// Set when the connection's key turned out revoked or expired.
    revoked: bool,
    /// The trace context the upgrade request carried (empty without one).
    trace: opentelemetry::Context,
}

impl Connection {
    fn new(
        state: web::Data<AppState>,
        principal: Principal,
        client: Option<IpAddr>,
        upgrade_id: Option<String>,
        settings: WsSettings,
    ) -> Self {
        let (tx, rx) = mpsc::channel(settings.outbound_queue.max(1));
        let now = Instant::now();
        Self {
            state,
            principal,
            client,
            upgrade_id,
            settings,
            out: Outbox {
                tx,
                stall: Arc::default(),
            },
            rx: Some(rx),
            configured: false,
            conversation_id: None,
            dataset_id: None,
            asks: JoinSet::new(),
            by_task: HashMap::new(),
            by_request: HashMap::new(),
            last_heard: now,
            last_message: now,
            revoked: false,
            trace: opentelemetry::Context::new(),
        }
    }

    async fn run(mut self, session: Session, mut stream: actix_ws::AggregatedMessageStream) {
        let stall = Arc::clone(&self.out.stall);
        let Some(rx) = self.rx.take() else { return };
        let writer = actix_web::rt::spawn(write(
            session.clone(),
            rx,
            Arc::clone(&stall),
            self.settings.send_timeout,
        ));
        let mut tick = tokio::time::interval(self.settings.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;

        let ending = loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break Ending::Gone };
                    self.last_heard = Instant::now();
                    match msg {
                        Ok(AggregatedMessage::Text(text)) => {
                            self.last_message = Instant::now();
                            self.on_text(&text).await;
                        }
                        Ok(AggregatedMessage::Binary(_)) => {
                            self.last_message = Instant::now();
                            self.out.error(
                                None,
                                codes::UNSUPPORTED_MESSAGE,
                                "binary frames are not supported: send JSON text messages",
                            );
                        }
                        Ok(AggregatedMessage::Ping(bytes)) => self.out.push(Frame::Pong(bytes)),
                        Ok(AggregatedMessage::Pong(_)) => {}
                        Ok(AggregatedMessage::Close(_)) => break Ending::ClientClosed,
                        Err(ProtocolError::Overflow) => break Ending::TooBig,
                        // actix-ws reports a message assembled from continuations past the
                        // limit as an I/O error with this text: the same breach as a big frame.
                        Err(ProtocolError::Io(e))
                            if e.to_string().contains("maximum continuation size") =>
                        {
                            break Ending::TooBig;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "WebSocket protocol error");
                            break Ending::Protocol;
                        }
                    }
                }
                Some(joined) = self.asks.join_next_with_id(), if !self.asks.is_empty() => {
                    let id = match joined {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    if let Some(request_id) = self.by_task.remove(&id) {
                        self.by_request.remove(&request_id);
                    }
                }
                _ = tick.tick() => {
                    if self.last_heard.elapsed() >= self.settings.client_timeout {
                        break Ending::Silent;
                    }
                    if self.asks.is_empty() && self.last_message.elapsed() >= self.settings.idle_timeout {
                        break Ending::Idle;
                    }
                    self.out.push(Frame::Ping);
                }
                () = stall.notify.notified() => break Ending::Stalled,
            }
            if stall.tripped.load(Ordering::SeqCst) {
                break Ending::Stalled;
            }
            if self.revoked {
                break Ending::Revoked;
            }
        };

        // Everything the connection started stops with it.
        let cancelled: Vec<String> = self.by_request.keys().cloned().collect();
        self.asks.abort_all();
        for request_id in cancelled {
            self.audit_refusal(&request_id, 499, codes::CANCELLED);
        }
        if matches!(ending, Ending::Stalled) {
            tracing::info!(
                principal = self.principal.id.as_deref().unwrap_or("anonymous"),
                "closing a WebSocket whose client stopped reading"
            );
            writer.abort();
        } else {
            // Let what is queued go out first (bounded by the send timeout per frame).
            drop(self.out);
            let _ = tokio::time::timeout(self.settings.send_timeout, writer).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), session.close(ending.reason())).await;
    }

    async fn on_text(&mut self, text: &str) {
        if text.len() > self.settings.max_message_bytes {
            self.out.error(
                None,
                codes::MESSAGE_TOO_LARGE,
                &format!(
                    "the message is {} bytes; the limit is {} bytes",
                    text.len(),
                    self.settings.max_message_bytes
                ),
            );
            return;
        }
        match parse(text) {
            Err((code, message)) => self.out.error(None, code, &message),
            Ok(Parsed::Ping) => self.out.send(&Event::Pong),
            Ok(Parsed::Configure(msg)) => {
                self.configure(msg.dataset_id, msg.conversation_id).await;
            }
            Ok(Parsed::Ask(msg)) => self.ask(msg).await,
            Ok(Parsed::Cancel(msg)) => self.cancel(&msg.request_id),
        }
    }

    /// Picks (and checks) or creates the conversation; answers `configured` or `error`.
    async fn configure(&mut self, dataset_id: Option<String>, conversation_id: Option<String>) {
        let dataset_id = dataset_id.filter(|d| !d.is_empty());
        let result = match conversation_id.filter(|c| !c.is_empty()) {
            Some(id) => self
                .state
                .ask
                .get_conversation(&self.principal, &id)
                .await
                .map(|c| (Some(c.id), dataset_id.or(c.dataset))),
            None => match self
                .state
                .ask
                .create_conversation(&self.principal, dataset_id.as_deref())
                .await
            {
                Ok(c) => Ok((Some(c.id), c.dataset.or(dataset_id))),
                // No conversation store (or it is down): asks still work, without context.
                Err(bqai_core::Error::Unavailable { what, .. }) => {
                    tracing::warn!(%what, "no conversation store: asks on this WebSocket keep no context");
                    Ok((None, dataset_id))
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok((conversation_id, dataset_id)) => {
                self.configured = true;
                self.conversation_id = conversation_id;
                self.dataset_id = dataset_id;
                self.out.send(&Event::Configured {
                    conversation_id: self.conversation_id.as_deref(),
                    dataset_id: self.dataset_id.as_deref(),
                });
            }
            Err(e) => {
                let api = ApiError::from(e);
                log_server_error(&api);
                self.out.error(None, api.code(), api.message());
            }
        }
    }

    async fn ask(&mut self, msg: AskMsg) {
        let request_id = match msg.request_id {
            Some(id) if !valid_request_id(&id) => {
                self.out
                    .error(None, codes::INVALID_MESSAGE, REQUEST_ID_RULE);
                return;
            }
            Some(id) if self.by_request.contains_key(&id) => {
                self.out.error(
                    Some(&id),
                    codes::INVALID_MESSAGE,
                    "an ask with this `request_id` is already in flight",
                );
                return;
            }
            Some(id) => id,
            None => uuid::Uuid::now_v7().to_string(),
        };
        if self.by_request.len() >= self.settings.max_in_flight {
            self.out.error(
                Some(&request_id),
                codes::TOO_MANY_ASKS,
                &format!(
                    "at most {} asks may be in flight on one connection: wait for one to finish or cancel it",
                    self.settings.max_in_flight
                ),
            );
            return;
        }
        if !self.refresh_principal(&request_id).await {
            return;
        }
        let execute = msg.execute.unwrap_or(true);
        let caller = Caller(self.principal.clone());
        if let Err(e) = caller.require(if execute {
            Action::Query
        } else {
            Action::DryRun
        }) {
            self.refuse(&request_id, &e);
            return;
        }
        if let Err(e) = self.charge().await {
            self.refuse(&request_id, &e);
            return;
        }
        if !self.configured {
            self.configure(None, None).await;
        }
        let request = AskRequest {
            dataset_id: self.dataset_id.clone(),
            execute,
            max_rows: msg.max_rows,
            conversation_id: self.conversation_id.clone(),
            request_id: Some(request_id.clone()),
            ..AskRequest::new(msg.question)
        };
        let caller_trace = match msg.traceparent.as_deref() {
            Some(tp) => crate::trace_context::from_traceparent(tp, msg.tracestate.as_deref()),
            None => self.trace.clone(),
        };
        let span = crate::trace_context::root_span(&caller_trace, || {
            tracing::info_span!(
                target: "bqai_http",
                "WS ask",
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                "http.route" = "/api/v1/ws/agent",
                "enduser.id" = self.principal.id.as_deref(),
                "bqai.request_id" = %request_id,
                "error.type" = tracing::field::Empty,
            )
        });
        crate::trace_context::continue_trace(&span, caller_trace.clone());
        let task = AskTask {
            state: self.state.clone(),
            principal: self.principal.clone(),
            client: self.client,
            request_id: request_id.clone(),
            out: self.out.clone(),
            trace_id: crate::trace_context::trace_id(&span, &caller_trace),
            _in_flight: self.state.ws_connections.ask_started(),
        };
        let handle = self.asks.spawn_local(task.run(request).instrument(span));
        self.by_task.insert(handle.id(), request_id.clone());
        self.by_request.insert(request_id, handle);
    }

    /// Reads the connection's principal again (an API key's grants, role, limits and whether
    /// it still holds); `false` when the ask must not go on — the key is gone (the connection
    /// is then closed) or the key store cannot answer.
    async fn refresh_principal(&mut self, request_id: &str) -> bool {
        let Some(auth) = &self.state.auth else {
            return true;
        };
        match auth.refresh(&self.principal).await {
            Ok(principal) => {
                self.principal = principal;
                true
            }
            Err(e) => {
                let api = ApiError::from(e);
                log_server_error(&api);
                self.refuse(request_id, &api);
                if api.status() == StatusCode::UNAUTHORIZED {
                    self.revoked = true;
                }
                false
            }
        }
    }

    /// Charges one ask against the caller's rate limit (fails open if the limiter fails).
    async fn charge(&self) -> Result<(), ApiError> {
        crate::rate_limit::charge(
            &self.state,
            &self.principal,
            self.client,
            self.state.settings.ask_weight,
        )
        .await
    }

    fn refuse(&self, request_id: &str, e: &ApiError) {
        self.out.error(Some(request_id), e.code(), e.message());
        self.audit_refusal(request_id, e.status().as_u16(), e.code());
    }

    fn cancel(&mut self, request_id: &str) {
        if !valid_request_id(request_id) {
            // Never echoed: it is not an id this connection could have handed out.
            self.out
                .error(None, codes::INVALID_MESSAGE, REQUEST_ID_RULE);
            return;
        }
        match self.by_request.remove(request_id) {
            Some(handle) => {
                // The task is not running while this one is (one thread per connection), so
                // nothing it queued after this point can reach the client.
                handle.abort();
                self.by_task.remove(&handle.id());
                self.out.error(
                    Some(request_id),
                    codes::CANCELLED,
                    "the ask was cancelled; nothing of it is still running",
                );
                self.audit_refusal(request_id, 499, codes::CANCELLED);
            }
            None => self.out.error(
                Some(request_id),
                codes::NOT_FOUND,
                "no ask with this `request_id` is in flight on this connection",
            ),
        }
    }

    fn audit_refusal(&self, request_id: &str, status: u16, code: &str) {
        audit(
            &self.state,
            AuditEvent {
                status,
                outcome: crate::auth::refusal_outcome(status, code),
                error_code: Some(code.to_string()),
                detail: Some(format!("ws ask {}", truncate(request_id, 64))),
                request_id: self.upgrade_id.clone(),
                ..event_base(&self.principal, self.client)
            },
        );
    }
}

fn log_server_error(e: &ApiError) {
    e.log_server_error("WebSocket ask failed");
}

fn event_base(principal: &Principal, client: Option<IpAddr>) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        request_id: None,
        principal: principal.id.clone(),
        action: AuditAction::Ask,
        route: ROUTE.to_string(),
        targets: Vec::new(),
        sql_fingerprint: None,
        outcome: AuditOutcome::Allowed,
        status: 200,
        error_code: None,
        bytes: 0,
        client_addr: client.map(|c| c.to_string()),
        detail: None,
    }
}

/// Appends an audit event without holding up the connection.
fn audit(state: &web::Data<AppState>, event: AuditEvent) {
    crate::auth::spawn_audit(state, event);
}

/// One ask, run as a task of its connection.
struct AskTask {
    state: web::Data<AppState>,
    principal: Principal,
    client: Option<IpAddr>,
    request_id: String,
    out: Outbox,
    /// The trace the ask's spans belong to, for its log line.
    trace_id: Option<String>,
    /// Counts the ask in `bqai_websocket_asks_in_flight` while the task lives.
    _in_flight: crate::state::AskInFlight,
}

/// Streams stages as `status` events, and the SQL and its estimate as soon as the plan
/// passed every check (before the warehouse runs anything).
struct StageObserver<'a> {
    request_id: &'a str,
    out: &'a Outbox,
}

impl AskObserver for StageObserver<'_> {
    fn stage(&self, stage: AskStage, attempt: Option<u32>) {
        self.out.send(&Event::Status {
            request_id: self.request_id,
            stage,
            attempt,
            position: None,
        });
    }

    /// `queued` with the position while the query waits for a slot, `running` again when it
    /// gets one.
    fn queue_watch(&self) -> Option<QueueWatch> {
        let out = self.out.clone();
        let request_id = self.request_id.to_owned();
        Some(QueueWatch::new(move |position| {
            let (stage, position) = match position {
                0 => (AskStage::Running, None),
                n => (AskStage::Queued, Some(n)),
            };
            out.send(&Event::Status {
                request_id: &request_id,
                stage,
                attempt: None,
                position,
            });
        }))
    }

    fn planned(&self, sql: &str, explanation: &str) {
        self.out.send(&Event::Sql {
            request_id: self.request_id,
            sql: Some(sql),
            explanation,
        });
    }

    fn estimated(&self, bytes: u64, cost_usd: f64) {
        self.out.send(&Event::Estimate {
            request_id: self.request_id,
            bytes,
            cost_usd,
        });
    }
}

impl AskTask {
    async fn run(self, request: AskRequest) {
        let observer = StageObserver {
            request_id: &self.request_id,
            out: &self.out,
        };
        let target = request.dataset_id.clone();
        let started = std::time::Instant::now();
        let outcome = self
            .state
            .ask
            .ask_observed(request, &self.principal, &observer)
            .await;
        if let Err(e) = &outcome {
            let span = tracing::Span::current();
            span.record("error.type", e.code());
            if !e.is_client_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        // The HTTP request log line covers only the upgrade: each ask gets its own.
        tracing::info!(
            request_id = %self.request_id,
            trace_id = self.trace_id.as_deref(),
            path = "/api/v1/ws/agent",
            principal = self.principal.id.as_deref(),
            query_id = outcome.as_ref().ok().and_then(|a| a.result.as_ref()).map(|o| o.query_id.as_str()),
            error_code = outcome.as_ref().err().map(bqai_core::Error::code),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "ws ask"
        );
        let mut event = AuditEvent {
            detail: Some(format!("ws ask {}", truncate(&self.request_id, 64))),
            targets: target
                .into_iter()
                .filter(|d| bqai_core::query::is_valid_dataset_id(d))
                .collect(),
            ..event_base(&self.principal, self.client)
        };
        match outcome {
            Ok(answer) => {
                self.answer(&answer);
                if !event.targets.contains(&answer.dataset) {
                    event.targets.push(answer.dataset.clone());
                }
                event.sql_fingerprint = answer.sql.as_deref().map(sql_fingerprint);
                if let Some(o) = &answer.result {
                    event.bytes = if o.dry_run {
                        0
                    } else {
                        o.result.stats.charged_bytes()
                    };
                    for t in &o.referenced_tables {
                        let t = t.to_string();
                        if !event.targets.contains(&t) {
                            event.targets.push(t);
                        }
                    }
                }
            }
            Err(e) => {
                let api = ApiError::from(e);
                log_server_error(&api);
                self.out
                    .error(Some(&self.request_id), api.code(), api.message());
                event.status = api.status().as_u16();
                event.error_code = Some(api.code().to_string());
                event.outcome = crate::auth::refusal_outcome(event.status, api.code());
            }
        }
        audit(&self.state, event);
    }

    /// Sends what the observer has not streamed already: the rows, a schema answer, the
    /// suggestions. An answer with a query result went through `planned` and `estimated`
    /// (the observer sent `sql` and `estimate`); a schema answer did not, so its `sql` event
    /// (with `sql: null`) goes out here.
    fn answer(&self, answer: &AskAnswer) {
        let id = self.request_id.as_str();
        if answer.result.is_none() {
            self.out.send(&Event::Sql {
                request_id: id,
                sql: answer.sql.as_deref(),
                explanation: &answer.explanation,
            });
        }
        if let Some(outcome) = &answer.result {
            let stats = &outcome.result.stats;
            if !outcome.dry_run {
                self.out.send(&Event::Result {
                    request_id: id,
                    query_id: &outcome.query_id,
                    rows: RowsDto::from_result(&outcome.result),
                    stats: StatsDto::from(stats.clone()),
                });
            }
        }
        if let Some(catalog) = &answer.catalog {
            self.out.send(&Event::Catalog {
                request_id: id,
                rows: CatalogRows::of(catalog),
            });
        }
        self.out.send(&Event::Suggestions {
            request_id: id,
            items: &answer.suggestions,
        });
        self.out.send(&Event::Done { request_id: id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_or_say_why_not() {
        assert!(matches!(parse(r#"{"type":"ping"}"#), Ok(Parsed::Ping)));
        assert!(matches!(
            parse(r#"{"type":"ask","question":"revenue","execute":false}"#),
            Ok(Parsed::Ask(AskMsg {
                execute: Some(false),
                ..
            }))
        ));
        match parse(r#"{"type":"prompt","prompt":"revenue by country"}"#) {
            Ok(Parsed::Ask(a)) => assert_eq!(a.question, "revenue by country"),
            _ => panic!("prompt is an ask"),
        }
        assert!(matches!(
            parse(r#"{"type":"configure"}"#),
            Ok(Parsed::Configure(ConfigureMsg {
                dataset_id: None,
                conversation_id: None
            }))
        ));
        let code = |text: &str| match parse(text) {
            Err((code, _)) => code,
            Ok(_) => "ok",
        };
        assert_eq!(code("{not json"), codes::INVALID_MESSAGE);
        assert_eq!(code("[1,2]"), codes::INVALID_MESSAGE);
        assert_eq!(code(r#"{"question":"x"}"#), codes::INVALID_MESSAGE);
        assert_eq!(code(r#"{"type":"ask"}"#), codes::INVALID_MESSAGE);
        assert_eq!(
            code(r#"{"type":"ask","question":"x","sql":"DROP"}"#),
            codes::INVALID_MESSAGE
        );
        assert_eq!(
            code(r#"{"type":"prompt","question":"x"}"#),
            codes::INVALID_MESSAGE
        );
        assert_eq!(code(r#"{"type":"cancel"}"#), codes::INVALID_MESSAGE);
        assert_eq!(code(r#"{"type":"subscribe"}"#), codes::UNKNOWN_TYPE);
        assert_eq!(code(r#"{"type":7}"#), codes::INVALID_MESSAGE);
    }

    #[test]
    fn events_have_the_documented_shape() {
        let json = |e: &Event<'_>| serde_json::to_value(e).unwrap_or_default();
        assert_eq!(
            json(&Event::Status {
                request_id: "r1",
                stage: AskStage::Generating,
                attempt: Some(1),
                position: None,
            }),
            serde_json::json!({"type": "status", "request_id": "r1", "stage": "generating", "attempt": 1})
        );
        assert_eq!(
            json(&Event::Status {
                request_id: "r1",
                stage: AskStage::Running,
                attempt: None,
                position: None,
            }),
            serde_json::json!({"type": "status", "request_id": "r1", "stage": "running"})
        );
        assert_eq!(
            json(&Event::Status {
                request_id: "r1",
                stage: AskStage::Queued,
                attempt: None,
                position: Some(3),
            }),
            serde_json::json!({"type": "status", "request_id": "r1", "stage": "queued", "position": 3})
        );
        assert_eq!(
            json(&Event::Error {
                request_id: None,
                code: "UNKNOWN_TYPE",
                message: "m"
            }),
            serde_json::json!({"type": "error", "code": "UNKNOWN_TYPE", "message": "m"})
        );
        assert_eq!(json(&Event::Pong), serde_json::json!({"type": "pong"}));
    }

    #[test]
    fn client_request_ids_are_plain() {
        assert!(valid_request_id("r-1_a.b:c"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id("<img>"));
        assert!(!valid_request_id(&"a".repeat(65)));
    }
}
