//! Export jobs: `POST /api/v1/exports` in job mode queues one (see [`submit`]); `GET
//! /api/v1/exports` and `GET /api/v1/exports/{id}` show them, `DELETE` cancels one or deletes
//! its file; `GET /api/v1/exports/{id}/download?expires=&sig=` serves the file to whoever
//! holds a valid signed link, with no API key (like a presigned S3 or GCS URL), with range
//! requests for resumed downloads.
//!
//! A job belongs to the key that submitted it: others get `NOT_FOUND` (ids cannot be
//! probed), admins see every job. The download is the one `/api/v1` route the
//! authentication middleware lets through without a credential ([`is_signed_download`]): the
//! handler checks the link's signature instead. It is still rate-limited (per client address)
//! and audited.

use actix_web::http::StatusCode;
use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, delete, get, web};
use bqai_core::auth::Action;
use bqai_core::export::{ExportJob, ExportJobFilter, ExportSpec, ExportStatus, LinkError};
use bqai_core::model::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::page_request;
use crate::state::AppState;

/// Whether a request is for a signed download link (`GET`/`HEAD
/// /api/v1/exports/{id}/download`), which carries its own credential.
pub(crate) fn is_signed_download(method: &actix_web::http::Method, path: &str) -> bool {
    let is_read = method == actix_web::http::Method::GET || method == actix_web::http::Method::HEAD;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    is_read
        && matches!(
            segments.as_slice(),
            ["api", "v1", "exports", id, "download"] if !id.is_empty()
        )
}

/// How long the presigned URL a download of a bucket file is redirected to stays valid: the
/// client follows it at once.
const BUCKET_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Most jobs on one page of `GET /api/v1/exports`.
const MAX_JOBS_PAGE: u32 = 200;

/// An export job as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJobDto {
    /// The job's id.
    pub export_id: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled` or `expired`.
    #[schema(example = "running")]
    pub status: String,
    /// The file format.
    pub format: String,
    /// The download's file name.
    pub file_name: String,
    /// Rows written so far (all of them once succeeded).
    pub rows: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// From 0 to 1; null while the result's size is unknown.
    pub progress: Option<f64>,
    /// The result's row count, once the warehouse said it.
    pub total_rows: Option<u64>,
    /// Why it failed.
    pub error: Option<ExportJobError>,
    /// A signed link to the file (succeeded jobs), valid until `link_expires_at`; no API key
    /// needed.
    pub download_url: Option<String>,
    /// When `download_url` stops working.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// When the file is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// The history entry of the run (kind `export`).
    pub query_id: Option<String>,
    /// How many times a worker started it (a run interrupted by a restart runs again).
    pub attempts: u32,
    /// Who submitted it.
    pub owner: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When its current run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJobError {
    /// An error code of the envelope (`TIMEOUT`, `QUOTA_EXCEEDED`, …), or `INTERRUPTED`
    /// (stopped by restarts too often) or `EXPORT_LIMIT_EXCEEDED` (the key's daily bytes).
    pub code: String,
    /// A message safe to show.
    pub message: String,
}

/// The answer of a job submission (`202 Accepted`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAccepted {
    /// The job's id.
    pub export_id: String,
    /// `queued`.
    pub status: String,
    /// Where to follow it: `GET` it until `status` is `succeeded`, then fetch `download_url`.
    pub status_url: String,
}

/// `?status=&page_size=&page_token=` on `GET /api/v1/exports`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportListQuery {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Items per page (at most 200).
    pub page_size: Option<u32>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// `?expires=&sig=` of a download link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Unix seconds after which the link is refused.
    pub expires: Option<String>,
    /// The link's signature.
    pub sig: Option<String>,
}

impl ExportJobDto {
    pub(crate) fn new(job: ExportJob, link: Option<(String, DateTime<Utc>)>) -> Self {
        let progress = job.progress();
        let (download_url, link_expires_at) = link.unzip();
        Self {
            export_id: job.id,
            status: job.status.as_str().to_owned(),
            format: job.format,
            file_name: job.file_name,
            rows: job.rows,
            bytes: job.bytes,
            progress,
            total_rows: job.total_rows,
            error: job.error.map(|e| ExportJobError {
                code: e.code,
                message: e.message,
            }),
            download_url,
            link_expires_at,
            expires_at: job.expires_at,
            query_id: job.query_id,
            attempts: job.attempts,
            owner: job.owner,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// The job as its owner sees it, with a fresh signed link when its file is ready.
fn view(state: &AppState, req: &HttpRequest, job: ExportJob) -> ExportJobDto {
    let link = (job.status == ExportStatus::Succeeded)
        .then(|| signed_link(state, req, &job))
        .flatten();
    ExportJobDto::new(job, link)
}

/// `…/exports/{id}/download?expires=&sig=`, valid for `export.link_ttl_secs` and never past
/// the file's own expiry; absolute, on the host the caller used.
fn signed_link(
    state: &AppState,
    req: &HttpRequest,
    job: &ExportJob,
) -> Option<(String, DateTime<Utc>)> {
    let info = req.connection_info();
    signed_link_at(state, &format!("{}://{}", info.scheme(), info.host()), job)
}

/// [`signed_link`] on the server at `base` (`scheme://host[:port]`).
pub(crate) fn signed_link_at(
    state: &AppState,
    base: &str,
    job: &ExportJob,
) -> Option<(String, DateTime<Utc>)> {
    let ttl = chrono::TimeDelta::from_std(state.settings.export.link_ttl).ok()?;
    let mut until = Utc::now() + ttl;
    if let Some(file_expiry) = job.expires_at {
        until = until.min(file_expiry);
    }
    let expires = until.timestamp();
    let sig = state.links.sign(&job.id, expires);
    let url = format!(
        "{base}/api/v1/exports/{}/download?expires={expires}&sig={sig}",
        job.id
    );
    Some((url, DateTime::from_timestamp(expires, 0).unwrap_or(until)))
}

