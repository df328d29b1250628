//! Which tables and examples matter for a question.
//!
//! Large datasets must not be pasted whole into a prompt: tables are scored by how many of
//! the question's words they match (name, synonyms, columns, descriptions), tables joined to
//! a match come along, and the best are kept within a token budget. Examples (verified ones
//! from the semantic model, successful past asks from history) are ranked by word overlap.

use std::collections::BTreeSet;

use crate::model::Table;
use crate::semantic::{Example, SemanticModel};

use super::prompt::{estimate_tokens, table_block};
use super::text::{jaccard, singular, terms, words};

fn table_terms(
    t: &Table,
    semantic: Option<&SemanticModel>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    // Strong: the table's name, synonyms and column names. Weak: descriptions.
    let mut strong: BTreeSet<String> = words(&t.table_ref.table)
        .iter()
        .map(|w| singular(w))
        .collect();
    let mut weak = BTreeSet::new();
    for f in &t.schema {
        strong.extend(words(&f.name).iter().map(|w| singular(w)));
        if let Some(d) = &f.description {
            weak.extend(terms(d));
        }
    }
    if let Some(d) = &t.description {
        weak.extend(terms(d));
    }
    if let Some(st) = semantic.and_then(|m| m.table(&t.table_ref.table)) {
        for s in &st.synonyms {
            strong.extend(terms(s));
        }
        for c in &st.columns {
            for s in &c.synonyms {
                strong.extend(terms(s));
            }
        }
    }
    if let Some(m) = semantic {
        for ms in m
            .measures
            .iter()
            .filter(|ms| ms.table.eq_ignore_ascii_case(&t.table_ref.table))
        {
            strong.extend(terms(&ms.name));
            for s in &ms.synonyms {
                strong.extend(terms(s));
            }
        }
    }
    (strong, weak)
}

fn score(question: &BTreeSet<String>, t: &Table, semantic: Option<&SemanticModel>) -> f64 {
    let (strong, weak) = table_terms(t, semantic);
    let strong_hits = question.intersection(&strong).count() as f64;
    let weak_hits = question.intersection(&weak).count() as f64;
    strong_hits * 3.0 + weak_hits
}

/// The tables to show the generator: all of them when they fit in `budget_tokens`, otherwise
/// the best-scoring ones plus the tables they join to, as many as fit (at least one).
pub fn relevant_tables(
    question: &str,
    tables: &[Table],
    semantic: Option<&SemanticModel>,
    budget_tokens: usize,
) -> Vec<Table> {
    let sizes: Vec<usize> = tables
        .iter()
        .map(|t| estimate_tokens(&table_block(t, semantic)))
        .collect();
    if sizes.iter().sum::<usize>() <= budget_tokens {
        return tables.to_vec();
    }
    let q = terms(question);
    let mut ranked: Vec<(usize, f64)> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (i, score(&q, t, semantic)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut chosen: Vec<usize> = Vec::new();
    let mut used = 0usize;
    let mut take = |i: usize, chosen: &mut Vec<usize>| {
        if !chosen.contains(&i) && (chosen.is_empty() || used + sizes[i] <= budget_tokens) {
            used += sizes[i];
            chosen.push(i);
        }
    };
    for &(i, s) in &ranked {
        if s <= 0.0 && !chosen.is_empty() {
            break;
        }
        take(i, &mut chosen);
        // Bring along the tables this one joins to, so the generator can follow the keys.
        for j in neighbours(i, tables, semantic) {
            take(j, &mut chosen);
        }
    }
    chosen.sort_unstable();
    chosen.into_iter().map(|i| tables[i].clone()).collect()
}

/// Tables joined to `tables[i]`: by the semantic model's relationships, or else by a
/// `<other>_id` column naming another table.
fn neighbours(i: usize, tables: &[Table], semantic: Option<&SemanticModel>) -> Vec<usize> {
    let name = &tables[i].table_ref.table;
    let find = |n: &str| {
        tables
            .iter()
            .position(|t| t.table_ref.table.eq_ignore_ascii_case(n))
    };
    let mut out = Vec::new();
    if let Some(m) = semantic {
        for r in m.relationships_of(name) {
            for side in [r.from_parts(), r.to_parts()].into_iter().flatten() {
                if let Some(j) = find(side.0).filter(|&j| j != i) {
                    out.push(j);
                }
            }
        }
    }
    for f in &tables[i].schema {
        if let Some(stem) = f.name.strip_suffix("_id") {
            for candidate in [stem.to_string(), format!("{stem}s"), format!("{stem}es")] {
                if let Some(j) = find(&candidate).filter(|&j| j != i) {
                    out.push(j);
                }
            }
        }
    }
    out
}

/// The `n` examples most similar to the question (ties: the earlier one first); examples
/// sharing no word with the question are left out.
pub fn similar_examples(question: &str, candidates: &[Example], n: usize) -> Vec<Example> {
    let q = terms(question);
    let mut scored: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .map(|(i, e)| (i, jaccard(&q, &terms(&e.question))))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out: Vec<Example> = Vec::new();
    for (i, _) in scored {
        if out.len() == n {
            break;
        }
        if !out.iter().any(|e| e.sql == candidates[i].sql) {
            out.push(candidates[i].clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, FieldType, TableKind, TableRef};

    fn table(name: &str, cols: &[&str]) -> Table {
        Table {
            table_ref: TableRef::new("ds", name),
            kind: TableKind::Table,
            description: None,
            schema: cols
                .iter()
                .map(|c| Field::new(*c, FieldType::String))
                .collect(),
            num_rows: None,
            num_bytes: None,
            partitioning: None,
            clustering: vec![],
            created_at: None,
            modified_at: None,
        }
    }

    #[test]
    fn small_schemas_are_kept_whole() {
        let tables = vec![table("a", &["x"]), table("b", &["y"])];
        assert_eq!(relevant_tables("anything", &tables, None, 10_000).len(), 2);
    }

    #[test]
    fn large_schemas_are_narrowed_to_matches_and_their_joins() {
        let mut tables: Vec<Table> = (0..200)
            .map(|i| table(&format!("noise_{i}"), &["alpha", "beta", "gamma", "delta"]))
            .collect();
        tables.push(table("orders", &["order_id", "customer_id", "amount"]));
        tables.push(table("customers", &["customer_id", "country"]));
        let picked = relevant_tables("total amount of orders", &tables, None, 300);
        let names: Vec<&str> = picked.iter().map(|t| t.table_ref.table.as_str()).collect();
        assert!(names.contains(&"orders"), "{names:?}");
        assert!(
            names.contains(&"customers"),
            "joined table comes along: {names:?}"
        );
        let used: usize = picked
            .iter()
            .map(|t| estimate_tokens(&table_block(t, None)))
            .sum();
        assert!(used <= 300, "within budget: {used}");
    }

    #[test]
    fn examples_by_similarity() {
        let ex = |q: &str, s: &str| Example {
            question: q.into(),
            sql: s.into(),
        };
        let all = vec![
            ex("number of customers by country", "A"),
            ex("revenue by month", "B"),
            ex("weather today", "C"),
        ];
        let got = similar_examples("how many customers per country in 2024", &all, 2);
        assert_eq!(got.first().map(|e| e.sql.as_str()), Some("A"));
        assert!(got.iter().all(|e| e.sql != "C"));
    }
}
