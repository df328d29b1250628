//! What runs is what the guard checked: the SQL the guard hands on, read the way the engine
//! reads it, holds the same literals and reads the same tables — whatever quotes, backslashes,
//! comment markers and line breaks the caller put inside its literals.
//!
//! DataFusion lexes with sqlparser's generic dialect, so sqlparser is the oracle there. For
//! BigQuery, whose lexer differs from sqlparser's BigQuery dialect, the oracle is a small model
//! of BigQuery's own lexical rules (below): strings with backslash escapes, raw and byte
//! prefixes, backquoted names with escapes, `--`, `#` and `/* */` comments.

use std::ops::ControlFlow;

use bqai_core::guard::{GuardPolicy, RejectReason, check};
use bqai_core::model::{DatasetScope, SqlDialect};
use proptest::prelude::*;
use sqlparser::ast::{Statement, Value, Visit, Visitor};
use sqlparser::dialect::{BigQueryDialect, Dialect, GenericDialect};
use sqlparser::parser::Parser;

fn policy(dialect: SqlDialect) -> GuardPolicy {
    GuardPolicy {
        dialect,
        home_project: None,
        allowed: DatasetScope::from_list(["shop"]),
        default_dataset: None,
        max_rows: 100,
    }
}

fn parser_dialect(dialect: SqlDialect) -> &'static dyn Dialect {
    match dialect {
        SqlDialect::BigQuery => &BigQueryDialect {},
        SqlDialect::DataFusion => &GenericDialect {},
    }
}

/// The string literals and the tables of a statement, as sqlparser reads it in `dialect`.
fn literals_and_tables(sql: &str, dialect: SqlDialect) -> (Vec<String>, Vec<String>) {
    struct Collect(Vec<String>, Vec<String>);
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_value(&mut self, v: &sqlparser::ast::ValueWithSpan) -> ControlFlow<()> {
            if let Value::SingleQuotedString(s)
            | Value::DoubleQuotedString(s)
            | Value::TripleSingleQuotedString(s)
            | Value::TripleDoubleQuotedString(s) = &v.value
            {
                self.0.push(s.clone());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_relation(&mut self, r: &sqlparser::ast::ObjectName) -> ControlFlow<()> {
            self.1.push(r.to_string());
            ControlFlow::Continue(())
        }
    }
    let statements = Parser::parse_sql(parser_dialect(dialect), sql)
        .unwrap_or_else(|e| panic!("the guard's output {sql:?} does not parse: {e}"));
    let [statement @ Statement::Query(_)] = statements.as_slice() else {
        panic!("the guard's output {sql:?} is not one query");
    };
    let mut c = Collect(Vec::new(), Vec::new());
    let _ = statement.visit(&mut c);
    (c.0, c.1)
}

/// A literal holding `value`, written the way a careful client would in `dialect`.
fn literal(value: &str, dialect: SqlDialect) -> String {
    match dialect {
        SqlDialect::DataFusion => format!("'{}'", value.replace('\'', "''")),
        SqlDialect::BigQuery => {
            let mut out = String::from("'");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
    }
}

// ---- a model of BigQuery's lexer, for the oracle ----------------------------------------------

#[derive(Debug, PartialEq)]
enum BqToken {
    Str(String),
    Name(String),
    Word(String),
    Punct(char),
}

/// Lexes per BigQuery's lexical structure: quoted literals (`'`, `"`, triple-quoted, with
/// optional `r`/`b` prefixes) where a backslash always takes the next character with it
/// (decoded unless raw), backquoted names with the same escapes, comments `--`, `#`, `/* */`.
/// `None` where BigQuery would fail to lex.
fn bigquery_lex(sql: &str) -> Option<Vec<BqToken>> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || (c == '-' && chars.get(i + 1) == Some(&'-')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            if i + 1 >= chars.len() {
                return None;
            }
            i += 2;
        } else if c == '`' {
            let (text, next) = quoted(&chars, i, '`', 1, false)?;
            out.push(BqToken::Name(text));
            i = next;
        } else if c == '\'' || c == '"' {
            let n = if chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c) {
                3
            } else {
                1
            };
            let (text, next) = quoted(&chars, i, c, n, false)?;
            out.push(BqToken::Str(text));
            i = next;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let prefix = word.to_ascii_lowercase();
            let is_prefix = matches!(prefix.as_str(), "r" | "b" | "rb" | "br");
            if is_prefix && matches!(chars.get(i), Some('\'' | '"')) {
                let q = chars[i];
                let n = if chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q) {
                    3
                } else {
                    1
                };
                let (text, next) = quoted(&chars, i, q, n, prefix.contains('r'))?;
                out.push(BqToken::Str(text));
                i = next;
            } else {
                out.push(BqToken::Word(word));
            }
        } else {
            out.push(BqToken::Punct(c));
            i += 1;
        }
    }
    Some(out)
}

