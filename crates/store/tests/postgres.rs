//! The PostgreSQL store against the port contract suites (history, keys, audit, usage,
//! conversations), plus
//! PostgreSQL-specific behaviour: migrations (idempotent, concurrent, current-thread), error
//! mapping, an unreachable or silent server, statement timeouts, secrecy of the URL's password,
//! and the append-only audit log.
//!
//! Needs a PostgreSQL server (see `common` for where); every test works in a database of its
//! own, created and dropped around it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bqai_core::Error;
use bqai_core::history::HistoryFilter;
use bqai_core::model::{HealthStatus, PageRequest};
use bqai_core::ports::{AuditLog, ConversationStore, HistoryStore, KeyStore, UsageLedger};
use bqai_store::{SqlConversationStore, Store, StoreOptions};
use bqai_testkit::auth::{audit_event, key_record};
use chrono::{NaiveDate, Utc};
use common::{TestDb, all_texts, auth_contracts, conversations_with_turns, entry, migration_count};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

async fn migrated(db: &TestDb) -> Store {
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_history_contract() {
    let db = TestDb::create("pg-contract").await;
    let store = migrated(&db).await;
    assert_eq!(store.backend_name(), "postgres");
    bqai_testkit::history::history_contract(store.history()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_auth_contracts() {
    let db = TestDb::create("pg-auth").await;
    auth_contracts(&migrated(&db).await).await;
}

// The contracts twice on one database: runs must not see each other's rows.
#[tokio::test(flavor = "multi_thread")]
async fn contract_runs_share_a_database() {
    let db = TestDb::create("pg-shared").await;
    let store = migrated(&db).await;
    tokio::join!(
        bqai_testkit::history::history_contract(store.history()),
        bqai_testkit::history::history_contract(store.history()),
        auth_contracts(&store),
        auth_contracts(&store),
    );
}

// actix-web handlers run on current-thread runtimes; migrating there must not hit diesel-async's
// `block_in_place` harness.
#[tokio::test]
async fn migrates_and_passes_the_contract_on_a_current_thread_runtime() {
    let db = TestDb::create("pg-current-thread").await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.migrate().await.unwrap(), migration_count("postgres"));
    assert_eq!(store.migrate().await.unwrap(), 0);
    bqai_testkit::history::history_contract(store.history()).await;
    auth_contracts(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_are_idempotent() {
    let db = TestDb::create("pg-idempotent").await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        migration_count("postgres"),
        "first run applies every migration"
    );
    assert_eq!(
        store.migrate().await.unwrap(),
        0,
        "second run has nothing to do"
    );
    drop(store);
    let reopened = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        reopened.migrate().await.unwrap(),
        0,
        "a reconnected store is up to date"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_apply_each_migration_once() {
    let db = TestDb::create("pg-race").await;
    let connects = (0..4).map(|_| {
        let url = db.url.clone();
        async move { Store::connect(&url, StoreOptions::default()).await }
    });
    let stores: Vec<Store> = join_all(connects)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let migrations = stores
        .into_iter()
        .map(|store| async move { store.migrate().await });
    let applied: Vec<usize> = join_all(migrations)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        applied.iter().sum::<usize>(),
        migration_count("postgres"),
        "{applied:?}"
    );
    // The advisory lock makes the winner apply everything before anyone else looks.
    assert_eq!(applied.iter().filter(|&&n| n > 0).count(), 1, "{applied:?}");
}

/// `futures::future::join_all` without the dependency, each future on its own task so they
/// really run at once.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_id_is_a_conflict() {
    let db = TestDb::create("pg-dup").await;
    let store = migrated(&db).await;
    let e = entry("dup", "p", Utc::now());
    store.record(&e).await.unwrap();
    match store.record(&e).await {
        Err(Error::Conflict(m)) => assert!(m.contains("dup"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    // The failed insert left its connection usable.
    store
        .record(&entry("after", "p", Utc::now()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_above_i64_max_saturate() {
    let db = TestDb::create("pg-big").await;
    let store = migrated(&db).await;
    let mut e = entry("big", "p", Utc::now());
    e.bytes_processed = u64::MAX;
    e.row_count = i64::MAX as u64 + 1;
    store.record(&e).await.unwrap();
    let back = store.get("big").await.unwrap().unwrap();
    assert_eq!(back.bytes_processed, i64::MAX as u64);
    assert_eq!(back.row_count, i64::MAX as u64);
    assert_eq!(back.bytes_billed, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unmigrated_store_fails_cleanly() {
    let db = TestDb::create("pg-unmigrated").await;
    let store = Store::connect(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let err = store.get("x").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // Health only needs the server, not the schema.
    assert_eq!(store.health().await.status, HealthStatus::Ok);
}

/// Short timeouts, so failing fast is measured against something.
fn short_options() -> StoreOptions {
    StoreOptions {
        pool_wait_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        query_timeout: Duration::from_millis(800),
        migration_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    }
}

// The binary starts while PostgreSQL is down: the store builds, reports down, and each call
// fails fast with `Unavailable` (the caller buffers), never showing the password.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_port_connects_lazily_and_fails_fast() {
    let url = format!("postgres://postgres:s3cr3t@127.0.0.1:{}/x", closed_port());
    let started = Instant::now();
    let store = Store::connect(&url, short_options()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "connect waited"
    );

    let started = Instant::now();
    let err = store
        .record(&entry("e", "p", Utc::now()))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "record took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert_eq!(err.to_string(), "the history store is unavailable");

    let mut texts = all_texts(&err);
    for err in [
        store.get("e").await.unwrap_err(),
        store
            .list(&HistoryFilter::default(), &PageRequest::first(10))
            .await
            .unwrap_err(),
        store.migrate().await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        texts.push_str(&all_texts(&err));
    }
    // The other ports fail the same way, each naming itself.
    let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    for (err, message) in [
        (
            store.get_key("k").await.unwrap_err(),
            "the key store is unavailable",
        ),
        (
            store.touch_key("k", Utc::now()).await.unwrap_err(),
            "the key store is unavailable",
        ),
        (
            store
                .append(&audit_event("a", Utc::now()))
                .await
                .unwrap_err(),
            "the audit log is unavailable",
        ),
        (
            store.charge_bytes("p", day, 1).await.unwrap_err(),
            "the usage ledger is unavailable",
        ),
    ] {
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
        texts.push_str(&all_texts(&err));
    }

    let started = Instant::now();
    let health = store.health().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(health.status, HealthStatus::Down);
    assert_eq!(health.kind, "postgres");
    assert_eq!(health.detail.as_deref(), Some("unreachable"));
    texts.push_str(&format!("{health:?}\n{store:?}"));

    assert!(!texts.contains("s3cr3t"), "password leaked:\n{texts}");
}

// A server that accepts connections and never answers (a hung host, a black-holing proxy):
// the connect timeout bounds every call, nothing hangs.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out_instead_of_hanging() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://postgres:s3cr3t@127.0.0.1:{port}/x");
    let store = Store::connect(&url, short_options()).await.unwrap();

    let started = Instant::now();
    let err = store
        .record(&entry("e", "p", Utc::now()))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "record took {took:?}");
    assert!(
        matches!(err, Error::Unavailable { .. } | Error::Timeout(_)),
        "{err:?}"
    );
    let health = store.health().await;
    assert_eq!(health.status, HealthStatus::Down);

    let started = Instant::now();
    let migrate_err = store.migrate().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(migrate_err, Error::Unavailable { .. } | Error::Timeout(_)),
        "{migrate_err:?}"
    );
    let texts = format!("{}{}{health:?}", all_texts(&err), all_texts(&migrate_err));
    assert!(!texts.contains("s3cr3t"), "password leaked:\n{texts}");
    silent.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_url_is_an_invalid_request_without_the_password() {
    for url in [
        "postgres://postgres:s3cr3t@127.0.0.1:notaport/x",
        "postgresql://postgres:s3cr3t@127.0.0.1/x?sslmode=require",
        "postgres://postgres:s3cr3t@127.0.0.1/x?no_such_option=1",
    ] {
        match Store::connect(url, StoreOptions::default()).await {
            Err(e @ Error::InvalidRequest(_)) => {
                let texts = all_texts(&e);
                assert!(!texts.contains("s3cr3t"), "{texts}");
            }
            other => panic!("{url}: expected InvalidRequest, got {other:?}"),
        }
    }
}

// A statement stuck behind a lock ends in `Timeout` on time; its connection is discarded and
// the statement cancelled, so the pool keeps working and the server is not left waiting.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_statement_times_out_and_the_pool_recovers() {
    let db = TestDb::create("pg-blocked").await;
    let options = StoreOptions {
        pool_size: 2,
        query_timeout: Duration::from_millis(400),
        ..StoreOptions::default()
    };
    let store = Store::connect(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    store
        .record(&entry("before", "p", Utc::now()))
        .await
        .unwrap();

    let mut holder = AsyncPgConnection::establish(&db.url).await.unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE query_history IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();

    // Observed from a third session: the holder's transaction would keep serving it one
    // snapshot of pg_stat_activity.
    let mut observer = AsyncPgConnection::establish(&db.url).await.unwrap();

    // More blocked statements than connections: none may leave the pool short.
    for i in 0..3 {
        let started = Instant::now();
        let err = store
            .record(&entry(&format!("blocked-{i}"), "p", Utc::now()))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, Error::Timeout(_)), "{err:?}");
        assert!(took < Duration::from_millis(1000), "took {took:?}");

        // The cancel request ends the insert on the server well before its own
        // statement_timeout (query timeout + 1 s) would, which is ≥ 1 s away now.
        let mut waiting = i64::MAX;
        for _ in 0..10 {
            waiting = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'bqai' \
                 AND state = 'active' AND query LIKE 'INSERT%'",
            )
            .get_result::<Count>(&mut observer)
            .await
            .unwrap()
            .n;
            if waiting == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            waiting, 0,
            "timed-out insert {i} still running on the server"
        );
    }

    holder.batch_execute("ROLLBACK").await.unwrap();
    for i in 0..4 {
        store
            .record(&entry(&format!("after-{i}"), "p", Utc::now()))
            .await
            .unwrap();
    }
    assert!(store.get("before").await.unwrap().is_some());
    assert!(
        store.get("blocked-0").await.unwrap().is_none(),
        "a cancelled insert landed"
    );
    assert_eq!(store.health().await.status, HealthStatus::Ok);
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

// A server restart (every backend terminated) costs at most the statements in flight: the
// checkout check replaces dead connections.
#[tokio::test(flavor = "multi_thread")]
async fn recovers_after_its_connections_are_killed() {
    let db = TestDb::create("pg-killed").await;
    let store = migrated(&db).await;
    store.record(&entry("a", "p", Utc::now())).await.unwrap();
    let mut admin = AsyncPgConnection::establish(&db.url).await.unwrap();
    let killed = diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'bqai'",
    )
    .get_result::<Count>(&mut admin)
    .await
    .unwrap()
    .n;
    assert!(killed >= 1, "no pooled connection to kill");
    store.record(&entry("b", "p", Utc::now())).await.unwrap();
    assert_eq!(store.health().await.status, HealthStatus::Ok);
}

// Many writers on a small pool, then sequential inserts timed (printed, not asserted: a
// loopback round trip is machine-dependent).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_all_land() {
    let db = TestDb::create("pg-writers").await;
    let store = migrated(&db).await;
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
    let started = Instant::now();
    for h in handles {
        h.await.unwrap();
    }
    let concurrent = started.elapsed();
    let filter = HistoryFilter {
        principal: Some("writers".into()),
        ..HistoryFilter::default()
    };
    let mut page = PageRequest::first(64);
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

    let n = 300;
    let started = Instant::now();
    for i in 0..n {
        store
            .record(&entry(&format!("seq-{i}"), "seq", Utc::now()))
            .await
            .unwrap();
    }
    let sequential = started.elapsed();
    eprintln!(
        "postgres: {} concurrent inserts (8 tasks, pool 4) in {concurrent:?}; \
         {n} sequential inserts in {sequential:?} ({:?} each)",
        tasks * per_task,
        sequential / n
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_and_usage_saturate_at_i64_max() {
    let db = TestDb::create("pg-saturate").await;
    let store = migrated(&db).await;
    let mut key = key_record("big");
    key.daily_byte_quota = Some(u64::MAX);
    store.insert_key(&key).await.unwrap();
    let back = store.get_key("big").await.unwrap().unwrap();
    assert_eq!(back.daily_byte_quota, Some(i64::MAX as u64));

    // PostgreSQL fails on bigint overflow; the upsert must saturate instead.
    let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let max = i64::MAX as u64;
    assert_eq!(store.charge_bytes("p", day, u64::MAX).await.unwrap(), max);
    assert_eq!(
        store.charge_bytes("q", day, max - 1).await.unwrap(),
        max - 1
    );
    assert_eq!(store.charge_bytes("q", day, 5).await.unwrap(), max);
    assert_eq!(store.charge_bytes("q", day, u64::MAX).await.unwrap(), max);
    assert_eq!(store.bytes_used("q", day).await.unwrap(), max);

    let mut event = audit_event("huge", Utc::now());
    event.bytes = u64::MAX;
    store.append(&event).await.unwrap();
    let listed = store
        .list_events(&Default::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items[0].bytes, max);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_key_and_event_ids_are_conflicts_naming_them() {
    let db = TestDb::create("pg-auth-dup").await;
    let store = migrated(&db).await;
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
    // The failed inserts left their connections usable.
    store.insert_key(&key_record("k2")).await.unwrap();
}

// Nothing in bqai updates or deletes audit events; the database refuses it (TRUNCATE too) to
// any session that cannot disable triggers.
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_refuses_updates_deletes_and_truncate() {
    let db = TestDb::create("pg-append-only").await;
    let store = migrated(&db).await;
    let event = audit_event("kept", Utc::now());
    store.append(&event).await.unwrap();

    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    for statement in [
        "UPDATE audit_log SET outcome = 'allowed', detail = 'rewritten'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = conn.batch_execute(statement).await.unwrap_err();
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

// A charge stuck behind a lock ends in `Timeout` on time, like every statement.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_charge_times_out() {
    let db = TestDb::create("pg-blocked-charge").await;
    let options = StoreOptions {
        query_timeout: Duration::from_millis(400),
        ..StoreOptions::default()
    };
    let store = Store::connect(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    store.charge_bytes("p", day, 1).await.unwrap();

    let mut holder = AsyncPgConnection::establish(&db.url).await.unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE key_usage IN ACCESS EXCLUSIVE MODE;")
        .await
        .unwrap();
    let started = Instant::now();
    let err = store.charge_bytes("p", day, 1).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    // The cancel request ends the upsert on the server; only then is the lock released, so
    // the timed-out charge must not have landed.
    let mut observer = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut waiting = i64::MAX;
    for _ in 0..20 {
        waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'bqai' \
             AND state = 'active' AND query LIKE 'INSERT%'",
        )
        .get_result::<Count>(&mut observer)
        .await
        .unwrap()
        .n;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        waiting, 0,
        "the timed-out charge is still running on the server"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.charge_bytes("p", day, 1).await.unwrap(), 2);
}

/// The TTL the conversation contract runs with (it sleeps about 2.3 × this).
const TTL: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_conversation_contract() {
    let db = TestDb::create("pg-conversations").await;
    let store = migrated(&db).await;
    bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL).await;
}

// Two runs at once on one database (as replicas would share it): neither sees the other's
// conversations, and the purges each create runs skip what the other holds.
#[tokio::test(flavor = "multi_thread")]
async fn conversation_contract_runs_share_a_database() {
    let db = TestDb::create("pg-conversations-shared").await;
    let store = migrated(&db).await;
    tokio::join!(
        bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL),
        bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL),
    );
}

#[tokio::test]
async fn passes_the_conversation_contract_on_a_current_thread_runtime() {
    let db = TestDb::create("pg-conversations-ct").await;
    let store = migrated(&db).await;
    bqai_testkit::conversation::conversation_contract(store.conversations(TTL), TTL).await;
}

async fn count_rows(url: &str, table: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn purging_removes_expired_conversations_and_their_turns() {
    let db = TestDb::create("pg-conversations-purge").await;
    let store = migrated(&db).await;
    let short = SqlConversationStore::new(store.clone(), Duration::from_millis(200));
    let expired = conversations_with_turns(&short, 3).await;
    let live =
        conversations_with_turns(store.conversations(Duration::from_secs(3600)).as_ref(), 1).await;
    assert_eq!(count_rows(&db.url, "conversation_turns").await, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(short.purge_expired().await.unwrap(), 3);
    assert_eq!(store.purge_expired_conversations().await.unwrap(), 0);
    assert_eq!(count_rows(&db.url, "conversations").await, 1);
    assert_eq!(count_rows(&db.url, "conversation_turns").await, 2);
    let kept = short.get_conversation(&live[0]).await.unwrap().unwrap();
    assert_eq!(kept.turns.len(), 2);
    assert!(short.get_conversation(&expired[0]).await.unwrap().is_none());

    // Creates purge on their own too.
    conversations_with_turns(&short, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count_rows(&db.url, "conversations").await, 3);
    conversations_with_turns(&short, 1).await;
    assert_eq!(count_rows(&db.url, "conversations").await, 2);
    assert_eq!(count_rows(&db.url, "conversation_turns").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_conversation_id_can_be_reused() {
    let db = TestDb::create("pg-conversations-reuse").await;
    let store = migrated(&db).await;
    let short = SqlConversationStore::new(store.clone(), Duration::from_millis(200));
    common::expired_id_is_reusable(&short).await;
}

// An append stuck behind a lock on its conversation ends in `Timeout` on time; the lock
// released, appends work again.
#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_append_times_out() {
    let db = TestDb::create("pg-conversations-blocked").await;
    let options = StoreOptions {
        query_timeout: Duration::from_millis(400),
        ..StoreOptions::default()
    };
    let store = Store::connect(&db.url, options).await.unwrap();
    store.migrate().await.unwrap();
    let conversations = store.conversations(Duration::from_secs(60));
    let id = conversations_with_turns(conversations.as_ref(), 1)
        .await
        .remove(0);

    let mut holder = AsyncPgConnection::establish(&db.url).await.unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM conversations WHERE id = '{id}' FOR UPDATE;"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let err = conversations
        .append_turn(&id, &bqai_testkit::conversation::turn(5), None, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    holder.batch_execute("ROLLBACK").await.unwrap();
    let after = conversations
        .append_turn(&id, &bqai_testkit::conversation::turn(6), None, 10)
        .await
        .unwrap()
        .unwrap();
    let questions: Vec<&str> = after.turns.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(
        questions,
        ["question 0", "question 1", "question 6"],
        "the timed-out append rolled back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_retention_contract() {
    let db = TestDb::create("pg-retention").await;
    common::retention_contract(&migrated(&db).await).await;
}

// The purge's permit is the only way past the append-only trigger, only for events older than
// its cutoff, and only inside the transaction holding it: another session never sees an
// uncommitted permit, so its DELETE is refused as before.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_purge_permit_lets_old_audit_events_go() {
    let db = TestDb::create("pg-purge-permit").await;
    let store = migrated(&db).await;
    let now = Utc::now();
    let old = audit_event("old", now - chrono::TimeDelta::days(30));
    let young = audit_event("young", now);
    store.append_batch(&[old, young.clone()]).await.unwrap();

    let mut holder = AsyncPgConnection::establish(&db.url).await.unwrap();
    let mut other = AsyncPgConnection::establish(&db.url).await.unwrap();
    holder
        .batch_execute(
            "BEGIN; INSERT INTO audit_purge_permit (cutoff) VALUES (now() + interval '1 day')",
        )
        .await
        .unwrap();
    let err = other
        .batch_execute("DELETE FROM audit_log WHERE id = 'old'")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    holder.batch_execute("ROLLBACK").await.unwrap();

    let err = other
        .batch_execute(
            "BEGIN; INSERT INTO audit_purge_permit (cutoff) VALUES (now() - interval '1 day'); \
             DELETE FROM audit_log",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only"),
        "a permit must not cover events after its cutoff: {err}"
    );
    other.batch_execute("ROLLBACK").await.unwrap();
    for statement in ["UPDATE audit_log SET detail = 'x'", "TRUNCATE audit_log"] {
        let err = other.batch_execute(statement).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }

    let purged = store
        .purge_before(
            bqai_store::Purgeable::Audit,
            now - chrono::TimeDelta::days(1),
        )
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let listed = store
        .list_events(&Default::default(), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, [young]);
    let permits: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT COUNT(*) FROM audit_purge_permit)",
    ))
    .get_result(&mut other)
    .await
    .unwrap();
    assert_eq!(permits, 0);
}

// Two purges at once (two replicas) take turns and delete each event once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_purges_delete_each_row_once() {
    let db = TestDb::create("pg-concurrent-purge").await;
    let store = migrated(&db).await;
    let old = Utc::now() - chrono::TimeDelta::days(10);
    let events: Vec<_> = (0..3000)
        .map(|i| audit_event(&format!("e{i:05}"), old))
        .collect();
    store.append_batch(&events).await.unwrap();
    for i in 0..1500 {
        store
            .record(&entry(&format!("h{i:05}"), "p", old))
            .await
            .unwrap();
    }
    let other = migrated(&db).await;
    let cutoff = Utc::now();
    let (a, b, c, d) = tokio::join!(
        store.purge_before(bqai_store::Purgeable::Audit, cutoff),
        other.purge_before(bqai_store::Purgeable::Audit, cutoff),
        store.purge_before(bqai_store::Purgeable::History, cutoff),
        other.purge_before(bqai_store::Purgeable::History, cutoff),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 3000);
    assert_eq!(c.unwrap() + d.unwrap(), 1500);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.rows["audit_log"], 0);
    assert_eq!(stats.rows["query_history"], 0);
    assert!(stats.size_bytes > 0);

    // Giving space back vacuums the tables purged whole (whatever autovacuum does); each
    // replica vacuums after its own purges.
    assert_eq!(store.reclaim_space().await.unwrap(), 0);
    assert_eq!(other.reclaim_space().await.unwrap(), 0);
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    assert_eq!(
        manually_vacuumed(&mut conn, &["audit_log", "query_history"], 2).await,
        2
    );
}

/// How many of `tables` have been vacuumed by hand, waiting up to 5 s for `expected` (the
/// statistics arrive asynchronously).
async fn manually_vacuumed(conn: &mut AsyncPgConnection, tables: &[&str], expected: i64) -> i64 {
    let names = tables
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut vacuumed = 0;
    for _ in 0..50 {
        vacuumed = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT COUNT(*) FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL \
             AND relname IN ({names}))"
        )))
        .get_result::<i64>(conn)
        .await
        .unwrap();
        if vacuumed == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vacuumed
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_of_a_sliver_of_a_table_leaves_the_vacuum_for_later() {
    let db = TestDb::create("pg-sliver-purge").await;
    let store = migrated(&db).await;
    let recent = Utc::now() - chrono::TimeDelta::minutes(1);
    let old = Utc::now() - chrono::TimeDelta::days(10);
    let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
    for i in 0..400 {
        let at = if i < 20 { old } else { recent };
        store
            .record(&entry(&format!("h{i:05}"), "p", at))
            .await
            .unwrap();
    }
    // Wait for PostgreSQL's statistics to see the rows (they are flushed within a second or so).
    for _ in 0..100 {
        let live: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT COALESCE(MAX(n_live_tup), 0) FROM pg_stat_user_tables \
             WHERE relname = 'query_history')",
        ))
        .get_result(&mut conn)
        .await
        .unwrap();
        if live >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cutoff = Utc::now() - chrono::TimeDelta::days(1);
    assert_eq!(
        store
            .purge_before(bqai_store::Purgeable::History, cutoff)
            .await
            .unwrap(),
        20
    );
    // 20 of 400 rows: under autovacuum's rule (50 + a fifth of the rows left), no vacuum yet.
    store.reclaim_space().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(manually_vacuumed(&mut conn, &["query_history"], 0).await, 0);

    // The deletes add up: once the purges together pass the threshold, the table is vacuumed.
    let older = Utc::now() - chrono::TimeDelta::days(20);
    for i in 0..200 {
        store
            .record(&entry(&format!("o{i:05}"), "p", older))
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .purge_before(bqai_store::Purgeable::History, cutoff)
            .await
            .unwrap(),
        200
    );
    store.reclaim_space().await.unwrap();
    assert_eq!(manually_vacuumed(&mut conn, &["query_history"], 1).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_analytics_contract() {
    let db = TestDb::create("pg-analytics").await;
    let store = migrated(&db).await;
    bqai_testkit::analytics::analytics_contract(store.history(), store.analytics()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_passes_the_export_job_contract() {
    let db = TestDb::create("pg-export-jobs").await;
    let store = migrated(&db).await;
    bqai_testkit::export_jobs::export_job_contract(store.export_jobs()).await;
}

// Replicas claiming from one database through separate pools: every job runs on exactly one.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_claim_each_export_job_once() {
    use bqai_core::ports::ExportJobStore as _;
    let db = TestDb::create("pg-export-replicas").await;
    let first = migrated(&db).await;
    let second = migrated(&db).await;
    let now = Utc::now();
    let mut ids = std::collections::HashSet::new();
    for i in 0..30 {
        let j = bqai_testkit::export_jobs::job("o", now - chrono::TimeDelta::milliseconds(i));
        first.create_job(&j).await.unwrap();
        ids.insert(j.id);
    }
    let claim_all = |store: Store, worker: &'static str| async move {
        let mut mine = Vec::new();
        while let Some(j) = store
            .claim_job(worker, now, now - chrono::TimeDelta::seconds(30), 3)
            .await
            .unwrap()
        {
            mine.push(j.id);
        }
        mine
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim_all(first, "replica-a")),
        tokio::spawn(claim_all(second, "replica-b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 30, "a: {a:?}, b: {b:?}");
    let all: std::collections::HashSet<_> = a.into_iter().chain(b).collect();
    assert_eq!(all, ids);
}
