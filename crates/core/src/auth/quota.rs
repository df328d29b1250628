//! Daily byte quotas: the UTC day a charge belongs to and when the quota resets.
//!
//! The query service checks a principal's quota against the dry run's estimate before it
//! runs anything and charges the bytes billed afterwards (through
//! [`crate::ports::UsageLedger`]). Where a warehouse does not bill (the embedded engine),
//! bytes processed are charged instead, so quotas mean the same thing on both.

use chrono::{DateTime, Days, NaiveDate, Utc};

/// The UTC day `at` falls on.
pub fn utc_day(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// The next UTC midnight after `at`: when today's quota resets.
pub fn next_reset(at: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = at
        .date_naive()
        .checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX);
    tomorrow.and_time(chrono::NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_at_the_next_utc_midnight() {
        let at = "2026-11-26T23:59:59Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(utc_day(at).to_string(), "2026-11-26");
        assert_eq!(next_reset(at).to_rfc3339(), "2026-11-27T00:00:00+00:00");
        let midnight = "2026-11-27T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            next_reset(midnight).to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
    }
}
