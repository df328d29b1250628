//! The WebSocket API (`/api/v1/ws/agent`) over a real WebSocket client (tokio-tungstenite).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bqai_core::ask::{
    Generation, GenerationContext, GenerationOutcome, GeneratorInfo, SqlGenerator,
};
use bqai_local::{LocalConfig, LocalWarehouse};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::helpers::{
    ScriptedGenerator, Step, TestApp, demo_warehouse, spawn_app, spawn_app_over_with,
    spawn_app_with, spawn_auth_app,
};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn url(app: &TestApp, query: &str) -> String {
    format!(
        "{}/api/v1/ws/agent{query}",
        app.address.replacen("http://", "ws://", 1)
    )
}

pub(crate) async fn connect(app: &TestApp) -> Ws {
    connect_to(app, "").await
}

async fn connect_to(app: &TestApp, query: &str) -> Ws {
    let (ws, resp) = connect_async(url(app, query)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

pub(crate) async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON event (control frames skipped), or a panic after `wait`.
async fn next_event_within(ws: &mut Ws, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {wait:?}"));
        match frame {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

pub(crate) async fn next_event(ws: &mut Ws) -> Value {
    next_event_within(ws, Duration::from_secs(60)).await
}

/// Sends `configure` and returns the `configured` event.
async fn configure(ws: &mut Ws, msg: Value) -> Value {
    let mut msg = msg;
    msg["type"] = json!("configure");
    send(ws, msg).await;
    let ev = next_event(ws).await;
    assert_eq!(ev["type"], "configured", "{ev}");
    ev
}

/// Asks and collects the ask's events up to and including `done` or `error`.
async fn ask(ws: &mut Ws, request_id: &str, question: &str) -> Vec<Value> {
    send(
        ws,
        json!({"type": "ask", "question": question, "request_id": request_id}),
    )
    .await;
    events_of(ws, request_id).await
}

async fn events_of(ws: &mut Ws, request_id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let ev = next_event(ws).await;
        assert_eq!(
            ev["request_id"], request_id,
            "an event of another ask: {ev}"
        );
        let end = matches!(ev["type"].as_str(), Some("done" | "error"));
        events.push(ev);
        if end {
            return events;
        }
    }
}

/// `bqai_websocket_asks_in_flight` as `/metrics` reports it.
async fn asks_in_flight(app: &TestApp) -> u64 {
    let text = app.text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("bqai_websocket_asks_in_flight "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bqai_websocket_asks_in_flight in\n{text}"))
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

fn sql_of(events: &[Value]) -> String {
    of_type(events, "sql")["sql"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

async fn ping_pong(ws: &mut Ws) {
    send(ws, json!({"type": "ping"})).await;
    let ev = next_event(ws).await;
    assert_eq!(ev, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ask_streams_every_stage_then_the_answer() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    ping_pong(&mut ws).await;
    let configured = configure(&mut ws, json!({})).await;
    assert_eq!(configured["dataset_id"], "shop", "{configured}");

    let events = ask(&mut ws, "r1", "revenue by country in 2024").await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e["type"].as_str() {
            Some("status") => format!("status:{}", e["stage"].as_str().unwrap_or("?")),
            Some(t) => t.to_string(),
            None => "?".into(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "status:understanding",
            "status:generating",
            "status:validating",
            "sql",
            "status:estimating",
            "estimate",
            "status:running",
            "result",
            "suggestions",
            "done"
        ],
        "{events:#?}"
    );
    assert_eq!(events[1]["attempt"], 1);
    assert_eq!(events[2]["attempt"], 1);
    assert!(events[0].get("attempt").is_none());
    let sql = sql_of(&events);
    assert!(sql.contains("country") && sql.contains("2024"), "{sql}");
    assert!(
        !of_type(&events, "sql")["explanation"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let estimate = of_type(&events, "estimate");
    assert!(estimate["bytes"].as_u64().unwrap() > 0, "{estimate}");
    assert!(estimate["cost_usd"].is_number());
    let result = of_type(&events, "result");
    let rows = result["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert_eq!(result["row_count"], rows.len());
    assert_eq!(result["truncated"], false);
    assert!(result["stats"]["duration_ms"].is_u64());
    let columns: Vec<&str> = result["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(columns.contains(&"country"), "{columns:?}");
    assert!(rows[0].get("country").is_some(), "rows are keyed by column");
    assert!(of_type(&events, "suggestions")["items"].is_array());

    // A dry run: the SQL and the estimate, no rows.
    send(
        &mut ws,
        json!({"type": "ask", "question": "orders by channel", "execute": false, "request_id": "r2"}),
    )
    .await;
    let events = events_of(&mut ws, "r2").await;
    assert!(events.iter().all(|e| e["type"] != "result"), "{events:#?}");
    assert!(sql_of(&events).contains("channel"));
    of_type(&events, "estimate");
    assert_eq!(events.last().unwrap()["type"], "done");

    // `prompt`, the earlier service's message, is an ask; the server names the request.
    send(
        &mut ws,
        json!({"type": "prompt", "prompt": "orders by channel"}),
    )
    .await;
    let first = next_event(&mut ws).await;
    assert_eq!(first["type"], "status", "{first}");
    let id = first["request_id"].as_str().unwrap().to_string();
    let rest = events_of(&mut ws, &id).await;
    assert_eq!(rest.last().unwrap()["type"], "done", "{rest:#?}");

    // A question the pipeline refuses ends in an error with a stable code, not a closed socket.
    let events = ask(&mut ws, "r3", "   ").await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error");
    assert_eq!(last["code"], "INVALID_REQUEST");
    ping_pong(&mut ws).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_turn_conversation_reflects_every_turn() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    let configured = configure(&mut ws, json!({"dataset_id": "shop"})).await;
    assert!(
        configured["conversation_id"].is_string(),
        "a conversation is created: {configured}"
    );

    let first = ask(&mut ws, "t1", "revenue by country in 2024").await;
    assert_eq!(first.last().unwrap()["type"], "done", "{first:#?}");
    let second = ask(&mut ws, "t2", "now by month").await;
    assert_eq!(second.last().unwrap()["type"], "done", "{second:#?}");
    let sql2 = sql_of(&second);
    assert!(sql2.contains("month") && sql2.contains("2024"), "{sql2}");
    let third = ask(&mut ws, "t3", "only web orders").await;
    assert_eq!(third.last().unwrap()["type"], "done", "{third:#?}");
    let sql3 = sql_of(&third);
    assert!(sql3.contains("month"), "the month bucket of turn 2: {sql3}");
    assert!(sql3.contains("2024"), "the year of turn 1: {sql3}");
    assert!(sql3.contains("'web'"), "the filter of turn 3: {sql3}");
    let rows = of_type(&third, "result")["rows"].as_array().unwrap().len();
    assert!(rows > 1 && rows <= 12, "one row per month of 2024: {rows}");

    // The conversation outlives the connection: a new one continues it.
    let id = configured["conversation_id"].as_str().unwrap();
    let mut again = connect(&app).await;
    let resumed = configure(&mut again, json!({"conversation_id": id})).await;
    assert_eq!(resumed["conversation_id"], id);
    assert_eq!(resumed["dataset_id"], "shop");
}

/// Always answers with the same SQL.
struct FixedSql(&'static str);

#[async_trait::async_trait]
impl SqlGenerator for FixedSql {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            kind: "fixed".into(),
            model: None,
        }
    }

    async fn generate(&self, _: &GenerationContext) -> bqai_core::Result<Generation> {
        Ok(Generation::new(
            GenerationOutcome::Sql {
                sql: self.0.into(),
                explanation: "fixed".into(),
            },
            None,
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_query_in_the_warehouse() {
    let warehouse = LocalWarehouse::new(LocalConfig::default()).await.unwrap();
    // 9·10^10 row pairs: minutes of work.
    let slow = ScriptedGenerator::new(vec![Step::Sql(
        "SELECT SUM(a.quantity * b.quantity) AS s FROM shop.order_items a CROSS JOIN shop.order_items b",
    )]);
    let app = spawn_app_over_with(Arc::new(warehouse.clone()), Some(slow), |s| {
        s.query.default_timeout_ms = 120_000;
        s.query.max_timeout_ms = 120_000;
    })
    .await;
    let mut ws = connect(&app).await;
    configure(&mut ws, json!({})).await;
    send(
        &mut ws,
        json!({"type": "ask", "question": "the slow one", "request_id": "slow"}),
    )
    .await;
    // The SQL and its estimate come before `running`: a client sees what will run and what
    // it costs before the warehouse is asked.
    let mut seen = Vec::new();
    loop {
        let ev = next_event(&mut ws).await;
        assert!(
            matches!(ev["type"].as_str(), Some("status" | "sql" | "estimate")),
            "{ev}"
        );
        let running = ev["stage"] == "running";
        seen.push(ev);
        if running {
            break;
        }
    }
    assert!(sql_of(&seen).contains("cross join"), "{seen:#?}");
    assert!(of_type(&seen, "estimate")["bytes"].as_u64().unwrap() > 0);
    let started = Instant::now();
    while warehouse.running_queries() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the query never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The ask counts as in flight until it ends.
    assert!(
        asks_in_flight(&app).await == 1,
        "{}",
        asks_in_flight(&app).await
    );

    send(&mut ws, json!({"type": "cancel", "request_id": "slow"})).await;
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["type"], "error", "{ev}");
    assert_eq!(ev["code"], "CANCELLED");
    let cancelled = Instant::now();
    while asks_in_flight(&app).await != 0 {
        assert!(
            cancelled.elapsed() < Duration::from_secs(3),
            "a cancelled ask still counts as in flight"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ev["request_id"], "slow");
    let cancelled = Instant::now();
    while warehouse.running_queries() > 0 {
        assert!(
            cancelled.elapsed() < Duration::from_secs(3),
            "the query is still running in the warehouse"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Nothing more arrives for the cancelled ask; the connection carries on.
    ping_pong(&mut ws).await;
    send(&mut ws, json!({"type": "cancel", "request_id": "slow"})).await;
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["code"], "NOT_FOUND", "{ev}");

    // Closing a connection cancels what it started, too.
    let slow_again = ScriptedGenerator::new(vec![Step::Sql(
        "SELECT SUM(a.quantity * b.quantity) AS s FROM shop.order_items a CROSS JOIN shop.order_items b",
    )]);
    let app = spawn_app_over_with(Arc::new(warehouse.clone()), Some(slow_again), |s| {
        s.query.default_timeout_ms = 120_000;
        s.query.max_timeout_ms = 120_000;
    })
    .await;
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "ask", "question": "slow", "request_id": "s2"}),
    )
    .await;
    let started = Instant::now();
    while warehouse.running_queries() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the query never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(ws);
    let dropped = Instant::now();
    while warehouse.running_queries() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(3),
            "the query outlived its connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_messages_get_errors_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "INVALID_MESSAGE"),
        (Message::Text("[1, 2]".into()), "INVALID_MESSAGE"),
        (
            Message::Text(r#"{"question": "no type"}"#.into()),
            "INVALID_MESSAGE",
        ),
        (
            Message::Text(r#"{"type": "ask"}"#.into()),
            "INVALID_MESSAGE",
        ),
        (
            Message::Text(r#"{"type": "ask", "question": "x", "sql": "DROP TABLE t"}"#.into()),
            "INVALID_MESSAGE",
        ),
        (
            Message::Text(r#"{"type": "ask", "question": "x", "request_id": "<b>"}"#.into()),
            "INVALID_MESSAGE",
        ),
        (
            Message::Text(r#"{"type": "subscribe"}"#.into()),
            "UNKNOWN_TYPE",
        ),
        (
            Message::Binary(vec![0u8, 1, 2, 3].into()),
            "UNSUPPORTED_MESSAGE",
        ),
        (
            Message::Text(
                json!({"type": "ask", "question": "x".repeat(70 * 1024)})
                    .to_string()
                    .into(),
            ),
            "MESSAGE_TOO_LARGE",
        ),
    ];
    for (msg, code) in cases {
        let shown = format!("{msg:?}").chars().take(80).collect::<String>();
        ws.send(msg).await.unwrap();
        let ev = next_event(&mut ws).await;
        assert_eq!(ev["type"], "error", "{shown}: {ev}");
        assert_eq!(ev["code"], code, "{shown}: {ev}");
        assert!(ev["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(ev.get("request_id").is_none(), "{ev}");
    }
    ping_pong(&mut ws).await;

    // Past the frame limit (1 MiB) the server does not even read the frame: it closes (1009).
    ws.send(Message::Text("y".repeat(2 * 1024 * 1024).into()))
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end, Some(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_not_buffered() {
    // Every ask answers 5,000 rows (about 1 MB of events).
    let generator = Arc::new(FixedSql("SELECT * FROM shop.order_items"));
    let app = spawn_app_over_with(demo_warehouse().await, Some(generator), |s| {
        s.ws.outbound_queue = 8;
        s.ws.send_timeout_secs = 1;
        s.query.max_rows_limit = 5_000;
        s.query.default_max_rows = 5_000;
    })
    .await;
    let mut stuck = connect(&app).await;
    // Ask over and over without reading a single event.
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let msg = json!({"type": "ask", "question": format!("all items {sent}"), "max_rows": 5000});
        if tokio::time::timeout(
            Duration::from_secs(1),
            stuck.send(Message::Text(msg.to_string().into())),
        )
        .await
        .map_or(true, |r| r.is_err())
        {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if sent % 25 == 0 {
            // Meanwhile the server serves everyone else.
            let mut other = connect(&app).await;
            ping_pong(&mut other).await;
        }
    }
    assert!(sent > 10, "sent {sent}");

    // Reading again: what was already on the wire arrives, then the server's close — not an
    // answer to every ask, which is what unbounded buffering would deliver.
    let mut results = 0;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stuck.next().await {
                Some(Ok(Message::Text(t))) => {
                    let ev: Value = serde_json::from_str(&t).unwrap();
                    if ev["type"] == "result" {
                        results += 1;
                    }
                }
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await;
    let close =
        ended.expect("the server never closed the connection of a client that stopped reading");
    // The close frame itself may not fit into the full socket any more; when it does, it says why.
    if let Some(code) = close {
        assert_eq!(code, CloseCode::Policy);
    }
    eprintln!(
        "stall: sent {sent}, results {results}, close {close:?}, {:?}",
        started.elapsed()
    );
    assert!(results < sent, "{results} results for {sent} asks");
    let mut other = connect(&app).await;
    ping_pong(&mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_ask_at_once_without_cross_talk() {
    let app = Arc::new(spawn_app().await);
    let sessions = (0..200).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let mut ws = connect(&app).await;
            let configured = configure(&mut ws, json!({})).await;
            let conversation = configured["conversation_id"].as_str().map(str::to_string);
            let year = 2020 + (i % 5);
            let id = format!("s{i}");
            let events = ask(&mut ws, &id, &format!("revenue by country in {year}")).await;
            assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
            assert!(sql_of(&events).contains(&year.to_string()), "session {i}");
            // The follow-up is understood in this session's own conversation.
            let events = ask(&mut ws, &format!("{id}b"), "now by month").await;
            assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
            let sql = sql_of(&events);
            assert!(
                sql.contains(&year.to_string()) && sql.contains("month"),
                "session {i} ({year}): {sql}"
            );
            conversation
        })
    });
    let conversations: Vec<Option<String>> = futures::future::join_all(sessions)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let distinct: HashSet<_> = conversations.iter().flatten().collect();
    assert_eq!(distinct.len(), 200, "one conversation per session");
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_and_the_idle_timeout() {
    let app = spawn_app_with(|s| {
        s.ws.heartbeat_secs = 1;
        s.ws.client_timeout_secs = 5;
        s.ws.idle_timeout_secs = 2;
    })
    .await;
    // The server's idle clock starts at the upgrade, so ours starts before connecting.
    let started = Instant::now();
    let mut ws = connect(&app).await;
    let mut pings = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(frame))) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "the server pings");
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::Normal);
    assert_eq!(close.reason.as_str(), "idle timeout");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_are_authenticated_limited_and_private() {
    let (app, keys) = spawn_auth_app(|s| {
        s.server.requests_per_minute = 60;
        s.server.ask_weight = 25;
    })
    .await;
    // No key, no ticket: refused at the upgrade.
    match connect_async(url(&app, "")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let ticket = |key: String| {
        let app = &app;
        async move {
            let reply = app.post_as(&key, "/api/v1/ws-ticket", &json!({})).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.body["ticket"].as_str().unwrap().to_string()
        }
    };

    // A viewer may plan but not run.
    let t = ticket(keys.viewer.clone()).await;
    let mut viewer = connect_to(&app, &format!("?ticket={t}")).await;
    configure(&mut viewer, json!({})).await;
    let events = ask(&mut viewer, "v1", "orders by channel").await;
    assert_eq!(events.last().unwrap()["code"], "FORBIDDEN", "{events:#?}");
    send(
        &mut viewer,
        json!({"type": "ask", "question": "orders by channel", "execute": false, "request_id": "v2"}),
    )
    .await;
    let events = events_of(&mut viewer, "v2").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");

    // An analyst's conversation is theirs alone.
    let t = ticket(keys.analyst.clone()).await;
    let mut analyst = connect_to(&app, &format!("?ticket={t}")).await;
    let configured = configure(&mut analyst, json!({})).await;
    let events = ask(&mut analyst, "a1", "revenue by country in 2024").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
    if let Some(id) = configured["conversation_id"].as_str() {
        let t = ticket(keys.analyst_all.clone()).await;
        let mut other = connect_to(&app, &format!("?ticket={t}")).await;
        send(
            &mut other,
            json!({"type": "configure", "conversation_id": id}),
        )
        .await;
        let ev = next_event(&mut other).await;
        assert_eq!(ev["type"], "error", "{ev}");
        assert_eq!(ev["code"], "NOT_FOUND");
    }

    // Asks are charged like REST asks: 60 units a minute at 25 an ask.
    let events = ask(&mut analyst, "a2", "orders by channel").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
    let events = ask(&mut analyst, "a3", "orders by channel").await;
    let last = events.last().unwrap();
    assert_eq!(last["code"], "RATE_LIMITED", "{events:#?}");
    assert!(last["message"].as_str().unwrap().contains("retry after"));

    // A ticket is only good for an upgrade, and a bad one is refused.
    match connect_async(url(&app, "?ticket=wst_forged")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_page_loads_without_a_key_under_a_strict_policy() {
    let (app, _keys) = spawn_auth_app(|_| {}).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let html = app.text("/").await;
    assert!(html.contains("/api/v1/ws") || html.contains("/assets/app.js"));
    // The API next to it still needs a key.
    app.get("/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_caps_open_connections() {
    let app = spawn_app_with(|s| s.ws.max_connections = 2).await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    ping_pong(&mut first).await;
    ping_pong(&mut second).await;

    match connect_async(url(&app, "")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "TOO_MANY_CONNECTIONS", "{body}");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // The open ones are untouched by the refusal.
    ping_pong(&mut second).await;

    // Closing one frees its slot (once the server has seen the close).
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut third = loop {
        match connect_async(url(&app, "")).await {
            Ok((ws, _)) => break ws,
            Err(e) => {
                assert!(Instant::now() < deadline, "no slot freed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    ping_pong(&mut third).await;
}

/// A new analyst key (shop only), made through the admin API: `(key, id)`.
async fn new_key(app: &TestApp, admin: &str, extra: Value) -> (String, String) {
    let mut body = json!({"name": "ws", "role": "analyst", "datasets": ["shop"]});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let created = app.post_as(admin, "/api/v1/admin/keys", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    (
        created.body["key"].as_str().unwrap().to_string(),
        created.body["id"].as_str().unwrap().to_string(),
    )
}

async fn ticket_for(app: &TestApp, key: &str) -> String {
    let reply = app.post_as(key, "/api/v1/ws-ticket", &json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["ticket"].as_str().unwrap().to_string()
}

/// The frames after an ask on a connection whose key is gone: an `error` `UNAUTHENTICATED`
/// for the ask, then a close with 1008.
async fn assert_closed_for_credentials(ws: &mut Ws, request_id: &str) {
    send(
        ws,
        json!({"type": "ask", "question": "orders by channel", "request_id": request_id}),
    )
    .await;
    let ev = next_event(ws).await;
    assert_eq!(ev["type"], "error", "{ev}");
    assert_eq!(ev["code"], "UNAUTHENTICATED", "{ev}");
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Policy));
}

/// A socket used to outlive its key: revoked, narrowed or expired, asks on an open connection
/// still returned rows. Each ask now reads the key again.
#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_does_not_outlive_its_key() {
    let (app, keys) = spawn_auth_app(|_| {}).await;

    // Revoked: the next ask is refused and the connection closed with 1008.
    let (key, id) = new_key(&app, &keys.admin, json!({})).await;
    let mut ws = connect_to(&app, &format!("?ticket={}", ticket_for(&app, &key).await)).await;
    configure(&mut ws, json!({})).await;
    let events = ask(&mut ws, "r1", "orders by channel").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
    let revoked = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/keys/{id}"),
            Some(&keys.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_closed_for_credentials(&mut ws, "r2").await;

    // Narrowed: the next ask sees the new grants (shop is no longer readable).
    let (key, id) = new_key(&app, &keys.admin, json!({})).await;
    let mut ws = connect_to(&app, &format!("?ticket={}", ticket_for(&app, &key).await)).await;
    configure(&mut ws, json!({"dataset_id": "shop"})).await;
    let events = ask(&mut ws, "n1", "orders by channel").await;
    assert_eq!(events.last().unwrap()["type"], "done", "{events:#?}");
    let patched = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/admin/keys/{id}"),
            Some(&keys.admin),
            Some(&json!({"datasets": ["secret"]})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let events = ask(&mut ws, "n2", "orders by channel").await;
    assert_eq!(events.last().unwrap()["code"], "FORBIDDEN", "{events:#?}");

    // Expired: the same as revoked.
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (key, _) = new_key(&app, &keys.admin, json!({"expires_at": expires})).await;
    let mut ws = connect_to(&app, &format!("?ticket={}", ticket_for(&app, &key).await)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_closed_for_credentials(&mut ws, "e1").await;
}

/// Tickets were reusable within their TTL, and accepted on REST GETs that carried
/// `Upgrade: websocket`. A ticket now opens one WebSocket, and only the WebSocket.
#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_opens_one_websocket_and_nothing_else() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let ticket = ticket_for(&app, &keys.analyst).await;
    let rest = app
        .client
        .get(format!("{}/api/v1/datasets?ticket={ticket}", app.address))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 401);

    let mut ws = connect_to(&app, &format!("?ticket={ticket}")).await;
    ping_pong(&mut ws).await;
    match connect_async(url(&app, &format!("?ticket={ticket}"))).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("already used"), "{body}");
        }
        other => panic!("a used ticket must be refused, got {other:?}"),
    }
}

/// `cancel` echoed whatever id it was sent; a message assembled from continuation frames past
/// the limit closed with 1002 where docs/API.md says 1009.
#[tokio::test(flavor = "multi_thread")]
async fn cancel_ids_are_checked_and_oversized_messages_close_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let app = spawn_app().await;
    let mut ws = connect(&app).await;
    send(
        &mut ws,
        json!({"type": "cancel", "request_id": "<img src=x onerror=alert(1)>"}),
    )
    .await;
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["code"], "INVALID_MESSAGE", "{ev}");
    assert!(ev.get("request_id").is_none(), "{ev}");
    assert!(!ev.to_string().contains("<img"), "{ev}");

    let part = vec![b'a'; 700 * 1024];
    ws.send(Message::Frame(Frame::message(
        part.clone(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    let _ = ws
        .send(Message::Frame(Frame::message(
            part,
            OpCode::Data(Data::Continue),
            false,
        )))
        .await;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));
}
