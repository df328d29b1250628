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
        sql_shape: None,
        question_shape: None,
        tables: Vec::new(),
        rerun_of: None,
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

/// The retention contract on a fresh, migrated store: purges delete exactly what is older than
/// the cutoff (strictly), in more than one batch, leave everything else, report what went,
/// and leave no purge permit behind; the store's measurements follow.
pub async fn retention_contract(store: &bqai_store::Store) {
    use bqai_core::ports::{AuditLog, HistoryStore};
    use bqai_store::{PURGE_BATCH, Purgeable};

    let now = Utc::now();
    let cutoff = now - chrono::TimeDelta::days(1);
    let old = PURGE_BATCH as usize * 2 + 100;
    let history = store.history();
    for i in 0..old {
        let at = cutoff - chrono::TimeDelta::seconds(i as i64 + 1);
        history
            .record(&entry(&format!("old-{i:05}"), "p", at))
            .await
            .unwrap();
    }
    // Exactly at the cutoff: kept.
    history
        .record(&entry("at-cutoff", "p", cutoff))
        .await
        .unwrap();
    for i in 0..7 {
        history
            .record(&entry(&format!("new-{i}"), "p", now))
            .await
            .unwrap();
    }
    let events: Vec<_> = (0..old)
        .map(|i| {
            bqai_testkit::auth::audit_event(
                &format!("old-{i:05}"),
                cutoff - chrono::TimeDelta::seconds(i as i64 + 1),
            )
        })
        .chain([bqai_testkit::auth::audit_event("at-cutoff", cutoff)])
        .chain((0..5).map(|i| bqai_testkit::auth::audit_event(&format!("new-{i}"), now)))
        .collect();
    store.audit().append_batch(&events).await.unwrap();

    let before = store.stats().await.unwrap();
    assert_eq!(before.rows["query_history"], old as u64 + 8);
    assert_eq!(before.rows["audit_log"], old as u64 + 6);
    assert!(before.size_bytes > 0, "{before:?}");
    assert_eq!(before.backend, store.backend_name());

    let cutoff_micros = micros(cutoff);
    assert_eq!(
        store
            .purge_before(Purgeable::History, cutoff_micros)
            .await
            .unwrap(),
        old as u64
    );
    assert_eq!(
        store
            .purge_before(Purgeable::Audit, cutoff_micros)
            .await
            .unwrap(),
        old as u64
    );
    // Nothing left to purge.
    assert_eq!(
        store
            .purge_before(Purgeable::History, cutoff_micros)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_before(Purgeable::Audit, cutoff_micros)
            .await
            .unwrap(),
        0
    );

    let after = store.stats().await.unwrap();
    assert_eq!(after.rows["query_history"], 8, "{after:?}");
    assert_eq!(after.rows["audit_log"], 6, "{after:?}");
    assert!(history.get("at-cutoff").await.unwrap().is_some());
    assert!(history.get("old-00000").await.unwrap().is_none());
    let left = store
        .audit()
        .list_events(
            &Default::default(),
            &bqai_core::model::PageRequest::first(100),
        )
        .await
        .unwrap();
    let mut ids: Vec<_> = left.items.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["at-cutoff", "new-0", "new-1", "new-2", "new-3", "new-4"]
    );
}

/// `t` cut to whole microseconds, as stored.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}
