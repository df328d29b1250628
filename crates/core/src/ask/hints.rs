//! Optimisation hints attached to an answer: things a person reading the SQL should know
//! about its cost (SELECT * on a wide table, no filter on a partitioned table's partition
//! column, a large scan).

use crate::model::Table;

/// Tables with at least this many columns count as wide.
const WIDE_TABLE_COLUMNS: usize = 10;
const LARGE_SCAN_BYTES: u64 = 1 << 30;

/// Hints for `sql` (as the guard rewrote it) reading `tables`, estimated at `bytes`.
pub fn hints(sql: &str, tables: &[Table], bytes: u64) -> Vec<String> {
    let upper = sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    let mut out = Vec::new();
    if upper.contains("SELECT *") || upper.contains(".*") {
        for t in tables
            .iter()
            .filter(|t| t.schema.len() >= WIDE_TABLE_COLUMNS)
        {
            out.push(format!(
                "SELECT * reads all {} columns of {}.{}; naming only the columns you need \
                 reduces the bytes scanned",
                t.schema.len(),
                t.table_ref.dataset,
                t.table_ref.table
            ));
        }
    }
    let after_where = upper.split_once(" WHERE ").map(|(_, w)| w.to_string());
    for t in tables {
        let Some(column) = t.partitioning.as_deref().and_then(partition_column) else {
            continue;
        };
        let filtered = after_where
            .as_deref()
            .is_some_and(|w| w.contains(&column.to_uppercase()));
        if !filtered {
            out.push(format!(
                "{}.{} is partitioned by {column} but the query does not filter on it, so \
                 every partition is scanned; add a condition on {column} to scan less",
                t.table_ref.dataset, t.table_ref.table
            ));
        }
    }
    if bytes >= LARGE_SCAN_BYTES {
        out.push(format!(
            "the query scans about {:.1} GiB",
            bytes as f64 / f64::from(1u32 << 30)
        ));
    }
    out
}

/// The column in a partitioning description: `DAY(order_date)` → `order_date`,
/// `order_date` → `order_date`, `_PARTITIONTIME` (ingestion time) included.
fn partition_column(p: &str) -> Option<String> {
    let inner = match (p.find('('), p.rfind(')')) {
        (Some(a), Some(b)) if b > a => &p[a + 1..b],
        _ => p,
    };
    let col = inner.split(',').next()?.trim();
    (!col.is_empty()).then(|| col.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, FieldType, TableKind, TableRef};

    fn table(cols: usize, partitioning: Option<&str>) -> Table {
        Table {
            table_ref: TableRef::new("ds", "events"),
            kind: TableKind::Table,
            description: None,
            schema: (0..cols)
                .map(|i| Field::new(format!("c{i}"), FieldType::Int64))
                .collect(),
            num_rows: None,
            num_bytes: None,
            partitioning: partitioning.map(String::from),
            clustering: vec![],
            created_at: None,
            modified_at: None,
        }
    }

    #[test]
    fn select_star_on_wide_tables() {
        assert_eq!(
            hints("SELECT * FROM ds.events", &[table(12, None)], 0).len(),
            1
        );
        assert!(hints("SELECT * FROM ds.events", &[table(3, None)], 0).is_empty());
        assert!(hints("SELECT c1 FROM ds.events", &[table(12, None)], 0).is_empty());
    }

    #[test]
    fn partition_filters() {
        let t = table(3, Some("DAY(event_date)"));
        assert_eq!(
            hints("SELECT c1 FROM ds.events", std::slice::from_ref(&t), 0).len(),
            1
        );
        assert!(
            hints(
                "SELECT c1 FROM ds.events WHERE event_date >= DATE '2024-01-01'",
                &[t],
                0
            )
            .is_empty()
        );
    }

    #[test]
    fn large_scans() {
        assert_eq!(hints("SELECT 1", &[], 5 << 30).len(), 1);
    }
}
