//! The second wall (no guard in front): writes, DDL, settings and file access all fail and
//! leave no trace; timeouts cancel; errors map to the port's kinds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use bqai_core::Error;
use bqai_core::model::{TableRef, Value};
use bqai_core::ports::Warehouse;
use bqai_local::{LocalConfig, LocalWarehouse};
use common::{demo, job, scalar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_effects_are_refused_without_the_guard() {
    let wh = demo().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.csv");
    let out_dir = dir.path().join("out");
    let out = out.to_str().unwrap();
    let statements = [
        format!("COPY (SELECT 1) TO '{out}'"),
        format!(
            "COPY shop.customers TO '{}' STORED AS PARQUET",
            out_dir.to_str().unwrap()
        ),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_owned(),
        "CREATE EXTERNAL TABLE pw2 STORED AS CSV LOCATION '/etc/'".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "SET datafusion.catalog.information_schema = true".to_owned(),
        "SELECT * FROM '/etc/passwd'".to_owned(),
        "SELECT * FROM 'file:///etc/passwd'".to_owned(),
        "CREATE TABLE shop.t AS SELECT 1 AS a".to_owned(),
        "CREATE VIEW shop.v AS SELECT 1 AS a".to_owned(),
        "INSERT INTO shop.products VALUES (1, 'x', 'y', 'z', 1.0)".to_owned(),
        "DELETE FROM shop.orders".to_owned(),
        "DROP TABLE shop.orders".to_owned(),
        "DROP SCHEMA shop CASCADE".to_owned(),
        "SELECT * FROM information_schema.tables".to_owned(),
        "SELECT 1; DROP TABLE shop.orders".to_owned(),
        format!("EXPLAIN COPY (SELECT 1) TO '{out}'"),
        "PREPARE q AS SELECT 1".to_owned(),
    ];
    for sql in &statements {
        let executed = wh.execute(&job(sql.as_str())).await;
        assert!(executed.is_err(), "execute accepted {sql}: {executed:?}");
        let planned = wh.dry_run(&job(sql.as_str())).await;
        assert!(planned.is_err(), "dry_run accepted {sql}: {planned:?}");
        if let Err(e) = executed {
            assert!(
                e.is_client_error(),
                "{sql}: {e:?} should be the caller's error"
            );
        }
    }
    assert!(!std::path::Path::new(out).exists(), "COPY wrote a file");
    assert!(!out_dir.exists(), "COPY wrote a directory");
    // Nothing changed: the tables are still there, whole.
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM shop.orders").await,
        Value::Int64(100_000)
    );
    assert!(wh.get_table(&TableRef::new("shop", "orders")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_time_out_and_are_cancelled() {
    let wh = demo().await;
    // 9·10^10 row pairs: minutes of work; a SUM cannot be answered from statistics.
    let mut slow = job(
        "SELECT SUM(a.quantity * b.quantity) FROM shop.order_items a CROSS JOIN shop.order_items b",
    );
    slow.timeout = Duration::from_millis(50);
    let started = Instant::now();
    let result = wh.execute(&slow).await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Error::Timeout(t)) if t == Duration::from_millis(50)),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(2), "timeout took {took:?}");

    // The cancelled work does not hold the engine: the next query answers promptly.
    let started = Instant::now();
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM shop.products").await,
        Value::Int64(300)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_execute_aborts_the_running_query() {
    let wh = demo().await;
    assert_eq!(wh.running_queries(), 0);
    let slow = job(
        "SELECT SUM(a.quantity * b.quantity) FROM shop.order_items a CROSS JOIN shop.order_items b",
    );
    let running = {
        let wh = wh.clone();
        tokio::spawn(async move { wh.execute(&slow).await })
    };
    let started = Instant::now();
    while wh.running_queries() == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The caller stops waiting (a cancelled ask drops its future): the query goes away.
    running.abort();
    let stopped = Instant::now();
    while wh.running_queries() > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "the query kept running after its caller went away"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(running.await.is_err_and(|e| e.is_cancelled()));
    // The engine is free for the next query.
    assert_eq!(
        scalar(&wh, "SELECT COUNT(*) FROM shop.products").await,
        Value::Int64(300)
    );
    assert_eq!(wh.running_queries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_port_kinds() {
    let wh = demo().await;
    // (sql, expected kind:message fragment, whether planning alone already fails)
    let cases: &[(&str, &str, bool)] = &[
        ("SELECT nope FROM shop.customers", "invalid:nope", true),
        ("SELEC 1", "invalid:SELEC", true),
        ("SELECT country + 1 FROM shop.customers", "invalid:", true),
        (
            "SELECT no_such_function(1)",
            "invalid:no_such_function",
            true,
        ),
        ("SELECT * FROM shop.nope", "notfound:table shop.nope", true),
        (
            "SELECT * FROM nope.customers",
            "notfound:nope.customers",
            true,
        ),
        (
            "SELECT * FROM customers",
            "invalid:no default dataset",
            true,
        ),
        // Runtime errors: a dry run plans fine, execution fails on the data.
        ("SELECT 1 / 0", "invalid:Divide by zero", false),
        (
            "SELECT CAST(name AS INT) FROM shop.customers",
            "invalid:",
            false,
        ),
    ];
    for (sql, expected, at_planning) in cases {
        let (kind, text) = expected.split_once(':').unwrap();
        let mut results = vec![wh.execute(&job(*sql)).await.map(|_| ())];
        if *at_planning {
            results.push(wh.dry_run(&job(*sql)).await.map(|_| ()));
        }
        for result in results {
            match (kind, result) {
                ("invalid", Err(Error::InvalidQuery(m)))
                | ("notfound", Err(Error::NotFound(m))) => {
                    assert!(m.contains(text), "{sql}: message {m:?} lacks {text:?}");
                    assert!(
                        !m.contains("backtrace") && !m.contains(".rs:"),
                        "{sql}: noisy {m:?}"
                    );
                }
                (_, other) => panic!("{sql}: expected {kind}, got {other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_memory_is_unavailable() {
    let wh = LocalWarehouse::new(LocalConfig {
        memory_limit_mb: 1,
        ..LocalConfig::default()
    })
    .await
    .unwrap();
    let result = wh
        .execute(&job(
            "SELECT o.customer_id, i.product_id, COUNT(*) AS n FROM shop.order_items i \
             JOIN shop.orders o ON o.order_id = i.order_id GROUP BY 1, 2 ORDER BY n DESC",
        ))
        .await;
    assert!(
        matches!(result, Err(Error::Unavailable { .. })),
        "{result:?}"
    );
}

/// An export's stream hands out DataFusion's record batches as they are produced, never more
/// than the row cap, and dropping it stops the execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_comes_batch_by_batch_and_stops_when_dropped() {
    use futures::StreamExt as _;
    let wh = demo().await;
    // A cross join of 300 products with themselves: 90,000 rows in record batches of 8192.
    let mut all =
        job("SELECT a.product_id, b.product_id FROM shop.products a CROSS JOIN shop.products b");
    all.max_rows = 50_000;
    let stream = wh.execute_stream(&all).await.unwrap();
    assert_eq!(stream.columns.len(), 2);
    let sizes: Vec<usize> = stream.batches.map(|b| b.unwrap().len()).collect().await;
    assert!(sizes.len() > 1, "one batch: {sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 8192), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 50_000);
    assert_eq!(wh.running_queries(), 0);

    // Minutes of rows: read one batch, drop the stream, the execution stops.
    let mut endless = job(
        "SELECT a.quantity * b.quantity AS q FROM shop.order_items a CROSS JOIN shop.order_items b",
    );
    endless.max_rows = u64::MAX;
    let mut stream = wh.execute_stream(&endless).await.unwrap();
    assert!(!stream.batches.next().await.unwrap().unwrap().is_empty());
    assert_eq!(wh.running_queries(), 1);
    drop(stream);
    let stopped = Instant::now();
    while wh.running_queries() > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "the stream's query kept running after it was dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A stream whose next batch does not come within the job's timeout ends with `Timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_times_out() {
    use futures::StreamExt as _;
    let wh = demo().await;
    // The sum needs the whole cross join before its one row: nothing comes for minutes.
    let mut slow = job(
        "SELECT SUM(a.quantity * b.quantity) FROM shop.order_items a CROSS JOIN shop.order_items b",
    );
    slow.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = match wh.execute_stream(&slow).await {
        Ok(mut stream) => stream.batches.next().await.unwrap().map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(matches!(outcome, Err(Error::Timeout(_))), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let stopped = Instant::now();
    while wh.running_queries() > 0 {
        assert!(stopped.elapsed() < Duration::from_secs(2), "still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
