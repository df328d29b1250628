//! Contract suite for the [`HistoryAnalytics`] port: a known history is seeded and every field
//! of every answer is compared with numbers computed by hand (in the comments), so SQLite and
//! PostgreSQL are held to the same numbers.
//!
//! The history sits on two days picked at random in 2001–2009 (and one entry the day before,
//! outside the range), so a run never counts another run's entries.

use std::sync::Arc;

use bqai_core::analytics::{
    AnalyticsFilter, DurationPercentiles, GroupBy, HistoryAnalytics, PopularKind, Ranking, Stats,
};
use bqai_core::history::{AskRecord, HistoryEntry, QueryKind, QueryStatus};
use bqai_core::model::SqlDialect;
use bqai_core::ports::HistoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::history::minimal;
use crate::unique_prefix;

const TIB: u64 = 1 << 40;

/// Seeds the history and checks every analytics answer; panics with the first difference.
pub async fn analytics_contract(
    history: Arc<dyn HistoryStore>,
    analytics: Arc<dyn HistoryAnalytics>,
) {
    let p = unique_prefix("analytics");
    let day = random_day();
    let seeded = Seeded::new(&p, day);
    for e in &seeded.entries {
        history
            .record(e)
            .await
            .unwrap_or_else(|err| panic!("record({}) failed: {err}", e.id));
    }
    let a = analytics.as_ref();
    let all = AnalyticsFilter {
        from: day,
        to: day + Duration::days(2),
        principal: None,
    };
    summary(a, &all, &seeded).await;
    popular(a, &all, &seeded).await;
    ranked(a, &all, &seeded).await;
    errors(a, &all, &seeded).await;
    tables(a, &all).await;
    scoping(a, &all, &seeded).await;
}

fn random_day() -> DateTime<Utc> {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()) ^ d.as_secs())
        .unwrap_or(0);
    let base = Utc.with_ymd_and_hms(2001, 1, 1, 0, 0, 0).unwrap();
    base + Duration::days((n % 3000) as i64)
}

struct Seeded {
    alice: String,
    bob: String,
    day: DateTime<Utc>,
    entries: Vec<HistoryEntry>,
}

impl Seeded {
    /// e00 is the day before the range; e01–e04 on day D; e05–e08 on day D+1. Ids sort by time.
    fn new(p: &str, day: DateTime<Utc>) -> Self {
        let alice = format!("{p}-alice");
        let bob = format!("{p}-bob");
        let at = |h: i64| day + Duration::hours(h);
        let mut entries = Vec::new();
        let mut add =
            |n: u32, who: &str, when: DateTime<Utc>, sql: &str, f: &dyn Fn(&mut HistoryEntry)| {
                let mut e = minimal(format!("{p}-e{n:02}"), when);
                e.principal = Some(who.to_string());
                e.dataset = Some("shop".into());
                e.sql_submitted = sql.to_string();
                f(&mut e);
                entries.push(e.shaped(SqlDialect::DataFusion));
            };
        let orders = "proj.shop.orders".to_string();
        let products = "proj.shop.products".to_string();
        add(
            0,
            &alice,
            at(-1),
            "SELECT name FROM shop.orders WHERE id = 0",
            &|e| {
                e.bytes_billed = 100 * TIB;
                e.duration_ms = 99_999;
            },
        );
        add(
            1,
            &alice,
            at(1),
            "SELECT name FROM shop.orders WHERE id = 1",
            &|e| {
                e.bytes_processed = 100;
                e.bytes_billed = TIB;
                e.duration_ms = 10;
                e.tables = vec![orders.clone()];
            },
        );
        add(
            2,
            &alice,
            at(2),
            "select name\n from shop.orders where id=2",
            &|e| {
                e.bytes_processed = 200;
                e.bytes_billed = TIB;
                e.duration_ms = 20;
                e.cache_hit = true;
                e.tables = vec![orders.clone()];
            },
        );
        add(
            3,
            &bob,
            at(3),
            "SELECT name FROM shop.orders WHERE id = 'x'",
            &|e| {
                e.status = QueryStatus::Failed;
                e.error_code = Some("TIMEOUT".into());
                e.error_message = Some("the query timed out after 30s".into());
                e.bytes_processed = 300;
                e.duration_ms = 30;
                e.tables = vec![orders.clone()];
            },
        );
        add(4, &alice, at(8), "SELECT * FROM secret.t", &|e| {
            e.status = QueryStatus::Rejected;
            e.error_code = Some("FORBIDDEN".into());
            e.error_message = Some("dataset secret is not allowed".into());
            e.duration_ms = 5;
        });
        add(
            5,
            &bob,
            at(28),
            "SELECT p.name FROM shop.products p LIMIT 5",
            &|e| {
                e.kind = QueryKind::Ask;
                e.question = Some("Top 5 products?".into());
                e.bytes_processed = 400;
                e.bytes_billed = 2 * TIB;
                e.duration_ms = 40;
                e.tables = vec![orders.clone(), products.clone()];
                e.ask = Some(ask("claude-cli", 2, 1000, 100, Some(0.5)));
            },
        );
        add(6, &alice, at(29), "DELETE FROM shop.products", &|e| {
            e.kind = QueryKind::Ask;
            e.question = Some("top 5 products".into());
            e.status = QueryStatus::Rejected;
            e.error_code = Some("SQL_REJECTED".into());
            e.error_message = Some("only SELECT queries are allowed".into());
            e.duration_ms = 50;
            e.ask = Some(ask("claude-cli", 1, 500, 50, Some(0.25)));
        });
        add(
            7,
            &alice,
            at(30),
            "SELECT name FROM shop.orders WHERE id = 9",
            &|e| {
                e.dry_run = true;
                e.bytes_processed = 1000;
                e.duration_ms = 1000;
            },
        );
        add(
            8,
            &bob,
            at(31),
            "SELECT p.name FROM shop.products p LIMIT 5",
            &|e| {
                e.kind = QueryKind::Ask;
                e.question = Some("top 5   products!".into());
                e.duration_ms = 60;
                e.cache_hit = true;
                e.tables = vec![products.clone()];
                e.ask = Some(ask("builtin", 1, 0, 0, None));
            },
        );
        Self {
            alice,
            bob,
            day,
            entries,
        }
    }

