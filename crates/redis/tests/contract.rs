//! The port contract suites from bqai-testkit, run against the real Redis.

mod common;

use std::sync::Arc;

use bqai_redis::{RedisCache, RedisRateLimiter};

#[tokio::test(flavor = "multi_thread")]
async fn redis_cache_passes_the_cache_contract() {
    let options = common::options();
    let namespace = options.namespace.clone();
    bqai_testkit::cache::cache_contract(Arc::new(RedisCache::new(options).unwrap())).await;
    common::cleanup(&namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_rate_limiter_passes_the_rate_limiter_contract() {
    let options = common::options();
    let namespace = options.namespace.clone();
    bqai_testkit::rate_limiter::rate_limiter_contract(Arc::new(
        RedisRateLimiter::new(options).unwrap(),
    ))
    .await;
    common::cleanup(&namespace).await;
}
