//! [`RedisCache`]: the `Cache` port on Redis, shared by every bqai replica pointing at it.
//!
//! Layout, with `<ns>` the configured namespace:
//! - `<ns><key>`: the entry, a string `[format byte][payload]` with the entry's TTL (`PX`);
//!   format 0 is the value as given, format 1 a zstd frame of it (values above the
//!   compression threshold, when that makes them smaller);
//! - `<ns>bqai:v1:tag:<tag>`: a set of the keys carrying `<tag>`;
//! - `<ns>bqai:v1:entry-tags:<key>`: a set of the tag-set keys `<key>`'s current value is linked
//!   into, which lets an invalidation skip links left behind by an older value.
//!
//! `get` is a plain GET; `set` and `invalidate_tag` are Lua scripts, so each is atomic and one
//! round trip. An overwrite unlinks the key from tags its new value does not carry; an entry
//! that simply expires stays listed in its tag sets (harmless: invalidation skips it) until the
//! set itself expires, one second after the longest-lived entry added to it.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::model::ComponentHealth;
use bqai_core::ports::Cache;
use bqai_core::{Error, Result};
use deadpool_redis::redis::{self, Script};

use crate::client::{Cause, RedisClient, ttl_millis};
use crate::options::RedisOptions;

static SET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/cache_set.lua")));
static INVALIDATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cache_invalidate.lua")));

const FORMAT_RAW: u8 = 0;
const FORMAT_ZSTD: u8 = 1;

/// zstd's default level: most of the gain of higher levels on MessagePack result sets, at a
/// few hundred MB/s.
const ZSTD_LEVEL: i32 = 3;

/// Values at least this large are (de)compressed on the blocking pool: a few milliseconds of
/// CPU would otherwise stall every task on the runtime worker.
const BLOCKING_THRESHOLD: usize = 128 * 1024;

/// How long tag bookkeeping outlives its entry, so a tag set never expires while an entry
/// linked to it is still readable.
const TAG_GRACE: Duration = Duration::from_secs(1);

