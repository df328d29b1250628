//! Backend-neutral parts of the key store: the row type, its conversion to and from
//! [`KeyRecord`], the change set of an update, the listing query, and [`KeyStore`] for
//! [`Store`].
//!
//! Datasets are a JSON array (`["*"]` for every dataset), read back exactly as written; the
//! rate limit is a positive `BIGINT` (read back clamped into `u32`), the quota a saturated
//! counter.

use async_trait::async_trait;
use bqai_core::Result;
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyUpdate};
use bqai_core::model::{DatasetScope, Page, PageRequest, Role};
use bqai_core::ports::KeyStore;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::convert::{from_json_list, from_sql_count, to_json_list, to_sql_count, to_sql_time};
use crate::page::Cursor;
use crate::schema::api_keys;
use crate::{Backend, Store};

/// One `api_keys` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct KeyRow {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub role: String,
    pub datasets: String,
    pub rate_limit_per_minute: Option<i64>,
    pub daily_byte_quota: Option<i64>,
    pub expires_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub secret_hash: String,
}

impl KeyRow {
    pub(crate) fn from_record(k: &KeyRecord) -> Result<Self> {
        Ok(Self {
            id: k.id.clone(),
            name: k.name.clone(),
            owner: k.owner.clone(),
            role: k.role.as_str().to_owned(),
            datasets: datasets_to_sql(&k.datasets)?,
            rate_limit_per_minute: k.rate_limit_per_minute.map(i64::from),
            daily_byte_quota: k.daily_byte_quota.map(to_sql_count),
            expires_at: k.expires_at.map(to_sql_time),
            created_at: to_sql_time(k.created_at),
            last_used_at: k.last_used_at.map(to_sql_time),
            revoked_at: k.revoked_at.map(to_sql_time),
            secret_hash: k.secret_hash.clone(),
        })
    }

    pub(crate) fn into_record(self) -> Result<KeyRecord> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            bqai_core::Error::internal_msg(format!(
                "API key {} has unknown role {:?}",
                self.id, self.role
            ))
        })?;
        let datasets = datasets_from_sql(&self.datasets, &self.id)?;
        Ok(KeyRecord {
            id: self.id,
            name: self.name,
            owner: self.owner,
            role,
            datasets,
            rate_limit_per_minute: self.rate_limit_per_minute.map(rate_limit_from_sql),
            daily_byte_quota: self.daily_byte_quota.map(from_sql_count),
            expires_at: self.expires_at.map(|t| t.and_utc()),
            created_at: self.created_at.and_utc(),
            last_used_at: self.last_used_at.map(|t| t.and_utc()),
            revoked_at: self.revoked_at.map(|t| t.and_utc()),
            secret_hash: self.secret_hash,
        })
    }

    /// The cursor pointing just after this row.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id.clone(),
        }
    }
}

fn datasets_to_sql(scope: &DatasetScope) -> Result<String> {
    to_json_list(&scope.to_list())
}

/// The stored list read back as written: `*` anywhere means every dataset, anything else is
/// kept as is (no case folding: the store returns what it was given).
fn datasets_from_sql(text: &str, id: &str) -> Result<DatasetScope> {
    let list = from_json_list(text, || format!("the datasets of API key {id}"))?;
    Ok(if list.iter().any(|d| d == "*") {
        DatasetScope::All
    } else {
        DatasetScope::Only(list.into_iter().collect())
    })
}

/// The migrations only admit positive limits; a larger one than `u32` holds (set by hand) is
/// read as the largest.
fn rate_limit_from_sql(v: i64) -> u32 {
    u32::try_from(v.max(1)).unwrap_or(u32::MAX)
}

/// The columns an update changes: `None` leaves a column alone, `Some(None)` sets NULL.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = api_keys)]
pub(crate) struct KeyChanges {
    pub name: Option<String>,
    pub owner: Option<Option<String>>,
    pub role: Option<String>,
    pub datasets: Option<String>,
    pub rate_limit_per_minute: Option<Option<i64>>,
    pub daily_byte_quota: Option<Option<i64>>,
    pub expires_at: Option<Option<NaiveDateTime>>,
}

impl KeyChanges {
    /// The change set of `update`; `None` when it changes nothing (diesel refuses an empty
    /// `SET`, and there is nothing to write anyway).
    pub(crate) fn from_update(update: &KeyUpdate) -> Result<Option<Self>> {
        if update.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            name: update.name.clone(),
            owner: update.owner.clone(),
            role: update.role.map(|r| r.as_str().to_owned()),
            datasets: update.datasets.as_ref().map(datasets_to_sql).transpose()?,
            rate_limit_per_minute: update.rate_limit_per_minute.map(|v| v.map(i64::from)),
            daily_byte_quota: update.daily_byte_quota.map(|v| v.map(to_sql_count)),
            expires_at: update.expires_at.map(|v| v.map(to_sql_time)),
        }))
    }
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable timestamps (the first non-NULL).
    fn coalesce(
        x: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
        y: diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::Timestamp>;
}

