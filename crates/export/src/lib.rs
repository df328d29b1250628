//! bqai-export: query results into files — CSV, NDJSON, JSON, XLSX and Parquet — written batch
//! by batch into any [`std::io::Write`], so a result of any size goes out at the memory of one
//! batch (plus, for Parquet, one row group).
//!
//! The encoders are synchronous: encoding is CPU work (quoting, compression, zip), so callers
//! run it where blocking is fine (a blocking thread of the HTTP server, an export job's
//! worker) and hand it a writer that ships the bytes on (a response body, a file).
//!
//! Every core [`Value`] has one defined encoding per format; see `docs/API.md` ("Exports") for
//! the table and the tests of each format for the proof.

use std::io::Write;

use bqai_core::model::{Field, Value};

mod destination;
mod drive;
pub mod jobs;
mod parquet;
mod text;
mod xlsx;

pub use destination::{Bucket, Destination, FileLabels, PendingFile, Stored};
pub use drive::{ExportFailure, encode_stream};
pub use xlsx::MAX_DATA_ROWS_PER_SHEET;

/// A file format an export can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    Json,
    /// An Excel workbook.
    Xlsx,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// Every format, in the order the API lists them.
    pub const ALL: [Format; 5] = [
        Format::Csv,
        Format::Ndjson,
        Format::Json,
        Format::Xlsx,
        Format::Parquet,
    ];

    /// The name the API uses (`csv`, `ndjson`, `json`, `xlsx`, `parquet`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Json => "json",
            Format::Xlsx => "xlsx",
            Format::Parquet => "parquet",
        }
    }

    /// Parses the API name, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// The file name extension (the API name).
    pub fn extension(self) -> &'static str {
        self.as_str()
    }

    /// The media type of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::Json => "application/json",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// Whether the bytes are already compressed (a zip, Parquet's pages): compressing the
    /// response again only costs CPU.
    pub fn is_compressed(self) -> bool {
        matches!(self, Format::Xlsx | Format::Parquet)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Choices a caller may make about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The CSV field delimiter (one ASCII character, not a quote or a line break).
    pub delimiter: u8,
    /// Data rows per XLSX sheet before the next sheet starts (at most Excel's
    /// [`MAX_DATA_ROWS_PER_SHEET`]; smaller in tests).
    pub xlsx_rows_per_sheet: u32,
    /// Rows per Parquet row group (what the writer holds in memory before it writes one).
    pub parquet_row_group_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            delimiter: b',',
            xlsx_rows_per_sheet: MAX_DATA_ROWS_PER_SHEET,
            parquet_row_group_rows: 128 * 1024,
        }
    }
}

impl Options {
    /// Checks the delimiter: one ASCII character that is not a quote, a line break or NUL.
    pub fn with_delimiter(mut self, delimiter: &str) -> Result<Self, String> {
        match delimiter.as_bytes() {
            [b] if b.is_ascii() && !matches!(b, b'"' | b'\r' | b'\n' | 0) => {
                self.delimiter = *b;
                Ok(self)
            }
            _ => Err(
                "`delimiter` must be one ASCII character other than a quote or a line break"
                    .to_owned(),
            ),
        }
    }
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer refused the bytes (the client went away, the disk is full).
    #[error("writing the file: {0}")]
    Io(#[from] std::io::Error),
    /// A value does not fit its column's declared type.
    #[error("column `{column}`: {message}")]
    Value {
        /// The column.
        column: String,
        /// What was wrong.
        message: String,
    },
    /// The format's library refused the data.
    #[error("{format} encoder: {message}")]
    Encoder {
        /// The format.
        format: Format,
        /// The library's message.
        message: String,
    },
}

impl ExportError {
    pub(crate) fn encoder(format: Format, e: impl std::fmt::Display) -> Self {
        Self::Encoder {
            format,
            message: e.to_string(),
        }
    }
}

/// The result of [`Encoder::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Data rows written.
    pub rows: u64,
    /// Bytes written into the writer.
    pub bytes: u64,
}

/// Writes rows into a file of one format, batch by batch.
pub struct Encoder<W: Write + Send> {
    inner: Inner<CountingWriter<W>>,
    rows: u64,
    /// Bytes that went into the writer so far.
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The writer's first error: libraries that report a failed write in their own words
    /// (parquet's) still fail as [`ExportError::Io`].
    write_error: WriteError,
}

type WriteError = std::sync::Arc<std::sync::Mutex<Option<std::io::Error>>>;

enum Inner<W: Write + Send> {
    Text(text::TextEncoder<W>),
    Xlsx(Box<xlsx::XlsxEncoder<W>>),
    Parquet(Box<parquet::ParquetEncoder<W>>),
}

