//! The text formats: CSV (RFC 4180 through the `csv` crate: a header line, fields quoted when
//! they hold the delimiter, a quote or a line break, CRLF line ends), NDJSON and a JSON array.
//!
//! Values take their API form ([`Value::to_json`]): in JSON exactly as `/api/v1/query` sends
//! them, in CSV as that form's text (strings unquoted, NULL an empty field, arrays and structs
//! as JSON text).

use std::io::Write;

use bqai_core::model::{Field, Value};

use crate::{ExportError, Format, Options};

pub(crate) enum TextEncoder<W: Write + Send> {
    Csv(Box<csv::Writer<W>>),
    Json {
        out: W,
        /// Each column's key, escaped once: `"name":`.
        keys: Vec<Vec<u8>>,
        /// NDJSON (a line per row) or one array.
        lines: bool,
        first: bool,
    },
}

impl<W: Write + Send> TextEncoder<W> {
    pub(crate) fn new(
        format: Format,
        columns: &[Field],
        options: &Options,
        mut out: W,
    ) -> Result<Self, ExportError> {
        let names = columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        match format {
            Format::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .delimiter(options.delimiter)
                    .terminator(csv::Terminator::CRLF)
                    .quote_style(csv::QuoteStyle::Necessary)
                    .from_writer(out);
                w.write_record(&names).map_err(csv_error)?;
                Ok(Self::Csv(Box::new(w)))
            }
            Format::Ndjson | Format::Json => {
                let lines = format == Format::Ndjson;
                if !lines {
                    out.write_all(b"[")?;
                }
                let keys = names
                    .iter()
                    .map(|name| {
                        let mut key = serde_json::to_vec(name)
                            .map_err(|e| ExportError::encoder(format, e))?;
                        key.push(b':');
                        Ok(key)
                    })
                    .collect::<Result<_, ExportError>>()?;
                Ok(Self::Json {
                    out,
                    keys,
                    lines,
                    first: true,
                })
            }
            Format::Xlsx | Format::Parquet => {
                Err(ExportError::encoder(format, "not a text format"))
            }
        }
    }

    pub(crate) fn write_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), ExportError> {
        match self {
            Self::Csv(w) => {
                let mut scratch = String::new();
                for row in rows {
                    for value in row {
                        write_csv_field(w, value, &mut scratch).map_err(csv_error)?;
                    }
                    // Ends the record.
                    w.write_record(None::<&[u8]>).map_err(csv_error)?;
                }
            }
            Self::Json {
                out,
                keys,
                lines,
                first,
            } => {
                let format = if *lines { Format::Ndjson } else { Format::Json };
                for row in rows {
                    if !*lines {
                        out.write_all(if *first { b"\n" } else { b",\n" })?;
                    }
                    out.write_all(b"{")?;
                    for (i, (key, value)) in keys.iter().zip(row).enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(key)?;
                        write_json_value(out, value).map_err(|e| json_error(e, format))?;
                    }
                    out.write_all(b"}")?;
                    if *lines {
                        out.write_all(b"\n")?;
                    }
                    *first = false;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<W, ExportError> {
        match self {
            Self::Csv(w) => w
                .into_inner()
                .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string()))),
            Self::Json { mut out, lines, .. } => {
                if !lines {
                    out.write_all(b"\n]\n")?;
                }
                Ok(out)
            }
        }
    }
}

/// One CSV field: the value's API text ([`Value::to_text`]), written without building a string
/// for the common types (text as it is, integers and booleans formatted in place).
fn write_csv_field<W: Write>(
    w: &mut csv::Writer<W>,
    value: &Value,
    scratch: &mut String,
) -> csv::Result<()> {
    use std::fmt::Write as _;
    match value {
        Value::Null => w.write_field(""),
        Value::Bool(b) => w.write_field(if *b { "true" } else { "false" }),
        Value::String(s)
        | Value::Numeric(s)
        | Value::Geography(s)
        | Value::Interval(s)
        | Value::Range(s) => w.write_field(s),
        Value::Int64(i) => {
            scratch.clear();
            // Writing into a String cannot fail.
            let _ = write!(scratch, "{i}");
            w.write_field(scratch.as_bytes())
        }
        other => w.write_field(other.to_text()),
    }
}

/// One value in its API JSON form ([`Value::to_json`]), without building a
/// `serde_json::Value` for the common types.
fn write_json_value<W: Write>(out: &mut W, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Null => out.write_all(b"null").map_err(serde_json::Error::io),
        Value::Bool(b) => out
            .write_all(if *b { b"true" } else { b"false" })
            .map_err(serde_json::Error::io),
        Value::Int64(i)
            if (-bqai_core::model::MAX_SAFE_JSON_INTEGER
                ..=bqai_core::model::MAX_SAFE_JSON_INTEGER)
                .contains(i) =>
        {
            write!(out, "{i}").map_err(serde_json::Error::io)
        }
        Value::String(s)
        | Value::Numeric(s)
        | Value::Geography(s)
        | Value::Interval(s)
        | Value::Range(s) => serde_json::to_writer(out, s),
        other => serde_json::to_writer(out, &other.to_json()),
    }
}

fn json_error(e: serde_json::Error, format: Format) -> ExportError {
    if e.is_io() {
        ExportError::Io(e.into())
    } else {
        ExportError::encoder(format, e)
    }
}

fn csv_error(e: csv::Error) -> ExportError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ExportError::Io(io),
        other => ExportError::encoder(Format::Csv, format!("{other:?}")),
    }
}
