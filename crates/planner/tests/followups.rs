//! Follow-ups with the built-in planner: each question after the first is read as an edit of
//! the previous plan (kept in the turn's generator state), and every SQL passes the guard and
//! runs on the demo warehouse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bqai_core::ask::{GenerationOutcome, SqlGenerator, suggest};
use bqai_core::conversation::{ResultSummary, Turn};
use bqai_core::model::{QueryResult, SqlDialect, Table};
use bqai_local::LocalWarehouse;
use bqai_planner::Planner;
use common::{context, model, run_guarded, shop_tables, warehouse};

/// One answered turn: its SQL and rows.
struct Answered {
    sql: String,
    result: QueryResult,
}

/// Asks `questions` in one conversation; panics if one gets no SQL or its SQL fails.
async fn converse(
    planner: &Planner,
    wh: &LocalWarehouse,
    tables: &[Table],
    questions: &[&str],
) -> (Vec<Answered>, Vec<Turn>) {
    let mut turns: Vec<Turn> = Vec::new();
    let mut out = Vec::new();
    for q in questions {
        let mut ctx = context(q, tables, Some(model()), SqlDialect::DataFusion);
        ctx.conversation = turns.clone();
        let generation = planner.generate(&ctx).await.expect("generate");
        let GenerationOutcome::Sql { sql, explanation } = generation.outcome else {
            panic!("{q:?} after {:?}: {:?}", questions, generation.outcome);
        };
        let result = run_guarded(wh, &sql)
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}\n{sql}"));
        assert!(generation.state.is_some(), "{q:?}: the plan is kept");
        turns.push(Turn {
            request_id: format!("r{}", turns.len()),
            question: (*q).to_owned(),
            sql: Some(sql.clone()),
            explanation,
            result: Some(ResultSummary::of(&result)),
            entities: generation.entities.expect("entities"),
            generator_state: generation.state,
            at: chrono::Utc::now(),
        });
        out.push(Answered { sql, result });
    }
    (out, turns)
}

/// The SQL of a fresh question (no conversation).
async fn fresh(planner: &Planner, tables: &[Table], q: &str) -> String {
    let ctx = context(q, tables, Some(model()), SqlDialect::DataFusion);
    match planner.generate(&ctx).await.expect("generate").outcome {
        GenerationOutcome::Sql { sql, .. } => sql,
        other => panic!("{q:?}: {other:?}"),
    }
}

/// The conversation: the third SQL reflects all three turns. "now by month" replaces
/// the country dimension with the month bucket (one line over the year, which the chat page
/// charts), keeps revenue and 2024; "only web orders" adds the channel filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_by_country_then_by_month_then_only_web() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());
    let (answers, turns) = converse(
        &planner,
        &wh,
        &tables,
        &[
            "revenue by country in 2024",
            "now by month",
            "only web orders",
        ],
    )
    .await;
    assert!(
        answers[0].sql.contains("customers.country"),
        "{}",
        answers[0].sql
    );
    assert_eq!(answers[0].result.rows.len(), 10, "ten countries");
    let second = &answers[1].sql;
    assert!(second.contains("date_trunc('month'"), "{second}");
    assert!(!second.contains("country"), "{second}");
    assert_eq!(answers[1].result.rows.len(), 12, "twelve months of 2024");
    let third = &answers[2].sql;
    for part in [
        "date_trunc('month'",
        "orders.channel = 'web'",
        "DATE '2024-01-01'",
        "DATE '2025-01-01'",
        "SUM(order_items.quantity * order_items.unit_price",
    ] {
        assert!(third.contains(part), "{part} missing from\n{third}");
    }
    assert!(!third.contains("country"), "{third}");
    assert_eq!(answers[2].result.rows.len(), 12);
    // The same rows as the question asked in one go.
    let one_go = fresh(
        &planner,
        &tables,
        "revenue by month in 2024 from web orders",
    )
    .await;
    let want = run_guarded(&wh, &one_go).await.unwrap();
    common::same_rows(&answers[2].result, &want, false).unwrap();
    let e = &turns[2].entities;
    assert_eq!(e.measures, ["revenue"]);
    assert_eq!(e.time_bucket.as_deref(), Some("month"));
    assert_eq!(e.time_range.as_deref(), Some("in 2024"));
    assert_eq!(e.filters, ["channel = web"]);
}