impl<W: Write + Send> Encoder<W> {
    /// An encoder of rows with `columns` into `out`; text formats write their header now.
    pub fn new(
        format: Format,
        columns: &[Field],
        options: &Options,
        out: W,
    ) -> Result<Self, ExportError> {
        let write_error = WriteError::default();
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let out = CountingWriter {
            inner: out,
            bytes: std::sync::Arc::clone(&bytes),
            error: std::sync::Arc::clone(&write_error),
        };
        let inner = match format {
            Format::Csv | Format::Ndjson | Format::Json => {
                Inner::Text(text::TextEncoder::new(format, columns, options, out)?)
            }
            Format::Xlsx => Inner::Xlsx(Box::new(xlsx::XlsxEncoder::new(columns, options, out)?)),
            Format::Parquet => {
                let encoder = parquet::ParquetEncoder::new(columns, options, out);
                Inner::Parquet(Box::new(io_first(&write_error, encoder)?))
            }
        };
        Ok(Self {
            inner,
            rows: 0,
            bytes,
            write_error,
        })
    }

    /// Writes one batch of rows (each with one value per column).
    pub fn write_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), ExportError> {
        let written = match &mut self.inner {
            Inner::Text(e) => e.write_batch(rows),
            Inner::Xlsx(e) => e.write_batch(rows),
            Inner::Parquet(e) => e.write_batch(rows),
        };
        io_first(&self.write_error, written)?;
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes that went into the writer so far (XLSX: nearly none before [`Encoder::finish`],
    /// which assembles the workbook).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends the file (footer, zip directory, closing bracket), flushes the writer and says
    /// what was written.
    pub fn finish(self) -> Result<Written, ExportError> {
        let finished = match self.inner {
            Inner::Text(e) => e.finish(),
            Inner::Xlsx(e) => e.finish(),
            Inner::Parquet(e) => e.finish(),
        };
        let mut out = io_first(&self.write_error, finished)?;
        out.flush()?;
        Ok(Written {
            rows: self.rows,
            bytes: self.bytes.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// An encoder's outcome, as the writer's error when the writer failed.
fn io_first<T>(error: &WriteError, outcome: Result<T, ExportError>) -> Result<T, ExportError> {
    match outcome {
        Err(ExportError::Io(e)) => Err(ExportError::Io(e)),
        Err(other) => match error.lock().ok().and_then(|mut e| e.take()) {
            Some(io) => Err(ExportError::Io(io)),
            None => Err(other),
        },
        ok => ok,
    }
}

/// Counts the bytes that pass into the writer and keeps its first error.
pub(crate) struct CountingWriter<W> {
    inner: W,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    error: WriteError,
}

impl<W> CountingWriter<W> {
    fn keep<T>(&self, outcome: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &outcome
            && let Ok(mut first) = self.error.lock()
            && first.is_none()
        {
            *first = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        outcome
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf);
        let n = self.keep(written)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.inner.flush();
        self.keep(flushed)
    }
}

/// A file name for an export: `stem` made safe for a `Content-Disposition` header and a file
/// system (letters, digits, `-`, `_`, `.`; at most 100 characters), with the format's
/// extension added unless it is there.
pub fn file_name(stem: &str, format: Format) -> String {
    let mut safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let trimmed = safe.trim_matches(['.', '_']).to_owned();
    safe = if trimmed.is_empty() {
        "export".to_owned()
    } else {
        trimmed
    };
    let ext = format!(".{}", format.extension());
    if !safe.to_ascii_lowercase().ends_with(&ext) {
        safe.push_str(&ext);
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_their_api_names() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            assert_eq!(Format::parse(&f.as_str().to_uppercase()), Some(f));
        }
        assert_eq!(Format::parse("xls"), None);
    }

    #[test]
    fn delimiters_are_single_safe_ascii_characters() {
        assert_eq!(
            Options::default().with_delimiter(";").map(|o| o.delimiter),
            Ok(b';')
        );
        assert_eq!(
            Options::default().with_delimiter("\t").map(|o| o.delimiter),
            Ok(b'\t')
        );
        for bad in ["", ";;", "\"", "\n", "é"] {
            assert!(Options::default().with_delimiter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_names_are_safe_and_carry_the_extension() {
        assert_eq!(file_name("revenue 2024", Format::Csv), "revenue_2024.csv");
        assert_eq!(file_name("r.csv", Format::Csv), "r.csv");
        assert_eq!(
            file_name("../../etc/passwd", Format::Json),
            "etc_passwd.json"
        );
        assert_eq!(file_name("\"; x=y", Format::Xlsx), "x_y.xlsx");
        assert_eq!(file_name("", Format::Parquet), "export.parquet");
        assert!(file_name(&"a".repeat(500), Format::Csv).len() <= 104);
    }
}
