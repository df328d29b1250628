//! Contract suite for the [`ConversationStore`] port: the in-process, Redis and SQL stores
//! must all pass it.
//!
//! Ids are fresh UUIDv7s, so runs can share one Redis or database. The store under test must
//! be built with the `ttl` passed in (1–2 s keeps the suite quick): the suite sleeps about
//! `2.3 × ttl` to watch a conversation expire and an append refresh it.

use std::sync::Arc;
use std::time::Duration;

use bqai_core::conversation::{Conversation, Entities, ResultSummary, Turn};
use bqai_core::error::Error;
use bqai_core::ports::ConversationStore;

/// Runs every check against `store` (built with time to live `ttl`); panics with a
/// description of the first violation.
pub async fn conversation_contract(store: Arc<dyn ConversationStore>, ttl: Duration) {
    create_get_delete(store.as_ref()).await;
    unknown_ids(store.as_ref()).await;
    append_sets_dataset_and_keeps_order(store.as_ref()).await;
    max_turns_drops_the_oldest(store.as_ref()).await;
    concurrent_appends_lose_nothing(&store).await;
    // Last, because it sleeps.
    ttl_expiry_and_refresh(store.as_ref(), ttl).await;
}

/// A turn numbered `n`, with every field filled.
pub fn turn(n: usize) -> Turn {
    Turn {
        request_id: format!("req-{n}"),
        question: format!("question {n}"),
        sql: Some(format!("SELECT {n}")),
        explanation: format!("answer {n}"),
        result: Some(ResultSummary {
            columns: vec!["n".into()],
            row_count: 1,
            sample_rows: vec![vec![serde_json::json!(n)]],
        }),
        entities: Entities {
            tables: vec!["shop.orders".into()],
            measures: vec!["revenue".into()],
            dimensions: vec!["country".into()],
            filters: vec!["channel = web".into()],
            time_range: Some("in 2024".into()),
            time_bucket: Some("month".into()),
            limit: Some(5),
        },
        generator_state: Some(serde_json::json!({"n": n, "plan": ["a", "b"]})),
        at: chrono::Utc::now(),
    }
}

async fn get(store: &dyn ConversationStore, id: &str) -> Option<Conversation> {
    store
        .get_conversation(id)
        .await
        .unwrap_or_else(|e| panic!("get_conversation({id}) failed: {e}"))
}

async fn append(
    store: &dyn ConversationStore,
    id: &str,
    t: &Turn,
    dataset: Option<&str>,
    max_turns: usize,
) -> Option<Conversation> {
    store
        .append_turn(id, t, dataset, max_turns)
        .await
        .unwrap_or_else(|e| panic!("append_turn({id}) failed: {e}"))
}

async fn create(
    store: &dyn ConversationStore,
    principal: Option<&str>,
    ds: Option<&str>,
) -> String {
    let c = Conversation::new(principal.map(str::to_owned), ds.map(str::to_owned));
    store
        .create_conversation(&c)
        .await
        .unwrap_or_else(|e| panic!("create_conversation failed: {e}"));
    c.id
}

async fn create_get_delete(store: &dyn ConversationStore) {
    let c = Conversation::new(Some("key:alice".into()), Some("shop".into()));
    store.create_conversation(&c).await.expect("create");
    let got = get(store, &c.id)
        .await
        .expect("a created conversation must be found");
    assert_eq!(got.id, c.id);
    assert_eq!(got.principal.as_deref(), Some("key:alice"));
    assert_eq!(got.dataset.as_deref(), Some("shop"));
    assert!(got.turns.is_empty(), "a new conversation has no turns");
    assert_eq!(
        got.created_at.timestamp_millis(),
        c.created_at.timestamp_millis(),
        "created_at must survive the round trip (to the millisecond)"
    );
    match store.create_conversation(&c).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("creating an existing id must be Conflict, got {other:?}"),
    }
    assert!(store.delete_conversation(&c.id).await.expect("delete"));
    assert!(
        get(store, &c.id).await.is_none(),
        "a deleted conversation must be gone"
    );
    assert!(
        !store
            .delete_conversation(&c.id)
            .await
            .expect("delete again"),
        "deleting twice must report that nothing was there"
    );
    let anonymous = create(store, None, None).await;
    let got = get(store, &anonymous)
        .await
        .expect("anonymous conversation");
    assert_eq!(got.principal, None);
    assert_eq!(got.dataset, None);
}