/// Queues an export job for `principal` after the per-key limits: at most
/// `export.max_jobs_per_key` queued or running, and no new job once the key's jobs wrote
/// `export.max_bytes_per_day` today.
pub(crate) async fn submit(
    state: &AppState,
    principal: &Principal,
    format: bqai_export::Format,
    file_name: &str,
    spec: ExportSpec,
) -> Result<ExportJob, ApiError> {
    let settings = &state.settings.export;
    let store = state.exports.store();
    if let Some(owner) = &principal.id {
        let usage = store.usage(owner, bqai_export::jobs::today_start()).await?;
        if usage.active >= settings.max_jobs_per_key {
            return Err(limit_error(format!(
                "this key has {} export jobs queued or running, the most it may have \
                 (export.max_jobs_per_key); wait for one to end or cancel one",
                usage.active
            ))
            // A job takes seconds to minutes: a guess, so a polite client does not hammer.
            .with_retry_after(std::time::Duration::from_secs(10)));
        }
        if let Some(max) = settings.max_bytes_per_day
            && usage.bytes >= max
        {
            let midnight = bqai_export::jobs::today_start() + chrono::TimeDelta::days(1);
            let wait = (midnight - Utc::now()).to_std().unwrap_or_default();
            return Err(limit_error(format!(
                "this key's export jobs wrote {} bytes today, its daily limit \
                 (export.max_bytes_per_day = {max}); it resets at midnight UTC",
                usage.bytes
            ))
            .with_retry_after(wait));
        }
    }
    let job = ExportJob::new(
        principal.clone(),
        format.as_str(),
        file_name,
        spec,
        Utc::now(),
    );
    store.create_job(&job).await?;
    state.exports.wake();
    Ok(job)
}

/// The `202 Accepted` answer to a job submission.
pub(crate) fn accepted(job: &ExportJob) -> HttpResponse {
    let status_url = status_url(&job.id);
    HttpResponse::Accepted()
        .insert_header((actix_web::http::header::LOCATION, status_url.clone()))
        .json(ExportAccepted {
            export_id: job.id.clone(),
            status: ExportStatus::Queued.as_str().to_owned(),
            status_url,
        })
}

/// Where a job's status is read.
pub(crate) fn status_url(id: &str) -> String {
    format!("/api/v1/exports/{id}")
}

