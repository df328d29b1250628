//! bqai-core: the domain of bqai — types, ports (traits the adapters implement), the SQL
//! guard, and the use cases (catalog, query) that tie them together.
//!
//! This crate does no IO and depends on no IO crate (no actix, diesel, redis, reqwest,
//! DataFusion or BigQuery client); CI checks it with `cargo tree`. Adapters live in their own
//! crates and are passed in as `Arc<dyn Port>`.
#![warn(missing_docs)]

pub mod analytics;
pub mod ask;
pub mod auth;
pub mod catalog;
pub mod conversation;
pub mod error;
pub mod export;
pub mod guard;
pub mod history;
pub mod llm;
pub mod model;
pub mod paging;
pub mod params;
pub mod plan_cache;
pub mod ports;
pub mod query;
pub mod resilience;
pub mod result_cache;
pub mod semantic;
pub mod system;

pub use error::{Error, Result};
