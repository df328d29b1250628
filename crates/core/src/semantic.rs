//! The semantic model of a dataset: what its tables and columns mean, how they join, which
//! named measures exist (`revenue = SUM(quantity * unit_price * (1 - discount))`), and
//! verified example question/SQL pairs.
//!
//! It is written by people (a TOML file per dataset; the demo `shop` dataset ships one) and
//! read by the generators: the LLM prompt shows descriptions, synonyms, joins, measures and
//! the examples closest to the question; the built-in planner maps words to tables, columns
//! and measures with it.
//!
//! ```toml
//! dataset = "shop"
//! description = "An online shop"
//!
//! [[tables]]
//! name = "orders"
//! description = "One row per order"
//! synonyms = ["purchases"]
//! time_column = "order_date"
//!
//! [[tables.columns]]
//! name = "channel"
//! description = "Sales channel"
//! synonyms = ["source"]
//! role = "dimension"
//!
//! [[relationships]]
//! from = "orders.customer_id"
//! to = "customers.customer_id"
//!
//! [[measures]]
//! name = "revenue"
//! table = "order_items"
//! sql = "SUM(order_items.quantity * order_items.unit_price * (1 - order_items.discount))"
//!
//! [[examples]]
//! question = "How many orders were placed?"
//! sql = "SELECT COUNT(*) AS orders FROM shop.orders"
//! ```
//!
//! Measure expressions qualify columns with the table's unqualified name, so they work in any
//! query that gives each table its own name as alias (`FROM shop.order_items AS order_items`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A dataset's semantic model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticModel {
    /// The dataset this model describes.
    pub dataset: String,
    /// What the dataset is about.
    #[serde(default)]
    pub description: Option<String>,
    /// Tables (only those worth describing need be listed).
    #[serde(default)]
    pub tables: Vec<SemanticTable>,
    /// How tables join.
    #[serde(default)]
    pub relationships: Vec<Relationship>,
    /// Named measures.
    #[serde(default)]
    pub measures: Vec<Measure>,
    /// Verified example questions with their SQL.
    #[serde(default)]
    pub examples: Vec<Example>,
}

/// A table in the semantic model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticTable {
    /// Table name (unqualified).
    pub name: String,
    /// What one row is.
    #[serde(default)]
    pub description: Option<String>,
    /// Other words people use for it ("purchases" for orders).
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// The column that places a row in time (for "by month", "in 2024").
    #[serde(default)]
    pub time_column: Option<String>,
    /// Columns worth describing.
    #[serde(default)]
    pub columns: Vec<SemanticColumn>,
}

/// What a column is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnRole {
    /// A key (primary or foreign): joined on, counted, never summed.
    Key,
    /// A categorical attribute: grouped by and filtered on.
    Dimension,
    /// A number that can be summed or averaged.
    Measure,
    /// A date or timestamp.
    Time,
    /// Free text or anything else (names, emails).
    #[default]
    Attribute,
}

/// A column in the semantic model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticColumn {
    /// Column name.
    pub name: String,
    /// What it holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Other words people use for it.
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub role: ColumnRole,
}

/// A foreign key: `from` (`table.column`) references `to` (`table.column`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    /// The referencing column, `table.column`.
    pub from: String,
    /// The referenced column, `table.column`.
    pub to: String,
}

impl Relationship {
    /// `(table, column)` of the referencing side.
    pub fn from_parts(&self) -> Option<(&str, &str)> {
        self.from.split_once('.')
    }

    /// `(table, column)` of the referenced side.
    pub fn to_parts(&self) -> Option<(&str, &str)> {
        self.to.split_once('.')
    }
}

/// A named aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// Its name (`revenue`), also the output column name.
    pub name: String,
    /// Other words for it ("sales", "turnover").
    #[serde(default)]
    pub synonyms: Vec<String>,
    /// The table the expression aggregates over (the fact table).
    pub table: String,
    /// The aggregate expression; columns qualified with table names.
    pub sql: String,
    /// What it means.
    #[serde(default)]
    pub description: Option<String>,
}

/// A verified example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The question.
    pub question: String,
    /// SQL that answers it (dataset-qualified table names).
    pub sql: String,
}

impl SemanticModel {
    /// Parses a model from TOML, checking that names are consistent.
    pub fn from_toml(text: &str) -> Result<Self> {
        let model: SemanticModel = toml::from_str(text)
            .map_err(|e| Error::InvalidRequest(format!("semantic model: {}", e.message())))?;
        model.validate()?;
        Ok(model)
    }

    /// Checks references between parts of the model (relationships and measures name tables
    /// of the model; time columns are columns of their table when columns are listed).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidRequest(format!("semantic model: {m}")));
        if self.dataset.is_empty() {
            return bad("`dataset` must not be empty".into());
        }
        for r in &self.relationships {
            for side in [&r.from, &r.to] {
                match side.split_once('.') {
                    Some((t, c)) if !t.is_empty() && !c.is_empty() => {
                        if self.table(t).is_none() {
                            return bad(format!("relationship names unknown table `{t}`"));
                        }
                    }
                    _ => return bad(format!("relationship side `{side}` is not `table.column`")),
                }
            }
        }
        for m in &self.measures {
            if self.table(&m.table).is_none() {
                return bad(format!(
                    "measure `{}` names unknown table `{}`",
                    m.name, m.table
                ));
            }
        }
        for t in &self.tables {
            if let Some(tc) = &t.time_column
                && !t.columns.is_empty()
                && !t.columns.iter().any(|c| &c.name == tc)
            {
                return bad(format!(
                    "time column `{tc}` is not a column of table `{}`",
                    t.name
                ));
            }
        }
        Ok(())
    }

    /// A table by name (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&SemanticTable> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// A measure by name or synonym (case-insensitive).
    pub fn measure(&self, word: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| {
            m.name.eq_ignore_ascii_case(word)
                || m.synonyms.iter().any(|s| s.eq_ignore_ascii_case(word))
        })
    }

    /// Relationships touching `table`.
    pub fn relationships_of<'a>(
        &'a self,
        table: &'a str,
    ) -> impl Iterator<Item = &'a Relationship> {
        self.relationships.iter().filter(move |r| {
            r.from_parts()
                .is_some_and(|(t, _)| t.eq_ignore_ascii_case(table))
                || r.to_parts()
                    .is_some_and(|(t, _)| t.eq_ignore_ascii_case(table))
        })
    }
}

impl SemanticTable {
    /// A column by name (case-insensitive).
    pub fn column(&self, name: &str) -> Option<&SemanticColumn> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_doc_example_and_rejects_dangling_names() {
        let ok = r#"
dataset = "shop"
[[tables]]
name = "orders"
time_column = "order_date"
[[tables.columns]]
name = "order_date"
role = "time"
[[tables]]
name = "customers"
[[relationships]]
from = "orders.customer_id"
to = "customers.customer_id"
[[measures]]
name = "orders"
table = "orders"
sql = "COUNT(*)"
"#;
        let m = SemanticModel::from_toml(ok).unwrap();
        assert_eq!(m.relationships_of("customers").count(), 1);
        assert_eq!(
            m.table("ORDERS")
                .unwrap()
                .column("order_date")
                .unwrap()
                .role,
            ColumnRole::Time
        );

        let dangling = ok.replace("to = \"customers.customer_id\"", "to = \"people.id\"");
        let err = SemanticModel::from_toml(&dangling).unwrap_err();
        assert!(err.to_string().contains("unknown table `people`"), "{err}");

        let unknown_key = format!("{ok}\nbogus = 1\n");
        assert!(SemanticModel::from_toml(&unknown_key).is_err());
    }
}
