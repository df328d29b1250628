//! Several replicas sharing Redis (cache hits and one rate limit across them), history in
//! PostgreSQL, staying up when Redis or PostgreSQL goes away, client identity behind trusted proxies, and the operator's cache
//! invalidation endpoint.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bqai_testkit::postgres::{TestDb, with_database};
use bqai_testkit::tcp_proxy::TcpProxy;
use bqai_testkit::unique_prefix;

use crate::helpers::{TestApp, spawn_app_with};

const REDIS: &str = "127.0.0.1:6379";

/// Two apps ("replicas") sharing one Redis namespace, with `tweak` applied to both.
async fn replicas(
    redis: SocketAddr,
    tweak: impl Fn(&mut bqai::config::Settings) + Clone,
) -> (TestApp, TestApp) {
    let namespace = format!("{}:", unique_prefix("api"));
    let a = replica(redis, namespace.clone(), tweak.clone()).await;
    let b = replica(redis, namespace, tweak).await;
    (a, b)
}

async fn replica(
    redis: SocketAddr,
    namespace: String,
    tweak: impl Fn(&mut bqai::config::Settings),
) -> TestApp {
    spawn_app_with(move |s| {
        s.cache.url = format!("redis://{redis}");
        s.cache.redis_namespace = namespace;
        tweak(s);
    })
    .await
}

