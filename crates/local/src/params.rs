//! Query parameters on the embedded engine: core's typed values as DataFusion scalars, bound
//! with `DataFrame::with_param_values` to `$1, $2, …` (positional) or `$name` (named)
//! placeholders.
//!
//! BigQuery's placeholder styles (`@name`, `?`) are not translated: the query service answers
//! them with a 400 that names the embedded engine's style before the statement gets here,
//! because rewriting SQL text behind the guard's back is how injection bugs start.

use std::collections::HashMap;
use std::sync::Arc;

use bqai_core::Error;
use bqai_core::model::{FieldType, QueryParam, QueryParameters, Value};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{ParamValues, ScalarValue};

/// The DataFusion values of `params`; `None` when there are none.
pub(crate) fn param_values(params: &QueryParameters) -> Result<Option<ParamValues>, Error> {
    Ok(match params {
        QueryParameters::None => None,
        QueryParameters::Positional(values) => Some(ParamValues::from(
            values
                .iter()
                .enumerate()
                .map(|(i, p)| scalar(p).map_err(|e| bad(&format!("${}", i + 1), &e)))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        QueryParameters::Named(values) => Some(ParamValues::from(
            values
                .iter()
                .map(|(name, p)| {
                    scalar(p)
                        .map(|s| (name.clone(), s))
                        .map_err(|e| bad(&format!("${name}"), &e))
                })
                .collect::<Result<HashMap<_, _>, _>>()?,
        )),
    })
}

fn bad(name: &str, why: &str) -> Error {
    Error::InvalidRequest(format!("parameter {name}: {why}"))
}

fn data_type(t: FieldType) -> Result<DataType, String> {
    Ok(match t {
        FieldType::Int64 => DataType::Int64,
        FieldType::Float64 => DataType::Float64,
        FieldType::Numeric => DataType::Decimal128(38, 9),
        FieldType::Bignumeric => DataType::Decimal128(38, 18),
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
        FieldType::Record => return Err("STRUCT parameters are not supported".into()),
    })
}

fn scalar(p: &QueryParam) -> Result<ScalarValue, String> {
    if p.array {
        let element = data_type(p.field_type)?;
        return match &p.value {
            Value::Null => {
                ScalarValue::try_from(&DataType::new_list(element, true)).map_err(|e| e.to_string())
            }
            Value::Array(items) => {
                let values = items
                    .iter()
                    .map(|v| value_scalar(p.field_type, v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &values, &element,
                )))
            }
            other => Err(format!("an ARRAY parameter cannot hold {other:?}")),
        };
    }
    value_scalar(p.field_type, &p.value)
}

fn value_scalar(t: FieldType, v: &Value) -> Result<ScalarValue, String> {
    let wrong = || format!("a {t} parameter cannot hold {v:?}");
    Ok(match (t, v) {
        (_, Value::Null) => ScalarValue::try_from(&data_type(t)?).map_err(|e| e.to_string())?,
        (FieldType::Int64, Value::Int64(i)) => ScalarValue::Int64(Some(*i)),
        (FieldType::Float64, Value::Float64(f)) => ScalarValue::Float64(Some(*f)),
        (FieldType::Numeric | FieldType::Bignumeric, Value::Numeric(text)) => decimal(text)?,
        (FieldType::Bool, Value::Bool(b)) => ScalarValue::Boolean(Some(*b)),
        (FieldType::Bytes, Value::Bytes(b)) => ScalarValue::Binary(Some(b.clone())),
        (FieldType::Date, Value::Date(d)) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(wrong)?;
            let days = i32::try_from((*d - epoch).num_days()).map_err(|_| wrong())?;
            ScalarValue::Date32(Some(days))
        }
        (FieldType::Time, Value::Time(time)) => {
            use chrono::Timelike as _;
            let micros = i64::from(time.num_seconds_from_midnight()) * 1_000_000
                + i64::from(time.nanosecond() / 1_000);
            ScalarValue::Time64Microsecond(Some(micros))
        }
        (FieldType::Datetime, Value::Datetime(dt)) => {
            ScalarValue::TimestampMicrosecond(Some(dt.and_utc().timestamp_micros()), None)
        }
        (FieldType::Timestamp, Value::Timestamp(ts)) => {
            ScalarValue::TimestampMicrosecond(Some(ts.timestamp_micros()), Some(Arc::from("UTC")))
        }
        (
            FieldType::String
            | FieldType::Geography
            | FieldType::Json
            | FieldType::Interval
            | FieldType::Range,
            Value::String(s)
            | Value::Geography(s)
            | Value::Json(s)
            | Value::Interval(s)
            | Value::Range(s),
        ) => ScalarValue::Utf8(Some(s.clone())),
        _ => return Err(wrong()),
    })
}

/// An exact decimal string as a DECIMAL(38, scale) scalar.
fn decimal(text: &str) -> Result<ScalarValue, String> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = i8::try_from(frac.len()).map_err(|_| format!("{text:?} has too many digits"))?;
    let joined = format!("{int}{frac}");
    if joined.is_empty() || joined.len() > 38 || scale > 38 {
        return Err(format!("{text:?} does not fit DECIMAL(38)"));
    }
    let mut unscaled: i128 = joined
        .parse()
        .map_err(|_| format!("{text:?} is not a decimal number"))?;
    if negative {
        unscaled = -unscaled;
    }
    Ok(ScalarValue::Decimal128(Some(unscaled), 38, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_typed_scalars() {
        let p = QueryParameters::from_json(&serde_json::json!([
            1,
            2.5,
            "x",
            true,
            {"type": "NUMERIC", "value": "-12.50"},
            {"type": "DATE", "value": "1970-01-02"},
            {"type": "TIMESTAMP", "value": "1970-01-01T00:00:01Z"},
            {"type": "INT64", "value": null},
            [1, 2],
        ]))
        .unwrap_or_default();
        let Some(ParamValues::List(values)) = param_values(&p).unwrap_or(None) else {
            panic!("positional values expected")
        };
        let scalars: Vec<ScalarValue> = values.into_iter().map(|v| v.value).collect();
        assert_eq!(scalars[0], ScalarValue::Int64(Some(1)));
        assert_eq!(scalars[1], ScalarValue::Float64(Some(2.5)));
        assert_eq!(scalars[2], ScalarValue::Utf8(Some("x".into())));
        assert_eq!(scalars[3], ScalarValue::Boolean(Some(true)));
        assert_eq!(scalars[4], ScalarValue::Decimal128(Some(-1250), 38, 2));
        assert_eq!(scalars[5], ScalarValue::Date32(Some(1)));
        assert_eq!(
            scalars[6],
            ScalarValue::TimestampMicrosecond(Some(1_000_000), Some(Arc::from("UTC")))
        );
        assert_eq!(scalars[7], ScalarValue::Int64(None));
        assert!(matches!(scalars[8], ScalarValue::List(_)));
    }
}
