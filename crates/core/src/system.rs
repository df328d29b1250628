//! Queries bqai runs for itself — the built-in planner's sampling of categorical values — go
//! through the same pipeline as a caller's: the guard, the dry run, the byte caps, the
//! history (as kind `system`) and a daily byte budget of their own, charged to a service
//! principal. Nothing reaches [`crate::ports::Warehouse::execute`] around the guard.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::history::QueryKind;
use crate::model::{DatasetScope, Principal, QueryRequest, QueryResult, Role};
use crate::query::{QueryService, RecordMeta};

/// Runs a read-only query on bqai's own behalf.
#[async_trait]
pub trait SystemQueries: Send + Sync {
    /// Runs `sql` with `dataset` as its default dataset, answering at most `max_rows` rows.
    async fn run(&self, sql: String, dataset: &str, max_rows: u64) -> Result<QueryResult>;
}

/// Limits of the queries bqai runs for itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemQueryLimits {
    /// Largest dry-run estimate of one query, in bytes; larger ones are not run.
    pub max_bytes_per_query: u64,
    /// Bytes billed per UTC day for all of them together (the service principal's quota,
    /// enforced when the query service has a usage ledger); `None` for no budget.
    pub daily_bytes: Option<u64>,
    /// Timeout of one query.
    pub timeout: Duration,
}

impl Default for SystemQueryLimits {
    fn default() -> Self {
        Self {
            max_bytes_per_query: 100 * 1024 * 1024,
            daily_bytes: Some(10 * 1024 * 1024 * 1024),
            timeout: Duration::from_secs(20),
        }
    }
}

/// [`SystemQueries`] through a [`QueryService`], as the service principal `principal_id`.
#[derive(Clone)]
pub struct GuardedSystemQueries {
    queries: QueryService,
    principal: Principal,
    limits: SystemQueryLimits,
}

impl GuardedSystemQueries {
    /// The principal used for the planner's value sampling.
    pub const PLANNER: &'static str = "system:planner";

    /// Queries through `queries` as `principal_id` (which reads every dataset the service
    /// allows, and nothing else).
    pub fn new(queries: QueryService, principal_id: &str, limits: SystemQueryLimits) -> Self {
        let principal = Principal {
            id: Some(principal_id.to_owned()),
            role: Role::Analyst,
            datasets: DatasetScope::All,
            rate_limit_per_minute: None,
            daily_byte_quota: limits.daily_bytes,
        };
        Self {
            queries,
            principal,
            limits,
        }
    }
}

#[async_trait]
impl SystemQueries for GuardedSystemQueries {
    async fn run(&self, sql: String, dataset: &str, max_rows: u64) -> Result<QueryResult> {
        let request = QueryRequest {
            default_dataset: Some(dataset.to_owned()),
            max_rows: Some(max_rows),
            timeout: Some(self.limits.timeout),
            ..QueryRequest::new(sql)
        };
        // Plan first: the guard, the dry run and the service's caps; then this budget.
        let planned = self.queries.plan(request, &self.principal).await?;
        let estimated = planned.bytes_processed();
        if estimated > self.limits.max_bytes_per_query {
            return Err(Error::CostLimitExceeded {
                estimated_bytes: estimated,
                limit_bytes: self.limits.max_bytes_per_query,
            });
        }
        let meta = RecordMeta {
            kind: QueryKind::System,
            ..RecordMeta::default()
        };
        let outcome = self
            .queries
            .run_planned(planned, &self.principal, meta)
            .await?;
        Ok(outcome.result)
    }
}
