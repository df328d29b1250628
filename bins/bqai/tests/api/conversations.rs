//! Conversations over REST: create, ask in context with the built-in planner, read, delete;
//! suggestions that run; ownership; bad, unknown and expired ids.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_auth_app};

async fn create(app: &TestApp) -> String {
    let r = app.post_json("/api/v1/conversations", &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["dataset_id"], "shop", "{}", r.body);
    assert!(r.body["expires_at"].is_string(), "{}", r.body);
    r.body["conversation_id"].as_str().unwrap().to_owned()
}

/// `DELETE` whose success has no body (the shared helper expects JSON).
async fn delete_status(app: &TestApp, path: &str, key: Option<&str>) -> u16 {
    let mut req = app.client.delete(format!("{}{path}", app.address));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status == 204 {
        assert!(resp.bytes().await.unwrap().is_empty(), "204 has no body");
    }
    status
}

/// A deleted or expired conversation can neither be read nor continued with `question`.
async fn assert_gone(app: &TestApp, id: &str, question: &str) {
    app.get(&format!("/api/v1/conversations/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.post_json(
        "/api/v1/ask",
        &json!({"question": question, "conversation_id": id}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn ask(app: &TestApp, conversation: &str, question: &str) -> Value {
    let r = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": question, "conversation_id": conversation}),
        )
        .await;
    assert_eq!(r.status, 200, "{question:?}: {}", r.body);
    assert_eq!(r.body["conversation_id"], conversation);
    r.body
}

#[tokio::test]
async fn three_turns_with_the_builtin_planner() {
    let app = spawn_app().await;
    let id = create(&app).await;
    let first = ask(&app, &id, "revenue by country in 2024").await;
    assert_eq!(first["result"]["row_count"], 10, "{first}");
    ask(&app, &id, "now by month").await;
    let third = ask(&app, &id, "only web orders").await;
    let sql = third["sql"].as_str().unwrap();
    for part in ["date_trunc('month'", "'web'", "2024-01-01", "2025-01-01"] {
        assert!(sql.contains(part), "{part} missing from {sql}");
    }
    assert!(!sql.contains("country"), "{sql}");
    assert_eq!(third["result"]["row_count"], 12, "{third}");

    let got = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let turns = got.body["turns"].as_array().unwrap();
    let questions: Vec<&str> = turns
        .iter()
        .map(|t| t["question"].as_str().unwrap())
        .collect();
    assert_eq!(
        questions,
        [
            "revenue by country in 2024",
            "now by month",
            "only web orders"
        ]
    );
    assert_eq!(turns[2]["sql"], third["sql"]);
    assert_eq!(turns[2]["result"]["row_count"], 12);
    assert_eq!(turns[2]["entities"]["time_bucket"], "month");
    assert!(
        turns[2].get("generator_state").is_none(),
        "private state is not sent"
    );

    assert_eq!(
        delete_status(&app, &format!("/api/v1/conversations/{id}"), None).await,
        204
    );
    assert_gone(&app, &id, "now by week").await;
}

/// A follow-up's SQL answers its words in that conversation: the same words asked alone must
/// not come back with the conversation's filters (as a reused "verified" example or from the
/// question cache), and history says which asks were follow-ups.
#[tokio::test]
async fn a_follow_up_answer_is_not_reused_outside_its_conversation() {
    let app = spawn_app().await;
    let id = create(&app).await;
    ask(&app, &id, "revenue by country in 2024").await;
    ask(&app, &id, "only web orders").await;
    let follow = ask(&app, &id, "now per quarter").await;
    let sql = follow["sql"].as_str().unwrap();
    assert!(sql.contains("'web'") && sql.contains("quarter"), "{sql}");

    for round in 0..2 {
        let alone = app
            .post_json("/api/v1/ask", &json!({"question": "now per quarter"}))
            .await;
        if alone.status == 200 {
            let sql = alone.body["sql"].as_str().unwrap();
            assert!(!sql.contains("'web'"), "round {round}: {sql}");
            let explanation = alone.body["explanation"].as_str().unwrap_or_default();
            assert!(!explanation.contains("Reuses"), "{explanation}");
        } else {
            assert_eq!(alone.status, 422, "round {round}: {}", alone.body);
        }
    }

    let history = app.get("/api/v1/history?kind=ask&page_size=50").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let follow_ups: Vec<(&str, bool)> = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "succeeded")
        .map(|e| {
            (
                e["question"].as_str().unwrap(),
                e["ask"]["follow_up"].as_bool().unwrap(),
            )
        })
        .collect();
    for (question, want) in [
        ("revenue by country in 2024", false),
        ("only web orders", true),
    ] {
        assert!(
            follow_ups.contains(&(question, want)),
            "{question}: {follow_ups:?}"
        );
    }
}

#[tokio::test]
async fn suggestions_are_present_and_run_as_follow_ups() {
    let app = spawn_app().await;
    let id = create(&app).await;
    let answer = ask(&app, &id, "revenue by country in 2024").await;
    let suggestions = answer["suggestions"].as_array().unwrap().clone();
    assert!((2..=4).contains(&suggestions.len()), "{answer}");
    let kinds: Vec<&str> = suggestions
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"drill_down") && kinds.contains(&"trend"),
        "{kinds:?}"
    );
    for s in &suggestions {
        // Each from the same starting point, in its own conversation.
        let c = create(&app).await;
        ask(&app, &c, "revenue by country in 2024").await;
        let follow = ask(&app, &c, s["question"].as_str().unwrap()).await;
        assert!(follow["result"]["row_count"].is_number(), "{s}: {follow}");
    }
    // Without a conversation, suggestions still come with the answer.
    let plain = app
        .post_json(
            "/api/v1/ask",
            &json!({"question": "number of orders by channel"}),
        )
        .await;
    assert_eq!(plain.status, 200);
    assert!(plain.body["conversation_id"].is_null());
    assert!(!plain.body["suggestions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_unknown_and_expired_ids() {
    let app = spawn_app_with(|s| s.conversations.ttl_secs = 1).await;
    app.get("/api/v1/conversations/not-a-uuid!")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post_json(
        "/api/v1/ask",
        &json!({"question": "revenue by country", "conversation_id": "zz"}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
    let unknown = "01900000-0000-7000-8000-000000000000";
    app.get(&format!("/api/v1/conversations/{unknown}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(
        Method::DELETE,
        &format!("/api/v1/conversations/{unknown}"),
        None,
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.post_json(
        "/api/v1/conversations",
        &json!({"dataset_id": "no_such_dataset"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    let id = create(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_gone(&app, &id, "now by month").await;
}

#[tokio::test]
async fn another_key_cannot_read_continue_or_delete() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let r = app
        .post_as(
            &keys.analyst,
            "/api/v1/conversations",
            &json!({"dataset_id": "shop"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/conversations/{id}");
    let asked = app
        .post_as(
            &keys.analyst,
            "/api/v1/ask",
            &json!({"question": "revenue by country in 2024", "conversation_id": id}),
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);

    let other = &keys.analyst_all;
    app.get_as(other, &path)
        .await
        .assert_error(404, "NOT_FOUND");
    app.post_as(
        other,
        "/api/v1/ask",
        &json!({"question": "now by month", "conversation_id": id}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.send(Method::DELETE, &path, Some(other), None)
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(Method::GET, &path, None, None)
        .await
        .assert_error(401, "UNAUTHENTICATED");

    // The owner still has it, untouched; an admin may read it.
    let mine = app.get_as(&keys.analyst, &path).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["turns"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_as(&keys.admin, &path).await.status, 200);
    assert_eq!(delete_status(&app, &path, Some(&keys.analyst)).await, 204);
}

/// "revenue by country in 2024" on `a`, then "now by month" and "only web orders" on `b`:
/// the follow-ups must be read in the context `a` stored, and both replicas see every turn.
async fn continue_on_another_replica(a: &TestApp, b: &TestApp) {
    let id = create(a).await;
    ask(a, &id, "revenue by country in 2024").await;
    ask(b, &id, "now by month").await;
    let third = ask(b, &id, "only web orders").await;
    let sql = third["sql"].as_str().unwrap();
    for part in ["date_trunc('month'", "'web'", "2024-01-01"] {
        assert!(sql.contains(part), "{part} missing from {sql}");
    }
    for app in [a, b] {
        let got = app.get(&format!("/api/v1/conversations/{id}")).await;
        assert_eq!(got.status, 200, "{}", got.body);
        let questions: Vec<&str> = got.body["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["question"].as_str().unwrap())
            .collect();
        assert_eq!(
            questions,
            [
                "revenue by country in 2024",
                "now by month",
                "only web orders"
            ]
        );
    }
    assert_eq!(
        delete_status(b, &format!("/api/v1/conversations/{id}"), None).await,
        204
    );
    let gone = a.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_conversations_through_redis() {
    let namespace = format!("{}:", bqai_testkit::unique_prefix("conv"));
    let replica = |namespace: String| {
        spawn_app_with(move |s| {
            s.cache.url = "redis://127.0.0.1:6379".into();
            s.cache.redis_namespace = namespace;
            s.conversations.store = "redis".into();
        })
    };
    let a = replica(namespace.clone()).await;
    let b = replica(namespace).await;
    continue_on_another_replica(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_conversations_through_postgres() {
    let db = bqai_testkit::postgres::TestDb::create("api-conversations").await;
    let replica = |url: String| {
        spawn_app_with(move |s| {
            s.store.url = url;
            s.conversations.store = "sql".into();
        })
    };
    let a = replica(db.url.clone()).await;
    let b = replica(db.url.clone()).await;
    continue_on_another_replica(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_conversations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bqai.db").display());
    let app_on = |url: String| {
        spawn_app_with(move |s| {
            s.store.url = url;
            s.conversations.store = "sql".into();
        })
    };
    let first = app_on(url.clone()).await;
    let id = create(&first).await;
    ask(&first, &id, "revenue by country in 2024").await;
    drop(first);

    let second = app_on(url).await;
    let next = ask(&second, &id, "now by month").await;
    let sql = next["sql"].as_str().unwrap();
    assert!(
        sql.contains("date_trunc('month'") && sql.contains("2024-01-01"),
        "the follow-up is read in the context stored before the restart: {sql}"
    );
    let got = second.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(
        got.body["turns"].as_array().unwrap().len(),
        2,
        "{}",
        got.body
    );
}

/// The body of `POST /api/v1/conversations` is optional, but one that is sent is checked like
/// every JSON body (found by schemathesis: unknown fields used to be ignored silently).
#[tokio::test]
async fn an_optional_body_is_still_checked() {
    let app = spawn_app().await;
    let r = app
        .post_raw("/api/v1/conversations", "application/json", "")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    app.post_json(
        "/api/v1/conversations",
        &json!({"dataset_id": "shop", "datset": "typo"}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
    app.post_raw("/api/v1/conversations", "application/json", "{not json")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.post_raw(
        "/api/v1/conversations",
        "text/plain",
        "{\"dataset_id\":\"shop\"}",
    )
    .await
    .assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let r = app
        .post_json("/api/v1/conversations", &json!({"dataset_id": "shop"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["dataset_id"], "shop");
}
