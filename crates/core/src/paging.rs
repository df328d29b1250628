//! Paged results: a query's rows handed out a page at a time, the later pages read without
//! running the query again.
//!
//! The first page comes from [`QueryService::run_paged`], which runs the query through the
//! streaming warehouse read (the one exports use). Whatever is left after the page is kept
//! where the next pages can be read cheaply:
//!
//! - a warehouse that keeps its results (BigQuery keeps a job's result table for a day) names
//!   the result with [`RowStream::result_handle`]; later pages read it by offset
//!   ([`crate::ports::Warehouse::read_result`]: one `getQueryResults` call per page, nothing
//!   billed);
//! - otherwise (the embedded engine computes rows as they are read) the rows are *spooled*
//!   into the [`Cache`] in chunks for `ttl` (`query.page_ttl_secs`), up to
//!   `spool_max_bytes` of them; the last page of a result cut there says so.
//!
//! The `next_page_token` is stateless and signed ([`PageSigner`], HMAC-SHA256): it carries the
//! query id, the principal it was issued to, where the rows are and the offset of the next
//! page, the row cap and the datasets the query read. A token is refused when its signature does
//! not match (400), when it was issued to someone else or for another query (404, as if the
//! result did not exist), when it has expired or its spool is gone (404), and when the caller
//! may no longer read one of the datasets (403).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{
    Field, Principal, QueryOutcome, QueryRequest, QueryResult, QueryStats, RowBatch, TableRef,
    Value,
};
use crate::ports::Cache;
use crate::query::{QueryService, RecordMeta};
use crate::result_cache::KEY_PREFIX;

/// How paged results are kept and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagingPolicy {
    /// How long a result's pages stay readable (tokens expire with them).
    pub ttl: Duration,
    /// Row cap of a paged query's whole result (`query.max_paged_rows`), in place of the
    /// response row cap.
    pub max_rows: u64,
    /// Largest encoded size of one spooled result; rows past it are not kept.
    pub spool_max_bytes: u64,
}

impl Default for PagingPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(900),
            max_rows: 1_000_000,
            spool_max_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Signs and checks page tokens with a server secret.
#[derive(Clone)]
pub struct PageSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for PageSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageSigner").finish_non_exhaustive()
    }
}

/// What the label under the MAC says: a token for another purpose never verifies as a page.
const TOKEN_PURPOSE: &[u8] = b"bqai-page-token\nv1\n";

impl PageSigner {
    /// A signer with `secret` (32 random bytes or more is right).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    fn mac(&self, body: &[u8]) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)] // HMAC takes keys of any length
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        mac.update(TOKEN_PURPOSE);
        mac.update(body);
        mac
    }

    fn seal(&self, token: &PageToken) -> Result<String> {
        let body = encode(token, "a page token")?;
        let tag = self.mac(&body).finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// The token `text` says, if its signature matches (checked in constant time before the
    /// body is decoded); expiry is the caller's check.
    fn open(&self, text: &str) -> Result<PageToken> {
        let bad =
            || Error::InvalidRequest("`page_token` is not a page token of this server".into());
        let (body, tag) = text.split_once('.').ok_or_else(bad)?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad())?;
        self.mac(&body).verify_slice(&tag).map_err(|_| bad())?;
        rmp_serde::from_slice(&body).map_err(|_| bad())
    }
}

/// Where the rest of a result is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Source {
    /// Kept by the warehouse, under this handle.
    Warehouse(String),
    /// Spooled in the cache.
    Spool(Spooled),
}

/// A result written into the spool: `rows` rows under `id`, in chunks of `chunk` rows; `cut`
/// when the spool's byte cap stopped it before the result's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Spooled {
    id: String,
    rows: u64,
    chunk: u64,
    cut: bool,
}

