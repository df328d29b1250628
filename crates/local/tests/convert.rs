//! Arrow → bqai conversions for every Arrow type the engine can produce, directly and through
//! SQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod common;

use std::sync::Arc;

use bqai_core::model::{FieldMode, FieldType, Value};
use bqai_local::convert::{field_from_arrow, logical_size, value_at};
use chrono::{DateTime, NaiveDate, NaiveTime};
use common::{demo, run};
use datafusion::arrow::array::*;
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Checks a one-row array (plus a NULL second row) against a value and a BigQuery type.
fn check(array: ArrayRef, expected: Value, field_type: FieldType) {
    let dt = array.data_type().clone();
    assert_eq!(value_at(array.as_ref(), 0), expected, "{dt}");
    if array.len() > 1 {
        assert_eq!(value_at(array.as_ref(), 1), Value::Null, "{dt} NULL");
    }
    let field = field_from_arrow(&Field::new("c", dt.clone(), true));
    assert_eq!(field.field_type, field_type, "{dt}");
}

#[test]
fn scalars_convert() {
    let cases: Vec<(ArrayRef, Value, FieldType)> = vec![
        (
            Arc::new(Int8Array::from(vec![Some(-8), None])),
            Value::Int64(-8),
            FieldType::Int64,
        ),
        (
            Arc::new(Int16Array::from(vec![Some(-16), None])),
            Value::Int64(-16),
            FieldType::Int64,
        ),
        (
            Arc::new(Int32Array::from(vec![Some(-32), None])),
            Value::Int64(-32),
            FieldType::Int64,
        ),
        (
            Arc::new(Int64Array::from(vec![Some(i64::MIN), None])),
            Value::Int64(i64::MIN),
            FieldType::Int64,
        ),
        (
            Arc::new(UInt8Array::from(vec![Some(8), None])),
            Value::Int64(8),
            FieldType::Int64,
        ),
        (
            Arc::new(UInt16Array::from(vec![Some(16), None])),
            Value::Int64(16),
            FieldType::Int64,
        ),
        (
            Arc::new(UInt32Array::from(vec![Some(u32::MAX), None])),
            Value::Int64(i64::from(u32::MAX)),
            FieldType::Int64,
        ),
        (
            Arc::new(UInt64Array::from(vec![Some(7), None])),
            Value::Int64(7),
            FieldType::Int64,
        ),
        (
            Arc::new(UInt64Array::from(vec![Some(u64::MAX), None])),
            Value::Numeric("18446744073709551615".into()),
            FieldType::Int64,
        ),
        (
            cast(
                &Float32Array::from(vec![Some(1.5), None]),
                &DataType::Float16,
            )
            .unwrap(),
            Value::Float64(1.5),
            FieldType::Float64,
        ),
        (
            Arc::new(Float32Array::from(vec![Some(0.25), None])),
            Value::Float64(0.25),
            FieldType::Float64,
        ),
        (
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None])),
            Value::Float64(f64::NAN),
            FieldType::Float64,
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![Some(-12_345), None])
                    .with_precision_and_scale(10, 3)
                    .unwrap(),
            ),
            Value::Numeric("-12.345".into()),
            FieldType::Numeric,
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![Some(1), None])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            Value::Numeric("0.0000000001".into()),
            FieldType::Bignumeric,
        ),
        (
            Arc::new(
                Decimal256Array::from(vec![Some(i256::from_i128(10i128.pow(30))), None])
                    .with_precision_and_scale(76, 2)
                    .unwrap(),
            ),
            Value::Numeric("10000000000000000000000000000.00".into()),
            FieldType::Bignumeric,
        ),
        (
            Arc::new(StringArray::from(vec![Some("héllo"), None])),
            Value::String("héllo".into()),
            FieldType::String,
        ),
        (
            Arc::new(LargeStringArray::from(vec![Some("large"), None])),
            Value::String("large".into()),
            FieldType::String,
        ),
        (
            Arc::new(StringViewArray::from(vec![
                Some("a view longer than twelve bytes"),
                None,
            ])),
            Value::String("a view longer than twelve bytes".into()),
            FieldType::String,
        ),
        (
            Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01"[..]), None])),
            Value::Bytes(vec![0, 1]),
            FieldType::Bytes,
        ),
        (
            Arc::new(LargeBinaryArray::from(vec![Some(&b"lb"[..]), None])),
            Value::Bytes(b"lb".to_vec()),
            FieldType::Bytes,
        ),
        (
            Arc::new(BinaryViewArray::from(vec![Some(&b"bv"[..]), None])),
            Value::Bytes(b"bv".to_vec()),
            FieldType::Bytes,
        ),
        (
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    vec![Some(vec![9u8, 8]), None].into_iter(),
                    2,
                )
                .unwrap(),
            ),
            Value::Bytes(vec![9, 8]),
            FieldType::Bytes,
        ),
        (
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Value::Bool(true),
            FieldType::Bool,
        ),
        (
            Arc::new(Date32Array::from(vec![Some(19_723), None])),
            Value::Date(date(2024, 1, 1)),
            FieldType::Date,
        ),
        (
            Arc::new(Date64Array::from(vec![Some(1_704_067_200_000), None])),
            Value::Date(date(2024, 1, 1)),
            FieldType::Date,
        ),
        (
            Arc::new(Time32SecondArray::from(vec![Some(3_661), None])),
            Value::Time(NaiveTime::from_hms_opt(1, 1, 1).unwrap()),
            FieldType::Time,
        ),
        (
            Arc::new(Time32MillisecondArray::from(vec![Some(3_661_500), None])),
            Value::Time(NaiveTime::from_hms_milli_opt(1, 1, 1, 500).unwrap()),
            FieldType::Time,
        ),
        (
            Arc::new(Time64MicrosecondArray::from(vec![Some(1), None])),
            Value::Time(NaiveTime::from_hms_micro_opt(0, 0, 0, 1).unwrap()),
            FieldType::Time,
        ),
        (
            Arc::new(Time64NanosecondArray::from(vec![Some(2_000), None])),
            Value::Time(NaiveTime::from_hms_nano_opt(0, 0, 0, 2_000).unwrap()),
            FieldType::Time,
        ),
        (
            Arc::new(TimestampSecondArray::from(vec![Some(1_700_000_000), None])),
            Value::Datetime(
                DateTime::from_timestamp(1_700_000_000, 0)
                    .unwrap()
                    .naive_utc(),
            ),
            FieldType::Datetime,
        ),
        (
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1_700_000_000_123),
                None,
            ])),
            Value::Datetime(
                DateTime::from_timestamp_millis(1_700_000_000_123)
                    .unwrap()
                    .naive_utc(),
            ),
            FieldType::Datetime,
        ),
        (
            Arc::new(
                TimestampNanosecondArray::from(vec![Some(1_000), None]).with_timezone("+02:00"),
            ),
            Value::Timestamp(DateTime::from_timestamp_micros(1).unwrap()),
            FieldType::Timestamp,
        ),
        (
            Arc::new(TimestampMicrosecondArray::from(vec![Some(5), None]).with_timezone("UTC")),
            Value::Timestamp(DateTime::from_timestamp_micros(5).unwrap()),
            FieldType::Timestamp,
        ),
        (
            Arc::new(IntervalYearMonthArray::from(vec![Some(14), None])),
            Value::Interval("1-2 0 0:0:0".into()),
            FieldType::Interval,
        ),
        (
            Arc::new(IntervalDayTimeArray::from(vec![
                Some(IntervalDayTime::new(3, 1_500)),
                None,
            ])),
            Value::Interval("0-0 3 0:0:1.5".into()),
            FieldType::Interval,
        ),
        (
            Arc::new(IntervalMonthDayNanoArray::from(vec![
                Some(IntervalMonthDayNano::new(-1, 2, 3_600_000_000_000)),
                None,
            ])),
            Value::Interval("-0-1 2 1:0:0".into()),
            FieldType::Interval,
        ),
        (
            Arc::new(DurationMillisecondArray::from(vec![Some(-90_000), None])),
            Value::Interval("0-0 0 -0:1:30".into()),
            FieldType::Interval,
        ),
        (Arc::new(NullArray::new(1)), Value::Null, FieldType::Int64),
    ];
    for (array, value, field_type) in cases {
        if let Value::Float64(f) = value
            && f.is_nan()
        {
            assert!(matches!(value_at(array.as_ref(), 0), Value::Float64(v) if v.is_nan()));
            continue;
        }
        check(array, value, field_type);
    }
}

