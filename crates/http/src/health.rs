//! The dependency checks behind `/health` and `/health/ready`: every component checked at once,
//! each under a short deadline, and the result shared by every caller for a moment
//! ([`CHECK_TTL`] on the server) with one check in flight at a time. So
//! unauthenticated health traffic costs the warehouse (BigQuery: a `datasets.list` call) at most
//! one call per `ttl`, however many probes, load balancers or strangers ask.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bqai_core::model::{ComponentHealth, HealthStatus};
use bqai_core::ports::Warehouse;

use crate::state::AppState;

/// How long a health snapshot is reused.
pub const CHECK_TTL: Duration = Duration::from_secs(1);
/// How long each component's check may take before it counts as down.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// The components' states at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The warehouse (through the result cache, which answers for it).
    pub warehouse: ComponentHealth,
    /// The cache.
    pub cache: ComponentHealth,
    /// The history store.
    pub history: ComponentHealth,
    /// The generator (its LLM when there is one).
    pub generator: ComponentHealth,
}

impl Snapshot {
    /// Every component ok.
    pub fn all_ok(&self) -> bool {
        self.components()
            .iter()
            .all(|c| c.status == HealthStatus::Ok)
    }

    /// Ready to serve queries: the warehouse answers. A cache or history store that is down
    /// degrades the service (bypassed, buffered) but does not stop it, and the built-in planner
    /// answers when an LLM does not.
    pub fn ready(&self) -> bool {
        self.warehouse.status != HealthStatus::Down
    }

    fn components(&self) -> [&ComponentHealth; 4] {
        [&self.warehouse, &self.cache, &self.history, &self.generator]
    }
}

/// Shared, rate-bounded health checks.
#[derive(Debug)]
pub struct HealthChecks {
    ttl: Duration,
    deadline: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl HealthChecks {
    /// Checks whose result is reused for `ttl`, each component given `deadline` to answer.
    pub fn new(ttl: Duration, deadline: Duration) -> Self {
        Self {
            ttl,
            deadline,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The latest snapshot, checked again when it is older than the ttl. Callers arriving while
    /// a check runs wait for it and share its result (the lock is held across the check).
    pub async fn current(&self, state: &AppState) -> Arc<Snapshot> {
        let mut last = self.last.lock().await;
        if let Some((at, snapshot)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return Arc::clone(snapshot);
        }
        let snapshot = Arc::new(self.check(state).await);
        *last = Some((Instant::now(), Arc::clone(&snapshot)));
        snapshot
    }

    async fn check(&self, state: &AppState) -> Snapshot {
        let generator = async {
            match &state.llm {
                Some(llm) => llm.health().await,
                None => ComponentHealth::ok(state.ask.generator().kind),
            }
        };
        let (warehouse, cache, history, generator) = futures::join!(
            self.bounded("warehouse", state.warehouse.health()),
            self.bounded("cache", state.cache.health()),
            self.bounded("history", state.history.health()),
            self.bounded("generator", generator),
        );
        Snapshot {
            warehouse,
            cache,
            history,
            generator,
        }
    }

    /// `check`, or `down` with "no answer within …" when it takes longer than the deadline.
    async fn bounded(
        &self,
        component: &str,
        check: impl std::future::Future<Output = ComponentHealth>,
    ) -> ComponentHealth {
        match tokio::time::timeout(self.deadline, check).await {
            Ok(health) => health,
            Err(_) => ComponentHealth::down(
                component,
                format!(
                    "the {component} health check did not answer within {} ms",
                    self.deadline.as_millis()
                ),
            ),
        }
    }
}
