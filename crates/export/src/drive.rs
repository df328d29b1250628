//! The driver: a result's stream of row batches into an [`Encoder`], on a blocking thread.
//!
//! Encoding is CPU work (quoting, compressing, zipping) and the writers it feeds may block
//! (a response body with a full buffer, a file), so it runs on tokio's blocking pool. The
//! batches reach it through a channel of one, and the writer blocks while its reader is
//! behind, so memory stays at a few batches whatever the result.

use std::io::Write;

use bqai_core::model::RowStream;
use futures::StreamExt as _;

use crate::{Encoder, ExportError, Format, Options, Written};

/// Why an export stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// The rows did not come: the warehouse failed or timed out mid-result.
    #[error(transparent)]
    Source(bqai_core::Error),
    /// The file could not be written: the reader went away, the disk is full, a value did
    /// not fit its column.
    #[error(transparent)]
    Encode(#[from] ExportError),
}

impl ExportFailure {
    /// The error as the core reports it (history, the API envelope): a source error as it
    /// came; a write that failed because the writer's side went away as `Unavailable`
    /// ("the export's destination"), anything else as internal.
    pub fn into_core(self) -> bqai_core::Error {
        match self {
            ExportFailure::Source(e) => e,
            ExportFailure::Encode(ExportError::Io(io)) => {
                bqai_core::Error::unavailable("the export's destination", io)
            }
            ExportFailure::Encode(other) => {
                bqai_core::Error::internal("encoding the export", other)
            }
        }
    }
}

/// Encodes every batch of `rows` as `format` into `out` on a blocking thread; `progress` is
/// called after each batch with the rows and bytes written so far. A task on the caller's
/// runtime pulls the batches and hands them over one at a time; when writing fails the
/// stream is dropped, which stops the warehouse's work.
pub async fn encode_stream<W, P>(
    rows: RowStream,
    format: Format,
    options: Options,
    out: W,
    mut progress: P,
) -> Result<Written, ExportFailure>
where
    W: Write + Send + 'static,
    P: FnMut(u64, u64) + Send + 'static,
{
    let RowStream {
        columns,
        mut batches,
        ..
    } = rows;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let pump = tokio::spawn(async move {
        while let Some(batch) = batches.next().await {
            let failed = batch.is_err();
            if tx.send(batch).await.is_err() || failed {
                break;
            }
        }
    });
    // Aborting the pump when this future is dropped drops the stream with it.
    let _pump = tokio_util::task::AbortOnDropHandle::new(pump);
    tokio::task::spawn_blocking(move || {
        let mut encoder = Encoder::new(format, &columns, &options, out)?;
        while let Some(batch) = rx.blocking_recv() {
            let batch = batch.map_err(ExportFailure::Source)?;
            encoder.write_batch(&batch)?;
            progress(encoder.rows(), encoder.bytes());
        }
        let written = encoder.finish()?;
        progress(written.rows, written.bytes);
        Ok(written)
    })
    .await
    .map_err(|join| {
        ExportFailure::Source(bqai_core::Error::internal(
            "the export's encoder thread",
            join,
        ))
    })?
}
