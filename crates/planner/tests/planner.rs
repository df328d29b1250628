//! The `SqlGenerator` contract of the planner on the demo warehouse: identity, values sampled
//! from the data, retries of a failed query, verified examples, refusals.

mod common;

use bqai_core::ask::{FailedAttempt, GenerationOutcome, SqlGenerator};
use bqai_core::model::SqlDialect;
use bqai_core::semantic::Example;
use bqai_planner::Planner;
use common::{context, model, shop_tables, warehouse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_contract() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = Planner::new(wh.clone());

    let info = planner.info();
    assert_eq!(info.kind, "builtin");
    assert_eq!(info.model, None);

    // Values come from the data: "Japan" and "enterprise" are found there.
    let ctx = context(
        "revenue from enterprise customers in Japan by year",
        &tables,
        Some(model()),
        SqlDialect::DataFusion,
    );
    let first = planner.generate(&ctx).await.unwrap();
    assert_eq!(first.usage, None);
    let GenerationOutcome::Sql { sql, explanation } = &first.outcome else {
        panic!("{:?}", first.outcome);
    };
    assert!(sql.contains("customers.country = 'Japan'"), "{sql}");
    assert!(sql.contains("customers.segment = 'enterprise'"), "{sql}");
    assert!(explanation.ends_with('.'), "{explanation}");

    // Deterministic, the second time from cached values.
    let again = planner.generate(&ctx).await.unwrap();
    assert_eq!(again, first);

    // A retry after that very SQL failed reports the failure instead of repeating it.
    let mut retry = ctx.clone();
    retry.failed_attempts.push(FailedAttempt {
        sql: Some(sql.clone()),
        error: "engine exploded".to_owned(),
    });
    match planner.generate(&retry).await.unwrap().outcome {
        GenerationOutcome::CannotAnswer { reason } => {
            assert!(reason.contains("engine exploded"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A failure of some other SQL (another generator's) does not stop it.
    let mut other = ctx.clone();
    other.failed_attempts.push(FailedAttempt {
        sql: Some("SELECT 1".to_owned()),
        error: "nope".to_owned(),
    });
    assert_eq!(planner.generate(&other).await.unwrap(), first);

    // A verified example asking exactly this question wins.
    let mut with_example = context(
        "What share of 2025 revenue did each channel bring in?",
        &tables,
        Some(model()),
        SqlDialect::DataFusion,
    );
    with_example.examples = vec![Example {
        question: "what share of 2025 revenue did each channel bring in".to_owned(),
        sql: "SELECT 42 AS answer".to_owned(),
    }];
    match planner.generate(&with_example).await.unwrap().outcome {
        GenerationOutcome::Sql { sql, .. } => assert_eq!(sql, "SELECT 42 AS answer"),
        other => panic!("{other:?}"),
    }

    // Refusals are answers, not errors.
    let ctx = context(
        "why did sales drop",
        &tables,
        Some(model()),
        SqlDialect::DataFusion,
    );
    assert!(matches!(
        planner.generate(&ctx).await.unwrap().outcome,
        GenerationOutcome::CannotAnswer { .. }
    ));
    let ctx = context(
        "revenue by country",
        &[],
        Some(model()),
        SqlDialect::DataFusion,
    );
    assert!(matches!(
        planner.generate(&ctx).await.unwrap().outcome,
        GenerationOutcome::CannotAnswer { .. }
    ));
}
