//! `BufferedHistory`: a [`HistoryStore`] decorator that keeps queries answered while the
//! real store (PostgreSQL, SQLite) is down.
//!
//! A record the store cannot take is queued in a bounded in-memory buffer and the call
//! succeeds; while anything is queued, new records join the queue at once (no request waits on
//! a dead database), and a background flusher writes the queue in order as soon as the store
//! answers again. Nothing is lost unless the buffer overflows: then the oldest record is
//! dropped, counted, and logged. `flush` drains the queue at shutdown.
//!
//! A record the store refuses while it is otherwise healthy (its health check answers right
//! after the failure) is the record's fault, not the store's: it is logged, counted and set
//! aside, so one bad record can never hold up the queue behind it or the shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::history::{HistoryEntry, HistoryFilter};
use bqai_core::model::{ComponentHealth, HealthStatus, Page, PageRequest};
use bqai_core::ports::HistoryStore;
use bqai_core::{Error, Result};

/// The buffering decorator.
pub struct BufferedHistory {
    inner: Arc<dyn HistoryStore>,
    queue: Mutex<VecDeque<HistoryEntry>>,
    capacity: usize,
    dropped: AtomicU64,
    refused: AtomicU64,
}

impl BufferedHistory {
    /// Wraps `inner`, queueing at most `capacity` records while it is down.
    pub fn new(inner: Arc<dyn HistoryStore>, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner,
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Starts the background flusher: it retries every `interval` while records are queued.
    /// It stops when the last other reference to the buffer is dropped.
    pub fn spawn_flusher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                // A weak reference, so the flusher never keeps a dropped buffer alive.
                let Some(this) = weak.upgrade() else { return };
                if this.queued() > 0 {
                    this.drain().await;
                }
            }
        })
    }

    /// Records waiting for the store.
    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    /// Records dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records the store refused while healthy, set aside so they do not block the queue.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether `error`, from writing `entry`, is the record's fault: the store still answers
    /// its health check. A timeout is always the store's.
    async fn refuses(&self, entry: &HistoryEntry, error: &Error) -> bool {
        if matches!(error, Error::Timeout(_))
            || self.inner.health().await.status != HealthStatus::Ok
        {
            return false;
        }
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(
            id = %entry.id,
            error = %error,
            refused_total = n,
            "the history store refused a record while healthy: set aside so the queue moves on"
        );
        true
    }

    /// Writes queued records until the queue is empty or `deadline` passes; returns how many
    /// are still queued (used at shutdown).
    pub async fn flush(&self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        while self.queued() > 0 && Instant::now() < until {
            if self.drain().await == 0 {
                tokio::time::sleep(Duration::from_millis(100).min(deadline)).await;
            }
        }
        let left = self.queued();
        if left > 0 {
            tracing::error!(
                left,
                "history store still unavailable: {left} records were not written"
            );
        }
        left
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<HistoryEntry>> {
        // The queue holds plain data; a panic elsewhere cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, entry: HistoryEntry) {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(
                dropped_total = n,
                capacity = self.capacity,
                "history buffer full: dropped the oldest queued record"
            );
        }
        let first = q.is_empty();
        q.push_back(entry);
        drop(q);
        if first {
            tracing::warn!("history store unavailable: queueing records until it returns");
        }
    }

    /// Writes queued records in order, stopping at the first failure the store is to blame
    /// for; returns how many were written (or set aside).
    async fn drain(&self) -> usize {
        let mut written = 0;
        loop {
            let Some(next) = self.lock().front().cloned() else {
                break;
            };
            match self.inner.record(&next).await {
                // A conflict means an earlier attempt landed after all: done with it too.
                Ok(()) | Err(Error::Conflict(_)) => {
                    let mut q = self.lock();
                    if q.front().is_some_and(|e| e.id == next.id) {
                        q.pop_front();
                    }
                    written += 1;
                }
                Err(e) if self.refuses(&next, &e).await => {
                    let mut q = self.lock();
                    if q.front().is_some_and(|e| e.id == next.id) {
                        q.pop_front();
                    }
                    written += 1;
                }
                Err(_) => break,
            }
        }
        if written > 0 && self.queued() == 0 {
            tracing::info!(written, "history store is back: queued records written");
        }
        written
    }
}

