//! `GET /api/v1/analytics/*`: what people ask, what it costs, what is slow, what fails —
//! computed by the history store in its database (see `bqai_core::analytics` for what each
//! number means). Admins see everyone's history (`?principal=` narrows it); everyone else sees
//! only their own.

use actix_web::{HttpResponse, get, web};
use bqai_core::analytics::{AnalyticsFilter, GroupBy, PopularKind, Ranking, usd_for_bytes};
use bqai_core::auth::Action;
use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::history::scoped_principal;
use crate::auth::Caller;
use crate::dto::{
    AnalyticsQuery, AnalyticsRange, ErrorsResponse, HistoryDto, PopularResponse, RankedResponse,
    SummaryResponse, TablesResponse,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The range when the caller gives none.
const DEFAULT_DAYS: i64 = 7;
/// Rows when the caller gives no `limit`.
const DEFAULT_LIMIT: u32 = 10;
/// Most rows a list returns.
const MAX_LIMIT: u32 = 100;

/// Totals and per-group numbers: queries by outcome, dry runs apart, cache hits, bytes, cost,
/// duration percentiles (nearest rank), LLM calls, tokens and cost.
#[utoipa::path(operation_id = "analytics_summary", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Totals and buckets", body = SummaryResponse), (status = 400, description = "INVALID_REQUEST: a malformed or empty range, an unknown group_by", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/summary")]
pub async fn summary(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (filter, range) = scope(&state, &caller, &q)?;
    let group_by = match q.group_by.as_deref() {
        None => GroupBy::Day,
        Some(g) => GroupBy::parse(g).ok_or_else(|| {
            let names: Vec<_> = GroupBy::ALL.iter().map(|g| g.as_str()).collect();
            ApiError::invalid(format!("group_by must be one of {}", names.join(", ")))
        })?,
    };
    let usd_per_tib = state.queries.limits().usd_per_tib;
    let summary = state
        .analytics
        .summary(&filter, group_by)
        .await?
        .priced(usd_per_tib);
    Ok(HttpResponse::Ok().json(SummaryResponse::new(range, group_by, summary)))
}

/// The most frequent query shapes (`kind=sql`: literals replaced, layout and keyword case
/// ignored) or questions (`kind=ask`: case and punctuation ignored).
#[utoipa::path(operation_id = "analytics_popular", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Most frequent first", body = PopularResponse), (status = 400, description = "INVALID_REQUEST", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/popular")]
pub async fn popular(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (filter, range) = scope(&state, &caller, &q)?;
    let kind = match q.kind.as_deref() {
        None | Some("sql") => PopularKind::Sql,
        Some("ask") => PopularKind::Ask,
        Some(_) => return Err(ApiError::invalid("kind must be sql or ask")),
    };
    let data = state
        .analytics
        .popular(&filter, kind, limit(q.limit)?)
        .await?;
    Ok(HttpResponse::Ok().json(PopularResponse { range, kind, data }))
}

/// The slowest single queries (dry runs left out).
#[utoipa::path(operation_id = "analytics_slowest", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Longest first", body = RankedResponse), (status = 400, description = "INVALID_REQUEST", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/slowest")]
pub async fn slowest(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    ranked(&state, &caller, q.into_inner(), Ranking::Slowest).await
}

/// The most expensive single queries by bytes billed (dry runs left out).
#[utoipa::path(operation_id = "analytics_expensive", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Most bytes billed first", body = RankedResponse), (status = 400, description = "INVALID_REQUEST", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/expensive")]
pub async fn expensive(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    ranked(&state, &caller, q.into_inner(), Ranking::MostExpensive).await
}

async fn ranked(
    state: &AppState,
    caller: &Caller,
    q: AnalyticsQuery,
    ranking: Ranking,
) -> Result<HttpResponse, ApiError> {
    let (filter, range) = scope(state, caller, &q)?;
    let entries = state
        .analytics
        .ranked(&filter, ranking, limit(q.limit)?)
        .await?;
    Ok(HttpResponse::Ok().json(RankedResponse {
        range,
        data: entries.into_iter().map(HistoryDto::from).collect(),
    }))
}

/// Error codes with counts and the latest message.
#[utoipa::path(operation_id = "analytics_errors", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Most frequent first", body = ErrorsResponse), (status = 400, description = "INVALID_REQUEST", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/errors")]
pub async fn errors(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (filter, range) = scope(&state, &caller, &q)?;
    let data = state.analytics.errors(&filter, limit(q.limit)?).await?;
    Ok(HttpResponse::Ok().json(ErrorsResponse { range, data }))
}

/// Tables read by answered queries, with query counts and bytes (a query reading two tables
/// counts for both).
#[utoipa::path(operation_id = "analytics_tables", tag = "analytics", params(AnalyticsQuery), responses((status = 200, description = "Most read first", body = TablesResponse), (status = 400, description = "INVALID_REQUEST", body = crate::openapi::ErrorEnvelope)))]
#[get("/analytics/tables")]
pub async fn tables(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let (filter, range) = scope(&state, &caller, &q)?;
    let usd_per_tib = state.queries.limits().usd_per_tib;
    let mut data = state.analytics.tables(&filter, limit(q.limit)?).await?;
    for t in &mut data {
        t.estimated_cost_usd = usd_for_bytes(t.bytes_billed, usd_per_tib);
    }
    Ok(HttpResponse::Ok().json(TablesResponse { range, data }))
}

/// The caller's filter (role scoping as for `GET /history`) and the range to report.
fn scope(
    state: &AppState,
    caller: &Caller,
    q: &AnalyticsQuery,
) -> Result<(AnalyticsFilter, AnalyticsRange), ApiError> {
    caller.require(Action::HistoryRead)?;
    let principal = scoped_principal(caller, q.principal.as_deref())?;
    let now = Utc::now();
    let (from, to) = parse_range(q.from.as_deref(), q.to.as_deref(), now)?;
    let retention_notice = retention_notice(state.settings.history_retention_days, from, now);
    Ok((
        AnalyticsFilter {
            from,
            to,
            principal: principal.clone(),
        },
        AnalyticsRange {
            from,
            to,
            principal,
            retention_notice,
        },
    ))
}

fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// Which end of the range a bound is: a date means its first instant for `from` and the first
/// instant of the next day for `to` (so `to=2026-12-05` includes that day).
#[derive(Clone, Copy)]
enum End {
    From,
    To,
}

fn parse_bound(name: &str, value: &str, end: End) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(format!(
            "{name} must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)"
        ))
    })?;
    let day = match end {
        End::From => Some(day),
        End::To => day.succ_opt(),
    };
    day.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::invalid(format!("{name} is out of range")))
}

