//! `bqai stats` and `bqai history list|show|rerun`: the history and its analytics from the
//! command line, against the store as configured (an operator tool: everyone's history, no
//! key). Numbers come from the same store queries as `GET /api/v1/analytics/*`; `--format
//! json` prints the API's documents.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use bqai_core::analytics::{AnalyticsFilter, GroupBy, Stats};
use bqai_core::history::{HistoryEntry, HistoryFilter, QueryKind, QueryStatus};
use bqai_core::model::{PageRequest, QueryRequest};
use bqai_core::ports::HistoryStore;
use bqai_core::query::RecordMeta;
use chrono::{DateTime, NaiveDate, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::cli::{Format, print_outcome};
use crate::config::Settings;
use crate::startup::Services;

/// `--since`: `7d`, `12h`, `2w`, `30m`, a date (`2026-12-01`, from its first instant, UTC) or
/// an RFC 3339 time.
pub fn parse_since(since: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let bad = || {
        anyhow::anyhow!(
            "--since {since:?}: give a span (7d, 12h, 2w, 30m), a date (2026-12-01) or an RFC \
             3339 time"
        )
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(since) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(since, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    }
    let split = since.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = since.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let span = match unit {
        "w" => chrono::Duration::try_weeks(n),
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => None,
    }
    .filter(|_| n > 0)
    .ok_or_else(bad)?;
    now.checked_sub_signed(span).ok_or_else(bad)
}

/// `bqai stats`.
pub async fn stats(
    settings: &Settings,
    since: &str,
    by: GroupBy,
    principal: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let from = parse_since(since, now)?;
    if from >= now {
        anyhow::bail!("--since {since:?} is not in the past");
    }
    let store = crate::startup::open_store(settings).await?;
    let filter = AnalyticsFilter {
        from,
        to: now,
        principal: principal.clone(),
    };
    let usd_per_tib = settings.query.usd_per_tib;
    let summary = store
        .analytics()
        .summary(&filter, by)
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?
        .priced(usd_per_tib);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let range = bqai_http::dto::AnalyticsRange {
                from,
                to: now,
                principal,
                retention_notice: None,
            };
            let doc = bqai_http::dto::SummaryResponse::new(range, by, summary);
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(std::iter::once(by.as_str()).chain(STATS_COLUMNS))?;
            for b in &summary.buckets {
                w.write_record(stats_row(b.key.as_deref().unwrap_or(""), &b.stats))?;
            }
            w.write_record(stats_row("total", &summary.total))?;
            w.flush()?;
        }
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(std::iter::once(by.as_str()).chain(STATS_COLUMNS));
            for b in &summary.buckets {
                table.add_row(stats_row(b.key.as_deref().unwrap_or("(none)"), &b.stats));
            }
            table.add_row(stats_row("total", &summary.total));
            writeln!(out, "{table}")?;
            writeln!(
                out,
                "{} to {} (UTC); dry runs counted apart; percentiles are nearest-rank",
                from.format("%Y-%m-%d %H:%M"),
                now.format("%Y-%m-%d %H:%M")
            )?;
        }
    }
    Ok(())
}

const STATS_COLUMNS: [&str; 14] = [
    "queries",
    "succeeded",
    "failed",
    "rejected",
    "dry_runs",
    "cache_hits",
    "asks",
    "bytes_billed",
    "cost_usd",
    "p50_ms",
    "p95_ms",
    "max_ms",
    "llm_calls",
    "llm_cost_usd",
];

fn stats_row(key: &str, s: &Stats) -> Vec<String> {
    let mut row = vec![key.to_string()];
    row.extend(
        [
            s.queries,
            s.succeeded,
            s.failed,
            s.rejected,
            s.dry_runs,
            s.cache_hits,
            s.asks,
            s.bytes_billed,
        ]
        .map(|n| n.to_string()),
    );
    row.push(format!("{:.4}", s.estimated_cost_usd));
    row.extend([s.duration_ms.p50, s.duration_ms.p95, s.duration_ms.max].map(|n| n.to_string()));
    row.push(s.llm_calls.to_string());
    row.push(format!("{:.4}", s.llm_cost_usd));
    row
}

