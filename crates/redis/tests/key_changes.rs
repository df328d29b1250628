//! RedisKeyChanges: a key change announced by one replica reaches another's listener, and how
//! long that takes (the revocation lag with Redis, in docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::time::{Duration, Instant};

use bqai_core::ports::KeyChangeNotifier;
use bqai_redis::{KeyChange, RedisClient, RedisKeyChanges};
use tokio::sync::mpsc;

/// Waits for the next change `rx` hears, up to 5 s.
async fn next(rx: &mut mpsc::UnboundedReceiver<(KeyChange, Instant)>) -> (KeyChange, Instant) {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no key change heard within 5 s")
        .expect("the listener stopped")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_on_one_replica_reaches_the_other_within_milliseconds() {
    let options = common::options();
    let a = RedisKeyChanges::from_client(RedisClient::new(options.clone()).unwrap());
    let b = RedisKeyChanges::from_client(RedisClient::new(options.clone()).unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = b.listen(move |change| {
        let _ = tx.send((change, Instant::now()));
    });
    // Subscribed: the listener says anything may have changed, once.
    assert_eq!(next(&mut rx).await.0, KeyChange::All);

    let mut lags = Vec::new();
    for i in 0..20 {
        let id = format!("k{i}");
        let sent = Instant::now();
        a.key_changed(&id).await.unwrap();
        let (change, heard) = next(&mut rx).await;
        assert_eq!(change, KeyChange::Key(id));
        lags.push(heard - sent);
    }
    lags.sort();
    eprintln!(
        "key change heard by the other replica after: median {:?}, max {:?} (20 changes)",
        lags[lags.len() / 2],
        lags[lags.len() - 1]
    );
    assert!(lags[lags.len() - 1] < Duration::from_secs(1), "{lags:?}");

    // Another namespace (another deployment on the same Redis) hears nothing of it.
    let mut other = options.clone();
    other.namespace = format!("{}other:", options.namespace);
    let c = RedisKeyChanges::from_client(RedisClient::new(other).unwrap());
    c.key_changed("foreign").await.unwrap();
    a.key_changed("mine").await.unwrap();
    assert_eq!(next(&mut rx).await.0, KeyChange::Key("mine".into()));
    listener.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn announcing_to_a_dead_redis_fails_fast_and_the_listener_keeps_trying() {
    let options = common::options_for_port(common::closed_port(), Duration::from_secs(5));
    let changes = RedisKeyChanges::from_client(RedisClient::new(options).unwrap());
    let started = Instant::now();
    let err = changes.key_changed("k1").await.unwrap_err();
    assert!(
        matches!(err, bqai_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let (tx, mut rx) = mpsc::unbounded_channel::<KeyChange>();
    let listener = changes.listen(move |change| {
        let _ = tx.send(change);
    });
    // Nothing is heard (nothing to subscribe to), and the task is still running.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );
    assert!(!listener.is_finished());
    listener.abort();
}
