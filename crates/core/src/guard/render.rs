//! What runs is what was checked: the accepted tree is turned back into text that the
//! warehouse reads exactly as the guard did.
//!
//! sqlparser's renderer is not a faithful inverse of its parser for string literals: it does
//! not escape a quote that follows a backslash (it assumes the backslash already escapes it),
//! and it writes raw, byte, national and triple-quoted literals without any escaping. Text the
//! guard saw inside a literal could then become live SQL in the statement that runs. So the
//! guard does not trust the renderer:
//!
//! 1. **Canonical literals.** On BigQuery, quoted strings of every kind whose value is plain
//!    text (`"…"`, `'''…'''`, `"""…"""`) become one kind, `'…'`, with the same value.
//! 2. **Escaping per dialect.** A copy of the tree gets its string values pre-escaped for the
//!    dialect's lexer — BigQuery: backslash escapes (`\\`, `\'`, `\n`, …), since BigQuery reads
//!    backslashes in every quoted literal; DataFusion (sqlparser's generic dialect): doubled
//!    quotes, since a backslash is an ordinary character there. The renderer writes such
//!    values verbatim.
//! 3. **Round trip.** The text is parsed again, in the same dialect and with the same limits,
//!    and must give back exactly the tree that was checked (spans aside); otherwise the
//!    statement is refused as [`RejectReason::Ambiguous`]. Equal trees get the same verdict.
//!
//! DataFusion parses with this very sqlparser and dialect, so for it the round trip is the
//! whole proof. BigQuery has a lexer of its own, which differs from sqlparser's BigQuery
//! dialect in a few places; [`check_bigquery_lexing`] refuses the inputs where they differ
//! (escape sequences sqlparser does not decode like BigQuery, raw and byte literals whose
//! closing quote BigQuery would read as escaped, backslashes and backticks inside quoted
//! identifiers), so the rendered text never contains them.

use std::ops::ControlFlow;

use sqlparser::ast::{Query, Statement, Value, ValueWithSpan, VisitMut, VisitorMut};
use sqlparser::dialect::Dialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::budget::Budgeted;
use super::{RejectReason, Rejection};
use crate::model::SqlDialect;

/// Renders `query` (already checked and rewritten) into the text to run, after making its
/// literals canonical. The text parses back, in `dialect`, into exactly `query`.
pub(super) fn render(
    query: &mut Query,
    dialect: SqlDialect,
    parser_dialect: &'static dyn Dialect,
    tokens: usize,
) -> Result<String, Rejection> {
    if dialect == SqlDialect::BigQuery {
        // An infallible visitor: `Break` is never produced.
        let _ = query.visit(&mut Canonical);
    }
    let mut escaped = query.clone();
    if let ControlFlow::Break(rejection) = escaped.visit(&mut Escape { dialect }) {
        return Err(rejection);
    }
    let sql = escaped.to_string();

    // Rendering adds a few tokens (the LIMIT, qualifiers); the budget allows for them.
    let budgeted = Budgeted::new(parser_dialect, tokens.saturating_mul(2));
    let reparsed = Parser::new(&budgeted)
        .try_with_sql(&sql)
        .and_then(|mut p| p.parse_statements());
    match reparsed.as_deref() {
        Ok([Statement::Query(again)]) if **again == *query => Ok(sql),
        _ => Err(ambiguous(
            "the statement cannot be written back unambiguously (a quote, backslash or \
             comment marker that engines read differently): simplify the literal or name",
        )),
    }
}

/// The rejection for text the guard and the warehouse could read differently.
pub(super) fn ambiguous(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectReason::Ambiguous, message)
}

/// BigQuery: string literals that hold plain text become `'…'` literals.
struct Canonical;

impl VisitorMut for Canonical {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let text = match &mut value.value {
            Value::DoubleQuotedString(s)
            | Value::TripleSingleQuotedString(s)
            | Value::TripleDoubleQuotedString(s) => std::mem::take(s),
            _ => return ControlFlow::Continue(()),
        };
        value.value = Value::SingleQuotedString(text);
        ControlFlow::Continue(())
    }
}

/// Writes string values in the form the dialect's lexer reads back as the same value.
struct Escape {
    dialect: SqlDialect,
}

