//! bqai-testkit: contract suites every adapter of a port must pass, plus fakes and fixtures.
//!
//! A contract suite is an async function taking the adapter under test as `Arc<dyn Port>`
//! (or a factory); it panics with a precise message when the adapter breaks the contract.
//! The in-memory/embedded adapters run these suites in their own tests, and later adapters
//! (Redis, PostgreSQL, BigQuery) reuse them unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod analytics;
pub mod auth;
pub mod bigquery_fake;
pub mod bigquery_seed;
pub mod bigquery_shim;
pub mod cache;
pub mod conversation;
pub mod export_jobs;
pub mod history;
pub mod llm_server;
pub mod nonces;
pub mod oidc;
pub mod otlp_receiver;
pub mod postgres;
pub mod rate_limiter;
mod serve;
pub mod tcp_proxy;
pub mod warehouse;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The value of one series (`name{labels}`, exactly as exposed) in a Prometheus text
/// exposition; 0 when the series is absent.
pub fn metric_value(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A key/id prefix no other run (in this process or another) uses, so contract suites can
/// share one Redis or PostgreSQL concurrently.
pub fn unique_prefix(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("contract-{what}-{nanos:x}-{}-{n}", std::process::id())
}
