//! [`QueuedHistory`]: history writes off the request path. A query used to wait for its history
//! insert (a commit, a sync to disk on SQLite) before its answer went out; now `record` hands
//! the entry to one writer task and returns, and the writer stores whatever has queued up
//! meanwhile as one multi-row insert ([`HistoryStore::record_batch`]: group commit).
//!
//! Guarantees:
//! - **Order**: one writer, first in first out; entries reach the store in the order recorded.
//! - **Read-your-writes on this replica**: `get` finds an entry from the moment `record`
//!   returned, in the queue until it is stored; `list` first waits (up to
//!   [`LIST_WAIT`]) until every entry recorded before it was handed to the store, since a
//!   listing needs the store's order and paging.
//! - **Bounded memory, no silent loss**: at most `capacity` entries wait; beyond that `record`
//!   waits for room (back-pressure, as before this queue, when every request waited for its
//!   insert). The inner store is the [`crate::BufferedHistory`] in the server, so a store
//!   outage queues there (bounded, counted) exactly as before.
//! - **Graceful stop**: [`QueuedHistory::flush`] waits until the writer has handed everything
//!   on; the server calls it before flushing the outage buffer.
//! - **Crash**: entries still queued are lost. The window is bounded: at most `capacity`
//!   entries, and in practice those recorded during the linger and the one batch write in
//!   progress (a few milliseconds; see docs/benchmarks.md), since the writer takes the queue
//!   as it fills.
//!
//! The writer lingers: after the first waiting entry it waits up to `linger` for more (or
//! until `max_batch`), because on SQLite each commit costs about as much as dozens of rows
//! (it writes every touched page of the table and its indexes to the log), and under load the
//! records of one commit's duration alone make batches of a few.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::analytics::{
    AnalyticsFilter, ErrorCount, GroupBy, HistoryAnalytics, PopularEntry, PopularKind, Ranking,
    Summary, TableUsage,
};
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{ComponentHealth, Page, PageRequest};
use bqai_core::ports::HistoryStore;
use tokio::sync::{mpsc, watch};

/// How long `list` waits for the entries recorded before it to be stored.
pub const LIST_WAIT: Duration = Duration::from_secs(2);

/// The [`HistoryStore`] decorator that writes in the background, in batches.
pub struct QueuedHistory {
    inner: Arc<dyn HistoryStore>,
    queue: mpsc::Sender<HistoryEntry>,
    /// Entries recorded and not yet handed to the inner store, by id (for `get`).
    pending: Arc<Mutex<HashMap<String, HistoryEntry>>>,
    /// Batches handed on so far: changes after each one (wakes `list` and `flush`).
    written: watch::Receiver<u64>,
}

