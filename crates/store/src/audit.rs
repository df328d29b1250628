//! Backend-neutral parts of the audit log: the row type, its conversion to and from
//! [`AuditEvent`], the listing query, and [`AuditLog`] for [`Store`].
//!
//! The log is append-only: this crate only ever inserts into `audit_log`, and the migrations
//! add triggers refusing `UPDATE` and `DELETE` (and `TRUNCATE` on PostgreSQL) to anyone else.

use async_trait::async_trait;
use bqai_core::auth::audit::{AuditAction, AuditEvent, AuditFilter, AuditOutcome};
use bqai_core::model::{Page, PageRequest};
use bqai_core::ports::AuditLog;
use bqai_core::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::convert::{
    from_json_list, from_sql_count, to_json_list, to_sql_count, to_sql_text, to_sql_text_opt,
    to_sql_time,
};
use crate::page::Cursor;
use crate::schema::audit_log;
use crate::{Backend, Store};

/// One `audit_log` row. `None` is written as `NULL` (not `DEFAULT`), which lets SQLite insert
/// a batch as one multi-row `INSERT` (it has no `DEFAULT` in a `VALUES` list).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub(crate) struct AuditRow {
    pub id: String,
    pub at: NaiveDateTime,
    pub request_id: Option<String>,
    pub principal: Option<String>,
    pub action: String,
    pub route: String,
    pub targets: String,
    pub sql_fingerprint: Option<String>,
    pub outcome: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub bytes: i64,
    pub client_addr: Option<String>,
    pub detail: Option<String>,
}

impl AuditRow {
    pub(crate) fn from_event(e: &AuditEvent) -> Result<Self> {
        Ok(Self {
            id: e.id.clone(),
            at: to_sql_time(e.at),
            request_id: to_sql_text_opt(&e.request_id),
            principal: to_sql_text_opt(&e.principal),
            action: e.action.as_str().to_owned(),
            route: to_sql_text(&e.route),
            targets: to_json_list(&e.targets.iter().map(|t| to_sql_text(t)).collect::<Vec<_>>())?,
            sql_fingerprint: to_sql_text_opt(&e.sql_fingerprint),
            outcome: e.outcome.as_str().to_owned(),
            status: i64::from(e.status),
            error_code: to_sql_text_opt(&e.error_code),
            bytes: to_sql_count(e.bytes),
            client_addr: to_sql_text_opt(&e.client_addr),
            detail: to_sql_text_opt(&e.detail),
        })
    }

    pub(crate) fn into_event(self) -> Result<AuditEvent> {
        let action = AuditAction::parse(&self.action).ok_or_else(|| {
            Error::internal_msg(format!(
                "audit event {} has unknown action {:?}",
                self.id, self.action
            ))
        })?;
        let outcome = AuditOutcome::parse(&self.outcome).ok_or_else(|| {
            Error::internal_msg(format!(
                "audit event {} has unknown outcome {:?}",
                self.id, self.outcome
            ))
        })?;
        let status = u16::try_from(self.status).map_err(|_| {
            Error::internal_msg(format!(
                "audit event {} has status {} outside 0..=65535",
                self.id, self.status
            ))
        })?;
        let targets = from_json_list(&self.targets, || {
            format!("the targets of audit event {}", self.id)
        })?;
        Ok(AuditEvent {
            id: self.id,
            at: self.at.and_utc(),
            request_id: self.request_id,
            principal: self.principal,
            action,
            route: self.route,
            targets,
            sql_fingerprint: self.sql_fingerprint,
            outcome,
            status,
            error_code: self.error_code,
            bytes: from_sql_count(self.bytes),
            client_addr: self.client_addr,
            detail: self.detail,
        })
    }

    /// The cursor pointing just after this row.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            at: self.at,
            id: self.id.clone(),
        }
    }
}

/// The listing query for one backend: `filter` (principal, action and outcome equal; `since`
/// inclusive, `until` exclusive), rows after `cursor`, newest first (at DESC, id DESC), at most
/// `limit`. A macro for the reason given at [`crate::history::list_query`].
///
/// The time bounds are rounded up to whole microseconds, which keeps their meaning against
/// stored (whole-microsecond) times.
macro_rules! list_events_query {
    ($backend:ty, $filter:expr, $cursor:expr, $limit:expr) => {{
        use crate::schema::audit_log::dsl as a;
        let filter: bqai_core::auth::audit::AuditFilter = $filter;
        let cursor: Option<crate::page::Cursor> = $cursor;
        let mut q = a::audit_log
            .select(crate::audit::AuditRow::as_select())
            .into_boxed::<$backend>();
        if let Some(principal) = filter.principal {
            q = q.filter(a::principal.eq(principal));
        }
        if let Some(action) = filter.action {
            q = q.filter(a::action.eq(action.as_str()));
        }
        if let Some(outcome) = filter.outcome {
            q = q.filter(a::outcome.eq(outcome.as_str()));
        }
        if let Some(since) = filter.since {
            q = q.filter(a::at.ge(crate::convert::to_sql_time_ceil(since)));
        }
        if let Some(until) = filter.until {
            q = q.filter(a::at.lt(crate::convert::to_sql_time_ceil(until)));
        }
        if let Some(crate::page::Cursor { at, id }) = cursor {
            q = q.filter(a::at.lt(at).or(a::at.eq(at).and(a::id.lt(id))));
        }
        q.order((a::at.desc(), a::id.desc())).limit($limit)
    }};
}
pub(crate) use list_events_query;

#[async_trait]
impl AuditLog for Store {
    async fn append(&self, event: &AuditEvent) -> Result<()> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.append_event(event).await,
            Backend::Postgres(s) => s.append_event(event).await,
        }
    }

    #[tracing::instrument(name = "audit INSERT", skip_all, fields(db.system = self.db_system(), db.operation = "INSERT", otel.kind = "client"))]
    async fn append_batch(&self, events: &[AuditEvent]) -> Result<()> {
        let rows = events
            .iter()
            .map(AuditRow::from_event)
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.append_events(rows).await,
            Backend::Postgres(s) => s.append_events(rows).await,
        }
    }

    async fn list_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.list_events(filter, page).await,
            Backend::Postgres(s) => s.list_events(filter, page).await,
        }
    }
}
