//! Operator endpoints, admin role only (the audit log and key list need `audit_read`, which
//! only admins have):
//!
//! - `POST /api/v1/admin/keys` creates a key and shows it once; `GET /api/v1/admin/keys` lists
//!   keys; `GET`/`PATCH`/`DELETE /api/v1/admin/keys/{id}` inspects, changes (role, datasets,
//!   limits, expiry, name, owner) or revokes one.
//! - `GET /api/v1/admin/audit` lists audit events, newest first, filtered by principal,
//!   action, outcome and time.
//! - `DELETE /api/v1/admin/cache?dataset_id=…` drops everything cached from one dataset (its
//!   schemas, query results and question-cache SQL), e.g. after its tables changed.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use bqai_core::auth::audit::{AuditAction, AuditFilter, AuditOutcome};
use bqai_core::auth::keys::{KeyFilter, KeyRecord, KeyStatus, KeyUpdate, NewKey, is_key_id};
use bqai_core::auth::{Action, Authenticator};
use bqai_core::model::{DatasetScope, Role};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{dataset_id, page_request};
use crate::auth::{Caller, add_target, note};
use crate::dto::ListResponse;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest page of keys or audit events.
const MAX_ADMIN_PAGE: u32 = 500;

/// `?dataset_id=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvalidateQuery {
    /// The dataset whose entries to drop.
    #[param(pattern = r"^[A-Za-z0-9_]{1,1024}$")]
    pub dataset_id: String,
}

/// Drops the cache entries of one dataset.
#[utoipa::path(tag = "admin", params(InvalidateQuery), responses((status = 200, description = "What was dropped", body = InvalidatedDto)))]
#[delete("/admin/cache")]
pub async fn invalidate_cache(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    q: web::Query<InvalidateQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Admin)?;
    let dataset = dataset_id(&q.dataset_id)?;
    note(&req, |n| {
        add_target(n, &dataset);
        n.detail = Some("cache invalidated".into());
    });
    let removed = state.warehouse.invalidate_dataset(&dataset).await?;
    tracing::info!(dataset = %dataset, removed, "cache invalidated by an operator");
    Ok(HttpResponse::Ok().json(InvalidatedDto {
        dataset_id: dataset,
        removed,
    }))
}

/// `DELETE /api/v1/admin/cache` answer.
#[derive(Debug, Serialize, ToSchema)]
struct InvalidatedDto {
    /// The dataset.
    dataset_id: String,
    /// Entries dropped.
    removed: u64,
}

/// A key on the wire: everything but its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    id: String,
    name: String,
    owner: Option<String>,
    role: Role,
    datasets: Vec<String>,
    rate_limit_per_minute: Option<u32>,
    daily_byte_quota: Option<u64>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    status: KeyStatus,
}

impl From<KeyRecord> for KeyDto {
    fn from(k: KeyRecord) -> Self {
        let status = k.status(Utc::now());
        Self {
            datasets: k.datasets.to_list(),
            id: k.id,
            name: k.name,
            owner: k.owner,
            role: k.role,
            rate_limit_per_minute: k.rate_limit_per_minute,
            daily_byte_quota: k.daily_byte_quota,
            expires_at: k.expires_at,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            status,
        }
    }
}

/// `POST /api/v1/admin/keys` answer: the key, shown this once, and its record.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedKeyDto {
    key: String,
    #[serde(flatten)]
    record: KeyDto,
}

/// `POST /api/v1/admin/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    /// Name (1–100 characters, no control characters).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Owner (at most 200 characters).
    #[schema(max_length = 200)]
    pub owner: Option<String>,
    /// `admin`, `analyst` or `viewer`.
    #[schema(value_type = Role)]
    pub role: String,
    /// Datasets (`["*"]`, the default, is every dataset the service allows).
    #[schema(schema_with = dataset_grants)]
    pub datasets: Option<Vec<String>>,
    /// Requests per minute (default: the server's).
    #[schema(minimum = 1)]
    pub rate_limit_per_minute: Option<u32>,
    /// Bytes per UTC day (default: none).
    pub daily_byte_quota: Option<u64>,
    /// Expiry (RFC 3339).
    pub expires_at: Option<DateTime<Utc>>,
    /// Expiry in days from now (instead of `expires_at`).
    pub expires_in_days: Option<u32>,
}

/// The schema of a grant list: `*`, `dataset` or `project.dataset` entries, at least one.
fn dataset_grants() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(
            r"^(\*|[A-Za-z0-9_]{1,1024}|[A-Za-z0-9-]{1,63}\.[A-Za-z0-9_]{1,1024})$",
        )))
        .min_items(Some(1))
        .description(Some("`*`, a dataset id, or `project.dataset`"))
        .build()
}

