//! Categorical values sampled from the data (`SELECT DISTINCT col … LIMIT n`), so "Germany"
//! in a question becomes `customers.country = 'Germany'`.
//!
//! Values are cached per (dataset, table, column) for a while: the first question about a
//! dataset pays for a handful of small queries, later ones for none. Columns with more
//! distinct values than [`MAX_VALUES`] are names or ids rather than categories and are
//! remembered as having none. A failed sample is remembered briefly and simply leaves that
//! column without values: sampling never makes a question fail.
//!
//! The queries run through [`SystemQueries`]: the guard, the dry run, the byte caps and the
//! history apply to them as to every caller's query (see `bqai_core::system`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bqai_core::model::{SqlDialect, TableRef, Value};
use bqai_core::system::SystemQueries;
use futures::StreamExt;

use crate::schema::{Samples, sample_key};

/// Above this many distinct values a column is not treated as categorical.
pub(crate) const MAX_VALUES: usize = 200;
/// Columns sampled per question at most (the rest go without values).
const MAX_COLUMNS: usize = 64;
/// Cache entries at most; the cache is cleared of stale entries, then emptied, beyond it.
const MAX_ENTRIES: usize = 4096;
/// How long sampled values are trusted.
const TTL: Duration = Duration::from_secs(15 * 60);
/// How long a failed sample is remembered (so a broken table is not queried per question).
const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Sampling queries in flight at once.
const CONCURRENCY: usize = 4;
/// Longest value kept (longer strings are text, not categories).
const MAX_VALUE_LEN: usize = 100;

type Key = (String, String, String);

struct Entry {
    values: Arc<[String]>,
    expires: Instant,
}

/// The value cache of one planner.
#[derive(Default)]
pub(crate) struct ValueCache {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl ValueCache {
    /// Values of `targets`, from the cache or sampled now.
    pub(crate) async fn samples(
        &self,
        queries: &dyn SystemQueries,
        dialect: SqlDialect,
        targets: &[(TableRef, String)],
    ) -> Samples {
        let now = Instant::now();
        let mut out = Samples::new();
        let mut missing = Vec::new();
        {
            let entries = self.lock();
            for (table, column) in targets.iter().take(MAX_COLUMNS) {
                let key = sample_key(table, column);
                match entries.get(&key) {
                    Some(e) if e.expires > now => {
                        out.insert(key, Arc::clone(&e.values));
                    }
                    _ => missing.push((table.clone(), column.clone())),
                }
            }
        }
        if missing.is_empty() {
            return out;
        }
        let fetched: Vec<(Key, Option<Vec<String>>)> = futures::stream::iter(missing)
            .map(|(table, column)| async move {
                let values = sample(queries, dialect, &table, &column).await;
                (sample_key(&table, &column), values)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() + fetched.len() > MAX_ENTRIES {
            entries.retain(|_, e| e.expires > now);
            if entries.len() + fetched.len() > MAX_ENTRIES {
                entries.clear();
            }
        }
        for (key, values) in fetched {
            let (values, ttl): (Arc<[String]>, Duration) = match values {
                Some(v) => (v.into(), TTL),
                None => (Arc::from(Vec::new()), FAILURE_TTL),
            };
            out.insert(key.clone(), Arc::clone(&values));
            entries.insert(
                key,
                Entry {
                    values,
                    expires: now + ttl,
                },
            );
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves a map that is still valid: keep using it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Always-quoted identifier (sampling SQL is built from catalog names, never from the
/// question, but names may still be reserved words or mixed case).
fn quoted(dialect: SqlDialect, name: &str) -> String {
    match dialect {
        SqlDialect::DataFusion => format!("\"{}\"", name.replace('"', "\"\"")),
        SqlDialect::BigQuery => format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")),
    }
}

/// The distinct values of one column (`Some(vec![])` when there are too many), or `None`
/// when the query failed.
async fn sample(
    queries: &dyn SystemQueries,
    dialect: SqlDialect,
    table: &TableRef,
    column: &str,
) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    if let Some(p) = &table.project {
        parts.push(quoted(dialect, p));
    }
    parts.push(quoted(dialect, &table.dataset));
    parts.push(quoted(dialect, &table.table));
    let col = quoted(dialect, column);
    let limit = MAX_VALUES + 1;
    let sql = format!(
        "SELECT DISTINCT {col} AS value FROM {} WHERE {col} IS NOT NULL LIMIT {limit}",
        parts.join(".")
    );
    match queries.run(sql, &table.dataset, limit as u64).await {
        Ok(result) => {
            if result.rows.len() > MAX_VALUES {
                return Some(Vec::new());
            }
            Some(
                result
                    .rows
                    .into_iter()
                    .filter_map(|row| match row.into_iter().next() {
                        Some(Value::String(s))
                            if !s.trim().is_empty() && s.len() <= MAX_VALUE_LEN =>
                        {
                            Some(s)
                        }
                        _ => None,
                    })
                    .collect(),
            )
        }
        Err(e) => {
            tracing::debug!(table = %table, column, error = %e, "planner could not sample values");
            None
        }
    }
}
