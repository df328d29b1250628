//! RedisConversationStore: the port contract against the real Redis, the key layout and TTLs
//! it leaves there, sharing between replicas, and failing fast when Redis is down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bqai_core::Error;
use bqai_core::conversation::Conversation;
use bqai_core::ports::ConversationStore;
use bqai_redis::{RedisClient, RedisConversationStore};
use bqai_testkit::conversation::turn;
use deadpool_redis::redis;

const LONG: Duration = Duration::from_secs(300);

async fn pttl(key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut common::raw().await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_conversation_store_passes_the_conversation_contract() {
    let options = common::options();
    let namespace = options.namespace.clone();
    let ttl = Duration::from_secs(1);
    let store = RedisConversationStore::new(options, ttl).unwrap();
    bqai_testkit::conversation::conversation_contract(Arc::new(store), ttl).await;
    common::cleanup(&namespace).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_carry_the_namespace_and_a_ttl_after_every_write() {
    let options = common::options();
    let ns = options.namespace.clone();
    let store = RedisConversationStore::new(options, LONG).unwrap();
    let c = Conversation::new(Some("key:alice".into()), None);
    let hash = format!("{ns}bqai:v1:conv:{{{}}}", c.id);
    let turns = format!("{hash}:turns");

    store.create_conversation(&c).await.unwrap();
    assert_eq!(common::keys(&ns).await, [hash.as_str()]);
    let left = pttl(&hash).await;
    assert!(left > 0 && left <= 300_000, "PTTL after create: {left}");

    // The first append creates the turns list: it must get the deadline too.
    let after = store
        .append_turn(&c.id, &turn(1), Some("shop"), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.dataset.as_deref(), Some("shop"));
    assert_eq!(common::keys(&ns).await, [hash.as_str(), turns.as_str()]);
    for key in [&hash, &turns] {
        let left = pttl(key).await;
        assert!(
            left > 0 && left <= 300_000,
            "PTTL of {key} after append: {left}"
        );
    }

    // Nothing outside the namespace: another namespace sees nothing.
    let other = RedisConversationStore::new(common::options(), LONG).unwrap();
    assert!(other.get_conversation(&c.id).await.unwrap().is_none());

    assert!(store.delete_conversation(&c.id).await.unwrap());
    assert!(
        common::keys(&ns).await.is_empty(),
        "delete removes both keys"
    );
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_round_trips_exactly_including_its_turns() {
    let options = common::options();
    let ns = options.namespace.clone();
    let store = RedisConversationStore::new(options, LONG).unwrap();
    let mut c = Conversation::new(None, Some("shop".into()));
    // Created with turns already in it, and values JSON tools like to mangle.
    let mut odd = turn(2);
    odd.generator_state =
        Some(serde_json::json!({"empty": [], "obj": {}, "big": 9_007_199_254_740_993_u64}));
    odd.sql = None;
    odd.result = None;
    c.turns = vec![turn(1), odd];
    store.create_conversation(&c).await.unwrap();
    let got = store.get_conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(got, c, "timestamps and turns round-trip exactly");

    // max_turns 0 keeps the newest one.
    let after = store
        .append_turn(&c.id, &turn(3), None, 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.turns.len(), 1);
    assert_eq!(after.turns[0].request_id, "req-3");
    assert!(after.updated_at >= c.updated_at);
    assert_eq!(after.created_at, c.created_at);
    assert_eq!(store.get_conversation(&c.id).await.unwrap(), Some(after));
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_sharing_one_client_see_the_same_conversation() {
    let options = common::options();
    let ns = options.namespace.clone();
    let client = RedisClient::new(options.clone()).unwrap();
    let a = RedisConversationStore::from_client(client.clone(), LONG);
    let b = RedisConversationStore::from_client(client, LONG);
    // And a replica with its own pool.
    let c = RedisConversationStore::new(options, LONG).unwrap();

    let conversation = Conversation::new(Some("p".into()), None);
    a.create_conversation(&conversation).await.unwrap();
    assert!(matches!(
        b.create_conversation(&conversation).await,
        Err(Error::Conflict(_))
    ));
    b.append_turn(&conversation.id, &turn(1), Some("shop"), 10)
        .await
        .unwrap()
        .unwrap();
    c.append_turn(&conversation.id, &turn(2), Some("other"), 10)
        .await
        .unwrap()
        .unwrap();
    let seen = a.get_conversation(&conversation.id).await.unwrap().unwrap();
    assert_eq!(seen.dataset.as_deref(), Some("shop"));
    let ids: Vec<&str> = seen.turns.iter().map(|t| t.request_id.as_str()).collect();
    assert_eq!(ids, ["req-1", "req-2"]);
    assert_eq!(
        c.get_conversation(&conversation.id).await.unwrap(),
        Some(seen)
    );
    assert!(c.delete_conversation(&conversation.id).await.unwrap());
    assert!(
        a.get_conversation(&conversation.id)
            .await
            .unwrap()
            .is_none()
    );
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_turns_are_skipped_not_fatal() {
    let options = common::options();
    let ns = options.namespace.clone();
    let store = RedisConversationStore::new(options, LONG).unwrap();
    let c = Conversation::new(None, None);
    store.create_conversation(&c).await.unwrap();
    store
        .append_turn(&c.id, &turn(1), None, 10)
        .await
        .unwrap()
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(format!("{ns}bqai:v1:conv:{{{}}}:turns", c.id))
        .arg("{\"written_by\": \"a future version\"}")
        .query_async(&mut common::raw().await)
        .await
        .unwrap();
    let got = store.get_conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(got.turns.len(), 1);
    assert_eq!(got.turns[0].request_id, "req-1");
    common::cleanup(&ns).await;
}

fn assert_unavailable<T: std::fmt::Debug>(result: bqai_core::Result<T>) {
    match result {
        Err(Error::Unavailable { what, .. }) if what == "Redis" => {}
        other => panic!("expected Unavailable(Redis), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_method_is_unavailable_quickly_when_redis_is_down() {
    // A short breaker period, so every method (not only the first) tries to connect.
    let options = common::options_for_port(common::closed_port(), Duration::from_millis(1));
    let store = RedisConversationStore::new(options, LONG).unwrap();
    let c = Conversation::new(Some("p".into()), None);
    let started = Instant::now();
    assert_unavailable(store.create_conversation(&c).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_unavailable(store.get_conversation(&c.id).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_unavailable(store.append_turn(&c.id, &turn(1), Some("shop"), 10).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_unavailable(store.delete_conversation(&c.id).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "four failures took {took:?}");
    // `Debug` is fine to log.
    let debug = format!("{store:?}");
    assert!(debug.contains("RedisConversationStore"), "{debug}");

    // A password in the URL never shows.
    let url = format!("redis://user:hunter2@127.0.0.1:{}", common::closed_port());
    let store =
        RedisConversationStore::new(bqai_redis::RedisOptions::with_url(&url), LONG).unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    let e = store.get_conversation(&c.id).await.unwrap_err();
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
}
