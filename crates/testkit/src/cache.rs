//! Contract suite for the [`Cache`] port: every cache adapter (in-memory, Redis) must pass it.
//!
//! Keys and tags carry a per-run prefix, so several runs can share one Redis concurrently.
//! The suite sleeps once, for about 0.6 s, to watch a TTL expire. The cache under test must hold
//! at least 8 MiB.

use std::sync::Arc;
use std::time::Duration;

use crate::unique_prefix;
use bqai_core::model::HealthStatus;
use bqai_core::ports::Cache;

const LONG: Duration = Duration::from_secs(300);

/// Runs every cache check against `cache`; panics with a description of the first violation.
pub async fn cache_contract(cache: Arc<dyn Cache>) {
    let p = unique_prefix("cache");
    let cache = cache.as_ref();
    miss_on_absent_key(cache, &p).await;
    round_trip_and_overwrite(cache, &p).await;
    tag_invalidation(cache, &p).await;
    overwrite_keeps_the_new_entry_reachable_by_tag(cache, &p).await;
    large_values(cache, &p).await;
    odd_keys(cache, &p).await;
    // Last, because it sleeps.
    ttl_expiry(cache, &p).await;
    let health = cache.health().await;
    assert_eq!(
        health.status,
        HealthStatus::Ok,
        "cache health after the suite: {health:?}"
    );
}

async fn get(cache: &dyn Cache, key: &str) -> Option<Vec<u8>> {
    cache
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get({key:?}) failed: {e}"))
}

async fn set(cache: &dyn Cache, key: &str, value: &[u8], ttl: Duration, tags: &[String]) {
    cache
        .set(key, value.to_vec(), ttl, tags)
        .await
        .unwrap_or_else(|e| panic!("set({key:?}) failed: {e}"));
}

async fn invalidate(cache: &dyn Cache, tag: &str) -> u64 {
    cache
        .invalidate_tag(tag)
        .await
        .unwrap_or_else(|e| panic!("invalidate_tag({tag:?}) failed: {e}"))
}

async fn miss_on_absent_key(cache: &dyn Cache, p: &str) {
    let key = format!("{p}:absent");
    assert_eq!(
        get(cache, &key).await,
        None,
        "get of a key never set must miss"
    );
}

async fn round_trip_and_overwrite(cache: &dyn Cache, p: &str) {
    let key = format!("{p}:round-trip");
    set(cache, &key, b"first", LONG, &[]).await;
    assert_eq!(
        get(cache, &key).await.as_deref(),
        Some(&b"first"[..]),
        "get right after set must return the value"
    );
    set(cache, &key, b"second", LONG, &[]).await;
    assert_eq!(
        get(cache, &key).await.as_deref(),
        Some(&b"second"[..]),
        "set on an existing key must overwrite it"
    );
    let empty = format!("{p}:empty-value");
    set(cache, &empty, b"", LONG, &[]).await;
    assert_eq!(
        get(cache, &empty).await,
        Some(Vec::new()),
        "an empty value is a hit, not a miss"
    );
}

