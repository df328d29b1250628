//! The query pipeline against scripted fakes: what reaches the warehouse, what is refused
//! before it, and what history records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bqai_core::catalog::CatalogService;
use bqai_core::history::{HistoryEntry, HistoryFilter, QueryStatus};
use bqai_core::model::*;
use bqai_core::plan_cache::PlanCache;
use bqai_core::ports::{Cache, HistoryStore, Warehouse};
use bqai_core::query::{QueryLimits, QueryService};
use bqai_core::result_cache::{CachePolicy, CachedWarehouse};
use bqai_core::{Error, Result};

/// A warehouse that answers from a script and records what it was asked to do.
#[derive(Default)]
struct ScriptedWarehouse {
    dry_run_tables: Vec<TableRef>,
    statement_type: Option<String>,
    bytes: u64,
    rows: usize,
    executed: Mutex<Vec<QueryJob>>,
    dry_runs: Mutex<Vec<QueryJob>>,
    execute_delay: Duration,
}

#[async_trait]
impl Warehouse for ScriptedWarehouse {
    fn dialect(&self) -> SqlDialect {
        SqlDialect::BigQuery
    }
    fn home_project(&self) -> Option<String> {
        Some("proj".into())
    }
    async fn list_datasets(&self, _: &PageRequest) -> Result<Page<Dataset>> {
        let ds = |id: &str| Dataset {
            id: id.into(),
            project: None,
            description: None,
            location: None,
            table_count: None,
        };
        Ok(Page {
            items: vec![ds("shop"), ds("secret")],
            next_page_token: None,
        })
    }
    async fn get_dataset(&self, id: &str) -> Result<Dataset> {
        Err(Error::NotFound(format!("dataset {id}")))
    }
    async fn list_tables(&self, id: &str, _: &PageRequest) -> Result<Page<TableSummary>> {
        Err(Error::NotFound(format!("dataset {id}")))
    }
    async fn get_table(&self, t: &TableRef) -> Result<Table> {
        Err(Error::NotFound(format!("table {t}")))
    }
    async fn preview(&self, t: &TableRef, _: u64) -> Result<QueryResult> {
        Err(Error::NotFound(format!("table {t}")))
    }
    async fn dry_run(&self, job: &QueryJob) -> Result<DryRunReport> {
        self.dry_runs.lock().unwrap().push(job.clone());
        Ok(DryRunReport {
            bytes_processed: self.bytes,
            statement_type: self.statement_type.clone(),
            referenced_tables: if self.dry_run_tables.is_empty() {
                job.referenced_tables.clone()
            } else {
                self.dry_run_tables.clone()
            },
            schema: vec![Field::new("n", FieldType::Int64)],
        })
    }
    async fn execute(&self, job: &QueryJob) -> Result<QueryResult> {
        self.executed.lock().unwrap().push(job.clone());
        if !self.execute_delay.is_zero() {
            tokio::time::sleep(self.execute_delay).await;
        }
        // Deliberately ignores max_rows: the service must cap anyway.
        Ok(QueryResult {
            columns: vec![Field::new("n", FieldType::Int64)],
            rows: (0..self.rows)
                .map(|i| vec![Value::Int64(i as i64)])
                .collect(),
            truncated: false,
            truncated_at_bytes: None,
            stats: QueryStats {
                bytes_processed: self.bytes,
                bytes_billed: self.bytes,
                ..QueryStats::default()
            },
        })
    }
    async fn health(&self) -> ComponentHealth {
        ComponentHealth::ok("scripted")
    }
}

#[derive(Default)]
struct VecHistory {
    entries: Mutex<Vec<HistoryEntry>>,
    fail: bool,
}

#[async_trait]
impl HistoryStore for VecHistory {
    async fn record(&self, e: &HistoryEntry) -> Result<()> {
        if self.fail {
            return Err(Error::unavailable("history", std::io::Error::other("down")));
        }
        self.entries.lock().unwrap().push(e.clone());
        Ok(())
    }
    async fn get(&self, id: &str) -> Result<Option<HistoryEntry>> {
        Ok(self
            .entries
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.id == id)
            .cloned())
    }
    async fn list(&self, _: &HistoryFilter, _: &PageRequest) -> Result<Page<HistoryEntry>> {
        Ok(Page {
            items: self.entries.lock().unwrap().clone(),
            next_page_token: None,
        })
    }
    async fn health(&self) -> ComponentHealth {
        ComponentHealth::ok("vec")
    }
}

