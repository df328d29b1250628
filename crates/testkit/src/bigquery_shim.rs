//! **Test-only** HTTP shim between the BigQuery adapter and the `bqemulator` BigQuery
//! emulator: it forwards every request and rewrites the few answers where the emulator
//! departs from BigQuery's documented REST behaviour in a way the adapter would notice.
//! The adapter stays written for real BigQuery; nothing here ships in the service.
//!
//! Corrections (bqemulator 1.4.0):
//! - `datasets.list` and `tables.list` with `maxResults` return only the first page and never
//!   a `nextPageToken`. The shim asks for the whole list and serves pages of `maxResults`
//!   with its own page tokens, as BigQuery does.
//! - `tables.list` of a dataset that does not exist answers 200 with no tables; BigQuery
//!   answers 404 with reason `notFound`. The shim checks the dataset and answers 404.
//!
//! - Dry runs (`jobs.insert` with `dryRun`) report 0 bytes and no referenced tables. The
//!   shim fills both in: it finds the `dataset.table` names after `FROM`/`JOIN` in the query
//!   text, asks the emulator for each table, and reports those tables and a rough estimate
//!   of `numRows × columns × 8` bytes per table, so bqai's byte cap and dry-run re-check see
//!   something. The number is an estimate of the shim's own making, not BigQuery's.
//!
//! - The emulator runs every statement on one shared DuckDB connection and reads results back
//!   from it, so concurrent requests can read each other's results (a `COUNT(*)` answered
//!   with another query's columns) or crash its fetch (a 500 from `tabledata.list`). The shim
//!   forwards one request at a time, process-wide; BigQuery itself has no such limit, and the
//!   adapter's concurrency is tested against the scripted fake instead.
//!
//! Deviations the shim leaves alone (the tests account for them instead): `numBytes` is 0,
//! job labels, `maximumBytesBilled` and `jobTimeoutMs` are accepted but not enforced, and
//! every job is already DONE when inserted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

const TOKEN_PREFIX: &str = "bqai-shim-offset-";

/// Held while a request is with the emulator: one at a time for the whole test process, as
/// every shim of a test binary talks to the same emulator.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The running shim; stops when dropped.
#[derive(Debug)]
pub struct BigQueryShim {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    upstream: Arc<Upstream>,
}

#[derive(Debug)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    /// `METHOD /path` of every request received, in order (to count BigQuery calls).
    calls: std::sync::Mutex<Vec<String>>,
    /// The `traceparent` header of each of those calls (`None` when it had none).
    traceparents: std::sync::Mutex<Vec<Option<String>>>,
}

impl BigQueryShim {
    /// Starts on a free port of 127.0.0.1, forwarding to the emulator at `upstream`
    /// (`http://127.0.0.1:9050`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the BigQuery shim");
        let addr = listener.local_addr().expect("shim address");
        let upstream = Arc::new(Upstream {
            base: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            calls: std::sync::Mutex::new(Vec::new()),
            traceparents: std::sync::Mutex::new(Vec::new()),
        });
        let (shutdown, stop) = watch::channel(false);
        let forward_to = Arc::clone(&upstream);
        tokio::spawn(crate::serve::serve(
            listener,
            move |req| handle(Arc::clone(&forward_to), req),
            stop,
        ));
        Self {
            addr,
            shutdown,
            upstream,
        }
    }

    /// `METHOD /path` of every BigQuery REST call the shim received so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.upstream
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Every call with the W3C `traceparent` it carried, in order.
    pub fn calls_with_traceparent(&self) -> Vec<(String, Option<String>)> {
        let traceparents = self
            .upstream
            .traceparents
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        self.calls().into_iter().zip(traceparents).collect()
    }

    /// `http://127.0.0.1:PORT`: the endpoint to give the adapter.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BigQueryShim {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Which list call a path is, if any: `datasets.list` or `tables.list` (with the dataset
/// path to check).
enum ListCall {
    Datasets,
    Tables { dataset_path: String },
}

fn list_call(method: &str, path: &str) -> Option<ListCall> {
    if method != "GET" {
        return None;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["bigquery", "v2", "projects", _, "datasets"] => Some(ListCall::Datasets),
        ["bigquery", "v2", "projects", _, "datasets", _, "tables"] => Some(ListCall::Tables {
            dataset_path: path
                .trim_end_matches('/')
                .trim_end_matches("/tables")
                .to_owned(),
        }),
        _ => None,
    }
}

