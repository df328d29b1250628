//! The single walk over a parsed query: CTE scoping, table resolution and rewriting, and the
//! refusal of table functions, forbidden functions, nested statements and side-effect clauses.
//!
//! It is a sqlparser [`VisitorMut`], so every node of the tree is reached — subqueries in any
//! clause, CTE bodies, set-operation arms, nested joins — without a hand-written traversal that
//! could miss a new AST variant. Table factors are deny-by-default: only the kinds listed in
//! [`Walker::pre_visit_table_factor`] pass.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor,
    VisitMut, VisitorMut,
};

use super::{GuardPolicy, RejectReason, Rejection, names, statement};
use crate::model::{SqlDialect, TableRef};
use crate::params::Placeholders;

/// How deeply expressions may nest (`1 + 1 + …` and `a OR b OR …` nest one level per term,
/// `x::INT::INT…` one per cast). Engines plan expressions recursively; a few hundred levels
/// of a 2 KB statement were enough to overflow a planning thread's stack.
pub const MAX_EXPRESSION_DEPTH: usize = 128;
/// How many expression nodes a statement may have (long IN lists count one per item).
pub const MAX_EXPRESSIONS: usize = 10_000;
/// How many set operations (UNION, INTERSECT, EXCEPT) a statement may chain.
pub const MAX_SET_OPERATIONS: usize = 100;
/// How many tables, subqueries and other FROM items a statement may read: join planning
/// grows much faster than the number of joined tables.
pub const MAX_TABLES: usize = 64;

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Walks `query`, rewriting unqualified table names in place, and returns the tables it reads,
/// sorted and de-duplicated.
/// Also collects the statement's parameter placeholders (`@name`, `?`, `$1`, `$name`).
pub(super) fn check_query(
    query: &mut Query,
    policy: &GuardPolicy,
) -> Result<(Vec<TableRef>, Placeholders), Rejection> {
    let mut walker = Walker {
        policy,
        scopes: Vec::new(),
        tables: BTreeSet::new(),
        placeholders: Placeholders::default(),
        size: Size::default(),
    };
    match query.visit(&mut walker) {
        ControlFlow::Continue(()) => Ok((walker.tables.into_iter().collect(), walker.placeholders)),
        ControlFlow::Break(rejection) => Err(rejection),
    }
}

struct Walker<'a> {
    policy: &'a GuardPolicy,
    /// One entry per query being walked, innermost last: the CTE names each one defines.
    scopes: Vec<Scope>,
    tables: BTreeSet<TableRef>,
    placeholders: Placeholders,
    size: Size,
}

/// What the walk has counted so far, against the `MAX_*` bounds.
#[derive(Default)]
struct Size {
    /// Expressions open on the walk's path now.
    depth: usize,
    expressions: usize,
    set_operations: usize,
    from_items: usize,
}

fn too_complex(what: String) -> ControlFlow<Rejection> {
    ControlFlow::Break(Rejection::new(
        RejectReason::TooComplex,
        format!("the statement is too complex to run safely: {what}"),
    ))
}

/// The WITH clause of a query on the walk's path.
struct Scope {
    /// CTE names, in definition order.
    ctes: Vec<Ident>,
    /// Where each CTE body lives, to recognise it when the walk enters it. The visitor does
    /// not say which field a nested query came from; its address does. Only compared, never
    /// dereferenced.
    bodies: Vec<*const Query>,
    recursive: bool,
    /// How many of `ctes` (from the start) are visible now. In the query's own body: all of
    /// them. While walking CTE body `i`: the ones before it, plus itself under RECURSIVE — so
    /// a CTE that shadows a table name reads the real table inside its own body.
    visible: usize,
    /// This query is a CTE body of the enclosing scope.
    is_cte_body: bool,
}

/// How a one-part table name relates to the CTEs in scope.
enum CteMatch<'a> {
    /// It names a visible CTE: not a table.
    Cte,
    /// It matches a CTE only up to letter case, where engines disagree.
    CaseOnly(&'a Ident),
    /// It is a table.
    None,
}