/// Value and tags of one cache entry.
type Entry = (Vec<u8>, Vec<String>);

/// A cache on a plain map, enough to observe the decorator.
#[derive(Default)]
struct MapCache {
    map: Mutex<std::collections::HashMap<String, Entry>>,
}

#[async_trait]
impl Cache for MapCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.map.lock().unwrap().get(key).map(|(v, _)| v.clone()))
    }
    async fn set(&self, key: &str, value: Vec<u8>, _: Duration, tags: &[String]) -> Result<()> {
        self.map
            .lock()
            .unwrap()
            .insert(key.into(), (value, tags.to_vec()));
        Ok(())
    }
    async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        let mut map = self.map.lock().unwrap();
        let before = map.len();
        map.retain(|_, (_, tags)| !tags.iter().any(|t| t == tag));
        Ok((before - map.len()) as u64)
    }
    async fn health(&self) -> ComponentHealth {
        ComponentHealth::ok("map")
    }
}

fn limits() -> QueryLimits {
    QueryLimits {
        allowed: DatasetScope::from_list(["shop"]),
        max_bytes_billed: Some(1_000_000),
        ..QueryLimits::default()
    }
}

fn service(wh: Arc<ScriptedWarehouse>, history: Arc<VecHistory>) -> QueryService {
    QueryService::new(wh, history, limits())
}

fn anyone() -> Principal {
    Principal::anonymous(DatasetScope::All)
}

#[tokio::test]
async fn accepted_query_runs_guarded_sql_and_is_recorded() {
    let wh = Arc::new(ScriptedWarehouse {
        bytes: 1000,
        rows: 5,
        ..Default::default()
    });
    let history = Arc::new(VecHistory::default());
    let svc = service(wh.clone(), history.clone());
    let mut req = QueryRequest::new("SELECT n FROM orders");
    req.default_dataset = Some("shop".into());
    let out = svc.run(req, &anyone()).await.unwrap();
    assert_eq!(out.sql, "SELECT n FROM shop.orders LIMIT 1000");
    assert_eq!(out.result.rows.len(), 5);
    assert!(!out.result.truncated);
    let executed = wh.executed.lock().unwrap();
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0].sql, out.sql);
    assert_eq!(executed[0].max_bytes_billed, Some(1_000_000));
    assert!(executed[0].labels.iter().any(|(k, _)| k == "bqai_query_id"));
    let entries = history.entries.lock().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, QueryStatus::Succeeded);
    assert_eq!(entries[0].id, out.query_id);
    assert_eq!(entries[0].row_count, 5);
    assert_eq!(entries[0].bytes_billed, 1000);
}