    fn id(&self, n: usize) -> &str {
        &self.entries[n].id
    }

    fn at(&self, h: i64) -> DateTime<Utc> {
        self.day + Duration::hours(h)
    }
}

fn ask(generator: &str, attempts: u32, input: u64, output: u64, cost: Option<f64>) -> AskRecord {
    AskRecord {
        attempts,
        generator: generator.into(),
        model: None,
        llm_latency_ms: 0,
        input_tokens: input,
        output_tokens: output,
        cost_usd: cost,
        from_cache: false,
        follow_up: false,
    }
}

#[allow(clippy::too_many_arguments)]
fn stats(
    [
        queries,
        succeeded,
        failed,
        rejected,
        dry_runs,
        cache_hits,
        asks,
    ]: [u64; 7],
    bytes_processed: u64,
    bytes_billed: u64,
    [p50, p95, p99, max]: [u64; 4],
    [llm_calls, input_tokens, output_tokens]: [u64; 3],
    llm_cost_usd: f64,
) -> Stats {
    Stats {
        queries,
        succeeded,
        failed,
        rejected,
        dry_runs,
        cache_hits,
        asks,
        bytes_processed,
        bytes_billed,
        estimated_cost_usd: 0.0,
        duration_ms: DurationPercentiles { p50, p95, p99, max },
        llm_calls,
        input_tokens,
        output_tokens,
        llm_cost_usd,
    }
}

