//! Failed authentications: throttled per client address before any credential is checked,
//! and written to the audit log once per client and minute instead of once per request.
//!
//! Without this, 500 calls without credentials grew the database by 4.2 MB in 0.3 s: every
//! refusal was an audit row, and nothing slowed the caller down.
//!
//! - **Throttle**: every failed authentication (401, not a store outage) takes one unit of the
//!   client's budget, `server.auth_failures_per_minute` (30), through the rate limiter port
//!   (`authfail:<address>`, so replicas sharing Redis share the budget). Once it is spent, the
//!   client's requests are answered 429 `RATE_LIMITED` with `Retry-After` *before*
//!   authentication — no key store read, no token check — until the budget refills (one
//!   failure every 2 s at the default). Valid credentials are never charged; while an address
//!   is throttled, though, all its requests wait, good keys behind the same NAT included.
//! - **Aggregation**: the first failure of a client (and presented key id, if any) in a UTC
//!   minute is audited in full; the rest of that minute are counted, and one summary event ("N more failed
//!   authentications") is written when the minute is over (a sweeper every few seconds, and
//!   [`AuthFailures::drain`] at shutdown). Memory is bounded: beyond `MAX_CLIENTS` windows, the
//!   others are counted under one `*` window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bqai_core::auth::audit::AuditEvent;
use bqai_core::ports::RateLimiter;

/// Clients with an open window at most; more are counted together.
const MAX_CLIENTS: usize = 10_000;

/// One client's failures in one minute.
struct Window {
    minute: i64,
    /// The first failure's event (written), the template of the summary.
    first: AuditEvent,
    /// Failures after the first (not written yet).
    more: u64,
}

#[derive(Default)]
struct Inner {
    windows: HashMap<String, Window>,
    /// Clients throttled until the instant.
    blocked: HashMap<String, Instant>,
}

/// The shared state; cheap to clone.
#[derive(Clone, Default)]
pub struct AuthFailures {
    inner: Arc<Mutex<Inner>>,
}

