//! Table-driven tests of the SQL guard over both dialects: what it accepts (with the tables it
//! resolves and the LIMIT it leaves), what it refuses and why, and the SQL it hands on.

use bqai_core::guard::{GuardPolicy, RejectReason, check, check_tables};
use bqai_core::model::{DatasetScope, SqlDialect, TableRef};
use sqlparser::ast::Statement;
use sqlparser::dialect::{BigQueryDialect, Dialect, GenericDialect};
use sqlparser::parser::Parser;

use RejectReason::*;

/// Which dialects a row runs under.
#[derive(Clone, Copy)]
enum On {
    Bq,
    Df,
    Both,
}

enum Expect {
    /// Accepted: the referenced tables (`dataset.table` or `project.dataset.table`) and the
    /// LIMIT left on the outermost query.
    Accept(&'static [&'static str], u64),
    Reject(RejectReason),
}
use Expect::{Accept, Reject};

const SHOP: Option<&str> = Some("shop");
const SECRET: Option<&str> = Some("secret");

/// (dialects, default dataset, SQL, expected)
#[rustfmt::skip]
const CASES: &[(On, Option<&str>, &str, Expect)] = &[
    // ---- plain queries -------------------------------------------------------------------
    (On::Both, None, "SELECT 1", Accept(&[], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SeLeCt * FrOm shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders;", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders;\n-- DROP TABLE shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT 1 -- ; DROP TABLE shop.orders", Accept(&[], 1000)),
    (On::Both, None, "SELECT 'a; DROP TABLE x' AS s", Accept(&[], 1000)),
    (On::Both, None, "SELECT 'DELETE FROM shop.orders' AS s FROM shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Df, None, "VALUES (1), (2)", Accept(&[], 1000)),
    (On::Both, None, "SELECT o.id FROM shop.orders o JOIN shop.customers c ON o.customer_id = c.id WHERE c.id IN (SELECT customer_id FROM sales.leads)", Accept(&["sales.leads", "shop.customers", "shop.orders"], 1000)),
    (On::Both, None, "SELECT customer_id, COUNT(*) FROM shop.orders GROUP BY customer_id HAVING COUNT(*) > (SELECT COUNT(*) FROM sales.targets)", Accept(&["sales.targets", "shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders o WHERE EXISTS (SELECT 1 FROM shop.refunds r WHERE r.order_id = o.id)", Accept(&["shop.orders", "shop.refunds"], 1000)),
    (On::Both, None, "SELECT id FROM shop.orders UNION ALL SELECT id FROM sales.orders", Accept(&["sales.orders", "shop.orders"], 1000)),
    (On::Both, None, "(SELECT 1 AS x) UNION DISTINCT (SELECT 2 AS x)", Accept(&[], 1000)),
    (On::Both, None, "SELECT * FROM (shop.orders o JOIN shop.customers c ON o.customer_id = c.id)", Accept(&["shop.customers", "shop.orders"], 1000)),
    (On::Df, None, "SELECT * FROM shop.orders o, LATERAL (SELECT * FROM shop.items i WHERE i.order_id = o.id) AS x", Accept(&["shop.items", "shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM shop.quarterly PIVOT(SUM(amount) FOR quarter IN ('Q1', 'Q2'))", Accept(&["shop.quarterly"], 1000)),
    (On::Bq, None, "SELECT x FROM UNNEST([1, 2, 3]) AS x", Accept(&[], 1000)),
    (On::Bq, None, "SELECT o.id, item FROM shop.orders AS o, UNNEST(o.items) AS item", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM shop.orders FOR SYSTEM_TIME AS OF TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)", Accept(&["shop.orders"], 1000)),
    // ---- names: qualification, projects, BigQuery paths ----------------------------------
    (On::Both, SHOP, "SELECT * FROM orders", Accept(&["shop.orders"], 1000)),
    (On::Both, SHOP, "SELECT * FROM orders o WHERE o.amount > (SELECT AVG(amount) FROM orders)", Accept(&["shop.orders"], 1000)),
    (On::Both, SHOP, "SELECT * FROM (SELECT * FROM orders) AS t JOIN customers c ON t.customer_id = c.id", Accept(&["shop.customers", "shop.orders"], 1000)),
    (On::Both, SHOP, "SELECT * FROM sales.orders JOIN orders USING (id)", Accept(&["sales.orders", "shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM orders", Reject(UnqualifiedTable)),
    (On::Both, None, "SELECT * FROM shop.orders JOIN customers USING (id)", Reject(UnqualifiedTable)),
    (On::Both, SECRET, "SELECT * FROM orders", Reject(DatasetNotAllowed)),
    (On::Bq, None, "SELECT * FROM `my-project.shop.orders`", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM `MY-PROJECT`.shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM my-project.shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM `shop.orders`", Accept(&["shop.orders"], 1000)),
    (On::Bq, SHOP, "SELECT * FROM `orders`", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM `shop.events_*` WHERE _TABLE_SUFFIX > '2024'", Accept(&["shop.events_*"], 1000)),
    (On::Bq, None, "SELECT * FROM `other-project.shop.orders`", Reject(DatasetNotAllowed)),
    (On::Bq, None, "SELECT * FROM other-project.sales.orders", Reject(DatasetNotAllowed)),
    (On::Df, None, "SELECT * FROM datafusion.shop.orders", Accept(&["shop.orders"], 1000)),
    (On::Df, None, "SELECT * FROM other.shop.orders", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM a.b.c.d", Reject(ForbiddenTable)),
    // ---- CTEs and scoping ----------------------------------------------------------------
    (On::Both, None, "WITH orders AS (SELECT * FROM shop.orders) SELECT * FROM orders", Accept(&["shop.orders"], 1000)),
    (On::Both, SHOP, "WITH orders AS (SELECT * FROM orders WHERE amount > 0) SELECT * FROM orders", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "WITH orders AS (SELECT * FROM secret.orders) SELECT * FROM orders", Reject(DatasetNotAllowed)),
    (On::Both, SECRET, "WITH orders AS (SELECT * FROM orders) SELECT * FROM orders", Reject(DatasetNotAllowed)),
    (On::Both, None, "WITH a AS (SELECT * FROM shop.orders), b AS (SELECT * FROM a) SELECT * FROM b JOIN sales.targets t ON TRUE", Accept(&["sales.targets", "shop.orders"], 1000)),
    (On::Both, SECRET, "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a", Reject(DatasetNotAllowed)),
    (On::Both, SHOP, "SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT * FROM x) AS sub, x", Accept(&["shop.x"], 1000)),
    (On::Both, SECRET, "SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT * FROM x) AS sub, x", Reject(DatasetNotAllowed)),
    (On::Both, SECRET, "WITH x AS (SELECT 1 AS a) SELECT * FROM shop.orders WHERE id IN (SELECT a FROM x)", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "WITH a AS (SELECT 1 AS n) SELECT * FROM a, (WITH b AS (SELECT * FROM secret.x) SELECT * FROM b) AS t", Reject(DatasetNotAllowed)),
    (On::Both, None, "WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT n FROM t", Accept(&[], 1000)),
    (On::Bq, None, "WITH Orders AS (SELECT 1 AS x) SELECT * FROM orders", Reject(ForbiddenTable)),
    (On::Df, SECRET, "WITH \"Orders\" AS (SELECT 1 AS x) SELECT * FROM Orders", Reject(ForbiddenTable)),
    // ---- forbidden datasets at any depth ---------------------------------------------------
    (On::Both, None, "SELECT * FROM secret.users", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM shop.orders WHERE customer_id IN (SELECT id FROM secret.customers)", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT id, (SELECT MAX(x) FROM secret.t) AS m FROM shop.orders", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT customer_id FROM shop.orders GROUP BY customer_id HAVING COUNT(*) > (SELECT COUNT(*) FROM secret.t)", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM shop.orders o JOIN secret.customers c ON o.customer_id = c.id", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT id FROM shop.orders UNION ALL SELECT id FROM secret.orders", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM (SELECT * FROM secret.orders) AS t", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM (shop.orders o JOIN secret.c c ON TRUE)", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT * FROM shop.orders WHERE EXISTS (SELECT 1 FROM (SELECT * FROM secret.t) AS d)", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT COALESCE((SELECT MAX(id) FROM secret.t), 0) AS m", Reject(DatasetNotAllowed)),
    (On::Both, None, "SELECT CASE WHEN EXISTS (SELECT 1 FROM secret.t) THEN 1 END AS c", Reject(DatasetNotAllowed)),
    (On::Both, None, "WITH a AS (SELECT 1 AS x UNION ALL SELECT x FROM secret.t) SELECT * FROM a", Reject(DatasetNotAllowed)),
    (On::Bq, None, "SELECT ARRAY(SELECT x FROM secret.t) AS a", Reject(DatasetNotAllowed)),
    (On::Bq, None, "SELECT * FROM UNNEST((SELECT ARRAY_AGG(x) FROM secret.t)) AS v", Reject(DatasetNotAllowed)),
    (On::Both, SHOP, "SELECT * FROM shop.orders, information_schema", Reject(ForbiddenTable)),
    // ---- files, functions, system views --------------------------------------------------
    (On::Both, None, "SELECT * FROM read_csv('/etc/passwd')", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT * FROM shop.orders o JOIN read_csv('/etc/passwd') p ON TRUE", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT (SELECT COUNT(*) FROM read_parquet('s3://bucket/x.parquet')) AS n", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT * FROM shop.orders WHERE id IN (SELECT READ_JSON('/tmp/x.json'))", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT pg_read_file('/etc/passwd')", Reject(ForbiddenFunction)),
    (On::Bq, None, "SELECT * FROM EXTERNAL_QUERY('us.conn', 'SELECT * FROM users')", Reject(ForbiddenFunction)),
    (On::Bq, None, "SELECT external_query('us.conn', 'SELECT 1') AS x", Reject(ForbiddenFunction)),
    (On::Bq, None, "SELECT AI.GENERATE('hello') AS x", Reject(ForbiddenFunction)),
    (On::Df, None, "SELECT * FROM generate_series(1, 10)", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT * FROM shop.my_table_function(1)", Reject(ForbiddenFunction)),
    (On::Both, None, "SELECT * FROM '/etc/passwd'", Reject(ForbiddenTable)),
    (On::Both, None, "SELECT * FROM 'data/orders.csv'", Reject(ForbiddenTable)),
    (On::Df, None, "SELECT * FROM \"/etc/passwd\"", Reject(ForbiddenTable)),
    (On::Df, None, "SELECT * FROM shop.\"orders.parquet\"", Reject(ForbiddenTable)),
    (On::Bq, None, "SELECT * FROM `gs://bucket/orders.csv`", Reject(ForbiddenTable)),
    (On::Both, None, "SELECT * FROM INFORMATION_SCHEMA.TABLES", Reject(ForbiddenTable)),
    (On::Both, None, "SELECT * FROM shop.information_schema.columns", Reject(ForbiddenTable)),
    (On::Bq, None, "SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS", Reject(ForbiddenTable)),
    (On::Bq, None, "SELECT * FROM region-us.INFORMATION_SCHEMA.JOBS", Reject(ForbiddenTable)),
    (On::Bq, None, "SELECT * FROM `region-us.INFORMATION_SCHEMA.JOBS`", Reject(ForbiddenTable)),
    (On::Bq, None, "SELECT * FROM shop.__TABLES__", Reject(ForbiddenTable)),
    (On::Df, None, "SELECT * FROM pg_catalog.pg_tables", Reject(ForbiddenTable)),
    // ---- side effects and nested statements ----------------------------------------------
    (On::Both, None, "SELECT * INTO shop.copy FROM shop.orders", Reject(SideEffect)),
    (On::Both, None, "SELECT * FROM shop.orders FOR UPDATE", Reject(SideEffect)),
    (On::Both, None, "WITH x AS (DELETE FROM shop.orders RETURNING *) SELECT * FROM x", Reject(Dml)),
    (On::Both, None, "WITH x AS (SELECT 1) DELETE FROM shop.orders", Reject(Dml)),
    (On::Both, None, "WITH x AS (SELECT 1 AS a) INSERT INTO shop.t SELECT * FROM x", Reject(Dml)),
    (On::Df, None, "WITH x AS (INSERT INTO shop.orders VALUES (1) RETURNING *) SELECT * FROM x", Reject(Dml)),
    (On::Df, None, "WITH x AS (UPDATE shop.orders SET a = 1 RETURNING *) SELECT * FROM x", Reject(Dml)),
    // ---- statements that are not queries -------------------------------------------------
    (On::Both, None, "DROP TABLE shop.orders", Reject(Ddl)),
    (On::Both, None, "CREATE TABLE shop.copy AS SELECT * FROM shop.orders", Reject(Ddl)),
    (On::Bq, None, "CREATE OR REPLACE EXTERNAL TABLE shop.ext OPTIONS (format = 'CSV', uris = ['gs://b/x.csv'])", Reject(Ddl)),
    (On::Both, None, "ALTER TABLE shop.orders ADD COLUMN note STRING", Reject(Ddl)),
    (On::Both, None, "TRUNCATE TABLE shop.orders", Reject(Ddl)),
    (On::Both, None, "GRANT SELECT ON shop.orders TO bob", Reject(Ddl)),
    (On::Both, None, "REVOKE SELECT ON shop.orders FROM bob", Reject(Ddl)),
    (On::Df, None, "COMMENT ON TABLE shop.orders IS 'x'", Reject(Ddl)),
    (On::Both, None, "INSERT INTO shop.orders VALUES (1)", Reject(Dml)),
    (On::Both, None, "UPDATE shop.orders SET amount = 0 WHERE TRUE", Reject(Dml)),
    (On::Both, None, "dElEtE from shop.orders", Reject(Dml)),
    (On::Both, None, "  /* hi */ -- there\n  DELETE FROM shop.orders WHERE TRUE", Reject(Dml)),
    (On::Both, None, "REPLACE INTO shop.orders VALUES (1)", Reject(Dml)),
    (On::Both, None, "MERGE INTO shop.a USING shop.b ON a.id = b.id WHEN MATCHED THEN DELETE", Reject(Merge)),
    (On::Both, None, "DECLARE x INT64 DEFAULT 1", Reject(Scripting)),
    (On::Both, None, "SET x = 1", Reject(Scripting)),
    (On::Both, None, "BEGIN SELECT 1; END", Reject(Scripting)),
    (On::Both, None, "BEGIN TRANSACTION", Reject(Scripting)),
    (On::Both, None, "COMMIT", Reject(Scripting)),
    (On::Both, None, "ROLLBACK", Reject(Scripting)),
    (On::Both, None, "CALL shop.refresh()", Reject(Scripting)),
    (On::Both, None, "EXECUTE IMMEDIATE 'DROP TABLE shop.orders'", Reject(Scripting)),
    (On::Both, None, "IF TRUE THEN SELECT 1; END IF", Reject(Scripting)),
    (On::Both, None, "LOOP SELECT 1; END LOOP", Reject(Scripting)),
    (On::Both, None, "WHILE TRUE DO SELECT 1; END WHILE", Reject(Scripting)),
    (On::Both, None, "RETURN", Reject(Scripting)),
    (On::Both, None, "EXPORT DATA OPTIONS (uri = 'gs://b/*.csv', format = 'CSV') AS SELECT * FROM shop.orders", Reject(Export)),
    (On::Both, None, "COPY shop.orders TO '/tmp/orders.csv'", Reject(Copy)),
    (On::Both, None, "COPY shop.orders FROM '/tmp/orders.csv'", Reject(Copy)),
    (On::Both, None, "ATTACH 'other.db' AS other", Reject(External)),
    (On::Both, None, "DETACH other", Reject(External)),
    (On::Both, None, "INSTALL httpfs", Reject(External)),
    (On::Both, None, "LOAD httpfs", Reject(External)),
    (On::Both, None, "LOAD DATA INTO shop.x FROM FILES (format = 'CSV', uris = ['gs://b/x.csv'])", Reject(External)),
    (On::Both, None, "PRAGMA table_info('orders')", Reject(Pragma)),
    (On::Both, None, "SHOW TABLES", Reject(NotAQuery)),
    (On::Both, None, "EXPLAIN SELECT * FROM shop.orders", Reject(NotAQuery)),
    (On::Both, None, "EXPLAIN ANALYZE SELECT * FROM shop.orders", Reject(NotAQuery)),
    (On::Both, None, "DESCRIBE shop.orders", Reject(NotAQuery)),
    (On::Both, None, "USE shop", Reject(NotAQuery)),
    (On::Both, None, "VACUUM", Reject(NotAQuery)),
    // ---- several statements ----------------------------------------------------------------
    (On::Both, None, "SELECT 1; SELECT 2", Reject(MultipleStatements)),
    (On::Both, None, "SELECT 1; -- harmless\nDROP TABLE shop.orders", Reject(MultipleStatements)),
    (On::Both, None, "SELECT 1 /* ; */; /* hidden */ DELETE FROM shop.orders", Reject(MultipleStatements)),
    (On::Both, None, "SELECT * FROM shop.orders;\n\n/* and then */ SELECT * FROM secret.users", Reject(MultipleStatements)),
    // ---- empty and unparseable -------------------------------------------------------------
    (On::Both, None, "", Reject(Empty)),
    (On::Both, None, "   \n\t  ", Reject(Empty)),
    (On::Both, None, "-- just a comment", Reject(Empty)),
    (On::Both, None, "/* nothing */ ;", Reject(Empty)),
    (On::Both, None, "SELEC * FROM shop.orders", Reject(Unparseable)),
    (On::Both, None, "SELECT * FROM", Reject(Unparseable)),
    (On::Both, None, "SELECT 'unterminated", Reject(Unparseable)),
    (On::Both, None, "TABLE shop.orders", Reject(Unparseable)),
    // ---- row cap -----------------------------------------------------------------------------
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 10", Accept(&["shop.orders"], 10)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 0", Accept(&["shop.orders"], 0)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 1000", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 5000", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 10 OFFSET 20", Accept(&["shop.orders"], 10)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 5000 OFFSET 20", Accept(&["shop.orders"], 1000)),
    (On::Df, None, "SELECT * FROM shop.orders LIMIT 20, 10", Accept(&["shop.orders"], 10)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT ALL", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT NULL", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM (SELECT * FROM shop.orders LIMIT 5) AS t", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT id FROM shop.orders UNION ALL SELECT id FROM sales.orders LIMIT 5", Accept(&["sales.orders", "shop.orders"], 5)),
    (On::Both, None, "SELECT * FROM shop.orders ORDER BY id LIMIT 3", Accept(&["shop.orders"], 3)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT 1 + 1", Reject(InvalidLimit)),
    (On::Both, None, "SELECT * FROM shop.orders LIMIT -1", Reject(InvalidLimit)),
    (On::Bq, None, "SELECT * FROM shop.orders LIMIT @n", Reject(InvalidLimit)),
    // ---- query parameters: accepted as values, nothing else changes ---------------------------
    (On::Bq, None, "SELECT * FROM shop.orders WHERE status = @status AND amount > @min", Accept(&["shop.orders"], 1000)),
    (On::Bq, None, "SELECT * FROM shop.orders WHERE status = ? AND amount > ?", Accept(&["shop.orders"], 1000)),
    (On::Bq, SHOP, "SELECT * FROM orders WHERE id IN UNNEST(@ids)", Accept(&["shop.orders"], 1000)),
    (On::Df, None, "SELECT * FROM shop.orders WHERE status = $1 AND amount > $2", Accept(&["shop.orders"], 1000)),
    (On::Df, None, "SELECT * FROM shop.orders WHERE status = $status", Accept(&["shop.orders"], 1000)),
    (On::Both, None, "SELECT * FROM secret.users WHERE id = ?", Reject(DatasetNotAllowed)),
    (On::Bq, None, "SELECT * FROM shop.orders WHERE id = @id; DELETE FROM shop.orders WHERE id = @id", Reject(MultipleStatements)),
    (On::Bq, None, "DELETE FROM shop.orders WHERE id = @id", Reject(Dml)),
    (On::Df, None, "DELETE FROM shop.orders WHERE id = $1", Reject(Dml)),
    (On::Bq, None, "SELECT * FROM read_csv(@path)", Reject(ForbiddenFunction)),
    (On::Bq, None, "SELECT * FROM shop.orders LIMIT ?", Reject(InvalidLimit)),
    (On::Df, None, "SELECT * FROM shop.orders LIMIT $1", Reject(InvalidLimit)),
];

fn policy(dialect: SqlDialect, default_dataset: Option<&str>) -> GuardPolicy {
    GuardPolicy {
        dialect,
        home_project: Some(
            match dialect {
                SqlDialect::BigQuery => "my-project",
                SqlDialect::DataFusion => "datafusion",
            }
            .to_owned(),
        ),
        allowed: DatasetScope::from_list(["shop", "sales"]),
        default_dataset: default_dataset.map(str::to_owned),
        max_rows: 1000,
    }
}

fn sqlparser_dialect(dialect: SqlDialect) -> Box<dyn Dialect> {
    match dialect {
        SqlDialect::BigQuery => Box::new(BigQueryDialect {}),
        SqlDialect::DataFusion => Box::new(GenericDialect {}),
    }
}

fn table_ref(text: &str) -> TableRef {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [dataset, table] => TableRef::new(*dataset, *table),
        [project, dataset, table] => TableRef {
            project: Some((*project).to_owned()),
            dataset: (*dataset).to_owned(),
            table: (*table).to_owned(),
        },
        _ => panic!("bad table in test: {text}"),
    }
}

/// Runs one row under one dialect; returns a description of what went wrong, if anything.
fn run(dialect: SqlDialect, default: Option<&str>, sql: &str, expect: &Expect) -> Option<String> {
    let policy = policy(dialect, default);
    let outcome = check(sql, &policy);
    match (expect, outcome) {
        (Reject(reason), Err(rejection)) if rejection.reason == *reason => {
            (rejection.message.trim().is_empty()).then(|| "empty rejection message".to_owned())
        }
        (Reject(reason), outcome) => Some(format!("expected {reason:?}, got {outcome:?}")),
        (Accept(..), Err(rejection)) => Some(format!("expected accept, got {rejection:?}")),
        (Accept(tables, limit), Ok(guarded)) => {
            let expected: Vec<TableRef> = tables.iter().map(|t| table_ref(t)).collect();
            if guarded.referenced_tables != expected {
                return Some(format!(
                    "tables: expected {expected:?}, got {:?}",
                    guarded.referenced_tables
                ));
            }
            if guarded.limit != *limit {
                return Some(format!("limit: expected {limit}, got {}", guarded.limit));
            }
            // What runs must parse in the same dialect, as exactly one query …
            let reparsed = Parser::parse_sql(&*sqlparser_dialect(dialect), &guarded.sql);
            match reparsed.as_deref() {
                Ok([Statement::Query(_)]) => {}
                other => {
                    return Some(format!(
                        "output {:?} does not re-parse: {other:?}",
                        guarded.sql
                    ));
                }
            }
            // … and be a fixed point of the guard: nothing left to qualify or cap.
            match check(&guarded.sql, &policy) {
                Ok(again)
                    if again.sql == guarded.sql
                        && again.limit == *limit
                        && again.user_limit == Some(*limit)
                        && again.referenced_tables == expected =>
                {
                    None
                }
                other => Some(format!(
                    "output {:?} is not stable under the guard: {other:?}",
                    guarded.sql
                )),
            }
        }
    }
}

#[test]
fn guard_table() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (on, default, sql, expect) in CASES {
        let dialects: &[SqlDialect] = match on {
            On::Bq => &[SqlDialect::BigQuery],
            On::Df => &[SqlDialect::DataFusion],
            On::Both => &[SqlDialect::BigQuery, SqlDialect::DataFusion],
        };
        for dialect in dialects {
            count += 1;
            if let Some(problem) = run(*dialect, *default, sql, expect) {
                failures.push(format!(
                    "[{dialect:?}, default {default:?}] {sql:?}\n    {problem}"
                ));
            }
        }
    }
    assert!(count >= 70, "only {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The exact SQL handed to the warehouse for a few representative statements.
#[test]
fn rewritten_sql() {
    #[rustfmt::skip]
    let cases: &[(SqlDialect, Option<&str>, &str, &str)] = &[
        (SqlDialect::DataFusion, SHOP, "SELECT * FROM orders", "SELECT * FROM shop.orders LIMIT 1000"),
        (SqlDialect::BigQuery, SHOP, "SELECT * FROM orders", "SELECT * FROM shop.orders LIMIT 1000"),
        (SqlDialect::BigQuery, SHOP, "SELECT * FROM `orders`", "SELECT * FROM `shop`.`orders` LIMIT 1000"),
        (SqlDialect::DataFusion, SHOP, "SELECT * FROM \"Orders\"", "SELECT * FROM \"shop\".\"Orders\" LIMIT 1000"),
        (SqlDialect::DataFusion, Some("Shop"), "SELECT * FROM orders", "SELECT * FROM \"Shop\".orders LIMIT 1000"),
        (SqlDialect::DataFusion, SHOP,
            "WITH orders AS (SELECT * FROM orders WHERE amount > 0) SELECT * FROM orders",
            "WITH orders AS (SELECT * FROM shop.orders WHERE amount > 0) SELECT * FROM orders LIMIT 1000"),
        (SqlDialect::DataFusion, None,
            "SELECT * FROM (SELECT * FROM shop.orders LIMIT 5) AS t",
            "SELECT * FROM (SELECT * FROM shop.orders LIMIT 5) AS t LIMIT 1000"),
        (SqlDialect::BigQuery, None,
            "SELECT id FROM shop.a UNION ALL SELECT id FROM shop.b",
            "SELECT id FROM shop.a UNION ALL SELECT id FROM shop.b LIMIT 1000"),
        (SqlDialect::BigQuery, None,
            "SELECT * FROM shop.orders LIMIT 5000 OFFSET 10;",
            "SELECT * FROM shop.orders LIMIT 1000 OFFSET 10"),
        (SqlDialect::DataFusion, None,
            "SELECT * FROM shop.orders LIMIT 20, 10",
            "SELECT * FROM shop.orders LIMIT 10 OFFSET 20"),
        (SqlDialect::DataFusion, SHOP,
            "SELECT * FROM orders WHERE id IN (SELECT order_id FROM refunds)",
            "SELECT * FROM shop.orders WHERE id IN (SELECT order_id FROM shop.refunds) LIMIT 1000"),
    ];
    for (dialect, default, sql, expected) in cases {
        let guarded = check(sql, &policy(*dialect, *default))
            .unwrap_or_else(|e| panic!("{sql:?} rejected: {e:?}"));
        assert_eq!(guarded.sql, *expected, "{dialect:?} {sql:?}");
    }
}

#[test]
fn user_limit_reports_the_callers_literal() {
    let p = policy(SqlDialect::BigQuery, None);
    let limit = |sql: &str| check(sql, &p).map(|g| (g.limit, g.user_limit));
    assert_eq!(limit("SELECT 1"), Ok((1000, None)));
    assert_eq!(limit("SELECT 1 LIMIT 10"), Ok((10, Some(10))));
    assert_eq!(limit("SELECT 1 LIMIT 5000"), Ok((1000, Some(5000))));
    assert_eq!(limit("SELECT 1 LIMIT NULL"), Ok((1000, None)));
}

#[test]
fn messages_name_what_was_found() {
    let bq = policy(SqlDialect::BigQuery, None);
    let df = policy(SqlDialect::DataFusion, None);
    let message =
        |sql: &str, p: &GuardPolicy| check(sql, p).err().map(|r| r.message).unwrap_or_default();

    assert_eq!(
        message("DELETE FROM shop.orders WHERE TRUE", &bq),
        "DELETE statements are not allowed: bqai only runs read-only queries"
    );
    assert!(message("execute immediate 'x'", &bq).starts_with("EXECUTE IMMEDIATE statements"));
    assert!(
        message("EXPORT DATA OPTIONS (uri = 'gs://b/*') AS SELECT 1", &bq)
            .starts_with("EXPORT DATA statements")
    );
    assert!(
        message("LOAD DATA INTO shop.x FROM FILES (uris = ['x'])", &bq)
            .starts_with("LOAD DATA statements")
    );
    assert!(
        message(
            "WITH x AS (DELETE FROM shop.o RETURNING *) SELECT * FROM x",
            &df
        )
        .starts_with("DELETE statements")
    );
    assert_eq!(
        message("SELECT * FROM orders", &df),
        "table `orders` has no dataset: qualify it as dataset.table or pass dataset_id"
    );
    let m = message("SELECT * FROM secret.users", &df);
    assert!(m.contains("`secret`") && m.contains("sales, shop"), "{m}");
    let m = message("SELECT * FROM `other-project.shop.orders`", &bq);
    assert!(m.contains("other-project"), "{m}");
    assert!(message("SELECT * FROM read_csv('/etc/passwd')", &df).contains("read_csv"));
    assert!(
        message("SELECT * FROM region-us.INFORMATION_SCHEMA.JOBS", &bq)
            .contains("INFORMATION_SCHEMA")
    );
    assert!(message("SELECT * FROM shop.orders LIMIT 1 + 1", &df).contains("1 + 1"));
    // The parser's own words come through.
    assert!(message("SELECT * FROM", &df).contains("Expected"));
}

#[test]
fn dry_run_tables_are_rechecked() {
    let p = policy(SqlDialect::BigQuery, None);
    let reason = |tables: &[TableRef]| check_tables(tables, &p).err().map(|r| r.reason);
    let home = TableRef {
        project: Some("my-project".into()),
        dataset: "shop".into(),
        table: "orders".into(),
    };
    let foreign = TableRef {
        project: Some("other-project".into()),
        ..home.clone()
    };
    assert_eq!(reason(&[]), None);
    assert_eq!(
        reason(&[TableRef::new("shop", "orders"), TableRef::new("sales", "x")]),
        None
    );
    assert_eq!(reason(&[home]), None);
    assert_eq!(reason(&[foreign]), Some(DatasetNotAllowed));
    assert_eq!(
        reason(&[
            TableRef::new("shop", "orders"),
            TableRef::new("secret", "x")
        ]),
        Some(DatasetNotAllowed)
    );
    assert_eq!(
        reason(&[TableRef::new("INFORMATION_SCHEMA", "JOBS")]),
        Some(ForbiddenTable)
    );
    assert_eq!(
        reason(&[TableRef::new("shop", "/etc/passwd")]),
        Some(ForbiddenTable)
    );
}

#[test]
fn a_scope_of_all_datasets_still_refuses_other_projects() {
    let p = GuardPolicy {
        allowed: DatasetScope::All,
        ..policy(SqlDialect::BigQuery, None)
    };
    assert!(check("SELECT * FROM anything.at_all", &p).is_ok());
    assert_eq!(
        check("SELECT * FROM `other-project.shop.orders`", &p)
            .err()
            .map(|r| r.reason),
        Some(DatasetNotAllowed)
    );
}

/// Flat chains build left-deep trees the guard must walk and drop without running out of stack
/// (test threads have 2 MiB); within the token budget they are refused as too complex, past it
/// before parsing.
#[test]
fn long_chains_do_not_exhaust_the_stack() {
    for dialect in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
        long_chains(&policy(dialect, None));
    }
}

fn long_chains(p: &GuardPolicy) {
    let reason = |sql: &str| check(sql, p).err().map(|r| r.reason);
    let plus = format!("SELECT {}1", "1 + ".repeat(9_990));
    assert_eq!(reason(&plus), Some(TooComplex));
    let unions = format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(3_990));
    assert_eq!(reason(&unions), Some(TooComplex));
    let ands = format!(
        "SELECT 1 FROM shop.orders WHERE {}TRUE",
        "a = 1 AND ".repeat(4_990)
    );
    assert_eq!(reason(&ands), Some(TooComplex));

    let huge = format!("SELECT {}1", "1 + ".repeat(200_000));
    assert_eq!(reason(&huge), Some(Unparseable));
    let huge = format!("SELECT 1{}", " UNION ALL SELECT 1".repeat(100_000));
    assert_eq!(reason(&huge), Some(Unparseable));
}

/// The short statements that crashed the server (a ~2 KB query overflowing the engine's
/// planning stack) are refused before they reach it, with a message saying what to change;
/// statements of the same kinds within the bounds still pass.
#[test]
fn deep_or_large_statements_are_refused_as_too_complex() {
    use bqai_core::guard::{MAX_EXPRESSION_DEPTH, MAX_SET_OPERATIONS, MAX_TABLES};
    for dialect in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
        let p = policy(dialect, SHOP);
        let casts = |n: usize| match dialect {
            SqlDialect::BigQuery => {
                format!("SELECT {}1{}", "CAST(".repeat(n), " AS INT64)".repeat(n))
            }
            SqlDialect::DataFusion => format!("SELECT 1{}", "::BIGINT".repeat(n)),
        };
        let crashing = [
            casts(250),
            format!("SELECT {}", vec!["1"; 1_000].join("+")),
            format!(
                "SELECT 1 FROM shop.orders WHERE {}",
                vec!["id = 1"; 1_000].join(" OR ")
            ),
            vec!["SELECT 1"; 600].join(" UNION ALL "),
            format!("SELECT {}", vec!["'a'"; 1_500].join("||")),
            format!(
                "SELECT 1 FROM orders{}",
                (1..200)
                    .map(|i| format!(" JOIN orders o{i} ON o{i}.id = orders.id"))
                    .collect::<String>()
            ),
        ];
        for sql in &crashing {
            let rejection = check(sql, &p).expect_err(&sql[..60.min(sql.len())]);
            assert_eq!(rejection.reason, TooComplex, "{}", &sql[..60]);
            assert!(
                rejection.message.contains("too complex"),
                "{}",
                rejection.message
            );
        }
        // BigQuery nests a CAST in its own parentheses; the parser bounds those at 50.
        let depth = MAX_EXPRESSION_DEPTH.min(40);
        let fine = [
            casts(depth / 2),
            format!("SELECT {}", vec!["1"; MAX_EXPRESSION_DEPTH / 2].join("+")),
            vec!["SELECT 1"; MAX_SET_OPERATIONS].join(" UNION ALL "),
            format!(
                "SELECT 1 FROM orders{}",
                (1..MAX_TABLES)
                    .map(|i| format!(" JOIN orders o{i} ON o{i}.id = orders.id"))
                    .collect::<String>()
            ),
            format!(
                "SELECT 1 FROM shop.orders WHERE id IN ({})",
                (0..5_000)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ];
        for sql in &fine {
            assert!(
                check(sql, &p).is_ok(),
                "{dialect:?}: {}",
                &sql[..80.min(sql.len())]
            );
        }
    }
}

#[test]
fn placeholders_are_reported() {
    let bq = policy(SqlDialect::BigQuery, SHOP);
    let g = check(
        "SELECT * FROM orders WHERE a = @a AND b = @b AND c = @@dataset_id AND d = `@d` AND e = @a",
        &bq,
    )
    .unwrap();
    let names: Vec<&str> = g.placeholders.at_named.iter().map(String::as_str).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(g.placeholders.question_marks, 0);
    assert!(g.sql.contains("@a") && g.sql.contains("@b"), "{}", g.sql);

    let g = check("SELECT ? AS x, ? AS y FROM orders", &bq).unwrap();
    assert_eq!(g.placeholders.question_marks, 2);
    assert!(g.placeholders.at_named.is_empty());

    let df = policy(SqlDialect::DataFusion, SHOP);
    let g = check("SELECT $1 AS x, $2 AS y, $name AS z FROM orders", &df).unwrap();
    assert_eq!(g.placeholders.dollar_numbered, [1, 2].into());
    assert_eq!(g.placeholders.dollar_named, ["name".to_owned()].into());
    assert!(g.sql.contains("$1") && g.sql.contains("$name"), "{}", g.sql);

    let g = check("SELECT 1 AS x FROM orders", &df).unwrap();
    assert!(g.placeholders.is_empty());
}

/// Runs `check` on its own thread and fails the test (instead of hanging CI) if it takes
/// longer than a minute.
fn check_in_time(
    sql: String,
    p: GuardPolicy,
) -> Result<bqai_core::guard::GuardedSql, bqai_core::guard::Rejection> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(check(&sql, &p));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(outcome) => outcome,
        Err(_) => panic!("the guard must answer within a minute"),
    }
}

/// Short statements sqlparser 0.62 parses in exponential time (a reserved word read both as
/// an expression and as a name, re-walking the rest of the statement at every level) are
/// refused once the parse has used its budget, instead of holding a thread for hours.
#[test]
fn pathological_parses_end_quickly() {
    for dialect in [SqlDialect::BigQuery, SqlDialect::DataFusion] {
        let p = policy(dialect, SHOP);
        let shapes = [
            // Parses (correctly) in exponential time: 30 links would take hours.
            format!("SELECT {}c", "case - ".repeat(30)),
            // A syntax error at the bottom of nested CASTs: every level retries.
            format!(
                "SELECT {}1 +{}",
                "CAST(".repeat(30),
                " AS INT64)".repeat(30)
            ),
            format!(
                "SELECT {}1 +{}",
                "SUBSTRING(".repeat(30),
                " FROM 1)".repeat(30)
            ),
            format!("SELECT {}", "x-not-b.".repeat(30)),
            format!(
                "SELECT {}1{}",
                "TRY_CAST(".repeat(49),
                " AS INT64)".repeat(49)
            ),
            format!("SELECT {}c FROM shop.orders", "case - ".repeat(25)),
        ];
        for sql in shapes {
            let started = std::time::Instant::now();
            let outcome = check_in_time(sql.clone(), p.clone());
            let reason = outcome.as_ref().err().map(|r| r.reason);
            assert!(
                matches!(reason, Some(TooComplex | Unparseable)),
                "{dialect:?} {sql:?}: {outcome:?} after {:?}",
                started.elapsed()
            );
        }
        // Nesting sqlparser does not bound (type parameters, CASE) is refused from the
        // tokens, before it can overflow the parser's stack.
        let structs = format!(
            "SELECT CAST(NULL AS {}INT64{})",
            "STRUCT<a ".repeat(1_000),
            ">".repeat(1_000)
        );
        let cases = format!(
            "SELECT {}1{}",
            "CASE WHEN TRUE THEN ".repeat(3_000),
            " END".repeat(3_000)
        );
        for sql in [structs, cases] {
            let reason = check_in_time(sql, p.clone()).err().map(|r| r.reason);
            assert_eq!(reason, Some(TooComplex), "{dialect:?}");
        }
        // Ordinary nesting is fine.
        let nested = format!(
            "SELECT {}1{}",
            "CASE WHEN TRUE THEN ".repeat(20),
            " END".repeat(20)
        );
        assert!(check(&nested, &p).is_ok());
    }
}