/// Reads a quoted token opening at `start` with `n` quote characters; returns its decoded text
/// and the index after it. A backslash always consumes the next character (a raw literal keeps
/// both); a plain literal may not hold a line break.
fn quoted(chars: &[char], start: usize, q: char, n: usize, raw: bool) -> Option<(String, usize)> {
    let mut i = start + n;
    let mut text = String::new();
    loop {
        let c = *chars.get(i)?;
        if c == '\\' {
            let e = *chars.get(i + 1)?;
            if raw {
                text.push('\\');
                text.push(e);
            } else {
                text.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '\\' | '\'' | '"' | '`' | '?' => e,
                    _ => return None,
                });
            }
            i += 2;
        } else if c == q
            && (n == 1 || (chars.get(i + 1) == Some(&q) && chars.get(i + 2) == Some(&q)))
        {
            return Some((text, i + n));
        } else if n == 1 && c == '\n' {
            return None;
        } else {
            text.push(c);
            i += 1;
        }
    }
}

/// Every `secret` BigQuery would read as a name (not inside a string or a comment).
fn bigquery_reads_secret(sql: &str) -> bool {
    let tokens = bigquery_lex(sql).unwrap_or_else(|| panic!("BigQuery cannot lex {sql:?}"));
    tokens.iter().any(|t| match t {
        BqToken::Word(w) | BqToken::Name(w) => w.to_ascii_lowercase().contains("secret"),
        _ => false,
    })
}

// ---- fixed cases ---------------------------------------------------------------------------------

/// Inputs built to smuggle live SQL through a literal when the guard re-renders it: the
/// renderer used to leave a quote after a backslash unescaped.
#[test]
fn literals_cannot_smuggle_sql() {
    let cases: &[(SqlDialect, &str)] = &[
        // DataFusion: `\` is an ordinary character there, `''` the escaped quote.
        (
            SqlDialect::DataFusion,
            "SELECT '\\'' , (SELECT salary FROM secret.salaries) , ''' AS x, 'y' AS z FROM shop.orders",
        ),
        (
            SqlDialect::DataFusion,
            "SELECT 'a\\''' AS x, id FROM shop.orders",
        ),
        // BigQuery: a literal ending in an escaped backslash, then text that would become live.
        (
            SqlDialect::BigQuery,
            "SELECT 'a\\\\' AS x, ' FROM secret.salaries --' AS y FROM shop.orders",
        ),
        (
            SqlDialect::BigQuery,
            "SELECT \"a\\\\\" AS x, \" FROM secret.salaries --\" AS y FROM shop.orders",
        ),
        (
            SqlDialect::BigQuery,
            "SELECT '''a\\\\''' AS x, ''' , EXTERNAL_QUERY('c', 'SELECT 1') --''' AS y FROM shop.orders",
        ),
    ];
    for (dialect, sql) in cases {
        let guarded = check(sql, &policy(*dialect)).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let (_, tables) = literals_and_tables(&guarded.sql, *dialect);
        assert_eq!(
            tables,
            ["shop.orders"],
            "{dialect:?} {sql} → {}",
            guarded.sql
        );
        let (original, _) = literals_and_tables(sql, *dialect);
        let (rendered, _) = literals_and_tables(&guarded.sql, *dialect);
        assert_eq!(original, rendered, "{dialect:?} {sql} → {}", guarded.sql);
        if *dialect == SqlDialect::BigQuery {
            assert!(
                !bigquery_reads_secret(&guarded.sql),
                "{} reads secret",
                guarded.sql
            );
            assert!(
                !guarded.sql.to_ascii_uppercase().contains("EXTERNAL_QUERY(")
                    || bigquery_lex(&guarded.sql)
                        .is_some_and(|t| !t.contains(&BqToken::Word("EXTERNAL_QUERY".into()))),
                "{}",
                guarded.sql
            );
        }
    }
}

