//! Statement-level refusals: empty input, several statements, and every statement that is not a
//! query, classified from the leading keywords (before parsing) and from the parsed statement.

use sqlparser::ast::Statement;
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::{RejectReason, Rejection};

/// The most significant tokens (words, literals, operators; not whitespace or comments) a
/// statement may have.
///
/// The parser bounds nesting (parentheses, subqueries) but builds left-deep trees for flat
/// chains (`1+1+1+…`, `… UNION ALL …`) without limit, and walking, rendering or even dropping
/// such a tree recurses once per link: a few hundred kilobytes of SQL would overflow a 2 MiB
/// thread stack and abort the process. Bounding the tokens bounds those chains (about 10,000
/// links at worst) far below that, while leaving room for any query a person or an LLM
/// writes, long IN lists included.
pub const MAX_TOKENS: usize = 20_000;

/// How deeply parentheses, brackets, CASE expressions and type parameters (`STRUCT<…>`,
/// `ARRAY<…>`) may nest. sqlparser bounds its recursion for expressions, but not for CASE or
/// type parameters: a thousand nested `STRUCT<` overflow the stack while parsing.
pub const MAX_NESTING: usize = 64;

/// Tokenizes like the parser does (same dialect, same unescaping), so the tokens can be handed
/// to the parser afterwards and the input is only scanned once.
pub(super) fn tokenize(dialect: &dyn Dialect, sql: &str) -> Result<Vec<TokenWithSpan>, Rejection> {
    Tokenizer::new(dialect, sql)
        .with_unescape(true)
        .tokenize_with_location()
        .map_err(|e| {
            Rejection::new(
                RejectReason::Unparseable,
                format!("the SQL could not be tokenized: {e}"),
            )
        })
}

/// Refuses what the tokens alone decide: nothing but comments, too many tokens or too deep a
/// nesting, a statement that cannot be a query by its first keyword, and a second statement
/// after a `;`. Returns the number of significant tokens.
///
/// The keyword check comes before the `;` check on purpose: scripting blocks (`BEGIN … ; END`,
/// `IF … ; END IF`) contain semicolons and deserve the reason "scripting", not "two statements".
pub(super) fn precheck(tokens: &[TokenWithSpan]) -> Result<usize, Rejection> {
    let mut significant = tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF));

    let Some(first) = significant.next() else {
        return Err(empty());
    };
    let count = 1 + significant.clone().count();
    if count > MAX_TOKENS {
        return Err(Rejection::new(
            RejectReason::Unparseable,
            format!(
                "the SQL is too long to check ({count} tokens, at most {MAX_TOKENS}): send a \
                 shorter query"
            ),
        ));
    }
    check_nesting(std::iter::once(first).chain(significant.clone()))?;
    if let Some(first) = bare_word(first) {
        let second = significant.clone().next().and_then(bare_word);
        if let Some((reason, name)) = classify_keywords(first, second) {
            return Err(not_allowed(reason, &name, false));
        }
    }

    // Anything but more semicolons after the first `;` is a second statement, whatever hides it
    // (a newline, a `--` or `/* */` comment): comments are whitespace tokens, so they are gone.
    let mut after_semicolon = std::iter::once(first)
        .chain(significant)
        .skip_while(|t| **t != Token::SemiColon);
    if after_semicolon.any(|t| *t != Token::SemiColon) {
        return Err(Rejection::new(
            RejectReason::MultipleStatements,
            "found more than one statement (text after `;`): send exactly one query",
        ));
    }
    Ok(count)
}

/// Refuses nesting deeper than [`MAX_NESTING`], counted on the tokens before anything parses.
fn check_nesting<'a>(tokens: impl Iterator<Item = &'a Token>) -> Result<(), Rejection> {
    #[derive(PartialEq)]
    enum Open {
        Paren,
        Bracket,
        Case,
        Angle,
    }
    let mut open: Vec<Open> = Vec::new();
    let mut previous: Option<&Token> = None;
    for token in tokens {
        match token {
            Token::LParen => open.push(Open::Paren),
            Token::LBracket => open.push(Open::Bracket),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                open.push(Open::Case);
            }
            Token::Lt
                if previous.and_then(bare_word).is_some_and(|w| {
                    ["STRUCT", "ARRAY", "MAP", "RANGE"]
                        .iter()
                        .any(|t| w.eq_ignore_ascii_case(t))
                }) =>
            {
                open.push(Open::Angle);
            }
            // Closers close their own kind (and whatever was left open inside it).
            Token::RParen => close(&mut open, &Open::Paren),
            Token::RBracket => close(&mut open, &Open::Bracket),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                close(&mut open, &Open::Case);
            }
            Token::Gt if open.last() == Some(&Open::Angle) => {
                open.pop();
            }
            Token::ShiftRight => {
                for _ in 0..2 {
                    if open.last() == Some(&Open::Angle) {
                        open.pop();
                    }
                }
            }
            _ => {}
        }
        if open.len() > MAX_NESTING {
            return Err(Rejection::new(
                RejectReason::TooComplex,
                format!(
                    "the statement is too complex to run safely: parentheses, CASE expressions \
                     or types nest more than {MAX_NESTING} levels deep"
                ),
            ));
        }
        previous = Some(token);
    }
    Ok(())
}