/// Each kind of edit, on its own, after "revenue by country in 2024".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_follow_up_edits_the_plan() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());
    let first = "revenue by country in 2024";
    let cases: &[(&str, &[&str], &[&str])] = &[
        // (follow-up, must contain, must not contain)
        (
            "by week",
            &["date_trunc('week'", "DATE '2024-01-01'"],
            &["country"],
        ),
        (
            "and by month",
            &["date_trunc('month'", "customers.country"],
            &[],
        ),
        (
            "only web orders",
            &["orders.channel = 'web'", "customers.country"],
            &[],
        ),
        (
            "just for enterprise customers",
            &["customers.segment = 'enterprise'", "customers.country"],
            &[],
        ),
        (
            "what about 2023?",
            &["DATE '2023-01-01'", "DATE '2024-01-01'"],
            &["2025"],
        ),
        (
            "and for last year",
            &["DATE '2023-01-01'", "customers.country"],
            &["2025"],
        ),
        (
            "top 3 instead",
            &["LIMIT 3", "ORDER BY revenue DESC NULLS LAST"],
            &[],
        ),
        (
            "and by channel",
            &["orders.channel AS channel", "customers.country"],
            &[],
        ),
        (
            "split by segment",
            &["customers.segment AS segment", "customers.country"],
            &[],
        ),
        (
            "show orders instead",
            &["COUNT(", "customers.country"],
            &["unit_price"],
        ),
    ];
    for (follow_up, has, lacks) in cases {
        let (answers, _) = converse(&planner, &wh, &tables, &[first, follow_up]).await;
        let sql = &answers[1].sql;
        for part in *has {
            assert!(
                sql.contains(part),
                "{follow_up:?}: {part} missing from\n{sql}"
            );
        }
        for part in *lacks {
            assert!(
                !sql.contains(part),
                "{follow_up:?}: {part} present in\n{sql}"
            );
        }
        assert_ne!(sql, &answers[0].sql, "{follow_up:?} changed nothing");
    }
    // Chained: top 3 then "top 5 instead" changes N again; a ranking survives a filter.
    let (answers, _) = converse(
        &planner,
        &wh,
        &tables,
        &[
            "top 3 countries by revenue in 2024",
            "top 5 instead",
            "only mobile orders",
        ],
    )
    .await;
    assert!(answers[1].sql.contains("LIMIT 5"), "{}", answers[1].sql);
    assert_eq!(answers[2].result.rows.len(), 5);
    assert!(answers[2].sql.contains("'mobile'"), "{}", answers[2].sql);
}

/// The plans of issue 19's forms are kept in the turn like any other and edited the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_growth_and_absences_are_kept_and_edited() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "2024 vs 2023 revenue by country",
            "only web orders",
            &[
                "orders.channel = 'web'",
                "revenue_change_pct",
                "customers.country",
            ],
        ),
        (
            "how many customers never ordered on mobile",
            "just for enterprise customers",
            &[
                "customers.segment = 'enterprise'",
                "NOT IN (SELECT",
                "'mobile'",
            ],
        ),
        (
            "revenue growth by month in 2024",
            "and by channel",
            &["PARTITION BY channel ORDER BY month", "DATE '2023-12-01'"],
        ),
    ];
    for (first, follow_up, has) in cases {
        let (answers, _) = converse(&planner, &wh, &tables, &[first, follow_up]).await;
        let sql = &answers[1].sql;
        for part in *has {
            assert!(
                sql.contains(part),
                "{first:?} then {follow_up:?}: {part} missing from\n{sql}"
            );
        }
    }
}

/// A question that is not an edit is read fresh, even mid-conversation; one that is neither
/// is refused as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_questions_are_read_fresh() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());
    let (answers, _) = converse(
        &planner,
        &wh,
        &tables,
        &[
            "revenue by country in 2024",
            "number of products by category",
        ],
    )
    .await;
    assert_eq!(
        answers[1].sql,
        fresh(&planner, &tables, "number of products by category").await
    );
    let (_, turns) = converse(&planner, &wh, &tables, &["revenue by country in 2024"]).await;
    let mut ctx = context(
        "and by flux capacitor",
        &tables,
        Some(model()),
        SqlDialect::DataFusion,
    );
    ctx.conversation = turns;
    let g = planner.generate(&ctx).await.unwrap();
    assert!(
        matches!(g.outcome, GenerationOutcome::CannotAnswer { .. }),
        "{:?}",
        g.outcome
    );
    assert_eq!(g.state, None);
}

/// Every suggestion offered after a demo question, asked as a follow-up, gives SQL that passes
/// the guard and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_are_runnable_follow_ups() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());
    let model = model();
    for q in [
        "revenue by country in 2024",
        "number of orders by channel",
        "average discount by category",
        "top 5 products by revenue in 2023",
        "revenue by month in 2025",
        "number of customers by segment",
    ] {
        let (_, turns) = converse(&planner, &wh, &tables, &[q]).await;
        let suggestions = suggest::suggestions(&turns[0].entities, &tables, Some(&model));
        assert!(
            (2..=4).contains(&suggestions.len()),
            "{q:?}: {suggestions:?}"
        );
        for s in &suggestions {
            let (answers, _) = converse(&planner, &wh, &tables, &[q, &s.question]).await;
            assert_ne!(answers[1].sql, answers[0].sql, "{q:?} → {:?}", s.question);
        }
    }
}
