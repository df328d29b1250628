//! The store's upkeep: retention purges of history and the audit log, giving SQLite's free
//! pages back, and measuring the store for `/health`.
//!
//! [`Maintenance::spawn`] runs a round every `store.maintenance_interval_secs` while the server
//! runs (the first at start); `bqai history purge` and `bqai audit purge` run one purge by hand
//! through the same [`purge`]. Every purge that deleted something is written to the audit log
//! — the audit log's one exception to append-only is itself audited — whatever `auth.audit`
//! says.

use std::sync::Arc;
use std::time::Duration;

use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditOutcome};
use bqai_core::model::StoreStats;
use bqai_store::{Purgeable, Store};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::config::{Settings, retention};

/// How long history and audit events are kept (`None`: forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// `store.history_retention_days`.
    pub history: Option<TimeDelta>,
    /// `auth.audit_retention_days`.
    pub audit: Option<TimeDelta>,
}

impl Retention {
    /// From validated settings (an invalid value, refused by validation, keeps forever).
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            history: retention(settings.store.history_retention_days)
                .ok()
                .flatten(),
            audit: retention(settings.auth.audit_retention_days).ok().flatten(),
        }
    }

    /// The retention of `what`.
    pub fn of(&self, what: Purgeable) -> Option<TimeDelta> {
        match what {
            Purgeable::History => self.history,
            Purgeable::Audit => self.audit,
        }
    }
}

/// Who ran a purge, for its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgedBy {
    /// The server's maintenance round.
    Schedule,
    /// `bqai history purge` / `bqai audit purge`.
    Cli,
}

/// Deletes the `what` rows recorded before `cutoff` and, when there were any, records the
/// purge in the audit log (`admin_change` by `system:retention`); returns how many went.
pub async fn purge(
    store: &Store,
    what: Purgeable,
    cutoff: DateTime<Utc>,
    by: PurgedBy,
) -> bqai_core::Result<u64> {
    let started = std::time::Instant::now();
    let deleted = store.purge_before(what, cutoff).await?;
    if deleted > 0 {
        let route = match (by, what) {
            (PurgedBy::Schedule, _) => "SCHEDULE retention".to_owned(),
            (PurgedBy::Cli, Purgeable::History) => "CLI bqai history purge".to_owned(),
            (PurgedBy::Cli, Purgeable::Audit) => "CLI bqai audit purge".to_owned(),
        };
        let event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            request_id: None,
            principal: Some("system:retention".to_owned()),
            action: AuditAction::AdminChange,
            route,
            targets: vec![what.table().to_owned()],
            sql_fingerprint: None,
            outcome: AuditOutcome::Allowed,
            status: 200,
            error_code: None,
            bytes: 0,
            client_addr: None,
            detail: Some(format!(
                "deleted {deleted} rows of {} recorded before {}",
                what.table(),
                cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
        };
        if let Err(e) = store.audit().append(&event).await {
            tracing::error!(error = %e, event = ?event, "failed to append to the audit log");
        }
        tracing::info!(
            table = what.table(),
            deleted,
            cutoff = %cutoff,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "retention purge"
        );
    }
    Ok(deleted)
}

/// What one maintenance round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// History entries deleted.
    pub history_deleted: u64,
    /// Audit events deleted.
    pub audit_deleted: u64,
    /// Bytes SQLite gave back to the file system.
    pub reclaimed_bytes: u64,
    /// The store measured at the end of the round.
    pub stats: Option<StoreStats>,
}

/// The periodic upkeep of one store.
pub struct Maintenance {
    store: Store,
    retention: Retention,
    stats: watch::Sender<Option<StoreStats>>,
}

impl Maintenance {
    /// Upkeep of `store` with `retention`; [`Maintenance::stats`] hands out its measurements.
    pub fn new(store: Store, retention: Retention) -> Self {
        let (stats, _) = watch::channel(None);
        Self {
            store,
            retention,
            stats,
        }
    }

    /// The latest measurement of the store (`None` before the first round ends).
    pub fn stats(&self) -> watch::Receiver<Option<StoreStats>> {
        self.stats.subscribe()
    }

    /// One round: purge history and audit events past their retention, give SQLite's free
    /// pages back when something was deleted, measure the store. A failing step is logged and
    /// the round goes on; the next round retries.
    pub async fn round(&self) -> Round {
        let now = Utc::now();
        let mut round = Round::default();
        for what in [Purgeable::History, Purgeable::Audit] {
            let Some(keep) = self.retention.of(what) else {
                continue;
            };
            match purge(&self.store, what, now - keep, PurgedBy::Schedule).await {
                Ok(n) if what == Purgeable::History => round.history_deleted = n,
                Ok(n) => round.audit_deleted = n,
                Err(e) => {
                    tracing::warn!(table = what.table(), error = %e, "retention purge failed")
                }
            }
        }
        if round.history_deleted + round.audit_deleted > 0 {
            match self.store.reclaim_space().await {
                Ok(bytes) => round.reclaimed_bytes = bytes,
                Err(e) => tracing::warn!(error = %e, "could not give free space back"),
            }
        }
        match self.store.stats().await {
            Ok(stats) => {
                round.stats = Some(stats.clone());
                self.stats.send_replace(Some(stats));
            }
            Err(e) => tracing::warn!(error = %e, "could not measure the store"),
        }
        round
    }

    /// Runs a round now and then every `interval`, until the runtime stops.
    pub fn spawn(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.round().await;
            }
        });
    }
}