impl VisitorMut for Walker<'_> {
    type Break = Rejection;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Rejection> {
        let address: *const Query = query;
        let mut is_cte_body = false;
        if let Some(parent) = self.scopes.last_mut()
            && let Some(i) = parent.bodies.iter().position(|b| std::ptr::eq(*b, address))
        {
            parent.visible = if parent.recursive { i + 1 } else { i };
            is_cte_body = true;
        }
        check_clauses(query)?;
        self.size.set_operations += set_operations(&query.body);
        if self.size.set_operations > MAX_SET_OPERATIONS {
            return too_complex(format!(
                "more than {MAX_SET_OPERATIONS} UNION/INTERSECT/EXCEPT operations; combine \
                 the parts differently (for example a wildcard table or an IN list)"
            ));
        }

        let (ctes, bodies, recursive) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|c| c.alias.name.clone())
                    .collect(),
                with.cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
                with.recursive,
            ),
            None => (Vec::new(), Vec::new(), false),
        };
        self.scopes.push(Scope {
            visible: ctes.len(),
            ctes,
            bodies,
            recursive,
            is_cte_body,
        });
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<Rejection> {
        let finished = self.scopes.pop();
        if finished.is_some_and(|s| s.is_cte_body)
            && let Some(parent) = self.scopes.last_mut()
        {
            parent.visible = parent.ctes.len();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Rejection> {
        if let Some(into) = &select.into {
            return ControlFlow::Break(Rejection::new(
                RejectReason::SideEffect,
                format!(
                    "SELECT … INTO writes to `{}` and is not allowed: bqai only runs read-only \
                     queries",
                    into.name
                ),
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Rejection> {
        self.size.from_items += 1;
        if self.size.from_items > MAX_TABLES {
            return too_complex(format!(
                "it reads more than {MAX_TABLES} tables or subqueries; split it into smaller \
                 queries"
            ));
        }
        match factor {
            TableFactor::Table { name, args, .. } => {
                if args.is_some() {
                    return ControlFlow::Break(table_function(name));
                }
                self.table(name)
            }
            // Their inner tables, subqueries and expressions are visited on their own.
            TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::Pivot { .. }
            | TableFactor::Unpivot { .. } => ControlFlow::Continue(()),
            TableFactor::Function { name, .. } => ControlFlow::Break(table_function(name)),
            other => {
                // JSON_TABLE, XMLTABLE, TABLE(expr), MATCH_RECOGNIZE … and whatever a later
                // sqlparser adds: named by their text up to the first parenthesis.
                let text = other.to_string();
                let shown = text.split('(').next().unwrap_or(&text).trim();
                ControlFlow::Break(Rejection::new(
                    RejectReason::ForbiddenFunction,
                    format!(
                        "`{shown}(…)` in FROM is not allowed: read from tables, subqueries, \
                         joins, UNNEST or PIVOT/UNPIVOT"
                    ),
                ))
            }
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Rejection> {
        self.size.depth += 1;
        self.size.expressions += 1;
        if self.size.depth > MAX_EXPRESSION_DEPTH {
            return too_complex(format!(
                "expressions nest more than {MAX_EXPRESSION_DEPTH} levels deep; use IN (…) \
                 instead of long OR chains, and fewer chained operators or casts"
            ));
        }
        if self.size.expressions > MAX_EXPRESSIONS {
            return too_complex(format!("it has more than {MAX_EXPRESSIONS} expressions"));
        }
        match expr {
            Expr::Function(function) => into_flow(names::check_function(&function.name)),
            Expr::Value(v) => {
                if let sqlparser::ast::Value::Placeholder(p) = &v.value {
                    self.placeholder(p);
                }
                ControlFlow::Continue(())
            }
            Expr::Identifier(ident) => {
                self.at_parameter(ident);
                ControlFlow::Continue(())
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(first) = parts.first() {
                    self.at_parameter(first);
                }
                ControlFlow::Continue(())
            }
            _ => ControlFlow::Continue(()),
        }
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<Rejection> {
        self.size.depth = self.size.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    /// Statements are only reached nested inside the query (`SetExpr::Insert` and friends,
    /// e.g. a data-modifying CTE): the top-level statement is not walked.
    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<Rejection> {
        ControlFlow::Break(statement::reject(statement, true))
    }
}

impl Walker<'_> {
    /// Records a placeholder token: `?`, `$1`, `$name`, or something else (`?1`, `:name`).
    fn placeholder(&mut self, text: &str) {
        let p = &mut self.placeholders;
        if text == "?" {
            p.question_marks += 1;
        } else if let Some(rest) = text.strip_prefix('$') {
            match rest.parse::<usize>() {
                Ok(n) if n > 0 => {
                    p.dollar_numbered.insert(n);
                }
                _ if is_name(rest) => {
                    p.dollar_named.insert(rest.to_owned());
                }
                _ => {
                    p.other.insert(text.to_owned());
                }
            }
        } else {
            p.other.insert(text.to_owned());
        }
    }

    /// Records `@name` (a BigQuery query parameter); `@@name` is a system variable, and a
    /// quoted identifier is a column, not a parameter.
    fn at_parameter(&mut self, ident: &Ident) {
        if ident.quote_style.is_some() {
            return;
        }
        if let Some(name) = ident.value.strip_prefix('@')
            && !name.starts_with('@')
        {
            if is_name(name) {
                self.placeholders.at_named.insert(name.to_owned());
            } else {
                self.placeholders.other.insert(ident.value.clone());
            }
        }
    }

    /// Handles a plain table name: a CTE reference stays as is; anything else is resolved,
    /// checked, recorded, and qualified with the default dataset when written bare.
    fn table(&mut self, name: &mut ObjectName) -> ControlFlow<Rejection> {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
            match self.cte_match(ident) {
                CteMatch::Cte => return ControlFlow::Continue(()),
                CteMatch::CaseOnly(cte) => {
                    return ControlFlow::Break(Rejection::new(
                        RejectReason::ForbiddenTable,
                        format!(
                            "`{ident}` matches the CTE `{cte}` only up to letter case: spell \
                             it exactly like the CTE, or write dataset.table for a table"
                        ),
                    ));
                }
                CteMatch::None => {}
            }
        }

        let resolved = match names::resolve(name, self.policy) {
            Ok(resolved) => resolved,
            Err(rejection) => return ControlFlow::Break(rejection),
        };
        // Make the SQL as run independent of the session's default dataset: what the guard
        // checked is then exactly what the warehouse reads.
        if resolved.unqualified
            && let Some(ObjectNamePart::Identifier(table)) = name.0.first()
        {
            let dataset =
                names::dataset_qualifier(&resolved.table.dataset, table, self.policy.dialect);
            name.0.insert(0, ObjectNamePart::Identifier(dataset));
        }
        self.tables.insert(resolved.table);
        ControlFlow::Continue(())
    }

    /// Whether a one-part name is a CTE visible here, looking outwards through the scopes.
    fn cte_match(&self, ident: &Ident) -> CteMatch<'_> {
        let mut case_only = None;
        for scope in self.scopes.iter().rev() {
            for cte in scope.ctes.iter().take(scope.visible) {
                if same_name(cte, ident, self.policy.dialect) {
                    return CteMatch::Cte;
                }
                if case_only.is_none() && cte.value.eq_ignore_ascii_case(&ident.value) {
                    case_only = Some(cte);
                }
            }
        }
        case_only.map_or(CteMatch::None, CteMatch::CaseOnly)
    }
}

/// Whether two identifiers certainly name the same CTE. Stricter than either engine on
/// purpose: a name the guard wrongly took for a CTE would be a table it never checked.
/// BigQuery: the same spelling. DataFusion lowercases unquoted names, so both the spelling and
/// the normalised form must agree (`"Orders"` and `Orders` differ there).
fn same_name(cte: &Ident, reference: &Ident, dialect: SqlDialect) -> bool {
    if cte.value != reference.value {
        return false;
    }
    match dialect {
        SqlDialect::BigQuery => true,
        SqlDialect::DataFusion => {
            let normalised = |i: &Ident| match i.quote_style {
                None => i.value.to_lowercase(),
                Some(_) => i.value.clone(),
            };
            normalised(cte) == normalised(reference)
        }
    }
}

/// Query-level clauses the guard refuses, and the shape of the query body.
fn check_clauses(query: &Query) -> ControlFlow<Rejection> {
    if let Some(lock) = query.locks.first() {
        return ControlFlow::Break(Rejection::new(
            RejectReason::SideEffect,
            format!("`{lock}` locks rows and is not allowed: bqai only runs read-only queries"),
        ));
    }
    if !query.pipe_operators.is_empty() {
        // A pipe after the LIMIT (`|> UNION ALL …`) could add rows past the row cap.
        return ControlFlow::Break(Rejection::new(
            RejectReason::NotAQuery,
            "pipe syntax (`|>`) is not supported: write the query as SELECT … FROM …",
        ));
    }
    if query.settings.is_some() || query.format_clause.is_some() || query.for_clause.is_some() {
        return ControlFlow::Break(Rejection::new(
            RejectReason::NotAQuery,
            "SETTINGS, FORMAT and FOR XML/JSON clauses are not supported: write a plain SELECT",
        ));
    }
    check_body(&query.body)
}

/// Only SELECT, VALUES, parenthesised queries and set operations of those form a query body.
fn check_body(body: &SetExpr) -> ControlFlow<Rejection> {
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Query(_) => ControlFlow::Continue(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            ControlFlow::Break(statement::reject(s, true))
        }
        SetExpr::Table(_) => ControlFlow::Break(Rejection::new(
            RejectReason::NotAQuery,
            "`TABLE name` is not supported: write SELECT * FROM dataset.table",
        )),
    }
}

/// The set operations directly in a query body (nested queries count on their own).
fn set_operations(body: &SetExpr) -> usize {
    let mut count = 0;
    let mut node = body;
    // Chains are left-deep: follow the left arm without recursion, the right arm is short.
    while let SetExpr::SetOperation { left, right, .. } = node {
        count += 1 + set_operations(right);
        node = left;
    }
    count
}

fn table_function(name: &ObjectName) -> Rejection {
    let why = if names::is_forbidden_function(name) {
        "reads files or reaches other systems"
    } else {
        "is a table-valued function"
    };
    Rejection::new(
        RejectReason::ForbiddenFunction,
        format!(
            "`{name}(…)` in FROM {why} and is not allowed: read from tables of the allowed \
             datasets"
        ),
    )
}

fn into_flow(result: Result<(), Rejection>) -> ControlFlow<Rejection> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(rejection) => ControlFlow::Break(rejection),
    }
}
