//! Seeding a BigQuery emulator with a dataset copied from another warehouse — in practice
//! the embedded engine's `shop` demo dataset, so the BigQuery tests see the very rows the
//! embedded engine serves.
//!
//! Works through BigQuery's REST API (`datasets.insert`, `tables.insert`,
//! `tabledata.insertAll`) and the source's `Warehouse` port only, so it knows nothing of the
//! source's engine. Idempotent: a table that already holds the expected number of rows with
//! the same columns is left alone, so a long-running emulator is seeded once.

use std::time::{Duration, Instant};

use bqai_core::model::{Field, PageRequest, TableRef};
use bqai_core::ports::Warehouse;
use serde_json::{Value, json};

use crate::warehouse::job;

/// Rows per `insertAll` request.
const BATCH: usize = 5_000;

/// What [`seed_from_warehouse`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Tables created and loaded.
    pub loaded: Vec<String>,
    /// Tables already in place.
    pub kept: Vec<String>,
    /// Rows loaded.
    pub rows: u64,
}

/// Copies `dataset` (every table: schema, descriptions, rows) from `source` into the
/// emulator at `endpoint` (`http://127.0.0.1:9050`) under `project`. Panics with a clear
/// message when the emulator refuses something.
pub async fn seed_from_warehouse(
    source: &dyn Warehouse,
    dataset: &str,
    endpoint: &str,
    project: &str,
) -> SeedReport {
    let http = reqwest::Client::new();
    let base = format!(
        "{}/bigquery/v2/projects/{project}",
        endpoint.trim_end_matches('/')
    );
    let mut report = SeedReport::default();

    let meta = source
        .get_dataset(dataset)
        .await
        .unwrap_or_else(|e| panic!("seed: source dataset {dataset}: {e}"));
    let (status, _) = call(&http, "GET", &format!("{base}/datasets/{dataset}"), None).await;
    if status == 404 {
        // The emulator answers 500 to explicit nulls: only send what is set.
        let mut body = json!({"datasetReference": {"projectId": project, "datasetId": dataset}});
        if let Some(description) = &meta.description {
            body["description"] = Value::String(description.clone());
        }
        let (status, answer) = call(&http, "POST", &format!("{base}/datasets"), Some(body)).await;
        assert!(
            status == 200 || status == 409,
            "seed: creating dataset {dataset}: HTTP {status} {answer}"
        );
    }

    let mut tables = Vec::new();
    let mut page = PageRequest::first(1_000);
    loop {
        let listed = source
            .list_tables(dataset, &page)
            .await
            .unwrap_or_else(|e| panic!("seed: listing {dataset}: {e}"));
        tables.extend(listed.items.into_iter().map(|t| t.table_ref.table));
        match listed.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => break,
        }
    }

    for name in tables {
        let table = source
            .get_table(&TableRef::new(dataset, name.clone()))
            .await
            .unwrap_or_else(|e| panic!("seed: describing {dataset}.{name}: {e}"));
        let result = source
            .execute(&{
                let mut j = job(format!("SELECT * FROM {dataset}.{name}"));
                j.max_rows = 50_000_000;
                j.timeout = Duration::from_secs(300);
                j
            })
            .await
            .unwrap_or_else(|e| panic!("seed: reading {dataset}.{name}: {e}"));
        let expected_rows = result.rows.len() as u64;

        let table_url = format!("{base}/datasets/{dataset}/tables/{name}");
        let (status, existing) = call(&http, "GET", &table_url, None).await;
        if status == 200 {
            let rows_there = existing["numRows"]
                .as_str()
                .and_then(|n| n.parse::<u64>().ok());
            let columns_there: Vec<&str> = existing["schema"]["fields"]
                .as_array()
                .map(|f| f.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            let columns: Vec<&str> = table.schema.iter().map(|f| f.name.as_str()).collect();
            if rows_there == Some(expected_rows) && columns_there == columns {
                report.kept.push(name);
                continue;
            }
            let (status, answer) = call(&http, "DELETE", &table_url, None).await;
            assert!(
                (200..300).contains(&status) || status == 404,
                "seed: dropping stale {dataset}.{name}: HTTP {status} {answer}"
            );
        }

        let mut body = json!({
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": name},
            "schema": {"fields": table.schema.iter().map(field_json).collect::<Vec<_>>()},
        });
        if let Some(description) = &table.description {
            body["description"] = Value::String(description.clone());
        }
        let (status, answer) = call(
            &http,
            "POST",
            &format!("{base}/datasets/{dataset}/tables"),
            Some(body),
        )
        .await;
        assert!(
            status == 200,
            "seed: creating {dataset}.{name}: HTTP {status} {answer}"
        );

        let started = Instant::now();
        for chunk in result.rows.chunks(BATCH) {
            let rows: Vec<Value> = chunk
                .iter()
                .map(|row| {
                    let object: serde_json::Map<String, Value> = result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| (c.name.clone(), v.to_json()))
                        .collect();
                    json!({"json": object})
                })
                .collect();
            let (status, answer) = call(
                &http,
                "POST",
                &format!("{table_url}/insertAll"),
                Some(json!({"rows": rows})),
            )
            .await;
            let errors = answer["insertErrors"].as_array().map_or(0, Vec::len);
            assert!(
                status == 200 && errors == 0,
                "seed: loading {dataset}.{name}: HTTP {status}, {errors} row errors: {}",
                answer.to_string().chars().take(500).collect::<String>()
            );
        }
        progress(&format!(
            "seed: loaded {expected_rows} rows into {dataset}.{name} in {:?}",
            started.elapsed()
        ));
        report.rows += expected_rows;
        report.loaded.push(name);
    }
    report
}

/// Progress on stderr (test output), so a slow first seeding is visible.
fn progress(line: &str) {
    eprintln!("{line}");
}

fn field_json(field: &Field) -> Value {
    let mut out = json!({
        "name": field.name,
        "type": field.field_type.as_str(),
        "mode": field.mode.as_str(),
    });
    if let Some(description) = &field.description {
        out["description"] = Value::String(description.clone());
    }
    if !field.fields.is_empty() {
        out["fields"] = Value::Array(field.fields.iter().map(field_json).collect());
    }
    out
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap_or_else(|e| {
        panic!("seed: the BigQuery emulator at {url} does not answer ({e}); start it with scripts/bqemulator.sh")
    });
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}
