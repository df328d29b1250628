//! Every core value type through every format, read back with a reader of that format (the
//! `csv` crate, serde_json, the parquet crate's Arrow reader, calamine for XLSX).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use arrow_array::cast::AsArray as _;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int64Type, Time64MicrosecondType,
    TimestampMicrosecondType,
};
use arrow_array::{Array as _, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bqai_core::model::{Field, FieldMode, FieldType, Value};
use bqai_export::{Encoder, Format, Options, Written};
use calamine::{Data, Reader as _, Xlsx, open_workbook_from_rs};
use chrono::{NaiveDate, NaiveTime, TimeZone as _, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn columns() -> Vec<Field> {
    let mut point = Field::new("point", FieldType::Record);
    point.fields = vec![
        Field::new("x", FieldType::Int64),
        Field::new("label", FieldType::String),
    ];
    vec![
        Field::new("i", FieldType::Int64),
        Field::new("big", FieldType::Int64),
        Field::new("f", FieldType::Float64),
        Field::new("n", FieldType::Numeric),
        Field::new("bn", FieldType::Bignumeric),
        Field::new("s", FieldType::String),
        Field::new("b", FieldType::Bool),
        Field::new("bytes", FieldType::Bytes),
        Field::new("d", FieldType::Date),
        Field::new("t", FieldType::Time),
        Field::new("dt", FieldType::Datetime),
        Field::new("ts", FieldType::Timestamp),
        Field::new("geo", FieldType::Geography),
        Field::new("j", FieldType::Json),
        Field::new("iv", FieldType::Interval),
        Field::new("r", FieldType::Range),
        Field::new("tags", FieldType::String).with_mode(FieldMode::Repeated),
        point,
    ]
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A row of ordinary values, one with the edges (a quote, a comma and a line break in a
/// string, an INT64 beyond 2^53, NaN, a date before Excel's 1900), and one of NULLs.
fn rows() -> Vec<Vec<Value>> {
    let full = vec![
        Value::Int64(42),
        Value::Int64(9_007_199_254_740_993),
        Value::Float64(2.5),
        Value::Numeric("12345.678900001".into()),
        Value::Numeric("-0.00000000000000000000000000000000000001".into()),
        Value::String("plain".into()),
        Value::Bool(true),
        Value::Bytes(vec![0, 1, 2, 255]),
        Value::Date(date(2024, 2, 29)),
        Value::Time(NaiveTime::from_hms_micro_opt(13, 45, 30, 250_000).unwrap()),
        Value::Datetime(date(2024, 3, 1).and_hms_opt(8, 30, 0).unwrap()),
        Value::Timestamp(Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59).unwrap()),
        Value::Geography("POINT(1 2)".into()),
        Value::Json(r#"{"a":[1,2]}"#.into()),
        Value::Interval("1-2 3 4:5:6".into()),
        Value::Range("[2024-01-01, 2024-02-01)".into()),
        Value::Array(vec![Value::String("x".into()), Value::String("y".into())]),
        Value::Struct(vec![
            ("x".into(), Value::Int64(7)),
            ("label".into(), Value::String("seven".into())),
        ]),
    ];
    let edges = vec![
        Value::Int64(-1),
        Value::Int64(i64::MIN),
        Value::Float64(f64::NAN),
        Value::Numeric("0".into()),
        Value::Numeric("1".into()),
        Value::String("say \"hi\", then\r\nleave; ünïcödé".into()),
        Value::Bool(false),
        Value::Bytes(Vec::new()),
        Value::Date(date(1800, 1, 1)),
        Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
        Value::Datetime(date(1999, 12, 31).and_hms_opt(23, 59, 59).unwrap()),
        Value::Timestamp(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()),
        Value::Geography("LINESTRING(0 0, 1 1)".into()),
        Value::Json("[]".into()),
        Value::Interval("0-0 0 0:0:0".into()),
        Value::Range("[UNBOUNDED, UNBOUNDED)".into()),
        Value::Array(Vec::new()),
        Value::Struct(vec![
            ("x".into(), Value::Null),
            ("label".into(), Value::String(String::new())),
        ]),
    ];
    let nulls = vec![Value::Null; columns().len()];
    vec![full, edges, nulls]
}

fn encode(format: Format, options: &Options, batches: &[Vec<Vec<Value>>]) -> (Vec<u8>, Written) {
    let mut out = Vec::new();
    let mut encoder = Encoder::new(format, &columns(), options, &mut out).unwrap();
    for batch in batches {
        encoder.write_batch(batch).unwrap();
    }
    let written = encoder.finish().unwrap();
    (out, written)
}

fn encode_all(format: Format) -> Vec<u8> {
    let rows = rows();
    // Two batches: what spans a batch boundary must come out as one file.
    let (out, written) = encode(
        format,
        &Options::default(),
        &[rows[..1].to_vec(), rows[1..].to_vec()],
    );
    assert_eq!(written.rows, 3);
    assert_eq!(written.bytes, out.len() as u64);
    out
}

#[test]
fn csv_has_a_header_and_every_value_as_its_api_text() {
    let out = encode_all(Format::Csv);
    let mut reader = csv::ReaderBuilder::new().from_reader(out.as_slice());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let names: Vec<String> = columns().into_iter().map(|c| c.name).collect();
    assert_eq!(header, names);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    for (record, row) in records.iter().zip(rows()) {
        let expected: Vec<String> = row.iter().map(Value::to_text).collect();
        let got: Vec<String> = record.iter().map(str::to_owned).collect();
        assert_eq!(got, expected);
    }
    // Spot checks of the API text: exact integers, base64 bytes, RFC 3339 timestamps,
    // arrays and structs as JSON, NULL as an empty field.
    assert_eq!(&records[0][1], "9007199254740993");
    assert_eq!(&records[0][7], "AAEC/w==");
    assert_eq!(&records[0][11], "2024-12-31T23:59:59Z");
    assert_eq!(&records[0][16], r#"["x","y"]"#);
    assert_eq!(&records[0][17], r#"{"x":7,"label":"seven"}"#);
    assert_eq!(&records[1][2], "NaN");
    assert!(records[2].iter().all(str::is_empty));
    // RFC 4180: CRLF line ends, a field with a quote, a comma or a line break quoted, its
    // quotes doubled.
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("i,big,f,n,bn,s,"), "{text}");
    assert!(text.contains("\r\n42,"), "{text}");
    assert!(
        text.contains("\"say \"\"hi\"\", then\r\nleave; ünïcödé\""),
        "{text}"
    );
}

#[test]
fn csv_takes_the_delimiter_asked_for() {
    let options = Options::default().with_delimiter(";").unwrap();
    let (out, _) = encode(Format::Csv, &options, &[rows()]);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("i;big;f;n;bn;s;"), "{text}");
    // A comma no longer needs quotes; the semicolon in the string does.
    assert!(
        text.contains("\"say \"\"hi\"\", then\r\nleave; ünïcödé\""),
        "{text}"
    );
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    assert_eq!(reader.records().count(), 3);
}

#[test]
fn ndjson_is_one_api_object_per_line() {
    let out = encode_all(Format::Ndjson);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, row) in lines.iter().zip(rows()) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(got, api_object(&row));
    }
    assert!(text.ends_with("}\n"));
}

#[test]
fn json_is_one_array_of_api_objects() {
    let out = encode_all(Format::Json);
    let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let expected: Vec<serde_json::Value> = rows().iter().map(|r| api_object(r)).collect();
    assert_eq!(got, serde_json::Value::Array(expected));
    // Keys keep the column order.
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(r#"{"i":42,"big":"9007199254740993","f":2.5,"#),
        "{text}"
    );
}

#[test]
fn an_empty_result_is_a_valid_file_in_every_format() {
    for format in Format::ALL {
        let (out, written) = encode(format, &Options::default(), &[]);
        assert_eq!(written.rows, 0, "{format}");
        match format {
            Format::Csv => assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1),
            Format::Ndjson => assert!(out.is_empty()),
            Format::Json => {
                assert_eq!(
                    serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
                    serde_json::json!([])
                );
            }
            Format::Parquet => assert_eq!(
                read_parquet(out)
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum::<usize>(),
                0
            ),
            Format::Xlsx => {
                let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(out)).unwrap();
                let range = book.worksheet_range("Sheet1").unwrap();
                assert_eq!(range.height(), 1, "the header alone");
            }
        }
    }
}

