//! BigQuery schemas and table metadata → core [`Field`]s and [`Table`]s: nested RECORD
//! fields, REPEATED modes, descriptions, legacy type names (`INTEGER`, `FLOAT`, `BOOLEAN`,
//! `STRUCT`) normalised, partitioning and clustering described.

use chrono::{DateTime, Utc};
use google_cloud_bigquery_v2::model::{
    Table as BqTable, TableFieldSchema, TableReference as BqTableReference,
};

use bqai_core::model::{Field, FieldMode, FieldType, Table, TableKind, TableRef};

/// The core field of a BigQuery field schema (recursively for RECORDs).
///
/// Unknown types (a type BigQuery adds later) are kept readable as STRING: their values are
/// then passed through as text by [`crate::value`].
pub fn field_from_bq(field: &TableFieldSchema) -> Field {
    Field {
        name: field.name.clone(),
        field_type: FieldType::parse(&field.r#type).unwrap_or(FieldType::String),
        mode: mode_from_bq(&field.mode),
        description: field
            .description
            .as_ref()
            .map(|d| d.to_string())
            .filter(|d| !d.is_empty()),
        fields: field.fields.iter().map(field_from_bq).collect(),
    }
}

/// The core fields of a list of BigQuery fields.
pub fn fields_from_bq(fields: &[TableFieldSchema]) -> Vec<Field> {
    fields.iter().map(field_from_bq).collect()
}

fn mode_from_bq(mode: &str) -> FieldMode {
    match mode.to_ascii_uppercase().as_str() {
        "REQUIRED" => FieldMode::Required,
        "REPEATED" => FieldMode::Repeated,
        _ => FieldMode::Nullable,
    }
}

/// The kind of a table from BigQuery's `type`.
pub fn kind_from_bq(kind: &str) -> TableKind {
    match kind {
        "VIEW" => TableKind::View,
        "MATERIALIZED_VIEW" => TableKind::MaterializedView,
        "EXTERNAL" | "BIGLAKE" => TableKind::External,
        // TABLE, SNAPSHOT, CLONE and anything new read like tables.
        _ => TableKind::Table,
    }
}

/// The core reference of a BigQuery table reference: the home project becomes `None`.
pub fn table_ref_from_bq(reference: &BqTableReference, home_project: &str) -> TableRef {
    TableRef {
        project: (!reference.project_id.is_empty() && reference.project_id != home_project)
            .then(|| reference.project_id.clone()),
        dataset: reference.dataset_id.clone(),
        table: reference.table_id.clone(),
    }
}

/// Partitioning in words: `DAY(order_date)`, `HOUR(_PARTITIONTIME)`,
/// `RANGE_BUCKET(customer_id, GENERATE_ARRAY(0, 100000, 1000))`.
pub fn partitioning(table: &BqTable) -> Option<String> {
    if let Some(time) = &table.time_partitioning {
        let unit = if time.r#type.is_empty() {
            "DAY"
        } else {
            time.r#type.as_str()
        };
        let column = time
            .field
            .as_ref()
            .map(|f| f.to_string())
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "_PARTITIONTIME".to_owned());
        return Some(format!("{unit}({column})"));
    }
    if let Some(range) = &table.range_partitioning {
        let bounds = range
            .range
            .as_ref()
            .map(|r| format!(", GENERATE_ARRAY({}, {}, {})", r.start, r.end, r.interval))
            .unwrap_or_default();
        return Some(format!("RANGE_BUCKET({}{bounds})", range.field));
    }
    None
}

/// Milliseconds since the epoch (BigQuery's `creationTime`) as a UTC instant; 0 is unknown.
pub fn millis_to_utc(millis: i64) -> Option<DateTime<Utc>> {
    (millis > 0)
        .then(|| DateTime::<Utc>::from_timestamp_millis(millis))
        .flatten()
}