impl VisitorMut for Escape {
    type Break = Rejection;

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<Rejection> {
        match (&mut value.value, self.dialect) {
            (Value::SingleQuotedString(s), SqlDialect::BigQuery) => *s = bigquery_escape(s),
            // Raw and byte literals are written as they were read; the lexing check made
            // sure BigQuery reads them the same way.
            (
                Value::SingleQuotedString(s)
                | Value::NationalStringLiteral(s)
                | Value::SingleQuotedRawStringLiteral(s)
                | Value::SingleQuotedByteStringLiteral(s),
                SqlDialect::DataFusion,
            ) => *s = s.replace('\'', "''"),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// A BigQuery `'…'` literal's body for `value`: every quote and backslash escaped, line
/// breaks and the control characters both lexers decode written as escapes.
fn bigquery_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

/// Escape sequences sqlparser's BigQuery dialect decodes exactly as BigQuery does.
const SHARED_ESCAPES: &[char] = &['\\', '\'', '"', '`', '?', 'a', 'b', 'f', 'n', 'r', 't'];

/// Refuses BigQuery input that sqlparser's BigQuery dialect lexes differently from BigQuery
/// itself. `tokens` are the statement's tokens (decoded); `sql` is its text.
pub(super) fn check_bigquery_lexing(
    dialect: &dyn Dialect,
    sql: &str,
    tokens: &[TokenWithSpan],
) -> Result<(), Rejection> {
    for token in tokens {
        if let Token::Word(w) = &token.token
            && w.quote_style == Some('`')
            && (w.value.contains('\\') || w.value.contains('`'))
        {
            return Err(ambiguous(format!(
                "the quoted name `{}` contains a backslash or a backtick, which BigQuery reads \
                 differently: rename or alias it",
                w.value.escape_debug()
            )));
        }
    }
    if !sql.contains('\\') && !sql.contains(['\n', '\r']) {
        return Ok(());
    }
    // Only the undecoded text shows which escape sequences (and which line breaks) were
    // written.
    let raw = Tokenizer::new(dialect, sql)
        .with_unescape(false)
        .tokenize()
        .map_err(|e| {
            Rejection::new(
                RejectReason::Unparseable,
                format!("the SQL could not be tokenized: {e}"),
            )
        })?;
    for token in &raw {
        match token {
            // BigQuery ends a one-quote string or quoted name at a line break (an error);
            // sqlparser reads on. Only triple-quoted strings may span lines.
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::SingleQuotedRawStringLiteral(s)
            | Token::DoubleQuotedRawStringLiteral(s)
            | Token::SingleQuotedByteStringLiteral(s)
            | Token::DoubleQuotedByteStringLiteral(s)
                if s.contains(['\n', '\r']) =>
            {
                return Err(ambiguous(
                    "a quoted string or name contains a line break, which BigQuery does not \
                     allow: write \\n or use a triple-quoted string",
                ));
            }
            Token::Word(w) if w.quote_style.is_some() && w.value.contains(['\n', '\r']) => {
                return Err(ambiguous(
                    "a quoted name contains a line break, which BigQuery does not allow",
                ));
            }
            Token::SingleQuotedString(s)
            | Token::DoubleQuotedString(s)
            | Token::TripleSingleQuotedString(s)
            | Token::TripleDoubleQuotedString(s) => check_escapes(s)?,
            Token::SingleQuotedRawStringLiteral(s)
            | Token::TripleSingleQuotedRawStringLiteral(s) => check_verbatim(s, '\'')?,
            Token::DoubleQuotedRawStringLiteral(s)
            | Token::TripleDoubleQuotedRawStringLiteral(s) => check_verbatim(s, '"')?,
            // A byte literal that is not raw decodes escapes in BigQuery (an unknown one is an
            // error there) while sqlparser keeps its body as written: both rules apply.
            Token::SingleQuotedByteStringLiteral(s)
            | Token::TripleSingleQuotedByteStringLiteral(s) => {
                check_escapes(s)?;
                check_verbatim(s, '\'')?;
            }
            Token::DoubleQuotedByteStringLiteral(s)
            | Token::TripleDoubleQuotedByteStringLiteral(s) => {
                check_escapes(s)?;
                check_verbatim(s, '"')?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A quoted string's undecoded body may only use the escapes both lexers decode alike.
fn check_escapes(body: &str) -> Result<(), Rejection> {
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some(e) if SHARED_ESCAPES.contains(&e) => {}
            Some(e) => {
                return Err(ambiguous(format!(
                    "the escape sequence `\\{}` in a string literal is not supported: write the \
                     character itself",
                    e.escape_debug()
                )));
            }
            None => return Err(ambiguous("a string literal ends with a backslash")),
        }
    }
    Ok(())
}

/// Raw and byte literals: sqlparser ends them at the first unescaped quote, BigQuery skips a
/// quote after a backslash. They agree only if the body holds no quote and does not end in
/// an odd run of backslashes.
fn check_verbatim(body: &str, quote: char) -> Result<(), Rejection> {
    let trailing = body.chars().rev().take_while(|c| *c == '\\').count();
    if body.contains(quote) || trailing % 2 == 1 {
        return Err(ambiguous(
            "a raw or byte literal ends in a backslash or contains its own quote, which \
             BigQuery reads differently: write it as an ordinary string",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigquery_escaping_covers_quotes_backslashes_and_breaks() {
        assert_eq!(bigquery_escape(r"a\'b"), r"a\\\'b");
        assert_eq!(bigquery_escape("x\ny\r"), r"x\ny\r");
        assert_eq!(bigquery_escape("plain"), "plain");
    }

    #[test]
    fn only_shared_escapes_pass() {
        assert!(check_escapes(r"a\nb\\c\'d").is_ok());
        assert!(check_escapes(r"\x41").is_err());
        assert!(check_escapes(r"\u00e9").is_err());
        assert!(check_escapes(r"\101").is_err());
        assert!(check_escapes(r"\v").is_err());
    }

    #[test]
    fn raw_literals_must_end_cleanly() {
        assert!(check_verbatim(r"\d+", '\'').is_ok());
        assert!(check_verbatim(r"a\\", '\'').is_ok());
        assert!(check_verbatim(r"a\", '\'').is_err());
        assert!(check_verbatim("a'b", '\'').is_err());
    }
}
