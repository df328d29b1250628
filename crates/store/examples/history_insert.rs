//! Times the history insert path: `HistoryStore::record` called once per entry, one after the
//! other, as the query service does after every query.
//!
//! ```sh
//! cargo run --release -p bqai-store --example history_insert                 # SQLite, temp file
//! cargo run --release -p bqai-store --example history_insert -- 20000 postgres://postgres@127.0.0.1/bqai_insert --fresh
//! cargo run --release -p bqai-store --example history_insert -- 100000 --batch 256      # the history writer's way
//! cargo run --release -p bqai-store --example history_insert -- 50000 --rate 5000 --linger-ms 5  # as under load
//! ```
//!
//! Arguments (all optional, any order): a number of entries (default 20,000, or
//! `HISTORY_INSERT_N`), a store URL (default a SQLite file in a temporary directory, or
//! `STORE_URL`), and `--fresh` to empty a PostgreSQL database first (`DROP SCHEMA public
//! CASCADE`: only for a database made for this), and `--batch N` to record N entries per
//! `record_batch` call, as the history writer does under load (then the latency is per batch,
//! and the CPU time of the process is printed too), or `--rate R` to record through the
//! server's history writer (`QueuedHistory`: a queue of 4,096, batches of at most 256,
//! lingering `--linger-ms` for more, default 5) at R entries a second, as a server answering R
//! queries a second does, and print the CPU time per entry. Migrates, records 500 untimed entries, then
//! times N and prints inserts per second and the latency distribution of one `record`, and a
//! last line `RESULT backend=… n=… per_s=… p50_us=… p90_us=… p99_us=…` for scripts.
//!
//! The entries are a mix like the service's (70% SQL, 28% asks with generator details, 2%
//! system; 10% not succeeded; 1–3 tables each; shape fingerprints filled). They are built from
//! JSON before the clock starts, so this file compiles against a `HistoryEntry` with or
//! without the analytics fields (unknown fields are ignored on the way in): the same file
//! times the commit before and after a change to the insert path.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bqai_core::history::HistoryEntry;
use bqai_core::ports::HistoryStore;
use bqai_store::{Store, StoreOptions};
use chrono::{TimeDelta, Utc};
use serde_json::json;

const WARM_UP: usize = 500;

/// A small deterministic generator (xorshift), so both runs record the same entries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TABLES: [&str; 8] = [
    "acme-analytics.shop.orders",
    "acme-analytics.shop.order_items",
    "acme-analytics.shop.customers",
    "acme-analytics.shop.products",
    "acme-analytics.finance.invoices",
    "acme-analytics.finance.payments",
    "acme-analytics.marketing.campaigns",
    "acme-analytics.product.events",
];

