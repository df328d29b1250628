//! Contract suite for the [`NonceStore`] port (single-use WebSocket tickets): every adapter
//! (in-memory, Redis) must pass it.

use std::time::Duration;

use crate::unique_prefix;
use bqai_core::ports::NonceStore;

/// Runs every check against `store`; panics with a description of the first violation.
pub async fn nonce_store_contract(store: &dyn NonceStore) {
    let p = unique_prefix("nonce");
    let claim = |n: String, ttl: Duration| async move {
        store
            .claim(&n, ttl)
            .await
            .unwrap_or_else(|e| panic!("claim({n}) failed: {e}"))
    };
    let long = Duration::from_secs(60);
    assert!(claim(format!("{p}-a"), long).await, "a new nonce is fresh");
    assert!(
        !claim(format!("{p}-a"), long).await,
        "a claimed nonce is not fresh again"
    );
    assert!(
        claim(format!("{p}-b"), long).await,
        "nonces are independent"
    );

    // Concurrent claims of one nonce: exactly one wins.
    let racers = (0..16).map(|_| claim(format!("{p}-race"), long));
    let wins = futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|fresh| *fresh)
        .count();
    assert_eq!(wins, 1, "exactly one of concurrent claims wins");

    // A nonce is forgotten after its TTL (tickets are refused by their own expiry by then).
    assert!(claim(format!("{p}-short"), Duration::from_millis(200)).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        claim(format!("{p}-short"), long).await,
        "a nonce is kept for its TTL only"
    );
}