async fn tag_invalidation(cache: &dyn Cache, p: &str) {
    let [t1, t2, t3] = ["t1", "t2", "t3"].map(|t| format!("{p}:tag:{t}"));
    let key = |name: &str| format!("{p}:tagged:{name}");
    set(cache, &key("a"), b"a", LONG, std::slice::from_ref(&t1)).await;
    set(cache, &key("b"), b"b", LONG, &[t1.clone(), t2.clone()]).await;
    set(cache, &key("c"), b"c", LONG, std::slice::from_ref(&t2)).await;
    set(cache, &key("d"), b"d", LONG, std::slice::from_ref(&t3)).await;
    set(cache, &key("untagged"), b"u", LONG, &[]).await;

    let present = |names: &'static [&'static str]| async move {
        let mut found = Vec::new();
        for name in ["a", "b", "c", "d", "untagged"] {
            if get(cache, &key(name)).await.is_some() {
                found.push(name);
            }
        }
        assert_eq!(found, names, "entries left after tag invalidation");
    };

    assert_eq!(
        invalidate(cache, &t1).await,
        2,
        "invalidating t1 must remove a and b"
    );
    present(&["c", "d", "untagged"]).await;
    assert_eq!(
        invalidate(cache, &t2).await,
        1,
        "invalidating t2 must remove only c (b is already gone)"
    );
    present(&["d", "untagged"]).await;
    assert_eq!(
        invalidate(cache, &t1).await,
        0,
        "invalidating a tag twice removes nothing the second time"
    );
    let unknown = format!("{p}:tag:never-used");
    assert_eq!(
        invalidate(cache, &unknown).await,
        0,
        "an unknown tag removes nothing"
    );
    assert_eq!(
        invalidate(cache, &t3).await,
        1,
        "invalidating t3 must remove d"
    );
    present(&["untagged"]).await;
}

async fn overwrite_keeps_the_new_entry_reachable_by_tag(cache: &dyn Cache, p: &str) {
    let key = format!("{p}:retagged");
    let (old, new) = (format!("{p}:tag:old"), format!("{p}:tag:new"));
    set(cache, &key, b"v1", LONG, std::slice::from_ref(&old)).await;
    set(cache, &key, b"v2", LONG, &[old.clone(), new.clone()]).await;
    set(cache, &key, b"v3", LONG, std::slice::from_ref(&new)).await;
    assert_eq!(
        invalidate(cache, &new).await,
        1,
        "an overwritten entry must be removable through the tags of its latest set"
    );
    assert_eq!(
        get(cache, &key).await,
        None,
        "entry survived invalidation of its tag"
    );
}

async fn large_values(cache: &dyn Cache, p: &str) {
    let key = format!("{p}:large");
    // 2 MiB of varied bytes, so truncation or corruption anywhere shows.
    let value: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    cache
        .set(&key, value.clone(), LONG, &[])
        .await
        .unwrap_or_else(|e| panic!("set of a 2 MiB value failed: {e}"));
    let back = get(cache, &key).await;
    assert!(back.is_some(), "a 2 MiB value must be cached");
    assert!(
        back.as_ref() == Some(&value),
        "a 2 MiB value came back altered"
    );
}

async fn odd_keys(cache: &dyn Cache, p: &str) {
    let suffixes = [
        "with space",
        "colon:slash/question?amp&eq=",
        "glob*chars?[x]{y}",
        "quote'\"backslash\\",
        "newline\nand\ttab",
        "unicode ключ 键 🚀",
        "%20percent%encoded",
    ];
    for (i, suffix) in suffixes.iter().enumerate() {
        let key = format!("{p}:odd:{suffix}");
        let value = format!("value {i}").into_bytes();
        set(cache, &key, &value, LONG, &[]).await;
        assert_eq!(
            get(cache, &key).await,
            Some(value),
            "round trip of key {key:?}"
        );
    }
    // Similar keys must stay distinct.
    for (i, suffix) in suffixes.iter().enumerate() {
        let key = format!("{p}:odd:{suffix}");
        assert_eq!(
            get(cache, &key).await,
            Some(format!("value {i}").into_bytes()),
            "key {key:?} was clobbered by another odd key"
        );
    }
}

async fn ttl_expiry(cache: &dyn Cache, p: &str) {
    let short = format!("{p}:ttl:short");
    let long = format!("{p}:ttl:long");
    set(cache, &short, b"short", Duration::from_millis(300), &[]).await;
    set(cache, &long, b"long", LONG, &[]).await;
    assert!(
        get(cache, &short).await.is_some(),
        "an entry must be readable before its TTL"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        get(cache, &short).await,
        None,
        "an entry with a 300 ms TTL must be gone after 600 ms"
    );
    assert!(
        get(cache, &long).await.is_some(),
        "an entry with a long TTL must survive another entry's expiry"
    );
}