fn entries(n: usize, seed: u64) -> Result<Vec<HistoryEntry>, serde_json::Error> {
    let mut rng = Rng(seed | 1);
    let start = Utc::now();
    let start_ms = start.timestamp_millis() as u64;
    let mut previous = String::new();
    (0..n)
        .map(|i| {
            let kind = match rng.below(100) {
                0..70 => "sql",
                70..98 => "ask",
                _ => "system",
            };
            let status = match rng.below(100) {
                0..90 => "succeeded",
                90..94 => "failed",
                _ => "rejected",
            };
            let shape = rng.below(2000);
            let n_tables = 1 + rng.below(3) as usize;
            let first = rng.below(TABLES.len() as u64) as usize;
            let tables: Vec<&str> = (0..n_tables)
                .map(|k| TABLES[(first + k) % TABLES.len()])
                .collect();
            let sql = format!(
                "SELECT t0.country, SUM(t0.amount) AS amount_{shape} FROM `{}` AS t0 \
                 WHERE t0.created_at >= '2026-{:02}-01' AND t0.amount > {} \
                 GROUP BY t0.country ORDER BY 2 DESC",
                tables[0],
                1 + rng.below(12),
                rng.below(5000)
            );
            // A UUIDv7-shaped id: milliseconds, version, then the index and random bits.
            let id = format!(
                "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
                (start_ms + i as u64) >> 16,
                (start_ms + i as u64) & 0xffff,
                i & 0xfff,
                0x8000 | (rng.below(0x4000)),
                rng.next() & 0xffff_ffff_ffff
            );
            let failed = status != "succeeded";
            let mut v = json!({
                "id": &id,
                "kind": kind,
                "question": (kind == "ask").then(|| format!("total amount by country in {}", 2020 + shape % 7)),
                "sql_submitted": sql,
                "sql_executed": (status != "rejected").then(|| format!("{sql} LIMIT 10000")),
                "status": status,
                "error_code": failed.then_some(if status == "failed" { "QUERY_TIMEOUT" } else { "SQL_REJECTED" }),
                "error_message": failed.then_some("the query could not run"),
                "principal": (kind != "system").then(|| format!("key{:09}", rng.below(50))),
                "dataset": "shop",
                "dry_run": rng.chance(5),
                "bytes_processed": rng.below(10_000_000_000),
                "bytes_billed": rng.below(10_000_000_000),
                "duration_ms": rng.below(5000),
                "row_count": rng.below(1000),
                "cache_hit": rng.chance(20),
                "created_at": start + TimeDelta::milliseconds(i as i64),
                "request_id": format!("req-{seed:x}-{i}"),
                "sql_shape": format!("{:016x}", shape.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                "tables": if status == "rejected" { Vec::new() } else { tables },
            });
            if kind == "ask" {
                v["question_shape"] = json!(format!("{:016x}", (shape % 400).wrapping_mul(0x517c_c1b7_2722_0a95)));
                v["ask"] = json!({
                    "attempts": 1,
                    "generator": "claude-cli",
                    "model": "claude-sonnet-4-5",
                    "llm_latency_ms": 2400,
                    "input_tokens": 5200,
                    "output_tokens": 180,
                    "cost_usd": 0.021,
                    "from_cache": false,
                    "follow_up": false,
                });
            }
            if kind == "sql" && rng.chance(2) && !previous.is_empty() {
                v["rerun_of"] = json!(previous);
            }
            previous = id;
            serde_json::from_value(v)
        })
        .collect()
}

/// Records `entries` through the server's history writer at `rate` a second (ticks of 1 ms),
/// waits until all are stored, and prints the process's CPU time per entry.
async fn at_rate(
    store: Store,
    entries: &[HistoryEntry],
    rate: u64,
    linger: Duration,
) -> Result<(), Error> {
    let backend = store.backend_name();
    let queued = bqai_memory::QueuedHistory::spawn(std::sync::Arc::new(store), 4096, 256, linger);
    let cpu_start = cpu_time();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0usize;
    while sent < entries.len() {
        tick.tick().await;
        // Entries due by now, at `rate` a second since the start.
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize).min(entries.len());
        for e in &entries[sent..due.max(sent)] {
            queued.record(e).await?;
        }
        sent = due.max(sent);
    }
    let left = queued.flush(Duration::from_secs(60)).await;
    let total = start.elapsed();
    let cpu = cpu_time()
        .zip(cpu_start)
        .map(|(b, a)| b.saturating_sub(a))
        .unwrap_or_default();
    let n = entries.len();
    let cpu_us = cpu.as_secs_f64() * 1e6 / n as f64;
    let core_share = cpu.as_secs_f64() / total.as_secs_f64();
    println!(
        "{backend}: {n} entries at {rate}/s through the history writer (linger {} ms) in {:.2} \
         s: {cpu_us:.1} µs of CPU per entry, {:.0}% of a core; {left} left",
        linger.as_millis(),
        total.as_secs_f64(),
        core_share * 100.0
    );
    println!(
        "RESULT backend={backend} n={n} rate={rate} linger_ms={} cpu_us_per_row={cpu_us:.1} \
         core_pct={:.0}",
        linger.as_millis(),
        core_share * 100.0
    );
    Ok(())
}

