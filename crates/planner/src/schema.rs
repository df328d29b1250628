//! What the planner knows about a dataset: its tables and columns with their roles, the
//! foreign keys between tables, the named measures, the categorical values sampled from the
//! data, and the vocabulary (words → tables, columns, measures, values) built from all that.
//!
//! With a semantic model, roles, synonyms, time columns, joins and measures come from it;
//! without one (a user's own CSV or Parquet files) they are inferred from names and types:
//! `id`/`*_id` columns are keys, dates are time columns, numbers are measures, strings are
//! dimensions, and `orders.customer_id` joins `customers.customer_id`.

use std::collections::HashMap;
use std::sync::Arc;

use bqai_core::model::{FieldMode, FieldType, Table, TableRef};
use bqai_core::semantic::{ColumnRole, SemanticModel};

use crate::lexicon::{builtins, is_filler, phrase_stems, singular};

/// A column: (table index, column index).
pub(crate) type ColId = (usize, usize);

/// Sampled categorical values, keyed by lowercased (dataset, table, column).
pub(crate) type Samples = HashMap<(String, String, String), Arc<[String]>>;

/// The key of a column in [`Samples`].
pub(crate) fn sample_key(table: &TableRef, column: &str) -> (String, String, String) {
    (
        table.dataset.to_lowercase(),
        table.table.to_lowercase(),
        column.to_lowercase(),
    )
}

/// A column as the planner sees it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    pub(crate) field_type: FieldType,
    pub(crate) role: ColumnRole,
    pub(crate) synonyms: Vec<String>,
    /// Distinct values sampled from the data (categorical columns only), sorted.
    pub(crate) values: Vec<String>,
}

impl ColumnInfo {
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self.field_type,
            FieldType::Int64 | FieldType::Float64 | FieldType::Numeric | FieldType::Bignumeric
        )
    }

    pub(crate) fn is_temporal(&self) -> bool {
        matches!(
            self.field_type,
            FieldType::Date | FieldType::Datetime | FieldType::Timestamp
        )
    }

    /// Whether "average" is the natural aggregate (prices, rates, discounts), not "sum".
    pub(crate) fn averages_naturally(&self) -> bool {
        let n = self.name.to_lowercase();
        [
            "price", "rate", "discount", "pct", "percent", "ratio", "score", "age", "rating",
        ]
        .iter()
        .any(|w| n.contains(w))
    }

    /// The column name as words: `unit_price` → "unit price".
    pub(crate) fn words(&self) -> String {
        self.name.replace('_', " ").to_lowercase()
    }
}

/// A table as the planner sees it.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub(crate) name: String,
    pub(crate) table_ref: TableRef,
    pub(crate) synonyms: Vec<String>,
    pub(crate) columns: Vec<ColumnInfo>,
    /// The primary key, when one can be told.
    pub(crate) key: Option<usize>,
    /// The column that names a row (`name`, `title`), for grouping by the table itself.
    pub(crate) label: Option<usize>,
    /// The column that places a row in time.
    pub(crate) time_column: Option<usize>,
    pub(crate) num_rows: Option<u64>,
}

impl TableInfo {
    /// The table name as words, singular: `order_items` → "order item".
    pub(crate) fn noun(&self) -> String {
        singular(&self.name).replace('_', " ")
    }

    /// The table name as words, as written: `order_items` → "order items".
    pub(crate) fn words(&self) -> String {
        self.name.replace('_', " ").to_lowercase()
    }
}

/// A foreign key: each row of `from.0` points at one row of `to.0` (many → one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) from: ColId,
    pub(crate) to: ColId,
}

/// A named measure of the semantic model.
#[derive(Debug, Clone)]
pub(crate) struct MeasureInfo {
    pub(crate) name: String,
    pub(crate) synonyms: Vec<String>,
    /// The fact table it aggregates over.
    pub(crate) table: usize,
    pub(crate) sql: String,
    pub(crate) description: Option<String>,
    /// Every table its expression mentions (the fact table included).
    pub(crate) tables: Vec<usize>,
}