/// The signed content of a `next_page_token` (short field names: it travels in URLs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PageToken {
    /// Query id.
    q: String,
    /// Principal it was issued to (`None`: unauthenticated).
    p: Option<String>,
    s: Source,
    /// Offset of the next page's first row.
    o: u64,
    /// The page size asked for first (the default of the next pages).
    n: u64,
    /// Expiry, Unix seconds.
    e: i64,
    /// Rows past this are not handed out (the query's row cap).
    l: u64,
    /// Whether reaching `l` means the result was cut (the caller's own LIMIT was larger).
    t: bool,
    /// Total rows of the result, when known.
    r: Option<u64>,
    /// Datasets the query read (`project` when not the home project), checked again against
    /// the caller's scope on every page.
    d: Vec<(Option<String>, String)>,
}

/// Why a paged result stops before the rows the query produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCut {
    /// The row cap (`max_rows`, or `query.max_paged_rows`).
    MaxRows,
    /// The spool's byte cap (`query.spool_max_bytes`), on a warehouse that keeps no results.
    SpoolMaxBytes,
}

impl PageCut {
    /// The name API responses use.
    pub fn as_str(self) -> &'static str {
        match self {
            PageCut::MaxRows => "max_rows",
            PageCut::SpoolMaxBytes => "spool_max_bytes",
        }
    }
}

/// One page of a paged query.
#[derive(Debug, Clone)]
pub struct PagedOutcome {
    /// The query (on later pages: its id, with no SQL, tables or statistics) and this page's
    /// rows. `result.truncated` is set only on the last page of a result a cap cut.
    pub outcome: QueryOutcome,
    /// Offset of this page's first row in the result.
    pub offset: u64,
    /// The next page's token; `None` on the last page.
    pub next_page_token: Option<String>,
    /// Rows the result holds (within the row cap), when known.
    pub total_rows: Option<u64>,
    /// Why the result stops early, on its last page.
    pub cut: Option<PageCut>,
}

/// What [`QueryService::run_paged`] and [`QueryService::read_page`] need besides the query
/// service: where spooled rows go and the token key.
#[derive(Clone)]
pub struct Paging {
    /// Where spooled rows are kept.
    pub spool: std::sync::Arc<dyn Cache>,
    /// Signs the tokens.
    pub signer: PageSigner,
    /// TTL and caps.
    pub policy: PagingPolicy,
}

/// Fewest rows per spool chunk: a page size of 1 must not mean one cache entry per row.
const MIN_CHUNK_ROWS: u64 = 100;

fn spool_key(id: &str, part: &str) -> String {
    format!("{KEY_PREFIX}pages:{id}:{part}")
}

fn expired(query_id: &str) -> Error {
    Error::NotFound(format!(
        "the result pages of query {query_id} (they expire; run the query again)"
    ))
}

/// The spool's header entry: the result's columns.
#[derive(Serialize, Deserialize)]
struct SpoolHeader {
    columns: Vec<Field>,
}

