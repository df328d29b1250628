//! Parquet through the arrow/parquet writer of the DataFusion version in use: each batch of
//! rows becomes an Arrow record batch whose types come from the result schema, and the
//! writer flushes a row group every [`Options::parquet_row_group_rows`] rows.
//!
//! | result type | Parquet (Arrow) type |
//! |---|---|
//! | INT64 | INT64 |
//! | FLOAT64 | DOUBLE |
//! | NUMERIC | DECIMAL(38, 9) (BigQuery's NUMERIC) |
//! | BIGNUMERIC | DECIMAL(76, 38) (BigQuery's BIGNUMERIC) |
//! | BOOL | BOOLEAN |
//! | STRING, GEOGRAPHY (WKT), JSON, INTERVAL, RANGE | STRING |
//! | BYTES | BINARY |
//! | DATE | DATE |
//! | TIME | TIME (microseconds) |
//! | DATETIME | TIMESTAMP (microseconds, not adjusted to UTC) |
//! | TIMESTAMP | TIMESTAMP (microseconds, UTC) |
//! | RECORD | a group (Arrow struct), kept nested |
//! | REPEATED mode | a LIST of the element type |

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder,
    Float64Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, i256};
use arrow_schema::{DataType, Field as ArrowField, Fields, Schema, SchemaRef, TimeUnit};
use bqai_core::model::{Field, FieldMode, FieldType, Value};
use chrono::{NaiveDate, Timelike as _};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{ExportError, Format, Options};

/// NUMERIC's precision and scale (BigQuery's).
const NUMERIC: (u8, i8) = (38, 9);
/// BIGNUMERIC's precision and scale (BigQuery's).
const BIGNUMERIC: (u8, i8) = (76, 38);

pub(crate) struct ParquetEncoder<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Vec<Field>,
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub(crate) fn new(columns: &[Field], options: &Options, out: W) -> Result<Self, ExportError> {
        let schema: SchemaRef = Arc::new(Schema::new(
            columns.iter().map(arrow_field).collect::<Vec<_>>(),
        ));
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(options.parquet_row_group_rows.max(1)))
            .set_created_by(format!("bqai {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties))
            .map_err(parquet_error)?;
        Ok(Self {
            writer,
            schema,
            columns: columns.to_vec(),
        })
    }

    pub(crate) fn write_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), ExportError> {
        if rows.is_empty() {
            return Ok(());
        }
        let arrays = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let values: Vec<&Value> = rows
                    .iter()
                    .map(|row| row.get(i).unwrap_or(&Value::Null))
                    .collect();
                column_array(field, &values)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .map_err(|e| ExportError::encoder(Format::Parquet, e))?;
        self.writer.write(&batch).map_err(parquet_error)
    }

    pub(crate) fn finish(self) -> Result<W, ExportError> {
        self.writer.into_inner().map_err(parquet_error)
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ExportError {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => ExportError::Io(*io),
                Err(other) => ExportError::encoder(Format::Parquet, other),
            }
        }
        other => ExportError::encoder(Format::Parquet, other),
    }
}

/// The Arrow field of a result column (nullable: BigQuery's REQUIRED is not kept, a result's
/// column may still hold NULLs from outer joins).
fn arrow_field(field: &Field) -> ArrowField {
    ArrowField::new(&field.name, data_type(field), true)
}

fn data_type(field: &Field) -> DataType {
    let element = element_type(field);
    if field.mode == FieldMode::Repeated {
        DataType::List(Arc::new(ArrowField::new("item", element, true)))
    } else {
        element
    }
}

/// The type of one value of the column (of one element, for a REPEATED column).
fn element_type(field: &Field) -> DataType {
    match field.field_type {
        FieldType::Int64 => DataType::Int64,
        FieldType::Float64 => DataType::Float64,
        FieldType::Numeric => DataType::Decimal128(NUMERIC.0, NUMERIC.1),
        FieldType::Bignumeric => DataType::Decimal256(BIGNUMERIC.0, BIGNUMERIC.1),
        FieldType::Bool => DataType::Boolean,
        FieldType::String
        | FieldType::Geography
        | FieldType::Json
        | FieldType::Interval
        | FieldType::Range => DataType::Utf8,
        FieldType::Bytes => DataType::Binary,
        FieldType::Date => DataType::Date32,
        FieldType::Time => DataType::Time64(TimeUnit::Microsecond),
        FieldType::Datetime => DataType::Timestamp(TimeUnit::Microsecond, None),
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        FieldType::Record => DataType::Struct(struct_fields(field)),
    }
}

fn struct_fields(field: &Field) -> Fields {
    field.fields.iter().map(arrow_field).collect()
}

