//! [`BatchedAuditLog`]: group commit for the audit log. Every `/api/v1` call appends one
//! event; written one by one, each event paid a commit (a sync to disk on SQLite), which capped
//! cheap calls at a few thousand per second. This decorator hands events to one writer task,
//! which writes whatever has queued up meanwhile as one batch ([`AuditLog::append_batch`]: one
//! transaction). An idle server adds no delay: a lone event is written at once, as a batch of
//! one.
//!
//! Two ways in:
//! - [`AuditLog::append`] answers once *its* event is stored (nothing is acknowledged before
//!   it is stored); concurrent callers share a commit. For denials, failures and admin
//!   changes, and for every event with `auth.audit_wait`.
//! - [`AuditLog::append_queued`] answers once the event is queued: an allowed call does not
//!   wait for the store. Guarantees, as for history's queue (`crate::QueuedHistory`):
//!   **order** (one writer, first in first out, both ways in sharing the queue);
//!   **read-your-writes on this replica** (`list_events` first waits, up to [`LIST_WAIT`],
//!   until every event handed on before it was handled); **no silent loss** (at most `queue`
//!   events wait, then callers wait for room; an event the store refuses is counted in
//!   [`BatchedAuditLog::failed`] and written to the server log with its content);
//!   **graceful stop** ([`BatchedAuditLog::flush`], called by the server after the last
//!   request). **Crash**: queued events are lost — at most `queue`, in practice those of the
//!   batch being written (milliseconds; docs/benchmarks.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::auth::audit::{AuditEvent, AuditFilter};
use bqai_core::model::{Page, PageRequest};
use bqai_core::ports::AuditLog;
use bqai_core::{Error, Result};
use tokio::sync::{mpsc, oneshot, watch};

/// How long `list_events` waits for the events handed on before it to be handled.
pub const LIST_WAIT: Duration = Duration::from_secs(2);

/// What the writer needs to know of one event.
struct Pending {
    event: AuditEvent,
    /// The caller waiting for the outcome; `None` for a queued append.
    done: Option<oneshot::Sender<Result<()>>>,
}

/// The [`AuditLog`] decorator that batches concurrent appends into one write of the inner
/// log. Reads go straight to the inner log.
pub struct BatchedAuditLog {
    inner: Arc<dyn AuditLog>,
    queue: mpsc::Sender<Pending>,
    /// Events whose batch the inner log refused (waiting callers got the error; queued ones
    /// went to the server log).
    failed: Arc<AtomicU64>,
    /// Events about to be queued or queued so far (counted before they enter the queue).
    handed: AtomicU64,
    /// Events the writer has handled (stored or refused) so far.
    handled: watch::Receiver<u64>,
}

impl std::fmt::Debug for BatchedAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchedAuditLog")
            .field(
                "queued",
                &(self.queue.max_capacity() - self.queue.capacity()),
            )
            .finish_non_exhaustive()
    }
}

impl BatchedAuditLog {
    /// Wraps `inner`, writing at most `max_batch` events per batch; at most `queue` events
    /// wait for the writer (callers beyond that wait for room, which is back-pressure, not
    /// loss). Spawns the writer on the current Tokio runtime; it ends when the log is dropped.
    pub fn spawn(inner: Arc<dyn AuditLog>, max_batch: usize, queue: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let failed = Arc::new(AtomicU64::new(0));
        let (handled_tx, handled) = watch::channel(0);
        tokio::spawn(write_batches(
            inner.clone(),
            rx,
            max_batch.max(1),
            Arc::clone(&failed),
            handled_tx,
        ));
        Arc::new(Self {
            inner,
            queue: tx,
            failed,
            handed: AtomicU64::new(0),
            handled,
        })
    }

    async fn hand_on(&self, pending: Pending) -> Result<()> {
        // Counted first: a listing that sees the count waits for this event too.
        self.handed.fetch_add(1, Ordering::SeqCst);
        self.queue.send(pending).await.map_err(|_| writer_gone())
    }

