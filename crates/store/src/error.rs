//! Translation of pool and diesel errors into [`bqai_core::Error`], so no diesel or deadpool
//! type crosses the crate's public API.

use bqai_core::Error;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

/// How clients hear about this dependency.
pub(crate) const WHAT: &str = "the history store";

/// A failure to obtain a connection: the store is unreachable or saturated.
pub(crate) fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::NoRuntimeSpecified => Error::internal("history store pool misconfigured", e),
        _ => Error::unavailable(WHAT, e),
    }
}

/// A failed statement. Constraint violations in our own writes are bugs (`Internal`); the
/// database being busy, closed, unreachable or out of disk is `Unavailable`.
pub(crate) fn query_error(e: DieselError) -> Error {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation,
            _,
        ) => Error::internal("history store rejected a write", e),
        DieselError::DatabaseError(..) => Error::unavailable(WHAT, e),
        _ => Error::internal("history store query failed", e),
    }
}

/// A failed insert of history entry `id`: a duplicate id is an expected outcome the port names
/// (`Conflict`), not a driver failure; anything else as [`query_error`].
pub(crate) fn record_error(e: DieselError, id: &str) -> Error {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            Error::Conflict(format!("history entry {id} already exists"))
        }
        e => query_error(e),
    }
}
