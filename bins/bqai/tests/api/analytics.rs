//! History analytics endpoints and rerun: numbers from real queries, role scoping, validation.
//! (Every number of every endpoint against a hand-computed history, on both stores, is the
//! store's contract suite: `bqai_testkit::analytics`.)

use serde_json::{Value, json};

use crate::helpers::spawn_auth_app;

fn total(r: &Value, field: &str) -> u64 {
    r["total"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("total.{field} in {r}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_count_what_each_key_ran_and_analysts_see_only_their_own() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let q = |sql: &str| json!({"sql": sql});
    // The analyst: one shape twice (literals and layout differ), one refused statement.
    for sql in [
        "SELECT COUNT(*) AS n FROM shop.orders WHERE order_id > 5",
        "select count(*) as n\n from shop.orders where order_id>7",
    ] {
        let r = app.post_as(&keys.analyst, "/api/v1/query", &q(sql)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    app.post_as(
        &keys.analyst,
        "/api/v1/query",
        &q("DELETE FROM shop.orders"),
    )
    .await
    .assert_error(400, "SQL_REJECTED");
    // Someone else, and a dry run.
    let r = app
        .post_as(&keys.analyst_all, "/api/v1/query", &q("SELECT 1 AS one"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post_as(
            &keys.viewer,
            "/api/v1/query",
            &json!({"sql": "SELECT name FROM shop.products", "dry_run": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mine = app.get_as(&keys.analyst, "/api/v1/analytics/summary").await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["principal"], keys.analyst_id.as_str());
    assert_eq!(mine.body["group_by"], "day");
    assert_eq!(
        (
            total(&mine.body, "queries"),
            total(&mine.body, "succeeded"),
            total(&mine.body, "rejected")
        ),
        (3, 2, 1),
        "{}",
        mine.body
    );
    assert!(total(&mine.body, "bytes_processed") > 0);
    let buckets = mine.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 1, "one day");
    assert_eq!(
        buckets[0]["key"],
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );
    app.get_as(
        &keys.analyst,
        "/api/v1/analytics/summary?principal=someone-else",
    )
    .await
    .assert_error(403, "FORBIDDEN");

    let all = app
        .get_as(&keys.admin, "/api/v1/analytics/summary?group_by=principal")
        .await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(total(&all.body, "queries"), 4, "{}", all.body);
    assert_eq!(total(&all.body, "dry_runs"), 1);
    assert_eq!(all.body["buckets"].as_array().unwrap().len(), 3);
    let narrowed = app
        .get_as(
            &keys.admin,
            &format!("/api/v1/analytics/summary?principal={}", keys.analyst_id),
        )
        .await;
    assert_eq!(total(&narrowed.body, "queries"), 3, "{}", narrowed.body);

    // The two analyst queries are one shape; the admin sees the others' shapes too.
    let popular = app.get_as(&keys.analyst, "/api/v1/analytics/popular").await;
    assert_eq!(popular.status, 200, "{}", popular.body);
    let data = popular.body["data"].as_array().unwrap();
    assert_eq!(data[0]["count"], 2, "{}", popular.body);
    assert_eq!(data[0]["success_rate"], 1.0);
    assert_eq!(data.len(), 2, "the shape and the DELETE: {}", popular.body);
    let everyone = app
        .get_as(&keys.admin, "/api/v1/analytics/popular?limit=10")
        .await;
    assert_eq!(everyone.body["data"].as_array().unwrap().len(), 3);

    let errors = app.get_as(&keys.analyst, "/api/v1/analytics/errors").await;
    assert_eq!(
        errors.body["data"][0]["code"], "SQL_REJECTED",
        "{}",
        errors.body
    );
    assert_eq!(errors.body["data"][0]["count"], 1);
    let tables = app.get_as(&keys.analyst, "/api/v1/analytics/tables").await;
    assert_eq!(tables.status, 200, "{}", tables.body);
    let orders = &tables.body["data"][0];
    assert!(
        orders["table"].as_str().unwrap().ends_with("shop.orders"),
        "{}",
        tables.body
    );
    assert_eq!(orders["queries"], 2);
    for path in ["/api/v1/analytics/slowest", "/api/v1/analytics/expensive"] {
        let r = app.get_as(&keys.analyst, path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let entries = r.body["data"].as_array().unwrap();
        assert_eq!(entries.len(), 3, "{path}: {}", r.body);
        assert!(
            entries
                .iter()
                .all(|e| e["principal"] == keys.analyst_id.as_str())
        );
    }
    let slowest = app
        .get_as(&keys.admin, "/api/v1/analytics/slowest?limit=1")
        .await;
    assert_eq!(slowest.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_ranges_and_parameters_are_400s_and_old_ranges_say_retention() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    for path in [
        "/api/v1/analytics/summary?group_by=week",
        "/api/v1/analytics/summary?from=yesterday",
        "/api/v1/analytics/summary?from=2026-12-05&to=2026-12-01",
        "/api/v1/analytics/popular?kind=tables",
        "/api/v1/analytics/slowest?limit=0",
        "/api/v1/analytics/expensive?limit=101",
        "/api/v1/analytics/errors?nope=1",
    ] {
        app.get_as(&keys.admin, path)
            .await
            .assert_error(400, "INVALID_REQUEST");
    }
    let old = app
        .get_as(
            &keys.admin,
            "/api/v1/analytics/summary?from=2001-01-01&to=2001-02-01",
        )
        .await;
    assert_eq!(old.status, 200, "{}", old.body);
    assert!(
        old.body["retention_notice"]
            .as_str()
            .is_some_and(|n| n.contains("store.history_retention_days")),
        "{}",
        old.body
    );
    assert_eq!(old.body["from"], "2001-01-01T00:00:00Z");
    assert_eq!(
        old.body["to"], "2001-02-02T00:00:00Z",
        "a date `to` includes its day"
    );
    assert_eq!(total(&old.body, "queries"), 0);
    let recent = app.get_as(&keys.admin, "/api/v1/analytics/summary").await;
    assert!(recent.body["retention_notice"].is_null(), "{}", recent.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_runs_an_entry_again_through_the_whole_pipeline() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let first = app
        .post_as(
            &keys.analyst,
            "/api/v1/query",
            &json!({"sql": "SELECT COUNT(*) AS n FROM orders", "dataset_id": "shop"}),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let id = first.body["query_id"].as_str().unwrap().to_string();

    let again = app
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/history/{id}/rerun"),
            Some(&keys.analyst),
            None,
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["rows"], first.body["rows"]);
    let new_id = again.body["query_id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let entry = app
        .get_as(&keys.analyst, &format!("/api/v1/history/{new_id}"))
        .await;
    assert_eq!(entry.body["rerun_of"], id.as_str(), "{}", entry.body);
    assert_eq!(entry.body["dataset_id"], "shop");
    assert_eq!(entry.body["principal"], keys.analyst_id.as_str());

    let dry = app
        .post_as(
            &keys.analyst,
            &format!("/api/v1/history/{id}/rerun"),
            &json!({"dry_run": true}),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["dry_run"], true);

    // Another analyst cannot see (so cannot rerun) it; an admin can, as themselves.
    app.post_as(
        &keys.analyst_all,
        &format!("/api/v1/history/{id}/rerun"),
        &json!({}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let by_admin = app
        .post_as(
            &keys.admin,
            &format!("/api/v1/history/{id}/rerun"),
            &json!({}),
        )
        .await;
    assert_eq!(by_admin.status, 200, "{}", by_admin.body);

    // A refused statement is refused again, and that is recorded too.
    let refused = app
        .post_as(
            &keys.analyst,
            "/api/v1/query",
            &json!({"sql": "DELETE FROM shop.orders"}),
        )
        .await;
    refused.assert_error(400, "SQL_REJECTED");
    let history = app
        .get_as(&keys.analyst, "/api/v1/history?status=rejected")
        .await;
    let refused_id = history.body["data"][0]["id"].as_str().unwrap().to_string();
    app.post_as(
        &keys.analyst,
        &format!("/api/v1/history/{refused_id}/rerun"),
        &json!({}),
    )
    .await
    .assert_error(400, "SQL_REJECTED");
    let history = app
        .get_as(&keys.analyst, "/api/v1/history?status=rejected")
        .await;
    assert_eq!(history.body["data"][0]["rerun_of"], refused_id.as_str());

    // Viewers may only dry-run; bad bodies and ids are 4xx.
    app.post_as(
        &keys.viewer,
        &format!("/api/v1/history/{id}/rerun"),
        &json!({}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.post_as(
        &keys.analyst,
        &format!("/api/v1/history/{id}/rerun"),
        &json!({"nope": 1}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
    app.post_as(
        &keys.analyst,
        "/api/v1/history/not-an-id!/rerun",
        &json!({}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
}
