//! Paged results on the embedded engine: `page_size` on `POST /api/v1/query`, then
//! `GET /api/v1/query/{query_id}/results?page_token=` over the spooled rest. The pages of a
//! result add up to the result; a token works only for its caller, its query and its time.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_auth_app};

const ORDER_IDS: &str = "SELECT order_id, status FROM shop.orders ORDER BY order_id";

/// The path of the page after `page` (a response with a `next_page_token`).
fn next_path(page: &Value, page_size: Option<u64>) -> Option<String> {
    let token = page["next_page_token"].as_str()?;
    let size = page_size.map_or(String::new(), |n| format!("&page_size={n}"));
    Some(format!(
        "/api/v1/query/{}/results?page_token={token}{size}",
        page["query_id"].as_str().unwrap()
    ))
}

/// Every page of a paged query, first to last.
async fn all_pages(app: &TestApp, key: Option<&str>, body: &Value) -> Vec<Value> {
    let first = app
        .send(reqwest::Method::POST, "/api/v1/query", key, Some(body))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let mut pages = vec![first.body];
    while let Some(path) = next_path(pages.last().unwrap(), None) {
        let r = app.send(reqwest::Method::GET, &path, key, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        pages.push(r.body);
        assert!(pages.len() < 100, "pages never end");
    }
    pages
}

fn rows_of(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["rows"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pages_of_a_result_add_up_to_the_result() {
    let app = spawn_app().await;
    let whole = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": ORDER_IDS, "max_rows": 1000}),
        )
        .await;
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert_eq!(whole.body["next_page_token"], Value::Null);
    assert_eq!(whole.body["truncated"], true);

    let pages = all_pages(
        &app,
        None,
        &json!({"sql": ORDER_IDS, "max_rows": 1000, "page_size": 400}),
    )
    .await;
    let sizes: Vec<u64> = pages
        .iter()
        .map(|p| p["row_count"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [400, 400, 200]);
    assert_eq!(
        rows_of(&pages),
        whole.body["rows"].as_array().unwrap().clone()
    );
    let offsets: Vec<&Value> = pages[1..].iter().map(|p| &p["offset"]).collect();
    assert_eq!(offsets, [&json!(400), &json!(800)]);
    for p in &pages {
        assert_eq!(p["total_rows"], 1000, "{p}");
        assert_eq!(p["query_id"], pages[0]["query_id"]);
        assert_eq!(p["columns"], pages[0]["columns"]);
    }
    // Only the last page says the row cap cut the result.
    assert_eq!(pages[0]["truncated"], false);
    assert_eq!(pages[1]["truncated"], false);
    assert_eq!(pages[2]["truncated"], true);
    assert_eq!(pages[2]["truncated_reason"], "max_rows");
    assert!(
        pages[0]["sql"]
            .as_str()
            .unwrap()
            .contains("ORDER BY order_id")
    );

    // The page size may change from one page to the next.
    let second = app.get(&next_path(&pages[0], Some(150)).unwrap()).await;
    assert_eq!(second.body["row_count"], 150);
    assert_eq!(second.body["offset"], 400);
    let third = app.get(&next_path(&second.body, None).unwrap()).await;
    assert_eq!(third.body["offset"], 550);
    assert_eq!(
        third.body["rows"][0], whole.body["rows"][550],
        "the third page starts where the second ended"
    );

    // The query is in history once, with the rows of the whole result.
    let id = pages[0]["query_id"].as_str().unwrap();
    let entry = app.get(&format!("/api/v1/history/{id}")).await;
    assert_eq!(entry.status, 200, "{}", entry.body);
    assert_eq!(entry.body["row_count"], 1000);
    assert_eq!(entry.body["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_within_one_page_has_no_next_page() {
    let app = spawn_app().await;
    let r = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": "SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status", "page_size": 50}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["next_page_token"], Value::Null);
    assert_eq!(r.body["truncated"], false);
    let n = r.body["row_count"].as_u64().unwrap();
    assert!(n > 1);
    assert_eq!(r.body["total_rows"], n);

    // A paged dry run is a dry run.
    let dry = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": ORDER_IDS, "page_size": 50, "dry_run": true}),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["next_page_token"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_cut_at_the_response_byte_cap_still_add_up() {
    let app = spawn_app_with(|s| s.query.max_response_bytes = 4_000).await;
    let pages = all_pages(
        &app,
        None,
        &json!({"sql": ORDER_IDS, "max_rows": 300, "page_size": 200}),
    )
    .await;
    assert!(
        pages.len() > 3,
        "4 KB pages of ~45-byte rows: {}",
        pages.len()
    );
    let rows = rows_of(&pages);
    assert_eq!(rows.len(), 300);
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["order_id"].as_i64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, ids, "no row twice, none skipped, in order");
    for p in &pages[..pages.len() - 1] {
        assert_eq!(p["truncated"], false, "{p}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_too_large_to_spool_says_where_it_stops() {
    let app = spawn_app_with(|s| s.query.spool_max_bytes = 20_000).await;
    let pages = all_pages(
        &app,
        None,
        &json!({"sql": ORDER_IDS, "max_rows": 5000, "page_size": 100}),
    )
    .await;
    let rows = rows_of(&pages);
    assert!(
        rows.len() > 100 && rows.len() < 5000,
        "some spooled: {}",
        rows.len()
    );
    let last = pages.last().unwrap();
    assert_eq!(last["truncated"], true);
    assert_eq!(last["truncated_reason"], "spool_max_bytes");
    assert!(last["hint"].as_str().unwrap().contains("export"));
    assert_eq!(last["total_rows"], rows.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_and_sizes_are_client_errors() {
    let app = spawn_app().await;
    let first = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": ORDER_IDS, "max_rows": 500, "page_size": 100}),
        )
        .await;
    let id = first.body["query_id"].as_str().unwrap();
    let token = first.body["next_page_token"].as_str().unwrap();

    for size in [0, 10_001] {
        app.post_json(
            "/api/v1/query",
            &json!({"sql": ORDER_IDS, "page_size": size}),
        )
        .await
        .assert_error(400, "INVALID_REQUEST");
        app.get(&format!(
            "/api/v1/query/{id}/results?page_token={token}&page_size={size}"
        ))
        .await
        .assert_error(400, "INVALID_REQUEST");
    }
    // Tampered: one character of the body changed.
    let mut forged: Vec<char> = token.chars().collect();
    forged[5] = if forged[5] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    for bad in [forged.as_str(), "nonsense", "a.b", ""] {
        app.get(&format!("/api/v1/query/{id}/results?page_token={bad}"))
            .await
            .assert_error(400, "INVALID_REQUEST");
    }
    app.get(&format!("/api/v1/query/{id}/results"))
        .await
        .assert_error(400, "INVALID_REQUEST");
    // Another query's id: as if there were no such result.
    app.get(&format!(
        "/api/v1/query/0190aaaa-0000-7000-8000-000000000000/results?page_token={token}"
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    // Another server's token (another secret) does not open here.
    let other = spawn_app().await;
    other
        .get(&format!("/api/v1/query/{id}/results?page_token={token}"))
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_expire() {
    let app = spawn_app_with(|s| s.query.page_ttl_secs = 1).await;
    let first = app
        .post_json(
            "/api/v1/query",
            &json!({"sql": ORDER_IDS, "max_rows": 500, "page_size": 100}),
        )
        .await;
    let path = next_path(&first.body, None).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = app.get(&path).await;
    r.assert_error(404, "NOT_FOUND");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expire"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_is_its_callers_and_follows_their_grants() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let body = json!({"sql": ORDER_IDS, "max_rows": 300, "page_size": 100});
    let first = app.post_as(&keys.analyst, "/api/v1/query", &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let path = next_path(&first.body, None).unwrap();

    // Another key, even one that may read the dataset, does not get the pages.
    app.get_as(&keys.analyst_all, &path)
        .await
        .assert_error(404, "NOT_FOUND");
    app.get_as(&keys.admin, &path)
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(reqwest::Method::GET, &path, None, None)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let mine = app.get_as(&keys.analyst, &path).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["offset"], 100);

    // The viewer role may not run queries, so it may not page them either.
    app.post_as(&keys.viewer, "/api/v1/query", &body)
        .await
        .assert_error(403, "FORBIDDEN");

    // Once the key may no longer read `shop`, its pages are refused.
    let changed = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/admin/keys/{}", keys.analyst_id),
            Some(&keys.admin),
            Some(&json!({"datasets": ["secret"]})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    app.get_as(&keys.analyst, &path)
        .await
        .assert_error(403, "FORBIDDEN");
}