/// What a phrase of the question may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Target {
    Measure(usize),
    Column(ColId),
    Table(usize),
    Value(ColId, usize),
}

impl Target {
    /// Preference among targets of equally long phrases: measures, columns, tables, values.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Target::Measure(_) => 0,
            Target::Column(_) => 1,
            Target::Table(_) => 2,
            Target::Value(..) => 3,
        }
    }
}

/// A phrase (as stems) and what it refers to.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub(crate) words: Vec<String>,
    pub(crate) target: Target,
    /// An abbreviation learned from the data ("US" for "United States"): it only matches a
    /// word written in capitals, so "show us" stays filler.
    pub(crate) abbreviation: bool,
}

/// Everything the planner knows about the dataset of a question.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    pub(crate) tables: Vec<TableInfo>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) measures: Vec<MeasureInfo>,
    pub(crate) terms: Vec<Term>,
}

/// Column names that hold free text rather than categories.
fn is_free_text(name: &str) -> bool {
    let n = name.to_lowercase();
    n == "name"
        || n.ends_with("_name")
        || n.starts_with("name_")
        || [
            "email",
            "description",
            "comment",
            "note",
            "url",
            "address",
            "phone",
            "title",
            "text",
            "message",
            "body",
            "summary",
            "uuid",
            "hash",
            "token",
            "path",
        ]
        .iter()
        .any(|w| n.contains(w))
}

fn infer_role(field: &bqai_core::model::Field) -> ColumnRole {
    let n = field.name.to_lowercase();
    if n == "id" || n.ends_with("_id") || n.ends_with("_key") || n == "key" {
        return ColumnRole::Key;
    }
    match field.field_type {
        FieldType::Date | FieldType::Datetime | FieldType::Timestamp => ColumnRole::Time,
        FieldType::Int64 | FieldType::Float64 | FieldType::Numeric | FieldType::Bignumeric => {
            ColumnRole::Measure
        }
        FieldType::String if !is_free_text(&n) => ColumnRole::Dimension,
        FieldType::Bool => ColumnRole::Dimension,
        _ => ColumnRole::Attribute,
    }
}

/// The semantic model, if it describes this dataset.
fn model_for<'a>(
    tables: &[Table],
    semantic: Option<&'a SemanticModel>,
) -> Option<&'a SemanticModel> {
    semantic.filter(|m| {
        tables
            .iter()
            .any(|t| t.table_ref.dataset.eq_ignore_ascii_case(&m.dataset))
    })
}

fn scalar_fields(table: &Table) -> impl Iterator<Item = &bqai_core::model::Field> {
    table
        .schema
        .iter()
        .filter(|f| f.field_type != FieldType::Record && f.mode != FieldMode::Repeated)
}

/// The columns whose values are worth sampling: categorical strings.
pub(crate) fn sample_targets(
    tables: &[Table],
    semantic: Option<&SemanticModel>,
) -> Vec<(TableRef, String)> {
    let model = model_for(tables, semantic);
    let mut out = Vec::new();
    for table in tables {
        let st = model.and_then(|m| {
            m.table(&table.table_ref.table)
                .filter(|_| table.table_ref.dataset.eq_ignore_ascii_case(&m.dataset))
        });
        for field in scalar_fields(table) {
            if field.field_type != FieldType::String {
                continue;
            }
            let role = st
                .and_then(|t| t.column(&field.name))
                .map_or_else(|| infer_role(field), |c| c.role);
            if role == ColumnRole::Dimension {
                out.push((table.table_ref.clone(), field.name.clone()));
            }
        }
    }
    out
}

