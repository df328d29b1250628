//! Retention and audit volume: with authentication off only what matters is audited, the
//! server purges history and audit events past their retention on its own schedule (and
//! audits that), and `/health` and `/metrics` report the store's size and rows.

use std::time::Duration;

use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditFilter, AuditOutcome};
use bqai_core::model::PageRequest;
use bqai_store::{Store, StoreOptions};
use chrono::Utc;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// The app's own store (`<data_dir>/bqai.db`), opened beside it.
async fn store_of(app: &TestApp) -> Store {
    let url = format!("sqlite://{}", app.dir.path().join("bqai.db").display());
    Store::connect(&url, StoreOptions::default()).await.unwrap()
}

async fn events(store: &Store) -> Vec<AuditEvent> {
    use bqai_core::ports::AuditLog;
    store
        .list_events(&AuditFilter::default(), &PageRequest::first(500))
        .await
        .unwrap()
        .items
}

async fn mixed_calls(app: &TestApp) {
    assert_eq!(app.get("/api/v1/datasets").await.status, 200);
    assert_eq!(app.get("/api/v1/datasets/shop/tables").await.status, 200);
    assert_eq!(app.get("/api/v1/history").await.status, 200);
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);
    app.query("DELETE FROM shop.customers")
        .await
        .assert_error(400, "SQL_REJECTED");
    assert_eq!(app.get("/api/v1/datasets/nope/tables").await.status, 404);
    // Read from the store below, not through the server.
    app.flush_audit().await;
}

#[tokio::test]
async fn with_auth_off_catalog_reads_are_not_audited_but_what_matters_is() {
    let app = spawn_app_with(|_| {}).await;
    mixed_calls(&app).await;
    let store = store_of(&app).await;
    let mut seen: Vec<_> = events(&store)
        .await
        .into_iter()
        .map(|e| (e.action, e.outcome, e.status))
        .collect();
    seen.sort_by_key(|(_, _, status)| *status);
    assert_eq!(
        seen,
        [
            (AuditAction::Query, AuditOutcome::Allowed, 200),
            (AuditAction::Query, AuditOutcome::Denied, 400),
            (AuditAction::CatalogRead, AuditOutcome::Failed, 404),
        ]
    );
}

#[tokio::test]
async fn audit_reads_brings_reads_back() {
    let app = spawn_app_with(|s| s.auth.audit_reads = Some(true)).await;
    mixed_calls(&app).await;
    let actions: Vec<_> = events(&store_of(&app).await)
        .await
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Allowed)
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == AuditAction::CatalogRead)
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&AuditAction::HistoryRead), "{actions:?}");
}

#[tokio::test]
async fn the_server_purges_past_retention_and_reports_the_store_in_health() {
    let app = spawn_app_with(|s| {
        s.store.maintenance_interval_secs = 1;
        s.store.history_retention_days = 1.0;
        s.auth.audit_retention_days = 2.0;
    })
    .await;
    let store = store_of(&app).await;
    let now = Utc::now();
    let old = |days: i64| now - chrono::TimeDelta::days(days);
    {
        use bqai_core::ports::{AuditLog, HistoryStore};
        // History: 1.5 days old goes (retention 1 day); audit: 1.5 days old stays (2 days).
        for (id, at) in [
            ("h-old", old(3)),
            ("h-mid", now - chrono::TimeDelta::hours(36)),
        ] {
            store
                .record(&bqai_testkit::history::minimal(id.into(), at))
                .await
                .unwrap();
        }
        let events: Vec<_> = [
            ("a-old", old(3)),
            ("a-mid", now - chrono::TimeDelta::hours(36)),
        ]
        .into_iter()
        .map(|(id, at)| bqai_testkit::auth::audit_event(id, at))
        .collect();
        store.append_batch(&events).await.unwrap();
    }
    assert_eq!(app.query("SELECT 1 AS one").await.status, 200);

    // Within a few rounds the old rows are gone and health has measured the store.
    let mut health = json!(null);
    for _ in 0..50 {
        health = app.get("/health").await.body;
        let (history, audit) = {
            use bqai_core::ports::HistoryStore;
            (
                store.get("h-old").await.unwrap(),
                events(&store).await.iter().any(|e| e.id == "a-old"),
            )
        };
        if history.is_none() && !audit && health["store"]["rows"]["query_history"] == json!(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        use bqai_core::ports::HistoryStore;
        assert!(
            store.get("h-old").await.unwrap().is_none(),
            "history past retention stays"
        );
        assert!(
            store.get("h-mid").await.unwrap().is_none(),
            "36 hours > 1 day"
        );
    }
    let left = events(&store).await;
    assert!(left.iter().all(|e| e.id != "a-old"), "{left:?}");
    assert!(
        left.iter().any(|e| e.id == "a-mid"),
        "36 hours < 2 days: kept"
    );
    // The purges are audited, history's and the audit log's own.
    let purges: Vec<_> = left
        .iter()
        .filter(|e| e.principal.as_deref() == Some("system:retention"))
        .collect();
    // A round may run between the inserts above, so the rows can go in more than one purge:
    // count what the purge events say they deleted, per table.
    let mut deleted = std::collections::BTreeMap::new();
    for p in &purges {
        assert_eq!(p.action, AuditAction::AdminChange);
        assert_eq!(p.route, "SCHEDULE retention");
        let [table] = p.targets.as_slice() else {
            panic!("{p:?}")
        };
        let detail = p.detail.as_deref().unwrap();
        let n: u64 = detail
            .strip_prefix("deleted ")
            .and_then(|d| d.split_once(&format!(" rows of {table} recorded before ")))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("{p:?}"));
        *deleted.entry(table.as_str()).or_insert(0) += n;
    }
    assert_eq!(
        deleted,
        [("audit_log", 1), ("query_history", 2)].into(),
        "{left:?}"
    );

    let stats = &health["store"];
    assert_eq!(stats["backend"], "sqlite", "{health}");
    assert!(stats["size_bytes"].as_u64().unwrap() > 0, "{health}");
    // The one query of this test (its history entry) is all that is left of history.
    assert_eq!(stats["rows"]["query_history"], 1, "{health}");
    for table in [
        "audit_log",
        "api_keys",
        "key_usage",
        "conversations",
        "conversation_turns",
    ] {
        assert!(stats["rows"][table].is_u64(), "{table}: {health}");
    }
    assert!(stats["measured_at"].is_string(), "{health}");

    // The same measurement for Prometheus.
    let reply = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(
        reply.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = reply.text().await.unwrap();
    for line in [
        "bqai_store_rows{backend=\"sqlite\",table=\"query_history\"} 1",
        "# TYPE bqai_store_size_bytes gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}
