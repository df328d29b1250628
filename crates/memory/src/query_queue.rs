//! [`QueuedWarehouse`]: the query queue — bounded, fair admission of queries to a warehouse.
//!
//! At most `max_concurrent` statements run on the warehouse at once (BigQuery limits the
//! interactive jobs a project runs concurrently; the embedded engine spreads each query over
//! every core, so more at once only share the CPU), and at most `max_concurrent_per_key` for
//! one principal. The others wait in a queue of at most `max_queued` entries, for at most
//! `max_wait`; past either bound the query is refused with [`Error::QueueFull`] and a
//! `Retry-After` estimated from recent run times (503 `QUEUE_FULL` over HTTP).
//!
//! **Fairness.** Waiting queries are kept per principal (`QueryJob::principal`), and a free
//! slot goes to the principals in turn (round robin), each principal's own queries in arrival
//! order. A principal that submits 150 heavy queries then delays someone else's one by at
//! most one query per other waiting principal, not by 150. Unauthenticated queries share one
//! turn and have no per-key limit (with auth off every caller is the same anonymous
//! principal, which would otherwise get only part of the warehouse).
//!
//! **What goes through it.** `execute` and `execute_stream` (a stream holds its slot until it
//! is dropped: the embedded engine computes as the rows are read). Dry runs, catalog reads and
//! previews do not: they run no job. The result cache sits in front (`CachedWarehouse`), so
//! a cache hit never queues, and identical queries coalesce before they reach the queue.
//!
//! **Cancellation.** A caller that goes away while waiting (a closed connection, a WebSocket
//! `cancel`) leaves the queue; a slot granted to it at that moment is handed on.
//!
//! **Positions.** A waiting job with a [`QueueWatch`] is told its position (1 = next) each
//! time it changes, then 0 when it leaves the queue to run. The position is what the round
//! robin would give if nobody else arrived: ahead of the `i`-th waiting query of a principal
//! are the principal's own earlier `i - 1`, plus up to `i` of each other principal's (one
//! more for those whose turn comes first).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::error::{Error, Result};
use bqai_core::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, QueueWatch,
    ResultPage, RowStream, SqlDialect, Table, TableRef, TableSummary,
};
use bqai_core::ports::Warehouse;
use futures::StreamExt;
use tokio::sync::oneshot;

/// The queue's bounds (`query.max_concurrent`, `query.max_concurrent_per_key`,
/// `query.max_queued`, `query.queue_timeout_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Statements running on the warehouse at once (at least 1).
    pub max_concurrent: usize,
    /// Statements one principal may run at once (at least 1; unauthenticated callers are not
    /// limited separately).
    pub max_concurrent_per_key: usize,
    /// Statements that may wait for a slot; beyond, a query is refused at once (0: none wait).
    pub max_queued: usize,
    /// Longest wait for a slot before the query is refused.
    pub max_wait: Duration,
}

impl QueueLimits {
    /// The default for a warehouse: the embedded engine runs two queries per core (each uses
    /// every core; a second one overlaps the first one's I/O), BigQuery 50 — half of the
    /// interactive jobs a project may run at once, since a project is seldom bqai's alone.
    /// One principal may take half of the slots.
    pub fn for_warehouse(bigquery: bool, cores: usize) -> Self {
        let max_concurrent = if bigquery { 50 } else { (2 * cores).max(4) };
        Self {
            max_concurrent,
            max_concurrent_per_key: max_concurrent.div_ceil(2),
            max_queued: 1000,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// What the queue has done since start and holds now, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Statements running now.
    pub running: u64,
    /// Statements waiting now.
    pub waiting: u64,
    /// Statements admitted (at once or after waiting).
    pub admitted: u64,
    /// Statements admitted after waiting.
    pub waited: u64,
    /// Total time the admitted statements waited, in microseconds.
    pub wait_micros: u64,
    /// Statements refused because the queue was full.
    pub refused_full: u64,
    /// Statements refused because they waited past `max_wait`.
    pub timed_out: u64,
}

/// The fair queue in front of one warehouse; see the module docs.
pub struct QueryQueue {
    limits: QueueLimits,
    state: Mutex<State>,
    admitted: AtomicU64,
    waited: AtomicU64,
    wait_micros: AtomicU64,
    refused_full: AtomicU64,
    timed_out: AtomicU64,
}

/// A slot handed to a waiting job (the counts are already taken for it).
struct Grant;

struct Waiter {
    id: u64,
    grant: oneshot::Sender<Grant>,
    watch: Option<QueueWatch>,
    /// The last position reported to `watch`.
    reported: u64,
}

#[derive(Default)]
struct State {
    running: usize,
    running_by_key: HashMap<String, usize>,
    /// Waiting jobs per principal, in arrival order.
    waiting: HashMap<String, VecDeque<Waiter>>,
    /// Principals with waiting jobs, in the order their turns come.
    turns: VecDeque<String>,
    queued: usize,
    next_id: u64,
    /// Moving average of how long a statement holds its slot, for `Retry-After`.
    avg_run: Option<Duration>,
}

/// The key's share of the warehouse: `""` is the unauthenticated principal.
fn key_of(job: &QueryJob) -> String {
    job.principal.clone().unwrap_or_default()
}

impl QueryQueue {
    /// An empty queue with `limits` (zero concurrency limits are raised to 1).
    pub fn new(limits: QueueLimits) -> Arc<Self> {
        let limits = QueueLimits {
            max_concurrent: limits.max_concurrent.max(1),
            max_concurrent_per_key: limits.max_concurrent_per_key.max(1),
            ..limits
        };
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
            admitted: AtomicU64::new(0),
            waited: AtomicU64::new(0),
            wait_micros: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        })
    }

