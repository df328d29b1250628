//! The audit record: one append-only event per authenticated data access, administrative
//! change and denial. It says who did what to which datasets and how it ended; it never holds
//! secrets, SQL text or result rows (a SQL fingerprint links it to history instead).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was attempted.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Catalog listing, schema or preview.
    CatalogRead,
    /// SQL query (or dry run).
    Query,
    /// Question → SQL (and its query).
    Ask,
    /// Result export.
    Export,
    /// History read.
    HistoryRead,
    /// Key list, audit read.
    AdminRead,
    /// Key created, changed or revoked; cache invalidated.
    AdminChange,
    /// A WebSocket ticket issued.
    Ticket,
    /// A conversation read or changed.
    Conversation,
}

impl AuditAction {
    /// Every action, for parsing and tests.
    pub const ALL: [AuditAction; 9] = [
        AuditAction::CatalogRead,
        AuditAction::Query,
        AuditAction::Ask,
        AuditAction::Export,
        AuditAction::HistoryRead,
        AuditAction::AdminRead,
        AuditAction::AdminChange,
        AuditAction::Ticket,
        AuditAction::Conversation,
    ];

    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CatalogRead => "catalog_read",
            AuditAction::Query => "query",
            AuditAction::Ask => "ask",
            AuditAction::Export => "export",
            AuditAction::HistoryRead => "history_read",
            AuditAction::AdminRead => "admin_read",
            AuditAction::AdminChange => "admin_change",
            AuditAction::Ticket => "ticket",
            AuditAction::Conversation => "conversation",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How it ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Allowed and answered.
    Allowed,
    /// Refused: unauthenticated, forbidden, rate limited, over quota, or SQL refused.
    Denied,
    /// Allowed but failed (bad SQL, warehouse error, timeout).
    Failed,
}

impl AuditOutcome {
    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Allowed => "allowed",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(AuditOutcome::Allowed),
            "denied" => Some(AuditOutcome::Denied),
            "failed" => Some(AuditOutcome::Failed),
            _ => None,
        }
    }
}

/// One audit event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Event id (UUIDv7: sorts by time).
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The request id (`X-Request-Id`) of the call.
    pub request_id: Option<String>,
    /// The principal id (key id, `oidc:<subject>`), or the key id a failed authentication
    /// presented, or `None` when nothing identified the caller.
    pub principal: Option<String>,
    /// What was attempted.
    pub action: AuditAction,
    /// HTTP method and route pattern (`POST /api/v1/query`).
    pub route: String,
    /// Datasets and tables touched (`shop`, `shop.orders`).
    pub targets: Vec<String>,
    /// [`sql_fingerprint`] of the SQL run or refused.
    pub sql_fingerprint: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// HTTP status answered.
    pub status: u16,
    /// Error code when not allowed.
    pub error_code: Option<String>,
    /// Bytes billed (or processed, where the warehouse does not bill).
    pub bytes: u64,
    /// The client's address.
    pub client_addr: Option<String>,
    /// A short, secret-free note ("revoked key abc…").
    pub detail: Option<String>,
}

/// Which audit events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this principal.
    pub principal: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// A short, stable fingerprint of a SQL text: the first 16 hex digits of the SHA-256 of the
/// text with whitespace runs collapsed. Case is kept, so two filters on differently cased
/// literals never share a fingerprint.
pub fn sql_fingerprint(sql: &str) -> String {
    let normalized = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let digest = Sha256::digest(normalized.as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        for o in [
            AuditOutcome::Allowed,
            AuditOutcome::Denied,
            AuditOutcome::Failed,
        ] {
            assert_eq!(AuditOutcome::parse(o.as_str()), Some(o));
        }
    }

    #[test]
    fn fingerprints_ignore_layout_only() {
        let a = sql_fingerprint("SELECT a\n  FROM t WHERE x = 'A'");
        assert_eq!(a, sql_fingerprint("SELECT a FROM t   WHERE x = 'A'"));
        assert_ne!(a, sql_fingerprint("SELECT a FROM t WHERE x = 'a'"));
        assert_eq!(a.len(), 16);
    }
}