#[tokio::test]
async fn rejected_sql_never_reaches_the_warehouse() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let history = Arc::new(VecHistory::default());
    let svc = service(wh.clone(), history.clone());
    let err = svc
        .run(
            QueryRequest::new("DELETE FROM shop.orders WHERE true"),
            &anyone(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SQL_REJECTED");
    assert!(wh.dry_runs.lock().unwrap().is_empty());
    assert!(wh.executed.lock().unwrap().is_empty());
    let counted: Vec<_> = svc
        .rejections()
        .snapshot()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(counted, [(bqai_core::guard::RejectReason::Dml, 1)]);
    let entries = history.entries.lock().unwrap();
    assert_eq!(entries[0].status, QueryStatus::Rejected);
    assert_eq!(entries[0].error_code.as_deref(), Some("SQL_REJECTED"));
    assert_eq!(entries[0].sql_executed, None);
}

#[tokio::test]
async fn forbidden_dataset_is_403_before_the_warehouse() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let svc = service(wh.clone(), Arc::new(VecHistory::default()));
    let err = svc
        .run(QueryRequest::new("SELECT * FROM secret.t"), &anyone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert!(wh.dry_runs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tables_the_dry_run_reveals_are_checked_too() {
    // A view in `shop` that reads `secret`: only the warehouse can see that.
    let wh = Arc::new(ScriptedWarehouse {
        dry_run_tables: vec![TableRef::new("secret", "salaries")],
        ..Default::default()
    });
    let svc = service(wh.clone(), Arc::new(VecHistory::default()));
    let err = svc
        .run(
            QueryRequest::new("SELECT * FROM shop.innocent_view"),
            &anyone(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    assert!(wh.executed.lock().unwrap().is_empty());
    let counted: Vec<_> = svc
        .rejections()
        .snapshot()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        counted,
        [(bqai_core::guard::RejectReason::DatasetNotAllowed, 1)],
        "a refusal after the dry run is a guard rejection too"
    );
}

#[tokio::test]
async fn non_select_statement_type_from_dry_run_is_rejected() {
    let wh = Arc::new(ScriptedWarehouse {
        statement_type: Some("SCRIPT".into()),
        ..Default::default()
    });
    let svc = service(wh.clone(), Arc::new(VecHistory::default()));
    let err = svc
        .run(QueryRequest::new("SELECT 1 AS n"), &anyone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SQL_REJECTED");
    assert!(wh.executed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn byte_cap_is_checked_on_the_estimate() {
    let wh = Arc::new(ScriptedWarehouse {
        bytes: 2_000_000,
        ..Default::default()
    });
    let history = Arc::new(VecHistory::default());
    let svc = service(wh.clone(), history.clone());
    let err = svc
        .run(QueryRequest::new("SELECT * FROM shop.orders"), &anyone())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::CostLimitExceeded {
            estimated_bytes: 2_000_000,
            limit_bytes: 1_000_000
        }
    ));
    assert!(wh.executed.lock().unwrap().is_empty());
    assert_eq!(
        history.entries.lock().unwrap()[0].status,
        QueryStatus::Rejected
    );
}

#[tokio::test]
async fn dry_run_only_plans() {
    let wh = Arc::new(ScriptedWarehouse {
        bytes: 1 << 40,
        ..Default::default()
    });
    let svc = QueryService::new(
        wh.clone(),
        Arc::new(VecHistory::default()),
        QueryLimits {
            max_bytes_billed: None,
            ..limits()
        },
    );
    let mut req = QueryRequest::new("SELECT * FROM shop.orders");
    req.dry_run = true;
    let out = svc.run(req, &anyone()).await.unwrap();
    assert!(out.dry_run);
    assert!(out.result.rows.is_empty());
    assert_eq!(out.result.stats.bytes_processed, 1 << 40);
    assert!((out.result.stats.estimated_cost_usd - 6.25).abs() < 1e-9);
    assert!(wh.executed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn rows_beyond_the_cap_are_cut_even_if_the_adapter_ignores_it() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 50,
        ..Default::default()
    });
    let svc = service(wh, Arc::new(VecHistory::default()));
    let mut req = QueryRequest::new("SELECT n FROM shop.t");
    req.max_rows = Some(10);
    let out = svc.run(req, &anyone()).await.unwrap();
    assert_eq!(out.result.rows.len(), 10);
    assert!(out.result.truncated);
}

#[tokio::test]
async fn a_history_failure_does_not_fail_the_query() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        ..Default::default()
    });
    let history = Arc::new(VecHistory {
        fail: true,
        ..Default::default()
    });
    let svc = service(wh, history);
    assert!(
        svc.run(QueryRequest::new("SELECT 1 AS n"), &anyone())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn viewers_may_only_dry_run() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let svc = service(wh, Arc::new(VecHistory::default()));
    let viewer = Principal {
        id: Some("key_1".into()),
        role: Role::Viewer,
        datasets: DatasetScope::All,
        rate_limit_per_minute: None,
        daily_byte_quota: None,
    };
    let err = svc
        .run(QueryRequest::new("SELECT 1 AS n"), &viewer)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)));
    let mut req = QueryRequest::new("SELECT 1 AS n");
    req.dry_run = true;
    assert!(svc.run(req, &viewer).await.is_ok());
}