/// The Arrow array of one column's values (one per row).
fn column_array(field: &Field, values: &[&Value]) -> Result<ArrayRef, ExportError> {
    if field.mode != FieldMode::Repeated {
        return element_array(field, values);
    }
    let mut items: Vec<&Value> = Vec::new();
    let mut offsets = Vec::with_capacity(values.len() + 1);
    let mut valid = Vec::with_capacity(values.len());
    offsets.push(0i32);
    for value in values {
        match value {
            Value::Array(elements) => {
                items.extend(elements.iter());
                valid.push(true);
            }
            Value::Null => valid.push(false),
            other => return Err(mismatch(field, "an ARRAY", other)),
        }
        let end = i32::try_from(items.len()).map_err(|_| {
            ExportError::encoder(Format::Parquet, "more than 2^31 array elements in a batch")
        })?;
        offsets.push(end);
    }
    let element = Field {
        mode: FieldMode::Nullable,
        ..field.clone()
    };
    let values = element_array(&element, &items)?;
    let item = Arc::new(ArrowField::new("item", element_type(field), true));
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    ListArray::try_new(item, OffsetBuffer::new(offsets.into()), values, nulls)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| ExportError::encoder(Format::Parquet, e))
}

/// The Arrow array of single (not repeated) values of `field`'s type.
#[allow(clippy::cast_precision_loss)] // an INT64 in a FLOAT64 column (a UNION's coercion)
fn element_array(field: &Field, values: &[&Value]) -> Result<ArrayRef, ExportError> {
    let n = values.len();
    macro_rules! build {
        ($builder:expr, $($pattern:pat => $append:expr),+ $(,)?) => {{
            let mut b = $builder;
            for value in values {
                match value {
                    Value::Null => b.append_null(),
                    $($pattern => b.append_value($append),)+
                    other => return Err(mismatch(field, field.field_type.as_str(), other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match field.field_type {
        FieldType::Int64 => build!(Int64Builder::with_capacity(n), Value::Int64(i) => *i),
        FieldType::Float64 => build!(
            Float64Builder::with_capacity(n),
            Value::Float64(f) => *f,
            Value::Int64(i) => *i as f64,
        ),
        FieldType::Numeric => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(NUMERIC.0, NUMERIC.1)
                .map_err(|e| ExportError::encoder(Format::Parquet, e))?;
            for value in values {
                match value {
                    Value::Null => b.append_null(),
                    Value::Numeric(s) => b.append_value(
                        scaled_digits(s, NUMERIC)
                            .and_then(|d| d.parse::<i128>().ok())
                            .ok_or_else(|| out_of_range(field, s, "NUMERIC"))?,
                    ),
                    Value::Int64(i) => b.append_value(i128::from(*i) * 1_000_000_000),
                    other => return Err(mismatch(field, "NUMERIC", other)),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Bignumeric => {
            let mut b = Decimal256Builder::with_capacity(n)
                .with_precision_and_scale(BIGNUMERIC.0, BIGNUMERIC.1)
                .map_err(|e| ExportError::encoder(Format::Parquet, e))?;
            for value in values {
                match value {
                    Value::Null => b.append_null(),
                    Value::Numeric(s) => b.append_value(
                        scaled_digits(s, BIGNUMERIC)
                            .and_then(|d| i256::from_string(&d))
                            .ok_or_else(|| out_of_range(field, s, "BIGNUMERIC"))?,
                    ),
                    other => return Err(mismatch(field, "BIGNUMERIC", other)),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Bool => build!(BooleanBuilder::with_capacity(n), Value::Bool(b) => *b),
        FieldType::String
        | FieldType::Geography
        | FieldType::Json
        | FieldType::Interval
        | FieldType::Range => build!(
            StringBuilder::with_capacity(n, n * 16),
            Value::String(s)
            | Value::Geography(s)
            | Value::Json(s)
            | Value::Interval(s)
            | Value::Range(s)
            | Value::Numeric(s) => s.as_str(),
        ),
        FieldType::Bytes => build!(
            BinaryBuilder::with_capacity(n, n * 16),
            Value::Bytes(b) => b.as_slice(),
        ),
        FieldType::Date => build!(
            Date32Builder::with_capacity(n),
            Value::Date(d) => days_since_epoch(*d),
        ),
        FieldType::Time => build!(
            Time64MicrosecondBuilder::with_capacity(n),
            Value::Time(t) => i64::from(t.num_seconds_from_midnight()) * 1_000_000
                + i64::from(t.nanosecond() % 1_000_000_000) / 1_000,
        ),
        FieldType::Datetime => build!(
            TimestampMicrosecondBuilder::with_capacity(n),
            Value::Datetime(dt) => dt.and_utc().timestamp_micros(),
        ),
        FieldType::Timestamp => {
            let array = build!(
                TimestampMicrosecondBuilder::with_capacity(n),
                Value::Timestamp(ts) => ts.timestamp_micros(),
            );
            let array = array
                .as_any()
                .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
                .map(|a| a.clone().with_timezone("UTC"))
                .ok_or_else(|| ExportError::encoder(Format::Parquet, "timestamp array"))?;
            Arc::new(array)
        }
        FieldType::Record => struct_array(field, values)?,
    })
}

fn struct_array(field: &Field, values: &[&Value]) -> Result<ArrayRef, ExportError> {
    let mut valid = Vec::with_capacity(values.len());
    let mut children: Vec<Vec<&Value>> = vec![Vec::with_capacity(values.len()); field.fields.len()];
    for value in values {
        match value {
            Value::Null => {
                valid.push(false);
                for child in &mut children {
                    child.push(&Value::Null);
                }
            }
            Value::Struct(members) => {
                valid.push(true);
                for (i, (sub, child)) in field.fields.iter().zip(&mut children).enumerate() {
                    // By position, as the schema lists them; by name if the shapes differ.
                    let member = members
                        .get(i)
                        .filter(|(name, _)| name == &sub.name)
                        .or_else(|| members.iter().find(|(name, _)| name == &sub.name))
                        .map_or(&Value::Null, |(_, v)| v);
                    child.push(member);
                }
            }
            other => return Err(mismatch(field, "a STRUCT", other)),
        }
    }
    let arrays = field
        .fields
        .iter()
        .zip(&children)
        .map(|(sub, values)| column_array(sub, values))
        .collect::<Result<Vec<_>, _>>()?;
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    let array = if field.fields.is_empty() {
        StructArray::new_empty_fields(values.len(), nulls)
    } else {
        StructArray::try_new(struct_fields(field), arrays, nulls)
            .map_err(|e| ExportError::encoder(Format::Parquet, e))?
    };
    Ok(Arc::new(array))
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from(d.signed_duration_since(epoch).num_days()).unwrap_or(i32::MAX)
}

/// A decimal string as the integer of its digits at `scale` (`"-1.5"` at scale 9 is
/// `"-1500000000"`), or `None` when it has more fractional digits than the scale, more
/// digits than the precision, or is not a plain decimal.
fn scaled_digits(s: &str, (precision, scale): (u8, i8)) -> Option<String> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).ok()?;
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || frac.len() > scale
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    if int.len() + scale > usize::from(precision) {
        return None;
    }
    let mut digits = String::with_capacity(int.len() + scale);
    digits.push_str(int);
    digits.push_str(frac);
    digits.extend(std::iter::repeat_n('0', scale - frac.len()));
    let digits = digits.trim_start_matches('0');
    Some(match (digits.is_empty(), negative) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{digits}"),
        (false, false) => digits.to_owned(),
    })
}

fn mismatch(field: &Field, expected: &str, got: &Value) -> ExportError {
    ExportError::Value {
        column: field.name.clone(),
        message: format!("expected {expected}, got {}", kind(got)),
    }
}

fn out_of_range(field: &Field, value: &str, ty: &str) -> ExportError {
    ExportError::Value {
        column: field.name.clone(),
        message: format!("{value} does not fit {ty}"),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Bool(_) => "BOOL",
        Value::Int64(_) => "INT64",
        Value::Float64(_) => "FLOAT64",
        Value::Numeric(_) => "NUMERIC",
        Value::String(_) => "STRING",
        Value::Bytes(_) => "BYTES",
        Value::Date(_) => "DATE",
        Value::Time(_) => "TIME",
        Value::Datetime(_) => "DATETIME",
        Value::Timestamp(_) => "TIMESTAMP",
        Value::Geography(_) => "GEOGRAPHY",
        Value::Json(_) => "JSON",
        Value::Interval(_) => "INTERVAL",
        Value::Range(_) => "RANGE",
        Value::Array(_) => "ARRAY",
        Value::Struct(_) => "STRUCT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_scaled_exactly() {
        assert_eq!(scaled_digits("1.5", NUMERIC).as_deref(), Some("1500000000"));
        assert_eq!(
            scaled_digits("-0.000000001", NUMERIC).as_deref(),
            Some("-1")
        );
        assert_eq!(scaled_digits("0", NUMERIC).as_deref(), Some("0"));
        assert_eq!(
            scaled_digits("99999999999999999999999999999.999999999", NUMERIC).as_deref(),
            Some("99999999999999999999999999999999999999")
        );
        assert_eq!(scaled_digits("1.0000000001", NUMERIC), None);
        assert_eq!(scaled_digits("1e5", NUMERIC), None);
        assert_eq!(scaled_digits("", NUMERIC), None);
        assert_eq!(
            scaled_digits("100000000000000000000000000000", NUMERIC),
            None,
            "30 integer digits do not fit NUMERIC's 29"
        );
    }
}
