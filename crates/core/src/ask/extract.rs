//! Pulling the SQL (and the explanation) out of a model's free-text answer.
//!
//! Models are asked for one ```sql fenced block followed by one explanation line, or a line
//! `CANNOT_ANSWER: <reason>`. They do not always comply, so this copes with ```SQL /
//! ```sql / ```googlesql / unlabelled fences, bare SQL with or without surrounding prose,
//! CRLF line endings and a trailing semicolon. It only finds text: whether that text is a
//! safe query is the guard's business, so a ```sql fence is taken whatever it holds.

/// What was found in a model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extracted {
    /// A SQL statement and the prose around it (the explanation, possibly empty).
    Sql {
        /// The statement, trimmed, without a trailing `;`.
        sql: String,
        /// The explanation the model gave, trimmed.
        explanation: String,
    },
    /// The model said it cannot answer, and why.
    CannotAnswer(String),
    /// No SQL and no refusal.
    Nothing,
}

const REFUSAL_MARKER: &str = "CANNOT_ANSWER";
const FENCE_LANGS: &[&str] = &[
    "",
    "sql",
    "googlesql",
    "bigquery",
    "standardsql",
    "postgresql",
];

/// Extracts the SQL and explanation from `text`.
pub fn extract(text: &str) -> Extracted {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if let Some((sql, prose)) = fenced(&text) {
        return sql_or_nothing(sql, explanation_from(&prose));
    }
    if let Some(reason) = refusal(&text) {
        return Extracted::CannotAnswer(reason);
    }
    if let Some((sql, prose)) = bare(&text) {
        return sql_or_nothing(sql, explanation_from(&prose));
    }
    Extracted::Nothing
}

fn sql_or_nothing(sql: String, explanation: String) -> Extracted {
    let sql = sql.trim().trim_end_matches(';').trim().to_string();
    if sql.is_empty() {
        Extracted::Nothing
    } else {
        Extracted::Sql { sql, explanation }
    }
}

/// The first fenced block whose language tag is SQL-like (or absent) and whose body starts
/// like a query; returns the body and the text outside the fence.
fn fenced(text: &str) -> Option<(String, String)> {
    let mut search_from = 0;
    while let Some(rel) = text[search_from..].find("```") {
        let open = search_from + rel;
        let after_ticks = open + 3;
        let line_end = text[after_ticks..]
            .find('\n')
            .map_or(text.len(), |i| after_ticks + i);
        let lang = text[after_ticks..line_end].trim().to_ascii_lowercase();
        let body_start = (line_end + 1).min(text.len());
        let Some(close_rel) = text[body_start..].find("```") else {
            // An unclosed fence: take the rest (models get cut off by max_tokens).
            let body = &text[body_start..];
            if fence_holds_sql(&lang, body) {
                return Some((body.to_string(), text[..open].to_string()));
            }
            return None;
        };
        let close = body_start + close_rel;
        let body = &text[body_start..close];
        if fence_holds_sql(&lang, body) {
            let prose = format!("{}\n{}", &text[..open], &text[close + 3..]);
            return Some((body.to_string(), prose));
        }
        search_from = close + 3;
    }
    None
}

/// A fence labelled as SQL holds whatever statement the model wrote (the guard judges it, and
/// its refusal is better feedback than "no SQL found"); an unlabelled fence must look like a
/// query.
fn fence_holds_sql(lang: &str, body: &str) -> bool {
    if lang.is_empty() {
        starts_like_query(body)
    } else {
        FENCE_LANGS.contains(&lang) && !body.trim().is_empty()
    }
}

/// Bare SQL: from the first line that starts with SELECT or WITH to the first blank line (or
/// the end); the rest is prose.
fn bare(text: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| starts_like_query(l))?;
    let end = lines[start..]
        .iter()
        .position(|l| l.trim().is_empty())
        .map_or(lines.len(), |i| start + i);
    let sql = lines[start..end].join("\n");
    let prose = [&lines[..start], &lines[end..]]
        .iter()
        .flat_map(|part| part.iter())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    Some((sql, prose))
}