fn close<T: PartialEq>(open: &mut Vec<T>, kind: &T) {
    if let Some(at) = open.iter().rposition(|o| o == kind) {
        open.truncate(at);
    }
}

/// The rejection for input with no statement in it.
pub(super) fn empty() -> Rejection {
    Rejection::new(
        RejectReason::Empty,
        "the SQL is empty (only whitespace or comments): send one SELECT query",
    )
}

/// The rejection for a parsed statement that is not a query; `nested` when it sits inside a
/// query (a data-modifying CTE such as `WITH x AS (DELETE … RETURNING *)`).
pub(super) fn reject(statement: &Statement, nested: bool) -> Rejection {
    let reason = classify(statement);
    // The statement's own rendering starts with its keywords, which name it better than the
    // AST variant would (`REPLACE INTO` is an `Insert`, `EXECUTE IMMEDIATE` an `Execute`).
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    let name = match words.next() {
        Some(first) => statement_name(first, words.next()),
        None => "this".to_owned(),
    };
    not_allowed(reason, &name, nested)
}

fn not_allowed(reason: RejectReason, name: &str, nested: bool) -> Rejection {
    let message = if nested {
        format!(
            "{name} statements are not allowed, not even inside a query: bqai only runs \
             read-only queries"
        )
    } else {
        format!("{name} statements are not allowed: bqai only runs read-only queries")
    };
    Rejection::new(reason, message)
}

/// An unquoted word token (a quoted identifier is never a statement keyword).
fn bare_word(token: &Token) -> Option<&str> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(&w.value),
        _ => None,
    }
}

/// The statement's name for messages: its first keyword, plus the second where the pair is
/// the name (`EXECUTE IMMEDIATE`, `LOAD DATA`, `EXPORT DATA`, `START TRANSACTION`).
fn statement_name(first: &str, second: Option<&str>) -> String {
    let first = first.to_ascii_uppercase();
    let pair = matches!(
        (
            first.as_str(),
            second.map(str::to_ascii_uppercase).as_deref()
        ),
        ("EXECUTE", Some("IMMEDIATE"))
            | ("LOAD", Some("DATA"))
            | ("EXPORT", Some("DATA"))
            | ("START", Some("TRANSACTION"))
            | ("CREATE", Some("EXTERNAL"))
    );
    match (pair, second) {
        (true, Some(second)) => format!("{first} {}", second.to_ascii_uppercase()),
        _ => first,
    }
}

/// Classifies a statement from its leading keywords. `None` means "let the parser decide":
/// no query starts with any of these words, so this never refuses a query.
fn classify_keywords(first: &str, second: Option<&str>) -> Option<(RejectReason, String)> {
    use RejectReason::*;
    let upper = first.to_ascii_uppercase();
    let reason = match upper.as_str() {
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME" | "GRANT" | "REVOKE" | "DENY"
        | "COMMENT" | "UNDROP" | "MSCK" => Ddl,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "UPSERT" => Dml,
        "MERGE" => Merge,
        "DECLARE" | "SET" | "BEGIN" | "END" | "START" | "COMMIT" | "ROLLBACK" | "ABORT"
        | "SAVEPOINT" | "RELEASE" | "CALL" | "EXECUTE" | "EXEC" | "PREPARE" | "DEALLOCATE"
        | "IF" | "CASE" | "LOOP" | "WHILE" | "REPEAT" | "FOR" | "LEAVE" | "BREAK" | "CONTINUE"
        | "ITERATE" | "RETURN" | "RAISE" | "THROW" | "RAISERROR" | "PRINT" | "WAITFOR"
        | "RESET" => Scripting,
        "EXPORT" | "UNLOAD" => Export,
        "COPY" => Copy,
        "ATTACH" | "DETACH" | "INSTALL" | "LOAD" | "IMPORT" | "PUT" | "GET" | "LIST" | "REMOVE" => {
            External
        }
        "PRAGMA" => Pragma,
        "SHOW" | "EXPLAIN" | "DESCRIBE" | "DESC" | "USE" | "VACUUM" | "ANALYZE" | "OPTIMIZE"
        | "CACHE" | "UNCACHE" | "KILL" | "LISTEN" | "UNLISTEN" | "NOTIFY" | "LOCK" | "UNLOCK"
        | "FLUSH" | "DISCARD" | "SUMMARIZE" | "ASSERT" | "CHECKPOINT" | "REFRESH" => NotAQuery,
        _ => return None,
    };
    Some((reason, statement_name(first, second)))
}

