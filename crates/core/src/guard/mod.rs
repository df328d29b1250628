//! The SQL guard: decides whether a statement may reach the warehouse, and rewrites it so it
//! cannot return more rows than allowed.
//!
//! It parses with `sqlparser` in the warehouse's dialect and accepts exactly one read-only
//! query statement (SELECT, WITH … SELECT, set operations of those). Everything else is
//! rejected with a precise [`RejectReason`]. Every referenced table is resolved (qualified or
//! not, against the default dataset; CTE names are not tables) and checked against the
//! allowed datasets. The guard is pure: no IO, no clock, no randomness.
//!
//! The work is split by concern:
//! - `statement` refuses everything that is not a single query, from the tokens (so the reason
//!   is precise even when the parser fails) and from the parsed statement;
//! - `walk` visits the query tree once: CTE scoping, table resolution and rewriting, forbidden
//!   table factors and functions, side-effect clauses;
//! - `names` holds the name rules (forbidden functions, file paths, system schemas) and turns
//!   a table name into a [`TableRef`];
//! - `limit` enforces the row cap on the outermost query;
//! - `render` turns the accepted tree back into text the warehouse reads exactly as the guard
//!   did, and proves it by parsing that text again.
//!
//! Statements are also bounded in size and shape (tokens, expression depth and count, set
//! operations, tables): engines plan them recursively, and a short but deep statement would
//! otherwise exhaust a thread's stack in the warehouse.

mod budget;
mod budget_dialect;
mod limit;
mod names;
mod render;
mod statement;
mod walk;

pub use statement::{MAX_NESTING, MAX_TOKENS};
pub use walk::{MAX_EXPRESSION_DEPTH, MAX_EXPRESSIONS, MAX_SET_OPERATIONS, MAX_TABLES};

use serde::Serialize;
use sqlparser::ast::Statement;
use sqlparser::dialect::{BigQueryDialect, Dialect, GenericDialect};
use sqlparser::parser::Parser;

use crate::model::{DatasetScope, SqlDialect, TableRef};
pub use crate::params::Placeholders;

/// What the guard needs to know about the request and the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardPolicy {
    /// Dialect to parse with.
    pub dialect: SqlDialect,
    /// The warehouse's own project (BigQuery) or catalog (DataFusion). A table qualified with
    /// it is treated as unqualified by project; any other project needs an explicit
    /// `project.dataset` grant.
    pub home_project: Option<String>,
    /// Datasets the caller may read.
    pub allowed: DatasetScope,
    /// Dataset unqualified table names resolve against.
    pub default_dataset: Option<String>,
    /// Row cap: the outermost query gets `LIMIT max_rows` (or keeps a smaller literal LIMIT).
    pub max_rows: u64,
}

/// A statement the guard accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedSql {
    /// The statement to run, re-rendered from the parsed tree with the LIMIT enforced. It
    /// parses back into exactly the tree the guard checked.
    pub sql: String,
    /// Every table the statement reads, resolved, sorted and de-duplicated.
    pub referenced_tables: Vec<TableRef>,
    /// The LIMIT now on the outermost query.
    pub limit: u64,
    /// The caller's own literal LIMIT on the outermost query, if any.
    pub user_limit: Option<u64>,
    /// The statement's parameter placeholders (`@name`, `?`, `$1`, `$name`), for the query
    /// service to match against the request's parameters.
    pub placeholders: Placeholders,
}