    /// The bounds in force.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// What the queue holds now and has done since start.
    pub fn stats(&self) -> QueueStats {
        let (running, waiting) = {
            let state = self.lock();
            (state.running, state.queued)
        };
        QueueStats {
            running: running as u64,
            waiting: waiting as u64,
            admitted: self.admitted.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
            wait_micros: self.wait_micros.load(Ordering::Relaxed),
            refused_full: self.refused_full.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock (no user code runs under the lock but
        // the watches, which only send), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key_limit(&self, key: &str) -> usize {
        if key.is_empty() {
            usize::MAX
        } else {
            self.limits.max_concurrent_per_key
        }
    }

    /// Waits for a slot for `key`; the slot is held until the [`Slot`] is dropped.
    pub async fn enter(self: &Arc<Self>, key: String, watch: Option<QueueWatch>) -> Result<Slot> {
        let (id, receiver) = {
            let mut state = self.lock();
            let by_key = state.running_by_key.get(&key).copied().unwrap_or(0);
            // Waiters exist only while every slot they could take is busy (each release hands
            // slots out), so a free slot here is this caller's without skipping anyone.
            if state.running < self.limits.max_concurrent && by_key < self.key_limit(&key) {
                take(&mut state, &key);
                drop(state);
                self.admitted.fetch_add(1, Ordering::Relaxed);
                return Ok(self.slot(key));
            }
            if state.queued >= self.limits.max_queued {
                let retry_after = self.retry_after(&state);
                drop(state);
                self.refused_full.fetch_add(1, Ordering::Relaxed);
                return Err(Error::QueueFull {
                    message: format!(
                        "the warehouse is busy: {} queries are running and {} are waiting, the \
                         most the query queue holds; try again later",
                        self.limits.max_concurrent, self.limits.max_queued
                    ),
                    retry_after,
                });
            }
            let id = state.next_id;
            state.next_id += 1;
            let (grant, receiver) = oneshot::channel();
            if !state.waiting.contains_key(&key) {
                state.turns.push_back(key.clone());
            }
            state
                .waiting
                .entry(key.clone())
                .or_default()
                .push_back(Waiter {
                    id,
                    grant,
                    watch,
                    reported: 0,
                });
            state.queued += 1;
            report_positions(&mut state);
            (id, receiver)
        };
        let waiting_since = Instant::now();
        let mut wait = Waiting {
            queue: self,
            key: key.clone(),
            id,
            receiver,
            done: false,
        };
        let granted = tokio::time::timeout(self.limits.max_wait, &mut wait.receiver).await;
        match granted {
            Ok(Ok(Grant)) => {
                wait.done = true;
                self.admitted.fetch_add(1, Ordering::Relaxed);
                self.waited.fetch_add(1, Ordering::Relaxed);
                let micros = u64::try_from(waiting_since.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.wait_micros.fetch_add(micros, Ordering::Relaxed);
                Ok(self.slot(key))
            }
            // The sender is only dropped with the queue itself, which this call holds.
            Ok(Err(_)) => Err(Error::internal_msg(
                "the query queue dropped a waiting query",
            )),
            Err(_) => {
                drop(wait); // leaves the queue (or hands on a slot granted meanwhile)
                self.timed_out.fetch_add(1, Ordering::Relaxed);
                let retry_after = self.retry_after(&self.lock());
                Err(Error::QueueFull {
                    message: format!(
                        "the warehouse is busy: the query waited {} s in the query queue without \
                         a free slot and did not run; try again later",
                        self.limits.max_wait.as_secs_f64()
                    ),
                    retry_after,
                })
            }
        }
    }

    fn slot(self: &Arc<Self>, key: String) -> Slot {
        Slot {
            queue: Arc::clone(self),
            key,
            since: Instant::now(),
        }
    }

    /// When a refused caller may find room: the queue ahead of it divided among the slots,
    /// at the recent run time each; between 1 and 60 seconds.
    fn retry_after(&self, state: &State) -> Duration {
        let run = state.avg_run.unwrap_or(Duration::from_secs(1));
        let rounds = (state.queued + state.running) as f64 / self.limits.max_concurrent as f64;
        run.mul_f64(rounds.max(1.0))
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// A slot of `key` held for `held` is free: hand it on.
    fn release(&self, key: &str, held: Duration) {
        let mut state = self.lock();
        give_back(&mut state, key);
        state.avg_run = Some(match state.avg_run {
            None => held,
            Some(avg) => avg.mul_f64(0.8) + held.mul_f64(0.2),
        });
        self.hand_out(&mut state);
    }

    /// Gives free slots to waiting jobs, principals in turn.
    fn hand_out(&self, state: &mut State) {
        let mut changed = false;
        while state.running < self.limits.max_concurrent {
            let next = state.turns.iter().position(|k| {
                state.running_by_key.get(k).copied().unwrap_or(0) < self.key_limit(k)
            });
            let Some(turn) = next else { break };
            let Some(key) = state.turns.remove(turn) else {
                break;
            };
            let Some(queue) = state.waiting.get_mut(&key) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                state.waiting.remove(&key);
            } else {
                state.turns.push_back(key.clone());
            }
            let Some(waiter) = waiter else { continue };
            state.queued -= 1;
            changed = true;
            take(state, &key);
            if waiter.grant.send(Grant).is_err() {
                // Its caller is gone (it removes itself under this lock, so this is only a
                // race with a dropped receiver): the slot stays free for the next one.
                give_back(state, &key);
            } else if let Some(watch) = &waiter.watch {
                watch.notify(0);
            }
        }
        if changed {
            report_positions(state);
        }
    }
}

fn take(state: &mut State, key: &str) {
    state.running += 1;
    *state.running_by_key.entry(key.to_owned()).or_default() += 1;
}

fn give_back(state: &mut State, key: &str) {
    state.running = state.running.saturating_sub(1);
    if let Some(n) = state.running_by_key.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            state.running_by_key.remove(key);
        }
    }
}

/// Tells every watched waiter whose position changed its new position.
fn report_positions(state: &mut State) {
    if !state
        .waiting
        .values()
        .any(|q| q.iter().any(|w| w.watch.is_some()))
    {
        return;
    }
    let lengths: Vec<(String, usize)> = state
        .turns
        .iter()
        .map(|k| (k.clone(), state.waiting.get(k).map_or(0, VecDeque::len)))
        .collect();
    for (rank, (key, _)) in lengths.iter().enumerate() {
        let Some(queue) = state.waiting.get_mut(key) else {
            continue;
        };
        for (i, waiter) in queue.iter_mut().enumerate() {
            let Some(watch) = &waiter.watch else { continue };
            let others: usize = lengths
                .iter()
                .enumerate()
                .filter(|(r, _)| *r != rank)
                .map(|(r, (_, len))| (*len).min(i + usize::from(r < rank)))
                .sum();
            let position = (i + others + 1) as u64;
            if position != waiter.reported {
                waiter.reported = position;
                watch.notify(position);
            }
        }
    }
}

/// A waiting caller; dropped before its slot arrived, it leaves the queue.
struct Waiting<'a> {
    queue: &'a QueryQueue,
    key: String,
    id: u64,
    receiver: oneshot::Receiver<Grant>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.queue.lock();
        let mut removed = false;
        if let Some(queue) = state.waiting.get_mut(&self.key)
            && let Some(at) = queue.iter().position(|w| w.id == self.id)
        {
            queue.remove(at);
            removed = true;
            if queue.is_empty() {
                state.waiting.remove(&self.key);
                state.turns.retain(|k| *k != self.key);
            }
        }
        if removed {
            state.queued -= 1;
            report_positions(&mut state);
        } else if self.receiver.try_recv().is_ok() {
            // A slot was granted as it gave up: hand it on.
            give_back(&mut state, &self.key);
            self.queue.hand_out(&mut state);
        }
    }
}