impl Catalog {
    /// Builds the planner's view of `tables`, described by `semantic` when it covers them,
    /// with the categorical values in `samples`.
    pub(crate) fn new(
        tables: &[Table],
        semantic: Option<&SemanticModel>,
        samples: &Samples,
    ) -> Self {
        let model = model_for(tables, semantic);
        let mut infos = Vec::new();
        for table in tables {
            let st = model.and_then(|m| {
                m.table(&table.table_ref.table)
                    .filter(|_| table.table_ref.dataset.eq_ignore_ascii_case(&m.dataset))
            });
            let columns: Vec<ColumnInfo> = scalar_fields(table)
                .map(|f| {
                    let sc = st.and_then(|t| t.column(&f.name));
                    let role = sc.map_or_else(|| infer_role(f), |c| c.role);
                    let mut values: Vec<String> = samples
                        .get(&sample_key(&table.table_ref, &f.name))
                        .map(|v| v.to_vec())
                        .unwrap_or_default();
                    values.sort();
                    values.dedup();
                    ColumnInfo {
                        name: f.name.clone(),
                        field_type: f.field_type,
                        role,
                        synonyms: sc.map(|c| c.synonyms.clone()).unwrap_or_default(),
                        values,
                    }
                })
                .collect();
            let name = table.table_ref.table.clone();
            let noun = singular(&name.to_lowercase());
            let find = |pred: &dyn Fn(&str) -> bool| {
                columns.iter().position(|c| pred(&c.name.to_lowercase()))
            };
            let key =
                find(&|n| n == format!("{noun}_id") || n == format!("{}_id", name.to_lowercase()))
                    .or_else(|| find(&|n| n == "id"));
            let label = columns.iter().position(|c| {
                let n = c.name.to_lowercase();
                c.field_type == FieldType::String
                    && (n == "name"
                        || n == "title"
                        || n == "label"
                        || n == "full_name"
                        || n == "display_name"
                        || n == format!("{noun}_name"))
            });
            let time_column = st
                .and_then(|t| t.time_column.as_deref())
                .and_then(|tc| columns.iter().position(|c| c.name.eq_ignore_ascii_case(tc)))
                .or_else(|| {
                    let temporal = |c: &ColumnInfo| c.is_temporal() && c.role != ColumnRole::Key;
                    columns
                        .iter()
                        .position(|c| {
                            let n = c.name.to_lowercase();
                            temporal(c) && (n.contains("date") || n.contains("created"))
                        })
                        .or_else(|| columns.iter().position(temporal))
                });
            infos.push(TableInfo {
                name,
                table_ref: table.table_ref.clone(),
                synonyms: st.map(|t| t.synonyms.clone()).unwrap_or_default(),
                columns,
                key,
                label,
                time_column,
                num_rows: table.num_rows,
            });
        }

        let mut catalog = Catalog {
            tables: infos,
            edges: Vec::new(),
            measures: Vec::new(),
            terms: Vec::new(),
        };
        if let Some(m) = model.filter(|m| !m.relationships.is_empty()) {
            for r in &m.relationships {
                let (Some(from), Some(to)) = (
                    r.from_parts().and_then(|(t, c)| catalog.column_id(t, c)),
                    r.to_parts().and_then(|(t, c)| catalog.column_id(t, c)),
                ) else {
                    continue;
                };
                catalog.edges.push(Edge { from, to });
                if catalog.tables[to.0].key.is_none() {
                    catalog.tables[to.0].key = Some(to.1);
                }
            }
        } else {
            catalog.infer_edges();
        }
        if let Some(m) = model {
            for measure in &m.measures {
                let Some(table) = catalog.table_id(&measure.table) else {
                    continue;
                };
                let mut used = vec![table];
                for (i, t) in catalog.tables.iter().enumerate() {
                    if i != table && mentions_table(&measure.sql, &t.name) {
                        used.push(i);
                    }
                }
                // A measure over tables this question does not have cannot be computed.
                let all_present = referenced_names(&measure.sql)
                    .iter()
                    .all(|n| m.table(n).is_none() || catalog.table_id(n).is_some());
                if !all_present {
                    continue;
                }
                catalog.measures.push(MeasureInfo {
                    name: measure.name.clone(),
                    synonyms: measure.synonyms.clone(),
                    table,
                    sql: measure.sql.clone(),
                    description: measure.description.clone(),
                    tables: used,
                });
            }
        }
        catalog.terms = catalog.build_terms();
        catalog
    }

