//! Authentication and authorization over HTTP: every route × role × dataset grant, key
//! lifecycle, per-key limits and quotas, WebSocket tickets, CORS order and the audit log.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Keys, TestApp, spawn_app, spawn_auth_app};

/// Who calls in the authorization table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Admin,
    /// Analyst limited to `shop`.
    Analyst,
    /// Viewer limited to `shop`.
    Viewer,
}

fn key(keys: &Keys, who: Who) -> Option<&str> {
    match who {
        Who::Nobody => None,
        Who::Admin => Some(&keys.admin),
        Who::Analyst => Some(&keys.analyst),
        Who::Viewer => Some(&keys.viewer),
    }
}

struct Case {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    /// Expected status for admin, analyst (shop), viewer (shop); nobody always gets 401.
    admin: u16,
    analyst: u16,
    viewer: u16,
}

fn case(method: Method, path: &'static str, body: Option<Value>, expect: [u16; 3]) -> Case {
    Case {
        method,
        path,
        body,
        admin: expect[0],
        analyst: expect[1],
        viewer: expect[2],
    }
}

fn table() -> Vec<Case> {
    use Method as M;
    let q = |sql: &str| Some(json!({ "sql": sql }));
    let dry = |sql: &str| Some(json!({ "sql": sql, "dry_run": true }));
    vec![
        case(M::GET, "/api/v1/datasets", None, [200, 200, 200]),
        case(M::GET, "/api/v1/datasets/shop", None, [200, 200, 200]),
        case(M::GET, "/api/v1/datasets/secret", None, [200, 403, 403]),
        case(
            M::GET,
            "/api/v1/datasets/shop/tables",
            None,
            [200, 200, 200],
        ),
        case(
            M::GET,
            "/api/v1/datasets/secret/tables",
            None,
            [200, 403, 403],
        ),
        case(
            M::GET,
            "/api/v1/datasets/shop/tables/orders",
            None,
            [200, 200, 200],
        ),
        case(
            M::GET,
            "/api/v1/datasets/secret/tables/salaries",
            None,
            [200, 403, 403],
        ),
        case(
            M::GET,
            "/api/v1/datasets/shop/tables/orders/preview?limit=2",
            None,
            [200, 200, 200],
        ),
        case(
            M::GET,
            "/api/v1/datasets/secret/tables/salaries/preview",
            None,
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/query",
            q("SELECT COUNT(*) AS n FROM shop.orders"),
            [200, 200, 403],
        ),
        case(
            M::POST,
            "/api/v1/query",
            dry("SELECT COUNT(*) AS n FROM shop.orders"),
            [200, 200, 200],
        ),
        case(
            M::POST,
            "/api/v1/query",
            q("SELECT name FROM secret.salaries"),
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/query",
            dry("SELECT name FROM secret.salaries"),
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/query",
            q(
                "SELECT o.order_id, s.salary FROM shop.orders o JOIN secret.salaries s ON true LIMIT 1",
            ),
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/ask",
            Some(json!({"question": "how many orders are there", "dataset_id": "shop"})),
            [200, 200, 403],
        ),
        case(
            M::POST,
            "/api/v1/ask",
            Some(
                json!({"question": "how many orders are there", "dataset_id": "shop", "execute": false}),
            ),
            [200, 200, 200],
        ),
        case(
            M::POST,
            "/api/v1/ask",
            Some(
                json!({"question": "how many rows are in salaries", "dataset_id": "secret", "execute": false}),
            ),
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/query-agent",
            Some(
                json!({"prompt": "how many orders are there", "dataset_id": "shop", "dry_run": true}),
            ),
            [200, 200, 200],
        ),
        case(M::GET, "/api/v1/history", None, [200, 200, 200]),
        case(M::GET, "/api/v1/admin/keys", None, [200, 403, 403]),
        case(
            M::POST,
            "/api/v1/admin/keys",
            Some(json!({"name": "made in the table", "role": "viewer", "datasets": ["shop"]})),
            [201, 403, 403],
        ),
        case(M::GET, "/api/v1/admin/audit", None, [200, 403, 403]),
        case(
            M::DELETE,
            "/api/v1/admin/cache?dataset_id=shop",
            None,
            [200, 403, 403],
        ),
        case(
            M::POST,
            "/api/v1/ws-ticket",
            Some(json!({})),
            [200, 200, 200],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_role_and_grant_as_specified() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    for c in table() {
        for who in [Who::Nobody, Who::Admin, Who::Analyst, Who::Viewer] {
            let expected = match who {
                Who::Nobody => 401,
                Who::Admin => c.admin,
                Who::Analyst => c.analyst,
                Who::Viewer => c.viewer,
            };
            let r = app
                .send(c.method.clone(), c.path, key(&keys, who), c.body.as_ref())
                .await;
            assert_eq!(
                r.status, expected,
                "{who:?} {} {} {:?}: {}",
                c.method, c.path, c.body, r.body
            );
            match expected {
                401 => {
                    r.assert_error(401, "UNAUTHENTICATED");
                    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
                }
                403 => r.assert_error(403, "FORBIDDEN"),
                _ => {}
            }
        }
    }
    // Health stays open: load balancers probe it without a key.
    assert_eq!(app.get("/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_show_only_granted_datasets() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let names = |r: &crate::helpers::Reply| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["dataset_id"].as_str().unwrap().to_string())
            .collect()
    };
    let admin = app.get_as(&keys.admin, "/api/v1/datasets").await;
    assert_eq!(names(&admin), ["secret", "shop"], "{}", admin.body);
    let analyst = app.get_as(&keys.analyst, "/api/v1/datasets").await;
    assert_eq!(names(&analyst), ["shop"], "{}", analyst.body);
    let all = app.get_as(&keys.analyst_all, "/api/v1/datasets").await;
    assert_eq!(names(&all), ["secret", "shop"]);
}

/// `key` with the last character of its secret changed (to `y` when it is already `x`, one
/// key in 62, which made the tests that used a fixed `x` fail now and then).
fn with_wrong_secret(key: &str) -> String {
    let (head, last) = key.split_at(key.len() - 1);
    format!("{head}{}", if last == "x" { "y" } else { "x" })
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_unknown_credentials_are_401_in_every_form() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let url = format!("{}/api/v1/datasets", app.address);
    let wrong_secret = with_wrong_secret(&keys.analyst);
    let unknown_id = format!("bqai_zzzzzzzzzzzz_{}", &keys.analyst[18..]);
    let cases: Vec<(&str, String)> = vec![
        ("authorization", "Bearer".into()),
        ("authorization", "Basic dXNlcjpwYXNz".into()),
        ("authorization", "Bearer not-a-key".into()),
        ("authorization", format!("Bearer {wrong_secret}")),
        ("authorization", format!("Bearer {unknown_id}")),
        ("x-api-key", "bqai_short_x".into()),
        ("x-api-key", wrong_secret.clone()),
    ];
    for (header, value) in cases {
        let r = app
            .client
            .get(&url)
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}: {value}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        // The message never echoes what was presented.
        if value.len() > 20 {
            assert!(
                !body.to_string().contains(&value[value.len() - 12..]),
                "{body}"
            );
        }
    }
    // X-API-Key works like Bearer.
    let r = app
        .client
        .get(&url)
        .header("x-api-key", &keys.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_lives_from_creation_to_revocation() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let created = app
        .post_as(
            &keys.admin,
            "/api/v1/admin/keys",
            &json!({"name": "reporting", "owner": "data team", "role": "analyst",
                    "datasets": ["shop"], "rate_limit_per_minute": 100}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("bqai_{id}_")));
    assert_eq!(created.body["status"], "active");
    assert!(
        created.body.get("secret_hash").is_none(),
        "{}",
        created.body
    );

    // Use it.
    let r = app
        .post_as(
            &key,
            "/api/v1/query",
            &json!({"sql": "SELECT COUNT(*) AS n FROM shop.orders"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The secret is never shown again: not in the list, not in the key's own page.
    let list = app.get_as(&keys.admin, "/api/v1/admin/keys").await;
    assert_eq!(list.status, 200);
    assert!(
        !list.body.to_string().contains(&key[18..]),
        "secret in the list"
    );
    let one = app
        .get_as(&keys.admin, &format!("/api/v1/admin/keys/{id}"))
        .await;
    assert_eq!(one.body["name"], "reporting");
    assert!(one.body["last_used_at"].is_string(), "{}", one.body);
    assert!(!one.body.to_string().contains(&key[18..]));

    // Demote to viewer: the next query is forbidden, a dry run is fine.
    let patched = app
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/keys/{id}"),
            Some(&keys.admin),
            Some(&json!({"role": "viewer", "owner": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["role"], "viewer");
    assert!(patched.body["owner"].is_null());
    assert_eq!(patched.body["rate_limit_per_minute"], 100, "unchanged");
    app.post_as(&key, "/api/v1/query", &json!({"sql": "SELECT 1 AS x"}))
        .await
        .assert_error(403, "FORBIDDEN");

    // Revoke: 401 on the next use, and listed as revoked only on request.
    let revoked = app
        .send(
            Method::DELETE,
            &format!("/api/v1/admin/keys/{id}"),
            Some(&keys.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["status"], "revoked");
    app.get_as(&key, "/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let active = app.get_as(&keys.admin, "/api/v1/admin/keys").await;
    assert!(!active.body.to_string().contains(&id));
    let all = app
        .get_as(&keys.admin, "/api/v1/admin/keys?include_revoked=true")
        .await;
    assert!(all.body.to_string().contains(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_is_refused() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let id = &keys.analyst_id;
    assert_eq!(
        app.get_as(&keys.analyst, "/api/v1/datasets").await.status,
        200
    );
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/v1/admin/keys/{id}"),
            Some(&keys.admin),
            Some(&json!({ "expires_at": past })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "expired");
    let r = app.get_as(&keys.analyst, "/api/v1/datasets").await;
    r.assert_error(401, "UNAUTHENTICATED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // Creating a key that expires in the past is a 400, not a dead key.
    app.post_as(
        &keys.admin,
        "/api/v1/admin/keys",
        &json!({"name": "x", "role": "viewer", "expires_at": past}),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_rejects_bad_input_with_400s() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let bad_bodies = [
        json!({"name": "x", "role": "root"}),
        json!({"name": "", "role": "viewer"}),
        json!({"name": "x", "role": "viewer", "datasets": []}),
        json!({"name": "x", "role": "viewer", "datasets": ["no such; drop"]}),
        json!({"name": "x", "role": "viewer", "rate_limit_per_minute": 0}),
        json!({"name": "x", "role": "viewer", "unknown": 1}),
    ];
    for body in bad_bodies {
        app.post_as(&keys.admin, "/api/v1/admin/keys", &body)
            .await
            .assert_error(400, "INVALID_REQUEST");
    }
    app.get_as(&keys.admin, "/api/v1/admin/keys/not-a-key-id")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get_as(&keys.admin, "/api/v1/admin/keys/zzzzzzzzzzzz")
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(
        Method::PATCH,
        "/api/v1/admin/keys/zzzzzzzzzzzz",
        Some(&keys.admin),
        Some(&json!({})),
    )
    .await
    .assert_error(400, "INVALID_REQUEST");
    app.get_as(&keys.admin, "/api/v1/admin/audit?action=dance")
        .await
        .assert_error(400, "INVALID_REQUEST");
    app.get_as(&keys.admin, "/api/v1/admin/audit?since=yesterday")
        .await
        .assert_error(400, "INVALID_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_per_key() {
    let (app, keys) = spawn_auth_app(|s| s.server.requests_per_minute = 1000).await;
    let make = |name: &str| json!({"name": name, "role": "viewer", "datasets": ["shop"], "rate_limit_per_minute": 3});
    let a = app
        .post_as(&keys.admin, "/api/v1/admin/keys", &make("a"))
        .await;
    let b = app
        .post_as(&keys.admin, "/api/v1/admin/keys", &make("b"))
        .await;
    let (a, b) = (
        a.body["key"].as_str().unwrap().to_string(),
        b.body["key"].as_str().unwrap().to_string(),
    );
    for i in 0..3 {
        let r = app.get_as(&a, "/api/v1/datasets").await;
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    }
    let limited = app.get_as(&a, "/api/v1/datasets").await;
    limited.assert_error(429, "RATE_LIMITED");
    assert!(limited.header("retry-after").is_some());
    // The other key (and the admin, on the server default) are untouched.
    let r = app.get_as(&b, "/api/v1/datasets").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    let r = app.get_as(&keys.admin, "/api/v1/datasets").await;
    assert_eq!(r.header("x-ratelimit-limit"), Some("1000"));
}

#[tokio::test(flavor = "multi_thread")]
async fn daily_byte_quotas_are_per_key_checked_before_and_charged_after() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let sql = "SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status";
    let dry = app
        .post_as(
            &keys.admin,
            "/api/v1/query",
            &json!({"sql": sql, "dry_run": true}),
        )
        .await;
    let estimate = dry.body["stats"]["bytes_processed"].as_u64().unwrap();
    assert!(estimate > 0, "{}", dry.body);
    // Room for one run of this query, not two.
    let quota = estimate + estimate / 2;
    let make = |name: &str| json!({"name": name, "role": "analyst", "datasets": ["shop"], "daily_byte_quota": quota});
    let a = app
        .post_as(&keys.admin, "/api/v1/admin/keys", &make("qa"))
        .await;
    let b = app
        .post_as(&keys.admin, "/api/v1/admin/keys", &make("qb"))
        .await;
    let (a, b) = (
        a.body["key"].as_str().unwrap().to_string(),
        b.body["key"].as_str().unwrap().to_string(),
    );
    let run = json!({"sql": sql, "use_cache": false});
    let first = app.post_as(&a, "/api/v1/query", &run).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let second = app.post_as(&a, "/api/v1/query", &run).await;
    second.assert_error(429, "QUOTA_EXCEEDED");
    let retry: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 86_400, "{retry}");
    assert!(
        second.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at"),
        "{}",
        second.body
    );
    // Dry runs are not billed, so they still work; the other key has its own budget.
    let dry = app
        .post_as(&a, "/api/v1/query", &json!({"sql": sql, "dry_run": true}))
        .await;
    assert_eq!(dry.status, 200);
    let other = app.post_as(&b, "/api/v1/query", &run).await;
    assert_eq!(other.status, 200, "{}", other.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_need_a_key_or_a_ticket() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let url = format!("{}/api/v1/ws/agent", app.address);
    let upgrade = |url: String| {
        app.client
            .get(url)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    // Neither key nor ticket.
    let r = upgrade(url.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A forged ticket.
    let r = upgrade(format!("{url}?ticket=wst_e30.AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let t = app
        .post_as(&keys.analyst, "/api/v1/ws-ticket", &json!({}))
        .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let ticket = t.body["ticket"].as_str().unwrap().to_string();
    assert!(t.body["expires_in_secs"].as_u64().unwrap() > 0);
    // The ticket passes authentication on an upgrade (what answers next is the route).
    let r = upgrade(format!("{url}?ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401);
    // It is not a REST credential.
    let r = app
        .client
        .get(format!("{}/api/v1/datasets?ticket={ticket}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Revoking the key kills its tickets.
    let revoke = app
        .send(
            Method::DELETE,
            &format!("/api/v1/admin/keys/{}", keys.analyst_id),
            Some(&keys.admin),
            None,
        )
        .await;
    assert_eq!(revoke.status, 200);
    let r = upgrade(format!("{url}?ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_is_private_to_each_key_and_whole_for_admins() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let a = app
        .post_as(
            &keys.analyst,
            "/api/v1/query",
            &json!({"sql": "SELECT 1 AS a"}),
        )
        .await;
    let a_id = a.body["query_id"].as_str().unwrap().to_string();
    let b = app
        .post_as(
            &keys.analyst_all,
            "/api/v1/query",
            &json!({"sql": "SELECT 2 AS b"}),
        )
        .await;
    let b_id = b.body["query_id"].as_str().unwrap().to_string();

    let ids = |r: &crate::helpers::Reply| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mine = app.get_as(&keys.analyst, "/api/v1/history").await;
    assert_eq!(ids(&mine), std::slice::from_ref(&a_id), "{}", mine.body);
    let theirs = app.get_as(&keys.analyst_all, "/api/v1/history").await;
    assert_eq!(ids(&theirs), std::slice::from_ref(&b_id));
    let all = app.get_as(&keys.admin, "/api/v1/history").await;
    assert!(ids(&all).contains(&a_id) && ids(&all).contains(&b_id));
    let one = app
        .get_as(
            &keys.admin,
            &format!("/api/v1/history?principal={}", keys.analyst_id),
        )
        .await;
    assert_eq!(ids(&one), std::slice::from_ref(&a_id));

    assert_eq!(
        app.get_as(&keys.analyst, &format!("/api/v1/history/{a_id}"))
            .await
            .status,
        200
    );
    app.get_as(&keys.analyst, &format!("/api/v1/history/{b_id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get_as(&keys.analyst_all, "/api/v1/history?principal=someone")
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_records_access_and_denials_without_secrets() {
    let (app, keys) = spawn_auth_app(|_| {}).await;
    let ok = app
        .post_as(
            &keys.analyst,
            "/api/v1/query",
            &json!({"sql": "SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    let denied = app
        .post_as(
            &keys.analyst,
            "/api/v1/query",
            &json!({"sql": "SELECT o.order_id FROM shop.orders o JOIN secret.salaries s ON true"}),
        )
        .await;
    denied.assert_error(403, "FORBIDDEN");
    let bad_secret = with_wrong_secret(&keys.analyst);
    app.get_as(&bad_secret, "/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");
    app.get("/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");

    let log = app
        .get_as(
            &keys.admin,
            &format!("/api/v1/admin/audit?principal={}", keys.analyst_id),
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let events = log.body["data"].as_array().unwrap();
    // Newest first: the failed authentication presented the analyst's id.
    let auth_fail = &events[0];
    assert_eq!(auth_fail["outcome"], "denied");
    assert_eq!(auth_fail["status"], 401);
    assert_eq!(auth_fail["error_code"], "UNAUTHENTICATED");
    assert_eq!(auth_fail["route"], "GET /api/v1/datasets");
    let forbidden = &events[1];
    assert_eq!(forbidden["action"], "query");
    assert_eq!(forbidden["outcome"], "denied");
    assert_eq!(forbidden["error_code"], "FORBIDDEN");
    assert_eq!(forbidden["sql_fingerprint"].as_str().unwrap().len(), 16);
    let allowed = &events[2];
    assert_eq!(allowed["action"], "query");
    assert_eq!(allowed["outcome"], "allowed");
    assert_eq!(allowed["targets"], json!(["shop.orders"]));
    assert!(allowed["bytes"].as_u64().unwrap() > 0, "{allowed}");
    assert_eq!(allowed["client_addr"], "127.0.0.1");
    assert!(allowed["request_id"].is_string());

    let denials = app
        .get_as(
            &keys.admin,
            "/api/v1/admin/audit?outcome=denied&action=catalog_read",
        )
        .await;
    let anonymous = denials.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["principal"].is_null())
        .expect("the call without a key is recorded");
    assert_eq!(anonymous["status"], 401);

    // No secret, no SQL text anywhere in the log.
    let everything = app
        .get_as(&keys.admin, "/api/v1/admin/audit?page_size=500")
        .await
        .body
        .to_string();
    for k in [&keys.admin, &keys.analyst, &keys.viewer, &bad_secret] {
        assert!(
            !everything.contains(&k[18..]),
            "a secret is in the audit log"
        );
    }
    assert!(
        !everything.contains("COUNT(*)"),
        "SQL text is in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_preflights_need_no_key_and_errors_carry_cors_and_security_headers() {
    let (app, _keys) = spawn_auth_app(|s| {
        s.server.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let url = format!("{}/api/v1/query", app.address);
    let pre = app
        .client
        .request(Method::OPTIONS, &url)
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let err = app
        .client
        .post(&url)
        .header("origin", "https://app.example.com")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(err.status(), 401);
    let h = err.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("x-request-id"));
    // Another origin gets no CORS grant.
    let other = app
        .client
        .get(format!("{}/health", app.address))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_off_everyone_is_the_anonymous_admin() {
    let app: TestApp = spawn_app().await;
    assert_eq!(app.get("/api/v1/datasets").await.status, 200);
    let t = app.post_json("/api/v1/ws-ticket", &json!({})).await;
    assert_eq!(t.status, 200);
    assert!(t.body["ticket"].is_null());
    app.post_json(
        "/api/v1/admin/keys",
        &json!({"name": "x", "role": "viewer"}),
    )
    .await
    .assert_error(409, "AUTH_DISABLED");
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_tokens_authenticate_beside_api_keys() {
    use bqai_testkit::oidc::{AUDIENCE, Issuer, TestKey, claims, now, with};
    let key = TestKey::ec("k1");
    let issuer = Issuer::start(&[&key]).await;
    let (app, keys) = spawn_auth_app(|s| {
        s.auth.mode = bqai::config::AuthMode::ApiKeyOidc;
        let mut oidc = bqai_oidc::OidcConfig::new(issuer.url(), AUDIENCE);
        oidc.jwks_url = Some(issuer.jwks_url());
        oidc.algorithms = vec!["ES256".into()];
        // Refetch on every unknown kid, so the outage below is met at once.
        oidc.jwks_refresh_min_interval_secs = 0;
        s.auth.oidc = Some(oidc);
    })
    .await;
    let token = key.sign(&claims(&issuer.url()));
    let r = app
        .post_as(
            &token,
            "/api/v1/query",
            &json!({"sql": "SELECT COUNT(*) AS n FROM shop.orders"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The token's datasets claim (shop) is enforced like a key's grant.
    app.post_as(
        &token,
        "/api/v1/query",
        &json!({"sql": "SELECT name FROM secret.salaries"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // Its history is its own, under oidc:<sub>.
    let h = app.get_as(&token, "/api/v1/history").await;
    assert_eq!(h.body["data"][0]["principal"], "oidc:alice", "{}", h.body);
    // API keys still work.
    assert_eq!(
        app.get_as(&keys.viewer, "/api/v1/datasets").await.status,
        200
    );

    let expired = key.sign(&with(claims(&issuer.url()), json!({"exp": now() - 3600})));
    app.get_as(&expired, "/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");
    let viewer = key.sign(&with(claims(&issuer.url()), json!({"bqai_role": "viewer"})));
    app.post_as(&viewer, "/api/v1/query", &json!({"sql": "SELECT 1 AS x"}))
        .await
        .assert_error(403, "FORBIDDEN");
    // A token under a key the issuer never published, while the issuer is down: 503, not a
    // 401 that would make a client throw away a good token.
    issuer.set_down(true);
    let rotated = TestKey::ec("k2");
    let r = app
        .get_as(&rotated.sign(&claims(&issuer.url())), "/api/v1/datasets")
        .await;
    r.assert_error(503, "UNAVAILABLE");
}
