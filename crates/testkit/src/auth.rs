//! Contract suites for the authentication storage ports — [`KeyStore`], [`AuditLog`] and
//! [`UsageLedger`] — every adapter of them (SQLite, PostgreSQL, in-memory) must pass, plus
//! fixtures ([`key_record`], [`audit_event`]) for other tests.
//!
//! Several runs may share one database concurrently: every id, principal and prefix is unique
//! to a run ([`unique_prefix`]). Audit listings filter on a per-run principal (or a time window
//! and the event's id), so they are exact. Key listings cannot filter by owner, so their checks
//! are the ones that hold whatever other runs add meanwhile: the walk is strictly newest first
//! with no repeats, full pages only before the last, and this run's keys appear in order.
//!
//! Timestamps are whole microseconds, the precision stores keep.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use bqai_core::Error;
use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditFilter, AuditOutcome};
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use bqai_core::model::{DatasetScope, Page, PageRequest, Role};
use bqai_core::ports::{AuditLog, KeyStore, UsageLedger};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::unique_prefix;

/// The most pages a listing walk may take before the suite calls it endless.
const MAX_PAGES: usize = 10_000;

/// `t` cut to whole microseconds.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Now, cut to whole microseconds.
fn now_micros() -> DateTime<Utc> {
    micros(Utc::now())
}

/// An active analyst key reading `shop`, created now (whole microseconds), with every optional
/// field empty and a made-up (hex, 64 digits) secret hash derived from the id.
pub fn key_record(id: &str) -> KeyRecord {
    let mut secret_hash: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    secret_hash.truncate(64);
    while secret_hash.len() < 64 {
        secret_hash.push('0');
    }
    KeyRecord {
        id: id.to_owned(),
        name: format!("key {id}"),
        owner: None,
        role: Role::Analyst,
        datasets: DatasetScope::from_list(["shop"]),
        rate_limit_per_minute: None,
        daily_byte_quota: None,
        expires_at: None,
        created_at: now_micros(),
        last_used_at: None,
        revoked_at: None,
        secret_hash,
    }
}

/// An allowed `POST /api/v1/query` event at `at` (cut to whole microseconds) with every
/// optional field empty, no targets and no bytes.
pub fn audit_event(id: &str, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: id.to_owned(),
        at: micros(at),
        request_id: None,
        principal: None,
        action: AuditAction::Query,
        route: "POST /api/v1/query".to_owned(),
        targets: Vec::new(),
        sql_fingerprint: None,
        outcome: AuditOutcome::Allowed,
        status: 200,
        error_code: None,
        bytes: 0,
        client_addr: None,
        detail: None,
    }
}

// -------------------------------------------------------------------------------------------
// KeyStore
// -------------------------------------------------------------------------------------------

/// Runs every key store check against `store` (migrated, empty or shared); panics with a
/// description of the first violation.
///
/// Besides the port's documented behaviour it holds adapters to: stored fields read back
/// exactly (datasets as given, `["*"]` as [`DatasetScope::All`]); an update changes only the
/// fields it names ([`KeyRecord::apply`]) and an empty one changes nothing; `touch_key` never
/// moves `last_used_at` back (replicas touch with their own clocks) and ignores unknown ids;
/// `list_keys` is newest first by (`created_at`, `id`).
pub async fn key_store_contract(store: Arc<dyn KeyStore>) {
    let p = unique_prefix("keys");
    let store = store.as_ref();
    key_round_trip(store, &p).await;
    key_unknown_id(store, &p).await;
    key_duplicate_id(store, &p).await;
    key_updates(store, &p).await;
    key_revocation(store, &p).await;
    key_touch(store, &p).await;
    key_listing(store, &p).await;
    key_malformed_tokens(store).await;
}

async fn insert_key(store: &dyn KeyStore, key: &KeyRecord) {
    store
        .insert_key(key)
        .await
        .unwrap_or_else(|e| panic!("insert_key({}) failed: {e}", key.id));
}

async fn get_key(store: &dyn KeyStore, id: &str) -> Option<KeyRecord> {
    store
        .get_key(id)
        .await
        .unwrap_or_else(|e| panic!("get_key({id}) failed: {e}"))
}

async fn update_key(store: &dyn KeyStore, id: &str, update: &KeyUpdate) -> Option<KeyRecord> {
    store
        .update_key(id, update)
        .await
        .unwrap_or_else(|e| panic!("update_key({id}, {update:?}) failed: {e}"))
}

