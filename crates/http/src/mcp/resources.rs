//! MCP resources: each table's schema (`bqai://datasets/{dataset}/tables/{table}`) and each
//! dataset's semantic model (`bqai://datasets/{dataset}/semantic-model`), both as JSON and
//! both within the caller's dataset scope — a table the caller may not read is not listed,
//! and reading it is `FORBIDDEN` exactly as `describe_table` would be.

use bqai_core::model::{PageRequest, Principal};
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

use crate::auth::{AuditNote, add_target};
use crate::dto::TableDto;
use crate::error::ApiError;
use crate::routes::{dataset_id, table_ref};
use crate::state::AppState;

/// Most resources listed (the tools page through a larger catalog).
const MAX_LISTED: usize = 1000;

const PREFIX: &str = "bqai://datasets/";

fn table_uri(dataset: &str, table: &str) -> String {
    format!("{PREFIX}{dataset}/tables/{table}")
}

fn model_uri(dataset: &str) -> String {
    format!("{PREFIX}{dataset}/semantic-model")
}

/// The URI templates, so a client can read a table it has not listed.
pub(crate) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{PREFIX}{{dataset_id}}/tables/{{table_id}}"), "table")
            .with_description("A table's schema, description and size")
            .with_mime_type("application/json"),
        ResourceTemplate::new(format!("{PREFIX}{{dataset_id}}/semantic-model"), "semantic-model")
            .with_description("A dataset's semantic model: descriptions, synonyms, measures, joins, verified examples")
            .with_mime_type("application/json"),
    ]
}

/// The tables and semantic models the principal may read (at most [`MAX_LISTED`]).
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<Resource>, ApiError> {
    let mut out = Vec::new();
    let mut datasets = Vec::new();
    let mut page = PageRequest::first(200);
    loop {
        let p = state.catalog.list_datasets(principal, &page).await?;
        datasets.extend(p.items);
        match p.next_page_token {
            Some(t) if datasets.len() < MAX_LISTED => page.page_token = Some(t),
            _ => break,
        }
    }
    for ds in datasets {
        if let Some(model) = state.ask.semantic_model(&ds.id) {
            let mut r = Resource::new(model_uri(&ds.id), format!("{} semantic model", ds.id))
                .with_mime_type("application/json");
            if let Some(d) = &model.description {
                r = r.with_description(d.clone());
            }
            out.push(r);
        }
        let mut page = PageRequest::first(200);
        loop {
            let p = state.catalog.list_tables(principal, &ds.id, &page).await?;
            for t in p.items {
                let (d, name) = (&t.table_ref.dataset, &t.table_ref.table);
                out.push(
                    Resource::new(table_uri(d, name), format!("{d}.{name}"))
                        .with_description(format!("Schema of {d}.{name}"))
                        .with_mime_type("application/json"),
                );
            }
            match p.next_page_token {
                Some(t) if out.len() < MAX_LISTED => page.page_token = Some(t),
                _ => break,
            }
        }
        if out.len() >= MAX_LISTED {
            out.truncate(MAX_LISTED);
            break;
        }
    }
    Ok(out)
}

/// Reads one resource.
pub(crate) async fn read(
    state: &AppState,
    principal: &Principal,
    uri: &str,
    note: &mut AuditNote,
) -> Result<ReadResourceResult, ApiError> {
    let unknown = || {
        ApiError::invalid(format!(
            "unknown resource URI {uri:?}: use {PREFIX}{{dataset_id}}/tables/{{table_id}} or {PREFIX}{{dataset_id}}/semantic-model"
        ))
    };
    let rest = uri.strip_prefix(PREFIX).ok_or_else(unknown)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let json = match parts.as_slice() {
        [ds, "tables", table] => {
            let table = table_ref(ds, table)?;
            add_target(note, table.to_string());
            let found = state.catalog.get_table(principal, &table).await?;
            serde_json::to_string_pretty(&TableDto::from(found))
        }
        [ds, "semantic-model"] => {
            let ds = dataset_id(ds)?;
            add_target(note, &ds);
            // The scope check: a dataset the caller may not read is FORBIDDEN, one that does
            // not exist NOT_FOUND, before anything about its model is said.
            state.catalog.get_dataset(principal, &ds).await?;
            let model = state.ask.semantic_model(&ds).ok_or_else(|| {
                ApiError::not_found(format!("dataset {ds} has no semantic model"))
            })?;
            serde_json::to_string_pretty(model.as_ref())
        }
        _ => return Err(unknown()),
    }
    .map_err(|e| {
        ApiError::from(bqai_core::Error::internal(
            "a resource did not serialize",
            e,
        ))
    })?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(json, uri).with_mime_type("application/json"),
    ]))
}
