//! BigQuery's REST row format (`{"f": [{"v": …}, …]}`) → core [`Value`]s, type by type.
//!
//! BigQuery sends every scalar as a JSON string (`"42"`, `"1.5"`, `"true"`), REPEATED
//! columns as arrays of `{"v": …}` cells and RECORDs as nested `{"f": […]}` rows. The mapping
//! keeps exactness: INT64 stays an `i64` (core's JSON form turns values beyond ±2^53 into
//! strings), NUMERIC/BIGNUMERIC stay decimal strings, FLOAT64 accepts `NaN`/`Infinity`,
//! BYTES are decoded from base64, TIMESTAMP is read as int64 microseconds (the adapter asks
//! for `formatOptions.useInt64Timestamp`) or, from older answers, float seconds or RFC 3339,
//! DATETIME accepts `T` or a space, and GEOGRAPHY (WKT), JSON, INTERVAL and RANGE keep
//! BigQuery's canonical text. JSON numbers and booleans are accepted too, as some stand-ins
//! send them.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::Value as J;

use bqai_core::model::{Field, FieldMode, FieldType, Value};

/// A cell BigQuery sent that does not fit its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: cannot read {found} as {expected}")]
pub struct DecodeError {
    /// The column (dotted for nested fields).
    pub column: String,
    /// The type expected.
    pub expected: &'static str,
    /// What arrived (truncated).
    pub found: String,
}

/// Decodes one REST row against its schema.
pub fn decode_row(
    fields: &[Field],
    row: &serde_json::Map<String, J>,
) -> Result<Vec<Value>, DecodeError> {
    let cells = row.get("f").and_then(J::as_array);
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let cell = cells
                .and_then(|c| c.get(i))
                .and_then(|c| c.get("v"))
                .unwrap_or(&J::Null);
            decode_cell(field, cell, &field.name)
        })
        .collect()
}

fn decode_cell(field: &Field, v: &J, path: &str) -> Result<Value, DecodeError> {
    if field.mode == FieldMode::Repeated {
        return match v {
            J::Null => Ok(Value::Array(Vec::new())),
            J::Array(items) => items
                .iter()
                .map(|item| decode_scalar(field, item.get("v").unwrap_or(item), path))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(mismatch(path, "ARRAY", other)),
        };
    }
    decode_scalar(field, v, path)
}

fn decode_scalar(field: &Field, v: &J, path: &str) -> Result<Value, DecodeError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let text = || match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let expected = field.field_type.as_str();
    let fail = || mismatch(path, expected, v);
    Ok(match field.field_type {
        FieldType::Int64 => match v {
            J::Number(n) => n.as_i64().map(Value::Int64).ok_or_else(fail)?,
            J::String(s) => s.trim().parse().map(Value::Int64).map_err(|_| fail())?,
            _ => return Err(fail()),
        },
        FieldType::Float64 => Value::Float64(parse_float(v).ok_or_else(fail)?),
        FieldType::Numeric | FieldType::Bignumeric => {
            let s = text().ok_or_else(fail)?;
            if !is_decimal(&s) {
                return Err(fail());
            }
            Value::Numeric(s)
        }
        FieldType::Bool => match v {
            J::Bool(b) => Value::Bool(*b),
            J::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
            J::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
            _ => return Err(fail()),
        },
        FieldType::String => Value::String(text().ok_or_else(fail)?),
        FieldType::Bytes => {
            let s = v.as_str().ok_or_else(fail)?;
            Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| fail())?,
            )
        }
        FieldType::Date => Value::Date(
            NaiveDate::parse_from_str(v.as_str().ok_or_else(fail)?, "%Y-%m-%d")
                .map_err(|_| fail())?,
        ),
        FieldType::Time => Value::Time(parse_time(v.as_str().ok_or_else(fail)?).ok_or_else(fail)?),
        FieldType::Datetime => {
            Value::Datetime(parse_datetime(v.as_str().ok_or_else(fail)?).ok_or_else(fail)?)
        }
        FieldType::Timestamp => Value::Timestamp(parse_timestamp(v).ok_or_else(fail)?),
        FieldType::Geography => Value::Geography(text().ok_or_else(fail)?),
        FieldType::Json => Value::Json(match v {
            J::String(s) => s.clone(),
            other => other.to_string(),
        }),
        FieldType::Interval => Value::Interval(text().ok_or_else(fail)?),
        FieldType::Range => Value::Range(text().ok_or_else(fail)?),
        FieldType::Record => {
            let cells = v
                .get("f")
                .and_then(J::as_array)
                .ok_or_else(|| mismatch(path, "STRUCT", v))?;
            let mut out = Vec::with_capacity(field.fields.len());
            for (i, sub) in field.fields.iter().enumerate() {
                let cell = cells.get(i).and_then(|c| c.get("v")).unwrap_or(&J::Null);
                let sub_path = format!("{path}.{}", sub.name);
                out.push((sub.name.clone(), decode_cell(sub, cell, &sub_path)?));
            }
            Value::Struct(out)
        }
    })
}