async fn revoke_key(store: &dyn KeyStore, id: &str, at: DateTime<Utc>) -> Option<KeyRecord> {
    store
        .revoke_key(id, at)
        .await
        .unwrap_or_else(|e| panic!("revoke_key({id}) failed: {e}"))
}

async fn touch_key(store: &dyn KeyStore, id: &str, at: DateTime<Utc>) {
    store
        .touch_key(id, at)
        .await
        .unwrap_or_else(|e| panic!("touch_key({id}) failed: {e}"));
}

async fn key_round_trip(store: &dyn KeyStore, p: &str) {
    let now = now_micros();
    let full = KeyRecord {
        id: format!("{p}-full"),
        name: "Reporting — “nightly” job 🚀 'quoted'".to_owned(),
        owner: Some("Data team <data@example.com>\nsecond line".to_owned()),
        role: Role::Admin,
        datasets: DatasetScope::All,
        rate_limit_per_minute: Some(u32::MAX),
        daily_byte_quota: Some(i64::MAX as u64),
        expires_at: Some(now + Duration::days(3650)),
        created_at: now - Duration::days(400),
        last_used_at: Some(now - Duration::hours(1)),
        revoked_at: Some(now - Duration::minutes(1)),
        secret_hash: "f".repeat(64),
    };
    insert_key(store, &full).await;
    assert_eq!(
        get_key(store, &full.id).await.as_ref(),
        Some(&full),
        "every field must survive insert_key/get_key (All datasets, large limits, unicode)"
    );

    let mut minimal = key_record(&format!("{p}-minimal"));
    minimal.role = Role::Viewer;
    minimal.datasets = DatasetScope::Only(BTreeSet::from([
        "shop".to_owned(),
        "other-project.sales".to_owned(),
    ]));
    insert_key(store, &minimal).await;
    assert_eq!(
        get_key(store, &minimal.id).await.as_ref(),
        Some(&minimal),
        "None fields and a list of datasets must survive insert_key/get_key"
    );

    let mut nothing = key_record(&format!("{p}-no-datasets"));
    nothing.datasets = DatasetScope::Only(BTreeSet::new());
    nothing.rate_limit_per_minute = Some(1);
    nothing.daily_byte_quota = Some(0);
    insert_key(store, &nothing).await;
    assert_eq!(
        get_key(store, &nothing.id).await.as_ref(),
        Some(&nothing),
        "an empty dataset list, the smallest rate limit and a zero quota must survive"
    );
}

async fn key_unknown_id(store: &dyn KeyStore, p: &str) {
    let id = format!("{p}-never-inserted");
    assert_eq!(get_key(store, &id).await, None, "get_key of an unknown id");
    let rename = KeyUpdate {
        name: Some("x".to_owned()),
        ..KeyUpdate::default()
    };
    assert_eq!(
        update_key(store, &id, &rename).await,
        None,
        "update_key of an unknown id must be Ok(None)"
    );
    assert_eq!(
        update_key(store, &id, &KeyUpdate::default()).await,
        None,
        "an empty update of an unknown id must be Ok(None)"
    );
    assert_eq!(
        revoke_key(store, &id, now_micros()).await,
        None,
        "revoke_key of an unknown id must be Ok(None)"
    );
    touch_key(store, &id, now_micros()).await;
    assert_eq!(
        get_key(store, &id).await,
        None,
        "update, revoke or touch of an unknown id must not create it"
    );
}

async fn key_duplicate_id(store: &dyn KeyStore, p: &str) {
    let first = key_record(&format!("{p}-dup"));
    insert_key(store, &first).await;
    let mut second = first.clone();
    second.name = "another name".to_owned();
    second.role = Role::Admin;
    match store.insert_key(&second).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("inserting a key id twice must be Error::Conflict, got {other:?}"),
    }
    assert_eq!(
        get_key(store, &first.id).await.as_ref(),
        Some(&first),
        "a rejected duplicate must not overwrite the original"
    );
}

/// Applies `update` to the stored key and checks the answer and the stored state against the
/// core's own [`KeyRecord::apply`].
async fn check_update(store: &dyn KeyStore, expected: &mut KeyRecord, update: KeyUpdate) {
    expected.apply(&update);
    let returned = update_key(store, &expected.id, &update).await;
    assert_eq!(
        returned.as_ref(),
        Some(&*expected),
        "update_key must return the updated key ({update:?})"
    );
    assert_eq!(
        get_key(store, &expected.id).await.as_ref(),
        Some(&*expected),
        "the update must be stored ({update:?})"
    );
}