impl QueryService {
    /// Runs `request` and answers with its first `page_size` rows (fewer if their JSON passes
    /// `query.max_response_bytes`) and, when more remain, a token for the next page. Every
    /// check of [`QueryService::run`] applies, with `query.max_paged_rows` in place of the
    /// response row cap; a dry run answers as usual. The result cache is not used: it keeps
    /// whole results, not pages (BigQuery's own cache still answers).
    pub async fn run_paged(
        &self,
        mut request: QueryRequest,
        principal: &Principal,
        meta: RecordMeta,
        page_size: u64,
    ) -> Result<PagedOutcome> {
        let paging = self.paging()?;
        self.check_page_size(page_size)?;
        if request.dry_run {
            let outcome = self.run_recorded(request, principal, meta).await?;
            return Ok(PagedOutcome {
                outcome,
                offset: 0,
                next_page_token: None,
                total_rows: Some(0),
                cut: None,
            });
        }
        request.max_rows = Some(request.max_rows.unwrap_or(paging.policy.max_rows));
        let mut planned = self
            .plan_bounded(request, principal, paging.policy.max_rows, meta.clone())
            .await?;
        planned.first_batch_rows(page_size);
        let limit = planned.row_limit();
        let cut_at_limit = planned.user_limit().is_none_or(|u| u > limit);
        let datasets = self.token_datasets(planned.referenced_tables());
        let streamed = self.stream_planned(planned, principal, meta).await?;
        let crate::query::StreamedQuery {
            query_id,
            sql,
            referenced_tables,
            mut rows,
            record,
        } = streamed;

        let first = read_first_page(&mut rows, page_size, self.limits().max_response_bytes).await;
        let (page, mut leftover) = match first {
            Ok(read) => read,
            Err(e) => {
                self.finish_stream(record, 0, Some(e.duplicate())).await;
                return Err(e);
            }
        };
        let offset = page.len() as u64;
        let total_known = rows.total_rows.map(|t| t.min(limit));
        let more = match total_known {
            Some(total) => total > offset,
            None => {
                if leftover.is_empty() {
                    match rows.batches.next().await {
                        Some(Ok(batch)) => leftover.extend(batch),
                        Some(Err(e)) => {
                            self.finish_stream(record, offset, Some(e.duplicate()))
                                .await;
                            return Err(e);
                        }
                        None => {}
                    }
                }
                !leftover.is_empty()
            }
        };
        let mut total_rows = total_known;
        let mut cut = None;
        let mut source = None;
        if more {
            if let Some(handle) = rows.result_handle.take() {
                source = Some(Source::Warehouse(handle));
            } else {
                let spooled = spool(
                    paging,
                    &rows.columns,
                    &page,
                    leftover,
                    &mut rows.batches,
                    page_size,
                    limit,
                )
                .await;
                match spooled {
                    Ok(spooled) => {
                        total_rows = Some(spooled.rows);
                        if spooled.rows <= offset {
                            // Too little room to keep anything past the first page.
                            cut = Some(PageCut::SpoolMaxBytes);
                        } else {
                            source = Some(Source::Spool(spooled));
                        }
                    }
                    Err(e) => {
                        self.finish_stream(record, offset, Some(e.duplicate()))
                            .await;
                        return Err(e);
                    }
                }
            }
        } else {
            total_rows = Some(offset);
            if offset >= limit && cut_at_limit {
                cut = Some(PageCut::MaxRows);
            }
        }
        let columns = rows.columns.clone();
        let stats = rows.stats.clone();
        // The warehouse's remaining work (BigQuery's next page, prefetched) stops here.
        drop(rows);
        let next_page_token = match source {
            Some(s) => Some(paging.signer.seal(&PageToken {
                q: query_id.clone(),
                p: principal.id.clone(),
                s,
                o: offset,
                n: page_size,
                e: expiry(paging.policy.ttl),
                l: limit,
                t: cut_at_limit,
                r: total_rows,
                d: datasets,
            })?),
            None => None,
        };
        self.finish_stream(record, total_rows.unwrap_or(offset), None)
            .await;
        let truncated = cut.is_some();
        Ok(PagedOutcome {
            outcome: QueryOutcome {
                query_id,
                sql,
                dry_run: false,
                referenced_tables,
                result: QueryResult {
                    columns,
                    rows: page,
                    truncated,
                    truncated_at_bytes: None,
                    stats,
                },
            },
            offset: 0,
            next_page_token,
            total_rows,
            cut,
        })
    }

