//! Bounded retries for transient BigQuery failures: exponential backoff with full jitter
//! (a random wait between zero and `initial * 2^(attempt-1)`, capped), a deadline per
//! attempt, and a fixed number of attempts. What counts as transient is
//! [`Failure::is_transient`]: BigQuery's reasons and the HTTP status, not message text.

use std::future::Future;
use std::time::Duration;

use crate::config::RetryConfig;
use crate::error::{Failure, Transport};

/// Runs `call` until it succeeds, fails permanently, or `policy.max_attempts` are used up;
/// each attempt gets `attempt_timeout`.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryConfig,
    attempt_timeout: Duration,
    mut call: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 1;
    loop {
        let outcome = match tokio::time::timeout(attempt_timeout, call()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::transport(
                Transport::Timeout,
                format!("no answer within {attempt_timeout:?}"),
            )),
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err(failure) if failure.is_transient() && attempt < policy.max_attempts => {
                let wait = jitter(policy.ceiling(attempt));
                tracing::debug!(attempt, ?wait, %failure, "transient BigQuery failure; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// Full jitter: uniformly random in `[0, ceiling]`.
pub(crate) fn jitter(ceiling: Duration) -> Duration {
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 4,
        }
    }

    fn failure(status: u16, reason: &str) -> Failure {
        let body = serde_json::json!({"error": {"errors": [{"reason": reason}]}});
        Failure::from_http(status, body.to_string().as_bytes())
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = with_retry(&fast(4), Duration::from_secs(5), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(failure(503, "backendError")),
                1 => Err(failure(403, "rateLimitExceeded")),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(out.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retry(&fast(3), Duration::from_secs(5), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failure(500, "internalError"))
        })
        .await;
        assert_eq!(out.unwrap_err().reason(), Some("internalError"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = with_retry(&fast(5), Duration::from_secs(5), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(failure(400, "invalidQuery"))
        })
        .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_hung_attempt_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let out = with_retry(&fast(2), Duration::from_millis(50), || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                std::future::pending::<()>().await;
            }
            Ok("second")
        })
        .await;
        assert_eq!(out.ok(), Some("second"));
    }

    #[test]
    fn jitter_stays_under_the_ceiling() {
        for _ in 0..1_000 {
            assert!(jitter(Duration::from_millis(20)) <= Duration::from_millis(20));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
