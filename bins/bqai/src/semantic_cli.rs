//! `bqai semantic draft`: a first semantic model of a dataset, written as TOML for the operator
//! to edit and list in `ask.semantic_models` (see `bqai_planner::draft`).
//!
//! It reads the dataset's tables through the catalog (the allow-list applies) and samples the
//! categorical columns' values through the same guarded system queries as the planner
//! (`ask.sampling_max_bytes` per column, history kind `system`), unless `ask.sample_values` is
//! off.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bqai_core::model::{PageRequest, TableRef};
use bqai_core::system::GuardedSystemQueries;
use bqai_planner::Planner;
use bqai_planner::draft::to_toml;

use crate::config::Settings;
use crate::startup::Services;

/// The principal the draft's sampling queries are recorded under.
const PRINCIPAL: &str = "system:semantic-draft";

/// Drafts the model of `dataset` into `output` (stdout when `None`).
pub async fn draft(
    settings: &Settings,
    dataset: &str,
    output: Option<&Path>,
) -> anyhow::Result<()> {
    let services = Services::build(settings).await?;
    let principal = &services.anonymous;
    let mut tables = Vec::new();
    let mut page = PageRequest::first(500);
    loop {
        let listed = services
            .catalog
            .list_tables(principal, dataset, &page)
            .await
            .map_err(|e| {
                anyhow::anyhow!("could not list the tables of {dataset}: {e} ({})", e.code())
            })?;
        for t in listed.items {
            let table = TableRef::new(dataset, &t.table_ref.table);
            tables.push(
                services
                    .catalog
                    .get_table(principal, &table)
                    .await
                    .map_err(|e| anyhow::anyhow!("could not read {table}: {e} ({})", e.code()))?,
            );
        }
        match listed.next_page_token {
            Some(token) => page.page_token = Some(token),
            None => break,
        }
    }
    anyhow::ensure!(!tables.is_empty(), "dataset {dataset} has no tables");
    let planner = if settings.ask.sample_values {
        Planner::new(Arc::new(GuardedSystemQueries::new(
            services.queries.clone(),
            PRINCIPAL,
            settings.sampling_limits(),
        )))
    } else {
        Planner::without_sampling()
    };
    let draft = planner
        .draft_model(dataset, &tables, services.queries.dialect())
        .await;
    // The sampling queries' history records go out before the process does.
    services
        .flush_history(std::time::Duration::from_secs(5))
        .await;
    let toml = to_toml(&draft);
    // What was written must load: the operator starts from a valid file.
    bqai_core::semantic::SemanticModel::from_toml(&toml)
        .map_err(|e| anyhow::anyhow!("the draft does not load ({e}); this is a bug"))?;
    let m = &draft.model;
    let n =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    let summary = format!(
        "drafted {dataset}: {}, {}, {}, the values of {}; fill in the descriptions, check the \
         roles, joins and measures, then list the file in ask.semantic_models",
        n(m.tables.len(), "table"),
        n(m.relationships.len(), "join"),
        n(m.measures.len(), "measure"),
        n(draft.values.len(), "column")
    );
    match output {
        Some(path) => {
            std::fs::write(path, &toml)
                .with_context(|| format!("could not write {}", path.display()))?;
            writeln!(std::io::stderr().lock(), "{summary}: {}", path.display())?;
        }
        None => {
            std::io::stdout().lock().write_all(toml.as_bytes())?;
            writeln!(std::io::stderr().lock(), "{summary}")?;
        }
    }
    Ok(())
}