async fn summary(a: &dyn HistoryAnalytics, all: &AnalyticsFilter, s: &Seeded) {
    // Not dry runs: e01–e06, e08 (7). Durations 5, 10, 20, 30, 40, 50, 60: nearest rank
    // ceil(0.5 × 7) = 4 → 30; ceil(0.95 × 7) = 7 → 60. The dry run's 1,000 ms is left out.
    // LLM: claude-cli attempts 2 + 1 (the built-in planner's are not LLM calls).
    let total = stats(
        [7, 4, 1, 2, 1, 2, 3],
        1000,
        4 * TIB,
        [30, 60, 60, 60],
        [3, 1500, 150],
        0.75,
    );
    let by_day = a.summary(all, GroupBy::Day).await.expect("summary by day");
    assert_eq!(by_day.total, total, "summary total");
    assert_eq!(
        by_day.total.clone().priced(6.25).estimated_cost_usd,
        25.0,
        "4 TiB billed at $6.25"
    );
    let d0 = s.day.format("%Y-%m-%d").to_string();
    let d1 = (s.day + Duration::days(1)).format("%Y-%m-%d").to_string();
    let keys: Vec<_> = by_day.buckets.iter().map(|b| b.key.clone()).collect();
    assert_eq!(
        keys,
        vec![Some(d0), Some(d1)],
        "one bucket per day with entries"
    );
    // Day D: e01–e04, durations 5, 10, 20, 30 → p50 rank 2 = 10, p95 rank 4 = 30.
    assert_eq!(
        by_day.buckets[0].stats,
        stats(
            [4, 2, 1, 1, 0, 1, 0],
            600,
            2 * TIB,
            [10, 30, 30, 30],
            [0, 0, 0],
            0.0
        ),
        "day D"
    );
    // Day D+1: e05, e06, e08 and the dry run e07; durations 40, 50, 60.
    assert_eq!(
        by_day.buckets[1].stats,
        stats(
            [3, 2, 0, 1, 1, 1, 3],
            400,
            2 * TIB,
            [50, 60, 60, 60],
            [3, 1500, 150],
            0.75
        ),
        "day D+1"
    );

    let by_hour = a
        .summary(all, GroupBy::Hour)
        .await
        .expect("summary by hour");
    assert_eq!(by_hour.total, total);
    assert_eq!(by_hour.buckets.len(), 8, "eight hours with entries");
    assert_eq!(
        by_hour.buckets[0].key.as_deref(),
        Some(s.at(1).format("%Y-%m-%dT%H:00:00Z").to_string().as_str())
    );

    let by_principal = a
        .summary(all, GroupBy::Principal)
        .await
        .expect("by principal");
    let keys: Vec<_> = by_principal.buckets.iter().map(|b| b.key.clone()).collect();
    assert_eq!(keys, vec![Some(s.alice.clone()), Some(s.bob.clone())]);
    // Alice: e01, e02, e04, e06 and the dry run e07; durations 5, 10, 20, 50.
    assert_eq!(
        by_principal.buckets[0].stats,
        stats(
            [4, 2, 0, 2, 1, 1, 1],
            300,
            2 * TIB,
            [10, 50, 50, 50],
            [1, 500, 50],
            0.25
        ),
        "alice"
    );
    // Bob: e03, e05, e08; durations 30, 40, 60.
    assert_eq!(
        by_principal.buckets[1].stats,
        stats(
            [3, 2, 1, 0, 0, 1, 2],
            700,
            2 * TIB,
            [40, 60, 60, 60],
            [2, 1000, 100],
            0.5
        ),
        "bob"
    );

    let by_kind = a.summary(all, GroupBy::Kind).await.expect("by kind");
    let counts: Vec<_> = by_kind
        .buckets
        .iter()
        .map(|b| {
            (
                b.key.clone().unwrap_or_default(),
                b.stats.queries,
                b.stats.dry_runs,
            )
        })
        .collect();
    assert_eq!(counts, vec![("ask".into(), 3, 0), ("sql".into(), 4, 1)]);

    let by_status = a.summary(all, GroupBy::Status).await.expect("by status");
    let counts: Vec<_> = by_status
        .buckets
        .iter()
        .map(|b| (b.key.clone().unwrap_or_default(), b.stats.queries))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("failed".into(), 1),
            ("rejected".into(), 2),
            ("succeeded".into(), 4)
        ]
    );

    let by_dataset = a.summary(all, GroupBy::Dataset).await.expect("by dataset");
    assert_eq!(by_dataset.buckets.len(), 1);
    assert_eq!(by_dataset.buckets[0].key.as_deref(), Some("shop"));
    assert_eq!(by_dataset.buckets[0].stats, total);

    let empty = AnalyticsFilter {
        from: s.day - Duration::days(30),
        to: s.day - Duration::days(20),
        principal: None,
    };
    let nothing = a.summary(&empty, GroupBy::Day).await.expect("empty range");
    assert_eq!(
        nothing.total,
        Stats::default(),
        "an empty range is all zeros"
    );
    assert!(nothing.buckets.is_empty());
}

async fn popular(a: &dyn HistoryAnalytics, all: &AnalyticsFilter, s: &Seeded) {
    let sql = a
        .popular(all, PopularKind::Sql, 10)
        .await
        .expect("popular sql");
    // e01, e02, e03 are one shape (literals, layout and keyword case differ); e04 another; the
    // dry run e07 and the asks are not counted.
    assert_eq!(sql.len(), 2, "{sql:?}");
    let top = &sql[0];
    assert_eq!(top.count, 3);
    assert_eq!(top.principals, 2);
    assert_eq!(top.example_id, s.id(3));
    assert_eq!(top.example, "SELECT name FROM shop.orders WHERE id = 'x'");
    assert_eq!(top.last_seen, s.at(3));
    assert_eq!(top.avg_duration_ms, 20.0);
    assert_eq!(top.bytes_processed, 600);
    assert_eq!(top.success_rate, 0.6667);
    assert_eq!(
        top.fingerprint,
        bqai_core::analytics::sql_shape(
            "SELECT name FROM shop.orders WHERE id = 1",
            SqlDialect::DataFusion
        )
    );
    assert_eq!(
        (
            sql[1].count,
            sql[1].success_rate,
            sql[1].example_id.as_str()
        ),
        (1, 0.0, s.id(4))
    );
    let one = a.popular(all, PopularKind::Sql, 1).await.expect("limit");
    assert_eq!(one.len(), 1, "limit is honoured");

    let asks = a
        .popular(all, PopularKind::Ask, 10)
        .await
        .expect("popular asks");
    // "Top 5 products?", "top 5 products", "top 5   products!" are one question.
    assert_eq!(asks.len(), 1, "{asks:?}");
    let q = &asks[0];
    assert_eq!(
        (
            q.count,
            q.principals,
            q.example.as_str(),
            q.example_id.as_str()
        ),
        (3, 2, "top 5   products!", s.id(8))
    );
    assert_eq!(q.avg_duration_ms, 50.0);
    assert_eq!(q.bytes_processed, 400);
    assert_eq!(q.success_rate, 0.6667);
    assert_eq!(q.last_seen, s.at(31));
}

