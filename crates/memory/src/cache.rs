//! [`MemoryCache`]: the `Cache` port on a moka cache bounded by bytes, with a TTL per entry and
//! a tag index for invalidation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::model::ComponentHealth;
use bqai_core::ports::Cache;
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};

/// One cached value with what the expiry policy and the tag index need beside it.
#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    ttl: Duration,
    tags: Vec<String>,
    /// Unique per `set`, so the tag index can tell this entry from a later one under the same
    /// key (see [`TagIndex`]).
    generation: u64,
}

/// moka asks this for each entry's lifetime; the TTL travels with the value.
struct PerEntryTtl;

impl Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        // An overwrite starts the new value's own TTL rather than inheriting the old deadline.
        Some(value.ttl)
    }
}

/// tag → (key → generation of the entry that carried the tag when it was set).
///
/// Removal notifications from moka can arrive after the same key was set again (an expired
/// entry is replaced before housekeeping reports it), so every removal is matched on the
/// generation: a late notification for an old entry never unlinks the newer one.
#[derive(Default)]
struct TagIndex {
    tags: Mutex<HashMap<String, HashMap<String, u64>>>,
}

impl TagIndex {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, u64>>> {
        // The map stays consistent even if a holder panicked: every update is a single insert
        // or remove.
        self.tags.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn link(&self, key: &str, entry: &Entry) {
        let mut tags = self.lock();
        for tag in &entry.tags {
            tags.entry(tag.clone())
                .or_default()
                .insert(key.to_owned(), entry.generation);
        }
    }

    fn unlink(&self, key: &str, entry: &Entry) {
        let mut tags = self.lock();
        for tag in &entry.tags {
            if let Some(keys) = tags.get_mut(tag) {
                if keys.get(key) == Some(&entry.generation) {
                    keys.remove(key);
                }
                if keys.is_empty() {
                    tags.remove(tag);
                }
            }
        }
    }

    fn take(&self, tag: &str) -> HashMap<String, u64> {
        self.lock().remove(tag).unwrap_or_default()
    }
}

/// Hit and miss counters of a [`MemoryCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// `get`s that found a live entry.
    pub hits: u64,
    /// `get`s that found nothing (absent or expired).
    pub misses: u64,
    /// Entries held (moka's count, which lags behind writes until its housekeeping runs).
    pub entries: u64,
    /// Bytes held (keys plus values, same lag).
    pub bytes: u64,
}

