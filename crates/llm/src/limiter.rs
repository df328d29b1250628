//! A concurrency bound with a bounded wait queue, shared by every adapter.
//!
//! A plain semaphore queues without limit, so a burst of questions would pile up behind slow
//! completions until each one timed out. Here at most `max_queue` callers wait; the next one
//! is told `Busy` immediately and can retry later or fall back to the built-in planner.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bqai_core::llm::{LlmError, LlmErrorKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `max_concurrency` slots and room for `max_queue` waiters.
#[derive(Debug)]
pub(crate) struct Limiter {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    max_concurrency: usize,
}

impl Limiter {
    pub(crate) fn new(max_concurrency: usize, max_queue: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            max_queue,
            max_concurrency: max_concurrency.max(1),
        }
    }

    /// Calls holding a slot and callers waiting for one, right now.
    pub(crate) fn load(&self) -> bqai_core::llm::LlmLoad {
        bqai_core::llm::LlmLoad {
            in_flight: self.max_concurrency
                - self.slots.available_permits().min(self.max_concurrency),
            queued: self.waiting.load(Ordering::SeqCst).min(self.max_queue),
        }
    }

    /// A slot, after waiting in the queue if there is room in it. Dropping the future leaves
    /// the queue.
    pub(crate) async fn acquire(&self) -> Result<OwnedSemaphorePermit, LlmError> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(permit);
        }
        let previous = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiter = Waiter(&self.waiting);
        if previous >= self.max_queue {
            return Err(LlmError::new(
                LlmErrorKind::Busy,
                "the language model is busy with other questions; try again shortly",
            ));
        }
        Arc::clone(&self.slots).acquire_owned().await.map_err(|_| {
            // Only reachable if the semaphore were closed, which nothing does.
            LlmError::new(
                LlmErrorKind::Unavailable,
                "the language model is shutting down",
            )
        })
    }
}

/// Leaves the queue count when the caller stops waiting, whether it got a slot, was refused,
/// or was cancelled.
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_beyond_the_queue_are_busy_and_cancelled_waiters_leave() {
        let limiter = Arc::new(Limiter::new(1, 1));
        let held = limiter.acquire().await.unwrap();

        let waiting = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let load = limiter.load();
        assert_eq!((load.in_flight, load.queued), (1, 1));
        let busy = limiter.acquire().await.unwrap_err();
        assert_eq!(busy.kind, LlmErrorKind::Busy);

        waiting.abort();
        let _ = waiting.await;
        // The aborted waiter freed its place in the queue.
        let again = {
            let limiter = Arc::clone(&limiter);
            tokio::spawn(async move { limiter.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        again.await.unwrap().unwrap();
        assert_eq!(limiter.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(limiter.load(), bqai_core::llm::LlmLoad::default());
    }

    #[tokio::test]
    async fn a_zero_queue_refuses_as_soon_as_all_slots_are_taken() {
        let limiter = Limiter::new(2, 0);
        let _a = limiter.acquire().await.unwrap();
        let _b = limiter.acquire().await.unwrap();
        assert_eq!(
            limiter.acquire().await.unwrap_err().kind,
            LlmErrorKind::Busy
        );
    }
}