async fn key_updates(store: &dyn KeyStore, p: &str) {
    let now = now_micros();
    let mut key = KeyRecord {
        owner: Some("team a".to_owned()),
        rate_limit_per_minute: Some(60),
        daily_byte_quota: Some(1 << 30),
        expires_at: Some(now + Duration::days(30)),
        last_used_at: Some(now - Duration::seconds(5)),
        ..key_record(&format!("{p}-update"))
    };
    insert_key(store, &key).await;

    // Nothing to change: the key as it is.
    check_update(store, &mut key, KeyUpdate::default()).await;
    // One field: only that one changes.
    check_update(
        store,
        &mut key,
        KeyUpdate {
            name: Some("renamed ✓".to_owned()),
            ..KeyUpdate::default()
        },
    )
    .await;
    // Some(None) clears every optional field.
    check_update(
        store,
        &mut key,
        KeyUpdate {
            owner: Some(None),
            rate_limit_per_minute: Some(None),
            daily_byte_quota: Some(None),
            expires_at: Some(None),
            ..KeyUpdate::default()
        },
    )
    .await;
    assert_eq!(
        (
            &key.owner,
            key.rate_limit_per_minute,
            key.daily_byte_quota,
            key.expires_at
        ),
        (&None, None, None, None),
        "the fixture must have cleared the optional fields"
    );
    // Every field at once, Some(Some(_)) setting the optional ones again.
    check_update(
        store,
        &mut key,
        KeyUpdate {
            name: Some("every field".to_owned()),
            owner: Some(Some("team b".to_owned())),
            role: Some(Role::Admin),
            datasets: Some(DatasetScope::All),
            rate_limit_per_minute: Some(Some(u32::MAX)),
            daily_byte_quota: Some(Some(u64::from(u32::MAX) + 1)),
            expires_at: Some(Some(now + Duration::days(365))),
        },
    )
    .await;
    // From every dataset back to a list.
    check_update(
        store,
        &mut key,
        KeyUpdate {
            role: Some(Role::Viewer),
            datasets: Some(DatasetScope::from_list(["shop", "finance"])),
            ..KeyUpdate::default()
        },
    )
    .await;

    // Updating a revoked key keeps it revoked.
    let revoked_at = now_micros();
    key.revoked_at = Some(revoked_at);
    assert_eq!(
        revoke_key(store, &key.id, revoked_at).await.as_ref(),
        Some(&key)
    );
    check_update(
        store,
        &mut key,
        KeyUpdate {
            name: Some("after revocation".to_owned()),
            ..KeyUpdate::default()
        },
    )
    .await;
}

async fn key_revocation(store: &dyn KeyStore, p: &str) {
    let key = key_record(&format!("{p}-revoke"));
    insert_key(store, &key).await;
    let first = now_micros();
    let expected = KeyRecord {
        revoked_at: Some(first),
        ..key.clone()
    };
    assert_eq!(
        revoke_key(store, &key.id, first).await.as_ref(),
        Some(&expected),
        "revoke_key must return the key with revoked_at set and nothing else changed"
    );
    for again in [first + Duration::hours(1), first - Duration::hours(1)] {
        assert_eq!(
            revoke_key(store, &key.id, again).await.as_ref(),
            Some(&expected),
            "a second revocation must keep the first revocation time"
        );
    }
    assert_eq!(get_key(store, &key.id).await.as_ref(), Some(&expected));
}

async fn key_touch(store: &dyn KeyStore, p: &str) {
    let key = key_record(&format!("{p}-touch"));
    insert_key(store, &key).await;
    let t = now_micros();
    touch_key(store, &key.id, t).await;
    let touched = |at: DateTime<Utc>| KeyRecord {
        last_used_at: Some(at),
        ..key.clone()
    };
    assert_eq!(
        get_key(store, &key.id).await,
        Some(touched(t)),
        "touch_key must set last_used_at and nothing else"
    );
    let later = t + Duration::seconds(61);
    touch_key(store, &key.id, later).await;
    assert_eq!(
        get_key(store, &key.id).await,
        Some(touched(later)),
        "a later touch must move last_used_at forward"
    );
    touch_key(store, &key.id, t - Duration::hours(1)).await;
    assert_eq!(
        get_key(store, &key.id).await,
        Some(touched(later)),
        "an earlier touch (another replica's clock) must not move last_used_at back"
    );
}

