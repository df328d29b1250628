//! [`RedisClient`]: the connection pool, deadlines, circuit breaker and error mapping that every
//! Redis call of this crate goes through.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bqai_core::{Error, Result};
use deadpool_redis::redis::{self, AsyncConnectionConfig, IntoConnectionInfo, RedisError};
use deadpool_redis::{Connection, Manager, Pool, PoolError, Runtime, TimeoutType};

use crate::breaker::{Admission, Breaker};
use crate::options::RedisOptions;

/// The name errors and health use for this dependency.
const WHAT: &str = "Redis";

/// A pooled, deadline-bound, circuit-broken handle on one Redis. Cheap to clone; clones share
/// the pool and the breaker, so a cache and a rate limiter built from one client open and
/// close together.
///
/// Building one never connects: connections are opened on first use (and re-opened after
/// failures), so bqai starts while Redis is down and recovers without a restart.
///
/// Every checkout PINGs the pooled connection first (deadpool-redis' recycle check), so each
/// call costs two round trips. That is the price of never handing out a connection that died
/// while pooled (Redis restarted, an idle timeout): without the check, the first call on each
/// dead connection would fail and open the breaker. Worst case for one call while Redis hangs:
/// the check times out (`command_timeout`), then opening a fresh connection does
/// (`connect_timeout`); waiting for a free connection adds up to `wait_timeout`.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    breaker: Breaker,
    options: RedisOptions,
    /// Scrubbed from every error text, in case a driver message ever echoes it.
    password: Option<String>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("options", &self.inner.options)
            .field("breaker_open", &self.inner.breaker.is_open())
            .finish_non_exhaustive()
    }
}

impl RedisClient {
    /// A client for `options.url`; [`Error::InvalidRequest`] if the URL is malformed (the
    /// message shows the URL with its password redacted). Does not connect.
    pub fn new(options: RedisOptions) -> Result<Self> {
        let info = options.url.as_str().into_connection_info().map_err(|e| {
            Error::InvalidRequest(format!(
                "invalid Redis URL {}: {}",
                options.redacted_url(),
                e.detail().unwrap_or(e.category())
            ))
        })?;
        if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            // rustls needs a process-wide crypto provider; install ring unless the binary
            // already chose one (then this is a no-op returning Err, which is fine).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let password = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let connection = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout));
        let manager = Manager::new_with_config(info, connection).map_err(|e| {
            Error::InvalidRequest(format!(
                "invalid Redis URL {}: {}",
                options.redacted_url(),
                e.category()
            ))
        })?;
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.command_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::internal("building the Redis connection pool", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                breaker: Breaker::new(options.retry_after_failure),
                password,
                options,
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The key prefix of this client's namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.options.namespace
    }

    /// Whether the circuit breaker is open (a recent call could not reach Redis).
    pub fn breaker_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// PINGs Redis within the command timeout.
    pub async fn ping(&self) -> Result<()> {
        self.run(|mut conn| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        })
        .await
    }

