//! `bqai semantic draft`: a first semantic model of a dataset, for an operator to edit and
//! load with `ask.semantic_models`.
//!
//! It is the planner's own reading of a dataset without a model, written down: the roles it
//! infers from names and types (`*_id` keys, dates, numbers, categorical strings), each
//! table's time column, the joins it infers from `*_id` names, the categorical values it
//! samples (guarded queries, as for a question), and a measure for each numeric column — a
//! sum, or an average for prices and rates. What it cannot know is left to the operator:
//! descriptions are empty (marked `TODO`), and the values a column holds are listed in a
//! comment, so the operator can say what they mean and which abbreviations people use ("US"
//! for "United States") in the column's description. Loaded unedited it still helps: measures and joins become words the planner
//! understands ("total amount", "average price").

use std::fmt::Write as _;

use bqai_core::model::{SqlDialect, Table};
use bqai_core::semantic::{
    ColumnRole, Measure, Relationship, SemanticColumn, SemanticModel, SemanticTable,
};

use crate::Planner;
use crate::schema::{Catalog, ColumnInfo, Samples, TableInfo, sample_targets};

/// Values of a column named in its comment at most.
const MAX_LISTED_VALUES: usize = 12;

/// A drafted model and what the operator should know about each column.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The model.
    pub model: SemanticModel,
    /// Sampled values per `table.column`, for the comments of the TOML rendering.
    pub values: Vec<(String, Vec<String>)>,
}

impl Planner {
    /// Drafts a semantic model of `dataset` from its `tables`, sampling categorical values
    /// through the planner's sampling queries (none without sampling).
    pub async fn draft_model(&self, dataset: &str, tables: &[Table], dialect: SqlDialect) -> Draft {
        let samples = match &self.sampling {
            Some(queries) => {
                let targets = sample_targets(tables, None);
                self.values
                    .samples(queries.as_ref(), dialect, &targets)
                    .await
            }
            None => Samples::new(),
        };
        draft(dataset, tables, &samples)
    }
}

/// The draft of `tables` with `samples` (see the module docs).
pub(crate) fn draft(dataset: &str, tables: &[Table], samples: &Samples) -> Draft {
    let catalog = Catalog::new(tables, None, samples);
    let mut model = SemanticModel {
        dataset: dataset.to_owned(),
        ..SemanticModel::default()
    };
    let mut values = Vec::new();
    for t in &catalog.tables {
        model.tables.push(SemanticTable {
            name: t.name.clone(),
            description: None,
            // Left to the operator: the planner already reads names word by word and in the
            // singular, so only other words people use belong here.
            synonyms: Vec::new(),
            time_column: t.time_column.map(|i| t.columns[i].name.clone()),
            columns: t
                .columns
                .iter()
                .map(|c| SemanticColumn {
                    name: c.name.clone(),
                    description: None,
                    synonyms: Vec::new(),
                    role: c.role,
                })
                .collect(),
        });
        for c in &t.columns {
            if !c.values.is_empty() {
                values.push((format!("{}.{}", t.name, c.name), c.values.clone()));
            }
            if let Some(m) = measure_of(t, c) {
                model.measures.push(m);
            }
        }
    }
    for e in &catalog.edges {
        let (from, to) = (catalog.column(e.from), catalog.column(e.to));
        model.relationships.push(Relationship {
            from: format!("{}.{}", catalog.tables[e.from.0].name, from.name),
            to: format!("{}.{}", catalog.tables[e.to.0].name, to.name),
        });
    }
    Draft { model, values }
}

/// The measure of a numeric column: the sum of amounts and counts, the average of prices,
/// rates and scores.
fn measure_of(t: &TableInfo, c: &ColumnInfo) -> Option<Measure> {
    if c.role != ColumnRole::Measure || !c.is_numeric() {
        return None;
    }
    let (name, sql, what) = if c.averages_naturally() {
        ("average", format!("AVG({}.{})", t.name, c.name), "Average")
    } else {
        ("total", format!("SUM({}.{})", t.name, c.name), "Total")
    };
    Some(Measure {
        name: format!("{name}_{}", c.name.to_lowercase()),
        synonyms: Vec::new(),
        table: t.name.clone(),
        sql,
        description: Some(format!(
            "{what} of {}.{} (drafted: check that it means what it says)",
            t.name, c.name
        )),
    })
}

