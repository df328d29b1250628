//! The core error type: the kinds of failure the use cases branch on and the HTTP layer maps
//! to status codes.
//!
//! Every variant carries a message that is safe to show to the caller. Internal causes (a
//! driver error, an engine panic message) travel in `source` so they reach the logs, never a
//! response body.

use std::time::Duration;

use crate::guard::Rejection;
use crate::llm::LlmError;

/// A boxed error used as the hidden cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across bqai-core and its ports.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a use case or a port.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something malformed or out of bounds.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The SQL guard refused the statement before it reached the warehouse.
    #[error("SQL rejected: {0}")]
    SqlRejected(Rejection),

    /// The warehouse could not plan or run the (guarded) SQL because of the SQL itself:
    /// unknown column, type mismatch, syntax the engine does not support. The message is the
    /// engine's description of the problem in the caller's SQL.
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// The caller did not say who it is, or its credentials are unknown, revoked, expired
    /// or malformed.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),

    /// The principal may not touch this dataset or perform this action.
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// A dataset, table, history entry or other named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// The thing being created already exists (a duplicate id, a name taken).
    #[error("conflict: {0}")]
    Conflict(String),

    /// The estimated bytes are above the configured byte cap; nothing was run.
    #[error("query would process {estimated_bytes} bytes, above the limit of {limit_bytes} bytes")]
    CostLimitExceeded {
        /// The dry run's estimate.
        estimated_bytes: u64,
        /// The configured cap.
        limit_bytes: u64,
    },

    /// A caller exceeded a rate limit.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },

    /// The principal's daily byte quota would be (or is) exhausted; nothing was run.
    #[error(
        "daily byte quota of {limit_bytes} bytes exhausted ({used_bytes} used); resets at {resets_at}"
    )]
    QuotaExceeded {
        /// The quota (bytes per UTC day).
        limit_bytes: u64,
        /// Bytes already charged today.
        used_bytes: u64,
        /// The bytes this query would add (its dry-run estimate), 0 when already exhausted.
        requested_bytes: u64,
        /// When the quota resets (the next UTC midnight).
        resets_at: chrono::DateTime<chrono::Utc>,
    },

    /// The query queue had no room for the query, or the query waited in it past its
    /// deadline (`query.queue_timeout_ms`); nothing ran. The message says which.
    #[error("{message}")]
    QueueFull {
        /// What happened, in words safe for clients.
        message: String,
        /// When a retry may find room (the queue's estimate).
        retry_after: Duration,
    },

    /// The operation did not finish in time and was cancelled.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// A dependency (warehouse, store, cache) is unreachable or overloaded.
    #[error("{what} is unavailable")]
    Unavailable {
        /// Which dependency, in words safe for clients ("the warehouse").
        what: String,
        /// The underlying cause, for logs.
        #[source]
        source: Option<BoxError>,
    },

    /// The language model behind the SQL generator failed (down, timed out, refused our key,
    /// rate-limited, busy). The kind decides the status code.
    #[error("language model: {0}")]
    Llm(LlmError),

    /// The generator produced no usable SQL in any of its attempts (every attempt was invalid,
    /// refused by the guard or failed its dry run). `reason` is the last attempt's problem.
    #[error("could not generate a valid query in {attempts} attempts: {reason}")]
    GenerationFailed {
        /// How many attempts were made.
        attempts: u32,
        /// Why the last one failed.
        reason: String,
    },

    /// The question cannot be answered with SQL over the data in scope (the generator said
    /// so instead of making something up).
    #[error("{0}")]
    CannotAnswer(String),

    /// A bug or an unexpected failure. The context is safe to log; clients see a generic
    /// message.
    #[error("internal error: {context}")]
    Internal {
        /// What was being done.
        context: String,
        /// The underlying cause, for logs.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// An [`Error::Unavailable`] with a cause.
    pub fn unavailable(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Internal`] with a cause.
    pub fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Internal`] without a cause.
    pub fn internal_msg(context: impl Into<String>) -> Self {
        Self::Internal {
            context: context.into(),
            source: None,
        }
    }

    /// A copy of this error for a second caller waiting on the same work (coalesced
    /// queries). The kind and safe message are kept; a hidden cause is kept as text.
    pub fn duplicate(&self) -> Self {
        let cause = |s: &Option<BoxError>| -> Option<BoxError> {
            s.as_ref().map(|e| -> BoxError { e.to_string().into() })
        };
        match self {
            Error::InvalidRequest(m) => Error::InvalidRequest(m.clone()),
            Error::SqlRejected(r) => Error::SqlRejected(r.clone()),
            Error::InvalidQuery(m) => Error::InvalidQuery(m.clone()),
            Error::Unauthenticated(m) => Error::Unauthenticated(m.clone()),
            Error::Forbidden(m) => Error::Forbidden(m.clone()),
            Error::QuotaExceeded {
                limit_bytes,
                used_bytes,
                requested_bytes,
                resets_at,
            } => Error::QuotaExceeded {
                limit_bytes: *limit_bytes,
                used_bytes: *used_bytes,
                requested_bytes: *requested_bytes,
                resets_at: *resets_at,
            },
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::CostLimitExceeded {
                estimated_bytes,
                limit_bytes,
            } => Error::CostLimitExceeded {
                estimated_bytes: *estimated_bytes,
                limit_bytes: *limit_bytes,
            },
            Error::RateLimited { retry_after } => Error::RateLimited {
                retry_after: *retry_after,
            },
            Error::Timeout(d) => Error::Timeout(*d),
            Error::QueueFull {
                message,
                retry_after,
            } => Error::QueueFull {
                message: message.clone(),
                retry_after: *retry_after,
            },
            Error::Unavailable { what, source } => Error::Unavailable {
                what: what.clone(),
                source: cause(source),
            },
            Error::Llm(e) => Error::Llm(e.clone()),
            Error::GenerationFailed { attempts, reason } => Error::GenerationFailed {
                attempts: *attempts,
                reason: reason.clone(),
            },
            Error::CannotAnswer(m) => Error::CannotAnswer(m.clone()),
            Error::Internal { context, source } => Error::Internal {
                context: context.clone(),
                source: cause(source),
            },
        }
    }

    /// The message a client may read: the error's text, except for internal errors, whose
    /// context stays in the logs.
    pub fn safe_message(&self) -> String {
        match self {
            Error::Internal { .. } => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    /// The stable, machine-readable code of this error (`UPPER_SNAKE_CASE`), the same one the
    /// HTTP layer puts in its error envelope and the history store records.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "INVALID_REQUEST",
            Error::SqlRejected(_) => "SQL_REJECTED",
            Error::InvalidQuery(_) => "INVALID_QUERY",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::CostLimitExceeded { .. } => "COST_LIMIT_EXCEEDED",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Timeout(_) => "TIMEOUT",
            Error::QueueFull { .. } => "QUEUE_FULL",
            Error::Unavailable { .. } => "UNAVAILABLE",
            Error::Llm(e) => e.kind.code(),
            Error::GenerationFailed { .. } => "GENERATION_FAILED",
            Error::CannotAnswer(_) => "CANNOT_ANSWER",
            Error::Internal { .. } => "INTERNAL",
        }
    }

    /// True for errors caused by the caller's input (as opposed to the service or its
    /// dependencies). Such errors are recorded in history as `rejected` when they happen
    /// before the warehouse runs anything.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidRequest(_)
                | Error::SqlRejected(_)
                | Error::InvalidQuery(_)
                | Error::Unauthenticated(_)
                | Error::Forbidden(_)
                | Error::QuotaExceeded { .. }
                | Error::NotFound(_)
                | Error::Conflict(_)
                | Error::CostLimitExceeded { .. }
                | Error::RateLimited { .. }
                | Error::GenerationFailed { .. }
                | Error::CannotAnswer(_)
        )
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Error::SqlRejected(r)
    }
}

impl From<LlmError> for Error {
    fn from(e: LlmError) -> Self {
        Error::Llm(e)
    }
}