/// The `Cache` port on Redis.
///
/// Hit and miss counters are local to this instance (each replica counts its own `get`s);
/// they are not stored in Redis.
///
/// Tag invalidation runs as one Lua script over the tag's members, which blocks Redis for its
/// duration (about a microsecond per member); it uses keys it cannot declare up front, so it
/// needs a standalone Redis (or a primary with replicas), not Redis Cluster.
pub struct RedisCache {
    client: RedisClient,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("client", &self.client)
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisCache {
    /// A cache on its own connection pool; [`Error::InvalidRequest`] for a malformed URL.
    /// Does not connect.
    pub fn new(options: RedisOptions) -> Result<Self> {
        Ok(Self::from_client(RedisClient::new(options)?))
    }

    /// A cache sharing `client`'s pool and circuit breaker.
    pub fn from_client(client: RedisClient) -> Self {
        Self {
            client,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The client underneath.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// `(hits, misses)` of this instance's `get`s.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}{key}", self.client.namespace())
    }

    fn tag_list_prefix(&self) -> String {
        format!("{}bqai:v1:entry-tags:", self.client.namespace())
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}bqai:v1:tag:{tag}", self.client.namespace())
    }
}

#[async_trait]
impl Cache for RedisCache {
    #[tracing::instrument(name = "redis GET", skip_all, fields(db.system = "redis", db.operation = "GET", otel.kind = "client"))]
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let entry_key = self.entry_key(key);
        let stored: Option<Vec<u8>> = self
            .client
            .run(|mut conn| async move {
                redis::cmd("GET")
                    .arg(&entry_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let value = match stored {
            Some(stored) => decode(stored).await?,
            None => None,
        };
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(value)
    }

    #[tracing::instrument(name = "redis SET", skip_all, fields(db.system = "redis", db.operation = "SET", otel.kind = "client"))]
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration, tags: &[String]) -> Result<()> {
        let encoded = encode(value, self.client.options().compress_threshold).await?;
        let mut invocation = SET.prepare_invoke();
        invocation
            .key(self.entry_key(key))
            .key(format!("{}{key}", self.tag_list_prefix()));
        for tag in tags {
            invocation.key(self.tag_key(tag));
        }
        invocation
            .arg(key)
            .arg(encoded)
            .arg(ttl_millis(ttl))
            .arg(ttl_millis(TAG_GRACE));
        self.client
            .run(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await?;
        Ok(())
    }

    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut invocation = INVALIDATE.prepare_invoke();
        invocation
            .key(self.tag_key(tag))
            .arg(self.client.namespace())
            .arg(self.tag_list_prefix());
        self.client
            .run(|mut conn| async move { invocation.invoke_async::<u64>(&mut conn).await })
            .await
    }

    async fn health(&self) -> ComponentHealth {
        match self.client.ping().await {
            Ok(()) => {
                let (hits, misses) = self.stats();
                let mut health = ComponentHealth::ok("redis");
                health.detail = Some(format!("hits={hits}, misses={misses}"));
                health
            }
            Err(_) => ComponentHealth::down("redis", "unreachable"),
        }
    }
}

/// `[format byte][payload]`: compressed when above `threshold` and smaller for it.
async fn encode(value: Vec<u8>, threshold: usize) -> Result<Vec<u8>> {
    if value.len() <= threshold {
        return Ok(framed(FORMAT_RAW, &value));
    }
    off_runtime_if_large(value.len(), move || {
        let compressed = zstd::bulk::compress(&value, ZSTD_LEVEL)
            .map_err(|e| Error::internal("compressing a cache value", e))?;
        Ok(if compressed.len() < value.len() {
            framed(FORMAT_ZSTD, &compressed)
        } else {
            framed(FORMAT_RAW, &value)
        })
    })
    .await
}

fn framed(format: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.push(format);
    out.extend_from_slice(payload);
    out
}

/// The value of a stored entry; `None` (a miss) for an entry this version cannot read (an
/// unknown format from a newer bqai, a damaged frame), which the next `set` overwrites.
async fn decode(mut stored: Vec<u8>) -> Result<Option<Vec<u8>>> {
    match stored.first().copied() {
        Some(FORMAT_RAW) => {
            stored.remove(0);
            Ok(Some(stored))
        }
        Some(FORMAT_ZSTD) => {
            off_runtime_if_large(stored.len(), move || {
                Ok(zstd::stream::decode_all(&stored[1..])
                    .inspect_err(|e| tracing::warn!(error = %e, "unreadable zstd cache entry; treated as a miss"))
                    .ok())
            })
            .await
        }
        other => {
            tracing::warn!(format = ?other, "cache entry in an unknown format; treated as a miss");
            Ok(None)
        }
    }
}

async fn off_runtime_if_large<T, F>(len: usize, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    if len < BLOCKING_THRESHOLD {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal("cache value codec", Cause::new(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_values_stay_raw_and_large_ones_shrink() {
        let small = encode(b"abc".to_vec(), 4).await.unwrap();
        assert_eq!(small, b"\0abc");
        let large = vec![7u8; 300_000];
        let encoded = encode(large.clone(), 4096).await.unwrap();
        assert_eq!(encoded[0], FORMAT_ZSTD);
        assert!(encoded.len() < 1000, "{}", encoded.len());
        assert_eq!(decode(encoded).await.unwrap(), Some(large));
    }

    #[tokio::test]
    async fn incompressible_values_are_stored_raw() {
        // A xorshift stream: no redundancy for zstd to find.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let encoded = encode(noise.clone(), 100).await.unwrap();
        assert_eq!(encoded[0], FORMAT_RAW);
        assert_eq!(decode(encoded).await.unwrap(), Some(noise));
    }

    #[tokio::test]
    async fn unreadable_entries_are_misses() {
        assert_eq!(decode(vec![9, 1, 2]).await.unwrap(), None);
        assert_eq!(decode(vec![FORMAT_ZSTD, 1, 2, 3]).await.unwrap(), None);
        assert_eq!(decode(Vec::new()).await.unwrap(), None);
    }
}
