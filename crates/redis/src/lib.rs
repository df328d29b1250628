//! bqai-redis: Redis adapters of two core ports, for deployments with several bqai replicas
//! that must share one result cache and one set of rate limits.
//!
//! - [`RedisCache`] implements [`bqai_core::ports::Cache`] (values zstd-compressed above a
//!   threshold, tag invalidation by Lua script);
//! - [`RedisRateLimiter`] implements [`bqai_core::ports::RateLimiter`] (GCRA in one Lua script
//!   on Redis' clock);
//! - [`RedisClient`] is what both stand on: a deadpool connection pool with a deadline on
//!   every call and a circuit breaker, so a Redis outage costs callers an immediate
//!   [`bqai_core::Error::Unavailable`] rather than a timeout per request. Build one client and
//!   pass it to both adapters (`from_client`) to share the pool and the breaker.
//!
//! Nothing connects at construction: bqai starts while Redis is down and recovers when it
//! comes back. Errors and `Debug` output never show the password from the URL.
//!
//! Deployment notes: a standalone Redis (or a primary with replicas) of version 5 or later;
//! not Redis Cluster (the tag scripts touch keys they cannot declare up front). `rediss://`
//! uses rustls with the ring provider and the system's root certificates; the `#insecure` URL
//! fragment (no certificate check) is not supported. No persistence is needed: losing Redis
//! loses cached results and resets rate limits, nothing else.

mod breaker;
mod cache;
mod client;
mod options;
mod rate_limiter;

pub use cache::RedisCache;
pub use client::RedisClient;
pub use options::RedisOptions;
pub use rate_limiter::RedisRateLimiter;
