//! The row cap: the outermost query always ends with `LIMIT n`, `n` at most `max_rows`.
//!
//! Only the outermost query is touched. A LIMIT inside a subquery or CTE shapes the result and
//! is the query's own business; the outer LIMIT bounds what leaves the warehouse. On a set
//! operation (`SELECT … UNION ALL SELECT …`) sqlparser puts the trailing LIMIT on the query
//! around it, which is exactly what bounds the whole result.

use sqlparser::ast::{Expr, LimitClause, Offset, OffsetRows, Query, Value};

use super::{RejectReason, Rejection};

/// The LIMIT now on the query, and the caller's own literal if there was one.
pub(super) struct RowCap {
    pub limit: u64,
    pub user_limit: Option<u64>,
}

/// Sets the outermost LIMIT: added when absent (or `LIMIT ALL`/`LIMIT NULL`), lowered to
/// `max_rows` when larger, kept when smaller. OFFSET is kept. A LIMIT that is not a
/// non-negative integer literal is refused, since the cap could not be proven.
pub(super) fn enforce(query: &mut Query, max_rows: u64) -> Result<RowCap, Rejection> {
    if query.fetch.is_some() {
        return Err(invalid(
            "FETCH FIRST … ROWS is not supported on the outermost query: use LIMIT n".to_owned(),
        ));
    }
    let (limit, offset) = match query.limit_clause.take() {
        None => (None, None),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                // `LIMIT n BY x` limits rows per group, not in total.
                return Err(invalid(
                    "LIMIT … BY is not supported on the outermost query: use LIMIT n".to_owned(),
                ));
            }
            (limit, offset)
        }
        // MySQL's `LIMIT offset, count`: rewritten to the form every engine reads.
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => (
            Some(limit),
            Some(Offset {
                value: offset,
                rows: OffsetRows::None,
            }),
        ),
    };

    let user_limit = match &limit {
        None => None,
        Some(Expr::Value(v)) if v.value == Value::Null => None,
        Some(expr) => Some(literal(expr)?),
    };
    let effective = user_limit.map_or(max_rows, |n| n.min(max_rows));
    query.limit_clause = Some(LimitClause::LimitOffset {
        limit: Some(Expr::value(Value::Number(effective.to_string(), false))),
        offset,
        limit_by: Vec::new(),
    });
    Ok(RowCap {
        limit: effective,
        user_limit,
    })
}

/// A LIMIT's value when it is a plain non-negative integer literal. Digits too many for a
/// `u64` still are one (and are far above any cap), so they saturate.
fn literal(expr: &Expr) -> Result<u64, Rejection> {
    if let Expr::Value(v) = expr
        && let Value::Number(text, false) = &v.value
    {
        let text = text.to_string();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(text.parse().unwrap_or(u64::MAX));
        }
    }
    Err(invalid(format!(
        "LIMIT must be a non-negative integer literal, found `{expr}`"
    )))
}

fn invalid(message: String) -> Rejection {
    Rejection::new(RejectReason::InvalidLimit, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Statement;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn cap(sql: &str) -> Result<(String, u64, Option<u64>), RejectReason> {
        let mut statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap_or_default();
        let Some(Statement::Query(mut query)) = statements.pop() else {
            panic!("not a query: {sql}");
        };
        let cap = enforce(&mut query, 100).map_err(|r| r.reason)?;
        Ok((query.to_string(), cap.limit, cap.user_limit))
    }

    #[test]
    fn caps_the_outermost_query() {
        assert_eq!(
            cap("SELECT 1"),
            Ok(("SELECT 1 LIMIT 100".into(), 100, None))
        );
        assert_eq!(
            cap("SELECT 1 LIMIT 7"),
            Ok(("SELECT 1 LIMIT 7".into(), 7, Some(7)))
        );
        assert_eq!(
            cap("SELECT 1 LIMIT 0"),
            Ok(("SELECT 1 LIMIT 0".into(), 0, Some(0)))
        );
        assert_eq!(
            cap("SELECT 1 LIMIT 99999999999999999999999"),
            Ok(("SELECT 1 LIMIT 100".into(), 100, Some(u64::MAX)))
        );
        assert_eq!(
            cap("SELECT 1 LIMIT NULL"),
            Ok(("SELECT 1 LIMIT 100".into(), 100, None))
        );
        assert_eq!(
            cap("SELECT 1 LIMIT 5, 10"),
            Ok(("SELECT 1 LIMIT 10 OFFSET 5".into(), 10, Some(10)))
        );
        assert_eq!(
            cap("SELECT 1 OFFSET 3"),
            Ok(("SELECT 1 LIMIT 100 OFFSET 3".into(), 100, None))
        );
    }

    #[test]
    fn refuses_what_it_cannot_bound() {
        for sql in [
            "SELECT 1 LIMIT -1",
            "SELECT 1 LIMIT 1.5",
            "SELECT 1 LIMIT 1 + 1",
            "SELECT 1 LIMIT '10'",
            "SELECT 1 LIMIT (SELECT 5)",
            "SELECT 1 FETCH FIRST 5 ROWS ONLY",
        ] {
            assert_eq!(cap(sql), Err(RejectReason::InvalidLimit), "{sql}");
        }
    }
}