#[test]
fn nested_and_encoded_types_convert() {
    // List<Int64>, LargeList<Utf8>, FixedSizeList<Int32>: REPEATED columns of the element type.
    let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
    ]);
    check(
        Arc::new(list),
        Value::Array(vec![Value::Int64(1), Value::Null, Value::Int64(3)]),
        FieldType::Int64,
    );
    let large = LargeListArray::new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::new(ScalarBuffer::from(vec![0i64, 2, 2])),
        Arc::new(StringArray::from(vec!["a", "b"])),
        Some(vec![true, false].into()),
    );
    check(
        Arc::new(large),
        Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        FieldType::String,
    );
    let fixed = FixedSizeListArray::from_iter_primitive::<Int32Type, _, _>(
        vec![Some(vec![Some(7), Some(8)]), None],
        2,
    );
    let field = field_from_arrow(&Field::new("f", fixed.data_type().clone(), true));
    assert_eq!(
        (field.field_type, field.mode),
        (FieldType::Int64, FieldMode::Repeated)
    );
    check(
        Arc::new(fixed),
        Value::Array(vec![Value::Int64(7), Value::Int64(8)]),
        FieldType::Int64,
    );

    // Struct → RECORD with sub-fields; List<Struct> → REPEATED RECORD.
    let st = StructArray::from(vec![
        (
            Arc::new(Field::new("x", DataType::Int64, false)),
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("y", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("s"), None])) as ArrayRef,
        ),
    ]);
    assert_eq!(
        value_at(&st, 1),
        Value::Struct(vec![
            ("x".into(), Value::Int64(2)),
            ("y".into(), Value::Null)
        ])
    );
    let field = field_from_arrow(&Field::new("s", st.data_type().clone(), true));
    assert_eq!(field.field_type, FieldType::Record);
    let sub: Vec<(&str, FieldType, FieldMode)> = field
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.field_type, f.mode))
        .collect();
    assert_eq!(
        sub,
        [
            ("x", FieldType::Int64, FieldMode::Required),
            ("y", FieldType::String, FieldMode::Nullable)
        ]
    );
    let list_of_struct = Field::new_list(
        "ls",
        Field::new_list_field(st.data_type().clone(), true),
        true,
    );
    let field = field_from_arrow(&list_of_struct);
    assert_eq!(
        (field.name.as_str(), field.field_type, field.mode),
        ("ls", FieldType::Record, FieldMode::Repeated)
    );
    assert_eq!(field.fields.len(), 2);

    // Dictionaries read as their values.
    let dict: DictionaryArray<Int32Type> =
        vec![Some("red"), None, Some("red")].into_iter().collect();
    assert_eq!(value_at(&dict, 2), Value::String("red".into()));
    assert_eq!(value_at(&dict, 1), Value::Null);
    let field = field_from_arrow(&Field::new("d", dict.data_type().clone(), true));
    assert_eq!(field.field_type, FieldType::String);
    assert_eq!(logical_size(&dict), 2 * (2 + 3));

    // Anything else falls back to Arrow's text (a union here).
    let union = UnionArray::try_new(
        UnionFields::try_new(vec![0], vec![Field::new("i", DataType::Int32, true)]).unwrap(),
        ScalarBuffer::from(vec![0i8]),
        None,
        vec![Arc::new(Int32Array::from(vec![42])) as ArrayRef],
    )
    .unwrap();
    assert!(matches!(value_at(&union, 0), Value::String(s) if s.contains("42")));
}

