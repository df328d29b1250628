//! The `bqai` binary as a library: configuration, wiring of adapters into use cases, the
//! server lifecycle and the CLI commands. `main.rs` only parses arguments and calls in here,
//! so the API tests build exactly what production runs.

pub mod auth;
pub mod cli;
pub mod config;
pub mod export_cli;
pub mod history_cli;
pub mod maintenance;
pub mod semantic_cli;
pub mod startup;
pub mod telemetry;