/// Walks every page of `list_keys(filter)` at `page_size`, checking the properties that hold
/// on a shared database; returns every key seen, in order.
async fn walk_keys(store: &dyn KeyStore, filter: &KeyFilter, page_size: u32) -> Vec<KeyRecord> {
    let mut page = PageRequest::first(page_size);
    let mut seen: Vec<KeyRecord> = Vec::new();
    for _ in 0..MAX_PAGES {
        let got: Page<KeyRecord> = store
            .list_keys(filter, &page)
            .await
            .unwrap_or_else(|e| panic!("list_keys({filter:?}, {page:?}) failed: {e}"));
        assert!(
            got.items.len() <= page_size as usize,
            "a page of {} keys at page_size {page_size}",
            got.items.len()
        );
        let full = got.items.len() == page_size as usize;
        seen.extend(got.items);
        match got.next_page_token {
            Some(token) => {
                assert!(full, "only a full page may promise a next one");
                page.page_token = Some(token);
            }
            None => {
                let unique: HashSet<&str> = seen.iter().map(|k| k.id.as_str()).collect();
                assert_eq!(unique.len(), seen.len(), "list_keys repeated a key");
                for pair in seen.windows(2) {
                    assert!(
                        (pair[0].created_at, &pair[0].id) > (pair[1].created_at, &pair[1].id),
                        "list_keys must order by created_at DESC, then id DESC: {} before {}",
                        pair[0].id,
                        pair[1].id
                    );
                }
                return seen;
            }
        }
    }
    panic!("list_keys pagination does not terminate");
}

async fn key_listing(store: &dyn KeyStore, p: &str) {
    let base = now_micros();
    // (id suffix, seconds before base); two share a timestamp so the id breaks the tie.
    let spec = [("e", 0), ("d", 10), ("c", 10), ("b", 20), ("a", 30)];
    let keys: Vec<KeyRecord> = spec
        .iter()
        .map(|&(suffix, secs)| KeyRecord {
            created_at: base - Duration::seconds(secs),
            ..key_record(&format!("{p}-list-{suffix}"))
        })
        .collect();
    // Inserted out of order: listing order must come from the data.
    for i in [2, 4, 0, 3, 1] {
        insert_key(store, &keys[i]).await;
    }
    let mut keys = keys;
    for i in [2, 4] {
        keys[i] = revoke_key(store, &keys[i].id, base)
            .await
            .unwrap_or_else(|| panic!("{} vanished", keys[i].id));
    }
    let prefix = format!("{p}-list-");
    let mine = |seen: Vec<KeyRecord>| -> Vec<KeyRecord> {
        seen.into_iter()
            .filter(|k| k.id.starts_with(&prefix))
            .collect()
    };

    for page_size in [2, 1000] {
        let active = walk_keys(store, &KeyFilter::default(), page_size).await;
        assert!(
            active.iter().all(|k| k.revoked_at.is_none()),
            "list_keys without include_revoked listed a revoked key"
        );
        let expected: Vec<KeyRecord> = keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .cloned()
            .collect();
        assert_eq!(
            mine(active),
            expected,
            "list_keys (page_size {page_size}) must list this run's active keys, newest first"
        );

        let all = walk_keys(
            store,
            &KeyFilter {
                include_revoked: true,
            },
            page_size,
        )
        .await;
        assert_eq!(
            mine(all),
            keys,
            "list_keys with include_revoked (page_size {page_size}) must list revoked keys too"
        );
    }
}

async fn key_malformed_tokens(store: &dyn KeyStore) {
    for token in ["not a token!", "%%%", "aGVsbG8"] {
        let page = PageRequest {
            page_size: 2,
            page_token: Some(token.into()),
        };
        match store.list_keys(&KeyFilter::default(), &page).await {
            Err(Error::InvalidRequest(_)) => {}
            other => panic!("page_token {token:?} must be InvalidRequest, got {other:?}"),
        }
    }
}

// -------------------------------------------------------------------------------------------
// AuditLog
// -------------------------------------------------------------------------------------------

/// Runs every audit log check against `log` (migrated, empty or shared); panics with a
/// description of the first violation.
///
/// Besides the port's documented behaviour it holds adapters to: events read back exactly;
/// appending an id twice is `Conflict` and keeps the first; filters combine with AND, `since`
/// is inclusive and `until` exclusive (also for bounds finer than a microsecond); listing is
/// newest first by (`at`, `id`) with keyset pages.
pub async fn audit_log_contract(log: Arc<dyn AuditLog>) {
    let p = unique_prefix("audit");
    let log = log.as_ref();
    event_round_trip(log, &p).await;
    anonymous_event(log, &p).await;
    event_duplicate_id(log, &p).await;
    event_batches(log, &p).await;
    let listed = seed_events(log, &p).await;
    events_newest_first(log, &listed).await;
    event_filters(log, &listed).await;
    event_pagination(log, &listed).await;
    event_malformed_tokens(log, &listed).await;
}