/// Where sqlparser's BigQuery dialect and BigQuery itself read text apart, the guard refuses
/// the statement instead of guessing.
#[test]
fn bigquery_text_read_differently_is_refused() {
    let p = policy(SqlDialect::BigQuery);
    for sql in [
        // Escapes sqlparser does not decode as BigQuery does.
        "SELECT '\\x41' AS s FROM shop.orders",
        "SELECT '\\u00e9' AS s FROM shop.orders",
        "SELECT '\\101' AS s FROM shop.orders",
        // A raw or byte literal whose closing quote BigQuery reads as escaped.
        "SELECT r'a\\', ' FROM secret.t --' AS s FROM shop.orders",
        "SELECT b'\\', ' FROM secret.t --' AS s FROM shop.orders",
        // Backslashes or backticks inside a backquoted name.
        "SELECT `a\\`, '`, * FROM secret.t -- ' FROM shop.orders",
        "SELECT `a``b` FROM shop.orders",
        // A line break inside a one-quote string or name (found by `accepted_text_never_smuggles`).
        "SELECT ',' AS \"\nr'\n\" LIMIT 100",
        "SELECT 'a\nb' AS s FROM shop.orders",
        "SELECT 1 AS `a\nb` FROM shop.orders",
        "SELECT '*/\\'', R'\n/*' AS s FROM shop.orders",
        // An escape BigQuery does not know, in a byte literal (found the same way).
        "SELECT '', b'\\ ' AS s FROM shop.orders",
    ] {
        let reason = check(sql, &p).err().map(|r| r.reason);
        assert_eq!(reason, Some(RejectReason::Ambiguous), "{sql}");
    }
    // Raw literals in their everyday use, and the escapes both read alike, still pass.
    for sql in [
        "SELECT REGEXP_CONTAINS(name, r'\\d+\\.\\w') AS m FROM shop.orders",
        "SELECT 'it\\'s' AS s, 'a\\nb' AS t, 'C:\\\\temp' AS u FROM shop.orders",
        "SELECT b'abc' AS b FROM shop.orders",
        "SELECT b'a\\nb' AS b FROM shop.orders",
        "SELECT\n  '''line one\nline two''' AS s\nFROM shop.orders",
    ] {
        let guarded = check(sql, &p).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        let (before, _) = literals_and_tables(sql, SqlDialect::BigQuery);
        let (after, _) = literals_and_tables(&guarded.sql, SqlDialect::BigQuery);
        assert_eq!(before, after, "{sql} → {}", guarded.sql);
        bigquery_lex(&guarded.sql).unwrap_or_else(|| panic!("BigQuery cannot lex {}", guarded.sql));
    }
}

#[test]
fn nul_characters_are_refused() {
    for dialect in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
        let reason = check("SELECT 'a\0b' AS s FROM shop.orders", &policy(dialect))
            .err()
            .map(|r| r.reason);
        assert_eq!(reason, Some(RejectReason::Unparseable));
    }
}

// ---- properties ------------------------------------------------------------------------------------

fn dialects() -> impl Strategy<Value = SqlDialect> {
    prop_oneof![Just(SqlDialect::BigQuery), Just(SqlDialect::DataFusion)]
}

/// Literal values made of the characters that matter: quotes, backslashes, comment markers,
/// line breaks, statement separators.
fn values() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("'"),
            Just("\""),
            Just("\\"),
            Just("`"),
            Just("\n"),
            Just("\r"),
            Just("\t"),
            Just("--"),
            Just("#"),
            Just("/*"),
            Just("*/"),
            Just(";"),
            Just(" "),
            Just("a"),
            Just("é"),
            Just("''"),
            Just("\\'"),
            Just("$$"),
            Just(", (SELECT 1 FROM secret.t) ,"),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

/// Raw text put between quotes as is: often not a well-formed literal at all.
fn fragments() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("'"),
            Just("''"),
            Just("\\"),
            Just("\\'"),
            Just("\\\\"),
            Just(" "),
            Just("--"),
            Just("#"),
            Just("/*"),
            Just("*/"),
            Just("\n"),
            Just("`"),
            Just("\""),
            Just(", (SELECT v FROM secret.t) ,"),
            Just(" FROM secret.t "),
            Just(","),
            Just("x"),
            Just("r'"),
            Just("b'"),
            Just("'''"),
        ],
        1..9,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// A well-formed literal is accepted, and the SQL that runs holds exactly its value.
    #[test]
    fn literals_survive_the_round_trip(value in values(), dialect in dialects()) {
        let sql = format!("SELECT {} AS s, id FROM shop.orders", literal(&value, dialect));
        let guarded = check(&sql, &policy(dialect));
        prop_assert!(guarded.is_ok(), "{:?}: {:?}", sql, guarded);
        let guarded = guarded.unwrap_or_else(|_| unreachable!());
        let (literals, tables) = literals_and_tables(&guarded.sql, dialect);
        prop_assert_eq!(literals, vec![value.clone()]);
        prop_assert_eq!(tables, vec!["shop.orders".to_owned()]);
        if dialect == SqlDialect::BigQuery {
            let tokens = bigquery_lex(&guarded.sql);
            prop_assert!(tokens.as_ref().is_some_and(|t| t.contains(&BqToken::Str(value.clone()))),
                "BigQuery reads {:?} as {:?}", guarded.sql, tokens);
        }
    }

    /// Whatever the text between quotes, what the guard accepts reads only allowed tables —
    /// as the engine reads the output — and is a fixed point of the guard.
    #[test]
    fn accepted_text_never_smuggles(text in fragments(), dialect in dialects()) {
        let sql = format!("SELECT '{text}' AS s FROM shop.orders");
        if let Ok(guarded) = check(&sql, &policy(dialect)) {
            let (_, tables) = literals_and_tables(&guarded.sql, dialect);
            prop_assert!(tables.iter().all(|t| t.starts_with("shop.")), "{:?} → {:?}", sql, guarded.sql);
            if dialect == SqlDialect::BigQuery {
                prop_assert!(!bigquery_reads_secret(&guarded.sql), "{:?} → {:?}", sql, guarded.sql);
            }
            let again = check(&guarded.sql, &policy(dialect));
            prop_assert_eq!(again.map(|g| g.sql), Ok(guarded.sql));
        }
    }
}