#[tokio::test]
async fn invalid_options_are_invalid_requests() {
    let svc = service(
        Arc::new(ScriptedWarehouse::default()),
        Arc::new(VecHistory::default()),
    );
    for req in [
        QueryRequest::new("  "),
        QueryRequest {
            max_rows: Some(0),
            ..QueryRequest::new("SELECT 1")
        },
        QueryRequest {
            timeout: Some(Duration::from_secs(100_000)),
            ..QueryRequest::new("SELECT 1")
        },
        QueryRequest {
            default_dataset: Some("not valid!".into()),
            ..QueryRequest::new("SELECT 1")
        },
    ] {
        let err = svc.run(req, &anyone()).await.unwrap_err();
        assert_eq!(err.code(), "INVALID_REQUEST", "{err:?}");
    }
}

#[tokio::test]
async fn cached_warehouse_answers_repeats_and_invalidates_by_dataset() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 3,
        bytes: 10,
        ..Default::default()
    });
    let cached = Arc::new(CachedWarehouse::new(
        wh.clone(),
        Arc::new(MapCache::default()),
        CachePolicy::default(),
    ));
    let svc = QueryService::new(cached.clone(), Arc::new(VecHistory::default()), limits());
    let first = svc
        .run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    assert!(!first.result.stats.cache_hit);
    let second = svc
        .run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    assert!(second.result.stats.cache_hit);
    assert_eq!(second.result.stats.bytes_billed, 0);
    assert_eq!(second.result.rows, first.result.rows);
    assert_eq!(wh.executed.lock().unwrap().len(), 1);

    let no_cache = QueryRequest {
        use_cache: false,
        ..QueryRequest::new("SELECT n FROM shop.t")
    };
    assert!(
        !svc.run(no_cache, &anyone())
            .await
            .unwrap()
            .result
            .stats
            .cache_hit
    );

    assert!(cached.invalidate_dataset("shop").await.unwrap() >= 1);
    let third = svc
        .run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    assert!(!third.result.stats.cache_hit);
}

#[tokio::test]
async fn catalog_lists_only_allowed_datasets() {
    let wh = Arc::new(ScriptedWarehouse::default());
    let catalog = CatalogService::new(wh, DatasetScope::from_list(["shop"]), 100);
    let page = catalog
        .list_datasets(&anyone(), &PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["shop"]);
    let err = catalog.get_dataset(&anyone(), "secret").await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_concurrent_queries_run_once() {
    for max_result_bytes in [usize::MAX, 1] {
        // Also when the result is too large to cache: waiters share the run, not the cache.
        let wh = Arc::new(ScriptedWarehouse {
            rows: 5,
            execute_delay: Duration::from_millis(200),
            ..Default::default()
        });
        let cached = Arc::new(CachedWarehouse::new(
            wh.clone(),
            Arc::new(MapCache::default()),
            CachePolicy {
                max_result_bytes,
                ..CachePolicy::default()
            },
        ));
        let svc = QueryService::new(cached.clone(), Arc::new(VecHistory::default()), limits());
        let runs = (0..8).map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let mut req = QueryRequest::new("SELECT n FROM shop.orders");
                req.default_dataset = Some("shop".into());
                svc.run(req, &anyone()).await
            })
        });
        for r in futures::future::join_all(runs).await {
            assert_eq!(r.unwrap().unwrap().result.rows.len(), 5);
        }
        assert_eq!(
            wh.executed.lock().unwrap().len(),
            1,
            "eight identical queries, one execution (max_result_bytes {max_result_bytes})"
        );
        assert_eq!(cached.coalesced(), 7, "seven joined the first");
        // Once finished, a new query runs again (nothing stale is left in flight) unless cached.
        let mut req = QueryRequest::new("SELECT n FROM shop.orders");
        req.default_dataset = Some("shop".into());
        svc.run(req, &anyone()).await.unwrap();
        let expected = if max_result_bytes == 1 { 2 } else { 1 };
        assert_eq!(wh.executed.lock().unwrap().len(), expected);
    }
}

#[test]
fn result_ttl_can_be_set_per_dataset() {
    let mut policy = CachePolicy::default();
    policy
        .result_ttl_by_dataset
        .insert("finance".into(), Duration::from_secs(3600));
    policy
        .result_ttl_by_dataset
        .insert("live".into(), Duration::from_secs(10));
    let t = |ds: &str| TableRef::new(ds, "t");
    assert_eq!(
        policy.result_ttl_for(&[t("shop")]),
        Duration::from_secs(300)
    );
    assert_eq!(
        policy.result_ttl_for(&[t("Finance")]),
        Duration::from_secs(3600)
    );
    assert_eq!(
        policy.result_ttl_for(&[t("finance"), t("live"), t("shop")]),
        Duration::from_secs(10),
        "the shortest wins"
    );
}

