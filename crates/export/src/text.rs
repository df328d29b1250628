//! The text formats: CSV (RFC 4180 through the `csv` crate: a header line, fields quoted when
//! they hold the delimiter, a quote or a line break, CRLF line ends), NDJSON and a JSON array.
//!
//! Values take their API form ([`Value::to_json`]): in JSON exactly as `/api/v1/query` sends
//! them, in CSV as that form's text (strings unquoted, NULL an empty field, arrays and structs
//! as JSON text).

use std::io::Write;

use bqai_core::model::{Field, Value};

use crate::{ExportError, Format, Options, cell_text};

pub(crate) enum TextEncoder<W: Write + Send> {
    Csv(Box<csv::Writer<W>>),
    Json {
        out: W,
        names: Vec<String>,
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
                Ok(Self::Json {
                    out,
                    names,
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
                let mut record = csv::StringRecord::new();
                for row in rows {
                    record.clear();
                    for value in row {
                        record.push_field(&cell_text(value));
                    }
                    w.write_record(&record).map_err(csv_error)?;
                }
            }
            Self::Json {
                out,
                names,
                lines,
                first,
            } => {
                for row in rows {
                    let object: serde_json::Map<String, serde_json::Value> = names
                        .iter()
                        .zip(row)
                        .map(|(name, value)| (name.clone(), value.to_json()))
                        .collect();
                    if !*lines && !*first {
                        out.write_all(b",")?;
                    }
                    if !*lines {
                        out.write_all(b"\n")?;
                    }
                    serde_json::to_writer(&mut *out, &object).map_err(|e| {
                        if e.is_io() {
                            ExportError::Io(e.into())
                        } else {
                            ExportError::encoder(
                                if *lines { Format::Ndjson } else { Format::Json },
                                e,
                            )
                        }
                    })?;
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

fn csv_error(e: csv::Error) -> ExportError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ExportError::Io(io),
        other => ExportError::encoder(Format::Csv, format!("{other:?}")),
    }
}
