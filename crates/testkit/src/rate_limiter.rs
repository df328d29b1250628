//! Contract suite for the [`RateLimiter`] port: every rate limiter adapter (in-memory, Redis)
//! must pass it.
//!
//! Keys carry a per-run prefix, so several runs can share one Redis concurrently. The checks
//! assume the suite runs in well under the refill interval of its limits (12 s for 5/min).

use std::sync::Arc;
use std::time::Duration;

use crate::unique_prefix;
use bqai_core::ports::{RateDecision, RateLimiter};

/// Runs every rate limiter check against `limiter`; panics with a description of the first
/// violation.
pub async fn rate_limiter_contract(limiter: Arc<dyn RateLimiter>) {
    let p = unique_prefix("rate");
    let limiter = limiter.as_ref();
    burst_then_denied(limiter, &p).await;
    keys_are_independent(limiter, &p).await;
    limits_differ_per_key(limiter, &p).await;
    cost_consumes_several_units(limiter, &p).await;
}

async fn check(limiter: &dyn RateLimiter, key: &str, cost: u32, limit: u32) -> RateDecision {
    limiter
        .check(key, cost, limit)
        .await
        .unwrap_or_else(|e| panic!("check({key:?}, cost {cost}, limit {limit}) failed: {e}"))
}

fn assert_allowed(d: &RateDecision, limit: u32, remaining: u32, what: &str) {
    assert!(d.allowed, "{what}: must be allowed, got {d:?}");
    assert_eq!(d.limit, limit, "{what}: reported limit, got {d:?}");
    assert_eq!(d.remaining, remaining, "{what}: remaining, got {d:?}");
    assert_eq!(
        d.retry_after, None,
        "{what}: an allowed request has no retry_after, got {d:?}"
    );
}

fn assert_denied(d: &RateDecision, limit: u32, what: &str) {
    assert!(!d.allowed, "{what}: must be denied, got {d:?}");
    assert_eq!(d.limit, limit, "{what}: reported limit, got {d:?}");
    let wait = d
        .retry_after
        .unwrap_or_else(|| panic!("{what}: a denial must say when to retry, got {d:?}"));
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(60),
        "{what}: retry_after must be in (0, 60 s], got {d:?}"
    );
}

async fn burst_then_denied(limiter: &dyn RateLimiter, p: &str) {
    let key = format!("{p}:burst");
    for i in 1..=5 {
        let d = check(limiter, &key, 1, 5).await;
        assert_allowed(&d, 5, 5 - i, &format!("request {i} of 5 at 5/min"));
    }
    let d = check(limiter, &key, 1, 5).await;
    assert_denied(&d, 5, "request 6 at 5/min");
    assert_eq!(
        d.remaining, 0,
        "a denied request at an empty bucket has 0 remaining: {d:?}"
    );
    // One unit refills every 12 s at 5/min; the wait must reflect that, not a full minute.
    let wait = d.retry_after.unwrap_or_default();
    assert!(
        wait <= Duration::from_secs(12),
        "at 5/min the next unit is at most 12 s away, got {wait:?}"
    );
    let d = check(limiter, &key, 1, 5).await;
    assert_denied(
        &d,
        5,
        "request 7 at 5/min (denials must not refill the bucket)",
    );
}

async fn keys_are_independent(limiter: &dyn RateLimiter, p: &str) {
    let (a, b) = (format!("{p}:independent:a"), format!("{p}:independent:b"));
    for _ in 0..3 {
        check(limiter, &a, 1, 3).await;
    }
    assert_denied(
        &check(limiter, &a, 1, 3).await,
        3,
        "key a after its 3 requests",
    );
    let d = check(limiter, &b, 1, 3).await;
    assert_allowed(&d, 3, 2, "key b is untouched by key a's requests");
}

async fn limits_differ_per_key(limiter: &dyn RateLimiter, p: &str) {
    let (small, large) = (format!("{p}:limit:2"), format!("{p}:limit:10"));
    for i in 1..=2 {
        let d = check(limiter, &small, 1, 2).await;
        assert_allowed(&d, 2, 2 - i, &format!("request {i} of 2 at 2/min"));
    }
    assert_denied(&check(limiter, &small, 1, 2).await, 2, "request 3 at 2/min");
    for i in 1..=10 {
        let d = check(limiter, &large, 1, 10).await;
        assert_allowed(&d, 10, 10 - i, &format!("request {i} of 10 at 10/min"));
    }
    assert_denied(
        &check(limiter, &large, 1, 10).await,
        10,
        "request 11 at 10/min",
    );
}

async fn cost_consumes_several_units(limiter: &dyn RateLimiter, p: &str) {
    let key = format!("{p}:cost");
    assert_allowed(&check(limiter, &key, 3, 5).await, 5, 2, "cost 3 of 5");
    let d = check(limiter, &key, 3, 5).await;
    assert_denied(&d, 5, "cost 3 with 2 left");
    assert_eq!(
        d.remaining, 2,
        "a denied request consumes nothing; 2 units are left: {d:?}"
    );
    assert_allowed(
        &check(limiter, &key, 2, 5).await,
        5,
        0,
        "cost 2 with 2 left",
    );
    let over = format!("{p}:cost-over-limit");
    let d = check(limiter, &over, 6, 5).await;
    assert_denied(&d, 5, "cost 6 at a limit of 5 never fits");
    assert_allowed(
        &check(limiter, &over, 5, 5).await,
        5,
        0,
        "a request that never fit must not have consumed anything",
    );
}
