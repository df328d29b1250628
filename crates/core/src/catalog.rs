//! The catalog use case: datasets, tables, schemas and previews, as a principal may see them.
//!
//! Listings show only the datasets inside the principal's scope (intersected with the
//! service allow-list); reads of anything else are `Forbidden`. Caching happens below, in the
//! [`crate::result_cache::CachedWarehouse`] decorator this service is usually given.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{
    Dataset, DatasetScope, Page, PageRequest, Principal, QueryResult, Table, TableRef, TableSummary,
};
use crate::ports::Warehouse;

/// Catalog reads for principals.
#[derive(Clone)]
pub struct CatalogService {
    warehouse: Arc<dyn Warehouse>,
    allowed: DatasetScope,
    max_preview_rows: u64,
}

impl CatalogService {
    /// A catalog over `warehouse`, limited to `allowed` datasets for everyone.
    pub fn new(
        warehouse: Arc<dyn Warehouse>,
        allowed: DatasetScope,
        max_preview_rows: u64,
    ) -> Self {
        Self {
            warehouse,
            allowed,
            max_preview_rows,
        }
    }

    fn scope(&self, principal: &Principal) -> DatasetScope {
        self.allowed.intersect(&principal.datasets)
    }

    fn ensure_allowed(&self, principal: &Principal, dataset: &str) -> Result<()> {
        if self.scope(principal).allows(None, dataset) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "dataset `{dataset}` is not in the datasets you may read"
            )))
        }
    }

    /// Datasets the principal may read, one page at a time.
    ///
    /// Filtering happens per warehouse page, so a page may hold fewer than `page_size` items
    /// while a next page still exists; clients follow `next_page_token` until it is `None`.
    pub async fn list_datasets(
        &self,
        principal: &Principal,
        page: &PageRequest,
    ) -> Result<Page<Dataset>> {
        let scope = self.scope(principal);
        let mut listed = self.warehouse.list_datasets(page).await?;
        listed.items.retain(|d| scope.allows(None, &d.id));
        Ok(listed)
    }

    /// One dataset.
    pub async fn get_dataset(&self, principal: &Principal, dataset_id: &str) -> Result<Dataset> {
        self.ensure_allowed(principal, dataset_id)?;
        self.warehouse.get_dataset(dataset_id).await
    }

    /// Tables of a dataset.
    pub async fn list_tables(
        &self,
        principal: &Principal,
        dataset_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TableSummary>> {
        self.ensure_allowed(principal, dataset_id)?;
        self.warehouse.list_tables(dataset_id, page).await
    }

    /// A table with its schema.
    pub async fn get_table(&self, principal: &Principal, table: &TableRef) -> Result<Table> {
        self.ensure_allowed(principal, &table.dataset)?;
        self.warehouse.get_table(table).await
    }

    /// The first rows of a table (`limit` between 1 and the configured maximum).
    pub async fn preview(
        &self,
        principal: &Principal,
        table: &TableRef,
        limit: u64,
    ) -> Result<QueryResult> {
        self.ensure_allowed(principal, &table.dataset)?;
        if limit == 0 || limit > self.max_preview_rows {
            return Err(Error::InvalidRequest(format!(
                "limit must be between 1 and {}",
                self.max_preview_rows
            )));
        }
        let mut rows = self.warehouse.preview(table, limit).await?;
        rows.make_column_names_unique();
        Ok(rows)
    }
}