    /// Waits until the writer has handled every event handed on before this call, or
    /// `deadline` passed; whether it has.
    async fn caught_up(&self, deadline: Duration) -> bool {
        let target = self.handed.load(Ordering::SeqCst);
        let mut handled = self.handled.clone();
        tokio::time::timeout(deadline, handled.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the writer has handled every event handed on so far, or `deadline`
    /// passed; whether it has.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let target = self.handed.load(Ordering::SeqCst);
        let done = self.caught_up(deadline).await;
        if !done {
            tracing::error!(
                left = target.saturating_sub(*self.handled.borrow()),
                "audit events were not all written in time"
            );
        }
        done
    }

    /// Events waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Events the inner log refused since start (each caller was told; none is dropped
    /// silently: a full queue makes callers wait instead).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The writer: takes the first waiting event, then everything else already waiting (up to
/// `max_batch`), writes them together and answers each caller with the batch's outcome.
async fn write_batches(
    inner: Arc<dyn AuditLog>,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    failed: Arc<AtomicU64>,
    handled: watch::Sender<u64>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let (events, waiting): (Vec<AuditEvent>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.done)).unzip();
        let outcome = inner.append_batch(&events).await;
        if let Err(e) = &outcome {
            failed.fetch_add(events.len() as u64, Ordering::Relaxed);
            // No caller hears of a queued event's failure: the server log keeps it.
            let queued: Vec<&AuditEvent> = events
                .iter()
                .zip(&waiting)
                .filter(|(_, done)| done.is_none())
                .map(|(event, _)| event)
                .collect();
            if !queued.is_empty() {
                tracing::error!(error = %e, events = ?queued, "failed to append to the audit log");
            }
        }
        for done in waiting.into_iter().flatten() {
            // A caller that gave up (its request was dropped) is no reason to stop.
            let _ = done.send(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(same_error(e)),
            });
        }
        handled.send_modify(|n| *n += events.len() as u64);
    }
}

fn writer_gone() -> Error {
    Error::unavailable("the audit log", "the audit writer has stopped")
}

/// A copy of `e` for each caller of a failed batch (core errors are not `Clone`): the kind
/// and the safe text survive, which is what callers log and map to a status.
fn same_error(e: &Error) -> Error {
    match e {
        Error::Timeout(d) => Error::Timeout(*d),
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Unavailable { what, .. } => Error::unavailable(what.clone(), e.to_string()),
        other => Error::internal("appending to the audit log", other.to_string()),
    }
}

#[async_trait]
impl AuditLog for BatchedAuditLog {
    async fn append(&self, event: &AuditEvent) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.hand_on(Pending {
            event: event.clone(),
            done: Some(done),
        })
        .await?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn append_queued(&self, event: &AuditEvent) -> Result<()> {
        self.hand_on(Pending {
            event: event.clone(),
            done: None,
        })
        .await
    }

    async fn append_batch(&self, events: &[AuditEvent]) -> Result<()> {
        // Already a batch: no reason to split it across the writer's batches.
        self.inner.append_batch(events).await
    }

