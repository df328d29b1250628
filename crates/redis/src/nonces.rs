//! [`RedisNonceStore`]: one-time tokens shared by every replica (`SET NX PX`).

use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::NonceStore;
use deadpool_redis::redis;

use crate::client::RedisClient;

/// The [`NonceStore`] port on Redis: a claim is one `SET <ns>bqai:v1:nonce:<nonce> 1 NX PX
/// <ttl>`, atomic across replicas; the key expires with the ticket.
#[derive(Debug)]
pub struct RedisNonceStore {
    client: RedisClient,
}

impl RedisNonceStore {
    /// A store sharing `client`'s pool and circuit breaker.
    pub fn from_client(client: RedisClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl NonceStore for RedisNonceStore {
    async fn claim(&self, nonce: &str, ttl: Duration) -> Result<bool> {
        let key = format!("{}bqai:v1:nonce:{nonce}", self.client.namespace());
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .client
            .run(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}
