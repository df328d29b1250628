//! Follow-up suggestions offered with an answer: drill down by another dimension, the trend
//! over time, the top N, the same question for another period.
//!
//! They are built from what the answer was about (its [`Entities`]) and the tables it read
//! (with their semantic model when there is one), so every one names a column that exists.
//! They are phrased the way the built-in planner reads follow-ups ("and by channel", "now by
//! month", "top 5 instead", "what about 2023?"), so they work whichever generator is in use.

use crate::conversation::{Entities, Suggestion, SuggestionKind};
use crate::model::{FieldType, Table};
use crate::semantic::{ColumnRole, SemanticModel};

/// Most suggestions offered.
pub const MAX_SUGGESTIONS: usize = 4;

/// Suggestions after an answer about `entities` that read `tables`: 2–4 of them, or none
/// when the answer computed no measure (a listing, a schema answer) or fewer than two fit.
pub fn suggestions(
    entities: &Entities,
    tables: &[Table],
    semantic: Option<&SemanticModel>,
) -> Vec<Suggestion> {
    if entities.measures.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let grouped = entities
        .dimensions
        .iter()
        .any(|d| Some(d.as_str()) != entities.time_bucket.as_deref());
    if let Some(dim) = dimensions(tables, semantic).into_iter().find(|d| {
        !entities
            .dimensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case(d))
    }) {
        out.push(Suggestion {
            question: format!("and by {}", dim.replace('_', " ")),
            kind: SuggestionKind::DrillDown,
        });
    }
    if has_time(tables, semantic) {
        let next = match entities.time_bucket.as_deref() {
            None | Some("year" | "quarter") => Some("month"),
            Some("month") => Some("week"),
            _ => None,
        };
        if let Some(bucket) = next {
            out.push(Suggestion {
                question: format!("now by {bucket}"),
                kind: SuggestionKind::Trend,
            });
        }
    }
    if grouped {
        let n = match entities.limit {
            Some(3) => 10,
            Some(_) => 3,
            None => 5,
        };
        out.push(Suggestion {
            question: format!("top {n} instead"),
            kind: SuggestionKind::TopN,
        });
    }
    if let Some(year) = entities.time_range.as_deref().and_then(single_year) {
        out.push(Suggestion {
            question: format!("what about {}?", year - 1),
            kind: SuggestionKind::ComparePeriods,
        });
    }
    out.truncate(MAX_SUGGESTIONS);
    if out.len() < 2 {
        out.clear();
    }
    out
}

/// Categorical columns of `tables` worth grouping by, in table order: the semantic model's
/// dimensions, or short string columns that are not ids, names or free text.
fn dimensions(tables: &[Table], semantic: Option<&SemanticModel>) -> Vec<String> {
    let mut out = Vec::new();
    for table in tables {
        let modelled = semantic.and_then(|m| m.table(&table.table_ref.table));
        match modelled {
            Some(t) if t.columns.iter().any(|c| c.role == ColumnRole::Dimension) => out.extend(
                t.columns
                    .iter()
                    .filter(|c| c.role == ColumnRole::Dimension)
                    .filter(|c| table.schema.iter().any(|f| f.name == c.name))
                    .map(|c| c.name.clone()),
            ),
            _ => out.extend(
                table
                    .schema
                    .iter()
                    .filter(|f| f.field_type == FieldType::String)
                    .filter(|f| {
                        let n = f.name.to_lowercase();
                        !(n == "id"
                            || n.ends_with("_id")
                            || ["name", "email", "address", "phone", "description", "url"]
                                .iter()
                                .any(|w| n.contains(w)))
                    })
                    .map(|f| f.name.clone()),
            ),
        }
    }
    out.dedup();
    out
}

/// Whether one of `tables` can be placed in time.
fn has_time(tables: &[Table], semantic: Option<&SemanticModel>) -> bool {
    tables.iter().any(|t| {
        semantic
            .and_then(|m| m.table(&t.table_ref.table))
            .is_some_and(|s| s.time_column.is_some())
            || t.schema.iter().any(|f| {
                matches!(
                    f.field_type,
                    FieldType::Date | FieldType::Datetime | FieldType::Timestamp
                )
            })
    })
}

/// The year of a time range that is one calendar year ("in 2024").
fn single_year(range: &str) -> Option<i32> {
    let years: Vec<i32> = range
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 4)
        .filter_map(|w| w.parse().ok())
        .collect();
    match years.as_slice() {
        [y] if !range.contains('-') => Some(*y),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, FieldMode, TableRef};

    fn table(name: &str, cols: &[(&str, FieldType)]) -> Table {
        Table {
            table_ref: TableRef::new("d", name),
            schema: cols
                .iter()
                .map(|(n, t)| Field {
                    name: (*n).to_owned(),
                    field_type: *t,
                    mode: FieldMode::Nullable,
                    description: None,
                    fields: Vec::new(),
                })
                .collect(),
            kind: crate::model::TableKind::Table,
            description: None,
            num_rows: None,
            num_bytes: None,
            partitioning: None,
            clustering: Vec::new(),
            created_at: None,
            modified_at: None,
        }
    }

    #[test]
    fn offers_each_kind_when_it_fits() {
        let t = table(
            "orders",
            &[
                ("order_id", FieldType::Int64),
                ("customer_name", FieldType::String),
                ("country", FieldType::String),
                ("channel", FieldType::String),
                ("order_date", FieldType::Date),
                ("amount", FieldType::Float64),
            ],
        );
        let e = Entities {
            measures: vec!["amount".into()],
            dimensions: vec!["country".into()],
            time_range: Some("in 2024".into()),
            ..Entities::default()
        };
        let s = suggestions(&e, &[t], None);
        let q: Vec<&str> = s.iter().map(|s| s.question.as_str()).collect();
        assert_eq!(
            q,
            [
                "and by channel",
                "now by month",
                "top 5 instead",
                "what about 2023?"
            ]
        );
    }

    #[test]
    fn nothing_without_a_measure_or_with_a_single_idea() {
        let t = table("t", &[("amount", FieldType::Float64)]);
        assert!(suggestions(&Entities::default(), std::slice::from_ref(&t), None).is_empty());
        let e = Entities {
            measures: vec!["amount".into()],
            ..Entities::default()
        };
        assert!(suggestions(&e, &[t], None).is_empty());
        assert_eq!(single_year("from 2024-01-01 to 2024-03-31"), None);
        assert_eq!(single_year("in 2024"), Some(2024));
    }
}
