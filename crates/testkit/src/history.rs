//! Contract suite for the [`HistoryStore`] port: every history adapter (SQLite, PostgreSQL)
//! must pass it.
//!
//! Entries carry per-run ids and a per-run principal, and every listing filters on that
//! principal, so several runs can share one database concurrently. Timestamps are whole
//! microseconds, the precision stores keep.

use std::collections::HashSet;
use std::sync::Arc;

use crate::unique_prefix;
use bqai_core::Error;
use bqai_core::history::{AskRecord, HistoryEntry, HistoryFilter, QueryKind, QueryStatus};
use bqai_core::model::{HealthStatus, PageRequest};
use bqai_core::ports::HistoryStore;
use chrono::{DateTime, Duration, Utc};

/// Runs every history check against `store` (migrated and empty or shared); panics with a
/// description of the first violation.
pub async fn history_contract(store: Arc<dyn HistoryStore>) {
    let p = unique_prefix("history");
    let store = store.as_ref();
    round_trip(store, &p).await;
    nul_characters(store, &p).await;
    unknown_id(store, &p).await;
    duplicate_id(store, &p).await;
    let listed = seed_listing(store, &p).await;
    newest_first(store, &listed).await;
    filters(store, &listed).await;
    pagination(store, &listed).await;
    malformed_tokens(store, &listed).await;
    let health = store.health().await;
    assert_eq!(
        health.status,
        HealthStatus::Ok,
        "history store health after the suite: {health:?}"
    );
}

/// Now, cut to whole microseconds.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// A succeeded SQL entry with every optional field empty (for suites and decorator tests).
pub fn minimal(id: String, created_at: DateTime<Utc>) -> HistoryEntry {
    HistoryEntry {
        id,
        kind: QueryKind::Sql,
        question: None,
        sql_submitted: "SELECT 1".into(),
        sql_executed: None,
        status: QueryStatus::Succeeded,
        error_code: None,
        error_message: None,
        principal: None,
        dataset: None,
        dry_run: false,
        bytes_processed: 0,
        bytes_billed: 0,
        duration_ms: 0,
        row_count: 0,
        cache_hit: false,
        created_at,
        ask: None,
        request_id: None,
        sql_shape: None,
        question_shape: None,
        tables: Vec::new(),
        rerun_of: None,
    }
}

async fn record(store: &dyn HistoryStore, entry: &HistoryEntry) {
    store
        .record(entry)
        .await
        .unwrap_or_else(|e| panic!("record({}) failed: {e}", entry.id));
}

async fn get(store: &dyn HistoryStore, id: &str) -> Option<HistoryEntry> {
    store
        .get(id)
        .await
        .unwrap_or_else(|e| panic!("get({id}) failed: {e}"))
}

async fn round_trip(store: &dyn HistoryStore, p: &str) {
    let full = HistoryEntry {
        id: format!("{p}-full"),
        kind: QueryKind::Ask,
        question: Some("Which 'products' sold best — by “revenue”? 🚀".into()),
        sql_submitted: "SELECT name, SUM(x) AS revenue FROM shop.orders GROUP BY 1".into(),
        sql_executed: Some(
            "SELECT name, SUM(x) AS revenue FROM shop.orders GROUP BY 1 LIMIT 1000".into(),
        ),
        status: QueryStatus::Failed,
        error_code: Some("TIMEOUT".into()),
        error_message: Some("timed out after 30s\nsecond line".into()),
        principal: Some(format!("{p}-principal-full")),
        dataset: Some("shop".into()),
        dry_run: true,
        bytes_processed: i64::MAX as u64,
        bytes_billed: 1 << 40,
        duration_ms: 86_400_000,
        row_count: u64::from(u32::MAX) + 1,
        cache_hit: true,
        created_at: now_micros(),
        ask: Some(AskRecord {
            attempts: 3,
            generator: "claude-cli".into(),
            model: Some("claude-sonnet-4-5".into()),
            llm_latency_ms: 2_345,
            input_tokens: 12_000,
            output_tokens: 321,
            cost_usd: Some(0.012_5),
            from_cache: false,
            follow_up: true,
        }),
        request_id: Some(format!("{p}-request:1")),
        sql_shape: Some("0123456789abcdef".into()),
        question_shape: Some("fedcba9876543210".into()),
        tables: vec!["proj.shop.orders".into(), "shop.products".into()],
        rerun_of: Some(format!("{p}-original")),
    };
    record(store, &full).await;
    assert_eq!(
        get(store, &full.id).await.as_ref(),
        Some(&full),
        "every field must survive record/get (large counters, unicode, newlines)"
    );

    let mut empty = minimal(format!("{p}-minimal"), now_micros() - Duration::days(400));
    empty.status = QueryStatus::Rejected;
    record(store, &empty).await;
    assert_eq!(
        get(store, &empty.id).await.as_ref(),
        Some(&empty),
        "None fields and zero counters must survive record/get"
    );
}

