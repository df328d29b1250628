//! Arrow → bqai domain conversions: schemas to BigQuery-typed [`Field`]s, cells to [`Value`]s,
//! and BigQuery-style logical sizes of columns (the basis of the bytes estimate).

use std::sync::Arc;

use bqai_core::model::{Field, FieldMode, FieldType, Value};
use chrono::{NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    DurationMicrosecondType, DurationMillisecondType, DurationNanosecondType, DurationSecondType,
    Field as ArrowField, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, IntervalDayTimeType, IntervalMonthDayNanoType, IntervalUnit, IntervalYearMonthType,
    Schema, Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

/// The BigQuery column of an Arrow field: structs become RECORDs with sub-fields, lists become
/// REPEATED columns of their element type.
pub fn field_from_arrow(field: &ArrowField) -> Field {
    let mode = if field.is_nullable() {
        FieldMode::Nullable
    } else {
        FieldMode::Required
    };
    let repeated = |element: &ArrowField| {
        let mut inner = field_from_arrow(element);
        inner.name = field.name().clone();
        inner.mode = FieldMode::Repeated;
        inner
    };
    match field.data_type() {
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _)
        | DataType::ListView(element)
        | DataType::LargeListView(element)
        | DataType::Map(element, _) => repeated(element),
        DataType::Struct(children) => Field {
            name: field.name().clone(),
            field_type: FieldType::Record,
            mode,
            description: None,
            fields: children.iter().map(|c| field_from_arrow(c)).collect(),
        },
        DataType::Dictionary(_, values) => field_from_arrow(&ArrowField::new(
            field.name(),
            values.as_ref().clone(),
            field.is_nullable(),
        )),
        DataType::RunEndEncoded(_, values) => field_from_arrow(&ArrowField::new(
            field.name(),
            values.data_type().clone(),
            field.is_nullable(),
        )),
        other => Field::new(field.name().clone(), scalar_type(other)).with_mode(mode),
    }
}

/// All columns of an Arrow schema.
pub fn fields_from_schema(schema: &Schema) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| field_from_arrow(f))
        .collect()
}