/// The core table of a `tables.get` answer.
pub fn table_from_bq(table: &BqTable, fallback: &TableRef, home_project: &str) -> Table {
    let table_ref = table
        .table_reference
        .as_ref()
        .map_or_else(|| fallback.clone(), |r| table_ref_from_bq(r, home_project));
    Table {
        table_ref,
        kind: kind_from_bq(&table.r#type),
        description: table
            .description
            .as_ref()
            .map(|d| d.to_string())
            .filter(|d| !d.is_empty()),
        schema: table
            .schema
            .as_ref()
            .map(|s| fields_from_bq(&s.fields))
            .unwrap_or_default(),
        num_rows: table.num_rows,
        num_bytes: table.num_bytes.and_then(|b| u64::try_from(b).ok()),
        partitioning: partitioning(table),
        clustering: table
            .clustering
            .as_ref()
            .map(|c| c.fields.clone())
            .unwrap_or_default(),
        created_at: millis_to_utc(table.creation_time),
        modified_at: millis_to_utc(i64::try_from(table.last_modified_time).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(json: serde_json::Value) -> BqTable {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn nested_repeated_described_schema_is_kept() {
        let t = table(serde_json::json!({
            "tableReference": {"projectId": "p", "datasetId": "shop", "tableId": "orders"},
            "type": "TABLE",
            "description": "Orders",
            "numRows": "100000",
            "numBytes": "4200000",
            "creationTime": "1704067200000",
            "lastModifiedTime": "1704153600000",
            "timePartitioning": {"type": "DAY", "field": "order_date"},
            "clustering": {"fields": ["customer_id", "status"]},
            "schema": {"fields": [
                {"name": "order_id", "type": "INTEGER", "mode": "REQUIRED", "description": "Key"},
                {"name": "amount", "type": "FLOAT"},
                {"name": "paid", "type": "BOOLEAN"},
                {"name": "lines", "type": "RECORD", "mode": "REPEATED", "fields": [
                    {"name": "sku", "type": "STRING", "description": "Stock unit"},
                    {"name": "attrs", "type": "STRUCT", "fields": [
                        {"name": "k", "type": "STRING"}, {"name": "v", "type": "JSON"}]}
                ]},
                {"name": "span", "type": "RANGE", "rangeElementType": {"type": "DATE"}},
                {"name": "future", "type": "SOMETHING_NEW"}
            ]}
        }));
        let core = table_from_bq(&t, &TableRef::new("x", "y"), "p");
        assert_eq!(core.table_ref, TableRef::new("shop", "orders"));
        assert_eq!(core.kind, TableKind::Table);
        assert_eq!(core.description.as_deref(), Some("Orders"));
        assert_eq!(core.num_rows, Some(100_000));
        assert_eq!(core.num_bytes, Some(4_200_000));
        assert_eq!(core.partitioning.as_deref(), Some("DAY(order_date)"));
        assert_eq!(core.clustering, vec!["customer_id", "status"]);
        assert_eq!(
            core.created_at.map(|t| t.to_rfc3339()),
            Some("2024-01-01T00:00:00+00:00".into())
        );
        assert!(core.modified_at > core.created_at);

        let s = &core.schema;
        assert_eq!(s[0].field_type, FieldType::Int64);
        assert_eq!(s[0].mode, FieldMode::Required);
        assert_eq!(s[0].description.as_deref(), Some("Key"));
        assert_eq!(s[1].field_type, FieldType::Float64);
        assert_eq!(s[2].field_type, FieldType::Bool);
        assert_eq!(s[3].field_type, FieldType::Record);
        assert_eq!(s[3].mode, FieldMode::Repeated);
        assert_eq!(s[3].fields[0].description.as_deref(), Some("Stock unit"));
        assert_eq!(s[3].fields[1].field_type, FieldType::Record);
        assert_eq!(s[3].fields[1].fields[1].field_type, FieldType::Json);
        assert_eq!(s[4].field_type, FieldType::Range);
        assert_eq!(s[5].field_type, FieldType::String);
    }

    #[test]
    fn partitioning_forms() {
        let ingestion = table(serde_json::json!({"timePartitioning": {"type": "HOUR"}}));
        assert_eq!(
            partitioning(&ingestion).as_deref(),
            Some("HOUR(_PARTITIONTIME)")
        );
        let range = table(serde_json::json!({"rangePartitioning": {"field": "id",
            "range": {"start": "0", "end": "100", "interval": "10"}}}));
        assert_eq!(
            partitioning(&range).as_deref(),
            Some("RANGE_BUCKET(id, GENERATE_ARRAY(0, 100, 10))")
        );
        assert_eq!(partitioning(&table(serde_json::json!({}))), None);
    }

    #[test]
    fn kinds_and_foreign_projects() {
        assert_eq!(kind_from_bq("VIEW"), TableKind::View);
        assert_eq!(
            kind_from_bq("MATERIALIZED_VIEW"),
            TableKind::MaterializedView
        );
        assert_eq!(kind_from_bq("EXTERNAL"), TableKind::External);
        assert_eq!(kind_from_bq("SNAPSHOT"), TableKind::Table);
        let foreign = BqTableReference::new()
            .set_project_id("other")
            .set_dataset_id("d")
            .set_table_id("t");
        assert_eq!(
            table_ref_from_bq(&foreign, "home").project.as_deref(),
            Some("other")
        );
        assert_eq!(table_ref_from_bq(&foreign, "other").project, None);
    }
}