fn starts_like_query(s: &str) -> bool {
    let head: String = s
        .trim_start()
        .trim_start_matches('(')
        .chars()
        .take(6)
        .collect::<String>()
        .to_ascii_uppercase();
    head.starts_with("SELECT")
        || head.starts_with("WITH") && head[4..].starts_with(char::is_whitespace)
}

fn refusal(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| {
        l.trim_start_matches(['*', '`', '_'])
            .starts_with(REFUSAL_MARKER)
    })?;
    let reason = line
        .trim_start_matches(['*', '`', '_'])
        .trim_start_matches(REFUSAL_MARKER)
        .trim_start_matches(['*', '`', '_', ':', ' ', '-'])
        .trim();
    Some(if reason.is_empty() {
        "the model could not answer this question with the available tables".to_string()
    } else {
        reason.to_string()
    })
}

/// The explanation: an `Explanation:` line if present, otherwise the prose, in one line.
fn explanation_from(prose: &str) -> String {
    let lines: Vec<&str> = prose
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(l) = lines
        .iter()
        .find(|l| l.to_ascii_lowercase().starts_with("explanation:"))
    {
        return l["explanation:".len()..].trim().to_string();
    }
    let joined = lines.join(" ");
    let max = 500;
    if joined.chars().count() > max {
        let cut: String = joined.chars().take(max).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(text: &str) -> String {
        match extract(text) {
            Extracted::Sql { sql, .. } => sql,
            other => panic!("expected SQL in {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn fenced_blocks_in_any_case_and_label() {
        for fence in ["```sql", "```SQL", "```", "```googlesql", "``` sql"] {
            let text = format!("Here you go:\n{fence}\nSELECT 1 AS x;\n```\nExplanation: one.");
            assert_eq!(sql_of(&text), "SELECT 1 AS x", "{fence}");
        }
    }

    #[test]
    fn crlf_and_explanations() {
        let text = "```sql\r\nSELECT a\r\nFROM t\r\n```\r\nExplanation: counts things.\r\n";
        assert_eq!(
            extract(text),
            Extracted::Sql {
                sql: "SELECT a\nFROM t".into(),
                explanation: "counts things.".into()
            }
        );
    }

    #[test]
    fn bare_sql_with_prose_around_it() {
        let text = "Sure! The query is:\n\nSELECT country, COUNT(*) AS n\nFROM shop.customers\nGROUP BY country;\n\nThis groups customers by country.";
        match extract(text) {
            Extracted::Sql { sql, explanation } => {
                assert_eq!(
                    sql,
                    "SELECT country, COUNT(*) AS n\nFROM shop.customers\nGROUP BY country"
                );
                assert!(explanation.contains("groups customers"), "{explanation}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sql_of("WITH x AS (SELECT 1) SELECT * FROM x"),
            "WITH x AS (SELECT 1) SELECT * FROM x"
        );
    }

    #[test]
    fn non_sql_fences_are_skipped() {
        let text = "```python\nprint(1)\n```\n```sql\nSELECT 2\n```";
        assert_eq!(sql_of(text), "SELECT 2");
        // A labelled fence holds whatever the model wrote: the guard refuses it with a reason
        // the model can learn from. An unlabelled fence must look like a query.
        assert_eq!(sql_of("```sql\nDROP TABLE x\n```"), "DROP TABLE x");
        assert_eq!(extract("```\nrm -rf /\n```"), Extracted::Nothing);
    }

    #[test]
    fn refusals_and_nothing() {
        assert_eq!(
            extract("CANNOT_ANSWER: there is no weather table"),
            Extracted::CannotAnswer("there is no weather table".into())
        );
        assert_eq!(
            extract("**CANNOT_ANSWER** - no data about employees"),
            Extracted::CannotAnswer("no data about employees".into())
        );
        assert_eq!(extract("I am not sure what you mean."), Extracted::Nothing);
        assert_eq!(extract(""), Extracted::Nothing);
        assert_eq!(extract("```sql\n\n```"), Extracted::Nothing);
    }

    #[test]
    fn unclosed_fence_takes_the_rest() {
        assert_eq!(sql_of("```sql\nSELECT 1\nFROM t"), "SELECT 1\nFROM t");
    }

    #[test]
    fn withdrawn_is_not_with() {
        assert_eq!(
            extract("Withdrawn answers are not queries"),
            Extracted::Nothing
        );
    }
}
