//! Query parameters: typed values bound to the placeholders of a statement instead of being
//! pasted into its text.
//!
//! A statement uses either named placeholders (`@name` on BigQuery, `$name` on the embedded
//! engine) or positional ones (`?` on BigQuery, `$1`, `$2`, … on the embedded engine), never
//! both. [`QueryParameters`] carries the values; [`check_placeholders`] matches them against
//! the placeholders the guard found, so a missing, unused or mismatched parameter is the
//! caller's mistake (400) before anything is planned.
//!
//! JSON form (the API's `parameters`): a value is a plain JSON scalar or array — `true` is
//! BOOL, an integer INT64, any other number FLOAT64, a string STRING, `null` a STRING NULL,
//! an array an ARRAY of its elements' type — or, where JSON is ambiguous, an object
//! `{"type": "DATE", "value": "2024-01-31"}` with a BigQuery type name (`INT64`, `FLOAT64`,
//! `NUMERIC`, `BIGNUMERIC`, `BOOL`, `STRING`, `BYTES` (base64), `DATE`, `TIME`, `DATETIME`,
//! `TIMESTAMP` (RFC 3339), `GEOGRAPHY` (WKT), `JSON`, `INTERVAL`, or `ARRAY<T>` of those).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{FieldType, SqlDialect, Value};

/// Most parameters one query may carry.
pub const MAX_PARAMETERS: usize = 256;

/// One typed parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryParam {
    /// The SQL type (for an ARRAY, the type of its elements).
    pub field_type: FieldType,
    /// Whether the parameter is an `ARRAY<field_type>`.
    pub array: bool,
    /// [`Value::Null`], a value of `field_type`, or (when `array`) a [`Value::Array`] of them.
    pub value: Value,
}

impl QueryParam {
    /// A scalar parameter.
    pub fn scalar(field_type: FieldType, value: Value) -> Self {
        Self {
            field_type,
            array: false,
            value,
        }
    }

    /// The BigQuery type name (`INT64`, `ARRAY<DATE>`).
    pub fn type_name(&self) -> String {
        if self.array {
            format!("ARRAY<{}>", self.field_type)
        } else {
            self.field_type.to_string()
        }
    }