/// An in-process byte cache bounded by total size (keys + values), with a TTL per entry and
/// tag invalidation. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct MemoryCache {
    inner: moka::future::Cache<String, Arc<Entry>>,
    index: Arc<TagIndex>,
    generation: Arc<AtomicU64>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of keys and values; least useful entries are evicted
    /// beyond that. A single entry larger than `max_bytes` is not stored at all.
    pub fn new(max_bytes: u64) -> Self {
        let index = Arc::new(TagIndex::default());
        let listener_index = Arc::clone(&index);
        let inner = moka::future::Cache::builder()
            .name("bqai-memory-cache")
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &Arc<Entry>| {
                let tags: usize = entry.tags.iter().map(String::len).sum();
                u32::try_from(key.len() + entry.value.len() + tags).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |key: Arc<String>, entry: Arc<Entry>, _cause| {
                // Whatever the cause (expired, evicted, replaced, removed), the links of this
                // generation are dead; unlinking is generation-checked, so a newer entry under
                // the same key keeps its links.
                listener_index.unlink(&key, &entry);
            })
            .build();
        Self {
            inner,
            index,
            generation: Arc::new(AtomicU64::new(0)),
            hits: Arc::new(AtomicU64::new(0)),
            misses: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hit/miss counters and current size.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.inner.entry_count(),
            bytes: self.inner.weighted_size(),
        }
    }

    /// Runs moka's pending housekeeping (evictions, expirations, counts) now instead of lazily;
    /// useful before reading [`MemoryCache::stats`] in tests.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.inner.get(key).await {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some(entry.value.clone()))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration, tags: &[String]) -> Result<()> {
        let entry = Arc::new(Entry {
            value,
            ttl,
            tags: tags.to_vec(),
            generation: self.generation.fetch_add(1, Ordering::Relaxed),
        });
        // Linked before inserting: an `invalidate_tag` racing with this `set` then either sees
        // the link and removes the new entry, or runs before the link and leaves it (the set
        // happened after the invalidation). The reverse order could leave a tagged entry behind
        // with no link to it.
        self.index.link(key, &entry);
        self.inner.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut removed = 0;
        for (key, generation) in self.index.take(tag) {
            // Atomic per key: only the very entry that was linked goes, never a newer value set
            // under the same key since.
            let result = self
                .inner
                .entry_by_ref(key.as_str())
                .and_compute_with(|current| {
                    let op = match current {
                        Some(e) if e.value().generation == generation => Op::Remove,
                        _ => Op::Nop,
                    };
                    std::future::ready(op)
                })
                .await;
            if let CompResult::Removed(entry) = result {
                self.index.unlink(&key, entry.value());
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn health(&self) -> ComponentHealth {
        let stats = self.stats();
        let mut health = ComponentHealth::ok("memory");
        health.detail = Some(format!(
            "hits={}, misses={}, entries={}",
            stats.hits, stats.misses, stats.entries
        ));
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_hits_and_misses() {
        let cache = MemoryCache::new(1 << 20);
        cache
            .set("k", b"v".to_vec(), Duration::from_secs(60), &[])
            .await
            .unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(cache.get("absent").await.unwrap(), None);
        cache.run_pending_tasks().await;
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));
        let health = cache.health().await;
        assert_eq!(health.kind, "memory");
        assert_eq!(
            health.detail.as_deref(),
            Some("hits=1, misses=1, entries=1")
        );
    }

    #[tokio::test]
    async fn stays_within_its_byte_budget() {
        let cache = MemoryCache::new(10_000);
        for i in 0..100 {
            let key = format!("key-{i}");
            cache
                .set(&key, vec![0; 1_000], Duration::from_secs(60), &[])
                .await
                .unwrap();
        }
        cache.run_pending_tasks().await;
        let stats = cache.stats();
        assert!(stats.bytes <= 10_000, "{stats:?}");
        assert!(stats.entries < 100, "{stats:?}");
    }

    #[tokio::test]
    async fn overwriting_moves_the_entry_between_tags() {
        let cache = MemoryCache::new(1 << 20);
        let ttl = Duration::from_secs(60);
        cache
            .set("k", b"1".to_vec(), ttl, &["a".into()])
            .await
            .unwrap();
        cache
            .set("k", b"2".to_vec(), ttl, &["b".into()])
            .await
            .unwrap();
        cache.run_pending_tasks().await;
        assert_eq!(cache.invalidate_tag("a").await.unwrap(), 0);
        assert_eq!(cache.get("k").await.unwrap(), Some(b"2".to_vec()));
        assert_eq!(cache.invalidate_tag("b").await.unwrap(), 1);
        assert_eq!(cache.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_entries_leave_the_tag_index() {
        let cache = MemoryCache::new(1 << 20);
        let tags = ["t".to_owned()];
        cache
            .set("k", b"1".to_vec(), Duration::from_millis(20), &tags)
            .await
            .unwrap();
        // moka's timer wheel removes expired entries at about one-second granularity.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cache.index.lock().is_empty() {
            assert!(Instant::now() < deadline, "expired entry still indexed");
            tokio::time::sleep(Duration::from_millis(100)).await;
            cache.run_pending_tasks().await;
        }
        // A fresh entry under the same key after expiry stays reachable through its tag.
        cache
            .set("k", b"2".to_vec(), Duration::from_secs(60), &tags)
            .await
            .unwrap();
        cache.run_pending_tasks().await;
        assert_eq!(cache.invalidate_tag("t").await.unwrap(), 1);
    }
}
