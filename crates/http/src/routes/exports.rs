//! `POST /api/v1/exports`: a whole result as a file (CSV, NDJSON, JSON, XLSX, Parquet).
//!
//! The statement goes through the query pipeline's checks (guard, scope, dry run, byte cap,
//! quota, timeout) with the export row cap (`export.max_rows`) instead of the response's.
//! An inline export's response **is** the file: the rows come from the warehouse batch by
//! batch, are encoded on a blocking thread and leave as chunks of the response, so memory
//! holds a few batches whatever the size. The history entry (kind `export`) is written when
//! the last byte has gone, with the rows that went out; a failure after the first byte
//! aborts the transfer (no final chunk), so a client never takes a cut file for a whole one.
//!
//! A result the dry run does not call small (or `?mode=job`) becomes a background job
//! instead (`202 Accepted`, see `export_jobs`).

use std::io::Write;
use std::time::Duration;

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpRequest, HttpResponse, post, web};
use bqai_core::auth::Action;
use bqai_core::export::ExportSpec;
use bqai_core::history::QueryKind;
use bqai_core::model::{QueryParameters, QueryRequest};
use bqai_core::query::{PlannedQuery, RecordMeta, StreamedQuery};
use bqai_export::{Format, Options};
use bytes::Bytes;

use crate::auth::{AuditNote, Caller, add_dataset_target, add_target, note};
use crate::dto::{ExportBody, ExportModeQuery};
use crate::error::ApiError;
use crate::state::{AppState, ExportSettings};

/// Bytes gathered before a chunk of the response leaves.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks queued between the encoder and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Exports a result.
#[utoipa::path(
    tag = "exports",
    request_body = crate::dto::ExportBody,
    params(ExportModeQuery),
    responses(
        (status = 200, description = "The file, streamed (chunked transfer) with `Content-Disposition: attachment`. `X-Query-Id` names its history entry.", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
            (serde_json::Value = "application/json"),
            (String = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "application/vnd.apache.parquet"),
        ), headers(("X-Query-Id" = String, description = "The export's history entry"))),
        (status = 404, description = "NOT_FOUND: the history entry, a table or a dataset", body = crate::openapi::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = crate::openapi::ErrorEnvelope),
        (status = 202, description = "Queued as a background job (`mode=job`, or `auto` when the dry run does not call the result small): follow `status_url`", body = crate::routes::export_jobs::ExportAccepted, headers(("Location" = String, description = "The job's status URL"))),
        (status = 429, description = "EXPORT_LIMIT_EXCEEDED: the key's concurrent jobs or daily bytes (export.max_jobs_per_key, export.max_bytes_per_day); RATE_LIMITED; QUOTA_EXCEEDED", body = crate::openapi::ErrorEnvelope, headers(("Retry-After" = String, description = "Seconds to wait before trying again"))),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = crate::openapi::ErrorEnvelope),
        (status = 504, description = "TIMEOUT", body = crate::openapi::ErrorEnvelope),
    )
)]
#[post("/exports")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    mode: web::Query<ExportModeQuery>,
    body: web::Json<ExportBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::Export)?;
    let body = body.into_inner();
    let settings = &state.settings.export;
    let inline = match mode.mode.as_deref() {
        None | Some("auto") => None,
        Some("inline") => Some(true),
        Some("job") => Some(false),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "`mode` must be auto, inline or job, not {other:?}"
            )));
        }
    };
    let Prepared {
        format,
        options,
        request,
        meta,
        spec,
    } = prepare(&state, &caller, &body).await?;
    note(&req, |n| note_export(n, &request, format));
    // Every check runs now, so a job that cannot run is refused here rather than failing
    // later; the worker checks again when it runs.
    let planned = state
        .queries
        .plan_export(request, caller.principal(), settings.max_rows, meta.clone())
        .await?;
    let file_name = file_name(&body, planned.query_id(), format);
    if inline == Some(false) || (inline.is_none() && !is_small(&planned, settings)) {
        note(&req, |n| {
            for t in planned.referenced_tables() {
                add_target(n, t.to_string());
            }
            n.detail = Some(format!("export job as {format}"));
        });
        drop(planned);
        let job = super::export_jobs::submit(&state, caller.principal(), format, &file_name, spec)
            .await?;
        return Ok(super::export_jobs::accepted(&job));
    }
    crate::request_id::note_query_id(&req, planned.query_id());
    let streamed = state
        .queries
        .stream_planned(planned, caller.principal(), meta)
        .await?;
    note(&req, |n| note_streamed(n, &streamed));
    Ok(stream_file(&state, streamed, format, options, &file_name))
}

