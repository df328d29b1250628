//! The bytes estimate of a query, BigQuery-style, from the optimized logical plan.
//!
//! After optimization every `TableScan` carries the columns it really reads (projection
//! pushdown), so the estimate is, for each scanned table, the sum of the precomputed logical
//! sizes of those columns. Like BigQuery: a column is counted once per table even when the
//! table is scanned several times (self-joins, subqueries), `LIMIT` and `WHERE` do not reduce
//! it, and `COUNT(*)` alone reads no column (0 bytes).

use std::collections::{BTreeMap, BTreeSet};

use bqai_core::model::TableRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;

use crate::HOME_CATALOG;
use crate::catalog::Catalog;

/// What a plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanEstimate {
    /// Logical bytes of the columns read.
    pub(crate) bytes: u64,
    /// Tables read, sorted and without duplicates.
    pub(crate) tables: Vec<TableRef>,
}

/// Walks the plan (subqueries included) and sums the columns each table scan projects.
pub(crate) fn estimate(
    plan: &LogicalPlan,
    catalog: &Catalog,
    default_schema: &str,
) -> Result<ScanEstimate, DataFusionError> {
    // (dataset, table) → columns read, by index into the table schema.
    let mut read: BTreeMap<(String, String), BTreeSet<usize>> = BTreeMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let name = scan
                .table_name
                .clone()
                .resolve(HOME_CATALOG, default_schema);
            // Scans of anything else (table functions such as generate_series) read no data.
            if let Some(entry) = catalog.resolve(&name.catalog, &name.schema, &name.table) {
                let columns = read
                    .entry((entry.dataset.clone(), entry.name.clone()))
                    .or_default();
                match &scan.projection {
                    Some(projection) => columns.extend(projection.iter().copied()),
                    None => columns.extend(0..entry.column_bytes.len()),
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;

    let mut bytes = 0u64;
    let mut tables = Vec::with_capacity(read.len());
    for ((dataset, table), columns) in read {
        if let Some(entry) = catalog.resolve(HOME_CATALOG, &dataset, &table) {
            bytes += columns
                .iter()
                .filter_map(|i| entry.column_bytes.get(*i))
                .sum::<u64>();
        }
        tables.push(TableRef::new(dataset, table));
    }
    Ok(ScanEstimate { bytes, tables })
}