/// `PATCH /api/v1/admin/keys/{id}` body: absent fields stay, `null` clears optional ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    /// New name (1–100 characters).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// New owner.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub owner: Option<Option<String>>,
    /// New role.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = Role)]
    pub role: Option<String>,
    /// New datasets.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(schema_with = dataset_grants)]
    pub datasets: Option<Vec<String>>,
    /// New rate limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    pub rate_limit_per_minute: Option<Option<u32>>,
    /// New quota.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub daily_byte_quota: Option<Option<u64>>,
    /// New expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// A field that cannot be cleared: absent is `None` (through `#[serde(default)]`), `null` is
/// an error rather than a silent "unchanged".
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A field that is present deserializes to `Some` (holding `None` for `null`); an absent
/// one stays `None` through `#[serde(default)]`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn parse_role(s: &str) -> Result<Role, ApiError> {
    Role::parse(s).ok_or_else(|| ApiError::invalid("`role` must be admin, analyst or viewer"))
}

/// Checks a dataset grant list: `*`, `dataset` or `project.dataset` entries.
pub fn parse_datasets(items: &[String]) -> Result<DatasetScope, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid(
            "`datasets` must name at least one dataset, or be [\"*\"]",
        ));
    }
    for item in items {
        let item = item.trim();
        let ok = item == "*"
            || match item.split_once('.') {
                None => bqai_core::query::is_valid_dataset_id(item),
                Some((project, ds)) => {
                    !project.is_empty()
                        && project.len() <= 63
                        && project
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && bqai_core::query::is_valid_dataset_id(ds)
                }
            };
        if !ok {
            return Err(ApiError::invalid(format!(
                "`datasets` entry {item:?} is not `*`, a dataset id or project.dataset"
            )));
        }
    }
    Ok(DatasetScope::from_list(items))
}

fn authenticator(state: &AppState) -> Result<&Authenticator, ApiError> {
    state.auth.as_ref().ok_or_else(|| {
        ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "AUTH_DISABLED",
            "authentication is off ([auth] mode = \"off\"): there are no keys to manage",
        )
    })
}

fn key_id(raw: &str) -> Result<String, ApiError> {
    if is_key_id(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid(format!("{raw:?} is not a key id")))
    }
}

/// Creates a key.
#[utoipa::path(tag = "admin", request_body = CreateKeyBody, responses((status = 201, description = "The key (shown this once) and its record", body = CreatedKeyDto), (status = 409, description = "AUTH_DISABLED", body = crate::openapi::ErrorEnvelope), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope)))]
#[post("/admin/keys")]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<CreateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Admin)?;
    let auth = authenticator(&state)?;
    let body = body.into_inner();
    if body.expires_at.is_some() && body.expires_in_days.is_some() {
        return Err(ApiError::invalid(
            "give `expires_at` or `expires_in_days`, not both",
        ));
    }
    let expires_at = body.expires_at.or_else(|| {
        body.expires_in_days
            .map(|d| Utc::now() + chrono::Duration::days(i64::from(d)))
    });
    let new = NewKey {
        name: body.name,
        owner: body.owner.filter(|o| !o.is_empty()),
        role: parse_role(&body.role)?,
        datasets: parse_datasets(body.datasets.as_deref().unwrap_or(&["*".to_string()]))?,
        rate_limit_per_minute: body.rate_limit_per_minute,
        daily_byte_quota: body.daily_byte_quota,
        expires_at,
    };
    let (record, key) = auth.create_key(new).await?;
    tracing::info!(key_id = %record.id, role = record.role.as_str(), "API key created");
    note(&req, |n| {
        n.detail = Some(format!(
            "created key {} ({})",
            record.id,
            record.role.as_str()
        ));
    });
    Ok(HttpResponse::Created().json(CreatedKeyDto {
        key,
        record: KeyDto::from(record),
    }))
}

/// `?include_revoked=&page_size=&page_token=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyListQuery {
    /// Include revoked keys.
    #[serde(default)]
    pub include_revoked: bool,
    /// Items per page.
    pub page_size: Option<u32>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// Lists keys, newest first.
#[utoipa::path(tag = "admin", params(KeyListQuery), responses((status = 200, description = "Keys, newest first", body = crate::dto::ListResponse<KeyDto>), (status = 409, description = "AUTH_DISABLED", body = crate::openapi::ErrorEnvelope)))]
#[get("/admin/keys")]
pub async fn list_keys(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<KeyListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::AuditRead)?;
    let auth = authenticator(&state)?;
    let q = q.into_inner();
    let page = page_request(&state.settings, q.page_size, q.page_token, MAX_ADMIN_PAGE)?;
    let filter = KeyFilter {
        include_revoked: q.include_revoked,
    };
    let keys = auth.keys().list_keys(&filter, &page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(keys, KeyDto::from)))
}

