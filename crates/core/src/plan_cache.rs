//! The plan cache: a statement's verdict — what the guard made of it and what the warehouse's
//! dry run reported — kept so that a repeated statement skips parsing and the dry run. On
//! BigQuery the dry run is an API call (hundreds of milliseconds), so without this a
//! result-cache hit still paid one; with it, a repeated query makes no BigQuery call at all.
//!
//! What a verdict may be reused for is decided by its key, which holds everything the guard
//! and the dry run depend on: the dialect, the home project, the default dataset, the row
//! cap, the SQL text, the parameters (types *and* values: BigQuery prunes partitions with
//! parameter values, so the byte estimate can depend on them) and the caller's effective
//! scope (its grants ∩ the allow-list). Two callers with different scopes never share a
//! verdict, and a caller whose grants were narrowed misses and is checked afresh.
//!
//! What is *not* cached is checked on every request: the request's own validation (role,
//! row cap, timeout, dataset scope), the tables of the verdict against the caller's scope
//! again (cheap, no parsing), the byte cap on the cached estimate, and the daily quota.
//!
//! Verdicts live in the same [`Cache`] as results (in-process or Redis), for the metadata
//! TTL, tagged `dataset:<id>` for every dataset they read: `DELETE /api/v1/admin/cache`,
//! `bqai cache clear` and a schema change drop them with the rest. A table dropped or changed
//! behind bqai's back is found when the statement runs (the warehouse refuses it) or when the
//! TTL passes; a request with `use_cache: false` is planned afresh.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::guard::GuardPolicy;
use crate::model::{DatasetScope, DryRunReport, TableRef};
use crate::ports::Cache;
use crate::result_cache::{KEY_PREFIX, dataset_tag, read_entry, write_entry};

/// A statement's cached verdict: it passed the guard and the dry run for the key's caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Verdict {
    /// The guard's rendering of the statement (LIMIT enforced).
    pub sql: String,
    /// The tables the guard resolved.
    pub tables: Vec<TableRef>,
    /// The LIMIT on the outermost query.
    pub limit: u64,
    /// The caller's own literal LIMIT, if any.
    pub user_limit: Option<u64>,
    /// What the dry run reported.
    pub report: DryRunReport,
    /// The submitted SQL's shape (`analytics::sql_shape`), which history records with every
    /// run: parsed once per statement instead of once per request (absent in entries written
    /// before it was kept: then history computes it).
    #[serde(default)]
    pub shape: Option<String>,
}

/// Verdicts in a [`Cache`], for [`crate::query::QueryService::with_plan_cache`].
pub struct PlanCache {
    cache: Arc<dyn Cache>,
    ttl: Duration,
}

impl PlanCache {
    /// Verdicts kept in `cache` for `ttl` (the metadata TTL: a verdict is derived metadata).
    pub fn new(cache: Arc<dyn Cache>, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    /// The key of `sql` with `parameters` (their cache-key text) under `policy`.
    pub(crate) fn key(policy: &GuardPolicy, sql: &str, parameters: &str) -> String {
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            // Length-prefixed, so no two different tuples hash the same text.
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part(format!("{:?}", policy.dialect).as_bytes());
        part(policy.home_project.as_deref().unwrap_or("").as_bytes());
        part(policy.default_dataset.as_deref().unwrap_or("").as_bytes());
        part(&policy.max_rows.to_le_bytes());
        match &policy.allowed {
            DatasetScope::All => part(b"*all"),
            DatasetScope::Only(set) => {
                part(b"only");
                for entry in set {
                    part(entry.to_ascii_lowercase().as_bytes());
                }
            }
        }
        part(sql.as_bytes());
        part(parameters.as_bytes());
        format!("{KEY_PREFIX}plan:{}", hex::encode(&h.finalize()[..16]))
    }

    /// The verdict under `key`; a cache failure or an undecodable entry is a miss.
    pub(crate) async fn get(&self, key: &str) -> Option<Verdict> {
        read_entry(self.cache.as_ref(), key).await
    }

    /// Keeps `verdict` under `key`, tagged with every dataset it reads (and the default
    /// dataset). A failure is logged: the next request plans afresh.
    pub(crate) async fn put(&self, key: &str, verdict: &Verdict, default_dataset: Option<&str>) {
        let mut tags: Vec<String> = verdict
            .tables
            .iter()
            .chain(&verdict.report.referenced_tables)
            .map(|t| dataset_tag(&t.dataset))
            .chain(default_dataset.map(dataset_tag))
            .collect();
        tags.sort();
        tags.dedup();
        write_entry(
            self.cache.as_ref(),
            key,
            verdict,
            self.ttl,
            &tags,
            usize::MAX,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::SqlDialect;

    fn policy(allowed: DatasetScope) -> GuardPolicy {
        GuardPolicy {
            dialect: SqlDialect::BigQuery,
            home_project: Some("p".into()),
            allowed,
            default_dataset: Some("shop".into()),
            max_rows: 100,
        }
    }

    fn only(names: &[&str]) -> DatasetScope {
        DatasetScope::Only(
            names
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>(),
        )
    }

    #[test]
    fn everything_a_verdict_depends_on_is_in_its_key() {
        let base = policy(only(&["shop"]));
        let key = PlanCache::key(&base, "SELECT 1", "");
        assert_eq!(key, PlanCache::key(&base.clone(), "SELECT 1", ""));
        let mut variants = vec![
            PlanCache::key(&policy(only(&["shop", "hr"])), "SELECT 1", ""),
            PlanCache::key(&policy(DatasetScope::All), "SELECT 1", ""),
            PlanCache::key(&base, "SELECT 2", ""),
            PlanCache::key(&base, "SELECT 1", "[x: INT64 = 1]"),
        ];
        let mut other = base.clone();
        other.max_rows = 101;
        variants.push(PlanCache::key(&other, "SELECT 1", ""));
        let mut other = base.clone();
        other.default_dataset = None;
        variants.push(PlanCache::key(&other, "SELECT 1", ""));
        let mut other = base.clone();
        other.home_project = Some("q".into());
        variants.push(PlanCache::key(&other, "SELECT 1", ""));
        let mut other = base.clone();
        other.dialect = SqlDialect::DataFusion;
        variants.push(PlanCache::key(&other, "SELECT 1", ""));
        for v in &variants {
            assert_ne!(v, &key);
        }
        // Length prefixes: moving text between parts changes the key.
        assert_ne!(
            PlanCache::key(&base, "SELECT 1", "2"),
            PlanCache::key(&base, "SELECT 12", "")
        );
    }
}
