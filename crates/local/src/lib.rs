//! bqai-local: the embedded [`Warehouse`](bqai_core::ports::Warehouse) on Apache DataFusion,
//! loaded with the deterministic `shop` demo dataset and any local CSV, Parquet or NDJSON
//! files.
//!
//! Everything lives in memory tables registered at start, so catalog calls, previews and
//! bytes estimates behave the same for demo and user data. Caller SQL only ever runs through
//! `SessionContext::sql_with_options` with DDL, DML and statements disabled: a second wall
//! behind bqai-core's guard, never a replacement for it.

mod catalog;
pub mod convert;
pub mod demo;
mod error;
mod estimate;
mod files;
mod params;
mod rng;
mod warehouse;

use serde::{Deserialize, Serialize};

pub use warehouse::LocalWarehouse;

/// The datasets the data entries (directories, files, globs, as in [`LocalConfig::data`])
/// would register, without reading the files; sorted, without repeats.
///
/// # Errors
/// As at start: an entry that matches nothing, or a bad glob.
pub fn datasets_of(entries: &[String]) -> bqai_core::Result<Vec<String>> {
    let mut datasets: Vec<String> = files::discover(entries)?
        .into_iter()
        .map(|f| f.dataset)
        .collect();
    datasets.sort();
    datasets.dedup();
    Ok(datasets)
}

/// The DataFusion catalog every dataset lives in (the warehouse's "home project").
pub const HOME_CATALOG: &str = "datafusion";

/// Configuration of the embedded warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Generate and register the `shop` demo dataset (default `true`).
    pub demo: bool,
    /// Data to register: directories (their files, one level deep), single files or globs
    /// (`data/**/*.parquet`) of `.csv` (with a header row), `.parquet` and `.json`/`.ndjson`/
    /// `.jsonl` (newline-delimited) files. Each file becomes table `<file stem>` of dataset
    /// `<parent folder>`, both lowercased with other characters than `[a-z0-9_]` turned into `_`.
    pub data: Vec<String>,
    /// Memory all running queries may use together, in MiB (default 1024). Queries needing
    /// more fail with `Unavailable` rather than spilling to disk.
    pub memory_limit_mb: u64,
    /// Parallelism of scans, joins and aggregates; 0 (default) means the available cores.
    pub target_partitions: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            demo: true,
            data: Vec::new(),
            memory_limit_mb: 1024,
            target_partitions: 0,
        }
    }
}

/// The semantic model of the demo `shop` dataset (TOML, see `bqai_core::semantic`): table and
/// column meanings, joins, named measures such as revenue, verified examples.
pub const DEMO_SEMANTIC_MODEL: &str = include_str!("../semantic/shop.toml");