/// An export request checked for its shape: the format, the encoder's options, the statement
/// with its history metadata, and the spec a job would run.
pub(crate) struct Prepared {
    pub format: Format,
    pub options: Options,
    pub request: QueryRequest,
    pub meta: RecordMeta,
    pub spec: ExportSpec,
}

/// Checks an export body (format, delimiter, exactly one source, the row cap) and resolves
/// its statement; nothing runs yet. `POST /api/v1/exports` and the MCP `export` tool.
pub(crate) async fn prepare(
    state: &AppState,
    caller: &Caller,
    body: &ExportBody,
) -> Result<Prepared, ApiError> {
    let settings = &state.settings.export;
    let format = Format::parse(&body.format).ok_or_else(|| {
        ApiError::invalid(format!(
            "`format` must be one of csv, ndjson, json, xlsx, parquet, not {:?}",
            body.format
        ))
    })?;
    let mut options = Options::default();
    if let Some(delimiter) = &body.delimiter {
        if format != Format::Csv {
            return Err(ApiError::invalid(
                "`delimiter` applies to the csv format only",
            ));
        }
        options = options
            .with_delimiter(delimiter)
            .map_err(ApiError::invalid)?;
    }
    let request = export_request(state, caller, body).await?;
    if request
        .max_rows
        .is_some_and(|n| n == 0 || n > settings.max_rows)
    {
        return Err(ApiError::invalid(format!(
            "`max_rows` must be between 1 and {} (export.max_rows)",
            settings.max_rows
        )));
    }
    let meta = RecordMeta {
        kind: QueryKind::Export,
        request_id: crate::request_id::current(),
        rerun_of: body.query_id.clone().or_else(|| body.history_id.clone()),
        ..RecordMeta::default()
    };
    let spec = ExportSpec {
        sql: request.sql.clone(),
        default_dataset: request.default_dataset.clone(),
        parameters: body.parameters.clone(),
        max_rows: body.max_rows,
        timeout_ms: body.timeout_ms,
        delimiter: body.delimiter.clone(),
        rerun_of: meta.rerun_of.clone(),
        request_id: meta.request_id.clone(),
    };
    Ok(Prepared {
        format,
        options,
        request,
        meta,
        spec,
    })
}

/// Records an export's SQL, dataset and format in the audit note.
pub(crate) fn note_export(n: &mut AuditNote, request: &QueryRequest, format: Format) {
    n.sql = Some(request.sql.clone());
    if let Some(ds) = &request.default_dataset {
        add_dataset_target(n, ds);
    }
    n.detail = Some(format!("export as {format}"));
}

/// The download's file name: the body's (made safe) or one named after the query.
pub(crate) fn file_name(body: &ExportBody, query_id: &str, format: Format) -> String {
    bqai_export::file_name(
        body.filename
            .as_deref()
            .unwrap_or(&format!("bqai-export-{query_id}")),
        format,
    )
}

