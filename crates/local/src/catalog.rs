//! The in-memory catalog: datasets and tables with their documentation, row counts and
//! per-column logical sizes, plus name-ordered pagination.
//!
//! DataFusion's own catalog holds the same tables (as `MemTable`s) for SQL; this one answers
//! catalog calls and byte estimates without planning anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bqai_core::model::{
    Dataset, Field, Page, PageRequest, Table, TableKind, TableRef, TableSummary,
};
use bqai_core::{Error, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;

use crate::HOME_CATALOG;
use crate::convert::{field_from_arrow, logical_size};

/// Page size used when a request asks for 0 items.
const DEFAULT_PAGE_SIZE: usize = 100;

/// One table: its data (shared with DataFusion) and what the catalog says about it.
pub(crate) struct TableEntry {
    pub(crate) dataset: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) schema: SchemaRef,
    pub(crate) column_descriptions: Vec<Option<String>>,
    /// BigQuery-style logical bytes of each column, in schema order.
    pub(crate) column_bytes: Vec<u64>,
    pub(crate) num_rows: u64,
    /// The rows in their original order (previews read these directly).
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) provider: Arc<MemTable>,
}

impl TableEntry {
    /// Builds an entry, computing sizes and splitting the batches round-robin over
    /// `partitions` so scans run in parallel.
    pub(crate) fn new(
        dataset: &str,
        name: &str,
        description: Option<String>,
        schema: SchemaRef,
        column_descriptions: Vec<Option<String>>,
        batches: Vec<RecordBatch>,
        partitions: usize,
    ) -> Result<Self> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let column_bytes = (0..schema.fields().len())
            .map(|i| {
                batches
                    .iter()
                    .map(|b| b.columns().get(i).map_or(0, |c| logical_size(c.as_ref())))
                    .sum()
            })
            .collect();
        let num_rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let partitions = partitions.clamp(1, batches.len().max(1));
        let mut split = vec![Vec::new(); partitions];
        for (i, b) in batches.iter().enumerate() {
            split[i % partitions].push(b.clone());
        }
        let provider = MemTable::try_new(Arc::clone(&schema), split)
            .map_err(|e| Error::internal(format!("registering table {dataset}.{name}"), e))?;
        Ok(Self {
            dataset: dataset.to_owned(),
            name: name.to_owned(),
            description,
            schema,
            column_descriptions,
            column_bytes,
            num_rows,
            batches,
            provider: Arc::new(provider),
        })
    }

    pub(crate) fn table_ref(&self) -> TableRef {
        TableRef::new(self.dataset.clone(), self.name.clone())
    }

    pub(crate) fn num_bytes(&self) -> u64 {
        self.column_bytes.iter().sum()
    }

    /// The schema as BigQuery-typed fields, with column descriptions.
    pub(crate) fn fields(&self) -> Vec<Field> {
        self.schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut field = field_from_arrow(f);
                field.description = self.column_descriptions.get(i).cloned().flatten();
                field
            })
            .collect()
    }

    pub(crate) fn summary(&self) -> TableSummary {
        TableSummary {
            table_ref: self.table_ref(),
            kind: TableKind::Table,
            num_rows: Some(self.num_rows),
            num_bytes: Some(self.num_bytes()),
        }
    }

    pub(crate) fn table(&self) -> Table {
        Table {
            table_ref: self.table_ref(),
            kind: TableKind::Table,
            description: self.description.clone(),
            schema: self.fields(),
            num_rows: Some(self.num_rows),
            num_bytes: Some(self.num_bytes()),
            partitioning: None,
            clustering: Vec::new(),
            created_at: None,
            modified_at: None,
        }
    }
}

/// One dataset (a DataFusion schema in the `datafusion` catalog).
pub(crate) struct DatasetEntry {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) tables: BTreeMap<String, Arc<TableEntry>>,
}

impl DatasetEntry {
    pub(crate) fn dataset(&self) -> Dataset {
        Dataset {
            id: self.name.clone(),
            project: Some(HOME_CATALOG.to_owned()),
            description: self.description.clone(),
            location: None,
            table_count: Some(self.tables.len() as u64),
        }
    }
}

