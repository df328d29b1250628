//! Helpers shared by the planner's integration tests: the demo warehouse, generation contexts
//! built the way the ask pipeline builds them, guarded execution and result comparison.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bqai_core::ask::GenerationContext;
use bqai_core::guard::{self, GuardPolicy};
use bqai_core::model::{DatasetScope, QueryJob, QueryResult, SqlDialect, Table, TableRef, Value};
use bqai_core::ports::Warehouse;
use bqai_core::semantic::SemanticModel;
use bqai_local::{DEMO_SEMANTIC_MODEL, LocalConfig, LocalWarehouse};
use bqai_planner::Planner;

pub const SHOP_TABLES: [&str; 4] = ["customers", "orders", "order_items", "products"];

/// The embedded warehouse with the demo dataset.
pub async fn warehouse() -> Arc<LocalWarehouse> {
    Arc::new(
        LocalWarehouse::new(LocalConfig {
            demo: true,
            ..LocalConfig::default()
        })
        .await
        .unwrap(),
    )
}

/// History kept in memory, to see what the planner's sampling recorded.
#[derive(Default)]
pub struct VecHistory(pub std::sync::Mutex<Vec<bqai_core::history::HistoryEntry>>);

#[async_trait::async_trait]
impl bqai_core::ports::HistoryStore for VecHistory {
    async fn record(&self, e: &bqai_core::history::HistoryEntry) -> bqai_core::Result<()> {
        self.0.lock().unwrap().push(e.clone());
        Ok(())
    }
    async fn get(&self, id: &str) -> bqai_core::Result<Option<bqai_core::history::HistoryEntry>> {
        Ok(self.0.lock().unwrap().iter().find(|e| e.id == id).cloned())
    }
    async fn list(
        &self,
        _: &bqai_core::history::HistoryFilter,
        _: &bqai_core::model::PageRequest,
    ) -> bqai_core::Result<bqai_core::model::Page<bqai_core::history::HistoryEntry>> {
        Ok(bqai_core::model::Page {
            items: self.0.lock().unwrap().clone(),
            next_page_token: None,
        })
    }
    async fn health(&self) -> bqai_core::model::ComponentHealth {
        bqai_core::model::ComponentHealth::ok("vec")
    }
}

/// The planner as the service builds it: value sampling through a query service (guard, dry
/// run, caps, history) over `wh`, with `limits`; its history is returned too.
pub fn planner_with(
    wh: Arc<LocalWarehouse>,
    limits: bqai_core::query::QueryLimits,
    sampling: bqai_core::system::SystemQueryLimits,
) -> (Planner, Arc<VecHistory>) {
    let history = Arc::new(VecHistory::default());
    let queries = bqai_core::query::QueryService::new(wh, history.clone(), limits);
    let system = bqai_core::system::GuardedSystemQueries::new(
        queries,
        bqai_core::system::GuardedSystemQueries::PLANNER,
        sampling,
    );
    (Planner::new(Arc::new(system)), history)
}

/// [`planner_with`] the default limits.
pub fn planner(wh: Arc<LocalWarehouse>) -> Planner {
    planner_with(wh, Default::default(), Default::default()).0
}

/// The four shop tables with their schemas, as the catalog gives them.
pub async fn shop_tables(wh: &dyn Warehouse) -> Vec<Table> {
    let mut out = Vec::new();
    for t in SHOP_TABLES {
        out.push(wh.get_table(&TableRef::new("shop", t)).await.unwrap());
    }
    out
}

/// The shop semantic model.
pub fn model() -> Arc<SemanticModel> {
    Arc::new(SemanticModel::from_toml(DEMO_SEMANTIC_MODEL).unwrap())
}

/// The day the tests ask their questions: relative dates ("last month") are read against it.
/// The demo data runs to 2025-12-31; this is the blind batch's `TODAY`.
pub fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 11, 20).unwrap()
}

/// A first-attempt context for `question`.
pub fn context(
    question: &str,
    tables: &[Table],
    semantic: Option<Arc<SemanticModel>>,
    dialect: SqlDialect,
) -> GenerationContext {
    GenerationContext {
        question: question.to_owned(),
        dialect,
        dataset: Some("shop".to_owned()),
        tables: tables.to_vec(),
        semantic,
        examples: Vec::new(),
        failed_attempts: Vec::new(),
        max_rows: 1000,
        conversation: Vec::new(),
        today: today(),
    }
}

/// The guard policy of the pipeline for `dialect`.
pub fn policy(dialect: SqlDialect, home_project: Option<String>) -> GuardPolicy {
    GuardPolicy {
        dialect,
        home_project,
        allowed: DatasetScope::All,
        default_dataset: Some("shop".to_owned()),
        max_rows: 10_000,
    }
}

