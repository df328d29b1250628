//! [`MemoryRateLimiter`]: the `RateLimiter` port on governor's keyed GCRA limiters, one limiter
//! per distinct limit value.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::{RateDecision, RateLimiter};
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

type KeyedLimiter = governor::RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The period every limit is expressed in.
const PERIOD: Duration = Duration::from_secs(60);

/// How many checks pass between two sweeps of idle keys.
const DEFAULT_SWEEP_EVERY: u64 = 1024;

/// An in-process keyed rate limiter: each key's bucket holds `limit_per_minute` units and
/// refills at that rate per minute.
///
/// Keys are grouped by their limit: one governor limiter per distinct limit value, created on
/// first use (a later issue gives every API key its own limit, so the set of values is the set
/// of configured limits, which is small).
///
/// Memory: governor keeps a state per key it has seen. Every `sweep_every` checks (1024 by
/// default) the limiter calls governor's `retain_recent`, which drops keys whose bucket has
/// refilled completely (a key idle for about a minute is indistinguishable from a new one),
/// and forgets limiters left with no key, so memory follows the keys active in the last
/// minute rather than every key ever seen.
///
/// Edge cases: a `cost` of 0 is charged as 1; a `cost` above the limit can never be served and
/// is denied with a `retry_after` of one full period and `remaining` 0; a limit of 0 denies
/// everything the same way.
pub struct MemoryRateLimiter {
    limiters: Mutex<HashMap<u32, Arc<KeyedLimiter>>>,
    checks: AtomicU64,
    sweep_every: u64,
}

impl std::fmt::Debug for MemoryRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRateLimiter")
            .field("tracked_keys", &self.tracked_keys())
            .field("sweep_every", &self.sweep_every)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// A limiter that sweeps idle keys every 1024 checks.
    pub fn new() -> Self {
        Self::with_sweep_every(DEFAULT_SWEEP_EVERY)
    }

    /// A limiter that sweeps idle keys every `checks` checks (at least 1).
    pub fn with_sweep_every(checks: u64) -> Self {
        Self {
            limiters: Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
            sweep_every: checks.max(1),
        }
    }

    /// How many keys currently hold state, across all limits.
    pub fn tracked_keys(&self) -> usize {
        self.lock().values().map(|l| l.len()).sum()
    }

    /// Drops the state of idle keys now (what every `sweep_every`-th check does).
    pub fn sweep(&self) {
        let mut limiters = self.lock();
        for limiter in limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiters.retain(|_, limiter| !limiter.is_empty());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<KeyedLimiter>>> {
        // The map only ever gains or loses whole limiters; a panicked holder cannot leave it
        // half-updated.
        self.limiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn limiter_for(&self, limit: NonZeroU32) -> Arc<KeyedLimiter> {
        let mut limiters = self.lock();
        Arc::clone(limiters.entry(limit.get()).or_insert_with(|| {
            Arc::new(governor::RateLimiter::keyed(Quota::per_minute(limit)).with_middleware())
        }))
    }

    fn decide(&self, key: &str, cost: u32, limit: NonZeroU32) -> RateDecision {
        let limiter = self.limiter_for(limit);
        let cost = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&key.to_owned(), cost) {
            Ok(Ok(snapshot)) => RateDecision {
                allowed: true,
                limit: limit.get(),
                remaining: snapshot.remaining_burst_capacity().min(limit.get()),
                retry_after: None,
            },
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                RateDecision {
                    allowed: false,
                    limit: limit.get(),
                    remaining: remaining_when_denied(cost, limit, wait),
                    // A zero wait would tell clients to retry in a tight loop.
                    retry_after: Some(wait.max(Duration::from_millis(1))),
                }
            }
            Err(_insufficient_capacity) => never_fits(limit.get()),
        }
    }

    fn after_check(&self) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.sweep_every) {
            self.sweep();
        }
    }
}

/// Units left in the bucket when a request of `cost` was denied after being told to `wait`.
///
/// governor's denial carries no snapshot, but the wait determines it: one unit refills every
/// `PERIOD / limit`, and the request fits once `cost` units are there, so
/// `available = cost - wait / emission_interval` (rounded down).
fn remaining_when_denied(cost: NonZeroU32, limit: NonZeroU32, wait: Duration) -> u32 {
    let interval_nanos = PERIOD.as_nanos() / u128::from(limit.get());
    if interval_nanos == 0 {
        return 0;
    }
    let needed = u128::from(cost.get()) * interval_nanos;
    let available = needed.saturating_sub(wait.as_nanos()) / interval_nanos;
    u32::try_from(available)
        .unwrap_or(u32::MAX)
        .min(limit.get())
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

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, cost: u32, limit_per_minute: u32) -> Result<RateDecision> {
        let decision = match NonZeroU32::new(limit_per_minute) {
            Some(limit) => self.decide(key, cost, limit),
            None => never_fits(0),
        };
        self.after_check();
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cost_above_limit_is_denied_without_panicking() {
        let limiter = MemoryRateLimiter::new();
        let d = limiter.check("k", 10, 5).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(PERIOD));
        // Nothing was consumed.
        assert!(limiter.check("k", 5, 5).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn zero_limit_denies_and_zero_cost_counts_as_one() {
        let limiter = MemoryRateLimiter::new();
        assert!(!limiter.check("k", 1, 0).await.unwrap().allowed);
        let d = limiter.check("k", 0, 2).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
    }

    #[tokio::test]
    async fn denial_reports_what_is_left() {
        let limiter = MemoryRateLimiter::new();
        assert!(limiter.check("k", 3, 5).await.unwrap().allowed);
        let d = limiter.check("k", 3, 5).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 2);
        let wait = d.retry_after.unwrap();
        assert!(
            wait > Duration::from_secs(11) && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn sweeping_forgets_idle_keys_only() {
        let limiter = MemoryRateLimiter::with_sweep_every(1_000_000);
        // A limit this high refills a unit every 60 µs, so the key is idle again at once.
        limiter.check("idle", 1, 1_000_000).await.unwrap();
        limiter.check("busy", 5, 5).await.unwrap();
        assert_eq!(limiter.tracked_keys(), 2);
        std::thread::sleep(Duration::from_millis(5));
        limiter.sweep();
        assert_eq!(limiter.tracked_keys(), 1);
        assert_eq!(limiter.lock().len(), 1, "the empty limiter is dropped");
        assert!(!limiter.check("busy", 1, 5).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn sweeps_run_periodically() {
        let limiter = MemoryRateLimiter::with_sweep_every(4);
        for i in 0..3 {
            limiter.check(&format!("k{i}"), 1, 1_000_000).await.unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        // The fourth check sweeps the three refilled keys and keeps its own.
        limiter.check("k-last", 1, 5).await.unwrap();
        assert_eq!(limiter.tracked_keys(), 1);
    }
}
