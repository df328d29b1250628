//! [`RedisRateLimiter`]: the `RateLimiter` port on Redis, so every replica draws from the same
//! bucket per key.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::{RateDecision, RateLimiter};
use deadpool_redis::redis::Script;

use crate::client::RedisClient;
use crate::options::RedisOptions;

static CHECK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/rate_limit.lua")));

/// The period every limit is expressed in.
const PERIOD: Duration = Duration::from_secs(60);

/// The `RateLimiter` port on Redis: GCRA in one Lua script, so a check is one atomic round
/// trip (EVALSHA; the script is loaded on the first NOSCRIPT answer, e.g. after a Redis
/// restart).
///
/// Same semantics as `bqai_memory::MemoryRateLimiter`: a key's bucket holds
/// `limit_per_minute` units and refills at that rate; a `cost` of 0 is charged as 1; a `cost`
/// above the limit, or a limit of 0, is denied with `remaining` 0 and a `retry_after` of one
/// minute, without asking Redis. Time is Redis' own clock (`TIME` inside the script), so
/// replicas with skewed clocks agree. State lives at `<ns>bqai:v1:rl:<key>` and expires once
/// the bucket is full again, so idle keys cost nothing.
pub struct RedisRateLimiter {
    client: RedisClient,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("client", &self.client)
            .finish()
    }
}

impl RedisRateLimiter {
    /// A limiter on its own connection pool; [`bqai_core::Error::InvalidRequest`] for a
    /// malformed URL. Does not connect.
    pub fn new(options: RedisOptions) -> Result<Self> {
        Ok(Self::from_client(RedisClient::new(options)?))
    }

    /// A limiter sharing `client`'s pool and circuit breaker.
    pub fn from_client(client: RedisClient) -> Self {
        Self { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    #[tracing::instrument(name = "redis EVALSHA", skip_all, fields(db.system = "redis", db.operation = "EVALSHA", otel.kind = "client"))]
    async fn check(&self, key: &str, cost: u32, limit_per_minute: u32) -> Result<RateDecision> {
        let limit = limit_per_minute;
        let cost = cost.max(1);
        if limit == 0 || cost > limit {
            return Ok(never_fits(limit));
        }
        let mut invocation = CHECK.prepare_invoke();
        invocation
            .key(format!("{}bqai:v1:rl:{key}", self.client.namespace()))
            .arg(cost)
            .arg(limit);
        let (allowed, remaining, wait_micros): (i64, i64, i64) = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let remaining = u32::try_from(remaining.max(0))
            .unwrap_or(u32::MAX)
            .min(limit);
        Ok(if allowed == 1 {
            RateDecision {
                allowed: true,
                limit,
                remaining,
                retry_after: None,
            }
        } else {
            let wait = Duration::from_micros(u64::try_from(wait_micros).unwrap_or(0));
            RateDecision {
                allowed: false,
                limit,
                remaining,
                // A zero wait would tell clients to retry in a tight loop.
                retry_after: Some(wait.max(Duration::from_millis(1))),
            }
        })
    }
}

/// The answer for a request that can never be served at this limit.
fn never_fits(limit: u32) -> RateDecision {
    RateDecision {
        allowed: false,
        limit,
        remaining: 0,
        retry_after: Some(PERIOD),
    }
}
