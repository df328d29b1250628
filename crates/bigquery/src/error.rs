//! BigQuery failures → core [`Error`] kinds, decided by BigQuery's structured error `reason`
//! (`notFound`, `invalidQuery`, `rateLimitExceeded`, …) and the HTTP status, never by the
//! wording of a message; and which failures are transient (worth a retry).
//!
//! BigQuery reports errors in two places: the HTTP error body of a failed call
//! (`{"error": {"code", "message", "errors": [{"reason", "message"}], "status"}}`) and the
//! `status.errorResult` / `errors` of a job that finished with an error. Both become a
//! [`Failure`] first, so one table maps them.
//! Reference: <https://cloud.google.com/bigquery/docs/error-messages>.

use std::fmt;

use google_cloud_bigquery_v2::model::ErrorProto;
use google_cloud_gax::error::rpc::StatusDetails;

use bqai_core::Error;

/// What the adapter was doing when BigQuery failed; decides how reasons read.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Reading the catalog: `what` names the thing (`dataset shop`, `table shop.orders`).
    Catalog {
        /// The object looked up, for `NotFound` messages.
        what: String,
    },
    /// Planning or running a query: errors are about the caller's SQL.
    Query {
        /// The job's `maximumBytesBilled`, for `bytesBilledLimitExceeded`.
        max_bytes_billed: Option<u64>,
        /// The job's timeout, for BigQuery's own `timeout` reason.
        timeout: std::time::Duration,
    },
}

/// How a call failed before BigQuery answered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// BigQuery answered (an HTTP error body or a failed job).
    Answered,
    /// Connecting, sending or receiving failed.
    Io,
    /// The request's own deadline passed.
    Timeout,
    /// The credentials could not produce a token.
    Auth,
    /// The request or response could not be encoded or decoded.
    Protocol,
}

/// One BigQuery failure, reduced to what the mapping needs.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// HTTP status, when the failure was an HTTP answer.
    pub status: Option<u16>,
    /// Structured reasons, the main one first (`errorResult`, then `errors`).
    pub reasons: Vec<String>,
    /// BigQuery's message of the main error (safe to show only for query errors, which are
    /// about the caller's own SQL).
    pub message: String,
    /// Whether BigQuery answered.
    pub transport: Transport,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BigQuery {:?} status={:?} reasons={:?}: {}",
            self.transport, self.status, self.reasons, self.message
        )
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// What `/health` says about a failed check: which kind of trouble (credentials, network,
    /// permission, quota, BigQuery itself), so an operator looks in the right place. Built from
    /// the transport, status and reason only, never from BigQuery's message.
    pub fn health_detail(&self, project: &str) -> String {
        let reason = self.reasons.first().map(String::as_str).unwrap_or_default();
        let with_reason = |what: String| {
            if reason.is_empty() {
                what
            } else {
                format!("{what}; reason {reason}")
            }
        };
        match self.transport {
            Transport::Auth => "no credentials: a token for BigQuery could not be obtained (check \
                 warehouse.credentials, GOOGLE_APPLICATION_CREDENTIALS or the metadata server)"
                .to_owned(),
            Transport::Io => "BigQuery is unreachable: the connection failed (network, DNS, proxy \
                 or warehouse.endpoint)"
                .to_owned(),
            Transport::Timeout => "BigQuery did not answer in time".to_owned(),
            Transport::Protocol => "BigQuery's answer could not be read".to_owned(),
            Transport::Answered => {
                let status = self.status.unwrap_or_default();
                if QUOTA_REASONS.contains(&reason) || status == 429 {
                    with_reason(format!(
                        "BigQuery quota or rate limit exceeded (HTTP {status})"
                    ))
                } else if status == 401 {
                    with_reason("BigQuery refused the credentials (HTTP 401)".to_owned())
                } else if status == 403 {
                    with_reason(format!(
                        "the credentials lack permission in project {project} (HTTP 403)"
                    ))
                } else if status == 404 {
                    with_reason(format!(
                        "BigQuery does not know project {project} (HTTP 404)"
                    ))
                } else if status >= 500 {
                    with_reason(format!("BigQuery failed (HTTP {status})"))
                } else {
                    with_reason(format!("BigQuery refused the check (HTTP {status})"))
                }
            }
        }
    }
}

/// Reasons that mean a quota or rate limit, whatever the status.
const QUOTA_REASONS: &[&str] = &["quotaExceeded", "rateLimitExceeded"];

/// Reasons that mean "try again": BigQuery's own advice for these is a retry with backoff.
const TRANSIENT_REASONS: &[&str] = &[
    "backendError",
    "internalError",
    "rateLimitExceeded",
    "jobBackendError",
    "jobInternalError",
    "tableUnavailable",
];

