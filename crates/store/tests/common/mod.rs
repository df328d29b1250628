//! Shared helpers of the store's tests: PostgreSQL test databases come from bqai-testkit.
// Each test file compiles its own copy and uses part of it.
#![allow(dead_code, unused_imports)]

pub use bqai_testkit::postgres::{TestDb, admin_url, database_name, with_database};

use bqai_core::history::{HistoryEntry, QueryKind, QueryStatus};
use chrono::{DateTime, Utc};

/// A succeeded SQL entry of `principal` at `created_at` (truncated to the microseconds both
/// databases keep).
pub fn entry(id: &str, principal: &str, created_at: DateTime<Utc>) -> HistoryEntry {
    HistoryEntry {
        id: id.into(),
        kind: QueryKind::Sql,
        question: None,
        sql_submitted: "SELECT 1".into(),
        sql_executed: Some("SELECT 1 LIMIT 1000".into()),
        status: QueryStatus::Succeeded,
        error_code: None,
        error_message: None,
        principal: Some(principal.into()),
        dataset: None,
        dry_run: false,
        bytes_processed: 1,
        bytes_billed: 2,
        duration_ms: 3,
        row_count: 4,
        cache_hit: false,
        created_at: DateTime::from_timestamp_micros(created_at.timestamp_micros()).unwrap(),
        ask: None,
        request_id: None,
    }
}

/// How many migrations `migrations/<backend>` holds (each is one directory).
pub fn migration_count(backend: &str) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count()
}

/// Runs the three authentication contract suites (keys, audit, usage) against `store`, one
/// after the other.
pub async fn auth_contracts(store: &bqai_store::Store) {
    bqai_testkit::auth::key_store_contract(store.keys()).await;
    bqai_testkit::auth::audit_log_contract(store.audit()).await;
    bqai_testkit::auth::usage_ledger_contract(store.usage()).await;
}

/// Every text a caller or a log line could show for `err`: its message, its debug form (which
/// includes the cause chain) and each cause's message.
pub fn all_texts(err: &bqai_core::Error) -> String {
    let mut text = format!("{err}\n{err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

/// Creates `n` conversations of two turns each in `store` (built with a short TTL); returns
/// their ids.
pub async fn conversations_with_turns(
    store: &dyn bqai_core::ports::ConversationStore,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let c = bqai_core::conversation::Conversation::new(Some("p".into()), None);
        store.create_conversation(&c).await.unwrap();
        for t in 0..2 {
            let turn = bqai_testkit::conversation::turn(t);
            store
                .append_turn(&c.id, &turn, Some("shop"), 10)
                .await
                .unwrap()
                .unwrap();
        }
        ids.push(c.id);
    }
    ids
}

/// An expired conversation is absent: while it lives its id is a `Conflict`; once its 200 ms
/// TTL has passed (`short` must be built with it) the id may be created again, without the
/// old turns. Returns the new conversation.
pub async fn expired_id_is_reusable(
    short: &dyn bqai_core::ports::ConversationStore,
) -> bqai_core::conversation::Conversation {
    let id = conversations_with_turns(short, 1).await.remove(0);
    let mut again = bqai_core::conversation::Conversation::new(None, None);
    again.id = id.clone();
    match short.create_conversation(&again).await {
        Err(bqai_core::Error::Conflict(m)) => {
            assert_eq!(m, format!("conversation {id} already exists"));
        }
        other => panic!("a live id must be a Conflict, got {other:?}"),
    }
    // The failed create left its connection usable.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    short.create_conversation(&again).await.unwrap();
    let got = short.get_conversation(&id).await.unwrap().unwrap();
    assert!(got.turns.is_empty(), "the old turns went with the old row");
    got
}
