//! Authentication and authorization: who a caller is ([`crate::model::Principal`]), what its
//! role lets it do ([`Action`]), how API keys look and are verified ([`keys`]), how a key or
//! a bearer token becomes a principal ([`Authenticator`]), short-lived WebSocket tickets
//! ([`ticket`]), the audit record ([`audit`]) and daily byte quotas ([`quota`]).
//!
//! The storage of keys, audit events and quota usage is behind the ports
//! [`crate::ports::KeyStore`], [`crate::ports::AuditLog`] and [`crate::ports::UsageLedger`];
//! verifying third-party tokens (OIDC) is behind [`TokenVerifier`]. Nothing here does IO.

pub mod audit;
mod authenticator;
pub mod keys;
pub mod quota;
pub mod ticket;

pub use authenticator::{Authenticator, Credential, TokenVerifier};

use serde::{Deserialize, Serialize};

use crate::model::Role;

/// Something a caller may want to do. Routes declare the action they perform; the role
/// decides ([`Role::allows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// List datasets and tables, read schemas, preview rows.
    CatalogRead,
    /// Plan a query without running it (dry run, ask with `execute: false`).
    DryRun,
    /// Run a query (directly or through an ask).
    Query,
    /// Export a result.
    Export,
    /// Read one's own query history.
    HistoryRead,
    /// Read everyone's history.
    HistoryReadAll,
    /// Create, change or revoke keys; invalidate caches.
    Admin,
    /// Read the audit log and the key list.
    AuditRead,
}

impl Action {
    /// Stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::CatalogRead => "catalog_read",
            Action::DryRun => "dry_run",
            Action::Query => "query",
            Action::Export => "export",
            Action::HistoryRead => "history_read",
            Action::HistoryReadAll => "history_read_all",
            Action::Admin => "admin",
            Action::AuditRead => "audit_read",
        }
    }
}

impl Role {
    /// Whether this role may perform `action`.
    ///
    /// - `admin`: everything.
    /// - `analyst`: catalog, dry runs, queries, asks, exports, its own history.
    /// - `viewer`: catalog, dry runs (and asks with `execute: false`), its own history.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(
                action,
                Action::CatalogRead
                    | Action::DryRun
                    | Action::Query
                    | Action::Export
                    | Action::HistoryRead
            ),
            Role::Viewer => matches!(
                action,
                Action::CatalogRead | Action::DryRun | Action::HistoryRead
            ),
        }
    }

    /// Stable lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored name (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "analyst" => Some(Role::Analyst),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_form_a_hierarchy() {
        let all = [
            Action::CatalogRead,
            Action::DryRun,
            Action::Query,
            Action::Export,
            Action::HistoryRead,
            Action::HistoryReadAll,
            Action::Admin,
            Action::AuditRead,
        ];
        for a in all {
            assert!(Role::Admin.allows(a), "{a:?}");
            if Role::Viewer.allows(a) {
                assert!(Role::Analyst.allows(a), "{a:?}");
            }
        }
        assert!(!Role::Analyst.allows(Action::Admin));
        assert!(!Role::Analyst.allows(Action::HistoryReadAll));
        assert!(!Role::Viewer.allows(Action::Query));
        assert!(!Role::Viewer.allows(Action::Export));
        assert_eq!(Role::parse(" Analyst "), Some(Role::Analyst));
        assert_eq!(Role::parse("root"), None);
    }
}