/// The draft as TOML for `ask.semantic_models`, with comments saying what to fill in.
pub fn to_toml(draft: &Draft) -> String {
    let m = &draft.model;
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Semantic model of `{}`, drafted by `bqai semantic draft` from its schema and sampled\n\
         # values. Fill in the descriptions (what one row is, what a column holds), check the\n\
         # roles, joins and measures, add the words people use as synonyms (value abbreviations\n\
         # such as \"US\" belong in the column's description), then list this file in\n\
         # `ask.semantic_models`. Format: docs/CONFIGURATION.md#semantic-models.",
        m.dataset
    );
    let _ = writeln!(out, "dataset = {}", q(&m.dataset));
    let _ = writeln!(
        out,
        "#description = \"\"  # TODO: what the dataset is about"
    );
    for t in &m.tables {
        let _ = writeln!(out, "\n[[tables]]\nname = {}", q(&t.name));
        let _ = writeln!(out, "#description = \"\"  # TODO: what one row is");
        let _ = writeln!(out, "synonyms = {}", list(&t.synonyms));
        if let Some(tc) = &t.time_column {
            let _ = writeln!(out, "time_column = {}", q(tc));
        }
        for c in &t.columns {
            let _ = writeln!(out, "\n[[tables.columns]]\nname = {}", q(&c.name));
            let key = format!("{}.{}", t.name, c.name);
            if let Some((_, vals)) = draft.values.iter().find(|(k, _)| *k == key) {
                let shown: Vec<String> =
                    vals.iter().take(MAX_LISTED_VALUES).map(|v| q(v)).collect();
                let more = vals.len().saturating_sub(MAX_LISTED_VALUES);
                let _ = writeln!(
                    out,
                    "# {} value{}: {}{}",
                    vals.len(),
                    if vals.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if more > 0 {
                        format!(", … ({more} more)")
                    } else {
                        String::new()
                    }
                );
            }
            let _ = writeln!(out, "#description = \"\"  # TODO");
            let _ = writeln!(out, "synonyms = {}", list(&c.synonyms));
            let _ = writeln!(out, "role = {}", q(role_name(c.role)));
        }
    }
    if !m.relationships.is_empty() {
        out.push_str(
            "\n# Joins inferred from `*_id` names: each row of `from` points at one row of `to`.",
        );
    }
    for r in &m.relationships {
        let _ = writeln!(
            out,
            "\n[[relationships]]\nfrom = {}\nto = {}",
            q(&r.from),
            q(&r.to)
        );
    }
    if !m.measures.is_empty() {
        out.push_str(
            "\n# One measure per numeric column: remove those that mean nothing summed or averaged\n\
             # (ids, codes, years), rename the rest as people say them (\"revenue\").",
        );
    }
    for measure in &m.measures {
        let _ = writeln!(
            out,
            "\n[[measures]]\nname = {}\ntable = {}\nsql = {}\nsynonyms = {}",
            q(&measure.name),
            q(&measure.table),
            q(&measure.sql),
            list(&measure.synonyms)
        );
        if let Some(d) = &measure.description {
            let _ = writeln!(out, "description = {}", q(d));
        }
    }
    out.push_str(
        "\n# Verified examples: questions with the SQL that answers them, used as they are.\n\
         # [[examples]]\n# question = \"\"\n# sql = \"\"\n",
    );
    out
}

fn role_name(role: ColumnRole) -> &'static str {
    match role {
        ColumnRole::Key => "key",
        ColumnRole::Dimension => "dimension",
        ColumnRole::Measure => "measure",
        ColumnRole::Time => "time",
        ColumnRole::Attribute => "attribute",
    }
}
