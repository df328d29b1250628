//! bqai-bigquery: the `Warehouse` port on Google BigQuery, built on Google's official Rust SDK
//! (the generated `google-cloud-bigquery-v2` clients, with `google-cloud-auth` credentials).
//!
//! What it does through the port:
//! - **Catalog** — datasets and tables listed one page per call with BigQuery's page tokens
//!   (never one call per dataset or table), full table schemas (nested RECORD, REPEATED,
//!   descriptions, partitioning, clustering, `numRows`, `numBytes`), previews through
//!   `tabledata.list` (no query, nothing billed).
//! - **Queries** — GoogleSQL only, on a job whose id bqai chooses: default dataset, location,
//!   `maximumBytesBilled`, `jobTimeoutMs`, `useQueryCache` (and `cacheHit` reported), labels
//!   (`bqai_query_id` plus the job's own, such as the request id), dry runs (bytes, statement
//!   type, referenced tables), results read page by page up to the row cap; on timeout, on a
//!   failed call and when the caller drops the future, the job is cancelled in BigQuery.
//! - **Values** — every BigQuery type mapped exactly onto core values (`value`).
//! - **Errors** — BigQuery's structured reasons mapped onto core error kinds (`error`);
//!   transient failures retried with bounded exponential backoff and jitter (`retry`).
//!
//! ```no_run
//! # async fn demo() -> bqai_core::Result<()> {
//! use bqai_bigquery::{BigQueryConfig, BigQueryWarehouse};
//! let mut config = BigQueryConfig::new("my-project");
//! config.location = Some("EU".into());
//! let warehouse = BigQueryWarehouse::connect(config).await?;
//! # Ok(()) }
//! ```

mod client;
pub mod config;
mod error;
mod job;
mod retry;
mod runtime;
mod schema;
mod value;
pub mod warehouse;

pub use config::{BigQueryConfig, CredentialsConfig, RetryConfig};
pub use job::QUERY_ID_LABEL;
pub use warehouse::BigQueryWarehouse;
