//! [`CachedKeyStore`]: the [`KeyStore`] port with verified keys' records kept in process for a
//! short TTL (`auth.key_cache_ttl_secs`, default 5 s), so that an authenticated request does
//! not read its key from the store every time.
//!
//! A cached record may be stale by at most the TTL — except where bqai itself changed the key:
//! a revocation, an update or a creation through this store drops its record here at once, and
//! tells the other replicas through the [`KeyChangeNotifier`] (Redis pub/sub), which drop it
//! on the message (`invalidate`). A replica that was cut off from the notifications drops
//! everything when it hears again (`invalidate_all`), since it may have missed some. A change
//! made behind bqai's back (SQL on the store) waits for the TTL.
//!
//! Unknown ids are not cached: a key created on another replica works here at once, and a
//! flood of made-up ids cannot fill the cache (the failed-authentication throttle deals with
//! floods). Secrets are not cached either: a record holds the key's hash, which the
//! authenticator checks on every request as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use bqai_core::model::{Page, PageRequest};
use bqai_core::ports::{KeyChangeNotifier, KeyStore};
use chrono::{DateTime, Utc};

/// Records kept at most (each is a few hundred bytes).
const CAPACITY: u64 = 100_000;

/// A [`KeyStore`] that keeps the records it read for a TTL; see the module docs.
pub struct CachedKeyStore {
    inner: Arc<dyn KeyStore>,
    records: moka::sync::Cache<String, KeyRecord>,
    notifier: Option<Arc<dyn KeyChangeNotifier>>,
    /// Bumped by every invalidation: a read that raced one does not put back what it read.
    generation: AtomicU64,
}

impl CachedKeyStore {
    /// Records of `inner` kept for `ttl`.
    pub fn new(inner: Arc<dyn KeyStore>, ttl: Duration) -> Self {
        Self {
            inner,
            records: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build(),
            notifier: None,
            generation: AtomicU64::new(0),
        }
    }

    /// Tells the other replicas about every change made through this store.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<dyn KeyChangeNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Drops `key_id`'s record (another replica changed the key).
    pub fn invalidate(&self, key_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.records.invalidate(key_id);
    }

    /// Drops every record (changes may have been missed).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.records.invalidate_all();
    }

    /// Caches `record` unless an invalidation ran since `generation` was read: then the record
    /// may predate the change, and is dropped again (an invalidation after this check removes
    /// it itself).
    fn keep(&self, record: KeyRecord, generation: u64) {
        let id = record.id.clone();
        self.records.insert(id.clone(), record);
        if self.generation.load(Ordering::SeqCst) != generation {
            self.records.invalidate(&id);
        }
    }

    /// `key_id` changed through this store: drop it here, tell the others. A failure to tell
    /// them is logged; their TTL still ends the stale record.
    async fn changed(&self, key_id: &str) {
        self.invalidate(key_id);
        if let Some(notifier) = &self.notifier
            && let Err(e) = notifier.key_changed(key_id).await
        {
            tracing::warn!(
                key_id,
                error = %e,
                "could not tell the other replicas that a key changed; they see it within \
                 auth.key_cache_ttl_secs"
            );
        }
    }
}

