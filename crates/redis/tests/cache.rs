//! RedisCache behaviour beyond the contract: sharing between replicas, compression, TTLs of
//! entries and tag bookkeeping, and what an overwrite or an expiry does to tags.

mod common;

use std::time::Duration;

use bqai_core::model::HealthStatus;
use bqai_core::ports::Cache;
use bqai_redis::{RedisCache, RedisOptions};
use deadpool_redis::redis::{self, AsyncCommands};

const LONG: Duration = Duration::from_secs(300);

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|t| (*t).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_see_each_others_entries_and_invalidations() {
    let options = common::options();
    let a = RedisCache::new(options.clone()).unwrap();
    let b = RedisCache::new(options.clone()).unwrap();
    let tag = tags(&["dataset:shop"]);

    a.set("bqai:v1:result:1", b"from a".to_vec(), LONG, &tag)
        .await
        .unwrap();
    assert_eq!(
        b.get("bqai:v1:result:1").await.unwrap().as_deref(),
        Some(&b"from a"[..])
    );
    b.set("bqai:v1:result:2", b"from b".to_vec(), LONG, &tag)
        .await
        .unwrap();
    assert_eq!(
        a.invalidate_tag("dataset:shop").await.unwrap(),
        2,
        "a removes b's entry too"
    );
    assert_eq!(b.get("bqai:v1:result:1").await.unwrap(), None);
    assert_eq!(a.get("bqai:v1:result:2").await.unwrap(), None);

    // A different namespace is a different cache.
    let other = RedisCache::new(common::options()).unwrap();
    a.set("k", b"v".to_vec(), LONG, &[]).await.unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);

    // Hit/miss counters are per instance.
    assert_eq!(a.stats(), (0, 1));
    assert_eq!(b.stats(), (1, 1));
    let health = b.health().await;
    assert_eq!(health.status, HealthStatus::Ok);
    assert_eq!(health.kind, "redis");
    assert_eq!(health.detail.as_deref(), Some("hits=1, misses=1"));
    common::cleanup(&options.namespace).await;
    common::cleanup(&other.client().options().namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_values_are_compressed_and_small_ones_stored_raw() {
    let options = common::options();
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();
    let mut raw = common::raw().await;

    // 1 MiB of something like a MessagePack result set: repetitive, but not one byte repeated.
    let row = |i: u32| {
        format!(
            "{{\"order_id\":{i},\"status\":\"shipped\",\"amount\":{}.50}}",
            i % 97
        )
    };
    let mut value = Vec::new();
    let mut i = 0;
    while value.len() < 1 << 20 {
        value.extend_from_slice(row(i).as_bytes());
        i += 1;
    }
    value.truncate(1 << 20);
    cache.set("big", value.clone(), LONG, &[]).await.unwrap();
    let stored: usize = raw.strlen(format!("{ns}big")).await.unwrap();
    assert!(
        stored < value.len() / 10,
        "1 MiB compressible value takes {stored} bytes in Redis"
    );
    let memory: usize = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("{ns}big"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(memory < value.len() / 10, "MEMORY USAGE {memory}");
    assert!(cache.get("big").await.unwrap() == Some(value));

    let small = b"{\"rows\":[]}".to_vec();
    cache.set("small", small.clone(), LONG, &[]).await.unwrap();
    let stored: Vec<u8> = raw.get(format!("{ns}small")).await.unwrap();
    assert_eq!(stored[0], 0, "format byte of a raw value");
    assert_eq!(&stored[1..], &small[..]);
    assert_eq!(cache.get("small").await.unwrap(), Some(small));

    // Right at the threshold: still raw.
    let at_threshold = vec![b'x'; 4096];
    cache
        .set("edge", at_threshold.clone(), LONG, &[])
        .await
        .unwrap();
    let stored: usize = raw.strlen(format!("{ns}edge")).await.unwrap();
    assert_eq!(stored, 4097);
    assert_eq!(cache.get("edge").await.unwrap(), Some(at_threshold));
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compression_threshold_is_configurable() {
    let options = RedisOptions {
        compress_threshold: 10,
        ..common::options()
    };
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();
    let value = vec![b'a'; 100];
    cache.set("k", value.clone(), LONG, &[]).await.unwrap();
    let stored: Vec<u8> = common::raw().await.get(format!("{ns}k")).await.unwrap();
    assert_eq!(stored[0], 1, "format byte of a zstd value");
    assert!(stored.len() < value.len());
    assert_eq!(cache.get("k").await.unwrap(), Some(value));
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ttls_of_entries_and_tag_bookkeeping() {
    let options = common::options();
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();
    let mut raw = common::raw().await;

    cache
        .set(
            "short",
            b"v".to_vec(),
            Duration::from_millis(200),
            &tags(&["t"]),
        )
        .await
        .unwrap();
    cache
        .set(
            "long",
            b"v".to_vec(),
            Duration::from_secs(60),
            &tags(&["t"]),
        )
        .await
        .unwrap();
    let entry_ttl: i64 = raw.pttl(format!("{ns}short")).await.unwrap();
    assert!(entry_ttl > 0 && entry_ttl <= 200, "{entry_ttl}");
    // The tag set lives at least as long as its longest-lived entry.
    let tag_ttl: i64 = raw.pttl(format!("{ns}bqai:v1:tag:t")).await.unwrap();
    assert!(tag_ttl >= 60_000, "{tag_ttl}");
    // A shorter entry added later does not shorten it.
    cache
        .set(
            "short2",
            b"v".to_vec(),
            Duration::from_millis(50),
            &tags(&["t"]),
        )
        .await
        .unwrap();
    let tag_ttl: i64 = raw.pttl(format!("{ns}bqai:v1:tag:t")).await.unwrap();
    assert!(tag_ttl >= 59_000, "{tag_ttl}");

    assert!(cache.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert!(cache.get("long").await.unwrap().is_some());
    // Only the live entry counts as removed.
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 1);

    // Untagged entries leave no bookkeeping behind.
    cache.set("plain", b"v".to_vec(), LONG, &[]).await.unwrap();
    assert_eq!(common::keys(&ns).await, vec![format!("{ns}plain")]);
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn old_tags_of_an_overwritten_or_expired_entry_do_not_remove_the_new_one() {
    let options = common::options();
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();

    cache
        .set("k", b"1".to_vec(), LONG, &tags(&["a"]))
        .await
        .unwrap();
    cache
        .set("k", b"2".to_vec(), LONG, &tags(&["b"]))
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tag("a").await.unwrap(), 0);
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.invalidate_tag("b").await.unwrap(), 1);
    assert_eq!(cache.get("k").await.unwrap(), None);

    // An entry invalidated through one tag is unlinked from its others: a new value under the
    // same key, carrying only one of them, survives invalidation of the other.
    cache
        .set("m", b"1".to_vec(), LONG, &tags(&["x", "y"]))
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tag("x").await.unwrap(), 1);
    cache
        .set("m", b"2".to_vec(), LONG, &tags(&["z"]))
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tag("y").await.unwrap(), 0);
    assert_eq!(cache.get("m").await.unwrap().as_deref(), Some(&b"2"[..]));

    // Same after an expiry: the tag set still lists the key, the new value is not its member.
    cache
        .set(
            "e",
            b"1".to_vec(),
            Duration::from_millis(30),
            &tags(&["old"]),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    cache
        .set("e", b"2".to_vec(), LONG, &tags(&["new"]))
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tag("old").await.unwrap(), 0);
    assert_eq!(cache.get("e").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(cache.invalidate_tag("new").await.unwrap(), 1);
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_and_tag_sets_carry_the_namespace() {
    let options = common::options();
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();
    cache
        .set(
            "bqai:v1:result:abc",
            b"v".to_vec(),
            LONG,
            &tags(&["dataset:shop"]),
        )
        .await
        .unwrap();
    assert_eq!(
        common::keys(&ns).await,
        vec![
            format!("{ns}bqai:v1:entry-tags:bqai:v1:result:abc"),
            format!("{ns}bqai:v1:result:abc"),
            format!("{ns}bqai:v1:tag:dataset:shop"),
        ]
    );
    assert_eq!(cache.invalidate_tag("dataset:shop").await.unwrap(), 1);
    assert_eq!(
        common::keys(&ns).await,
        Vec::<String>::new(),
        "invalidation leaves nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_are_reloaded_after_a_script_flush() {
    let options = common::options();
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options).unwrap();
    cache
        .set("k", b"1".to_vec(), LONG, &tags(&["t"]))
        .await
        .unwrap();
    // What a Redis restart does to the script cache. Other tests running concurrently reload
    // their scripts the same way.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut common::raw().await)
        .await
        .unwrap();
    cache
        .set("k", b"2".to_vec(), LONG, &tags(&["t"]))
        .await
        .unwrap();
    assert_eq!(cache.invalidate_tag("t").await.unwrap(), 1);
    common::cleanup(&ns).await;
}