async fn append(log: &dyn AuditLog, event: &AuditEvent) {
    log.append(event)
        .await
        .unwrap_or_else(|e| panic!("append({}) failed: {e}", event.id));
}

async fn list_events(
    log: &dyn AuditLog,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Page<AuditEvent> {
    log.list_events(filter, page)
        .await
        .unwrap_or_else(|e| panic!("list_events({filter:?}, {page:?}) failed: {e}"))
}

fn by_principal(principal: &str) -> AuditFilter {
    AuditFilter {
        principal: Some(principal.to_owned()),
        ..AuditFilter::default()
    }
}

async fn event_round_trip(log: &dyn AuditLog, p: &str) {
    let full = AuditEvent {
        id: format!("{p}-full"),
        at: now_micros(),
        request_id: Some("req-0190a1b2-c3d4".to_owned()),
        principal: Some(format!("{p}-principal-full")),
        action: AuditAction::AdminChange,
        route: "PATCH /api/v1/keys/{id}".to_owned(),
        targets: vec![
            "shop".to_owned(),
            "shop.orders".to_owned(),
            "proj.ds.“quoted” ✓".to_owned(),
        ],
        sql_fingerprint: Some("0123456789abcdef".to_owned()),
        outcome: AuditOutcome::Failed,
        status: 503,
        error_code: Some("UNAVAILABLE".to_owned()),
        bytes: i64::MAX as u64,
        client_addr: Some("[2001:db8::1]:54321".to_owned()),
        detail: Some("revoked key abc…\nsecond line".to_owned()),
    };
    append(log, &full).await;
    let page = list_events(
        log,
        &by_principal(full.principal.as_deref().unwrap_or_default()),
        &PageRequest::first(10),
    )
    .await;
    assert_eq!(
        page.items,
        std::slice::from_ref(&full),
        "every field must survive append/list_events (targets, large bytes, unicode)"
    );
    assert_eq!(page.next_page_token, None);

    let mut every_action = Vec::new();
    for (i, action) in AuditAction::ALL.into_iter().enumerate() {
        let mut e = audit_event(
            &format!("{p}-action-{i:02}"),
            full.at - Duration::seconds(i64::try_from(i).unwrap_or(0) + 1),
        );
        e.principal = Some(format!("{p}-principal-actions"));
        e.action = action;
        e.outcome = [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::Failed,
        ][i % 3];
        e.status = [200, 403, 500][i % 3];
        append(log, &e).await;
        every_action.push(e);
    }
    let page = list_events(
        log,
        &by_principal(&format!("{p}-principal-actions")),
        &PageRequest::first(100),
    )
    .await;
    assert_eq!(
        page.items, every_action,
        "every action and outcome must survive append/list_events"
    );
}

/// An event nobody is identified for (a failed authentication) is found by time window.
async fn anonymous_event(log: &dyn AuditLog, p: &str) {
    let mut event = audit_event(&format!("{p}-anonymous"), now_micros() - Duration::days(3));
    event.action = AuditAction::Ticket;
    event.outcome = AuditOutcome::Denied;
    event.status = 401;
    append(log, &event).await;
    let window = |since: DateTime<Utc>, until: DateTime<Utc>| AuditFilter {
        since: Some(since),
        until: Some(until),
        ..AuditFilter::default()
    };
    let one = Duration::microseconds(1);
    let found = walk_events(log, &window(event.at, event.at + one)).await;
    assert!(
        found.iter().all(|e| e.at == event.at),
        "a one-microsecond window listed events outside it"
    );
    assert_eq!(
        found.iter().find(|e| e.id == event.id),
        Some(&event),
        "an event without principal must survive append/list_events, found by `since` \
         (inclusive) and `until` (exclusive)"
    );
    for (since, until, what) in [
        (event.at + one, event.at + one + one, "since after it"),
        (event.at - one, event.at, "until at its time"),
    ] {
        let found = walk_events(log, &window(since, until)).await;
        assert!(
            found.iter().all(|e| e.id != event.id),
            "a window with {what} must not list the event"
        );
    }
}

async fn event_duplicate_id(log: &dyn AuditLog, p: &str) {
    let mut first = audit_event(&format!("{p}-dup"), now_micros());
    first.principal = Some(format!("{p}-principal-dup"));
    append(log, &first).await;
    let mut second = first.clone();
    second.route = "GET /api/v1/history".to_owned();
    match log.append(&second).await {
        Err(Error::Conflict(_)) => {}
        other => panic!("appending an event id twice must be Error::Conflict, got {other:?}"),
    }
    let page = list_events(
        log,
        &by_principal(&format!("{p}-principal-dup")),
        &PageRequest::first(10),
    )
    .await;
    assert_eq!(
        page.items,
        [first],
        "a rejected duplicate must neither overwrite the original nor be added"
    );
}

/// `append_batch` stores every event of a batch, and a batch holding an id already stored
/// stores none of its events (all or none).
async fn event_batches(log: &dyn AuditLog, p: &str) {
    let principal = format!("{p}-principal-batch");
    let batch: Vec<AuditEvent> = (0..50)
        .map(|n| {
            let mut e = audit_event(&format!("{p}-batch-{n:02}"), now_micros());
            e.principal = Some(principal.clone());
            e
        })
        .collect();
    log.append_batch(&batch)
        .await
        .unwrap_or_else(|e| panic!("append_batch of 50 failed: {e}"));
    log.append_batch(&[])
        .await
        .unwrap_or_else(|e| panic!("an empty append_batch failed: {e}"));
    let stored = list_events(log, &by_principal(&principal), &PageRequest::first(100)).await;
    let mut ids: Vec<&str> = stored.items.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    let expected: Vec<&str> = batch.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, expected, "every event of a batch must be stored");

    let mut fresh = audit_event(&format!("{p}-batch-new"), now_micros());
    fresh.principal = Some(principal.clone());
    let clash = vec![fresh, batch[0].clone()];
    assert!(
        log.append_batch(&clash).await.is_err(),
        "a batch with a stored id must fail"
    );
    let after = list_events(log, &by_principal(&principal), &PageRequest::first(100)).await;
    assert_eq!(
        after.items.len(),
        50,
        "a failed batch must store none of its events"
    );
}

