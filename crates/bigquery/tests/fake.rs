//! The adapter against a scripted stand-in for BigQuery's REST API (no emulator): what the
//! emulator cannot show — jobs that keep running until cancelled, the exact `jobs.insert`
//! body, dry runs with referenced tables, error reasons, retries, result paging and the
//! REST value format of every type.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bqai_bigquery::{BigQueryConfig, BigQueryWarehouse, RetryConfig};
use bqai_core::Error;
use bqai_core::guard::{GuardPolicy, check_tables};
use bqai_core::model::{
    DatasetScope, FieldMode, FieldType, PageRequest, QueryJob, SqlDialect, TableRef, Value,
};
use bqai_core::ports::Warehouse;
use bqai_testkit::bigquery_fake::{FakeBigQuery, FakeReply, FakeRequest};
use serde_json::{Value as J, json};

const PROJECT: &str = "proj";

async fn warehouse(fake: &FakeBigQuery) -> BigQueryWarehouse {
    let mut config = BigQueryConfig::emulator(PROJECT, fake.endpoint());
    config.location = Some("EU".into());
    config.poll_wait_ms = 50;
    config.request_timeout_ms = 5_000;
    config.retry = RetryConfig {
        max_attempts: 3,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
    };
    BigQueryWarehouse::connect(config).await.unwrap()
}

fn job(sql: &str) -> QueryJob {
    QueryJob {
        query_id: "q-123".into(),
        sql: sql.into(),
        default_dataset: Some("shop".into()),
        max_rows: 100,
        timeout: Duration::from_secs(10),
        max_bytes_billed: Some(1_000),
        use_cache: false,
        referenced_tables: vec![TableRef::new("shop", "orders")],
        labels: vec![
            ("request_id".into(), "req-7".into()),
            ("principal".into(), "key_abc".into()),
        ],
        parameters: bqai_core::model::QueryParameters::None,
        max_result_bytes: None,
        principal: None,
        queue_watch: None,
        first_batch_rows: None,
    }
}