async fn unknown_ids(store: &dyn ConversationStore) {
    let id = uuid_like();
    assert!(get(store, &id).await.is_none(), "unknown id must be None");
    assert!(
        append(store, &id, &turn(1), Some("shop"), 10)
            .await
            .is_none(),
        "appending to an unknown id must be None"
    );
    assert!(
        get(store, &id).await.is_none(),
        "appending to an unknown id must not create it"
    );
    assert!(
        !store
            .delete_conversation(&id)
            .await
            .expect("delete unknown")
    );
}

async fn append_sets_dataset_and_keeps_order(store: &dyn ConversationStore) {
    let id = create(store, Some("p"), None).await;
    let after = append(store, &id, &turn(1), Some("shop"), 10)
        .await
        .expect("append to a live conversation");
    assert_eq!(
        after.dataset.as_deref(),
        Some("shop"),
        "dataset set when missing"
    );
    assert_eq!(after.turns, vec![turn_like(&after.turns[0], 1)]);
    append(store, &id, &turn(2), Some("other"), 10)
        .await
        .expect("append");
    let got = get(store, &id).await.expect("conversation");
    assert_eq!(
        got.dataset.as_deref(),
        Some("shop"),
        "a dataset, once set, is kept"
    );
    let questions: Vec<&str> = got.turns.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(
        questions,
        ["question 1", "question 2"],
        "turns oldest first"
    );
    let first = &got.turns[0];
    let want = turn(1);
    assert_eq!(first.request_id, want.request_id);
    assert_eq!(first.sql, want.sql);
    assert_eq!(first.explanation, want.explanation);
    assert_eq!(first.result, want.result);
    assert_eq!(first.entities, want.entities);
    assert_eq!(first.generator_state, want.generator_state);
    assert!(
        got.updated_at >= got.created_at,
        "updated_at moves on with a turn"
    );
    store.delete_conversation(&id).await.expect("cleanup");
}

/// `t` with the fields of turn `n` that must round-trip compared (not the timestamp's
/// sub-millisecond part, which some stores round).
fn turn_like(t: &Turn, n: usize) -> Turn {
    Turn {
        at: t.at,
        ..turn(n)
    }
}

async fn max_turns_drops_the_oldest(store: &dyn ConversationStore) {
    let id = create(store, Some("p"), Some("shop")).await;
    for n in 1..=5 {
        append(store, &id, &turn(n), None, 3).await.expect("append");
    }
    let got = get(store, &id).await.expect("conversation");
    let questions: Vec<&str> = got.turns.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(
        questions,
        ["question 3", "question 4", "question 5"],
        "max_turns keeps the newest turns"
    );
    store.delete_conversation(&id).await.expect("cleanup");
}

async fn concurrent_appends_lose_nothing(store: &Arc<dyn ConversationStore>) {
    let id = create(store.as_ref(), Some("p"), Some("shop")).await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = Arc::clone(store);
            let id = id.clone();
            tokio::spawn(async move {
                store
                    .append_turn(&id, &turn(n), None, 100)
                    .await
                    .expect("concurrent append")
                    .expect("conversation alive")
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let got = get(store.as_ref(), &id).await.expect("conversation");
    let mut ids: Vec<String> = got.turns.iter().map(|t| t.request_id.clone()).collect();
    ids.sort();
    let mut want: Vec<String> = (0..16).map(|n| format!("req-{n}")).collect();
    want.sort();
    assert_eq!(
        ids, want,
        "every concurrent append must be kept exactly once"
    );
    store.delete_conversation(&id).await.expect("cleanup");
}

async fn ttl_expiry_and_refresh(store: &dyn ConversationStore, ttl: Duration) {
    let kept = create(store, Some("p"), None).await;
    let idle = create(store, Some("p"), None).await;
    tokio::time::sleep(ttl.mul_f64(0.6)).await;
    append(store, &kept, &turn(1), None, 10)
        .await
        .expect("append before expiry");
    tokio::time::sleep(ttl.mul_f64(0.6)).await;
    assert!(
        get(store, &kept).await.is_some(),
        "an append must extend the time to live"
    );
    assert!(
        get(store, &idle).await.is_none(),
        "an idle conversation must expire after its ttl"
    );
    assert!(
        append(store, &idle, &turn(1), None, 10).await.is_none(),
        "appending to an expired conversation must be None"
    );
    tokio::time::sleep(ttl.mul_f64(1.1)).await;
    assert!(
        get(store, &kept).await.is_none(),
        "a conversation must expire ttl after its last turn"
    );
    assert!(
        !store
            .delete_conversation(&kept)
            .await
            .expect("delete expired"),
        "an expired conversation counts as absent"
    );
}

fn uuid_like() -> String {
    Conversation::new(None, None).id
}