    /// The page `token` points at, for `principal`, of query `query_id`: `page_size` rows
    /// (default: the first page's size), fewer if their JSON passes
    /// `query.max_response_bytes`. Nothing runs: the rows come from the warehouse's kept
    /// result or the spool.
    pub async fn read_page(
        &self,
        query_id: &str,
        token: &str,
        page_size: Option<u64>,
        principal: &Principal,
    ) -> Result<PagedOutcome> {
        let paging = self.paging()?;
        let token = paging.signer.open(token)?;
        if token.q != query_id || token.p != principal.id {
            // Someone else's result is as good as absent.
            return Err(Error::NotFound(format!(
                "the result pages of query {query_id}"
            )));
        }
        if Utc::now().timestamp() >= token.e {
            return Err(expired(query_id));
        }
        let scope = self.scope(principal);
        if let Some((project, dataset)) =
            token.d.iter().find(|(p, d)| !scope.allows(p.as_deref(), d))
        {
            let place = match project {
                Some(p) => format!("{p}.{dataset}"),
                None => dataset.clone(),
            };
            return Err(Error::Forbidden(format!(
                "the query read dataset `{place}`, which is no longer in the datasets you may read"
            )));
        }
        let page_size = page_size.unwrap_or(token.n);
        self.check_page_size(page_size)?;
        let want = page_size.min(token.l.saturating_sub(token.o));
        let byte_cap = self.limits().max_response_bytes;
        let (columns, mut rows, total) = match &token.s {
            Source::Warehouse(handle) => {
                let page = self
                    .warehouse()
                    .read_result(handle, token.o, want, byte_cap)
                    .await
                    .map_err(|e| match e {
                        Error::NotFound(_) => expired(query_id),
                        e => e,
                    })?;
                let total = page.total_rows.or(token.r).map(|t| t.min(token.l));
                (page.columns, page.rows, total)
            }
            Source::Spool(spooled) => {
                let (columns, rows) = read_spool(paging, query_id, spooled, token.o, want).await?;
                (columns, rows, Some(spooled.rows))
            }
        };
        let mut result = QueryResult {
            columns,
            rows: Vec::new(),
            truncated: false,
            truncated_at_bytes: None,
            stats: QueryStats::default(),
        };
        rows.truncate(usize::try_from(want).unwrap_or(usize::MAX));
        result.rows = rows;
        if let Some(cap) = byte_cap {
            result.cap_json_bytes(cap);
            // A page cut short is still followed by the rest.
            result.truncated = false;
            result.truncated_at_bytes = None;
        }
        result.make_column_names_unique();
        let offset = token.o;
        let next = offset + result.rows.len() as u64;
        let end = total.unwrap_or(token.l).min(token.l);
        let more = next < end && !result.rows.is_empty();
        let cut = if more {
            None
        } else if matches!(&token.s, Source::Spool(Spooled { cut: true, .. })) {
            Some(PageCut::SpoolMaxBytes)
        } else if next >= token.l && token.t {
            Some(PageCut::MaxRows)
        } else {
            None
        };
        result.truncated = cut.is_some();
        let next_page_token = if more {
            Some(paging.signer.seal(&PageToken {
                o: next,
                r: total,
                ..token
            })?)
        } else {
            None
        };
        Ok(PagedOutcome {
            outcome: QueryOutcome {
                query_id: query_id.to_owned(),
                sql: String::new(),
                dry_run: false,
                referenced_tables: Vec::new(),
                result,
            },
            offset,
            next_page_token,
            total_rows: total,
            cut,
        })
    }

    fn check_page_size(&self, page_size: u64) -> Result<()> {
        let most = self.limits().max_rows_limit;
        if page_size == 0 || page_size > most {
            return Err(Error::InvalidRequest(format!(
                "`page_size` must be between 1 and {most}"
            )));
        }
        Ok(())
    }

    /// The datasets of `tables` as the scope names them: the home project folded away.
    fn token_datasets(&self, tables: &[TableRef]) -> Vec<(Option<String>, String)> {
        let home = self.warehouse().home_project();
        let mut datasets: Vec<(Option<String>, String)> = tables
            .iter()
            .map(|t| {
                let project = t
                    .project
                    .clone()
                    .filter(|p| home.as_ref().is_none_or(|h| !p.eq_ignore_ascii_case(h)));
                (project, t.dataset.to_ascii_lowercase())
            })
            .collect();
        datasets.sort();
        datasets.dedup();
        datasets
    }
}

fn expiry(ttl: Duration) -> i64 {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    Utc::now().timestamp().saturating_add(ttl)
}

