//! MCP prompts: `explore_dataset`, a first message for an agent about to work with a dataset —
//! its tables, what its semantic model says, and the verified example questions — so the agent
//! starts from what the data team wrote rather than from guesses.

use std::fmt::Write as _;

use bqai_core::model::PageRequest;
use bqai_core::model::Principal;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, Prompt, PromptArgument, PromptMessage, Role,
};

use crate::auth::{AuditNote, add_target};
use crate::error::ApiError;
use crate::routes::dataset_id;
use crate::state::AppState;

const EXPLORE: &str = "explore_dataset";

/// Tables named in the prompt.
const MAX_TABLES: u32 = 100;

/// The prompts, for `prompts/list`.
pub(crate) fn definitions() -> Vec<Prompt> {
    vec![Prompt::new(
        EXPLORE,
        Some(
            "Explore a dataset: its tables, measures and verified example questions, and how to query it safely with the bqai tools",
        ),
        Some(vec![
            PromptArgument::new("dataset_id")
                .with_description("The dataset to explore")
                .with_required(true),
        ]),
    )]
}

/// Renders a prompt.
pub(crate) async fn get(
    state: &AppState,
    principal: &Principal,
    request: &GetPromptRequestParams,
    note: &mut AuditNote,
) -> Result<GetPromptResult, ApiError> {
    if request.name != EXPLORE {
        return Err(ApiError::not_found(format!(
            "no prompt named {:?}; prompts/list names them",
            request.name
        )));
    }
    let ds = request
        .arguments
        .as_ref()
        .and_then(|a| a.get("dataset_id"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| ApiError::invalid("explore_dataset needs the argument dataset_id"))?;
    let ds = dataset_id(ds)?;
    add_target(note, &ds);
    let dataset = state.catalog.get_dataset(principal, &ds).await?;
    let tables = state
        .catalog
        .list_tables(principal, &ds, &PageRequest::first(MAX_TABLES))
        .await?;
    let model = state.ask.semantic_model(&ds);
    let mut text = format!("Explore the dataset `{ds}` with the bqai tools.");
    if let Some(d) = dataset
        .description
        .as_deref()
        .or(model.as_ref().and_then(|m| m.description.as_deref()))
    {
        let _ = write!(text, " It holds: {d}");
    }
    text.push_str("\n\nTables:");
    for t in &tables.items {
        let name = &t.table_ref.table;
        let _ = write!(text, "\n- {name}");
        if let Some(d) = model
            .as_ref()
            .and_then(|m| m.table(name))
            .and_then(|t| t.description.as_deref())
        {
            let _ = write!(text, ": {d}");
        }
    }
    if tables.next_page_token.is_some() {
        text.push_str("\n- … (more: list_tables)");
    }
    if let Some(m) = &model {
        if !m.measures.is_empty() {
            text.push_str("\n\nNamed measures (use their SQL as written):");
            for measure in &m.measures {
                let _ = write!(text, "\n- {} = {}", measure.name, measure.sql);
            }
        }
        if !m.examples.is_empty() {
            text.push_str("\n\nVerified example questions (the `ask` tool answers them):");
            for e in &m.examples {
                let _ = write!(text, "\n- {}", e.question);
            }
        }
    }
    text.push_str(
        "\n\nStart with describe_table for the tables that matter, then ask questions with `ask` \
         or write SQL for run_query (estimate_query first on large tables; it is free). Only \
         SELECT statements over datasets this key may read are accepted; each query is capped \
         in bytes and rows, and a refusal says what to change.",
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(format!("Explore the dataset {ds}")),
    )
}
