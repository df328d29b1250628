//! Helpers shared by the integration tests: options for the Redis at 127.0.0.1:6379 in a
//! namespace of their own, raw access for inspecting what the adapters wrote, and cleanup.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bqai_redis::RedisOptions;
use deadpool_redis::redis::{self, AsyncCommands, aio::MultiplexedConnection};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Options for the local Redis in a fresh namespace, so parallel tests and runs never see each
/// other's keys.
pub fn options() -> RedisOptions {
    RedisOptions {
        namespace: format!("{}:", bqai_testkit::unique_prefix("redis")),
        ..RedisOptions::with_url(REDIS_URL)
    }
}

/// A direct connection, bypassing the adapters.
pub async fn raw() -> MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every key of `namespace`.
pub async fn cleanup(namespace: &str) {
    assert!(!namespace.is_empty(), "refusing to delete every key");
    let mut conn = raw().await;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{namespace}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = conn.del(keys).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

/// Every key of `namespace`.
pub async fn keys(namespace: &str) -> Vec<String> {
    let mut keys: Vec<String> = raw().await.keys(format!("{namespace}*")).await.unwrap();
    keys.sort();
    keys
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Options pointing at `port` on loopback, with a short breaker period so tests stay quick.
pub fn options_for_port(port: u16, retry_after_failure: Duration) -> RedisOptions {
    RedisOptions {
        url: format!("redis://127.0.0.1:{port}"),
        retry_after_failure,
        ..options()
    }
}