/// The job id of a `jobs.insert` body.
fn inserted_id(req: &FakeRequest) -> String {
    req.body["jobReference"]["jobId"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn job_answer(req: &FakeRequest, status: J) -> FakeReply {
    FakeReply::json(
        200,
        json!({"jobReference": {"projectId": PROJECT, "jobId": inserted_id(req), "location": "EU"},
               "status": status}),
    )
}

fn done_results(schema: J, rows: J, total: u64) -> FakeReply {
    FakeReply::json(
        200,
        json!({"jobComplete": true, "schema": schema, "rows": rows,
               "totalRows": total.to_string(), "totalBytesProcessed": "2048", "cacheHit": false}),
    )
}

/// A BigQuery whose jobs run forever (until cancelled).
fn forever(req: &FakeRequest) -> FakeReply {
    if req.is_insert_job() {
        job_answer(req, json!({"state": "RUNNING"}))
    } else if req.is_get_query_results() {
        FakeReply::json(200, json!({"jobComplete": false})).after(Duration::from_millis(20))
    } else if req.is_cancel() {
        FakeReply::json(200, json!({"job": {"status": {"state": "DONE"}}}))
    } else {
        FakeReply::error(404, "notFound", "no such thing")
    }
}

#[tokio::test]
async fn a_timeout_cancels_the_running_job() {
    let fake = FakeBigQuery::start(forever).await;
    let wh = warehouse(&fake).await;
    let mut slow = job("SELECT 1");
    slow.timeout = Duration::from_millis(300);

    let started = std::time::Instant::now();
    let outcome = wh.execute(&slow).await;
    assert!(
        matches!(outcome, Err(Error::Timeout(d)) if d == Duration::from_millis(300)),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let requests = fake.requests();
    let insert = requests.iter().find(|r| r.is_insert_job()).unwrap();
    let cancel = requests
        .iter()
        .find(|r| r.is_cancel())
        .expect("jobs.cancel was called");
    assert_eq!(cancel.job_id(), Some(inserted_id(insert)));
    assert!(cancel.query.contains("location=EU"), "{}", cancel.query);
    // BigQuery's own deadline is set too, as a backstop.
    assert_eq!(insert.body["configuration"]["jobTimeoutMs"], "300");
}

#[tokio::test]
async fn dropping_the_future_cancels_the_running_job() {
    let fake = FakeBigQuery::start(forever).await;
    let wh = Arc::new(warehouse(&fake).await);
    let task = {
        let wh = Arc::clone(&wh);
        tokio::spawn(async move { wh.execute(&job("SELECT 1")).await })
    };
    // Let the job start, then abandon the query (a client that went away).
    fake.wait_for(Duration::from_secs(5), FakeRequest::is_get_query_results)
        .await
        .expect("the job was polled");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let cancel = fake
        .wait_for(Duration::from_secs(5), FakeRequest::is_cancel)
        .await
        .expect("jobs.cancel after the future was dropped");
    let insert = fake
        .requests()
        .into_iter()
        .find(FakeRequest::is_insert_job)
        .unwrap();
    assert_eq!(cancel.job_id(), Some(inserted_id(&insert)));
}

#[tokio::test]
async fn a_finished_job_is_not_cancelled() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            job_answer(req, json!({"state": "DONE"}))
        } else if req.is_get_query_results() {
            done_results(
                json!({"fields": [{"name": "n", "type": "INTEGER"}]}),
                json!([{"f": [{"v": "1"}]}]),
                1,
            )
        } else if req.method == "GET" && req.path.contains("/jobs/") {
            job_answer(req, json!({"state": "DONE"}))
        } else {
            FakeReply::json(200, json!({}))
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let result = wh.execute(&job("SELECT 1 AS n")).await.unwrap();
    assert_eq!(result.rows, vec![vec![Value::Int64(1)]]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!fake.requests().iter().any(FakeRequest::is_cancel));
}

#[tokio::test]
async fn the_job_request_carries_the_byte_cap_labels_and_settings() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            job_answer(req, json!({"state": "DONE"}))
        } else if req.is_get_query_results() {
            done_results(json!({"fields": []}), json!([]), 0)
        } else if req.method == "GET" && req.path.contains("/jobs/") {
            FakeReply::json(
                200,
                json!({"status": {"state": "DONE"}, "statistics": {"query": {
                    "totalBytesProcessed": "4096", "totalBytesBilled": "10485760",
                    "cacheHit": false}}}),
            )
        } else {
            FakeReply::json(200, json!({}))
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let result = wh.execute(&job("SELECT 1")).await.unwrap();
    assert_eq!(result.stats.bytes_processed, 4096);
    assert_eq!(result.stats.bytes_billed, 10_485_760);
    assert!(!result.stats.cache_hit);

    let insert = fake
        .requests()
        .into_iter()
        .find(FakeRequest::is_insert_job)
        .unwrap();
    let config = &insert.body["configuration"];
    assert_eq!(config["query"]["maximumBytesBilled"], "1000");
    assert_eq!(config["query"]["useLegacySql"], false);
    assert_eq!(config["query"]["useQueryCache"], false);
    assert_eq!(config["query"]["query"], "SELECT 1");
    assert_eq!(config["query"]["defaultDataset"]["projectId"], PROJECT);
    assert_eq!(config["query"]["defaultDataset"]["datasetId"], "shop");
    assert_eq!(config["labels"]["bqai_query_id"], "q-123");
    assert_eq!(config["labels"]["request_id"], "req-7");
    assert_eq!(config["labels"]["principal"], "key_abc");
    assert_eq!(insert.body["jobReference"]["location"], "EU");
    assert!(
        inserted_id(&insert).starts_with("bqai_q-123_"),
        "{}",
        inserted_id(&insert)
    );
    let results = fake
        .requests()
        .into_iter()
        .find(FakeRequest::is_get_query_results)
        .unwrap();
    assert!(results.query.contains("location=EU"), "{}", results.query);
    assert!(
        results
            .query
            .contains("formatOptions.useInt64Timestamp=true"),
        "{}",
        results.query
    );
}

#[tokio::test]
async fn the_query_cache_hit_is_reported() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            job_answer(req, json!({"state": "DONE"}))
        } else if req.is_get_query_results() {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": {"fields": []}, "totalRows": "0",
                       "cacheHit": true, "totalBytesProcessed": "0"}),
            )
        } else if req.method == "GET" && req.path.contains("/jobs/") {
            FakeReply::json(
                200,
                json!({"status": {"state": "DONE"}, "statistics": {"query": {
                    "totalBytesProcessed": "0", "cacheHit": true}}}),
            )
        } else {
            FakeReply::json(200, json!({}))
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let mut cached = job("SELECT 1");
    cached.use_cache = true;
    let result = wh.execute(&cached).await.unwrap();
    assert!(result.stats.cache_hit);
    assert_eq!(result.stats.bytes_billed, 0);
    let insert = fake
        .requests()
        .into_iter()
        .find(FakeRequest::is_insert_job)
        .unwrap();
    assert_eq!(insert.body["configuration"]["query"]["useQueryCache"], true);
}