/// Five events of one principal, newest first as the log must list them. Two share a timestamp
/// so the id breaks the tie.
async fn seed_events(log: &dyn AuditLog, p: &str) -> Vec<AuditEvent> {
    let principal = format!("{p}-principal-list");
    let base = now_micros();
    let spec = [
        // (id suffix, seconds before base, action, outcome)
        ("e", 0, AuditAction::Query, AuditOutcome::Allowed),
        ("d", 10, AuditAction::Ask, AuditOutcome::Denied),
        ("c", 10, AuditAction::Query, AuditOutcome::Failed),
        ("b", 20, AuditAction::AdminChange, AuditOutcome::Allowed),
        ("a", 30, AuditAction::Query, AuditOutcome::Denied),
    ];
    let events: Vec<AuditEvent> = spec
        .iter()
        .enumerate()
        .map(|(i, &(suffix, secs, action, outcome))| {
            let mut e = audit_event(
                &format!("{p}-list-{suffix}"),
                base - Duration::seconds(secs),
            );
            e.principal = Some(principal.clone());
            e.action = action;
            e.outcome = outcome;
            e.targets = vec![format!("ds{i}")];
            e.bytes = (i as u64 + 1) * 1000;
            e
        })
        .collect();
    // Appended out of order: listing order must come from the data, not insertion order.
    for i in [2, 4, 0, 3, 1] {
        append(log, &events[i]).await;
    }
    // Same-time noise from another principal must not leak into filtered listings.
    let mut other = audit_event(&format!("{p}-list-other"), base);
    other.principal = Some(format!("{p}-principal-other"));
    append(log, &other).await;
    events
}

fn principal_of(listed: &[AuditEvent]) -> AuditFilter {
    AuditFilter {
        principal: listed[0].principal.clone(),
        ..AuditFilter::default()
    }
}

fn event_ids(events: &[AuditEvent], keep: impl Fn(&AuditEvent) -> bool) -> Vec<String> {
    events
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.id.clone())
        .collect()
}

/// Every event of every page of `list_events(filter)` at page size 3, checking order and
/// repeats.
async fn walk_events(log: &dyn AuditLog, filter: &AuditFilter) -> Vec<AuditEvent> {
    let mut page = PageRequest::first(3);
    let mut seen: Vec<AuditEvent> = Vec::new();
    for _ in 0..MAX_PAGES {
        let got = list_events(log, filter, &page).await;
        seen.extend(got.items);
        match got.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => {
                for pair in seen.windows(2) {
                    assert!(
                        (pair[0].at, &pair[0].id) > (pair[1].at, &pair[1].id),
                        "list_events must order by at DESC, then id DESC, without repeats: \
                         {} before {}",
                        pair[0].id,
                        pair[1].id
                    );
                }
                return seen;
            }
        }
    }
    panic!("list_events pagination does not terminate");
}