    /// Reads the JSON form described in the module documentation; the error says what is
    /// wrong (the caller prefixes the parameter's name).
    pub fn from_json(json: &serde_json::Value) -> Result<Self, String> {
        use serde_json::Value as J;
        match json {
            J::Object(object) => {
                let type_name = object
                    .get("type")
                    .and_then(J::as_str)
                    .ok_or("an object parameter needs a string \"type\" and a \"value\"")?;
                if let Some(extra) = object.keys().find(|k| *k != "type" && *k != "value") {
                    return Err(format!(
                        "unknown key {extra:?} (expected \"type\" and \"value\")"
                    ));
                }
                let value = object.get("value").unwrap_or(&J::Null);
                let upper = type_name.trim().to_ascii_uppercase();
                let (array, element) = match upper
                    .strip_prefix("ARRAY<")
                    .and_then(|rest| rest.strip_suffix('>'))
                {
                    Some(inner) => (true, inner.trim().to_owned()),
                    None => (false, upper.clone()),
                };
                let field_type = FieldType::parse(&element)
                    .filter(|t| !matches!(t, FieldType::Record | FieldType::Range))
                    .ok_or_else(|| format!("unsupported parameter type {type_name:?}"))?;
                let value = if array {
                    match value {
                        J::Null => Value::Null,
                        J::Array(items) => Value::Array(
                            items
                                .iter()
                                .map(|item| typed_value(field_type, item))
                                .collect::<Result<_, _>>()?,
                        ),
                        other => {
                            return Err(format!("{type_name} needs a JSON array, got {other}"));
                        }
                    }
                } else {
                    typed_value(field_type, value)?
                };
                Ok(Self {
                    field_type,
                    array,
                    value,
                })
            }
            J::Array(items) => {
                let elements = items
                    .iter()
                    .map(|item| match item {
                        J::Array(_) | J::Object(_) => {
                            Err("arrays of arrays or objects are not supported".to_owned())
                        }
                        other => Self::from_json(other),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let field_type = elements
                    .iter()
                    .find(|e| e.value != Value::Null)
                    .map_or(FieldType::String, |e| e.field_type);
                // Integers mixed with other numbers make a FLOAT64 array.
                let field_type = if field_type == FieldType::Int64
                    && elements.iter().any(|e| e.field_type == FieldType::Float64)
                {
                    FieldType::Float64
                } else {
                    field_type
                };
                let values = items
                    .iter()
                    .map(|item| typed_value(field_type, item))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| "array elements must all have one type".to_owned())?;
                Ok(Self {
                    field_type,
                    array: true,
                    value: Value::Array(values),
                })
            }
            J::Null => Ok(Self::scalar(FieldType::String, Value::Null)),
            J::Bool(b) => Ok(Self::scalar(FieldType::Bool, Value::Bool(*b))),
            J::Number(n) => Ok(match n.as_i64() {
                Some(i) => Self::scalar(FieldType::Int64, Value::Int64(i)),
                None => Self::scalar(
                    FieldType::Float64,
                    Value::Float64(n.as_f64().ok_or("number out of range")?),
                ),
            }),
            J::String(s) => Ok(Self::scalar(FieldType::String, Value::String(s.clone()))),
        }
    }

    /// The value as BigQuery's REST API writes a parameter value's `value`: the text of a
    /// scalar (`None` for NULL).
    pub fn scalar_text(value: &Value) -> Option<String> {
        match value {
            Value::Null => None,
            other => Some(other.to_text()),
        }
    }
}

/// A JSON value as a value of `field_type`.
fn typed_value(field_type: FieldType, json: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    if json.is_null() {
        return Ok(Value::Null);
    }
    let text = match json {
        J::String(s) => s.clone(),
        J::Number(n) => n.to_string(),
        J::Bool(b) => b.to_string(),
        other => return Err(format!("{field_type} needs a scalar, got {other}")),
    };
    let bad = |what: &str| format!("{text:?} is not a valid {field_type} ({what})");
    Ok(match field_type {
        FieldType::Int64 => Value::Int64(text.trim().parse().map_err(|_| bad("an integer"))?),
        FieldType::Float64 => match text.trim() {
            "NaN" => Value::Float64(f64::NAN),
            "Infinity" => Value::Float64(f64::INFINITY),
            "-Infinity" => Value::Float64(f64::NEG_INFINITY),
            t => Value::Float64(t.parse().map_err(|_| bad("a number"))?),
        },
        FieldType::Numeric | FieldType::Bignumeric => {
            let t = text.trim();
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            if int.is_empty() && frac.is_empty()
                || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
            {
                return Err(bad("a decimal number"));
            }
            Value::Numeric(t.to_owned())
        }
        FieldType::Bool => match json {
            J::Bool(b) => Value::Bool(*b),
            _ => match text.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(bad("true or false")),
            },
        },
        FieldType::String => match json {
            J::String(s) => Value::String(s.clone()),
            _ => return Err(bad("a JSON string")),
        },
        FieldType::Bytes => Value::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| bad("base64"))?,
        ),
        FieldType::Date => Value::Date(
            NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| bad("YYYY-MM-DD"))?,
        ),
        FieldType::Time => Value::Time(
            NaiveTime::parse_from_str(&text, "%H:%M:%S%.f").map_err(|_| bad("HH:MM:SS"))?,
        ),
        FieldType::Datetime => Value::Datetime(
            NaiveDateTime::parse_from_str(&text.replace(' ', "T"), "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| bad("YYYY-MM-DDTHH:MM:SS"))?,
        ),
        FieldType::Timestamp => Value::Timestamp(
            DateTime::parse_from_rfc3339(&text)
                .map_err(|_| bad("RFC 3339 with a zone"))?
                .with_timezone(&Utc),
        ),
        FieldType::Geography => Value::Geography(text),
        FieldType::Json => Value::Json(match json {
            J::String(s) => s.clone(),
            other => other.to_string(),
        }),
        FieldType::Interval => Value::Interval(text),
        FieldType::Range | FieldType::Record => return Err(bad("unsupported type")),
    })
}