/// A usage ledger in a map; `down` makes every call fail.
#[derive(Default)]
struct MapLedger {
    used: Mutex<std::collections::HashMap<String, u64>>,
    down: bool,
}

#[async_trait]
impl bqai_core::ports::UsageLedger for MapLedger {
    async fn bytes_used(&self, principal: &str, _day: chrono::NaiveDate) -> Result<u64> {
        if self.down {
            return Err(Error::unavailable("the store", "down"));
        }
        Ok(*self.used.lock().unwrap().get(principal).unwrap_or(&0))
    }
    async fn charge_bytes(
        &self,
        principal: &str,
        _day: chrono::NaiveDate,
        bytes: u64,
    ) -> Result<u64> {
        let mut used = self.used.lock().unwrap();
        let total = used.entry(principal.to_string()).or_default();
        *total += bytes;
        Ok(*total)
    }
}

fn with_quota(id: &str, quota: u64) -> Principal {
    Principal {
        id: Some(id.into()),
        role: Role::Analyst,
        datasets: DatasetScope::All,
        rate_limit_per_minute: None,
        daily_byte_quota: Some(quota),
    }
}

#[tokio::test]
async fn daily_quota_is_checked_on_the_estimate_and_charged_with_bytes_billed() {
    let wh = Arc::new(ScriptedWarehouse {
        bytes: 400,
        rows: 1,
        ..Default::default()
    });
    let ledger = Arc::new(MapLedger::default());
    let svc =
        service(wh.clone(), Arc::new(VecHistory::default())).with_usage_ledger(ledger.clone());
    let alice = with_quota("alice", 1000);
    let sql = || QueryRequest::new("SELECT n FROM shop.orders");
    svc.run(sql(), &alice).await.unwrap();
    svc.run(sql(), &alice).await.unwrap();
    assert_eq!(ledger.used.lock().unwrap()["alice"], 800);
    // 800 + 400 > 1000: refused before execution.
    let err = svc.run(sql(), &alice).await.unwrap_err();
    match &err {
        Error::QuotaExceeded {
            limit_bytes,
            used_bytes,
            requested_bytes,
            resets_at,
        } => {
            assert_eq!(
                (*limit_bytes, *used_bytes, *requested_bytes),
                (1000, 800, 400)
            );
            assert!(*resets_at > chrono::Utc::now());
            assert_eq!(resets_at.time(), chrono::NaiveTime::MIN);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "QUOTA_EXCEEDED");
    assert_eq!(wh.executed.lock().unwrap().len(), 2, "the third never ran");
    // Dry runs are not billed and not refused; another principal has its own budget.
    let mut dry = sql();
    dry.dry_run = true;
    svc.run(dry, &alice).await.unwrap();
    svc.run(sql(), &with_quota("bob", 1000)).await.unwrap();
    assert_eq!(ledger.used.lock().unwrap()["alice"], 800);
    assert_eq!(ledger.used.lock().unwrap()["bob"], 400);
    // Without a quota nothing is checked or charged.
    svc.run(sql(), &anyone()).await.unwrap();
    assert_eq!(ledger.used.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_quota_the_ledger_cannot_check_fails_closed() {
    let wh = Arc::new(ScriptedWarehouse {
        bytes: 10,
        ..Default::default()
    });
    let ledger = Arc::new(MapLedger {
        down: true,
        ..Default::default()
    });
    let svc = service(wh.clone(), Arc::new(VecHistory::default())).with_usage_ledger(ledger);
    let err = svc
        .run(
            QueryRequest::new("SELECT n FROM shop.orders"),
            &with_quota("carol", 1_000),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE");
    assert!(wh.executed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn parameters_reach_the_job_are_checked_and_key_the_cache() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        ..Default::default()
    });
    let cached = Arc::new(CachedWarehouse::new(
        wh.clone(),
        Arc::new(MapCache::default()),
        CachePolicy::default(),
    ));
    let svc = QueryService::new(cached, Arc::new(VecHistory::default()), limits());
    let with = |params: serde_json::Value| QueryRequest {
        parameters: QueryParameters::from_json(&params).unwrap(),
        ..QueryRequest::new("SELECT n FROM shop.t WHERE country = @country")
    };
    svc.run(with(serde_json::json!({"country": "DE"})), &anyone())
        .await
        .unwrap();
    let fr = svc
        .run(with(serde_json::json!({"country": "FR"})), &anyone())
        .await
        .unwrap();
    assert!(!fr.result.stats.cache_hit, "other values are another query");
    let again = svc
        .run(with(serde_json::json!({"country": "DE"})), &anyone())
        .await
        .unwrap();
    assert!(again.result.stats.cache_hit);
    let executed = wh.executed.lock().unwrap().clone();
    assert_eq!(executed.len(), 2);
    let QueryParameters::Named(first) = &executed[0].parameters else {
        panic!("named parameters expected: {:?}", executed[0].parameters)
    };
    assert_eq!(first["country"].value, Value::String("DE".into()));
    assert_eq!(
        wh.dry_runs.lock().unwrap()[0].parameters,
        executed[0].parameters
    );

    // Mismatches are the caller's mistake, found before the warehouse is asked anything.
    let dry_runs_before = wh.dry_runs.lock().unwrap().len();
    for (sql, params) in [
        (
            "SELECT n FROM shop.t WHERE country = @country",
            serde_json::json!(["DE"]),
        ),
        (
            "SELECT n FROM shop.t WHERE country = @country",
            serde_json::json!(null),
        ),
        (
            "SELECT n FROM shop.t WHERE country = @country",
            serde_json::json!({"c": "DE"}),
        ),
        (
            "SELECT n FROM shop.t WHERE country = ?",
            serde_json::json!({"country": "DE"}),
        ),
        (
            "SELECT n FROM shop.t WHERE country = ?",
            serde_json::json!(["DE", "FR"]),
        ),
        (
            "SELECT n FROM shop.t WHERE country = $1",
            serde_json::json!(["DE"]),
        ),
        ("SELECT n FROM shop.t", serde_json::json!({"country": "DE"})),
    ] {
        let request = QueryRequest {
            parameters: QueryParameters::from_json(&params).unwrap(),
            ..QueryRequest::new(sql)
        };
        let err = svc.run(request, &anyone()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidRequest(_)),
            "{sql} {params}: {err:?}"
        );
    }
    assert_eq!(wh.dry_runs.lock().unwrap().len(), dry_runs_before);
}

/// An export: the row cap is the export's, not the response's; nothing is cached; history is
/// written once the rows are read (kind `export`, with the rows that went out), and a refusal
/// is recorded at once.
#[tokio::test]
async fn an_export_is_capped_by_its_own_limit_and_recorded_when_read() {
    use futures::TryStreamExt as _;
    let wh = Arc::new(ScriptedWarehouse {
        rows: 25_000,
        bytes: 4096,
        ..Default::default()
    });
    let history = Arc::new(VecHistory::default());
    let svc = service(Arc::clone(&wh), Arc::clone(&history));
    let meta = || bqai_core::query::RecordMeta {
        kind: bqai_core::history::QueryKind::Export,
        ..Default::default()
    };
    let planned = svc
        .plan_export(
            QueryRequest::new("SELECT n FROM shop.t"),
            &anyone(),
            20_000,
            meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        planned.row_limit(),
        20_000,
        "past the response cap of 10,000"
    );
    assert!(planned.sql().ends_with("LIMIT 20000"), "{}", planned.sql());
    let streamed = svc
        .stream_planned(planned, &anyone(), meta())
        .await
        .unwrap();
    assert!(
        history.entries.lock().unwrap().is_empty(),
        "recorded only when read"
    );
    let rows: Vec<Vec<Value>> = streamed.rows.batches.try_concat().await.unwrap();
    assert_eq!(rows.len(), 25_000, "the scripted warehouse ignores the cap");
    svc.finish_stream(streamed.record, 20_000, None).await;
    let job = wh.executed.lock().unwrap()[0].clone();
    assert_eq!(
        job.max_result_bytes, None,
        "no response byte cap on an export"
    );
    {
        let entries = history.entries.lock().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, bqai_core::history::QueryKind::Export);
        assert_eq!(entries[0].row_count, 20_000);
        assert_eq!(entries[0].status, QueryStatus::Succeeded);
        assert_eq!(entries[0].bytes_processed, 4096);
    }

    let refused = svc
        .plan_export(
            QueryRequest::new("DELETE FROM shop.t"),
            &anyone(),
            20_000,
            meta(),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::SqlRejected(_))),
        "{:?}",
        refused.err()
    );
    let entries = history.entries.lock().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].status, QueryStatus::Rejected);
    assert_eq!(entries[1].kind, bqai_core::history::QueryKind::Export);
}

