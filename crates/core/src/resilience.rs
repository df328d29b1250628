//! Decorators that keep bqai serving when a shared dependency fails.
//!
//! [`FallbackRateLimiter`]: a distributed limiter (Redis) backed by an in-process one, so a
//! Redis outage degrades limits to per-replica instead of turning every request into an
//! error or letting everything through.
//!
//! [`FallbackNonceStore`]: the same for one-time tickets: while Redis is down a ticket is
//! single-use per replica instead of refused everywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::Result;
use crate::ports::{NonceStore, RateDecision, RateLimiter};

/// Asks `primary`; when it fails, asks `fallback` instead.
pub struct FallbackRateLimiter {
    primary: Arc<dyn RateLimiter>,
    fallback: Arc<dyn RateLimiter>,
    fallbacks: AtomicU64,
}

impl FallbackRateLimiter {
    /// `primary` first, `fallback` when it errs.
    pub fn new(primary: Arc<dyn RateLimiter>, fallback: Arc<dyn RateLimiter>) -> Self {
        Self {
            primary,
            fallback,
            fallbacks: AtomicU64::new(0),
        }
    }

    /// How many decisions the fallback made.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl RateLimiter for FallbackRateLimiter {
    async fn check(&self, key: &str, cost: u32, limit_per_minute: u32) -> Result<RateDecision> {
        match self.primary.check(key, cost, limit_per_minute).await {
            Ok(decision) => Ok(decision),
            Err(e) => {
                // The primary adapter logs its own outage once; this is per request.
                tracing::debug!(error = %e, "rate limiter unavailable; using the in-process one");
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.fallback.check(key, cost, limit_per_minute).await
            }
        }
    }
}

/// Claims in `primary`; when it fails, in `fallback`.
pub struct FallbackNonceStore {
    primary: Arc<dyn NonceStore>,
    fallback: Arc<dyn NonceStore>,
}

impl FallbackNonceStore {
    /// `primary` first, `fallback` when it errs.
    pub fn new(primary: Arc<dyn NonceStore>, fallback: Arc<dyn NonceStore>) -> Self {
        Self { primary, fallback }
    }
}

#[async_trait]
impl NonceStore for FallbackNonceStore {
    async fn claim(&self, nonce: &str, ttl: std::time::Duration) -> Result<bool> {
        match self.primary.claim(nonce, ttl).await {
            Ok(fresh) => Ok(fresh),
            Err(e) => {
                tracing::debug!(error = %e, "nonce store unavailable; using the in-process one");
                self.fallback.claim(nonce, ttl).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    struct Down;
    #[async_trait]
    impl RateLimiter for Down {
        async fn check(&self, _: &str, _: u32, _: u32) -> Result<RateDecision> {
            Err(Error::Unavailable {
                what: "Redis".into(),
                source: None,
            })
        }
    }

    struct Fixed(bool);
    #[async_trait]
    impl RateLimiter for Fixed {
        async fn check(&self, _: &str, _: u32, limit: u32) -> Result<RateDecision> {
            Ok(RateDecision {
                allowed: self.0,
                limit,
                remaining: 0,
                retry_after: None,
            })
        }
    }

    #[test]
    fn falls_back_only_when_the_primary_fails() {
        let run = |l: &FallbackRateLimiter| {
            futures::executor::block_on(l.check("k", 1, 10))
                .unwrap()
                .allowed
        };
        let healthy = FallbackRateLimiter::new(Arc::new(Fixed(false)), Arc::new(Fixed(true)));
        assert!(!run(&healthy), "the primary decides while it answers");
        assert_eq!(healthy.fallbacks(), 0);
        let down = FallbackRateLimiter::new(Arc::new(Down), Arc::new(Fixed(true)));
        assert!(run(&down));
        assert_eq!(down.fallbacks(), 1);
    }
}