/// The value `revoked_at` takes when the key is revoked at `at`: a revoked key keeps its first
/// revocation time. One expression, so concurrent revocations cannot both win.
pub(crate) fn revoked_at_after(
    at: DateTime<Utc>,
) -> coalesce<api_keys::revoked_at, Option<NaiveDateTime>> {
    coalesce(api_keys::revoked_at, Some(to_sql_time(at)))
}

/// The listing query for one backend: non-revoked keys unless `filter.include_revoked`, rows
/// after `cursor`, newest first (created_at DESC, id DESC), at most `limit`. A macro for the
/// reason given at [`crate::history::list_query`].
macro_rules! list_keys_query {
    ($backend:ty, $filter:expr, $cursor:expr, $limit:expr) => {{
        use crate::schema::api_keys::dsl as k;
        let filter: bqai_core::auth::keys::KeyFilter = $filter;
        let cursor: Option<crate::page::Cursor> = $cursor;
        let mut q = k::api_keys
            .select(crate::keys::KeyRow::as_select())
            .into_boxed::<$backend>();
        if !filter.include_revoked {
            q = q.filter(k::revoked_at.is_null());
        }
        if let Some(crate::page::Cursor { at, id }) = cursor {
            q = q.filter(
                k::created_at
                    .lt(at)
                    .or(k::created_at.eq(at).and(k::id.lt(id))),
            );
        }
        q.order((k::created_at.desc(), k::id.desc())).limit($limit)
    }};
}
pub(crate) use list_keys_query;

#[async_trait]
impl KeyStore for Store {
    async fn insert_key(&self, key: &KeyRecord) -> Result<()> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.insert_key(key).await,
            Backend::Postgres(s) => s.insert_key(key).await,
        }
    }

    #[tracing::instrument(name = "api_keys SELECT", skip_all, fields(db.system = self.db_system(), db.operation = "SELECT", otel.kind = "client"))]
    async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.get_key(id).await,
            Backend::Postgres(s) => s.get_key(id).await,
        }
    }

    async fn list_keys(&self, filter: &KeyFilter, page: &PageRequest) -> Result<Page<KeyRecord>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.list_keys(filter, page).await,
            Backend::Postgres(s) => s.list_keys(filter, page).await,
        }
    }

    async fn update_key(&self, id: &str, update: &KeyUpdate) -> Result<Option<KeyRecord>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.update_key(id, update).await,
            Backend::Postgres(s) => s.update_key(id, update).await,
        }
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> Result<Option<KeyRecord>> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.revoke_key(id, at).await,
            Backend::Postgres(s) => s.revoke_key(id, at).await,
        }
    }

    async fn touch_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        match self.backend.as_ref() {
            Backend::Sqlite(s) => s.touch_key(id, at).await,
            Backend::Postgres(s) => s.touch_key(id, at).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_read_back_as_written() {
        for scope in [
            DatasetScope::All,
            DatasetScope::Only(Default::default()),
            DatasetScope::Only(["shop".to_owned(), "Other-Project.DS".to_owned()].into()),
        ] {
            let text = datasets_to_sql(&scope).unwrap();
            assert_eq!(datasets_from_sql(&text, "k").unwrap(), scope, "{text}");
        }
        assert_eq!(datasets_to_sql(&DatasetScope::All).unwrap(), r#"["*"]"#);
        assert_eq!(
            datasets_from_sql(r#"["shop", "*"]"#, "k").unwrap(),
            DatasetScope::All
        );
        assert!(datasets_from_sql("shop", "k").is_err());
    }

    #[test]
    fn rate_limits_clamp_into_u32() {
        assert_eq!(rate_limit_from_sql(60), 60);
        assert_eq!(rate_limit_from_sql(i64::MAX), u32::MAX);
        assert_eq!(rate_limit_from_sql(0), 1);
    }

    #[test]
    fn an_empty_update_has_no_change_set() {
        assert!(
            KeyChanges::from_update(&KeyUpdate::default())
                .unwrap()
                .is_none()
        );
        let clear = KeyUpdate {
            owner: Some(None),
            ..KeyUpdate::default()
        };
        let changes = KeyChanges::from_update(&clear).unwrap().unwrap();
        assert_eq!(changes.owner, Some(None));
        assert_eq!(changes.name, None);
    }
}