async fn listed_ids(log: &dyn AuditLog, filter: &AuditFilter) -> Vec<String> {
    walk_events(log, filter)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn events_newest_first(log: &dyn AuditLog, listed: &[AuditEvent]) {
    let page = list_events(log, &principal_of(listed), &PageRequest::first(100)).await;
    assert_eq!(
        page.items, listed,
        "list_events must return the appended events, by at DESC then id DESC"
    );
    assert_eq!(
        page.next_page_token, None,
        "a page holding everything has no next_page_token"
    );
}

async fn event_filters(log: &dyn AuditLog, listed: &[AuditEvent]) {
    let base = listed[0].at;
    for action in AuditAction::ALL {
        let filter = AuditFilter {
            action: Some(action),
            ..principal_of(listed)
        };
        assert_eq!(
            listed_ids(log, &filter).await,
            event_ids(listed, |e| e.action == action),
            "filter by action {action:?}"
        );
    }
    for outcome in [
        AuditOutcome::Allowed,
        AuditOutcome::Denied,
        AuditOutcome::Failed,
    ] {
        let filter = AuditFilter {
            outcome: Some(outcome),
            ..principal_of(listed)
        };
        assert_eq!(
            listed_ids(log, &filter).await,
            event_ids(listed, |e| e.outcome == outcome),
            "filter by outcome {outcome:?}"
        );
    }
    let filter = AuditFilter {
        action: Some(AuditAction::Query),
        outcome: Some(AuditOutcome::Denied),
        ..principal_of(listed)
    };
    assert_eq!(
        listed_ids(log, &filter).await,
        event_ids(listed, |e| e.action == AuditAction::Query
            && e.outcome == AuditOutcome::Denied),
        "filters combine with AND"
    );

    let ten = base - Duration::seconds(10);
    let twenty = base - Duration::seconds(20);
    let nano = Duration::nanoseconds(1);
    let windows = [
        (Some(ten), None, "since is inclusive"),
        (None, Some(ten), "until is exclusive"),
        (Some(twenty), Some(ten), "since and until combine"),
        (
            Some(ten + nano),
            None,
            "since a nanosecond after an event excludes it",
        ),
        (
            None,
            Some(ten + nano),
            "until a nanosecond after an event includes it",
        ),
        (Some(ten), Some(ten), "an empty window lists nothing"),
    ];
    for (since, until, what) in windows {
        let filter = AuditFilter {
            since,
            until,
            ..principal_of(listed)
        };
        let expected = event_ids(listed, |e| {
            since.is_none_or(|s| e.at >= s) && until.is_none_or(|u| e.at < u)
        });
        assert_eq!(listed_ids(log, &filter).await, expected, "{what}");
    }

    let nobody = by_principal(&format!("{}-nobody", listed[0].id));
    let page = list_events(log, &nobody, &PageRequest::first(10)).await;
    assert!(
        page.items.is_empty() && page.next_page_token.is_none(),
        "an unknown principal lists nothing"
    );
}

async fn event_pagination(log: &dyn AuditLog, listed: &[AuditEvent]) {
    let filter = principal_of(listed);
    let mut page = PageRequest::first(2);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let got = list_events(log, &filter, &page).await;
        sizes.push(got.items.len());
        seen.extend(got.items.into_iter().map(|e| e.id));
        match got.next_page_token {
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
        "5 events at page_size 2 come in pages of 2, 2, 1"
    );
    assert_eq!(
        seen,
        event_ids(listed, |_| true),
        "pagination must walk every event once, in order"
    );

    // A filtered walk that ends exactly on a page boundary must not promise an empty page.
    let denied = AuditFilter {
        outcome: Some(AuditOutcome::Denied),
        ..filter
    };
    let got = list_events(log, &denied, &PageRequest::first(2)).await;
    assert_eq!(got.items.len(), 2, "two denied events");
    assert_eq!(
        got.next_page_token, None,
        "a full last page has no next_page_token"
    );
}

async fn event_malformed_tokens(log: &dyn AuditLog, listed: &[AuditEvent]) {
    for token in ["not a token!", "%%%", "aGVsbG8"] {
        let page = PageRequest {
            page_size: 2,
            page_token: Some(token.into()),
        };
        match log.list_events(&principal_of(listed), &page).await {
            Err(Error::InvalidRequest(_)) => {}
            other => panic!("page_token {token:?} must be InvalidRequest, got {other:?}"),
        }
    }
}

// -------------------------------------------------------------------------------------------
// UsageLedger
// -------------------------------------------------------------------------------------------

/// Runs every usage ledger check against `ledger` (migrated, empty or shared); panics with a
/// description of the first violation.
///
/// Besides the port's documented behaviour it holds adapters to: totals are per (principal,
/// day), principals compared exactly (case included); a charge of 0 reports the total; huge
/// charges saturate (the total never goes down, nothing fails); charges from 20 concurrent
/// tasks all land, each answering a distinct total.
pub async fn usage_ledger_contract(ledger: Arc<dyn UsageLedger>) {
    let p = unique_prefix("usage");
    usage_totals(ledger.as_ref(), &p).await;
    usage_saturates(ledger.as_ref(), &p).await;
    concurrent_charges(ledger, &p).await;
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or(NaiveDate::MIN)
}

async fn used(ledger: &dyn UsageLedger, principal: &str, on: NaiveDate) -> u64 {
    ledger
        .bytes_used(principal, on)
        .await
        .unwrap_or_else(|e| panic!("bytes_used({principal}, {on}) failed: {e}"))
}

async fn charge(ledger: &dyn UsageLedger, principal: &str, on: NaiveDate, bytes: u64) -> u64 {
    ledger
        .charge_bytes(principal, on, bytes)
        .await
        .unwrap_or_else(|e| panic!("charge_bytes({principal}, {on}, {bytes}) failed: {e}"))
}

async fn usage_totals(ledger: &dyn UsageLedger, p: &str) {
    let a = format!("{p}-a");
    let b = format!("{p}-b");
    let upper_a = format!("{p}-A");
    assert_eq!(used(ledger, &a, day(26)).await, 0, "nothing charged yet");
    assert_eq!(charge(ledger, &a, day(26), 100).await, 100, "first charge");
    assert_eq!(charge(ledger, &a, day(26), 50).await, 150, "charges add up");
    assert_eq!(used(ledger, &a, day(26)).await, 150);
    assert_eq!(
        charge(ledger, &a, day(26), 0).await,
        150,
        "a charge of 0 reports the total"
    );

    assert_eq!(used(ledger, &a, day(27)).await, 0, "a new day starts at 0");
    assert_eq!(charge(ledger, &a, day(27), 7).await, 7);
    assert_eq!(
        used(ledger, &a, day(26)).await,
        150,
        "another day's charge is separate"
    );

    assert_eq!(
        used(ledger, &b, day(26)).await,
        0,
        "principals are separate"
    );
    assert_eq!(charge(ledger, &b, day(26), 1).await, 1);
    assert_eq!(
        charge(ledger, &upper_a, day(26), 2).await,
        2,
        "principals are compared exactly, case included"
    );
    assert_eq!(used(ledger, &a, day(26)).await, 150);
}

async fn usage_saturates(ledger: &dyn UsageLedger, p: &str) {
    let big = format!("{p}-big");
    let mut previous = 0;
    for _ in 0..3 {
        let total = charge(ledger, &big, day(26), u64::MAX / 2).await;
        assert!(
            total >= previous && total >= u64::MAX / 2,
            "huge charges must saturate, never wrap: {previous} then {total}"
        );
        previous = total;
    }
    assert_eq!(used(ledger, &big, day(26)).await, previous);
}

async fn concurrent_charges(ledger: Arc<dyn UsageLedger>, p: &str) {
    let principal = format!("{p}-concurrent");
    let (tasks, per_task) = (20_u64, 5);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let ledger = Arc::clone(&ledger);
            let principal = principal.clone();
            tokio::spawn(async move {
                let mut totals = Vec::new();
                for _ in 0..per_task {
                    totals.push(charge(ledger.as_ref(), &principal, day(26), (t + 1) * 1000).await);
                }
                totals
            })
        })
        .collect();
    let mut totals = Vec::new();
    for h in handles {
        totals.extend(
            h.await
                .unwrap_or_else(|e| panic!("a charging task failed: {e}")),
        );
    }
    let expected: u64 = (1..=tasks).map(|t| t * 1000 * per_task).sum();
    assert_eq!(
        used(ledger.as_ref(), &principal, day(26)).await,
        expected,
        "{} concurrent charges must all land",
        totals.len()
    );
    let distinct: HashSet<u64> = totals.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        totals.len(),
        "each charge must answer the total it produced (atomic add-and-read)"
    );
    assert_eq!(
        totals.iter().max().copied(),
        Some(expected),
        "the last charge answers the final total"
    );
}