/// The CPU time of this process so far (user + system, from `/proc/self/stat`), on Linux.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: fields 14 and 15 (utime, stime) in clock ticks.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> u128 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_micros()
}

type Error = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut n: usize = std::env::var("HISTORY_INSERT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut url = std::env::var("STORE_URL").ok().filter(|u| !u.is_empty());
    let mut fresh = false;
    let mut batch_size: Option<usize> = None;
    let mut rate: Option<u64> = None;
    let mut linger_ms: u64 = 5;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--fresh" {
            fresh = true;
        } else if arg == "--batch" {
            batch_size = args.next().and_then(|v| v.parse().ok()).filter(|b| *b > 0);
        } else if arg == "--rate" {
            rate = args.next().and_then(|v| v.parse().ok()).filter(|r| *r > 0);
        } else if arg == "--linger-ms" {
            linger_ms = args
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(linger_ms);
        } else if let Ok(v) = arg.parse() {
            n = v;
        } else {
            url = Some(arg);
        }
    }
    let n = n.max(1);
    let dir = tempfile::tempdir()?;
    let url = url.unwrap_or_else(|| dir.path().join("bqai.db").display().to_string());
    if fresh && url.starts_with("postgres") {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let _connection = tokio::spawn(conn);
        client
            .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .await?;
    }
    let store = Store::connect(&url, StoreOptions::default()).await?;
    store.migrate().await?;
    let backend = store.backend_name();

    for e in &entries(WARM_UP, 0x5eed_0001)? {
        store.record(e).await?;
    }
    let batch = entries(n, 0x5eed_0002)?;
    let mut took = Vec::with_capacity(n);
    if let Some(rate) = rate {
        return at_rate(store, &batch, rate, Duration::from_millis(linger_ms)).await;
    }
    let cpu_start = cpu_time();
    let start = Instant::now();
    match batch_size {
        Some(size) => {
            for chunk in batch.chunks(size) {
                let t = Instant::now();
                store.record_batch(chunk).await?;
                took.push(t.elapsed());
            }
        }
        None => {
            for e in &batch {
                let t = Instant::now();
                store.record(e).await?;
                took.push(t.elapsed());
            }
        }
    }
    let total = start.elapsed();
    let cpu = cpu_time().zip(cpu_start).map(|(b, a)| b.saturating_sub(a));
    if let (Some(size), Some(cpu)) = (batch_size, cpu) {
        let per_s = n as f64 / total.as_secs_f64();
        took.sort_unstable();
        let (p50, p99) = (percentile(&took, 0.50), percentile(&took, 0.99));
        let cpu_us = cpu.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{backend}: {n} entries recorded in batches of {size} in {:.2} s: {per_s:.0} \
             rows/s, {cpu_us:.1} µs of CPU per row; per batch p50 {p50} µs, p99 {p99} µs",
            total.as_secs_f64()
        );
        println!(
            "RESULT backend={backend} n={n} batch={size} per_s={per_s:.0} cpu_us_per_row={cpu_us:.1} \
             p50_us={p50} p99_us={p99}"
        );
        return Ok(());
    }
    took.sort_unstable();
    let per_s = n as f64 / total.as_secs_f64();
    let (p50, p90, p99) = (
        percentile(&took, 0.50),
        percentile(&took, 0.90),
        percentile(&took, 0.99),
    );
    println!(
        "{backend}: {n} entries recorded one by one in {:.2} s: {per_s:.0} inserts/s; \
         per record p50 {p50} µs, p90 {p90} µs, p99 {p99} µs, max {} µs",
        total.as_secs_f64(),
        took[n - 1].as_micros()
    );
    println!(
        "RESULT backend={backend} n={n} per_s={per_s:.0} p50_us={p50} p90_us={p90} p99_us={p99}"
    );
    Ok(())
}