/// Why a statement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    /// Nothing but whitespace and comments.
    Empty,
    /// The statement does not parse in the warehouse's dialect.
    Unparseable,
    /// More than one statement.
    MultipleStatements,
    /// CREATE, ALTER, DROP, TRUNCATE, RENAME, GRANT/REVOKE and other schema changes.
    Ddl,
    /// INSERT, UPDATE, DELETE, REPLACE, UPSERT.
    Dml,
    /// MERGE.
    Merge,
    /// DECLARE, SET, BEGIN/END blocks, transactions, CALL, EXECUTE IMMEDIATE, IF/LOOP, ….
    Scripting,
    /// EXPORT DATA / EXPORT.
    Export,
    /// COPY (to or from files).
    Copy,
    /// ATTACH, DETACH, INSTALL, LOAD, LOAD DATA and other ways to reach other systems.
    External,
    /// PRAGMA.
    Pragma,
    /// Any other statement that is not a query (SHOW, EXPLAIN ANALYZE, USE, VACUUM, …).
    NotAQuery,
    /// A table-valued function in FROM (read_csv(...), EXTERNAL_QUERY(...), ...) or a
    /// forbidden function anywhere (file readers, external queries).
    ForbiddenFunction,
    /// SELECT … INTO, FOR UPDATE/SHARE and other clauses with side effects.
    SideEffect,
    /// A table name that is a file path or URL, or a system/metadata schema
    /// (INFORMATION_SCHEMA, pg_catalog, region-qualified views).
    ForbiddenTable,
    /// An unqualified table name with no default dataset to resolve it against.
    UnqualifiedTable,
    /// A table in a dataset outside the allowed ones.
    DatasetNotAllowed,
    /// A LIMIT that is not a non-negative integer literal.
    InvalidLimit,
    /// Text the guard and the warehouse could read differently (an escape sequence, a quote
    /// or backslash the engines lex apart), or a statement that does not survive being
    /// written back as exactly what was checked.
    Ambiguous,
    /// Nested too deeply or too large to plan safely (expression depth, expressions, set
    /// operations, tables).
    TooComplex,
}

impl RejectReason {
    /// Every reason, in declaration order (for counters kept per reason).
    pub const ALL: [RejectReason; 20] = [
        RejectReason::Empty,
        RejectReason::Unparseable,
        RejectReason::MultipleStatements,
        RejectReason::Ddl,
        RejectReason::Dml,
        RejectReason::Merge,
        RejectReason::Scripting,
        RejectReason::Export,
        RejectReason::Copy,
        RejectReason::External,
        RejectReason::Pragma,
        RejectReason::NotAQuery,
        RejectReason::ForbiddenFunction,
        RejectReason::SideEffect,
        RejectReason::ForbiddenTable,
        RejectReason::UnqualifiedTable,
        RejectReason::DatasetNotAllowed,
        RejectReason::InvalidLimit,
        RejectReason::Ambiguous,
        RejectReason::TooComplex,
    ];

    /// The reason as serialized (`DML`, `DATASET_NOT_ALLOWED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Empty => "EMPTY",
            RejectReason::Unparseable => "UNPARSEABLE",
            RejectReason::MultipleStatements => "MULTIPLE_STATEMENTS",
            RejectReason::Ddl => "DDL",
            RejectReason::Dml => "DML",
            RejectReason::Merge => "MERGE",
            RejectReason::Scripting => "SCRIPTING",
            RejectReason::Export => "EXPORT",
            RejectReason::Copy => "COPY",
            RejectReason::External => "EXTERNAL",
            RejectReason::Pragma => "PRAGMA",
            RejectReason::NotAQuery => "NOT_A_QUERY",
            RejectReason::ForbiddenFunction => "FORBIDDEN_FUNCTION",
            RejectReason::SideEffect => "SIDE_EFFECT",
            RejectReason::ForbiddenTable => "FORBIDDEN_TABLE",
            RejectReason::UnqualifiedTable => "UNQUALIFIED_TABLE",
            RejectReason::DatasetNotAllowed => "DATASET_NOT_ALLOWED",
            RejectReason::InvalidLimit => "INVALID_LIMIT",
            RejectReason::Ambiguous => "AMBIGUOUS",
            RejectReason::TooComplex => "TOO_COMPLEX",
        }
    }
}

/// A refusal, with a message precise enough for a person (or an LLM) to fix the statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The category.
    pub reason: RejectReason,
    /// What exactly was refused and why.
    pub message: String,
}