impl std::fmt::Debug for QueuedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedHistory")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl QueuedHistory {
    /// Wraps `inner`: at most `capacity` entries wait, at most `max_batch` are written at once,
    /// and a batch waits up to `linger` for more entries after its first.
    /// Spawns the writer on the current Tokio runtime; it ends when the queue is dropped.
    pub fn spawn(
        inner: Arc<dyn HistoryStore>,
        capacity: usize,
        max_batch: usize,
        linger: Duration,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let (batches, written) = watch::channel(0);
        tokio::spawn(write_batches(
            Arc::clone(&inner),
            rx,
            max_batch.max(1),
            linger,
            Arc::clone(&pending),
            batches,
        ));
        Arc::new(Self {
            inner,
            queue: tx,
            pending,
            written,
        })
    }

    /// Waits until none of `ids` is pending any more, or `deadline` passed; whether they all
    /// went.
    async fn wait_for(&self, ids: &[String], deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        let mut written = self.written.clone();
        loop {
            {
                let pending = lock(&self.pending);
                if ids.iter().all(|id| !pending.contains_key(id)) {
                    return true;
                }
            }
            match tokio::time::timeout_at(until, written.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the writer is gone.
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Entries recorded and not yet handed to the inner store.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    /// The ids of the entries not yet handed to the inner store.
    fn pending_ids(&self) -> Vec<String> {
        lock(&self.pending).keys().cloned().collect()
    }

    /// Waits until every entry recorded so far was handed to the inner store, or `deadline`
    /// passed; returns how many are still pending.
    pub async fn flush(&self, deadline: Duration) -> usize {
        self.wait_for(&self.pending_ids(), deadline).await;
        let left = self.pending();
        if left > 0 {
            tracing::error!(
                left,
                "history writer did not finish in time: {left} records lost"
            );
        }
        left
    }

    /// Waits (up to [`LIST_WAIT`]) until every entry recorded before this call was handed to
    /// the inner store: what reads of the store itself (analytics) call first, so that they
    /// see this replica's own queries.
    pub async fn caught_up(&self) {
        let before = self.pending_ids();
        if !before.is_empty() && !self.wait_for(&before, LIST_WAIT).await {
            tracing::debug!("reading history before the writer caught up");
        }
    }
}

/// [`HistoryAnalytics`] that first lets the [`QueuedHistory`] catch up, so a query is counted
/// by the analytics the moment its answer went out (on the replica that answered it).
pub struct CaughtUpAnalytics {
    queue: Arc<QueuedHistory>,
    inner: Arc<dyn HistoryAnalytics>,
}

impl CaughtUpAnalytics {
    /// `inner` (the store), read after `queue` caught up.
    pub fn new(queue: Arc<QueuedHistory>, inner: Arc<dyn HistoryAnalytics>) -> Self {
        Self { queue, inner }
    }
}

#[async_trait]
impl HistoryAnalytics for CaughtUpAnalytics {
    async fn summary(&self, filter: &AnalyticsFilter, group_by: GroupBy) -> Result<Summary> {
        self.queue.caught_up().await;
        self.inner.summary(filter, group_by).await
    }

    async fn popular(
        &self,
        filter: &AnalyticsFilter,
        kind: PopularKind,
        limit: u32,
    ) -> Result<Vec<PopularEntry>> {
        self.queue.caught_up().await;
        self.inner.popular(filter, kind, limit).await
    }

    async fn ranked(
        &self,
        filter: &AnalyticsFilter,
        ranking: Ranking,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>> {
        self.queue.caught_up().await;
        self.inner.ranked(filter, ranking, limit).await
    }

    async fn errors(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<ErrorCount>> {
        self.queue.caught_up().await;
        self.inner.errors(filter, limit).await
    }

    async fn tables(&self, filter: &AnalyticsFilter, limit: u32) -> Result<Vec<TableUsage>> {
        self.queue.caught_up().await;
        self.inner.tables(filter, limit).await
    }
}

fn lock(
    pending: &Mutex<HashMap<String, HistoryEntry>>,
) -> std::sync::MutexGuard<'_, HashMap<String, HistoryEntry>> {
    // Plain data; a panic elsewhere cannot leave it inconsistent.
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer: takes the first waiting entry, then what arrives within `linger` (up to
/// `max_batch`), writes them as one batch, and only then forgets them from `pending`.
async fn write_batches(
    inner: Arc<dyn HistoryStore>,
    mut rx: mpsc::Receiver<HistoryEntry>,
    max_batch: usize,
    linger: Duration,
    pending: Arc<Mutex<HashMap<String, HistoryEntry>>>,
    batches: watch::Sender<u64>,
) {
    let mut batch: Vec<HistoryEntry> = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < max_batch {
            let room = max_batch - batch.len();
            match tokio::time::timeout_at(until, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                // The linger is over, or the queue closed (a stop: write what there is).
                _ => break,
            }
        }
        if let Err(e) = inner.record_batch(&batch).await {
            // The inner store (the outage buffer) queues what it cannot write; an error here
            // is a record it refused for good, already logged and counted there.
            tracing::debug!(error = %e, entries = batch.len(), "history batch not fully written");
        }
        {
            let mut pending = lock(&pending);
            for entry in batch.drain(..) {
                pending.remove(&entry.id);
            }
        }
        batches.send_modify(|n| *n += 1);
    }
}

#[async_trait]
impl HistoryStore for QueuedHistory {
    async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        lock(&self.pending).insert(entry.id.clone(), entry.clone());
        if self.queue.send(entry.clone()).await.is_err() {
            // The writer is gone (the runtime is stopping): write it ourselves.
            lock(&self.pending).remove(&entry.id);
            return self.inner.record(entry).await;
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        if let Some(entry) = lock(&self.pending).get(id) {
            return Ok(Some(entry.clone()));
        }
        self.inner.get(id).await
    }

    async fn list(&self, filter: &HistoryFilter, page: &PageRequest) -> Result<Page<HistoryEntry>> {
        self.caught_up().await;
        self.inner.list(filter, page).await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    /// A store that records batches and can be made slow.
    #[derive(Default)]
    struct Batches {
        batches: Mutex<Vec<Vec<String>>>,
        slow: AtomicBool,
    }

    #[async_trait]
    impl HistoryStore for Batches {
        async fn record(&self, e: &HistoryEntry) -> Result<()> {
            self.record_batch(std::slice::from_ref(e)).await
        }
        async fn record_batch(&self, entries: &[HistoryEntry]) -> Result<()> {
            if self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.batches
                .lock()
                .unwrap()
                .push(entries.iter().map(|e| e.id.clone()).collect());
            Ok(())
        }
        async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
            let found = self
                .batches
                .lock()
                .unwrap()
                .iter()
                .flatten()
                .any(|i| i == id);
            Ok(found.then(|| bqai_testkit::history::minimal(id.into(), chrono::Utc::now())))
        }
        async fn list(&self, _: &HistoryFilter, _: &PageRequest) -> Result<Page<HistoryEntry>> {
            let ids: Vec<String> = self.batches.lock().unwrap().concat();
            Ok(Page {
                items: ids
                    .into_iter()
                    .map(|id| bqai_testkit::history::minimal(id, chrono::Utc::now()))
                    .collect(),
                next_page_token: None,
            })
        }
        async fn health(&self) -> ComponentHealth {
            ComponentHealth::ok("batches")
        }
    }

    fn entry(i: usize) -> HistoryEntry {
        bqai_testkit::history::minimal(format!("e{i:04}"), chrono::Utc::now())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn entries_are_written_in_order_in_batches_and_readable_at_once() {
        let store = Arc::new(Batches::default());
        store.slow.store(true, Ordering::SeqCst);
        let queued = QueuedHistory::spawn(store.clone(), 1000, 64, Duration::from_millis(2));
        let started = Instant::now();
        for i in 0..200 {
            queued.record(&entry(i)).await.unwrap();
            // Read-your-writes: found the moment `record` returned.
            assert!(queued.get(&format!("e{i:04}")).await.unwrap().is_some());
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "recording does not wait for the (slow) store: {:?}",
            started.elapsed()
        );
        assert_eq!(queued.flush(Duration::from_secs(10)).await, 0);
        let batches = store.batches.lock().unwrap().clone();
        let ids: Vec<String> = batches.iter().flatten().cloned().collect();
        let expected: Vec<String> = (0..200).map(|i| format!("e{i:04}")).collect();
        assert_eq!(ids, expected, "every entry, once, in order");
        assert!(batches.len() < 20, "batched: {} writes", batches.len());
        assert!(batches.iter().all(|b| b.len() <= 64));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn records_that_trickle_in_within_the_linger_share_one_commit() {
        let store = Arc::new(Batches::default());
        let queued = QueuedHistory::spawn(store.clone(), 1000, 64, Duration::from_millis(300));
        for i in 0..5 {
            queued.record(&entry(i)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(queued.flush(Duration::from_secs(10)).await, 0);
        let batches = store.batches.lock().unwrap().clone();
        assert_eq!(
            batches.len(),
            1,
            "one commit for what came within the linger: {batches:?}"
        );
        // Without a linger the same trickle is a commit per record.
        let store = Arc::new(Batches::default());
        let queued = QueuedHistory::spawn(store.clone(), 1000, 64, Duration::ZERO);
        for i in 0..5 {
            queued.record(&entry(i)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(queued.flush(Duration::from_secs(10)).await, 0);
        assert_eq!(store.batches.lock().unwrap().len(), 5);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_queue_makes_callers_wait_instead_of_dropping() {
        let store = Arc::new(Batches::default());
        store.slow.store(true, Ordering::SeqCst);
        let queued = QueuedHistory::spawn(store.clone(), 4, 2, Duration::from_millis(2));
        for i in 0..20 {
            queued.record(&entry(i)).await.unwrap();
        }
        assert_eq!(queued.flush(Duration::from_secs(10)).await, 0);
        let n: usize = store.batches.lock().unwrap().iter().map(Vec::len).sum();
        assert_eq!(n, 20);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_listing_shows_what_was_recorded_before_it() {
        let store = Arc::new(Batches::default());
        store.slow.store(true, Ordering::SeqCst);
        let queued = QueuedHistory::spawn(store.clone(), 1000, 3, Duration::from_millis(2));
        for i in 0..10 {
            queued.record(&entry(i)).await.unwrap();
        }
        let page = queued
            .list(&HistoryFilter::default(), &PageRequest::first(100))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 10, "the listing waited for the writer");
    }
}
