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

/// Naive singular form, good enough to match "orders" with `order` and "categories" with
/// `category`.
pub(crate) fn singular(word: &str) -> String {
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if word.len() > 4 && (word.ends_with("ses") || word.ends_with("xes")) {
        word[..word.len() - 2].to_string()
    } else if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
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