/// The key of a client: its address, or `unknown`.
pub fn client_key(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

impl AuthFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `client` is still throttled, if it is.
    pub fn blocked_for(&self, client: &str) -> Option<Duration> {
        let mut inner = self.lock();
        let until = *inner.blocked.get(client)?;
        let now = Instant::now();
        if until <= now {
            inner.blocked.remove(client);
            return None;
        }
        Some(until - now)
    }

    /// Charges one failure to `client`'s budget; throttles it once the budget is spent.
    pub async fn charge(&self, limiter: &dyn RateLimiter, client: &str, per_minute: u32) {
        if per_minute == 0 {
            return;
        }
        match limiter
            .check(&format!("authfail:{client}"), 1, per_minute)
            .await
        {
            // The last unit spent (or none left): throttled until one refills.
            Ok(d) if !d.allowed || d.remaining == 0 => {
                let refill = Duration::from_secs(60) / per_minute.max(1);
                let wait = d.retry_after.unwrap_or(refill);
                let mut inner = self.lock();
                if inner.blocked.len() < MAX_CLIENTS || inner.blocked.contains_key(client) {
                    inner
                        .blocked
                        .insert(client.to_owned(), Instant::now() + wait);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter failed; failed authentication not charged")
            }
        }
    }

    /// Records a failed authentication; returns the events to write now: this one if it is
    /// its client's first in the minute, plus the summary of the client's previous minute.
    pub fn observe(&self, client: &str, event: AuditEvent) -> Vec<AuditEvent> {
        let minute = event.at.timestamp().div_euclid(60);
        let mut inner = self.lock();
        let key = if inner.windows.len() >= MAX_CLIENTS && !inner.windows.contains_key(client) {
            "*"
        } else {
            client
        };
        let mut out = Vec::new();
        match inner.windows.get_mut(key) {
            Some(w) if w.minute == minute => {
                w.more += 1;
                return out;
            }
            Some(w) => {
                out.extend(summary(w));
                w.minute = minute;
                w.first = event.clone();
                w.more = 0;
            }
            None => {
                inner.windows.insert(
                    key.to_owned(),
                    Window {
                        minute,
                        first: event.clone(),
                        more: 0,
                    },
                );
            }
        }
        out.push(event);
        out
    }

    /// Closes the windows of minutes before `now`'s; returns their summaries.
    pub fn sweep(&self, now: chrono::DateTime<chrono::Utc>) -> Vec<AuditEvent> {
        let minute = now.timestamp().div_euclid(60);
        let mut inner = self.lock();
        let done: Vec<String> = inner
            .windows
            .iter()
            .filter(|(_, w)| w.minute < minute)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in done {
            if let Some(w) = inner.windows.remove(&key) {
                out.extend(summary(&w));
            }
        }
        let instant = Instant::now();
        inner.blocked.retain(|_, until| *until > instant);
        out
    }

    /// Closes every window (at shutdown); returns the summaries.
    pub fn drain(&self) -> Vec<AuditEvent> {
        let mut inner = self.lock();
        inner
            .windows
            .drain()
            .filter_map(|(_, w)| summary(&w))
            .collect()
    }
}

/// The summary of a window with failures after its first.
fn summary(w: &Window) -> Option<AuditEvent> {
    (w.more > 0).then(|| AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at: chrono::Utc::now(),
        request_id: None,
        detail: Some(format!(
            "{} more failed authentications from this client in the minute from {}",
            w.more,
            chrono::DateTime::from_timestamp(w.minute * 60, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        )),
        ..w.first.clone()
    })
}

/// Writes the summaries of finished minutes every `every`, for as long as `failures` lives.
pub fn spawn_sweeper(
    failures: &AuthFailures,
    log: Arc<dyn bqai_core::ports::AuditLog>,
    every: Duration,
) {
    let weak = Arc::downgrade(&failures.inner);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(inner) = weak.upgrade() else { return };
            let events = AuthFailures { inner }.sweep(chrono::Utc::now());
            if !events.is_empty()
                && let Err(e) = log.append_batch(&events).await
            {
                tracing::error!(error = %e, events = ?events, "failed to append to the audit log");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bqai_core::auth::audit::{AuditAction, AuditOutcome};

    fn event(at: chrono::DateTime<chrono::Utc>) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            request_id: None,
            principal: None,
            action: AuditAction::CatalogRead,
            route: "GET /api/v1/datasets".into(),
            targets: Vec::new(),
            sql_fingerprint: None,
            outcome: AuditOutcome::Denied,
            status: 401,
            error_code: Some("UNAUTHENTICATED".into()),
            bytes: 0,
            client_addr: Some("10.0.0.1".into()),
            detail: None,
        }
    }

    #[test]
    fn one_event_per_client_and_minute_plus_a_summary() {
        let f = AuthFailures::default();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        assert_eq!(f.observe("a", event(t0)).len(), 1);
        for _ in 0..499 {
            assert!(f.observe("a", event(t0)).is_empty());
        }
        assert_eq!(f.observe("b", event(t0)).len(), 1, "clients are separate");
        assert!(f.sweep(t0).is_empty(), "the minute is not over");
        let next = t0 + chrono::Duration::seconds(60);
        let summaries = f.sweep(next);
        assert_eq!(summaries.len(), 1);
        let detail = summaries[0].detail.clone().unwrap_or_default();
        assert!(detail.starts_with("499 more failed"), "{detail}");
        assert_eq!(summaries[0].status, 401);
        assert!(f.drain().is_empty());
    }

    #[test]
    fn a_new_minute_writes_the_last_ones_summary() {
        let f = AuthFailures::default();
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        f.observe("a", event(t0));
        f.observe("a", event(t0));
        let out = f.observe("a", event(t0 + chrono::Duration::seconds(61)));
        assert_eq!(
            out.len(),
            2,
            "the summary of the last minute, then this event"
        );
        f.observe("a", event(t0 + chrono::Duration::seconds(62)));
        assert_eq!(f.drain().len(), 1);
    }
}
