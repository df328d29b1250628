//! The in-memory adapters against the port contract suites.

use std::sync::Arc;

use bqai_memory::{MemoryCache, MemoryRateLimiter};

#[tokio::test(flavor = "multi_thread")]
async fn memory_cache_passes_the_cache_contract() {
    bqai_testkit::cache::cache_contract(Arc::new(MemoryCache::new(64 * 1024 * 1024))).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_rate_limiter_passes_the_rate_limiter_contract() {
    bqai_testkit::rate_limiter::rate_limiter_contract(Arc::new(MemoryRateLimiter::new())).await;
}
