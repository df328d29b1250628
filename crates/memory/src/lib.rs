//! bqai-memory: in-process adapters for a single node — a byte-bounded [`MemoryCache`] (moka)
//! and a keyed [`MemoryRateLimiter`] (governor), [`MemoryConversationStore`] (conversations
//! with a TTL), [`MemoryNonceStore`] (single-use WebSocket tickets) — and two decorators: [`BufferedHistory`], the in-memory queue that keeps
//! history records while the history store is down, and [`BatchedAuditLog`], group commit for
//! the audit log (concurrent calls share one write; each still waits for its own event),
//! [`QueuedHistory`], history writes off the request path (one writer, batches, read-your-writes)
//! — and [`CachedKeyStore`], verified API keys kept for a few seconds (`auth.key_cache_ttl_secs`),
//! and [`QueuedWarehouse`], the query queue: bounded concurrency on the warehouse, shared
//! fairly among principals (`query.max_concurrent`).
//!
//! They are the embedded defaults: nothing to run, nothing shared between replicas. Several
//! replicas behind a load balancer need the Redis adapters instead, which pass the same
//! contract suites.

mod audit_batcher;
mod cache;
mod conversations;
mod history_buffer;
mod history_queue;
mod key_cache;
mod nonces;
mod query_queue;
mod rate_limiter;

pub use audit_batcher::BatchedAuditLog;
pub use cache::{CacheStats, MemoryCache};
pub use conversations::MemoryConversationStore;
pub use history_buffer::BufferedHistory;
pub use history_queue::{CaughtUpAnalytics, QueuedHistory};
pub use key_cache::CachedKeyStore;
pub use nonces::MemoryNonceStore;
pub use query_queue::{QueryQueue, QueueLimits, QueueStats, QueuedWarehouse, Slot};
pub use rate_limiter::MemoryRateLimiter;