fn limit_error(message: String) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "EXPORT_LIMIT_EXCEEDED",
        message,
    )
}

/// The job `id` if the caller may see it (its own, or any for admins).
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<ExportJob, ApiError> {
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(ApiError::invalid("an export id is a UUID"));
    }
    match state.exports.store().get_job(id).await? {
        Some(job) if caller.sees_all() || job.owner == caller.principal().id => Ok(job),
        _ => Err(ApiError::not_found(format!("export {id} not found"))),
    }
}

/// Lists export jobs: the caller's, or everyone's for admins; newest first.
#[utoipa::path(
    operation_id = "list_exports",
    tag = "exports",
    params(ExportListQuery),
    responses(
        (status = 200, description = "The jobs, newest first", body = crate::dto::ListResponse<ExportJobDto>),
    )
)]
#[get("/exports")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    q: web::Query<ExportListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Export)?;
    let q = q.into_inner();
    let status = q
        .status
        .as_deref()
        .map(|s| {
            ExportStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status must be one of queued, running, succeeded, failed, cancelled, expired",
                )
            })
        })
        .transpose()?;
    let page = page_request(&state.settings, q.page_size, q.page_token, MAX_JOBS_PAGE)?;
    let filter = ExportJobFilter {
        owner: if caller.sees_all() {
            None
        } else {
            caller.principal().id.clone()
        },
        status,
    };
    let jobs = state.exports.store().list_jobs(&filter, &page).await?;
    Ok(
        HttpResponse::Ok().json(crate::dto::ListResponse::from_page(jobs, |j| {
            view(&state, &req, j)
        })),
    )
}

/// One export job: its status, progress and, once it succeeded, a signed download link.
#[utoipa::path(
    operation_id = "get_export",
    tag = "exports",
    params(("id" = String, Path, description = "The export id")),
    responses(
        (status = 200, description = "The job", body = ExportJobDto),
        (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope),
    )
)]
#[get("/exports/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Export)?;
    let job = visible_job(&state, &caller, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view(&state, &req, job)))
}

/// Cancels a queued or running job (a running warehouse query is cancelled with it), or
/// deletes a finished job's file (its status becomes `expired`). Other jobs are left as they
/// are. Answers the job after the change.
#[utoipa::path(
    operation_id = "delete_export",
    tag = "exports",
    params(("id" = String, Path, description = "The export id")),
    responses(
        (status = 200, description = "The job after the change", body = ExportJobDto),
        (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope),
    )
)]
#[delete("/exports/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Export)?;
    let before = visible_job(&state, &caller, &path.into_inner()).await?;
    let after = state
        .exports
        .store()
        .cancel_job(&before.id, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("export {} not found", before.id)))?;
    if before.status == ExportStatus::Running {
        state.exports.stop_local(&after.id);
    }
    if before.status == ExportStatus::Succeeded
        && after.status == ExportStatus::Expired
        && let Some(location) = &after.location
        && let Err(e) = state.exports.destination().delete(location).await
    {
        tracing::warn!(export_id = %after.id, error = %e, "could not delete an export file");
    }
    crate::auth::note(&req, |n| {
        n.detail = Some(format!("export {} {}", after.id, after.status));
    });
    Ok(HttpResponse::Ok().json(view(&state, &req, after)))
}

/// The file of a succeeded job, for whoever holds a valid signed link (no API key). Range
/// requests are answered (`206`), so an interrupted download resumes.
#[utoipa::path(
    operation_id = "download_export",
    tag = "exports",
    params(("id" = String, Path, description = "The export id"), DownloadQuery),
    security(()),
    responses(
        (status = 200, description = "The file, with `Content-Disposition: attachment`", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (serde_json::Value = "application/json"),
            (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "application/vnd.apache.parquet"),
        )),
        (status = 206, description = "The requested range of the file"),
        (status = 307, description = "With a gs:// or s3:// destination: the bucket's own presigned URL of the file (valid 5 minutes)", headers(("Location" = String, description = "The presigned URL"))),
        (status = 403, description = "FORBIDDEN: the link is tampered with, signed by another key, or expired", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such export, or its file is gone", body = crate::openapi::ErrorEnvelope),
        (status = 416, description = "The range is outside the file"),
    )
)]
#[get("/exports/{id}/download")]
pub async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    crate::auth::note(&req, |n| {
        n.detail = Some(format!("download of export {id} through a signed link"));
    });
    let (job, response) = serve(&state, &req, &id, &q).await?;
    crate::auth::note(&req, |n| {
        n.detail = Some(format!(
            "download of export {id} (owner {}) through a signed link",
            job.owner.as_deref().unwrap_or("-")
        ));
    });
    Ok(response)
}