    pub(crate) fn table_id(&self, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn column_id(&self, table: &str, column: &str) -> Option<ColId> {
        let t = self.table_id(table)?;
        let c = self.tables[t]
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(column))?;
        Some((t, c))
    }

    pub(crate) fn column(&self, id: ColId) -> &ColumnInfo {
        &self.tables[id.0].columns[id.1]
    }

    /// `orders.customer_id` → `customers.customer_id` (or `customers.id`) by naming alone.
    fn infer_edges(&mut self) {
        let mut edges = Vec::new();
        for (ti, t) in self.tables.iter().enumerate() {
            for (ci, c) in t.columns.iter().enumerate() {
                let n = c.name.to_lowercase();
                let Some(stem) = n.strip_suffix("_id") else {
                    continue;
                };
                if t.key == Some(ci) {
                    continue;
                }
                let target = self.tables.iter().enumerate().find_map(|(ui, u)| {
                    if ui == ti {
                        return None;
                    }
                    let key = u.key?;
                    let key_name = u.columns[key].name.to_lowercase();
                    let names_match = key_name == n
                        || (key_name == "id" && singular(&u.name.to_lowercase()) == stem);
                    names_match.then_some((ui, key))
                });
                if let Some(to) = target {
                    edges.push(Edge { from: (ti, ci), to });
                }
            }
        }
        self.edges = edges;
    }

    fn build_terms(&self) -> Vec<Term> {
        let builtin_words: Vec<Vec<String>> = builtins().into_iter().map(|(w, _)| w).collect();
        let mut terms = Vec::new();
        let mut abbreviations: Vec<Term> = Vec::new();
        let push = |phrase: &str, target: Target, terms: &mut Vec<Term>| {
            let words = phrase_stems(phrase);
            if !words.is_empty() {
                terms.push(Term {
                    words,
                    target,
                    abbreviation: false,
                });
            }
        };
        for (mi, m) in self.measures.iter().enumerate() {
            push(&m.name, Target::Measure(mi), &mut terms);
            for s in &m.synonyms {
                push(s, Target::Measure(mi), &mut terms);
            }
        }
        for (ti, t) in self.tables.iter().enumerate() {
            push(&t.name, Target::Table(ti), &mut terms);
            for s in &t.synonyms {
                push(s, Target::Table(ti), &mut terms);
            }
            let noun = phrase_stems(&t.noun());
            for (ci, c) in t.columns.iter().enumerate() {
                let target = Target::Column((ti, ci));
                push(&c.name, target, &mut terms);
                for s in &c.synonyms {
                    push(s, target, &mut terms);
                }
                // "customer name", "order status", "product category".
                let words = phrase_stems(&c.name);
                if !words.starts_with(&noun) {
                    terms.push(Term {
                        words: noun.iter().cloned().chain(words).collect(),
                        target,
                        abbreviation: false,
                    });
                }
                for (vi, v) in c.values.iter().enumerate() {
                    let words = phrase_stems(v);
                    let meaningful = match words.as_slice() {
                        [] => false,
                        [w] => {
                            w.chars().count() > 1
                                && !w.chars().all(|ch| ch.is_ascii_digit() || ch == '.')
                                && !is_filler(w)
                                && !builtin_words.iter().any(|b| b.len() == 1 && &b[0] == w)
                        }
                        _ => words.len() <= 6,
                    };
                    if meaningful {
                        terms.push(Term {
                            words,
                            target: Target::Value((ti, ci), vi),
                            abbreviation: false,
                        });
                    }
                }
                // "US", "UK": the initials of a value of two to four words, when no other
                // value of the column has the same ones and they are no word of the dataset.
                let mut initials: std::collections::BTreeMap<String, Vec<usize>> =
                    std::collections::BTreeMap::new();
                for (vi, v) in c.values.iter().enumerate() {
                    let words: Vec<&str> = v.split_whitespace().collect();
                    if (2..=4).contains(&words.len())
                        && words
                            .iter()
                            .all(|w| w.chars().next().is_some_and(char::is_alphabetic))
                    {
                        let abbreviation: String = words
                            .iter()
                            .filter_map(|w| w.chars().next())
                            .flat_map(char::to_lowercase)
                            .collect();
                        initials.entry(abbreviation).or_default().push(vi);
                    }
                }
                for (abbreviation, values) in initials {
                    let words = phrase_stems(&abbreviation);
                    if let ([vi], [_]) = (values.as_slice(), words.as_slice()) {
                        abbreviations.push(Term {
                            words,
                            target: Target::Value((ti, ci), *vi),
                            abbreviation: true,
                        });
                    }
                }
            }
        }
        // An abbreviation that is also a word of the dataset (a column "us") means that word.
        abbreviations.retain(|a| !terms.iter().any(|t| t.words == a.words));
        terms.extend(abbreviations);
        let heads = self.column_heads(&terms);
        terms.extend(heads);
        terms
    }