/// One key.
#[utoipa::path(tag = "admin", params(("id" = String, Path, pattern = r"^[a-z0-9]{12}$", description = "The key id (12 lowercase letters and digits)")), responses((status = 200, description = "The key record", body = KeyDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 409, description = "AUTH_DISABLED", body = crate::openapi::ErrorEnvelope)))]
#[get("/admin/keys/{id}")]
pub async fn get_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::AuditRead)?;
    let auth = authenticator(&state)?;
    let id = key_id(&path)?;
    match auth.keys().get_key(&id).await? {
        Some(k) => Ok(HttpResponse::Ok().json(KeyDto::from(k))),
        None => Err(ApiError::not_found(format!("key {id} not found"))),
    }
}

/// Changes a key's name, owner, role, datasets, limits or expiry.
#[utoipa::path(tag = "admin", params(("id" = String, Path, pattern = r"^[a-z0-9]{12}$", description = "The key id")), request_body = UpdateKeyBody, responses((status = 200, description = "The changed record", body = KeyDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 409, description = "AUTH_DISABLED", body = crate::openapi::ErrorEnvelope), (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope), (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope)))]
#[patch("/admin/keys/{id}")]
pub async fn update_key(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<UpdateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Admin)?;
    let auth = authenticator(&state)?;
    let id = key_id(&path)?;
    let body = body.into_inner();
    let update = KeyUpdate {
        name: body.name,
        owner: body.owner,
        role: body.role.as_deref().map(parse_role).transpose()?,
        datasets: body.datasets.as_deref().map(parse_datasets).transpose()?,
        rate_limit_per_minute: body.rate_limit_per_minute,
        daily_byte_quota: body.daily_byte_quota,
        expires_at: body.expires_at,
    };
    update.validate()?;
    if update.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: the body has no fields",
        ));
    }
    match auth.keys().update_key(&id, &update).await? {
        Some(k) => {
            tracing::info!(key_id = %id, "API key changed");
            note(&req, |n| n.detail = Some(format!("changed key {id}")));
            Ok(HttpResponse::Ok().json(KeyDto::from(k)))
        }
        None => Err(ApiError::not_found(format!("key {id} not found"))),
    }
}

/// Revokes a key: it never works again (its WebSocket tickets included).
#[utoipa::path(operation_id = "revoke_key", tag = "admin", params(("id" = String, Path, pattern = r"^[a-z0-9]{12}$", description = "The key id")), responses((status = 200, description = "The revoked record", body = KeyDto), (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope), (status = 409, description = "AUTH_DISABLED", body = crate::openapi::ErrorEnvelope)))]
#[delete("/admin/keys/{id}")]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Admin)?;
    let auth = authenticator(&state)?;
    let id = key_id(&path)?;
    match auth.keys().revoke_key(&id, Utc::now()).await? {
        Some(k) => {
            tracing::info!(key_id = %id, "API key revoked");
            note(&req, |n| n.detail = Some(format!("revoked key {id}")));
            Ok(HttpResponse::Ok().json(KeyDto::from(k)))
        }
        None => Err(ApiError::not_found(format!("key {id} not found"))),
    }
}

/// `GET /api/v1/admin/audit` query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this principal (key id, `oidc:<subject>`).
    pub principal: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// `allowed`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Items per page.
    pub page_size: Option<u32>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// Lists audit events, newest first.
#[utoipa::path(tag = "admin", params(AuditQuery), responses((status = 200, description = "Audit events, newest first", body = crate::dto::ListResponse<bqai_core::auth::audit::AuditEvent>), (status = 409, description = "AUDIT_DISABLED", body = crate::openapi::ErrorEnvelope)))]
#[get("/admin/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::AuditRead)?;
    let Some(log) = &state.audit else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "AUDIT_DISABLED",
            "this server keeps no audit log",
        ));
    };
    let q = q.into_inner();
    let action = q
        .action
        .as_deref()
        .map(|a| {
            AuditAction::parse(a).ok_or_else(|| {
                let names: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                ApiError::invalid(format!("action must be one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| {
            AuditOutcome::parse(o)
                .ok_or_else(|| ApiError::invalid("outcome must be allowed, denied or failed"))
        })
        .transpose()?;
    if let (Some(s), Some(u)) = (q.since, q.until)
        && s > u
    {
        return Err(ApiError::invalid("`since` must not be after `until`"));
    }
    let page = page_request(&state.settings, q.page_size, q.page_token, MAX_ADMIN_PAGE)?;
    let filter = AuditFilter {
        principal: q.principal.filter(|p| !p.is_empty()),
        action,
        outcome,
        since: q.since,
        until: q.until,
    };
    let events = log.list_events(&filter, &page).await?;
    Ok(HttpResponse::Ok().json(ListResponse::from_page(events, |e| e)))
}
