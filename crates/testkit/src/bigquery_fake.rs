//! A scripted stand-in for BigQuery's REST API, for the adapter's unit tests: every request is
//! recorded (method, path, query, JSON body) and answered by a handler the test supplies.
//!
//! It shows what the emulator cannot: a job that stays RUNNING until it is cancelled, the
//! exact `jobs.insert` body (`maximumBytesBilled`, labels, `jobTimeoutMs`), dry runs that
//! report referenced tables, and error bodies with any `reason`.
//!
//! ```no_run
//! # async fn demo() {
//! use bqai_testkit::bigquery_fake::{FakeBigQuery, FakeReply};
//! let fake = FakeBigQuery::start(|req| {
//!     if req.path.ends_with("/jobs") {
//!         FakeReply::json(200, serde_json::json!({"status": {"state": "RUNNING"}}))
//!     } else {
//!         FakeReply::error(404, "notFound", "Not found")
//!     }
//! })
//! .await;
//! // point BigQueryConfig::emulator("p", fake.endpoint()) at it, then inspect fake.requests()
//! # }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, e.g. `/bigquery/v2/projects/p/jobs`.
    pub path: String,
    /// The query string (without `?`), empty if none.
    pub query: String,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl FakeRequest {
    /// Whether this is `jobs.insert`.
    pub fn is_insert_job(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/jobs")
    }

    /// Whether this is `jobs.cancel`.
    pub fn is_cancel(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/cancel")
    }

    /// Whether this is `jobs.getQueryResults`.
    pub fn is_get_query_results(&self) -> bool {
        self.method == "GET" && self.path.contains("/queries/")
    }

    /// The job id in a `/jobs/{id}…` or `/queries/{id}` path.
    pub fn job_id(&self) -> Option<String> {
        let mut parts = self.path.split('/');
        while let Some(part) = parts.next() {
            if part == "jobs" || part == "queries" {
                return parts.next().map(str::to_owned);
            }
        }
        None
    }
}

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub struct FakeReply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl FakeReply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            delay: Duration::ZERO,
        }
    }

    /// BigQuery's error body with one structured reason.
    pub fn error(status: u16, reason: &str, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"code": status, "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}]}}),
        )
    }

    /// The same answer after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&FakeRequest) -> FakeReply + Send + Sync;

/// The running fake; stops when dropped.
pub struct FakeBigQuery {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<FakeRequest>>>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for FakeBigQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBigQuery")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeBigQuery {
    /// Starts on a free port of 127.0.0.1, answering every request with `handler`.
    pub async fn start<H>(handler: H) -> Self
    where
        H: Fn(&FakeRequest) -> FakeReply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake BigQuery");
        let addr = listener.local_addr().expect("fake BigQuery address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (shutdown, stop) = watch::channel(false);
        let log = Arc::clone(&requests);
        tokio::spawn(crate::serve::serve(
            listener,
            move |req| handle(Arc::clone(&log), Arc::clone(&handler), req),
            stop,
        ));
        Self {
            addr,
            requests,
            shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`, for `BigQueryConfig::emulator`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.requests.lock().expect("requests lock").clone()
    }

    /// Waits up to `within` for a request matching `pred`; returns it if it came.
    pub async fn wait_for(
        &self,
        within: Duration,
        pred: impl Fn(&FakeRequest) -> bool,
    ) -> Option<FakeRequest> {
        let until = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self.requests().into_iter().find(&pred) {
                return Some(found);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeBigQuery {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn handle(
    requests: Arc<Mutex<Vec<FakeRequest>>>,
    handler: Arc<Handler>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = FakeRequest {
        method,
        path,
        query,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    requests
        .lock()
        .expect("requests lock")
        .push(recorded.clone());
    let reply = handler(&recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(reply.body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