    /// "opened" for `opened_on`, "replies" for `reply_count`, "hired" for `hired_on`: a
    /// column named by a word and a suffix that only says what kind of value it is (`on`,
    /// `at`, `date`, `count`, …) is also called by that word alone — when the word names no
    /// other column, table or term of the dataset (`customer_email` and `customer_country`
    /// share "customer": neither gets it). What users' own files are called by, with no
    /// semantic model to say so.
    fn column_heads(&self, terms: &[Term]) -> Vec<Term> {
        const SUFFIXES: &[&str] = &[
            "on",
            "at",
            "date",
            "time",
            "timestamp",
            "ts",
            "count",
            "total",
            "amount",
            "num",
            "number",
            "qty",
            "value",
        ];
        let mut heads: std::collections::BTreeMap<String, Vec<Target>> =
            std::collections::BTreeMap::new();
        // "customers" for `customer_email` beside `customer_country`: the one column that
        // tells the rows of a head word apart (an email, an id) is what the word counts.
        let mut identified: std::collections::BTreeMap<String, Vec<(Target, bool)>> =
            std::collections::BTreeMap::new();
        for (ti, t) in self.tables.iter().enumerate() {
            for (ci, c) in t.columns.iter().enumerate() {
                let name = c.name.to_lowercase();
                let parts: Vec<&str> = name.split('_').filter(|p| !p.is_empty()).collect();
                let [head, suffix] = parts.as_slice() else {
                    continue;
                };
                if head.chars().count() <= 2 {
                    continue;
                }
                let target = Target::Column((ti, ci));
                if SUFFIXES.contains(suffix) {
                    heads.entry((*head).to_owned()).or_default().push(target);
                }
                identified.entry((*head).to_owned()).or_default().push((
                    target,
                    matches!(*suffix, "email" | "id" | "uuid" | "username"),
                ));
            }
        }
        for (head, cols) in identified {
            let ids: Vec<Target> = cols.iter().filter(|c| c.1).map(|c| c.0).collect();
            if let [id] = ids.as_slice()
                && cols.len() > 1
                && !heads.contains_key(&head)
            {
                heads.insert(head, vec![*id]);
            }
        }
        heads
            .into_iter()
            .filter_map(|(head, targets)| {
                let words = phrase_stems(&head);
                let [target] = targets.as_slice() else {
                    return None;
                };
                let [w] = words.as_slice() else {
                    return None;
                };
                // A word another column, table, measure or value uses, alone or in a phrase,
                // stays theirs.
                let column = match target {
                    Target::Column(c) => Some(self.column(*c)),
                    _ => None,
                };
                let identifier = column.is_some_and(|c| {
                    let n = c.name.to_lowercase();
                    ["_email", "_id", "_uuid", "_username"]
                        .iter()
                        .any(|s| n.ends_with(s))
                });
                let taken = terms.iter().any(|t| {
                    t.target != *target
                        && t.words.iter().any(|x| x == w)
                        // An identifier shares its word with its table's other columns
                        // ("customer country"), not with a table, measure or value.
                        && (!identifier
                            || t.words.len() == 1
                            || !matches!(t.target, Target::Column(_)))
                });
                (!taken).then(|| Term {
                    words: words.clone(),
                    target: *target,
                    abbreviation: false,
                })
            })
            .collect()
    }

