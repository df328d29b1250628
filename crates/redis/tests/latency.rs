//! Round-trip costs of the adapters on loopback, printed for the record (run with
//! `--nocapture`); the assertions only catch gross regressions such as an extra timeout wait.

mod common;

use std::time::{Duration, Instant};

use bqai_core::ports::{Cache, RateLimiter};
use bqai_redis::{RedisCache, RedisClient, RedisRateLimiter};
use deadpool_redis::redis::{self, AsyncCommands};

const N: u32 = 2000;

async fn per_call<F, Fut>(mut f: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    // Warm-up: pooled connection open, scripts loaded.
    for i in 0..20 {
        f(i).await;
    }
    let started = Instant::now();
    for i in 0..N {
        f(i).await;
    }
    started.elapsed() / N
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_on_loopback() {
    let options = common::options();
    let ns = options.namespace.clone();
    let client = RedisClient::new(options).unwrap();
    let cache = RedisCache::from_client(client.clone());
    let limiter = RedisRateLimiter::from_client(client);
    let tags = vec!["dataset:shop".to_owned()];
    let small = vec![1u8; 200];
    cache
        .set("hit", small.clone(), Duration::from_secs(60), &tags)
        .await
        .unwrap();

    let mut raw = common::raw().await;
    let raw_key = format!("{ns}hit");
    let raw_get = per_call(|_| {
        let mut raw = raw.clone();
        let key = raw_key.clone();
        async move {
            let _: Vec<u8> = raw.get(key).await.unwrap();
        }
    })
    .await;
    let get = per_call(|_| async {
        assert!(cache.get("hit").await.unwrap().is_some());
    })
    .await;
    let set = per_call(|i| {
        let (cache, small, tags) = (&cache, small.clone(), &tags);
        async move {
            cache
                .set(
                    &format!("k{}", i % 100),
                    small,
                    Duration::from_secs(60),
                    tags,
                )
                .await
                .unwrap();
        }
    })
    .await;
    let check = per_call(|_| async {
        limiter.check("k", 1, u32::MAX).await.unwrap();
    })
    .await;
    let large: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let started = Instant::now();
    cache
        .set("large", large.clone(), Duration::from_secs(60), &[])
        .await
        .unwrap();
    let set_large = started.elapsed();
    let started = Instant::now();
    cache.get("large").await.unwrap();
    let get_large = started.elapsed();
    let started = Instant::now();
    cache.invalidate_tag("dataset:shop").await.unwrap();
    let invalidate = started.elapsed();
    let _: () = redis::cmd("PING").query_async(&mut raw).await.unwrap();

    eprintln!(
        "per call over {N}: raw GET {raw_get:?}, cache.get {get:?}, cache.set (1 tag) {set:?}, \
         limiter.check {check:?}; 1 MiB set {set_large:?}, get {get_large:?}; \
         invalidate_tag (101 entries) {invalidate:?}"
    );
    for (what, took) in [("get", get), ("set", set), ("check", check)] {
        assert!(took < Duration::from_millis(20), "{what} took {took:?}");
    }
    common::cleanup(&ns).await;
}