fn redis_addr() -> SocketAddr {
    REDIS.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_cached_results() {
    let (a, b) = replicas(redis_addr(), |_| {}).await;
    let sql = "SELECT channel, COUNT(*) AS n FROM shop.orders GROUP BY channel";
    let first = a.query(sql).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["stats"]["cache_hit"], false);
    let second = b.query(sql).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(
        second.body["stats"]["cache_hit"], true,
        "the other replica's result"
    );
    assert_eq!(first.body["rows"], second.body["rows"]);
    let health = a.get("/health").await;
    assert_eq!(health.body["components"]["cache"]["kind"], "redis");
    assert_eq!(health.body["components"]["cache"]["status"], "ok");

    // An operator drops the dataset's entries on one replica: the other misses too.
    let r = b
        .client
        .delete(format!("{}/api/v1/admin/cache?dataset_id=shop", b.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["removed"].as_u64().unwrap() >= 1, "{body}");
    let third = a.query(sql).await;
    assert_eq!(third.body["stats"]["cache_hit"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_rate_limit_holds_across_replicas() {
    let (a, b) = replicas(redis_addr(), |s| s.server.requests_per_minute = 20).await;
    let mut calls = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        calls.push(app.get("/api/v1/datasets/shop"));
    }
    let replies = futures::future::join_all(calls).await;
    let allowed = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        allowed, 20,
        "exactly the limit passes, whichever replica is asked"
    );
    assert_eq!(limited.len(), 20);
    for r in limited {
        r.assert_error(429, "RATE_LIMITED");
        assert!(r.header("retry-after").is_some());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_keep_succeeding_while_redis_is_down() {
    let proxy = TcpProxy::start(redis_addr()).await;
    let (a, _b) = replicas(proxy.addr(), |s| s.server.requests_per_minute = 1000).await;
    let sql = "SELECT status, COUNT(*) AS n FROM shop.orders GROUP BY status";
    assert_eq!(a.query(sql).await.status, 200);
    assert_eq!(a.query(sql).await.body["stats"]["cache_hit"], true);

    proxy.stop();
    let started = Instant::now();
    for _ in 0..20 {
        let r = a.query(sql).await;
        assert_eq!(
            r.status, 200,
            "served straight from the warehouse: {}",
            r.body
        );
        assert_eq!(r.body["stats"]["cache_hit"], false);
        let c = a.get("/api/v1/datasets/shop/tables").await;
        assert_eq!(c.status, 200, "{}", c.body);
        assert!(
            c.header("x-ratelimit-limit").is_some(),
            "the in-process limiter took over"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no request waits long on a dead Redis: {:?}",
        started.elapsed()
    );
    let health = a.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "degraded", "{}", health.body);
    assert_eq!(health.body["components"]["cache"]["kind"], "redis");
    assert_ne!(health.body["components"]["cache"]["status"], "ok");

    proxy.resume().await;
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let _ = a.query(sql).await;
        let h = a.get("/health").await;
        if h.body["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < until, "recovers by itself: {}", h.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(a.query(sql).await.body["stats"]["cache_hit"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Not trusted: every X-Forwarded-For value is the same client (the peer), one bucket.
    let untrusted = spawn_app_with(|s| s.server.requests_per_minute = 3).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = untrusted
            .client
            .get(format!("{}/api/v1/datasets", untrusted.address))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);

    // Trusted (the test client connects from 127.0.0.1): each forwarded client has its own.
    let trusted = spawn_app_with(|s| {
        s.server.requests_per_minute = 3;
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for i in 0..4 {
        let r = trusted
            .client
            .get(format!("{}/api/v1/datasets", trusted.address))
            .header("x-forwarded-for", format!("198.51.100.7, 203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "client {i} has its own bucket");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_invalidation_validates_its_input() {
    let app = spawn_app_with(|_| {}).await;
    for q in ["", "?dataset_id=", "?dataset_id=bad-id", "?dataset=shop"] {
        let r = app
            .client
            .delete(format!("{}/api/v1/admin/cache{q}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "INVALID_REQUEST", "{q}: {body}");
    }
    let sql = "SELECT COUNT(*) AS n FROM shop.products";
    app.query(sql).await;
    assert_eq!(app.query(sql).await.body["stats"]["cache_hit"], true);
    let r = app
        .client
        .delete(format!(
            "{}/api/v1/admin/cache?dataset_id=shop",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.query(sql).await.body["stats"]["cache_hit"], false);
}

/// A fresh PostgreSQL database and an app whose history lives in it (through `proxy` when
/// given, so the test can take the database away).
async fn app_on_postgres(db: &TestDb, proxy: Option<&TcpProxy>) -> TestApp {
    let url = match proxy {
        Some(p) => with_database(
            &format!("postgres://postgres@{}/postgres", p.addr()),
            &db.name,
        ),
        None => db.url.clone(),
    };
    spawn_app_with(move |s| s.store.url = url).await
}

#[tokio::test(flavor = "multi_thread")]
async fn history_lives_in_postgres() {
    let db = TestDb::create("api-history").await;
    let app = app_on_postgres(&db, None).await;
    let r = app.query("SELECT COUNT(*) AS n FROM shop.customers").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["query_id"].as_str().unwrap().to_string();
    let h = app.get(&format!("/api/v1/history/{id}")).await;
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.body["row_count"], 1);
    let health = app.get("/health").await;
    assert_eq!(health.body["components"]["history"]["kind"], "postgres");
    assert_eq!(health.body["status"], "ok", "{}", health.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_keep_succeeding_while_postgres_is_down_and_no_record_is_lost() {
    let db = TestDb::create("api-outage").await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let app = app_on_postgres(&db, Some(&proxy)).await;
    let mut ids = Vec::new();
    let first = app.query("SELECT 1 AS x").await;
    assert_eq!(first.status, 200, "{}", first.body);
    ids.push(first.body["query_id"].as_str().unwrap().to_string());

    proxy.stop();
    let started = Instant::now();
    for i in 0..10 {
        let r = app.query(&format!("SELECT {i} AS x")).await;
        assert_eq!(
            r.status, 200,
            "queries are served while PostgreSQL is down: {}",
            r.body
        );
        ids.push(r.body["query_id"].as_str().unwrap().to_string());
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let health = app.get("/health").await;
    assert_eq!(health.body["status"], "degraded", "{}", health.body);
    let detail = health.body["components"]["history"]["detail"].to_string();
    assert!(detail.contains("queued"), "{detail}");
    // The queue is visible to Prometheus too.
    let text = app.text("/metrics").await;
    let depth = text
        .lines()
        .find_map(|l| l.strip_prefix("bqai_history_queue_depth "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no queue depth in\n{text}"));
    assert!(depth >= 10, "{depth} queued: {text}");

    proxy.resume().await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = app.get("/api/v1/history?page_size=100").await;
        let found: Vec<String> = listed.body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if ids.iter().all(|id| found.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < until,
            "every record written after PostgreSQL returned; have {} of {}",
            found.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Health checks are shared for a second: the recovery shows within a moment.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let health = app.get("/health").await;
        if health.body["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < until, "{}", health.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- verified-key cache across replicas -----------------------------------------------------

/// Replica A (with one key per role, made in the shared PostgreSQL store) and replica B over the
/// same store, with API keys on and key records cached for `ttl_secs`; sharing a Redis
/// namespace when `redis` is set.
async fn key_replicas(
    db: &TestDb,
    redis: bool,
    ttl_secs: u64,
) -> (TestApp, TestApp, crate::helpers::Keys) {
    let namespace = format!("{}:", unique_prefix("keys"));
    let url = db.url.clone();
    let tweak = move |s: &mut bqai::config::Settings| {
        s.store.url = url.clone();
        s.auth.key_cache_ttl_secs = ttl_secs;
        if redis {
            s.cache.url = format!("redis://{REDIS}");
            s.cache.redis_namespace = namespace.clone();
        }
    };
    let (a, keys) = crate::helpers::spawn_auth_app(tweak.clone()).await;
    let b = spawn_app_with(move |s| {
        s.auth.mode = bqai::config::AuthMode::ApiKey;
        s.auth.pepper = Some("test pepper of enough length".to_string().into());
        tweak(s);
    })
    .await;
    (a, b, keys)
}

/// Revokes `id` on `a`, then polls `b` with `key` until it answers 401; how long that took.
async fn revocation_lag(a: &TestApp, b: &TestApp, keys: &crate::helpers::Keys) -> Duration {
    let revoked = a
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/admin/keys/{}", keys.analyst_id),
            Some(&keys.admin),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let started = Instant::now();
    // The replica that revoked refuses the key at once.
    a.get_as(&keys.analyst, "/api/v1/datasets")
        .await
        .assert_error(401, "UNAUTHENTICATED");
    loop {
        let r = b.get_as(&keys.analyst, "/api/v1/datasets").await;
        if r.status == 401 {
            return started.elapsed();
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the other replica still accepts a revoked key"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_revoked_on_one_replica_stops_working_on_the_other_at_once_with_redis() {
    let db = TestDb::create("api-key-cache-redis").await;
    // A TTL far longer than the test: only the Redis notice can end the cached record.
    let (a, b, keys) = key_replicas(&db, true, 600).await;
    // The listener subscribes in the background; the key's record gets cached on both.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for app in [&a, &b] {
        let r = app.get_as(&keys.analyst, "/api/v1/datasets").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let lag = revocation_lag(&a, &b, &keys).await;
    eprintln!("revocation lag across replicas with Redis: {lag:?}");
    assert!(lag < Duration::from_secs(2), "{lag:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_a_revocation_reaches_the_other_replica_within_the_ttl() {
    let db = TestDb::create("api-key-cache-ttl").await;
    let (a, b, keys) = key_replicas(&db, false, 1).await;
    let r = b.get_as(&keys.analyst, "/api/v1/datasets").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let lag = revocation_lag(&a, &b, &keys).await;
    eprintln!("revocation lag across replicas without Redis (TTL 1 s): {lag:?}");
    assert!(lag <= Duration::from_millis(2500), "{lag:?}");
}
