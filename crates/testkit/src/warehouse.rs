//! The `Warehouse` port contract: catalog listing and pagination, lookups and `NotFound`,
//! previews, dry runs, execution, row caps and SQL errors.
//!
//! Every adapter runs [`warehouse_contract`] against a dataset it knows (the embedded engine
//! against its demo data, the BigQuery adapter against a small emulator dataset), described by
//! a [`WarehouseFixture`]. The suite runs SQL directly, without the guard, so it only uses
//! plain read-only statements.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bqai_core::Error;
use bqai_core::model::{PageRequest, QueryJob, TableRef};
use bqai_core::ports::Warehouse;

/// What the suite may assume about the warehouse under test.
#[derive(Debug, Clone)]
pub struct WarehouseFixture {
    /// A dataset that exists.
    pub dataset: String,
    /// A table of `dataset` with at least 3 rows.
    pub table: String,
    /// Some columns `table` is known to have (a subset of its schema is enough).
    pub columns: Vec<String>,
    /// The table as the warehouse's SQL writes it (`shop.orders`, `` `proj.ds.t` ``).
    pub sql_table: String,
    /// Builds a simple aggregate over the table (given `sql_table`) returning exactly one row
    /// and reading at least one column, e.g. `SELECT COUNT(*) AS n, SUM(x) AS s FROM t`.
    pub aggregate_sql: fn(&str) -> String,
    /// Whether dry runs report a byte estimate (the BigQuery emulator always says 0).
    pub reports_bytes: bool,
    /// Whether dry runs report the tables they read (the BigQuery emulator does not).
    pub reports_referenced_tables: bool,
}

/// A job with the suite's defaults: a generous timeout and row cap.
pub fn job(sql: impl Into<String>) -> QueryJob {
    QueryJob {
        query_id: "contract".to_owned(),
        sql: sql.into(),
        default_dataset: None,
        max_rows: 1_000,
        timeout: Duration::from_secs(60),
        max_bytes_billed: None,
        use_cache: false,
        referenced_tables: Vec::new(),
        labels: Vec::new(),
        parameters: bqai_core::model::QueryParameters::None,
        max_result_bytes: None,
        principal: None,
        queue_watch: None,
        first_batch_rows: None,
    }
}

/// Runs the whole contract; panics with a message naming the broken rule.
pub async fn warehouse_contract(wh: Arc<dyn Warehouse>, fixture: &WarehouseFixture) {
    datasets_are_listed_and_paginated(wh.as_ref(), fixture).await;
    unknown_names_are_not_found(wh.as_ref(), fixture).await;
    tables_are_listed_and_described(wh.as_ref(), fixture).await;
    preview_respects_limit(wh.as_ref(), fixture).await;
    dry_run_reports_plan(wh.as_ref(), fixture).await;
    execute_returns_rows(wh.as_ref(), fixture).await;
    max_rows_truncates(wh.as_ref(), fixture).await;
    streams_the_rows_execute_returns(wh.as_ref(), fixture).await;
    bad_sql_is_invalid_query(wh.as_ref(), fixture).await;
    let health = wh.health().await;
    assert_eq!(
        health.status,
        bqai_core::model::HealthStatus::Ok,
        "health: {health:?}"
    );
}

fn table_ref(fixture: &WarehouseFixture) -> TableRef {
    TableRef::new(fixture.dataset.clone(), fixture.table.clone())
}

