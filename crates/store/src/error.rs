//! Translation of pool and diesel errors into [`bqai_core::Error`], so no diesel or deadpool
//! type crosses the crate's public API.

use bqai_core::Error;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

/// Which port of the store a statement serves: it names the dependency in errors, so a client
/// hears "the audit log is unavailable" rather than about a store it never asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    History,
    Keys,
    Audit,
    Usage,
    Conversations,
    ExportJobs,
}

impl Port {
    /// How clients hear about this dependency.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Port::History => "the history store",
            Port::Keys => "the key store",
            Port::Audit => "the audit log",
            Port::Usage => "the usage ledger",
            Port::Conversations => "the conversation store",
            Port::ExportJobs => "the export job store",
        }
    }

    /// The dependency without its article, for internal messages.
    fn name(self) -> &'static str {
        &self.what()["the ".len()..]
    }

    /// What one row is, for `Conflict` messages.
    fn row(self) -> &'static str {
        match self {
            Port::History => "history entry",
            Port::Keys => "API key",
            Port::Audit => "audit event",
            Port::Usage => "usage row",
            Port::Conversations => "conversation",
            Port::ExportJobs => "export job",
        }
    }

    /// An internal error of this port: `context` prefixed with the port's name.
    pub(crate) fn internal(
        self,
        context: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::internal(format!("{} {context}", self.name()), source)
    }
}

/// A failure to obtain a connection: the store is unreachable or saturated.
pub(crate) fn pool_error(e: PoolError, port: Port) -> Error {
    match e {
        PoolError::NoRuntimeSpecified => port.internal("pool misconfigured", e),
        _ => Error::unavailable(port.what(), e),
    }
}

/// A failed statement. Constraint violations in our own writes are bugs (`Internal`); the
/// database being busy, closed, unreachable or out of disk is `Unavailable`.
pub(crate) fn query_error(e: DieselError, port: Port) -> Error {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::NotNullViolation
            | DatabaseErrorKind::CheckViolation,
            _,
        ) => port.internal("rejected a write", e),
        DieselError::DatabaseError(..) => Error::unavailable(port.what(), e),
        _ => port.internal("query failed", e),
    }
}

/// A failed insert of row `id`: a duplicate id is an expected outcome the port names
/// (`Conflict`), not a driver failure; anything else as [`query_error`].
pub(crate) fn insert_error(e: DieselError, port: Port, id: &str) -> Error {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            Error::Conflict(format!("{} {id} already exists", port.row()))
        }
        e => query_error(e, port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_port() {
        let dup = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("duplicate key".to_owned()),
            )
        };
        match insert_error(dup(), Port::Keys, "k1") {
            Error::Conflict(m) => assert_eq!(m, "API key k1 already exists"),
            other => panic!("{other:?}"),
        }
        match insert_error(dup(), Port::History, "h1") {
            Error::Conflict(m) => assert_eq!(m, "history entry h1 already exists"),
            other => panic!("{other:?}"),
        }
        let busy = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert_eq!(
            query_error(busy, Port::Audit).to_string(),
            "the audit log is unavailable"
        );
        match query_error(DieselError::NotFound, Port::Usage) {
            Error::Internal { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}