/// All datasets, by name.
#[derive(Default)]
pub(crate) struct Catalog {
    pub(crate) datasets: BTreeMap<String, DatasetEntry>,
}

impl Catalog {
    /// Adds a table, creating its dataset on first use; a second table of the same name is a
    /// configuration error naming both sources.
    pub(crate) fn add(
        &mut self,
        dataset_description: Option<String>,
        table: TableEntry,
        source: &str,
    ) -> Result<()> {
        let dataset = self
            .datasets
            .entry(table.dataset.clone())
            .or_insert_with(|| DatasetEntry {
                name: table.dataset.clone(),
                description: dataset_description,
                tables: BTreeMap::new(),
            });
        if dataset.tables.contains_key(&table.name) {
            return Err(Error::InvalidRequest(format!(
                "{source}: table {}.{} is defined twice (two files with the same name, or a \
                 name taken by the demo dataset)",
                table.dataset, table.name
            )));
        }
        dataset.tables.insert(table.name.clone(), Arc::new(table));
        Ok(())
    }

    pub(crate) fn dataset(&self, id: &str) -> Result<&DatasetEntry> {
        self.datasets
            .get(&id.to_ascii_lowercase())
            .ok_or_else(|| Error::NotFound(format!("dataset {id}")))
    }

    pub(crate) fn table(&self, table: &TableRef) -> Result<&Arc<TableEntry>> {
        let not_found = || Error::NotFound(format!("table {}.{}", table.dataset, table.table));
        if let Some(project) = &table.project
            && !project.eq_ignore_ascii_case(HOME_CATALOG)
        {
            return Err(not_found());
        }
        self.datasets
            .get(&table.dataset.to_ascii_lowercase())
            .and_then(|d| d.tables.get(&table.table.to_ascii_lowercase()))
            .ok_or_else(not_found)
    }

    /// The entry behind a resolved `catalog.schema.table` name, if it is one of ours.
    pub(crate) fn resolve(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Option<&Arc<TableEntry>> {
        if catalog != HOME_CATALOG {
            return None;
        }
        self.datasets.get(schema).and_then(|d| d.tables.get(table))
    }
}

/// One page of `items` (already sorted by name) after the request's token.
///
/// The token is the last name of the previous page (base64url), so pages stay consistent
/// without server-side cursors.
pub(crate) fn paginate<'a, T: 'a>(
    items: impl Iterator<Item = (&'a String, T)>,
    request: &PageRequest,
) -> Result<Page<T>> {
    let after = request
        .page_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(decode_token)
        .transpose()?;
    let size = match request.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n as usize,
    };
    let mut rest = items
        .filter(|(name, _)| after.as_deref().is_none_or(|a| name.as_str() > a))
        .peekable();
    let mut page = Vec::with_capacity(size.min(DEFAULT_PAGE_SIZE));
    let mut last = None;
    while page.len() < size {
        match rest.next() {
            Some((name, item)) => {
                last = Some(name);
                page.push(item);
            }
            None => break,
        }
    }
    let next_page_token = match (rest.peek(), last) {
        (Some(_), Some(last)) => Some(URL_SAFE_NO_PAD.encode(last.as_bytes())),
        _ => None,
    };
    Ok(Page {
        items: page,
        next_page_token,
    })
}

fn decode_token(token: &str) -> Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Error::InvalidRequest("invalid page token".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_walk_everything_once() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let mut seen = Vec::new();
        let mut request = PageRequest::first(2);
        loop {
            let page = paginate(names.iter().map(|n| (n, n.clone())), &request).unwrap();
            assert!(page.items.len() <= 2);
            seen.extend(page.items);
            match page.next_page_token {
                Some(t) => request.page_token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, names);
    }

    #[test]
    fn exact_fit_has_no_next_page_and_bad_tokens_are_rejected() {
        let names: Vec<String> = vec!["a".into(), "b".into()];
        let page = paginate(names.iter().map(|n| (n, ())), &PageRequest::first(2)).unwrap();
        assert_eq!(page.next_page_token, None);
        let bad = PageRequest {
            page_size: 1,
            page_token: Some("%%%".into()),
        };
        assert!(matches!(
            paginate(names.iter().map(|n| (n, ())), &bad),
            Err(Error::InvalidRequest(_))
        ));
    }
}