#[async_trait]
impl KeyStore for CachedKeyStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
        self.inner.insert_key(key).await?;
        self.changed(&key.id).await;
        Ok(())
    }

    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        if let Some(record) = self.records.get(id) {
            return Ok(Some(record));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let record = self.inner.get_key(id).await?;
        if let Some(record) = &record {
            self.keep(record.clone(), generation);
        }
        Ok(record)
    }

    async fn list_keys(&self, filter: &KeyFilter, page: &PageRequest) -> Result<Page<KeyRecord>> {
        self.inner.list_keys(filter, page).await
    }

    async fn update_key(&self, id: &str, update: &KeyUpdate) -> Result<Option<KeyRecord>> {
        let updated = self.inner.update_key(id, update).await;
        self.changed(id).await;
        updated
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>> {
        let revoked = self.inner.revoke_key(id, at).await;
        // Also after a failure: the store may have applied it before the error reached us.
        self.changed(id).await;
        revoked
    }

    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let generation = self.generation.load(Ordering::SeqCst);
        self.inner.touch_key(id, at).await?;
        // The cached record learns its new use time, or the authenticator would touch the key
        // on every request until the record expires.
        if let Some(mut record) = self.records.get(id) {
            record.last_used_at = Some(at);
            self.keep(record, generation);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use bqai_core::model::{DatasetScope, Role};

    use super::*;

    /// A key store on a map that counts reads.
    #[derive(Default)]
    struct MapKeys {
        keys: Mutex<HashMap<String, KeyRecord>>,
        reads: AtomicU64,
        touches: AtomicU64,
    }

    #[async_trait]
    impl KeyStore for MapKeys {
        async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
            self.keys
                .lock()
                .unwrap()
                .insert(key.id.clone(), key.clone());
            Ok(())
        }
        async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.keys.lock().unwrap().get(id).cloned())
        }
        async fn list_keys(&self, _: &KeyFilter, _: &PageRequest) -> Result<Page<KeyRecord>> {
            Ok(Page {
                items: self.keys.lock().unwrap().values().cloned().collect(),
                next_page_token: None,
            })
        }
        async fn update_key(&self, id: &str, update: &KeyUpdate) -> Result<Option<KeyRecord>> {
            let mut keys = self.keys.lock().unwrap();
            Ok(keys.get_mut(id).map(|k| {
                k.apply(update);
                k.clone()
            }))
        }
        async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>> {
            let mut keys = self.keys.lock().unwrap();
            Ok(keys.get_mut(id).map(|k| {
                k.revoked_at.get_or_insert(at);
                k.clone()
            }))
        }
        async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
            self.touches.fetch_add(1, Ordering::SeqCst);
            if let Some(k) = self.keys.lock().unwrap().get_mut(id) {
                k.last_used_at = Some(at);
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Announced(Mutex<Vec<String>>);

    #[async_trait]
    impl KeyChangeNotifier for Announced {
        async fn key_changed(&self, key_id: &str) -> Result<()> {
            self.0.lock().unwrap().push(key_id.to_owned());
            Ok(())
        }
    }

    fn record(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            name: "test".into(),
            owner: None,
            role: Role::Analyst,
            datasets: DatasetScope::All,
            rate_limit_per_minute: None,
            daily_byte_quota: None,
            expires_at: None,
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
            secret_hash: "h".into(),
        }
    }

    #[tokio::test]
    async fn a_key_is_read_once_per_ttl_and_a_revocation_here_applies_at_once() {
        let inner = Arc::new(MapKeys::default());
        inner.insert_key(&record("k1")).await.unwrap();
        let announced = Arc::new(Announced::default());
        let keys = CachedKeyStore::new(inner.clone(), Duration::from_secs(60))
            .with_notifier(announced.clone());
        for _ in 0..5 {
            assert!(keys.get_key("k1").await.unwrap().is_some());
        }
        assert_eq!(inner.reads.load(Ordering::SeqCst), 1);

        keys.revoke_key("k1", Utc::now()).await.unwrap();
        let seen = keys.get_key("k1").await.unwrap().unwrap();
        assert!(seen.revoked_at.is_some(), "the revocation is seen at once");
        assert_eq!(*announced.0.lock().unwrap(), ["k1"]);

        // Unknown ids are read every time, never cached.
        assert!(keys.get_key("nope").await.unwrap().is_none());
        assert!(keys.get_key("nope").await.unwrap().is_none());
        assert_eq!(inner.reads.load(Ordering::SeqCst), 4);
    }

    /// Whether the record `keys` answers for `id` (which must exist) says revoked.
    async fn revoked(keys: &CachedKeyStore, id: &str) -> bool {
        keys.get_key(id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    }

    #[tokio::test]
    async fn a_change_elsewhere_is_seen_on_notice_or_after_the_ttl() {
        let inner = Arc::new(MapKeys::default());
        inner.insert_key(&record("k1")).await.unwrap();
        let keys = CachedKeyStore::new(inner.clone(), Duration::from_millis(300));
        assert!(!revoked(&keys, "k1").await);
        // Revoked on another replica (straight in the shared store).
        inner.revoke_key("k1", Utc::now()).await.unwrap();
        assert!(!revoked(&keys, "k1").await);
        // Its notice arrives.
        keys.invalidate("k1");
        assert!(revoked(&keys, "k1").await);

        // Without a notice, the TTL ends the stale record.
        inner.insert_key(&record("k2")).await.unwrap();
        assert!(!revoked(&keys, "k2").await);
        inner.revoke_key("k2", Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(revoked(&keys, "k2").await);

        keys.invalidate_all();
        let reads = inner.reads.load(Ordering::SeqCst);
        keys.get_key("k1").await.unwrap();
        assert_eq!(inner.reads.load(Ordering::SeqCst), reads + 1);
    }

    #[tokio::test]
    async fn a_touch_updates_the_cached_record() {
        let inner = Arc::new(MapKeys::default());
        inner.insert_key(&record("k1")).await.unwrap();
        let keys = CachedKeyStore::new(inner.clone(), Duration::from_secs(60));
        keys.get_key("k1").await.unwrap();
        let at = Utc::now();
        keys.touch_key("k1", at).await.unwrap();
        assert_eq!(
            keys.get_key("k1").await.unwrap().unwrap().last_used_at,
            Some(at)
        );
        assert_eq!(inner.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn updates_through_the_store_apply_at_once() {
        let inner = Arc::new(MapKeys::default());
        inner.insert_key(&record("k1")).await.unwrap();
        let keys = CachedKeyStore::new(inner.clone(), Duration::from_secs(60));
        keys.get_key("k1").await.unwrap();
        let update = KeyUpdate {
            role: Some(Role::Viewer),
            ..KeyUpdate::default()
        };
        keys.update_key("k1", &update).await.unwrap();
        assert_eq!(
            keys.get_key("k1").await.unwrap().unwrap().role,
            Role::Viewer
        );
    }
}
