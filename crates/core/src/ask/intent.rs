//! Recognising questions about the schema itself ("what tables are there?", "what columns
//! does orders have?"), which are answered from the catalog without generating SQL.

use super::text::{singular, words};

/// What kind of question this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// "What tables are there?"
    ListTables,
    /// "What columns does orders have?" — the table's name as listed.
    DescribeTable(String),
    /// Anything else: a question about the data.
    Data,
}

const TABLE_WORDS: &[&str] = &["table", "tables", "dataset", "datasets"];
const COLUMN_WORDS: &[&str] = &[
    "column",
    "columns",
    "field",
    "fields",
    "schema",
    "structure",
];
const ASKING: &[&str] = &[
    "what",
    "which",
    "list",
    "show",
    "describe",
    "tell",
    "available",
    "exist",
    "have",
    "are",
];
/// Words that mean the question is about values, not structure ("how many orders…").
const DATA_WORDS: &[&str] = &[
    "how", "many", "count", "total", "sum", "average", "avg", "top", "most", "revenue", "by",
    "per", "where", "since", "before", "between", "max", "min",
];

/// Classifies `question` given the tables of the dataset.
pub fn classify(question: &str, table_names: &[String]) -> Intent {
    let ws = words(question);
    let has = |set: &[&str]| ws.iter().any(|w| set.contains(&w.as_str()));
    let asks = has(ASKING)
        || ws
            .first()
            .is_some_and(|w| w == "tables" || w == "columns" || w == "schema");
    if !asks || ws.len() > 12 {
        return Intent::Data;
    }
    // Longest names first, so "order items" finds `order_items`, not `orders`.
    let mut by_length: Vec<&String> = table_names.iter().collect();
    by_length.sort_by_key(|t| std::cmp::Reverse(words(t).len()));
    let mentioned = by_length.into_iter().find(|t| {
        let t_words = words(t);
        // The table's full name as consecutive words ("order items" or "order_items").
        ws.windows(t_words.len().max(1)).any(|win| {
            win.iter()
                .zip(&t_words)
                .all(|(a, b)| singular(a) == singular(b))
        })
    });
    if has(COLUMN_WORDS) || ws.first().is_some_and(|w| w == "describe") {
        if has(&["how", "many", "count"]) && !has(COLUMN_WORDS) {
            return Intent::Data;
        }
        return match mentioned {
            Some(t) => Intent::DescribeTable(t.to_string()),
            None => Intent::ListTables,
        };
    }
    if has(TABLE_WORDS) && !has(DATA_WORDS) {
        return Intent::ListTables;
    }
    Intent::Data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["customers", "orders", "order_items", "products"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn schema_questions() {
        for q in [
            "what tables are there?",
            "Which tables do you have",
            "list the tables",
            "show tables",
            "what datasets are available?",
        ] {
            assert_eq!(classify(q, &names()), Intent::ListTables, "{q}");
        }
        assert_eq!(
            classify("what columns does orders have?", &names()),
            Intent::DescribeTable("orders".into())
        );
        assert_eq!(
            classify("describe order items", &names()),
            Intent::DescribeTable("order_items".into())
        );
        assert_eq!(
            classify("What fields are in the customers table?", &names()),
            Intent::DescribeTable("customers".into())
        );
        assert_eq!(
            classify("schema of products", &names()),
            Intent::DescribeTable("products".into())
        );
    }

    #[test]
    fn data_questions_are_not_schema_questions() {
        for q in [
            "how many orders are there?",
            "total revenue by country in 2024",
            "which customers have the most orders",
            "top 5 products by revenue",
            "what is the average order value",
            "how many tables of furniture did we sell",
        ] {
            assert_eq!(classify(q, &names()), Intent::Data, "{q}");
        }
    }
}