#[async_trait]
impl HistoryStore for BufferedHistory {
    async fn record(&self, entry: &HistoryEntry) -> Result<()> {
        if self.queued() > 0 {
            // Keep order and do not make the request wait on a store known to be down.
            self.enqueue(entry.clone());
            return Ok(());
        }
        match self.inner.record(entry).await {
            Ok(()) => Ok(()),
            Err(e @ Error::Conflict(_)) => Err(e),
            Err(e) if self.refuses(entry, &e).await => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, id = %entry.id, "history write failed; queued");
                self.enqueue(entry.clone());
                Ok(())
            }
        }
    }

    /// One write of the whole batch while the store is healthy and nothing is queued; else,
    /// or when the batch write fails, each entry goes through [`Self::record`], which queues
    /// it (outage), sets it aside (refused) or finds it already written (conflict).
    async fn record_batch(&self, entries: &[HistoryEntry]) -> Result<()> {
        if self.queued() == 0 && self.inner.record_batch(entries).await.is_ok() {
            return Ok(());
        }
        let mut outcome = Ok(());
        for entry in entries {
            match self.record(entry).await {
                // Conflict: an earlier attempt of the batch landed after all.
                Ok(()) | Err(Error::Conflict(_)) => {}
                Err(e) => outcome = Err(e),
            }
        }
        outcome
    }

    async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        if let Some(e) = self.lock().iter().find(|e| e.id == id) {
            return Ok(Some(e.clone()));
        }
        self.inner.get(id).await
    }

    async fn list(&self, filter: &HistoryFilter, page: &PageRequest) -> Result<Page<HistoryEntry>> {
        // Queued records appear once written; listing needs the store's keyset order.
        self.inner.list(filter, page).await
    }

    async fn health(&self) -> ComponentHealth {
        let mut h = self.inner.health().await;
        let queued = self.queued();
        let dropped = self.dropped();
        let refused = self.refused();
        // Queued or dropped records mean history is behind; refused ones are worth a note.
        if (queued > 0 || dropped > 0) && h.status == HealthStatus::Ok {
            h.status = HealthStatus::Degraded;
        }
        if queued > 0 || dropped > 0 || refused > 0 {
            let note = format!("{queued} records queued, {dropped} dropped, {refused} refused");
            h.detail = Some(match h.detail {
                Some(d) => format!("{d}; {note}"),
                None => note,
            });
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A store that can be switched off.
    #[derive(Default)]
    struct Switch {
        down: AtomicBool,
        rows: Mutex<Vec<HistoryEntry>>,
    }

    #[async_trait]
    impl HistoryStore for Switch {
        async fn record(&self, e: &HistoryEntry) -> Result<()> {
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::Unavailable {
                    what: "the history store".into(),
                    source: None,
                });
            }
            self.rows.lock().unwrap().push(e.clone());
            Ok(())
        }
        async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
            Ok(self
                .rows
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.id == id)
                .cloned())
        }
        async fn list(&self, _: &HistoryFilter, _: &PageRequest) -> Result<Page<HistoryEntry>> {
            Ok(Page {
                items: self.rows.lock().unwrap().clone(),
                next_page_token: None,
            })
        }
        async fn health(&self) -> ComponentHealth {
            if self.down.load(Ordering::SeqCst) {
                ComponentHealth::down("switch", "unreachable")
            } else {
                ComponentHealth::ok("switch")
            }
        }
    }

    /// A healthy store that refuses records whose id starts with `bad`.
    #[derive(Default)]
    struct Picky(Switch);

    #[async_trait]
    impl HistoryStore for Picky {
        async fn record(&self, e: &HistoryEntry) -> Result<()> {
            if e.id.starts_with("bad") {
                return Err(Error::Unavailable {
                    what: "the history store".into(),
                    source: None,
                });
            }
            self.0.record(e).await
        }
        async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
            self.0.get(id).await
        }
        async fn list(&self, f: &HistoryFilter, p: &PageRequest) -> Result<Page<HistoryEntry>> {
            self.0.list(f, p).await
        }
        async fn health(&self) -> ComponentHealth {
            self.0.health().await
        }
    }

    /// A record the healthy store refuses (a NUL byte did that on PostgreSQL) used to sit at
    /// the head of the queue forever, holding every later record and the shutdown behind it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_record_the_store_refuses_does_not_block_the_others() {
        let store = Arc::new(Picky::default());
        let buffered = BufferedHistory::new(store.clone(), 100);
        let bad = minimal_with_id("bad-1");
        assert!(buffered.record(&bad).await.is_err());
        assert_eq!(buffered.queued(), 0, "a refused record is not queued");
        for i in 0..3 {
            buffered.record(&entry(i)).await.unwrap();
        }
        assert_eq!(store.0.rows.lock().unwrap().len(), 3);
        assert_eq!(buffered.refused(), 1);

        // Queued during an outage, then refused once the store is back: set aside at drain.
        store.0.down.store(true, Ordering::SeqCst);
        buffered.record(&minimal_with_id("bad-2")).await.unwrap();
        buffered.record(&entry(10)).await.unwrap();
        assert_eq!(buffered.queued(), 2);
        store.0.down.store(false, Ordering::SeqCst);
        let started = Instant::now();
        assert_eq!(buffered.flush(Duration::from_secs(30)).await, 0);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(store.0.rows.lock().unwrap().len(), 4);
        assert_eq!(buffered.refused(), 2);
        let health = buffered.health().await;
        assert_eq!(health.status, HealthStatus::Ok);
        assert!(health.detail.unwrap_or_default().contains("2 refused"));
    }

    fn minimal_with_id(id: &str) -> HistoryEntry {
        bqai_testkit::history::minimal(id.into(), chrono::Utc::now())
    }

    fn entry(i: usize) -> HistoryEntry {
        bqai_testkit::history::minimal(format!("e{i:04}"), chrono::Utc::now())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn records_survive_an_outage_in_order() {
        let store = Arc::new(Switch::default());
        let buffered = BufferedHistory::new(store.clone(), 100);
        let _flusher = buffered.spawn_flusher(Duration::from_millis(20));
        buffered.record(&entry(0)).await.unwrap();
        store.down.store(true, Ordering::SeqCst);
        for i in 1..=10 {
            buffered.record(&entry(i)).await.unwrap();
        }
        assert_eq!(buffered.queued(), 10);
        assert_eq!(buffered.health().await.status, HealthStatus::Down);
        assert!(
            buffered.get("e0005").await.unwrap().is_some(),
            "queued entries can be read"
        );
        store.down.store(false, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(5);
        while buffered.queued() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(buffered.queued(), 0);
        let ids: Vec<String> = store
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect();
        let expected: Vec<String> = (0..=10).map(|i| format!("e{i:04}")).collect();
        assert_eq!(ids, expected, "every record, in order");
        assert_eq!(buffered.health().await.status, HealthStatus::Ok);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn overflow_drops_the_oldest_and_counts_it() {
        let store = Arc::new(Switch::default());
        store.down.store(true, Ordering::SeqCst);
        let buffered = BufferedHistory::new(store.clone(), 3);
        for i in 0..5 {
            buffered.record(&entry(i)).await.unwrap();
        }
        assert_eq!(buffered.queued(), 3);
        assert_eq!(buffered.dropped(), 2);
        store.down.store(false, Ordering::SeqCst);
        assert_eq!(buffered.flush(Duration::from_secs(2)).await, 0);
        let ids: Vec<String> = store
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(ids, ["e0002", "e0003", "e0004"]);
        assert!(
            buffered
                .health()
                .await
                .detail
                .unwrap()
                .contains("2 dropped")
        );
    }
}