    async fn list_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        // Read-your-writes: what was handed on before this listing is in it (unless the
        // writer is stuck, then after LIST_WAIT the listing shows what is stored).
        self.caught_up(LIST_WAIT).await;
        self.inner.list_events(filter, page).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// An inner log that records the size of every write and can be made to fail or stall.
    #[derive(Default)]
    struct Recorder {
        writes: Mutex<Vec<usize>>,
        stored: Mutex<Vec<String>>,
        fail: std::sync::atomic::AtomicBool,
        stall: tokio::sync::Notify,
        stalled: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl AuditLog for Recorder {
        async fn append(&self, event: &AuditEvent) -> Result<()> {
            self.append_batch(std::slice::from_ref(event)).await
        }

        async fn append_batch(&self, events: &[AuditEvent]) -> Result<()> {
            if self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                self.stall.notified().await;
            }
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::unavailable("the audit log", "database down"));
            }
            self.writes.lock().unwrap().push(events.len());
            self.stored
                .lock()
                .unwrap()
                .extend(events.iter().map(|e| e.id.clone()));
            Ok(())
        }

        async fn list_events(&self, _: &AuditFilter, _: &PageRequest) -> Result<Page<AuditEvent>> {
            Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            })
        }
    }

    fn event(n: usize) -> AuditEvent {
        bqai_testkit::auth::audit_event(&format!("ev-{n:04}"), chrono::Utc::now())
    }

    #[tokio::test]
    async fn a_lone_event_is_written_at_once() {
        let inner = Arc::new(Recorder::default());
        let log = BatchedAuditLog::spawn(inner.clone(), 64, 64);
        tokio::time::timeout(Duration::from_secs(1), log.append(&event(1)))
            .await
            .expect("no waiting for company")
            .unwrap();
        assert_eq!(*inner.writes.lock().unwrap(), [1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_events_share_writes_and_every_caller_waits_for_its_own() {
        let inner = Arc::new(Recorder::default());
        let log = BatchedAuditLog::spawn(inner.clone(), 64, 1024);
        // Hold the writer on its first batch so the rest pile up behind it.
        hold(&inner);
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..200 {
            let log = log.clone();
            calls.spawn(async move { log.append(&event(n)).await });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            inner.stored.lock().unwrap().is_empty(),
            "nothing is stored while the writer is held"
        );
        assert!(
            calls.try_join_next().is_none(),
            "no caller is answered before its event is stored"
        );
        assert!(log.queued() > 0, "the rest wait in the queue");
        release(&inner);
        while let Some(outcome) = calls.join_next().await {
            outcome.unwrap().unwrap();
        }
        let writes = inner.writes.lock().unwrap().clone();
        assert_eq!(writes.iter().sum::<usize>(), 200, "{writes:?}");
        assert!(writes.iter().all(|&n| n <= 64), "{writes:?}");
        assert!(
            writes.len() <= 5,
            "200 waiting events need a handful of writes, not 200: {writes:?}"
        );
        let mut stored = inner.stored.lock().unwrap().clone();
        stored.sort();
        stored.dedup();
        assert_eq!(stored.len(), 200, "every event stored once");
        assert_eq!((log.queued(), log.failed()), (0, 0));
    }

    #[tokio::test]
    async fn a_failed_write_fails_each_caller_and_the_writer_carries_on() {
        let inner = Arc::new(Recorder::default());
        let log = BatchedAuditLog::spawn(inner.clone(), 64, 64);
        inner.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        match log.append(&event(1)).await {
            Err(Error::Unavailable { what, .. }) => assert_eq!(what, "the audit log"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        inner.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        log.append(&event(2)).await.unwrap();
        assert_eq!(*inner.stored.lock().unwrap(), ["ev-0002"]);
        assert_eq!(log.failed(), 1, "the refused event is counted");
    }

    fn hold(inner: &Recorder) {
        inner
            .stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn release(inner: &Recorder) {
        inner
            .stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        inner.stall.notify_one();
    }

    /// A queued event does not wait for the store; it is still stored in order with the
    /// waiting ones, a listing waits until what was handed on before it is stored, and a
    /// flush until everything is.
    #[tokio::test]
    async fn queued_events_are_stored_in_order_and_listings_and_flushes_wait_for_them() {
        let inner = Arc::new(Recorder::default());
        let log = BatchedAuditLog::spawn(inner.clone(), 64, 64);
        hold(&inner);
        log.append_queued(&event(1)).await.unwrap();
        // The writer now holds event 1; these wait in the queue behind it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiting = {
            let log = log.clone();
            tokio::spawn(async move { log.append(&event(2)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 3..=5 {
            tokio::time::timeout(Duration::from_millis(100), log.append_queued(&event(n)))
                .await
                .expect("a queued append does not wait for the store")
                .unwrap();
        }
        assert!(inner.stored.lock().unwrap().is_empty());
        assert!(!log.flush(Duration::from_millis(50)).await, "still held");
        let listing = {
            let log = log.clone();
            tokio::spawn(async move {
                log.list_events(&AuditFilter::default(), &PageRequest::first(10))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !listing.is_finished(),
            "a listing waits for the events handed on before it"
        );
        release(&inner);
        listing.await.unwrap().unwrap();
        assert_eq!(
            inner.stored.lock().unwrap().len(),
            5,
            "all five stored before the listing read"
        );
        waiting.await.unwrap().unwrap();
        assert!(log.flush(Duration::from_secs(1)).await);
        assert_eq!(
            *inner.stored.lock().unwrap(),
            ["ev-0001", "ev-0002", "ev-0003", "ev-0004", "ev-0005"],
            "in the order handed on"
        );
    }

    /// A queued event the store refuses is counted (and written to the server log); the
    /// caller was answered long before, and the writer carries on.
    #[tokio::test]
    async fn a_refused_queued_event_is_counted_and_the_writer_carries_on() {
        let inner = Arc::new(Recorder::default());
        let log = BatchedAuditLog::spawn(inner.clone(), 64, 64);
        inner.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        log.append_queued(&event(1)).await.unwrap();
        assert!(log.flush(Duration::from_secs(1)).await);
        assert_eq!(log.failed(), 1);
        inner.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        log.append_queued(&event(2)).await.unwrap();
        assert!(log.flush(Duration::from_secs(1)).await);
        assert_eq!(*inner.stored.lock().unwrap(), ["ev-0002"]);
    }
}