fn api_object(row: &[Value]) -> serde_json::Value {
    serde_json::Value::Object(
        columns()
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect(),
    )
}

fn read_parquet(bytes: Vec<u8>) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn parquet_keeps_the_result_types_and_values_nested_included() {
    let out = encode_all(Format::Parquet);
    let batches = read_parquet(out);
    assert_eq!(batches.len(), 1, "one row group, read as one batch");
    let batch = batches[0].clone();
    assert_eq!(batch.num_rows(), 3);
    let schema = batch.schema();
    let ty = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
    assert_eq!(ty("i"), DataType::Int64);
    assert_eq!(ty("f"), DataType::Float64);
    assert_eq!(ty("n"), DataType::Decimal128(38, 9));
    assert_eq!(ty("bn"), DataType::Decimal256(76, 38));
    assert_eq!(ty("s"), DataType::Utf8);
    assert_eq!(ty("b"), DataType::Boolean);
    assert_eq!(ty("bytes"), DataType::Binary);
    assert_eq!(ty("d"), DataType::Date32);
    assert_eq!(ty("t"), DataType::Time64(TimeUnit::Microsecond));
    assert_eq!(ty("dt"), DataType::Timestamp(TimeUnit::Microsecond, None));
    assert_eq!(
        ty("ts"),
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert!(matches!(ty("tags"), DataType::List(item) if *item.data_type() == DataType::Utf8));
    assert!(matches!(ty("point"), DataType::Struct(fields) if fields.len() == 2));

    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    let ints = col("big");
    let ints = ints.as_primitive::<Int64Type>();
    assert_eq!(ints.value(0), 9_007_199_254_740_993);
    assert_eq!(ints.value(1), i64::MIN);
    assert!(ints.is_null(2));
    assert!(col("f").as_primitive::<Float64Type>().value(1).is_nan());
    let numeric = col("n");
    let numeric = numeric.as_primitive::<Decimal128Type>();
    assert_eq!(numeric.value_as_string(0), "12345.678900001");
    assert_eq!(numeric.value_as_string(1), "0.000000000");
    let big = col("bn");
    assert_eq!(
        big.as_primitive::<Decimal256Type>().value_as_string(0),
        "-0.00000000000000000000000000000000000001"
    );
    assert_eq!(
        col("s").as_string::<i32>().value(1),
        "say \"hi\", then\r\nleave; ünïcödé"
    );
    assert!(col("b").as_boolean().value(0));
    assert_eq!(col("bytes").as_binary::<i32>().value(0), &[0, 1, 2, 255]);
    assert_eq!(
        col("d").as_primitive::<Date32Type>().value_as_date(1),
        Some(date(1800, 1, 1))
    );
    assert_eq!(
        col("t").as_primitive::<Time64MicrosecondType>().value(0),
        (13 * 3600 + 45 * 60 + 30) * 1_000_000 + 250_000
    );
    assert_eq!(
        col("dt")
            .as_primitive::<TimestampMicrosecondType>()
            .value_as_datetime(0),
        Some(date(2024, 3, 1).and_hms_opt(8, 30, 0).unwrap())
    );
    assert_eq!(
        col("ts")
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp_micros()
    );
    assert_eq!(col("geo").as_string::<i32>().value(0), "POINT(1 2)");
    assert_eq!(col("j").as_string::<i32>().value(0), r#"{"a":[1,2]}"#);
    let tags = col("tags");
    let tags = tags.as_list::<i32>();
    assert_eq!(
        tags.value(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert_eq!(tags.value(1).len(), 0);
    assert!(tags.is_null(2));
    let point = col("point");
    let point = point.as_struct();
    assert_eq!(point.column(0).as_primitive::<Int64Type>().value(0), 7);
    assert!(point.column(0).is_null(1));
    assert_eq!(point.column(1).as_string::<i32>().value(0), "seven");
    assert!(point.is_null(2));
}

#[test]
fn parquet_writes_row_groups_of_the_configured_size() {
    let options = Options {
        parquet_row_group_rows: 2,
        ..Options::default()
    };
    let (out, _) = encode(Format::Parquet, &options, &[rows(), rows()]);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out)).unwrap();
    assert_eq!(builder.metadata().num_row_groups(), 3);
    assert_eq!(builder.metadata().file_metadata().num_rows(), 6);
}

#[test]
fn parquet_refuses_a_value_that_does_not_fit_its_column() {
    let mut out = Vec::new();
    let mut encoder = Encoder::new(
        Format::Parquet,
        &[Field::new("n", FieldType::Int64)],
        &Options::default(),
        &mut out,
    )
    .unwrap();
    let err = encoder
        .write_batch(&[vec![Value::String("x".into())]])
        .unwrap_err();
    assert_eq!(err.to_string(), "column `n`: expected INT64, got STRING");
}

#[test]
fn xlsx_cells_keep_excel_types_and_exact_digits() {
    // The row of NULLs in the middle: it writes no cell, so at the end a reader would not see it.
    let [full, edges, nulls]: [Vec<Value>; 3] = rows().try_into().unwrap();
    let (out, _) = encode(
        Format::Xlsx,
        &Options::default(),
        &[vec![full, nulls], vec![edges]],
    );
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(out)).unwrap();
    assert_eq!(book.sheet_names(), ["Sheet1"]);
    let range = book.worksheet_range("Sheet1").unwrap();
    let rows: Vec<&[Data]> = range.rows().collect();
    assert_eq!(rows.len(), 4, "header and three rows");
    let names: Vec<String> = columns().into_iter().map(|c| c.name).collect();
    assert_eq!(
        rows[0].iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        names
    );
    let (full, nulls, edges) = (rows[1], rows[2], rows[3]);
    assert_eq!(full[0], Data::Float(42.0));
    // Beyond 2^53 and NUMERIC: text, every digit kept.
    assert_eq!(full[1], Data::String("9007199254740993".into()));
    assert_eq!(full[2], Data::Float(2.5));
    assert_eq!(full[3], Data::String("12345.678900001".into()));
    assert_eq!(full[5], Data::String("plain".into()));
    assert_eq!(full[6], Data::Bool(true));
    assert_eq!(full[7], Data::String("AAEC/w==".into()));
    let when = |cell: &Data| match cell {
        Data::DateTime(dt) => dt.as_datetime().unwrap(),
        other => panic!("not a date: {other:?}"),
    };
    assert_eq!(
        when(&full[8]),
        date(2024, 2, 29).and_hms_opt(0, 0, 0).unwrap()
    );
    assert_eq!(
        when(&full[10]),
        date(2024, 3, 1).and_hms_opt(8, 30, 0).unwrap()
    );
    assert_eq!(
        when(&full[11]),
        date(2024, 12, 31).and_hms_opt(23, 59, 59).unwrap()
    );
    match &full[9] {
        Data::DateTime(t) => {
            assert!((t.as_f64() - (13.0 * 3600.0 + 45.0 * 60.0 + 30.25) / 86400.0).abs() < 1e-9)
        }
        other => panic!("not a time: {other:?}"),
    }
    assert_eq!(full[12], Data::String("POINT(1 2)".into()));
    assert_eq!(full[13], Data::String(r#"{"a":[1,2]}"#.into()));
    assert_eq!(full[16], Data::String(r#"["x","y"]"#.into()));
    assert_eq!(full[17], Data::String(r#"{"x":7,"label":"seven"}"#.into()));
    assert_eq!(edges[1], Data::String(i64::MIN.to_string()));
    assert_eq!(edges[2], Data::String("NaN".into()));
    assert_eq!(
        edges[5],
        Data::String("say \"hi\", then\r\nleave; ünïcödé".into())
    );
    // Before Excel's calendar: text.
    assert_eq!(edges[8], Data::String("1800-01-01".into()));
    assert!(nulls.iter().all(|c| *c == Data::Empty));
}

#[test]
fn xlsx_continues_on_a_new_sheet_under_the_same_header() {
    let options = Options {
        xlsx_rows_per_sheet: 2,
        ..Options::default()
    };
    let batch: Vec<Vec<Value>> = (0..5)
        .map(|i| {
            let mut row = vec![Value::Null; columns().len()];
            row[0] = Value::Int64(i);
            row
        })
        .collect();
    let (out, written) = encode(
        Format::Xlsx,
        &options,
        &[batch[..3].to_vec(), batch[3..].to_vec()],
    );
    assert_eq!(written.rows, 5);
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(out)).unwrap();
    assert_eq!(book.sheet_names(), ["Sheet1", "Sheet2", "Sheet3"]);
    let mut seen = Vec::new();
    for name in book.sheet_names() {
        let range = book.worksheet_range(&name).unwrap();
        let rows: Vec<&[Data]> = range.rows().collect();
        assert_eq!(
            rows[0][0],
            Data::String("i".into()),
            "{name} has the header"
        );
        seen.extend(rows[1..].iter().map(|r| r[0].clone()));
    }
    assert_eq!(
        seen,
        (0..5)
            .map(|i| Data::Float(f64::from(i)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn xlsx_cuts_a_string_at_excels_cell_limit() {
    let long = "é".repeat(40_000);
    let mut out = Vec::new();
    let mut encoder = Encoder::new(
        Format::Xlsx,
        &[Field::new("s", FieldType::String)],
        &Options::default(),
        &mut out,
    )
    .unwrap();
    encoder.write_batch(&[vec![Value::String(long)]]).unwrap();
    encoder.finish().unwrap();
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(out)).unwrap();
    let range = book.worksheet_range("Sheet1").unwrap();
    let cell = range.get((1, 0)).unwrap().to_string();
    assert_eq!(cell.chars().count(), 32_767);
}

#[test]
fn a_failing_writer_is_an_io_error() {
    struct Refusing;
    impl std::io::Write for Refusing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    for format in Format::ALL {
        let outcome =
            Encoder::new(format, &columns(), &Options::default(), Refusing).and_then(|mut e| {
                for _ in 0..200 {
                    e.write_batch(&rows())?;
                }
                e.finish()
            });
        assert!(
            matches!(outcome, Err(bqai_export::ExportError::Io(_))),
            "{format}: {outcome:?}"
        );
    }
}