fn mismatch(path: &str, expected: &'static str, found: &J) -> DecodeError {
    let mut found = found.to_string();
    if found.len() > 60 {
        let cut = (0..=60)
            .rev()
            .find(|&i| found.is_char_boundary(i))
            .unwrap_or(0);
        found.truncate(cut);
        found.push('…');
    }
    DecodeError {
        column: path.to_owned(),
        expected,
        found,
    }
}

fn parse_float(v: &J) -> Option<f64> {
    match v {
        J::Number(n) => n.as_f64(),
        J::String(s) => match s.trim() {
            "NaN" => Some(f64::NAN),
            "Infinity" | "+Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// An optionally signed decimal with an optional fraction and exponent (what BigQuery sends
/// for NUMERIC/BIGNUMERIC).
fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() || !frac.is_empty())
        && digits(int)
        && digits(frac)
        && exponent.is_none_or(|e| {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        })
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").ok()
}

fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
}

/// Int64 microseconds (`formatOptions.useInt64Timestamp`), float seconds (the older
/// default, `"1.7040672E9"`), or RFC 3339 text.
fn parse_timestamp(v: &J) -> Option<DateTime<Utc>> {
    let micros_of = |m: i64| DateTime::<Utc>::from_timestamp_micros(m);
    match v {
        J::Number(n) => n.as_i64().and_then(micros_of),
        J::String(s) => {
            let s = s.trim();
            if let Ok(micros) = s.parse::<i64>() {
                return micros_of(micros);
            }
            if let Ok(seconds) = s.parse::<f64>() {
                // Float seconds carry microseconds in their decimal text; round to them.
                #[allow(clippy::cast_possible_truncation)]
                let micros = (seconds * 1e6).round() as i64;
                return micros_of(micros);
            }
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
                        .map(|t| t.with_timezone(&Utc))
                })
                .ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str, t: FieldType) -> Field {
        Field::new(name, t)
    }

    fn one(field: Field, v: J) -> Value {
        let row = json!({"f": [{"v": v}]});
        let row = row.as_object().cloned().unwrap_or_default();
        let mut values = decode_row(&[field], &row).unwrap_or_else(|e| panic!("{e}"));
        values.remove(0)
    }

    #[test]
    fn every_bigquery_type_from_rest_json() {
        use FieldType as T;
        let ts = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let cases: Vec<(FieldType, J, Value)> = vec![
            (T::Int64, json!("42"), Value::Int64(42)),
            (
                T::Int64,
                json!("-9223372036854775808"),
                Value::Int64(i64::MIN),
            ),
            (T::Int64, json!(7), Value::Int64(7)),
            (T::Float64, json!("1.5"), Value::Float64(1.5)),
            (T::Float64, json!("Infinity"), Value::Float64(f64::INFINITY)),
            (
                T::Float64,
                json!("-Infinity"),
                Value::Float64(f64::NEG_INFINITY),
            ),
            (T::Float64, json!("1e300"), Value::Float64(1e300)),
            (
                T::Numeric,
                json!("123456789012345678901234567.123456789"),
                Value::Numeric("123456789012345678901234567.123456789".into()),
            ),
            (
                T::Bignumeric,
                json!("-0.00000000000000000000000000000000000001"),
                Value::Numeric("-0.00000000000000000000000000000000000001".into()),
            ),
            (T::Bool, json!("true"), Value::Bool(true)),
            (T::Bool, json!(false), Value::Bool(false)),
            (T::String, json!("héllo"), Value::String("héllo".into())),
            (
                T::Bytes,
                json!("AAEC/w=="),
                Value::Bytes(vec![0, 1, 2, 255]),
            ),
            (
                T::Date,
                json!("2024-02-29"),
                Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap_or_default()),
            ),
            (
                T::Time,
                json!("23:59:59.123456"),
                Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 59, 123_456).unwrap_or_default()),
            ),
            (
                T::Time,
                json!("08:00:00"),
                Value::Time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default()),
            ),
            (
                T::Datetime,
                json!("2024-01-02T03:04:05.000006"),
                Value::Datetime(
                    NaiveDate::from_ymd_opt(2024, 1, 2)
                        .unwrap_or_default()
                        .and_hms_micro_opt(3, 4, 5, 6)
                        .unwrap_or_default(),
                ),
            ),
            (
                T::Datetime,
                json!("2024-01-02 03:04:05"),
                Value::Datetime(
                    NaiveDate::from_ymd_opt(2024, 1, 2)
                        .unwrap_or_default()
                        .and_hms_opt(3, 4, 5)
                        .unwrap_or_default(),
                ),
            ),
            (
                T::Timestamp,
                json!("1704067200123456"),
                Value::Timestamp(ts("2024-01-01T00:00:00.123456Z")),
            ),
            (
                T::Timestamp,
                json!("1.7040672E9"),
                Value::Timestamp(ts("2024-01-01T00:00:00Z")),
            ),
            (
                T::Timestamp,
                json!("2024-01-01T01:00:00+01:00"),
                Value::Timestamp(ts("2024-01-01T00:00:00Z")),
            ),
            (
                T::Geography,
                json!("POINT(1 2)"),
                Value::Geography("POINT(1 2)".into()),
            ),
            (
                T::Json,
                json!("{\"a\":[1,2]}"),
                Value::Json("{\"a\":[1,2]}".into()),
            ),
            (
                T::Interval,
                json!("1-2 3 4:5:6.789"),
                Value::Interval("1-2 3 4:5:6.789".into()),
            ),
            (
                T::Range,
                json!("[2024-01-01, UNBOUNDED)"),
                Value::Range("[2024-01-01, UNBOUNDED)".into()),
            ),
            (T::String, J::Null, Value::Null),
            (T::Timestamp, J::Null, Value::Null),
        ];
        for (t, raw, expected) in cases {
            let got = one(f("c", t), raw.clone());
            assert_eq!(got, expected, "{t} from {raw}");
        }
        match one(f("c", FieldType::Float64), json!("NaN")) {
            Value::Float64(x) => assert!(x.is_nan()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_form_is_lossless() {
        let big = one(f("c", FieldType::Int64), json!("9007199254740993"));
        assert_eq!(big.to_json(), json!("9007199254740993"));
        let small = one(f("c", FieldType::Int64), json!("9007199254740991"));
        assert_eq!(small.to_json(), json!(9_007_199_254_740_991_i64));
        let ts = one(f("c", FieldType::Timestamp), json!("1704067200000001"));
        assert_eq!(ts.to_json(), json!("2024-01-01T00:00:00.000001Z"));
        let bytes = one(f("c", FieldType::Bytes), json!("AAEC/w=="));
        assert_eq!(bytes.to_json(), json!("AAEC/w=="));
        let nan = one(f("c", FieldType::Float64), json!("NaN"));
        assert_eq!(nan.to_json(), json!("NaN"));
        let numeric = one(f("c", FieldType::Bignumeric), json!("1.10"));
        assert_eq!(numeric.to_json(), json!("1.10"));
    }

    #[test]
    fn arrays_structs_and_nesting() {
        let mut record = f("r", FieldType::Record);
        record.fields = vec![
            f("id", FieldType::Int64),
            f("tags", FieldType::String).with_mode(FieldMode::Repeated),
            {
                let mut inner = f("inner", FieldType::Record).with_mode(FieldMode::Repeated);
                inner.fields = vec![f("x", FieldType::Float64)];
                inner
            },
        ];
        let got = one(
            record.clone(),
            json!({"f": [{"v": "1"}, {"v": [{"v": "a"}, {"v": "b"}]},
                          {"v": [{"v": {"f": [{"v": "0.5"}]}}, {"v": {"f": [{"v": null}]}}]}]}),
        );
        assert_eq!(
            got,
            Value::Struct(vec![
                ("id".into(), Value::Int64(1)),
                (
                    "tags".into(),
                    Value::Array(vec![Value::String("a".into()), Value::String("b".into())])
                ),
                (
                    "inner".into(),
                    Value::Array(vec![
                        Value::Struct(vec![("x".into(), Value::Float64(0.5))]),
                        Value::Struct(vec![("x".into(), Value::Null)]),
                    ])
                ),
            ])
        );
        assert_eq!(
            got.to_json(),
            json!({"id": 1, "tags": ["a", "b"], "inner": [{"x": 0.5}, {"x": null}]})
        );
        // A NULL record, and an empty repeated column.
        assert_eq!(one(record, J::Null), Value::Null);
        let repeated = f("t", FieldType::Int64).with_mode(FieldMode::Repeated);
        assert_eq!(one(repeated.clone(), json!([])), Value::Array(vec![]));
        assert_eq!(one(repeated, J::Null), Value::Array(vec![]));
    }

    #[test]
    fn mismatches_are_errors_naming_the_column() {
        let row = json!({"f": [{"v": {"f": [{"v": "abc"}]}}]});
        let row = row.as_object().cloned().unwrap_or_default();
        let mut record = f("r", FieldType::Record);
        record.fields = vec![f("n", FieldType::Int64)];
        let err = decode_row(&[record], &row).unwrap_err();
        assert_eq!(err.column, "r.n");
        assert_eq!(err.expected, "INT64");

        for (t, raw) in [
            (FieldType::Numeric, json!("1.2.3")),
            (FieldType::Bool, json!("yes")),
            (FieldType::Bytes, json!("***")),
            (FieldType::Date, json!("2024-13-01")),
        ] {
            let row = json!({"f": [{"v": raw}]});
            let row = row.as_object().cloned().unwrap_or_default();
            assert!(
                decode_row(&[f("c", t)], &row).is_err(),
                "{t} accepted {raw}"
            );
        }
    }

    #[test]
    fn short_rows_read_as_null() {
        let row = json!({"f": [{"v": "1"}]});
        let row = row.as_object().cloned().unwrap_or_default();
        let values = decode_row(&[f("a", FieldType::Int64), f("b", FieldType::String)], &row)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values, vec![Value::Int64(1), Value::Null]);
    }
}
