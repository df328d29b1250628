//! Word-level text helpers shared by intent detection, table relevance and example
//! similarity: lowercase word tokens, a small stop-word list, naive singularisation.

use std::collections::BTreeSet;

const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "for", "to", "by", "and", "or", "with", "from", "is",
    "are", "was", "were", "be", "what", "which", "who", "how", "many", "much", "me", "show",
    "give", "list", "per", "each", "all", "do", "does", "did", "have", "has", "there", "that",
    "this", "it", "its", "i", "we", "you", "our", "my", "please", "can", "could", "would", "tell",
    "at", "as", "than", "between", "into", "about", "top",
];

/// Lowercase alphanumeric words of `text` (underscores split words too).
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Lowercase word with a simple plural stripped: `countries` → `country`, `orders` → `order`,
/// `sales` → `sale`; short words and `-ss`/`-us`/`-is` endings are kept. Shared by the ask
/// pipeline (intent, relevance, examples) and the built-in planner, so both match words alike.
pub fn singular(word: &str) -> String {
    let w = word.to_lowercase();
    let n = w.chars().count();
    if n <= 3 || !w.is_ascii() {
        return w;
    }
    if let Some(base) = w.strip_suffix("ies")
        && n > 4
    {
        return format!("{base}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if w.ends_with(suffix) {
            return w[..w.len() - 2].to_owned();
        }
    }
    if w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") {
        return w;
    }
    match w.strip_suffix('s') {
        Some(base) => base.to_owned(),
        None => w,
    }
}

/// The content words of `text`, singularised, without stop words.
pub(crate) fn terms(text: &str) -> BTreeSet<String> {
    words(text)
        .into_iter()
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| singular(&w))
        .collect()
}

/// Jaccard similarity of two term sets (0 when both are empty).
pub(crate) fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// A question normalised for the question cache: lowercase, single spaces, no trailing
/// punctuation.
pub(crate) fn normalize_question(q: &str) -> String {
    q.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_end_matches(['?', '.', '!', ' '])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_singular_content_words() {
        let t = terms("How many orders per product_categories?");
        assert!(
            t.contains("order") && t.contains("product") && t.contains("category"),
            "{t:?}"
        );
        assert!(!t.contains("how") && !t.contains("many"));
    }

    #[test]
    fn normalization_ignores_case_spacing_and_trailing_punctuation() {
        assert_eq!(
            normalize_question("  Total  Revenue by COUNTRY? "),
            normalize_question("total revenue by country")
        );
    }
}