async fn serve(
    state: &AppState,
    req: &HttpRequest,
    id: &str,
    q: &DownloadQuery,
) -> Result<(ExportJob, HttpResponse), ApiError> {
    let forbidden = |m: &str| ApiError::from(bqai_core::Error::Forbidden(m.to_owned()));
    let expires = q.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
    let (Some(expires), Some(sig)) = (expires, q.sig.as_deref()) else {
        return Err(forbidden(
            "a download link needs its `expires` and `sig`: get one from GET /api/v1/exports/{id}",
        ));
    };
    match state.links.verify(id, expires, sig, Utc::now()) {
        Ok(()) => {}
        Err(LinkError::BadSignature) => {
            return Err(forbidden("the download link's signature does not match"));
        }
        Err(LinkError::Expired) => {
            return Err(forbidden(
                "the download link has expired: get a new one from GET /api/v1/exports/{id}",
            ));
        }
    }
    let gone = || ApiError::not_found(format!("the file of export {id}"));
    let job = state.exports.store().get_job(id).await?.ok_or_else(gone)?;
    let location = match (&job.status, &job.location) {
        (ExportStatus::Succeeded, Some(location)) => location.clone(),
        _ => return Err(gone()),
    };
    // A bucket's own presigned URL, short-lived: the link was checked here, the bytes come
    // from the bucket (with its range support).
    let path = match state
        .exports
        .destination()
        .open(&location, BUCKET_LINK_TTL)
        .await
    {
        Ok(bqai_export::Stored::Local(path)) => path,
        Ok(bqai_export::Stored::Url(url)) => {
            let response = HttpResponse::TemporaryRedirect()
                .insert_header((actix_web::http::header::LOCATION, url))
                .finish();
            return Ok((job, response));
        }
        Err(e) => {
            tracing::warn!(export_id = %id, error = %e, "could not open an export file");
            return Err(gone());
        }
    };
    let file = actix_files::NamedFile::open_async(&path)
        .await
        .map_err(|_| gone())?;
    let content_type = bqai_export::Format::parse(&job.format).map_or(
        "application/octet-stream",
        bqai_export::Format::content_type,
    );
    let file = file
        .set_content_type(
            content_type
                .parse()
                .unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM),
        )
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(job.file_name.clone())],
        })
        // The files are written once and their names are unique.
        .use_etag(true)
        .use_last_modified(true);
    let mut response = file.into_response(req);
    if bqai_export::Format::parse(&job.format).is_some_and(bqai_export::Format::is_compressed) {
        response.headers_mut().insert(
            actix_web::http::header::CONTENT_ENCODING,
            actix_web::http::header::HeaderValue::from_static("identity"),
        );
    }
    Ok((job, response))
}

#[cfg(test)]
mod tests {
    use super::is_signed_download;
    use actix_web::http::Method;

    #[test]
    fn only_the_download_route_is_a_signed_link() {
        assert!(is_signed_download(
            &Method::GET,
            "/api/v1/exports/abc/download"
        ));
        assert!(is_signed_download(
            &Method::HEAD,
            "/api/v1/exports/abc/download"
        ));
        for (method, path) in [
            (Method::DELETE, "/api/v1/exports/abc/download"),
            (Method::GET, "/api/v1/exports/abc"),
            (Method::GET, "/api/v1/exports//download"),
            (Method::GET, "/api/v1/exports/a/b/download"),
            (Method::GET, "/api/v1/datasets/download"),
            (Method::GET, "/api/v1/exports/abc/download/x"),
        ] {
            assert!(!is_signed_download(&method, path), "{method} {path}");
        }
    }
}