async fn datasets_are_listed_and_paginated(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let all = wh.list_datasets(&PageRequest::first(1_000)).await.unwrap();
    let ids: Vec<String> = all.items.iter().map(|d| d.id.clone()).collect();
    assert!(
        ids.iter()
            .any(|id| id.eq_ignore_ascii_case(&fixture.dataset)),
        "list_datasets: {ids:?} lacks {}",
        fixture.dataset
    );
    assert_eq!(
        all.next_page_token, None,
        "list_datasets: one big page has a next token"
    );

    // Page by page, one at a time: same items, no repeats, terminates.
    let mut walked = Vec::new();
    let mut request = PageRequest::first(1);
    for _ in 0..=ids.len() + 1 {
        let page = wh.list_datasets(&request).await.unwrap();
        assert!(
            page.items.len() <= 1,
            "list_datasets: page_size 1 gave {} items",
            page.items.len()
        );
        walked.extend(page.items.into_iter().map(|d| d.id));
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(
        unique.len(),
        walked.len(),
        "list_datasets: pages repeat items: {walked:?}"
    );
    assert_eq!(
        walked, ids,
        "list_datasets: paging does not walk the same list"
    );

    let dataset = wh.get_dataset(&fixture.dataset).await.unwrap();
    assert!(
        dataset.id.eq_ignore_ascii_case(&fixture.dataset),
        "get_dataset: {dataset:?}"
    );
}

async fn unknown_names_are_not_found(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let missing = "bqai_contract_no_such_dataset";
    match wh.get_dataset(missing).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("get_dataset(unknown): expected NotFound, got {other:?}"),
    }
    match wh.list_tables(missing, &PageRequest::first(10)).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("list_tables(unknown dataset): expected NotFound, got {other:?}"),
    }
    let table = TableRef::new(fixture.dataset.clone(), "bqai_contract_no_such_table");
    match wh.get_table(&table).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("get_table(unknown): expected NotFound, got {other:?}"),
    }
    match wh.preview(&table, 1).await {
        Err(Error::NotFound(_)) => {}
        other => panic!("preview(unknown): expected NotFound, got {other:?}"),
    }
}

