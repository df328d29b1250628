//! XLSX through `rust_xlsxwriter` in its constant-memory mode: each row goes to a temporary
//! file as it is written, and the workbook (a zip) is assembled into the writer at the end —
//! so the first byte leaves after the last row, and a large workbook belongs in an export job.
//!
//! Cells keep their types where Excel has them: numbers as numbers, BOOL as booleans, DATE,
//! DATETIME, TIME and TIMESTAMP (in UTC; Excel has no zones) as Excel dates with a date format.
//! What Excel cannot hold exactly is text: INT64 beyond ±(2^53−1) and NUMERIC/BIGNUMERIC (an
//! Excel number is a double), NaN and the infinities, dates outside Excel's years 1900–9999.
//! A string longer than Excel's 32,767 characters per cell is cut there. Past
//! [`MAX_DATA_ROWS_PER_SHEET`] data rows the rows continue on a new sheet under the same
//! header.

use std::io::Write;

use bqai_core::model::{Field, MAX_SAFE_JSON_INTEGER, Value};
use chrono::Datelike as _;
use rust_xlsxwriter::{Format as CellFormat, Workbook, Worksheet, XlsxError};

use crate::{ExportError, Format, Options};

/// Excel's rows per sheet (1,048,576) less the header row.
pub const MAX_DATA_ROWS_PER_SHEET: u32 = 1_048_575;

/// Excel's longest string in a cell, in characters.
const MAX_CELL_CHARS: usize = 32_767;

struct Formats {
    header: CellFormat,
    date: CellFormat,
    datetime: CellFormat,
    time: CellFormat,
}

pub(crate) struct XlsxEncoder<W: Write + Send> {
    workbook: Workbook,
    out: W,
    names: Vec<String>,
    formats: Formats,
    /// The sheet rows go to.
    sheet: usize,
    /// Data rows on it so far.
    rows_on_sheet: u32,
    rows_per_sheet: u32,
}

impl<W: Write + Send> XlsxEncoder<W> {
    pub(crate) fn new(columns: &[Field], options: &Options, out: W) -> Result<Self, ExportError> {
        let mut encoder = Self {
            workbook: Workbook::new(),
            out,
            names: columns.iter().map(|c| c.name.clone()).collect(),
            formats: Formats {
                header: CellFormat::new().set_bold(),
                date: CellFormat::new().set_num_format("yyyy-mm-dd"),
                datetime: CellFormat::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
                time: CellFormat::new().set_num_format("hh:mm:ss"),
            },
            sheet: 0,
            rows_on_sheet: 0,
            rows_per_sheet: options
                .xlsx_rows_per_sheet
                .clamp(1, MAX_DATA_ROWS_PER_SHEET),
        };
        encoder.start_sheet().map_err(xlsx_error)?;
        Ok(encoder)
    }

    /// Adds a sheet and writes the header on it.
    fn start_sheet(&mut self) -> Result<(), XlsxError> {
        let sheet = self.workbook.add_worksheet_with_constant_memory()?;
        for (col, name) in self.names.iter().enumerate() {
            sheet.write_string_with_format(0, col_num(col)?, name, &self.formats.header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        self.sheet = self.workbook.worksheets().len() - 1;
        self.rows_on_sheet = 0;
        Ok(())
    }

    pub(crate) fn write_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), ExportError> {
        for row in rows {
            if self.rows_on_sheet == self.rows_per_sheet {
                self.start_sheet().map_err(xlsx_error)?;
            }
            self.rows_on_sheet += 1;
            let at = self.rows_on_sheet;
            let sheet = self
                .workbook
                .worksheet_from_index(self.sheet)
                .map_err(xlsx_error)?;
            for (col, value) in row.iter().enumerate() {
                write_cell(
                    sheet,
                    at,
                    col_num(col).map_err(xlsx_error)?,
                    value,
                    &self.formats,
                )
                .map_err(xlsx_error)?;
            }
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<W, ExportError> {
        self.workbook
            .save_to_writer(&mut self.out)
            .map_err(xlsx_error)?;
        Ok(self.out)
    }
}

fn col_num(col: usize) -> Result<u16, XlsxError> {
    u16::try_from(col).map_err(|_| XlsxError::RowColumnLimitError)
}

fn write_cell(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: &Value,
    formats: &Formats,
) -> Result<(), XlsxError> {
    match value {
        Value::Null => {}
        Value::Bool(b) => {
            sheet.write_boolean(row, col, *b)?;
        }
        Value::Int64(i) if (-MAX_SAFE_JSON_INTEGER..=MAX_SAFE_JSON_INTEGER).contains(i) => {
            #[allow(clippy::cast_precision_loss)] // exact within ±(2^53−1)
            sheet.write_number(row, col, *i as f64)?;
        }
        Value::Float64(f) if f.is_finite() => {
            sheet.write_number(row, col, *f)?;
        }
        Value::Date(d) if in_excel_years(d.year()) => {
            sheet.write_datetime_with_format(row, col, d, &formats.date)?;
        }
        Value::Datetime(dt) if in_excel_years(dt.year()) => {
            sheet.write_datetime_with_format(row, col, dt, &formats.datetime)?;
        }
        Value::Timestamp(ts) if in_excel_years(ts.year()) => {
            sheet.write_datetime_with_format(row, col, ts.naive_utc(), &formats.datetime)?;
        }
        Value::Time(t) => {
            sheet.write_datetime_with_format(row, col, t, &formats.time)?;
        }
        other => {
            let text = other.to_text();
            let text = match text.char_indices().nth(MAX_CELL_CHARS) {
                Some((cut, _)) => &text[..cut],
                None => text.as_str(),
            };
            sheet.write_string(row, col, text)?;
        }
    }
    Ok(())
}

/// The years an Excel date can hold.
fn in_excel_years(year: i32) -> bool {
    (1900..=9999).contains(&year)
}

fn xlsx_error(e: XlsxError) -> ExportError {
    if let XlsxError::IoError(io) = e {
        return ExportError::Io(io);
    }
    // The writer's error may come wrapped (the zip writer's).
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return ExportError::Io(std::io::Error::new(io.kind(), io.to_string()));
        }
        source = inner.source();
    }
    ExportError::encoder(Format::Xlsx, e)
}