/// The BigQuery name of a non-nested Arrow type.
fn scalar_type(data_type: &DataType) -> FieldType {
    match data_type {
        DataType::Null
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => FieldType::Int64,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => FieldType::Float64,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
            if *p <= 38 && *s <= 9 =>
        {
            FieldType::Numeric
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => FieldType::Bignumeric,
        DataType::Boolean => FieldType::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => FieldType::String,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => FieldType::Bytes,
        DataType::Date32 | DataType::Date64 => FieldType::Date,
        DataType::Time32(_) | DataType::Time64(_) => FieldType::Time,
        DataType::Timestamp(_, None) => FieldType::Datetime,
        DataType::Timestamp(_, Some(_)) => FieldType::Timestamp,
        DataType::Interval(_) | DataType::Duration(_) => FieldType::Interval,
        DataType::Struct(_) => FieldType::Record,
        _ => FieldType::String,
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Converts the first `limit` rows of a batch to rows of values.
pub fn batch_rows(batch: &RecordBatch, limit: usize) -> Vec<Vec<Value>> {
    let columns: Vec<ArrayRef> = batch.columns().iter().map(flatten_encoding).collect();
    let n = batch.num_rows().min(limit);
    (0..n)
        .map(|row| columns.iter().map(|c| value_at(c.as_ref(), row)).collect())
        .collect()
}

/// Dictionary and run-end encodings decoded once per column, not once per cell.
fn flatten_encoding(array: &ArrayRef) -> ArrayRef {
    let target = match array.data_type() {
        DataType::Dictionary(_, values) => values.as_ref().clone(),
        DataType::RunEndEncoded(_, values) => values.data_type().clone(),
        _ => return Arc::clone(array),
    };
    cast(array.as_ref(), &target).unwrap_or_else(|_| Arc::clone(array))
}

/// The value of one cell.
pub fn value_at(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::Int64(i64::from(array.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Value::Int64(i64::from(array.as_primitive::<Int16Type>().value(row))),
        DataType::Int32 => Value::Int64(i64::from(array.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Value::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::Int64(i64::from(array.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Value::Int64(i64::from(array.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Value::Int64(i64::from(array.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            // Beyond i64 the exact digits survive as a NUMERIC string.
            i64::try_from(v).map_or_else(|_| Value::Numeric(v.to_string()), Value::Int64)
        }
        DataType::Float16 => {
            Value::Float64(f64::from(array.as_primitive::<Float16Type>().value(row)))
        }
        DataType::Float32 => {
            Value::Float64(f64::from(array.as_primitive::<Float32Type>().value(row)))
        }
        DataType::Float64 => Value::Float64(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(..) => {
            Value::Numeric(array.as_primitive::<Decimal32Type>().value_as_string(row))
        }
        DataType::Decimal64(..) => {
            Value::Numeric(array.as_primitive::<Decimal64Type>().value_as_string(row))
        }
        DataType::Decimal128(..) => {
            Value::Numeric(array.as_primitive::<Decimal128Type>().value_as_string(row))
        }
        DataType::Decimal256(..) => {
            Value::Numeric(array.as_primitive::<Decimal256Type>().value_as_string(row))
        }
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_owned()),
        DataType::Binary => Value::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Value::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Value::Bytes(array.as_binary_view().value(row).to_vec()),
        DataType::FixedSizeBinary(_) => {
            Value::Bytes(array.as_fixed_size_binary().value(row).to_vec())
        }
        DataType::Date32 => date(
            array.as_primitive::<Date32Type>().value_as_date(row),
            array,
            row,
        ),
        DataType::Date64 => date(
            array.as_primitive::<Date64Type>().value_as_date(row),
            array,
            row,
        ),
        DataType::Time32(TimeUnit::Second) => time(
            array.as_primitive::<Time32SecondType>().value_as_time(row),
            array,
            row,
        ),
        DataType::Time32(_) => time(
            array
                .as_primitive::<Time32MillisecondType>()
                .value_as_time(row),
            array,
            row,
        ),
        DataType::Time64(TimeUnit::Microsecond) => time(
            array
                .as_primitive::<Time64MicrosecondType>()
                .value_as_time(row),
            array,
            row,
        ),
        DataType::Time64(_) => time(
            array
                .as_primitive::<Time64NanosecondType>()
                .value_as_time(row),
            array,
            row,
        ),
        DataType::Timestamp(unit, tz) => {
            let naive = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value_as_datetime(row),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value_as_datetime(row),
                TimeUnit::Microsecond => array
                    .as_primitive::<TimestampMicrosecondType>()
                    .value_as_datetime(row),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value_as_datetime(row),
            };
            timestamp(naive, tz.is_some(), array, row)
        }
        DataType::Interval(IntervalUnit::YearMonth) => Value::Interval(interval_text(
            i64::from(array.as_primitive::<IntervalYearMonthType>().value(row)),
            0,
            0,
        )),
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = array.as_primitive::<IntervalDayTimeType>().value(row);
            Value::Interval(interval_text(
                0,
                i64::from(v.days),
                i128::from(v.milliseconds) * 1_000_000,
            ))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Value::Interval(interval_text(
                i64::from(v.months),
                i64::from(v.days),
                i128::from(v.nanoseconds),
            ))
        }
        DataType::Duration(unit) => {
            let (v, nanos_per_unit) = match unit {
                TimeUnit::Second => (
                    array.as_primitive::<DurationSecondType>().value(row),
                    1_000_000_000,
                ),
                TimeUnit::Millisecond => (
                    array.as_primitive::<DurationMillisecondType>().value(row),
                    1_000_000,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<DurationMicrosecondType>().value(row),
                    1_000,
                ),
                TimeUnit::Nanosecond => {
                    (array.as_primitive::<DurationNanosecondType>().value(row), 1)
                }
            };
            Value::Interval(interval_text(0, 0, i128::from(v) * nanos_per_unit))
        }
        DataType::List(_) => array_value(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => array_value(&array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(..) => array_value(&array.as_fixed_size_list().value(row)),
        DataType::ListView(_) => array_value(&array.as_list_view::<i32>().value(row)),
        DataType::LargeListView(_) => array_value(&array.as_list_view::<i64>().value(row)),
        // A map is an array of (key, value) structs, the way BigQuery models maps.
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            Value::Array((0..entries.len()).map(|i| value_at(&entries, i)).collect())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Struct(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), value_at(c.as_ref(), row)))
                    .collect(),
            )
        }
        DataType::Dictionary(..) | DataType::RunEndEncoded(..) => {
            // Nested encodings (top-level ones are flattened per column in `batch_rows`).
            let one = array.slice(row, 1);
            let flat = flatten_encoding(&one);
            if flat.data_type() == one.data_type() {
                Value::String(display(array, row))
            } else {
                value_at(flat.as_ref(), 0)
            }
        }
        _ => Value::String(display(array, row)),
    }
}

fn array_value(items: &ArrayRef) -> Value {
    let items = flatten_encoding(items);
    Value::Array(
        (0..items.len())
            .map(|i| value_at(items.as_ref(), i))
            .collect(),
    )
}

fn date(d: Option<chrono::NaiveDate>, array: &dyn Array, row: usize) -> Value {
    d.map_or_else(|| Value::String(display(array, row)), Value::Date)
}

fn time(t: Option<NaiveTime>, array: &dyn Array, row: usize) -> Value {
    t.map_or_else(|| Value::String(display(array, row)), Value::Time)
}

fn timestamp(dt: Option<NaiveDateTime>, with_tz: bool, array: &dyn Array, row: usize) -> Value {
    match dt {
        // Arrow stores instants as UTC epoch offsets whatever the zone label says.
        Some(dt) if with_tz => Value::Timestamp(dt.and_utc()),
        Some(dt) => Value::Datetime(dt),
        None => Value::String(display(array, row)),
    }
}

/// Arrow's own text for a cell (the fallback for types bqai has no variant for).
fn display(array: &dyn Array, row: usize) -> String {
    ArrayFormatter::try_new(array, &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or_default()
}

/// BigQuery's canonical INTERVAL text: `Y-M D H:M:S[.F]`, e.g. `1-2 3 4:05:06.5`; years and
/// months share one sign, days and the time part carry their own.
pub fn interval_text(months: i64, days: i64, nanos: i128) -> String {
    let ym_sign = if months < 0 { "-" } else { "" };
    let m = months.unsigned_abs();
    let t_sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let secs = n / 1_000_000_000;
    let micros = (n % 1_000_000_000) / 1_000;
    let (h, mi, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut text = format!("{ym_sign}{}-{} {days} {t_sign}{h}:{mi}:{s}", m / 12, m % 12);
    if micros > 0 {
        let frac = format!("{micros:06}");
        text.push('.');
        text.push_str(frac.trim_end_matches('0'));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Logical sizes
// ---------------------------------------------------------------------------------------------

/// BigQuery's logical size of a column's values: 8 bytes for INT64/FLOAT64/DATE/TIME/
/// DATETIME/TIMESTAMP, 1 for BOOL, 16 for NUMERIC, 32 for BIGNUMERIC, 16 for INTERVAL,
/// 2 + UTF-8 length for STRING, 2 + length for BYTES, the sum of elements for ARRAY and of
/// fields for STRUCT; NULLs count 0.
pub fn logical_size(array: &dyn Array) -> u64 {
    let present = (array.len() - array.null_count()) as u64;
    match array.data_type() {
        DataType::Null => 0,
        DataType::Boolean => present,
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(..) => present * 8,
        DataType::Interval(_) | DataType::Duration(_) => present * 16,
        dt @ (DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..)) => {
            present
                * match scalar_type(dt) {
                    FieldType::Numeric => 16,
                    _ => 32,
                }
        }
        DataType::Utf8 => varlen(array.as_string::<i32>().iter().map(|v| v.map(str::len))),
        DataType::LargeUtf8 => varlen(array.as_string::<i64>().iter().map(|v| v.map(str::len))),
        DataType::Utf8View => varlen(array.as_string_view().iter().map(|v| v.map(str::len))),
        DataType::Binary => varlen(array.as_binary::<i32>().iter().map(|v| v.map(<[u8]>::len))),
        DataType::LargeBinary => {
            varlen(array.as_binary::<i64>().iter().map(|v| v.map(<[u8]>::len)))
        }
        DataType::BinaryView => varlen(array.as_binary_view().iter().map(|v| v.map(<[u8]>::len))),
        DataType::FixedSizeBinary(width) => present * (2 + u64::try_from(*width).unwrap_or(0)),
        DataType::List(_) => list_size(array, |r| array.as_list::<i32>().value(r)),
        DataType::LargeList(_) => list_size(array, |r| array.as_list::<i64>().value(r)),
        DataType::FixedSizeList(..) => list_size(array, |r| array.as_fixed_size_list().value(r)),
        DataType::ListView(_) => list_size(array, |r| array.as_list_view::<i32>().value(r)),
        DataType::LargeListView(_) => list_size(array, |r| array.as_list_view::<i64>().value(r)),
        DataType::Map(..) => {
            list_size(array, |r| -> ArrayRef { Arc::new(array.as_map().value(r)) })
        }
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| logical_size(c.as_ref()))
            .sum(),
        DataType::Dictionary(..) | DataType::RunEndEncoded(..) => {
            let array = array.slice(0, array.len());
            let flat = flatten_encoding(&array);
            if flat.data_type() == array.data_type() {
                present * 8
            } else {
                logical_size(flat.as_ref())
            }
        }
        _ => (0..array.len())
            .filter(|r| array.is_valid(*r))
            .map(|r| 2 + display(array, r).len() as u64)
            .sum(),
    }
}

fn varlen(lengths: impl Iterator<Item = Option<usize>>) -> u64 {
    lengths.flatten().map(|len| 2 + len as u64).sum()
}

fn list_size(array: &dyn Array, row_items: impl Fn(usize) -> ArrayRef) -> u64 {
    (0..array.len())
        .filter(|r| array.is_valid(*r))
        .map(|r| logical_size(row_items(r).as_ref()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_text_is_canonical() {
        assert_eq!(interval_text(14, 3, 0), "1-2 3 0:0:0");
        assert_eq!(
            interval_text(-14, -3, -3_723_500_000_000),
            "-1-2 -3 -1:2:3.5"
        );
        assert_eq!(interval_text(0, 0, 1_000), "0-0 0 0:0:0.000001");
        assert_eq!(interval_text(0, 0, 90_000_000_000_000), "0-0 0 25:0:0");
    }
}