/// A NUL character (PostgreSQL refuses it in text) does not lose the record: it is stored
/// with U+FFFD in its place.
async fn nul_characters(store: &dyn HistoryStore, p: &str) {
    let mut entry = minimal(format!("{p}-nul"), now_micros());
    entry.sql_submitted = "SELECT '\0'".into();
    entry.question = Some("why\0".into());
    entry.error_message = Some("bad \0 byte".into());
    record(store, &entry).await;
    let stored = get(store, &entry.id).await;
    let stored = stored.unwrap_or_else(|| panic!("the record with a NUL was lost"));
    assert_eq!(stored.sql_submitted, "SELECT '\u{fffd}'");
    assert_eq!(stored.question.as_deref(), Some("why\u{fffd}"));
    assert_eq!(stored.error_message.as_deref(), Some("bad \u{fffd} byte"));
}

async fn unknown_id(store: &dyn HistoryStore, p: &str) {
    assert_eq!(
        get(store, &format!("{p}-never-recorded")).await,
        None,
        "get of an unknown id must be Ok(None)"
    );
}

async fn duplicate_id(store: &dyn HistoryStore, p: &str) {
    let first = minimal(format!("{p}-dup"), now_micros());
    record(store, &first).await;
    let mut second = first.clone();
    second.sql_submitted = "SELECT 2".into();
    match store.record(&second).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("recording an id twice must be Error::Conflict, got {other:?}"),
    }
    assert_eq!(
        get(store, &first.id).await.as_ref(),
        Some(&first),
        "a rejected duplicate must not overwrite the original"
    );
}

/// Five entries for one principal, newest first as the store must list them. Two share a
/// timestamp so the id breaks the tie.
async fn seed_listing(store: &dyn HistoryStore, p: &str) -> Vec<HistoryEntry> {
    let principal = format!("{p}-principal-list");
    let base = now_micros();
    let spec = [
        // (id suffix, seconds before base, status, kind)
        ("e", 0, QueryStatus::Succeeded, QueryKind::Sql),
        ("d", 10, QueryStatus::Failed, QueryKind::Ask),
        ("c", 10, QueryStatus::Succeeded, QueryKind::Ask),
        ("b", 20, QueryStatus::Rejected, QueryKind::Sql),
        ("a", 30, QueryStatus::Failed, QueryKind::Sql),
    ];
    let entries: Vec<HistoryEntry> = spec
        .iter()
        .map(|&(suffix, secs, status, kind)| {
            let mut e = minimal(format!("{p}-list-{suffix}"), base - Duration::seconds(secs));
            e.principal = Some(principal.clone());
            e.status = status;
            e.kind = kind;
            e
        })
        .collect();
    // Recorded out of order: listing order must come from the data, not insertion order.
    for i in [2, 4, 0, 3, 1] {
        record(store, &entries[i]).await;
    }
    // Same-second noise from another principal must not leak into filtered listings.
    let mut other = minimal(format!("{p}-list-other"), base);
    other.principal = Some(format!("{p}-principal-other"));
    record(store, &other).await;
    entries
}

fn principal_filter(listed: &[HistoryEntry]) -> HistoryFilter {
    HistoryFilter {
        principal: listed[0].principal.clone(),
        ..HistoryFilter::default()
    }
}

async fn list_ids(
    store: &dyn HistoryStore,
    filter: &HistoryFilter,
    page: &PageRequest,
) -> (Vec<String>, Option<String>) {
    let page_out = store
        .list(filter, page)
        .await
        .unwrap_or_else(|e| panic!("list({filter:?}, {page:?}) failed: {e}"));
    let ids = page_out.items.into_iter().map(|e| e.id).collect();
    (ids, page_out.next_page_token)
}