#[test]
fn logical_sizes_follow_bigquery() {
    assert_eq!(
        logical_size(&Int64Array::from(vec![Some(1), None, Some(3)])),
        16
    );
    assert_eq!(logical_size(&BooleanArray::from(vec![true, false])), 2);
    assert_eq!(
        logical_size(&StringArray::from(vec![Some("é"), None, Some("")])),
        (2 + 2) + 2
    );
    assert_eq!(logical_size(&BinaryArray::from(vec![&b"abc"[..]])), 5);
    assert_eq!(logical_size(&Date32Array::from(vec![1, 2])), 16);
    let list =
        ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None]);
    assert_eq!(logical_size(&list), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_results_convert() {
    let wh = demo().await;
    let result = run(
        &wh,
        "SELECT CAST(1 AS TINYINT) AS i8, CAST(2 AS INT UNSIGNED) AS u32, CAST(1.5 AS REAL) AS f32, \
         CAST(1.25 AS DECIMAL(10, 2)) AS dec, 'txt' AS s, CAST('ab' AS BYTEA) AS b, TRUE AS t, \
         DATE '2024-02-29' AS d, CAST('12:34:56' AS TIME) AS tm, \
         CAST('2024-01-02T03:04:05' AS TIMESTAMP) AS dt, \
         to_timestamp_seconds(0) AT TIME ZONE 'UTC' AS ts, \
         INTERVAL '1 day 2 hours' AS iv, make_array(1, 2) AS arr, \
         named_struct('k', 'v', 'n', 3) AS st, NULL AS nothing",
    )
    .await;
    let row = &result.rows[0];
    let by_name = |name: &str| {
        let i = result.columns.iter().position(|c| c.name == name).unwrap();
        (&row[i], result.columns[i].field_type)
    };
    assert_eq!(by_name("i8"), (&Value::Int64(1), FieldType::Int64));
    assert_eq!(by_name("u32"), (&Value::Int64(2), FieldType::Int64));
    assert_eq!(by_name("f32"), (&Value::Float64(1.5), FieldType::Float64));
    assert_eq!(
        by_name("dec"),
        (&Value::Numeric("1.25".into()), FieldType::Numeric)
    );
    assert_eq!(
        by_name("s"),
        (&Value::String("txt".into()), FieldType::String)
    );
    assert_eq!(
        by_name("b"),
        (&Value::Bytes(b"ab".to_vec()), FieldType::Bytes)
    );
    assert_eq!(by_name("t"), (&Value::Bool(true), FieldType::Bool));
    assert_eq!(
        by_name("d"),
        (&Value::Date(date(2024, 2, 29)), FieldType::Date)
    );
    assert_eq!(
        by_name("tm"),
        (
            &Value::Time(NaiveTime::from_hms_opt(12, 34, 56).unwrap()),
            FieldType::Time
        )
    );
    assert_eq!(
        by_name("dt"),
        (
            &Value::Datetime(date(2024, 1, 2).and_hms_opt(3, 4, 5).unwrap()),
            FieldType::Datetime
        )
    );
    assert_eq!(
        by_name("ts"),
        (
            &Value::Timestamp(DateTime::from_timestamp(0, 0).unwrap()),
            FieldType::Timestamp
        )
    );
    assert_eq!(
        by_name("iv"),
        (&Value::Interval("0-0 1 2:0:0".into()), FieldType::Interval)
    );
    assert_eq!(
        by_name("arr").0,
        &Value::Array(vec![Value::Int64(1), Value::Int64(2)])
    );
    assert_eq!(
        by_name("st"),
        (
            &Value::Struct(vec![
                ("k".into(), Value::String("v".into())),
                ("n".into(), Value::Int64(3))
            ]),
            FieldType::Record
        )
    );
    assert_eq!(by_name("nothing").0, &Value::Null);
}
