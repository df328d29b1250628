//! A stand-in OpenTelemetry collector for tests: accepts OTLP/HTTP protobuf exports on
//! `POST /v1/traces`, decodes them with the protocol's own generated types
//! (`opentelemetry-proto`), and keeps every span for the test to inspect as a tree.
//!
//! ```no_run
//! # async fn demo() {
//! use bqai_testkit::otlp_receiver::OtlpReceiver;
//! let collector = OtlpReceiver::start().await;
//! // run bqai with BQAI__TELEMETRY__OTLP_ENDPOINT = collector.endpoint() ...
//! let spans = collector.wait_for(|spans| spans.iter().any(|s| s.name == "ask"), std::time::Duration::from_secs(10)).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// One received span, flattened for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_span_id: String,
    /// Attributes, every value rendered as a string.
    pub attributes: BTreeMap<String, String>,
    /// `service.name` of the resource that sent it.
    pub service_name: Option<String>,
    /// OTLP span kind (1 internal, 2 server, 3 client).
    pub kind: i32,
}

impl ReceivedSpan {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The running receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    shutdown: watch::Sender<bool>,
}

impl OtlpReceiver {
    /// Starts on `127.0.0.1`, on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, stop) = watch::channel(false);
        let shared = Arc::clone(&spans);
        tokio::spawn(crate::serve::serve(
            listener,
            move |req| handle(Arc::clone(&shared), req),
            stop,
        ));
        Self {
            addr,
            spans,
            shutdown,
        }
    }

    /// The base URL an exporter is configured with (`OTEL_EXPORTER_OTLP_ENDPOINT` style).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `done` holds for the spans received (or `timeout` passes) and returns
    /// them.
    pub async fn wait_for(
        &self,
        done: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let until = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() >= until {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn handle(
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode| {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = status;
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(res)
    };
    if req.method() != Method::POST || req.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND);
    }
    let Ok(body) = req.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST);
    };
    let mut received = Vec::new();
    for resource_spans in export.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
                .map(render)
        });
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| {
                            let value = kv
                                .value
                                .and_then(|v| v.value)
                                .map(|v| render(&v))
                                .unwrap_or_default();
                            (kv.key, value)
                        })
                        .collect(),
                    service_name: service_name.clone(),
                    kind: span.kind,
                });
            }
        }
    }
    if let Ok(mut all) = spans.lock() {
        all.extend(received);
    }
    reply(StatusCode::OK)
}

fn render(v: &AnyValue) -> String {
    match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
