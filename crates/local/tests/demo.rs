//! The demo dataset: exact shape, determinism (fixed checksums, identical across builds),
//! plausibility invariants and generation speed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use bqai_core::model::{FieldMode, FieldType, PageRequest, TableRef, Value};
use bqai_core::ports::Warehouse;
use common::{demo, run, scalar};

/// Integer-only aggregates (floats summed in parallel are not bit-stable), one per table.
const CHECKSUMS: &[(&str, &str)] = &[
    (
        "customers",
        "SELECT CAST(COUNT(*) AS VARCHAR) || '/' || CAST(SUM(LENGTH(name) * customer_id) AS VARCHAR) \
         || '/' || CAST(SUM(LENGTH(email)) AS VARCHAR) || '/' || CAST(SUM(LENGTH(city) * customer_id) AS VARCHAR) \
         || '/' || CAST(SUM(LENGTH(segment)) AS VARCHAR) || '/' || CAST(SUM(CAST(signup_date AS INT)) AS VARCHAR) \
         FROM shop.customers",
    ),
    (
        "products",
        "SELECT CAST(COUNT(*) AS VARCHAR) || '/' || CAST(SUM(LENGTH(name) * product_id) AS VARCHAR) \
         || '/' || CAST(SUM(LENGTH(category) * product_id) AS VARCHAR) || '/' || CAST(SUM(LENGTH(brand)) AS VARCHAR) \
         || '/' || CAST(SUM(CAST(ROUND(unit_price * 100) AS BIGINT) * product_id) AS VARCHAR) \
         FROM shop.products",
    ),
    (
        "orders",
        "SELECT CAST(COUNT(*) AS VARCHAR) || '/' || CAST(SUM(customer_id * (order_id % 997)) AS VARCHAR) \
         || '/' || CAST(SUM(CAST(order_date AS INT) % 1000 * order_id) AS VARCHAR) \
         || '/' || CAST(SUM(LENGTH(status) * order_id) AS VARCHAR) || '/' || CAST(SUM(LENGTH(channel) * order_id) AS VARCHAR) \
         FROM shop.orders",
    ),
    (
        "order_items",
        "SELECT CAST(COUNT(*) AS VARCHAR) || '/' || CAST(SUM(product_id * (order_id % 991)) AS VARCHAR) \
         || '/' || CAST(SUM(quantity * line_no) AS VARCHAR) \
         || '/' || CAST(SUM(CAST(ROUND(unit_price * 100) AS BIGINT) * quantity) AS VARCHAR) \
         || '/' || CAST(SUM(CAST(ROUND(discount * 100) AS BIGINT) * (order_id % 13)) AS VARCHAR) \
         FROM shop.order_items",
    ),
];

