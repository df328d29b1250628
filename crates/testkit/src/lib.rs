//! bqai-testkit: contract suites every adapter of a port must pass, plus fakes and fixtures.
//!
//! A contract suite is an async function taking the adapter under test as `Arc<dyn Port>`
//! (or a factory); it panics with a precise message when the adapter breaks the contract.
//! The in-memory/embedded adapters run these suites in their own tests, and later adapters
//! (Redis, PostgreSQL, BigQuery) reuse them unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod cache;
pub mod history;
pub mod rate_limiter;
pub mod warehouse;