/// The parameters of a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum QueryParameters {
    /// No parameters (the statement must have no placeholders).
    #[default]
    None,
    /// Values for `?` (BigQuery) or `$1`, `$2`, … (embedded engine), in order.
    Positional(Vec<QueryParam>),
    /// Values for `@name` (BigQuery) or `$name` (embedded engine), by name without the sigil.
    Named(BTreeMap<String, QueryParam>),
}

impl QueryParameters {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        match self {
            QueryParameters::None => true,
            QueryParameters::Positional(v) => v.is_empty(),
            QueryParameters::Named(m) => m.is_empty(),
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        match self {
            QueryParameters::None => 0,
            QueryParameters::Positional(v) => v.len(),
            QueryParameters::Named(m) => m.len(),
        }
    }

    /// Reads the API's JSON form: `{"name": value, …}` (named) or `[value, …]` (positional);
    /// `null` is none. Errors name the parameter.
    pub fn from_json(json: &serde_json::Value) -> Result<Self, String> {
        use serde_json::Value as J;
        let too_many = |n: usize| {
            (n > MAX_PARAMETERS).then(|| format!("at most {MAX_PARAMETERS} parameters, got {n}"))
        };
        match json {
            J::Null => Ok(QueryParameters::None),
            J::Array(items) => {
                if let Some(e) = too_many(items.len()) {
                    return Err(e);
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        QueryParam::from_json(v).map_err(|e| format!("parameter {}: {e}", i + 1))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(QueryParameters::Positional)
            }
            J::Object(map) => {
                if let Some(e) = too_many(map.len()) {
                    return Err(e);
                }
                map.iter()
                    .map(|(name, v)| {
                        let name = name.strip_prefix(['@', '$']).unwrap_or(name);
                        if !is_parameter_name(name) {
                            return Err(format!(
                                "parameter name {name:?} must be letters, digits and _, \
                                 starting with a letter or _"
                            ));
                        }
                        QueryParam::from_json(v)
                            .map(|p| (name.to_owned(), p))
                            .map_err(|e| format!("parameter {name:?}: {e}"))
                    })
                    .collect::<Result<BTreeMap<_, _>, _>>()
                    .map(QueryParameters::Named)
            }
            _ => Err("`parameters` must be an object (named) or an array (positional)".into()),
        }
    }

    /// A stable text of the parameters for cache keys (empty when there are none).
    pub fn cache_key_text(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            format!("{self:?}")
        }
    }
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// The placeholders of a statement, as the guard found them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    /// `@name` (without the `@`).
    pub at_named: BTreeSet<String>,
    /// How many `?` there are.
    pub question_marks: usize,
    /// `$1`, `$2`, … (the numbers).
    pub dollar_numbered: BTreeSet<usize>,
    /// `$name` (without the `$`).
    pub dollar_named: BTreeSet<String>,
    /// Anything else that looks like a placeholder (`?1`, `:name`), as written.
    pub other: BTreeSet<String>,
}

impl Placeholders {
    /// Whether the statement has none.
    pub fn is_empty(&self) -> bool {
        *self == Placeholders::default()
    }
}