// ---- the plan cache ----------------------------------------------------------------------------

fn planned_service(
    wh: Arc<ScriptedWarehouse>,
    cache: Arc<MapCache>,
    limits: QueryLimits,
) -> QueryService {
    let cached = Arc::new(CachedWarehouse::new(
        wh,
        cache.clone(),
        CachePolicy::default(),
    ));
    QueryService::new(cached, Arc::new(VecHistory::default()), limits)
        .with_plan_cache(Arc::new(PlanCache::new(cache, Duration::from_secs(3600))))
}

fn scoped(id: &str, datasets: &[&str]) -> Principal {
    Principal {
        id: Some(id.into()),
        role: Role::Analyst,
        datasets: DatasetScope::from_list(datasets.iter().copied()),
        rate_limit_per_minute: None,
        daily_byte_quota: None,
    }
}

fn two_datasets() -> QueryLimits {
    QueryLimits {
        allowed: DatasetScope::from_list(["shop", "hr"]),
        ..limits()
    }
}

#[tokio::test]
async fn a_repeated_statement_skips_the_guard_and_the_dry_run() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 2,
        bytes: 10,
        ..Default::default()
    });
    let cache = Arc::new(MapCache::default());
    let svc = planned_service(wh.clone(), cache.clone(), limits());
    let first = svc
        .run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    let second = svc
        .run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    assert_eq!(
        wh.dry_runs.lock().unwrap().len(),
        1,
        "one dry run for two queries"
    );
    assert_eq!(
        wh.executed.lock().unwrap().len(),
        1,
        "the second is a result-cache hit"
    );
    assert!(second.result.stats.cache_hit);
    // The verdict answers as the dry run did: same SQL, tables and estimate.
    assert_eq!(second.sql, first.sql);
    assert_eq!(second.referenced_tables, first.referenced_tables);
    assert_eq!(second.result.rows, first.result.rows);
    let dry = svc
        .run(
            QueryRequest {
                dry_run: true,
                ..QueryRequest::new("SELECT n FROM shop.t")
            },
            &anyone(),
        )
        .await
        .unwrap();
    assert_eq!(dry.result.stats.bytes_processed, 10);
    assert_eq!(dry.result.columns[0].name, "n");
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 1);

    // Another row cap, another verdict (the guard's LIMIT differs).
    svc.run(
        QueryRequest {
            max_rows: Some(5),
            ..QueryRequest::new("SELECT n FROM shop.t")
        },
        &anyone(),
    )
    .await
    .unwrap();
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 2);
    assert!(wh.dry_runs.lock().unwrap()[1].sql.contains("LIMIT 5"));

    // `use_cache: false` plans afresh.
    svc.run(
        QueryRequest {
            use_cache: false,
            ..QueryRequest::new("SELECT n FROM shop.t")
        },
        &anyone(),
    )
    .await
    .unwrap();
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 3);

    // Invalidating the dataset drops its verdicts with its results.
    assert!(
        bqai_core::result_cache::invalidate_dataset(cache.as_ref(), "shop")
            .await
            .unwrap()
            >= 2
    );
    svc.run(QueryRequest::new("SELECT n FROM shop.t"), &anyone())
        .await
        .unwrap();
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn principals_with_different_scopes_never_share_a_verdict() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        ..Default::default()
    });
    let cache = Arc::new(MapCache::default());
    let svc = planned_service(wh.clone(), cache, two_datasets());
    let both = scoped("alice", &["shop", "hr"]);
    svc.run(QueryRequest::new("SELECT n FROM hr.salaries"), &both)
        .await
        .unwrap();
    // Bob may read only shop: the statement alice planned is refused to him by the guard,
    // without a dry run.
    let err = svc
        .run(
            QueryRequest::new("SELECT n FROM hr.salaries"),
            &scoped("bob", &["shop"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    // Alice's grants narrowed (same id): planned afresh and refused.
    let err = svc
        .run(
            QueryRequest::new("SELECT n FROM hr.salaries"),
            &scoped("alice", &["shop"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 1);
    // A statement both may run is planned once per scope.
    svc.run(QueryRequest::new("SELECT n FROM shop.t"), &both)
        .await
        .unwrap();
    svc.run(
        QueryRequest::new("SELECT n FROM shop.t"),
        &scoped("bob", &["shop"]),
    )
    .await
    .unwrap();
    svc.run(
        QueryRequest::new("SELECT n FROM shop.t"),
        &scoped("carol", &["shop"]),
    )
    .await
    .unwrap();
    assert_eq!(
        wh.dry_runs.lock().unwrap().len(),
        3,
        "alice's scope and bob's differ; carol's is bob's"
    );
}

#[tokio::test]
async fn a_dataset_removed_from_the_allow_list_is_refused_despite_a_cached_verdict() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        ..Default::default()
    });
    let cache = Arc::new(MapCache::default());
    planned_service(wh.clone(), cache.clone(), two_datasets())
        .run(QueryRequest::new("SELECT n FROM hr.salaries"), &anyone())
        .await
        .unwrap();
    // The operator takes hr off the allow-list and restarts; the cache (Redis) outlives it.
    let err = planned_service(wh.clone(), cache, limits())
        .run(QueryRequest::new("SELECT n FROM hr.salaries"), &anyone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err:?}");
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_byte_cap_and_the_quota_are_checked_on_a_cached_estimate() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        bytes: 400,
        ..Default::default()
    });
    let cache = Arc::new(MapCache::default());
    let ledger = Arc::new(MapLedger::default());
    let svc = planned_service(wh.clone(), cache.clone(), limits()).with_usage_ledger(ledger);
    let alice = with_quota("alice", 1000);
    let sql = || QueryRequest {
        use_cache: true,
        ..QueryRequest::new("SELECT n FROM shop.orders")
    };
    svc.run(sql(), &alice).await.unwrap();
    // Two runs that reach the warehouse (the second with use_cache false): 800 bytes charged.
    let fresh = || QueryRequest {
        use_cache: false,
        ..QueryRequest::new("SELECT n FROM shop.orders")
    };
    svc.run(fresh(), &alice).await.unwrap();
    // 800 used + the cached estimate of 400 > 1000: refused on the verdict, no dry run.
    let before = wh.dry_runs.lock().unwrap().len();
    let err = svc.run(sql(), &alice).await.unwrap_err();
    assert_eq!(err.code(), "QUOTA_EXCEEDED", "{err:?}");
    assert_eq!(wh.dry_runs.lock().unwrap().len(), before);

    // A lower byte cap (a restart with a new config, the cache kept) applies to the verdict.
    let capped = planned_service(
        wh.clone(),
        cache,
        QueryLimits {
            max_bytes_billed: Some(100),
            ..limits()
        },
    );
    let err = capped.run(sql(), &anyone()).await.unwrap_err();
    assert_eq!(err.code(), "COST_LIMIT_EXCEEDED", "{err:?}");
    assert_eq!(wh.dry_runs.lock().unwrap().len(), before);
}

#[tokio::test]
async fn other_parameter_values_are_planned_afresh() {
    let wh = Arc::new(ScriptedWarehouse {
        rows: 1,
        ..Default::default()
    });
    let svc = planned_service(wh.clone(), Arc::new(MapCache::default()), limits());
    let with = |v: i64| {
        let mut req = QueryRequest::new("SELECT n FROM shop.t WHERE n > @min");
        req.parameters = QueryParameters::from_json(&serde_json::json!({"min": v})).unwrap();
        req
    };
    svc.run(with(1), &anyone()).await.unwrap();
    svc.run(with(1), &anyone()).await.unwrap();
    svc.run(with(2), &anyone()).await.unwrap();
    assert_eq!(wh.dry_runs.lock().unwrap().len(), 2);
}