#[tokio::test]
async fn a_dry_run_reports_referenced_tables_for_the_guard_recheck() {
    let fake = FakeBigQuery::start(|req| {
        assert!(req.is_insert_job(), "a dry run only inserts: {req:?}");
        assert_eq!(req.body["configuration"]["dryRun"], true);
        FakeReply::json(
            200,
            json!({"status": {"state": "DONE"}, "statistics": {"query": {
                "totalBytesProcessed": "123456789",
                "statementType": "SELECT",
                "referencedTables": [
                    {"projectId": PROJECT, "datasetId": "shop", "tableId": "orders"},
                    {"projectId": "other-proj", "datasetId": "secret", "tableId": "salaries"}
                ],
                "schema": {"fields": [{"name": "n", "type": "INTEGER", "mode": "NULLABLE"}]}
            }}}),
        )
    })
    .await;
    let wh = warehouse(&fake).await;
    // A view in `shop` that reads another project's table: the dry run exposes it.
    let report = wh
        .dry_run(&job("SELECT * FROM shop.orders_view"))
        .await
        .unwrap();
    assert_eq!(report.bytes_processed, 123_456_789);
    assert_eq!(report.statement_type.as_deref(), Some("SELECT"));
    assert_eq!(
        report.referenced_tables,
        vec![
            TableRef::new("shop", "orders"),
            TableRef {
                project: Some("other-proj".into()),
                dataset: "secret".into(),
                table: "salaries".into(),
            },
        ]
    );
    assert_eq!(report.schema[0].field_type, FieldType::Int64);

    // The guard's re-check rejects the hidden table, as the query service does.
    let policy = GuardPolicy {
        dialect: SqlDialect::BigQuery,
        home_project: Some(PROJECT.into()),
        allowed: DatasetScope::from_list(["shop"]),
        default_dataset: Some("shop".into()),
        max_rows: 100,
    };
    assert!(check_tables(&report.referenced_tables[..1], &policy).is_ok());
    assert!(check_tables(&report.referenced_tables, &policy).is_err());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn error_reasons_map_to_core_errors() {
    let fake = FakeBigQuery::start(|req| {
        let p = req.path.as_str();
        if p.ends_with("/datasets/secret") {
            FakeReply::error(403, "accessDenied", "Access Denied: Dataset proj:secret")
        } else if p.contains("/tables/") {
            FakeReply::error(404, "notFound", "Not found: Table proj:shop.nope")
        } else if req.is_insert_job() {
            let sql = req.body["configuration"]["query"]["query"]
                .as_str()
                .unwrap_or_default();
            if req.body["configuration"]["dryRun"] == true {
                return FakeReply::error(400, "invalidQuery", "Unrecognized name: nope at [1:8]");
            }
            if sql == "capped at insert" {
                // The reason decides, not the status: a 400 that is a byte-cap refusal.
                return FakeReply::error(400, "bytesBilledLimitExceeded", "limit 1000 bytes");
            }
            let reason = match sql {
                "too expensive" => "bytesBilledLimitExceeded",
                "busy" => "quotaExceeded",
                _ => "invalidQuery",
            };
            job_answer(
                req,
                json!({"state": "DONE", "errorResult": {"reason": reason, "message": "m"},
                       "errors": [{"reason": reason, "message": "m"}]}),
            )
        } else {
            FakeReply::error(500, "internalError", "unexpected")
        }
    })
    .await;
    let wh = warehouse(&fake).await;

    let err = wh
        .get_table(&TableRef::new("shop", "nope"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = wh
        .preview(&TableRef::new("shop", "nope"), 5)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let err = wh.get_dataset("secret").await.unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let err = wh.dry_run(&job("SELECT nope")).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidQuery(m) if m.contains("Unrecognized name")),
        "{err:?}"
    );
    let err = wh.execute(&job("SELECT nope")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidQuery(_)), "{err:?}");
    let err = wh.execute(&job("too expensive")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::CostLimitExceeded {
                limit_bytes: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = wh.execute(&job("capped at insert")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::CostLimitExceeded {
                limit_bytes: 1_000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = wh.execute(&job("busy")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    // A job that failed is finished: nothing to cancel.
    assert!(!fake.requests().iter().any(FakeRequest::is_cancel));
}

#[tokio::test]
async fn transient_errors_are_retried_and_permanent_ones_are_not() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let fake = FakeBigQuery::start(move |req| {
        if req.path.ends_with("/datasets") {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 => FakeReply::error(503, "backendError", "try again"),
                1 => FakeReply::error(403, "rateLimitExceeded", "slow down"),
                _ => FakeReply::json(
                    200,
                    json!({"datasets": [{"datasetReference": {"projectId": PROJECT,
                        "datasetId": "shop"}, "location": "EU"}]}),
                ),
            }
        } else {
            FakeReply::error(403, "quotaExceeded", "daily quota")
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let page = wh.list_datasets(&PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items[0].id, "shop");
    assert_eq!(page.items[0].location.as_deref(), Some("EU"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let before = fake.requests().len();
    let err = wh.get_dataset("shop").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert_eq!(
        fake.requests().len(),
        before + 1,
        "quotaExceeded is not retried"
    );
}

#[tokio::test]
async fn a_job_that_fails_transiently_is_rerun_under_a_new_id() {
    let inserts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&inserts);
    let fake = FakeBigQuery::start(move |req| {
        if req.is_insert_job() {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                job_answer(
                    req,
                    json!({"state": "DONE", "errorResult": {"reason": "backendError",
                        "message": "retry"}}),
                )
            } else {
                job_answer(req, json!({"state": "DONE"}))
            }
        } else if req.is_get_query_results() {
            done_results(
                json!({"fields": [{"name": "n", "type": "INT64"}]}),
                json!([{"f": [{"v": "5"}]}]),
                1,
            )
        } else {
            FakeReply::json(200, json!({"status": {"state": "DONE"}}))
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let result = wh.execute(&job("SELECT 5 AS n")).await.unwrap();
    assert_eq!(result.rows, vec![vec![Value::Int64(5)]]);
    let ids: BTreeSet<String> = fake
        .requests()
        .iter()
        .filter(|r| r.is_insert_job())
        .map(inserted_id)
        .collect();
    assert_eq!(ids.len(), 2, "two attempts with distinct job ids: {ids:?}");
}

#[tokio::test]
async fn results_are_read_page_by_page_up_to_the_row_cap() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            return job_answer(req, json!({"state": "DONE"}));
        }
        if !req.is_get_query_results() {
            return FakeReply::json(200, json!({"status": {"state": "DONE"}}));
        }
        let schema = json!({"fields": [{"name": "n", "type": "INTEGER"}]});
        let row = |n: u32| json!({"f": [{"v": n.to_string()}]});
        if req.query.contains("pageToken=page2") {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": schema, "totalRows": "10",
                       "rows": [row(3), row(4)], "pageToken": "page3"}),
            )
        } else if req.query.contains("pageToken=page") {
            panic!("no third page should be read: {req:?}");
        } else {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": schema, "totalRows": "10",
                       "rows": [row(1), row(2)], "pageToken": "page2"}),
            )
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let mut capped = job("SELECT n FROM t");
    capped.max_rows = 3;
    let result = wh.execute(&capped).await.unwrap();
    let values: Vec<Value> = result.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        values,
        vec![Value::Int64(1), Value::Int64(2), Value::Int64(3)]
    );
    assert!(result.truncated);
    let pages: Vec<FakeRequest> = fake
        .requests()
        .into_iter()
        .filter(FakeRequest::is_get_query_results)
        .collect();
    assert_eq!(pages.len(), 2);
    assert!(
        pages[0].query.contains("maxResults=3"),
        "{}",
        pages[0].query
    );
    assert!(
        pages[1].query.contains("maxResults=1"),
        "{}",
        pages[1].query
    );
}

/// A paged query: the stream reads only the first page it was asked for and names the job;
/// a later page is read from its row (`startIndex`), then by page token, and a result
/// BigQuery no longer keeps is `NotFound`.
#[tokio::test]
async fn a_paged_stream_reads_one_page_and_the_rest_is_read_by_offset() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            return job_answer(req, json!({"state": "DONE"}));
        }
        if !req.is_get_query_results() {
            return FakeReply::json(200, json!({"status": {"state": "DONE"}}));
        }
        if req.path.contains("gone") {
            return FakeReply::json(
                404,
                json!({"error": {"code": 404, "message": "Not found: Job proj:gone",
                       "errors": [{"reason": "notFound", "message": "Not found: Job proj:gone"}]}}),
            );
        }
        let schema = json!({"fields": [{"name": "n", "type": "INTEGER"}]});
        let row = |n: u32| json!({"f": [{"v": n.to_string()}]});
        if req.query.contains("startIndex=4") {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": schema, "totalRows": "10",
                       "rows": [row(5), row(6)], "pageToken": "p7"}),
            )
        } else if req.query.contains("pageToken=p7") {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": schema, "totalRows": "10",
                       "rows": [row(7), row(8)], "pageToken": "p9"}),
            )
        } else if req.query.contains("pageToken=p") || req.query.contains("startIndex=") {
            panic!("an unexpected page: {req:?}");
        } else {
            FakeReply::json(
                200,
                json!({"jobComplete": true, "schema": schema, "totalRows": "10",
                       "rows": [row(1), row(2)], "pageToken": "p3"}),
            )
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let mut paged = job("SELECT n FROM t");
    paged.max_rows = 1000;
    paged.first_batch_rows = Some(2);
    let mut stream = wh.execute_stream(&paged).await.unwrap();
    assert_eq!(stream.total_rows, Some(10));
    let handle = stream
        .result_handle
        .clone()
        .expect("BigQuery names the job");
    let mut read = Vec::new();
    while let Some(batch) = futures::StreamExt::next(&mut stream.batches).await {
        read.extend(batch.unwrap());
    }
    assert_eq!(read, vec![vec![Value::Int64(1)], vec![Value::Int64(2)]]);
    let first_calls: Vec<FakeRequest> = fake
        .requests()
        .into_iter()
        .filter(FakeRequest::is_get_query_results)
        .collect();
    assert_eq!(first_calls.len(), 1, "no page read ahead");
    assert!(
        first_calls[0].query.contains("maxResults=2"),
        "{}",
        first_calls[0].query
    );

    let page = wh.read_result(&handle, 4, 3, None).await.unwrap();
    let values: Vec<Value> = page.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(values, [Value::Int64(5), Value::Int64(6), Value::Int64(7)]);
    assert_eq!(page.total_rows, Some(10));
    assert_eq!(page.columns[0].name, "n");
    let reads: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(FakeRequest::is_get_query_results)
        .skip(1)
        .map(|r| r.query)
        .collect();
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert!(
        reads[0].contains("startIndex=4") && reads[0].contains("maxResults=3"),
        "{reads:?}"
    );
    assert!(
        reads[1].contains("pageToken=p7") && reads[1].contains("maxResults=1"),
        "{reads:?}"
    );

    assert!(matches!(
        wh.read_result("gone", 0, 10, None).await,
        Err(Error::NotFound(_))
    ));
    // A handle that is no job id never reaches BigQuery.
    let before = fake.requests().len();
    assert!(matches!(
        wh.read_result("../jobs", 0, 10, None).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn every_type_is_read_from_the_rest_format() {
    let fake = FakeBigQuery::start(|req| {
        if req.is_insert_job() {
            return job_answer(req, json!({"state": "DONE"}));
        }
        if !req.is_get_query_results() {
            return FakeReply::json(200, json!({"status": {"state": "DONE"}}));
        }
        FakeReply::json(
            200,
            json!({"jobComplete": true, "totalRows": "1",
            "schema": {"fields": [
                {"name": "i", "type": "INTEGER"}, {"name": "big", "type": "INT64"},
                {"name": "f", "type": "FLOAT"}, {"name": "nan", "type": "FLOAT64"},
                {"name": "num", "type": "NUMERIC"}, {"name": "bignum", "type": "BIGNUMERIC"},
                {"name": "b", "type": "BOOLEAN"}, {"name": "s", "type": "STRING"},
                {"name": "by", "type": "BYTES"}, {"name": "d", "type": "DATE"},
                {"name": "t", "type": "TIME"}, {"name": "dt", "type": "DATETIME"},
                {"name": "ts", "type": "TIMESTAMP"}, {"name": "g", "type": "GEOGRAPHY"},
                {"name": "j", "type": "JSON"}, {"name": "iv", "type": "INTERVAL"},
                {"name": "r", "type": "RANGE", "rangeElementType": {"type": "DATE"}},
                {"name": "arr", "type": "INTEGER", "mode": "REPEATED"},
                {"name": "st", "type": "RECORD", "fields": [
                    {"name": "x", "type": "STRING"},
                    {"name": "ys", "type": "FLOAT", "mode": "REPEATED"}]},
                {"name": "nul", "type": "STRING"}
            ]},
            "rows": [{"f": [
                {"v": "1"}, {"v": "9007199254740993"}, {"v": "2.5"}, {"v": "NaN"},
                {"v": "99999999999999999999999999999.999999999"},
                {"v": "578960446186580977117854925043439539266.34992332820282019728792003956564819967"},
                {"v": "true"}, {"v": "a\"b"}, {"v": "3q2+7w=="}, {"v": "2024-02-29"},
                {"v": "12:30:00.5"}, {"v": "2024-02-29T12:30:00"}, {"v": "1709209800000000"},
                {"v": "POINT(-122.35 47.62)"}, {"v": "{\"k\":[1,true,null]}"},
                {"v": "0-0 1 2:3:4"}, {"v": "[2024-01-01, 2024-02-01)"},
                {"v": [{"v": "1"}, {"v": "2"}]},
                {"v": {"f": [{"v": "x"}, {"v": [{"v": "0.5"}, {"v": "Infinity"}]}]}},
                {"v": null}
            ]}]}),
        )
    })
    .await;
    let wh = warehouse(&fake).await;
    let result = wh.execute(&job("SELECT everything")).await.unwrap();
    assert_eq!(result.columns.len(), 20);
    assert_eq!(result.columns[17].mode, FieldMode::Repeated);
    assert_eq!(result.columns[18].fields.len(), 2);
    let row = &result.json_rows()[0];
    let expect = json!({
        "i": 1, "big": "9007199254740993", "f": 2.5, "nan": "NaN",
        "num": "99999999999999999999999999999.999999999",
        "bignum": "578960446186580977117854925043439539266.34992332820282019728792003956564819967",
        "b": true, "s": "a\"b", "by": "3q2+7w==", "d": "2024-02-29", "t": "12:30:00.500",
        "dt": "2024-02-29T12:30:00", "ts": "2024-02-29T12:30:00Z",
        "g": "POINT(-122.35 47.62)", "j": {"k": [1, true, null]}, "iv": "0-0 1 2:3:4",
        "r": "[2024-01-01, 2024-02-01)", "arr": [1, 2],
        "st": {"x": "x", "ys": [0.5, "Infinity"]}, "nul": null
    });
    assert_eq!(J::Object(row.clone()), expect);
}

#[tokio::test]
async fn previews_read_table_data_without_a_query() {
    let fake = FakeBigQuery::start(|req| {
        if req.path.ends_with("/tables/orders") {
            FakeReply::json(
                200,
                json!({"tableReference": {"projectId": PROJECT, "datasetId": "shop",
                    "tableId": "orders"}, "type": "TABLE", "numRows": "3",
                    "schema": {"fields": [{"name": "id", "type": "INTEGER"},
                                          {"name": "at", "type": "TIMESTAMP"}]}}),
            )
        } else if req.path.ends_with("/tables/orders/data") {
            FakeReply::json(
                200,
                json!({"totalRows": "3", "pageToken": "next",
                       "rows": [{"f": [{"v": "1"}, {"v": "0"}]}, {"f": [{"v": "2"}, {"v": null}]}]}),
            )
        } else {
            panic!("a preview runs no job: {req:?}");
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let preview = wh
        .preview(&TableRef::new("shop", "orders"), 2)
        .await
        .unwrap();
    assert_eq!(preview.rows.len(), 2);
    assert!(preview.truncated);
    assert_eq!(preview.rows[0][1].to_json(), json!("1970-01-01T00:00:00Z"));
    let data = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/data"))
        .unwrap();
    assert!(data.query.contains("maxResults=2"), "{}", data.query);
    assert!(data.query.contains("formatOptions.useInt64Timestamp=true"));
}

#[tokio::test]
async fn catalog_pages_follow_bigquery_page_tokens() {
    let fake = FakeBigQuery::start(|req| {
        assert!(
            req.path.ends_with("/datasets/shop/tables"),
            "one call per page: {req:?}"
        );
        if req.query.contains("pageToken=t2") {
            FakeReply::json(
                200,
                json!({"tables": [{"tableReference": {"projectId": PROJECT, "datasetId": "shop",
                    "tableId": "v"}, "type": "VIEW"}]}),
            )
        } else {
            FakeReply::json(
                200,
                json!({"nextPageToken": "t2", "tables": [{"tableReference": {"projectId": PROJECT,
                    "datasetId": "shop", "tableId": "orders"}, "type": "TABLE"}]}),
            )
        }
    })
    .await;
    let wh = warehouse(&fake).await;
    let first = wh
        .list_tables("shop", &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(first.items[0].table_ref, TableRef::new("shop", "orders"));
    assert_eq!(first.next_page_token.as_deref(), Some("t2"));
    let second = wh
        .list_tables(
            "shop",
            &PageRequest {
                page_size: 1,
                page_token: first.next_page_token,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items[0].kind, bqai_core::model::TableKind::View);
    assert_eq!(second.next_page_token, None);
    assert_eq!(fake.requests().len(), 2);
    assert!(fake.requests()[0].query.contains("maxResults=1"));
}

#[tokio::test]
async fn health_says_what_is_wrong_credentials_permission_quota_or_network() {
    for (status, reason, words) in [
        (401, "unauthorized", &["refused the credentials", "401"][..]),
        (
            403,
            "accessDenied",
            &["lack permission in project proj", "accessDenied"][..],
        ),
        (403, "quotaExceeded", &["quota", "quotaExceeded"][..]),
    ] {
        let fake = FakeBigQuery::start(move |_| {
            FakeReply::error(
                status,
                reason,
                "Request had invalid authentication credentials",
            )
        })
        .await;
        let health = warehouse(&fake).await.health().await;
        assert_eq!(health.status, bqai_core::model::HealthStatus::Down);
        let detail = health.detail.unwrap_or_default();
        for w in words {
            assert!(
                detail.contains(w),
                "{status} {reason}: {detail:?} lacks {w:?}"
            );
        }
        assert!(
            !detail.contains("invalid authentication"),
            "BigQuery's words: {detail}"
        );
    }

    // Nothing listens: the network, not the credentials.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut config = BigQueryConfig::emulator(PROJECT, endpoint);
    config.request_timeout_ms = 2_000;
    config.retry = RetryConfig {
        max_attempts: 1,
        initial_backoff_ms: 1,
        max_backoff_ms: 1,
    };
    let health = BigQueryWarehouse::connect(config)
        .await
        .unwrap()
        .health()
        .await;
    let detail = health.detail.unwrap_or_default();
    assert!(detail.contains("unreachable"), "{detail:?}");
}