fn respond(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn respond_json(status: u16, body: &Value) -> Response<Full<Bytes>> {
    respond(status, Bytes::from(body.to_string()))
}

async fn handle(
    upstream: Arc<Upstream>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Both under one lock order (calls, then traceparents), so the two lists stay aligned.
    if let Ok(mut calls) = upstream.calls.lock() {
        calls.push(format!("{method} {path}"));
        if let Ok(mut t) = upstream.traceparents.lock() {
            t.push(traceparent);
        }
    }
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let _turn = ONE_AT_A_TIME.lock().await;
    if let Some(call) = list_call(method.as_str(), &path) {
        return Ok(list_page(&upstream, &path, &query, call).await);
    }

    let dry_run_sql = dry_run_query(method.as_str(), &path, &body);

    // The query string goes on as it came (already encoded).
    let mut forwarded = upstream
        .http
        .request(
            method,
            with_query(&format!("{}{}", upstream.base, path), &query),
        )
        .body(body);
    if let Some(ct) = content_type {
        forwarded = forwarded.header(hyper::header::CONTENT_TYPE, ct.as_bytes());
    }
    Ok(match forwarded.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let bytes = answer.bytes().await.unwrap_or_default();
            match (&dry_run_sql, status) {
                (Some((project, sql)), 200) => {
                    estimate_dry_run(&upstream, &path, project, sql, bytes).await
                }
                _ => respond(status, bytes),
            }
        }
        Err(e) => respond_json(
            502,
            &json!({"error": {"code": 502, "message": format!("shim: emulator unreachable: {e}")}}),
        ),
    })
}

/// `url?k=v&…` with the pairs as they arrived (still percent-encoded).
fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return url.to_owned();
    }
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{url}?{}", query.join("&"))
}

