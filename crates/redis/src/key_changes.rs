//! [`RedisKeyChanges`]: API key changes announced to every replica over Redis pub/sub, so a
//! key revoked on one replica stops working on all of them at once rather than when their
//! cached records expire (`auth.key_cache_ttl_secs`).
//!
//! Publishing is one `PUBLISH <ns>bqai:v1:key-changes <key id>` through the shared pool.
//! Listening holds one dedicated connection per replica (a subscribed connection can do
//! nothing else); when it drops, the listener reconnects with backoff and reports
//! [`KeyChange::All`] once subscribed again, because messages sent meanwhile are lost (pub/sub
//! keeps nothing). A key id is public (it is the `bqai_<id>_…` part of a key), never a secret.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::KeyChangeNotifier;
use deadpool_redis::redis;
use futures::StreamExt;

use crate::client::RedisClient;

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// This key changed.
    Key(String),
    /// (Re)subscribed: changes may have been missed, anything may have changed.
    All,
}

/// Publishes key changes, and listens for other replicas' ([`RedisKeyChanges::listen`]).
#[derive(Debug, Clone)]
pub struct RedisKeyChanges {
    client: RedisClient,
    channel: String,
}

impl RedisKeyChanges {
    /// Changes announced on `client`'s Redis, in its namespace.
    pub fn from_client(client: RedisClient) -> Self {
        let channel = format!("{}bqai:v1:key-changes", client.namespace());
        Self { client, channel }
    }

    /// Calls `on_change` for every change another replica (or this one) announces, until the
    /// task is aborted; see the module docs for reconnection.
    pub fn listen<F>(&self, on_change: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn(KeyChange) + Send + Sync + 'static,
    {
        let url = self.client.options().url.clone();
        let connect_timeout = self.client.options().connect_timeout;
        let channel = self.channel.clone();
        let on_change = Arc::new(on_change);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match subscribe(&url, &channel, connect_timeout).await {
                    Ok(pubsub) => {
                        backoff = Duration::from_millis(100);
                        on_change(KeyChange::All);
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            match message.get_payload::<String>() {
                                Ok(id) => on_change(KeyChange::Key(id)),
                                Err(_) => on_change(KeyChange::All),
                            }
                        }
                        tracing::warn!("lost the Redis key-change subscription; resubscribing");
                    }
                    Err(e) => {
                        tracing::warn!(
                            error = e.category(),
                            "cannot subscribe to key changes on Redis; cached keys expire \
                             within auth.key_cache_ttl_secs meanwhile"
                        );
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }
}

/// A fresh connection subscribed to `channel`.
async fn subscribe(
    url: &str,
    channel: &str,
    connect_timeout: Duration,
) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(connect_timeout, connect)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "timed out subscribing",
            )))
        })
}

#[async_trait]
impl KeyChangeNotifier for RedisKeyChanges {
    async fn key_changed(&self, key_id: &str) -> Result<()> {
        let channel = self.channel.clone();
        let id = key_id.to_owned();
        self.client
            .run(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&id)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(drop)
            })
            .await
    }
}