    /// Runs `op` on a pooled connection under the breaker and the deadlines, mapping every
    /// failure to [`Error::Unavailable`].
    ///
    /// `op` owns the connection (it goes back to the pool when `op`'s future ends), which lets
    /// callers borrow it for as long as their commands need without lifetime gymnastics.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let inner = &*self.inner;
        if inner.breaker.admit() == Admission::Reject {
            return Err(Error::unavailable(
                WHAT,
                Cause::new(format!(
                    "skipping Redis for up to {:?} after a failure (circuit breaker open)",
                    inner.options.retry_after_failure
                )),
            ));
        }
        let outcome = self.attempt(op).await;
        match &outcome {
            Ok(_) => {
                if inner.breaker.on_success() {
                    tracing::info!("Redis is reachable again; circuit breaker closed");
                }
            }
            Err(failure) if failure.kind == FailureKind::Unreachable => {
                if inner.breaker.on_failure() {
                    tracing::warn!(
                        error = %failure.cause,
                        retry_after = ?inner.options.retry_after_failure,
                        "Redis unreachable; circuit breaker open, calls fail fast until a probe succeeds"
                    );
                } else {
                    tracing::debug!(error = %failure.cause, "Redis still unreachable");
                }
            }
            Err(failure) if failure.kind == FailureKind::Busy => {
                tracing::debug!(error = %failure.cause, "no Redis connection free");
            }
            Err(failure) => {
                // Redis answered with an error: not an outage but a bug or a misconfiguration
                // (out of memory, a read-only replica), worth seeing at the default level.
                tracing::warn!(error = %failure.cause, "Redis refused a command");
            }
        }
        outcome.map_err(|failure| Error::unavailable(WHAT, failure.cause))
    }

    async fn attempt<T, F, Fut>(&self, op: F) -> Result<T, Failure>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let options = &self.inner.options;
        // deadpool enforces the wait, connect and recycle timeouts itself; this outer deadline
        // only guards against a step that ignores them.
        let get_deadline = options.wait_timeout + options.connect_timeout + options.command_timeout;
        let conn = match tokio::time::timeout(get_deadline, self.inner.pool.get()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(self.pool_failure(e)),
            Err(_) => {
                return Err(Failure::connectivity(Cause::new(format!(
                    "no Redis connection within {get_deadline:?}"
                ))));
            }
        };
        match tokio::time::timeout(options.command_timeout, op(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_failure(&e)),
            Err(_) => Err(Failure::connectivity(Cause::new(format!(
                "Redis did not answer within {:?}",
                options.command_timeout
            )))),
        }
    }

    fn pool_failure(&self, e: PoolError) -> Failure {
        match e {
            // Saturation of this replica is no reason to stop every other call.
            PoolError::Timeout(TimeoutType::Wait) => Failure {
                cause: Cause::new("all pooled Redis connections busy".to_owned()),
                kind: FailureKind::Busy,
            },
            PoolError::Timeout(TimeoutType::Create) => {
                Failure::connectivity(Cause::new("connecting to Redis timed out".to_owned()))
            }
            PoolError::Timeout(TimeoutType::Recycle) => Failure::connectivity(Cause::new(
                "checking a pooled Redis connection timed out".to_owned(),
            )),
            PoolError::Backend(e) => Failure::connectivity(self.cause(&e)),
            other => Failure::connectivity(Cause::new(self.scrub(other.to_string()))),
        }
    }

    fn redis_failure(&self, e: &RedisError) -> Failure {
        // A reply error (wrong type, script error, OOM) comes from a live server; only a lost
        // or unusable connection means Redis is unreachable.
        let unreachable = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error();
        Failure {
            cause: self.cause(e),
            kind: if unreachable {
                FailureKind::Unreachable
            } else {
                FailureKind::Reply
            },
        }
    }

    fn cause(&self, e: &RedisError) -> Cause {
        Cause::new(self.scrub(e.to_string()))
    }

    fn scrub(&self, text: String) -> String {
        match &self.inner.password {
            Some(password) if text.contains(password.as_str()) => {
                text.replace(password.as_str(), "***")
            }
            _ => text,
        }
    }
}

/// A failed attempt and what it says about Redis.
struct Failure {
    cause: Cause,
    kind: FailureKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// Connection refused, lost or timed out: opens the circuit breaker.
    Unreachable,
    /// Every pooled connection was in use: this replica is saturated, Redis may be fine.
    Busy,
    /// Redis answered with an error.
    Reply,
}

impl Failure {
    fn connectivity(cause: Cause) -> Self {
        Self {
            cause,
            kind: FailureKind::Unreachable,
        }
    }
}

/// The cause carried in [`Error::Unavailable`]'s source: a plain, password-scrubbed text
/// rather than the driver's error, whose chain this crate cannot vouch for.
#[derive(Debug)]
pub(crate) struct Cause(String);

impl Cause {
    pub(crate) fn new(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

/// Milliseconds for a PX/PEXPIRE argument: at least 1 (Redis rejects 0) and at most about ten
/// years (Redis rejects deadlines past the end of its clock).
pub(crate) fn ttl_millis(ttl: Duration) -> u64 {
    const MAX: u64 = 10 * 365 * 24 * 3600 * 1000;
    u64::try_from(ttl.as_millis()).unwrap_or(MAX).clamp(1, MAX)
}