async fn tables_are_listed_and_described(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let all = wh
        .list_tables(&fixture.dataset, &PageRequest::first(1_000))
        .await
        .unwrap();
    let names: Vec<String> = all
        .items
        .iter()
        .map(|t| t.table_ref.table.clone())
        .collect();
    assert!(
        names.iter().any(|n| n.eq_ignore_ascii_case(&fixture.table)),
        "list_tables: {names:?} lacks {}",
        fixture.table
    );
    for t in &all.items {
        assert!(
            t.table_ref.dataset.eq_ignore_ascii_case(&fixture.dataset),
            "list_tables: {:?} is not in {}",
            t.table_ref,
            fixture.dataset
        );
    }

    let mut walked = Vec::new();
    let mut request = PageRequest::first(1);
    for _ in 0..=names.len() + 1 {
        let page = wh.list_tables(&fixture.dataset, &request).await.unwrap();
        assert!(
            page.items.len() <= 1,
            "list_tables: page_size 1 gave {} items",
            page.items.len()
        );
        walked.extend(page.items.into_iter().map(|t| t.table_ref.table));
        match page.next_page_token {
            Some(token) => request.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!(
        walked, names,
        "list_tables: paging does not walk the same list"
    );

    let table = wh.get_table(&table_ref(fixture)).await.unwrap();
    assert!(!table.schema.is_empty(), "get_table: empty schema");
    assert!(
        table.table_ref.table.eq_ignore_ascii_case(&fixture.table),
        "get_table: {:?}",
        table.table_ref
    );
    let fields: Vec<&str> = table.schema.iter().map(|f| f.name.as_str()).collect();
    for column in &fixture.columns {
        assert!(
            fields.iter().any(|f| f.eq_ignore_ascii_case(column)),
            "get_table: schema {fields:?} lacks {column}"
        );
    }
    if let Some(rows) = table.num_rows {
        assert!(rows >= 3, "fixture table needs at least 3 rows, has {rows}");
    }
}

async fn preview_respects_limit(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let preview = wh.preview(&table_ref(fixture), 2).await.unwrap();
    assert_eq!(
        preview.rows.len(),
        2,
        "preview(limit 2): {} rows",
        preview.rows.len()
    );
    assert!(!preview.columns.is_empty(), "preview: no columns");
    for row in &preview.rows {
        assert_eq!(
            row.len(),
            preview.columns.len(),
            "preview: row width != column count"
        );
    }
}

async fn dry_run_reports_plan(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let sql = (fixture.aggregate_sql)(&fixture.sql_table);
    let report = wh.dry_run(&job(sql.clone())).await.unwrap();
    if fixture.reports_bytes {
        assert!(
            report.bytes_processed > 0,
            "dry_run({sql}): 0 bytes estimated"
        );
    }
    if fixture.reports_referenced_tables {
        assert!(
            report.referenced_tables.iter().any(|t| {
                t.dataset.eq_ignore_ascii_case(&fixture.dataset)
                    && t.table.eq_ignore_ascii_case(&fixture.table)
            }),
            "dry_run({sql}): referenced tables {:?} lack {}.{}",
            report.referenced_tables,
            fixture.dataset,
            fixture.table
        );
    }
    if let Some(kind) = &report.statement_type {
        assert!(
            kind.eq_ignore_ascii_case("SELECT"),
            "dry_run: statement type {kind}"
        );
    }
}

async fn execute_returns_rows(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let sql = (fixture.aggregate_sql)(&fixture.sql_table);
    let result = wh.execute(&job(sql.clone())).await.unwrap();
    assert!(!result.columns.is_empty(), "execute({sql}): no columns");
    assert_eq!(
        result.rows.len(),
        1,
        "execute({sql}): expected one row, got {:?}",
        result.rows
    );
    assert_eq!(
        result.rows[0].len(),
        result.columns.len(),
        "execute: row width != columns"
    );
    assert!(
        !result.truncated,
        "execute({sql}): one row under a cap of 1000 is not truncated"
    );
}

async fn max_rows_truncates(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let column = fixture.columns.first().map_or("*", String::as_str);
    let sql = format!("SELECT {column} FROM {}", fixture.sql_table);
    let mut capped = job(sql.clone());
    capped.max_rows = 2;
    let result = wh.execute(&capped).await.unwrap();
    assert_eq!(
        result.rows.len(),
        2,
        "execute({sql}) with max_rows 2: {} rows",
        result.rows.len()
    );
    assert!(
        result.truncated,
        "execute({sql}) with max_rows 2: not marked truncated"
    );
}

/// Reads a stream to its end: its columns and every row.
pub async fn read_stream(
    stream: bqai_core::model::RowStream,
) -> Result<
    (
        Vec<bqai_core::model::Field>,
        Vec<Vec<bqai_core::model::Value>>,
    ),
    Error,
> {
    use futures::TryStreamExt as _;
    let rows: Vec<_> = stream.batches.try_concat().await?;
    Ok((stream.columns, rows))
}

async fn streams_the_rows_execute_returns(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    // One column in its order: the same rows whatever the engine's parallelism, ties included.
    let column = fixture.columns.first().map_or("*", String::as_str);
    let sql = format!(
        "SELECT {column} FROM {} ORDER BY {column}",
        fixture.sql_table
    );
    let whole = wh.execute(&job(sql.clone())).await.unwrap();
    let (columns, rows) = read_stream(wh.execute_stream(&job(sql.clone())).await.unwrap())
        .await
        .unwrap();
    assert_eq!(columns, whole.columns, "execute_stream({sql}): columns");
    assert_eq!(rows, whole.rows, "execute_stream({sql}): rows");

    let mut capped = job(sql.clone());
    capped.max_rows = 2;
    let (_, rows) = read_stream(wh.execute_stream(&capped).await.unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "execute_stream({sql}) with max_rows 2");

    let bad = format!(
        "SELECT bqai_contract_no_such_column FROM {}",
        fixture.sql_table
    );
    let failed = match wh.execute_stream(&job(bad.clone())).await {
        Ok(stream) => read_stream(stream).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        matches!(failed, Err(Error::InvalidQuery(_))),
        "execute_stream({bad}): expected InvalidQuery, got {failed:?}"
    );
}

async fn bad_sql_is_invalid_query(wh: &dyn Warehouse, fixture: &WarehouseFixture) {
    let sql = format!(
        "SELECT bqai_contract_no_such_column FROM {}",
        fixture.sql_table
    );
    match wh.execute(&job(sql.clone())).await {
        Err(Error::InvalidQuery(message)) => {
            assert!(
                !message.is_empty(),
                "execute({sql}): empty InvalidQuery message"
            );
        }
        other => panic!("execute({sql}): expected InvalidQuery, got {other:?}"),
    }
    match wh.dry_run(&job(sql.clone())).await {
        Err(Error::InvalidQuery(_)) => {}
        other => panic!("dry_run({sql}): expected InvalidQuery, got {other:?}"),
    }
}