/// Serves one page of a list the emulator only returns whole.
async fn list_page(
    upstream: &Upstream,
    path: &str,
    query: &[(String, String)],
    call: ListCall,
) -> Response<Full<Bytes>> {
    let get = |p: String, q: Vec<(String, String)>| async move {
        let answer = upstream
            .http
            .get(with_query(&format!("{}{}", upstream.base, p), &q))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        Ok::<_, String>((status, body))
    };
    let unreachable = |e: String| {
        respond_json(
            502,
            &json!({"error": {"code": 502, "message": format!("shim: emulator unreachable: {e}")}}),
        )
    };

    if let ListCall::Tables { dataset_path } = &call {
        match get(dataset_path.clone(), Vec::new()).await {
            Ok((200, _)) => {}
            Ok((404, _)) => {
                let dataset = dataset_path.rsplit('/').next().unwrap_or_default();
                let message = format!("Not found: Dataset {dataset}");
                return respond_json(
                    404,
                    &json!({"error": {"code": 404, "message": message, "status": "NOT_FOUND",
                        "errors": [{"domain": "global", "reason": "notFound", "message": message}]}}),
                );
            }
            Ok((status, body)) => return respond_json(status, &body),
            Err(e) => return unreachable(e),
        }
    }

    let mut max_results: Option<usize> = None;
    let mut offset = 0usize;
    let mut rest = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "maxResults" => max_results = v.parse().ok(),
            "pageToken" => {
                offset = v
                    .strip_prefix(TOKEN_PREFIX)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    let (status, mut body) = match get(path.to_owned(), rest).await {
        Ok(answer) => answer,
        Err(e) => return unreachable(e),
    };
    if status != 200 {
        return respond_json(status, &body);
    }
    let key = match call {
        ListCall::Datasets => "datasets",
        ListCall::Tables { .. } => "tables",
    };
    let all: Vec<Value> = body[key].as_array().cloned().unwrap_or_default();
    let end = max_results.map_or(all.len(), |m| offset.saturating_add(m).min(all.len()));
    let page: Vec<Value> = all
        .get(offset.min(all.len())..end)
        .unwrap_or_default()
        .to_vec();
    if let Some(object) = body.as_object_mut() {
        object.insert(key.to_owned(), Value::Array(page));
        object.remove("nextPageToken");
        if end < all.len() {
            object.insert(
                "nextPageToken".to_owned(),
                Value::String(format!("{TOKEN_PREFIX}{end}")),
            );
        }
    }
    respond_json(200, &body)
}

/// The project and query text of a dry-run `jobs.insert`, if this request is one.
fn dry_run_query(method: &str, path: &str, body: &[u8]) -> Option<(String, String)> {
    if method != "POST" {
        return None;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["bigquery", "v2", "projects", project, "jobs"] = parts.as_slice() else {
        return None;
    };
    let job: Value = serde_json::from_slice(body).ok()?;
    if job["configuration"]["dryRun"] != Value::Bool(true) {
        return None;
    }
    let sql = job["configuration"]["query"]["query"].as_str()?.to_owned();
    Some(((*project).to_owned(), sql))
}

/// `dataset.table` (or `project.dataset.table`) names right after `FROM` or `JOIN`.
fn tables_in(sql: &str, project: &str) -> Vec<(String, String, String)> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = Vec::new();
    for pair in words.windows(2) {
        if !(pair[0].eq_ignore_ascii_case("FROM") || pair[0].eq_ignore_ascii_case("JOIN")) {
            continue;
        }
        let name = pair[1].replace('`', "");
        let parts: Vec<&str> = name.split('.').collect();
        let table = match parts.as_slice() {
            [dataset, table] => (
                project.to_owned(),
                (*dataset).to_owned(),
                (*table).to_owned(),
            ),
            [p, dataset, table] => ((*p).to_owned(), (*dataset).to_owned(), (*table).to_owned()),
            _ => continue,
        };
        if !out.contains(&table) {
            out.push(table);
        }
    }
    out
}

/// Fills in a dry run's `totalBytesProcessed` and `referencedTables` when the emulator left
/// them empty (see the module documentation).
async fn estimate_dry_run(
    upstream: &Upstream,
    path: &str,
    project: &str,
    sql: &str,
    answer: Bytes,
) -> Response<Full<Bytes>> {
    let Ok(mut job) = serde_json::from_slice::<Value>(&answer) else {
        return respond(200, answer);
    };
    let query = &job["statistics"]["query"];
    let reported = query["totalBytesProcessed"]
        .as_str()
        .and_then(|b| b.parse::<u64>().ok())
        .unwrap_or(0);
    if reported > 0 || job["status"]["errorResult"].is_object() {
        return respond(200, answer);
    }
    let api = path.trim_end_matches("/jobs");
    let api = api.rsplit_once("/projects/").map_or(api, |(root, _)| root);
    let mut bytes = 0u64;
    let mut referenced = Vec::new();
    for (p, dataset, table) in tables_in(sql, project) {
        let url = format!(
            "{}{api}/projects/{p}/datasets/{dataset}/tables/{table}",
            upstream.base
        );
        let Ok(found) = upstream.http.get(url).send().await else {
            continue;
        };
        if !found.status().is_success() {
            continue;
        }
        let meta: Value = found.json().await.unwrap_or(Value::Null);
        let rows = meta["numRows"]
            .as_str()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let columns = meta["schema"]["fields"].as_array().map_or(1, Vec::len) as u64;
        bytes += rows * columns * 8;
        referenced.push(json!({"projectId": p, "datasetId": dataset, "tableId": table}));
    }
    let statistics = &mut job["statistics"];
    if !statistics.is_object() {
        *statistics = json!({});
    }
    statistics["totalBytesProcessed"] = Value::String(bytes.to_string());
    if !statistics["query"].is_object() {
        statistics["query"] = json!({});
    }
    statistics["query"]["totalBytesProcessed"] = Value::String(bytes.to_string());
    let already = statistics["query"]["referencedTables"]
        .as_array()
        .is_some_and(|t| !t.is_empty());
    if !already && !referenced.is_empty() {
        statistics["query"]["referencedTables"] = Value::Array(referenced);
    }
    respond_json(200, &job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tables_after_from_and_join() {
        let t = tables_in(
            "SELECT * FROM shop.orders o JOIN `p2.shop.customers` c ON TRUE, \
             (SELECT 1 FROM x) WHERE a IN (SELECT b FROM shop.orders)",
            "p",
        );
        assert_eq!(
            t,
            [
                ("p".into(), "shop".into(), "orders".into()),
                ("p2".into(), "shop".into(), "customers".into()),
            ]
        );
    }

    #[test]
    fn only_dry_run_inserts_are_estimated() {
        let body = json!({"configuration": {"dryRun": true, "query": {"query": "SELECT 1"}}});
        let bytes = body.to_string().into_bytes();
        assert_eq!(
            dry_run_query("POST", "/bigquery/v2/projects/p/jobs", &bytes),
            Some(("p".into(), "SELECT 1".into()))
        );
        assert_eq!(
            dry_run_query("GET", "/bigquery/v2/projects/p/jobs", &bytes),
            None
        );
        let real = json!({"configuration": {"query": {"query": "SELECT 1"}}}).to_string();
        assert_eq!(
            dry_run_query("POST", "/bigquery/v2/projects/p/jobs", real.as_bytes()),
            None
        );
    }
}
