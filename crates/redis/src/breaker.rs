//! The circuit breaker in front of Redis: while Redis is down, callers get an answer at once
//! instead of each waiting out a connect or command timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the breaker lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Closed: go ahead.
    Pass,
    /// The open period is over and this caller was picked to try Redis again.
    Probe,
    /// Open: fail without touching Redis.
    Reject,
}

/// Closed until a failure, then open for `retry_after`; when that ends, exactly one caller
/// probes (others are still rejected) and its outcome closes or re-opens the breaker.
///
/// The state is one atomic (the end of the open period, 0 when closed), so the hot path costs
/// a load and no lock. Admitting a probe re-arms the open period, so a probe that never
/// reports back (its caller was cancelled) only delays the next probe by one period instead of
/// wedging the breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    retry_after: Duration,
    epoch: Instant,
    /// Nanoseconds after `epoch` until which calls are rejected; 0 when closed.
    open_until: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self {
            retry_after,
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        // +1 so that no instant maps to the "closed" value 0.
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn reopen_deadline(&self, now: u64) -> u64 {
        let period = u64::try_from(self.retry_after.as_nanos()).unwrap_or(u64::MAX);
        now.saturating_add(period)
    }

    pub(crate) fn admit(&self) -> Admission {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Pass;
        }
        let now = self.now();
        if now < until {
            return Admission::Reject;
        }
        match self.open_until.compare_exchange(
            until,
            self.reopen_deadline(now),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Admission::Probe,
            // Another caller won the probe, or the state changed under us.
            Err(0) => Admission::Pass,
            Err(_) => Admission::Reject,
        }
    }

    /// Records a call that reached Redis; returns true if this closed an open breaker.
    pub(crate) fn on_success(&self) -> bool {
        // A load first keeps the common case (closed) free of writes to a shared cache line.
        self.open_until.load(Ordering::Acquire) != 0
            && self.open_until.swap(0, Ordering::AcqRel) != 0
    }

    /// Records a connectivity failure; returns true if this opened a closed breaker.
    pub(crate) fn on_failure(&self) -> bool {
        let deadline = self.reopen_deadline(self.now());
        self.open_until.swap(deadline, Ordering::AcqRel) == 0
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_failure_and_lets_one_probe_through_after_the_period() {
        let breaker = Breaker::new(Duration::from_millis(30));
        assert_eq!(breaker.admit(), Admission::Pass);
        assert!(breaker.on_failure(), "the first failure opens it");
        assert!(
            !breaker.on_failure(),
            "a second failure does not open it again"
        );
        assert_eq!(breaker.admit(), Admission::Reject);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert_eq!(
            breaker.admit(),
            Admission::Reject,
            "only one probe at a time"
        );
        assert!(breaker.on_success());
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(), Admission::Pass);
        assert!(
            !breaker.on_success(),
            "closing a closed breaker reports nothing"
        );
    }

    #[test]
    fn a_lost_probe_only_delays_the_next_one() {
        let breaker = Breaker::new(Duration::from_millis(20));
        breaker.on_failure();
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Probe);
        // The probe never reports back.
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(breaker.admit(), Admission::Probe);
    }
}
