//! Conversions between domain values and column values, shared by every table.
//!
//! Counters are `u64` in the domain and `BIGINT` (i64) in SQL; values above `i64::MAX` are
//! stored as `i64::MAX` (saturated, not wrapped), and a negative stored value (never written by
//! this crate) reads as 0. Timestamps are stored in UTC with microsecond precision, the finest
//! PostgreSQL keeps; sub-microsecond digits are dropped on write. Lists (a key's datasets, an
//! audit event's targets) are stored as JSON arrays of strings. Text never holds a NUL
//! character: PostgreSQL refuses it in `TEXT`, and one such record must not be lost or block
//! the ones behind it, so it is stored with U+FFFD in its place (on both backends alike).

use bqai_core::{Error, Result};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

/// `s` as stored: NUL characters replaced by U+FFFD.
pub(crate) fn to_sql_text(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s.to_owned()
    }
}

/// [`to_sql_text`] of an optional text.
pub(crate) fn to_sql_text_opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(to_sql_text)
}

/// Saturates instead of wrapping: a huge count stays huge rather than turning negative.
pub(crate) fn to_sql_count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `t` as stored: UTC, cut to whole microseconds.
pub(crate) fn to_sql_time(t: DateTime<Utc>) -> NaiveDateTime {
    DateTime::from_timestamp_micros(t.timestamp_micros())
        .unwrap_or(t)
        .naive_utc()
}

/// The first stored (whole-microsecond) time at or after `t`: a bound to compare stored times
/// with, so that `stored >= t` and `stored < t` mean the same with `t` rounded this way.
pub(crate) fn to_sql_time_ceil(t: DateTime<Utc>) -> NaiveDateTime {
    let floor = to_sql_time(t);
    if floor.and_utc() < t {
        floor
            .checked_add_signed(TimeDelta::microseconds(1))
            .unwrap_or(floor)
    } else {
        floor
    }
}

/// A list as a JSON array.
pub(crate) fn to_json_list(items: &[String]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| Error::internal("encoding a list as JSON", e))
}

/// A JSON array read back; anything else in the column is a bug (`Internal`) naming `what`.
pub(crate) fn from_json_list(text: &str, what: impl FnOnce() -> String) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("{} is not a JSON list of strings", what()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate() {
        assert_eq!(to_sql_count(u64::MAX), i64::MAX);
        assert_eq!(to_sql_count(42), 42);
        assert_eq!(from_sql_count(-1), 0);
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            to_sql_time(t).and_utc().timestamp_subsec_nanos(),
            123_456_000
        );
        assert_eq!(
            to_sql_time_ceil(t).and_utc().timestamp_subsec_nanos(),
            123_457_000
        );
        let whole = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(to_sql_time_ceil(whole), to_sql_time(whole));
    }

    #[test]
    fn lists_round_trip_as_json() {
        let items = vec!["shop".to_owned(), "proj.ds \"quoted\" ✓".to_owned()];
        let text = to_json_list(&items).unwrap();
        assert_eq!(from_json_list(&text, || "x".into()).unwrap(), items);
        assert_eq!(to_json_list(&[]).unwrap(), "[]");
        match from_json_list("{\"a\":1}", || "key k datasets".into()) {
            Err(Error::Internal { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