/// `bqai history list`: newest first.
pub async fn list(
    settings: &Settings,
    limit: u32,
    status: Option<String>,
    kind: Option<String>,
    principal: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    if !(1..=500).contains(&limit) {
        anyhow::bail!("--limit must be between 1 and 500");
    }
    let status = status
        .map(|s| {
            QueryStatus::parse(&s)
                .ok_or_else(|| anyhow::anyhow!("--status must be succeeded, failed or rejected"))
        })
        .transpose()?;
    let kind = kind
        .map(|k| {
            QueryKind::parse(&k)
                .ok_or_else(|| anyhow::anyhow!("--kind must be sql, ask, system or export"))
        })
        .transpose()?;
    let store = crate::startup::open_store(settings).await?;
    let page = store
        .list(
            &HistoryFilter {
                status,
                kind,
                principal,
            },
            &PageRequest {
                page_size: limit,
                page_token: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let data: Vec<_> = page
                .items
                .into_iter()
                .map(bqai_http::dto::HistoryDto::from)
                .collect();
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "data": data }))?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(LIST_COLUMNS)?;
            for e in &page.items {
                w.write_record(list_row(e, usize::MAX))?;
            }
            w.flush()?;
        }
        Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(LIST_COLUMNS);
            for e in &page.items {
                table.add_row(list_row(e, 60));
            }
            writeln!(out, "{table}")?;
        }
    }
    Ok(())
}

const LIST_COLUMNS: [&str; 9] = [
    "id",
    "created_at",
    "principal",
    "kind",
    "status",
    "duration_ms",
    "bytes_billed",
    "error_code",
    "sql_or_question",
];

fn list_row(e: &HistoryEntry, width: usize) -> Vec<String> {
    let text = e.question.as_deref().unwrap_or(&e.sql_submitted);
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = if text.chars().count() > width {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        text
    };
    vec![
        e.id.clone(),
        e.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        e.principal.clone().unwrap_or_default(),
        e.kind.as_str().to_string(),
        e.status.as_str().to_string(),
        e.duration_ms.to_string(),
        e.bytes_billed.to_string(),
        e.error_code.clone().unwrap_or_default(),
        text,
    ]
}

pub(crate) async fn entry(store: &dyn HistoryStore, id: &str) -> anyhow::Result<HistoryEntry> {
    store
        .get(id)
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?
        .ok_or_else(|| anyhow::anyhow!("history entry {id} not found"))
}

/// `bqai history show ID`.
pub async fn show(settings: &Settings, id: &str, format: Format) -> anyhow::Result<()> {
    let store = crate::startup::open_store(settings).await?;
    let e = entry(&store, id).await?;
    let mut out = std::io::stdout().lock();
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut out, &bqai_http::dto::HistoryDto::from(e))?;
        writeln!(out)?;
        return Ok(());
    }
    let doc = serde_json::to_value(bqai_http::dto::HistoryDto::from(e))?;
    let fields = doc.as_object().into_iter().flatten().map(|(k, v)| {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        (k.clone(), v)
    });
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(["field", "value"])?;
        for (k, v) in fields {
            w.write_record([k, v])?;
        }
        w.flush()?;
    } else {
        for (k, v) in fields {
            writeln!(out, "{k:>16}: {v}")?;
        }
    }
    Ok(())
}

/// `bqai history rerun ID`: the entry's SQL through the whole pipeline again, recorded as a
/// new entry with `rerun_of`.
pub async fn rerun(
    settings: &Settings,
    id: &str,
    dry_run: bool,
    max_rows: Option<u64>,
    format: Format,
) -> anyhow::Result<()> {
    let services = Services::build(settings).await?;
    let e = entry(services.history.as_ref(), id).await?;
    let request = QueryRequest {
        dry_run,
        max_rows,
        ..e.rerun_request().map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let meta = RecordMeta {
        rerun_of: Some(id.to_string()),
        ..RecordMeta::sql()
    };
    let outcome = services
        .queries
        .run_recorded(request, &services.anonymous, meta)
        .await;
    // The new entry is queued in front of the store: write it before exiting.
    services.flush_history(Duration::from_secs(5)).await;
    let outcome = outcome.map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    let mut out = std::io::stdout().lock();
    print_outcome(&mut out, &outcome, format).context("could not write the result")?;
    Ok(())
}