/// Reads the stream's first `page_size` rows, stopping early once their JSON passes
/// `byte_cap` (the page is then cut exactly at it, keeping at least one row so a page always
/// moves the reader on); answers the page and the rows read past it.
async fn read_first_page(
    rows: &mut crate::model::RowStream,
    page_size: u64,
    byte_cap: Option<u64>,
) -> Result<(RowBatch, RowBatch)> {
    let want = usize::try_from(page_size).unwrap_or(usize::MAX);
    let cap = byte_cap.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
    let mut page: RowBatch = Vec::new();
    let mut leftover: RowBatch = Vec::new();
    let mut json = 2usize;
    let mut full = false;
    while !full {
        let Some(batch) = rows.batches.next().await else {
            break;
        };
        let mut batch = batch?.into_iter();
        for row in batch.by_ref() {
            let len = crate::model::row_json_len(&rows.columns, &row) + 1;
            if page.len() >= want || (!page.is_empty() && json + len > cap) {
                leftover.push(row);
                full = true;
                break;
            }
            json += len;
            page.push(row);
        }
        leftover.extend(batch);
        full |= page.len() >= want;
    }
    Ok((page, leftover))
}

/// Writes the result into the cache from its first row on: `page` (already read), then
/// `leftover`, then the rest of `batches`, in chunks, within `limit` rows and the spool's
/// byte cap; the header (columns) last, so a spool is readable only once complete.
async fn spool(
    paging: &Paging,
    columns: &[Field],
    page: &[Vec<Value>],
    leftover: RowBatch,
    batches: &mut futures::stream::BoxStream<'static, Result<RowBatch>>,
    page_size: u64,
    limit: u64,
) -> Result<Spooled> {
    // The token carries the query id already; the spool's own id keeps two runs apart.
    let id = uuid::Uuid::now_v7().simple().to_string();
    let chunk_rows = page_size.max(MIN_CHUNK_ROWS);
    let chunk_len = usize::try_from(chunk_rows).unwrap_or(usize::MAX);
    let ttl = paging.policy.ttl;
    let mut writer = SpoolWriter {
        paging,
        id: &id,
        chunk: Vec::with_capacity(chunk_len.min(10_000)),
        chunk_len,
        next_chunk: 0,
        rows: 0,
        bytes: 0,
        cut: false,
    };
    let mut keep = writer.push(page.to_vec(), limit).await? && writer.push(leftover, limit).await?;
    while keep {
        match batches.next().await {
            Some(batch) => keep = writer.push(batch?, limit).await?,
            None => break,
        }
    }
    writer.flush().await?;
    let header = encode(
        &SpoolHeader {
            columns: columns.to_vec(),
        },
        "a spool header",
    )?;
    paging
        .spool
        .set(&spool_key(&id, "h"), header, ttl, &[])
        .await?;
    let (rows, cut) = (writer.rows, writer.cut);
    Ok(Spooled {
        id,
        rows,
        chunk: chunk_rows,
        cut,
    })
}

struct SpoolWriter<'a> {
    paging: &'a Paging,
    id: &'a str,
    chunk: RowBatch,
    chunk_len: usize,
    next_chunk: u64,
    rows: u64,
    bytes: u64,
    cut: bool,
}