/// The statement an export runs: the body's SQL, or the SQL of the caller's history entry
/// named by `query_id` / `history_id`.
async fn export_request(
    state: &AppState,
    caller: &Caller,
    body: &ExportBody,
) -> Result<QueryRequest, ApiError> {
    let timeout = body.timeout_ms.map(Duration::from_millis);
    match (&body.sql, &body.query_id, &body.history_id) {
        (Some(sql), None, None) => {
            let parameters = match &body.parameters {
                Some(json) => QueryParameters::from_json(json)
                    .map_err(|e| ApiError::from(bqai_core::Error::InvalidRequest(e)))?,
                None => QueryParameters::None,
            };
            Ok(QueryRequest {
                sql: sql.clone(),
                default_dataset: body.dataset_id.clone().filter(|d| !d.is_empty()),
                dry_run: false,
                max_rows: body.max_rows,
                timeout,
                // Streams never come from bqai's cache; BigQuery's own may answer (free).
                use_cache: true,
                parameters,
            })
        }
        (None, Some(id), None) | (None, None, Some(id)) => {
            if body.dataset_id.is_some() || body.parameters.is_some() {
                return Err(ApiError::invalid(
                    "`dataset_id` and `parameters` come from the history entry; send them only with `sql`",
                ));
            }
            let entry = super::history::visible_entry(state, caller, id).await?;
            Ok(QueryRequest {
                max_rows: body.max_rows,
                timeout,
                use_cache: true,
                ..entry.rerun_request()?
            })
        }
        _ => Err(ApiError::invalid(
            "send exactly one of `sql`, `query_id` and `history_id`",
        )),
    }
}

/// Whether the dry run says the result is small enough to stream inline: its LIMIT is at most
/// `export.inline_max_rows`, or (the dry run tells bytes, not rows) it processes at most
/// `export.inline_max_bytes`.
fn is_small(planned: &PlannedQuery, settings: &ExportSettings) -> bool {
    planned
        .user_limit()
        .is_some_and(|limit| limit <= settings.inline_max_rows)
        || planned.bytes_processed() <= settings.inline_max_bytes
}

/// Records the tables the export reads and what it cost in the audit note.
fn note_streamed(n: &mut AuditNote, streamed: &StreamedQuery) {
    for t in &streamed.referenced_tables {
        add_target(n, t.to_string());
    }
    n.bytes = streamed.rows.stats.charged_bytes();
}

/// The response whose body is the file, encoded as the rows arrive; history is written when
/// the encoder is done.
fn stream_file(
    state: &AppState,
    streamed: StreamedQuery,
    format: Format,
    options: Options,
    file_name: &str,
) -> HttpResponse {
    let StreamedQuery {
        query_id,
        rows,
        record,
        ..
    } = streamed;
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    let writer = BodyWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(CHUNK_BYTES),
    };
    let queries = state.queries.clone();
    let metrics = std::sync::Arc::clone(&state.metrics);
    tokio::spawn(async move {
        let outcome = bqai_export::encode_stream(rows, format, options, writer, |_, _| {}).await;
        let (rows, error) = match outcome {
            Ok(written) => {
                metrics.observe_export(
                    format.as_str(),
                    "inline",
                    None,
                    written.rows,
                    written.bytes,
                );
                (written.rows, None)
            }
            Err(failure) => {
                let error = failure.into_core();
                tracing::warn!(query_id = %record.query_id(), code = error.code(), error = %error, "export stopped before its end");
                metrics.observe_export(format.as_str(), "inline", Some(error.code()), 0, 0);
                // Ends the response without its final chunk: the client sees a broken
                // transfer, not a short file.
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "the export stopped before its end",
                    )))
                    .await;
                (0, Some(error))
            }
        };
        queries.finish_stream(record, rows, error).await;
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = HttpResponse::Ok();
    response
        .content_type(format.content_type())
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(file_name.to_owned())],
        })
        .insert_header(("X-Query-Id", query_id));
    if format.is_compressed() {
        // Zip and Parquet pages are compressed already: gzip again would only cost CPU.
        response.insert_header((header::CONTENT_ENCODING, "identity"));
    }
    response.streaming(body)
}

/// Gathers the encoder's bytes into chunks of the response; blocks (on the encoder's thread)
/// while the connection is behind, and fails once the client has gone.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl BodyWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}
