//! [`MemoryNonceStore`]: one-time tokens remembered in process (moka), each until its TTL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::NonceStore;
use moka::Expiry;
use moka::future::Cache;

/// The in-process [`NonceStore`]: bounded, each nonce kept for the TTL it was claimed with.
pub struct MemoryNonceStore {
    claimed: Cache<String, Duration>,
}

/// Each entry lives the TTL stored as its value.
struct ClaimedFor;

impl Expiry<String, Duration> for ClaimedFor {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl MemoryNonceStore {
    /// Room for `capacity` live nonces; beyond it the least recently claimed are forgotten
    /// (a ticket is also refused once its own expiry passes, so forgetting is safe only for
    /// tickets that outlive the capacity — size it above tickets issued per TTL).
    pub fn new(capacity: u64) -> Self {
        Self {
            claimed: Cache::builder()
                .max_capacity(capacity)
                .expire_after(ClaimedFor)
                .build(),
        }
    }
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

#[async_trait]
impl NonceStore for MemoryNonceStore {
    async fn claim(&self, nonce: &str, ttl: Duration) -> Result<bool> {
        let entry = self
            .claimed
            .entry(nonce.to_owned())
            .or_insert(ttl.max(Duration::from_millis(1)))
            .await;
        Ok(entry.is_fresh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nonce_is_claimed_once_until_it_expires() {
        let store = MemoryNonceStore::default();
        bqai_testkit::nonces::nonce_store_contract(&store).await;
    }
}
