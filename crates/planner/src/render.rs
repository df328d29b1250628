//! SQL text: identifiers, literals, date buckets and the final SELECT, per dialect.
//!
//! DataFusion and BigQuery differ in quoting (`"x"` vs `` `x` ``), string escapes (`''` vs
//! `\'`) and date functions (`date_trunc('month', d)` vs `DATE_TRUNC(d, MONTH)`); everything
//! else the planner writes is common ground (`EXTRACT(YEAR FROM d)`, `DATE '2024-01-01'`,
//! `COUNT(DISTINCT …)`). The planner only ever builds a [`Select`] (wrapped, for growth, one
//! row per group and counted groups, in an outer SELECT over it as a subquery, and holding an
//! uncorrelated `NOT IN (SELECT …)` for rows another table has none for), so what it renders
//! is a single SELECT statement by construction.

use bqai_core::model::{FieldType, SqlDialect, TableRef};
use chrono::NaiveDate;

use crate::lexicon::Grain;
use crate::understand::fmt_number;

/// Words that must be quoted as identifiers in either dialect.
const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "at",
    "between",
    "by",
    "case",
    "cast",
    "collate",
    "contains",
    "create",
    "cross",
    "cube",
    "current",
    "current_date",
    "current_time",
    "current_timestamp",
    "date",
    "default",
    "define",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "enum",
    "escape",
    "except",
    "exclude",
    "exists",
    "extract",
    "false",
    "fetch",
    "following",
    "for",
    "from",
    "full",
    "group",
    "grouping",
    "groups",
    "hash",
    "having",
    "if",
    "ignore",
    "in",
    "inner",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "lateral",
    "left",
    "like",
    "limit",
    "lookup",
    "merge",
    "natural",
    "new",
    "no",
    "not",
    "null",
    "nulls",
    "of",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "preceding",
    "proto",
    "qualify",
    "range",
    "recursive",
    "respect",
    "right",
    "rollup",
    "row",
    "rows",
    "select",
    "set",
    "some",
    "struct",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "treat",
    "true",
    "unbounded",
    "union",
    "unnest",
    "update",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
    "within",
];

/// Writes SQL fragments for one dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect(pub(crate) SqlDialect);

impl Dialect {
    /// An identifier, quoted only when it must be (uppercase, punctuation, reserved words).
    pub(crate) fn ident(self, name: &str) -> String {
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !RESERVED.contains(&name);
        if plain {
            return name.to_owned();
        }
        match self.0 {
            SqlDialect::DataFusion => format!("\"{}\"", name.replace('"', "\"\"")),
            SqlDialect::BigQuery => format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")),
        }
    }

    /// `[project.]dataset.table`.
    pub(crate) fn table(self, t: &TableRef) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &t.project {
            parts.push(self.ident(p));
        }
        parts.push(self.ident(&t.dataset));
        parts.push(self.ident(&t.table));
        parts.join(".")
    }

    /// A string literal.
    pub(crate) fn string(self, s: &str) -> String {
        match self.0 {
            SqlDialect::DataFusion => format!("'{}'", s.replace('\'', "''")),
            SqlDialect::BigQuery => {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
    }

    /// A number literal.
    pub(crate) fn number(self, n: f64) -> String {
        fmt_number(n)
    }

    /// A date literal comparable with a column of type `ty`.
    pub(crate) fn date(self, ty: FieldType, d: NaiveDate) -> String {
        match (self.0, ty) {
            (_, FieldType::Date) => format!("DATE '{d}'"),
            (SqlDialect::BigQuery, FieldType::Datetime) => format!("DATETIME '{d}'"),
            (SqlDialect::BigQuery, _) => format!("TIMESTAMP '{d}'"),
            (SqlDialect::DataFusion, _) => format!("TIMESTAMP '{d} 00:00:00'"),
        }
    }

    /// The time bucket of `expr` (a column of type `ty`): a DATE (the first day of the day,
    /// ISO week, month or quarter) or the year as a number.
    pub(crate) fn bucket(self, g: Grain, expr: &str, ty: FieldType) -> String {
        if g == Grain::Year {
            return format!("EXTRACT(YEAR FROM {expr})");
        }
        let is_date = ty == FieldType::Date;
        match self.0 {
            SqlDialect::DataFusion => match (g, is_date) {
                (Grain::Day, true) => expr.to_owned(),
                (Grain::Day, false) => format!("CAST({expr} AS DATE)"),
                _ => format!("CAST(date_trunc('{}', {expr}) AS DATE)", g.name()),
            },
            SqlDialect::BigQuery => {
                let d = if is_date {
                    expr.to_owned()
                } else {
                    format!("DATE({expr})")
                };
                match g {
                    Grain::Day => d,
                    Grain::Week => format!("DATE_TRUNC({d}, ISOWEEK)"),
                    Grain::Month => format!("DATE_TRUNC({d}, MONTH)"),
                    Grain::Quarter => format!("DATE_TRUNC({d}, QUARTER)"),
                    Grain::Year => format!("EXTRACT(YEAR FROM {d})"),
                }
            }
        }
    }
}

/// A join of the FROM clause.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub(crate) table: String,
    pub(crate) alias: String,
    pub(crate) on: String,
}