/// `[from, to)` from the query string: defaults to the 7 days before `to` (default now).
pub(crate) fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = to
        .map(|v| parse_bound("to", v, End::To))
        .transpose()?
        .unwrap_or(now);
    let from = match from {
        Some(v) => parse_bound("from", v, End::From)?,
        None => to
            .checked_sub_signed(Duration::days(DEFAULT_DAYS))
            .ok_or_else(|| ApiError::invalid("to is out of range"))?,
    };
    if from >= to {
        return Err(ApiError::invalid(format!(
            "from ({}) must be before to ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok((from, to))
}

/// Says so when `from` reaches back past what retention keeps.
fn retention_notice(
    retention_days: f64,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<String> {
    if retention_days <= 0.0 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let kept = Duration::seconds((retention_days * 86_400.0) as i64);
    let cutoff = now.checked_sub_signed(kept)?;
    (from < cutoff).then(|| {
        format!(
            "history is kept {retention_days} days (store.history_retention_days): entries \
             before {} have been purged and are not counted",
            cutoff.format("%Y-%m-%dT%H:%M:%SZ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ranges_take_dates_or_times_and_default_to_the_last_seven_days() {
        let now = t("2026-12-06T12:00:00Z");
        assert_eq!(
            parse_range(None, None, now).unwrap(),
            (t("2026-11-29T12:00:00Z"), now)
        );
        // A date `to` includes that whole day.
        assert_eq!(
            parse_range(Some("2026-12-01"), Some("2026-12-05"), now).unwrap(),
            (t("2026-12-01T00:00:00Z"), t("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            parse_range(Some("2026-12-01T10:00:00+02:00"), None, now).unwrap(),
            (t("2026-12-01T08:00:00Z"), now)
        );
        assert_eq!(
            parse_range(None, Some("2026-12-05"), now).unwrap().0,
            Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn malformed_or_empty_ranges_are_refused() {
        let now = t("2026-12-06T12:00:00Z");
        for (from, to) in [
            (Some("yesterday"), None),
            (None, Some("2026-13-01")),
            (Some("2026-12-05"), Some("2026-12-01")),
            (Some("2026-12-01T00:00:00Z"), Some("2026-12-01T00:00:00Z")),
            (Some("2026-12-07"), None),
        ] {
            assert!(parse_range(from, to, now).is_err(), "{from:?}..{to:?}");
        }
    }

    #[test]
    fn a_range_past_retention_says_so() {
        let now = t("2026-12-06T00:00:00Z");
        assert!(retention_notice(90.0, t("2026-11-01T00:00:00Z"), now).is_none());
        let notice = retention_notice(30.0, t("2026-10-01T00:00:00Z"), now).unwrap();
        assert!(notice.contains("2026-11-06T00:00:00Z"), "{notice}");
        assert!(retention_notice(0.0, t("2000-01-01T00:00:00Z"), now).is_none());
    }
}