/// Matches `params` against the statement's `placeholders` for `dialect`; the error is a
/// message for the caller (a 400): wrong placeholder style for the engine, named and
/// positional mixed, a value missing, or a value nothing uses.
pub fn check_placeholders(
    dialect: SqlDialect,
    placeholders: &Placeholders,
    params: &QueryParameters,
) -> Result<(), String> {
    if let Some(other) = placeholders.other.iter().next() {
        return Err(format!(
            "placeholder {other} is not supported; {}",
            styles(dialect)
        ));
    }
    let (named, positional) = match dialect {
        SqlDialect::BigQuery => {
            if let Some(n) = placeholders.dollar_numbered.iter().next() {
                return Err(format!(
                    "placeholder ${n} is not BigQuery's; {}",
                    styles(dialect)
                ));
            }
            if let Some(n) = placeholders.dollar_named.iter().next() {
                return Err(format!(
                    "placeholder ${n} is not BigQuery's; {}",
                    styles(dialect)
                ));
            }
            (&placeholders.at_named, placeholders.question_marks)
        }
        SqlDialect::DataFusion => {
            if let Some(n) = placeholders.at_named.iter().next() {
                return Err(format!(
                    "placeholder @{n} is BigQuery's; the embedded engine takes ${n}"
                ));
            }
            if placeholders.question_marks > 0 {
                return Err(
                    "placeholder ? is BigQuery's; the embedded engine takes $1, $2, …".into(),
                );
            }
            // `$1 … $n` must be exactly 1..=n.
            let n = placeholders.dollar_numbered.len();
            if let Some(gap) = (1..=n).find(|i| !placeholders.dollar_numbered.contains(i)) {
                return Err(format!(
                    "positional placeholders must be $1 … ${n} without gaps; ${gap} is missing"
                ));
            }
            (&placeholders.dollar_named, n)
        }
    };
    let sigil = match dialect {
        SqlDialect::BigQuery => '@',
        SqlDialect::DataFusion => '$',
    };
    if !named.is_empty() && positional > 0 {
        return Err("the SQL mixes named and positional placeholders; use one kind".into());
    }
    match params {
        QueryParameters::None if named.is_empty() && positional == 0 => Ok(()),
        QueryParameters::None => Err(match named.iter().next() {
            Some(name) => format!("missing parameter {sigil}{name}: send `parameters`"),
            None => {
                format!("the SQL has {positional} positional placeholder(s) but no `parameters`")
            }
        }),
        QueryParameters::Named(map) => {
            if positional > 0 {
                return Err(
                    "named parameters were sent but the SQL uses positional placeholders".into(),
                );
            }
            if let Some(missing) = named.iter().find(|n| !map.contains_key(*n)) {
                return Err(format!("missing parameter {sigil}{missing}"));
            }
            if let Some(unused) = map.keys().find(|k| !named.contains(*k)) {
                return Err(format!(
                    "parameter {unused:?} is not used by the SQL (no {sigil}{unused})"
                ));
            }
            Ok(())
        }
        QueryParameters::Positional(values) => {
            if !named.is_empty() {
                return Err(
                    "positional parameters were sent but the SQL uses named placeholders".into(),
                );
            }
            if values.len() != positional {
                return Err(format!(
                    "the SQL has {positional} positional placeholder(s) but {} parameter(s) \
                     were sent",
                    values.len()
                ));
            }
            Ok(())
        }
    }
}

