//! RedisNonceStore: the contract on a real Redis, shared by two replicas, and a dead Redis.

mod common;

use std::time::Duration;

use bqai_core::ports::NonceStore;
use bqai_redis::{RedisClient, RedisNonceStore};

#[tokio::test(flavor = "multi_thread")]
async fn passes_the_nonce_contract() {
    let options = common::options();
    let store = RedisNonceStore::from_client(RedisClient::new(options.clone()).unwrap());
    bqai_testkit::nonces::nonce_store_contract(&store).await;
    common::cleanup(&options.namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ticket_used_on_one_replica_is_spent_on_the_other() {
    let options = common::options();
    let a = RedisNonceStore::from_client(RedisClient::new(options.clone()).unwrap());
    let b = RedisNonceStore::from_client(RedisClient::new(options.clone()).unwrap());
    let ttl = Duration::from_secs(60);
    assert!(a.claim("n1", ttl).await.unwrap());
    assert!(!b.claim("n1", ttl).await.unwrap());
    let keys = common::keys(&options.namespace).await;
    assert_eq!(keys, [format!("{}bqai:v1:nonce:n1", options.namespace)]);
    common::cleanup(&options.namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_redis_is_unavailable_at_once() {
    let options = common::options_for_port(common::closed_port(), Duration::from_secs(5));
    let store = RedisNonceStore::from_client(RedisClient::new(options).unwrap());
    let started = std::time::Instant::now();
    let err = store.claim("n", Duration::from_secs(1)).await.unwrap_err();
    assert!(
        matches!(err, bqai_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