impl Rejection {
    /// A rejection with a message.
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Checks one untrusted statement against the policy and returns it rewritten for execution:
/// unqualified tables qualified with the default dataset and the row cap applied.
///
/// Accepts exactly one read-only query (SELECT, VALUES, WITH … SELECT, set operations of
/// those, subqueries anywhere); everything else is a [`Rejection`] whose message names what was
/// found. The returned SQL re-parses in the same dialect.
pub fn check(sql: &str, policy: &GuardPolicy) -> Result<GuardedSql, Rejection> {
    let dialect = dialect_of(policy.dialect);

    // Tokens first: they give precise reasons for statements the parser may not know in this
    // dialect (EXPORT DATA, INSTALL …) and expose a second statement before parsing.
    if sql.contains('\0') {
        return Err(Rejection::new(
            RejectReason::Unparseable,
            "the SQL contains a NUL character",
        ));
    }
    let tokens = statement::tokenize(dialect, sql)?;
    let significant = statement::precheck(&tokens)?;
    if policy.dialect == SqlDialect::BigQuery {
        render::check_bigquery_lexing(dialect, sql, &tokens)?;
    }

    let budgeted = budget::Budgeted::new(dialect, significant);
    let parsed = Parser::new(&budgeted)
        .with_tokens_with_locations(tokens)
        .parse_statements();
    let mut statements = parsed.map_err(|e| {
        if budgeted.exhausted() {
            budget::too_complex()
        } else {
            Rejection::new(
                RejectReason::Unparseable,
                format!(
                    "the SQL does not parse as {} SQL: {e}",
                    dialect_name(policy.dialect)
                ),
            )
        }
    })?;
    let statement = match statements.len() {
        0 => return Err(statement::empty()),
        1 => statements.remove(0),
        n => {
            return Err(Rejection::new(
                RejectReason::MultipleStatements,
                format!("found {n} statements: send exactly one query"),
            ));
        }
    };
    let Statement::Query(mut query) = statement else {
        return Err(statement::reject(&statement, false));
    };

    let (referenced_tables, placeholders) = walk::check_query(&mut query, policy)?;
    let cap = limit::enforce(&mut query, policy.max_rows)?;
    let sql = render::render(&mut query, policy.dialect, dialect, significant)?;

    Ok(GuardedSql {
        sql,
        referenced_tables,
        limit: cap.limit,
        user_limit: cap.user_limit,
        placeholders,
    })
}

/// Parses `sql` under the guard's bounds — tokens, bracket nesting and the parser's step
/// budget — without judging it: for code that reads SQL the guard may not have accepted (the
/// analytics shape of any submitted text). `None` when it does not parse or is past a bound:
/// sqlparser on its own takes exponential time on some short inputs.
pub(crate) fn parse_bounded(sql: &str, dialect: SqlDialect) -> Option<Vec<Statement>> {
    if sql.contains('\0') {
        return None;
    }
    let dialect = dialect_of(dialect);
    let tokens = statement::tokenize(dialect, sql).ok()?;
    let significant = statement::precheck(&tokens).ok()?;
    let budgeted = budget::Budgeted::new(dialect, significant);
    Parser::new(&budgeted)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .ok()
}

/// Re-checks tables reported by the warehouse's dry run (views expanded) against the policy:
/// the same system-schema, file-path and dataset rules as [`check`], applied to resolved
/// references. The first offending table is reported.
pub fn check_tables(tables: &[TableRef], policy: &GuardPolicy) -> Result<(), Rejection> {
    tables
        .iter()
        .try_for_each(|table| names::check_resolved(table, policy).map(|_| ()))
}

/// The sqlparser dialect a warehouse is parsed with. DataFusion parses with the generic
/// dialect, so the guard does too: both must agree on what the statement means.
fn dialect_of(dialect: SqlDialect) -> &'static dyn Dialect {
    match dialect {
        SqlDialect::BigQuery => &BigQueryDialect {},
        SqlDialect::DataFusion => &GenericDialect {},
    }
}

fn dialect_name(dialect: SqlDialect) -> &'static str {
    match dialect {
        SqlDialect::BigQuery => "BigQuery",
        SqlDialect::DataFusion => "DataFusion",
    }
}