/// Classifies a parsed statement that is not a query. Anything not listed is "not a query":
/// the list only sharpens the reason, it never lets anything through.
fn classify(statement: &Statement) -> RejectReason {
    use RejectReason::*;
    match statement {
        Statement::Insert { .. } | Statement::Update { .. } | Statement::Delete { .. } => Dml,
        Statement::Merge { .. } => Merge,
        Statement::CreateView { .. }
        | Statement::CreateTable { .. }
        | Statement::CreateVirtualTable { .. }
        | Statement::CreateIndex { .. }
        | Statement::CreateRole { .. }
        | Statement::CreateSecret { .. }
        | Statement::CreateServer { .. }
        | Statement::CreatePolicy { .. }
        | Statement::CreateConnector { .. }
        | Statement::CreateOperator { .. }
        | Statement::CreateOperatorFamily { .. }
        | Statement::CreateOperatorClass { .. }
        | Statement::CreateExtension { .. }
        | Statement::CreateCollation { .. }
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction { .. }
        | Statement::CreateTrigger { .. }
        | Statement::CreateProcedure { .. }
        | Statement::CreateMacro { .. }
        | Statement::CreateStage { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateDomain { .. }
        | Statement::CreateType { .. }
        | Statement::CreateUser { .. }
        | Statement::AlterTable { .. }
        | Statement::AlterSchema { .. }
        | Statement::AlterIndex { .. }
        | Statement::AlterView { .. }
        | Statement::AlterFunction { .. }
        | Statement::AlterType { .. }
        | Statement::AlterCollation { .. }
        | Statement::AlterOperator { .. }
        | Statement::AlterOperatorFamily { .. }
        | Statement::AlterOperatorClass { .. }
        | Statement::AlterRole { .. }
        | Statement::AlterPolicy { .. }
        | Statement::AlterConnector { .. }
        | Statement::AlterSession { .. }
        | Statement::AlterUser { .. }
        | Statement::Drop { .. }
        | Statement::DropFunction { .. }
        | Statement::DropDomain { .. }
        | Statement::DropProcedure { .. }
        | Statement::DropSecret { .. }
        | Statement::DropPolicy { .. }
        | Statement::DropConnector { .. }
        | Statement::DropExtension { .. }
        | Statement::DropOperator { .. }
        | Statement::DropOperatorFamily { .. }
        | Statement::DropOperatorClass { .. }
        | Statement::DropTrigger { .. }
        | Statement::Truncate { .. }
        | Statement::RenameTable { .. }
        | Statement::Grant { .. }
        | Statement::Deny { .. }
        | Statement::Revoke { .. }
        | Statement::Comment { .. }
        | Statement::Msck { .. } => Ddl,
        Statement::Set { .. }
        | Statement::Declare { .. }
        | Statement::Case { .. }
        | Statement::If { .. }
        | Statement::While { .. }
        | Statement::Raise { .. }
        | Statement::Call { .. }
        | Statement::Open { .. }
        | Statement::Close { .. }
        | Statement::Fetch { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Execute { .. }
        | Statement::Prepare { .. }
        | Statement::Deallocate { .. }
        | Statement::Return { .. }
        | Statement::RaisError { .. }
        | Statement::Throw { .. }
        | Statement::Print { .. }
        | Statement::WaitFor { .. }
        | Statement::Reset { .. } => Scripting,
        Statement::ExportData { .. } | Statement::Unload { .. } | Statement::Directory { .. } => {
            Export
        }
        Statement::Copy { .. } | Statement::CopyIntoSnowflake { .. } => Copy,
        Statement::Install { .. }
        | Statement::Load { .. }
        | Statement::LoadData { .. }
        | Statement::AttachDatabase { .. }
        | Statement::AttachDuckDBDatabase { .. }
        | Statement::DetachDuckDBDatabase { .. }
        | Statement::List { .. }
        | Statement::Remove { .. } => External,
        Statement::Pragma { .. } => Pragma,
        _ => NotAQuery,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{BigQueryDialect, GenericDialect};

    fn pre(sql: &str) -> Result<(), RejectReason> {
        let tokens = tokenize(&GenericDialect {}, sql).map_err(|r| r.reason)?;
        precheck(&tokens).map(|_| ()).map_err(|r| r.reason)
    }

    #[test]
    fn keywords_decide_before_the_parser() {
        assert_eq!(pre("INSTALL httpfs"), Err(RejectReason::External));
        assert_eq!(
            pre("  -- c\n load data into x"),
            Err(RejectReason::External)
        );
        assert_eq!(pre("BEGIN SELECT 1; END"), Err(RejectReason::Scripting));
        assert_eq!(
            pre("SELECT 1; SELECT 2"),
            Err(RejectReason::MultipleStatements)
        );
        assert_eq!(pre("SELECT 1 ;; "), Ok(()));
        assert_eq!(pre("/* only */ -- comments"), Err(RejectReason::Empty));
        assert_eq!(pre("SELECT 'a; b'"), Ok(()));
        // A quoted identifier is a name, not a keyword.
        assert_eq!(pre("\"delete\""), Ok(()));
    }

    #[test]
    fn names_include_the_second_keyword_where_it_matters() {
        let tokens = tokenize(&BigQueryDialect {}, "execute immediate 'x'").unwrap_or_default();
        let err = precheck(&tokens).unwrap_err();
        assert_eq!(err.reason, RejectReason::Scripting);
        assert!(
            err.message.starts_with("EXECUTE IMMEDIATE statements"),
            "{}",
            err.message
        );
    }
}
