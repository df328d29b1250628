//! Route handlers, one module per resource. Handlers are thin: parse, call a use case, map.

pub mod admin;
pub mod analytics;
pub mod ask;
pub mod catalog;
pub mod conversations;
pub mod export_jobs;
pub mod exports;
pub mod health;
pub mod history;
pub mod metrics;
pub mod page;
pub mod query;
pub mod ticket;
pub mod ws;

use bqai_core::model::{PageRequest, TableRef};

use crate::error::ApiError;
use crate::state::HttpSettings;

/// Bounds and converts `page_size`/`page_token`.
pub(crate) fn page_request(
    settings: &HttpSettings,
    page_size: Option<u32>,
    page_token: Option<String>,
    max: u32,
) -> Result<PageRequest, ApiError> {
    let size = page_size.unwrap_or(settings.default_page_size.min(max));
    if size == 0 || size > max {
        return Err(ApiError::invalid(format!(
            "page_size must be between 1 and {max}"
        )));
    }
    let page_token = page_token.filter(|t| !t.is_empty());
    if page_token.as_ref().is_some_and(|t| t.len() > 1024) {
        return Err(ApiError::invalid("page_token is too long"));
    }
    Ok(PageRequest {
        page_size: size,
        page_token,
    })
}

/// Validates a dataset id from a path.
pub(crate) fn dataset_id(raw: &str) -> Result<String, ApiError> {
    if bqai_core::query::is_valid_dataset_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid(format!(
            "dataset_id {raw:?} is not valid: use letters, digits and underscores"
        )))
    }
}

/// Validates a table reference from a path.
pub(crate) fn table_ref(dataset: &str, table: &str) -> Result<TableRef, ApiError> {
    let dataset = dataset_id(dataset)?;
    let ok = !table.is_empty()
        && table.len() <= 1024
        && !table
            .chars()
            .any(|c| matches!(c, '.' | '/' | '\\' | '`' | '\'' | '"') || c.is_control());
    if !ok {
        return Err(ApiError::invalid(format!(
            "table_id {table:?} is not valid"
        )));
    }
    Ok(TableRef::new(dataset, table))
}
