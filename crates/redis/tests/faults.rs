//! Redis down, silent or flapping: errors are `Unavailable` within the deadlines, the circuit
//! breaker makes further calls fail at once, and the same instances recover when Redis returns.
//! Also: no password in any error or `Debug` output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bqai_core::Error;
use bqai_core::model::HealthStatus;
use bqai_core::ports::{Cache, RateLimiter};
use bqai_redis::{RedisCache, RedisClient, RedisOptions, RedisRateLimiter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The full text of an error and its sources.
fn chain(e: &Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(" <- ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn assert_unavailable(e: &Error) {
    assert!(
        matches!(e, Error::Unavailable { what, .. } if what == "Redis"),
        "expected Unavailable(Redis), got {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_fails_fast_and_the_breaker_short_circuits() {
    let options = common::options_for_port(common::closed_port(), Duration::from_secs(2));
    let cache = RedisCache::new(options.clone()).unwrap();

    let started = Instant::now();
    let e = cache.get("k").await.unwrap_err();
    let first = started.elapsed();
    assert_unavailable(&e);
    assert!(
        first < options.connect_timeout + options.command_timeout + Duration::from_millis(500),
        "first failure took {first:?}"
    );
    assert!(cache.client().breaker_open());

    let health = cache.health().await;
    assert_eq!(health.status, HealthStatus::Down);
    assert_eq!(health.kind, "redis");
    assert_eq!(health.detail.as_deref(), Some("unreachable"));

    let started = Instant::now();
    for _ in 0..100 {
        assert_unavailable(&cache.get("k").await.unwrap_err());
    }
    let hundred = started.elapsed();
    assert!(
        hundred < Duration::from_millis(100),
        "100 calls with the breaker open took {hundred:?}"
    );
    eprintln!("closed port: first failure {first:?}, 100 short-circuited calls {hundred:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_fails_within_the_connect_timeout() {
    // Accepts TCP connections (the kernel does, via the backlog) and never answers, so the
    // connection handshake (CLIENT SETINFO) times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = RedisOptions {
        command_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(300),
        ..common::options_for_port(port, Duration::from_secs(2))
    };
    let limiter = RedisRateLimiter::new(options.clone()).unwrap();
    let started = Instant::now();
    let e = limiter.check("k", 1, 10).await.unwrap_err();
    let took = started.elapsed();
    assert_unavailable(&e);
    let bound = options.connect_timeout + options.command_timeout + Duration::from_millis(300);
    assert!(took < bound, "took {took:?}, bound {bound:?}");
    let started = Instant::now();
    for _ in 0..100 {
        assert_unavailable(&limiter.check("k", 1, 10).await.unwrap_err());
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    eprintln!("silent server: failure after {took:?}");
    drop(listener);
}

/// A TCP proxy in front of the real Redis that can be stopped (closing every connection
/// through it) and started again on the same port, or frozen (connections stay open, Redis'
/// answers are held back).
struct Proxy {
    port: u16,
    task: Option<JoinHandle<()>>,
    frozen: Arc<AtomicBool>,
}

impl Proxy {
    async fn start() -> Self {
        let mut proxy = Self {
            port: 0,
            task: None,
            frozen: Arc::new(AtomicBool::new(false)),
        };
        proxy.restart().await;
        proxy
    }

    async fn restart(&mut self) {
        assert!(self.task.is_none());
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        let frozen = Arc::clone(&self.frozen);
        self.task = Some(tokio::spawn(async move {
            // Owned by this task, so aborting it drops (and aborts) every relayed connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let frozen = Arc::clone(&frozen);
                connections.spawn(async move {
                    if let Ok(redis) = TcpStream::connect("127.0.0.1:6379").await {
                        relay(client, redis, frozen).await;
                    }
                });
            }
        }));
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

async fn relay(client: TcpStream, redis: TcpStream, frozen: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut redis_read, mut redis_write) = redis.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut redis_write);
    let answers = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match redis_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while frozen.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        () = answers => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_connection_fails_within_the_command_timeout() {
    let proxy = Proxy::start().await;
    let retry_after = Duration::from_millis(300);
    let options = RedisOptions {
        command_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(300),
        ..common::options_for_port(proxy.port, retry_after)
    };
    let ns = options.namespace.clone();
    let cache = RedisCache::new(options.clone()).unwrap();
    cache
        .set("k", b"v".to_vec(), Duration::from_secs(60), &[])
        .await
        .unwrap();

    proxy.freeze(true);
    let started = Instant::now();
    assert_unavailable(&cache.get("k").await.unwrap_err());
    let took = started.elapsed();
    // The pooled connection's check (a PING) times out, then a fresh connection's handshake
    // does: the worst case of one call is the command timeout plus the connect timeout.
    let bound = options.command_timeout + options.connect_timeout + Duration::from_millis(300);
    assert!(
        took >= options.command_timeout && took < bound,
        "took {took:?}, bound {bound:?}"
    );
    assert!(cache.client().breaker_open());

    proxy.freeze(false);
    tokio::time::sleep(retry_after + Duration::from_millis(50)).await;
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    eprintln!("hung connection: failure after {took:?}");
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recovers_when_redis_comes_back_without_a_new_instance() {
    let mut proxy = Proxy::start().await;
    let retry_after = Duration::from_millis(500);
    let options = common::options_for_port(proxy.port, retry_after);
    let ns = options.namespace.clone();
    // One client under both adapters: they share pool and breaker.
    let client = RedisClient::new(options).unwrap();
    let cache = RedisCache::from_client(client.clone());
    let limiter = RedisRateLimiter::from_client(client.clone());

    cache
        .set("k", b"v".to_vec(), Duration::from_secs(60), &[])
        .await
        .unwrap();
    assert!(cache.get("k").await.unwrap().is_some());
    assert!(limiter.check("k", 1, 100).await.unwrap().allowed);

    proxy.stop().await;
    assert_unavailable(&cache.get("k").await.unwrap_err());
    assert!(client.breaker_open());
    // The limiter shares the open breaker: it fails without trying.
    let started = Instant::now();
    assert_unavailable(&limiter.check("k", 1, 100).await.unwrap_err());
    assert!(started.elapsed() < Duration::from_millis(20));
    assert_eq!(cache.health().await.status, HealthStatus::Down);

    // Still down after the open period: the probe fails and re-opens the breaker.
    tokio::time::sleep(retry_after + Duration::from_millis(100)).await;
    assert_unavailable(&cache.get("k").await.unwrap_err());
    assert!(client.breaker_open());

    proxy.restart().await;
    let back = Instant::now();
    loop {
        match cache.get("k").await {
            Ok(value) => {
                assert_eq!(value.as_deref(), Some(&b"v"[..]));
                break;
            }
            Err(e) => {
                assert_unavailable(&e);
                assert!(
                    back.elapsed() < retry_after + Duration::from_millis(500),
                    "still failing {:?} after Redis came back: {}",
                    back.elapsed(),
                    chain(&e)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let recovered = back.elapsed();
    assert!(!client.breaker_open());
    assert!(limiter.check("k", 1, 100).await.unwrap().allowed);
    assert_eq!(cache.health().await.status, HealthStatus::Ok);
    eprintln!("proxy restart: recovered {recovered:?} after Redis came back");
    proxy.stop().await;
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_behind_pooled_connections_is_absorbed() {
    // Connections are pooled; when they all die at once (Redis restarted, proxy here), the next
    // call must not fail because a dead one was handed out.
    let mut proxy = Proxy::start().await;
    let options = common::options_for_port(proxy.port, Duration::from_secs(2));
    let ns = options.namespace.clone();
    let cache = Arc::new(RedisCache::new(options).unwrap());
    let mut tasks = JoinSet::new();
    for i in 0..8 {
        let cache = Arc::clone(&cache);
        tasks.spawn(async move { cache.get(&format!("k{i}")).await.unwrap() });
    }
    tasks.join_all().await;
    proxy.stop().await;
    proxy.restart().await;
    for i in 0..8 {
        cache
            .get(&format!("k{i}"))
            .await
            .unwrap_or_else(|e| panic!("call {i} after the restart: {}", chain(&e)));
    }
    proxy.stop().await;
    common::cleanup(&ns).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_never_show_in_debug_or_errors() {
    let options = RedisOptions::with_url("redis://:hunter2@host");
    let debug = format!("{options:?}");
    assert!(!debug.contains("hunter2"), "{debug}");

    // Refused connection.
    let url = format!("redis://user:hunter2@127.0.0.1:{}", common::closed_port());
    let cache = RedisCache::new(RedisOptions::with_url(&url)).unwrap();
    assert!(!format!("{cache:?}").contains("hunter2"));
    let e = cache.get("k").await.unwrap_err();
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");

    // Refused credentials (the local Redis has no such user).
    let cache = RedisCache::new(RedisOptions {
        url: "redis://nosuchuser:hunter2@127.0.0.1:6379".to_owned(),
        ..common::options()
    })
    .unwrap();
    let e = cache.get("k").await.unwrap_err();
    assert_unavailable(&e);
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    eprintln!("AUTH failure: {}", chain(&e));

    // Malformed URL: InvalidRequest, redacted.
    let e = RedisCache::new(RedisOptions::with_url("redis://:hunter2@host:notaport")).unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert!(!chain(&e).contains("hunter2"), "{}", chain(&e));
    let e = RedisRateLimiter::new(RedisOptions::with_url("http://example.com")).unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn construction_never_connects() {
    // Nothing listens there; building must still succeed (bqai starts while Redis is down).
    let url = format!("redis://127.0.0.1:{}", common::closed_port());
    RedisCache::new(RedisOptions::with_url(&url)).unwrap();
    RedisRateLimiter::new(RedisOptions::with_url(&url)).unwrap();
    // TLS URLs are accepted too (rustls; nothing is contacted here).
    RedisCache::new(RedisOptions::with_url("rediss://:pw@redis.invalid:6380")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_reply_is_unavailable_but_leaves_the_breaker_closed() {
    let options = common::options();
    let ns = options.namespace.clone();
    let limiter = RedisRateLimiter::new(options).unwrap();
    // Someone else's data under the limiter's key: the script's GET gets WRONGTYPE.
    let _: () = deadpool_redis::redis::cmd("HSET")
        .arg(format!("{ns}bqai:v1:rl:k"))
        .arg("f")
        .arg("v")
        .query_async(&mut common::raw().await)
        .await
        .unwrap();
    assert_unavailable(&limiter.check("k", 1, 10).await.unwrap_err());
    assert!(
        !limiter.client().breaker_open(),
        "Redis answered; it is not down"
    );
    assert!(limiter.check("other", 1, 10).await.unwrap().allowed);
    common::cleanup(&ns).await;
}
