//! API tests: the real application (the same wiring as `bqai serve`) on port 0, called over
//! HTTP. One test binary, modules per resource.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod ask;
mod ask_llm;
mod auth;
mod catalog;
mod conversations;
mod errors;
mod export_jobs;
mod exports;
mod helpers;
mod history;
mod mcp;
mod metrics;
mod openapi;
mod paging;
mod query;
mod queue;
mod retention;
mod security;
mod shared_state;
mod ws;
