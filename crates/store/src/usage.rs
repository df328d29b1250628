//! Backend-neutral parts of the usage ledger: the row type, the saturating total a charge
//! writes, and [`UsageLedger`] for [`Store`].
//!
//! A charge is one `INSERT … ON CONFLICT (principal, day) DO UPDATE … RETURNING bytes`: the
//! database serialises concurrent charges of one row, so none is lost and each caller hears
//! the total its own charge produced.

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::ports::UsageLedger;
use chrono::NaiveDate;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::convert::to_sql_count;
use crate::schema::key_usage;
use crate::{Backend, Store};

/// One `key_usage` row: the bytes charged to a principal on a UTC day.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = key_usage)]
pub(crate) struct UsageRow {
    pub principal: String,
    pub day: NaiveDate,
    pub bytes: i64,
}

impl UsageRow {
    /// The row a first charge of `bytes` creates (saturated at `i64::MAX`).
    pub(crate) fn new(principal: &str, day: NaiveDate, bytes: u64) -> Self {
        Self {
            principal: principal.to_owned(),
            day,
            bytes: to_sql_count(bytes),
        }
    }
}

/// The new total when a charge meets an existing row: the stored bytes plus the charge,
/// saturating at `i64::MAX`. Both operands are non-negative (CHECK constraints), so
/// `i64::MAX - charge` cannot overflow; the sum is only taken when it fits (PostgreSQL would
/// fail on overflow, SQLite would turn the sum into a float). Plain SQL both backends accept.
pub(crate) fn saturating_total() -> SqlLiteral<BigInt> {
    diesel::dsl::sql::<BigInt>(
        "CASE WHEN key_usage.bytes > 9223372036854775807 - excluded.bytes \
         THEN 9223372036854775807 ELSE key_usage.bytes + excluded.bytes END",
    )
}

#[async_trait]
impl UsageLedger for Store {
    async fn bytes_used(&self, principal: &str, day: NaiveDate) -> Result<u64> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.bytes_used(principal, day).await,
            Backend::Postgres(s) => s.bytes_used(principal, day).await,
        }
    }

    async fn charge_bytes(&self, principal: &str, day: NaiveDate, bytes: u64) -> Result<u64> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.charge_bytes(principal, day, bytes).await,
            Backend::Postgres(s) => s.charge_bytes(principal, day, bytes).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_charge_saturates() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(UsageRow::new("p", day, u64::MAX).bytes, i64::MAX);
        assert_eq!(UsageRow::new("p", day, 7).bytes, 7);
    }
}
