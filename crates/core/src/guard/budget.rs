//! A bound on the parser's work, so a short statement cannot keep a thread busy for hours.
//!
//! sqlparser 0.62 parses some inputs in exponential time: where an expression head can be read
//! two ways (a reserved word such as `CASE`, `CAST` or `NOT` as an expression or as a name), it
//! tries one reading, and when that fails deep inside, tries the other — which walks the rest
//! of the statement again, at every level. `SELECT case - case - … - c` (20 links, 140 bytes)
//! takes seconds; 30 nested `CAST(` around a syntax error take hours. (Later sqlparser
//! releases cache these failures; DataFusion 55 pins 0.62, and the guard must parse with the
//! same version the embedded engine does.)
//!
//! [`Budgeted`] wraps the dialect and counts the parser's calls into the dialect's expression
//! hooks (every expression head and every operator the parser looks at goes through one).
//! Linear parsing makes a few calls per token; once the budget is spent every hook fails at
//! once, so the remaining speculation unwinds in linear time, and the statement is refused as
//! too complex. Behaviour is otherwise the wrapped dialect's own: the wrapper forwards every
//! method `GenericDialect` and `BigQueryDialect` override (generated into `budget_dialect.rs`
//! by `scripts/gen-dialect-wrapper.py`, which CI runs in check mode) and reports the wrapped
//! dialect's type, which sqlparser's dialect checks use.

use std::cell::Cell;

use sqlparser::dialect::Dialect;
use sqlparser::parser::ParserError;

use super::{RejectReason, Rejection};

/// Hook calls allowed per significant token. A linear parse makes well under ten (a prefix
/// and a precedence look-up per operand, a few more for speculative heads that succeed).
const STEPS_PER_TOKEN: usize = 32;
/// Allowance on top, for short statements.
const BASE_STEPS: usize = 4_096;

/// A dialect that behaves like `inner` until the parse has used up its budget.
#[derive(Debug)]
pub(super) struct Budgeted {
    pub(super) inner: &'static dyn Dialect,
    left: Cell<usize>,
    exhausted: Cell<bool>,
}

impl Budgeted {
    /// A budget for a statement of `tokens` significant tokens.
    pub(super) fn new(inner: &'static dyn Dialect, tokens: usize) -> Self {
        Self {
            inner,
            left: Cell::new(BASE_STEPS.saturating_add(tokens.saturating_mul(STEPS_PER_TOKEN))),
            exhausted: Cell::new(false),
        }
    }

    /// Takes one step; the error to fail the hook with once there are none left.
    pub(super) fn spend(&self) -> Option<ParserError> {
        match self.left.get() {
            0 => {
                self.exhausted.set(true);
                Some(ParserError::ParserError(
                    "the statement takes too long to parse".into(),
                ))
            }
            n => {
                self.left.set(n - 1);
                None
            }
        }
    }

    /// Whether the parse ran out of budget (its error is then the budget's, not the SQL's).
    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// The rejection for a statement whose parse ran out of budget.
pub(super) fn too_complex() -> Rejection {
    Rejection::new(
        RejectReason::TooComplex,
        "the statement is too complex to run safely: it takes too long to parse (deeply \
         chained CASE, CAST or NOT expressions)",
    )
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::{BigQueryDialect, GenericDialect};
    use sqlparser::parser::Parser;

    use super::*;

    /// Within its budget the wrapper parses exactly like the dialect it wraps (the guard must
    /// read a statement as the engine will), dialect-specific syntax included.
    #[test]
    fn parses_like_the_wrapped_dialect() {
        let bigquery: &'static dyn Dialect = &BigQueryDialect {};
        let generic: &'static dyn Dialect = &GenericDialect {};
        let cases: &[(&'static dyn Dialect, &str)] = &[
            (
                bigquery,
                "SELECT * FROM `p.shop.orders` WHERE a = @x # comment",
            ),
            (
                bigquery,
                "SELECT STRUCT<a INT64>(1) AS s, [1, 2][OFFSET(0)] AS f, b'x' AS b, r'\\d' AS r",
            ),
            (
                bigquery,
                "SELECT * EXCEPT (a) REPLACE (b AS c) FROM shop.t QUALIFY ROW_NUMBER() OVER w = 1 WINDOW w AS (PARTITION BY x)",
            ),
            (
                bigquery,
                "SELECT \"double quoted is a string\", '''triple''' FROM shop.t, UNNEST(t.items) AS i",
            ),
            (
                bigquery,
                "SELECT DATE_TRUNC(d, MONTH), INTERVAL 1 DAY, SAFE_CAST(x AS INT64) FROM my-project.shop.t",
            ),
            (
                generic,
                "SELECT \"Quoted\" FROM shop.t WHERE x::BIGINT > $1 AND y ILIKE 'a%'",
            ),
            (
                generic,
                "SELECT CASE WHEN a THEN 1 ELSE 2 END, COUNT(*) FILTER (WHERE b) FROM shop.t GROUP BY ALL",
            ),
            (
                generic,
                "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT * FROM r LIMIT 5, 10",
            ),
            (generic, "SELECT E'a\\nb', a -> 'k', {'x': 1} FROM shop.t"),
        ];
        for (dialect, sql) in cases {
            let plain = Parser::parse_sql(*dialect, sql);
            let budgeted = Budgeted::new(*dialect, 1_000);
            let wrapped = Parser::parse_sql(&budgeted, sql);
            assert_eq!(
                plain.as_ref().map_err(ToString::to_string),
                wrapped.as_ref().map_err(ToString::to_string),
                "{sql}"
            );
            assert!(plain.is_ok(), "{sql}: {plain:?}");
            assert!(!budgeted.exhausted());
        }
    }

    #[test]
    fn a_spent_budget_fails_every_hook() {
        let b = Budgeted::new(&GenericDialect {}, 0);
        let steps = (0..=BASE_STEPS).take_while(|_| b.spend().is_none()).count();
        assert_eq!(steps, BASE_STEPS);
        assert!(b.exhausted());
        assert!(b.spend().is_some());
    }
}