async fn ranked(a: &dyn HistoryAnalytics, all: &AnalyticsFilter, s: &Seeded) {
    let slowest = a.ranked(all, Ranking::Slowest, 3).await.expect("slowest");
    let ids: Vec<_> = slowest.iter().map(|e| e.id.as_str()).collect();
    // e08 60 ms, e06 50 ms, e05 40 ms (the dry run's 1,000 ms and e00 outside the range are not).
    assert_eq!(ids, vec![s.id(8), s.id(6), s.id(5)]);
    assert_eq!(slowest[0], s.entries[8], "whole entries come back");
    let expensive = a
        .ranked(all, Ranking::MostExpensive, 4)
        .await
        .expect("expensive");
    let ids: Vec<_> = expensive.iter().map(|e| e.id.as_str()).collect();
    // e05 2 TiB; e02 and e01 1 TiB each (more bytes processed first); then e03 (300 bytes).
    assert_eq!(ids, vec![s.id(5), s.id(2), s.id(1), s.id(3)]);
}

async fn errors(a: &dyn HistoryAnalytics, all: &AnalyticsFilter, s: &Seeded) {
    let errors = a.errors(all, 10).await.expect("errors");
    let got: Vec<_> = errors
        .iter()
        .map(|e| {
            (
                e.code.as_str(),
                e.count,
                e.failed,
                e.rejected,
                e.example_message.as_str(),
                e.example_id.as_str(),
                e.last_seen,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "FORBIDDEN",
                1,
                0,
                1,
                "dataset secret is not allowed",
                s.id(4),
                s.at(8)
            ),
            (
                "SQL_REJECTED",
                1,
                0,
                1,
                "only SELECT queries are allowed",
                s.id(6),
                s.at(29)
            ),
            (
                "TIMEOUT",
                1,
                1,
                0,
                "the query timed out after 30s",
                s.id(3),
                s.at(3)
            ),
        ]
    );
}

async fn tables(a: &dyn HistoryAnalytics, all: &AnalyticsFilter) {
    let tables = a.tables(all, 10).await.expect("tables");
    let got: Vec<_> = tables
        .iter()
        .map(|t| {
            (
                t.table.as_str(),
                t.queries,
                t.principals,
                t.bytes_processed,
                t.bytes_billed,
            )
        })
        .collect();
    // Answered, not dry runs: orders by e01, e02 (alice), e05 (bob); products by e05, e08 (bob).
    // The failed e03 read nothing.
    assert_eq!(
        got,
        vec![
            ("proj.shop.orders", 3, 2, 700, 4 * TIB),
            ("proj.shop.products", 2, 1, 400, 2 * TIB),
        ]
    );
}

async fn scoping(a: &dyn HistoryAnalytics, all: &AnalyticsFilter, s: &Seeded) {
    let bob = AnalyticsFilter {
        principal: Some(s.bob.clone()),
        ..all.clone()
    };
    let summary = a
        .summary(&bob, GroupBy::Principal)
        .await
        .expect("bob's summary");
    assert_eq!(summary.buckets.len(), 1);
    assert_eq!(summary.buckets[0].key.as_deref(), Some(s.bob.as_str()));
    assert_eq!(
        summary.total,
        stats(
            [3, 2, 1, 0, 0, 1, 2],
            700,
            2 * TIB,
            [40, 60, 60, 60],
            [2, 1000, 100],
            0.5
        ),
        "bob's total"
    );
    let popular = a
        .popular(&bob, PopularKind::Sql, 10)
        .await
        .expect("bob's shapes");
    assert_eq!(popular.len(), 1);
    assert_eq!((popular[0].count, popular[0].principals), (1, 1));
    let slowest = a
        .ranked(&bob, Ranking::Slowest, 10)
        .await
        .expect("bob's slowest");
    assert!(
        slowest
            .iter()
            .all(|e| e.principal.as_deref() == Some(s.bob.as_str()))
    );
    assert_eq!(slowest.len(), 3);
    let errors = a.errors(&bob, 10).await.expect("bob's errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "TIMEOUT");
    let tables = a.tables(&bob, 10).await.expect("bob's tables");
    assert_eq!(
        tables
            .iter()
            .map(|t| (t.table.as_str(), t.queries))
            .collect::<Vec<_>>(),
        vec![("proj.shop.products", 2), ("proj.shop.orders", 1)]
    );
}
