//! The SQLite store against the port contract suites (history, keys, audit, usage,
//! conversations), plus SQLite-specific behaviour: migrations, file creation, concurrency,
//! limits, the append-only audit log, durable and purged conversations. PostgreSQL's are in
//! `postgres.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bqai_core::Error;
use bqai_core::history::HistoryFilter;
use bqai_core::model::{HealthStatus, PageRequest};
use bqai_core::ports::{AuditLog, ConversationStore, HistoryStore, KeyStore, UsageLedger};
use bqai_store::{SqlConversationStore, Store, StoreOptions};
use bqai_testkit::auth::{audit_event, key_record};
use chrono::{NaiveDate, Utc};
use common::{auth_contracts, conversations_with_turns, entry, migration_count};

/// The TTL the conversation contract runs with (it sleeps about 2.3 × this).
const TTL: Duration = Duration::from_secs(1);

async fn migrated(url: &str) -> Store {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_passes_the_history_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    bqai_testkit::history::history_contract(migrated(&url).await.history()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_passes_the_history_contract() {
    bqai_testkit::history::history_contract(migrated("sqlite::memory:").await.history()).await;
}

// actix-web handlers run on current-thread runtimes.
#[tokio::test]
async fn passes_the_history_contract_on_a_current_thread_runtime() {
    bqai_testkit::history::history_contract(migrated("sqlite::memory:").await.history()).await;
}

// The contracts twice on one database: runs must not see each other's rows.
#[tokio::test(flavor = "multi_thread")]
async fn contract_runs_share_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(dir.path().join("shared.db").to_str().unwrap()).await;
    tokio::join!(
        bqai_testkit::history::history_contract(store.history()),
        bqai_testkit::history::history_contract(store.history()),
        auth_contracts(&store),
        auth_contracts(&store),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_passes_the_auth_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    auth_contracts(&migrated(&url).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_passes_the_auth_contracts() {
    auth_contracts(&migrated("sqlite::memory:").await).await;
}

#[tokio::test]
async fn passes_the_auth_contracts_on_a_current_thread_runtime() {
    auth_contracts(&migrated("sqlite::memory:").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_and_usage_saturate_at_i64_max() {
    let store = migrated("sqlite::memory:").await;
    let mut key = key_record("big");
    key.daily_byte_quota = Some(u64::MAX);
    store.insert_key(&key).await.unwrap();
    let back = store.get_key("big").await.unwrap().unwrap();
    assert_eq!(back.daily_byte_quota, Some(i64::MAX as u64));

    let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    assert_eq!(
        store.charge_bytes("p", day, u64::MAX).await.unwrap(),
        i64::MAX as u64
    );
    assert_eq!(
        store
            .charge_bytes("q", day, i64::MAX as u64 - 1)
            .await
            .unwrap(),
        i64::MAX as u64 - 1
    );
    assert_eq!(
        store.charge_bytes("q", day, 5).await.unwrap(),
        i64::MAX as u64
    );
    assert_eq!(
        store.charge_bytes("q", day, 5).await.unwrap(),
        i64::MAX as u64
    );
    assert_eq!(store.bytes_used("q", day).await.unwrap(), i64::MAX as u64);

    let mut event = audit_event("huge", Utc::now());
    event.bytes = u64::MAX;
    store.append(&event).await.unwrap();
    let listed = store
        .list_events(&Default::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items[0].bytes, i64::MAX as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_and_event_ids_are_conflicts_naming_them() {
    let store = migrated("sqlite::memory:").await;
    store.insert_key(&key_record("k1")).await.unwrap();
    match store.insert_key(&key_record("k1")).await {
        Err(Error::Conflict(m)) => assert_eq!(m, "API key k1 already exists"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    store.append(&audit_event("ev1", Utc::now())).await.unwrap();
    match store.append(&audit_event("ev1", Utc::now())).await {
        Err(Error::Conflict(m)) => assert_eq!(m, "audit event ev1 already exists"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

// Nothing in bqai updates or deletes audit events; the database refuses it to anyone else too.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_refuses_updates_and_deletes() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = migrated(path.to_str().unwrap()).await;
    let event = audit_event("kept", Utc::now());
    store.append(&event).await.unwrap();

    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    for statement in [
        "UPDATE audit_log SET outcome = 'allowed', detail = 'rewritten'",
        "DELETE FROM audit_log",
    ] {
        let err = diesel::sql_query(statement).execute(&mut conn).unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let listed = store
        .list_events(&Default::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, [event]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unmigrated_store_fails_every_port_cleanly() {
    let store = Store::connect("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    for err in [
        store.get_key("x").await.unwrap_err(),
        store
            .list_events(&Default::default(), &PageRequest::first(1))
            .await
            .unwrap_err(),
        store.charge_bytes("p", day, 1).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Unavailable { .. } | Error::Internal { .. }),
            "{err:?}"
        );
    }
}

// Migrations run on a current-thread runtime too (diesel-async's own harness would panic).
#[tokio::test]
async fn migrations_are_idempotent_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        migration_count("sqlite"),
        "first run applies every migration"
    );
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "second run has nothing to do"
    );
    drop(store);
    let reopened = Store::connect(&url, StoreOptions::default()).await.unwrap();
    assert_eq!(
        reopened.migrate().await.unwrap(),
        0,
        "a reopened database is up to date"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_apply_each_migration_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("race.db").to_str().unwrap().to_owned();
    let a = Store::connect(&url, StoreOptions::default()).await.unwrap();
    let b = Store::connect(&url, StoreOptions::default()).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    assert_eq!(ra.unwrap() + rb.unwrap(), migration_count("sqlite"));
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_the_file_in_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does/not/exist/yet/bqai.db");
    let store = migrated(&format!("sqlite://{}", path.display())).await;
    assert!(
        path.is_file(),
        "database file was not created at {}",
        path.display()
    );
    store.record(&entry("e1", "p", Utc::now())).await.unwrap();
    let health = store.health().await;
    assert_eq!(
        (health.status, health.kind.as_str()),
        (HealthStatus::Ok, "sqlite")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(dir.path().join("c.db").to_str().unwrap()).await;
    let (tasks, per_task) = (8, 25);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let history = store.history();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let e = entry(&format!("t{t}-{i:03}"), "writers", Utc::now());
                    history.record(&e).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let filter = HistoryFilter {
        principal: Some("writers".into()),
        ..HistoryFilter::default()
    };
    let mut page = PageRequest::first(1000);
    let mut count = 0;
    loop {
        let got = store.list(&filter, &page).await.unwrap();
        count += got.items.len();
        match got.next_page_token {
            Some(t) => page.page_token = Some(t),
            None => break,
        }
    }
    assert_eq!(count, tasks * per_task);
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_above_i64_max_saturate() {
    let store = migrated("sqlite::memory:").await;
    let mut e = entry("big", "p", Utc::now());
    e.bytes_processed = u64::MAX;
    e.row_count = i64::MAX as u64 + 1;
    store.record(&e).await.unwrap();
    let back = store.get("big").await.unwrap().unwrap();
    assert_eq!(back.bytes_processed, i64::MAX as u64);
    assert_eq!(back.row_count, i64::MAX as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_id_is_a_conflict() {
    let store = migrated("sqlite::memory:").await;
    let e = entry("dup", "p", Utc::now());
    store.record(&e).await.unwrap();
    match store.record(&e).await {
        Err(Error::Conflict(m)) => assert!(m.contains("dup"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unmigrated_store_fails_cleanly() {
    let store = Store::connect("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let err = store.get("x").await.unwrap_err();
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Internal { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_schemes_are_refused() {
    for url in [
        "redis://user:secret@localhost",
        "mysql://user:secret@localhost/bqai",
    ] {
        match Store::connect(url, StoreOptions::default()).await {
            Err(Error::InvalidRequest(m)) => assert!(!m.contains("secret"), "{m}"),
            other => panic!("{url}: expected InvalidRequest, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unopenable_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    let path = dir.path().join("taken");
    std::fs::create_dir(&path).unwrap();
    let err = Store::connect(path.to_str().unwrap(), StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

// A statement stuck behind another connection's write lock ends in `Timeout`, and the store
// recovers once the lock is gone. Current-thread on purpose: that is how actix-web workers run,
// and abandoning a SQLite statement there must not panic.
#[tokio::test]
async fn a_locked_database_times_out_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let options = StoreOptions {
        query_timeout: Duration::from_millis(300),
        ..StoreOptions::default()
    };
    let store = Store::connect(path.to_str().unwrap(), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();

    // Another process holding the write lock, played by a raw connection in a thread.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let lock_path = path.clone();
    let holder = std::thread::spawn(move || {
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let mut conn = SqliteConnection::establish(lock_path.to_str().unwrap()).unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        diesel::sql_query("COMMIT").execute(&mut conn).unwrap();
    });
    locked_rx.recv().unwrap();

    let started = std::time::Instant::now();
    let err = store
        .record(&entry("blocked", "p", Utc::now()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeout not honoured"
    );
    let health = store.health().await;
    assert_eq!(
        health.status,
        HealthStatus::Ok,
        "reads still work under a write lock"
    );

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // The abandoned insert completes once the lock is released (busy_timeout 5 s).
    let mut landed = false;
    for _ in 0..50 {
        if store.get("blocked").await.unwrap().is_some() {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        landed,
        "the timed-out insert should still complete in the background"
    );
    store
        .record(&entry("after", "p", Utc::now()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_memory_passes_the_conversation_contract() {
    let store = migrated("sqlite::memory:").await;
    bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_passes_the_conversation_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conversations.db").display());
    bqai_testkit::conversation::conversation_contract(migrated(&url).await.conversations(TTL), TTL)
        .await;
}

// actix-web handlers run on current-thread runtimes; conversation writes go through a
// blocking thread there too.
#[tokio::test]
async fn passes_the_conversation_contract_on_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = migrated(dir.path().join("ct.db").to_str().unwrap()).await;
    bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL).await;
}

// The point of the SQL store: a conversation outlives the process that wrote it.
#[tokio::test(flavor = "multi_thread")]
async fn conversations_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    let ttl = Duration::from_secs(3600);
    let store = migrated(&url).await;
    let id = conversations_with_turns(store.conversations(ttl).as_ref(), 1)
        .await
        .remove(0);
    let before = store
        .conversations(ttl)
        .get_conversation(&id)
        .await
        .unwrap()
        .unwrap();
    drop(store);

    let reopened = migrated(&url).await;
    let conversations = reopened.conversations(ttl);
    let after = conversations.get_conversation(&id).await.unwrap().unwrap();
    assert_eq!(after, before);
    assert_eq!(after.turns.len(), 2);
    assert_eq!(after.dataset.as_deref(), Some("shop"));
    let grown = conversations
        .append_turn(&id, &bqai_testkit::conversation::turn(9), None, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grown.turns.len(), 3);
    assert_eq!(grown.turns[..2], before.turns[..]);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count_rows(path: &std::path::Path, table: &str) -> i64 {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn purging_removes_expired_conversations_and_their_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("purge.db");
    let store = migrated(path.to_str().unwrap()).await;
    let short = SqlConversationStore::new(store.clone(), Duration::from_millis(200));
    let expired = conversations_with_turns(&short, 3).await;
    let live =
        conversations_with_turns(store.conversations(Duration::from_secs(3600)).as_ref(), 1).await;
    assert_eq!(count_rows(&path, "conversation_turns"), 8);
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(short.purge_expired().await.unwrap(), 3);
    assert_eq!(store.purge_expired_conversations().await.unwrap(), 0);
    assert_eq!(count_rows(&path, "conversations"), 1);
    assert_eq!(count_rows(&path, "conversation_turns"), 2);
    let kept = short.get_conversation(&live[0]).await.unwrap().unwrap();
    assert_eq!(kept.turns.len(), 2);
    assert!(short.get_conversation(&expired[0]).await.unwrap().is_none());
}

// Expired rows do not pile up without a purge job: each create purges some.
#[tokio::test(flavor = "multi_thread")]
async fn creating_purges_expired_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("create-purge.db");
    let store = migrated(path.to_str().unwrap()).await;
    let short = SqlConversationStore::new(store.clone(), Duration::from_millis(200));
    conversations_with_turns(&short, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count_rows(&path, "conversations"),
        3,
        "expired rows stay until purged"
    );
    conversations_with_turns(&short, 1).await;
    assert_eq!(count_rows(&path, "conversations"), 1);
    assert_eq!(count_rows(&path, "conversation_turns"), 2);
}

// An expired conversation is absent: its id may be created again, without its old turns.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_conversation_id_can_be_reused() {
    let store = migrated("sqlite::memory:").await;
    let short = SqlConversationStore::new(store.clone(), Duration::from_millis(200));
    let got = common::expired_id_is_reusable(&short).await;
    assert_eq!(got.principal, None);
}

// Conversation statements fail like every other port's on an unmigrated store, naming theirs.
#[tokio::test(flavor = "multi_thread")]
async fn an_unmigrated_store_fails_conversations_cleanly() {
    let store = Store::connect("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    let conversations = store.conversations(TTL);
    let c = bqai_core::conversation::Conversation::new(None, None);
    for err in [
        conversations.create_conversation(&c).await.unwrap_err(),
        conversations.get_conversation(&c.id).await.unwrap_err(),
        conversations
            .append_turn(&c.id, &bqai_testkit::conversation::turn(1), None, 3)
            .await
            .unwrap_err(),
        conversations.delete_conversation(&c.id).await.unwrap_err(),
        store.purge_expired_conversations().await.unwrap_err(),
    ] {
        match &err {
            Error::Unavailable { .. } => {
                assert_eq!(err.to_string(), "the conversation store is unavailable")
            }
            Error::Internal { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_passes_the_retention_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("retention.db").display());
    common::retention_contract(&migrated(&url).await).await;
}

#[tokio::test]
async fn sqlite_memory_passes_the_retention_contract_on_a_current_thread_runtime() {
    common::retention_contract(&migrated("sqlite::memory:").await).await;
}

// The purge's permit is the only way past the append-only trigger, and only for events older
// than the permitted cutoff; without it (any other connection) DELETE is refused as before.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_purge_permit_lets_old_audit_events_go() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("permit.db");
    let store = migrated(path.to_str().unwrap()).await;
    let now = Utc::now();
    let old = audit_event("old", now - chrono::TimeDelta::days(30));
    let young = audit_event("young", now);
    store.append_batch(&[old, young.clone()]).await.unwrap();

    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let refused = conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::sql_query(
            "INSERT INTO audit_purge_permit (cutoff) VALUES (datetime('now', '-1 day'))",
        )
        .execute(conn)?;
        // The young event is past the permit: the whole statement is refused.
        diesel::sql_query("DELETE FROM audit_log").execute(conn)
    });
    assert!(
        refused.unwrap_err().to_string().contains("append-only"),
        "a permit must not cover events after its cutoff"
    );
    assert_eq!(count_rows(&path, "audit_log"), 2);
    assert_eq!(count_rows(&path, "audit_purge_permit"), 0);

    let purged = store
        .purge_before(
            bqai_store::Purgeable::Audit,
            now - chrono::TimeDelta::days(1),
        )
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(count_rows(&path, "audit_purge_permit"), 0);
    let err = diesel::sql_query("DELETE FROM audit_log")
        .execute(&mut conn)
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let listed = store
        .list_events(&Default::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, [young]);
}

// A purge gives its space back to the file system: new files use incremental auto-vacuum,
// and reclaiming returns the free pages and truncates the write-ahead log.
#[tokio::test(flavor = "multi_thread")]
async fn purged_space_goes_back_to_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.db");
    let store = migrated(path.to_str().unwrap()).await;
    let old = Utc::now() - chrono::TimeDelta::days(10);
    let events: Vec<_> = (0..4000)
        .map(|i| {
            let mut e = audit_event(&format!("e{i:05}"), old);
            e.detail = Some("x".repeat(2000));
            e
        })
        .collect();
    for chunk in events.chunks(500) {
        store.append_batch(chunk).await.unwrap();
    }
    store.reclaim_space().await.unwrap();
    let full = store.stats().await.unwrap();
    assert!(full.size_bytes > 8_000_000, "{full:?}");

    let purged = store
        .purge_before(bqai_store::Purgeable::Audit, Utc::now())
        .await
        .unwrap();
    assert_eq!(purged, 4000);
    let freed = store.stats().await.unwrap();
    assert!(
        freed.free_bytes > 6_000_000,
        "deleted pages are free: {freed:?}"
    );
    let returned = store.reclaim_space().await.unwrap();
    assert!(returned > 6_000_000, "returned {returned}");
    let small = store.stats().await.unwrap();
    assert!(
        small.size_bytes < full.size_bytes / 4,
        "{small:?} after {full:?}"
    );
    assert_eq!(small.free_bytes, 0, "{small:?}");
    let on_disk = std::fs::metadata(&path).unwrap().len();
    assert!(on_disk < full.size_bytes / 4, "the file is {on_disk} bytes");
}

// A file made before incremental auto-vacuum was the default is converted once on migrate.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_file_is_converted_to_incremental_vacuum() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.db");
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query("CREATE TABLE legacy (a INTEGER)")
        .execute(&mut conn)
        .unwrap();
    let auto_vacuum = |conn: &mut SqliteConnection| {
        diesel::sql_query("SELECT auto_vacuum AS n FROM pragma_auto_vacuum()")
            .get_result::<Count>(conn)
            .unwrap()
            .n
    };
    assert_eq!(auto_vacuum(&mut conn), 0);
    drop(conn);
    let store = migrated(path.to_str().unwrap()).await;
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    assert_eq!(auto_vacuum(&mut conn), 2, "INCREMENTAL");
    // Still a working store.
    store
        .append(&audit_event("after", Utc::now()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_passes_the_analytics_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("analytics.db").display());
    let store = migrated(&url).await;
    bqai_testkit::analytics::analytics_contract(store.history(), store.analytics()).await;
    let memory = migrated("sqlite::memory:").await;
    bqai_testkit::analytics::analytics_contract(memory.history(), memory.analytics()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_file_passes_the_export_job_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    bqai_testkit::export_jobs::export_job_contract(migrated(&url).await.export_jobs()).await;
}

#[tokio::test]
async fn passes_the_export_job_contract_on_a_current_thread_runtime() {
    bqai_testkit::export_jobs::export_job_contract(migrated("sqlite::memory:").await.export_jobs())
        .await;
}