fn styles(dialect: SqlDialect) -> &'static str {
    match dialect {
        SqlDialect::BigQuery => "BigQuery takes @name or ?",
        SqlDialect::DataFusion => "the embedded engine takes $name or $1, $2, …",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn named(names: &[&str]) -> Placeholders {
        Placeholders {
            at_named: names.iter().map(|s| (*s).to_owned()).collect(),
            ..Placeholders::default()
        }
    }

    #[test]
    fn json_values_get_types() {
        let p = QueryParameters::from_json(&json!({
            "n": 3, "x": 1.5, "s": "a", "b": true, "z": null, "a": [1, 2.5],
            "d": {"type": "DATE", "value": "2024-01-31"},
            "ts": {"type": "timestamp", "value": "2024-01-31T10:00:00+01:00"},
            "ns": {"type": "ARRAY<NUMERIC>", "value": ["1.50", 2]},
            "big": {"type": "INT64", "value": "9007199254740993"},
        }))
        .unwrap();
        let QueryParameters::Named(map) = p else {
            panic!("named")
        };
        assert_eq!(
            map["n"],
            QueryParam::scalar(FieldType::Int64, Value::Int64(3))
        );
        assert_eq!(map["x"].field_type, FieldType::Float64);
        assert_eq!(map["s"].value, Value::String("a".into()));
        assert_eq!(map["b"].value, Value::Bool(true));
        assert_eq!(map["z"], QueryParam::scalar(FieldType::String, Value::Null));
        assert_eq!(map["a"].type_name(), "ARRAY<FLOAT64>");
        assert_eq!(
            map["a"].value,
            Value::Array(vec![Value::Float64(1.0), Value::Float64(2.5)])
        );
        assert_eq!(map["d"].type_name(), "DATE");
        assert_eq!(map["ts"].value.to_json(), json!("2024-01-31T09:00:00Z"));
        assert_eq!(map["ns"].type_name(), "ARRAY<NUMERIC>");
        assert_eq!(map["big"].value, Value::Int64(9_007_199_254_740_993));
    }

    #[test]
    fn bad_json_is_named() {
        let err =
            QueryParameters::from_json(&json!({"d": {"type": "DATE", "value": "x"}})).unwrap_err();
        assert!(err.contains("\"d\"") && err.contains("DATE"), "{err}");
        let err =
            QueryParameters::from_json(&json!([1, {"type": "STRUCT", "value": {}}])).unwrap_err();
        assert!(err.contains("parameter 2"), "{err}");
        assert!(QueryParameters::from_json(&json!({"bad name": 1})).is_err());
        assert!(QueryParameters::from_json(&json!([[[1]]])).is_err());
        assert!(
            QueryParameters::from_json(&json!([[1]])).is_ok(),
            "one ARRAY parameter"
        );
        assert!(QueryParameters::from_json(&json!("x")).is_err());
        assert!(
            QueryParameters::from_json(&json!([["a", 1]])).is_err(),
            "one type per array"
        );
    }

    #[test]
    fn placeholders_must_match_the_parameters() {
        let bq = SqlDialect::BigQuery;
        let one = QueryParameters::from_json(&json!({"c": "DE"})).unwrap();
        let list = QueryParameters::from_json(&json!(["DE"])).unwrap();
        assert!(check_placeholders(bq, &named(&["c"]), &one).is_ok());
        assert!(check_placeholders(bq, &Placeholders::default(), &QueryParameters::None).is_ok());
        let err = check_placeholders(bq, &named(&["c", "d"]), &one).unwrap_err();
        assert!(err.contains("@d"), "{err}");
        let err = check_placeholders(bq, &named(&[]), &one).unwrap_err();
        assert!(err.contains("not used"), "{err}");
        let err = check_placeholders(bq, &named(&["c"]), &list).unwrap_err();
        assert!(err.contains("named placeholders"), "{err}");
        let err = check_placeholders(bq, &named(&["c"]), &QueryParameters::None).unwrap_err();
        assert!(err.contains("missing parameter @c"), "{err}");

        let qm = Placeholders {
            question_marks: 1,
            ..Placeholders::default()
        };
        assert!(check_placeholders(bq, &qm, &list).is_ok());
        assert!(check_placeholders(bq, &qm, &one).is_err());
        let two = QueryParameters::from_json(&json!([1, 2])).unwrap();
        assert!(check_placeholders(bq, &qm, &two).is_err());
        let mixed = Placeholders {
            question_marks: 1,
            ..named(&["c"])
        };
        assert!(
            check_placeholders(bq, &mixed, &one)
                .unwrap_err()
                .contains("mixes")
        );
        // Engine styles.
        assert!(
            check_placeholders(SqlDialect::DataFusion, &qm, &list)
                .unwrap_err()
                .contains("$1")
        );
        assert!(check_placeholders(SqlDialect::DataFusion, &named(&["c"]), &one).is_err());
        let dollar = Placeholders {
            dollar_numbered: [1, 2].into(),
            ..Placeholders::default()
        };
        assert!(check_placeholders(SqlDialect::DataFusion, &dollar, &two).is_ok());
        assert!(check_placeholders(bq, &dollar, &two).is_err());
        let gap = Placeholders {
            dollar_numbered: [2].into(),
            ..Placeholders::default()
        };
        assert!(check_placeholders(SqlDialect::DataFusion, &gap, &list).is_err());
        let dn = Placeholders {
            dollar_named: ["c".to_owned()].into(),
            ..Placeholders::default()
        };
        assert!(check_placeholders(SqlDialect::DataFusion, &dn, &one).is_ok());
    }

    #[test]
    fn the_cache_key_text_tells_parameters_apart() {
        let a = QueryParameters::from_json(&json!({"c": "DE"})).unwrap();
        let b = QueryParameters::from_json(&json!({"c": "FR"})).unwrap();
        assert_ne!(a.cache_key_text(), b.cache_key_text());
        assert_eq!(QueryParameters::None.cache_key_text(), "");
    }
}
