//! Cost of the SQL guard per statement: tokenize, parse, walk, rewrite and render, for a short
//! SELECT, a mid-size join with GROUP BY and a large CTE-heavy query, in both dialects; and the
//! shape fingerprint every history entry gets (`analytics::sql_shape`: another parse, literals
//! replaced, printed back) on the same statements.

use std::hint::black_box;

use bqai_core::guard::{GuardPolicy, check};
use bqai_core::model::{DatasetScope, SqlDialect};
use criterion::{Criterion, criterion_group, criterion_main};

const SHORT: &str = "SELECT id, amount FROM orders WHERE amount > 100";

const JOIN: &str = "
SELECT c.country, p.category, COUNT(*) AS orders, SUM(oi.quantity * oi.unit_price) AS revenue
FROM shop.orders AS o
JOIN shop.customers AS c ON c.id = o.customer_id
JOIN shop.order_items AS oi ON oi.order_id = o.id
LEFT JOIN shop.products AS p ON p.id = oi.product_id
WHERE o.status = 'shipped' AND o.created_at >= '2024-01-01'
GROUP BY c.country, p.category
HAVING SUM(oi.quantity * oi.unit_price) > 1000
ORDER BY revenue DESC
LIMIT 50";

const CTE_HEAVY: &str = "
WITH recent_orders AS (
  SELECT o.id, o.customer_id, o.created_at, o.status
  FROM shop.orders AS o
  WHERE o.created_at >= '2024-01-01'
),
order_totals AS (
  SELECT oi.order_id, SUM(oi.quantity * oi.unit_price) AS total, COUNT(*) AS lines
  FROM shop.order_items AS oi
  WHERE oi.order_id IN (SELECT id FROM recent_orders)
  GROUP BY oi.order_id
),
customer_stats AS (
  SELECT r.customer_id,
         COUNT(*) AS orders,
         SUM(t.total) AS revenue,
         AVG(t.total) AS avg_order,
         MAX(r.created_at) AS last_order
  FROM recent_orders AS r
  JOIN order_totals AS t ON t.order_id = r.id
  GROUP BY r.customer_id
),
targets AS (
  SELECT region, quarter, target_revenue
  FROM sales.targets
  WHERE year = 2024
),
regional AS (
  SELECT c.region,
         SUM(s.revenue) AS revenue,
         COUNT(DISTINCT s.customer_id) AS customers
  FROM customer_stats AS s
  JOIN shop.customers AS c ON c.id = s.customer_id
  GROUP BY c.region
),
ranked AS (
  SELECT s.customer_id,
         s.revenue,
         RANK() OVER (ORDER BY s.revenue DESC) AS revenue_rank,
         CASE WHEN s.orders >= 10 THEN 'loyal'
              WHEN s.orders >= 3 THEN 'regular'
              ELSE 'new' END AS segment
  FROM customer_stats AS s
)
SELECT r.region,
       r.revenue,
       r.customers,
       t.target_revenue,
       r.revenue / NULLIF(t.target_revenue, 0) AS attainment,
       (SELECT COUNT(*) FROM ranked WHERE segment = 'loyal') AS loyal_customers,
       (SELECT MAX(revenue) FROM ranked WHERE revenue_rank = 1) AS top_revenue
FROM regional AS r
LEFT JOIN targets AS t ON t.region = r.region AND t.quarter = 'Q4'
WHERE r.revenue > 0
  AND r.region IN (SELECT DISTINCT region FROM sales.territories WHERE active)
ORDER BY attainment DESC
LIMIT 100";

fn policy(dialect: SqlDialect) -> GuardPolicy {
    GuardPolicy {
        dialect,
        home_project: Some("my-project".to_owned()),
        allowed: DatasetScope::from_list(["shop", "sales"]),
        default_dataset: Some("shop".to_owned()),
        max_rows: 1000,
    }
}

fn bench_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("guard");
    for (dialect_name, dialect) in [
        ("bigquery", SqlDialect::BigQuery),
        ("datafusion", SqlDialect::DataFusion),
    ] {
        let policy = policy(dialect);
        for (name, sql) in [("short", SHORT), ("join", JOIN), ("cte_heavy", CTE_HEAVY)] {
            // A statement the guard refuses would measure the wrong path.
            if let Err(rejection) = check(sql, &policy) {
                panic!("{dialect_name}/{name} is rejected: {rejection}");
            }
            group.bench_function(format!("{dialect_name}/{name}"), |b| {
                b.iter(|| check(black_box(sql), black_box(&policy)));
            });
        }
    }
    group.finish();
}

fn bench_shape(c: &mut Criterion) {
    let mut group = c.benchmark_group("sql_shape");
    for (dialect_name, dialect) in [
        ("bigquery", SqlDialect::BigQuery),
        ("datafusion", SqlDialect::DataFusion),
    ] {
        for (name, sql) in [("short", SHORT), ("join", JOIN), ("cte_heavy", CTE_HEAVY)] {
            group.bench_function(format!("{dialect_name}/{name}"), |b| {
                b.iter(|| bqai_core::analytics::sql_shape(black_box(sql), black_box(dialect)));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_guard, bench_shape);
criterion_main!(benches);