    /// Whether a stem belongs to the dataset's vocabulary (any term's word).
    pub(crate) fn knows_word(&self, stem: &str) -> bool {
        self.terms.iter().any(|t| t.words.iter().any(|w| w == stem))
    }

    /// The foreign key by which `from`'s rows point at `to`'s, if there is one.
    pub(crate) fn key_to(&self, from: usize, to: usize) -> Option<Edge> {
        self.parents(from).find(|e| e.to.0 == to).copied()
    }

    /// Tables reachable in one many → one step from `t`, with the edge.
    pub(crate) fn parents(&self, t: usize) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.from.0 == t)
    }
}

/// Whether `sql` mentions `table.` as a qualifier (case-insensitive, on a word boundary).
fn mentions_table(sql: &str, table: &str) -> bool {
    referenced_names(sql)
        .iter()
        .any(|n| n.eq_ignore_ascii_case(table))
}

/// The qualifiers (`x` of `x.y`) used in an expression.
fn referenced_names(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let before_ok = start == 0 || chars[start - 1] != '.';
            if before_ok && chars.get(i) == Some(&'.') {
                out.push(chars[start..i].iter().collect());
            }
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bqai_core::model::{Field, TableKind};

    pub(crate) fn table(name: &str, cols: &[(&str, FieldType)]) -> Table {
        Table {
            table_ref: TableRef::new("shop", name),
            kind: TableKind::Table,
            description: None,
            schema: cols.iter().map(|(n, t)| Field::new(*n, *t)).collect(),
            num_rows: None,
            num_bytes: None,
            partitioning: None,
            clustering: Vec::new(),
            created_at: None,
            modified_at: None,
        }
    }

    #[test]
    fn infers_keys_edges_labels_and_time_without_a_model() {
        let tables = vec![
            table(
                "customers",
                &[
                    ("customer_id", FieldType::Int64),
                    ("name", FieldType::String),
                    ("segment", FieldType::String),
                    ("signup_date", FieldType::Date),
                ],
            ),
            table(
                "orders",
                &[
                    ("id", FieldType::Int64),
                    ("customer_id", FieldType::Int64),
                    ("created_at", FieldType::Timestamp),
                ],
            ),
            table(
                "order_items",
                &[
                    ("order_id", FieldType::Int64),
                    ("amount", FieldType::Float64),
                ],
            ),
        ];
        let c = Catalog::new(&tables, None, &Samples::new());
        assert_eq!(c.tables[0].key, Some(0));
        assert_eq!(c.tables[0].label, Some(1));
        assert_eq!(c.tables[0].time_column, Some(3));
        assert_eq!(c.tables[1].key, Some(0));
        assert_eq!(c.tables[1].time_column, Some(2));
        assert_eq!(
            c.edges,
            vec![
                Edge {
                    from: (1, 1),
                    to: (0, 0)
                },
                Edge {
                    from: (2, 0),
                    to: (1, 0)
                }
            ]
        );
        assert_eq!(c.tables[2].columns[1].role, ColumnRole::Measure);
        assert_eq!(c.tables[0].columns[2].role, ColumnRole::Dimension);
        assert_eq!(c.tables[0].columns[1].role, ColumnRole::Attribute);
        let targets = sample_targets(&tables, None);
        assert_eq!(
            targets,
            vec![(TableRef::new("shop", "customers"), "segment".to_owned())]
        );
    }

    #[test]
    fn qualifiers_of_a_measure() {
        assert_eq!(
            referenced_names("SUM(order_items.quantity) / COUNT(DISTINCT orders.order_id)"),
            ["order_items", "orders"]
        );
        assert_eq!(referenced_names("COUNT(*)"), Vec::<String>::new());
    }
}