impl Failure {
    /// A failure from a finished job's `errorResult` and `errors`.
    pub fn from_job_errors(main: Option<&ErrorProto>, errors: &[ErrorProto]) -> Self {
        let mut reasons = Vec::new();
        let mut message = String::new();
        if let Some(main) = main {
            reasons.push(main.reason.clone());
            message.clone_from(&main.message);
        }
        for e in errors {
            if !reasons.contains(&e.reason) {
                reasons.push(e.reason.clone());
            }
            if message.is_empty() {
                message.clone_from(&e.message);
            }
        }
        reasons.retain(|r| !r.is_empty());
        Self {
            status: None,
            reasons,
            message,
            transport: Transport::Answered,
        }
    }

    /// A failure from an HTTP error body (`{"error": {...}}`) with its status.
    pub fn from_http(status: u16, body: &[u8]) -> Self {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &parsed["error"];
        let mut reasons: Vec<String> = error["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|e| e["reason"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        reasons.retain(|r| !r.is_empty());
        let message = error["message"]
            .as_str()
            .or_else(|| error["errors"][0]["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        Self {
            status: Some(status),
            reasons,
            message,
            transport: Transport::Answered,
        }
    }

    /// A failure from the SDK's error type.
    pub fn from_gax(err: &google_cloud_gax::error::Error) -> Self {
        if let Some(status) = err.http_status_code() {
            // The SDK keeps the raw body only when it is not a JSON error; otherwise it has
            // parsed BigQuery's `error.errors[].reason` into `ErrorInfo` details.
            let body = err.http_payload().map(|b| b.as_ref()).unwrap_or_default();
            let mut failure = Self::from_http(status, body);
            if let Some(parsed) = err.status() {
                if failure.reasons.is_empty() {
                    failure.reasons = parsed
                        .details
                        .iter()
                        .filter_map(|d| match d {
                            StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => {
                                Some(info.reason.clone())
                            }
                            _ => None,
                        })
                        .collect();
                }
                if failure.message.is_empty() {
                    failure.message.clone_from(&parsed.message);
                }
            }
            return failure;
        }
        let transport = if err.is_timeout() {
            Transport::Timeout
        } else if err.is_authentication() {
            Transport::Auth
        } else if err.is_connect() || err.is_io() || err.is_transport() {
            Transport::Io
        } else if let Some(status) = err.status() {
            // A service error without HTTP metadata: keep its code as an HTTP-like status.
            return Self {
                status: Some(grpc_to_http(status.code as i32)),
                reasons: Vec::new(),
                message: status.message.clone(),
                transport: Transport::Answered,
            };
        } else {
            Transport::Protocol
        };
        Self {
            status: None,
            reasons: Vec::new(),
            message: err.to_string(),
            transport,
        }
    }

    /// A transport-level failure of a request the adapter made itself.
    pub fn transport(transport: Transport, message: impl Into<String>) -> Self {
        Self {
            status: None,
            reasons: Vec::new(),
            message: message.into(),
            transport,
        }
    }

    /// The main reason, if BigQuery gave one.
    pub fn reason(&self) -> Option<&str> {
        self.reasons.first().map(String::as_str)
    }

    /// Whether a retry may succeed: transient reasons, 429/5xx without a permanent reason,
    /// connection failures and request timeouts.
    pub fn is_transient(&self) -> bool {
        match self.transport {
            Transport::Io | Transport::Timeout => return true,
            Transport::Auth | Transport::Protocol => return false,
            Transport::Answered => {}
        }
        if let Some(reason) = self.reason() {
            return TRANSIENT_REASONS.contains(&reason);
        }
        matches!(self.status, Some(429 | 500 | 502 | 503 | 504))
    }

    /// The core error for this failure during `op`.
    pub fn into_core(self, op: &Op) -> Error {
        let reason = self.reason().map(str::to_owned);
        let query = matches!(op, Op::Query { .. });
        let what = match op {
            Op::Catalog { what } => what.clone(),
            _ => "the requested object".to_owned(),
        };
        let unavailable = |f: Failure| Error::unavailable("BigQuery", f);
        match reason.as_deref() {
            // A table the SQL names does not exist: 404, as on the embedded engine.
            Some("notFound") if query => Error::NotFound(self.message_or("not found")),
            Some("notFound") => Error::NotFound(what),
            Some("duplicate") => Error::Conflict(what),
            Some("accessDenied") if query => {
                Error::Forbidden(self.message_or("access denied by BigQuery"))
            }
            Some("accessDenied") => Error::Forbidden(format!("access to {what} denied")),
            Some("invalidQuery" | "responseTooLarge" | "resourcesExceeded") => {
                Error::InvalidQuery(self.message_or("invalid query"))
            }
            Some("invalid") if query => Error::InvalidQuery(self.message_or("invalid query")),
            Some("invalid") => {
                Error::InvalidRequest(format!("BigQuery refused the request for {what}"))
            }
            Some("bytesBilledLimitExceeded") => {
                let limit = match op {
                    Op::Query {
                        max_bytes_billed, ..
                    } => max_bytes_billed.unwrap_or_default(),
                    _ => 0,
                };
                // BigQuery only says the limit was hit; the bytes are at least one more.
                Error::CostLimitExceeded {
                    estimated_bytes: limit.saturating_add(1),
                    limit_bytes: limit,
                }
            }
            Some("timeout") => Error::Timeout(match op {
                Op::Query { timeout, .. } => *timeout,
                _ => std::time::Duration::ZERO,
            }),
            Some(
                "quotaExceeded" | "rateLimitExceeded" | "backendError" | "internalError"
                | "jobBackendError" | "jobInternalError" | "tableUnavailable" | "billingNotEnabled"
                | "stopped" | "notImplemented",
            ) => unavailable(self),
            Some("billingTierLimitExceeded") => {
                Error::InvalidQuery(self.message_or("query too expensive for the billing tier"))
            }
            _ => match (self.transport, self.status) {
                (Transport::Answered, Some(404)) if !query => Error::NotFound(what),
                (Transport::Answered, Some(404)) => {
                    Error::InvalidQuery(self.message_or("not found"))
                }
                (Transport::Answered, Some(409)) => Error::Conflict(what),
                (Transport::Answered, Some(403)) => Error::Forbidden(format!(
                    "BigQuery denied access to {}",
                    if query { "the query" } else { what.as_str() }
                )),
                (Transport::Answered, Some(400)) if query => {
                    Error::InvalidQuery(self.message_or("invalid query"))
                }
                (Transport::Answered, None) if query && !self.message.is_empty() => {
                    // A failed job without a reason: still about the SQL.
                    Error::InvalidQuery(self.message.clone())
                }
                _ => unavailable(self),
            },
        }
    }

    fn message_or(&self, fallback: &str) -> String {
        if self.message.trim().is_empty() {
            fallback.to_owned()
        } else {
            self.message.clone()
        }
    }
}

/// The HTTP status of a gRPC code (google.rpc.Code), for errors without HTTP metadata.
fn grpc_to_http(code: i32) -> u16 {
    match code {
        3 | 9 | 11 => 400,
        16 => 401,
        7 => 403,
        5 => 404,
        6 | 10 => 409,
        8 => 429,
        1 => 499,
        12 => 501,
        14 => 503,
        4 => 504,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, reason: &str, message: &str) -> Failure {
        let body = serde_json::json!({"error": {"code": status, "message": message,
            "errors": [{"reason": reason, "message": message, "domain": "global"}]}});
        Failure::from_http(status, body.to_string().as_bytes())
    }

    #[test]
    fn health_says_which_kind_of_trouble_without_bigquerys_words() {
        let says = |f: Failure, words: &[&str]| {
            let detail = f.health_detail("proj");
            for w in words {
                assert!(detail.contains(w), "{detail:?} lacks {w:?}");
            }
            assert!(!detail.contains("SECRET"), "no message text: {detail}");
        };
        says(
            Failure::transport(Transport::Auth, "SECRET token endpoint said no"),
            &["no credentials", "warehouse.credentials"],
        );
        says(
            Failure::transport(Transport::Io, "SECRET dns"),
            &["unreachable", "connection"],
        );
        says(
            Failure::transport(Transport::Timeout, "SECRET"),
            &["did not answer in time"],
        );
        says(
            http(401, "unauthorized", "SECRET"),
            &["refused the credentials", "401"],
        );
        says(
            http(403, "accessDenied", "SECRET"),
            &["lack permission", "proj", "accessDenied"],
        );
        says(
            http(403, "quotaExceeded", "SECRET"),
            &["quota", "quotaExceeded"],
        );
        says(
            http(429, "rateLimitExceeded", "SECRET"),
            &["quota or rate limit", "429"],
        );
        says(http(404, "notFound", "SECRET"), &["project proj", "404"]);
        says(
            http(503, "backendError", "SECRET"),
            &["BigQuery failed", "503"],
        );
    }

    fn catalog() -> Op {
        Op::Catalog {
            what: "table shop.nope".into(),
        }
    }

    fn query() -> Op {
        Op::Query {
            max_bytes_billed: Some(1_000),
            timeout: std::time::Duration::from_secs(5),
        }
    }

    #[test]
    fn reasons_map_to_core_kinds() {
        let cases: Vec<(Failure, Op, &str)> = vec![
            (
                http(404, "notFound", "Not found: Table p:shop.nope"),
                catalog(),
                "NOT_FOUND",
            ),
            (
                http(404, "notFound", "Not found: Table p:shop.nope"),
                query(),
                "NOT_FOUND",
            ),
            (
                http(409, "duplicate", "Already Exists"),
                catalog(),
                "CONFLICT",
            ),
            (
                http(403, "accessDenied", "Access Denied"),
                catalog(),
                "FORBIDDEN",
            ),
            (
                http(403, "accessDenied", "Access Denied"),
                query(),
                "FORBIDDEN",
            ),
            (
                http(400, "invalidQuery", "Unrecognized name: x"),
                query(),
                "INVALID_QUERY",
            ),
            (
                http(400, "invalid", "Invalid value"),
                query(),
                "INVALID_QUERY",
            ),
            (
                http(400, "invalid", "Invalid value"),
                catalog(),
                "INVALID_REQUEST",
            ),
            (
                http(403, "responseTooLarge", "too large"),
                query(),
                "INVALID_QUERY",
            ),
            (
                http(400, "resourcesExceeded", "too much"),
                query(),
                "INVALID_QUERY",
            ),
            (
                http(403, "quotaExceeded", "Quota exceeded"),
                query(),
                "UNAVAILABLE",
            ),
            (
                http(403, "rateLimitExceeded", "Exceeded rate limits"),
                query(),
                "UNAVAILABLE",
            ),
            (
                http(503, "backendError", "Backend error"),
                catalog(),
                "UNAVAILABLE",
            ),
            (http(500, "internalError", "oops"), query(), "UNAVAILABLE"),
            (
                http(400, "bytesBilledLimitExceeded", "Query exceeded limit"),
                query(),
                "COST_LIMIT_EXCEEDED",
            ),
            (http(400, "timeout", "Query timed out"), query(), "TIMEOUT"),
            (http(404, "", ""), catalog(), "NOT_FOUND"),
            (http(403, "", ""), catalog(), "FORBIDDEN"),
            (http(502, "", ""), catalog(), "UNAVAILABLE"),
        ];
        for (failure, op, code) in cases {
            let shown = failure.to_string();
            assert_eq!(failure.into_core(&op).code(), code, "{shown} during {op:?}");
        }
    }

    #[test]
    fn mapping_ignores_message_wording() {
        // A message that *says* "not found" but carries another reason is not NotFound.
        let failure = http(400, "invalidQuery", "Not found: Dataset shop was not found");
        assert_eq!(failure.into_core(&catalog()).code(), "INVALID_QUERY");
        let failure = http(404, "notFound", "anything at all");
        assert_eq!(failure.into_core(&catalog()).code(), "NOT_FOUND");
    }

    #[test]
    fn byte_limit_carries_the_cap() {
        match http(400, "bytesBilledLimitExceeded", "x").into_core(&query()) {
            Error::CostLimitExceeded {
                estimated_bytes,
                limit_bytes,
            } => {
                assert_eq!(limit_bytes, 1_000);
                assert!(estimated_bytes > limit_bytes);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn job_errors_use_error_result_first() {
        let main = ErrorProto::new()
            .set_reason("invalidQuery")
            .set_message("Syntax error: Unexpected end of script at [1:7]");
        let other = ErrorProto::new().set_reason("invalid").set_message("x");
        let failure = Failure::from_job_errors(Some(&main), &[other, main.clone()]);
        assert_eq!(failure.reasons, vec!["invalidQuery", "invalid"]);
        match failure.into_core(&query()) {
            Error::InvalidQuery(m) => assert!(m.starts_with("Syntax error"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_failures_are_retried_and_permanent_ones_not() {
        assert!(http(503, "backendError", "").is_transient());
        assert!(http(500, "internalError", "").is_transient());
        assert!(http(403, "rateLimitExceeded", "").is_transient());
        assert!(http(429, "", "").is_transient());
        assert!(http(502, "", "").is_transient());
        assert!(Failure::transport(Transport::Io, "reset").is_transient());
        assert!(Failure::transport(Transport::Timeout, "slow").is_transient());

        assert!(!http(403, "quotaExceeded", "").is_transient());
        assert!(!http(400, "invalidQuery", "").is_transient());
        assert!(!http(404, "notFound", "").is_transient());
        assert!(!http(403, "accessDenied", "").is_transient());
        // A 500 that names a permanent reason is not retried.
        assert!(!http(500, "invalid", "").is_transient());
        assert!(!Failure::transport(Transport::Auth, "no token").is_transient());
    }

    #[test]
    fn unparseable_bodies_fall_back_to_the_status() {
        let failure = Failure::from_http(503, b"<html>Service Unavailable</html>");
        assert!(failure.reasons.is_empty());
        assert!(failure.is_transient());
        assert_eq!(failure.into_core(&catalog()).code(), "UNAVAILABLE");
    }
}