/// Recorded once; a change means the demo data changed for every user (tests, docs and
/// benchmarks built on it): update deliberately.
const EXPECTED: &[&str] = &[
    "5000/153403844/140342/93412782/46558/98686636",
    "300/1250518/465726/2978/435037250",
    "100000/76828352612/2006906944199/44295775437/21539193116",
    "299448/21056693259/1783158/4600214958/6968135",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_is_deterministic() {
    let wh = demo().await;
    let mut got = Vec::new();
    for (_, sql) in CHECKSUMS {
        let value = scalar(&wh, sql).await;
        got.push(value);
    }
    // A second, independent build gives the same rows.
    let again = demo().await;
    for ((table, sql), first) in CHECKSUMS.iter().zip(&got) {
        assert_eq!(
            &scalar(&again, sql).await,
            first,
            "{table} differs between builds"
        );
    }
    for ((table, _), (value, expected)) in CHECKSUMS.iter().zip(got.iter().zip(EXPECTED)) {
        assert_eq!(
            value,
            &Value::String((*expected).to_owned()),
            "{table} checksum changed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_tables_have_the_documented_shape() {
    let wh = demo().await;
    type Shape<'a> = (&'a str, u64, &'a [(&'a str, FieldType)]);
    let expected: &[Shape<'_>] = &[
        (
            "customers",
            5_000,
            &[
                ("customer_id", FieldType::Int64),
                ("name", FieldType::String),
                ("email", FieldType::String),
                ("country", FieldType::String),
                ("city", FieldType::String),
                ("segment", FieldType::String),
                ("signup_date", FieldType::Date),
            ],
        ),
        (
            "order_items",
            299_448,
            &[
                ("order_id", FieldType::Int64),
                ("line_no", FieldType::Int64),
                ("product_id", FieldType::Int64),
                ("quantity", FieldType::Int64),
                ("unit_price", FieldType::Float64),
                ("discount", FieldType::Float64),
            ],
        ),
        (
            "orders",
            100_000,
            &[
                ("order_id", FieldType::Int64),
                ("customer_id", FieldType::Int64),
                ("order_date", FieldType::Date),
                ("status", FieldType::String),
                ("channel", FieldType::String),
            ],
        ),
        (
            "products",
            300,
            &[
                ("product_id", FieldType::Int64),
                ("name", FieldType::String),
                ("category", FieldType::String),
                ("brand", FieldType::String),
                ("unit_price", FieldType::Float64),
            ],
        ),
    ];
    let listed = wh
        .list_tables("shop", &PageRequest::first(10))
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .items
        .iter()
        .map(|t| t.table_ref.table.as_str())
        .collect();
    assert_eq!(names, ["customers", "order_items", "orders", "products"]);

    for (table, rows, columns) in expected {
        let t = wh.get_table(&TableRef::new("shop", *table)).await.unwrap();
        assert_eq!(t.num_rows, Some(*rows), "{table}");
        assert!(t.num_bytes.unwrap() > 0, "{table}");
        assert!(
            t.description.as_deref().is_some_and(|d| d.len() > 20),
            "{table}"
        );
        let got: Vec<(&str, FieldType)> = t
            .schema
            .iter()
            .map(|f| (f.name.as_str(), f.field_type))
            .collect();
        assert_eq!(&got, columns, "{table}");
        for f in &t.schema {
            assert_eq!(f.mode, FieldMode::Required, "{table}.{}", f.name);
            assert!(
                f.description.is_some(),
                "{table}.{} has no description",
                f.name
            );
        }
        let counted = scalar(&wh, &format!("SELECT COUNT(*) FROM shop.{table}")).await;
        assert_eq!(
            counted,
            Value::Int64(i64::try_from(*rows).unwrap()),
            "{table}"
        );
    }
    let dataset = wh.get_dataset("shop").await.unwrap();
    assert_eq!(dataset.table_count, Some(4));
    assert!(dataset.description.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_data_is_plausible() {
    let wh = demo().await;
    let one = |sql: &'static str| {
        let wh = wh.clone();
        async move { scalar(&wh, sql).await }
    };
    // Domains of the categorical columns.
    assert_eq!(
        one("SELECT COUNT(DISTINCT country) FROM shop.customers").await,
        Value::Int64(10)
    );
    assert_eq!(
        one("SELECT COUNT(DISTINCT category) FROM shop.products").await,
        Value::Int64(8)
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM shop.customers WHERE segment NOT IN ('consumer', 'small_business', 'enterprise')").await,
        Value::Int64(0)
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM shop.orders WHERE status NOT IN ('completed', 'shipped', 'pending', 'cancelled', 'returned') OR channel NOT IN ('web', 'mobile', 'store')").await,
        Value::Int64(0)
    );
    assert_eq!(
        one("SELECT COUNT(DISTINCT email) FROM shop.customers").await,
        Value::Int64(5_000)
    );
    // Dates in range, orders after their customer's signup.
    let range = run(
        &wh,
        "SELECT MIN(order_date), MAX(order_date) FROM shop.orders",
    )
    .await;
    assert_eq!(
        range.rows[0],
        vec![
            Value::Date(chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()),
            Value::Date(chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()),
        ]
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM shop.orders o JOIN shop.customers c ON c.customer_id = o.customer_id WHERE o.order_date < c.signup_date").await,
        Value::Int64(0)
    );
    // Every order has 1 to 5 lines numbered 1..n, referential integrity holds.
    let lines = run(&wh, "SELECT MIN(n), MAX(n), COUNT(*) FROM (SELECT order_id, COUNT(*) AS n, MAX(line_no) AS m FROM shop.order_items GROUP BY order_id HAVING MAX(line_no) = COUNT(*))").await;
    assert_eq!(
        lines.rows[0],
        vec![Value::Int64(1), Value::Int64(5), Value::Int64(100_000)]
    );
    assert_eq!(
        one("SELECT COUNT(*) FROM shop.order_items i LEFT JOIN shop.products p ON p.product_id = i.product_id WHERE p.product_id IS NULL").await,
        Value::Int64(0)
    );
    // Prices are whole cents; discounts between 0 and 30 %.
    assert_eq!(
        one("SELECT COUNT(*) FROM shop.order_items WHERE ABS(unit_price * 100 - ROUND(unit_price * 100)) > 0.000001 OR discount < 0 OR discount > 0.3").await,
        Value::Int64(0)
    );
    // Seasonality: November/December are the busiest months, toys peak in December.
    let by_month = run(&wh, "SELECT EXTRACT(MONTH FROM order_date) AS m, COUNT(*) AS n FROM shop.orders GROUP BY m ORDER BY n DESC LIMIT 2").await;
    let busiest: Vec<String> = by_month.rows.iter().map(|r| r[0].to_text()).collect();
    assert!(
        busiest.iter().all(|m| m == "11" || m == "12"),
        "{busiest:?}"
    );
    let toys = run(&wh, "SELECT EXTRACT(MONTH FROM o.order_date) AS m FROM shop.order_items i JOIN shop.orders o ON o.order_id = i.order_id JOIN shop.products p ON p.product_id = i.product_id WHERE p.category = 'Toys & Games' GROUP BY m ORDER BY SUM(i.quantity) DESC LIMIT 1").await;
    assert_eq!(toys.rows[0][0].to_text(), "12");
    // Growth: each year sells more than the previous one.
    let years = run(&wh, "SELECT EXTRACT(YEAR FROM order_date) AS y, COUNT(*) AS n FROM shop.orders GROUP BY y ORDER BY y").await;
    let counts: Vec<i64> = years
        .rows
        .iter()
        .map(|r| match r[1] {
            Value::Int64(n) => n,
            _ => 0,
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_generation_is_fast() {
    let wh = demo().await;
    let took = wh.demo_generation_time().unwrap();
    println!("demo generation: {took:?}");
    // Generous for unoptimized builds on a busy 2-core machine; release is far below 1 s.
    assert!(took.as_secs_f64() < 10.0, "demo generation took {took:?}");
}
