//! RedisRateLimiter beyond the contract: atomicity under concurrency across replicas, state
//! expiry, the edge cases it shares with the in-process limiter.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bqai_core::ports::{RateDecision, RateLimiter};
use bqai_redis::RedisRateLimiter;
use deadpool_redis::redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_checks_from_two_replicas_allow_exactly_the_limit() {
    let options = common::options();
    let ns = options.namespace.clone();
    let replicas = [
        Arc::new(RedisRateLimiter::new(options.clone()).unwrap()),
        Arc::new(RedisRateLimiter::new(options).unwrap()),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let limiter = Arc::clone(&replicas[i % 2]);
        tasks.spawn(async move { limiter.check("api-key-1", 1, 20).await.unwrap() });
    }
    let decisions = tasks.join_all().await;
    let (allowed, denied): (Vec<&RateDecision>, Vec<&RateDecision>) =
        decisions.iter().partition(|d| d.allowed);
    assert_eq!(allowed.len(), 20, "{decisions:?}");
    // Every allowed request saw a different bucket level: 19, 18, …, 0.
    let mut remaining: Vec<u32> = allowed.iter().map(|d| d.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<_>>());
    for d in &denied {
        assert_eq!(d.limit, 20);
        assert_eq!(d.remaining, 0);
        let wait = d.retry_after.unwrap();
        // One unit refills every 3 s at 20/min.
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(3),
            "{d:?}"
        );
    }
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_expires_once_the_bucket_is_full_again() {
    let options = common::options();
    let ns = options.namespace.clone();
    let limiter = RedisRateLimiter::new(options).unwrap();
    let key = format!("{ns}bqai:v1:rl:k");
    let mut raw = common::raw().await;

    // 6000/min refills a unit every 10 ms.
    let d = limiter.check("k", 1, 6000).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 5999);
    let ttl: i64 = raw.pttl(&key).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 10,
        "state of a key one unit down lives 10 ms, got {ttl}"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!raw.exists::<_, bool>(&key).await.unwrap());

    // At 5/min, the state lives as long as the bucket takes to refill.
    limiter.check("slow", 2, 5).await.unwrap();
    let ttl: i64 = raw.pttl(format!("{ns}bqai:v1:rl:slow")).await.unwrap();
    assert!(ttl > 23_000 && ttl <= 24_000, "{ttl}");
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edge_cases_match_the_in_process_limiter() {
    let options = common::options();
    let ns = options.namespace.clone();
    let limiter = RedisRateLimiter::new(options).unwrap();

    // A cost above the limit never fits and consumes nothing.
    let d = limiter.check("k", 10, 5).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(
        (d.remaining, d.retry_after),
        (0, Some(Duration::from_secs(60)))
    );
    assert!(limiter.check("k", 5, 5).await.unwrap().allowed);

    // A limit of 0 denies; a cost of 0 counts as 1.
    assert!(!limiter.check("z", 1, 0).await.unwrap().allowed);
    let d = limiter.check("z", 0, 2).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 1);

    // A denial reports what is left and when the request fits.
    assert!(limiter.check("d", 3, 5).await.unwrap().allowed);
    let d = limiter.check("d", 3, 5).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 2);
    let wait = d.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(11) && wait <= Duration::from_secs(12),
        "{wait:?}"
    );

    // A limit that does not divide a minute evenly: burst, then one unit per 60/7 s.
    for i in (0..7).rev() {
        let d = limiter.check("seven", 1, 7).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, i);
    }
    let d = limiter.check("seven", 1, 7).await.unwrap();
    assert!(!d.allowed);
    let wait = d.retry_after.unwrap();
    assert!(
        wait > Duration::from_millis(8_500) && wait <= Duration::from_millis(8_572),
        "{wait:?}"
    );

    // Very high limits (below a microsecond per unit) still allow and count down.
    let d = limiter.check("fast", 1, 1_000_000_000).await.unwrap();
    assert!(d.allowed);
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn units_refill_over_time() {
    let options = common::options();
    let ns = options.namespace.clone();
    let limiter = RedisRateLimiter::new(options).unwrap();
    // 600/min: a unit every 100 ms, burst 600.
    let d = limiter.check("k", 600, 600).await.unwrap();
    assert!(d.allowed);
    assert_eq!(d.remaining, 0);
    let d = limiter.check("k", 1, 600).await.unwrap();
    assert!(!d.allowed);
    let wait = d.retry_after.unwrap();
    assert!(wait <= Duration::from_millis(100), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(5)).await;
    assert!(limiter.check("k", 1, 600).await.unwrap().allowed);
    common::cleanup(&ns).await;
}