/// Guards, dry-runs and runs `sql` on the demo warehouse.
pub async fn run_guarded(wh: &LocalWarehouse, sql: &str) -> Result<QueryResult, String> {
    let guarded = guard::check(sql, &policy(SqlDialect::DataFusion, wh.home_project()))
        .map_err(|e| format!("guard: {e}"))?;
    let job = QueryJob {
        query_id: "planner-test".to_owned(),
        sql: guarded.sql,
        default_dataset: Some("shop".to_owned()),
        max_rows: 10_000,
        timeout: Duration::from_secs(120),
        max_bytes_billed: None,
        use_cache: false,
        referenced_tables: guarded.referenced_tables,
        labels: Vec::new(),
        parameters: bqai_core::model::QueryParameters::None,
        max_result_bytes: None,
        principal: None,
        queue_watch: None,
        first_batch_rows: None,
    };
    wh.dry_run(&job)
        .await
        .map_err(|e| format!("dry run: {e}"))?;
    wh.execute(&job).await.map_err(|e| format!("execute: {e}"))
}

/// A cell reduced to what matters for comparing answers: numbers as numbers whatever their
/// type, dates and midnight timestamps as the same day.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Num(f64),
    Text(String),
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Text(b.to_string()),
        Value::Int64(i) => Cell::Num(*i as f64),
        Value::Float64(f) => Cell::Num(*f),
        Value::Numeric(s) => s.parse().map_or_else(|_| Cell::Text(s.clone()), Cell::Num),
        Value::Date(d) => Cell::Text(d.to_string()),
        Value::Datetime(dt) => {
            if dt.time() == chrono::NaiveTime::MIN {
                Cell::Text(dt.date().to_string())
            } else {
                Cell::Text(dt.to_string())
            }
        }
        Value::Timestamp(ts) => {
            let naive = ts.naive_utc();
            if naive.time() == chrono::NaiveTime::MIN {
                Cell::Text(naive.date().to_string())
            } else {
                Cell::Text(naive.to_string())
            }
        }
        other => Cell::Text(other.to_text()),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9)
}

fn cell_eq(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Null, Cell::Null) => true,
        (Cell::Num(x), Cell::Num(y)) => close(*x, *y),
        (Cell::Text(x), Cell::Text(y)) => x == y,
        _ => false,
    }
}

fn cell_cmp(a: &Cell, b: &Cell) -> Ordering {
    let rank = |c: &Cell| match c {
        Cell::Null => 0,
        Cell::Num(_) => 1,
        Cell::Text(_) => 2,
    };
    match (a, b) {
        (Cell::Num(x), Cell::Num(y)) => x.total_cmp(y),
        (Cell::Text(x), Cell::Text(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A row as a multiset of cells (column names and column order ignored).
fn row_key(row: &[Value]) -> Vec<Cell> {
    let mut cells: Vec<Cell> = row.iter().map(cell).collect();
    cells.sort_by(cell_cmp);
    cells
}

fn row_eq(a: &[Cell], b: &[Cell]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| cell_eq(x, y))
}

fn rows_cmp(a: &[Cell], b: &[Cell]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = cell_cmp(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Whether two results hold the same rows: as multisets, or in the same order when
/// `ordered`. Floats compare with a relative tolerance of 1e-6.
pub fn same_rows(got: &QueryResult, want: &QueryResult, ordered: bool) -> Result<(), String> {
    if got.rows.len() != want.rows.len() {
        return Err(format!(
            "{} rows, expected {}",
            got.rows.len(),
            want.rows.len()
        ));
    }
    let mut g: Vec<Vec<Cell>> = got.rows.iter().map(|r| row_key(r)).collect();
    let mut w: Vec<Vec<Cell>> = want.rows.iter().map(|r| row_key(r)).collect();
    if !ordered {
        g.sort_by(|a, b| rows_cmp(a, b));
        w.sort_by(|a, b| rows_cmp(a, b));
    }
    if g.iter().zip(&w).all(|(a, b)| row_eq(a, b)) {
        return Ok(());
    }
    if !ordered {
        // Sorting may have split near-equal floats differently: match greedily.
        let mut left: Vec<Option<&Vec<Cell>>> = g.iter().map(Some).collect();
        let all =
            w.iter().all(
                |wr| match left.iter().position(|l| l.is_some_and(|l| row_eq(l, wr))) {
                    Some(p) => {
                        left[p] = None;
                        true
                    }
                    None => false,
                },
            );
        if all {
            return Ok(());
        }
    }
    let first = g
        .iter()
        .zip(&w)
        .position(|(a, b)| !row_eq(a, b))
        .unwrap_or(0);
    Err(format!(
        "rows differ (first at {first}: got {:?}, expected {:?})",
        g.get(first),
        w.get(first)
    ))
}
