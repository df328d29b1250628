//! bqai-redis: Redis adapters of three core ports, for deployments with several bqai replicas
//! that must share one result cache, one set of rate limits and the conversations.
//!
//! - [`RedisCache`] implements [`bqai_core::ports::Cache`] (values zstd-compressed above a
//!   threshold, tag invalidation by Lua script);
//! - [`RedisRateLimiter`] implements [`bqai_core::ports::RateLimiter`] (GCRA in one Lua script
//!   on Redis' clock);
//! - [`RedisConversationStore`] implements [`bqai_core::ports::ConversationStore`] (a hash and
//!   a list of JSON turns per conversation, each operation one Lua script, with a TTL restarted
//!   by every write);
//! - [`RedisNonceStore`] implements [`bqai_core::ports::NonceStore`] (single-use WebSocket
//!   tickets across replicas, `SET NX PX`);
//! - [`RedisKeyChanges`] implements [`bqai_core::ports::KeyChangeNotifier`] (API key changes
//!   announced over pub/sub, so every replica's cache of verified keys drops a revoked key at
//!   once);
//! - [`RedisClient`] is what they all stand on: a deadpool connection pool with a deadline on
//!   every call and a circuit breaker, so a Redis outage costs callers an immediate
//!   [`bqai_core::Error::Unavailable`] rather than a timeout per request. Build one client and
//!   pass it to every adapter (`from_client`) to share the pool and the breaker.
//!
//! Nothing connects at construction: bqai starts while Redis is down and recovers when it
//! comes back. Errors and `Debug` output never show the password from the URL.
//!
//! Deployment notes: a standalone Redis (or a primary with replicas) of version 5 or later;
//! not Redis Cluster (the tag scripts touch keys they cannot declare up front). `rediss://`
//! uses rustls with the ring provider and the system's root certificates; the `#insecure` URL
//! fragment (no certificate check) is not supported. No persistence is needed: losing Redis
//! loses cached results, resets rate limits and forgets open conversations, nothing else.

mod breaker;
mod cache;
mod client;
mod conversations;
mod key_changes;
mod nonces;
mod options;
mod rate_limiter;

pub use cache::RedisCache;
pub use client::RedisClient;
pub use conversations::RedisConversationStore;
pub use key_changes::{KeyChange, RedisKeyChanges};
pub use nonces::RedisNonceStore;
pub use options::RedisOptions;
pub use rate_limiter::RedisRateLimiter;