impl SpoolWriter<'_> {
    /// Adds `batch`; `false` once nothing more is to be kept (the row cap or the byte cap).
    async fn push(&mut self, batch: RowBatch, limit: u64) -> Result<bool> {
        for row in batch {
            if self.rows >= limit {
                return Ok(false);
            }
            self.chunk.push(row);
            self.rows += 1;
            if self.chunk.len() >= self.chunk_len {
                self.flush().await?;
                if self.cut {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let encoded = encode(&self.chunk, "spooled rows")?;
        let len = encoded.len() as u64;
        if self.bytes + len > self.paging.policy.spool_max_bytes {
            // The chunk does not fit: the spool ends before it.
            self.rows -= self.chunk.len() as u64;
            self.chunk.clear();
            self.cut = true;
            return Ok(());
        }
        self.bytes += len;
        let key = spool_key(self.id, &self.next_chunk.to_string());
        self.paging
            .spool
            .set(&key, encoded, self.paging.policy.ttl, &[])
            .await?;
        self.next_chunk += 1;
        self.chunk.clear();
        Ok(())
    }
}

/// MessagePack of `value` (spool entries and tokens).
fn encode<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<Vec<u8>> {
    rmp_serde::to_vec(value).map_err(|e| Error::internal(format!("encoding {what}"), e))
}

/// A spool entry read back; one that does not decode is a bug, not the caller's mistake.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::internal(format!("decoding {what}"), e))
}

/// Rows `offset..offset + want` of `spool`.
async fn read_spool(
    paging: &Paging,
    query_id: &str,
    spool: &Spooled,
    offset: u64,
    want: u64,
) -> Result<(Vec<Field>, RowBatch)> {
    let Spooled {
        id,
        rows: total,
        chunk,
        ..
    } = spool;
    let (total, chunk) = (*total, *chunk);
    let header = paging
        .spool
        .get(&spool_key(id, "h"))
        .await?
        .ok_or_else(|| expired(query_id))?;
    let header: SpoolHeader = decode(&header, "a spool header")?;
    let end = offset.saturating_add(want).min(total);
    let mut rows = Vec::new();
    if offset >= end || chunk == 0 {
        return Ok((header.columns, rows));
    }
    for index in offset / chunk..=(end - 1) / chunk {
        let bytes = paging
            .spool
            .get(&spool_key(id, &index.to_string()))
            .await?
            .ok_or_else(|| expired(query_id))?;
        let part: RowBatch = decode(&bytes, "spooled rows")?;
        let start = index * chunk;
        let from = usize::try_from(offset.saturating_sub(start)).unwrap_or(usize::MAX);
        let to = usize::try_from(end - start)
            .unwrap_or(usize::MAX)
            .min(part.len());
        if from < to {
            rows.extend(part.into_iter().take(to).skip(from));
        }
    }
    Ok((header.columns, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> PageToken {
        PageToken {
            q: "q1".into(),
            p: Some("key-a".into()),
            s: Source::Spool(Spooled {
                id: "q1-x".into(),
                rows: 250,
                chunk: 100,
                cut: false,
            }),
            o: 100,
            n: 100,
            e: 4_000_000_000,
            l: 1000,
            t: true,
            r: Some(250),
            d: vec![(None, "shop".into())],
        }
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_secret_only() {
        let signer = PageSigner::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let sealed = signer.seal(&token()).unwrap();
        assert!(
            sealed.len() < 200,
            "tokens travel in URLs: {}",
            sealed.len()
        );
        assert_eq!(signer.open(&sealed).unwrap(), token());
        let other = PageSigner::new(b"another secret, just as long....".to_vec());
        assert!(matches!(other.open(&sealed), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let signer = PageSigner::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let sealed = signer.seal(&token()).unwrap();
        let (body, tag) = sealed.split_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        // Move the offset: the MAC no longer matches.
        let mut forged = token();
        forged.o = 200;
        let forged_body = rmp_serde::to_vec(&forged).unwrap();
        assert_ne!(raw, forged_body);
        raw.clone_from(&forged_body);
        let forged_text = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&raw));
        assert!(matches!(
            signer.open(&forged_text),
            Err(Error::InvalidRequest(_))
        ));
        for junk in [
            "",
            ".",
            "abc",
            "a.b",
            &format!("{body}."),
            &format!(".{tag}"),
        ] {
            assert!(
                matches!(signer.open(junk), Err(Error::InvalidRequest(_))),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn page_cuts_have_their_api_names() {
        assert_eq!(PageCut::MaxRows.as_str(), "max_rows");
        assert_eq!(PageCut::SpoolMaxBytes.as_str(), "spool_max_bytes");
    }
}