/// The one statement shape the planner writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Select {
    pub(crate) distinct: bool,
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) from: (String, String),
    pub(crate) joins: Vec<Join>,
    pub(crate) filters: Vec<String>,
    pub(crate) group_by: Vec<String>,
    pub(crate) having: Vec<String>,
    pub(crate) order_by: Vec<String>,
    pub(crate) limit: Option<u64>,
}

impl Select {
    /// The statement, one clause per line.
    pub(crate) fn render(&self, d: Dialect) -> String {
        let mut out = String::from("SELECT ");
        if self.distinct {
            out.push_str("DISTINCT ");
        }
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(expr, alias)| format!("{expr} AS {}", d.ident(alias)))
            .collect();
        out.push_str(&cols.join(", "));
        out.push_str(&format!("\nFROM {} AS {}", self.from.0, self.from.1));
        for j in &self.joins {
            out.push_str(&format!("\nJOIN {} AS {} ON {}", j.table, j.alias, j.on));
        }
        if !self.filters.is_empty() {
            out.push_str(&format!("\nWHERE {}", self.filters.join(" AND ")));
        }
        if !self.group_by.is_empty() {
            out.push_str(&format!("\nGROUP BY {}", self.group_by.join(", ")));
        }
        if !self.having.is_empty() {
            out.push_str(&format!("\nHAVING {}", self.having.join(" AND ")));
        }
        if !self.order_by.is_empty() {
            out.push_str(&format!("\nORDER BY {}", self.order_by.join(", ")));
        }
        if let Some(n) = self.limit {
            out.push_str(&format!("\nLIMIT {n}"));
        }
        out
    }
}

/// A readable output column name: lowercase snake_case.
pub(crate) fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("c_{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_literals() {
        let df = Dialect(SqlDialect::DataFusion);
        let bq = Dialect(SqlDialect::BigQuery);
        assert_eq!(df.ident("country"), "country");
        assert_eq!(df.ident("Country"), "\"Country\"");
        assert_eq!(df.ident("order"), "\"order\"");
        assert_eq!(bq.ident("my-project"), "`my-project`");
        assert_eq!(df.string("Chef's"), "'Chef''s'");
        assert_eq!(bq.string("Chef's"), "'Chef\\'s'");
        assert_eq!(df.number(100.0), "100");
        assert_eq!(df.number(0.15), "0.15");
        let d = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        assert_eq!(df.date(FieldType::Date, d), "DATE '2024-01-01'");
        assert_eq!(
            df.date(FieldType::Timestamp, d),
            "TIMESTAMP '2024-01-01 00:00:00'"
        );
        assert_eq!(bq.date(FieldType::Datetime, d), "DATETIME '2024-01-01'");
        assert_eq!(
            df.bucket(Grain::Month, "o.d", FieldType::Date),
            "CAST(date_trunc('month', o.d) AS DATE)"
        );
        assert_eq!(
            bq.bucket(Grain::Week, "o.d", FieldType::Date),
            "DATE_TRUNC(o.d, ISOWEEK)"
        );
        assert_eq!(
            bq.bucket(Grain::Month, "o.t", FieldType::Timestamp),
            "DATE_TRUNC(DATE(o.t), MONTH)"
        );
        assert_eq!(snake("Unit Price ($)"), "unit_price");
        assert_eq!(snake("2024"), "c_2024");
    }
}
