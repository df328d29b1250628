//! The query queue (`query.max_concurrent`): a busy warehouse answers 503 `QUEUE_FULL` with a
//! `Retry-After`, a wait has a deadline, cache hits never queue, and a WebSocket ask hears
//! its place in the queue. The warehouse is the embedded demo behind a gate that holds every
//! statement until the test opens it, so "busy" is exact rather than a race with a slow query.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::model::{
    ComponentHealth, Dataset, DryRunReport, Page, PageRequest, QueryJob, QueryResult, SqlDialect,
    Table, TableRef, TableSummary,
};
use bqai_core::ports::Warehouse;
use serde_json::json;

use crate::helpers::{ScriptedGenerator, Step, TestApp, demo_warehouse, spawn_app_over_with};

/// The demo warehouse, whose statements wait until the gate is open.
struct GatedWarehouse {
    inner: Arc<dyn Warehouse>,
    open: tokio::sync::watch::Sender<bool>,
    /// Statements that reached the warehouse (past the queue).
    entered: AtomicUsize,
}

impl GatedWarehouse {
    async fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: demo_warehouse().await,
            open: tokio::sync::watch::Sender::new(false),
            entered: AtomicUsize::new(0),
        })
    }

    fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    async fn wait_entered(&self, n: usize) {
        let started = Instant::now();
        while self.entered.load(Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{n} statements never reached the warehouse"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[async_trait]
impl Warehouse for GatedWarehouse {
    fn dialect(&self) -> SqlDialect {
        self.inner.dialect()
    }
    fn home_project(&self) -> Option<String> {
        self.inner.home_project()
    }
    async fn list_datasets(&self, page: &PageRequest) -> Result<Page<Dataset>> {
        self.inner.list_datasets(page).await
    }
    async fn get_dataset(&self, id: &str) -> Result<Dataset> {
        self.inner.get_dataset(id).await
    }
    async fn list_tables(&self, id: &str, page: &PageRequest) -> Result<Page<TableSummary>> {
        self.inner.list_tables(id, page).await
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
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        // The sender lives as long as `self`.
        let _ = open.wait_for(|open| *open).await;
        self.inner.execute(job).await
    }
    async fn health(&self) -> ComponentHealth {
        self.inner.health().await
    }
}

/// A metric's value as `/metrics` reports it (0 when absent).
async fn metric(app: &TestApp, line_prefix: &str) -> f64 {
    let text = app.text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_waiting(app: &TestApp, n: f64) {
    let started = Instant::now();
    while metric(app, "bqai_query_queue_waiting ").await < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{n} queries never queued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn app_with_one_slot(
    warehouse: Arc<GatedWarehouse>,
    max_queued: usize,
    timeout_ms: u64,
) -> Arc<TestApp> {
    let generator = ScriptedGenerator::new(vec![Step::Sql(
        "SELECT COUNT(*) AS n FROM shop.customers WHERE country = 'Germany'",
    )]);
    Arc::new(
        spawn_app_over_with(warehouse, Some(generator), |s| {
            s.query.max_concurrent = Some(1);
            s.query.max_queued = max_queued;
            s.query.queue_timeout_ms = timeout_ms;
        })
        .await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_warehouse_answers_503_queue_full_and_cache_hits_still_answer() {
    let warehouse = GatedWarehouse::new().await;
    let app = app_with_one_slot(Arc::clone(&warehouse), 1, 20_000).await;
    let run = |sql: &'static str| {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.query(sql).await })
    };
    let first = run("SELECT COUNT(*) AS n FROM shop.customers");
    warehouse.wait_entered(1).await;
    let second = run("SELECT COUNT(*) AS n FROM shop.orders");
    wait_waiting(&app, 1.0).await;

    // One running, one waiting: the queue is full.
    let refused = app.query("SELECT COUNT(*) AS n FROM shop.products").await;
    refused.assert_error(503, "QUEUE_FULL");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("busy"), "{message}");
    assert_eq!(
        warehouse.entered.load(Ordering::SeqCst),
        1,
        "nothing else ran"
    );

    warehouse.set_open(true);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    assert_eq!(
        metric(&app, "bqai_query_queue_refused_total{reason=\"full\"} ").await,
        1.0
    );
    assert_eq!(metric(&app, "bqai_query_queue_waited_total ").await, 1.0);
    assert!(metric(&app, "bqai_query_queue_admitted_total ").await >= 2.0);
    assert_eq!(metric(&app, "bqai_query_queue_running ").await, 0.0);

    // Full again; a result in the cache still answers at once: hits never queue.
    warehouse.set_open(false);
    let third = run("SELECT COUNT(*) AS n FROM shop.order_items");
    warehouse.wait_entered(3).await;
    let fourth = run("SELECT COUNT(*) AS n FROM shop.products");
    wait_waiting(&app, 1.0).await;
    let hit = app.query("SELECT COUNT(*) AS n FROM shop.customers").await;
    assert_eq!(hit.status, 200, "{}", hit.body);
    assert_eq!(hit.body["stats"]["cache_hit"], true, "{}", hit.body);
    warehouse.set_open(true);
    assert_eq!(third.await.unwrap().status, 200);
    assert_eq!(fourth.await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_that_waits_past_the_deadline_is_refused_without_running() {
    let warehouse = GatedWarehouse::new().await;
    let app = app_with_one_slot(Arc::clone(&warehouse), 10, 300).await;
    let first = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.query("SELECT COUNT(*) AS n FROM shop.customers").await })
    };
    warehouse.wait_entered(1).await;
    let started = Instant::now();
    let late = app.query("SELECT COUNT(*) AS n FROM shop.orders").await;
    late.assert_error(503, "QUEUE_FULL");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let message = late.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("waited"), "{message}");
    assert!(late.header("retry-after").is_some());
    assert_eq!(
        metric(&app, "bqai_query_queue_refused_total{reason=\"timeout\"} ").await,
        1.0
    );
    assert_eq!(metric(&app, "bqai_query_queue_waiting ").await, 0.0);
    warehouse.set_open(true);
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(
        warehouse.entered.load(Ordering::SeqCst),
        1,
        "the late one never ran"
    );
    // The history says why it did not run.
    let history = app.get("/api/v1/history").await;
    assert_eq!(history.status, 200, "{}", history.body);
    let entries = history.body["data"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["error_code"] == "QUEUE_FULL"),
        "{}",
        history.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_ask_hears_its_place_in_the_queue() {
    let warehouse = GatedWarehouse::new().await;
    let app = app_with_one_slot(Arc::clone(&warehouse), 10, 20_000).await;
    let blocker = {
        let app = Arc::clone(&app);
        tokio::spawn(async move { app.query("SELECT COUNT(*) AS n FROM shop.orders").await })
    };
    warehouse.wait_entered(1).await;

    let mut ws = crate::ws::connect(&app).await;
    crate::ws::send(
        &mut ws,
        json!({"type": "ask", "question": "how many German customers", "request_id": "q"}),
    )
    .await;
    let mut events = Vec::new();
    while !events
        .iter()
        .any(|e: &serde_json::Value| e["stage"] == "queued")
    {
        events.push(crate::ws::next_event(&mut ws).await);
    }
    let queued = events.last().unwrap();
    assert_eq!(
        *queued,
        json!({"type": "status", "request_id": "q", "stage": "queued", "position": 1}),
    );
    // `running` came first (the ask reached the warehouse's door), then `queued`.
    let stages: Vec<_> = events.iter().filter_map(|e| e["stage"].as_str()).collect();
    assert_eq!(
        stages.last_chunk::<2>(),
        Some(&["running", "queued"]),
        "{events:#?}"
    );

    warehouse.set_open(true);
    let mut rest = Vec::new();
    loop {
        let ev = crate::ws::next_event(&mut ws).await;
        let done = matches!(ev["type"].as_str(), Some("done" | "error"));
        rest.push(ev);
        if done {
            break;
        }
    }
    assert_eq!(
        rest[0],
        json!({"type": "status", "request_id": "q", "stage": "running"})
    );
    assert!(rest.iter().any(|e| e["type"] == "result"), "{rest:#?}");
    assert_eq!(rest.last().unwrap()["type"], "done", "{rest:#?}");
    assert_eq!(blocker.await.unwrap().status, 200);
}
