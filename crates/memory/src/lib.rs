//! bqai-memory: in-process adapters for a single node — a byte-bounded [`MemoryCache`] (moka)
//! and a keyed [`MemoryRateLimiter`] (governor).
//!
//! They are the embedded defaults: nothing to run, nothing shared between replicas. Several
//! replicas behind a load balancer need the Redis adapters instead, which pass the same
//! contract suites.

mod cache;
mod rate_limiter;

pub use cache::{CacheStats, MemoryCache};
pub use rate_limiter::MemoryRateLimiter;
