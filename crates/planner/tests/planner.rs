//! The `SqlGenerator` contract of the planner on the demo warehouse: identity, values sampled
//! from the data, retries of a failed query, verified examples, refusals.

mod common;

use bqai_core::ask::{FailedAttempt, GenerationOutcome, SqlGenerator};
use bqai_core::model::SqlDialect;
use bqai_core::semantic::Example;
use common::{context, model, shop_tables, warehouse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_contract() {
    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let planner = common::planner(wh.clone());

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

/// Sampling is a query like any other: it passes the guard (a dataset outside the allow-list
/// is never sampled), respects `ask.sampling_max_bytes`, and is recorded as kind `system` by
/// the planner's service principal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_sampling_goes_through_the_query_pipeline() {
    use bqai_core::history::{QueryKind, QueryStatus};
    use bqai_core::query::QueryLimits;
    use bqai_core::system::{GuardedSystemQueries, SystemQueryLimits};

    let wh = warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let question = "revenue from enterprise customers in Japan by year";
    let ctx = context(question, &tables, Some(model()), SqlDialect::DataFusion);

    let (planner, history) = common::planner_with(
        wh.clone(),
        QueryLimits::default(),
        SystemQueryLimits::default(),
    );
    let GenerationOutcome::Sql { sql, .. } = planner.generate(&ctx).await.unwrap().outcome else {
        panic!("no SQL");
    };
    assert!(sql.contains("customers.country = 'Japan'"), "{sql}");
    let entries = history.0.lock().unwrap().clone();
    assert!(!entries.is_empty(), "sampling recorded nothing");
    for e in &entries {
        assert_eq!(e.kind, QueryKind::System, "{e:?}");
        assert_eq!(e.principal.as_deref(), Some(GuardedSystemQueries::PLANNER));
        assert_eq!(e.status, QueryStatus::Succeeded, "{e:?}");
        assert!(
            e.sql_submitted.starts_with("SELECT DISTINCT"),
            "{}",
            e.sql_submitted
        );
        // The guard's rewrite ran: the SQL executed is the guard's rendering.
        assert!(e.sql_executed.is_some(), "{e:?}");
    }

    // The guard decides: with `shop` outside the allow-list nothing is sampled or run, and
    // the question simply loses its values.
    let fenced = QueryLimits {
        allowed: bqai_core::model::DatasetScope::Only(["other".to_owned()].into()),
        ..QueryLimits::default()
    };
    let (planner, history) = common::planner_with(wh.clone(), fenced, SystemQueryLimits::default());
    let outcome = planner.generate(&ctx).await.unwrap().outcome;
    if let GenerationOutcome::Sql { sql, .. } = &outcome {
        assert!(!sql.contains("'Japan'"), "{sql}");
    }
    assert!(
        history
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.status != QueryStatus::Succeeded),
        "a refused sample must not have run"
    );

    // The per-query byte budget: every sample of `shop` estimates above one byte.
    let tiny = SystemQueryLimits {
        max_bytes_per_query: 1,
        ..SystemQueryLimits::default()
    };
    let (planner, history) = common::planner_with(wh, QueryLimits::default(), tiny);
    let outcome = planner.generate(&ctx).await.unwrap().outcome;
    if let GenerationOutcome::Sql { sql, .. } = &outcome {
        assert!(!sql.contains("'Japan'"), "{sql}");
    }
    assert!(
        history.0.lock().unwrap().is_empty(),
        "nothing over budget runs"
    );
}