fn ids(entries: &[HistoryEntry], keep: impl Fn(&HistoryEntry) -> bool) -> Vec<String> {
    entries
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.id.clone())
        .collect()
}

async fn newest_first(store: &dyn HistoryStore, listed: &[HistoryEntry]) {
    let (got, token) = list_ids(store, &principal_filter(listed), &PageRequest::first(100)).await;
    assert_eq!(
        got,
        ids(listed, |_| true),
        "list must order by created_at DESC, then id DESC"
    );
    assert_eq!(
        token, None,
        "a page holding everything has no next_page_token"
    );
    let page = store
        .list(&principal_filter(listed), &PageRequest::first(100))
        .await
        .unwrap_or_else(|e| panic!("list failed: {e}"));
    assert_eq!(
        page.items, listed,
        "listed entries must equal the recorded ones"
    );
}

async fn filters(store: &dyn HistoryStore, listed: &[HistoryEntry]) {
    let all = PageRequest::first(100);
    for status in [
        QueryStatus::Succeeded,
        QueryStatus::Failed,
        QueryStatus::Rejected,
    ] {
        let filter = HistoryFilter {
            status: Some(status),
            ..principal_filter(listed)
        };
        let (got, _) = list_ids(store, &filter, &all).await;
        assert_eq!(
            got,
            ids(listed, |e| e.status == status),
            "filter by status {status:?}"
        );
    }
    for kind in [QueryKind::Sql, QueryKind::Ask] {
        let filter = HistoryFilter {
            kind: Some(kind),
            ..principal_filter(listed)
        };
        let (got, _) = list_ids(store, &filter, &all).await;
        assert_eq!(
            got,
            ids(listed, |e| e.kind == kind),
            "filter by kind {kind:?}"
        );
    }
    let filter = HistoryFilter {
        status: Some(QueryStatus::Failed),
        kind: Some(QueryKind::Sql),
        ..principal_filter(listed)
    };
    let (got, _) = list_ids(store, &filter, &all).await;
    assert_eq!(
        got,
        ids(listed, |e| e.status == QueryStatus::Failed
            && e.kind == QueryKind::Sql),
        "filters combine with AND"
    );
    let nobody = HistoryFilter {
        principal: Some(format!("{}-nobody", listed[0].id)),
        ..HistoryFilter::default()
    };
    let (got, token) = list_ids(store, &nobody, &all).await;
    assert!(
        got.is_empty() && token.is_none(),
        "an unknown principal lists nothing"
    );
}

async fn pagination(store: &dyn HistoryStore, listed: &[HistoryEntry]) {
    let filter = principal_filter(listed);
    let mut page = PageRequest::first(2);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (got, token) = list_ids(store, &filter, &page).await;
        sizes.push(got.len());
        seen.extend(got);
        match token {
            Some(t) => {
                assert!(sizes.len() < 10, "pagination does not terminate");
                page.page_token = Some(t);
            }
            None => break,
        }
    }
    assert_eq!(
        sizes,
        [2, 2, 1],
        "5 entries at page_size 2 come in pages of 2, 2, 1"
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "pagination repeated an entry: {seen:?}"
    );
    assert_eq!(
        seen,
        ids(listed, |_| true),
        "pagination must walk every entry in order"
    );

    // A filtered walk that ends exactly on a page boundary must not promise an empty page.
    let failed = HistoryFilter {
        status: Some(QueryStatus::Failed),
        ..filter.clone()
    };
    let (got, token) = list_ids(store, &failed, &PageRequest::first(2)).await;
    assert_eq!(got.len(), 2, "two failed entries");
    assert_eq!(token, None, "a full last page has no next_page_token");
}

async fn malformed_tokens(store: &dyn HistoryStore, listed: &[HistoryEntry]) {
    let filter = principal_filter(listed);
    for token in ["not a token!", "%%%", "aGVsbG8"] {
        let page = PageRequest {
            page_size: 2,
            page_token: Some(token.into()),
        };
        match store.list(&filter, &page).await {
            Err(Error::InvalidRequest(_)) => {}
            other => panic!("page_token {token:?} must be InvalidRequest, got {other:?}"),
        }
    }
}