/// A slot on the warehouse; dropping it frees the slot for the next waiting job.
pub struct Slot {
    queue: Arc<QueryQueue>,
    key: String,
    since: Instant,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.queue.release(&self.key, self.since.elapsed());
    }
}

/// A [`Warehouse`] whose statements go through a [`QueryQueue`].
pub struct QueuedWarehouse {
    inner: Arc<dyn Warehouse>,
    queue: Arc<QueryQueue>,
}

impl QueuedWarehouse {
    /// Runs `inner`'s statements through `queue`.
    pub fn new(inner: Arc<dyn Warehouse>, queue: Arc<QueryQueue>) -> Self {
        Self { inner, queue }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<QueryQueue> {
        &self.queue
    }
}

#[async_trait]
impl Warehouse for QueuedWarehouse {
    fn dialect(&self) -> SqlDialect {
        self.inner.dialect()
    }

    fn home_project(&self) -> Option<String> {
        self.inner.home_project()
    }

    async fn list_datasets(&self, page: &PageRequest) -> Result<Page<Dataset>> {
        self.inner.list_datasets(page).await
    }

    async fn get_dataset(&self, dataset_id: &str) -> Result<Dataset> {
        self.inner.get_dataset(dataset_id).await
    }

    async fn list_tables(
        &self,
        dataset_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TableSummary>> {
        self.inner.list_tables(dataset_id, page).await
    }

    async fn get_table(&self, table: &TableRef) -> Result<Table> {
        self.inner.get_table(table).await
    }

    async fn preview(&self, table: &TableRef, limit: u64) -> Result<QueryResult> {
        self.inner.preview(table, limit).await
    }

    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport> {
        self.inner.dry_run(job).await
    }

    async fn execute(&self, job: &QueryJob) -> Result<QueryResult> {
        let _slot = self
            .queue
            .enter(key_of(job), job.queue_watch.clone())
            .await?;
        self.inner.execute(job).await
    }

    async fn execute_stream(&self, job: &QueryJob) -> Result<RowStream> {
        let slot = self
            .queue
            .enter(key_of(job), job.queue_watch.clone())
            .await?;
        let mut stream = self.inner.execute_stream(job).await?;
        // The slot goes with the stream: the rows may still be computing as they are read.
        let batches = std::mem::replace(&mut stream.batches, Box::pin(futures::stream::empty()));
        stream.batches = Box::pin(batches.map(move |batch| {
            let _held = &slot;
            batch
        }));
        Ok(stream)
    }

    /// Reading a kept result runs nothing: it takes no slot.
    async fn read_result(
        &self,
        handle: &str,
        offset: u64,
        max_rows: u64,
        max_bytes: Option<u64>,
    ) -> Result<ResultPage> {
        self.inner
            .read_result(handle, offset, max_rows, max_bytes)
            .await
    }

    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_key: usize, queued: usize, wait_ms: u64) -> QueueLimits {
        QueueLimits {
            max_concurrent: max,
            max_concurrent_per_key: per_key,
            max_queued: queued,
            max_wait: Duration::from_millis(wait_ms),
        }
    }

    #[test]
    fn defaults_follow_the_warehouse() {
        let embedded = QueueLimits::for_warehouse(false, 2);
        assert_eq!(embedded.max_concurrent, 4);
        assert_eq!(embedded.max_concurrent_per_key, 2);
        let bigquery = QueueLimits::for_warehouse(true, 2);
        assert_eq!(bigquery.max_concurrent, 50);
        assert_eq!(bigquery.max_concurrent_per_key, 25);
    }

    #[tokio::test]
    async fn a_free_slot_is_taken_at_once_and_given_back_on_drop() {
        let q = QueryQueue::new(limits(2, 2, 10, 1000));
        let a = q.enter("a".into(), None).await.unwrap();
        let b = q.enter("a".into(), None).await.unwrap();
        assert_eq!(q.stats().running, 2);
        drop(a);
        assert_eq!(q.stats().running, 1);
        drop(b);
        let s = q.stats();
        assert_eq!((s.running, s.waiting, s.admitted, s.waited), (0, 0, 2, 0));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_a_retry_after() {
        let q = QueryQueue::new(limits(1, 1, 1, 5000));
        let _running = q.enter("a".into(), None).await.unwrap();
        let q2 = Arc::clone(&q);
        let waiting = tokio::spawn(async move { q2.enter("b".into(), None).await.map(drop) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(q.stats().waiting, 1);
        let Err(Error::QueueFull {
            retry_after,
            message,
        }) = q.enter("c".into(), None).await
        else {
            panic!("a full queue must refuse");
        };
        assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
        assert!(message.contains("busy"), "{message}");
        assert_eq!(q.stats().refused_full, 1);
        drop(_running);
        waiting.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_is_refused_and_leaves_the_queue() {
        let q = QueryQueue::new(limits(1, 1, 10, 100));
        let running = q.enter("a".into(), None).await.unwrap();
        let started = Instant::now();
        let refused = q.enter("b".into(), None).await;
        assert!(
            matches!(refused, Err(Error::QueueFull { .. })),
            "{refused:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        let s = q.stats();
        assert_eq!((s.waiting, s.timed_out, s.running), (0, 1, 1));
        drop(running);
        // The slot is free again, not held by the caller that gave up.
        let _again = q.enter("b".into(), None).await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let q = QueryQueue::new(limits(1, 1, 10, 10_000));
        let running = q.enter("a".into(), None).await.unwrap();
        let q2 = Arc::clone(&q);
        let waiter = tokio::spawn(async move { q2.enter("b".into(), None).await.map(drop) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(q.stats().waiting, 1);
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(q.stats().waiting, 0);
        drop(running);
        assert_eq!(q.stats().running, 0);
    }

    /// One slot; principal `heavy` queues 6 queries, then `x` and `y` one each: the slots go
    /// heavy, x, y, heavy, … — the late principals wait for one heavy query each, not six.
    #[tokio::test]
    async fn slots_go_to_principals_in_turn() {
        let q = QueryQueue::new(limits(1, 1, 100, 10_000));
        let first = q.enter("heavy".into(), None).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let mut spawn = |key: &str, n: usize| {
            for _ in 0..n {
                let (q, order, key) = (Arc::clone(&q), Arc::clone(&order), key.to_string());
                tasks.push(tokio::spawn(async move {
                    let slot = q.enter(key.clone(), None).await.unwrap();
                    order.lock().unwrap().push(key);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    drop(slot);
                }));
            }
        };
        spawn("heavy", 6);
        tokio::time::sleep(Duration::from_millis(30)).await;
        spawn("x", 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        spawn("y", 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(q.stats().waiting, 8);
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            [
                "heavy", "x", "y", "heavy", "heavy", "heavy", "heavy", "heavy"
            ],
        );
    }

    #[tokio::test]
    async fn one_principal_gets_at_most_its_share() {
        let q = QueryQueue::new(limits(4, 2, 100, 10_000));
        let _a1 = q.enter("a".into(), None).await.unwrap();
        let _a2 = q.enter("a".into(), None).await.unwrap();
        let q2 = Arc::clone(&q);
        let third = tokio::spawn(async move { q2.enter("a".into(), None).await.map(drop) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // a waits at its own limit while two slots are free for others.
        assert_eq!((q.stats().running, q.stats().waiting), (2, 1));
        let _b = q.enter("b".into(), None).await.unwrap();
        assert_eq!(q.stats().running, 3);
        drop(_a1);
        third.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn anonymous_callers_are_not_held_to_the_per_key_share() {
        let q = QueryQueue::new(limits(3, 1, 100, 10_000));
        let _slots: Vec<Slot> =
            futures::future::try_join_all((0..3).map(|_| q.enter(String::new(), None)))
                .await
                .unwrap();
        assert_eq!(q.stats().running, 3);
    }

    #[tokio::test]
    async fn watches_hear_their_position_then_zero() {
        let q = QueryQueue::new(limits(1, 1, 100, 10_000));
        let running = q.enter("a".into(), None).await.unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for key in ["a", "a", "b"] {
            let q = Arc::clone(&q);
            let heard = Arc::clone(&heard);
            let watched = key == "b";
            tasks.push(tokio::spawn(async move {
                let watch =
                    watched.then(|| QueueWatch::new(move |p| heard.lock().unwrap().push(p)));
                let slot = q.enter(key.into(), watch).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // b arrived behind a's two waiting queries but gets the second turn.
        assert_eq!(*heard.lock().unwrap(), vec![2]);
        drop(running);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*heard.lock().unwrap(), vec![2, 1, 0]);
    }
}
